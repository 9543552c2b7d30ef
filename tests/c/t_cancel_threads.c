/*
 * t_cancel_threads.c - blocking lock calls as pthread cancellation points,
 * close() from a signal handler during lock calls, and many threads of one
 * process locking at once.
 *
 * Locks belong to the process (QNX lib_ref f/fcntl.html, l/lockf.html), so
 * its threads never conflict with each other.  POSIX makes fcntl(F_SETLKW)
 * and lockf() cancellation points and close() and dup() async-signal-safe.
 * Linux agrees on all of it for fcntl; glibc's lockf(F_LOCK) is checked
 * natively only if it is a cancellation point there (see
 * lockf_cancellable_natively()).
 *
 * A cancelled wait must leave no trace: the cancelled thread's process holds
 * nothing new, and no stale "waits for" edge makes a later F_SETLKW against
 * that process fail with EDEADLK.
 *
 * Every case runs in a forked child: the signal case uses setitimer(), which
 * replaces the child's alarm(), so the parent bounds it with its own wait.
 */
#include <pthread.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include "qtest.h"

static const char *path;
static int fd;

static int exited0(int st)
{
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Run fn(arg) in a child, allow it `ms`, CHECK that it exits 0. */
static void run_child(void (*fn)(void *), void *arg, int ms, const char *what)
{
    qtest_child c = qtest_child_start(fn, arg);
    int st = qtest_wait(c.pid, ms);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    CHECK(exited0(st), "%s: child %d: %s", what, (int)c.pid, d);
    close(c.from_child);
    close(c.to_child);
}

/* Scheduler state of thread `tid` of this process. */
static char thread_state(pid_t tid)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/self/task/%d/stat", (int)tid);
    return qtest_stat_state(p);
}

/* ------------------------------------------------------------------------ */
/* Cancellation of a thread blocked in F_SETLKW / lockf(F_LOCK)              */
/* ------------------------------------------------------------------------ */

enum how { BY_SETLKW, BY_LOCKF };

static const char *how_name(enum how h)
{
    return h == BY_LOCKF ? "lockf(F_LOCK)" : "F_SETLKW";
}

struct blocked {
    enum how how;
    volatile pid_t tid;
    volatile int returned; /* the call returned instead of being cancelled */
    volatile int rc, err;
};

static void *blocked_thread(void *arg)
{
    struct blocked *b = arg;
    b->tid = (pid_t)syscall(SYS_gettid);
    int r;
    if (b->how == BY_LOCKF)
        r = lockf(fd, F_LOCK, 10); /* the offset was set to 0 */
    else
        r = setlkw(fd, F_WRLCK, 0, 10);
    b->rc = r;
    b->err = errno;
    b->returned = 1;
    return NULL;
}

/* Start a thread that blocks on [0,10) (held by our parent), cancel it, and
 * return 1 if pthread_join gave PTHREAD_CANCELED within `bound_ms`. */
static int block_and_cancel(enum how how, int bound_ms, int join_s,
                            int report)
{
    struct blocked b = {how, 0, 0, 0, 0};
    qtest_seek(fd, 0);
    pthread_t t;
    if (pthread_create(&t, NULL, blocked_thread, &b) != 0)
        qtest_fatal("pthread_create");
    double end = qtest_now_ms() + 3000;
    while ((b.tid == 0 || thread_state(b.tid) != 'S') && !b.returned &&
           qtest_now_ms() < end)
        qtest_msleep(5);
    qtest_msleep(300);
    if (report)
        CHECK(!b.returned, "%s returned %d %s while the lock was held",
              how_name(how), b.rc, qtest_errname(b.err));

    double t0 = qtest_now_ms();
    CHECK_OK(pthread_cancel(t));
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += join_s;
    void *res = NULL;
    int jr = pthread_timedjoin_np(t, &res, &dl);
    double dt = qtest_now_ms() - t0;
    int ok = jr == 0 && res == PTHREAD_CANCELED && dt < bound_ms;
    if (report) {
        CHECK(jr == 0, "thread blocked in %s not cancelled within 10 s "
              "(pthread_timedjoin_np: %s)", how_name(how), qtest_errname(jr));
        if (jr == 0) {
            CHECK(res == PTHREAD_CANCELED, "thread blocked in %s: join gave "
                  "%p, not PTHREAD_CANCELED (call returned %d %s)",
                  how_name(how), res, b.rc, qtest_errname(b.err));
            CHECK(dt < bound_ms, "cancelling a thread blocked in %s took "
                  "%.0f ms", how_name(how), dt);
        }
    }
    return jr == 0 ? ok : -1; /* -1: the thread is still stuck */
}

