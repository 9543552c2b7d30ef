/*
 * t_scale.c - the registry at scale: 100,000 locked files, 10,000 open-file
 * owners, 1,000 more process owners and 1,000,000 lock records, while
 * another process's locks stay enforced; a segment that starts small and
 * grows.
 *
 * POSIX fcntl: a lock that cannot be recorded fails with ENOLCK ("the
 * number of locked regions would exceed a system-imposed limit"), but
 * QNX has no such limit at these sizes, so the shim must not have one
 * either, and growing its tables must not lose or weaken a lock that
 * another process holds meanwhile.
 *
 * (1) Under the shim with a registry private to the test (run.sh's shim
 *     runs), after the first locks the segment file (/dev/shm/<registry>,
 *     qtest_registry_path) is at most 256 KiB; after the big phases below
 *     it is larger.  Otherwise a SKIP line says why.
 * (2) A holder child H (CHECK_START_HOLDERS) takes write locks on three
 *     files: A [0,10) and [100,150), B [5,6), C [0,EOF); it stays alive
 *     holding them.  Then every table grows far past its first size:
 *       - 1,000 process owners: children, child i holding P [2i, 2i+1) of
 *         one shared file P, alive until checked (they block on a pipe);
 *       - 10,000 open-file owners: 10,000 files of a private directory,
 *         each opened on its own by this process (one open file
 *         description each) and flock(LOCK_EX|LOCK_NB)'d;
 *       - 100,000 more files of that directory, each opened and locked
 *         F_SETLK F_WRLCK [0,1), descriptors kept (QNX releases a
 *         process's locks on a file at its close).  By this process alone
 *         if RLIMIT_NOFILE lets it hold 110,000 descriptors (root may raise
 *         it up to fs.nr_open); where the hard limit cannot be raised (a
 *         container: 20,000) it locks what it can hold and "locker"
 *         children, started before anything else is open, lock the rest at
 *         the same time, each holding its share open.  A "scale:" line says
 *         which.
 *     Throughout (every 2,500 flocks and 5,000 files, and while the lockers
 *     lock) and after growth, this process's F_GETLK reports H's locks (pid
 *     and range), its F_SETLK of a write or read lock on them fails with
 *     EAGAIN or EACCES, and the gap between two of them is free; after each
 *     phase ONE fresh process (qtest_probe_reqs) checks samples of every
 *     phase so far: F_GETLK shows owner i's P range held by owner i, each
 *     sampled file's [0,1) (its own open) held by this process or its
 *     locker; flock(LOCK_EX|LOCK_NB) on an open of its own of a sampled
 *     flock'd file fails with EWOULDBLOCK, and under the shim its F_GETLK
 *     reports the flock (F_WRLCK|F_FLOCK [0,EOF), our pid; Linux's F_GETLK
 *     does not see flock() locks).  Then, phase by phase, the files are
 *     closed, the flock'd files closed, the owners let exit and H told to
 *     quit: each time that phase's locks are gone (F_GETLK: F_UNLCK; flock:
 *     0) and the others' are still there.
 * (3) Lock records: one process takes write locks on every other byte of
 *     one file, [2k, 2k+1); ONE other process checks samples with F_GETLK
 *     (2k held by us, 2k+1 free, [2k+1, 2k+3) finds 2k+2); one unlock of
 *     the whole file removes them all.  1,000,000 of them under the shim
 *     with the mirror off; 20,000 natively and with the mirror on (the
 *     Linux kernel's lock list of a file is linear: a million kernel locks
 *     would take hours), still past the registry's first record table.
 *     The "scale:" lines say which (QTEST_SHOW='^scale:' shows them under
 *     run.sh's PASS line).
 *
 * Every failure says which index failed and its errno.  Nothing here is
 * timed (the figures printed are for information).  QTEST_LONG makes no
 * difference: the default run is the full size (well under 60 s).
 *
 * Baseline (the registry before it grew in chunks): its segment was its
 * full size from creation, 66 MiB (sparse), and never grew (both checks of
 * (1) fail); it held 65,536 files, so 44,468 of the 100,000 got ENOLCK;
 * and with the mirror off, after 514,689 alternating records the next
 * got ENOLCK.
 */
