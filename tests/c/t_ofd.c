/*
 * t_ofd.c - locks owned by the open file that fcntl() takes: QNX's F_FLOCK
 * flag and Linux's OFD commands.
 *
 * QNX-only (lib_ref i/iofunc_lock.html: flock() sends the fcntl lock
 * message with F_FLOCK OR'd into l_type, and for such locks the basis of
 * locking is the open control block, not the process): fcntl(F_SETLK /
 * F_SETLKW) with l_type F_RDLCK|F_FLOCK, F_WRLCK|F_FLOCK or F_UNLCK|F_FLOCK
 * takes or removes a lock on the given range owned by the open file, which
 * is shared by its duplicates and fork children and conflicts with other
 * open files' locks of every kind.  F_GETLK reports such a lock (whether
 * taken by flock() or with F_FLOCK) with the F_FLOCK bit in l_type and the
 * pid of the process that took it.  Natively Linux rejects such an l_type
 * with EINVAL, and its F_GETLK does not see flock() locks.
 *
 * Both modes (Linux fcntl(2), "Open file description locks"): F_OFD_SETLK,
 * F_OFD_SETLKW and F_OFD_GETLK take, wait for and query locks owned by the
 * open file: two opens of a file in one process conflict, duplicates share,
 * the last close releases; F_OFD_GETLK reports l_pid -1 for an OFD lock;
 * l_pid must be 0 on input (else EINVAL); OFD and process locks conflict.
 * QNX-only: OFD locks and flock() locks conflict (one lock list under the
 * shim, independent lists natively).
 */
#include <sys/file.h>

#include "qtest.h"

#define FW (F_WRLCK | F_FLOCK)
#define FR (F_RDLCK | F_FLOCK)
#define FU (F_UNLCK | F_FLOCK)

static const char *path; /* the test file, 100 bytes */
static int fd;           /* the parent's O_RDWR open of it */

/* ---- helpers ---------------------------------------------------------------- */

#define ofd_setlk(f, type, start, len) qtest_lk((f), F_OFD_SETLK, (type), (start), (len))

/* Another process, through its own open of the file, gets `want` from
 * fcntl(cmd, {type, SEEK_SET, start, len}). */
#define CHECK_OTHER(cmd, type, start, len, want)                              \
    CHECK_OTHER_FCNTL_AT(path, cmd, type, start, len, want)

/* Another process's cmd (F_GETLK or F_OFD_GETLK) with a write query on
 * [start, start+len) through its own open reports exactly
 * {type, SEEK_SET, lstart, llen, pid}; type F_UNLCK: no lock. */
#define CHECK_OTHER_GETLK(cmd, start, len, type, lstart, llen, pid)           \
    CHECK_OTHER_GETLK_AT(path, cmd, start, len, type, lstart, llen, pid)

/* This process's F_OFD_GETLK through descriptor f. */
#define CHECK_OFD_GETLK(f, start, len, type, lstart, llen, pid)               \
    do {                                                                      \
        struct flock qt_fl_ = qtest_fl(F_WRLCK, SEEK_SET, (start), (len));    \
        qt_fl_.l_pid = 0;                                                     \
        errno = 0;                                                            \
        int qt_r_ = fcntl((f), F_OFD_GETLK, &qt_fl_) == 0 ? 0 : errno;        \
        qtest_check_answer("F_OFD_GETLK (this process) on fd " #f, qt_r_,     \
                           &qt_fl_, (start), (len), 0, (type), (lstart),      \
                           (llen), (pid), __FILE__, __LINE__);                \
    } while (0)

/* ---- children ---------------------------------------------------------------- */

/* A holder or waiter child (qtest_holder, qtest_waiter) making
 * fcntl(cmd, {type, SEEK_SET, start, len}) through the inherited fd or
 * (inherit 0) through an open of the file of its own. */
#define ACTOR(inherit, cmd, type, start, len)                                 \
    ((struct qtest_actor){qtest_call_fcntl((cmd), (type), (start), (len)),    \
                          fd, (inherit) ? NULL : path, -1})

