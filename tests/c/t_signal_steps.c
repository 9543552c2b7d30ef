/*
 * t_signal_steps.c - a signal handler that closes a locked file, arriving at
 * every step of a lock call on another file.
 *
 * QNX releases a process's locks on a file at the first close of any of its
 * descriptors, and close() is async-signal-safe, so a handler may close a
 * locked file in the middle of an unrelated lock call.  The lock must be
 * released all the same, and the interrupted call must still succeed.
 *
 * Part 1, fault injection (QNXCOMPAT_FAULT=raise:<point>:<n>, read when the
 * library loads; it raises SIGUSR1 in the calling thread the n-th time a
 * lock call passes <point>): for every point (entry, before-mutex,
 * holding-mutex, mid-update, after-unlock) and n = 1, 2, 3, a helper holds
 * F_SETLK write locks X [0,10) and Y [0,10) (taken before its exec into the
 * faulted image; exec keeps them), installs a SIGUSR1 handler that closes
 * X's descriptor, and makes three F_SETLK calls on Y, each of which passes
 * every point once: lock [10,20) (merges), unlock [10,20) (splits), lock
 * [10,20).  Then: every call returned 0, the handler ran exactly once and
 * inside one of the first n calls, another process is granted X [0,10), and
 * F_GETLK shows the helper holding Y [0,20).  SIGUSR1 stays blocked until
 * the handler is installed, so a raise outside the calls shows as
 * "handler ran outside the Y calls" instead of killing the helper.
 * Natively there is no library: the helper raises SIGUSR1 itself at the
 * start of call n, and the kernel does the rest.
 *
 * Part 2, no fault injection: a child loops F_SETLK lock/unlock calls on Y
 * while a one-shot POSIX timer (a delay of 1..40 us, varied per round)
 * sends SIGUSR1; the handler closes X's descriptor (re-opened and re-locked
 * every round).  After each round this process tries F_SETLK X [0,10): it
 * must be granted every round, and no call on Y may fail.  4000 rounds.
 *
 * Helper mode (this binary re-executed):
 *     t_signal_steps --victim N    the part-1 helper (X, Y at fds 20, 21);
 *                                  N: the call at which to raise natively
 */
#include "qtest.h"

#include <time.h>

#define XFD 20
#define YFD 21
#define ROUNDS 4000

static const char *xpath, *ypath;

/* ------------------------------------------------------------------------ */
/* Part 1: the faulted helper                                                */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t v_xfd = XFD;
static volatile sig_atomic_t v_in_call;
static volatile sig_atomic_t v_hits;
static volatile sig_atomic_t v_hit_call = -1;
static volatile sig_atomic_t v_close_rc = 99;

static void victim_handler(int sig)
{
    (void)sig;
    int e = errno;
    v_hits++;
    if (v_hits == 1)
        v_hit_call = v_in_call;
    if (v_xfd >= 0) {
        v_close_rc = close(v_xfd) == 0 ? 0 : errno;
        v_xfd = -1;
    }
    errno = e;
}

static int victim_main(int native_n)
{
    alarm(20);
    qtest_on_signal(SIGUSR1, victim_handler, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &set, NULL); /* a pending raise lands here */
    qtest_print("READY");
    char b;
    if (read(0, &b, 1) != 1)
        return 3;
    static const struct {
        short type;
        const char *name;
    } calls[3] = {{F_WRLCK, "lock"}, {F_UNLCK, "unlock"}, {F_WRLCK, "lock"}};
    for (int i = 0; i < 3; i++) {
        v_in_call = i + 1;
        if (native_n == i + 1)
            raise(SIGUSR1); /* natively: what the library does under the shim */
        errno = 0;
        int r = qtest_lk(YFD, F_SETLK, calls[i].type, 10, 10);
        int e = errno;
        v_in_call = 0;
        char rb[64];
        qtest_print("CALL%d %s", i + 1, qtest_rc_str(r, e, rb, sizeof rb));
    }
    qtest_print("HITS %d", (int)v_hits);
    qtest_print("HITCALL %d", (int)v_hit_call);
    qtest_print("CLOSE %d", (int)v_close_rc);
    qtest_print("DONE 0");
    qtest_wait_eof();
    return 0;
}

