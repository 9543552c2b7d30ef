/*
 * t_deadlock.c - EDEADLK: deadlock detection over the whole wait-for graph.
 *
 * An owner (a process for fcntl()/lockf() locks, an open file for flock(),
 * F_FLOCK and OFD locks) waits for another when one of its blocked requests
 * conflicts with a lock the other holds.  A blocking request (F_SETLKW,
 * lockf F_LOCK, flock() without LOCK_NB, F_SETLKW with F_FLOCK|type,
 * F_OFD_SETLKW) whose wait would close a cycle in that graph fails with
 * -1 EDEADLK (QNX lib_ref i/iofunc_lock.html: "a deadlock was detected";
 * l/lockf.html lists EDEADLK for F_LOCK); only that closing request fails,
 * it keeps what it holds, and the others go on waiting until it backs off.
 * No false positives: a chain is not a cycle, a dead owner is reaped rather
 * than counted, non-blocking requests get EAGAIN/EACCES/EWOULDBLOCK, and a
 * waiter that was granted, interrupted (EINTR) or killed leaves no edge.
 * Across lock kinds, a lock can only be released by a process: an open
 * file whose only process is blocked in fcntl() cannot release its flock()
 * lock (and such a cycle is a deadlock), but one that is also open in a
 * process that waits for nothing can (and then there is none).
 *
 * Both modes: POSIX fcntl()/lockf() cycles between up to 10 processes, on
 * one or two files, read-lock upgrades; Linux finds those too.
 * QNX-only (under the shim; Linux's search stops after ~10 hops and ignores
 * flock() and OFD locks, so natively such a cycle is a real deadlock, which
 * the else branches show and break by killing a process): a 24-process
 * cycle, cycles mixing process and open-file owners, OFD cycles, and the
 * QNXCOMPAT_TRACE line naming the cycle.
 *
 * Every process taking part is an "actor": a child that opens each test
 * file itself (so its flock()/OFD locks belong to its own open files) and
 * runs the lock calls the parent sends it, announcing 'R' before each call
 * and reporting 'D' (rc, errno) after it.  Traced actors are this binary
 * re-executed as  t_deadlock --actor UPFD DOWNFD PATH...  with
 * QNXCOMPAT_TRACE set.  Every wait is bounded; a request that should have
 * failed with EDEADLK but hangs is a failure, and its process is killed to
 * break the real deadlock.
 */
#include <sys/file.h>

#include "qtest.h"

#define NFILES 2
#define X 0 /* file index: the main test file */
#define Y 1 /* a second file */
#define FW (F_WRLCK | F_FLOCK)
#define FU (F_UNLCK | F_FLOCK)
#define RING_MAX 24

static char paths[NFILES][64];
static int fds[NFILES]; /* the parent's own opens, for probes */

/* ---- commands an actor runs ------------------------------------------------- */

enum kind { K_FCNTL = 1, K_LOCKF, K_FLOCK };

struct cmd {
    int tag;   /* 'O' run the call, 'Q' quit */
    int kind;  /* enum kind */
    int file;  /* X or Y: the actor's own open of that file */
    int rawfd; /* >= 0: use this inherited descriptor instead */
    int cmd;   /* fcntl command, lockf function or flock operation */
    int type;  /* fcntl l_type (may include F_FLOCK) */
    long long start, len;
};

static struct cmd fc(int file, int cmd, int type, off_t start, off_t len)
{
    struct cmd c = {'O', K_FCNTL, file, -1, cmd, type, start, len};
    return c;
}

static struct cmd fc_fd(int fd, int cmd, int type, off_t start, off_t len)
{
    struct cmd c = {'O', K_FCNTL, X, fd, cmd, type, start, len};
    return c;
}

/* lseek to start, then lockf(func, len) */
static struct cmd lf(int file, int func, off_t start, off_t len)
{
    struct cmd c = {'O', K_LOCKF, file, -1, func, 0, start, len};
    return c;
}

static struct cmd fl(int file, int op)
{
    struct cmd c = {'O', K_FLOCK, file, -1, op, 0, 0, 0};
    return c;
}

static struct cmd fl_fd(int fd, int op)
{
    struct cmd c = {'O', K_FLOCK, X, fd, op, 0, 0, 0};
    return c;
}

#define HOLD(f, s, l) fc((f), F_SETLK, F_WRLCK, (s), (l))
#define WAIT(f, s, l) fc((f), F_SETLKW, F_WRLCK, (s), (l))
#define UNLOCK(f, s, l) fc((f), F_SETLK, F_UNLCK, (s), (l))

/* "fcntl(X, F_SETLKW, {F_WRLCK|F_FLOCK, start=0, len=10})" etc. */
static const char *describe(const struct cmd *c)
{
    static char bufs[4][160];
    static int next;
    char *b = bufs[next++ & 3];
    char f[24];
    if (c->rawfd >= 0)
        snprintf(f, sizeof f, "shared fd %d", c->rawfd);
    else
        snprintf(f, sizeof f, "%s", c->file == X ? "X" : "Y");
    switch (c->kind) {
    case K_FCNTL:
        snprintf(b, sizeof bufs[0], "fcntl(%s, %s, {%s, start=%lld, len=%lld})",
                 f, qtest_cmdname(c->cmd), qtest_typename(c->type), c->start,
                 c->len);
        break;
    case K_LOCKF:
        snprintf(b, sizeof bufs[0], "lockf(%s, %s, %lld) at offset %lld", f,
                 qtest_lockfname(c->cmd), c->len, c->start);
        break;
    case K_FLOCK:
        snprintf(b, sizeof bufs[0], "flock(%s, %s)", f, qtest_flockname(c->cmd));
        break;
    default:
        snprintf(b, sizeof bufs[0], "command %d", c->kind);
    }
    return b;
}

/* ---- the actor (child side) ------------------------------------------------- */

static void on_usr1(int sig) { (void)sig; }

