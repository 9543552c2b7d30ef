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

static const char *path; /* the test file, 100 bytes */
static int fd;           /* O_RDWR open of path: the parent's open file */

/* ---- helpers ---------------------------------------------------------------- */

/* Another process, through its own open of the file (O_RDWR or flags),
 * gets `want` (0 or the errno of a -1 return) from flock(op) or from
 * fcntl(F_SETLK, {type, SEEK_SET, start, len}). */
#define CHECK_OTHER_FLOCK(op, want) CHECK_OTHER_FLOCK_AT(path, O_RDWR, op, want)
#define CHECK_OTHER_SETLK_AT(p, type, start, len, want)                       \
    CHECK_OTHER_FCNTL_AT(p, F_SETLK, type, start, len, want)
#define CHECK_OTHER_SETLK(type, start, len, want)                             \
    CHECK_OTHER_SETLK_AT(path, type, start, len, want)

/* ---- children that hold or wait, through their own open of the file -------- */

/* A holder or waiter child (qtest_holder, qtest_waiter) making `call` on an
 * open of the file of its own. */
#define OWN(call) ((struct qtest_actor){(call), -1, path, -1})

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
    struct qtest_actor wex = OWN(qtest_call_flock(LOCK_EX));
    struct qtest_actor wsh = OWN(qtest_call_flock(LOCK_SH));

    CHECK_OK(flock(fd, LOCK_EX));
    qtest_child c = CHECK_START_WAITER(wsh);
    CHECK(qtest_wait_blocked(&c), "flock(LOCK_SH) granted while LOCK_EX is held");
    double t0 = qtest_now_ms();
    CHECK_OK(flock(fd, LOCK_UN));
    CHECK_GRANTED(&c, t0, "flock(LOCK_SH) after LOCK_UN");
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK); /* the waiter has it */
    CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, 0);
    CHECK_CHILD_FINISH(&c);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);

    /* a shared lock does not block a shared request, does block LOCK_EX */
    CHECK_OK(flock(fd, LOCK_SH));
    c = CHECK_START_WAITER(wsh);
    CHECK_GRANTED(&c, 0, "flock(LOCK_SH) beside LOCK_SH");
    CHECK_CHILD_FINISH(&c);
    c = CHECK_START_WAITER(wex);
    CHECK(qtest_wait_blocked(&c), "flock(LOCK_EX) granted while LOCK_SH is held");
    t0 = qtest_now_ms();
    CHECK_OK(flock(fd, LOCK_UN));
    CHECK_GRANTED(&c, t0, "flock(LOCK_EX) after LOCK_UN");
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
    b = CHECK_START_HOLDER(OWN(qtest_call_flock(LOCK_SH)));
    CHECK_ERR(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    CHECK_HOLDER_RELEASE(&b);
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
    b = CHECK_START_HOLDER(OWN(qtest_call_flock(LOCK_SH | LOCK_NB)));
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

/* Another process holds an exclusive fcntl or lockf lock on [0,10): both
 * our flock requests are refused under QNX (independent on Linux, where we
 * get them); once it releases, LOCK_EX is ours. */
static void flock_vs_exclusive(struct qtest_call hold)
{
    qtest_child h = CHECK_START_HOLDER(OWN(hold));
    if (qtest_mode_shim()) {
        CHECK_ERR(flock(fd, LOCK_SH | LOCK_NB), EWOULDBLOCK);
        CHECK_ERR(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    } else {
        CHECK_OK(flock(fd, LOCK_SH | LOCK_NB));
        CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
        CHECK_OK(flock(fd, LOCK_UN));
    }
    CHECK_HOLDER_RELEASE(&h);
    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
    CHECK_OK(flock(fd, LOCK_UN));
    CHECK_CHILD_FINISH(&h);
}

/* another process holds an fcntl or lockf lock: our flock requests */
static void others_vs_flock(void)
{
    qtest_child h;
    int qnx = qtest_mode_shim();

    flock_vs_exclusive(qtest_call_fcntl(F_SETLK, F_WRLCK, 0, 10));
    flock_vs_exclusive(qtest_call_lockf(F_TLOCK, 0, 10));

    /* fcntl F_WRLCK far beyond the end of the file: still within "whole" */
    h = CHECK_START_HOLDER(OWN(qtest_call_fcntl(F_SETLK, F_WRLCK, BIG, 1)));
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
    h = CHECK_START_HOLDER(OWN(qtest_call_fcntl(F_SETLK, F_RDLCK, 0, 10)));
    CHECK_OK(flock(fd, LOCK_SH | LOCK_NB));
    CHECK_OK(flock(fd, LOCK_UN));
    if (qnx) {
        CHECK_ERR(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    } else {
        CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
        CHECK_OK(flock(fd, LOCK_UN));
    }
    CHECK_CHILD_FINISH(&h);
    CHECK_OTHER_SETLK(F_WRLCK, 0, 0, 0);
}

/* blocking requests of one kind wait for a lock of the other kind */
static void blocking_across_kinds(void)
{
    qtest_child h, c;
    int qnx = qtest_mode_shim();
    struct qtest_actor wflock = OWN(qtest_call_flock(LOCK_EX));
    struct qtest_actor wsetlkw = OWN(qtest_call_fcntl(F_SETLKW, F_WRLCK, 0, 10));

    /* flock(LOCK_EX) waits for another process's fcntl F_WRLCK */
    h = CHECK_START_HOLDER(OWN(qtest_call_fcntl(F_SETLK, F_WRLCK, 0, 10)));
    c = CHECK_START_WAITER(wflock);
    if (qnx) {
        CHECK(qtest_wait_blocked(&c),
              "flock(LOCK_EX) granted while another process holds F_WRLCK");
        double t0 = qtest_now_ms();
        CHECK_HOLDER_RELEASE(&h);
        CHECK_GRANTED(&c, t0, "flock(LOCK_EX) after the fcntl unlock");
        CHECK_OTHER_SETLK(F_RDLCK, 50, 1, EAGAIN);
    } else {
        CHECK_GRANTED(&c, 0, "flock(LOCK_EX) beside an fcntl F_WRLCK");
        CHECK_HOLDER_RELEASE(&h);
        CHECK_OTHER_SETLK(F_RDLCK, 50, 1, 0);
    }
    CHECK_CHILD_FINISH(&c);
    CHECK_CHILD_FINISH(&h);

    /* F_SETLKW waits for another open file's flock(LOCK_EX) */
    CHECK_OK(flock(fd, LOCK_EX));
    c = CHECK_START_WAITER(wsetlkw);
    if (qnx) {
        CHECK(qtest_wait_blocked(&c), "F_SETLKW granted while flock LOCK_EX is held");
        double t0 = qtest_now_ms();
        CHECK_OK(flock(fd, LOCK_UN));
        CHECK_GRANTED(&c, t0, "F_SETLKW after flock(LOCK_UN)");
        CHECK_ERR(flock(fd, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    } else {
        CHECK_GRANTED(&c, 0, "F_SETLKW beside flock(LOCK_EX)");
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
    struct qtest_actor w = {qtest_call_flock(LOCK_EX), -1, path, sa_flags};
    struct qtest_msg m = {0, 0, 0};
    int must_interrupt = !(sa_flags & SA_RESTART) || qtest_mode_shim();

    CHECK_OK(flock(fd, LOCK_SH));
    qtest_child c = CHECK_START_WAITER(w);
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
    const char *bpath;
    struct qtest_trace_file tf = qtest_trace_file();
    int afd = qtest_tmpfile(100, NULL);
    int bholder = qtest_tmpfile(100, &bpath);
    int busy = qtest_open(bpath, O_RDWR);
    int rfd = qtest_tmpfile(100, NULL);
    CHECK_OK(flock(bholder, LOCK_EX));

    char *env[] = {"QNXCOMPAT_TRACE=1", tf.env, NULL};
    char a[16], b[16], r[16];
    snprintf(a, sizeof a, "%d", afd);
    snprintf(b, sizeof b, "%d", busy);
    snprintf(r, sizeof r, "%d", rfd);
    char *argv[] = {"t_flock", "--trace-act", a, b, r, NULL};
    pid_t pid = CHECK_RUN_SELF(argv, env, NULL, NULL,
                               "traced child (bit 0: LOCK_SH, 1: busy "
                               "LOCK_EX|LOCK_NB not EWOULDBLOCK, 2: "
                               "F_WRLCK|F_FLOCK)");

    char *t = qtest_slurp_trace(tf.path);
    char want[256];
    snprintf(want, sizeof want, "flock(fd=%d, LOCK_SH) = 0 (", afd);
    CHECK_TRACED(t, pid, want, NULL);
    snprintf(want, sizeof want, "flock(fd=%d, LOCK_EX|LOCK_NB) = -1 EAGAIN (",
             busy);
    CHECK_TRACED(t, pid, want, NULL);
    snprintf(want, sizeof want, "fcntl(fd=%d, F_SETLK, {F_WRLCK|F_FLOCK, "
             "SEEK_SET, start=0, len=10}) = 0 (", rfd);
    CHECK_TRACED(t, pid, want, NULL);
    snprintf(want, sizeof want, "flock(fd=%d, LOCK_UN) = 0 (", afd);
    CHECK_TRACED(t, pid, want, NULL);
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
