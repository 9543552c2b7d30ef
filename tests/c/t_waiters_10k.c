/*
 * t_waiters_10k.c - 10,000 blocked requests at once: every one blocks,
 * deadlock detection still sees through all of them, and every one is
 * granted when the lock they wait for goes.
 *
 * QNX records every blocked request for its deadlock detection (lib_ref
 * i/iofunc_lock.html: EDEADLK "a deadlock was detected") and has no
 * documented limit on how many may wait; neither has Linux.  So a large
 * wait-for graph must neither refuse requests (ENOLCK) nor hide a cycle.
 *
 *   H     a holder child: write-locks X[0, NW)
 *   P_i   NP = 100 waiter processes: each write-locks Y[i, i+1) of a second
 *         file (so that every waiter process is also a lock holder, and the
 *         wait-for graph has NP + 1 owners and NW edges), then starts
 *         NT = 100 threads (64 KiB stacks), thread j F_SETLKW write on its
 *         own byte X[i*NT + j, +1): NW = 10,000 blocked requests.
 *
 * Once every thread has announced its call (a shared slot) and been seen
 * asleep (/proc/PID/task/TID/stat 'S'; the slot says it has not returned),
 * and no request has returned for 1 s, the checks:
 *   1. no request returned while X is held (none may fail, e.g. with
 *      ENOLCK for a full waiter table);
 *   2. H F_SETLKW Y[k, k+1), held by P_k (the last waiter process all of
 *      whose threads are blocked), closes the cycle H -> P_k -> H: it
 *      returns -1 EDEADLK, in both modes (Linux's posix_locks_deadlock()
 *      finds this 2-owner cycle through P_k's blocked requests too); one
 *      that hangs instead (no answer within a generous bound) is
 *      interrupted (SIGUSR1) and counted as failed; the other waiters go
 *      on waiting;
 *   3. H unlocks X: every one of the NW requests returns 0 (each thread
 *      reports it in its slot), and every waiter process exits 0;
 *   4. X and Y are free after that.
 * Every wait is bounded only to turn a hang into a failure: nothing here is
 * timed.  The numbers reached are printed (INFO).
 */
#include "qtest.h"

#include <pthread.h>
#include <sys/prctl.h>

#define NP 100         /* waiter processes */
#define NT 100         /* threads per waiter process */
#define NW (NP * NT)   /* blocked requests */
#define STACK (64 * 1024)

struct slot {
    int state; /* 0 not yet, 1 calling, 2 returned */
    int rc, err;
    int after_release; /* returned after H's unlock was asked for */
    pid_t tid;
};

struct shared {
    int go_exit;
    int released;
    int nstarted, nreturned, ncreate_fail, nylocked;
    struct slot s[NW];
};

static struct shared *sh;
static int xfd, yfd;

/* ---- the waiters -------------------------------------------------------- */

static void *waiter_thread(void *arg)
{
    int idx = (int)(intptr_t)arg;
    struct slot *s = &sh->s[idx];
    s->tid = (pid_t)gettid();
    __atomic_store_n(&s->state, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&sh->nstarted, 1, __ATOMIC_SEQ_CST);
    errno = 0;
    int r = setlkw(xfd, F_WRLCK, idx, 1);
    s->err = errno;
    s->rc = r;
    s->after_release = __atomic_load_n(&sh->released, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->state, 2, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&sh->nreturned, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* P_i: hold Y[i], start NT waiting threads, exit when told (its locks go
 * with it). */
static void waiter_proc(void *arg)
{
    int i = (int)(intptr_t)arg;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(85);
    CHECK_OK(setlk(yfd, F_WRLCK, i, 1));
    __atomic_add_fetch(&sh->nylocked, 1, __ATOMIC_SEQ_CST);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, STACK);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    for (int j = 0; j < NT; j++) {
        pthread_t th;
        if (pthread_create(&th, &at, waiter_thread,
                           (void *)(intptr_t)(i * NT + j)) != 0)
            __atomic_add_fetch(&sh->ncreate_fail, 1, __ATOMIC_SEQ_CST);
    }
    while (!__atomic_load_n(&sh->go_exit, __ATOMIC_SEQ_CST))
        qtest_msleep(20);
    exit(0);
}

/* ---- the holder --------------------------------------------------------- */

static void on_usr1(int sig) { (void)sig; }

/* H: lock X[0, NW) ('L'); on 'D' with k >= 0 F_SETLKW Y[k] ('R' before,
 * 'D' with the result; SIGUSR1 interrupts it); on 'U' unlock X ('u');
 * then wait for 'Q'. */
static void holder(void *arg)
{
    (void)arg;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(85);
    qtest_on_signal(SIGUSR1, on_usr1, 0);
    errno = 0;
    int r = setlk(xfd, F_WRLCK, 0, NW);
    child_report('L', r, errno);
    struct qtest_msg m;
    if (qtest_get(qtest_down_fd, 80000, &m) != 1 || m.tag != 'D')
        return;
    if (m.val >= 0) {
        child_say('R');
        errno = 0;
        r = setlkw(yfd, F_WRLCK, (off_t)m.val, 1);
        child_report('D', r, errno);
    }
    if (!child_await('U', 80000))
        return;
    errno = 0;
    r = unlock(xfd, 0, NW);
    child_report('u', r, errno);
    child_await('Q', 80000);
}

/* ---- the parent --------------------------------------------------------- */

/* One pass over the slots: a request that has been announced and not
 * returned is asleep once its thread was seen sleeping (/proc stat 'S' or
 * 'D') since.  Returns how many are asleep; *returned: how many returned. */
static int count_asleep(const pid_t *pids, int *returned)
{
    static char seen[NW];
    int asleep = 0;
    *returned = 0;
    for (int i = 0; i < NW; i++) {
        int st = __atomic_load_n(&sh->s[i].state, __ATOMIC_SEQ_CST);
        *returned += st == 2;
        if (st == 1 && !seen[i]) {
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/task/%d/stat",
                     (int)pids[i / NT], (int)sh->s[i].tid);
            char c = qtest_stat_state(path);
            seen[i] = c == 'S' || c == 'D';
        }
        asleep += st == 1 && seen[i];
    }
    return asleep;
}