static int run_cmd(const struct cmd *c, const int *own)
{
    int fd = c->rawfd >= 0 ? c->rawfd : own[c->file];
    switch (c->kind) {
    case K_FCNTL: {
        struct flock f = qtest_fl((short)c->type, SEEK_SET, c->start, c->len);
        f.l_pid = 0;
        return fcntl(fd, c->cmd, &f);
    }
    case K_LOCKF:
        if (lseek(fd, c->start, SEEK_SET) != c->start)
            return -2;
        return lockf(fd, c->cmd, c->len);
    case K_FLOCK:
        return flock(fd, c->cmd);
    default:
        errno = EINVAL;
        return -2;
    }
}

/* Open every test file, then run commands until told to quit.  SIGUSR1
 * has a handler without SA_RESTART, so it interrupts a blocked call. */
static void actor_loop(void)
{
    int own[NFILES];
    for (int i = 0; i < NFILES; i++) {
        own[i] = open(paths[i], O_RDWR);
        if (own[i] < 0)
            _exit(98);
    }
    qtest_on_signal(SIGUSR1, on_usr1, 0);
    for (;;) {
        struct cmd c;
        int r = qtest_read_rec(qtest_down_fd, 55000, &c, sizeof c);
        if (r == 0)
            _exit(97); /* the parent forgot us */
        if (r < 0 || c.tag == 'Q')
            _exit(0);
        child_say('R');
        errno = 0;
        int rc = run_cmd(&c, own);
        child_report('D', rc, errno);
    }
}

static void actor_fn(void *arg)
{
    (void)arg;
    actor_loop();
}

/* ---- actors (parent side) ------------------------------------------------- */

typedef struct {
    qtest_child c;
    struct cmd last; /* the last command sent */
    int busy;        /* its result has not been read yet */
    int gone;        /* killed (or lost): do not talk to it any more */
    int held;        /* a result already read by a failed check */
} actor;

/* Set when a request that should have failed with EDEADLK hung and its
 * process was killed: the others' waits end early then, which later checks
 * of the same test must not count again.  Reset by check_clean(). */
static int cycle_broken;

static actor spawn(void)
{
    actor a;
    memset(&a, 0, sizeof a);
    a.c = qtest_child_start(actor_fn, NULL);
    return a;
}

/* In a child of qtest_child_start(): become an actor re-executed with the
 * environment edits arg (its pipes passed on as descriptor numbers). */
static void exec_actor(void *arg)
{
    char u[16], d[16];
    snprintf(u, sizeof u, "%d", dup(qtest_up_fd)); /* without FD_CLOEXEC */
    snprintf(d, sizeof d, "%d", dup(qtest_down_fd));
    char *argv[] = {"t_deadlock", "--actor", u, d, paths[0], paths[1], NULL};
    qtest_apply_env(arg);
    execv("/proc/self/exe", argv);
    _exit(127);
}

/* An actor re-executed with QNXCOMPAT_TRACE=1 QNXCOMPAT_TRACE_FILE=tpath. */
static actor spawn_traced(const char *tpath)
{
    char tfile[256];
    snprintf(tfile, sizeof tfile, "QNXCOMPAT_TRACE_FILE=%s", tpath);
    char *env[] = {"QNXCOMPAT_TRACE=1", tfile, NULL};
    actor a;
    memset(&a, 0, sizeof a);
    a.c = qtest_child_start(exec_actor, env);
    return a;
}

static void send_cmd(actor *a, struct cmd c)
{
    a->last = c;
    a->busy = c.tag == 'O';
    qtest_write_rec(a->c.to_child, &c, sizeof c);
}

static void act_kill(actor *a)
{
    kill(a->c.pid, SIGKILL);
    qtest_wait(a->c.pid, 5000);
    a->gone = 1;
    a->busy = 0;
}

/* Wait for the result of a's last command and CHECK it: want 0, or -1 with
 * errno e1 or e2.  A call still blocked after ms is a failure, and its
 * process is killed (it may be deadlocked for real). */
static void expect_result(actor *a, int ms, long long want, int e1, int e2,
                          const char *file, int line)
{
    if (a->gone)
        return;
    struct qtest_msg m = {0, 0, 0};
    if (a->held) { /* read and reported as a failure already */
        a->held = 0;
        a->busy = 0;
        return;
    }
    int r = qtest_get(a->c.from_child, ms, &m);
    if (r != 1 || m.tag != 'D') {
        qtest_record(0, file, line,
                     "child %d: %s: no result within %d ms (%s)%s",
                     (int)a->c.pid, describe(&a->last), ms,
                     r == 0 ? "still blocked" : r < 0 ? "child gone" : "wrong message",
                     r == 0 ? " - killed it" : "");
        act_kill(a);
        if (r == 0 && want == -1 && e1 == EDEADLK)
            cycle_broken = 1;
        return;
    }
    a->busy = 0;
    char w[64];
    if (want == 0)
        snprintf(w, sizeof w, "0");
    else if (e1 == e2)
        snprintf(w, sizeof w, "-1 %s", qtest_errname(e1));
    else
        snprintf(w, sizeof w, "-1 %s or %s", qtest_errname(e1), qtest_errname(e2));
    int ok = want == 0 ? m.val == 0 : m.val == -1 && (m.err == e1 || m.err == e2);
    qtest_record(ok, file, line, "child %d: %s: expected %s, got %lld %s",
                 (int)a->c.pid, describe(&a->last), w, m.val,
                 m.val == -1 ? qtest_errname(m.err) : "");
}

/* Run a call that must return promptly with the given result. */
static void act_now(actor *a, struct cmd c, long long want, int e1, int e2,
                    const char *file, int line)
{
    if (a->gone)
        return;
    send_cmd(a, c);
    if (!qtest_check_hear(&a->c, 'R', 3000, NULL, file, line)) {
        act_kill(a);
        return;
    }
    expect_result(a, 3000, want, e1, e2, file, line);
}

