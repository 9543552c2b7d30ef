/*
 * t_blocking.c - F_SETLKW / lockf(F_LOCK) blocking, wake-up, EINTR, and
 * release of the locks of a killed process.
 *
 * QNX docs checked: lib_ref f/fcntl.html (F_SETLKW: "if a signal is caught
 * while fcntl() is waiting for a region, the call is interrupted", -1 EINTR,
 * "and the lock operation isn't done"), l/lockf.html ("Blocking on a section
 * is interrupted by any signal" - on QNX even a handler installed with
 * SA_RESTART does not restart it, unlike Linux, which restarts F_SETLKW) and
 * i/iofunc_lock.html (EINTR; EDEADLK "a deadlock was detected", which Linux
 * reports too).  A process's locks go away when it dies.
 */
#include "qtest.h"

enum how { BY_SETLKW, BY_LOCKF };

/* A waiter child (qtest_waiter) that blocks for [0,10) through the
 * inherited fd, by F_SETLKW or lockf(F_LOCK); sa_flags -1: no SIGALRM
 * handler, else a handler with these flags. */
static struct qtest_actor waiter(int fd, enum how how, int sa_flags)
{
    struct qtest_actor w = {how == BY_LOCKF
                                ? qtest_call_lockf(F_LOCK, 0, 10)
                                : qtest_call_fcntl(F_SETLKW, F_WRLCK, 0, 10),
                            fd, NULL, sa_flags};
    return w;
}

/* A waiter blocks while we hold [0,10) and is granted promptly on unlock. */
static void blocks_until_unlock(int fd, enum how how)
{
    struct qtest_actor w = waiter(fd, how, -1);
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    qtest_child c = CHECK_START_WAITER(w);
    CHECK(qtest_wait_blocked(&c), "%s: waiter was granted while we hold the lock",
          how == BY_LOCKF ? "lockf" : "F_SETLKW");
    double t0 = qtest_now_ms();
    CHECK_OK(unlock(fd, 0, 10));
    CHECK_GRANTED(&c, t0, how == BY_LOCKF ? "lockf" : "F_SETLKW");
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, c.pid);
    CHECK_CHILD_FINISH(&c);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
}

/* A blocked waiter gets SIGALRM: -1 EINTR, and it leaves no lock behind. */
static void eintr(int fd, enum how how, int sa_flags)
{
    struct qtest_actor w = waiter(fd, how, sa_flags);
    struct qtest_msg m = {0, 0, 0};
    int must_interrupt = !(sa_flags & SA_RESTART) || qtest_mode_shim();
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    qtest_child c = CHECK_START_WAITER(w);
    CHECK(qtest_wait_blocked(&c), "waiter not blocked");
    kill(c.pid, SIGALRM);
    if (must_interrupt) {
        if (CHECK_HEAR(&c, 'G', 3000, &m))
            CHECK(m.val == -1 && m.err == EINTR,
                  "%s interrupted (sa_flags=%#x): expected -1 EINTR, got %lld %s",
                  how == BY_LOCKF ? "lockf F_LOCK" : "F_SETLKW", sa_flags,
                  m.val, m.val == -1 ? qtest_errname(m.err) : "");
        CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, getpid());
        CHECK_OK(unlock(fd, 0, 10));
        /* the interrupted child is still alive but holds nothing */
        CHECK_GETLK_FREE(fd, 0, 10);
        CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
    } else {
        /* native Linux restarts F_SETLKW after an SA_RESTART handler: the
         * outcome is not checked, just let the waiter finish */
        qtest_msleep(300);
        unlock(fd, 0, 10);
        qtest_get(c.from_child, 3000, &m);
    }
    CHECK_CHILD_FINISH(&c);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
}

/* Child: hold [0,10) and [20,30) until killed. */
static void holder(void *arg)
{
    int fd = *(int *)arg;
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_OK(setlk(fd, F_WRLCK, 20, 10));
    child_say('L');
    child_await('Q', 50000);
}

/* SIGKILL of the holder releases its locks: a blocked waiter is granted and
 * F_SETLK succeeds soon after, whether or not the holder was reaped yet. */
