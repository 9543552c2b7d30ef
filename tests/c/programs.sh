#!/usr/bin/env bash
# Ordinary programs must run unchanged under the shim.
#
# usage: tests/c/programs.sh LIBPATH [REGISTRY]
#        tests/c/programs.sh none
#
# Runs each command natively and with LD_PRELOAD=LIBPATH (and
# QNXCOMPAT_REGISTRY=REGISTRY if given) and compares exit status, stdout and
# stderr.  Prints PASS/FAIL per command and the summary "N passed, N failed";
# the exit status is 0 iff nothing failed.  Called by tests/c/run.sh.
#
# The kernel mirror checks at the end ("mirror: ...") run programs preloaded
# and programs outside the library (LD_PRELOAD removed) against each other's
# locks: flock(1), python3, perl and sqlite3.  With LIBPATH "none" nothing
# is preloaded: the comparisons are skipped and the mirror checks show the
# kernel's own behaviour (run.sh's native run).  With QNXCOMPAT_MIRROR=off in
# the environment (run.sh's mirror-off run) the preloaded side's locks stay
# in the registry, and the checks expect the two sides not to meet.
set -u -o pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 LIBPATH [REGISTRY]" >&2
    exit 2
fi
LIB=$1
REGISTRY=${2:-qnxcompat-programs-$$}
OWN_REGISTRY=$([ $# -ge 2 ] || echo yes)

NOLIB=$([ "$LIB" = none ] && echo yes)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/qtest-programs.XXXXXX") || exit 2
HOLD_BG=""
cleanup() {
    [ -z "$HOLD_BG" ] || kill -KILL "$HOLD_BG" 2>/dev/null # a mirror holder
    rm -rf "$WORK"
    [ -z "$OWN_REGISTRY" ] || rm -f "/dev/shm/$REGISTRY"
}
trap cleanup EXIT
printf 'pear\napple\nfig\n%s\n' "$(seq 1 50)" >"$WORK/input"

passed=0
failed=0

# run_both COMMAND...: run natively (output in $WORK/n.out and n.err) and
# under the shim (s.out, s.err), in $WORK, without stdin; sets rc_n and rc_s
# (the caller's locals).
run_both() {
    (cd "$WORK" && timeout 30 "$@") >"$WORK/n.out" 2>"$WORK/n.err" </dev/null
    rc_n=$?
    (cd "$WORK" && timeout 30 env LD_PRELOAD="$LIB" QNXCOMPAT_REGISTRY="$REGISTRY" "$@") \
        >"$WORK/s.out" 2>"$WORK/s.err" </dev/null
    rc_s=$?
}

# verdict OK DESCRIPTION: count one check and print its PASS/FAIL line (the
# caller shows what differed after a FAIL); returns OK's status.
verdict() {
    if [ "$1" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS programs: $2"
        return 0
    fi
    failed=$((failed + 1))
    echo "FAIL programs: $2 (exit status native $rc_n, shim $rc_s)"
    return 1
}

# same DESCRIPTION COMMAND...: run natively and under the shim, compare.
same() {
    local what=$1 rc_n rc_s
    [ -z "$NOLIB" ] || return 0
    shift
    run_both "$@"
    [ "$rc_n" -eq "$rc_s" ] && [ -s "$WORK/n.out" ] &&
        cmp -s "$WORK/n.out" "$WORK/s.out" && cmp -s "$WORK/n.err" "$WORK/s.err"
    if ! verdict $? "$what"; then
        diff -u "$WORK/n.out" "$WORK/s.out" | head -n 40 | sed "s/^/    stdout /"
        diff -u "$WORK/n.err" "$WORK/s.err" | head -n 40 | sed "s/^/    stderr /"
        [ -s "$WORK/n.out" ] || echo "    (no native output)"
    fi
}

# differs DESCRIPTION NATIVE_OUT SHIM_OUT COMMAND...: QNX-only behaviour.
# Run natively and under the shim; each run must exit 0 and print exactly
# its expected output (Linux's natively, QNX's under the shim).
differs() {
    local what=$1 want_n=$2 want_s=$3 rc_n rc_s
    [ -z "$NOLIB" ] || return 0
    shift 3
    run_both "$@"
    printf '%s\n' "$want_n" >"$WORK/n.want"
    printf '%s\n' "$want_s" >"$WORK/s.want"
    [ "$rc_n" -eq 0 ] && [ "$rc_s" -eq 0 ] &&
        cmp -s "$WORK/n.want" "$WORK/n.out" && cmp -s "$WORK/s.want" "$WORK/s.out"
    if ! verdict $? "$what"; then
        diff -u "$WORK/n.want" "$WORK/n.out" | head -n 20 | sed "s/^/    native /"
        diff -u "$WORK/s.want" "$WORK/s.out" | head -n 20 | sed "s/^/    shim /"
        sed "s/^/    native stderr: /" "$WORK/n.err" | head -n 10
        sed "s/^/    shim stderr: /" "$WORK/s.err" | head -n 10
    fi
}

PY='
import fcntl, os, struct, tempfile
fd, p = tempfile.mkstemp()
os.write(fd, b"x" * 100)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10)
fcntl.lockf(fd, fcntl.LOCK_UN, 10)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
fcntl.flock(fd, fcntl.LOCK_UN)
q = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 10, 0)
r = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, q))
print("getlk type is F_UNLCK:", r[0] == fcntl.F_UNLCK)
print("accmode:", fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDWR)
with open(p) as f:
    print(len(f.read()))