/* Start a call that must block (and stay blocked). */
static void act_block(actor *a, struct cmd c, const char *file, int line)
{
    if (a->gone)
        return;
    send_cmd(a, c);
    if (!qtest_check_hear(&a->c, 'R', 3000, NULL, file, line)) {
        act_kill(a);
        return;
    }
    if (qtest_wait_blocked(&a->c)) {
        qtest_record(1, file, line, "blocked");
        return;
    }
    struct qtest_msg m = {0, 0, 0};
    int r = qtest_get(a->c.from_child, 100, &m);
    if (r == 1 && m.tag == 'D') {
        a->held = 1; /* a later GRANTED/expect_result just consumes it */
    }
    qtest_record(0, file, line, "child %d: %s: expected to block, returned %lld %s",
                 (int)a->c.pid, describe(&c), m.val,
                 m.val == -1 ? qtest_errname(m.err) : "");
}

#define NOW(a, c, want, e1, e2) act_now((a), (c), (want), (e1), (e2), __FILE__, __LINE__)
#define NOW_OK(a, c) NOW((a), (c), 0, 0, 0)
#define NOW_BUSY(a, c) NOW((a), (c), -1, EAGAIN, EACCES)
#define BLOCK(a, c) act_block((a), (c), __FILE__, __LINE__)
#define DEADLOCK(a, c) NOW((a), (c), -1, EDEADLK, EDEADLK)
/* a's blocked call returns 0 (within 3 s) */
#define GRANTED(a) expect_result((a), 3000, 0, 0, 0, __FILE__, __LINE__)

/* None of the actors reports anything for 200 ms: they all still wait. */
static void check_quiet(const char *file, int line, int n, actor **as)
{
    qtest_msleep(200);
    for (int i = 0; i < n; i++) {
        if (as[i]->gone || as[i]->held || cycle_broken)
            continue;
        struct pollfd p = {as[i]->c.from_child, POLLIN, 0};
        int quiet = poll(&p, 1, 0) == 0;
        struct qtest_msg m = {0, 0, 0};
        if (!quiet && qtest_get(as[i]->c.from_child, 100, &m) == 1 && m.tag == 'D') {
            as[i]->held = 1; /* a later GRANTED just consumes it */
        }
        qtest_record(quiet, file, line,
                     "child %d: %s: should still be waiting, returned %lld %s",
                     (int)as[i]->c.pid, describe(&as[i]->last), m.val,
                     m.val == -1 ? qtest_errname(m.err) : "");
    }
}

#define QUIET(...)                                                            \
    do {                                                                      \
        actor *qa_[] = {__VA_ARGS__};                                         \
        check_quiet(__FILE__, __LINE__, (int)(sizeof qa_ / sizeof qa_[0]), qa_); \
    } while (0)

/* a has not been granted yet (no waiting: checked right before the holder
 * it waits for lets go). */
#define NOT_YET(a)                                                            \
    do {                                                                      \
        struct pollfd qt_p_ = {(a)->c.from_child, POLLIN, 0};                 \
        CHECK((a)->gone || (a)->held || cycle_broken || poll(&qt_p_, 1, 0) == 0,                           \
              "child %d: %s returned before its blocker let go",              \
              (int)(a)->c.pid, describe(&(a)->last));                         \
    } while (0)

/* Tell the actor to quit and CHECK it exits 0 (its locks go with it). */
static void act_quit(actor *a, const char *file, int line)
{
    if (a->gone) {
        qtest_wait(a->c.pid, 2000);
    } else if (a->busy && !a->held) {
        qtest_record(0, file, line, "child %d: %s still blocked at the end - killed",
                     (int)a->c.pid, describe(&a->last));
        act_kill(a);
    } else {
        struct cmd q = {'Q', 0, 0, -1, 0, 0, 0, 0};
        send_cmd(a, q);
        int st = qtest_wait(a->c.pid, QTEST_WAIT_MS);
        char d[96];
        qtest_describe_status(st, d, sizeof d);
        qtest_record(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, file, line,
                     "child %d: %s", (int)a->c.pid, d);
    }
    a->gone = 1;
    close(a->c.from_child);
    close(a->c.to_child);
}

#define QUIT(a) act_quit((a), __FILE__, __LINE__)

/* Wait (<= 2 s) until pid is a zombie: it died, its exit was processed, but
 * it was not reaped. */
static int wait_zombie(pid_t pid)
{
    double end = qtest_now_ms() + 2000;
    while (qtest_now_ms() < end) {
        if (qtest_proc_state(pid) == 'Z')
            return 1;
        qtest_msleep(2);
    }
    return 0;
}

/* Nothing is left locked on either file. */
static void check_clean(void)
{
    cycle_broken = 0;
    CHECK_CAN_LOCK(fds[X], F_WRLCK, 0, 0);
    CHECK_CAN_LOCK(fds[Y], F_WRLCK, 0, 0);
}

/* ---- 1-3, 5: cycles of n processes ---------------------------------------- */

static struct cmd hold_op(enum kind k, off_t start)
{
    return k == K_LOCKF ? lf(X, F_TLOCK, start, 10) : HOLD(X, start, 10);
}

static struct cmd wait_op(enum kind k, off_t start)
{
    return k == K_LOCKF ? lf(X, F_LOCK, start, 10) : WAIT(X, start, 10);
}

/* P_i holds [10i, 10i+10) and waits for the range of P_(i+1) mod n; the
 * last one's request (by close_kind) closes the cycle and alone fails with
 * EDEADLK, keeping its own lock; once it exits, P_(n-2) is granted, exits,
 * and so on down the ring. */
static void ring(int n, enum kind wait_kind, enum kind close_kind)
{
    actor a[RING_MAX];
    actor *waiting[RING_MAX];
    for (int i = 0; i < n; i++) {
        a[i] = spawn();
        NOW_OK(&a[i], hold_op(wait_kind, 10 * i));
    }
    for (int i = 0; i < n - 1; i++) {
        BLOCK(&a[i], wait_op(wait_kind, 10 * (i + 1)));
        waiting[i] = &a[i];
    }
    DEADLOCK(&a[n - 1], wait_op(close_kind, 0));
    check_quiet(__FILE__, __LINE__, n - 1, waiting);
    /* the failed request took nothing: P_0 still holds [0,10) */
    CHECK_GETLK(fds[X], 0, 10, F_WRLCK, 0, 10, a[0].c.pid);
    for (int i = n - 1; i >= 1; i--) {
        if (i >= 2)
            NOT_YET(&a[i - 2]);
        QUIT(&a[i]);
        GRANTED(&a[i - 1]);
    }
    QUIT(&a[0]);
    check_clean();
}

