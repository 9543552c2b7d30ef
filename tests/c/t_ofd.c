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

static const char *tname(int t)
{
    static char bufs[4][32];
    static int next;
    char *b = bufs[next++ & 3];
    const char *base = qtest_typename(t & ~F_FLOCK);
    if (strcmp(base, "?") == 0)
        snprintf(b, sizeof bufs[0], "%#x", t);
    else
        snprintf(b, sizeof bufs[0], "%s%s", base, t & F_FLOCK ? "|F_FLOCK" : "");
    return b;
}

static const char *cmdname(int cmd)
{
    switch (cmd) {
    case F_SETLK: return "F_SETLK";
    case F_SETLKW: return "F_SETLKW";
    case F_GETLK: return "F_GETLK";
    case F_OFD_SETLK: return "F_OFD_SETLK";
    case F_OFD_SETLKW: return "F_OFD_SETLKW";
    case F_OFD_GETLK: return "F_OFD_GETLK";
    default: return "?";
    }
}

static const char *resname(int r)
{
    return r < 0 ? "probe died" : r == 0 ? "0" : qtest_errname(r);
}

/* fcntl(f, cmd, {type, SEEK_SET, start, len, l_pid 0}) */
static int lk(int f, int cmd, short type, off_t start, off_t len)
{
    struct flock fl = qtest_fl(type, SEEK_SET, start, len);
    fl.l_pid = 0;
    return fcntl(f, cmd, &fl);
}

#define ofd_setlk(f, type, start, len) lk((f), F_OFD_SETLK, (type), (start), (len))

/* Another process opens the file (O_RDWR) and calls
 * fcntl(cmd, {type, SEEK_SET, start, len}); a lock it gets is dropped
 * again.  Returns 0, the errno of a -1 return, or -1 if it died. */
static int probe_setlk(int cmd, short type, off_t start, off_t len)
{
    pid_t pid = fork();
    if (pid < 0)
        qtest_fatal("fork");
    if (pid == 0) {
        alarm(QTEST_CHILD_TIMEOUT_S);
        int pfd = open(path, O_RDWR);
        if (pfd < 0)
            _exit(255);
        int r = lk(pfd, cmd, type, start, len);
        int e = errno;
        if (r == 0)
            lk(pfd, cmd, (type & F_FLOCK) | F_UNLCK, start, len);
        close(pfd);
        _exit(r == 0 ? 0 : r == -1 ? (e & 0xff) : 255);
    }
    int st = qtest_wait(pid, QTEST_WAIT_MS);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) == 255)
        return -1;
    return WEXITSTATUS(st);
}

/* Another process, through its own open of the file, gets `want` from
 * fcntl(cmd, {type, SEEK_SET, start, len}). */
#define CHECK_OTHER(cmd, type, start, len, want)                              \
    do {                                                                      \
        int qt_r_ = probe_setlk((cmd), (type), (start), (len));               \
        CHECK(qt_r_ == (want),                                                \
              "other process, own open file: %s %s start=%lld len=%lld: "     \
              "expected %s, got %s",                                          \
              cmdname(cmd), tname(type), (long long)(start),                  \
              (long long)(len), resname(want), resname(qt_r_));               \
    } while (0)

/* Another process opens the file and asks fcntl(cmd) (F_GETLK or
 * F_OFD_GETLK) about {qtype, SEEK_SET, start, len}; the answer goes to
 * *out.  l_pid is prefilled with -7 for F_GETLK (0 for F_OFD_GETLK, which
 * requires it) so that a "free" answer can be seen to leave it alone. */
