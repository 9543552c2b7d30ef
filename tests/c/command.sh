#!/usr/bin/env bash
# The `qnxcompat` command end to end, and `make install` into a prefix.
#
# usage: tests/c/command.sh LIBPATH
#
# LIBPATH's directory must hold the command (`qnxcompat`) beside the
# library, as `make` leaves them in target/release.  Checks:
#   - the shared object run as a program (version and usage line);
#   - `qnxcompat run` with a relative LD_PRELOAD in the caller's way, with
#     tracing to a file, and its exit status;
#   - `qnxcompat locks` showing a lock held by another process and a blocked
#     waiter with its blocker, in the table and in --json (parsed), --pid
#     and --file filters, and a deadlock flagged;
#   - `qnxcompat doctor` on a healthy registry and on one with a SIGKILLed
#     owner, then `doctor --reap`;
#   - traces that diagnose (a wait's start, the holder of a refusal, paths,
#     what a close released, QNXCOMPAT_TRACE=locks, timestamps);
#   - every bad setting giving its message; QNXCOMPAT_STRICT=1;
#   - `qnxcompat run --strict` failing on a refused registry;
#   - `make install PREFIX=...`, a QNX-style C program built with
#     `pkg-config --cflags --libs qnxcompat` and run, then `make uninstall`.
# Prints "N passed, N failed"; exit status 0 iff nothing failed.
set -u -o pipefail

LIB=$(readlink -f "$1")
BIN=$(dirname "$LIB")/qnxcompat
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qtest-command.XXXXXX") || exit 2
export QNXCOMPAT_REGISTRY=qnxcompat-cmdtest-$$
unset QNXCOMPAT_TRACE QNXCOMPAT_TRACE_FILE QNXCOMPAT_STRICT LD_PRELOAD
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$WORK"
    rm -f "/dev/shm/$QNXCOMPAT_REGISTRY" "/dev/shm/$QNXCOMPAT_REGISTRY-bad" "/dev/shm/$QNXCOMPAT_REGISTRY-st"
}
trap cleanup EXIT

passed=0
failed=0
check() { # check WHAT STATUS [DETAIL]
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok: $1"
    else
        failed=$((failed + 1))
        echo "FAIL: $1${3:+: $3}"
    fi
}
has() { grep -q -E -e "$2" <<<"$1"; }
# Waits up to 10 s for FILE to contain a line matching RE.
wait_for() {
    for _ in $(seq 1 200); do
        grep -q -E -e "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

if [ ! -x "$BIN" ]; then
    check "the command is built beside the library ($BIN)" 1
    echo "$passed passed, $failed failed"
    exit 1
fi

# --- the shared object run as a program, and the command's own --version
out=$("$LIB" 2>&1)
check "the library run as a program prints its version and usage" \
    "$( has "$out" 'libqnxcompat[^ ]* [0-9]+\.[0-9]+' && has "$out" '[Uu]sage' && echo 0 || echo 1)" "$out"
out=$("$BIN" --version)
check "qnxcompat --version" "$(has "$out" '^qnxcompat [0-9]' && echo 0 || echo 1)" "$out"
"$BIN" --help >"$WORK/help" 2>&1
check "qnxcompat --help names run, locks and doctor" \
    "$(grep -q run "$WORK/help" && grep -q locks "$WORK/help" && grep -q doctor "$WORK/help" && echo 0 || echo 1)"
"$BIN" man >"$WORK/man.1" 2>&1
check "qnxcompat man renders a man page" "$(grep -q '^\.TH' "$WORK/man.1" && echo 0 || echo 1)"
"$BIN" frobnicate >/dev/null 2>&1
check "an unknown subcommand is a usage error (exit 2)" "$([ $? -eq 2 ] && echo 0 || echo 1)"

# --- a helper program: lock [rd|wr] FILE START LEN SECONDS, reporting on stdout
cat >"$WORK/lk.c" <<'EOF'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    if (argc < 6) return 2;
    int fd = open(argv[2], O_RDWR | O_CREAT, 0644);
    struct flock fl = {0};
    fl.l_type = strcmp(argv[1], "rd") == 0 ? F_RDLCK : F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = atol(argv[3]);
    fl.l_len = atol(argv[4]);
    int r = fcntl(fd, F_SETLKW, &fl);
    printf("locked %d\n", r);
    fflush(stdout);
    if (argc > 7) { /* then a second range, waited for: for a cycle */
        fl.l_start = atol(argv[6]);
        fl.l_len = atol(argv[7]);
        sleep(1);
        r = fcntl(fd, F_SETLKW, &fl);
        printf("second %d\n", r);
        fflush(stdout);
    }
    sleep(atoi(argv[5]));
    return 0;
}
EOF
cc -O1 -o "$WORK/lk" "$WORK/lk.c" || { check "compile the helper" 1; echo "$passed passed, $failed failed"; exit 1; }

