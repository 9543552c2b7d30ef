/*
 * t_attach_grow.c - processes that attach to the registry (their first lock
 * call) while another process grows it: every one uses it, none refuses it.
 *
 * The registry segment starts small and grows: a process that needs room
 * extends the file (ftruncate, doubling) and then publishes the new chunk
 * count `used` in the segment header.  A process attaching fstat()s the
 * segment, maps that size and reads `used`; if another process grew the
 * segment in between, `used` chunks are more than the size it saw.  The
 * file does cover them (it is extended before `used` is published), so the
 * newcomer must go on (and map the rest as it needs it), not refuse the
 * registry for good: that gave ENOLCK for every lock call it made, and the
 * stderr line "qnxcompat: not using lock registry ...: its size N is not a
 * whole number of 32768-byte chunks".
 *
 * A segment doubles, so it grows only about ten times on its way to 100 MiB,
 * and the refusal needs an attacher held up between its fstat and its read
 * of `used` just while one of those steps happens; the early, small ones are
 * the ones caught (192 KiB -> 384 KiB, 384 KiB -> 768 KiB).  So the test
 * grows a fresh registry again and again, with attachers arriving all the
 * time:
 *
 *   ROUNDS rounds (QTEST_LONG: LONG_ROUNDS), or as many as start within
 *   BUDGET_S seconds (LONG_BUDGET_S; a figure line says so if the budget
 *   cut them short: a slow machine runs fewer, it does not fail), each:
 *     - under the shim with a registry private to the test (run.sh's shim
 *       runs), the segment file /dev/shm/<registry> (qtest_registry_path)
 *       is removed, so that the round starts with no registry at all (no
 *       process maps it: the previous round's have all exited);
 *     - INFLIGHT attachers are started, then the grower G, and each
 *       attacher that exits is replaced by a new one until G has exited;
 *     - G, a child, takes write locks [2j, 2j+1) on the NFILES files of a
 *       private directory (lock k on file k % NFILES, j = k / NFILES:
 *       alternating bytes, so no two merge and each is a record of its
 *       own; spread over files so that the kernel mirror's and the native
 *       lock lists stay short) until the segment has reached GROW_TO
 *       (768 KiB, from its first 96 KiB: three doublings; G stat()s it
 *       after each lock), at most NREC_MAX locks; natively, or where the
 *       segment's path is not known, NREC_FIXED locks.  Then it exits;
 *     - an attacher is a child forked from this process, which never makes
 *       a lock call (the library attaches a process at its first lock call,
 *       and a fork child of an attached process inherits the mapping), run
 *       at nice ATTACHER_NICE: this process (nice 0), woken at each
 *       attacher's exit to start the next, then preempts the others at
 *       random points, some in the middle of attaching, while G goes on
 *       growing on the other CPU (at nice 0 the race showed five to ten
 *       times less often).  An attacher points its stderr at a pipe of its
 *       own, takes one F_SETLK write lock on its own byte (its attach
 *       number) of a shared file A, reads what reached its stderr, and
 *       reports the result and the stderr text in shared memory.  Under
 *       the shim it also stat()s the segment just before and after its
 *       call: the attaches during which the size changed are counted
 *       ("while it grew").
 *
 * Checks: every attacher's F_SETLK returned 0 (no ENOLCK), no attacher
 * printed anything to stderr (the first text is shown), every child exited
 * 0, G's locks were all granted in every round, and under the shim every
 * round's segment reached GROW_TO (the registry did grow while the
 * attachers arrived) and this process never mapped the registry (at the
 * start and the end: so every attacher was a first attach).  Natively the
 * same runs (no registry: the lock results are checked, the growth checks
 * are skipped).  Nothing is timed: BUDGET_S only caps the run's length; the
 * figures are printed for information (QTEST_SHOW='^attach_grow:' shows
 * them under run.sh's PASS line).
 *
 * Baseline (the library that refused), on a 2-core machine: 100 to 230 of
 * the 40,000 to 170,000 attaches of a run (shim and mirror-off runs alike)
 * refused the registry, the first within 15 rounds, each having seen 192 KiB
 * or 384 KiB; with the attachers at nice 0, 9 to 25; at nice 0 and with G
 * making 6,000 locks a round (no stop at GROW_TO), 1 to 20.
 */
#include "qtest.h"

#define ROUNDS 1000
#define LONG_ROUNDS 5000
#define BUDGET_S 35
#define LONG_BUDGET_S 300
#define GROW_TO (768 * 1024) /* G grows each round's segment this far */
#define NREC_MAX 50000       /* ... with at most this many locks */
#define NREC_FIXED 4000      /* G's locks natively */
#define NFILES 64            /* ... spread over this many files */
#define INFLIGHT 8           /* attachers at once */
#define ATTACHER_NICE 10

