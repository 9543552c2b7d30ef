/*
 * t_handoff.c - a release wakes only the waiters it can grant ("wake one
 * writer, or all compatible readers"): N waiters handed a lock one after
 * another cost O(N) wake-ups in all, not O(N^2).
 *
 * Every waiter is a forked process with an open file of its own (so that
 * the counts are per process) and counts its sleeps: voluntary_ctxt_switches
 * of /proc/self/status just before and just after its F_SETLKW.  A process
 * goes to sleep once more for each wake-up that does not grant it (it
 * wakes, finds the lock still taken and sleeps again), so the difference
 * counts the wake-ups it saw.  Before that, each makes one lock call on a
 * second file (the library attaches a process to its registry at its first
 * lock), so that the count is its wait's alone.
 *
 *   1. writers handed the lock one after another: the parent write-locks
 *      [0,10) (F_SETLK); NW = 200 children each say "about to block" (one
 *      byte on a pipe), F_SETLKW write [0,10), hold it about 1 ms and
 *      unlock.  The parent waits for every byte, 300 ms more (they are all
 *      asleep), and unlocks.  Every child must be granted and exit 0, no
 *      two may hold the lock at once (a shared counter, atomic, counts the
 *      holders), and their sleeps must total <= 8 * NW (plus the wait
 *      slices, below).  A thundering herd (every release wakes every
 *      sleeper of the file) wakes the k-th writer granted at each of the
 *      k - 1 releases before its own: NW (NW - 1) / 2 = 19,900 wake-ups in
 *      all at least (the library whose sleepers all shared their file's
 *      futex word gave 19,960 here; this one about 650).  Linux wakes only
 *      the waiters blocked by the released lock itself (it queues a
 *      conflicting waiter behind the one before it), so the native run
 *      passes with one sleep a writer.
 *   2. readers granted together: the parent write-locks [0,10); NR = 50
 *      children F_SETLKW read [0,10).  On the parent's unlock all must be
 *      granted together: each, once granted, counts itself in (a shared
 *      counter) and keeps its lock until all NR are in (a 60 s hang guard),
 *      so that none can need another reader's release.  Their sleeps must
 *      total <= 8 * NR + NR (plus the wait slices): the slack of one sleep
 *      each is for the registry mutex (natively, the file's lock list),
 *      which NR processes woken at the same instant contend for.  Readers
 *      woken one by one by releases would need releases that never come
 *      (every reader holds on until all are in): the hang guard catches
 *      that; readers left to their wait slices are granted at the slice's
 *      end and sleep no more times than readers woken at once, so only the
 *      time after the release tells those apart, which is printed (INFO)
 *      but not checked.
 *   3. a writer, readers and a writer of another range: the parent
 *      write-locks [0,10) and [100,110); waiters in this order: W1 write
 *      [0,10), R1..R20 read [0,10), W2 write [100,110).  The parent
 *      releases both ranges with one unlock of [0, EOF) (l_len 0).  W1 and
 *      W2 must both be granted, and together (each keeps its lock until the
 *      other has been granted: the ranges are disjoint, neither may wait
 *      for the other), no reader may hold [0,10) while W1 does, and every
 *      waiter must be granted and exit 0.  The order of the grants is
 *      printed (INFO).
 *
 * Wait slices: under the library a blocked request also wakes at the end
 * of each wait slice (at least 50 ms: SLICE_NS in src/locks/mod.rs) to see
 * whether its blockers still live, and sleeps again: one sleep more, and
 * at most one more on the registry mutex as it goes round.  Those are no
 * hand-off wake-ups but grow with the time waited (the 300 ms, and the
 * queue's length times the hold), so under the shim each waiter's bound
 * also allows 2 sleeps per slice its wait may have run through
 * (wait / 50 ms + 1).  That allowance is about 3,700 for the writers here
 * (87 s of waits in all), which with the 1,600 still leaves a herd's
 * 19,900 more than 3 times over the bound, and it is printed.  8 * NW
 * alone would not do: the writers' sleeps grow with the load, through the
 * slices (about 1,050 with 4 busy loops on 2 CPUs, 136 s of waits; 1,961
 * once at a load average near 300, 154 s of waits).  Natively there are
 * no slices and no allowance.
 *
 * Time bounds are hang guards only (60 s): nothing here is timed, the
 * machine may be loaded.  The figures are printed ("handoff: ...").
 */
