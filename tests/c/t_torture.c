/*
 * t_torture.c - crash anywhere: lock holders and waiters are SIGKILLed at
 * random moments, again and again, and the survivors must carry on.
 *
 * Every round starts a "victim" that holds locks on file 1 (a permanent
 * write lock P = [36,40), a write lock B = [100,110)) and on file 2 (an
 * exclusive flock), and churns through merges, splits, downgrades, lockf
 * and OFD locks in [0,35) of file 1.  Two waiters block in F_SETLKW on
 * ranges that overlap P.  After a random 0-5 ms the victim (and, at random,
 * one waiter) is SIGKILLed.  Then:
 *   - the waiters must be granted within 200 ms of the last kill that could
 *     block them (grant latency, CHECKed and reported);
 *   - B and the flock on file 2 must become lockable for us within 200 ms of
 *     the victim's kill (stale-lock latency, CHECKed and reported);
 *   - the whole arena [0,200) must be free once everybody is gone;
 *   - the locks of three long-lived "witness" processes (process-owned
 *     write and read locks, an OFD lock, and a shared flock on file 3) must
 *     still be reported, with their pids, by F_GETLK from this process;
 *   - under the shim, qnxcompat_verify() must find the registry consistent.
 *
 * Rounds (under the shim; natively only the plain ones):
 *   plain          the victim is a fork of this process, killed 0-5 ms after
 *                  it starts, or 0-5 ms after it reports holding its locks;
 *   holding-mutex  the victim is this binary re-executed with
 *                  QNXCOMPAT_FAULT=holding-mutex:N (N random): it stops right
 *                  after taking the registry mutex for the N-th time; the
 *                  waiters start while it holds the mutex and block on it;
 *   mid-update     the same with QNXCOMPAT_FAULT=mid-update:N: it stops
 *                  inside a lock update with one of its records detached.
 *
 * Default: about 200 kills (well under 60 s); QTEST_LONG=1: 1,000 kills.
 * QTEST_SEED=<n> repeats a run's random choices.  The last lines give the
 * figures.  For diagnosis only, the test reads two header fields of the
 * segment file (the repair count and the registry mutex's futex word, see
 * read_header_u32): a lost witness lock names the round and how many repairs
 * it caused, and a timeout names what this process was doing, the CPU it
 * used meanwhile, the other processes' states and the mutex's owner.  A
 * watchdog process fails a run that makes no progress for 20 s, saying which
 * system call (and, for a futex, which registry word) it is blocked in.
 *
 * Helper mode (this binary re-executed):
 *     t_torture --victim PATH1 PATH2 READYFD
 */
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "qtest.h"

#define NWIT 3
#define P_OFF 36 /* the victim's permanent write lock [36,40) */
#define P_LEN 4
#define B_OFF 100 /* the victim's write lock [100,110), probed for staleness */
#define B_LEN 10
#define ARENA 200 /* everything a round touches in file 1 is below this */
#define WIT_BASE 10000
#define WIT_STRIDE 100
#define LIMIT_MS 200.0   /* grant and stale-lock latency bound */
#define PROBE_MS 3000    /* give up probing after this long */
#define READY_FD 200     /* the victim's "I hold my locks" pipe, after exec */

/* ------------------------------------------------------------------------ */
/* Randomness, bookkeeping                                                   */
/* ------------------------------------------------------------------------ */

