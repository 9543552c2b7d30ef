/*
 * t_mirror.c - the kernel mirror: every lock the library grants is also a
 * kernel lock of the same owner, so /proc/locks and lslocks(8) show it:
 *
 *   (a) fcntl F_SETLK / F_SETLKW: a POSIX lock of this pid, READ or WRITE,
 *       on exactly the range (l_len 0: to EOF; l_len < 0, SEEK_CUR,
 *       SEEK_END resolved), split by an unlock in the middle and split by
 *       an upgrade of part of a read lock as the kernel would;
 *   (b) lockf F_TLOCK / F_LOCK: a POSIX WRITE lock (size 0: to EOF, size < 0:
 *       the bytes before the offset); F_ULOCK removes it;
 *   (c) flock: a kernel FLOCK lock of this pid, and (mirror only) a
 *       whole-file OFD lock (OFDLCK 0..EOF) of the same mode, which is what
 *       makes it conflict with POSIX locks of programs outside the library;
 *       LOCK_SH -> LOCK_EX converts both, LOCK_UN removes both;
 *   (d) F_OFD_SETLK: an OFDLCK lock (pid -1) on its range;
 *   (e) QNX rules still hold with the mirror on: an fcntl lock of this
 *       process and a flock of this process on another open of the file
 *       conflict (both ways), and a refused flock leaves no kernel lock; the
 *       first close of any descriptor of the file (close, dup2 over it)
 *       drops the process's fcntl and lockf locks, in the kernel too.
 *
 * Natively every lock is a kernel lock (except the flock's OFD lock, which
 * is the mirror's own); under the shim with QNXCOMPAT_MIRROR=off (run.sh's
 * "mirror-off" run) the kernel sees nothing of ours: every check of (a) to
 * (d) expects no lock at all then.  The library's open-file tokens (OFD
 * locks near 2^63) are never counted.
 *
 * lslocks is checked on one lock of each kind (SKIP if not installed).
 */
#include "qtest.h"

static const char *path;
static int me;
static int lslocks_missing;

/* How many locks the kernel shows for one the library granted. */
static int seen(void) { return qtest_kernel_sees() ? 1 : 0; }

static void check_lslocks(int fd, int want, const char *cls, int type,
                          int pid, long long start, long long end,
                          const char *what, int line)
{
    if (lslocks_missing)
        return;
    /* lslocks reads /proc/locks in pages too (see qtest_kernel_locks): a
     * lock may be missed or doubled while others churn; ask again */
    int c = qtest_lslocks_count(fd, cls, type, pid, start, end);
    for (int i = 0; c >= 0 && c != want && i < 4; i++)
        c = qtest_lslocks_count(fd, cls, type, pid, start, end);
    if (c < 0) {
        lslocks_missing = 1;
        qtest_print("SKIP lslocks checks: lslocks is not installed or failed");
        return;
    }
    qtest_record(c == want, __FILE__, line,
                 "%s: lslocks lists %d %s %s lock(s) of pid %d at %lld..%lld "
                 "(-1: EOF), expected %d", what, c, cls,
                 type == F_WRLCK ? "WRITE" : "READ", pid, start, end, want);
}

#define CHECK_LSLOCKS(fd, want, cls, type, pid, start, end, what)             \
    check_lslocks((fd), (want), (cls), (type), (pid), (start), (end), (what), \
                  __LINE__)

/* No lock of ours of class cls below the tokens. */
#define CHECK_KERNEL_NONE(fd, cls, pid, what)                                 \
    CHECK_KERNEL((fd), 0, (cls), QTEST_KANY, (pid), QTEST_KANY, QTEST_KANY,   \
                 (what))