/* What the attachers and G report (shared memory). */
struct results {
    long attaches;   /* attachers that reported */
    long ok;         /* ... whose F_SETLK returned 0 */
    long enolck;     /* ... failed with ENOLCK */
    long other;      /* ... failed with another errno */
    long printed;    /* ... that found text on their stderr */
    long grew;       /* ... during whose call the segment's size changed */
    int first_claimed;
    long first_attach; /* the first failure: attach number, round */
    int first_round;
    int first_rc, first_err;
    char first_text[300]; /* its stderr, if any */
    long tried;           /* G's lock calls, all rounds */
    long granted;         /* ... granted */
    int denied_claimed;   /* the first one denied: round, lock, errno */
    int denied_round, denied_k, denied_err;
    int short_rounds;     /* rounds whose segment stayed below GROW_TO */
    int short_first;
    off_t short_size;
};

static struct results *res;
static int fd_a;                /* the attachers' shared file */
static struct qtest_fileset fs; /* G's files */
static char seg_buf[300];
static const char *seg;         /* /dev/shm/<registry>, or NULL */
static int round_no;

/* The segment's size, or -1 (none, or not known). */
static off_t seg_size(void)
{
    struct stat st;
    return seg && stat(seg, &st) == 0 ? st.st_size : -1;
}

/* 1 if this process maps the registry segment (under the shim, after its
 * first lock call). */
static int seg_mapped(void)
{
    if (!seg)
        return 0;
    char *maps = qtest_slurp("/proc/self/maps");
    int m = strstr(maps, seg) != NULL;
    free(maps);
    return m;
}

/* An attacher: one F_SETLK, its first lock call, with stderr in a pipe. */
static void attacher(void *arg)
{
    long i = (long)(intptr_t)arg;
    errno = 0;
    if (nice(ATTACHER_NICE) == -1 && errno)
        qtest_fatal("nice");
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0 || dup2(p[1], 2) != 2)
        qtest_fatal("stderr pipe");
    off_t before = seg_size();
    errno = 0;
    int r = setlk(fd_a, F_WRLCK, i, 1);
    int e = r == 0 ? 0 : errno ? errno : 255;
    off_t after = seg_size();
    char text[sizeof res->first_text];
    ssize_t n = read(p[0], text, sizeof text - 1);
    text[n > 0 ? n : 0] = 0;
    __atomic_add_fetch(&res->attaches, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(r == 0 ? &res->ok : e == ENOLCK ? &res->enolck
                                                       : &res->other,
                       1, __ATOMIC_SEQ_CST);
    if (n > 0)
        __atomic_add_fetch(&res->printed, 1, __ATOMIC_SEQ_CST);
    if (before != after)
        __atomic_add_fetch(&res->grew, 1, __ATOMIC_SEQ_CST);
    if ((r != 0 || n > 0) &&
        !__atomic_exchange_n(&res->first_claimed, 1, __ATOMIC_SEQ_CST)) {
        res->first_attach = i;
        res->first_round = round_no;
        res->first_rc = r;
        res->first_err = e;
        memcpy(res->first_text, text, sizeof text);
    }
}

/* G: alternating one-byte write locks over the NFILES files until the
 * segment has reached GROW_TO (or NREC_FIXED of them if its size cannot be
 * seen). */
static void grower(void *arg)
{
    (void)arg;
    int fds[NFILES];
    char path[160];
    for (int f = 0; f < NFILES; f++) {
        qtest_fileset_path(&fs, f, path, sizeof path);
        fds[f] = qtest_open(path, O_RDWR | O_CLOEXEC);
    }
    long tried = 0, got = 0;
    off_t size = -1;
    for (int k = 0; k < (seg ? NREC_MAX : NREC_FIXED); k++) {
        errno = 0;
        int r = setlk(fds[k % NFILES], F_WRLCK, 2 * (k / NFILES), 1);
        int e = errno;
        tried++;
        if (r == 0)
            got++;
        else if (!__atomic_exchange_n(&res->denied_claimed, 1,
                                      __ATOMIC_SEQ_CST)) {
            res->denied_round = round_no;
            res->denied_k = k;
            res->denied_err = e;
        }
        if (seg && (size = seg_size()) >= GROW_TO)
            break;
    }
    if (seg && size < GROW_TO &&
        __atomic_add_fetch(&res->short_rounds, 1, __ATOMIC_SEQ_CST) == 1) {
        res->short_first = round_no;
        res->short_size = size;
    }
    __atomic_add_fetch(&res->tried, tried, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&res->granted, got, __ATOMIC_SEQ_CST);
}

/* Children that did not exit 0: how many, and the first one's status. */
static int bad_exits, first_bad_st;
static const char *first_bad_who;