/* a random sleep of 0-5 ms, in microseconds */
static void rnd_sleep(void)
{
    int us = qtest_rnd_below(5001);
    struct timespec ts = {0, (long)us * 1000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static long read_header_u32(int off);

/* What main is doing, in shared memory so that the watchdog sees it. */
struct progress {
    const char *volatile what;
    volatile int round;
};
static struct progress progress0 = {"start", 0};
static struct progress *prog = &progress0;
#define phase (prog->what)
#define phase_round (prog->round)

/* This process's CPU time in ms (user + system). */
static long cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
static volatile long round_cpu_ms; /* at the start of the round */
static volatile double round_start_ms;

/* On timeout: say where we were and what the other processes were doing
 * (async-signal-safe enough for a dying process), then kill them. */
static void on_timeout(int sig)
{
    if (getpid() == qtest_main_pid) {
        char buf[512];
        int n = snprintf(buf, sizeof buf, "FAIL t_torture: timeout in round "
                         "%d while %s (this process used %ld ms of CPU in the "
                         "last %.0f ms); processes:", phase_round, phase,
                         cpu_ms() - round_cpu_ms,
                         qtest_now_ms() - round_start_ms);
        ssize_t w = write(STDOUT_FILENO, buf, (size_t)n);
        for (int i = 0; i < QTEST_MAX_TRACK; i++) {
            if (qtest_tracked[i] <= 0)
                continue;
            char path[64], wchan[64] = "?";
            snprintf(path, sizeof path, "/proc/%d/wchan", (int)qtest_tracked[i]);
            if (qtest_read_file(path, wchan, sizeof wchan) <= 0)
                snprintf(wchan, sizeof wchan, "?");
            n = snprintf(buf, sizeof buf, " %d(%c,%s)", (int)qtest_tracked[i],
                         qtest_proc_state(qtest_tracked[i]), wchan);
            w = write(STDOUT_FILENO, buf, (size_t)n);
        }
        w = write(STDOUT_FILENO, "\n", 1);
        long word = read_header_u32(64);
        if (word >= 0) {
            int tid = (int)(word & 0x3fffffff);
            n = snprintf(buf, sizeof buf, "FAIL t_torture: registry mutex word "
                         "%#lx: owner tid %d (%s)%s%s\n", word, tid,
                         tid == 0 ? "none"
                         : kill(tid, 0) == 0 ? (qtest_proc_state(tid) == 'Z'
                                                    ? "a zombie" : "alive")
                                             : "gone",
                         word & 0x40000000 ? ", owner died" : "",
                         word & 0x80000000 ? ", waiters" : "");
            w = write(STDOUT_FILENO, buf, (size_t)n);
        }
        (void)w;
    }
    qtest_on_timeout(sig); /* kills the tracked processes */
}

/* Diagnostics only, read from the segment file (see
 * src/registry/layout.rs): after the "QNXCREG1" magic, the header's count of
 * repairs after a dead mutex holder (u32 at offset 40) and the registry
 * mutex (at offset 64; its first u32 is the futex word: owner tid, 0x40000000
 * owner died, 0x80000000 waiters).  -1 when it cannot be read. */
static char reg_path[256];

static long read_header_u32(int off)
{
    int fd = open(reg_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    unsigned char h[68];
    ssize_t n = pread(fd, h, sizeof h, 0);
    close(fd);
    if (n != (ssize_t)sizeof h || memcmp(h, "QNXCREG1", 8) != 0)
        return -1;
    uint32_t r;
    memcpy(&r, h + off, 4);
    return (long)r;
}

static long read_repairs(void) { return read_header_u32(40); }

/* A watchdog process: when this process has made no progress (same round,
 * same phase) for STALL_S seconds, or is still running `after_s` seconds
 * from now (the test's alarm is about to go off), it reports what this
 * process is blocked in (/proc/PID/syscall, wchan) and, for a futex wait,
 * where the futex word lies in the registry segment (offset 64 is the
 * registry mutex), then sends it SIGALRM, so that a hang fails the test in
 * STALL_S seconds.  Killed at the end of a normal run. */
#define STALL_S 20

static pid_t start_watchdog(int after_s)
{
    pid_t target = getpid();
    pid_t w = fork();
    if (w < 0)
        qtest_fatal("fork");
    if (w > 0)
        return w;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(0);
    signal(SIGALRM, SIG_DFL);
    int still = 0, last_round = -1;
    const char *last_phase = NULL;
    for (int t = 0; t < after_s && still < STALL_S; t++) {
        sleep(1);
        if (phase_round == last_round && phase == last_phase) {
            still++;
        } else {
            still = 0;
            last_round = phase_round;
            last_phase = phase;
        }
    }
    after_s = still >= STALL_S ? still : after_s;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", (int)target);
    char *sc = qtest_slurp(path);
    snprintf(path, sizeof path, "/proc/%d/wchan", (int)target);
    char *wc = qtest_slurp(path);
    char *nl = strchr(sc, '\n');
    if (nl)
        *nl = 0;
    long nr = -1;
    unsigned long a0 = 0, a1 = 0;
    sscanf(sc, "%ld %lx %lx", &nr, &a0, &a1);
    long off = -1;
    snprintf(path, sizeof path, "/proc/%d/maps", (int)target);
    char *maps = qtest_slurp(path);
    const char *name = strrchr(reg_path, '/');
    for (char *line = maps; name && line && *line;) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = 0;
        unsigned long lo, hi;
        if (strstr(line, name + 1) && sscanf(line, "%lx-%lx", &lo, &hi) == 2 &&
            a0 >= lo && a0 < hi)
            off = (long)(a0 - lo);
        line = eol ? eol + 1 : NULL;
    }
    char where[96] = "";
    if (nr == SYS_futex && off >= 0)
        snprintf(where, sizeof where, "; a futex wait on the word at registry "
                 "offset %ld%s", off, off == 64 ? " (the registry mutex)" : "");
    qtest_print("FAIL t_torture: watchdog: %s %d s, the test process is in "
                "syscall \"%s\" (wchan %s) in round %d while %s%s",
                still >= STALL_S ? "stuck for" : "after", after_s, sc, wc,
                phase_round, phase, where);
    long word = read_header_u32(64);
    qtest_print("FAIL t_torture: watchdog: registry mutex word %#lx", word);
    kill(target, SIGALRM);
    _exit(0);
}

/* ------------------------------------------------------------------------ */
/* The victim                                                                */
/* ------------------------------------------------------------------------ */

/* Take the permanent locks, say 'L' on `ready` (if >= 0), then churn
 * through lock updates in [0,35) until killed.  Failures are ignored: a
 * waiter may hold part of the range for a moment. */
static int churn(const char *path1, const char *path2, int ready)
{
    int fd = open(path1, O_RDWR);
    int fd2 = open(path2, O_RDWR);
    if (fd < 0 || fd2 < 0)
        return 3;
    setlk(fd, F_WRLCK, P_OFF, P_LEN);
    setlk(fd, F_WRLCK, B_OFF, B_LEN);
    flock(fd2, LOCK_EX | LOCK_NB);
    if (ready >= 0) {
        ssize_t w = write(ready, "L", 1);
        (void)w;
    }
    struct flock ofd = qtest_fl(F_WRLCK, SEEK_SET, 30, 5);
    for (;;) {
        setlk(fd, F_WRLCK, 0, 10);
        setlk(fd, F_WRLCK, 15, 10);
        setlkw(fd, F_WRLCK, 0, 25);  /* merge */
        setlk(fd, F_RDLCK, 10, 5);   /* split: downgrade the middle */
        unlock(fd, 5, 1);            /* split */
        lseek(fd, 25, SEEK_SET);
        lockf(fd, F_TLOCK, 5);       /* [25,30), merges with nothing */
        ofd.l_type = F_WRLCK;
        fcntl(fd, F_OFD_SETLK, &ofd); /* [30,35), owned by the open file */
        unlock(fd, 0, 30);           /* several records at once */
        ofd.l_type = F_UNLCK;
        fcntl(fd, F_OFD_SETLK, &ofd);
    }
}

/* ------------------------------------------------------------------------ */
/* Witnesses                                                                 */
/* ------------------------------------------------------------------------ */

static const char *path1, *path2, *path3;
static int fd1;   /* our O_RDWR open of file 1 (checker) */
static int fd2;   /* ours of file 2 (flock probe) */
static int fd3;   /* ours of file 3 (witness flock probe) */
static int long_mode;

static off_t wit_off(int i) { return WIT_BASE + (off_t)i * WIT_STRIDE; }

static void witness(void *arg)
{
    int i = (int)(intptr_t)arg;
    alarm(long_mode ? 3000 : 300);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int own = qtest_open(path1, O_RDWR);
    off_t o = wit_off(i);
    CHECK_OK(setlk(fd1, F_WRLCK, o, 10));
    CHECK_OK(setlk(fd1, F_RDLCK, o + 20, 10));
    struct flock ofd = qtest_fl(F_WRLCK, SEEK_SET, o + 40, 10);
    CHECK_OK(fcntl(own, F_OFD_SETLK, &ofd));
    int own3 = -1;
    if (i == 0) {
        own3 = qtest_open(path3, O_RDWR);
        CHECK_OK(flock(own3, LOCK_SH));
    }
    child_say('L');
    child_await('Q', (long_mode ? 3000 : 300) * 1000);
    CHECK_OK(unlock(fd1, o, 30));
    ofd.l_type = F_UNLCK;
    CHECK_OK(fcntl(own, F_OFD_SETLK, &ofd));
    if (own3 >= 0)
        CHECK_OK(flock(own3, LOCK_UN));
}

static qtest_child wit[NWIT];

static char round_desc[160]; /* what the current round did */
static int wit_lost[NWIT * 3 + 1]; /* reported once, then not checked again */

/* F_GETLK from this process must report lock {type, start, len, pid}. */
static int getlk_is(int id, off_t start, short type, pid_t pid,
                    const char *what, int round)
{
    if (wit_lost[id])
        return 0;
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, start, 10);
    fl.l_pid = -7;
    errno = 0;
    int r = fcntl(fd1, F_GETLK, &fl);
    int ok = r == 0 && fl.l_type == type && fl.l_whence == SEEK_SET &&
             fl.l_start == start && fl.l_len == 10 && fl.l_pid == pid;
    CHECK(ok, "round %d (%s): witness %s lock at %lld lost: F_GETLK rc %d "
          "%s, got {%s, start=%lld, len=%lld, pid=%d}, expected {%s, pid=%d}",
          round, round_desc, what, (long long)start, r,
          r ? qtest_errname(errno) : "", qtest_typename(fl.l_type),
          (long long)fl.l_start, (long long)fl.l_len, (int)fl.l_pid,
          qtest_typename(type), (int)pid);
    if (!ok)
        wit_lost[id] = 1;
    return ok;
}

static int check_witnesses(int round)
{
    int ok = 1;
    for (int i = 0; i < NWIT; i++) {
        off_t o = wit_off(i);
        ok &= getlk_is(3 * i, o, F_WRLCK, wit[i].pid, "write", round);
        ok &= getlk_is(3 * i + 1, o + 20, F_RDLCK, wit[i].pid, "read", round);
        ok &= getlk_is(3 * i + 2, o + 40, F_WRLCK, -1, "OFD", round);
    }
    if (wit_lost[NWIT * 3])
        return 0;
    errno = 0;
    int r = flock(fd3, LOCK_EX | LOCK_NB);
    int e = errno;
    if (r == 0)
        flock(fd3, LOCK_UN);
    CHECK(r == -1 && e == EWOULDBLOCK, "round %d (%s): witness flock(LOCK_SH)"
          " on file 3 lost: our LOCK_EX|LOCK_NB gave %d %s", round, round_desc,
          r, r ? qtest_errname(e) : "");
    if (!(r == -1 && e == EWOULDBLOCK))
        wit_lost[NWIT * 3] = 1;
    return ok && r == -1;
}

/* ------------------------------------------------------------------------ */
/* Waiters                                                                   */
/* ------------------------------------------------------------------------ */

struct grant {
    double t;  /* CLOCK_MONOTONIC ms of the grant, 0 if none */
    int rc, err;
};
static struct grant *grants; /* [2], shared */

struct waiter_arg {
    int slot;
    off_t start, len;
};

/* Block for a write lock; record when it was granted; release it. */
static void waiter(void *arg)
{
    struct waiter_arg *w = arg;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int r = setlkw(fd1, F_WRLCK, w->start, w->len);
    int e = errno;
    grants[w->slot].t = qtest_now_ms();
    grants[w->slot].err = e;
    grants[w->slot].rc = r;
    if (r == 0)
        CHECK_OK(unlock(fd1, w->start, w->len));
    CHECK(r == 0, "waiter F_SETLKW [%lld,%lld): %d %s", (long long)w->start,
          (long long)(w->start + w->len), r, qtest_errname(e));
}

static pid_t start_waiter(struct waiter_arg *w)
{
    grants[w->slot].t = 0;
    grants[w->slot].rc = -2;
    qtest_child c = qtest_child_start(waiter, w);
    close(c.from_child);
    close(c.to_child);
    qtest_track(c.pid);
    return c.pid;
}

/* ------------------------------------------------------------------------ */
/* Victims                                                                   */
/* ------------------------------------------------------------------------ */

struct victim {
    pid_t pid;
    int ready; /* read end of the ready pipe */
    int err;   /* read end of its stderr (exec'd victims), else -1 */
};

static void plain_victim_body(void *arg)
{
    int ready = *(int *)arg;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    churn(path1, path2, ready);
}

static struct victim start_plain_victim(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        qtest_fatal("pipe");
    qtest_child c = qtest_child_start(plain_victim_body, &p[1]);
    close(c.from_child);
    close(c.to_child);
    close(p[1]);
    qtest_track(c.pid);
    struct victim v = {c.pid, p[0], -1};
    return v;
}

static struct victim start_fault_victim(const char *fault)
{
    int p[2], e[2];
    if (pipe2(p, O_CLOEXEC) != 0 || pipe2(e, O_CLOEXEC) != 0)
        qtest_fatal("pipe");
    pid_t pid = qtest_fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGALRM, SIG_DFL);
        dup2(e[1], 2);
        dup2(p[1], READY_FD);
        setenv("QNXCOMPAT_FAULT", fault, 1);
        char rfd[16];
        snprintf(rfd, sizeof rfd, "%d", READY_FD);
        char *argv[] = {"t_torture", "--victim", (char *)path1, (char *)path2,
                        rfd, NULL};
        execv("/proc/self/exe", argv);
        _exit(98);
    }
    qtest_track(pid);
    close(p[1]);
    close(e[1]);
    struct victim v = {pid, p[0], e[0]};
    return v;
}