#include "qtest.h"

#define NPROC 1000     /* process owners */
#define NOFD 10000     /* open-file owners (flock'd files) */
#define NFILES 100000  /* locked files */
#define NREC_BIG 1000000L
#define NREC_SMALL 20000L
#define NSAMPLE 400    /* samples of a phase a probe checks */
#define SEG_START_MAX (256 * 1024)
#define PROBE_MS 30000

static struct qtest_fileset fs; /* NOFD flock'd files, then NFILES files */
static int fd_a, fd_b, fd_c, fd_p;

/* ---- the checks of a probe's answers ------------------------------------- */

/* What one request of a probe must give: for a query (F_GETLK), the
 * answer {type, SEEK_SET, start, len, pid} (type F_UNLCK: none, nothing
 * else changed); for a lock call, its result (0 or the errno). */
struct want {
    short type;
    off_t start, len;
    pid_t pid;
    int res;
    char what[64]; /* "file 12345 [0,1)" */
};

#define SMP_MAX (4 * NSAMPLE + NPROC + 64)
struct samples {
    struct qtest_req q[SMP_MAX];
    struct want w[SMP_MAX];
    char paths[3 * NSAMPLE + 16][160]; /* for requests on opens of their own */
    int n, npaths;
};

static int is_query(const struct qtest_req *q)
{
    return !q->op && (q->cmd == F_GETLK || q->cmd == F_OFD_GETLK);
}

/* A copy of path in s, for a request on an open of the probe's own. */
static const char *keep_path(struct samples *s, const char *path)
{
    if (s->npaths >= (int)(sizeof s->paths / sizeof s->paths[0]))
        qtest_fatal("too many sampled paths");
    char *p = s->paths[s->npaths++];
    snprintf(p, sizeof s->paths[0], "%s", path);
    return p;
}

/* Append an F_GETLK(F_WRLCK) query on [start, start+len) through the
 * inherited fd, or (path not NULL) an O_RDWR open of path of the probe's
 * own, which must report {type, start, len, pid} (F_UNLCK: no lock). */
static void add_getlk(struct samples *s, int fd, const char *path,
                      off_t start, off_t len, short type, off_t lstart,
                      off_t llen, pid_t pid, const char *what)
{
    struct qtest_req q = {fd, path ? keep_path(s, path) : NULL, O_RDWR, 0,
                          F_GETLK, 0, F_WRLCK, start, len};
    if (s->n >= SMP_MAX)
        qtest_fatal("too many samples");
    s->q[s->n] = q;
    struct want *w = &s->w[s->n++];
    w->type = type;
    w->start = lstart;
    w->len = llen;
    w->pid = pid;
    w->res = 0;
    snprintf(w->what, sizeof w->what, "%s", what);
}

/* Append flock(LOCK_EX|LOCK_NB) on an open of path of the probe's own,
 * which must give res (0 or EWOULDBLOCK). */
static void add_flock(struct samples *s, const char *path, int res,
                      const char *what)
{
    if (s->n >= SMP_MAX)
        qtest_fatal("too many samples");
    struct qtest_req q = {-1, keep_path(s, path), O_RDWR, LOCK_EX | LOCK_NB,
                          0, 0, 0, 0, 0};
    s->q[s->n] = q;
    struct want *w = &s->w[s->n++];
    memset(w, 0, sizeof *w);
    w->res = res;
    snprintf(w->what, sizeof w->what, "%s", what);
}

/* ONE fresh process makes every request of s; CHECK each answer.  A
 * wrong one fails with its description and how many more were wrong. */