static void reaped(int st, const char *who)
{
    if (qtest_exited0(st) || bad_exits++)
        return;
    first_bad_st = st;
    first_bad_who = who;
}

static pid_t spawn(void (*fn)(void *), void *arg)
{
    pid_t p = qtest_fork_fn(fn, arg);
    qtest_track(p);
    return p;
}

/* Wait for any child of ours; its pid, or -1 (none left). */
static pid_t reap(int *st)
{
    pid_t p;
    while ((p = waitpid(-1, st, 0)) < 0 && errno == EINTR)
        ;
    if (p > 0)
        qtest_untrack(p);
    return p;
}

/* One round: a fresh registry grown by G while attachers keep arriving.
 * Returns the segment's size at its end (-1: not known). */
static off_t one_round(long *next_attach)
{
    if (seg)
        unlink(seg);
    for (int i = 0; i < INFLIGHT; i++)
        spawn(attacher, (void *)(intptr_t)(*next_attach)++);
    pid_t g = spawn(grower, NULL);
    int g_running = 1, st;
    pid_t p;
    while ((p = reap(&st)) > 0) {
        if (p == g) {
            g_running = 0;
            reaped(st, "the grower");
            continue;
        }
        reaped(st, "an attacher");
        if (g_running)
            spawn(attacher, (void *)(intptr_t)(*next_attach)++);
    }
    return seg_size();
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    if (qtest_long_mode())
        alarm(LONG_BUDGET_S + 60);
    const char *why = NULL;
    seg = qtest_registry_path(seg_buf, sizeof seg_buf, &why);
    if (!seg)
        qtest_print("SKIP segment sizes and removal between rounds: %s", why);
    res = qtest_shared(sizeof *res);
    fd_a = qtest_tmpfile(0, NULL);
    qtest_fileset_create(&fs, NFILES, "attach");
    CHECK(!seg_mapped(), "this process maps the registry %s before any lock "
          "call: its fork children would not attach afresh", seg);

    int rounds = qtest_long_mode() ? LONG_ROUNDS : ROUNDS;
    double budget = 1000.0 * (qtest_long_mode() ? LONG_BUDGET_S : BUDGET_S);
    long next_attach = 0;
    int done = 0;
    off_t max_size = 0;
    double t0 = qtest_now_ms();
    for (; done < rounds && qtest_now_ms() - t0 < budget; done++) {
        round_no = done;
        off_t size = one_round(&next_attach);
        if (size > max_size)
            max_size = size;
    }
    double ms = qtest_now_ms() - t0;

    qtest_print("attach_grow: %d rounds in %.0f ms%s: %ld attaches, %ld "
                "locks of G", done, ms,
                done < rounds ? " (cut short by the time budget)" : "",
                res->attaches, res->granted);
    if (seg)
        qtest_print("attach_grow: each round's segment grew from nothing to "
                    "%d bytes or more (up to %lld); %ld attaches while it "
                    "grew (its size changed during the attacher's lock call)",
                    GROW_TO, (long long)max_size, res->grew);
    CHECK(res->attaches == next_attach, "%ld attachers started, %ld "
          "reported", next_attach, res->attaches);
    char text[sizeof res->first_text + 64];
    CHECK(res->ok == res->attaches && res->printed == 0,
          "%ld of %ld attaches (first lock calls) failed: %ld with ENOLCK, "
          "%ld with another errno; %ld printed to stderr; first: attach %ld "
          "in round %d: F_SETLK gave %d %s, stderr \"%s\"",
          res->attaches - res->ok, res->attaches, res->enolck, res->other,
          res->printed, res->first_attach, res->first_round, res->first_rc,
          res->first_rc ? qtest_errname(res->first_err) : "",
          qtest_oneline(res->first_text, text, sizeof text));
    char d[96] = "";
    if (bad_exits)
        qtest_describe_status(first_bad_st, d, sizeof d);
    CHECK(bad_exits == 0, "%d children did not exit 0; first: %s: %s",
          bad_exits, first_bad_who, d);
    CHECK(res->granted == res->tried && res->tried > 0,
          "the grower: %ld of %ld locks granted; first denied: round %d, "
          "lock %d: %s", res->granted, res->tried, res->denied_round,
          res->denied_k, qtest_errname(res->denied_err));
    if (seg)
        CHECK(res->short_rounds == 0, "%d of %d rounds' segments stayed "
              "below %d bytes after %d locks (the registry did not grow as "
              "far); first: round %d, %lld bytes", res->short_rounds, done,
              GROW_TO, NREC_MAX, res->short_first,
              (long long)res->short_size);
    CHECK(!seg_mapped(), "this process maps the registry %s: its fork "
          "children were no first attaches", seg);
    qtest_fileset_remove(&fs);
    close(fd_a);
    return QTEST_DONE();
}
