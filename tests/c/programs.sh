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

# same DESCRIPTION COMMAND...: run natively and under the shim, compare.
same() {
    local what=$1 rc_n rc_s
    shift
    (cd "$WORK" && timeout 30 "$@") >"$WORK/n.out" 2>"$WORK/n.err" </dev/null
    rc_n=$?
    (cd "$WORK" && timeout 30 env LD_PRELOAD="$LIB" QNXCOMPAT_REGISTRY="$REGISTRY" "$@") \
        >"$WORK/s.out" 2>"$WORK/s.err" </dev/null
    rc_s=$?
    if [ "$rc_n" -eq "$rc_s" ] && [ -s "$WORK/n.out" ] &&
        cmp -s "$WORK/n.out" "$WORK/s.out" && cmp -s "$WORK/n.err" "$WORK/s.err"; then
        passed=$((passed + 1))
        echo "PASS programs: $what"
    else
        failed=$((failed + 1))
        echo "FAIL programs: $what (exit status native $rc_n, shim $rc_s)"
        diff -u "$WORK/n.out" "$WORK/s.out" | head -n 40 | sed "s/^/    stdout /"
        diff -u "$WORK/n.err" "$WORK/s.err" | head -n 40 | sed "s/^/    stderr /"
        [ -s "$WORK/n.out" ] || echo "    (no native output)"
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
if command -v python3 >/dev/null 2>&1; then
    same "python3 fcntl/lockf/flock" python3 -c "$PY"
else
    echo "SKIP programs: python3 (not installed)"
fi
if command -v flock >/dev/null 2>&1; then
    same "flock(1)" flock lockfile -c 'echo locked'
    same "flock(1) -n nested" flock -n lockfile2 flock -n -s lockfile3 echo nested
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