static void check_samples(const char *when, const struct samples *s)
{
    static struct flock ans[SMP_MAX];
    static int res[SMP_MAX];
    int done = qtest_probe_reqs(s->q, s->n, ans, res, PROBE_MS) == 0;
    CHECK(done, "%s: the probe of %d locks did not finish (crashed or took "
          "over %d s)", when, s->n, PROBE_MS / 1000);
    int bad = 0, first = -1;
    for (int i = 0; i < s->n; i++) {
        const struct want *w = &s->w[i];
        const struct qtest_req *q = &s->q[i];
        int ok = is_query(q) ? qtest_answer_ok(res[i], &ans[i], q->start,
                                               q->len, -7, w->type, w->start,
                                               w->len, w->pid)
                             : res[i] == w->res;
        if (!ok && bad++ == 0)
            first = i;
    }
    if (first < 0) {
        CHECK(1, "%s", when);
        return;
    }
    const struct qtest_req *q = &s->q[first];
    const struct want *w = &s->w[first];
    char who[256];
    snprintf(who, sizeof who, "%s: %d of %d sampled locks wrong; first: "
             "request %d, %s: other process%s", when, bad, s->n, first,
             w->what, q->path ? ", own open file:" : "");
    if (is_query(q))
        qtest_check_answer(who, res[first], &ans[first], q->start, q->len,
                           -7, w->type, w->start, w->len, w->pid, __FILE__,
                           __LINE__);
    else
        CHECK(0, "%s flock(%s): expected %s, got %s", who,
              qtest_flockname(q->op), qtest_probe_name(w->res),
              qtest_probe_name(res[first]));
}

/* ---- H, the holder whose locks must survive the growth ------------------ */

#define NHELD 4
static const struct {
    const char *name;
    int *fd;
    off_t start, len;
    off_t inside; /* a byte inside the lock */
} held[NHELD] = {
    {"A", &fd_a, 0, 10, 9},
    {"A", &fd_a, 100, 50, 120},
    {"B", &fd_b, 5, 1, 5},
    {"C", &fd_c, 0, 0, 1LL << 30},
};

static qtest_child holder;

/* This process's own F_GETLK on fd reports exactly {type, start, len,
 * pid} (F_UNLCK: no lock, nothing else changed). */
static void own_getlk(const char *when, const char *name, int fd, off_t start,
                      off_t len, short type, off_t lstart, off_t llen,
                      pid_t pid, int line)
{
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, start, len);
    fl.l_pid = -7;
    errno = 0;
    int r = fcntl(fd, F_GETLK, &fl) == 0 ? 0 : errno;
    char who[160];
    snprintf(who, sizeof who, "%s: this process's F_GETLK on %s", when, name);
    qtest_check_answer(who, r, &fl, start, len, -7, type, lstart, llen, pid,
                       __FILE__, line);
}

/* H's locks hold: this process's F_GETLK finds each (H's pid, exact
 * range), its F_SETLK of a write or read lock inside each fails with
 * EAGAIN or EACCES, and the gap A [10,100) is free. */
static void check_holder(const char *when)
{
    for (int i = 0; i < NHELD; i++) {
        int fd = *held[i].fd;
        own_getlk(when, held[i].name, fd, held[i].inside, 1, F_WRLCK,
                  held[i].start, held[i].len, holder.pid, __LINE__);
        static const short types[] = {F_WRLCK, F_RDLCK};
        for (int t = 0; t < 2; t++) {
            errno = 0;
            int r = setlk(fd, types[t], held[i].inside, 1);
            int e = errno;
            CHECK(r == -1 && (e == EAGAIN || e == EACCES),
                  "%s: this process's F_SETLK %s [%lld,+1) of %s, inside "
                  "H's [%lld,+%lld): expected -1 EAGAIN or EACCES, got %d %s",
                  when, qtest_typename(types[t]), (long long)held[i].inside,
                  held[i].name, (long long)held[i].start,
                  (long long)held[i].len, r, r ? qtest_errname(e) : "");
            if (r == 0)
                unlock(fd, held[i].inside, 1);
        }
    }
    own_getlk(when, "A (gap)", fd_a, 10, 90, F_UNLCK, 0, 0, 0, __LINE__);
}