/* ---- 4: a cycle across two files -------------------------------------------- */

static void two_files(void)
{
    actor a1 = spawn(), a2 = spawn();
    NOW_OK(&a1, HOLD(X, 0, 10));
    NOW_OK(&a2, HOLD(Y, 0, 10));
    BLOCK(&a1, WAIT(Y, 0, 10));
    DEADLOCK(&a2, WAIT(X, 0, 10));
    QUIET(&a1);
    CHECK_GETLK(fds[Y], 0, 10, F_WRLCK, 0, 10, a2.c.pid);
    CHECK_GETLK(fds[X], 0, 10, F_WRLCK, 0, 10, a1.c.pid);
    /* backing off by unlocking (not exiting) lets a1 through */
    NOW_OK(&a2, UNLOCK(Y, 0, 10));
    GRANTED(&a1);
    /* a1 now holds X and Y and waits for nothing: a2 just waits */
    BLOCK(&a2, WAIT(X, 0, 10));
    QUIT(&a1);
    GRANTED(&a2);
    QUIT(&a2);
    check_clean();
}

/* ---- 6: cycles mixing process and open-file owners ------------------------ */

/* A cycle of two owners: a1 takes h1 and a2 h2; a1 blocks in w1, waiting
 * for a2; a2's request c2, which would wait for a1, closes the cycle and
 * alone fails with EDEADLK; a2 backs off by `off` (QUITS: it exits, and its
 * locks go with it) and a1 is granted.  `line` is where the case is
 * written, for the failure messages. */
struct cycle2 {
    int line;
    struct cmd h1, h2, w1, c2, off;
};
#define CYCLE2(h1, h2, w1, c2, off) {__LINE__, (h1), (h2), (w1), (c2), (off)}
#define QUITS ((struct cmd){'Q', 0, 0, -1, 0, 0, 0, 0})

/* Run the cycle with two fresh actors, or with *a2 if given (a traced one);
 * returns a1's pid.  `detected` 0: a cycle through flock() or OFD locks
 * natively, which Linux's deadlock search ignores: c2 just blocks (a real
 * deadlock), broken by killing a2. */
static pid_t cycle2(const struct cycle2 *c, actor *a2, int detected)
{
    const char *f = __FILE__;
    actor a1 = spawn(), own2;
    if (!a2) {
        own2 = spawn();
        a2 = &own2;
    }
    actor *waiting = &a1;
    int quit2 = 0;
    act_now(&a1, c->h1, 0, 0, 0, f, c->line);
    act_now(a2, c->h2, 0, 0, 0, f, c->line);
    act_block(&a1, c->w1, f, c->line);
    if (detected) {
        act_now(a2, c->c2, -1, EDEADLK, EDEADLK, f, c->line);
        check_quiet(f, c->line, 1, &waiting);
        if (c->off.tag == 'Q') {
            act_quit(a2, f, c->line);
            quit2 = 1;
        } else {
            act_now(a2, c->off, 0, 0, 0, f, c->line);
        }
    } else {
        act_block(a2, c->c2, f, c->line);
        act_kill(a2);
    }
    expect_result(&a1, 3000, 0, 0, 0, f, c->line); /* granted */
    act_quit(&a1, f, c->line);
    if (!quit2)
        act_quit(a2, f, c->line);
    check_clean();
    return a1.c.pid;
}

/* Two-owner cycles through an open file's lock: checked under the shim
 * only, or natively too with the real deadlock broken (see cycle2). */
static void two_owner_cycles(int shim)
{
    const struct cycle2 shim_only[] = {
        /* the process a1 waits for a2's open file (F_FLOCK range); a2's
         * open file asks for flock(LOCK_EX), which a1's fcntl lock blocks;
         * a2 exits, and its open file goes with the F_FLOCK lock */
        CYCLE2(HOLD(X, 0, 10), fc(X, F_SETLK, FW, 50, 10), WAIT(X, 50, 10),
               fl(X, LOCK_EX), QUITS),
        /* the reverse: a1's open file waits in flock(LOCK_EX) for a2's
         * process lock; a2's F_SETLKW on a1's F_FLOCK range closes it */
        CYCLE2(fc(X, F_SETLK, FW, 50, 10), HOLD(X, 0, 10), fl(X, LOCK_EX),
               WAIT(X, 50, 10), QUITS),
        /* F_SETLKW with F_WRLCK|F_FLOCK closes a cycle with a process lock;
         * the open file backs off by unlocking its range */
        CYCLE2(HOLD(X, 0, 10), fc(X, F_SETLK, FW, 20, 10), WAIT(X, 20, 10),
               fc(X, F_SETLKW, FW, 0, 10), fc(X, F_SETLK, FU, 20, 10)),
    };
    const struct cycle2 both[] = {
        /* the process a1 waits for the OFD lock of a2's open file; a2's
         * F_OFD_SETLKW on a1's range closes the cycle (natively Linux does
         * not look for deadlocks on OFD requests) */
        CYCLE2(HOLD(X, 0, 10), fc(X, F_OFD_SETLK, F_WRLCK, 20, 10),
               WAIT(X, 20, 10), fc(X, F_OFD_SETLKW, F_WRLCK, 0, 10), QUITS),
        /* two open files (of two processes), OFD locks only; a2 backs off
         * by unlocking */
        CYCLE2(fc(X, F_OFD_SETLK, F_WRLCK, 0, 10),
               fc(X, F_OFD_SETLK, F_WRLCK, 20, 10),
               fc(X, F_OFD_SETLKW, F_WRLCK, 20, 10),
               fc(X, F_OFD_SETLKW, F_WRLCK, 0, 10),
               fc(X, F_OFD_SETLK, F_UNLCK, 20, 10)),
        /* the layout of the issue: a1's open file holds flock(LOCK_EX) on
         * X, the process a2 an fcntl lock on Y; a1 waits (F_SETLKW) for Y,
         * and a2's blocking flock(LOCK_EX) on its own open of X closes the
         * cycle (natively flock() and fcntl() locks are separate, and Linux
         * finds no deadlock through a flock() lock) */
        CYCLE2(fl(X, LOCK_EX), HOLD(Y, 0, 10), WAIT(Y, 0, 10), fl(X, LOCK_EX),
               QUITS),
        /* the same in the other order: the process a1 holds Y and waits in
         * flock() first; a2's F_SETLKW for Y closes the cycle */
        CYCLE2(HOLD(Y, 0, 10), fl(X, LOCK_EX), fl(X, LOCK_EX), WAIT(Y, 0, 10),
               QUITS),
    };
    for (size_t i = 0; shim && i < sizeof shim_only / sizeof shim_only[0]; i++)
        cycle2(&shim_only[i], NULL, 1);
    for (size_t i = 0; i < sizeof both / sizeof both[0]; i++)
        cycle2(&both[i], NULL, shim);
}

