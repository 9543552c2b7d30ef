/*
 * t_signal_churn.c - a signal interrupts a blocked lock call, every time,
 * even while other lock traffic on the file keeps waking the waiter.
 *
 * QNX lockf(): "Blocking on a section is interrupted by any signal"; QNX
 * fcntl(F_SETLKW): "if a signal is caught while fcntl() is waiting for a
 * region, the call is interrupted", -1 EINTR.  On QNX that holds even for
 * a handler installed with SA_RESTART; Linux restarts F_SETLKW (and glibc's
 * lockf F_LOCK, which is F_SETLKW) under SA_RESTART.
 *
 * The test process H holds [0,10) of a file.  Process W blocks for [0,10)
 * (F_SETLKW write, or lockf(F_LOCK, 10) at offset 0), while process C
 * churns F_SETLK/unlock on OTHER ranges of the SAME file in a tight loop
 * (under the shim each release wakes the file's sleepers, so W keeps
 * waking up and re-checking).  Once W is inside the call (/proc/W/syscall
 * shows fcntl or futex), after a random 0-2 ms, H sends SIGUSR1 (handler
 * installed with sigaction, no SA_RESTART): W's call must return -1 EINTR
 * within 500 ms.  A miss is counted (W is then freed by H's unlock; a run
 * stops after 5 misses); 0 misses allowed.
 *   (a) F_SETLKW, no SA_RESTART: 1,000 tries;
 *   (b) F_SETLKW, SA_RESTART: under the shim 300 tries, EINTR each time;
 *       natively 10 tries in which the call must keep waiting (no result
 *       within 100 ms), and is granted once H unlocks;
 *   (c) lockf(F_LOCK), no SA_RESTART: 200 tries;
 *   (d) lockf(F_LOCK), SA_RESTART: as (b), 200 tries under the shim.
 * A call interrupted never leaves a lock behind: H re-checks at the end.
 *
 * Baseline bug: a signal that arrived while the waiter was not asleep in
 * the futex (woken by the churn, or inside the registry) was lost, and the
 * call went back to sleep.
 */
#include "qtest.h"

#include <sys/syscall.h>

enum how { BY_SETLKW, BY_LOCKF };

#define MAX_MISSES 5 /* each costs 500 ms: stop a run after this many */

struct wcfg {
    int fd;
    enum how how;
    int sa_flags;
};

static volatile sig_atomic_t handled;
static void on_usr1(int sig)
{
    (void)sig;
    handled++;
}

/* W: on 'G' say 'R', block for [0,10), report 'D'; a granted lock is
 * released before reporting.  Ends on 'Q' (or after 30 s of silence). */
static void waiter(void *arg)
{
    struct wcfg *w = arg;
    qtest_on_signal(SIGUSR1, on_usr1, w->sa_flags);
    for (;;) {
        struct qtest_msg m;
        if (qtest_get(qtest_down_fd, 30000, &m) != 1 || m.tag != 'G')
            return;
        if (w->how == BY_LOCKF)
            qtest_seek(w->fd, 0);
        child_say('R');
        errno = 0;
        int r = w->how == BY_LOCKF ? lockf(w->fd, F_LOCK, 10)
                                   : setlkw(w->fd, F_WRLCK, 0, 10);
        int e = errno;
        if (r == 0) {
            if (w->how == BY_LOCKF) {
                qtest_seek(w->fd, 0);
                lockf(w->fd, F_ULOCK, 10);
            } else {
                unlock(w->fd, 0, 10);
            }
        }
        child_report('D', r, e);
    }
}

struct churn {
    int fd;
    volatile int *stop;
    volatile long *ops;
};

/* C: lock/unlock 1-byte ranges in [100, 200) until told to stop. */
static void churner(void *arg)
{
    struct churn *c = arg;
    long n = 0;
    while (!__atomic_load_n(c->stop, __ATOMIC_RELAXED)) {
        off_t off = 100 + (n % 50) * 2;
        setlk(c->fd, F_WRLCK, off, 1);
        unlock(c->fd, off, 1);
        n++;
        if ((n & 1023) == 0)
            __atomic_store_n(c->ops, n, __ATOMIC_RELAXED);
    }
    __atomic_store_n(c->ops, n, __ATOMIC_RELAXED);
}

/* The syscall number W is in (/proc/PID/syscall), -2 when running in user
 * space, -1 when unknown. */
static long syscall_of(pid_t pid)
{
    char p[64], b[128];
    snprintf(p, sizeof p, "/proc/%d/syscall", (int)pid);
    if (qtest_read_file(p, b, sizeof b) <= 0)
        return -1;
    if (strncmp(b, "running", 7) == 0)
        return -2;
    return strtol(b, NULL, 10);
}

/* Wait (<= 300 ms) until W is inside the lock call: in fcntl natively, in
 * futex under the shim (its wait, or the registry mutex). */
static int wait_in_call(pid_t pid)
{
    double end = qtest_now_ms() + 300;
    while (qtest_now_ms() < end) {
        long s = syscall_of(pid);
        if (s == SYS_fcntl || s == SYS_futex)
            return 1;
        if (s == -1)
            return 0;
    }
    return 0;
}

static void spin_us(int us)
{
    double end = qtest_now_ms() + us / 1000.0;
    while (qtest_now_ms() < end)
        ;
}

struct stats {
    int tries, ok, miss, wrong, unseen, restarted_ok;
    double worst_ms;
    char first_wrong[160];
};

/* After a miss: end W's pending call by unlocking (it is granted, releases
 * and reports), then take [0,10) back.  Returns 1 if it reported. */