/* ---- the segment's size -------------------------------------------------- */

/* The registry segment's size (st_size) into *size, or 0 after a SKIP
 * line (not private to the test, or not found). */
static int segment_size(const char *when, off_t *size)
{
    char buf[300];
    const char *why = NULL;
    const char *path = qtest_registry_path(buf, sizeof buf, &why);
    struct stat st;
    if (!path) {
        qtest_print("SKIP segment size %s: %s", when, why);
        return 0;
    }
    if (stat(path, &st) != 0) {
        qtest_print("SKIP segment size %s: stat %s: %s", when, path,
                    qtest_errname(errno));
        return 0;
    }
    qtest_print("scale: segment %s %s: %lld bytes (%lld KiB allocated)",
                when, path, (long long)st.st_size,
                (long long)st.st_blocks / 2);
    *size = st.st_size;
    return 1;
}

/* ---- the phases ---------------------------------------------------------- */

/* Lock results of a phase: how many, and the first failure. */
struct tally {
    int ok, enolck, other;
    int first;     /* index of the first failure, or -1 */
    int first_err; /* its errno */
};

static void tally_add(struct tally *t, int i, int r, int e)
{
    if (r == 0) {
        t->ok++;
        return;
    }
    if (e == ENOLCK)
        t->enolck++;
    else
        t->other++;
    if (t->first < 0) {
        t->first = i;
        t->first_err = e;
    }
}

#define CHECK_TALLY(t, n, what)                                               \
    CHECK((t).ok == (n), "%s: %d of %d locked; %d failed with ENOLCK, %d "   \
          "with another errno; lowest failing index %d: %s", (what),          \
          (t).ok, (n), (t).enolck, (t).other, (t).first,                      \
          qtest_errname((t).first_err))

/* The process owners: child i holds P [2i, 2i+1) until the release pipe
 * reaches EOF. */
struct owners {
    volatile int ready;
    int rc[NPROC], err[NPROC];
};

static struct owners *own;
static pid_t owner_pid[NPROC];
static int release_pipe[2];

static void owner_child(void *arg)
{
    int i = (int)(intptr_t)arg;
    close(release_pipe[1]);
    errno = 0;
    own->rc[i] = setlk(fd_p, F_WRLCK, 2 * i, 1);
    own->err[i] = errno;
    __atomic_add_fetch(&own->ready, 1, __ATOMIC_SEQ_CST);
    char b;
    while (read(release_pipe[0], &b, 1) < 0 && errno == EINTR)
        ;
}

static void start_owners(struct samples *s)
{
    own = qtest_shared(sizeof *own);
    if (pipe2(release_pipe, O_CLOEXEC) != 0)
        qtest_fatal("pipe");
    for (int i = 0; i < NPROC; i++)
        owner_pid[i] = qtest_fork_fn(owner_child, (void *)(intptr_t)i);
    close(release_pipe[0]);
    int all = qtest_wait_flag(&own->ready, NPROC, 30000);
    CHECK(all, "1,000 process owners: only %d of %d took their lock within "
          "30 s", own->ready, NPROC);
    struct tally t = {0, 0, 0, -1, 0};
    for (int i = 0; i < NPROC; i++)
        tally_add(&t, i, own->rc[i], own->err[i]);
    CHECK_TALLY(t, NPROC, "1,000 process owners, F_SETLK F_WRLCK [2i,+1) of P");
    for (int i = 0; i < NPROC; i++) {
        char what[64];
        snprintf(what, sizeof what, "owner %d (pid %d), P [%d,+1)", i,
                 (int)owner_pid[i], 2 * i);
        if (own->rc[i] == 0)
            add_getlk(s, fd_p, NULL, 2 * i, 1, F_WRLCK, 2 * i, 1,
                      owner_pid[i], what);
    }
    qtest_print("scale: %d process owners hold a lock each", t.ok);
}

static void stop_owners(void)
{
    close(release_pipe[1]);
    CHECK_ALL_EXIT0(owner_pid, NPROC, 10000, "process owners");
    munmap(own, sizeof *own);
}