/* Three owners of two kinds over two files: a2's open file of X waits for
 * the process a1 (on X), a1 waits for the process a3 (on Y), and a3's
 * request for a2's F_FLOCK range on X closes the cycle. */
static void mixed_three_two_files(void)
{
    actor a1 = spawn(), a2 = spawn(), a3 = spawn();
    NOW_OK(&a2, fc(X, F_SETLK, FW, 50, 10));
    NOW_OK(&a1, HOLD(X, 0, 10));
    NOW_OK(&a3, HOLD(Y, 0, 10));
    BLOCK(&a2, fc(X, F_SETLKW, FW, 0, 10));
    BLOCK(&a1, WAIT(Y, 0, 10));
    DEADLOCK(&a3, WAIT(X, 50, 10));
    QUIET(&a1, &a2);
    QUIT(&a3);
    GRANTED(&a1);
    NOT_YET(&a2);
    QUIT(&a1);
    GRANTED(&a2);
    QUIT(&a2);
    check_clean();
}

/* Not a deadlock: as in the layout above, but the open file holding
 * flock(LOCK_EX) on X, first locked by a1, is shared with this process,
 * which waits for nothing and can release it.  a2's flock(LOCK_EX) must just
 * wait, and is granted when this process unlocks; then a1 is granted when
 * a2 exits.  The same natively (flock() locks conflict there too). */
static void shared_open_file_not_blocked(void)
{
    int o = qtest_open(paths[X], O_RDWR);
    actor a1 = spawn(), a2 = spawn(); /* both inherit o; only a1 uses it */
    NOW_OK(&a1, fl_fd(o, LOCK_EX));
    NOW_OK(&a2, HOLD(Y, 0, 10));
    BLOCK(&a1, WAIT(Y, 0, 10));
    BLOCK(&a2, fl(X, LOCK_EX));
    CHECK_OK(flock(o, LOCK_UN));
    GRANTED(&a2);
    QUIT(&a2);
    GRANTED(&a1);
    QUIT(&a1);
    CHECK_OK(close(o));
    check_clean();
}

/* Natively flock() and fcntl() locks do not meet at all. */
static void mixed_native(void)
{
    actor a1 = spawn(), a2 = spawn();
    NOW_OK(&a1, HOLD(X, 0, 10));
    NOW_OK(&a2, fl(X, LOCK_EX));
    NOW_OK(&a1, WAIT(X, 50, 10));
    QUIT(&a1);
    QUIT(&a2);
    check_clean();
}

/* ---- 7: read-lock upgrade ------------------------------------------------- */

static void upgrade(void)
{
    actor a1 = spawn(), a2 = spawn();
    NOW_OK(&a1, fc(X, F_SETLK, F_RDLCK, 0, 10));
    NOW_OK(&a2, fc(X, F_SETLK, F_RDLCK, 0, 10));
    BLOCK(&a1, WAIT(X, 0, 10));
    DEADLOCK(&a2, WAIT(X, 0, 10));
    QUIET(&a1); /* a2 kept its read lock */
    NOW_OK(&a2, UNLOCK(X, 0, 10));
    GRANTED(&a1);
    CHECK_GETLK(fds[X], 0, 10, F_WRLCK, 0, 10, a1.c.pid);
    BLOCK(&a2, fc(X, F_SETLKW, F_RDLCK, 0, 10));
    QUIT(&a1);
    GRANTED(&a2);
    QUIT(&a2);
    check_clean();
}

/* ---- 8: a chain is not a cycle ---------------------------------------------- */

static void chain(void)
{
    actor a1 = spawn(), a2 = spawn(), a3 = spawn(), a4 = spawn();
    NOW_OK(&a1, HOLD(X, 0, 10));  /* A */
    NOW_OK(&a2, HOLD(X, 20, 10)); /* B */
    NOW_OK(&a3, HOLD(X, 40, 10)); /* C */
    BLOCK(&a1, WAIT(X, 20, 10));  /* a1 -> a2 */
    BLOCK(&a2, WAIT(X, 40, 10));  /* a2 -> a3 */
    NOW_OK(&a3, WAIT(X, 60, 10)); /* the end of the chain needs no wait */
    BLOCK(&a4, WAIT(X, 0, 10));   /* a4 -> a1: a second branch */
    QUIET(&a1, &a2, &a4);
    NOW_OK(&a3, UNLOCK(X, 40, 10));
    GRANTED(&a2);
    NOT_YET(&a1);
    QUIT(&a2);
    GRANTED(&a1);
    NOT_YET(&a4);
    QUIT(&a1);
    GRANTED(&a4);
    QUIT(&a3);
    QUIT(&a4);
    check_clean();
}

/* Read locks do not conflict: a1 and a2 share [0,10), a1 waits for a3's
 * [20,30); a3's blocking read request on [0,10) is granted at once.  Its
 * write request there would wait for a1 and a2, and a1 waits for a3: that
 * closes a cycle through one of two blockers (checked under the shim only:
 * Linux looks only at the first conflicting lock it meets). */
