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
# The runs are tests/c/run.sh's (the same build, QTEST_MODE, LD_PRELOAD,
# private QNXCOMPAT_REGISTRY removed afterwards, caller's QNXCOMPAT*
# settings cleared, INT/TERM passed on to the test), with a longer timeout,
# by default only under the shim, and with each passing run's figures (the
# "torture:", "oracle:", "fuzz:" lines) shown under its PASS line.
#
# Environment:
#   QTEST_RUNS="shim" (default) or "native shim" to add native runs
#   STRESS_TIMEOUT=<seconds> per run (default 1800)
#   QTEST_SEED=<n> is passed on, to repeat a run's random choices
#
# A run passes when it exits 0 and its last summary line says "N passed,
# 0 failed".  The last line is the total over all runs; the exit status is
# non-zero if anything failed.
set -u

if [ $# -lt 1 ]; then
    echo "usage: $0 LIBPATH [t_name ...]" >&2
    exit 2
fi
LIB=$1
shift
[ $# -gt 0 ] || set -- t_torture t_oracle t_fuzz

export QTEST_LONG=1
export QTEST_TIMEOUT=${STRESS_TIMEOUT:-1800}
export QTEST_RUNS=${QTEST_RUNS:-shim}
export QTEST_SHOW='^(torture|oracle|fuzz): '
exec "$(dirname "${BASH_SOURCE[0]}")/../tests/c/run.sh" "$LIB" "$@"