# --- qnxcompat run: the exit status, tracing, a relative path
(cd "$WORK" && "$BIN" run -- sh -c 'exit 7')
check "qnxcompat run exits with the command's status" "$([ $? -eq 7 ] && echo 0 || echo 1)"
"$BIN" run -- /nonexistent/cmd 2>/dev/null
check "a command that does not exist: 127" "$([ $? -eq 127 ] && echo 0 || echo 1)"
(cd "$WORK" && "$BIN" run --trace --trace-file=trace.log -- ./lk wr data 0 10 0 >/dev/null)
check "qnxcompat run --trace --trace-file (relative) traces the command's fcntl" \
    "$(grep -q -E 'fcntl(64)?\(fd=[0-9]+<[^>]*/data>, F_SETLKW' "$WORK/trace.log" && echo 0 || echo 1)" "$(cat "$WORK/trace.log" 2>&1 | head -3)"
(cd "$WORK" && "$BIN" run --trace=lockf -- sh -c 'true' 2>"$WORK/trace2.log")
check "qnxcompat run --trace=SET passes the set (nothing traced for sh -c true)" \
    "$([ ! -s "$WORK/trace2.log" ] && echo 0 || echo 1)" "$(head -3 "$WORK/trace2.log")"
out=$("$BIN" run -- sh -c 'echo "$LD_PRELOAD"')
check "qnxcompat run sets an absolute LD_PRELOAD" "$([ "$out" = "$LIB" ] && echo 0 || echo 1)" "$out"

# --- traces that diagnose: a wait's start names its blocker, a refusal its
# holder, lock lines their path, a close what it released; no l_pid on a
# request; QNXCOMPAT_TRACE=locks; timestamps
T=$WORK/tr.dat
"$BIN" run -- "$WORK/lk" wr "$T" 0 100 3 >"$WORK/trh.out" &
PIDS+=($!)
TRH=$!
wait_for "$WORK/trh.out" 'locked 0'
QNXCOMPAT_TRACE_TIME=1 "$BIN" run --trace=locks --trace-file="$WORK/tr.log" -- "$WORK/lk" rd "$T" 50 10 0 >/dev/null
tr=$(cat "$WORK/tr.log")
check "a wait's start is traced with its blocker, the path and the range" \
    "$(has "$tr" "^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6} qnxcompat\[[0-9]+:[0-9]+\] fcntl(64)?\(fd=3<$T>, F_SETLKW, \{F_RDLCK, SEEK_SET, start=50, len=10\}\) blocked \(.*\) by pid $TRH \(lk\) on $T \[0-99\]$" && echo 0 || echo 1)" "$tr"
check "and its end, after the holder let go" "$(has "$tr" "F_SETLKW, .*\) = 0 \(" && echo 0 || echo 1)" "$tr"
check "no pid= on a request's line" "$(has "$tr" 'pid=' && echo 1 || echo 0)" "$tr"
"$BIN" run -- "$WORK/lk" wr "$T" 0 100 30 >"$WORK/trh2.out" &
PIDS+=($!)
TRH2=$!
wait_for "$WORK/trh2.out" 'locked 0'
cat >"$WORK/tl.py" <<'EOF'
import fcntl, sys
f = open(sys.argv[1], "r+")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 0)
except OSError:
    pass