os.close(fd)
os.unlink(p)
print("ok")
'

[ -z "$NOLIB" ] || echo "SKIP programs: native vs shim comparisons (no library)"
same "bash -c 'echo hi'" bash -c 'echo hi'
same "ls /" ls /
same "cat" cat input
same "sort" sort input
same "sort -n | uniq -c (pipeline)" bash -c 'sort -n input | uniq -c | tail -n 5'
same "sh: redirections and subshells" sh -c 'exec 3>out; echo a >&3; exec 3>&-; (cat out; echo b) | tr a-z A-Z'
# The toolchains a porting team runs under the library: gcc compiles and
# links, cargo builds a crate (offline: it has no dependencies).
if command -v cc >/dev/null 2>&1; then
    printf '#include <stdio.h>\nint main(void){puts("built");return 0;}\n' >"$WORK/hello.c"
    same "cc compiles, links and runs" sh -c 'cc -O1 -o hello hello.c && ./hello && rm -f hello'
fi
if command -v cargo >/dev/null 2>&1; then
    mkdir -p "$WORK/crate/src"
    printf '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n' >"$WORK/crate/Cargo.toml"
    printf 'fn main() { println!("built"); }\n' >"$WORK/crate/src/main.rs"
    same "cargo build and run" sh -c 'cd crate && cargo run -q --offline 2>/dev/null; rm -rf target Cargo.lock'
fi
if command -v python3 >/dev/null 2>&1; then
    same "python3 fcntl/lockf/flock" python3 -c "$PY"
else
    echo "SKIP programs: python3 (not installed)"
fi
if command -v flock >/dev/null 2>&1; then
    same "flock(1)" flock lockfile -c 'echo locked'
    same "flock(1) -n nested" flock -n lockfile2 flock -n -s lockfile3 echo nested
fi

# QNX-only: flock() and fcntl()/lockf() locks are one lock list and conflict.
# HOLD_AND_TRY FILE runs a python process that holds fcntl.lockf(LOCK_EX)
# (the whole FILE) and evaluates $TRY while it holds the lock and again after
# it has released it, printing what $TRY printed each time.
PY_HOLDER='
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
fcntl.lockf(fd, fcntl.LOCK_UN)
print("released", flush=True)
sys.stdin.readline()
'
HOLD_AND_TRY='
coproc H { exec python3 -c "$PY_HOLDER" "$1"; }
read -r -t 10 line <&"${H[0]}" && [ "$line" = held ] || { echo "holder: no lock"; exit 1; }
echo "while lockf is held: $(eval "$TRY")"
echo release >&"${H[1]}"
read -r -t 10 line <&"${H[0]}" && [ "$line" = released ] || { echo "holder: no unlock"; exit 1; }
echo "after lockf is released: $(eval "$TRY")"
echo quit >&"${H[1]}"
wait "$H_PID"
'
# another python process: fcntl.flock(LOCK_EX|LOCK_NB) on its own open
PY_TRY_FLOCK='
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("acquired")
except BlockingIOError:
    print("BlockingIOError")