static void cancel_child(void *arg)
{
    enum how how = *(enum how *)arg;
    int r = block_and_cancel(how, 3000, 10, 1);
    if (r < 0) { /* stuck thread: exit, which also ends it */
        child_report('C', 1, 0);
        _exit(1);
    }
    /* the parent's lock is still there, and ours are not */
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, getppid());
    CHECK_OK(setlk(fd, F_WRLCK, 20, 10));
    child_report('C', 0, 0);
    /* the parent now blocks on [20,30): no stale wait may make that look
     * like a deadlock */
    if (!child_await('W', 10000))
        return;
    qtest_msleep(300);
    CHECK_OK(unlock(fd, 20, 10));
    child_say('D');
    if (!child_await('U', 10000))
        return;
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10)); /* the process can still lock */
    child_say('L');
    child_await('Q', 30000);
}

static void cancellation(enum how how)
{
    struct qtest_msg m;
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    qtest_child c = qtest_child_start(cancel_child, &how);
    if (!CHECK_HEAR(&c, 'C', 20000, &m) || m.val != 0) {
        unlock(fd, 0, 10);
        CHECK_EXIT0(c.pid);
        close(c.from_child);
        close(c.to_child);
        return;
    }
    qtest_say(&c, 'W');
    errno = 0;
    int r = setlkw(fd, F_WRLCK, 20, 10);
    CHECK(r == 0, "after cancelling a %s waiter: our F_SETLKW on the "
          "canceller's lock gave %d %s, expected 0", how_name(how), r,
          r == -1 ? qtest_errname(errno) : "");
    if (r == 0)
        CHECK_OK(unlock(fd, 20, 10));
    CHECK_HEAR(&c, 'D', 5000, NULL); /* the child released [20,30) */
    CHECK_OK(unlock(fd, 0, 10));
    /* the cancelled request left nothing behind: the child holds nothing */
    qtest_msleep(100);
    CHECK_GETLK_FREE(fd, 0, 0);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_OK(unlock(fd, 0, 10));
    qtest_say(&c, 'U');
    CHECK_HEAR(&c, 'L', 5000, NULL);
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, c.pid);
    CHECK_CHILD_FINISH(&c);
    CHECK_GETLK_FREE(fd, 0, 0);
}

/* Natively, is glibc's lockf(F_LOCK) a cancellation point?  POSIX lists
 * lockf() among them, but older glibc versions call the non-cancellable
 * fcntl; only check natively where it is one.  Returns 1 if it is. */
static void probe_lockf_cancel(void *arg)
{
    (void)arg;
    int r = block_and_cancel(BY_LOCKF, 3000, 3, 0);
    _exit(r == 1 ? 0 : 1);
}

static int lockf_cancellable_natively(void)
{
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    qtest_child c = qtest_child_start(probe_lockf_cancel, NULL);
    int st = qtest_wait(c.pid, 20000);
    close(c.from_child);
    close(c.to_child);
    CHECK_OK(unlock(fd, 0, 10));
    CHECK_GETLK_FREE(fd, 0, 0);
    return exited0(st);
}

/* ------------------------------------------------------------------------ */
/* close() from a SIGALRM handler while a thread locks and unlocks           */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t ticks;

static void on_tick(int sig)
{
    (void)sig;
    int saved = errno;
    int d = dup(fd);
    if (d >= 0)
        close(d); /* releases this process's locks on the file */
    ticks++;
    errno = saved;
}

struct looper {
    int handler_here; /* 1: SIGALRM is taken by the looping thread */
    long rounds;
    long bad;
    int first_step, first_err;
};

