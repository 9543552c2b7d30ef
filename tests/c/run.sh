#!/usr/bin/env bash
# Build and run the C tests natively and under the shim.
#
# usage: tests/c/run.sh LIBPATH [t_name ...]
#
#   LIBPATH   the shim, e.g. target/release/libqnxcompat.so
#   t_name    tests to run (default: every tests/c/t_*.c, plus programs.sh,
#             and command.sh: the qnxcompat command and make install, once)
#
# Each test is compiled into target/ctests/ and run twice, each run under
# `timeout $QTEST_TIMEOUT` (120 s), and the tests in MIRROR_OFF_TESTS below
# a third time:
#   native:      QTEST_MODE=native
#   shim:        QTEST_MODE=shim LD_PRELOAD=LIB QNXCOMPAT_REGISTRY=qnxcompat-test-$$-NAME
#                (and QNXCOMPAT_VERIFY=1 for the tests in VERIFY_TESTS below)
#   mirror-off:  as shim, with QNXCOMPAT_MIRROR=off (the library's kernel
#                mirror off: its locks live in the registry only) and the
#                registry qnxcompat-test-$$-NAME-mo
# programs.sh runs natively (`programs.sh none`: its kernel mirror checks
# without a library), under the shim and with the mirror off.
# A run passes when it exits 0 and its last summary line says "N passed,
# 0 failed"; its PASS/FAIL line gives the count and the seconds it took.  The
# last line printed is the total "N passed, N failed" over all checks; the
# exit status is non-zero if anything failed.
#
# Environment:
#   QTEST_RUNS="native shim mirror-off" (default) selects the runs, e.g.
#       QTEST_RUNS=native to check the native expectations without a library
#   QTEST_TIMEOUT=<seconds> per run (default 120)
#   QTEST_SHOW=<regex>: lines of a passing run's output that match it (grep
#       -E) are shown under its PASS line (scripts/stress.sh: the figures)
#   QTEST_LONG, QTEST_SEED are passed on to the tests
# LD_PRELOAD and every QNXCOMPAT* variable are cleared so that results do not
# depend on the caller's environment.  scripts/stress.sh runs the long
# versions through this script.
set -u -o pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 LIBPATH [t_name ...]" >&2
    exit 2
fi

# absolute (the script changes directory), symbolic links kept
LIB=$(realpath -sm -- "$1") || exit 2
shift

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd) || exit 2
cd "$ROOT" || exit 2

RUNS=${QTEST_RUNS:-native shim mirror-off}
case " $RUNS " in
*" shim "* | *" mirror-off "*)
    if [ ! -f "$LIB" ]; then
        echo "run.sh: library $LIB not found (set QTEST_RUNS=native to skip shim runs)" >&2
        exit 2
    fi
    ;;
esac

TIMEOUT=${QTEST_TIMEOUT:-120}
SHOW=${QTEST_SHOW:-}

for v in $(compgen -e); do
    case $v in
    QNXCOMPAT*) unset "$v" ;;
    esac
done
unset LD_PRELOAD