'

# A process that holds a lockf lock keeps it when it runs a program with
# subprocess.run(): its vfork()ed child closes its copies of the descriptors
# (close_fds) and execs, which must not release the parent's locks (on QNX
# and Linux alike).  The lock is probed from an os.fork() child.
PY_SPAWN='
import fcntl, os, subprocess, tempfile
fd, p = tempfile.mkstemp(dir=".")
fcntl.lockf(fd, fcntl.LOCK_EX)
def probe():
    pid = os.fork()
    if pid == 0:
        f = os.open(p, os.O_RDWR)
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os._exit(0)
        except OSError:
            os._exit(1)
    return "busy" if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) else "free"
print("lockf lock, seen by another process:", probe())
subprocess.run(["true"])
print("after subprocess.run([\"true\"]):", probe())
os.close(fd)
os.unlink(p)
'

if command -v python3 >/dev/null 2>&1; then
    differs "python3 fcntl.flock vs another python3's fcntl.lockf (QNX: conflict)" \
        "while lockf is held: acquired
after lockf is released: acquired" \
        "while lockf is held: BlockingIOError
after lockf is released: acquired" \
        env PY_HOLDER="$PY_HOLDER" PY_TRY_FLOCK="$PY_TRY_FLOCK" \
        TRY='python3 -c "$PY_TRY_FLOCK" lockfile4' bash -c "$HOLD_AND_TRY" hold lockfile4
    if command -v flock >/dev/null 2>&1; then
        # util-linux flock(1) -n fails while the lockf holder holds the file
        differs "flock(1) -n vs a python3 fcntl.lockf holder (QNX: conflict)" \
            "while lockf is held: free
after lockf is released: free" \
            "while lockf is held: busy
after lockf is released: free" \
            env PY_HOLDER="$PY_HOLDER" \
            TRY='if flock -n lockfile5 true; then echo free; else echo busy; fi' \
            bash -c "$HOLD_AND_TRY" hold lockfile5
    fi
    same "python3 lockf holder runs subprocess.run (vfork, close_fds)" python3 -c "$PY_SPAWN"
fi

# ---------------------------------------------------------------------------
# The kernel mirror: programs preloaded ("pre") and programs outside the
# library ("plain": LD_PRELOAD removed) meet on each other's locks.
# ---------------------------------------------------------------------------
if [ -n "$NOLIB" ]; then
    PRE=(env -u LD_PRELOAD)
else
    PRE=(env LD_PRELOAD="$LIB" QNXCOMPAT_REGISTRY="$REGISTRY")
fi
PLAIN=(env -u LD_PRELOAD)
# SEEN: each side sees the other's locks (natively; with the mirror on).
# SHIM: a library is preloaded at all.
SEEN=1 SHIM=0
if [ -z "$NOLIB" ]; then
    SHIM=1
    case ${QNXCOMPAT_MIRROR:-} in
    off | 0) SEEN=0 ;;
    esac
fi
pick() { # pick FLAG A B: A if FLAG is 1, else B
    if [ "$1" -eq 1 ]; then echo "$2"; else echo "$3"; fi
}

# check DESCRIPTION WANT GOT
check() {
    if [ "$2" = "$3" ]; then
        passed=$((passed + 1))
        echo "PASS programs: mirror: $1"
    else
        failed=$((failed + 1))
        echo "FAIL programs: mirror: $1: got '$3', expected '$2'"
        [ -s "$WORK/hold.err" ] && sed 's/^/    holder stderr: /' "$WORK/hold.err" | head -n 5
    fi
}

# run_side pre|plain CMD...: run CMD in $WORK on that side, bounded
run_side() {
    local side=$1
    shift
    if [ "$side" = pre ]; then
        (cd "$WORK" && timeout 20 "${PRE[@]}" "$@")
    else
        (cd "$WORK" && timeout 20 "${PLAIN[@]}" "$@")
    fi
}

