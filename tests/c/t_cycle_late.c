/*
 * t_cycle_late.c - a deadlock whose last edge is made by a GRANT.
 *
 * QNX lockf()/iofunc_lock(): EDEADLK "a deadlock was detected".  A cycle in
 * the wait-for graph need not be closed by a new request: a waiter that is
 * granted part of what it waited for becomes the holder that an older
 * waiter now waits for.  Nobody asks anything new, yet the processes are
 * deadlocked.  One of the cycle's blocked requests must fail with EDEADLK
 * (within ~1.5 s), and nobody outside the cycle may get EDEADLK.
 *
 * Owners are processes (fcntl locks), so process C uses two threads to
 * have two requests outstanding:
 *
 *   C holds X[10,20)            (taken first)
 *   A holds X[0,10)
 *   B holds Y[0,10)
 *   C/t2 waits for X[5,10)      blocked by A
 *   B    waits for X[0,10)      blocked by A                     B -> A
 *   C/t1 waits for Y[0,10)      blocked by B              C -> B -> A
 *   E    waits for X[0,3)       blocked by A (bystander)
 *   F    waits for Y[5,6]       blocked by B (bystander, reaches the cycle)
 *   A unlocks X[5,10): C/t2 is GRANTED X[5,10).  B still waits for
 *     X[0,10), now held by A ([0,5)) and C ([5,20)): B -> C, C -> B.
 *
 * Linux reports EDEADLK here too, on B's retry: B's request was queued
 * behind C/t2's (they overlap), so C/t2's grant wakes it, and its first
 * conflict is C's merged lock, whose owner waits (t1) for B.  So the same
 * expectation holds natively.  Variant (b) queues B before C/t2: Linux then
 * leaves B asleep on A's lock and reports EDEADLK only when A releases the
 * rest, while QNX (the shim) must still detect the cycle within ~1.5 s of
 * the grant; natively (b) only checks that EDEADLK comes once A lets go.
 *
 * Afterwards the cycle is broken (the process that got EDEADLK quits), A
 * quits, and every bystander must be granted (0), never EDEADLK.
 *
 * Baseline bug: deadlock detection ran only when a request first went to
 * sleep, so a cycle closed later by a grant hung forever.
 */
#include "qtest.h"

#include <pthread.h>

enum { FX = 0, FY = 1 };
static const char *path[2];

/* ---- agent: a child process that obeys lock commands -------------------- */

/* Command word: start (20 bits) | len << 20 | file << 40 | hold << 41 |
 * replytag << 48.  hold: keep a granted lock (else release it at once). */
static long long cmd_word(int file, off_t start, off_t len, int hold, int tag)
{
    return (long long)start | (long long)len << 20 | (long long)file << 40 |
           (long long)hold << 41 | (long long)tag << 48;
}

struct areq {
    int fd[2];
    long long w;
};

static pthread_mutex_t up_mx = PTHREAD_MUTEX_INITIALIZER;
static void agent_report(int tag, long long val, int err)
{
    pthread_mutex_lock(&up_mx);
    child_report(tag, val, err);
    pthread_mutex_unlock(&up_mx);
}

static void *agent_wait(void *arg)
{
    struct areq *q = arg;
    long long w = q->w;
    int fd = q->fd[(w >> 40) & 1];
    off_t start = w & 0xfffff, len = (w >> 20) & 0xfffff;
    int hold = (w >> 41) & 1, tag = (int)(w >> 48) & 0xff;
    agent_report('W', 0, 0); /* about to block */
    errno = 0;
    int r = setlkw(fd, F_WRLCK, start, len);
    int e = errno;
    if (r == 0 && !hold)
        unlock(fd, start, len);
    agent_report(tag, r, r == 0 ? 0 : e);
    free(q);
    return NULL;
}

static void agent(void *arg)
{
    (void)arg;
    int fd[2] = {open(path[0], O_RDWR), open(path[1], O_RDWR)};
    for (;;) {
        struct qtest_msg m;
        if (qtest_get(qtest_down_fd, 40000, &m) != 1)
            exit(0);
        long long w = m.val;
        int f = (w >> 40) & 1;
        off_t start = w & 0xfffff, len = (w >> 20) & 0xfffff;
        int r, e;
        switch (m.tag) {
        case 'l':
            errno = 0;
            r = setlk(fd[f], F_WRLCK, start, len);
            e = errno;
            agent_report('l', r, r ? e : 0);
            break;
        case 'u':
            errno = 0;
            r = unlock(fd[f], start, len);
            e = errno;
            agent_report('u', r, r ? e : 0);
            break;
        case 'w': {
            struct areq *q = malloc(sizeof *q);
            q->fd[0] = fd[0];
            q->fd[1] = fd[1];
            q->w = w;
            pthread_t t;
            pthread_create(&t, NULL, agent_wait, q);
            pthread_detach(t);
            break;
        }
        case 'Q':
            exit(0); /* normal exit: everything is released */
        }
    }
}