#include "qtest.h"

#include <sys/prctl.h>

#define NW 200          /* writers handed the lock one after another */
#define NR 50           /* readers granted together */
#define NMR 20          /* readers of the mixed case */
#define GUARD_MS 60000  /* hang guards */
#define SLICE_MS 50     /* the library's shortest wait slice */

enum role { CHAIN, GROUP, W1, W2, MIXED_R };

/* What a waiter child does. */
struct spec {
    enum role role;
    int idx;
    short type;
    off_t start, len;
};

/* What it reports (one record on the results pipe, written at once). */
struct res {
    int idx;
    int rc, err;     /* its F_SETLKW */
    int urc, uerr;   /* its unlock */
    int guard;       /* a hang guard ran out while it held its lock */
    int seq;         /* the order of its grant (from 1) */
    int warm;        /* its warm-up lock call's result */
    long long before, after; /* voluntary_ctxt_switches around F_SETLKW */
    double wait_ms;  /* how long its F_SETLKW took (its slice allowance) */
    double grant_ms; /* when it returned (CLOCK_MONOTONIC; INFO only) */
};

struct shared {
    int inside, max_inside; /* part 1: writers holding [0,10) */
    int rgranted;           /* readers granted (parts 2 and 3) */
    int seq;                /* grants so far */
    int r_inside;           /* part 3: readers holding [0,10) */
    int w1_holds, w1_granted, w2_granted;
    int overlap;            /* part 3: a reader and W1 held at once */
};

static struct shared *sh;
static const char *path, *warm_path;
static int ready_w = -1, res_w = -1; /* the children's pipe ends */
static double release_ms; /* when the parent unlocked (INFO only) */

static long long sleeps_now(void)
{
    return qtest_status_field(0, "voluntary_ctxt_switches:");
}

/* ---- the waiters -------------------------------------------------------- */

/* Once granted: what the role does with the lock before its unlock.
 * Returns 1 if a hang guard ran out. */
static int hold(const struct spec *s)
{
    int guard = 0;
    switch (s->role) {
    case CHAIN: {
        int n = __atomic_add_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST);
        int m = __atomic_load_n(&sh->max_inside, __ATOMIC_SEQ_CST);
        while (n > m && !__atomic_compare_exchange_n(&sh->max_inside, &m, n, 0,
                                                     __ATOMIC_SEQ_CST,
                                                     __ATOMIC_SEQ_CST))
            ;
        usleep(1000);
        __atomic_sub_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST);
        break;
    }
    case GROUP:
        __atomic_add_fetch(&sh->rgranted, 1, __ATOMIC_SEQ_CST);
        guard = !qtest_wait_flag(&sh->rgranted, NR, GUARD_MS);
        break;
    case W1:
        __atomic_store_n(&sh->w1_holds, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&sh->r_inside, __ATOMIC_SEQ_CST) != 0)
            __atomic_add_fetch(&sh->overlap, 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&sh->w1_granted, 1, __ATOMIC_SEQ_CST);
        guard = !qtest_wait_flag(&sh->w2_granted, 1, GUARD_MS);
        __atomic_store_n(&sh->w1_holds, 0, __ATOMIC_SEQ_CST);
        break;
    case W2:
        __atomic_store_n(&sh->w2_granted, 1, __ATOMIC_SEQ_CST);
        guard = !qtest_wait_flag(&sh->w1_granted, 1, GUARD_MS);
        break;
    case MIXED_R:
        __atomic_add_fetch(&sh->r_inside, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&sh->w1_holds, __ATOMIC_SEQ_CST) != 0)
            __atomic_add_fetch(&sh->overlap, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&sh->rgranted, 1, __ATOMIC_SEQ_CST);
        guard = !qtest_wait_flag(&sh->rgranted, NMR, GUARD_MS);
        __atomic_sub_fetch(&sh->r_inside, 1, __ATOMIC_SEQ_CST);
        break;
    }
    return guard;
}