# wait_for FILE TEXT: up to 10 s until a line of FILE starts with TEXT
wait_for() {
    local i
    for ((i = 0; i < 200; i++)); do
        grep -q "^$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# hold pre|plain INPUT CMD...: start a holder in the background, its stdin a
# fifo we keep open on fd 7 (INPUT, if not empty, is written to it first),
# its stdout in $WORK/hold.out; wait until it prints "held" (its line may
# carry its pid: HOLD_PID).  A holder lets go and exits on the next line
# (or EOF) on its stdin.  Returns 1 if it never said "held".
hold() {
    local side=$1 input=$2
    shift 2
    rm -f "$WORK/hold.in" "$WORK/hold.out" "$WORK/hold.err"
    mkfifo "$WORK/hold.in" || return 1
    run_side "$side" "$@" <"$WORK/hold.in" >"$WORK/hold.out" 2>"$WORK/hold.err" &
    HOLD_BG=$!
    exec 7>"$WORK/hold.in"
    [ -z "$input" ] || printf '%s\n' "$input" >&7
    if ! wait_for "$WORK/hold.out" held; then
        echo "    holder did not start: $(head -c 300 "$WORK/hold.err")"
        release
        return 1
    fi
    HOLD_PID=$(sed -n 's/^held \([0-9-]*\).*/\1/p' "$WORK/hold.out" | head -n 1)
    return 0
}

# release [LINE]: tell the holder to let go (LINE, default "release"),
# close its stdin and wait for it to exit
release() {
    [ -n "$HOLD_BG" ] || return 0
    printf '%s\n' "${1:-release}" 2>/dev/null >&7
    exec 7>&-
    wait "$HOLD_BG" 2>/dev/null
    HOLD_BG=""
}

# check_waits DESCRIPTION WORD CMD...: a preloaded CMD (a blocking lock
# call that then prints WORD) started while the holder holds waits for it:
# after 0.3 s it has printed nothing (with the mirror off it is done: it
# does not see the holder); once the holder lets go (release) it prints
# WORD.  The caller's release after this is a no-op.
check_waits() {
    local what=$1 word=$2 waiter
    shift 2
    run_side pre "$@" >"$WORK/wait.out" 2>&1 &
    waiter=$!
    sleep 0.3
    check "$what, before the release" "$(pick $SEEN waiting "$word")" \
        "$(if [ -s "$WORK/wait.out" ]; then cat "$WORK/wait.out"; else echo waiting; fi)"
    release
    wait "$waiter"
    check "$what, after the release" "$word" "$(cat "$WORK/wait.out")"
}

PY3=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
cat >"$WORK/mhold.py" <<'EOF'
import fcntl, os, sys
kind, path = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
if kind == "lockf":
    fcntl.lockf(fd, fcntl.LOCK_EX)
else:
    fcntl.flock(fd, fcntl.LOCK_EX)
print("held", os.getpid(), flush=True)
sys.stdin.readline()
EOF
cat >"$WORK/mtry.py" <<'EOF'
import errno, fcntl, os, struct, sys
kind, path = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR)
try:
    if kind == "lockf":
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    elif kind == "lockf-wait":
        fcntl.lockf(fd, fcntl.LOCK_EX)
    elif kind == "flock":
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:
        q = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        r = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, q))
        print("free" if r[0] == fcntl.F_UNLCK else "pid %d" % r[4])
        sys.exit(0)
    print("acquired")
except OSError as e:
    print("busy" if e.errno in (errno.EAGAIN, errno.EACCES) else "error %s" % e)