static void *loop_thread(void *arg)
{
    struct looper *l = arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGALRM);
    pthread_sigmask(l->handler_here ? SIG_UNBLOCK : SIG_BLOCK, &s, NULL);
    double end = qtest_now_ms() + 1000;
    while (qtest_now_ms() < end) {
        int r[6];
        struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 100);
        r[0] = setlk(fd, F_WRLCK, 0, 10);
        r[1] = setlk(fd, F_RDLCK, 20, 10);
        r[2] = unlock(fd, 0, 30);
        r[3] = setlkw(fd, F_WRLCK, 40, 10); /* nobody else: never waits */
        r[4] = fcntl(fd, F_GETLK, &fl);
        r[5] = unlock(fd, 40, 10);
        for (int i = 0; i < 6; i++)
            if (r[i] != 0) {
                if (l->bad++ == 0) {
                    l->first_step = i;
                    l->first_err = errno;
                }
            }
        if (fl.l_type != F_UNLCK && l->bad++ == 0) {
            l->first_step = 6;
            l->first_err = 0;
        }
        l->rounds++;
    }
    return NULL;
}

static void signal_close_child(void *arg)
{
    struct looper l = {*(int *)arg, 0, 0, -1, 0};
    const char *where = l.handler_here ? "handler in the looping thread"
                                       : "handler in another thread";
    qtest_on_signal(SIGALRM, on_tick, SA_RESTART);

    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &s, NULL); /* the thread picks its own mask */
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL); /* replaces alarm(): parent bounds us */
    pthread_t t;
    if (pthread_create(&t, NULL, loop_thread, &l) != 0)
        qtest_fatal("pthread_create");
    if (!l.handler_here)
        pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    pthread_join(t, NULL);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    signal(SIGALRM, qtest_on_alarm);
    alarm(QTEST_CHILD_TIMEOUT_S);

    CHECK(l.bad == 0, "%s: %ld of %ld rounds had a failed call (first: step "
          "%d, errno %s)", where, l.bad, l.rounds, l.first_step,
          qtest_errname(l.first_err));
    CHECK(l.rounds >= 100, "%s: only %ld rounds in 1 s", where, l.rounds);
    CHECK(ticks >= 20, "%s: only %d SIGALRMs in 1 s", where, (int)ticks);

    /* the bookkeeping is intact: lock, see it, close releases it */
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_OK(setlk(fd, F_RDLCK, 20, 10));
    CHECK_GETLK(fd, 0, 15, F_WRLCK, 0, 10, getpid());
    CHECK_GETLK(fd, 10, 90, F_RDLCK, 20, 10, getpid());
    int d = dup(fd);
    CHECK_OK(close(d));
    CHECK_GETLK_FREE(fd, 0, 0);
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_GETLK(fd, 0, 100, F_WRLCK, 0, 10, getpid());
    CHECK_OK(unlock(fd, 0, 10));
    CHECK_GETLK_FREE(fd, 0, 0);
}

static void signal_close(int handler_here)
{
    run_child(signal_close_child, &handler_here, 20000,
              handler_here ? "close() in a handler in the locking thread"
                           : "close() in a handler in another thread");
    CHECK_GETLK_FREE(fd, 0, 0);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
}

/* ------------------------------------------------------------------------ */
/* 32 threads of one process                                                 */
/* ------------------------------------------------------------------------ */

#define NTHREADS 32
#define ROUNDS 1000

enum mode { DISJOINT, SAME_SETLKW, SAME_LOCKF };

struct worker {
    enum mode mode;
    int idx;
    int fd; /* SAME_LOCKF: the thread's own descriptor of the file */
    long bad;
    int first_err;
    long first_round;
};

static pthread_barrier_t bar_hold, bar_go;

static void note_bad(struct worker *w, long round, int ok)
{
    if (!ok && w->bad++ == 0) {
        w->first_err = errno;
        w->first_round = round;
    }
}

static void *worker(void *arg)
{
    struct worker *w = arg;
    off_t off = (off_t)w->idx * 100;
    if (w->mode == SAME_LOCKF)
        qtest_seek(w->fd, 0);
    for (long i = 0; i < ROUNDS; i++) {
        switch (w->mode) {
        case DISJOINT:
            note_bad(w, i, setlk(fd, F_WRLCK, off, 10) == 0);
            note_bad(w, i, setlk(fd, F_RDLCK, off + 20, 10) == 0);
            if (i == ROUNDS / 2) { /* everybody holds: let main look */
                pthread_barrier_wait(&bar_hold);
                pthread_barrier_wait(&bar_go);
            }
            note_bad(w, i, unlock(fd, off, 30) == 0);
            break;
        case SAME_SETLKW:
            note_bad(w, i, setlkw(fd, F_WRLCK, 0, 100) == 0);
            note_bad(w, i, setlkw(fd, F_RDLCK, 0, 50) == 0);
            note_bad(w, i, setlkw(fd, F_WRLCK, 0, 100) == 0);
            if (i % 10 == 9)
                note_bad(w, i, unlock(fd, 0, 100) == 0);
            break;
        case SAME_LOCKF:
            note_bad(w, i, lockf(w->fd, F_LOCK, 100) == 0);
            if (i % 10 == 9)
                note_bad(w, i, lockf(w->fd, F_ULOCK, 100) == 0);
            break;
        }
    }
    return NULL;
}