static int free_waiter(qtest_child *w, int fd, struct qtest_msg *m)
{
    unlock(fd, 0, 10);
    int got = qtest_get(w->from_child, 3000, m) == 1;
    double end = qtest_now_ms() + 3000;
    while (setlk(fd, F_WRLCK, 0, 10) != 0 && qtest_now_ms() < end)
        qtest_msleep(1);
    return got;
}

static void run(int fd, enum how how, int sa_flags, int tries, unsigned *seed,
                const char *what)
{
    struct wcfg cfg = {fd, how, sa_flags};
    struct stats s;
    memset(&s, 0, sizeof s);
    int expect_eintr = !(sa_flags & SA_RESTART) || qtest_mode_shim();
    qtest_child w = qtest_child_start(waiter, &cfg);
    double t0 = qtest_now_ms();
    for (int i = 0; i < tries; i++) {
        struct qtest_msg m;
        qtest_say(&w, 'G');
        if (qtest_get(w.from_child, 5000, &m) != 1 || m.tag != 'R') {
            CHECK(0, "%s: try %d: the waiter did not start", what, i);
            break;
        }
        s.tries++;
        if (!wait_in_call(w.pid))
            s.unseen++;
        spin_us((int)(rand_r(seed) % 2001));
        double ts = qtest_now_ms();
        kill(w.pid, SIGUSR1);
        int got = qtest_get(w.from_child, expect_eintr ? 500 : 100, &m) == 1;
        double dt = qtest_now_ms() - ts;
        if (expect_eintr) {
            if (!got) {
                s.miss++;
                got = free_waiter(&w, fd, &m);
                if (!got) {
                    CHECK(0, "%s: try %d: the waiter never came back", what,
                          i);
                    break;
                }
                if (s.miss >= MAX_MISSES) {
                    qtest_print("NOTE %s: stopped after %d misses in %d "
                                "tries", what, s.miss, s.tries);
                    break;
                }
                continue;
            }
            if (dt > s.worst_ms)
                s.worst_ms = dt;
            if (m.val == -1 && m.err == EINTR) {
                s.ok++;
            } else {
                if (!s.wrong)
                    snprintf(s.first_wrong, sizeof s.first_wrong,
                             "try %d: %lld %s", i, m.val,
                             qtest_errname(m.err));
                s.wrong++;
                if (m.val == 0) /* it got the lock?! take it back */
                    setlk(fd, F_WRLCK, 0, 10);
            }
        } else {
            /* native SA_RESTART: the call keeps waiting */
            if (got) {
                if (!s.wrong)
                    snprintf(s.first_wrong, sizeof s.first_wrong,
                             "try %d: returned %lld %s instead of waiting",
                             i, m.val, qtest_errname(m.err));
                s.wrong++;
                continue;
            }
            unlock(fd, 0, 10);
            got = qtest_get(w.from_child, 3000, &m) == 1;
            if (got && m.val == 0)
                s.restarted_ok++;
            double end = qtest_now_ms() + 3000;
            while (setlk(fd, F_WRLCK, 0, 10) != 0 && qtest_now_ms() < end)
                qtest_msleep(1);
        }
    }
    double el = qtest_now_ms() - t0;
    CHECK_CHILD_FINISH(&w);
    if (expect_eintr) {
        qtest_print("INFO %s: %d tries, %d EINTR, %d missed, %d wrong, worst "
                    "%.1f ms, %d not seen inside the call, %.0f ms",
                    what, s.tries, s.ok, s.miss, s.wrong, s.worst_ms,
                    s.unseen, el);
        CHECK(s.miss == 0, "%s: %d of %d signals did not interrupt the "
              "blocked call within 500 ms", what, s.miss, s.tries);
        CHECK(s.wrong == 0, "%s: %d interrupted calls did not return -1 "
              "EINTR; first %s", what, s.wrong, s.first_wrong);
        CHECK(s.ok == tries, "%s: only %d of %d planned tries gave EINTR",
              what, s.ok, tries);
    } else {
        qtest_print("INFO %s: %d tries, native restart: %d kept waiting and "
                    "were granted, %d wrong, %.0f ms", what, s.tries,
                    s.restarted_ok, s.wrong, el);
        CHECK(s.wrong == 0, "%s: with SA_RESTART, Linux restarts the call; "
              "%d returned early; first %s", what, s.wrong, s.first_wrong);
        CHECK(s.restarted_ok == tries, "%s: %d of %d restarted calls were "
              "granted after the unlock", what, s.restarted_ok, tries);
    }
    /* nothing is left behind by the interrupted calls */
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, getpid());
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int fd = qtest_tmpfile(4096, NULL);
    unsigned seed = (unsigned)getpid() * 2654435761u;
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    volatile int *stop = qtest_shared(4096);
    volatile long *ops = (volatile long *)(stop + 16);
    struct churn ch = {fd, stop, ops};
    pid_t cp = qtest_fork_fn(churner, &ch);
    qtest_track(cp);
    int shim = qtest_mode_shim();
    run(fd, BY_SETLKW, 0, 1000, &seed, "(a) F_SETLKW");
    run(fd, BY_SETLKW, SA_RESTART, shim ? 300 : 10, &seed,
        "(b) F_SETLKW, SA_RESTART");
    run(fd, BY_LOCKF, 0, 200, &seed, "(c) lockf F_LOCK");
    run(fd, BY_LOCKF, SA_RESTART, shim ? 200 : 10, &seed,
        "(d) lockf F_LOCK, SA_RESTART");
    *stop = 1;
    CHECK_EXIT0(cp);
    qtest_untrack(cp);
    qtest_print("INFO the churner made %ld lock/unlock pairs", *ops);
    CHECK(*ops > 1000, "the churner made only %ld lock/unlock pairs", *ops);
    CHECK_OK(unlock(fd, 0, 10));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
    close(fd);
    return QTEST_DONE();
}
