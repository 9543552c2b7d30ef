/*
 * t_oracle.c - many processes, random lock traffic, and an oracle that does
 * not trust the registry.
 *
 * N worker processes (16) each make M random operations (1,000; QTEST_LONG=1:
 * 10,000) on two 512-byte files: fcntl F_SETLK/F_SETLKW read, write and
 * unlock requests on random ranges in [0,256), lockf F_LOCK/F_TLOCK/F_ULOCK
 * (seek first: lockf is relative to the file offset), flock LOCK_SH/LOCK_EX/
 * LOCK_UN with and without LOCK_NB, and "release everything".  Each worker
 * uses its own open file description of each file, so its flock locks are
 * owned by that description and its fcntl/lockf locks by the process.
 *
 * The oracle:
 *   - the bytes themselves: under a write lock a worker writes its pattern
 *     (2*id for fcntl/lockf locks, 2*id+1 for flock locks) and under a read
 *     lock it remembers what it read; after every operation it re-reads both
 *     files and checks every byte it believes it holds.  A foreign byte under
 *     a write lock, or any change under a read lock, is a violation;
 *   - a MAP_SHARED table where each worker records what it believes it holds
 *     (per byte and owner: type and the sequence number of the grant).  A
 *     checker process scans it continuously for two owners holding
 *     conflicting locks at once (read twice, so that a release racing with
 *     the scan is not mistaken for a violation);
 *   - a log of every hold "episode" (owner, file, range, type, sequence
 *     numbers taken after the grant and before the release): at the end, any
 *     two conflicting episodes whose sequence intervals overlap were held at
 *     the same time.  Beliefs are kept as under-approximations (a release is
 *     recorded before the call, a grant after it), so neither check can
 *     report a false violation.
 *
 * Under the shim flock and fcntl locks are one list: a worker's flock lock
 * conflicts with its own fcntl locks (different owners), and a blocking
 * request that would wait for its own other-kind lock gets EDEADLK.  The
 * oracle treats flock and fcntl owners of one process as different owners and
 * also checks directly that neither is granted over the other.  Natively
 * they do not interact: flock then guards its own region [256,512) of the
 * files (fcntl ranges stay in [0,256)), is only used with LOCK_NB (Linux
 * does not detect deadlocks through flock waits), and the two kinds are
 * checked separately.
 *
 * EDEADLK is a valid outcome (the worker then releases everything).  Every
 * blocking request runs under a 5 s timer: a request still waiting then is
 * a failure (the shim detects every deadlock, and nothing holds a lock long).
 * Under the shim, qnxcompat_verify() must find the registry consistent at
 * the end and no lock record may remain.
 *
 * QTEST_SEED=<n> repeats the random choices (not the interleaving).
 * Diagnostics (not used by run.sh): QTEST_ORACLE_PROCS=<n>,
 * QTEST_ORACLE_OPS=<n>, and QTEST_ORACLE_NO_SELF_WAIT=1, which makes a
 * request non-blocking whenever the worker holds the other lock kind on the
 * file (so that a process never has to detect a deadlock with itself).
 */
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/time.h>

#include "qtest.h"

#define MAXP 32
#define NFILES 2
#define FSIZE 512
#define FC_REGION 256 /* fcntl/lockf ranges lie in [0,256) */
#define MAXLEN 48
#define OP_TIMEOUT_S 3
#define MAX_REPORTS 10 /* detailed failure lines per worker */

/* ------------------------------------------------------------------------ */
/* Shared state                                                              */
/* ------------------------------------------------------------------------ */

struct episode {
    uint64_t acq, rel;   /* sequence numbers: after the grant, before release */
    uint16_t start, end; /* [start, end) */
    uint8_t file, kind;  /* kind 0: fcntl/lockf (process), 1: flock (open file) */
    uint8_t type;        /* 1 read/shared, 2 write/exclusive */
    uint8_t proc;
};

struct pstat {
    long ops, granted, refused, edeadlk, timeouts, self_timeouts, unexpected;
    long bytes_verified, violations, episodes, dropped;
    long self_edeadlk; /* EDEADLK while holding only the other kind's locks */
};

struct shared {
    uint64_t seq;
    int stop;
    double deadline; /* CLOCK_MONOTONIC ms: workers stop starting operations */
    char doing[MAXP][112]; /* each worker's current call, for a hang report */
    long live_scans, live_pairs, live_violations;
    struct pstat st[MAXP];
    /* beliefs: (type << 56) | acquisition sequence number, 0 = none */
    uint64_t live_fc[MAXP][NFILES][FC_REGION];
    uint64_t live_fl[MAXP][NFILES];
};

