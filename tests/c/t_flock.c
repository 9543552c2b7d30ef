/*
 * t_flock.c - flock(): operations, errors, access modes, conversion, and its
 * conflicts with fcntl() and lockf() locks.
 *
 * QNX (lib_ref f/flock.html, and QNX libc's flock(), which is
 * fcntl(F_SETLK / F_SETLKW) on {F_RDLCK|F_FLOCK or F_WRLCK|F_FLOCK,
 * SEEK_SET, 0, 0}): LOCK_SH takes a shared and LOCK_EX an exclusive lock on
 * the whole file (including its future extent), LOCK_UN removes it, LOCK_NB
 * makes a conflicting request fail with EWOULDBLOCK instead of blocking; a
 * bad operation is EINVAL, a bad descriptor EBADF, a signal during a
 * blocking request EINTR.  The lock belongs to the open file, and a change
 * of mode releases the old lock first.  Linux agrees on all of that.
 *
 * QNX-only (checked under the shim, Linux's behaviour in the else branch):
 *   - flock locks live in the same per-file list as fcntl()/lockf() locks,
 *     so they conflict with them in both directions; on Linux they are
 *     independent;
 *   - LOCK_SH needs a descriptor open for reading (EBADF on O_WRONLY);
 *   - QNX libc tests the operation's bits in turn (LOCK_SH, LOCK_EX,
 *     LOCK_UN), so LOCK_SH|LOCK_EX is a shared lock; Linux says EINVAL;
 *   - a signal interrupts a blocking flock() even with SA_RESTART.
 * QNXCOMPAT_TRACE lines for flock() and F_FLOCK are checked last (shim only).
 *
 * Other processes observe the lock through their own open of the file (a
 * probe that opened the file itself): an inherited descriptor would share
 * the very lock being observed.
 */
#include <sys/file.h>

#include "qtest.h"

#define BIG ((off_t)1 << 40)

extern char **environ;

static const char *path; /* the test file, 100 bytes */
static int fd;           /* O_RDWR open of path: the parent's open file */

/* ---- helpers ---------------------------------------------------------------- */

/* "LOCK_EX|LOCK_NB", or the number for a bad operation. */
static const char *opname(int op)
{
    static char bufs[4][48];
    static int next;
    char *b = bufs[next++ & 3];
    const char *base;
    switch (op & ~LOCK_NB) {
    case LOCK_SH: base = "LOCK_SH"; break;
    case LOCK_EX: base = "LOCK_EX"; break;
    case LOCK_UN: base = "LOCK_UN"; break;
    default: snprintf(b, sizeof bufs[0], "%d", op); return b;
    }
    snprintf(b, sizeof bufs[0], "%s%s", base, op & LOCK_NB ? "|LOCK_NB" : "");
    return b;
}

static const char *resname(int r)
{
    return r < 0 ? "probe died" : r == 0 ? "0" : qtest_errname(r);
}

/* Fork a probe that runs fn(arg) and _exits with its result (0, an errno,
 * or 255); returns that result, -1 if the probe crashed or hung. */
static int probe(int (*fn)(const void *), const void *arg)
{
    pid_t pid = fork();
    if (pid < 0)
        qtest_fatal("fork");
    if (pid == 0) {
        alarm(QTEST_CHILD_TIMEOUT_S);
        _exit(fn(arg));
    }
    int st = qtest_wait(pid, QTEST_WAIT_MS);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) == 255)
        return -1;
    return WEXITSTATUS(st);
}

struct req {
    const char *path;
    int flags;       /* open flags of the probe's own open */
    int op;          /* flock operation */
    short type;      /* fcntl l_type */
    off_t start, len;
};

/* probe: open the file anew, flock(op); drop what it got */
static int do_flock(const void *arg)
{
    const struct req *q = arg;
    int pfd = open(q->path, q->flags);
    if (pfd < 0)
        return 255;
    int r = flock(pfd, q->op);
    int e = errno;
    if (r == 0)
        flock(pfd, LOCK_UN);
    close(pfd);
    return r == 0 ? 0 : r == -1 ? (e & 0xff) : 255;
}