g = open(sys.argv[2], "w")
fcntl.lockf(g, fcntl.LOCK_EX, 5, 0)
fcntl.lockf(g, fcntl.LOCK_EX, 5, 10)
fcntl.fcntl(g, fcntl.F_GETFL)
g.close()
f.close()
import os
h = open(sys.argv[2] + ".b", "w")
fcntl.lockf(h, fcntl.LOCK_EX, 5, 0)
os.dup2(os.open("/dev/null", os.O_WRONLY), h.fileno())
EOF
"$BIN" run --trace=locks --trace-file="$WORK/tr2.log" -- python3 "$WORK/tl.py" "$T" "$WORK/tr2.dat"
tr=$(cat "$WORK/tr2.log")
check "EAGAIN names the holder and its range" \
    "$(has "$tr" "F_SETLK, \{F_WRLCK, SEEK_SET, start=0, len=5\}\) = -1 EAGAIN \(.*\) held by pid $TRH2 \(lk\) \[0-99\]$" && echo 0 || echo 1)" "$tr"
check "a close says what it released" "$(has "$tr" 'close\(fd=[0-9]+\) = 0 \(.*\) released 2 locks$' && echo 0 || echo 1)" "$tr"
check "a dup2 over a locked descriptor says what it released" \
    "$(has "$tr" 'dup2\(oldfd=[0-9]+, newfd=[0-9]+\) = [0-9]+ \(.*\) released 1 lock$' && echo 0 || echo 1)" "$tr"
check "QNXCOMPAT_TRACE=locks: no close that released nothing, no F_GETFL" \
    "$(grep -c 'close(' "$WORK/tr2.log" | grep -qx 1 && ! has "$tr" 'F_GETFL' && echo 0 || echo 1)" "$tr"
kill -KILL "$TRH2" 2>/dev/null
wait "$TRH2" "$TRH" 2>/dev/null
"$BIN" doctor --reap >/dev/null # the holder killed above

# --- qnxcompat locks: a holder, a waiter and its blocker
F=$WORK/data
"$BIN" run -- "$WORK/lk" wr "$F" 0 100 30 >"$WORK/holder.out" &
PIDS+=($!)
HOLDER=$!
wait_for "$WORK/holder.out" 'locked 0'
"$BIN" run -- "$WORK/lk" rd "$F" 50 10 30 >"$WORK/waiter.out" &
PIDS+=($!)
WAITER=$!
sleep 0.5
table=$("$BIN" locks)
check "locks lists the holder with its command, kind, type and range" \
    "$(has "$table" "^lk +$HOLDER +posix +WRITE +0 +99 +$F\$" && echo 0 || echo 1)" "$table"
check "locks lists the waiter with its blocker" \
    "$(has "$table" "^lk +$WAITER +posix +READ +\* +50 +59 +$F +$HOLDER \(lk\)" && echo 0 || echo 1)" "$table"
"$BIN" locks --json >"$WORK/locks.json"
python3 - "$WORK/locks.json" "$HOLDER" "$WAITER" "$F" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
holder, waiter, path = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = doc["locks"]
h = [r for r in rows if not r["waiting"] and r["pid"] == holder]
w = [r for r in rows if r["waiting"] and r["pid"] == waiter]
assert len(h) == 1 and h[0]["type"] == "WRITE" and h[0]["start"] == 0 and h[0]["end"] == 99, rows
assert h[0]["kind"] == "posix" and h[0]["path"] == path and h[0]["command"] == "lk", h
assert len(w) == 1 and w[0]["blocker"]["pid"] == holder and w[0]["type"] == "READ", w
assert w[0]["deadlock"] is False, w
EOF
check "locks --json parses and names the holder, the waiter and the blocker" $? "$(cat "$WORK/locks.json")"
out=$("$BIN" locks --pid "$WAITER")
check "locks --pid shows only that process" \
    "$(has "$out" "$WAITER" && ! has "$out" "^lk +$HOLDER " && echo 0 || echo 1)" "$out"
touch "$WORK/other"
out=$("$BIN" locks --file "$WORK/other")
check "locks --file of an unlocked file shows only the heading" "$([ "$(wc -l <<<"$out")" -eq 1 ] && echo 0 || echo 1)" "$out"
out=$("$BIN" locks --file "$F")
check "locks --file of the locked file shows both" "$([ "$(wc -l <<<"$out")" -eq 3 ] && echo 0 || echo 1)" "$out"

# --- a registry lock the kernel no longer holds is shown as stale (an
# open file's flock whose last descriptor closed: the registry learns of it
# only when a locker meets it); one still held is not
if [ "${QNXCOMPAT_MIRROR:-on}" != off ]; then
    cat >"$WORK/st.py" <<'EOF'