/* ==== F_FLOCK in fcntl (QNX-only) ============================================ */

static void fflock_child(void *arg)
{
    (void)arg;
    /* the parent's open file's lock is this child's too */
    CHECK_OK(setlk(fd, FW, 0, 10));
    int own = qtest_open(path, O_RDWR);
    CHECK_ERR(setlk(own, FW, 5, 1), EAGAIN);
    CHECK_ERR(setlk(own, F_WRLCK, 5, 1), EAGAIN); /* a process lock */
    CHECK_OK(setlk(own, F_WRLCK, 10, 5));
    close(own);
    /* the child's unlock is the parent's */
    CHECK_OK(setlk(fd, FU, 0, 10));
}

static void fflock_range(void)
{
    int fd2 = qtest_open(path, O_RDWR);

    CHECK_OK(setlk(fd, FW, 0, 10));
    /* another open file in this process is another owner */
    CHECK_ERR(setlk(fd2, FW, 5, 10), EAGAIN);
    CHECK_ERR(setlk(fd2, FR, 9, 1), EAGAIN);
    CHECK_ERR(flock(fd2, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    CHECK_OK(setlk(fd2, FW, 10, 10)); /* only the range is locked */
    CHECK_OK(setlk(fd2, FU, 10, 10));
    /* another process's fcntl locks */
    CHECK_OTHER(F_SETLK, F_WRLCK, 5, 1, EAGAIN);
    CHECK_OTHER(F_SETLK, F_RDLCK, 0, 1, EAGAIN);
    CHECK_OTHER(F_SETLK, F_WRLCK, 10, 5, 0);
    CHECK_OTHER(F_SETLK, FW, 9, 2, EAGAIN);
    CHECK_OTHER_GETLK(F_GETLK, 0, 100, FW, 0, 10, getpid());
    CHECK_OTHER_GETLK(F_GETLK, 10, 90, F_UNLCK, 0, 0, 0);

    /* a duplicate is the same owner */
    int d = dup(fd);
    CHECK_OK(setlk(d, FW, 0, 10));
    CHECK_OK(setlk(d, FW, 5, 10)); /* extends it: [0,15) */
    CHECK_OTHER_GETLK(F_GETLK, 0, 100, FW, 0, 15, getpid());
    CHECK_OK(close(d)); /* not the last descriptor: the lock stays */
    CHECK_ERR(setlk(fd2, FW, 12, 1), EAGAIN);
    d = dup(fd);
    CHECK_OK(setlk(d, FU, 0, 15));
    CHECK_OK(setlk(fd2, FW, 0, 15));
    CHECK_OK(setlk(fd2, FU, 0, 15));
    CHECK_OK(close(d));

    /* shared read locks */
    CHECK_OK(setlk(fd, FR, 0, 10));
    CHECK_OK(setlk(fd2, FR, 5, 10));
    CHECK_OTHER(F_SETLK, F_RDLCK, 0, 20, 0);
    CHECK_OTHER(F_SETLK, F_WRLCK, 12, 1, EAGAIN);
    CHECK_ERR(setlk(fd2, FW, 0, 1), EAGAIN);
    CHECK_OK(setlk(fd2, FU, 0, 0));
    CHECK_OTHER_GETLK(F_GETLK, 0, 0, FR, 0, 10, getpid());
    CHECK_OK(setlk(fd, FU, 0, 0));
    CHECK_OTHER(F_SETLK, F_WRLCK, 0, 0, 0);

    /* a fork child shares it, and its unlock is ours */
    CHECK_OK(setlk(fd, FW, 0, 10));
    RUN_IN_CHILD(fflock_child, NULL);
    CHECK_OTHER(F_SETLK, F_WRLCK, 0, 10, 0);
    CHECK_OK(setlk(fd2, FW, 0, 10));
    CHECK_OK(setlk(fd2, FU, 0, 10));

    /* released by the last close of its open file only */
    int a = qtest_open(path, O_RDWR);
    CHECK_OK(setlk(a, FW, 20, 10));
    CHECK_OK(close(fd2)); /* another open of the file: nothing changes */
    CHECK_OTHER(F_SETLK, F_WRLCK, 25, 1, EAGAIN);
    CHECK_OK(close(a));
    CHECK_OTHER(F_SETLK, F_WRLCK, 25, 1, 0);

    /* F_FLOCK unlocks take a range out of a flock() lock */
    CHECK_OK(flock(fd, LOCK_EX));
    CHECK_OK(setlk(fd, FU, 0, 10));
    CHECK_OTHER(F_SETLK, F_WRLCK, 0, 10, 0);
    CHECK_OTHER(F_SETLK, F_WRLCK, 10, 1, EAGAIN);
    CHECK_OTHER_GETLK(F_GETLK, 0, 0, FW, 10, 0, getpid());
    CHECK_OK(setlk(fd, FU, 0, 0));
    CHECK_OTHER(F_SETLK, F_WRLCK, 0, 0, 0);
    CHECK_OK(flock(fd, LOCK_SH));
    CHECK_OK(setlk(fd, FU, 0, 0)); /* = flock(LOCK_UN) */
    CHECK_OTHER(F_SETLK, F_WRLCK, 0, 0, 0);
}

/* A blocking request for an open file's lock (F_SETLKW with F_FLOCK, or
 * F_OFD_SETLKW) waits for another open file's lock on [5,15) and is
 * granted, for that open file, when the lock goes.  F_GETLK reports an
 * F_FLOCK lock with the pid of the process that took it, F_OFD_GETLK an OFD
 * lock with -1. */
static void open_file_wait(int ofd)
{
    int cmd = ofd ? F_OFD_SETLK : F_SETLK;
    short wr = ofd ? F_WRLCK : FW, rd = ofd ? F_RDLCK : FR;
    short un = ofd ? F_UNLCK : FU;
    const char *what = ofd ? "F_OFD_SETLKW" : "F_SETLKW F_WRLCK|F_FLOCK";
    struct qtest_actor w = ACTOR(0, ofd ? F_OFD_SETLKW : F_SETLKW, wr, 0, 10);
    CHECK_OK(qtest_lk(fd, cmd, wr, 5, 10));
    qtest_child c = CHECK_START_WAITER(w);
    CHECK(qtest_wait_blocked(&c), "%s granted while another open file holds "
          "[5,15)", what);
    double t0 = qtest_now_ms();
    CHECK_OK(qtest_lk(fd, cmd, un, 5, 10));
    CHECK_GRANTED(&c, t0, what);
    CHECK_OTHER_GETLK(ofd ? F_OFD_GETLK : F_GETLK, 0, 0, wr, 0, 10,
                      ofd ? -1 : c.pid);
    CHECK_ERR(qtest_lk(fd, cmd, rd, 9, 1), EAGAIN);
    CHECK_CHILD_FINISH(&c);
    CHECK_OTHER(cmd, F_WRLCK, 0, 0, 0);
}

/* another process holds a process lock; our F_FLOCK requests */
static void fflock_vs_process_lock(void)
{
    qtest_child h;
    h = CHECK_START_HOLDER(ACTOR(0, F_SETLK, F_WRLCK, 0, 10));
    CHECK_ERR(setlk(fd, FW, 5, 1), EAGAIN);
    CHECK_ERR(setlk(fd, FR, 0, 0), EAGAIN);
    CHECK_OK(setlk(fd, FW, 10, 10));
    CHECK_OK(setlk(fd, FU, 10, 10));
    CHECK_HOLDER_RELEASE(&h);
    CHECK_OK(setlk(fd, FW, 0, 10));
    CHECK_OK(setlk(fd, FU, 0, 10));
    CHECK_CHILD_FINISH(&h);
}

static void fflock_native(void)
{
    /* Linux knows no F_FLOCK: an l_type with it is invalid */
    CHECK_ERR(setlk(fd, FW, 0, 10), EINVAL);
    CHECK_ERR(setlk(fd, FR, 0, 10), EINVAL);
    CHECK_ERR(setlk(fd, FU, 0, 10), EINVAL);
    CHECK_ERR(setlkw(fd, FW, 0, 10), EINVAL);
    struct flock fl = qtest_fl(FW, SEEK_SET, 0, 10);
    CHECK_ERR(fcntl(fd, F_GETLK, &fl), EINVAL);
    CHECK_OTHER(F_SETLK, F_WRLCK, 0, 0, 0);
}

/* F_GETLK finds flock() locks (QNX) or not (Linux) */
static void child_flocks(void *arg)
{
    (void)arg;
    CHECK_OK(flock(fd, LOCK_EX));
    child_say('L');
    child_await('Q', 30000);
}

static void getlk_reports_flock(void)
{
    int qnx = qtest_mode_shim();

    CHECK_OK(flock(fd, LOCK_EX));
    if (qnx) {
        CHECK_OTHER_GETLK(F_GETLK, 0, 10, FW, 0, 0, getpid());
        CHECK_OTHER_GETLK(F_GETLK, 1 << 20, 1, FW, 0, 0, getpid());
        struct flock fl;
        int r = qtest_probe_query(-1, path, F_GETLK, F_RDLCK, 0, 0, &fl);
        qtest_check_answer("other process, own open file: F_GETLK (read "
                           "query)", r, &fl, 0, 0, -7, FW, 0, 0, getpid(),
                           __FILE__, __LINE__);
    } else {
        CHECK_OTHER_GETLK(F_GETLK, 0, 10, F_UNLCK, 0, 0, 0);
        CHECK_OTHER_GETLK(F_GETLK, 1 << 20, 1, F_UNLCK, 0, 0, 0);
    }
    CHECK_OK(flock(fd, LOCK_SH));
    if (qnx) {
        CHECK_OTHER_GETLK(F_GETLK, 0, 10, FR, 0, 0, getpid());
        struct flock fl;
        int r = qtest_probe_query(-1, path, F_GETLK, F_RDLCK, 0, 0, &fl);
        qtest_check_answer("other process, own open file: F_GETLK (read "
                           "query)", r, &fl, 0, 0, -7, F_UNLCK, 0, 0, 0,
                           __FILE__, __LINE__);
    } else {
        CHECK_OTHER_GETLK(F_GETLK, 0, 10, F_UNLCK, 0, 0, 0);
    }
    CHECK_OK(flock(fd, LOCK_UN));
    CHECK_OTHER_GETLK(F_GETLK, 0, 0, F_UNLCK, 0, 0, 0);

    /* taken by a fork child through the shared open file: its pid */
    qtest_child c = qtest_child_start(child_flocks, NULL);
    CHECK_HEAR(&c, 'L', 5000, NULL);
    if (qnx)
        CHECK_OTHER_GETLK(F_GETLK, 0, 10, FW, 0, 0, c.pid);
    else
        CHECK_OTHER_GETLK(F_GETLK, 0, 10, F_UNLCK, 0, 0, 0);
    CHECK_CHILD_FINISH(&c);
    CHECK_OK(flock(fd, LOCK_UN)); /* ours: the child's exit left it */
    CHECK_OTHER_GETLK(F_GETLK, 0, 0, F_UNLCK, 0, 0, 0);

    /* taken with F_FLOCK by a fork child */
    if (qnx) {
        c = CHECK_START_HOLDER(ACTOR(1, F_SETLK, FW, 30, 10));
        CHECK_OTHER_GETLK(F_GETLK, 0, 0, FW, 30, 10, c.pid);
        CHECK_CHILD_FINISH(&c);
        /* the lock is the open file's: still there after the child left */
        CHECK_OTHER(F_SETLK, F_WRLCK, 35, 1, EAGAIN);
        CHECK_OK(setlk(fd, FU, 30, 10));
        CHECK_OTHER_GETLK(F_GETLK, 0, 0, F_UNLCK, 0, 0, 0);
    }
}

/* ==== OFD commands (both modes) =============================================== */

/* A plain F_GETLK (through f, or if f < 0 by another process through its
 * own open) finds our OFD write lock on [0,10) and reports it as Linux
 * does: {F_WRLCK, SEEK_SET, 0, 10, l_pid -1}, no F_FLOCK. */
static void getlk_sees_ofd_lock(int f)
{
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 5, 1);
    int r;
    if (f >= 0) {
        fl.l_pid = -7;
        r = fcntl(f, F_GETLK, &fl) == 0 ? 0 : errno;
    } else {
        r = qtest_probe_query(-1, path, F_GETLK, F_WRLCK, 5, 1, &fl);
    }
    qtest_check_answer(f >= 0 ? "F_GETLK in this process"
                              : "other process, own open file: F_GETLK",
                       r, &fl, 5, 1, -7, F_WRLCK, 0, 10, -1, __FILE__,
                       __LINE__);
}

static void ofd_basics(void)
{
    int fd2 = qtest_open(path, O_RDWR);

    CHECK_OK(ofd_setlk(fd, F_WRLCK, 0, 10));
    CHECK_ERR(ofd_setlk(fd2, F_WRLCK, 5, 10), EAGAIN);
    CHECK_ERR(ofd_setlk(fd2, F_RDLCK, 9, 1), EAGAIN);
    CHECK_OK(ofd_setlk(fd2, F_WRLCK, 10, 5));
    CHECK_OK(ofd_setlk(fd2, F_UNLCK, 10, 5));
    CHECK_OFD_GETLK(fd2, 0, 100, F_WRLCK, 0, 10, -1);
    CHECK_OFD_GETLK(fd, 0, 100, F_UNLCK, 0, 0, 0); /* its own lock */
    CHECK_OFD_GETLK(fd2, 10, 100, F_UNLCK, 0, 0, 0);
    CHECK_OTHER_GETLK(F_OFD_GETLK, 5, 1, F_WRLCK, 0, 10, -1);
    getlk_sees_ofd_lock(-1);
    CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 9, 1, EAGAIN);
    CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 10, 1, 0);

    /* same owner: downgrade, extend, split */
    CHECK_OK(ofd_setlk(fd, F_RDLCK, 0, 10));
    CHECK_OK(ofd_setlk(fd2, F_RDLCK, 0, 10));
    CHECK_ERR(ofd_setlk(fd2, F_WRLCK, 0, 1), EAGAIN);
    CHECK_OK(ofd_setlk(fd2, F_UNLCK, 0, 0));
    CHECK_OK(ofd_setlk(fd, F_WRLCK, 0, 20));
    CHECK_OK(ofd_setlk(fd, F_UNLCK, 5, 5));
    CHECK_OFD_GETLK(fd2, 0, 100, F_WRLCK, 0, 5, -1);
    CHECK_OFD_GETLK(fd2, 5, 100, F_WRLCK, 10, 10, -1);
    CHECK_OK(ofd_setlk(fd2, F_WRLCK, 5, 5));
    CHECK_OK(ofd_setlk(fd2, F_UNLCK, 0, 0));
    CHECK_OK(ofd_setlk(fd, F_UNLCK, 0, 0));
    CHECK_OK(ofd_setlk(fd2, F_WRLCK, 0, 0));
    CHECK_OK(ofd_setlk(fd2, F_UNLCK, 0, 0));
    close(fd2);
}