/* probe: open the file anew, F_SETLK; drop what it got */
static int do_setlk(const void *arg)
{
    const struct req *q = arg;
    int pfd = open(q->path, q->flags);
    if (pfd < 0)
        return 255;
    int r = setlk(pfd, q->type, q->start, q->len);
    int e = errno;
    if (r == 0)
        unlock(pfd, q->start, q->len);
    close(pfd);
    return r == 0 ? 0 : r == -1 ? (e & 0xff) : 255;
}

/* Another process, through its own open of p (flags), calls flock(op) and
 * gets `want` (0 or the errno of a -1 return). */
#define CHECK_OTHER_FLOCK_AT(p, flags, op, want)                              \
    check_other_flock((p), (flags), (op), (want), __FILE__, __LINE__)
#define CHECK_OTHER_FLOCK(op, want) CHECK_OTHER_FLOCK_AT(path, O_RDWR, op, want)

static void check_other_flock(const char *p, int flags, int op, int want,
                              const char *file, int line)
{
    struct req q = {p, flags, op, 0, 0, 0};
    int r = probe(do_flock, &q);
    qtest_record(r == want, file, line,
                 "other process, own open file: flock(%s): expected %s, got %s",
                 opname(op), resname(want), resname(r));
}

/* Another process, through its own O_RDWR open of p, gets `want` from
 * fcntl(F_SETLK, {type, SEEK_SET, start, len}). */
#define CHECK_OTHER_SETLK_AT(p, type, start, len, want)                       \
    check_other_setlk((p), (type), (start), (len), (want), __FILE__, __LINE__)
#define CHECK_OTHER_SETLK(type, start, len, want)                             \
    CHECK_OTHER_SETLK_AT(path, type, start, len, want)

static void check_other_setlk(const char *p, short type, off_t start,
                              off_t len, int want, const char *file, int line)
{
    struct req q = {p, O_RDWR, 0, type, start, len};
    int r = probe(do_setlk, &q);
    qtest_record(r == want, file, line,
                 "other process, own open file: F_SETLK %s start=%lld "
                 "len=%lld: expected %s, got %s",
                 qtest_typename(type), (long long)start, (long long)len,
                 resname(want), resname(r));
}

/* ---- a child that holds a lock through its own open of the file ------------- */

enum kind { K_FLOCK, K_SETLK, K_LOCKF };

struct hold {
    enum kind kind;
    int op;      /* K_FLOCK: operation */
    short type;  /* K_SETLK: l_type */
    off_t start; /* K_SETLK, K_LOCKF: range */
    off_t len;
};

static int hold_apply(const struct hold *h, int hfd, int undo)
{
    switch (h->kind) {
    case K_FLOCK:
        return flock(hfd, undo ? LOCK_UN : h->op);
    case K_SETLK:
        return undo ? unlock(hfd, h->start, h->len)
                    : setlk(hfd, h->type, h->start, h->len);
    case K_LOCKF:
        return qtest_lockf_at(hfd, h->start, undo ? F_ULOCK : F_TLOCK, h->len);
    }
    return -1;
}

/* Child: open the file, take the lock, report 'L'; on 'U' undo it and report
 * 'u'; return on 'Q'. */