/* 1 in about NSAMPLE of 0..n-1, and the last. */
static int sampled(int i, int n)
{
    int step = n / NSAMPLE > 0 ? n / NSAMPLE : 1;
    return i % step == 0 || i == n - 1;
}

static int ofd_fd[NOFD];
static void close_all(const int *fds, int n, const char *what);

/* The 100,000 files: this process locks files [0, nmine), each locker
 * child k files [lo[k], lo[k+1]), when RLIMIT_NOFILE keeps one process
 * from holding them all open (QNX releases a process's lock on a file at
 * its close, so each lock needs its descriptor). */
#define MAX_LOCKERS 64
struct files {
    unsigned char res[NFILES]; /* 0, the errno of the F_SETLK, 255 untried */
    int close_bad, close_first, close_err; /* a locker's closes */
};
static struct files *fl_sh; /* shared */
static int file_fd[NFILES];
static int nmine, nlockers;
static int lo[MAX_LOCKERS + 1];
static qtest_child lockers[MAX_LOCKERS];

/* Lock file i through a new open (kept in *fd); records the result. */
static int lock_file(int i, int *fd)
{
    char p[160];
    qtest_fileset_path(&fs, NOFD + i, p, sizeof p);
    *fd = open(p, O_RDWR | O_CLOEXEC);
    if (*fd < 0)
        qtest_fatal("open a file to lock");
    errno = 0;
    int r = setlk(*fd, F_WRLCK, 0, 1);
    int e = errno;
    fl_sh->res[i] = r == 0 ? 0 : (unsigned char)(e ? e : 253);
    errno = e;
    return r;
}

/* Locker child k: on 'G' lock its files and say 'L'; on 'C' close them
 * (its locks go) and say 'c'; then wait for 'Q'. */
static void locker(void *arg)
{
    int k = (int)(intptr_t)arg;
    if (!child_await('G', 50000))
        return;
    for (int i = lo[k]; i < lo[k + 1]; i++)
        lock_file(i, &file_fd[i]);
    child_say('L');
    if (!child_await('C', 50000))
        return;
    for (int i = lo[k]; i < lo[k + 1]; i++)
        if (close(file_fd[i]) != 0 && fl_sh->close_bad++ == 0) {
            fl_sh->close_first = i;
            fl_sh->close_err = errno;
        }
    child_say('c');
    child_await('Q', 50000);
}

/* Plan who locks which files for a descriptor limit of lim, and start the
 * lockers (before anything else opens many descriptors, so that they
 * inherit few). */
static void start_lockers(long lim)
{
    fl_sh = qtest_shared(sizeof *fl_sh);
    memset(fl_sh->res, 255, sizeof fl_sh->res);
    long room = lim - NOFD - 500; /* this process also holds the flocks */
    nmine = room >= NFILES ? NFILES : (int)room;
    long quota = lim - 500;
    nlockers = (int)((NFILES - nmine + quota - 1) / quota);
    if (nlockers > MAX_LOCKERS)
        qtest_fatal("RLIMIT_NOFILE too small for the lockers");
    lo[0] = nmine;
    for (int k = 1; k <= nlockers; k++)
        lo[k] = nmine + (int)((long)(NFILES - nmine) * k / nlockers);
    for (int k = 0; k < nlockers; k++)
        lockers[k] = qtest_child_start(locker, (void *)(intptr_t)k);
    if (nlockers)
        qtest_print("scale: RLIMIT_NOFILE is %ld: this process locks %d of "
                    "the %d files, %d locker processes the rest", lim, nmine,
                    NFILES, nlockers);
}