static void shared_reads(void)
{
    actor a1 = spawn(), a2 = spawn(), a3 = spawn();
    NOW_OK(&a1, fc(X, F_SETLK, F_RDLCK, 0, 10));
    NOW_OK(&a2, fc(X, F_SETLK, F_RDLCK, 0, 10));
    NOW_OK(&a3, HOLD(X, 20, 10));
    BLOCK(&a1, WAIT(X, 20, 10));
    NOW_OK(&a3, fc(X, F_SETLKW, F_RDLCK, 0, 10));
    if (qtest_mode_shim()) {
        DEADLOCK(&a3, WAIT(X, 0, 10));
        QUIET(&a1);
    }
    QUIT(&a3);
    GRANTED(&a1);
    QUIT(&a1);
    QUIT(&a2);
    check_clean();
}

/* ---- 9: non-blocking requests never get EDEADLK ----------------------------- */

static void nonblocking(void)
{
    actor a1 = spawn(), a2 = spawn();
    NOW_OK(&a1, HOLD(X, 0, 10));
    NOW_OK(&a2, HOLD(X, 20, 10));
    BLOCK(&a1, WAIT(X, 20, 10));
    /* a2 waiting for [0,10) would close the cycle; asking does not */
    NOW_BUSY(&a2, fc(X, F_SETLK, F_WRLCK, 0, 10));
    NOW_BUSY(&a2, fc(X, F_SETLK, F_RDLCK, 0, 10));
    NOW_BUSY(&a2, lf(X, F_TLOCK, 0, 10));
    NOW_BUSY(&a2, lf(X, F_TEST, 0, 10));
    NOW(&a2, fc(X, F_OFD_SETLK, F_WRLCK, 0, 10), -1, EAGAIN, EAGAIN);
    DEADLOCK(&a2, WAIT(X, 0, 10)); /* the blocking form does */
    QUIET(&a1);
    QUIT(&a2);
    GRANTED(&a1);
    QUIT(&a1);
    check_clean();

    if (!qtest_mode_shim())
        return; /* natively flock() never waits for an fcntl() lock */
    /* a2's open file holds an F_FLOCK range a1 waits for; a2's open file
     * asking for the whole file would close the cycle */
    a1 = spawn();
    a2 = spawn();
    NOW_OK(&a1, HOLD(X, 0, 10));
    NOW_OK(&a2, fc(X, F_SETLK, FW, 50, 10));
    BLOCK(&a1, WAIT(X, 50, 10));
    NOW(&a2, fl(X, LOCK_EX | LOCK_NB), -1, EWOULDBLOCK, EWOULDBLOCK);
    NOW_BUSY(&a2, fc(X, F_SETLK, FW, 0, 10));
    QUIET(&a1); /* the failed requests left the F_FLOCK range alone */
    DEADLOCK(&a2, fl(X, LOCK_EX));
    QUIET(&a1);
    QUIT(&a2);
    GRANTED(&a1);
    QUIT(&a1);
    check_clean();
}

/* ---- 10: granted and interrupted waiters leave no edge ---------------------- */

/* a2 holds B (`hold_b`, a range of X) and waits for A = [0,10), a1's, by
 * `wait_a`; SIGUSR1 interrupts it (EINTR).  a1's request for B must then
 * just wait, until a2 exits. */
static void interrupted(struct cmd hold_b, struct cmd wait_a)
{
    actor a1 = spawn(), a2 = spawn();
    NOW_OK(&a1, HOLD(X, 0, 10));
    NOW_OK(&a2, hold_b);
    BLOCK(&a2, wait_a);
    kill(a2.c.pid, SIGUSR1);
    expect_result(&a2, 3000, -1, EINTR, EINTR, __FILE__, __LINE__);
    BLOCK(&a1, WAIT(X, hold_b.start, hold_b.len));
    QUIT(&a2);
    GRANTED(&a1);
    QUIT(&a1);
    check_clean();
}

/* a2 holds B, waits for A and is granted when a1 unlocks it: a1 asking for
 * B afterwards just waits. */
static void granted_waiter(void)
{
    actor a1 = spawn(), a2 = spawn();
    NOW_OK(&a1, HOLD(X, 0, 10));
    NOW_OK(&a2, HOLD(X, 20, 10));
    BLOCK(&a2, WAIT(X, 0, 10));
    NOW_OK(&a1, UNLOCK(X, 0, 10));
    GRANTED(&a2);
    BLOCK(&a1, WAIT(X, 20, 10));
    QUIT(&a2);
    GRANTED(&a1);
    QUIT(&a1);
    check_clean();
}

/* ---- 11: killed waiters ----------------------------------------------------- */

/* a2 holds B and waits for A (a1's); kill -9 a2 (reaped or left a zombie).
 * a1's request for B closes no cycle: a2 is dead, B is free, a1 gets it. */
static void killed_waiter(int reap)
{
    actor a1 = spawn(), a2 = spawn();
    NOW_OK(&a1, HOLD(X, 0, 10));
    NOW_OK(&a2, HOLD(X, 20, 10));
    BLOCK(&a2, WAIT(X, 0, 10));
    kill(a2.c.pid, SIGKILL);
    if (reap) {
        int st = qtest_wait(a2.c.pid, 5000);
        CHECK(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "killed waiter: status %#x", st);
    } else {
        CHECK(wait_zombie(a2.c.pid), "killed waiter %d not a zombie", (int)a2.c.pid);
    }
    a2.gone = 1;
    a2.busy = 0;
    NOW_OK(&a1, WAIT(X, 20, 10));
    QUIT(&a1);
    QUIT(&a2); /* reaps it if still a zombie */
    check_clean();
}

/* a2 holds B and waits for A (a1's), a3 holds C and waits for B; a2 is
 * killed (left a zombie) and a1 at once asks for C: the cycle
 * a1 -> a3 -> a2 -> a1 runs through a dead process, so it is no deadlock:
 * a3 gets B, and a1 waits for C until a3 exits. */