EOF
cat >"$WORK/mlock.pl" <<'EOF'
# perl mlock.pl hold|try flock|fcntl|getlk PATH
use strict;
use Errno qw(EAGAIN EACCES);
use Fcntl qw(:flock :seek F_SETLK F_GETLK F_WRLCK F_UNLCK);
my ($op, $kind, $path) = @ARGV;
open(my $f, "+<", $path) or die "open $path: $!";
my $fmt = "s s x4 q q i x4"; # struct flock on x86_64
my $fl = pack($fmt, F_WRLCK, SEEK_SET, 0, $op eq "hold" ? 10 : 0, 0);
if ($kind eq "getlk") {
    fcntl($f, F_GETLK, $fl) or die "F_GETLK: $!";
    my ($t, $w, $s, $l, $p) = unpack($fmt, $fl);
    print $t == F_UNLCK ? "free\n" : "pid $p\n";
    exit 0;
}
my $ok = $kind eq "flock" ? flock($f, LOCK_EX | LOCK_NB) : fcntl($f, F_SETLK, $fl);
if ($op eq "hold") {
    die "lock: $!" unless $ok;
    $| = 1;
    print "held $$\n";
    my $line = <STDIN>;
    exit 0;
}
print $ok ? "acquired\n" : ($! == EAGAIN || $! == EACCES) ? "busy\n" : "error $!\n";
EOF
: >"$WORK/mfile"

# the python and perl peers, and flock(1), as one word each
py_try() { run_side "$1" "$PY3" "$WORK/mtry.py" "$2" "$WORK/mfile"; }
pl_try() { run_side "$1" perl "$WORK/mlock.pl" try "$2" "$WORK/mfile"; }
flock_try() {
    if run_side "$1" flock -n "$WORK/mfile" true; then echo acquired; else echo busy; fi
}

HAVE_PY=$([ -n "$PY3" ] && echo yes)
HAVE_PL=$(command -v perl >/dev/null 2>&1 && echo yes)
HAVE_FLOCK=$(command -v flock >/dev/null 2>&1 && echo yes)
[ -n "$HAVE_PY" ] || echo "SKIP programs: mirror: python3 checks (not installed)"
[ -n "$HAVE_PL" ] || echo "SKIP programs: mirror: perl checks (not installed)"
[ -n "$HAVE_FLOCK" ] || echo "SKIP programs: mirror: flock(1) checks (not installed)"

busy_if() { pick "$1" busy acquired; }

# preloaded holders, plain peers
if [ -n "$HAVE_PY" ] && hold pre "" "$PY3" "$WORK/mhold.py" lockf "$WORK/mfile"; then
    w="preloaded python3 fcntl.lockf(LOCK_EX) holder"
    check "$w: plain python3 lockf(LOCK_EX|LOCK_NB)" "$(busy_if $SEEN)" "$(py_try plain lockf)"
    check "$w: plain python3 F_GETLK" "$(pick $SEEN "pid $HOLD_PID" free)" "$(py_try plain getlk)"
    if [ -n "$HAVE_PL" ]; then
        check "$w: plain perl fcntl(F_SETLK)" "$(busy_if $SEEN)" "$(pl_try plain fcntl)"
        check "$w: plain perl F_GETLK" "$(pick $SEEN "pid $HOLD_PID" free)" "$(pl_try plain getlk)"
    fi
    release
    check "after the preloaded python3 lockf holder let go: plain python3 lockf" acquired "$(py_try plain lockf)"
fi
if [ -n "$HAVE_PY" ] && hold pre "" "$PY3" "$WORK/mhold.py" flock "$WORK/mfile"; then
    w="preloaded python3 fcntl.flock(LOCK_EX) holder"
    check "$w: plain python3 flock(LOCK_EX|LOCK_NB)" "$(busy_if $SEEN)" "$(py_try plain flock)"
    [ -z "$HAVE_PL" ] || check "$w: plain perl flock(LOCK_EX|LOCK_NB)" "$(busy_if $SEEN)" "$(pl_try plain flock)"
    [ -z "$HAVE_FLOCK" ] || check "$w: plain flock(1) -n" "$(busy_if $SEEN)" "$(flock_try plain)"
    # a whole-file POSIX lock meets the preloaded flock under the shim: the
    # mirror's whole-file OFD lock (QNX's flock meets fcntl locks), and with
    # the mirror off the open-file token (an OFD lock near 2^63)
    check "$w: plain python3 lockf(LOCK_EX|LOCK_NB)" "$(busy_if $SHIM)" "$(py_try plain lockf)"
    [ -z "$HAVE_PL" ] || check "$w: plain perl F_GETLK" "$(pick $SHIM "pid -1" free)" "$(pl_try plain getlk)"
    release
    check "after the preloaded python3 flock holder let go: plain python3 flock" acquired "$(py_try plain flock)"