/* Wait (at most timeout_ms) until every request is asleep or returned. */
static void wait_asleep(const pid_t *pids, int timeout_ms)
{
    double end = qtest_now_ms() + timeout_ms;
    int ret;
    while (count_asleep(pids, &ret) + ret + sh->ncreate_fail < NW &&
           qtest_now_ms() < end)
        qtest_msleep(50);
}

/* Wait until nreturned has not changed for 1 s (at most timeout_ms). */
static void settle(int timeout_ms)
{
    int last = -1;
    double since = qtest_now_ms(), end = since + timeout_ms;
    while (qtest_now_ms() < end) {
        int n = __atomic_load_n(&sh->nreturned, __ATOMIC_SEQ_CST);
        if (n != last) {
            last = n;
            since = qtest_now_ms();
        } else if (qtest_now_ms() - since >= 1000) {
            return;
        }
        qtest_msleep(50);
    }
}

/* The waiter process to close the cycle through: the last one all of whose
 * threads still wait, else the one with the most waiting (-1: none). */
static int pick_process(int *waiting)
{
    int best = -1, most = 0;
    for (int p = NP - 1; p >= 0; p--) {
        int w = 0;
        for (int j = 0; j < NT; j++)
            w += __atomic_load_n(&sh->s[p * NT + j].state,
                                 __ATOMIC_SEQ_CST) == 1;
        if (w > most) {
            most = w;
            best = p;
        }
        if (w == NT)
            break;
    }
    *waiting = most;
    return best;
}