/* (a) */
static void fcntl_locks(int fd)
{
    int n = seen();
    CHECK_OK(setlk(fd, F_WRLCK, 10, 10));
    CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 10, 19, "F_SETLK write [10,20)");
    CHECK_LSLOCKS(fd, n, "POSIX", F_WRLCK, me, 10, 19, "F_SETLK write [10,20)");
    CHECK_OK(setlk(fd, F_RDLCK, 30, 0));
    CHECK_KERNEL(fd, n, "POSIX", F_RDLCK, me, 30, QTEST_KEOF,
                 "F_SETLK read from 30, l_len 0");
    CHECK_LSLOCKS(fd, n, "POSIX", F_RDLCK, me, 30, QTEST_KEOF,
                  "F_SETLK read from 30, l_len 0");
    CHECK_OK(unlock(fd, 30, 0));
    CHECK_OK(setlkw(fd, F_WRLCK, 50, 10));
    CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 50, 59, "F_SETLKW write [50,60)");
    CHECK_KERNEL(fd, 2 * n, "POSIX", QTEST_KANY, me, QTEST_KANY, QTEST_KANY,
                 "[10,20) and [50,60) held, [30,EOF) unlocked");
    CHECK_OK(unlock(fd, 0, 0));
    CHECK_KERNEL_NONE(fd, "POSIX", me, "after F_UNLCK of the whole file");

    /* an unlock in the middle splits the kernel lock too */
    CHECK_OK(setlk(fd, F_WRLCK, 0, 100));
    CHECK_OK(unlock(fd, 40, 20));
    CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 0, 39, "[0,100) less [40,60)");
    CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 60, 99, "[0,100) less [40,60)");
    CHECK_KERNEL(fd, 2 * n, "POSIX", QTEST_KANY, me, QTEST_KANY, QTEST_KANY,
                 "[0,100) less [40,60): two pieces");
    CHECK_OK(unlock(fd, 0, 0));

    /* a write lock over part of a read lock */
    CHECK_OK(setlk(fd, F_RDLCK, 0, 10));
    CHECK_OK(setlk(fd, F_WRLCK, 5, 10));
    CHECK_KERNEL(fd, n, "POSIX", F_RDLCK, me, 0, 4, "read [0,10), write [5,15)");
    CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 5, 14,
                 "read [0,10), write [5,15)");
    CHECK_OK(unlock(fd, 0, 0));

    /* ranges as the call gives them: SEEK_CUR, SEEK_END, l_len < 0 */
    qtest_seek(fd, 70);
    CHECK_OK(qtest_lk_whence(fd, F_SETLK, F_WRLCK, SEEK_CUR, 5, 5));
    CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 75, 79,
                 "SEEK_CUR 5 (offset 70), l_len 5");
    CHECK_OK(qtest_lk_whence(fd, F_SETLK, F_RDLCK, SEEK_END, -10, 5));
    CHECK_KERNEL(fd, n, "POSIX", F_RDLCK, me, 90, 94,
                 "SEEK_END -10 (size 100), l_len 5");
    CHECK_OK(setlk(fd, F_WRLCK, 20, -10));
    CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 10, 19, "l_start 20, l_len -10");
    CHECK_OK(unlock(fd, 0, 0));
    CHECK_KERNEL_NONE(fd, "POSIX", me, "after F_UNLCK of the whole file");
}

/* (b) */
static void lockf_locks(int fd)
{
    int n = seen();
    CHECK_OK(qtest_lockf_at(fd, 40, F_TLOCK, 5));
    CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 40, 44, "lockf(F_TLOCK, 5) at 40");
    CHECK_LSLOCKS(fd, n, "POSIX", F_WRLCK, me, 40, 44,
                  "lockf(F_TLOCK, 5) at 40");
    CHECK_OK(qtest_lockf_at(fd, 100, F_LOCK, 0));
    CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 100, QTEST_KEOF,
                 "lockf(F_LOCK, 0) at 100");
    CHECK_OK(qtest_lockf_at(fd, 60, F_TLOCK, -10));
    CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 50, 59,
                 "lockf(F_TLOCK, -10) at 60");
    CHECK_OK(qtest_lockf_at(fd, 100, F_ULOCK, 0));
    CHECK_KERNEL(fd, 0, "POSIX", QTEST_KANY, me, 100, QTEST_KEOF,
                 "after lockf(F_ULOCK, 0) at 100");
    CHECK_KERNEL(fd, 2 * n, "POSIX", F_WRLCK, me, QTEST_KANY, QTEST_KANY,
                 "[40,45) and [50,60) still held");
    CHECK_OK(qtest_lockf_at(fd, 0, F_ULOCK, 0));
    CHECK_KERNEL_NONE(fd, "POSIX", me, "after lockf(F_ULOCK, 0) at 0");
}

/* (c): flock on a description of its own */
static void flock_locks(void)
{
    int n = seen(), ofd = qtest_mirror_on() ? 1 : 0;
    int fd = qtest_open(path, O_RDWR);
    CHECK_OK(flock(fd, LOCK_SH));
    CHECK_KERNEL(fd, n, "FLOCK", F_RDLCK, me, 0, QTEST_KEOF, "flock(LOCK_SH)");
    CHECK_LSLOCKS(fd, n, "FLOCK", F_RDLCK, me, 0, QTEST_KEOF, "flock(LOCK_SH)");
    CHECK_KERNEL(fd, ofd, "OFDLCK", F_RDLCK, -1, 0, QTEST_KEOF,
                 "flock(LOCK_SH): the whole-file OFD lock");
    CHECK_LSLOCKS(fd, ofd, "OFDLCK", F_RDLCK, -1, 0, QTEST_KEOF,
                  "flock(LOCK_SH): the whole-file OFD lock");
    CHECK_OK(flock(fd, LOCK_EX));
    CHECK_KERNEL(fd, n, "FLOCK", F_WRLCK, me, 0, QTEST_KEOF,
                 "flock(LOCK_SH) then flock(LOCK_EX)");
    CHECK_KERNEL(fd, ofd, "OFDLCK", F_WRLCK, -1, 0, QTEST_KEOF,
                 "flock(LOCK_EX): the whole-file OFD lock");
    CHECK_KERNEL(fd, 0, NULL, F_RDLCK, QTEST_KANY, QTEST_KANY, QTEST_KANY,
                 "flock(LOCK_EX) over LOCK_SH: no read lock left");
    CHECK_OK(flock(fd, LOCK_UN));
    CHECK_KERNEL_NONE(fd, NULL, QTEST_KANY, "after flock(LOCK_UN)");
    /* and a flock dropped by the last close of its description */
    CHECK_OK(flock(fd, LOCK_EX));
    CHECK_KERNEL(fd, n, "FLOCK", F_WRLCK, me, 0, QTEST_KEOF,
                 "flock(LOCK_EX) again");
    int probe = qtest_open(path, O_RDONLY);
    CHECK_OK(close(fd));
    CHECK_KERNEL_NONE(probe, NULL, QTEST_KANY,
                      "after the close of the flock's only descriptor");
    close(probe);
}