OUT=target/ctests
mkdir -p "$OUT" || exit 2
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/qtest-logs.XXXXXX") || exit 2
child=""
cleanup() {
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    rm -rf "$LOGDIR"
    rm -f /dev/shm/qnxcompat-test-$$-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run LOG CMD...: run CMD (under the timeout) with its output in LOG, in the
# background, so that INT/TERM reach this script (and, through cleanup, the
# test) at once.  Sets secs to the time it took; returns its exit status.
run() {
    local log=$1 start rc
    shift
    start=$(date +%s)
    timeout "$TIMEOUT" "$@" >"$log" 2>&1 &
    child=$!
    wait "$child"
    rc=$?
    child=""
    secs=$(($(date +%s) - start))
    return $rc
}

CFLAGS=(-O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -I shim/include)

# The static peer of the t_mirror* tests (a process the dynamic loader never
# preloads; see qtest_peer_main in qtest.h), next to the tests, which find it
# there.  A test without it skips its static-peer checks, so a failed build
# counts as a failure here.
PEER_STATIC_FAILED=0
if ! cc -static -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -I shim/include \
    -o "$OUT/peer_static" tests/c/peer_static.c >"$LOGDIR/peer_static.cc.log" 2>&1; then
    echo "FAIL peer_static (compile -static)"
    sed 's/^/    /' "$LOGDIR/peer_static.cc.log"
    rm -f "$OUT/peer_static"
    PEER_STATIC_FAILED=1
fi

# The library needs libc.so.6 (and the dynamic loader) alone: libgcc_s.so (Rust std's default
# unwinder) cost every preloaded process start about 120 us to load, so the
# build links the unwinder statically (build.rs, docs/design.md).
if [ "$LIB" != none ] && [ -e "$LIB" ]; then
    needed=$(readelf -d "$LIB" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
    if [ -n "$needed" ] && [ -z "$(echo "$needed" | tr ' ' '\n' | grep -v -x -e 'libc.so.6' -e 'ld-linux-x86-64.so.2' -e '')" ]; then
        echo "PASS library: needs $needed(1 passed)"
        PEER_STATIC_PASSED=1
    else
        echo "FAIL library: needs ${needed:-nothing readelf could read}, want libc.so.6 and ld.so alone"
        PEER_STATIC_FAILED=$((PEER_STATIC_FAILED + 1))
    fi
    # It has a SONAME, and run as a program it prints its version and a
    # usage line and exits 0 (as libc.so.6 does), instead of crashing.
    soname=$(readelf -d "$LIB" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    banner=$("$LIB" 2>&1)
    brc=$?
    if [ "$soname" = libqnxcompat.so ] && [ $brc -eq 0 ] &&
        printf '%s\n' "$banner" | head -n1 | grep -q '^libqnxcompat [0-9]' &&
        printf '%s\n' "$banner" | grep -q '^Usage: LD_PRELOAD='; then
        echo "PASS library: SONAME $soname; run as a program: $(printf '%s\n' "$banner" | head -n1 | cut -d: -f1) (1 passed)"
        PEER_STATIC_PASSED=$((${PEER_STATIC_PASSED:-0} + 1))
    else
        echo "FAIL library: SONAME '${soname}', run as a program: exit $brc, output: $banner"
        PEER_STATIC_FAILED=$((PEER_STATIC_FAILED + 1))
    fi
fi

# Shim runs of the tests in VERIFY_TESTS set QNXCOMPAT_VERIFY=1: the library
# checks every registry invariant after each operation and aborts
# ("qnxcompat: registry invariant broken: ...") if one breaks.  Their PASS
# lines say "invariants checked".  The other tests run without it, on purpose:
#   t_hostile, t_registry  plant and scribble on broken segments (the broken
#                          invariant is the test) and fill the registry to
#                          capacity (a check of a full registry after every
#                          call takes t_registry from ~1 s to over 60 s)
#   t_torture              stops holders inside updates (QNXCOMPAT_FAULT) and
#                          SIGKILLs them mid-update: the registry is broken
#                          until the next user repairs it
#   t_fuzz, t_oracle       fill the registry with random traffic and are
#                          timing-heavy; they call qnxcompat_verify() themselves
#   t_mlock, t_group,      timing-heavy, or about other things than the lock
#   t_trace                tables (mlock rules, segment permissions, trace text)
#   t_scale                100,000 files and 1,000,000 lock records: a check of
#                          the whole registry after every call is quadratic
#   t_attach_grow          a race, caught by numbers: 4,000,000 lock records
#                          over 1,000 fresh registries; a check after each
#                          call would slow the growth it races against
VERIFY_TESTS=(
    t_setlk_getlk t_split_merge t_lockf t_blocking t_close_release
    t_fork_exec_threads t_errors t_flock t_flock_share t_ofd t_deadlock
    t_mmap_lockf t_pidns t_mainexit t_exec_nolib t_slot_reuse t_idle_token
    t_failclosed t_signal_steps t_repair_shared t_cancel_threads t_intercept
    t_mirror t_mirror_peer t_mirror_clone t_handoff t_iofunc
)

# Tests of the library's own C API (QNX's iofunc_* resource-manager lock
# functions): built with -lqnxcompat against LIB (found through an rpath), as
# a ported resource manager links.  There is no native run: their "native"
# run is the linked program without LD_PRELOAD (label "linked"); the shim
# run adds LD_PRELOAD as usual.
LINKED_TESTS=(t_iofunc)

# listed NAME WORD...: NAME is one of the WORDs
listed() {
    local t name=$1
    shift
    for t in "$@"; do
        [ "$t" = "$name" ] && return 0
    done
    return 1
}

# The mirror-off runs (QNXCOMPAT_MIRROR=off): the kernel mirror tests, whose
# mirror checks are inverted or skipped then, and the tests whose
# expectations depend on whether the kernel sees the library's locks, or
# that cover the lock calls the mirror changes most.
MIRROR_OFF_TESTS=(
    t_mirror t_mirror_peer t_mirror_clone t_registry t_group t_hostile
    t_setlk_getlk t_lockf t_blocking t_close_release t_flock t_ofd
    t_exec_nolib t_idle_token t_unlock_reserve t_exit_wakes t_scale
    t_waiters_10k t_mlockall_limit t_handoff t_attach_grow programs
)

if [ $# -gt 0 ]; then
    TESTS=("$@")
else
    TESTS=()
    for src in tests/c/t_*.c; do
        TESTS+=("$(basename "$src" .c)")
    done
    TESTS+=(programs command)
fi

total_pass=${PEER_STATIC_PASSED:-0}
total_fail=$PEER_STATIC_FAILED
bad_runs=$PEER_STATIC_FAILED

# record NAME MODE RC LOG: judge one run from its exit status and summary
# (and $secs, set by run).  MODE is what the PASS/FAIL line shows in
# brackets, e.g. "shim".
record() {
    local name=$1 mode=$2 rc=$3 log=$4 summary p f why=""
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -z "$summary" ]; then
        why="no summary line"
        p=0
        f=1
    else
        p=${summary%% passed*}
        f=${summary#*, }
        f=${f%% failed}
    fi
    if [ "$rc" -eq 124 ]; then
        why="timed out after $TIMEOUT s"
    elif [ "$rc" -gt 128 ]; then
        why="killed by signal $((rc - 128))"
    elif [ "$rc" -ne 0 ] && [ -z "$why" ] && [ "$f" -eq 0 ]; then
        why="exit status $rc"
    fi
    if [ -n "$why" ] && [ "$f" -eq 0 ]; then
        f=1 # count a crash / timeout / missing summary as one failure
    fi
    if [ -z "$why" ] && [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        # No check at all: a skip that says why (qtest_skip), or a failure.
        skip=$(sed -n 's/^qtest: skipped: //p' "$log" | head -n 1)
        if [ -n "$skip" ]; then
            echo "SKIP $name [$mode] ($skip)"
            return
        fi
        why="no checks made"
        f=1
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ] && [ -z "$why" ]; then
        echo "PASS $name [$mode] ($p passed, $secs s)"
        if [ -n "$SHOW" ]; then
            grep -E -e "$SHOW" "$log" | sed 's/^/    /'
        fi
    else
        bad_runs=$((bad_runs + 1))
        echo "FAIL $name [$mode] ($p passed, $f failed${why:+, $why}, $secs s)"
        sed 's/^/    /' "$log"
    fi
}

for name in "${TESTS[@]}"; do
    name=$(basename "$name" .c)
    if [ "$name" = programs ]; then
        for mode in $RUNS; do
            log=$LOGDIR/$name.$mode.log
            case $mode in
            native) run "$log" bash tests/c/programs.sh none ;;
            shim) run "$log" bash tests/c/programs.sh "$LIB" "qnxcompat-test-$$-$name" ;;
            mirror-off)
                run "$log" env QNXCOMPAT_MIRROR=off bash tests/c/programs.sh "$LIB" \
                    "qnxcompat-test-$$-$name-mo"
                ;;
            *) continue ;;
            esac
            record "$name" "$mode" $? "$log"
        done
        continue
    fi
    if [ "$name" = command ]; then
        # The qnxcompat command and make install: once, with the library.
        if [ "$LIB" != none ] && listed shim $RUNS; then
            log=$LOGDIR/$name.shim.log
            run "$log" bash tests/c/command.sh "$LIB"
            record "$name" shim $? "$log"
        fi
        continue
    fi
    src=tests/c/$name.c
    bin=$OUT/$name
    if [ ! -f "$src" ]; then
        echo "FAIL $name (no such test $src)"
        total_fail=$((total_fail + 1))
        bad_runs=$((bad_runs + 1))
        continue
    fi
    link=()
    if listed "$name" "${LINKED_TESTS[@]}"; then
        if [ "$LIB" = none ] || [ ! -f "$LIB" ]; then
            echo "FAIL $name (needs the library to link against; got $LIB)"
            total_fail=$((total_fail + 1))
            bad_runs=$((bad_runs + 1))
            continue
        fi
        libdir=$(dirname "$LIB")
        link=(-L"$libdir" -lqnxcompat -Wl,-rpath,"$libdir")
    fi
    if ! cc "${CFLAGS[@]}" -o "$bin" "$src" "${link[@]}" >"$LOGDIR/$name.cc.log" 2>&1; then
        echo "FAIL $name (compile)"
        sed 's/^/    /' "$LOGDIR/$name.cc.log"
        total_fail=$((total_fail + 1))
        bad_runs=$((bad_runs + 1))
        continue
    fi
    if [ ${#link[@]} -gt 0 ] && [ -f "tests/c/h_${name#t_}_custom.c" ]; then
        # The overlay headers it uses, with a program's own OCB and attribute
        # types (tests/c/h_*_custom.c), compile without a warning as strict
        # ISO C11 and as C++ (ported resource managers are often C++).
        hsrc=tests/c/h_${name#t_}_custom.c
        hlog=$LOGDIR/$name.headers.log
        if cc -std=c11 -pedantic -Wall -Wextra -Werror -I shim/include -c -o /dev/null "$hsrc" >"$hlog" 2>&1 &&
            c++ -std=c++17 -pedantic -Wall -Wextra -Werror -D_GNU_SOURCE -I shim/include -x c++ \
                -c -o /dev/null "$hsrc" >>"$hlog" 2>&1; then
            echo "PASS $name headers [C11 -pedantic, C++17] (2 passed)"
            total_pass=$((total_pass + 2))
        else
            echo "FAIL $name headers [C11 -pedantic, C++17]"
            sed 's/^/    /' "$hlog"
            total_fail=$((total_fail + 1))
            bad_runs=$((bad_runs + 1))
        fi
    fi
    for mode in $RUNS; do
        log=$LOGDIR/$name.$mode.log
        label=$mode
        case $mode in
        native)
            if [ ${#link[@]} -gt 0 ]; then
                label="linked"
                QTEST_MODE=native run "$log" env QNXCOMPAT_REGISTRY="qnxcompat-test-$$-$name-ln" "$bin"
            else
                QTEST_MODE=native run "$log" "$bin"
            fi
            ;;
        shim)
            verify=0
            if listed "$name" "${VERIFY_TESTS[@]}"; then
                verify=1
                label="shim, invariants checked"
            fi
            QTEST_MODE=shim run "$log" env LD_PRELOAD="$LIB" QNXCOMPAT_VERIFY=$verify \
                QNXCOMPAT_REGISTRY="qnxcompat-test-$$-$name" "$bin"
            ;;
        mirror-off)
            listed "$name" "${MIRROR_OFF_TESTS[@]}" || continue
            verify=0
            label="shim, mirror off"
            if listed "$name" "${VERIFY_TESTS[@]}"; then
                verify=1
                label="shim, mirror off, invariants checked"
            fi
            QTEST_MODE=shim run "$log" env LD_PRELOAD="$LIB" QNXCOMPAT_VERIFY=$verify \
                QNXCOMPAT_MIRROR=off QNXCOMPAT_REGISTRY="qnxcompat-test-$$-$name-mo" "$bin"
            ;;
        *)
            echo "run.sh: unknown run mode '$mode' in QTEST_RUNS" >&2
            exit 2
            ;;
        esac
        record "$name" "$label" $? "$log"
    done
done

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ] && [ "$bad_runs" -eq 0 ]
