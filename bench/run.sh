#!/usr/bin/env bash
# Benchmark libqnxcompat against native Linux locking, side by side.
#
# usage: bench/run.sh LIBPATH [scenario ...]
#
#   LIBPATH    the shim, e.g. target/release/libqnxcompat.so
#   scenario   a subset to run (default: all): s1 s2_1000 s2_10000 s2_100000
#              s3 s4 s5 s6 s7 s8 s9 s10 s11 s12 s13 s14 s15
#
# Builds bench/bench.c (cc -O2 -pthread) into a temporary directory, copies
# LIBPATH there (so a rebuild during the run cannot change the library under
# test), and runs every scenario twice, each in its own process under
# `timeout`:
#   native:  bench --native DIR SCENARIO
#   shim:    LD_PRELOAD=LIB QNXCOMPAT_REGISTRY=qnxcompat-bench-$$ bench --shim DIR SCENARIO
# then prints a Markdown report on stdout: the machine, one table with the
# native and shim medians, the ratio, the target and PASS/MISS, the registry
# memory, any problem (crash, hang, wrong result) and the raw driver output.
# Progress goes to stderr.
#
# Environment:
#   BENCH_REPS=11       timed measurements per result (the median is reported)
#   BENCH_WARMUP=2      untimed runs before them
#   BENCH_TARGET_MS=100 length of one measurement (iteration counts are
#                       calibrated to it; scenario 6 uses it as its window)
#   BENCH_TIMEOUT=240   seconds allowed for one scenario in one mode
#   BENCH_RAW=1         0 to leave the raw driver output out of the report
#
# Exit status: 0 when every scenario ran and gave a correct result in both
# modes (a MISS is not a failure); 1 when one crashed, hung or misbehaved;
# 2 on a usage or build error. Timing thresholds live here only, never in
# `make test`.
set -u -o pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 LIBPATH [scenario ...]" >&2
    exit 2
fi
# absolute (the script changes directory), symbolic links kept
LIB=$(realpath -sm -- "$1") || exit 2
shift
if [ ! -f "$LIB" ]; then
    echo "run.sh: library $LIB not found (build it: cargo build --release)" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || exit 2
ALL=(s2_100000 s2_10000 s2_1000 s1 s3 s4 s5 s6 s7 s8 s9 s10 s11 s12 s13 s14 s15)
if [ $# -gt 0 ]; then
    SCEN=("$@")
else
    SCEN=("${ALL[@]}")
fi
TIMEOUT=${BENCH_TIMEOUT:-240}
export BENCH_REPS=${BENCH_REPS:-11} BENCH_WARMUP=${BENCH_WARMUP:-2} BENCH_TARGET_MS=${BENCH_TARGET_MS:-100}

unset QNXCOMPAT QNXCOMPAT_TRACE QNXCOMPAT_TRACE_FILE QNXCOMPAT_REGISTRY LD_PRELOAD

REG=qnxcompat-bench-$$
TMP=$(mktemp -d "${TMPDIR:-/tmp}/qnxcompat-bench.XXXXXX") || exit 2
cleanup() {
    rm -rf "$TMP"
    rm -f "/dev/shm/$REG" "/dev/shm/$REG-off"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$TMP/lib" "$TMP/files" "$TMP/out" || exit 2
if ! cc -O2 -pthread -Wall -Wextra -o "$TMP/bench" "$ROOT/bench/bench.c" 2>"$TMP/cc.log"; then
    echo "run.sh: cannot build bench/bench.c:" >&2
    cat "$TMP/cc.log" >&2
    exit 2
fi
cp "$LIB" "$TMP/lib/libqnxcompat.so" || exit 2
SHIMLIB=$TMP/lib/libqnxcompat.so
# Identify the library under test now, before anyone can rebuild it.
libtime=$(date -u -r "$LIB" '+%Y-%m-%d %H:%M:%S UTC')
libsum=$(sha256sum "$SHIMLIB" | cut -c1-16)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit (with uncommitted changes)"
fi

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
: >"$TMP/all.txt"
: >"$TMP/problems.txt"
# Scenarios also run with the kernel mirror off (QNXCOMPAT_MIRROR=off, on a
# registry of their own: one registry has one mode).
MIRROR_OFF=" s1 s2_10000 s3 s4 s8 s14 s15 "
for s in "${SCEN[@]}"; do
    modes="native shim"
    case "$MIRROR_OFF" in *" $s "*) modes="native shim shimoff" ;; esac
    for mode in $modes; do
        out=$TMP/out/$mode.$s
        t0=$(date +%s.%N)
        if [ "$mode" = native ]; then
            timeout -k 10 "$TIMEOUT" "$TMP/bench" --native "$TMP/files" "$s" >"$out" 2>&1
        elif [ "$mode" = shimoff ]; then
            timeout -k 10 "$TIMEOUT" env LD_PRELOAD="$SHIMLIB" QNXCOMPAT_REGISTRY="$REG-off" QNXCOMPAT_MIRROR=off \
                "$TMP/bench" --shim "$TMP/files" "$s" >"$out" 2>&1
        else
            timeout -k 10 "$TIMEOUT" env LD_PRELOAD="$SHIMLIB" QNXCOMPAT_REGISTRY="$REG" \
                "$TMP/bench" --shim "$TMP/files" "$s" >"$out" 2>&1
        fi
        rc=$?
        t1=$(date +%s.%N)
        awk -v s="$s" -v m="$mode" -v a="$t0" -v b="$t1" -v rc="$rc" \
            'BEGIN { printf "bench: %-10s %-6s %6.1fs rc=%d\n", s, m, b - a, rc }' >&2
        sed "s/^/$mode /" "$out" >>"$TMP/all.txt"
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            echo "$s [$mode]: TIMEOUT: no result after ${TIMEOUT}s (hang)" >>"$TMP/problems.txt"
        elif [ "$rc" -gt 128 ]; then
            echo "$s [$mode]: CRASH: killed by signal $((rc - 128))" >>"$TMP/problems.txt"
        elif [ "$rc" -ne 0 ] && ! grep -q '^ERROR' "$out"; then
            echo "$s [$mode]: exit status $rc" >>"$TMP/problems.txt"
        fi
        grep '^ERROR' "$out" | sed "s/^ERROR /$s [$mode]: /" >>"$TMP/problems.txt"
        # Anything the driver printed that is not one of its own lines
        # (a message from the library, a libc abort, ...).
        grep -v -E '^(RESULT|DETAIL|ERROR) ' "$out" | sed "s/^/$s [$mode]: output: /" >>"$TMP/problems.txt"
    done
done
END=$(date +%s)
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$((END - START))

# ---------------------------------------------------------------- report
cpu=$(grep -m1 -E '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//')
[ -n "$cpu" ] || cpu=$(grep -m1 -E '^(Hardware|cpu model|Processor)' /proc/cpuinfo | sed 's/^[^:]*: *//')
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null || ldd --version 2>/dev/null | head -n 1)
recsize=$(grep -o 'size_of::<LockRecord>() == [0-9]*' "$ROOT/src/registry/layout.rs" 2>/dev/null | grep -o '[0-9]*$' | head -n 1)