static void dead_in_cycle(void)
{
    actor a1 = spawn(), a2 = spawn(), a3 = spawn();
    NOW_OK(&a1, HOLD(X, 0, 10));
    NOW_OK(&a2, HOLD(X, 20, 10));
    NOW_OK(&a3, HOLD(X, 40, 10));
    BLOCK(&a2, WAIT(X, 0, 10));
    BLOCK(&a3, WAIT(X, 20, 10));
    kill(a2.c.pid, SIGKILL);
    CHECK(wait_zombie(a2.c.pid), "killed waiter %d not a zombie", (int)a2.c.pid);
    a2.gone = 1;
    a2.busy = 0;
    send_cmd(&a1, WAIT(X, 40, 10));
    CHECK_HEAR(&a1.c, 'R', 3000, NULL);
    GRANTED(&a3);
    QUIET(&a1); /* neither EDEADLK nor granted */
    QUIT(&a3);
    GRANTED(&a1);
    QUIT(&a1);
    QUIT(&a2);
    check_clean();
}

/* This process opens X (open file O) before starting a2, so a2 shares O.
 * a2 takes B = [20,30) for O (OFD lock, or F_FLOCK under the shim), then
 * waits for A = [0,10), held by the process a1, again for O; a2 is killed
 * while it waits.  O and its lock on B live on (open here).  a1 now asks
 * for B: were a2's dead wait still counted as "O waits for a1", that would
 * be a false EDEADLK.  a1 must simply wait, and get B once O lets go. */
static void killed_waiter_shared(int ofd)
{
    int cmd = ofd ? F_OFD_SETLK : F_SETLK;
    int cmdw = ofd ? F_OFD_SETLKW : F_SETLKW;
    int wr = ofd ? F_WRLCK : FW, un = ofd ? F_UNLCK : FU;
    actor a1 = spawn();
    NOW_OK(&a1, HOLD(X, 0, 10));
    int o = qtest_open(paths[X], O_RDWR);
    actor a2 = spawn();
    NOW_OK(&a2, fc_fd(o, cmd, wr, 20, 10));
    BLOCK(&a2, fc_fd(o, cmdw, wr, 0, 10));
    act_kill(&a2); /* SIGKILL mid-wait, reaped */
    QUIT(&a2);
    BLOCK(&a1, WAIT(X, 20, 10));
    struct flock f = qtest_fl((short)un, SEEK_SET, 20, 10);
    f.l_pid = 0;
    CHECK_OK(fcntl(o, cmd, &f));
    GRANTED(&a1);
    CHECK_OK(close(o));
    QUIT(&a1);
    check_clean();
}

/* ---- 12: the trace line naming the cycle (shim only) ------------------------ */

/* 1 if one line of text contains parts[0], parts[1], ... in that order. */
static int line_has(const char *text, const char *const *parts, int n)
{
    const char *line = text;
    while (*line) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            eol = line + strlen(line);
        const char *p = line;
        int i = 0;
        for (; i < n; i++) {
            const char *q = strstr(p, parts[i]);
            if (!q || q + strlen(parts[i]) > eol + (parts[i][strlen(parts[i]) - 1] == '\n'))
                break;
            p = q + strlen(parts[i]);
        }
        if (i == n)
            return 1;
        line = *eol ? eol + 1 : eol;
    }
    return 0;
}

#define CHECK_LINE(text, ...)                                                 \
    do {                                                                      \
        const char *const qt_parts_[] = {__VA_ARGS__};                        \
        int qt_n_ = (int)(sizeof qt_parts_ / sizeof qt_parts_[0]);            \
        char qt_w_[1024] = "";                                                \
        for (int qt_i_ = 0; qt_i_ < qt_n_; qt_i_++) {                         \
            strncat(qt_w_, qt_parts_[qt_i_], sizeof qt_w_ - strlen(qt_w_) - 5); \
            strcat(qt_w_, "...");                                             \
        }                                                                     \
        CHECK(line_has((text), qt_parts_, qt_n_),                             \
              "trace lacks a line \"%s\"; trace was:\n%s", qt_w_, (text));    \
    } while (0)

/* The trace file has a line "qnxcompat[T:T] FUNC(fd=" and then the parts,
 * in order, where T is the traced actor's pid. */
#define CHECK_CYCLE_TRACE(tpath, tpid, func, ...)                             \
    do {                                                                      \
        char *qt_text_ = qtest_slurp(tpath);                                  \
        char qt_head_[64];                                                    \
        snprintf(qt_head_, sizeof qt_head_, "qnxcompat[%d:%d] %s(fd=",        \
                 (int)(tpid), (int)(tpid), (func));                           \
        CHECK_LINE(qt_text_, qt_head_, __VA_ARGS__);                          \
        free(qt_text_);                                                       \
    } while (0)

