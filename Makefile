# qnxcompat: `make` builds target/release/libqnxcompat.so.
LIB      := target/release/libqnxcompat.so
CC       ?= cc
CFLAGS   := -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -I shim/include
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all build deps test demo bench stress lint clean

all: build

deps:
	@scripts/deps.sh

build: deps
	cargo build --release

# Every test: the Rust unit and property tests, then every C test in
# tests/c/ natively and under LD_PRELOAD.
test: build
	cargo test --release
	tests/c/run.sh $(LIB)

# A QNX-style program run under the library with tracing on.
demo: build
	@mkdir -p target
	$(CC) $(CFLAGS) -o target/demo examples/demo.c
	QNXCOMPAT_TRACE=1 QNXCOMPAT_REGISTRY=qnxcompat-demo-$$$$ LD_PRELOAD=$(CURDIR)/$(LIB) target/demo; \
	  status=$$?; rm -f /dev/shm/qnxcompat-demo-*; exit $$status

# Benchmarks (never part of `make test`): the engine in-process with
# criterion, then every scenario natively and under the library side by side.
bench: build
	cargo bench --features bench --bench engine -- --warm-up-time 1 --measurement-time 3
	bench/run.sh $(LIB)

# The long reliability runs: 1,000 kills, 16 x 10,000 oracle operations,
# >= 1,000,000 fuzzed calls.
stress: build
	scripts/stress.sh $(LIB)

lint:
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

clean:
	cargo clean