static int probe_getlk(int cmd, short qtype, off_t start, off_t len,
                       struct flock *out)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        qtest_fatal("pipe");
    pid_t pid = fork();
    if (pid < 0)
        qtest_fatal("fork");
    if (pid == 0) {
        alarm(QTEST_CHILD_TIMEOUT_S);
        close(p[0]);
        int pfd = open(path, O_RDWR);
        if (pfd < 0)
            _exit(255);
        struct flock fl = qtest_fl(qtype, SEEK_SET, start, len);
        fl.l_pid = cmd == F_OFD_GETLK ? 0 : -7;
        int r = fcntl(pfd, cmd, &fl);
        int e = r == -1 ? errno : 0;
        ssize_t w = write(p[1], &fl, sizeof fl);
        (void)w;
        _exit(r == 0 ? 0 : r == -1 ? (e & 0xff) : 255);
    }
    close(p[1]);
    memset(out, 0, sizeof *out);
    out->l_type = -1;
    struct pollfd pf = {p[0], POLLIN, 0};
    if (poll(&pf, 1, QTEST_WAIT_MS) == 1) {
        ssize_t n = read(p[0], out, sizeof *out);
        (void)n;
    }
    close(p[0]);
    int st = qtest_wait(pid, QTEST_WAIT_MS);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) == 255)
        return -1;
    return WEXITSTATUS(st);
}

/* CHECK a struct flock returned by a query: want_type F_UNLCK means "free",
 * i.e. only l_type changed (from the query {start, len, upid}). */
static void check_answer(const char *who, int r, const struct flock *fl,
                         off_t start, off_t len, pid_t upid, int want_type,
                         off_t want_start, off_t want_len, pid_t want_pid,
                         const char *file, int line)
{
    int ok;
    char want[160];
    if (want_type == F_UNLCK) {
        ok = r == 0 && fl->l_type == F_UNLCK && fl->l_whence == SEEK_SET &&
             fl->l_start == start && fl->l_len == len && fl->l_pid == upid;
        snprintf(want, sizeof want, "no lock {F_UNLCK, whence=0, start=%lld, "
                 "len=%lld, pid=%d (unchanged)}", (long long)start,
                 (long long)len, (int)upid);
    } else {
        ok = r == 0 && fl->l_type == want_type && fl->l_whence == SEEK_SET &&
             fl->l_start == want_start && fl->l_len == want_len &&
             fl->l_pid == want_pid;
        snprintf(want, sizeof want, "{%s, whence=0, start=%lld, len=%lld, "
                 "pid=%d}", tname(want_type), (long long)want_start,
                 (long long)want_len, (int)want_pid);
    }
    qtest_record(ok, file, line,
                 "%s start=%lld len=%lld: expected %s, got rc=%s {%s, "
                 "whence=%d, start=%lld, len=%lld, pid=%d}",
                 who, (long long)start, (long long)len, want, resname(r),
                 tname(fl->l_type), fl->l_whence, (long long)fl->l_start,
                 (long long)fl->l_len, (int)fl->l_pid);
}

/* Another process's cmd (F_GETLK or F_OFD_GETLK) with a write query on
 * [start, start+len) through its own open reports exactly
 * {type, SEEK_SET, lstart, llen, pid}; type F_UNLCK: no lock. */
#define CHECK_OTHER_GETLK(cmd, start, len, type, lstart, llen, pid)           \
    do {                                                                      \
        struct flock qt_fl_;                                                  \
        int qt_r_ = probe_getlk((cmd), F_WRLCK, (start), (len), &qt_fl_);     \
        char qt_who_[80];                                                     \
        snprintf(qt_who_, sizeof qt_who_, "other process, own open file: %s", \
                 cmdname(cmd));                                               \
        check_answer(qt_who_, qt_r_, &qt_fl_, (start), (len),                 \
                     (cmd) == F_OFD_GETLK ? 0 : -7, (type), (lstart), (llen), \
                     (pid), __FILE__, __LINE__);                              \
    } while (0)

/* This process's F_OFD_GETLK through descriptor f. */
#define CHECK_OFD_GETLK(f, start, len, type, lstart, llen, pid)               \
    do {                                                                      \
        struct flock qt_fl_ = qtest_fl(F_WRLCK, SEEK_SET, (start), (len));    \
        qt_fl_.l_pid = 0;                                                     \
        errno = 0;                                                            \
        int qt_r_ = fcntl((f), F_OFD_GETLK, &qt_fl_) == 0 ? 0 : errno;        \
        check_answer("F_OFD_GETLK (this process) on fd " #f, qt_r_, &qt_fl_,  \
                     (start), (len), 0, (type), (lstart), (llen), (pid),      \
                     __FILE__, __LINE__);                                     \
    } while (0)

