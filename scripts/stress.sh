#!/usr/bin/env bash
# The long reliability runs (`make stress`): t_torture (1,000 kills),
# t_oracle (16 workers x 10,000 operations) and t_fuzz (>= 1,000,000 calls)
# with QTEST_LONG=1, under the shim.
#
# usage: scripts/stress.sh LIBPATH [t_name ...]
#
#   LIBPATH   the shim, e.g. target/release/libqnxcompat.so
#   t_name    tests to run (default: t_torture t_oracle t_fuzz)
#
# tests/c/run.sh passes QTEST_LONG through but bounds every run with
# `timeout 120`, too short for the long versions, so this script builds and
# runs the programs itself, the way run.sh does: the same compiler flags,
# target/ctests/, QTEST_MODE, LD_PRELOAD and a private QNXCOMPAT_REGISTRY
# (removed afterwards), with the caller's QNXCOMPAT* settings cleared.
#
# Environment:
#   QTEST_RUNS="shim" (default) or "native shim" to add native runs
#   STRESS_TIMEOUT=<seconds> per run (default 1800)
#   QTEST_SEED=<n> is passed on, to repeat a run's random choices
#
# Each run prints its figures (the "torture:", "oracle:", "fuzz:" lines) and
# its verdict; a run passes when it exits 0 and its last summary line says
# "N passed, 0 failed".  The last line is the total over all runs; the exit
# status is non-zero if anything failed.
set -u -o pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 LIBPATH [t_name ...]" >&2
    exit 2
fi

LIB=$1
shift
case $LIB in
/*) ;;
*) LIB=$PWD/$LIB ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || exit 2
cd "$ROOT" || exit 2

RUNS=${QTEST_RUNS:-shim}
TIMEOUT=${STRESS_TIMEOUT:-1800}
case " $RUNS " in
*" shim "*)
    if [ ! -f "$LIB" ]; then
        echo "stress.sh: library $LIB not found" >&2
        exit 2
    fi
    ;;
esac

unset QNXCOMPAT QNXCOMPAT_TRACE QNXCOMPAT_TRACE_FILE QNXCOMPAT_REGISTRY \
    QNXCOMPAT_REGISTRY_GROUP QNXCOMPAT_FAULT LD_PRELOAD
export QTEST_LONG=1

OUT=target/ctests
mkdir -p "$OUT" || exit 2
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/qtest-stress.XXXXXX") || exit 2
child=""
cleanup() {
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    rm -rf "$LOGDIR"
    rm -f /dev/shm/qnxcompat-stress-$$-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run a command in the background and wait for it, so that INT/TERM reach
# this script (and, through cleanup, the command) at once.
run_child() {
    "$@" &
    child=$!
    wait "$child"
    local rc=$?
    child=""
    return $rc
}

CFLAGS=(-O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -I shim/include)

if [ $# -gt 0 ]; then
    TESTS=("$@")
else
    TESTS=(t_torture t_oracle t_fuzz)
fi

total_pass=0
total_fail=0
bad_runs=0

for name in "${TESTS[@]}"; do
    name=$(basename "$name" .c)
    src=tests/c/$name.c
    bin=$OUT/$name
    if [ ! -f "$src" ]; then
        echo "FAIL $name (no such test $src)"
        total_fail=$((total_fail + 1))
        bad_runs=$((bad_runs + 1))
        continue
    fi
    if ! cc "${CFLAGS[@]}" -o "$bin" "$src" >"$LOGDIR/$name.cc.log" 2>&1; then
        echo "FAIL $name (compile)"
        sed 's/^/    /' "$LOGDIR/$name.cc.log"
        total_fail=$((total_fail + 1))
        bad_runs=$((bad_runs + 1))
        continue
    fi
    for mode in $RUNS; do
        log=$LOGDIR/$name.$mode.log
        start=$(date +%s)
        case $mode in
        native)
            QTEST_MODE=native run_child timeout "$TIMEOUT" "$bin" >"$log" 2>&1
            ;;
        shim)
            QTEST_MODE=shim run_child timeout "$TIMEOUT" env LD_PRELOAD="$LIB" \
                QNXCOMPAT_REGISTRY="qnxcompat-stress-$$-$name" "$bin" >"$log" 2>&1
            ;;
        *)
            echo "stress.sh: unknown run mode '$mode' in QTEST_RUNS" >&2
            exit 2
            ;;
        esac
        rc=$?
        secs=$(($(date +%s) - start))
        summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
        why=""
        if [ -z "$summary" ]; then
            p=0
            f=1
            why="no summary line"
        else
            p=${summary%% passed*}
            f=${summary#*, }
            f=${f%% failed}
        fi
        if [ "$rc" -eq 124 ]; then
            why="timed out after ${TIMEOUT} s"
        elif [ "$rc" -gt 128 ]; then
            why="killed by signal $((rc - 128))"
        elif [ "$rc" -ne 0 ] && [ -z "$why" ] && [ "$f" -eq 0 ]; then
            why="exit status $rc"
        fi
        if [ -n "$why" ] && [ "$f" -eq 0 ]; then
            f=1
        fi
        total_pass=$((total_pass + p))
        total_fail=$((total_fail + f))
        if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ] && [ -z "$why" ]; then
            echo "PASS $name [$mode] ($p passed, ${secs} s)"
            grep -E '^(torture|oracle|fuzz): ' "$log" | sed 's/^/    /'
        else
            bad_runs=$((bad_runs + 1))
            echo "FAIL $name [$mode] ($p passed, $f failed${why:+, $why}, ${secs} s)"
            sed 's/^/    /' "$log"
        fi
    done
done

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ] && [ "$bad_runs" -eq 0 ]