static void flock_files(struct samples *s)
{
    struct tally t = {0, 0, 0, -1, 0};
    char p[160], what[64];
    for (int j = 0; j < NOFD; j++) {
        qtest_fileset_path(&fs, j, p, sizeof p);
        ofd_fd[j] = open(p, O_RDWR | O_CLOEXEC);
        if (ofd_fd[j] < 0)
            qtest_fatal("open a flock file");
        errno = 0;
        int r = flock(ofd_fd[j], LOCK_EX | LOCK_NB);
        tally_add(&t, j, r, errno);
        if ((j + 1) % 2500 == 0) {
            snprintf(what, sizeof what, "after %d flocks", j + 1);
            check_holder(what);
        }
        if (r != 0 || !sampled(j, NOFD))
            continue;
        snprintf(what, sizeof what, "flock'd file %d", j);
        add_flock(s, p, EWOULDBLOCK, what);
        if (qtest_mode_shim())
            add_getlk(s, -1, p, 0, 1, F_WRLCK | F_FLOCK, 0, 0, getpid(),
                      what);
    }
    CHECK_TALLY(t, NOFD, "10,000 open-file owners, flock(LOCK_EX|LOCK_NB)");
    qtest_print("scale: %d open files hold a flock each", t.ok);
}

static void lock_files(struct samples *s)
{
    char what[64];
    for (int i = 0; i < nmine; i++) {
        lock_file(i, &file_fd[i]);
        if ((i + 1) % 5000 == 0) {
            snprintf(what, sizeof what, "after %d files", i + 1);
            check_holder(what);
        }
    }
    /* the lockers lock theirs at once; H's locks are checked meanwhile */
    for (int k = 0; k < nlockers; k++)
        qtest_say(&lockers[k], 'G');
    int heard[MAX_LOCKERS] = {0}, left = nlockers;
    double end = qtest_now_ms() + 50000;
    while (left > 0 && qtest_now_ms() < end) {
        for (int k = 0; k < nlockers; k++) {
            struct qtest_msg m = {0, 0, 0};
            int r = heard[k] ? 0 : qtest_get(lockers[k].from_child, 0, &m);
            if (r == 0)
                continue;
            heard[k] = 1;
            left--;
            CHECK(r == 1 && m.tag == 'L', "locker %d (pid %d), files [%d,%d):"
                  " %s instead of 'L' (locked)", k, (int)lockers[k].pid,
                  lo[k], lo[k + 1], r == 1 ? "another message" : "gone");
        }
        if (left == 0)
            break;
        int tried = NFILES - qtest_count_eq(fl_sh->res, NFILES, 255);
        snprintf(what, sizeof what, "while the lockers lock (%d files tried)",
                 tried);
        check_holder(what);
        qtest_msleep(100);
    }
    CHECK(left == 0, "%d of %d lockers did not lock their files within 50 s",
          left, nlockers);
    struct tally t = {0, 0, 0, -1, 0};
    for (int i = 0; i < NFILES; i++) {
        int r = fl_sh->res[i];
        tally_add(&t, i, r == 0 ? 0 : -1, r);
    }
    CHECK_TALLY(t, NFILES, "100,000 files, F_SETLK F_WRLCK [0,1)");
    qtest_print("scale: %d files locked", t.ok);
    for (int i = 0; i < NFILES; i++) {
        if (fl_sh->res[i] != 0 || !sampled(i, NFILES))
            continue;
        int k = 0;
        while (k < nlockers && i >= lo[k + 1])
            k++;
        snprintf(what, sizeof what, "file %d [0,1), held by %s", i,
                 i < nmine ? "this process" : "a locker");
        char p[160];
        qtest_fileset_path(&fs, NOFD + i, p, sizeof p);
        add_getlk(s, -1, p, 0, 1, F_WRLCK, 0, 1,
                  i < nmine ? getpid() : lockers[k].pid, what);
    }
}

/* Close the files: this process's, then each locker's. */
static void close_files(void)
{
    close_all(file_fd, nmine, "closing this process's files");
    for (int k = 0; k < nlockers; k++) {
        qtest_say(&lockers[k], 'C');
        CHECK_HEAR(&lockers[k], 'c', 50000, NULL);
    }
    CHECK(fl_sh->close_bad == 0, "lockers: %d closes failed; first: file %d:"
          " %s", fl_sh->close_bad, fl_sh->close_first,
          qtest_errname(fl_sh->close_err));
    for (int k = 0; k < nlockers; k++)
        CHECK_CHILD_FINISH(&lockers[k]);
}