static struct shared *sh;
static struct episode *elog; /* [MAXP][ecap] */
static long ecap;
static int nproc, nops, shim, long_mode;
static int no_self_wait; /* QTEST_ORACLE_NO_SELF_WAIT=1 (diagnostics) */
static const char *paths[NFILES];

static uint64_t seq_next(void)
{
    return __atomic_add_fetch(&sh->seq, 1, __ATOMIC_SEQ_CST);
}

static void live_store(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static uint64_t live_load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

#define LIVE(type, acq) (((uint64_t)(type) << 56) | (acq))
#define LTYPE(v) ((int)((v) >> 56))
#define LACQ(v) ((v) & ((1ULL << 56) - 1))

/* The flock region: the whole file under the shim (one list), natively a
 * region of its own. */
static int fl_lo(void) { return shim ? 0 : FC_REGION; }
static int fl_hi(void) { return FSIZE; }

/* ------------------------------------------------------------------------ */
/* A worker                                                                  */
/* ------------------------------------------------------------------------ */

static int me;                         /* worker index */
static int fds[NFILES];                /* own open file descriptions */
static uint8_t ptype[NFILES][FC_REGION]; /* process-owned: 0, 1 R, 2 W */
static uint64_t pacq[NFILES][FC_REGION];
static int ftype[NFILES];              /* flock: 0, 1 SH, 2 EX */
static uint64_t facq[NFILES];
static int expect[NFILES][FSIZE];      /* expected byte, -1 if not held */
static struct pstat *my;
static int reports;
static volatile sig_atomic_t timed_out;

static void on_timer(int sig)
{
    (void)sig;
    timed_out = 1;
}

static uint8_t pat_fc(void) { return (uint8_t)(2 * (me + 1)); }
static uint8_t pat_fl(void) { return (uint8_t)(2 * (me + 1) + 1); }

static const char *who(int byte)
{
    static char b[4][48];
    static int n;
    char *s = b[n++ & 3];
    if (byte == 0)
        snprintf(s, sizeof b[0], "nobody (0)");
    else if (byte < 2 || byte > 2 * nproc + 1)
        snprintf(s, sizeof b[0], "garbage (%d)", byte);
    else
        snprintf(s, sizeof b[0], "worker %d's %s pattern (%d)", byte / 2 - 1,
                 byte & 1 ? "flock" : "fcntl", byte);
    return s;
}

/* Count a violation or an unexpected result; the first MAX_REPORTS of a
 * worker fail a check with the message. */
#define REPORT(counter, ...)                                                  \
    do {                                                                      \
        my->counter++;                                                        \
        if (reports++ < MAX_REPORTS)                                          \
            CHECK(0, __VA_ARGS__);                                            \
    } while (0)
#define VIOLATION(...) REPORT(violations, __VA_ARGS__)
#define UNEXPECTED(...) REPORT(unexpected, __VA_ARGS__)

static void emit(int f, int kind, int type, int s, int e, uint64_t acq,
                 uint64_t rel)
{
    if (my->episodes >= ecap) {
        my->dropped++;
        return;
    }
    struct episode *ep = &elog[(long)me * ecap + my->episodes++];
    ep->acq = acq;
    ep->rel = rel;
    ep->start = (uint16_t)s;
    ep->end = (uint16_t)e;
    ep->file = (uint8_t)f;
    ep->kind = (uint8_t)kind;
    ep->type = (uint8_t)type;
    ep->proc = (uint8_t)me;
}

static int covered(int f, int b)
{
    return (b < FC_REGION && ptype[f][b]) ||
           (ftype[f] && b >= fl_lo() && b < fl_hi());
}

static void read_file(int f, uint8_t *buf)
{
    if (pread(fds[f], buf, FSIZE, 0) != FSIZE)
        qtest_fatal("pread");
}

static void write_range(int f, int s, int e, uint8_t pat)
{
    uint8_t buf[FSIZE];
    memset(buf, pat, sizeof buf);
    if (pwrite(fds[f], buf, (size_t)(e - s), s) != e - s)
        qtest_fatal("pwrite");
    for (int b = s; b < e; b++)
        expect[f][b] = pat;
}

/* Every byte we believe we hold must be as we left it. */
static void verify_bytes(const char *after)
{
    for (int f = 0; f < NFILES; f++) {
        uint8_t buf[FSIZE];
        read_file(f, buf);
        for (int b = 0; b < FSIZE; b++) {
            if (expect[f][b] < 0)
                continue;
            my->bytes_verified++;
            if (buf[b] != expect[f][b]) {
                int w = b < FC_REGION ? ptype[f][b] : 0;
                VIOLATION("worker %d, after %s: file %d byte %d held by us "
                          "(fcntl %s, flock %s) holds %s, expected %s", me,
                          after, f, b, w == 2 ? "write" : w == 1 ? "read" : "-",
                          ftype[f] == 2 ? "EX" : ftype[f] == 1 ? "SH" : "-",
                          who(buf[b]), who(expect[f][b]));
                expect[f][b] = buf[b]; /* report each corruption once */
            }
        }
    }
}

/* A blocking call runs under the per-operation timer. */
static void timer_arm(void)
{
    timed_out = 0;
    /* repeats, in case the first signal lands before the call sleeps */
    struct itimerval it = {{0, 250000}, {OP_TIMEOUT_S, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static void timer_disarm(void)
{
    struct itimerval it = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static const char *how_name(int how)
{
    static const char *n[] = {"F_SETLK", "F_SETLKW", "lockf F_TLOCK",
                              "lockf F_LOCK", "lockf F_ULOCK"};
    return n[how];
}

enum { H_SETLK, H_SETLKW, H_TLOCK, H_LOCK, H_ULOCK };

static void release_all(void);

/* Judge a failed lock request; 1 if it was a (valid) deadlock. */
/* What we believe we hold, for messages: "f0: W[0,10) R[20,25) EX; f1: -". */
static const char *holdings(void)
{
    static char buf[700];
    size_t n = 0;
    buf[0] = 0;
    for (int f = 0; f < NFILES && n + 40 < sizeof buf; f++) {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%sfile %d:", f ? "; " : "",
                              f);
        for (int b = 0; b < FC_REGION && n + 40 < sizeof buf;) {
            int t = ptype[f][b];
            int c = b;
            while (c < FC_REGION && ptype[f][c] == t)
                c++;
            if (t)
                n += (size_t)snprintf(buf + n, sizeof buf - n, " %c[%d,%d)",
                                      t == 2 ? 'W' : 'R', b, c);
            b = c;
        }
        if (ftype[f])
            n += (size_t)snprintf(buf + n, sizeof buf - n, " flock-%s",
                                  ftype[f] == 2 ? "EX" : "SH");
    }
    return buf;
}

/* Judge a failed lock request; 1 if it was a (valid) deadlock.  self: the
 * request conflicts with a lock of our own other-kind owner (shim), so it
 * can only wait for itself. */
static int judge_failure(int e, int blocking, int self, const char *what)
{
    if (blocking && e == EINTR && timed_out) {
        my->timeouts++;
        my->self_timeouts += self;
        if (reports++ < MAX_REPORTS)
            CHECK(0, "worker %d (pid %d): %s still waiting after %d s (%s); "
                  "it holds %s", me, (int)getpid(), what, OP_TIMEOUT_S,
                  self ? "it waits for its own other-kind lock: a deadlock "
                         "with itself, not detected"
                       : "undetected deadlock or starvation",
                  holdings());
        return 0;
    }
    if (e == EDEADLK && blocking) {
        my->edeadlk++;
        return 1;
    }
    if (!blocking && (e == EAGAIN || e == EACCES || e == EWOULDBLOCK)) {
        my->refused++;
        return 0;
    }
    UNEXPECTED("worker %d: %s failed with %s", me, what, qtest_errname(e));
    return 0;
}

/* A request failed with e: an unlock never may; a lock request is judged,
 * and after a deadlock the worker releases everything. */
static void request_failed(int e, int unlock, int blocking, int self,
                           const char *what)
{
    if (unlock) {
        UNEXPECTED("worker %d: %s failed with %s", me, what, qtest_errname(e));
        return;
    }
    if (e == EDEADLK && self)
        my->self_edeadlk++;
    if (judge_failure(e, blocking, self, what))
        release_all();
}

/* fcntl/lockf request on [s,e) of file f: type 0 unlock, 1 read, 2 write.
 * whole: unlock with l_len 0 (everything from s on). */
static void fc_apply(int f, int s, int e, int type, int how, int whole)
{
    char what[96];
    snprintf(what, sizeof what, "%s %s [%d,%d) file %d", how_name(how),
             type == 0 ? "unlock" : type == 1 ? "read" : "write", s,
             whole ? -1 : e, f);
    int ee = whole ? FC_REGION : e;
    snprintf(sh->doing[me], sizeof sh->doing[me], "%s", what);
    uint64_t saved[FC_REGION];
    uint64_t rel = seq_next();
    /* beliefs that end or weaken are withdrawn before the call */
    for (int b = s; b < ee; b++) {
        saved[b] = live_load(&sh->live_fc[me][f][b]);
        int cur = ptype[f][b];
        if ((type == 0 && cur) || (type == 1 && cur == 2))
            live_store(&sh->live_fc[me][f][b], 0);
    }
    int blocking = how == H_SETLKW || how == H_LOCK;
    int r;
    if (blocking)
        timer_arm();
    errno = 0;
    if (how == H_SETLK || how == H_SETLKW) {
        struct flock fl = qtest_fl(type == 0 ? F_UNLCK : type == 1 ? F_RDLCK
                                                                  : F_WRLCK,
                                   SEEK_SET, s, whole ? 0 : e - s);
        r = fcntl(fds[f], how == H_SETLK ? F_SETLK : F_SETLKW, &fl);
    } else {
        if (lseek(fds[f], s, SEEK_SET) != s)
            qtest_fatal("lseek");
        r = lockf(fds[f], how == H_TLOCK ? F_TLOCK : how == H_LOCK ? F_LOCK
                                                                    : F_ULOCK,
                  whole ? 0 : e - s);
    }
    int err = errno;
    if (blocking)
        timer_disarm();
    my->ops++;
    if (r != 0) {
        for (int b = s; b < ee; b++)
            live_store(&sh->live_fc[me][f][b], saved[b]);
        /* a request that conflicts with our own flock lock is a deadlock
         * with ourselves (shim) */
        int self = shim && type && ftype[f] && (type == 2 || ftype[f] == 2);
        request_failed(err, type == 0, blocking, self, what);
        return;
    }
    my->granted++;
    uint64_t acq = type ? seq_next() : 0;
    /* close the episodes that ended: unlocked or downgraded at `rel`,
     * upgraded (the read lock was held until the write lock came) at `acq` */
    for (int b = s; b < ee;) {
        int cur = ptype[f][b];
        int ends = (type == 0 && cur) || (type && cur && cur != type);
        if (!ends) {
            b++;
            continue;
        }
        int c = b;
        while (c < ee && ptype[f][c] == cur && pacq[f][c] == pacq[f][b])
            c++;
        emit(f, 0, cur, b, c, pacq[f][b], type == 2 ? acq : rel);
        b = c;
    }
    if (type && shim && ftype[f] && (type == 2 || ftype[f] == 2))
        VIOLATION("worker %d: %s granted while our own flock %s lock on the "
                  "file is held (one lock list under the shim)", me, what,
                  ftype[f] == 2 ? "LOCK_EX" : "LOCK_SH");
    uint8_t buf[FSIZE];
    if (type == 1)
        read_file(f, buf);
    for (int b = s; b < ee; b++) {
        int cur = ptype[f][b];
        if (type == 0) {
            ptype[f][b] = 0;
            if (!covered(f, b))
                expect[f][b] = -1;
        } else if (cur != type) {
            if (type == 1 && !covered(f, b))
                expect[f][b] = buf[b];
            ptype[f][b] = (uint8_t)type;
            pacq[f][b] = acq;
            live_store(&sh->live_fc[me][f][b], LIVE(type, acq));
        }
    }
    if (type == 2)
        write_range(f, s, e, pat_fc());
}

/* flock(op) on file f; op 0 LOCK_UN, 1 LOCK_SH, 2 LOCK_EX. */
static void fl_apply(int f, int want, int nb)
{
    static const int ops[] = {LOCK_UN, LOCK_SH, LOCK_EX};
    char what[64];
    snprintf(what, sizeof what, "flock(%s%s) file %d",
             want == 0 ? "LOCK_UN" : want == 1 ? "LOCK_SH" : "LOCK_EX",
             nb ? "|LOCK_NB" : "", f);
    int cur = ftype[f];
    snprintf(sh->doing[me], sizeof sh->doing[me], "%s", what);
    uint64_t rel = seq_next();
    /* a conversion or unlock releases the old lock first, whatever the
     * outcome of the new request */
    live_store(&sh->live_fl[me][f], 0);
    int blocking = want && !nb;
    if (blocking)
        timer_arm();
    errno = 0;
    int r = flock(fds[f], ops[want] | (nb ? LOCK_NB : 0));
    int err = errno;
    if (blocking)
        timer_disarm();
    my->ops++;
    if (cur) {
        emit(f, 1, cur, fl_lo(), fl_hi(), facq[f], rel);
        ftype[f] = 0;
        for (int b = fl_lo(); b < fl_hi(); b++)
            if (!covered(f, b))
                expect[f][b] = -1;
    }
    if (r != 0) {
        int self = 0;
        for (int b = 0; b < FC_REGION && shim && !self; b++)
            self = want == 2 ? ptype[f][b] != 0 : ptype[f][b] == 2;
        request_failed(err, want == 0, blocking, self, what);
        return;
    }
    my->granted++;
    if (want == 0)
        return;
    uint64_t acq = seq_next();
    if (shim) {
        int clash = 0;
        for (int b = 0; b < FC_REGION && !clash; b++)
            clash = want == 2 ? ptype[f][b] != 0 : ptype[f][b] == 2;
        if (clash)
            VIOLATION("worker %d: %s granted while we hold a conflicting fcntl "
                      "lock on the file (one lock list under the shim)", me,
                      what);
    }
    uint8_t buf[FSIZE];
    if (want == 1)
        read_file(f, buf);
    for (int b = fl_lo(); b < fl_hi(); b++)
        if (want == 1 && !covered(f, b))
            expect[f][b] = buf[b];
    ftype[f] = want;
    facq[f] = acq;
    live_store(&sh->live_fl[me][f], LIVE(want, acq));
    if (want == 2)
        write_range(f, fl_lo(), fl_hi(), pat_fl());
}

static void release_all(void)
{
    for (int f = 0; f < NFILES; f++) {
        fc_apply(f, 0, FC_REGION, 0, H_SETLK, 1);
        if (ftype[f])
            fl_apply(f, 0, 1);
    }
}

static void worker(void *arg)
{
    me = (int)(intptr_t)arg;
    my = &sh->st[me];
    /* no SA_RESTART: a timed-out wait gets EINTR */
    qtest_on_signal(SIGALRM, on_timer, 0);
    alarm(0); /* the parent bounds our lifetime; the timer is per call */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int f = 0; f < NFILES; f++) {
        fds[f] = qtest_open(paths[f], O_RDWR);
        for (int b = 0; b < FSIZE; b++)
            expect[f][b] = -1;
    }
    char after[128];
    for (int i = 0; i < nops; i++) {
        if (qtest_now_ms() > sh->deadline)
            break; /* main reports the shortfall */
        int f = qtest_rnd_below(NFILES);
        int x = qtest_rnd_below(100);
        int s = qtest_rnd_below(FC_REGION);
        int len = 1 + qtest_rnd_below(FC_REGION - s < MAXLEN ? FC_REGION - s : MAXLEN);
        if (x < 45) { /* fcntl */
            int y = qtest_rnd_below(100);
            int type = y < 35 ? 1 : y < 80 ? 2 : 0;
            int how = qtest_rnd_below(2) ? H_SETLKW : H_SETLK;
            if (no_self_wait && ftype[f])
                how = H_SETLK;
            fc_apply(f, s, s + len, type, how, 0);
            snprintf(after, sizeof after, "fcntl %d [%d,%d)", type, s, s + len);
        } else if (x < 65) { /* lockf */
            int y = qtest_rnd_below(100);
            int how = y < 40 ? H_LOCK : y < 80 ? H_TLOCK : H_ULOCK;
            if (no_self_wait && ftype[f] && how == H_LOCK)
                how = H_TLOCK;
            fc_apply(f, s, s + len, how == H_ULOCK ? 0 : 2, how, 0);
            snprintf(after, sizeof after, "%s [%d,%d)", how_name(how), s,
                     s + len);
        } else if (x < 80) { /* flock */
            int want;
            do
                want = qtest_rnd_below(3);
            while (want == ftype[f]);
            int nb = shim ? qtest_rnd_below(2) : 1;
            for (int b = 0; b < FC_REGION && no_self_wait && !nb; b++)
                nb = ptype[f][b] != 0;
            fl_apply(f, want, nb);
            snprintf(after, sizeof after, "flock %d", want);
        } else if (x < 88) {
            release_all();
            snprintf(after, sizeof after, "release all");
        } else {
            snprintf(after, sizeof after, "nothing");
        }
        verify_bytes(after);
    }
    release_all();
    verify_bytes("the final release");
    for (int f = 0; f < NFILES; f++)
        close(fds[f]);
}

/* ------------------------------------------------------------------------ */
/* The live checker                                                          */
/* ------------------------------------------------------------------------ */

struct seen {
    const uint64_t *at;
    uint64_t v;
    int owner; /* 2 * worker + kind */
};

static int conflicting(const struct seen *a, const struct seen *b)
{
    return a->owner != b->owner && (LTYPE(a->v) == 2 || LTYPE(b->v) == 2);
}

static long live_reports;

static void live_pair(const struct seen *a, const struct seen *b, int f,
                      int byte)
{
    sh->live_pairs++;
    /* a was read before b: if a is still the same belief now, both were
     * held at the moment b was read */
    if (live_load(a->at) != a->v)
        return;
    sh->live_violations++;
    if (live_reports++ < MAX_REPORTS)
        CHECK(0, "live checker: file %d byte %d held at once by worker %d "
              "(%s, %s, grant #%llu) and worker %d (%s, %s, grant #%llu)", f,
              byte, a->owner / 2, a->owner & 1 ? "flock" : "fcntl",
              LTYPE(a->v) == 2 ? "write" : "read",
              (unsigned long long)LACQ(a->v), b->owner / 2,
              b->owner & 1 ? "flock" : "fcntl",
              LTYPE(b->v) == 2 ? "write" : "read",
              (unsigned long long)LACQ(b->v));
}

static void checker(void *arg)
{
    (void)arg;
    alarm(0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct seen fl[MAXP], fc[MAXP];
    while (!__atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST)) {
        for (int f = 0; f < NFILES; f++) {
            int nfl = 0;
            for (int i = 0; i < nproc; i++) {
                const uint64_t *at = &sh->live_fl[i][f];
                uint64_t v = live_load(at);
                if (v)
                    fl[nfl++] = (struct seen){at, v, 2 * i + 1};
            }
            for (int a = 0; a < nfl; a++)
                for (int b = a + 1; b < nfl; b++)
                    if (conflicting(&fl[a], &fl[b]))
                        live_pair(&fl[a], &fl[b], f, fl_lo());
            for (int byte = 0; byte < FC_REGION; byte++) {
                int nfc = 0;
                for (int i = 0; i < nproc; i++) {
                    const uint64_t *at = &sh->live_fc[i][f][byte];
                    uint64_t v = live_load(at);
                    if (v)
                        fc[nfc++] = (struct seen){at, v, 2 * i};
                }
                for (int a = 0; a < nfc; a++) {
                    for (int b = a + 1; b < nfc; b++)
                        if (conflicting(&fc[a], &fc[b]))
                            live_pair(&fc[a], &fc[b], f, byte);
                    if (shim) /* flock covers every byte */
                        for (int b = 0; b < nfl; b++)
                            if (conflicting(&fl[b], &fc[a]))
                                live_pair(&fl[b], &fc[a], f, byte);
                }
            }
        }
        sh->live_scans++;
        qtest_msleep(1);
    }
}

/* ------------------------------------------------------------------------ */
/* The episode log                                                           */
/* ------------------------------------------------------------------------ */

static int by_acq(const void *a, const void *b)
{
    const struct episode *x = *(struct episode *const *)a;
    const struct episode *y = *(struct episode *const *)b;
    return x->acq < y->acq ? -1 : x->acq > y->acq;
}

/* Returns the number of conflicting episode pairs that overlap in time. */
static long check_episodes(long *n_out)
{
    long n = 0;
    for (int p = 0; p < nproc; p++)
        n += sh->st[p].episodes;
    struct episode **v = malloc(sizeof *v * (size_t)(n ? n : 1));
    struct episode **act = malloc(sizeof *act * (size_t)(n ? n : 1));
    if (!v || !act)
        qtest_fatal("malloc");
    long k = 0;
    for (int p = 0; p < nproc; p++)
        for (long i = 0; i < sh->st[p].episodes; i++)
            v[k++] = &elog[(long)p * ecap + i];
    qsort(v, (size_t)n, sizeof *v, by_acq);
    long nact = 0, bad = 0;
    for (long i = 0; i < n; i++) {
        struct episode *e = v[i];
        long w = 0;
        for (long j = 0; j < nact; j++) /* drop the finished ones */
            if (act[j]->rel > e->acq)
                act[w++] = act[j];
        nact = w;
        for (long j = 0; j < nact; j++) {
            struct episode *a = act[j];
            if (a->file != e->file || a->end <= e->start || e->end <= a->start)
                continue;
            if (a->proc == e->proc && a->kind == e->kind)
                continue;
            if (a->type != 2 && e->type != 2)
                continue;
            if (!shim && a->kind != e->kind)
                continue; /* natively independent */
            if (bad++ < MAX_REPORTS)
                CHECK(0, "episodes overlap: worker %d %s %s [%d,%d) of file %d "
                      "held from #%llu to #%llu, worker %d %s %s [%d,%d) from "
                      "#%llu to #%llu", a->proc, a->kind ? "flock" : "fcntl",
                      a->type == 2 ? "write" : "read", a->start, a->end,
                      a->file, (unsigned long long)a->acq,
                      (unsigned long long)a->rel, e->proc,
                      e->kind ? "flock" : "fcntl",
                      e->type == 2 ? "write" : "read", e->start, e->end,
                      (unsigned long long)e->acq, (unsigned long long)e->rel);
        }
        act[nact++] = e;
    }
    free(v);
    free(act);
    *n_out = n;
    return bad;
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    qtest_init();
    shim = qtest_mode_shim();
    long_mode = qtest_long_mode();
    nproc = 16;
    nops = long_mode ? 10000 : 1000;
    const char *e = getenv("QTEST_ORACLE_PROCS");
    if (e && atoi(e) > 0 && atoi(e) <= MAXP)
        nproc = atoi(e);
    e = getenv("QTEST_ORACLE_NO_SELF_WAIT");
    no_self_wait = e && atoi(e) > 0;
    e = getenv("QTEST_ORACLE_OPS");
    if (e && atoi(e) > 0)
        nops = atoi(e);
    /* operations start until `run_ms`; the workers get `wait_ms` in all */
    int run_ms = long_mode ? 600000 : 40000;
    int wait_ms = run_ms + 15000;
    alarm(long_mode ? 1800 : 110);
    unsigned long long seed = qtest_seed();
    qtest_print("oracle: %s mode, %d workers x %d operations, seed %llu%s%s",
                shim ? "shim" : "native", nproc, nops, seed,
                shim ? "" : " (flock: LOCK_NB only, in its own region)",
                no_self_wait ? " (diagnostic: no blocking request while the "
                               "other lock kind is held on the file)" : "");

    void *m = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        qtest_fatal("mmap");
    sh = m;
    ecap = (long)nops * 6 + 64;
    m = mmap(NULL, sizeof *elog * (size_t)(ecap * nproc),
             PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        qtest_fatal("mmap");
    elog = m;

    int mfd[NFILES];
    for (int f = 0; f < NFILES; f++)
        mfd[f] = qtest_tmpfile(FSIZE, &paths[f]);

    double t0 = qtest_now_ms();
    sh->deadline = t0 + run_ms;
    qtest_child chk = qtest_child_start(checker, NULL);
    qtest_child w[MAXP];
    for (int i = 0; i < nproc; i++) {
        qtest_rng = seed + 0x9E3779B97F4A7C15ULL * (unsigned long long)(i + 1);
        w[i] = qtest_child_start(worker, (void *)(intptr_t)i);
    }
    /* wait for the workers; stop the checker before killing any (a killed
     * worker's beliefs would outlive its locks) */
    int status[MAXP], left = nproc;
    for (int i = 0; i < nproc; i++)
        status[i] = -1;
    while (left > 0 && qtest_now_ms() - t0 < wait_ms) {
        for (int i = 0; i < nproc; i++) {
            if (status[i] != -1)
                continue;
            int st;
            if (waitpid(w[i].pid, &st, WNOHANG) == w[i].pid) {
                status[i] = st;
                left--;
            }
        }
        qtest_msleep(5);
    }
    double secs = (qtest_now_ms() - t0) / 1e3;
    __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
    CHECK_EXIT0(chk.pid);
    close(chk.from_child);
    close(chk.to_child);
    for (int i = 0; i < nproc; i++) {
        int st = status[i];
        if (st == -1) {
            char wchan[64] = "?", path[64];
            snprintf(path, sizeof path, "/proc/%d/wchan", (int)w[i].pid);
            char *t = qtest_slurp(path);
            snprintf(wchan, sizeof wchan, "%s", t);
            free(t);
            CHECK(0, "worker %d (pid %d) still running %.0f s after the last "
                  "operation could start; it is in: %s (state %c, wchan %s)",
                  i, (int)w[i].pid, (wait_ms - run_ms) / 1e3, sh->doing[i],
                  qtest_proc_state(w[i].pid), wchan);
            st = qtest_wait(w[i].pid, 0); /* kills it */
        }
        char d[96];
        qtest_describe_status(st, d, sizeof d);
        CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "worker %d: %s", i, d);
        close(w[i].from_child);
        close(w[i].to_child);
    }

    struct pstat tot;
    memset(&tot, 0, sizeof tot);
    for (int i = 0; i < nproc; i++) {
        struct pstat *p = &sh->st[i];
        tot.ops += p->ops;
        tot.granted += p->granted;
        tot.refused += p->refused;
        tot.edeadlk += p->edeadlk;
        tot.self_edeadlk += p->self_edeadlk;
        tot.timeouts += p->timeouts;
        tot.self_timeouts += p->self_timeouts;
        tot.unexpected += p->unexpected;
        tot.bytes_verified += p->bytes_verified;
        tot.violations += p->violations;
        tot.dropped += p->dropped;
    }
    long nep = 0;
    long ep_bad = check_episodes(&nep);

    CHECK(tot.violations == 0, "%ld mutual-exclusion violations seen by the "
          "workers (bytes and own-kind checks)", tot.violations);
    CHECK(sh->live_violations == 0, "%ld violations seen by the live checker",
          sh->live_violations);
    CHECK(ep_bad == 0, "%ld overlapping episode pairs", ep_bad);
    CHECK(tot.timeouts == 0, "%ld blocking requests timed out after %d s, %ld "
          "of them waiting for the process's own other-kind lock (a deadlock "
          "with itself that should give EDEADLK)", tot.timeouts, OP_TIMEOUT_S,
          tot.self_timeouts);
    CHECK(tot.unexpected == 0, "%ld calls failed with an unexpected errno",
          tot.unexpected);
    CHECK(tot.ops >= (long)nproc * nops, "only %ld of %ld operations made "
          "in %.0f s", tot.ops, (long)nproc * nops, run_ms / 1e3);
    CHECK(sh->live_scans > 0, "the live checker never completed a scan");

    /* nothing is left */
    for (int f = 0; f < NFILES; f++) {
        struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 0);
        CHECK_OK(fcntl(mfd[f], F_GETLK, &fl));
        CHECK(fl.l_type == F_UNLCK, "file %d still locked at the end: {%s, "
              "start=%lld, len=%lld, pid=%d}", f, qtest_typename(fl.l_type),
              (long long)fl.l_start, (long long)fl.l_len, (int)fl.l_pid);
        CHECK_OK(flock(mfd[f], LOCK_EX | LOCK_NB));
        CHECK_OK(flock(mfd[f], LOCK_UN));
    }
    if (shim) {
        qtest_verify_fn vf = qtest_get_verify();
        char msg[256] = "";
        int vr = vf ? vf(NULL, msg, sizeof msg) : -1;
        CHECK(vr == 0, "qnxcompat_verify = %d: %s", vr,
              vf ? msg : "qnxcompat_verify not found");
        long nrec = -1;
        if (vr == 0 && sscanf(msg, "consistent: %ld lock records", &nrec) == 1)
            CHECK(nrec == 0, "%ld lock records remain in the registry: %s",
                  nrec, msg);
        else
            CHECK(0, "cannot read the lock record count from \"%s\"", msg);
        qtest_print("oracle: registry at the end: %s", msg);
    }
    for (int f = 0; f < NFILES; f++)
        close(mfd[f]);

    qtest_print("oracle: %ld operations checked in %.1f s (%ld granted, %ld "
                "refused, %ld EDEADLK of which %ld with the process's own "
                "other-kind lock, %ld timeouts of which %ld with it, %ld "
                "unexpected errors)",
                tot.ops, secs, tot.granted, tot.refused, tot.edeadlk,
                tot.self_edeadlk, tot.timeouts, tot.self_timeouts,
                tot.unexpected);
    qtest_print("oracle: %ld byte checks, %ld hold episodes cross-checked%s, "
                "%ld live scans (%ld conflicting pairs re-read); violations: "
                "%ld bytes/own-kind, %ld live, %ld episodes",
                tot.bytes_verified, nep,
                tot.dropped ? " (some dropped: log full)" : "", sh->live_scans,
                sh->live_pairs, tot.violations, sh->live_violations, ep_bad);
    return QTEST_DONE();
}
