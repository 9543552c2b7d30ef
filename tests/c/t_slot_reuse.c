/*
 * t_slot_reuse.c - a file's registry slot freed while a process waits on
 * the file, and reused for another file.
 *
 * Under the shim each locked file has a slot in the registry; a slot whose
 * last lock goes is freed and may be given to the next file that is locked.
 * A process blocked in F_SETLKW on file A has no lock on A, so A's slot can
 * be freed and reused (for file B) while it waits.  Nothing about B may then
 * be charged to the waiter:
 *
 *   deadlock: W holds C and blocks in F_SETLKW on A (held by H).  W is
 *     stopped (SIGSTOP) so that the next steps happen before it retries; H
 *     unlocks A, X locks B1..B8 (one of them gets A's old slot), H locks A
 *     again, W continues and blocks again (A is held).  Now X, holding the
 *     B files, blocks in F_SETLKW on C: X waits for W, W waits for H, H
 *     waits for nothing: no cycle, so X must block (not EDEADLK), and gets C
 *     once H lets A go and W, granted A, lets C go.
 *   wake-up: W blocks on A and is stopped; H unlocks A; X locks B1..B8;
 *     S1..S8 block in F_SETLKW on B1..B8; just after S1 started a wait
 *     slice W continues and takes A; then X unlocks each Bi: each Si must be
 *     woken promptly.  (A release wakes its sleepers at once; the library's
 *     50 ms wait slices would hide a lost wake-up as a delay of up to 50 ms,
 *     so this measures it: more than one round of 8 with a sleeper granted
 *     later than 10 ms after the unlock fails.)
 *   churn: no stopping: W blocks on A held by H; H unlocks A while four
 *     processes lock and unlock 8 files of their own in a loop; W must get
 *     A within 2 s every round, and none of the churners' calls may fail.
 *
 * Natively the kernel has no slots: everything holds trivially there, and
 * the expectations are the same.
 */
#include "qtest.h"

#define NB 8          /* B files, and sleepers */
#define ROUNDS 8      /* rounds of each scenario */
#define DL_ROUNDS 4   /* deadlock rounds (deterministic) */
#define SLOW_MS 10.0  /* a wake-up later than this counts as lost */

enum { FA, FC, FB0, NFILES = FB0 + NB };

static int fds[NFILES];
static const char *paths[NFILES];

/* ------------------------------------------------------------------------ */
/* Agents: children that run the parent's lock commands                      */
/* ------------------------------------------------------------------------ */
/*
 * Commands (tag, val = file index): 'L' F_SETLK write [0,1), 'U' unlock
 * [0,1), 'W' F_SETLKW write [0,1) (announced with 'b' just before the call).
 * Each is answered with 'r': err = errno (0: success), val = the time in
 * microseconds (before the call for L/U, after it for W).  'Q' ends.
 */
static long long now_us(void)
{
    return (long long)(qtest_now_ms() * 1000.0);
}

static void agent(void *arg)
{
    (void)arg;
    for (;;) {
        struct qtest_msg m;
        if (qtest_get(qtest_down_fd, 50000, &m) != 1 || m.tag == 'Q')
            return;
        int f = (int)m.val;
        if (f < 0 || f >= NFILES)
            return;
        long long t = now_us();
        int r;
        errno = 0;
        if (m.tag == 'L') {
            r = setlk(fds[f], F_WRLCK, 0, 1);
        } else if (m.tag == 'U') {
            r = unlock(fds[f], 0, 1);
        } else if (m.tag == 'W') {
            child_say('b');
            r = setlkw(fds[f], F_WRLCK, 0, 1);
            t = now_us();
        } else {
            return;
        }
        child_report('r', t, r == 0 ? 0 : errno ? errno : -1);
    }
}

static void send(qtest_child *c, int op, int file)
{
    qtest_put(c->to_child, op, file, 0);
}

/* Send a non-blocking command and CHECK its answer (0 = success).  Returns
 * the time the agent took it (us), or -1. */
static long long cmd(qtest_child *c, int op, int file, const char *who)
{
    send(c, op, file);
    struct qtest_msg m;
    if (!CHECK_HEAR(c, 'r', 5000, &m))
        return -1;
    CHECK(m.err == 0, "%s: %s file %d: -1 %s", who,
          op == 'L' ? "F_SETLK" : "unlock", file, qtest_errname(m.err));
    return m.val;
}

/* The child announced a blocking call: 1 if it is asleep in it (it sleeps
 * within 1 s and then stays silent for 75 ms).  A shorter form of
 * qtest_wait_blocked, for the many waits here.  75 ms, not the library's
 * 50 ms wait slice: a SIGSTOP sent right after would otherwise land when
 * the waiter wakes for its next slice, often while it holds the registry
 * lock, which (one lock for all files today) stalls every other process
 * of the test until SIGCONT. */
static int blocked(qtest_child *c)
{
    qtest_wait_state(c->pid, 'S', 1000);
    return qtest_silent(c, 75);
}

/* Start a blocking F_SETLKW; CHECK that it blocks. */
static void cmd_wait(qtest_child *c, int file, const char *who)
{
    send(c, 'W', file);
    CHECK_HEAR(c, 'b', 5000, NULL);
    CHECK(blocked(c), "%s: F_SETLKW on file %d did not block", who, file);
}