static void trace(void)
{
    const char *tpath;
    int tfd = qtest_tmpfile(0, &tpath);
    close(tfd);
    struct stat sb;
    if (fstat(fds[X], &sb) != 0)
        qtest_fatal("fstat");
    char di[64];
    snprintf(di, sizeof di, "%llu:%llu", (unsigned long long)sb.st_dev,
             (unsigned long long)sb.st_ino);
    char cyc[512];
    static const char setlkw_edeadlk[] =
        ", F_SETLKW, {F_WRLCK, SEEK_SET, start=0, len=10}) = -1 EDEADLK (";

    /* two processes: the traced T holds [20,30), a1 holds [0,10) and waits
     * for [20,30), T's F_SETLKW on [0,10) closes the cycle */
    const struct cycle2 fcntl_cycle = CYCLE2(HOLD(X, 0, 10), HOLD(X, 20, 10),
                                             WAIT(X, 20, 10), WAIT(X, 0, 10),
                                             QUITS);
    actor t = spawn_traced(tpath);
    pid_t a1 = cycle2(&fcntl_cycle, &t, 1);
    snprintf(cyc, sizeof cyc,
             ") cycle: pid %d waits for F_WRLCK on %s [0, 9] -> pid %d waits "
             "for F_WRLCK on %s [20, 29] -> pid %d\n",
             (int)t.c.pid, di, (int)a1, di, (int)t.c.pid);
    CHECK_CYCLE_TRACE(tpath, t.c.pid, "fcntl", setlkw_edeadlk, cyc);

    /* three owners, one an open file, one range to EOF: T holds [40,EOF),
     * a1 holds [0,10), a2's open file holds [20,30) (F_FLOCK) and waits
     * for [40,EOF), a1 waits for [20,30), T asks for [0,10) */
    t = spawn_traced(tpath);
    actor b1 = spawn(), b2 = spawn();
    NOW_OK(&t, HOLD(X, 40, 0));
    NOW_OK(&b1, HOLD(X, 0, 10));
    NOW_OK(&b2, fc(X, F_SETLK, FW, 20, 10));
    BLOCK(&b2, fc(X, F_SETLKW, FW, 40, 0));
    BLOCK(&b1, WAIT(X, 20, 10));
    DEADLOCK(&t, WAIT(X, 0, 10));
    QUIT(&t);
    GRANTED(&b2);
    NOT_YET(&b1);
    QUIT(&b2);
    GRANTED(&b1);
    QUIT(&b1);
    snprintf(cyc, sizeof cyc,
             ") cycle: pid %d waits for F_WRLCK on %s [0, 9] -> pid %d waits "
             "for F_WRLCK on %s [20, 29] -> open file (first locked by pid %d) "
             "waits for F_WRLCK on %s [40, EOF] -> pid %d\n",
             (int)t.c.pid, di, (int)b1.c.pid, di, (int)b2.c.pid, di,
             (int)t.c.pid);
    CHECK_CYCLE_TRACE(tpath, t.c.pid, "fcntl", setlkw_edeadlk, cyc);

    /* flock() closes it: the requester is T's open file */
    const struct cycle2 flock_cycle = CYCLE2(HOLD(X, 0, 10),
                                             fc(X, F_SETLK, FW, 50, 10),
                                             WAIT(X, 50, 10), fl(X, LOCK_EX),
                                             QUITS);
    t = spawn_traced(tpath);
    a1 = cycle2(&flock_cycle, &t, 1);
    snprintf(cyc, sizeof cyc,
             ") cycle: open file (first locked by pid %d) waits for F_WRLCK on "
             "%s [0, EOF] -> pid %d waits for F_WRLCK on %s [50, 59] -> open "
             "file (first locked by pid %d)\n",
             (int)t.c.pid, di, (int)a1, di, (int)t.c.pid);
    CHECK_CYCLE_TRACE(tpath, t.c.pid, "flock", ", LOCK_EX) = -1 EDEADLK (", cyc);

    /* lockf(F_LOCK) closes it */
    const struct cycle2 lockf_cycle = CYCLE2(HOLD(X, 0, 10),
                                             lf(X, F_TLOCK, 20, 10),
                                             WAIT(X, 20, 10),
                                             lf(X, F_LOCK, 0, 10), QUITS);
    t = spawn_traced(tpath);
    a1 = cycle2(&lockf_cycle, &t, 1);
    snprintf(cyc, sizeof cyc,
             ") cycle: pid %d waits for F_WRLCK on %s [0, 9] -> pid %d waits "
             "for F_WRLCK on %s [20, 29] -> pid %d\n",
             (int)t.c.pid, di, (int)a1, di, (int)t.c.pid);
    CHECK_CYCLE_TRACE(tpath, t.c.pid, "lockf", "F_LOCK", " = -1 EDEADLK (", cyc);
    check_clean();
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc >= 4 + NFILES && strcmp(argv[1], "--actor") == 0) {
        alarm(QTEST_CHILD_TIMEOUT_S);
        qtest_up_fd = atoi(argv[2]);
        qtest_down_fd = atoi(argv[3]);
        for (int i = 0; i < NFILES; i++)
            snprintf(paths[i], sizeof paths[i], "%s", argv[4 + i]);
        actor_loop();
        return 0;
    }
    qtest_init();
    for (int i = 0; i < NFILES; i++) {
        const char *p;
        fds[i] = qtest_tmpfile(1000, &p);
        snprintf(paths[i], sizeof paths[i], "%s", p);
    }
    int shim = qtest_mode_shim();

    /* 1-3: cycles of processes (fcntl) */
    ring(2, K_FCNTL, K_FCNTL);
    ring(3, K_FCNTL, K_FCNTL);
    ring(10, K_FCNTL, K_FCNTL);
    if (shim)
        ring(24, K_FCNTL, K_FCNTL); /* beyond Linux's 10-hop search */
    /* 4 */
    two_files();
    /* 5: lockf(F_LOCK), alone and mixed with fcntl */
    ring(2, K_LOCKF, K_LOCKF);
    ring(3, K_FCNTL, K_LOCKF);
    ring(3, K_LOCKF, K_FCNTL);
    /* 6: process and open-file owners */
    if (shim)
        mixed_three_two_files();
    else
        mixed_native();
    two_owner_cycles(shim);
    shared_open_file_not_blocked();
    /* 7-9 */
    upgrade();
    chain();
    shared_reads();
    nonblocking();
    /* 10: a2 holds B by fcntl and waits in F_SETLKW or lockf(F_LOCK); or
     * (shim only) a2's open file holds an F_FLOCK range and waits in
     * flock(LOCK_EX) */
    interrupted(HOLD(X, 20, 10), WAIT(X, 0, 10));
    interrupted(HOLD(X, 20, 10), lf(X, F_LOCK, 0, 10));
    if (shim)
        interrupted(fc(X, F_SETLK, FW, 50, 10), fl(X, LOCK_EX));
    granted_waiter();
    /* 11 */
    killed_waiter(1);
    killed_waiter(0);
    /* whether the dead process still looks alive to the library when a1
     * asks depends on timing: try a few times, stop at the first failure */
    for (int i = 0; i < 3; i++) {
        long failed = qtest_st->failed;
        dead_in_cycle();
        if (qtest_st->failed != failed)
            break;
    }
    killed_waiter_shared(1);
    if (shim)
        killed_waiter_shared(0);
    /* 12 */
    if (shim)
        trace();
    return QTEST_DONE();
}