fi
if [ -n "$HAVE_FLOCK" ] && hold pre "" flock "$WORK/mfile" sh -c 'echo held; read x'; then
    w="preloaded flock(1) holder"
    check "$w: plain flock(1) -n" "$(busy_if $SEEN)" "$(flock_try plain)"
    [ -z "$HAVE_PY" ] || check "$w: plain python3 lockf(LOCK_EX|LOCK_NB)" "$(busy_if $SHIM)" "$(py_try plain lockf)"
    release
    check "after the preloaded flock(1) holder let go: plain flock(1) -n" acquired "$(flock_try plain)"
fi

# plain holders, preloaded peers
if [ -n "$HAVE_PY" ] && hold plain "" "$PY3" "$WORK/mhold.py" lockf "$WORK/mfile"; then
    w="plain python3 fcntl.lockf(LOCK_EX) holder"
    check "$w: preloaded python3 lockf(LOCK_EX|LOCK_NB)" "$(busy_if $SEEN)" "$(py_try pre lockf)"
    check "$w: preloaded python3 F_GETLK" "$(pick $SEEN "pid $HOLD_PID" free)" "$(py_try pre getlk)"
    [ -z "$HAVE_PL" ] || check "$w: preloaded perl fcntl(F_SETLK)" "$(busy_if $SEEN)" "$(pl_try pre fcntl)"
    # a preloaded flock meets a whole-file fcntl lock under the shim (with
    # the mirror off too: the lock covers the open-file token)
    check "$w: preloaded python3 flock(LOCK_EX|LOCK_NB)" "$(busy_if $SHIM)" "$(py_try pre flock)"
    [ -z "$HAVE_FLOCK" ] || check "$w: preloaded flock(1) -n" "$(busy_if $SHIM)" "$(flock_try pre)"
    release
    check "after the plain python3 lockf holder let go: preloaded python3 lockf" acquired "$(py_try pre lockf)"
fi
if [ -n "$HAVE_PL" ] && hold plain "" perl "$WORK/mlock.pl" hold fcntl "$WORK/mfile"; then
    w="plain perl F_SETLK write [0,10) holder"
    check "$w: preloaded perl fcntl(F_SETLK)" "$(busy_if $SEEN)" "$(pl_try pre fcntl)"
    check "$w: preloaded perl F_GETLK" "$(pick $SEEN "pid $HOLD_PID" free)" "$(pl_try pre getlk)"
    if [ -n "$HAVE_PY" ]; then
        check "$w: preloaded python3 F_GETLK" "$(pick $SEEN "pid $HOLD_PID" free)" "$(py_try pre getlk)"
        # a blocking lockf waits for the holder, then gets the lock
        check_waits "$w: preloaded python3 blocking lockf" acquired \
            "$PY3" "$WORK/mtry.py" lockf-wait "$WORK/mfile"
    fi
    release
fi
if [ -n "$HAVE_FLOCK" ] && hold plain "" flock "$WORK/mfile" sh -c 'echo held; read x'; then
    w="plain flock(1) holder"
    check "$w: preloaded flock(1) -n" "$(busy_if $SEEN)" "$(flock_try pre)"
    [ -z "$HAVE_PY" ] || check "$w: preloaded python3 flock(LOCK_EX|LOCK_NB)" "$(busy_if $SEEN)" "$(py_try pre flock)"
    [ -z "$HAVE_PL" ] || check "$w: preloaded perl flock(LOCK_EX|LOCK_NB)" "$(busy_if $SEEN)" "$(pl_try pre flock)"
    # a blocking flock(1) waits for the holder, then runs
    check_waits "$w: preloaded blocking flock(1)" got flock "$WORK/mfile" echo got
    release
fi

