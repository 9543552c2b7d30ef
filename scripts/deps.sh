#!/usr/bin/env bash
# Installs what building and testing qnxcompat needs on a fresh Debian
# machine: a C and a C++ compiler (and glibc's static libc, for the static test peer),
# make, python3, perl, sqlite3, strace, pkg-config, util-linux's flock(1) and lslocks(8),
# and a Rust toolchain new enough for edition 2024 (rustup when cargo is
# missing).
# Does nothing when everything is already there.
set -euo pipefail

need=()
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v c++ >/dev/null || need+=(g++) # the overlay headers are checked as C++ too
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
command -v flock >/dev/null || need+=(util-linux)
command -v lslocks >/dev/null || need+=(util-linux)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -e /usr/lib/libc.a ] || need+=(libc6-dev)
command -v perl >/dev/null || need+=(perl)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v strace >/dev/null || need+=(strace)
command -v readelf >/dev/null || need+=(binutils)
command -v pkg-config >/dev/null || need+=(pkg-config) # the install test builds with qnxcompat.pc
command -v curl >/dev/null || command -v cargo >/dev/null || need+=(curl ca-certificates)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ${#need[@]} -gt 0 ]; then
    echo "deps: installing ${need[*]}" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
    echo "deps: installing the Rust toolchain with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    echo "deps: add \$HOME/.cargo/bin to PATH (or open a new shell)" >&2
fi

# Cargo.toml's rust-version: an older toolchain (Debian's packaged rustc, for
# one) cannot build edition 2024 with let-chains; say so, and update a
# rustup toolchain.
want=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml")
if [ -n "$want" ] && command -v rustc >/dev/null; then
    have=$(rustc --version | awk '{print $2}')
    if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
        if command -v rustup >/dev/null; then
            echo "deps: rustc $have is older than $want (Cargo.toml rust-version): rustup update stable" >&2
            rustup update stable
        else
            echo "deps: rustc $have is older than $want (Cargo.toml rust-version); install a newer toolchain with rustup (https://rustup.rs)" >&2
            exit 1
        fi
    fi
fi