static void waiter(void *arg)
{
    const struct spec *s = arg;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != qtest_main_pid)
        _exit(3); /* the parent is gone already */
    alarm(85);    /* past every hang guard of the parent's */
    struct res r;
    memset(&r, 0, sizeof r);
    r.idx = s->idx;
    int wfd = open(warm_path, O_RDWR | O_CLOEXEC);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || wfd < 0)
        qtest_fatal("open");
    errno = 0;
    r.warm = setlk(wfd, F_WRLCK, s->idx, 1) == 0 ? 0 : errno;
    if (unlock(wfd, s->idx, 1) != 0 && r.warm == 0)
        r.warm = errno;
    close(wfd);
    char b = 'B';
    qtest_write_rec(ready_w, &b, 1);
    r.before = sleeps_now();
    double t0 = qtest_now_ms();
    errno = 0;
    r.rc = setlkw(fd, s->type, s->start, s->len);
    r.err = errno;
    r.after = sleeps_now();
    r.grant_ms = qtest_now_ms();
    r.wait_ms = r.grant_ms - t0;
    if (r.rc == 0) {
        r.seq = __atomic_add_fetch(&sh->seq, 1, __ATOMIC_SEQ_CST);
        r.guard = hold(s);
        errno = 0;
        r.urc = unlock(fd, s->start, s->len);
        r.uerr = errno;
    }
    qtest_write_rec(res_w, &r, sizeof r);
    close(fd);
}

/* ---- the parent --------------------------------------------------------- */

/* A set of waiter children and the read ends of their pipes. */
struct wgroup {
    const char *what;
    int n;
    struct spec *sp;
    pid_t *pids;
    struct res *res;
    char *got;
    int ready_r, res_r;
};

static void group_init(struct wgroup *g, const char *what, int n)
{
    g->what = what;
    g->n = n;
    g->sp = calloc((size_t)n, sizeof *g->sp);
    g->pids = calloc((size_t)n, sizeof *g->pids);
    g->res = calloc((size_t)n, sizeof *g->res);
    g->got = calloc((size_t)n, 1);
    int rp[2], sp[2];
    if (!g->sp || !g->pids || !g->res || !g->got)
        qtest_fatal("calloc");
    if (pipe2(rp, O_CLOEXEC) != 0 || pipe2(sp, O_CLOEXEC) != 0)
        qtest_fatal("pipe");
    g->ready_r = rp[0];
    ready_w = rp[1];
    g->res_r = sp[0];
    res_w = sp[1];
    memset(sh, 0, sizeof *sh);
}

static void spawn(struct wgroup *g, int i, enum role role, short type,
                  off_t start, off_t len)
{
    g->sp[i] = (struct spec){role, i, type, start, len};
    g->pids[i] = qtest_fork_fn(waiter, &g->sp[i]);
}

/* After the last spawn: the parent keeps only the read ends, so that the
 * children gone gives EOF. */
static void spawned(void)
{
    close(ready_w);
    close(res_w);
    ready_w = res_w = -1;
}

/* Read `n` "about to block" bytes within ms; returns how many came. */
static int await_ready(struct wgroup *g, int n, int ms)
{
    double end = qtest_now_ms() + ms;
    int c = 0;
    char b;
    while (c < n) {
        int left = (int)(end - qtest_now_ms());
        if (left <= 0 || qtest_read_rec(g->ready_r, left, &b, 1) != 1)
            break;
        c++;
    }
    return c;
}

/* Best effort: wait (at most ms in all) until children [from, to) are
 * asleep ('S'), so that the next waiter queues behind them. */