static const char *mode_name(enum mode m)
{
    switch (m) {
    case DISJOINT: return "disjoint F_SETLK";
    case SAME_SETLKW: return "same-range F_SETLKW";
    default: return "same-range lockf(F_LOCK)";
    }
}

static void threads_child(void *arg)
{
    enum mode mode = *(enum mode *)arg;
    static struct worker w[NTHREADS];
    pthread_t t[NTHREADS];
    pthread_barrier_init(&bar_hold, NULL, NTHREADS + 1);
    pthread_barrier_init(&bar_go, NULL, NTHREADS + 1);
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){mode, i, -1, 0, 0, 0};
        if (mode == SAME_LOCKF)
            w[i].fd = qtest_open(path, O_RDWR);
    }
    double t0 = qtest_now_ms();
    for (int i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, worker, &w[i]) != 0)
            qtest_fatal("pthread_create");
    if (mode == DISJOINT) {
        pthread_barrier_wait(&bar_hold);
        /* every thread holds write [100i, 100i+10) and read [100i+20, +30) */
        CHECK_GETLK(fd, 0, 15, F_WRLCK, 0, 10, getpid());
        CHECK_GETLK(fd, 1510, 80, F_RDLCK, 1520, 10, getpid());
        CHECK_GETLK_FREE(fd, 3130, 1000);
        CHECK_GETLK(fd, 3100, 15, F_WRLCK, 3100, 10, getpid());
        CHECK_CAN_LOCK(fd, F_RDLCK, 1520, 10);
        CHECK_CANNOT_LOCK(fd, F_WRLCK, 1529, 1);
        CHECK_CANNOT_LOCK(fd, F_RDLCK, 2009, 1);
        CHECK_CAN_LOCK(fd, F_WRLCK, 2010, 10);
        pthread_barrier_wait(&bar_go);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    double dt = qtest_now_ms() - t0;
    long bad = 0;
    int worst = 0;
    for (int i = 0; i < NTHREADS; i++) {
        bad += w[i].bad;
        if (w[i].bad > w[worst].bad)
            worst = i;
    }
    CHECK(bad == 0, "%s: %d threads x %d rounds: %ld failed calls (thread %d "
          "first failed in round %ld with %s)", mode_name(mode), NTHREADS,
          ROUNDS, bad, worst, w[worst].first_round,
          qtest_errname(w[worst].first_err));
    CHECK(dt < 30000, "%s: %d threads x %d rounds took %.0f ms",
          mode_name(mode), NTHREADS, ROUNDS, dt);
    if (mode != DISJOINT) {
        /* whatever the last round left, the process can hold it all */
        CHECK_OK(setlk(fd, F_WRLCK, 0, 100));
        CHECK_GETLK(fd, 0, 0, F_WRLCK, 0, 100, getpid());
        CHECK_OK(unlock(fd, 0, 100));
    }
    CHECK_GETLK_FREE(fd, 0, 0);
    for (int i = 0; i < NTHREADS; i++)
        if (w[i].fd >= 0)
            close(w[i].fd);
    pthread_barrier_destroy(&bar_hold);
    pthread_barrier_destroy(&bar_go);
}

static void many_threads(enum mode mode)
{
    run_child(threads_child, &mode, 40000, mode_name(mode));
    CHECK_GETLK_FREE(fd, 0, 0);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
}

int main(void)
{
    qtest_init();
    fd = qtest_tmpfile(4000, &path);

    cancellation(BY_SETLKW);
    if (qtest_mode_shim() || lockf_cancellable_natively())
        cancellation(BY_LOCKF);

    signal_close(1);
    signal_close(0);

    many_threads(DISJOINT);
    many_threads(SAME_SETLKW);
    many_threads(SAME_LOCKF);

    close(fd);
    return QTEST_DONE();
}