/* ------------------------------------------------------------------------ */
/* Rounds                                                                    */
/* ------------------------------------------------------------------------ */

enum kind { PLAIN, HOLDING, MIDUPDATE, NKINDS };
static const char *kind_name[NKINDS] = {"plain", "holding-mutex", "mid-update"};

static struct {
    long kills, rounds[NKINDS];
    double max_grant, max_stale;
    long grants_measured, stale_measured;
    int max_grant_round, max_stale_round;
    long repairs_plain; /* repairs seen in plain rounds (diagnostics) */
} fig;

/* SIGKILL pid if it is still running; returns 1 if a kill was made.  If it
 * had already finished by itself, it is reaped here and *status set. */
static int kill_if_running(pid_t pid, double *when, int *status)
{
    if (waitpid(pid, status, WNOHANG) == pid) {
        qtest_untrack(pid);
        return 0;
    }
    kill(pid, SIGKILL);
    *when = qtest_now_ms();
    fig.kills++;
    return 1;
}

/* Poll F_SETLK (or flock) until it succeeds; the latency since t0. */
static double probe_free(int round, const char *what, double t0, int use_flock)
{
    double end = qtest_now_ms() + PROBE_MS;
    int r, e = 0;
    for (;;) {
        errno = 0;
        if (use_flock) {
            r = flock(fd2, LOCK_EX | LOCK_NB);
            e = errno;
            if (r == 0)
                flock(fd2, LOCK_UN);
        } else {
            r = setlk(fd1, F_WRLCK, B_OFF, B_LEN);
            e = errno;
            if (r == 0)
                unlock(fd1, B_OFF, B_LEN);
        }
        if (r == 0 || qtest_now_ms() > end)
            break;
        if (!(e == EAGAIN || e == EWOULDBLOCK || e == EACCES))
            break;
        qtest_msleep(1);
    }
    double dt = qtest_now_ms() - t0;
    CHECK(r == 0, "round %d: %s of the killed victim still not lockable after "
          "%.0f ms (%s)", round, what, dt, qtest_errname(e));
    if (r != 0)
        return -1;
    CHECK(dt <= LIMIT_MS, "round %d: %s of the killed victim became lockable "
          "only %.1f ms after the kill (limit %.0f ms)", round, what, dt,
          LIMIT_MS);
    if (dt > fig.max_stale) {
        fig.max_stale = dt;
        fig.max_stale_round = round;
    }
    fig.stale_measured++;
    return dt;
}