static void await_asleep(struct wgroup *g, int from, int to, int ms)
{
    double end = qtest_now_ms() + ms;
    for (int i = from; i < to; i++) {
        int left = (int)(end - qtest_now_ms());
        qtest_wait_state(g->pids[i], 'S', left > 0 ? left : 0);
    }
}

/* Nothing on the results pipe: no waiter returned while the lock is held.
 * Returns how many had. */
static int returned_early(struct wgroup *g)
{
    int early = 0;
    struct res r;
    while (qtest_read_rec(g->res_r, 0, &r, sizeof r) == 1) {
        if (r.idx >= 0 && r.idx < g->n && !g->got[r.idx]) {
            g->res[r.idx] = r;
            g->got[r.idx] = 1;
        }
        early++;
    }
    return early;
}

static void group_free(struct wgroup *g)
{
    free(g->sp);
    free(g->pids);
    free(g->res);
    free(g->got);
}

/* Collect every child's record (GUARD_MS in all), kill those that sent
 * none, and CHECK that each exits 0.  Returns how many reported. */
static int collect(struct wgroup *g)
{
    double end = qtest_now_ms() + GUARD_MS;
    int c = 0;
    for (int i = 0; i < g->n; i++)
        c += g->got[i];
    while (c < g->n) {
        int left = (int)(end - qtest_now_ms());
        struct res r;
        if (left <= 0 || qtest_read_rec(g->res_r, left, &r, sizeof r) != 1)
            break;
        if (r.idx >= 0 && r.idx < g->n && !g->got[r.idx]) {
            g->res[r.idx] = r;
            g->got[r.idx] = 1;
            c++;
        }
    }
    int first = -1;
    for (int i = 0; i < g->n; i++)
        if (!g->got[i]) {
            if (first < 0)
                first = i;
            kill(g->pids[i], SIGKILL);
        }
    CHECK(c == g->n, "%s: %d of %d waiters reported within %d s of the "
          "release (a hang guard; first missing: #%d)", g->what, c, g->n,
          GUARD_MS / 1000, first);
    CHECK_ALL_EXIT0(g->pids, g->n, 10000, g->what);
    close(g->ready_r);
    close(g->res_r);
    return c;
}

/* What a group's waiters reported, summed. */
struct tally {
    long long sleeps;   /* sleeps in F_SETLKW, all waiters */
    long long most;     /* one waiter's most */
    long long slices;   /* wait slices their waits may have run through */
    double wait_ms;     /* their waits, in all */
    double first_ms, last_ms; /* first and last grant after the release */
};

/* CHECK every reported waiter's calls and sum their counts. */
static struct tally check_results(struct wgroup *g)
{
    int bad = 0, first = -1, ubad = 0, ufirst = -1, guards = 0, warm = 0;
    int nocount = 0;
    struct tally t = {0, 0, 0, 0, 1e18, -1e18};
    for (int i = 0; i < g->n; i++) {
        struct res *r = &g->res[i];
        if (!g->got[i])
            continue;
        if (r->rc != 0 && bad++ == 0)
            first = i;
        if (r->rc == 0 && r->urc != 0 && ubad++ == 0)
            ufirst = i;
        guards += r->guard;
        warm += r->warm != 0;
        if (r->rc == 0) {
            double after = r->grant_ms - release_ms;
            t.first_ms = after < t.first_ms ? after : t.first_ms;
            t.last_ms = after > t.last_ms ? after : t.last_ms;
        }
        if (r->before < 0 || r->after < r->before) {
            nocount++;
            continue;
        }
        long long d = r->after - r->before;
        t.sleeps += d;
        t.most = d > t.most ? d : t.most;
        t.wait_ms += r->wait_ms;
        t.slices += (long long)(r->wait_ms / SLICE_MS) + 1;
    }
    CHECK(bad == 0, "%s: %d F_SETLKW calls failed (first: #%d: %d %s)",
          g->what, bad, first, first >= 0 ? g->res[first].rc : 0,
          first >= 0 ? qtest_errname(g->res[first].err) : "");
    CHECK(ubad == 0, "%s: %d unlocks failed (first: #%d: %s)", g->what, ubad,
          ufirst, ufirst >= 0 ? qtest_errname(g->res[ufirst].uerr) : "");
    CHECK(guards == 0, "%s: %d waiters' hang guards (%d s) ran out while "
          "they held the lock: the others they waited for were not granted",
          g->what, guards, GUARD_MS / 1000);
    CHECK(warm == 0, "%s: %d waiters' warm-up lock calls failed", g->what,
          warm);
    CHECK(nocount == 0, "%s: %d waiters could not read voluntary_ctxt_switches "
          "from /proc/self/status", g->what, nocount);
    return t;
}