import fcntl, sys, time
f = open(sys.argv[1] + ".gone", "w")
fcntl.flock(f, fcntl.LOCK_EX)
f.close()
g = open(sys.argv[1] + ".held", "w")
fcntl.flock(g, fcntl.LOCK_EX)
print("ready", flush=True)
time.sleep(30)
EOF
    "$BIN" run --registry "$QNXCOMPAT_REGISTRY-st" -- python3 "$WORK/st.py" "$WORK/st" >"$WORK/st.out" &
    PIDS+=($!)
    ST=$!
    wait_for "$WORK/st.out" ready
    "$BIN" locks --registry "$QNXCOMPAT_REGISTRY-st" --json >"$WORK/st.json"
    python3 - "$WORK/st.json" "$WORK/st.held" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["locks"]
held = [r for r in rows if r["path"] == sys.argv[2]]
gone = [r for r in rows if r["path"] is None and r["kind"] == "flock"]
assert len(held) == 1 and held[0]["stale"] is False, rows
assert len(gone) == 1 and gone[0]["stale"] is True, rows
EOF
    check "locks marks a lock the kernel no longer holds as stale, and only it" $? "$(cat "$WORK/st.json")"
    out=$("$BIN" locks --registry "$QNXCOMPAT_REGISTRY-st")
    check "the table says so" "$(has "$out" 'stale: no kernel lock' && echo 0 || echo 1)" "$out"
    kill -KILL "$ST" 2>/dev/null
    wait "$ST" 2>/dev/null
    rm -f "/dev/shm/$QNXCOMPAT_REGISTRY-st"
fi

# --- a registry of the other mirror mode is listed all the same (a tool
# only reads it)
MO=$QNXCOMPAT_REGISTRY-mo
QNXCOMPAT_MIRROR=off "$BIN" run --registry "$MO" -- "$WORK/lk" wr "$WORK/mo.dat" 0 10 30 >"$WORK/mo.out" &
PIDS+=($!)
MOP=$!
wait_for "$WORK/mo.out" 'locked 0'
out=$("$BIN" locks --registry "$MO" 2>&1)
check "locks lists a QNXCOMPAT_MIRROR=off registry from a mirrored environment" \
    "$(has "$out" "^lk +$MOP +posix +WRITE +0 +9 " && echo 0 || echo 1)" "$out"
kill -KILL "$MOP" 2>/dev/null
wait "$MOP" 2>/dev/null
rm -f "/dev/shm/$MO"

# --- doctor: healthy
out=$("$BIN" doctor)
rc=$?
check "doctor on a healthy registry: exit 0, consistent, no dead owners" \
    "$([ $rc -eq 0 ] && has "$out" 'consistent' && has "$out" 'no dead owners' && has "$out" 'interposes fcntl, fcntl64' && echo 0 || echo 1)" "$out"

# --- a SIGKILLed owner: doctor reports it, --reap clears it
kill -KILL "$WAITER" "$HOLDER"
wait "$WAITER" "$HOLDER" 2>/dev/null
# Named with --registry, not the environment: the probes must read the
# named registry's own file, not the default one of the loaded library.
out=$(env -u QNXCOMPAT_REGISTRY "$BIN" doctor --registry "$QNXCOMPAT_REGISTRY")
rc=$?
check "doctor with SIGKILLed owners: exit 1, names the dead" \
    "$([ $rc -eq 1 ] && has "$out" 'FAIL 2 dead owners' && echo 0 || echo 1)" "$out"
out=$("$BIN" doctor --reap)
rc=$?
check "doctor --reap clears them" "$([ $rc -eq 0 ] && has "$out" 'reaped 2 dead owners' && echo 0 || echo 1)" "$out"
out=$("$BIN" locks)
check "no lock is left after the reap" "$([ "$(wc -l <<<"$out")" -eq 1 ] && echo 0 || echo 1)" "$out"