static void holder(void *arg)
{
    const struct hold *h = arg;
    int hfd = qtest_open(path, O_RDWR);
    int r = hold_apply(h, hfd, 0);
    child_report('L', r, errno);
    for (;;) {
        struct qtest_msg m;
        if (qtest_get(qtest_down_fd, 30000, &m) != 1 || m.tag == 'Q')
            return;
        if (m.tag == 'U') {
            r = hold_apply(h, hfd, 1);
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

/* ---- a child that blocks --------------------------------------------------- */

struct waiter {
    enum kind kind; /* K_FLOCK: flock(op); K_SETLK: F_SETLKW type [start,+len) */
    int op;
    short type;
    off_t start, len;
    int sa_flags; /* -1: no SIGALRM handler; else handler with these flags */
};

static void on_alarm(int sig) { (void)sig; }

/* Child: own open of the file; announce 'R', block, report 'G' with the
 * result, hold what it got until 'Q'. */
static void waiter(void *arg)
{
    const struct waiter *w = arg;
    int wfd = qtest_open(path, O_RDWR);
    if (w->sa_flags >= 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sa.sa_flags = w->sa_flags;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, NULL);
    }
    child_say('R');
    int r = w->kind == K_FLOCK ? flock(wfd, w->op)
                               : setlkw(wfd, w->type, w->start, w->len);
    child_report('G', r, errno);
    child_await('Q', 30000);
}

/* The child's 'G' arrives within 5 s with result 0, and (if t0 > 0) within
 * 2 s of t0. */
static void check_granted(qtest_child *c, double t0, const char *what)
{
    struct qtest_msg m;
    if (CHECK_HEAR(c, 'G', 5000, &m)) {
        double dt = qtest_now_ms() - t0;
        CHECK(m.val == 0, "%s: blocked request returned %lld %s", what, m.val,
              qtest_errname(m.err));
        CHECK(t0 <= 0 || dt < 2000, "%s: granted %.0f ms after the release",
              what, dt);
    }
}

/* ---- operations --------------------------------------------------------------- */

static void relock_ex(void *arg)
{
    (void)arg;
    /* the parent's open file holds LOCK_EX already: no wait */
    CHECK_OK(flock(fd, LOCK_EX));
}

static void ops(void)
{
    CHECK_OK(flock(fd, LOCK_SH));
    CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, 0);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
    CHECK_OK(flock(fd, LOCK_SH)); /* again: nothing changes */
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
    CHECK_OK(flock(fd, LOCK_UN));
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);

    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
    CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, EWOULDBLOCK);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
    CHECK_OTHER_FLOCK_AT(path, O_RDONLY, LOCK_SH | LOCK_NB, EWOULDBLOCK);
    RUN_IN_CHILD(relock_ex, NULL);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
    CHECK_OK(flock(fd, LOCK_UN | LOCK_NB));
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);
    CHECK_OK(flock(fd, LOCK_UN)); /* nothing held: still 0 */

    /* a conflicting LOCK_NB request in this process, through a second open */
    int fd2 = qtest_open(path, O_RDWR);
    CHECK_OK(flock(fd, LOCK_SH));
    CHECK_OK(flock(fd2, LOCK_SH | LOCK_NB));
    CHECK_ERR(flock(fd2, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    CHECK_OK(flock(fd, LOCK_UN));
    CHECK_OK(flock(fd2, LOCK_EX | LOCK_NB)); /* its shared lock was dropped */
    CHECK_ERR(flock(fd, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    CHECK_OK(close(fd2));
    CHECK_OK(flock(fd, LOCK_SH | LOCK_NB));
    CHECK_OK(flock(fd, LOCK_UN));
}

/* blocking requests wait for the conflicting lock and are granted promptly */
static void blocking(void)
{
    struct waiter wex = {K_FLOCK, LOCK_EX, 0, 0, 0, -1};
    struct waiter wsh = {K_FLOCK, LOCK_SH, 0, 0, 0, -1};

    CHECK_OK(flock(fd, LOCK_EX));
    qtest_child c = qtest_child_start(waiter, &wsh);
    CHECK_HEAR(&c, 'R', 5000, NULL);
    CHECK(qtest_wait_blocked(&c), "flock(LOCK_SH) granted while LOCK_EX is held");
    double t0 = qtest_now_ms();
    CHECK_OK(flock(fd, LOCK_UN));
    check_granted(&c, t0, "flock(LOCK_SH) after LOCK_UN");
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK); /* the waiter has it */
    CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, 0);
    CHECK_CHILD_FINISH(&c);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);

    /* a shared lock does not block a shared request, does block LOCK_EX */
    CHECK_OK(flock(fd, LOCK_SH));
    c = qtest_child_start(waiter, &wsh);
    CHECK_HEAR(&c, 'R', 5000, NULL);
    check_granted(&c, 0, "flock(LOCK_SH) beside LOCK_SH");
    CHECK_CHILD_FINISH(&c);
    c = qtest_child_start(waiter, &wex);
    CHECK_HEAR(&c, 'R', 5000, NULL);
    CHECK(qtest_wait_blocked(&c), "flock(LOCK_EX) granted while LOCK_SH is held");
    t0 = qtest_now_ms();
    CHECK_OK(flock(fd, LOCK_UN));
    check_granted(&c, t0, "flock(LOCK_EX) after LOCK_UN");
    CHECK_ERR(flock(fd, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    CHECK_CHILD_FINISH(&c);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);
}

/* ---- errors ------------------------------------------------------------------- */

static void errors(void)
{
    CHECK_ERR(flock(fd, 0), EINVAL);
    CHECK_ERR(flock(fd, LOCK_NB), EINVAL);
    CHECK_ERR(flock(fd, 64), EINVAL);
    CHECK_ERR(flock(fd, 64 | LOCK_NB), EINVAL);
    CHECK_ERR(flock(-1, LOCK_SH), EBADF);
    CHECK_ERR(flock(999, LOCK_EX | LOCK_NB), EBADF);
    int closed = dup(fd);
    close(closed);
    CHECK_ERR(flock(closed, LOCK_EX), EBADF);
    CHECK_ERR(flock(closed, LOCK_UN), EBADF);
    /* the refused requests left nothing behind */
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);

    /* a bad operation changes nothing about a lock that is held */
    CHECK_OK(flock(fd, LOCK_SH));
    CHECK_ERR(flock(fd, 0), EINVAL);
    CHECK_ERR(flock(fd, LOCK_NB), EINVAL);
    CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, 0);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
    CHECK_OK(flock(fd, LOCK_UN));

    if (qtest_mode_shim()) {
        /* QNX libc tests the bits in order (LOCK_SH, then LOCK_EX, then
         * LOCK_UN): LOCK_SH|LOCK_EX is a shared lock */
        CHECK_OK(flock(fd, LOCK_SH | LOCK_EX | LOCK_NB));
        CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, 0);
        CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
        CHECK_OK(flock(fd, LOCK_UN));
    } else {
        CHECK_ERR(flock(fd, LOCK_SH | LOCK_EX | LOCK_NB), EINVAL);
    }
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);
}