/* The most sleeps n waiters may have made in all: `each` per waiter, and
 * under the library 2 per wait slice (see the top of the file). */
static long long allowed(int n, int each, const struct tally *t)
{
    return (long long)each * n + (qtest_mode_shim() ? 2 * t->slices : 0);
}

static void print_tally(const char *what, int n, const struct tally *t,
                        long long bound, const char *note)
{
    qtest_print("handoff: %d %s, %lld wake-ups in all (%.1f each, at most "
                "%lld; allowed %lld%s)", n, what, t->sleeps,
                (double)t->sleeps / n, t->most, bound, note);
    qtest_print("INFO %s: %.0f ms of waits in all, %lld wait slices at most "
                "(%s); granted %.0f to %.0f ms after the release", what,
                t->wait_ms, t->slices,
                qtest_mode_shim() ? "2 sleeps each allowed" : "none natively",
                t->first_ms, t->last_ms);
}

/* Let go of the lock the waiters wait for. */
static void release(int fd, off_t start, off_t len)
{
    release_ms = qtest_now_ms();
    CHECK_OK(unlock(fd, start, len));
}

/* Write-locks [0,10), queues n waiters of `role` asking for `type` on it,
 * checks that they all block and sleep, releases [0,10) and collects them. */
static struct tally queue_behind(struct wgroup *g, int fd, const char *what,
                                 int n, enum role role, short type)
{
    group_init(g, what, n);
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    for (int i = 0; i < n; i++)
        spawn(g, i, role, type, 0, 10);
    spawned();
    int ready = await_ready(g, n, GUARD_MS);
    CHECK(ready == n, "%s: %d of %d said they were about to block", what,
          ready, n);
    await_asleep(g, 0, n, 20000);
    qtest_msleep(300);
    int early = returned_early(g);
    CHECK(early == 0, "%s: %d of %d F_SETLKW returned while [0,10) was "
          "write-locked", what, early, n);
    release(fd, 0, 10);
    collect(g);
    return check_results(g);
}

/* 1. NW writers handed [0,10) one after another. */
static void writers(int fd)
{
    struct wgroup g;
    struct tally t = queue_behind(&g, fd, "writers", NW, CHAIN, F_WRLCK);
    int over = __atomic_load_n(&sh->max_inside, __ATOMIC_SEQ_CST);
    CHECK(over <= 1, "writers: %d writers held the write lock [0,10) at once",
          over);
    long long bound = allowed(NW, 8, &t);
    /* a herd: >= NW (NW - 1) / 2 = 19,900, however long the waits */
    print_tally("writers", NW, &t, bound, "; a herd: 19900 or more");
    CHECK(t.sleeps <= bound, "writers: %d writers handed [0,10) one after "
          "another slept %lld times in their F_SETLKW, more than the %lld "
          "allowed (8 each%s): a release wakes more than the waiter it "
          "grants (a herd gives %d or more)", NW, t.sleeps, bound,
          qtest_mode_shim() ? ", 2 per wait slice" : "", NW * (NW - 1) / 2);
    group_free(&g);
}