static void ofd_lpid(void)
{
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    fl.l_pid = getpid();
    CHECK_ERR(fcntl(fd, F_OFD_SETLK, &fl), EINVAL);
    fl.l_pid = -1;
    CHECK_ERR(fcntl(fd, F_OFD_SETLK, &fl), EINVAL);
    fl.l_pid = 1;
    CHECK_ERR(fcntl(fd, F_OFD_SETLKW, &fl), EINVAL);
    fl.l_type = F_UNLCK;
    CHECK_ERR(fcntl(fd, F_OFD_SETLK, &fl), EINVAL);
    fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    fl.l_pid = getpid();
    CHECK_ERR(fcntl(fd, F_OFD_GETLK, &fl), EINVAL);
    CHECK_OTHER(F_SETLK, F_WRLCK, 0, 0, 0); /* nothing was taken */
}

static void ofd_child_unlocks(void *arg)
{
    (void)arg;
    CHECK_OK(ofd_setlk(fd, F_WRLCK, 0, 10)); /* the same lock */
    CHECK_OK(ofd_setlk(fd, F_UNLCK, 0, 10));
}

static void ofd_sharing(void)
{
    int fd2 = qtest_open(path, O_RDWR);

    /* duplicates share; the last close releases */
    CHECK_OK(ofd_setlk(fd, F_WRLCK, 0, 10));
    int d = dup(fd);
    CHECK_OK(ofd_setlk(d, F_WRLCK, 0, 10));
    CHECK_OK(close(d));
    CHECK_ERR(ofd_setlk(fd2, F_WRLCK, 0, 10), EAGAIN);
    d = fcntl(fd, F_DUPFD_CLOEXEC, 40);
    CHECK_OK(ofd_setlk(d, F_UNLCK, 0, 10));
    CHECK_OK(ofd_setlk(fd2, F_WRLCK, 0, 10));
    CHECK_OK(ofd_setlk(fd2, F_UNLCK, 0, 10));
    CHECK_OK(close(d));

    int a = qtest_open(path, O_RDWR);
    CHECK_OK(ofd_setlk(a, F_WRLCK, 0, 10));
    int b = dup(a);
    CHECK_OK(close(fd2)); /* another open of the file: nothing changes */
    CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 0, 10, EAGAIN);
    CHECK_OK(close(a));
    CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 0, 10, EAGAIN);
    CHECK_OK(close(b));
    CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 0, 10, 0);

    /* a fork child shares it; its unlock is ours */
    CHECK_OK(ofd_setlk(fd, F_WRLCK, 0, 10));
    RUN_IN_CHILD(ofd_child_unlocks, NULL);
    CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 0, 10, 0);

    /* the child keeps it after we close ours, until it exits */
    a = qtest_open(path, O_RDWR);
    CHECK_OK(ofd_setlk(a, F_WRLCK, 0, 10));
    int saved = fd;
    fd = a; /* the holder child inherits `a` as its fd */
    qtest_child c;
    c = CHECK_START_HOLDER(ACTOR(1, F_OFD_SETLK, F_WRLCK, 20, 10));
    fd = saved;
    CHECK_OK(close(a));
    CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 5, 1, EAGAIN);
    CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 25, 1, EAGAIN);
    CHECK_OTHER_GETLK(F_OFD_GETLK, 0, 0, F_WRLCK, 0, 10, -1);
    CHECK_CHILD_FINISH(&c);
    CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 0, 0, 0);
}

