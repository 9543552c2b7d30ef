#!/usr/bin/env bash
# Ordinary programs must run unchanged under the shim.
#
# usage: tests/c/programs.sh LIBPATH [REGISTRY]
#
# Runs each command natively and with LD_PRELOAD=LIBPATH (and
# QNXCOMPAT_REGISTRY=REGISTRY if given) and compares exit status, stdout and
# stderr.  Prints PASS/FAIL per command and the summary "N passed, N failed";
# the exit status is 0 iff nothing failed.  Called by tests/c/run.sh.
set -u -o pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 LIBPATH [REGISTRY]" >&2
    exit 2
fi
LIB=$1
REGISTRY=${2:-qnxcompat-programs-$$}
OWN_REGISTRY=$([ $# -ge 2 ] || echo yes)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/qtest-programs.XXXXXX") || exit 2
cleanup() {
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

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