/* 2. NR readers granted together. */
static void readers(int fd)
{
    struct wgroup g;
    struct tally t = queue_behind(&g, fd, "readers", NR, GROUP, F_RDLCK);
    int in = __atomic_load_n(&sh->rgranted, __ATOMIC_SEQ_CST);
    CHECK(in == NR, "readers: %d of %d held the read lock together", in, NR);
    long long bound = allowed(NR, 9, &t); /* 8 each + 1 for the crowd */
    print_tally("readers", NR, &t, bound, "");
    CHECK(t.sleeps <= bound, "readers: %d readers granted by one release "
          "slept %lld times in their F_SETLKW, more than the %lld allowed "
          "(8 each, 1 for the crowd%s): they were not woken together", NR,
          t.sleeps, bound, qtest_mode_shim() ? ", 2 per wait slice" : "");
    group_free(&g);
}

/* 3. W1, R1..R20 on [0,10) and W2 on [100,110), one unlock of [0, EOF). */
static void mixed(int fd)
{
    int n = NMR + 2;
    struct wgroup g;
    group_init(&g, "mixed", n);
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_OK(setlk(fd, F_WRLCK, 100, 10));
    /* one at a time, each asleep before the next comes: W1 first, W2 last */
    for (int i = 0; i < n; i++) {
        if (i == 0)
            spawn(&g, i, W1, F_WRLCK, 0, 10);
        else if (i == n - 1)
            spawn(&g, i, W2, F_WRLCK, 100, 10);
        else
            spawn(&g, i, MIXED_R, F_RDLCK, 0, 10);
        CHECK(await_ready(&g, 1, GUARD_MS) == 1, "mixed: waiter #%d did not "
              "say it was about to block", i);
        await_asleep(&g, i, i + 1, 5000);
        qtest_msleep(10);
    }
    spawned();
    qtest_msleep(300);
    int early = returned_early(&g);
    CHECK(early == 0, "mixed: %d of %d F_SETLKW returned while [0,10) and "
          "[100,110) were write-locked", early, n);
    release(fd, 0, 0); /* [0, EOF): both ranges */
    collect(&g);
    struct tally t = check_results(&g);
    int w1 = __atomic_load_n(&sh->w1_granted, __ATOMIC_SEQ_CST);
    int w2 = __atomic_load_n(&sh->w2_granted, __ATOMIC_SEQ_CST);
    CHECK(w1 && w2, "mixed: W1 (write [0,10)) %s granted, W2 (write "
          "[100,110)) %s", w1 ? "was" : "was not", w2 ? "was" : "was not");
    int ov = __atomic_load_n(&sh->overlap, __ATOMIC_SEQ_CST);
    CHECK(ov == 0, "mixed: a reader held [0,10) while W1 held its write lock "
          "(%d times seen)", ov);
    CHECK_EQ(__atomic_load_n(&sh->rgranted, __ATOMIC_SEQ_CST), NMR);
    int rmin = n + 1, rmax = 0;
    for (int i = 1; i < n - 1; i++)
        if (g.got[i] && g.res[i].rc == 0) {
            rmin = g.res[i].seq < rmin ? g.res[i].seq : rmin;
            rmax = g.res[i].seq > rmax ? g.res[i].seq : rmax;
        }
    qtest_print("INFO mixed: grants in order: W1 #%d, W2 #%d, readers #%d to "
                "#%d; %lld wake-ups in all (at most %lld each)",
                g.res[0].seq, g.res[n - 1].seq, rmin, rmax, t.sleeps, t.most);
    group_free(&g);
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    long need = NW + 64;
    long lim = qtest_raise_rlimit(RLIMIT_NPROC, need + 1000);
    if (lim < need && geteuid() != 0) {
        qtest_print("SKIP: RLIMIT_NPROC is %ld, %ld processes needed", lim,
                    need);
        return QTEST_DONE();
    }
    sh = qtest_shared(sizeof *sh);
    int fd = qtest_tmpfile(0, &path);
    int wfd = qtest_tmpfile(0, &warm_path);

    writers(fd);
    readers(fd);
    mixed(fd);

    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
    munmap(sh, sizeof *sh);
    close(fd);
    close(wfd);
    return QTEST_DONE();
}