/* before(): in the forked child (still the test image), open X and Y at
 * XFD/YFD, lock [0,10) of each, and block SIGUSR1 across the exec. */
static void victim_setup(void *arg)
{
    (void)arg;
    int x = open(xpath, O_RDWR), y = open(ypath, O_RDWR);
    if (x < 0 || y < 0 || dup2(x, XFD) != XFD || dup2(y, YFD) != YFD)
        _exit(95);
    close(x);
    close(y);
    if (setlk(XFD, F_WRLCK, 0, 10) != 0 || setlk(YFD, F_WRLCK, 0, 10) != 0)
        _exit(96);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

static void fault_round(int xfd, int yfd, const char *point, int n)
{
    char what[64], fault[96], nbuf[8];
    snprintf(what, sizeof what, "raise:%s:%d", point, n);
    snprintf(fault, sizeof fault, "QNXCOMPAT_FAULT=raise:%s:%d", point, n);
    snprintf(nbuf, sizeof nbuf, "%d", qtest_mode_shim() ? 0 : n);
    char *env[] = {fault, NULL};
    char *argv[] = {"t_signal_steps", "--victim", nbuf, NULL};
    qtest_helper h = qtest_spawn_after(NULL, argv, env, victim_setup, NULL);
    char out[1024] = "", err[1024] = "", o1[1100], e1[1100];
    qtest_read_until(h.out, out, sizeof out, "READY", 5000);
    if (!strstr(out, "READY")) {
        int st = qtest_helper_finish(&h, 2000, out, sizeof out, err, sizeof err);
        CHECK(0, "%s: helper did not start (status %#x): stdout \"%s\" stderr "
              "\"%s\"", what, st, qtest_oneline(out, o1, sizeof o1),
              qtest_oneline(err, e1, sizeof e1));
        return;
    }
    qtest_helper_say(&h, "G");
    qtest_read_until(h.out, out, sizeof out, "DONE", 5000);
    for (int i = 1; i <= 3; i++) {
        char key[8], want[32];
        snprintf(key, sizeof key, "CALL%d ", i);
        const char *p = strstr(out, key);
        snprintf(want, sizeof want, "%s0\n", key);
        CHECK(p && strncmp(p, want, strlen(want)) == 0,
              "%s: F_SETLK call %d on Y did not return 0: \"%s\"", what, i,
              qtest_oneline(out, o1, sizeof o1));
    }
    long long hits = qtest_out_val(out, "HITS", -1);
    long long at = qtest_out_val(out, "HITCALL", -1);
    CHECK(hits == 1, "%s: the SIGUSR1 handler ran %lld times, expected once%s",
          what, hits, hits == 0 ? " (the fault point did not raise)" : "");
    if (hits >= 1)
        CHECK(at >= 1 && at <= n, "%s: the handler ran %s, expected inside "
              "one of the first %d calls on Y", what,
              at == 0 ? "outside the Y calls (e.g. in the constructor)"
                      : "in a later call", n);
    if (hits >= 1)
        CHECK(qtest_out_val(out, "CLOSE", -1) == 0,
              "%s: the handler's close(X) failed: \"%s\"", what,
              qtest_oneline(out, o1, sizeof o1));
    int r = qtest_probe_setlk(xfd, F_WRLCK, 0, 10);
    CHECK(r == 0, "%s: another process's F_SETLK X [0,10) gave %s after the "
          "handler closed X%s", what,
          r < 0 ? "probe died" : r == 0 ? "0" : qtest_errname(r),
          hits == 0 ? " (no handler ran: X was never closed)"
                    : " (the close's release was lost)");
    CHECK_GETLK(yfd, 0, 100, F_WRLCK, 0, 20, h.pid);
    int st = qtest_helper_finish(&h, 5000, out, sizeof out, err, sizeof err);
    CHECK(qtest_exited0(st), "%s: helper status %#x, stderr \"%s\"", what, st,
          qtest_oneline(err, e1, sizeof e1));
}

static void fault_injection(int xfd, int yfd)
{
    static const char *const points[] = {"entry", "before-mutex",
                                         "holding-mutex", "mid-update",
                                         "after-unlock"};
    for (size_t p = 0; p < sizeof points / sizeof points[0]; p++)
        for (int n = 1; n <= 3; n++)
            fault_round(xfd, yfd, points[p], n);
}

/* ------------------------------------------------------------------------ */
/* Part 2: a timer                                                           */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t t_xfd = -1;
static volatile sig_atomic_t t_closed;

static void timer_handler(int sig)
{
    (void)sig;
    int e = errno;
    if (t_xfd >= 0) {
        close(t_xfd);
        t_xfd = -1;
        t_closed = 1;
    }
    errno = e;
}

static void timer_child(void *arg)
{
    (void)arg;
    int yfd = qtest_open(ypath, O_RDWR);
    qtest_on_signal(SIGUSR1, timer_handler, 0);
    timer_t tm;
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    if (timer_create(CLOCK_MONOTONIC, &ev, &tm) != 0)
        qtest_fatal("timer_create");
    long yfail = 0, setup_fail = 0, calls = 0, missed = 0;
    int first_err = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int x = open(xpath, O_RDWR);
        if (x < 0)
            qtest_fatal("open X");
        if (setlk(x, F_WRLCK, 0, 10) != 0) {
            setup_fail++;
            close(x);
            continue;
        }
        t_closed = 0;
        t_xfd = x;
        struct itimerspec its;
        memset(&its, 0, sizeof its);
        its.it_value.tv_nsec = 1000 + (round * 977) % 40000;
        timer_settime(tm, 0, &its, NULL);
        for (long i = 0; !t_closed && i < 2000000; i++) {
            errno = 0;
            int r = (i & 1) ? unlock(yfd, 100, 10)
                            : setlk(yfd, F_WRLCK, 100, 10);
            calls++;
            if (r != 0) {
                if (!yfail)
                    first_err = errno;
                yfail++;
            }
        }
        if (!t_closed) { /* the timer never fired: close it ourselves */
            missed++;
            t_xfd = -1;
            close(x);
        }
        unlock(yfd, 100, 10);
        child_say('C'); /* X is closed: ask the parent to lock it */
        if (!child_await('K', 10000))
            break;
    }
    timer_delete(tm);
    CHECK(setup_fail == 0, "timer: re-locking X failed in %ld rounds",
          setup_fail);
    CHECK(yfail == 0, "timer: %ld of %ld F_SETLK calls on Y failed (first: "
          "%s)", yfail, calls, qtest_errname(first_err));
    CHECK(missed < ROUNDS / 10, "timer: the timer missed %ld rounds", missed);
    child_say('E');
    child_await('Q', 10000);
}

