# qnxcompat: `make` builds target/release/libqnxcompat.so.
LIB      := target/release/libqnxcompat.so
CC       ?= cc
CFLAGS   := -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -I shim/include
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all build deps test demo bench stress lint clean install install-only uninstall

# Where `make install` puts the library, the command, its man page, the
# overlay headers and qnxcompat.pc.
PREFIX   ?= /usr/local
BIN      := $(dir $(LIB))qnxcompat
INSTALLED := lib/libqnxcompat.so bin/qnxcompat share/man/man1/qnxcompat.1 lib/pkgconfig/qnxcompat.pc

all: build

deps:
	@scripts/deps.sh

# The library and the command beside it (cmd/), and the command's man page.
build: deps
	cargo build --release
	$(BIN) man >$(dir $(LIB))qnxcompat.1

# Every test: the Rust unit and property tests, then every C test in
# tests/c/ natively and under LD_PRELOAD.
test: build
	cargo test --release
	tests/c/run.sh $(LIB)

# A QNX-style program run under the library by the qnxcompat command:
# Linux's and QNX's results side by side.
demo: build
	@mkdir -p target
	$(CC) $(CFLAGS) -o target/demo examples/demo.c
	$(BIN) run --registry=qnxcompat-demo-$$$$ -- target/demo; \
	  status=$$?; rm -f /dev/shm/qnxcompat-demo-$$$$; exit $$status

# Benchmarks (never part of `make test`): the engine in-process with
# criterion, then every scenario natively and under the library side by side.
bench: build
	cargo bench --features bench --bench engine -- --warm-up-time 1 --measurement-time 3
	bench/run.sh $(LIB)

# The long reliability runs: 1,000 kills, 16 x 10,000 oracle operations,
# >= 1,000,000 fuzzed calls.
stress: build
	scripts/stress.sh $(LIB)

install: build install-only

# Installs what is built, without building (LIB= names another build).
install-only:
	install -D -m 755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libqnxcompat.so
	install -D -m 755 $(dir $(LIB))qnxcompat $(DESTDIR)$(PREFIX)/bin/qnxcompat
	mkdir -p $(DESTDIR)$(PREFIX)/share/man/man1
	$(dir $(LIB))qnxcompat man >$(DESTDIR)$(PREFIX)/share/man/man1/qnxcompat.1
	mkdir -p $(DESTDIR)$(PREFIX)/include/qnxcompat
	cp -R shim/include/. $(DESTDIR)$(PREFIX)/include/qnxcompat/
	mkdir -p $(DESTDIR)$(PREFIX)/lib/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)|g' \
	    qnxcompat.pc.in >$(DESTDIR)$(PREFIX)/lib/pkgconfig/qnxcompat.pc

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/,$(INSTALLED))
	rm -rf $(DESTDIR)$(PREFIX)/include/qnxcompat
	-rmdir -p $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/bin 2>/dev/null

lint:
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

clean:
	cargo clean