/* ---- access modes ----------------------------------------------------------- */

static void access_modes(void)
{
    int ro = qtest_open(path, O_RDONLY), wo = qtest_open(path, O_WRONLY);

    /* LOCK_EX on a read-only descriptor is allowed */
    CHECK_OK(flock(ro, LOCK_EX | LOCK_NB));
    CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, EWOULDBLOCK);
    CHECK_OK(flock(ro, LOCK_UN));
    CHECK_OK(flock(ro, LOCK_EX));
    CHECK_OK(flock(ro, LOCK_UN));
    CHECK_OK(flock(ro, LOCK_SH | LOCK_NB));
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
    CHECK_OK(flock(ro, LOCK_UN));

    CHECK_OK(flock(wo, LOCK_EX | LOCK_NB));
    CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, EWOULDBLOCK);
    CHECK_OK(flock(wo, LOCK_UN));
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);

    if (qtest_mode_shim()) {
        /* QNX grants read locks only to descriptors open for reading */
        CHECK_ERR(flock(wo, LOCK_SH), EBADF);
        CHECK_ERR(flock(wo, LOCK_SH | LOCK_NB), EBADF);
        CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);
    } else {
        CHECK_OK(flock(wo, LOCK_SH | LOCK_NB));
        CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
        CHECK_OK(flock(wo, LOCK_UN));
    }
    close(ro);
    close(wo);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);
}

/* ---- conversion ------------------------------------------------------------- */

static void conversion(void)
{
    qtest_child b;

    /* a refused upgrade has dropped the shared lock */
    CHECK_OK(flock(fd, LOCK_SH));
    START_HOLDER(&b, K_FLOCK, LOCK_SH, 0, 0, 0);
    CHECK_ERR(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    HOLDER_RELEASE(&b);
    /* free although we never unlocked: the upgrade released our LOCK_SH */
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);
    CHECK_CHILD_FINISH(&b);

    /* an upgrade without competition */
    CHECK_OK(flock(fd, LOCK_SH));
    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
    CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, EWOULDBLOCK);

    /* a downgrade lets others share */
    CHECK_OK(flock(fd, LOCK_SH));
    CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, 0);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
    START_HOLDER(&b, K_FLOCK, LOCK_SH | LOCK_NB, 0, 0, 0);
    /* now a second shared holder: the upgrade fails */
    CHECK_ERR(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK); /* the holder's */
    CHECK_CHILD_FINISH(&b);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);
    CHECK_OK(flock(fd, LOCK_UN));
}