/* Collect the answer of a blocking F_SETLKW (within ms). */
static int wait_done(qtest_child *c, int ms, struct qtest_msg *m)
{
    int r = qtest_get(c->from_child, ms, m);
    return r == 1 && m->tag == 'r';
}

/* CHECK that a blocked F_SETLKW of c is granted within 5 s. */
static void expect_grant(qtest_child *c, const char *who, const char *what)
{
    struct qtest_msg m;
    if (wait_done(c, 5000, &m))
        CHECK(m.err == 0, "%s: %s: -1 %s", who, what, qtest_errname(m.err));
    else
        CHECK(0, "%s: %s: not granted within 5 s", who, what);
}

/* How often process pid has gone to sleep (/proc/PID/status), -1 if
 * unknown. */
static long sleeps(pid_t pid)
{
    return (long)qtest_status_field(pid, "voluntary_ctxt_switches:");
}

/* A blocked F_SETLKW under the shim sleeps in slices (50 ms) and re-counts
 * itself a sleeper of its file at each: return just after the child has
 * started a new one (it went to sleep once more), so that what happens next
 * happens within one slice, and a wake-up that a release fails to send
 * costs most of a slice.  Natively there are no slices: gives up after
 * 120 ms. */
static void slice_start(qtest_child *c)
{
    long n0 = sleeps(c->pid);
    double end = qtest_now_ms() + 120;
    while (n0 >= 0 && sleeps(c->pid) == n0 && qtest_now_ms() < end)
        qtest_msleep(1);
    qtest_msleep(1);
}

static void stop(qtest_child *c)
{
    kill(c->pid, SIGSTOP);
    CHECK(qtest_wait_state(c->pid, 'T', 2000), "child %d did not stop",
          (int)c->pid);
}

static void cont(qtest_child *c)
{
    kill(c->pid, SIGCONT);
}

/* ------------------------------------------------------------------------ */

static void deadlock_round(qtest_child *h, qtest_child *w, qtest_child *x,
                           int round)
{
    char who[64];
    snprintf(who, sizeof who, "deadlock round %d", round);
    cmd(h, 'L', FA, who);
    cmd(w, 'L', FC, who);
    cmd_wait(w, FA, who);
    stop(w);
    cmd(h, 'U', FA, who); /* A's slot is free now */
    for (int i = 0; i < NB; i++)
        cmd(x, 'L', FB0 + i, who); /* and one of these takes it */
    cmd(h, 'L', FA, who);
    cont(w);
    /* W retries, finds A held, waits again */
    qtest_msleep(20);
    CHECK(blocked(w), "%s: W did not go back to waiting on A", who);

    send(x, 'W', FC);
    CHECK_HEAR(x, 'b', 5000, NULL);
    struct qtest_msg m;
    int early = !qtest_silent(x, 150) && wait_done(x, 100, &m);
    CHECK(!early, "%s: X's F_SETLKW on C returned at once: %d %s (X waits "
          "for W, W for H, H for nothing: no cycle)", who, early ? m.err : 0,
          early ? qtest_errname(m.err) : "");
    /* unwind: H lets A go, W gets it and lets C go, X gets C */
    cmd(h, 'U', FA, who);
    expect_grant(w, who, "W's F_SETLKW on A, after its release");
    cmd(w, 'U', FA, who);
    cmd(w, 'U', FC, who);
    if (!early)
        expect_grant(x, who, "X's F_SETLKW on C, after its release");
    cmd(x, 'U', FC, who);
    for (int i = 0; i < NB; i++)
        cmd(x, 'U', FB0 + i, who);
}

static void deadlock_scenario(void)
{
    qtest_child h = qtest_child_start(agent, NULL);
    qtest_child w = qtest_child_start(agent, NULL);
    qtest_child x = qtest_child_start(agent, NULL);
    for (int r = 1; r <= DL_ROUNDS; r++)
        deadlock_round(&h, &w, &x, r);
    CHECK_CHILD_FINISH(&x);
    CHECK_CHILD_FINISH(&w);
    CHECK_CHILD_FINISH(&h);
}

/* ------------------------------------------------------------------------ */