static void timer_rounds(int xfd)
{
    qtest_child c = qtest_child_start(timer_child, NULL);
    long lost = 0, done = 0;
    int first_lost = -1, first_err = 0;
    double t0 = qtest_now_ms();
    for (;;) {
        struct qtest_msg m;
        if (qtest_get(c.from_child, 10000, &m) != 1) {
            CHECK(0, "timer: child stopped answering after %ld rounds", done);
            break;
        }
        if (m.tag == 'E')
            break;
        errno = 0;
        int r = setlk(xfd, F_WRLCK, 0, 10);
        if (r == 0) {
            unlock(xfd, 0, 10);
        } else {
            if (first_lost < 0) {
                first_lost = (int)done;
                first_err = errno;
            }
            lost++;
        }
        done++;
        qtest_say(&c, 'K');
    }
    qtest_print("NOTE timer: %ld rounds in %.0f ms, X still locked after the "
                "handler's close in %ld", done, qtest_now_ms() - t0, lost);
    CHECK(lost == 0, "timer: in %ld of %ld rounds X [0,10) was still locked "
          "after the signal handler closed X's descriptor (first in round %d: "
          "%s): the close's release was lost", lost, done, first_lost,
          qtest_errname(first_err));
    CHECK(done == ROUNDS, "timer: %ld rounds done, expected %d", done, ROUNDS);
    CHECK_CHILD_FINISH(&c);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--victim") == 0)
        return victim_main(atoi(argv[2]));
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int xfd = qtest_tmpfile(100, &xpath);
    int yfd = qtest_tmpfile(100, &ypath);
    fault_injection(xfd, yfd);
    timer_rounds(xfd);
    close(xfd);
    close(yfd);
    return QTEST_DONE();
}