static void one_round(int round, enum kind k)
{
    fig.rounds[k]++;
    phase_round = round;
    round_cpu_ms = cpu_ms();
    round_start_ms = qtest_now_ms();
    phase = "starting the victim";
    struct victim v;
    char err[1024];
    int fault_ok = 1;
    int wait_ready = k == PLAIN && qtest_rnd_below(2);

    char fault[64] = "";
    if (k == PLAIN) {
        v = start_plain_victim();
        if (wait_ready) {
            char b[2];
            qtest_read_until(v.ready, b, sizeof b, NULL, 5000);
            CHECK(b[0] == 'L', "round %d: plain victim did not report its "
                  "locks", round);
        }
    } else {
        snprintf(fault, sizeof fault, "%s:%d", kind_name[k],
                 k == HOLDING ? 1 + qtest_rnd_below(12) : 1 + qtest_rnd_below(4));
        v = start_fault_victim(fault);
        char want[96];
        snprintf(want, sizeof want, "qnxcompat: fault %s reached (pid %d)",
                 kind_name[k], (int)v.pid);
        phase = "waiting for the fault line";
        qtest_read_until(v.err, err, sizeof err, "reached (pid", 5000);
        fault_ok = strstr(err, want) != NULL;
        CHECK(fault_ok, "round %d: %s victim (%s) did not stop at its fault "
              "point; stderr: \"%s\"", round, kind_name[k], fault, err);
        /* the victim now holds the registry mutex: we must not touch the
         * registry before it is dead */
    }

    struct waiter_arg w1 = {0, 0, 40}, w2 = {1, 20, 20};
    double t_v = 0, t_w2kill = 0;
    int w2_order = qtest_rnd_below(3); /* 0: not killed, 1: before, 2: after */
    pid_t p1 = 0, p2 = 0;
    int start_order = qtest_rnd_below(3);
    phase = "starting the waiters";
    if (start_order == 0)
        rnd_sleep();
    p1 = start_waiter(&w1);
    if (start_order == 1)
        rnd_sleep();
    p2 = start_waiter(&w2);

    snprintf(round_desc, sizeof round_desc, "%s%s%s, waiters started %s, "
             "waiter 2 %s", kind_name[k], *fault ? " " : "", fault,
             start_order == 0 ? "late" : start_order == 1 ? "apart" : "at once",
             w2_order == 0 ? "not killed" : w2_order == 1 ? "killed first"
                                                          : "killed last");
    if (wait_ready)
        strcat(round_desc, ", killed after the victim held its locks");
    long repairs0 = k == PLAIN ? read_repairs() : -1;
    int w2_killed = 0, st2 = -3, stv = -3;
    phase = "killing";
    rnd_sleep();
    if (w2_order == 1) {
        w2_killed = kill_if_running(p2, &t_w2kill, &st2);
        rnd_sleep();
    }
    int v_killed = kill_if_running(v.pid, &t_v, &stv);
    CHECK(v_killed, "round %d: the %s victim exited by itself", round,
          kind_name[k]);
    if (w2_order == 2) {
        rnd_sleep();
        w2_killed = kill_if_running(p2, &t_w2kill, &st2);
    }

    /* the dead victim's other locks become free */
    phase = "probing the victim's write lock [100,110)";
    probe_free(round, "write lock [100,110)", t_v, 0);
    phase = "probing the victim's flock on file 2";
    probe_free(round, "flock on file 2", t_v, 1);
    phase = "waiting for the waiters";

    /* the waiters are granted */
    int st1 = qtest_wait(p1, 5000);
    qtest_untrack(p1);
    char d[96];
    qtest_describe_status(st1, d, sizeof d);
    CHECK(st1 >= 0 && WIFEXITED(st1) && WEXITSTATUS(st1) == 0,
          "round %d (%s): waiter 1 %s (rc %d %s)", round, kind_name[k], d,
          grants[0].rc, qtest_errname(grants[0].err));
    if (st2 == -3) {
        st2 = qtest_wait(p2, 5000);
        qtest_untrack(p2);
    }
    if (w2_killed && st2 >= 0 && WIFEXITED(st2) && WEXITSTATUS(st2) == 0) {
        /* it finished by itself just before the SIGKILL arrived */
        w2_killed = 0;
        fig.kills--;
    }
    if (w2_killed) {
        CHECK(st2 >= 0 && WIFSIGNALED(st2) && WTERMSIG(st2) == SIGKILL,
              "round %d: killed waiter 2 status %#x", round, st2);
    } else {
        qtest_describe_status(st2, d, sizeof d);
        CHECK(st2 >= 0 && WIFEXITED(st2) && WEXITSTATUS(st2) == 0,
              "round %d (%s): waiter 2 %s (rc %d %s)", round, kind_name[k], d,
              grants[1].rc, qtest_errname(grants[1].err));
    }
    for (int s = 0; s < 2; s++) {
        if (s == 1 && w2_killed)
            continue;
        if (grants[s].rc != 0 || grants[s].t == 0)
            continue;
        /* the last kill that could have kept it waiting */
        double t0 = t_v;
        if (s == 0 && w2_killed && t_w2kill > t0)
            t0 = t_w2kill;
        if (grants[s].t < t0)
            continue; /* granted before anybody died */
        double dt = grants[s].t - t0;
        fig.grants_measured++;
        CHECK(dt <= LIMIT_MS, "round %d (%s): waiter %d granted %.1f ms after "
              "the kill of %s (limit %.0f ms)", round, kind_name[k], s + 1, dt,
              t0 == t_v ? "the victim" : "waiter 2", LIMIT_MS);
        if (dt > fig.max_grant) {
            fig.max_grant = dt;
            fig.max_grant_round = round;
        }
    }

    if (stv == -3) {
        stv = qtest_wait(v.pid, 5000);
        qtest_untrack(v.pid);
    }
    CHECK(stv >= 0 && WIFSIGNALED(stv) && WTERMSIG(stv) == SIGKILL,
          "round %d: victim status %#x", round, stv);
    if (v.err >= 0) {
        /* nothing but the fault line on the victim's stderr */
        size_t n = strlen(err);
        qtest_read_until(v.err, err + n, sizeof err - n, NULL, 100);
        char *nl = strchr(err, '\n');
        CHECK(!fault_ok || (nl && nl[1] == 0), "round %d: victim stderr: "
              "\"%s\"", round, err);
        close(v.err);
    }
    close(v.ready);

    /* nothing is left in the arena */
    phase = "checking the arena";
    double t0 = qtest_now_ms(), end = t0 + PROBE_MS;
    int r;
    while ((r = setlk(fd1, F_WRLCK, 0, ARENA)) != 0 && qtest_now_ms() < end)
        qtest_msleep(1);
    if (r != 0) {
        struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, ARENA);
        int g = fcntl(fd1, F_GETLK, &fl);
        char st = g == 0 && fl.l_pid > 0 ? qtest_proc_state(fl.l_pid) : '-';
        const char *who = "";
        for (int i = 0; i < NWIT; i++)
            if (fl.l_pid == wit[i].pid)
                who = " (a witness)";
        char info[200] = "";
        if (st != '?' && st != '-') {
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/stat", (int)fl.l_pid);
            char *t = qtest_slurp(path);
            snprintf(info, sizeof info, "; its stat: %.150s", t);
            free(t);
        }
        CHECK(0, "round %d (%s): arena [0,%d) still locked %.0f ms after "
              "everybody left: F_GETLK reports {%s, start=%lld, len=%lld, "
              "pid=%d}, a process that is %s%s (we are %d)%s", round,
              round_desc, ARENA, qtest_now_ms() - t0,
              qtest_typename(fl.l_type), (long long)fl.l_start,
              (long long)fl.l_len, (int)fl.l_pid,
              st == '?' ? "gone" : st == 'Z' ? "a zombie"
              : st == '-' ? "unknown" : "alive", who, (int)getpid(), info);
    }
    if (r == 0) {
        CHECK(qtest_now_ms() - t0 <= LIMIT_MS, "round %d: arena free only "
              "after %.1f ms", round, qtest_now_ms() - t0);
        CHECK_OK(unlock(fd1, 0, ARENA));
    }

    if (qtest_mode_shim()) {
        long repairs1 = read_repairs();
        if (repairs0 >= 0 && repairs1 >= 0) {
            fig.repairs_plain += repairs1 - repairs0;
            if (repairs1 > repairs0) {
                size_t n = strlen(round_desc);
                snprintf(round_desc + n, sizeof round_desc - n,
                         ", %ld registry repair(s) after a dead mutex holder",
                         repairs1 - repairs0);
            }
        }
    }
    phase = "checking the witnesses";
    check_witnesses(round);

    phase = "verifying the registry";
    qtest_verify_fn vf = qtest_get_verify();
    if (qtest_mode_shim()) {
        char msg[256] = "";
        int vr = vf ? vf(NULL, msg, sizeof msg) : -1;
        CHECK(vr == 0, "round %d (%s): qnxcompat_verify = %d: %s", round,
              kind_name[k], vr, vf ? msg : "qnxcompat_verify not found");
    }
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--victim") == 0) {
        alarm(60);
        return churn(argv[2], argv[3], atoi(argv[4]));
    }
    qtest_init();
    signal(SIGALRM, on_timeout);
    unsetenv("QNXCOMPAT_FAULT");
    long_mode = qtest_long_mode();
    long target = long_mode ? 1000 : 200;
    alarm(long_mode ? 3000 : 90);
    unsigned long long seed = qtest_seed();
    int shim = qtest_mode_shim();
    const char *rn = getenv("QNXCOMPAT_REGISTRY");
    if (rn && *rn)
        snprintf(reg_path, sizeof reg_path, "/dev/shm/%s", rn);
    else
        snprintf(reg_path, sizeof reg_path, "/dev/shm/qnxcompat-v1-%d",
                 (int)getuid());
    qtest_print("torture: %s mode, target %ld kills, seed %llu",
                shim ? "shim" : "native", target, seed);

    void *g = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g == MAP_FAILED)
        qtest_fatal("mmap");
    grants = g;
    prog = (struct progress *)((char *)g + 2048);
    prog->what = "start";

    fd1 = qtest_tmpfile(WIT_BASE + NWIT * WIT_STRIDE, &path1);
    int tmp2 = qtest_tmpfile(100, &path2);
    int tmp3 = qtest_tmpfile(100, &path3);
    close(tmp2);
    close(tmp3);
    fd2 = open(path2, O_RDWR | O_CLOEXEC);
    fd3 = open(path3, O_RDWR | O_CLOEXEC);
    if (fd2 < 0 || fd3 < 0)
        qtest_fatal("open");
    if (shim)
        CHECK(qtest_get_verify() != NULL, "qnxcompat_verify not found by dlsym");

    pid_t dog = start_watchdog(long_mode ? 2990 : 82);
    qtest_track(dog);
    for (int i = 0; i < NWIT; i++) {
        wit[i] = qtest_child_start(witness, (void *)(intptr_t)i);
        qtest_track(wit[i].pid);
        CHECK_HEAR(&wit[i], 'L', 5000, NULL);
    }
    check_witnesses(0);

    double t_start = qtest_now_ms();
    double budget = long_mode ? 1500e3 : 55e3;
    int round = 0;
    while (fig.kills < target) {
        if (qtest_now_ms() - t_start > budget) {
            CHECK(0, "only %ld kills in %.0f s", fig.kills, budget / 1e3);
            break;
        }
        enum kind k = PLAIN;
        if (shim) {
            int x = qtest_rnd_below(10);
            k = x < 4 ? PLAIN : x < 7 ? HOLDING : MIDUPDATE;
        }
        one_round(++round, k);
    }
    double secs = (qtest_now_ms() - t_start) / 1e3;

    kill(dog, SIGKILL);
    qtest_wait(dog, 2000);
    qtest_untrack(dog);
    for (int i = 0; i < NWIT; i++) {
        CHECK_CHILD_FINISH(&wit[i]);
        qtest_untrack(wit[i].pid);
    }
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 0);
    CHECK_OK(fcntl(fd1, F_GETLK, &fl));
    CHECK(fl.l_type == F_UNLCK, "file 1 not free at the end: {%s, start=%lld, "
          "len=%lld, pid=%d}", qtest_typename(fl.l_type), (long long)fl.l_start,
          (long long)fl.l_len, (int)fl.l_pid);
    if (shim) {
        qtest_verify_fn vf = qtest_get_verify();
        char msg[256] = "";
        int vr = vf ? vf(NULL, msg, sizeof msg) : -1;
        CHECK(vr == 0, "final qnxcompat_verify = %d: %s", vr, msg);
        qtest_print("torture: registry at the end: %s", msg);
    }
    qtest_print("torture: %ld kills survived in %d rounds (%ld plain, %ld "
                "holding-mutex, %ld mid-update) in %.1f s",
                fig.kills, round, fig.rounds[PLAIN], fig.rounds[HOLDING],
                fig.rounds[MIDUPDATE], secs);
    if (shim)
        qtest_print("torture: registry repairs: %ld in total, %ld of them after "
                    "plain kills that hit a process holding the registry mutex",
                    read_repairs(), fig.repairs_plain);
    qtest_print("torture: max grant latency %.1f ms (round %d, %ld grants "
                "measured); max stale-lock latency %.1f ms (round %d, %ld "
                "probes); limit %.0f ms",
                fig.max_grant, fig.max_grant_round, fig.grants_measured,
                fig.max_stale, fig.max_stale_round, fig.stale_measured,
                LIMIT_MS);
    close(fd1);
    close(fd2);
    close(fd3);
    return QTEST_DONE();
}