/* H's F_SETLKW on Y[k] closes the cycle H -> P_k -> H: EDEADLK. */
static void deadlock_check(qtest_child *h, int k, pid_t pk, int waiting)
{
    struct qtest_msg m = {0, 0, 0};
    int before = __atomic_load_n(&sh->nreturned, __ATOMIC_SEQ_CST);
    CHECK_GETLK(yfd, k, 1, F_WRLCK, k, 1, pk);
    qtest_put(h->to_child, 'D', k, 0);
    CHECK_HEAR(h, 'R', 5000, NULL);
    int got = qtest_get(h->from_child, 15000, &m) == 1;
    CHECK(got && m.tag == 'D' && m.val == -1 && m.err == EDEADLK,
          "holder of X[0,%d) F_SETLKW Y[%d,%d), held by waiter process %d "
          "(%d of whose threads wait for X): %s; expected -1 EDEADLK (a "
          "2-process cycle among %d blocked requests)", NW, k, k + 1, k,
          waiting,
          !got ? "no answer in 15 s (hangs: the cycle was not seen)"
               : m.val == 0 ? "0 (granted)" : qtest_errname(m.err),
          NW);
    if (got)
        qtest_print("INFO the request closing the cycle through waiter "
                    "process %d got %s", k,
                    m.val == 0 ? "0" : qtest_errname(m.err));
    if (!got) {
        kill(h->pid, SIGUSR1); /* break the real deadlock */
        got = qtest_get(h->from_child, 5000, &m) == 1;
        CHECK(got && m.val == -1 && m.err == EINTR,
              "holder's hanging F_SETLKW after SIGUSR1: %s, expected -1 EINTR",
              got ? qtest_errname(m.err) : "still blocked");
    }
    int after = __atomic_load_n(&sh->nreturned, __ATOMIC_SEQ_CST);
    CHECK(after == before, "%d blocked requests returned while the holder's "
          "deadlocking request was made (only that one may fail)",
          after - before);
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    long need = NW + NP + 64; /* threads count as processes */
    long lim = qtest_raise_rlimit(RLIMIT_NPROC, need + 1000);
    if (lim < need && geteuid() != 0) {
        qtest_print("SKIP: RLIMIT_NPROC is %ld, %ld tasks needed", lim, need);
        return QTEST_DONE();
    }
    xfd = qtest_tmpfile(0, NULL);
    yfd = qtest_tmpfile(0, NULL);
    sh = qtest_shared(sizeof *sh);

    qtest_child h = qtest_child_start(holder, NULL);
    struct qtest_msg m;
    if (CHECK_HEAR(&h, 'L', 5000, &m))
        CHECK(m.val == 0, "holder: F_SETLK X[0,%d) gave %lld %s", NW, m.val,
              qtest_errname(m.err));

    pid_t pids[NP];
    double t0 = qtest_now_ms();
    for (int p = 0; p < NP; p++)
        pids[p] = qtest_fork_fn(waiter_proc, (void *)(intptr_t)p);
    wait_asleep(pids, 40000);
    settle(10000);
    int started = __atomic_load_n(&sh->nstarted, __ATOMIC_SEQ_CST);
    int early;
    int asleep = count_asleep(pids, &early);
    qtest_print("INFO %d x %d waiters: %d started, %d seen asleep, %d "
                "returned early, in %.0f ms", NP, NT, started, asleep, early,
                qtest_now_ms() - t0);
    CHECK(sh->ncreate_fail == 0, "%d waiter threads could not be created",
          sh->ncreate_fail);
    CHECK_EQ(sh->nylocked, NP);
    CHECK(started == NW && asleep + early == NW, "of %d waiters %d started, "
          "%d were seen asleep in F_SETLKW and %d returned", NW, started,
          asleep, early);

    /* 1. nothing returned while X is held */
    int enolck = 0, first = -1;
    for (int i = 0; i < NW; i++)
        if (__atomic_load_n(&sh->s[i].state, __ATOMIC_SEQ_CST) == 2) {
            enolck += sh->s[i].rc == -1 && sh->s[i].err == ENOLCK;
            if (first < 0)
                first = i;
        }
    CHECK(early == 0, "%d of %d requests returned while X[0,%d) was held "
          "(%d of them -1 ENOLCK; first: byte %d: %d %s); each must block",
          early, NW, NW, enolck, first, first >= 0 ? sh->s[first].rc : 0,
          first >= 0 ? qtest_errname(sh->s[first].err) : "");

    /* 2. a cycle through the graph */
    int waiting = 0;
    int k = pick_process(&waiting);
    CHECK(k >= 0, "no waiter process has a blocked request: no cycle to "
          "close");
    if (k >= 0)
        deadlock_check(&h, k, pids[k], waiting);
    else
        qtest_put(h.to_child, 'D', -1, 0);

    /* 3. the release: every request is granted */
    __atomic_store_n(&sh->released, 1, __ATOMIC_SEQ_CST);
    qtest_say(&h, 'U');
    if (CHECK_HEAR(&h, 'u', 10000, &m))
        CHECK(m.val == 0, "holder: unlocking X gave %lld %s", m.val,
              qtest_errname(m.err));
    double tr = qtest_now_ms();
    double end = tr + 60000;
    while (__atomic_load_n(&sh->nreturned, __ATOMIC_SEQ_CST) < started &&
           qtest_now_ms() < end)
        qtest_msleep(20);
    int granted = 0, bad = 0, hung = 0, bad_i = -1;
    for (int i = 0; i < NW; i++) {
        struct slot *s = &sh->s[i];
        int st = __atomic_load_n(&s->state, __ATOMIC_SEQ_CST);
        hung += st == 1;
        int late = st == 2 && s->after_release;
        granted += late && s->rc == 0;
        if (late && s->rc != 0 && bad++ == 0)
            bad_i = i;
    }
    qtest_print("INFO after the release: %d granted in %.0f ms, %d failed, "
                "%d still waiting", granted, qtest_now_ms() - tr, bad, hung);
    CHECK(hung == 0, "%d requests still waiting 60 s after the release (a hang guard)",
          hung);
    CHECK(bad == 0, "%d requests failed after the release (first: byte %d: "
          "%s)", bad, bad_i, bad_i >= 0 ? qtest_errname(sh->s[bad_i].err) : "");
    CHECK(granted == NW, "%d of the %d waiters were granted", granted, NW);

    __atomic_store_n(&sh->go_exit, 1, __ATOMIC_SEQ_CST);
    CHECK_ALL_EXIT0(pids, NP, 20000, "waiter processes");
    CHECK_CHILD_FINISH(&h);

    /* 4. all gone */
    CHECK_CAN_LOCK(xfd, F_WRLCK, 0, 0);
    CHECK_CAN_LOCK(yfd, F_WRLCK, 0, 0);
    munmap(sh, sizeof *sh);
    close(xfd);
    close(yfd);
    return QTEST_DONE();
}