# --- a deadlock flagged: two processes, each holding one range and waiting
# for the other's. The second to close the cycle gets EDEADLK, so catch the
# flag in the window before: poll until a cycle shows or both report.
"$BIN" run -- "$WORK/lk" wr "$F" 0 10 30 20 10 >"$WORK/a.out" &
PIDS+=($!)
A=$!
wait_for "$WORK/a.out" 'locked 0'
# B waits for A's range 0-9 while holding 20-29: A's second request then
# closes the cycle and is refused (EDEADLK); a waiter of a cycle shows
# DEADLOCK only if the cycle stands, which QNX never lets it: check B waits.
"$BIN" run -- "$WORK/lk" wr "$F" 20 10 30 0 10 >"$WORK/b.out" &
PIDS+=($!)
B=$!
wait_for "$WORK/a.out" 'second'
wait_for "$WORK/b.out" 'second' || true
check "the cycle's closer is refused with EDEADLK" \
    "$( (grep -q 'second -1' "$WORK/a.out" || grep -q 'second -1' "$WORK/b.out") && echo 0 || echo 1)" \
    "$(cat "$WORK/a.out" "$WORK/b.out")"
kill -KILL "$A" "$B" 2>/dev/null
wait "$A" "$B" 2>/dev/null
"$BIN" doctor --reap >/dev/null

# --- loud configuration: every bad setting says so, quoting it, once per
# process tree; QNXCOMPAT_STRICT=1 stops instead
bad() { # bad VAR=VALUE REGEX: a preloaded python that runs a child
    out=$(env "$1" LD_PRELOAD="$LIB" python3 -c 'import os; os.system("true")' 2>&1)
    check "$1 gives its message, once for the process and its child" \
        "$(has "$out" "$2" && [ "$(grep -c -E -e "$2" <<<"$out")" -eq 1 ] && echo 0 || echo 1)" "$out"
}
bad QNXCOMPAT_TRACE=lokf 'QNXCOMPAT_TRACE="lokf": "lokf" names nothing traced; accepted: '
bad QNXCOMPAT=garbage 'QNXCOMPAT="garbage" is not understood and is ignored; accepted: on, off'
bad QNXCOMPAT_QNX_VERSION=9 'QNXCOMPAT_QNX_VERSION="9" is not understood and is ignored; accepted: 7'
bad QNXCOMPAT_REGISTRY_GROUP=nosuchgroup 'QNXCOMPAT_REGISTRY_GROUP="nosuchgroup": no such group'
bad QNXCOMPAT_REGISTRY=a/b 'QNXCOMPAT_REGISTRY="a/b" is not a registry name'
bad QNXCOMPAT_TRACEFILE=x 'unknown setting QNXCOMPAT_TRACEFILE'
out=$(QNXCOMPAT_TRACE=fcntl QNXCOMPAT_TRACE_FILE=/nonexistent/x LD_PRELOAD="$LIB" python3 -c 'import fcntl; fcntl.lockf(open("'"$WORK"'/tf", "w"), fcntl.LOCK_EX)' 2>&1)
check "an unwritable trace file says so, and the trace goes to stderr" \
    "$(has "$out" 'cannot write the trace file QNXCOMPAT_TRACE_FILE="/nonexistent/x"; trace lines go to stderr' && has "$out" 'F_SETLKW' && echo 0 || echo 1)" "$out"
out=$(LD_PRELOAD="$LIB" python3 -c 'import os; os.system("true")' 2>&1)
check "good settings: not a word" "$([ -z "$out" ] && echo 0 || echo 1)" "$out"
out=$(QNXCOMPAT_STRICT=1 QNXCOMPAT_QNX_VERSION=9 LD_PRELOAD="$LIB" /bin/true 2>&1)
check "QNXCOMPAT_STRICT=1 with a bad setting: exit 70" \
    "$([ $? -eq 70 ] && has "$out" 'QNXCOMPAT_STRICT=1: a setting above is not understood' && echo 0 || echo 1)" "$out"
out=$(QNXCOMPAT_STRICT=1 QNXCOMPAT=off LD_PRELOAD="$LIB" /bin/true 2>&1)
check "QNXCOMPAT_STRICT=1 with QNXCOMPAT=off: exit 70" "$([ $? -eq 70 ] && echo 0 || echo 1)" "$out"
printf 'not a registry' >"/dev/shm/$QNXCOMPAT_REGISTRY-bad"
chmod 600 "/dev/shm/$QNXCOMPAT_REGISTRY-bad"
out=$(QNXCOMPAT_STRICT=1 QNXCOMPAT_REGISTRY=$QNXCOMPAT_REGISTRY-bad LD_PRELOAD="$LIB" python3 -c 'import fcntl; fcntl.lockf(open("'"$WORK"'/tf", "w"), fcntl.LOCK_EX); print("granted")' 2>&1)
check "QNXCOMPAT_STRICT=1 and a refused registry: the first lock call stops the process (70)" \
    "$([ $? -eq 70 ] && has "$out" 'not using lock registry' && ! has "$out" granted && echo 0 || echo 1)" "$out"