/* Turn every expectation of s into "gone": queries F_UNLCK, flock 0. */
static void expect_gone(struct samples *s, int from, int to)
{
    for (int i = from; i < to; i++) {
        s->w[i].type = F_UNLCK;
        s->w[i].res = 0;
    }
}

static void close_all(const int *fds, int n, const char *what)
{
    int bad = 0, first = -1, first_err = 0;
    for (int i = 0; i < n; i++)
        if (close(fds[i]) != 0 && bad++ == 0) {
            first = i;
            first_err = errno;
        }
    CHECK(bad == 0, "%s: %d closes failed; first: index %d: %s", what, bad,
          first, qtest_errname(first_err));
}

static struct samples smp; /* every phase's samples, in order */

static void close_flocks(void)
{
    close_all(ofd_fd, NOFD, "closing the 10,000 flock'd files");
}

/* The phases of (2), grown in this order and released in the other. */
#define NPHASES 3
static const struct {
    const char *name;
    void (*grow)(struct samples *s);
    void (*release)(void);
} phases[NPHASES] = {
    {"1,000 process owners", start_owners, stop_owners},
    {"10,000 open-file owners", flock_files, close_flocks},
    {"100,000 files", lock_files, close_files},
};

/* H's locks hold (check_holder) and ONE fresh process finds every sample
 * as expected (check_samples). */
static void checkpoint(const char *when)
{
    check_holder(when);
    check_samples(when, &smp);
}

static void growth(long lim)
{
    struct qtest_actor acts[NHELD];
    for (int i = 0; i < NHELD; i++) {
        struct qtest_actor a = {
            qtest_call_fcntl(F_SETLK, F_WRLCK, held[i].start, held[i].len),
            *held[i].fd, NULL, -1};
        acts[i] = a;
    }
    holder = CHECK_START_HOLDERS(acts, NHELD);
    off_t size0 = 0, size1 = 0;
    int have_size = segment_size("after the first locks", &size0);
    if (have_size)
        CHECK(size0 <= SEG_START_MAX, "the registry segment is %lld bytes "
              "after the first locks; expected at most %d (256 KiB)",
              (long long)size0, SEG_START_MAX);
    check_holder("at the start");
    start_lockers(lim);

    /* grow, phase by phase: each time H's locks and every phase's samples
     * so far hold */
    int from[NPHASES], to[NPHASES];
    double t[NPHASES + 1];
    t[0] = qtest_now_ms();
    for (int i = 0; i < NPHASES; i++) {
        char when[96];
        from[i] = smp.n;
        phases[i].grow(&smp);
        to[i] = smp.n;
        snprintf(when, sizeof when, "after %s", phases[i].name);
        checkpoint(when);
        t[i + 1] = qtest_now_ms();
    }
    qtest_print("scale: grown in %.0f ms (owners %.0f, flocks %.0f, files "
                "%.0f); %d samples checked by one probe", t[3] - t[0],
                t[1] - t[0], t[2] - t[1], t[3] - t[2], smp.n);

    /* release, the last phase first: its locks go, the others' stay */
    for (int i = NPHASES - 1; i >= 0; i--) {
        char when[96];
        phases[i].release();
        expect_gone(&smp, from[i], to[i]);
        snprintf(when, sizeof when, "after releasing %s", phases[i].name);
        checkpoint(when);
    }

    CHECK_CHILD_FINISH(&holder);
    for (int i = 0; i < NHELD; i++) {
        own_getlk("after H exited", held[i].name, *held[i].fd,
                  held[i].inside, 1, F_UNLCK, 0, 0, 0, __LINE__);
        CHECK_GETLK_FREE(*held[i].fd, held[i].start, held[i].len);
    }
    qtest_print("scale: released in %.0f ms", qtest_now_ms() - t[3]);

    /* the segment grew */
    if (have_size && segment_size("after the big phases", &size1))
        CHECK(size1 > size0, "the registry segment did not grow: %lld bytes "
              "after the first locks, %lld after 100,000 files, 11,000 "
              "owners", (long long)size0, (long long)size1);
}