/* ---- parent side --------------------------------------------------------- */

#define INBOX 16
struct ag {
    const char *name;
    qtest_child c;
    struct qtest_msg box[INBOX];
    int nbox;
    int alive;
};

static struct ag ags[5]; /* A B C E F */
enum { A, B, C, E, F };

static void ag_start(int i, const char *name)
{
    ags[i].name = name;
    ags[i].c = qtest_child_start(agent, NULL);
    ags[i].nbox = 0;
    ags[i].alive = 1;
    qtest_track(ags[i].c.pid);
}

/* Take the message with `tag` from the agent (inbox first), waiting up to
 * timeout_ms.  Returns 1 if found. */
static int ag_take(int i, int tag, int timeout_ms, struct qtest_msg *out)
{
    struct ag *a = &ags[i];
    double end = qtest_now_ms() + timeout_ms;
    for (;;) {
        for (int k = 0; k < a->nbox; k++)
            if (a->box[k].tag == tag) {
                if (out)
                    *out = a->box[k];
                a->box[k] = a->box[--a->nbox];
                return 1;
            }
        int left = (int)(end - qtest_now_ms());
        if (left < 0)
            return 0;
        struct qtest_msg m;
        int r = qtest_get(a->c.from_child, left, &m);
        if (r != 1)
            return 0;
        if (a->nbox < INBOX)
            a->box[a->nbox++] = m;
    }
}

static int ag_lock(int i, int file, off_t start, off_t len)
{
    qtest_put(ags[i].c.to_child, 'l', cmd_word(file, start, len, 1, 0), 0);
    struct qtest_msg m = {0, 0, 0};
    int ok = ag_take(i, 'l', 5000, &m) && m.val == 0;
    CHECK(ok, "%s: F_SETLK %s[%lld,+%lld] failed", ags[i].name,
          file ? "Y" : "X", (long long)start, (long long)len);
    return ok;
}

static void ag_unlock(int i, int file, off_t start, off_t len)
{
    qtest_put(ags[i].c.to_child, 'u', cmd_word(file, start, len, 1, 0), 0);
    struct qtest_msg m = {0, 0, 0};
    CHECK(ag_take(i, 'u', 5000, &m) && m.val == 0, "%s: unlock failed",
          ags[i].name);
}

/* Start a blocking request in a new thread of agent i; its result comes
 * back tagged `tag`.  CHECK that it blocks (nothing within 200 ms). */
static void ag_wait(int i, int file, off_t start, off_t len, int hold, int tag)
{
    qtest_put(ags[i].c.to_child, 'w', cmd_word(file, start, len, hold, tag),
              0);
    CHECK(ag_take(i, 'W', 5000, NULL), "%s: waiter thread did not start",
          ags[i].name);
    qtest_msleep(200);
    struct qtest_msg m = {0, 0, 0};
    int early = ag_take(i, tag, 0, &m);
    CHECK(!early, "%s: F_SETLKW %s[%lld,+%lld] did not block: %lld %s",
          ags[i].name, file ? "Y" : "X", (long long)start, (long long)len,
          m.val, qtest_errname(m.err));
}

static void ag_quit(int i)
{
    if (!ags[i].alive)
        return;
    qtest_say(&ags[i].c, 'Q');
    CHECK_EXIT0(ags[i].c.pid);
    qtest_untrack(ags[i].c.pid);
    ags[i].alive = 0;
}

static void ag_close(int i)
{
    close(ags[i].c.from_child);
    close(ags[i].c.to_child);
}

/* Wait up to ms for either of two results; returns which came (1: first,
 * 2: second, 0: none), filling *m. */
static int take_either(int i1, int t1, int i2, int t2, int ms,
                       struct qtest_msg *m)
{
    double end = qtest_now_ms() + ms;
    for (;;) {
        if (ag_take(i1, t1, 0, m))
            return 1;
        if (ag_take(i2, t2, 0, m))
            return 2;
        if (qtest_now_ms() > end)
            return 0;
        /* block briefly on either pipe */
        struct pollfd p[2] = {{ags[i1].c.from_child, POLLIN, 0},
                              {ags[i2].c.from_child, POLLIN, 0}};
        poll(p, 2, 5);
        if (p[0].revents & POLLIN)
            ag_take(i1, -1, 0, NULL); /* pull one message into the inbox */
        if (p[1].revents & POLLIN)
            ag_take(i2, -1, 0, NULL);
    }
}