static void ofd_vs_process_locks(void)
{
    int fd2 = qtest_open(path, O_RDWR);
    qtest_child h;

    /* our OFD lock against process locks: of another process, and ours */
    CHECK_OK(ofd_setlk(fd, F_WRLCK, 0, 10));
    CHECK_OTHER(F_SETLK, F_WRLCK, 5, 1, EAGAIN);
    CHECK_OTHER(F_SETLK, F_RDLCK, 0, 1, EAGAIN);
    CHECK_OTHER(F_SETLK, F_WRLCK, 10, 1, 0);
    CHECK_ERR(setlk(fd2, F_WRLCK, 0, 10), EAGAIN);
    CHECK_ERR(setlk(fd, F_WRLCK, 0, 10), EAGAIN);
    getlk_sees_ofd_lock(fd2);
    CHECK_OK(ofd_setlk(fd, F_UNLCK, 0, 10));

    /* process locks against our OFD requests */
    h = CHECK_START_HOLDER(ACTOR(0, F_SETLK, F_WRLCK, 0, 10));
    CHECK_ERR(ofd_setlk(fd, F_WRLCK, 5, 1), EAGAIN);
    CHECK_ERR(ofd_setlk(fd, F_RDLCK, 0, 0), EAGAIN);
    CHECK_OFD_GETLK(fd, 0, 0, F_WRLCK, 0, 10, h.pid);
    CHECK_HOLDER_RELEASE(&h);
    CHECK_OK(ofd_setlk(fd, F_WRLCK, 0, 10));
    CHECK_OK(ofd_setlk(fd, F_UNLCK, 0, 10));
    CHECK_CHILD_FINISH(&h);

    CHECK_OK(setlk(fd, F_WRLCK, 20, 10)); /* this process's own lock */
    CHECK_ERR(ofd_setlk(fd2, F_WRLCK, 25, 1), EAGAIN);
    CHECK_ERR(ofd_setlk(fd, F_WRLCK, 25, 1), EAGAIN);
    CHECK_OFD_GETLK(fd2, 0, 0, F_WRLCK, 20, 10, getpid());
    CHECK_OK(unlock(fd, 20, 10));
    CHECK_OK(ofd_setlk(fd2, F_WRLCK, 25, 1));
    CHECK_OK(ofd_setlk(fd2, F_UNLCK, 25, 1));
    /* shared read locks of both kinds */
    CHECK_OK(setlk(fd, F_RDLCK, 0, 10));
    CHECK_OK(ofd_setlk(fd2, F_RDLCK, 5, 10));
    CHECK_OTHER(F_SETLK, F_WRLCK, 12, 1, EAGAIN);
    CHECK_OK(ofd_setlk(fd2, F_UNLCK, 0, 0));
    CHECK_OK(unlock(fd, 0, 10));
    close(fd2); /* releases this process's locks: none left */
    CHECK_OTHER(F_SETLK, F_WRLCK, 0, 0, 0);
}