/* (d) */
static void ofd_locks(void)
{
    int n = seen();
    int fd = qtest_open(path, O_RDWR);
    CHECK_OK(qtest_lk(fd, F_OFD_SETLK, F_WRLCK, 200, 10));
    CHECK_KERNEL(fd, n, "OFDLCK", F_WRLCK, -1, 200, 209,
                 "F_OFD_SETLK write [200,210)");
    CHECK_LSLOCKS(fd, n, "OFDLCK", F_WRLCK, -1, 200, 209,
                  "F_OFD_SETLK write [200,210)");
    CHECK_OK(qtest_lk(fd, F_OFD_SETLK, F_RDLCK, 300, 0));
    CHECK_KERNEL(fd, n, "OFDLCK", F_RDLCK, -1, 300, QTEST_KEOF,
                 "F_OFD_SETLK read from 300, l_len 0");
    CHECK_OK(qtest_lk(fd, F_OFD_SETLK, F_UNLCK, 0, 0));
    CHECK_KERNEL_NONE(fd, NULL, QTEST_KANY, "after F_OFD_SETLK F_UNLCK");
    close(fd);
}

/* (e) fcntl and flock of one process conflict under QNX */
static void qnx_flock_vs_fcntl(int fd)
{
    int shim = qtest_mode_shim();
    int fd2 = qtest_open(path, O_RDWR);
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    if (shim) {
        CHECK_ERR(flock(fd2, LOCK_EX | LOCK_NB), EWOULDBLOCK);
        CHECK_KERNEL_NONE(fd, "FLOCK", QTEST_KANY, "a refused flock");
        CHECK_KERNEL(fd, 0, "OFDLCK", QTEST_KANY, -1, 0, QTEST_KEOF,
                     "a refused flock");
    } else {
        CHECK_OK(flock(fd2, LOCK_EX | LOCK_NB));
        CHECK_OK(flock(fd2, LOCK_UN));
    }
    CHECK_KERNEL(fd, seen(), "POSIX", F_WRLCK, me, 0, 9,
                 "our fcntl lock, after the flock attempt");
    CHECK_OK(unlock(fd, 0, 10));
    /* the other way round: our flock, then our fcntl lock */
    CHECK_OK(flock(fd2, LOCK_EX));
    if (shim) {
        CHECK_ERR2(setlk(fd, F_WRLCK, 0, 10), EAGAIN, EACCES);
        CHECK_KERNEL_NONE(fd, "POSIX", me, "a refused F_SETLK");
    } else {
        CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
        CHECK_OK(unlock(fd, 0, 10));
    }
    CHECK_OK(flock(fd2, LOCK_UN));
    close(fd2);
}

/* (e) the first close of any descriptor of the file releases */
static void qnx_first_close(int fd)
{
    int n = seen();
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_OK(qtest_lockf_at(fd, 20, F_TLOCK, 10));
    CHECK_KERNEL(fd, 2 * n, "POSIX", F_WRLCK, me, QTEST_KANY, QTEST_KANY,
                 "fcntl [0,10) and lockf [20,30)");
    int fd2 = qtest_open(path, O_RDONLY);
    CHECK_OK(close(fd2));
    CHECK_KERNEL_NONE(fd, "POSIX", me,
                      "after close() of another descriptor of the file");
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 30);

    CHECK_OK(setlk(fd, F_RDLCK, 0, 10));
    CHECK_KERNEL(fd, n, "POSIX", F_RDLCK, me, 0, 9, "fcntl read [0,10)");
    fd2 = qtest_open(path, O_RDONLY);
    int devnull = qtest_open("/dev/null", O_RDONLY);
    CHECK(dup2(devnull, fd2) == fd2, "dup2 over a descriptor of the file");
    CHECK_KERNEL_NONE(fd, "POSIX", me,
                      "after dup2() over another descriptor of the file");
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
    close(fd2);
    close(devnull);
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    me = (int)getpid();
    int fd = qtest_tmpfile(100, &path);
    qtest_track_path(path); /* removed on a timeout too */
    qtest_print("NOTE mode %s: the kernel %s this process's locks",
                !qtest_mode_shim() ? "native"
                : qtest_mirror_off() ? "shim, QNXCOMPAT_MIRROR=off"
                                     : "shim, mirror on",
                qtest_kernel_sees() ? "sees" : "does not see");
    fcntl_locks(fd);
    lockf_locks(fd);
    flock_locks();
    ofd_locks();
    qnx_flock_vs_fcntl(fd);
    qnx_first_close(fd);
    close(fd);
    return QTEST_DONE();
}