static double wake_round(qtest_child *h, qtest_child *w, qtest_child *x,
                         qtest_child *s, int round)
{
    char who[64];
    snprintf(who, sizeof who, "wake-up round %d", round);
    cmd(h, 'L', FA, who);
    cmd_wait(w, FA, who);
    stop(w);
    cmd(h, 'U', FA, who);
    for (int i = 0; i < NB; i++)
        cmd(x, 'L', FB0 + i, who);
    for (int i = 0; i < NB; i++)
        cmd_wait(&s[i], FB0 + i, who);
    /* W's retry comes just after S0 (on the first file to take a free slot)
     * started a wait slice, and the unlocks straight after W's grant */
    slice_start(&s[0]);
    cont(w);
    expect_grant(w, who, "W's F_SETLKW on the free A");
    struct qtest_msg m;

    double worst = 0;
    int worst_i = -1;
    for (int i = 0; i < NB; i++) {
        long long t_unlock = cmd(x, 'U', FB0 + i, who);
        if (wait_done(&s[i], 5000, &m)) {
            CHECK(m.err == 0, "%s: S%d's F_SETLKW on B%d: -1 %s", who, i, i,
                  qtest_errname(m.err));
            double lat = (double)(m.val - t_unlock) / 1000.0;
            if (lat > worst) {
                worst = lat;
                worst_i = i;
            }
        } else {
            CHECK(0, "%s: S%d was not granted B%d within 5 s of its release",
                  who, i, i);
        }
        cmd(&s[i], 'U', FB0 + i, who);
    }
    cmd(w, 'U', FA, who);
    if (worst > SLOW_MS)
        qtest_print("NOTE %s: S%d was granted %.1f ms after the unlock", who,
                    worst_i, worst);
    return worst;
}

static void wake_scenario(void)
{
    qtest_child h = qtest_child_start(agent, NULL);
    qtest_child w = qtest_child_start(agent, NULL);
    qtest_child x = qtest_child_start(agent, NULL);
    qtest_child s[NB];
    for (int i = 0; i < NB; i++)
        s[i] = qtest_child_start(agent, NULL);
    int slow = 0;
    double worst = 0;
    for (int r = 1; r <= ROUNDS; r++) {
        double t = wake_round(&h, &w, &x, s, r);
        slow += t > SLOW_MS;
        if (t > worst)
            worst = t;
    }
    CHECK(slow <= 1, "wake-up: in %d of %d rounds a sleeper on a file whose "
          "slot had been freed and reused was granted more than %.0f ms "
          "after the unlock (worst %.1f ms): its wake-up was lost", slow,
          ROUNDS, SLOW_MS, worst);
    for (int i = 0; i < NB; i++)
        CHECK_CHILD_FINISH(&s[i]);
    CHECK_CHILD_FINISH(&x);
    CHECK_CHILD_FINISH(&w);
    CHECK_CHILD_FINISH(&h);
}

/* ------------------------------------------------------------------------ */

struct churn_arg {
    int id;
    volatile int *stop;
};

/* Lock and unlock 8 files of its own until told to stop. */
static void churner(void *arg)
{
    struct churn_arg *a = arg;
    int my[8];
    for (int i = 0; i < 8; i++) {
        char name[96];
        snprintf(name, sizeof name, "/tmp/qtest-%d-churn-%d-%d",
                 (int)qtest_main_pid, a->id, i);
        my[i] = open(name, O_RDWR | O_CREAT, 0600);
        unlink(name);
        if (my[i] < 0)
            _exit(3);
    }
    long fails = 0, n = 0;
    child_say('R');
    while (!*a->stop && n < 5000000) {
        int i = (int)(n % 8);
        if (setlk(my[i], F_WRLCK, 0, 1) != 0)
            fails++;
        if (unlock(my[i], 0, 1) != 0)
            fails++;
        n++;
    }
    CHECK(fails == 0, "churner %d: %ld of %ld calls failed", a->id, fails,
          2 * n);
}

static void churn_scenario(void)
{
    volatile int *stop_flag = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stop_flag == MAP_FAILED)
        qtest_fatal("mmap");
    *stop_flag = 0;
    struct churn_arg args[4];
    qtest_child ch[4];
    for (int i = 0; i < 4; i++) {
        args[i].id = i;
        args[i].stop = stop_flag;
        ch[i] = qtest_child_start(churner, &args[i]);
        CHECK_HEAR(&ch[i], 'R', 5000, NULL);
    }
    qtest_child h = qtest_child_start(agent, NULL);
    qtest_child w = qtest_child_start(agent, NULL);
    int late = 0;
    for (int r = 1; r <= ROUNDS; r++) {
        char who[64];
        snprintf(who, sizeof who, "churn round %d", r);
        cmd(&h, 'L', FA, who);
        cmd_wait(&w, FA, who);
        cmd(&h, 'U', FA, who);
        struct qtest_msg m;
        if (wait_done(&w, 2000, &m)) {
            CHECK(m.err == 0, "%s: W's F_SETLKW on A: -1 %s", who,
                  qtest_errname(m.err));
        } else {
            late++;
            if (!wait_done(&w, 5000, &m))
                CHECK(0, "%s: W never got A", who);
        }
        cmd(&w, 'U', FA, who);
    }
    CHECK(late == 0, "churn: in %d of %d rounds W was not granted A within "
          "2 s of its release", late, ROUNDS);
    *stop_flag = 1;
    CHECK_CHILD_FINISH(&w);
    CHECK_CHILD_FINISH(&h);
    for (int i = 0; i < 4; i++)
        CHECK_CHILD_FINISH(&ch[i]);
    munmap((void *)stop_flag, 4096);
}

int main(void)
{
    qtest_init();
    for (int i = 0; i < NFILES; i++)
        fds[i] = qtest_tmpfile(10, &paths[i]);
    deadlock_scenario();
    wake_scenario();
    churn_scenario();
    for (int i = 0; i < NFILES; i++)
        close(fds[i]);
    return QTEST_DONE();
}