# sqlite3: an exclusive transaction on one side makes the other side's
# writer fail with SQLITE_BUSY, and no committed row is lost.  sqlite3
# locks with F_SETLK on bytes at 1 GiB.
sq() { # sq pre|plain SQL: one sqlite3 run on the test database
    run_side "$1" sqlite3 -batch "$WORK/m.db" "$2" 2>&1
}
if ! command -v sqlite3 >/dev/null 2>&1; then
    echo "SKIP programs: mirror: sqlite3 checks (not installed)"
elif [ "$SEEN" -eq 0 ]; then
    echo "SKIP programs: mirror: sqlite3 checks (mirror off: the two sides would write one database at once)"
else
    rm -f "$WORK/m.db"
    sq plain "CREATE TABLE t(x); INSERT INTO t VALUES(0);" >/dev/null
    for holder in pre plain; do
        if [ "$holder" = pre ]; then
            writer=plain w="preloaded sqlite3 in BEGIN EXCLUSIVE, plain sqlite3 writes"
        else
            writer=pre w="plain sqlite3 in BEGIN EXCLUSIVE, preloaded sqlite3 writes"
        fi
        if hold "$holder" "BEGIN EXCLUSIVE; INSERT INTO t VALUES('$holder');
.print held" sqlite3 -batch "$WORK/m.db"; then
            out=$(sq "$writer" "INSERT INTO t VALUES('w-$holder');")
            rc=$?
            check "$w: the writer gets SQLITE_BUSY" "busy 5" \
                "$(case $out in *"database is locked"*) echo busy ;; *) echo "'$out'" ;; esac) $rc"
            release "COMMIT;"
            # every row whose INSERT reported success is there
            check "$w: after COMMIT, no committed row is lost" \
                "holder 1, writer $([ "$rc" -eq 0 ] && echo 1 || echo 0)" \
                "$(sq plain "SELECT 'holder ' || (SELECT count(*) FROM t WHERE x = '$holder') || ', writer ' || (SELECT count(*) FROM t WHERE x = 'w-$holder');")"
        fi
    done
    check "sqlite3: both sides write again, the database is sound" "2 ok" \
        "$(sq pre "INSERT INTO t VALUES('a');" && sq plain "INSERT INTO t VALUES('b');" &&
            sq pre "SELECT count(*) FROM t WHERE x IN ('a', 'b');" | tr '\n' ' ' &&
            sq plain "PRAGMA integrity_check;")"
fi

# The demo (make demo) with its output in a file, not a terminal: its
# children's results reach the table (they flush before _exit), Linux and
# QNX side by side; without the library it says so and exits 2.
if cc -O1 -Wall -D_GNU_SOURCE -I shim/include -o "$WORK/demo" examples/demo.c 2>"$WORK/demo.cc"; then
    if [ -n "$NOLIB" ]; then
        (cd "$WORK" && timeout 30 ./demo) >"$WORK/demo.out" 2>&1 </dev/null
        rc=$?
        verdict $([ "$rc" -eq 2 ] && echo 0 || echo 1) "demo: without the library it says so (exit $rc)" ||
            sed 's/^/    /' "$WORK/demo.out"
    else
        (cd "$WORK" && timeout 60 env LD_PRELOAD="$LIB" QNXCOMPAT_REGISTRY="$REGISTRY" ./demo) \
            >"$WORK/demo.out" 2>&1 </dev/null
        rc=$?
        n=$(grep -c -E '^[123] ' "$WORK/demo.out")
        verdict $([ "$rc" -eq 0 ] && [ "$n" -eq 3 ] &&
            grep -q 'F_SETLK: EAGAIN' "$WORK/demo.out" && grep -q -- '-1 EACCES' "$WORK/demo.out" &&
            grep -q -- '-1 EINTR' "$WORK/demo.out" && echo 0 || echo 1) \
            "demo: its three parts reach a file, Linux and QNX side by side ($n of 3, exit $rc)" ||
            sed 's/^/    /' "$WORK/demo.out"
    fi
else
    verdict 1 "demo: compiles" || sed 's/^/    /' "$WORK/demo.cc"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