/* ---- children ---------------------------------------------------------------- */

struct hold {
    int cmd;    /* F_SETLK, F_OFD_SETLK */
    short type; /* may carry F_FLOCK */
    off_t start, len;
    int inherit; /* 1: through the inherited fd; 0: its own open */
};

/* Child: take the lock, report 'L'; on 'U' remove it, report 'u'; 'Q' ends. */
static void holder(void *arg)
{
    const struct hold *h = arg;
    int hfd = h->inherit ? fd : qtest_open(path, O_RDWR);
    int r = lk(hfd, h->cmd, h->type, h->start, h->len);
    child_report('L', r, errno);
    for (;;) {
        struct qtest_msg m;
        if (qtest_get(qtest_down_fd, 30000, &m) != 1 || m.tag == 'Q')
            return;
        if (m.tag == 'U') {
            r = lk(hfd, h->cmd, (h->type & F_FLOCK) | F_UNLCK, h->start, h->len);
            child_report('u', r, errno);
        }
    }
}

#define START_HOLDER(c, ...)                                                  \
    do {                                                                      \
        struct hold qt_h_ = {__VA_ARGS__};                                    \
        struct qtest_msg qt_m_;                                               \
        *(c) = qtest_child_start(holder, &qt_h_);                             \
        if (CHECK_HEAR((c), 'L', 5000, &qt_m_))                               \
            CHECK(qt_m_.val == 0, "holder: taking its lock gave %lld %s",     \
                  qt_m_.val, qtest_errname(qt_m_.err));                       \
    } while (0)

#define HOLDER_RELEASE(c)                                                     \
    do {                                                                      \
        struct qtest_msg qt_m_;                                               \
        qtest_say((c), 'U');                                                  \
        if (CHECK_HEAR((c), 'u', 5000, &qt_m_))                               \
            CHECK(qt_m_.val == 0, "holder: releasing its lock gave %lld %s",  \
                  qt_m_.val, qtest_errname(qt_m_.err));                       \
    } while (0)

/* Child: own open; announce 'R', blocking cmd (F_SETLKW or F_OFD_SETLKW)
 * for a write lock on [0,10) (type from arg), report 'G', hold until 'Q'. */
struct wait_req {
    int cmd;
    short type;
};

static void waiter(void *arg)
{
    const struct wait_req *w = arg;
    int wfd = qtest_open(path, O_RDWR);
    child_say('R');
    int r = lk(wfd, w->cmd, w->type, 0, 10);
    child_report('G', r, errno);
    child_await('Q', 30000);
}

static void check_granted(qtest_child *c, double t0, const char *what)
{
    struct qtest_msg m;
    if (CHECK_HEAR(c, 'G', 5000, &m)) {
        double dt = qtest_now_ms() - t0;
        CHECK(m.val == 0, "%s: blocked request returned %lld %s", what, m.val,
              qtest_errname(m.err));
        CHECK(dt < 2000, "%s: granted %.0f ms after the release", what, dt);
    }
}

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

/* F_SETLKW with F_FLOCK waits for another open file's lock */
static void fflock_wait(void)
{
    struct wait_req w = {F_SETLKW, FW};
    CHECK_OK(setlk(fd, FW, 5, 10));
    qtest_child c = qtest_child_start(waiter, &w);
    CHECK_HEAR(&c, 'R', 5000, NULL);
    CHECK(qtest_wait_blocked(&c), "F_SETLKW F_WRLCK|F_FLOCK granted while "
          "another open file holds [5,15)");
    double t0 = qtest_now_ms();
    CHECK_OK(setlk(fd, FU, 5, 10));
    check_granted(&c, t0, "F_SETLKW F_WRLCK|F_FLOCK");
    CHECK_OTHER_GETLK(F_GETLK, 0, 0, FW, 0, 10, c.pid);
    CHECK_ERR(setlk(fd, FR, 9, 1), EAGAIN);
    CHECK_CHILD_FINISH(&c);
    CHECK_OTHER(F_SETLK, F_WRLCK, 0, 0, 0);
}