# --- --strict and a refused registry
printf 'not a registry' >"/dev/shm/$QNXCOMPAT_REGISTRY-bad"
chmod 600 "/dev/shm/$QNXCOMPAT_REGISTRY-bad"
out=$("$BIN" run --strict --registry "$QNXCOMPAT_REGISTRY-bad" -- true 2>&1)
rc=$?
check "run --strict on a refused registry fails before the command runs" \
    "$([ $rc -ne 0 ] && has "$out" 'cannot be used' && echo 0 || echo 1)" "rc=$rc $out"
out=$("$BIN" run --registry "$QNXCOMPAT_REGISTRY-bad" -- true 2>&1)
check "without --strict the same run goes ahead" "$([ $? -eq 0 ] && echo 0 || echo 1)" "$out"
out=$(QNXCOMPAT=off "$BIN" run --strict -- true 2>&1)
check "run --strict refuses QNXCOMPAT=off" "$([ $? -ne 0 ] && has "$out" 'QNXCOMPAT=off' && echo 0 || echo 1)" "$out"

# --- make install, pkg-config, a QNX-style program, make uninstall
if [ -n "${QTEST_NO_INSTALL:-}" ]; then
    echo "install: skipped (QTEST_NO_INSTALL)"
else
    P=$WORK/prefix
    if make -s -C "$ROOT" install-only PREFIX="$P" LIB="$LIB" >"$WORK/install.log" 2>&1; then
        check "make install PREFIX=..." 0
    else
        check "make install PREFIX=..." 1 "$(cat "$WORK/install.log")"
    fi
    for f in lib/libqnxcompat.so bin/qnxcompat share/man/man1/qnxcompat.1 include/qnxcompat/sys/iofunc.h \
        include/qnxcompat/qnxcompat.h lib/pkgconfig/qnxcompat.pc; do
        check "installed $f" "$([ -e "$P/$f" ] && echo 0 || echo 1)"
    done
    cat >"$WORK/qnxprog.c" <<'EOF'
/* A QNX-style program: QNX headers, flock_t, EOK, iofunc and the C API. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/iofunc.h>
#include <qnxcompat.h>
int main(void)
{
    iofunc_attr_t attr;
    iofunc_attr_init(&attr, S_IFREG | 0644, NULL, NULL);
    char path[] = "/tmp/qnxprog.XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    flock_t fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    if (fcntl(fd, F_SETLK, &fl) != 0) return 1;
    char msg[256];
    int v = qnxcompat_verify(NULL, msg, sizeof msg);
    printf("verify %d %s\nEOK %d\n", v, msg, EOK);
    return v;
}
EOF
    PKG_CONFIG_PATH=$P/lib/pkgconfig
    export PKG_CONFIG_PATH
    flags=$(pkg-config --cflags --libs qnxcompat 2>&1)
    check "pkg-config --cflags --libs qnxcompat" "$(has "$flags" "-I$P/include/qnxcompat" && has "$flags" '-lqnxcompat' && echo 0 || echo 1)" "$flags"
    # shellcheck disable=SC2086
    if cc -D_GNU_SOURCE -o "$WORK/qnxprog" "$WORK/qnxprog.c" $flags -Wl,-rpath,"$P/lib" 2>"$WORK/cc.log"; then
        check "a QNX-style program builds with the pkg-config flags" 0
        out=$("$P/bin/qnxcompat" run -- "$WORK/qnxprog" 2>&1)
        check "and runs under the installed command, its lock in the registry" \
            "$([ $? -eq 0 ] && has "$out" 'verify 0 consistent: 1 lock records' && echo 0 || echo 1)" "$out"
    else
        check "a QNX-style program builds with the pkg-config flags" 1 "$(cat "$WORK/cc.log")"
    fi
    make -s -C "$ROOT" uninstall PREFIX="$P" >"$WORK/uninstall.log" 2>&1
    left=$(find "$P" -type f 2>/dev/null)
    check "make uninstall removes every installed file" "$([ -z "$left" ] && echo 0 || echo 1)" "$left"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