/* (3) alternating 1-byte write locks [2k, 2k+1) on one file */
static void records(void)
{
    int big = qtest_mode_shim() && !qtest_kernel_sees();
    long n = big ? NREC_BIG : NREC_SMALL;
    qtest_print("scale: %ld lock records on one file (%s)", n,
                big ? "the registry alone: the mirror is off"
                    : "not 1,000,000: the kernel sees this process's locks "
                      "and its lock list is linear");
    int fd = qtest_tmpfile(0, NULL);
    double t0 = qtest_now_ms();
    long got = 0;
    int err = 0;
    for (long k = 0; k < n; k++) {
        errno = 0;
        if (setlk(fd, F_WRLCK, 2 * k, 1) != 0) {
            err = errno;
            break;
        }
        got++;
    }
    CHECK(got == n, "%ld records: lock %ld (F_SETLK F_WRLCK [%ld,+1)) "
          "failed: %s", n, got, 2 * got, qtest_errname(err));
    qtest_print("scale: %ld records taken in %.0f ms", got,
                qtest_now_ms() - t0);

    struct samples *s = qtest_shared(sizeof *s);
    long step = got / NSAMPLE > 0 ? got / NSAMPLE : 1;
    pid_t me = getpid();
    for (long j = 0; j <= NSAMPLE; j++) {
        long k = j < NSAMPLE ? j * step : got - 1; /* and the last */
        if (k < 0 || k >= got || (j == NSAMPLE && k == (j - 1) * step))
            continue;
        char what[64];
        snprintf(what, sizeof what, "record %ld: byte %ld", k, 2 * k);
        add_getlk(s, fd, NULL, 2 * k, 1, F_WRLCK, 2 * k, 1, me, what);
        snprintf(what, sizeof what, "record %ld: byte %ld (a gap)", k,
                 2 * k + 1);
        add_getlk(s, fd, NULL, 2 * k + 1, 1, F_UNLCK, 0, 0, 0, what);
        if (k + 1 < got) {
            snprintf(what, sizeof what, "record %ld: [%ld,+2) finds %ld", k,
                     2 * k + 1, 2 * k + 2);
            add_getlk(s, fd, NULL, 2 * k + 1, 2, F_WRLCK, 2 * k + 2, 1, me, what);
        }
    }
    char when[96];
    snprintf(when, sizeof when, "%ld records held", got);
    check_samples(when, s);

    CHECK_OK(unlock(fd, 0, 0));
    expect_gone(s, 0, s->n);
    snprintf(when, sizeof when, "%ld records, after one unlock [0,EOF)", got);
    check_samples(when, s);
    CHECK_GETLK_FREE(fd, 0, 0);
    munmap(s, sizeof *s);
    close(fd);
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    /* all in this process if it may (as root, up to fs.nr_open), else the
     * files are shared with locker processes */
    if (!qtest_need_nofile(NOFD + NFILES + 1000, NOFD + 2000))
        return QTEST_DONE();
    long lim = qtest_raise_nofile(NOFD + NFILES + 1000);
    fd_a = qtest_tmpfile(200, NULL);
    fd_b = qtest_tmpfile(200, NULL);
    fd_c = qtest_tmpfile(200, NULL);
    fd_p = qtest_tmpfile(2 * NPROC, NULL);
    double t0 = qtest_now_ms();
    qtest_fileset_create(&fs, NOFD + NFILES, "scale");
    qtest_print("scale: %d files created in %.0f ms", fs.n,
                qtest_now_ms() - t0);
    growth(lim);
    records();
    qtest_fileset_remove(&fs);
    close(fd_a);
    close(fd_b);
    close(fd_c);
    close(fd_p);
    return QTEST_DONE();
}