/* another process holds a process lock; our F_FLOCK requests */
static void fflock_vs_process_lock(void)
{
    qtest_child h;
    START_HOLDER(&h, F_SETLK, F_WRLCK, 0, 10, 0);
    CHECK_ERR(setlk(fd, FW, 5, 1), EAGAIN);
    CHECK_ERR(setlk(fd, FR, 0, 0), EAGAIN);
    CHECK_OK(setlk(fd, FW, 10, 10));
    CHECK_OK(setlk(fd, FU, 10, 10));
    HOLDER_RELEASE(&h);
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
        int r = probe_getlk(F_GETLK, F_RDLCK, 0, 0, &fl);
        check_answer("other process, own open file: F_GETLK (read query)", r,
                     &fl, 0, 0, -7, FW, 0, 0, getpid(), __FILE__, __LINE__);
    } else {
        CHECK_OTHER_GETLK(F_GETLK, 0, 10, F_UNLCK, 0, 0, 0);
        CHECK_OTHER_GETLK(F_GETLK, 1 << 20, 1, F_UNLCK, 0, 0, 0);
    }
    CHECK_OK(flock(fd, LOCK_SH));
    if (qnx) {
        CHECK_OTHER_GETLK(F_GETLK, 0, 10, FR, 0, 0, getpid());
        struct flock fl;
        int r = probe_getlk(F_GETLK, F_RDLCK, 0, 0, &fl);
        check_answer("other process, own open file: F_GETLK (read query)", r,
                     &fl, 0, 0, -7, F_UNLCK, 0, 0, 0, __FILE__, __LINE__);
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
        START_HOLDER(&c, F_SETLK, FW, 30, 10, 1);
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
        r = probe_getlk(F_GETLK, F_WRLCK, 5, 1, &fl);
    }
    check_answer(f >= 0 ? "F_GETLK in this process"
                        : "other process, own open file: F_GETLK",
                 r, &fl, 5, 1, -7, F_WRLCK, 0, 10, -1, __FILE__, __LINE__);
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
    START_HOLDER(&c, F_OFD_SETLK, F_WRLCK, 20, 10, 1);
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
    START_HOLDER(&h, F_SETLK, F_WRLCK, 0, 10, 0);
    CHECK_ERR(ofd_setlk(fd, F_WRLCK, 5, 1), EAGAIN);
    CHECK_ERR(ofd_setlk(fd, F_RDLCK, 0, 0), EAGAIN);
    CHECK_OFD_GETLK(fd, 0, 0, F_WRLCK, 0, 10, h.pid);
    HOLDER_RELEASE(&h);
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

static void ofd_wait(void)
{
    struct wait_req w = {F_OFD_SETLKW, F_WRLCK};
    CHECK_OK(ofd_setlk(fd, F_WRLCK, 5, 10));
    qtest_child c = qtest_child_start(waiter, &w);
    CHECK_HEAR(&c, 'R', 5000, NULL);
    CHECK(qtest_wait_blocked(&c), "F_OFD_SETLKW granted while another open "
          "file holds [5,15)");
    double t0 = qtest_now_ms();
    CHECK_OK(ofd_setlk(fd, F_UNLCK, 5, 10));
    check_granted(&c, t0, "F_OFD_SETLKW");
    CHECK_OTHER_GETLK(F_OFD_GETLK, 0, 0, F_WRLCK, 0, 10, -1);
    CHECK_ERR(ofd_setlk(fd, F_RDLCK, 9, 1), EAGAIN);
    CHECK_CHILD_FINISH(&c);
    CHECK_OTHER(F_OFD_SETLK, F_WRLCK, 0, 0, 0);
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
        fflock_wait();
        fflock_vs_process_lock();
    } else {
        fflock_native();
    }
    getlk_reports_flock();
    ofd_basics();
    ofd_lpid();
    ofd_sharing();
    ofd_vs_process_locks();
    ofd_wait();
    ofd_vs_flock();
    close(fd);
    return QTEST_DONE();
}