static void killed_holder(int fd, int reap_first)
{
    struct qtest_actor w = waiter(fd, BY_SETLKW, -1);
    qtest_child h = qtest_child_start(holder, &fd);
    CHECK_HEAR(&h, 'L', 5000, NULL);
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, h.pid);
    qtest_child c = CHECK_START_WAITER(w);
    CHECK(qtest_wait_blocked(&c), "waiter not blocked by the holder");

    double t0 = qtest_now_ms();
    kill(h.pid, SIGKILL);
    if (reap_first) {
        int st = qtest_wait(h.pid, 5000);
        CHECK(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "holder status %#x", st);
    }
    CHECK_GRANTED(&c, t0, reap_first ? "F_SETLKW after SIGKILL of the holder"
                                     : "F_SETLKW after SIGKILL of the holder "
                                       "(not reaped)");
    int r;
    while ((r = setlk(fd, F_WRLCK, 20, 10)) != 0 && qtest_now_ms() - t0 < 2500)
        qtest_msleep(10);
    double dt = qtest_now_ms() - t0;
    CHECK(r == 0, "F_SETLK on the killed holder's range still fails after "
                  "%.0f ms (%s)", dt, qtest_errname(errno));
    CHECK_OK(unlock(fd, 20, 10));
    CHECK_CHILD_FINISH(&c);
    if (!reap_first) {
        int st = qtest_wait(h.pid, 5000);
        CHECK(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "holder status %#x", st);
    }
    close(h.from_child);
    close(h.to_child);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
}

struct crossing {
    int fd;
    off_t hold, want; /* 10-byte ranges */
};

/* Child: hold one range; on 'G' say 'R' and block for the other; report 'D'. */
static void crossing(void *arg)
{
    struct crossing *x = arg;
    CHECK_OK(setlk(x->fd, F_WRLCK, x->hold, 10));
    child_say('L');
    if (!child_await('G', 10000))
        return;
    child_say('R');
    int r = setlkw(x->fd, F_WRLCK, x->want, 10);
    child_report('D', r, errno);
    child_await('Q', 30000);
}

/* Two processes each wait for the other's lock: the second to block gets
 * -1 EDEADLK instead of hanging. */
static void deadlock(int fd)
{
    struct crossing x1 = {fd, 0, 20}, x2 = {fd, 20, 0};
    struct qtest_msg m;
    qtest_child c1 = qtest_child_start(crossing, &x1);
    CHECK_HEAR(&c1, 'L', 5000, NULL);
    qtest_child c2 = qtest_child_start(crossing, &x2);
    CHECK_HEAR(&c2, 'L', 5000, NULL);
    qtest_say(&c2, 'G');
    CHECK_HEAR(&c2, 'R', 5000, NULL);
    CHECK(qtest_wait_blocked(&c2), "second process not blocked");
    qtest_say(&c1, 'G');
    CHECK_HEAR(&c1, 'R', 5000, NULL);
    if (CHECK_HEAR(&c1, 'D', 3000, &m))
        CHECK(m.val == -1 && m.err == EDEADLK,
              "F_SETLKW closing a wait cycle: expected -1 EDEADLK, got %lld %s",
              m.val, m.val == -1 ? qtest_errname(m.err) : "");
    else
        kill(c1.pid, SIGKILL); /* deadlocked: break the cycle */
    CHECK_CHILD_FINISH(&c1); /* its exit releases [0,10) to c2 */
    if (CHECK_HEAR(&c2, 'D', 3000, &m))
        CHECK(m.val == 0, "waiter after the deadlock: got %lld %s", m.val,
              qtest_errname(m.err));
    CHECK_CHILD_FINISH(&c2);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
}

int main(void)
{
    qtest_init();
    int fd = qtest_tmpfile(100, NULL);
    blocks_until_unlock(fd, BY_SETLKW);
    blocks_until_unlock(fd, BY_LOCKF);
    eintr(fd, BY_SETLKW, 0);
    eintr(fd, BY_LOCKF, 0);
    eintr(fd, BY_SETLKW, SA_RESTART); /* checked under the shim only */
    killed_holder(fd, 1);
    killed_holder(fd, 0);
    deadlock(fd);
    close(fd);
    return QTEST_DONE();
}