echo "# qnxcompat benchmark"
echo
echo "| | |"
echo "|---|---|"
echo "| date | $(date -u '+%Y-%m-%d %H:%M:%S UTC') |"
echo "| machine | $(nproc) CPUs (nproc), ${cpu:-unknown CPU} |"
echo "| kernel | $(uname -srm) |"
echo "| glibc | $glibc |"
echo "| compiler | $(cc --version | head -n 1) (-O2 -pthread) |"
echo "| library | ${LIB#"$ROOT"/} (built $libtime, sha256 $libsum…), commit $commit |"
echo "| method | per result: calibrate to ~${BENCH_TARGET_MS} ms per measurement, ${BENCH_WARMUP} warm-up runs, median of ${BENCH_REPS} measurements (CLOCK_MONOTONIC) |"
echo "| load average (1/5/15 min) | $LOAD0 before, $LOAD1 after (other work on the machine skews the numbers) |"
echo "| total runtime | ${ELAPSED} s |"
echo

awk -v recsize="${recsize:-}" -F' ' '
function fmt_t(ns,   a) {
    a = ns < 0 ? -ns : ns
    if (a < 10000) return sprintf("%.0f ns", ns)
    if (a < 1000000) return sprintf("%.1f µs", ns / 1e3)
    return sprintf("%.2f ms", ns / 1e6)
}
function fmt_d(ns) { return (ns >= 0 ? "+" : "−") fmt_t(ns < 0 ? -ns : ns) }
function fmt_r(r) {
    if (r >= 1e6) return sprintf("%.2f M/s", r / 1e6)
    if (r >= 1e3) return sprintf("%.1f k/s", r / 1e3)
    return sprintf("%.0f /s", r)
}
function fmt_ratio(x) {
    if (x >= 0.1) return sprintf("%.2f", x)
    return sprintf("%.2g", x)
}
$2 == "RESULT" { val[$1, $3] = $4; have[$1, $3] = 1 }
END {
    # id | label | kind (t: time per op, r: rate) | target kind | target value
    n = 0
    row[++n] = "s1|1. fcntl F_SETLK write lock + unlock, [0,10), kernel mirror on|t|ratio|1.3"
    row[++n] = "s1~off|1. … kernel mirror off (QNXCOMPAT_MIRROR=off)|t|ratio|0.2"
    row[++n] = "s2_1000|2. same pair, owner holds 1,000 other ranges|t|none|"
    row[++n] = "s2_10000|2. same pair, owner holds 10,000 other ranges, mirror on|t|ratio|1.2"
    row[++n] = "s2_10000~off|2. … mirror off|t|ratio|0.01"
    row[++n] = "s2_100000|2. same pair, owner holds 100,000 other ranges|t|none|"
    row[++n] = "s3|3. lockf F_TLOCK + F_ULOCK, size 10|t|ratio|1.0"
    row[++n] = "s3~off|3. … mirror off|t|none|"
    row[++n] = "s4|4. flock LOCK_EX + LOCK_UN|t|ratio|1.0"
    row[++n] = "s4~off|4. … mirror off|t|none|"
    row[++n] = "s5|5. contended F_SETLKW hand-off, 2 processes on 2 CPUs (round trips/s)|r|ratio|1.0"
    row[++n] = "s5_1cpu|5. … both processes pinned to one CPU (round trips/s)|r|none|"
    row[++n] = "s6_p1|6. disjoint ranges, one file: 1 process (lock+unlock pairs/s, total)|r|none|"
    row[++n] = "s6_p2|6. … 2 processes|r|none|"
    row[++n] = "s6_p4|6. … 4 processes|r|none|"
    row[++n] = "s6_p8|6. … 8 processes|r|scale|0.5"
    row[++n] = "s7_close_extra|7. close() of an fd without locks: time above a raw SYS_close (A/B in one process, fd from raw SYS_dup)|d|delta|20"
    row[++n] = "s7_dupclose_extra|7. dup() + close() pair: time above raw SYS_dup + SYS_close (dup is hooked too)|d|delta|20"
    row[++n] = "s7_dup_close|7. dup() + close() pair, absolute|t|none|"
    row[++n] = "s7_open_close|7. open() + close() of a regular file, absolute|t|none|"
    row[++n] = "s8|8. dup; F_SETLK [0,10); close(dup) releases the lock|t|ratio|1.0"
    row[++n] = "s8~off|8. … mirror off|t|none|"
    row[++n] = "s9|9. deadlock check, 64-process chain: native = F_SETLK→EAGAIN (reference, Linux cannot detect it), shim = F_SETLKW→EDEADLK|t|abs|10000"
    row[++n] = "s9_setlk|9. F_SETLK→EAGAIN against the same chain|t|none|"
    row[++n] = "s10|10. fork + execve /bin/true + waitpid, per process|t|delta|50000"
    row[++n] = "s11|11. mmap + munmap, 4 KiB MAP_SHARED file|t|ratio|1.2"
    row[++n] = "s12_none|12. F_GETLK [0,10) by a process that holds nothing, one other owner holding [100,110)|t|none|"
    row[++n] = "s12_1000|12. … with 1,000 live process owners (each its own lock)|t|owners|1.1"
    row[++n] = "s13_p1|13. disjoint files, one each: 1 process (lock+unlock pairs/s, total)|r|none|"
    row[++n] = "s13_p2|13. … 2 processes|r|none|"
    row[++n] = "s13_p4|13. … 4 processes|r|nodrop|s13_p2"
    row[++n] = "s13_p8|13. … 8 processes|r|nodrop|s13_p4"
    row[++n] = "s13_p16|13. … 16 processes|r|nodrop|s13_p8"
    row[++n] = "s14|14. close() releasing 20,000 records that sit behind 20,000 records of another process|t|ratio|2.0"
    row[++n] = "s14~off|14. … mirror off|t|ratio|2.0"
    row[++n] = "s15|15. exit with locks on 100 files (20 processes wait on them, 20 on other files): FUTEX_WAKE calls by the exiting process|c|max|100"
    row[++n] = "s15~off|15. … mirror off|c|max|100"

    print "ratio = shim time ÷ native time per operation; for the throughput rows (5, 6) it is native ÷ shim"
    print "throughput, which is the same thing. Below 1 the shim is faster. Each target applies to the"
    print "column it names."
    print ""
    print "| scenario | native | shim | ratio (shim/native time) | shim − native | target | result |"
    print "|---|---:|---:|---:|---:|---|---|"
    for (i = 1; i <= n; i++) {
        split(row[i], f, "|")
        id = f[1]; label = f[2]; kind = f[3]; tk = f[4]; tv = f[5] + 0; ts = f[5]
        # "id~off": the shim column is the QNXCOMPAT_MIRROR=off run
        sm = "shim"
        if (index(id, "~off")) { sm = "shimoff"; id = substr(id, 1, index(id, "~off") - 1) }
        hn = have["native", id]; hs = have[sm, id]
        vn = val["native", id] + 0; vs = val[sm, id] + 0
        cn = hn ? (kind == "r" ? fmt_r(vn) : kind == "c" ? sprintf("%d", vn) : fmt_t(vn)) : "—"
        cs = hs ? (kind == "r" ? fmt_r(vs) : kind == "c" ? sprintf("%d", vs) : fmt_t(vs)) : "—"
        ratio = "—"; delta = "—"; target = "—"; verdict = ""; r = -1
        if (kind == "d" && hn && hs) delta = fmt_d(vs - vn)
        if (kind != "d" && kind != "c" && hn && hs && vn > 0 && vs > 0) {
            r = kind == "t" ? vs / vn : vn / vs
            ratio = fmt_ratio(r)
            if (kind == "t") delta = fmt_d(vs - vn)
        }
        if (tk == "ratio") {
            target = "ratio ≤ " ts
            if (r >= 0) verdict = (r <= tv) ? "PASS" : "MISS"
        } else if (tk == "delta") {
            target = "shim − native ≤ +" fmt_t(tv)
            if (hn && hs) verdict = (vs - vn <= tv) ? "PASS" : "MISS"
        } else if (tk == "max") {
            target = "shim ≤ " ts
            if (hs) verdict = (vs <= tv) ? "PASS" : "MISS"
        } else if (tk == "abs") {
            target = "shim ≤ " fmt_t(tv) " per check"
            if (hs) verdict = (vs <= tv) ? "PASS" : "MISS"
        } else if (tk == "nodrop") {
            # throughput past the core count: no drop against the row named
            # (within 5 percent, the noise of this shared machine)
            if (hs && have[sm, ts]) {
                sc = vs / val[sm, ts]
                target = sprintf("shim ≥ 0.95 × %s (is %.2f×)", ts, sc)
                verdict = (sc >= 0.95) ? "PASS" : "MISS"
            } else {
                target = sprintf("shim ≥ 0.95 × %s", ts)
            }
        } else if (tk == "owners") {
            # shim with 1,000 owners against the shim row with none
            if (hs && have[sm, "s12_none"]) {
                sc = vs / val[sm, "s12_none"]
                target = sprintf("shim ≤ %.1f × shim with none (is %.2f×)", tv, sc)
                verdict = (sc <= tv) ? "PASS" : "MISS"
            } else {
                target = sprintf("shim ≤ %.1f × shim with none", tv)
            }
        } else if (tk == "scale") {
            if (have["shim", "s6_p2"] && hs) {
                sc = vs / val["shim", "s6_p2"]
                target = sprintf("shim 8 proc ≥ %.1f × shim 2 proc (is %.2f×", tv, sc)
                if (have["native", "s6_p2"] && hn)
                    target = target sprintf("; native %.2f×", vn / val["native", "s6_p2"])
                target = target ")"
                verdict = (sc >= tv) ? "PASS" : "MISS"
            } else {
                target = sprintf("shim 8 proc ≥ %.1f × shim 2 proc", tv)
            }
        }
        if (tk != "none" && verdict == "") verdict = "NO RESULT"
        if (tk == "none" && !(hn && hs)) verdict = "NO RESULT"
        if (!(hn || hs)) {
            # Not run at all (a subset was asked for): leave it out.
            continue
        }
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", label, cn, cs, ratio, delta, target, verdict
    }
    print ""
    if (have["shim", "reg_resident"]) {
        print "Registry memory with 100,000 locks held (scenario 2, shim run):"
        print ""
        print "| | |"
        print "|---|---|"
        printf "| segment size (st_size) | %.0f bytes (%.2f MiB) |\n", val["shim", "reg_size"], val["shim", "reg_size"] / 1048576
        printf "| resident (st_blocks × 512) | %.0f bytes (%.2f MiB) |\n", val["shim", "reg_resident"], val["shim", "reg_resident"] / 1048576
        printf "| resident ÷ 100,000 | %.1f bytes per lock |\n", val["shim", "reg_resident"] / 100000
        printf "| resident growth while taking the 100,000 locks ÷ 100,000 | %.1f bytes per lock |\n", val["shim", "reg_bytes_per_lock"]
        if (recsize != "") printf "| LockRecord (src/registry/layout.rs) | %s bytes |\n", recsize
        print ""
    }
}' "$TMP/all.txt"

status=0
if [ -s "$TMP/problems.txt" ]; then
    status=1
    echo "## Problems"
    echo
    echo '```'
    cat "$TMP/problems.txt"
    echo '```'
    echo
else
    echo "No scenario crashed, hung or gave a wrong result (the driver's checks are listed in"
    echo "bench/README.md)."
    echo
fi

if [ "${BENCH_RAW:-1}" != 0 ]; then
    echo "## Raw driver output"
    echo
    echo '```'
    cat "$TMP/all.txt"
    echo '```'
fi
exit $status