/* ---- flock vs fcntl and lockf (QNX-only conflicts) ------------------------- */

/* we hold flock LOCK_EX: another process's fcntl and lockf requests */
static void flock_ex_vs_others(void)
{
    CHECK_OK(flock(fd, LOCK_EX));
    if (qtest_mode_shim()) {
        CHECK_OTHER_SETLK(F_WRLCK, 0, 10, EAGAIN);
        CHECK_OTHER_SETLK(F_WRLCK, BIG, 1, EAGAIN);
        CHECK_OTHER_SETLK(F_RDLCK, 0, 1, EAGAIN);
        CHECK_OTHER_SETLK(F_RDLCK, 99, 0, EAGAIN);
        CHECK_OTHER_LOCKF2(fd, F_TLOCK, 0, 10, EAGAIN, EACCES);
        CHECK_OTHER_LOCKF2(fd, F_TLOCK, BIG, 10, EAGAIN, EACCES);
        CHECK_OTHER_LOCKF(fd, F_TEST, 0, 10, EACCES);
        CHECK_OTHER_LOCKF(fd, F_TEST, 50, 0, EACCES);
    } else {
        CHECK_OTHER_SETLK(F_WRLCK, 0, 10, 0);
        CHECK_OTHER_SETLK(F_WRLCK, BIG, 1, 0);
        CHECK_OTHER_SETLK(F_RDLCK, 0, 1, 0);
        CHECK_OTHER_SETLK(F_RDLCK, 99, 0, 0);
        CHECK_OTHER_LOCKF(fd, F_TLOCK, 0, 10, 0);
        CHECK_OTHER_LOCKF(fd, F_TLOCK, BIG, 10, 0);
        CHECK_OTHER_LOCKF(fd, F_TEST, 0, 10, 0);
        CHECK_OTHER_LOCKF(fd, F_TEST, 50, 0, 0);
    }
    CHECK_OK(flock(fd, LOCK_UN));
    CHECK_OTHER_SETLK(F_WRLCK, 0, 0, 0);
    CHECK_OTHER_LOCKF(fd, F_TLOCK, 0, 10, 0);
}

/* we hold flock LOCK_SH: read locks share it, write locks do not */
static void flock_sh_vs_others(void)
{
    CHECK_OK(flock(fd, LOCK_SH));
    CHECK_OTHER_SETLK(F_RDLCK, 0, 10, 0);
    CHECK_OTHER_SETLK(F_RDLCK, 0, 0, 0);
    CHECK_OTHER_SETLK(F_RDLCK, BIG, 1, 0);
    if (qtest_mode_shim()) {
        CHECK_OTHER_SETLK(F_WRLCK, 0, 10, EAGAIN);
        CHECK_OTHER_SETLK(F_WRLCK, BIG, 1, EAGAIN);
        CHECK_OTHER_LOCKF2(fd, F_TLOCK, 0, 10, EAGAIN, EACCES);
        /* QNX's F_TEST probes with a write lock */
        CHECK_OTHER_LOCKF(fd, F_TEST, 0, 10, EACCES);
    } else {
        CHECK_OTHER_SETLK(F_WRLCK, 0, 10, 0);
        CHECK_OTHER_SETLK(F_WRLCK, BIG, 1, 0);
        CHECK_OTHER_LOCKF(fd, F_TLOCK, 0, 10, 0);
        CHECK_OTHER_LOCKF(fd, F_TEST, 0, 10, 0);
    }
    CHECK_OK(flock(fd, LOCK_UN));
    CHECK_OTHER_SETLK(F_WRLCK, 0, 0, 0);
}