static void scenario(int b_first)
{
    const char *what = b_first ? "(b) B queued before C/t2"
                               : "(a) C/t2 queued before B";
    ag_start(A, "A");
    ag_start(B, "B");
    ag_start(C, "C");
    ag_start(E, "E");
    ag_start(F, "F");
    ag_lock(C, FX, 10, 10);
    ag_lock(A, FX, 0, 10);
    ag_lock(B, FY, 0, 10);
    if (b_first) {
        ag_wait(B, FX, 0, 10, 0, 'b');
        ag_wait(C, FX, 5, 5, 1, 's'); /* t2: keeps what it gets */
    } else {
        ag_wait(C, FX, 5, 5, 1, 's');
        ag_wait(B, FX, 0, 10, 0, 'b');
    }
    ag_wait(C, FY, 0, 10, 0, 't'); /* t1 */
    ag_wait(E, FX, 0, 3, 0, 'e');
    ag_wait(F, FY, 5, 1, 0, 'f');

    /* the grant that closes the cycle */
    double t0 = qtest_now_ms();
    ag_unlock(A, FX, 5, 5);
    struct qtest_msg m = {0, 0, 0};
    CHECK(ag_take(C, 's', 3000, &m) && m.val == 0,
          "%s: C/t2 was not granted X[5,10) after A's unlock", what);
    int native_late = b_first && !qtest_mode_shim();
    int who = 0;
    struct qtest_msg dm = {0, 0, 0};
    if (!native_late) {
        who = take_either(B, 'b', C, 't', 1500, &dm);
        double dt = qtest_now_ms() - t0;
        CHECK(who && dm.val == -1 && dm.err == EDEADLK,
              "%s: no request of the cycle got EDEADLK within 1.5 s of the "
              "grant (%s)", what,
              who == 0 ? "both still blocked: deadlocked"
                       : (dm.val == 0 ? "one was granted?!"
                                      : qtest_errname(dm.err)));
        if (who)
            qtest_print("INFO %s: %s got %s %.0f ms after the grant", what,
                        who == 1 ? "B" : "C/t1",
                        dm.val ? qtest_errname(dm.err) : "0", dt);
    } else {
        /* Linux: B sleeps on A's lock until A lets go */
        CHECK(!ag_take(B, 'b', 300, &dm) && !ag_take(C, 't', 0, &dm),
              "%s: natively a cycle request returned before A let go: %lld "
              "%s", what, dm.val, qtest_errname(dm.err));
    }
    /* bystanders are still waiting, no EDEADLK */
    struct qtest_msg bm = {0, 0, 0};
    CHECK(!ag_take(E, 'e', 0, &bm), "%s: bystander E returned early: %lld %s",
          what, bm.val, qtest_errname(bm.err));
    CHECK(!ag_take(F, 'f', 0, &bm), "%s: bystander F returned early: %lld %s",
          what, bm.val, qtest_errname(bm.err));

    /* break the cycle and let everybody through */
    if (who == 1)
        ag_quit(B);
    else if (who == 2)
        ag_quit(C);
    ag_quit(A);
    if (native_late) {
        who = take_either(B, 'b', C, 't', 3000, &dm);
        CHECK(who && dm.val == -1 && dm.err == EDEADLK,
              "%s: natively no EDEADLK once A let go (%s)", what,
              who ? qtest_errname(dm.err) : "still blocked");
        if (who == 1)
            ag_quit(B);
        else if (who == 2)
            ag_quit(C);
    }
    struct qtest_msg em = {0, 0, 0}, fm = {0, 0, 0};
    int ge = ag_take(E, 'e', 5000, &em);
    /* F waits for Y[5,6] held by B (or by C/t1 briefly) */
    if (ags[B].alive && !ag_take(B, 'b', 3000, &m))
        CHECK(0, "%s: B's request never ended", what);
    ag_quit(B);
    int gf = ag_take(F, 'f', 5000, &fm);
    CHECK(ge && em.val == 0, "%s: bystander E (waiting for X[0,3) held by A) "
          "got %s, expected to be granted", what,
          ge ? (em.val ? qtest_errname(em.err) : "0") : "nothing (hung)");
    CHECK(gf && fm.val == 0, "%s: bystander F (waiting for Y[5,6] held by "
          "B) got %s, expected to be granted", what,
          gf ? (fm.val ? qtest_errname(fm.err) : "0") : "nothing (hung)");
    for (int i = 0; i < 5; i++)
        ag_quit(i);
    for (int i = 0; i < 5; i++)
        ag_close(i);
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int fx = qtest_tmpfile(100, &path[0]);
    int fy = qtest_tmpfile(100, &path[1]);
    scenario(0);
    scenario(1);
    CHECK_CAN_LOCK(fx, F_WRLCK, 0, 0);
    CHECK_CAN_LOCK(fy, F_WRLCK, 0, 0);
    close(fx);
    close(fy);
    return QTEST_DONE();
}