/* OFD locks and flock(): one list under QNX, independent on Linux */
static void ofd_vs_flock(void)
{
    int fd2 = qtest_open(path, O_RDWR);

    CHECK_OK(flock(fd, LOCK_EX));
    if (qtest_mode_shim()) {
        CHECK_ERR(ofd_setlk(fd2, F_WRLCK, 0, 10), EAGAIN);
        CHECK_ERR(ofd_setlk(fd2, F_RDLCK, 50, 0), EAGAIN);
        CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 1 << 20, 1, EAGAIN);
    } else {
        CHECK_OK(ofd_setlk(fd2, F_WRLCK, 0, 10));
        CHECK_OK(ofd_setlk(fd2, F_UNLCK, 0, 10));
        CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 1 << 20, 1, 0);
    }
    CHECK_OK(flock(fd, LOCK_SH));
    CHECK_OK(ofd_setlk(fd2, F_RDLCK, 0, 10)); /* read locks share */
    CHECK_OK(ofd_setlk(fd2, F_UNLCK, 0, 10));
    CHECK_OK(flock(fd, LOCK_UN));

    CHECK_OK(ofd_setlk(fd, F_WRLCK, 50, 10));
    if (qtest_mode_shim()) {
        CHECK_ERR(flock(fd2, LOCK_EX | LOCK_NB), EWOULDBLOCK);
        CHECK_ERR(flock(fd2, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    } else {
        CHECK_OK(flock(fd2, LOCK_EX | LOCK_NB));
        CHECK_OK(flock(fd2, LOCK_UN));
    }
    CHECK_OK(ofd_setlk(fd, F_RDLCK, 50, 10));
    CHECK_OK(flock(fd2, LOCK_SH | LOCK_NB));
    CHECK_OK(flock(fd2, LOCK_UN));
    CHECK_OK(ofd_setlk(fd, F_UNLCK, 50, 10));
    CHECK_OK(flock(fd2, LOCK_EX | LOCK_NB));
    CHECK_OK(flock(fd2, LOCK_UN));
    close(fd2);
}

int main(void)
{
    qtest_init();
    fd = qtest_tmpfile(100, &path);
    if (qtest_mode_shim()) {
        fflock_range();
        open_file_wait(0);
        fflock_vs_process_lock();
    } else {
        fflock_native();
    }
    getlk_reports_flock();
    ofd_basics();
    ofd_lpid();
    ofd_sharing();
    ofd_vs_process_locks();
    open_file_wait(1);
    ofd_vs_flock();
    close(fd);
    return QTEST_DONE();
}