/* another process holds an fcntl or lockf lock: our flock requests */
static void others_vs_flock(void)
{
    qtest_child h;
    int qnx = qtest_mode_shim();

    /* fcntl F_WRLCK [0,10) */
    START_HOLDER(&h, K_SETLK, 0, F_WRLCK, 0, 10);
    if (qnx) {
        CHECK_ERR(flock(fd, LOCK_SH | LOCK_NB), EWOULDBLOCK);
        CHECK_ERR(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    } else {
        CHECK_OK(flock(fd, LOCK_SH | LOCK_NB));
        CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
        CHECK_OK(flock(fd, LOCK_UN));
    }
    HOLDER_RELEASE(&h);
    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
    CHECK_OK(flock(fd, LOCK_UN));
    CHECK_CHILD_FINISH(&h);

    /* fcntl F_WRLCK far beyond the end of the file: still within "whole" */
    START_HOLDER(&h, K_SETLK, 0, F_WRLCK, BIG, 1);
    if (qnx) {
        CHECK_ERR(flock(fd, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    } else {
        CHECK_OK(flock(fd, LOCK_SH | LOCK_NB));
        CHECK_OK(flock(fd, LOCK_UN));
    }
    CHECK_CHILD_FINISH(&h);
    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
    CHECK_OK(flock(fd, LOCK_UN));

    /* fcntl F_RDLCK [0,10): shared with LOCK_SH, not with LOCK_EX */
    START_HOLDER(&h, K_SETLK, 0, F_RDLCK, 0, 10);
    CHECK_OK(flock(fd, LOCK_SH | LOCK_NB));
    CHECK_OK(flock(fd, LOCK_UN));
    if (qnx) {
        CHECK_ERR(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    } else {
        CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
        CHECK_OK(flock(fd, LOCK_UN));
    }
    CHECK_CHILD_FINISH(&h);

    /* lockf(F_TLOCK) [0,10) */
    START_HOLDER(&h, K_LOCKF, 0, 0, 0, 10);
    if (qnx) {
        CHECK_ERR(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
        CHECK_ERR(flock(fd, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    } else {
        CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
        CHECK_OK(flock(fd, LOCK_UN));
    }
    HOLDER_RELEASE(&h);
    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
    CHECK_OK(flock(fd, LOCK_UN));
    CHECK_CHILD_FINISH(&h);
    CHECK_OTHER_SETLK(F_WRLCK, 0, 0, 0);
}

/* blocking requests of one kind wait for a lock of the other kind */
static void blocking_across_kinds(void)
{
    qtest_child h, c;
    int qnx = qtest_mode_shim();
    struct waiter wflock = {K_FLOCK, LOCK_EX, 0, 0, 0, -1};
    struct waiter wsetlkw = {K_SETLK, 0, F_WRLCK, 0, 10, -1};

    /* flock(LOCK_EX) waits for another process's fcntl F_WRLCK */
    START_HOLDER(&h, K_SETLK, 0, F_WRLCK, 0, 10);
    c = qtest_child_start(waiter, &wflock);
    CHECK_HEAR(&c, 'R', 5000, NULL);
    if (qnx) {
        CHECK(qtest_wait_blocked(&c),
              "flock(LOCK_EX) granted while another process holds F_WRLCK");
        double t0 = qtest_now_ms();
        HOLDER_RELEASE(&h);
        check_granted(&c, t0, "flock(LOCK_EX) after the fcntl unlock");
        CHECK_OTHER_SETLK(F_RDLCK, 50, 1, EAGAIN);
    } else {
        check_granted(&c, 0, "flock(LOCK_EX) beside an fcntl F_WRLCK");
        HOLDER_RELEASE(&h);
        CHECK_OTHER_SETLK(F_RDLCK, 50, 1, 0);
    }
    CHECK_CHILD_FINISH(&c);
    CHECK_CHILD_FINISH(&h);

    /* F_SETLKW waits for another open file's flock(LOCK_EX) */
    CHECK_OK(flock(fd, LOCK_EX));
    c = qtest_child_start(waiter, &wsetlkw);
    CHECK_HEAR(&c, 'R', 5000, NULL);
    if (qnx) {
        CHECK(qtest_wait_blocked(&c), "F_SETLKW granted while flock LOCK_EX is held");
        double t0 = qtest_now_ms();
        CHECK_OK(flock(fd, LOCK_UN));
        check_granted(&c, t0, "F_SETLKW after flock(LOCK_UN)");
        CHECK_ERR(flock(fd, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    } else {
        check_granted(&c, 0, "F_SETLKW beside flock(LOCK_EX)");
        CHECK_OK(flock(fd, LOCK_UN));
    }
    CHECK_CHILD_FINISH(&c);
    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
    CHECK_OK(flock(fd, LOCK_UN));
}

/* the whole file, as it grows, and beyond */
static void extent(void)
{
    const char *p;
    int efd = qtest_tmpfile(0, &p); /* empty */
    CHECK_OK(flock(efd, LOCK_EX));
    if (qtest_mode_shim()) {
        CHECK_OTHER_SETLK_AT(p, F_WRLCK, 0, 1, EAGAIN);
        CHECK_OTHER_SETLK_AT(p, F_RDLCK, 0, 0, EAGAIN);
    } else {
        CHECK_OTHER_SETLK_AT(p, F_WRLCK, 0, 1, 0);
        CHECK_OTHER_SETLK_AT(p, F_RDLCK, 0, 0, 0);
    }
    CHECK_EQ(write(efd, "0123456789", 10), 10);
    CHECK_OK(ftruncate(efd, 4096));
    if (qtest_mode_shim()) {
        CHECK_OTHER_SETLK_AT(p, F_WRLCK, 5, 1, EAGAIN);
        CHECK_OTHER_SETLK_AT(p, F_WRLCK, 4095, 1, EAGAIN);
        CHECK_OTHER_SETLK_AT(p, F_WRLCK, 4096, 10, EAGAIN);
        CHECK_OTHER_SETLK_AT(p, F_RDLCK, BIG, 0, EAGAIN);
    } else {
        CHECK_OTHER_SETLK_AT(p, F_WRLCK, 5, 1, 0);
        CHECK_OTHER_SETLK_AT(p, F_WRLCK, 4095, 1, 0);
        CHECK_OTHER_SETLK_AT(p, F_WRLCK, 4096, 10, 0);
        CHECK_OTHER_SETLK_AT(p, F_RDLCK, BIG, 0, 0);
    }
    CHECK_OTHER_FLOCK_AT(p, O_RDWR, LOCK_SH | LOCK_NB, EWOULDBLOCK);
    CHECK_OK(close(efd)); /* the only descriptor: releases it */
    CHECK_OTHER_SETLK_AT(p, F_WRLCK, 0, 0, 0);
    CHECK_OTHER_FLOCK_AT(p, O_RDWR, LOCK_EX | LOCK_NB, 0);
}

/* ---- EINTR ------------------------------------------------------------------- */

static void eintr(int sa_flags)
{
    struct waiter w = {K_FLOCK, LOCK_EX, 0, 0, 0, sa_flags};
    struct qtest_msg m = {0, 0, 0};
    int must_interrupt = !(sa_flags & SA_RESTART) || qtest_mode_shim();

    CHECK_OK(flock(fd, LOCK_SH));
    qtest_child c = qtest_child_start(waiter, &w);
    CHECK_HEAR(&c, 'R', 5000, NULL);
    CHECK(qtest_wait_blocked(&c), "flock(LOCK_EX) waiter not blocked");
    kill(c.pid, SIGALRM);
    if (must_interrupt) {
        if (CHECK_HEAR(&c, 'G', 3000, &m))
            CHECK(m.val == -1 && m.err == EINTR,
                  "flock(LOCK_EX) interrupted (sa_flags=%#x): expected -1 "
                  "EINTR, got %lld %s",
                  sa_flags, m.val, m.val == -1 ? qtest_errname(m.err) : "");
        /* our lock is intact, and the interrupted child got nothing */
        CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
        CHECK_OK(flock(fd, LOCK_UN));
        CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);
    } else {
        /* Linux restarts flock() after an SA_RESTART handler: the outcome is
         * not checked, just let the waiter finish */
        qtest_msleep(300);
        flock(fd, LOCK_UN);
        qtest_get(c.from_child, 3000, &m);
    }
    CHECK_CHILD_FINISH(&c);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);
}

/* ---- tracing (shim only) ----------------------------------------------------- */

/* The traced image: t_flock --trace-act FD BUSY RANGEFD.  FD is an
 * unlocked file, BUSY an open of a file another open file holds LOCK_EX on,
 * RANGEFD a third file. */
static int trace_act(int afd, int busy, int rfd)
{
    alarm(QTEST_CHILD_TIMEOUT_S);
    int bad = flock(afd, LOCK_SH) != 0;
    bad |= !(flock(busy, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK) << 1;
    bad |= (setlk(rfd, F_WRLCK | F_FLOCK, 0, 10) != 0) << 2;
    flock(afd, LOCK_UN);
    setlk(rfd, F_UNLCK | F_FLOCK, 0, 10);
    return bad;
}

static void trace(void)
{
    const char *tpath, *bpath;
    int tfd = qtest_tmpfile(0, &tpath);
    close(tfd);
    int afd = qtest_tmpfile(100, NULL);
    int bholder = qtest_tmpfile(100, &bpath);
    int busy = qtest_open(bpath, O_RDWR);
    int rfd = qtest_tmpfile(100, NULL);
    CHECK_OK(flock(bholder, LOCK_EX));

    static char v1[64], v2[256];
    char *envp[512];
    int n = 0;
    for (char **e = environ; *e && n < 500; e++)
        if (strncmp(*e, "QNXCOMPAT_TRACE", 15) != 0)
            envp[n++] = *e;
    snprintf(v1, sizeof v1, "QNXCOMPAT_TRACE=1");
    snprintf(v2, sizeof v2, "QNXCOMPAT_TRACE_FILE=%s", tpath);
    envp[n++] = v1;
    envp[n++] = v2;
    envp[n] = NULL;

    char a[16], b[16], r[16];
    snprintf(a, sizeof a, "%d", afd);
    snprintf(b, sizeof b, "%d", busy);
    snprintf(r, sizeof r, "%d", rfd);
    pid_t pid = fork();
    if (pid < 0)
        qtest_fatal("fork");
    if (pid == 0) {
        char *argv[] = {"t_flock", "--trace-act", a, b, r, NULL};
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    int st = qtest_wait(pid, QTEST_WAIT_MS);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "traced child: %s (bit 0: LOCK_SH, 1: busy LOCK_EX|LOCK_NB not "
          "EWOULDBLOCK, 2: F_WRLCK|F_FLOCK)", d);

    char *t = qtest_slurp(tpath);
    char want[256];
    snprintf(want, sizeof want, "qnxcompat[%d:%d] flock(fd=%d, LOCK_SH) = 0 (",
             (int)pid, (int)pid, afd);
    CHECK(qtest_has_line(t, want, NULL), "trace lacks \"%s\"; trace was:\n%s",
          want, t);
    snprintf(want, sizeof want,
             "qnxcompat[%d:%d] flock(fd=%d, LOCK_EX|LOCK_NB) = -1 EAGAIN (",
             (int)pid, (int)pid, busy);
    CHECK(qtest_has_line(t, want, NULL), "trace lacks \"%s\"; trace was:\n%s",
          want, t);
    snprintf(want, sizeof want,
             "qnxcompat[%d:%d] fcntl(fd=%d, F_SETLK, {F_WRLCK|F_FLOCK, "
             "SEEK_SET, start=0, len=10}) = 0 (",
             (int)pid, (int)pid, rfd);
    CHECK(qtest_has_line(t, want, NULL), "trace lacks \"%s\"; trace was:\n%s",
          want, t);
    snprintf(want, sizeof want, "qnxcompat[%d:%d] flock(fd=%d, LOCK_UN) = 0 (",
             (int)pid, (int)pid, afd);
    CHECK(qtest_has_line(t, want, NULL), "trace lacks \"%s\"; trace was:\n%s",
          want, t);
    free(t);

    close(afd);
    close(busy);
    close(bholder);
    close(rfd);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--trace-act") == 0)
        return trace_act(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));

    qtest_init();
    fd = qtest_tmpfile(100, &path);
    ops();
    blocking();
    errors();
    access_modes();
    conversion();
    flock_ex_vs_others();
    flock_sh_vs_others();
    others_vs_flock();
    blocking_across_kinds();
    extent();
    eintr(0);
    eintr(SA_RESTART); /* checked under the shim only */
    if (qtest_mode_shim())
        trace();
    close(fd);
    return QTEST_DONE();
}
