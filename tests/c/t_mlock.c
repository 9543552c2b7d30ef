/*
 * t_mlock.c - mlock(), munlock(), mlockall(), munlockall() under QNX's rules.
 *
 * QNX docs checked: lib_ref m/mlock.html, m/mlockall.html, m/munlock.html,
 * m/munlockall.html (7.x: locking needs PROCMGR_AID_MEM_LOCK, by default only
 * root; "The addr must be a multiple of PAGESIZE"; 8.0: "all memory is
 * locked for the entire duration of the process").  The rules the shim
 * implements (docs/semantics.md, "Memory locking"):
 *
 *  QNX 7.x (default)
 *   - mlock: addr not page aligned -> EINVAL (Linux rounds it down); range
 *     not wholly mapped -> ENOMEM; no privilege -> EPERM even where Linux's
 *     RLIMIT_MEMLOCK allows the call.  In that order.  Privileged = euid 0,
 *     or QNXCOMPAT_ABILITIES=mem_lock.  An admitted call runs the real
 *     mlock: memory really is locked and resident, its errors pass through.
 *   - mlockall: flags 0 or a bit outside MCL_CURRENT|MCL_FUTURE (MCL_ONFAULT
 *     included) -> EINVAL before privilege is checked; then EPERM without
 *     privilege; else the real call.
 *   - munlock, munlockall: no privilege needed (the real call).
 *  QNX 8.0 (QNXCOMPAT_QNX_VERSION=8)
 *   - mlock: only "is the range mapped" (ENOMEM); anything else -> 0, for
 *     anyone; mlockall (any flags), munlock, munlockall -> 0.
 *  QNXCOMPAT=off: Linux behaviour.
 *
 * Natively every case is checked against Linux's rules (mm/mlock.c:
 * RLIMIT_MEMLOCK 0 without CAP_IPC_LOCK -> EPERM first, then the limit ->
 * ENOMEM, then the mapping -> ENOMEM), so each QNX-only expectation is seen
 * to differ.  The expected result of every call is computed from the rule
 * set in force and the caller (euid, CAP_IPC_LOCK, RLIMIT_MEMLOCK, what is
 * already locked), see want_mlock() and want_mlockall().
 *
 * Every rule set is tried by four callers, each a forked child: root, and
 * nobody (setgroups/setgid/setuid 65534) with the default RLIMIT_MEMLOCK,
 * with RLIMIT_MEMLOCK 0 and with RLIMIT_MEMLOCK one page.  The library reads
 * its environment once, at load, so the other rule sets run in this binary
 * re-executed as
 *     t_mlock --rules TOKEN LABEL REPORTFD
 * with the variable under test in its environment; TOKEN (linux, v7,
 * v7+mem_lock, v8) is the rule set the parent expects it to get, and the
 * helper writes its pass/fail counts to REPORTFD.  One helper also runs with
 * QNXCOMPAT_TRACE=1 and a trace file, which is checked for the mlock and
 * mlockall lines.
 */
#include <grp.h>
#include <sys/resource.h>

#include "qtest.h"

#define NOBODY_UID 65534
#define CAP_IPC_LOCK_BIT 14
/* a flag bit that no Linux or QNX MCL_* constant uses on this machine */
#define MCL_UNKNOWN 0x8
_Static_assert((MCL_UNKNOWN & (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)) == 0,
               "MCL_UNKNOWN must be an unused bit");

extern char **environ;

static size_t pg;

/* ------------------------------------------------------------------------ */
/* What the process sees                                                     */
/* ------------------------------------------------------------------------ */

/* A "Name:   N kB" (or hex for Cap*) field of /proc/self/status; -1 if absent. */
static long long status_field(const char *name, int hex)
{
    char *text = qtest_slurp("/proc/self/status");
    long long v = -1;
    size_t n = strlen(name);
    for (char *line = text; line && *line;) {
        if (strncmp(line, name, n) == 0) {
            v = strtoll(line + n, NULL, hex ? 16 : 10);
            break;
        }
        char *eol = strchr(line, '\n');
        line = eol ? eol + 1 : NULL;
    }
    free(text);
    return v;
}

static long vmlck_kb(void) { return (long)status_field("VmLck:", 0); }
static long vmsize_kb(void) { return (long)status_field("VmSize:", 0); }

/* count of resident pages in [p, p + npages*pg) (p page aligned), by mincore */
static long resident_pages(const char *p, size_t npages)
{
    unsigned char vec[64];
    if (npages > sizeof vec || mincore((void *)p, npages * pg, vec) != 0)
        return -1;
    long n = 0;
    for (size_t i = 0; i < npages; i++)
        n += vec[i] & 1;
    return n;
}

/* npages fresh, never touched, anonymous private pages */
static char *fresh(size_t npages)
{
    void *p = mmap(NULL, npages * pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        qtest_fatal("mmap anonymous");
    return p;
}

/* ------------------------------------------------------------------------ */
/* Rule sets, callers and the expected results                               */
/* ------------------------------------------------------------------------ */

struct rules {
    char name[160]; /* for messages */
    int qnx;        /* QNX rules apply (under the shim, not QNXCOMPAT=off) */
    int v8;         /* QNX 8.0 rules */
    int ability;    /* PROCMGR_AID_MEM_LOCK granted by QNXCOMPAT_ABILITIES */
};

static int parse_rules(const char *token, const char *label, struct rules *r)
{
    memset(r, 0, sizeof *r);
    if (strcmp(token, "linux") == 0) {
    } else if (strcmp(token, "v7") == 0) {
        r->qnx = 1;
    } else if (strcmp(token, "v7+mem_lock") == 0) {
        r->qnx = r->ability = 1;
    } else if (strcmp(token, "v8") == 0) {
        r->qnx = r->v8 = 1;
    } else {
        return -1;
    }
    snprintf(r->name, sizeof r->name, "%s rules (%s)",
             !r->qnx ? "Linux" : r->v8 ? "QNX 8.0" :
             r->ability ? "QNX 7, mem_lock ability" : "QNX 7", label);
    return 0;
}

/* A caller: who runs the calls (set up in a forked child). */
struct who {
    const char *name;
    int nobody;
    long limit_pages; /* RLIMIT_MEMLOCK in pages; -1: leave it as it is */
};

static const struct who whos[] = {
    {"root", 0, -1},
    {"nobody (default RLIMIT_MEMLOCK)", 1, -1},
    {"nobody, RLIMIT_MEMLOCK 0", 1, 0},
    {"nobody, RLIMIT_MEMLOCK 1 page", 1, 1},
};

/* The caller's state once set up. */
struct self {
    const struct rules *r;
    const char *who;
    int euid0;
    int cap_ipc_lock;
    rlim_t memlock; /* soft RLIMIT_MEMLOCK */
};

/* Linux mlock(): EPERM if RLIMIT_MEMLOCK is 0 and no CAP_IPC_LOCK; ENOMEM if
 * the limit would be passed; ENOMEM if the range is not wholly mapped. */
static int linux_mlock(const struct self *s, int mapped, size_t npages)
{
    if (s->memlock == 0 && !s->cap_ipc_lock)
        return EPERM;
    if (!s->cap_ipc_lock && s->memlock != RLIM_INFINITY &&
        (unsigned long)vmlck_kb() * 1024 / pg + npages > s->memlock / pg)
        return ENOMEM;
    return mapped ? 0 : ENOMEM;
}

static int want_mlock(const struct self *s, int aligned, int mapped,
                      size_t npages)
{
    const struct rules *r = s->r;
    if (!r->qnx)
        return linux_mlock(s, mapped, npages);
    if (r->v8)
        return mapped ? 0 : ENOMEM;
    if (!aligned)
        return EINVAL;
    if (!mapped)
        return ENOMEM;
    if (!s->euid0 && !r->ability)
        return EPERM;
    return linux_mlock(s, mapped, npages); /* the real call runs */
}

/* Linux mlockall(): EINVAL for flags 0, unknown bits or MCL_ONFAULT alone;
 * EPERM if RLIMIT_MEMLOCK is 0 and no CAP_IPC_LOCK; with MCL_CURRENT, ENOMEM
 * if the whole address space is over the limit. */
static int linux_mlockall(const struct self *s, int flags)
{
    int known = MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT;
    if (flags == 0 || (flags & ~known) || flags == MCL_ONFAULT)
        return EINVAL;
    if (s->memlock == 0 && !s->cap_ipc_lock)
        return EPERM;
    if ((flags & MCL_CURRENT) && !s->cap_ipc_lock &&
        s->memlock != RLIM_INFINITY &&
        (unsigned long)vmsize_kb() * 1024 / pg > s->memlock / pg)
        return ENOMEM;
    return 0;
}

static int want_mlockall(const struct self *s, int flags)
{
    const struct rules *r = s->r;
    if (!r->qnx)
        return linux_mlockall(s, flags);
    if (r->v8)
        return 0;
    if (flags == 0 || (flags & ~(MCL_CURRENT | MCL_FUTURE)))
        return EINVAL;
    if (!s->euid0 && !r->ability)
        return EPERM;
    return linux_mlockall(s, flags);
}

/* munlock: no privilege anywhere; Linux (and QNX 7's real call) ENOMEM on an
 * unmapped range; QNX 8.0 always 0. */
static int want_munlock(const struct self *s, int mapped)
{
    if (s->r->qnx && s->r->v8)
        return 0;
    return mapped ? 0 : ENOMEM;
}

/* whether a successful call reached the kernel (QNX 8.0 only pretends) */
static int real_call(const struct self *s) { return !s->r->qnx || !s->r->v8; }

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */
/* ------------------------------------------------------------------------ */

static int result_of(int rc, int e) { return rc == 0 ? 0 : rc == -1 ? e : -1; }

#define CHECK_RESULT(s, got, want, ...)                                       \
    do {                                                                      \
        char qt_m_[300];                                                      \
        snprintf(qt_m_, sizeof qt_m_, __VA_ARGS__);                           \
        CHECK((got) == (want), "%s, %s: %s: expected %s%s, got %s%s",         \
              (s)->r->name, (s)->who, qt_m_, (want) ? "-1 " : "",             \
              qtest_errname(want), (got) > 0 ? "-1 " : "",                            \
              (got) < 0 ? "a bad return value" : qtest_errname(got));                 \
    } while (0)

/* mlock(addr, len) where [addr, addr+len) covers npages pages starting at
 * the page `base`; `aligned`/`mapped` describe the range.  After a success
 * that reached the kernel, VmLck has grown by exactly those pages and they
 * are resident; munlock undoes it.  A refusal (EPERM/EINVAL) leaves nothing
 * locked and, for a mapped range of untouched pages, nothing resident. */
static void try_mlock(const struct self *s, const char *what, char *base,
                      char *addr, size_t len, int aligned, int mapped,
                      size_t npages)
{
    long before = vmlck_kb();
    int want = want_mlock(s, aligned, mapped, npages);
    errno = 0;
    int rc = mlock(addr, len);
    int got = result_of(rc, errno);
    CHECK_RESULT(s, got, want, "mlock(%s)", what);
    long after = vmlck_kb();
    if (rc == 0 && real_call(s)) {
        CHECK(after - before == (long)(npages * pg / 1024),
              "%s, %s: mlock(%s) succeeded but VmLck grew by %ld kB, expected "
              "%zu kB", s->r->name, s->who, what, after - before,
              npages * pg / 1024);
        long res = resident_pages(base, npages);
        CHECK(res == (long)npages,
              "%s, %s: mlock(%s) succeeded but %ld of %zu pages are resident",
              s->r->name, s->who, what, res, npages);
    }
    if (rc == 0) {
        errno = 0;
        int u = munlock(addr, len);
        CHECK_RESULT(s, result_of(u, errno), want_munlock(s, 1),
                     "munlock(%s) after mlock", what);
        CHECK(vmlck_kb() == before, "%s, %s: VmLck %ld kB after munlock(%s), "
              "%ld kB before mlock", s->r->name, s->who, vmlck_kb(), what,
              before);
    } else if (want == EPERM || want == EINVAL) {
        CHECK(after == before, "%s, %s: refused mlock(%s) changed VmLck from "
              "%ld to %ld kB", s->r->name, s->who, what, before, after);
        if (mapped) {
            long res = resident_pages(base, npages);
            CHECK(res == 0, "%s, %s: refused mlock(%s) made %ld of %zu pages "
                  "resident", s->r->name, s->who, what, res, npages);
        }
    }
}

static void mlock_cases(const struct self *s)
{
    /* munlock and munlockall need no privilege */
    char *m = fresh(1);
    errno = 0;
    int rc = munlock(m, pg);
    CHECK_RESULT(s, result_of(rc, errno), want_munlock(s, 1),
                 "munlock of a mapped page that was never locked");
    errno = 0;
    rc = munlockall();
    CHECK_RESULT(s, result_of(rc, errno), 0, "munlockall()");
    munmap(m, pg);

    char *a = fresh(1);
    try_mlock(s, "one page", a, a, pg, 1, 1, 1);
    munmap(a, pg);

    char *b = fresh(2);
    try_mlock(s, "page address + 100, len 100", b, b + 100, 100, 0, 1, 1);
    munmap(b, 2 * pg);

    /* three mappings in a row (different protections): wholly mapped */
    char *d = fresh(3);
    if (mprotect(d + pg, pg, PROT_READ) != 0)
        qtest_fatal("mprotect");
    try_mlock(s, "3 pages over 3 mappings with different protections", d, d,
              3 * pg, 1, 1, 3);
    munmap(d, 3 * pg);

    /* a hole in the range */
    char *c = fresh(3);
    if (munmap(c + pg, pg) != 0)
        qtest_fatal("munmap");
    try_mlock(s, "3 pages, the middle one unmapped", c, c, 3 * pg, 1, 0, 3);
    try_mlock(s, "unmapped page address + 100, len 100", c + pg, c + pg + 100,
              100, 0, 0, 1);
    try_mlock(s, "unmapped page", c + pg, c + pg, pg, 1, 0, 1);
    errno = 0;
    rc = munlock(c, 3 * pg);
    CHECK_RESULT(s, result_of(rc, errno), want_munlock(s, 0),
                 "munlock of 3 pages, the middle one unmapped");
    munmap(c, 3 * pg);
}

static const char *mcl_name(int flags, char *buf, size_t n)
{
    buf[0] = 0;
    if (flags == 0)
        snprintf(buf, n, "0");
    if (flags & MCL_CURRENT)
        snprintf(buf + strlen(buf), n - strlen(buf), "MCL_CURRENT|");
    if (flags & MCL_FUTURE)
        snprintf(buf + strlen(buf), n - strlen(buf), "MCL_FUTURE|");
    if (flags & MCL_ONFAULT)
        snprintf(buf + strlen(buf), n - strlen(buf), "MCL_ONFAULT|");
    if (flags & MCL_UNKNOWN)
        snprintf(buf + strlen(buf), n - strlen(buf), "0x%x|", MCL_UNKNOWN);
    size_t l = strlen(buf);
    if (l && buf[l - 1] == '|')
        buf[l - 1] = 0;
    return buf;
}

/* mlockall(flags), then munlockall.  A success that reached the kernel
 * locked memory (MCL_CURRENT) and locks a new mapping (MCL_FUTURE); a
 * refusal locks neither. */
static void try_mlockall(const struct self *s, int flags)
{
    char fl[64];
    mcl_name(flags, fl, sizeof fl);
    long before = vmlck_kb();
    CHECK(before == 0, "%s, %s: VmLck is %ld kB before mlockall(%s)",
          s->r->name, s->who, before, fl);
    int want = want_mlockall(s, flags);
    errno = 0;
    int rc = mlockall(flags);
    int got = result_of(rc, errno);
    CHECK_RESULT(s, got, want, "mlockall(%s)", fl);
    long now = vmlck_kb();
    if (rc == 0 && real_call(s) && (flags & MCL_CURRENT))
        CHECK(now > 0, "%s, %s: mlockall(%s) succeeded but VmLck is %ld kB",
              s->r->name, s->who, fl, now);
    if (rc != 0)
        CHECK(now == before, "%s, %s: refused mlockall(%s) changed VmLck from "
              "%ld to %ld kB", s->r->name, s->who, fl, before, now);
    if ((rc == 0 && real_call(s)) || rc != 0) {
        /* a new 2-page mapping: locked at once if MCL_FUTURE is in force,
         * and then refused with EAGAIN if that passes RLIMIT_MEMLOCK */
        int future = rc == 0 && (flags & MCL_FUTURE);
        int over = future && !s->cap_ipc_lock && s->memlock != RLIM_INFINITY &&
                   (unsigned long)now * 1024 / pg + 2 > s->memlock / pg;
        errno = 0;
        void *n = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        int merr = n == MAP_FAILED ? errno : 0;
        long grew = vmlck_kb() - now;
        long should = future && !over ? (long)(2 * pg / 1024) : 0;
        CHECK(merr == (over ? EAGAIN : 0) && grew == should,
              "%s, %s: after mlockall(%s) = %d a new 2-page mapping: mmap "
              "%s, VmLck grew by %ld kB; expected mmap %s, %ld kB",
              s->r->name, s->who, fl, rc, merr ? qtest_errname(merr) : "ok",
              grew, over ? "EAGAIN" : "ok", should);
        if (n != MAP_FAILED)
            munmap(n, 2 * pg);
    }
    errno = 0;
    rc = munlockall();
    CHECK_RESULT(s, result_of(rc, errno), 0, "munlockall() after mlockall(%s)",
                 fl);
    CHECK(vmlck_kb() == 0, "%s, %s: VmLck %ld kB after munlockall()",
          s->r->name, s->who, vmlck_kb());
}

static void mlockall_cases(const struct self *s)
{
    static const int sets[] = {
        0,
        MCL_ONFAULT,
        MCL_UNKNOWN,
        MCL_CURRENT | MCL_UNKNOWN,
        MCL_CURRENT | MCL_ONFAULT,
        MCL_FUTURE | MCL_ONFAULT,
        MCL_FUTURE,
        MCL_CURRENT,
        MCL_CURRENT | MCL_FUTURE,
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        try_mlockall(s, sets[i]);
}

/* ------------------------------------------------------------------------ */
/* Running the cases as each caller                                          */
/* ------------------------------------------------------------------------ */

struct job {
    const struct rules *r;
    const struct who *w;
};

static void become(const struct who *w)
{
    if (w->limit_pages >= 0) {
        struct rlimit rl = {(rlim_t)w->limit_pages * pg,
                            (rlim_t)w->limit_pages * pg};
        if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
            qtest_fatal("setrlimit RLIMIT_MEMLOCK");
    }
    if (w->nobody) {
        if (setgroups(0, NULL) != 0 || setgid(NOBODY_UID) != 0 ||
            setuid(NOBODY_UID) != 0)
            qtest_fatal("dropping to nobody");
    }
}

static void as_caller(void *arg)
{
    const struct job *j = arg;
    become(j->w);
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        qtest_fatal("getrlimit");
    long long cap = status_field("CapEff:", 1);
    struct self s = {
        .r = j->r,
        .who = j->w->name,
        .euid0 = geteuid() == 0,
        .cap_ipc_lock = cap >= 0 && (cap >> CAP_IPC_LOCK_BIT) & 1,
        .memlock = rl.rlim_cur,
    };
    CHECK(geteuid() == (j->w->nobody ? NOBODY_UID : 0),
          "%s: euid is %d", j->w->name, (int)geteuid());
    mlock_cases(&s);
    mlockall_cases(&s);
}

static void all_callers(const struct rules *r)
{
    for (size_t i = 0; i < sizeof whos / sizeof whos[0]; i++) {
        struct job j = {r, &whos[i]};
        RUN_IN_CHILD(as_caller, &j);
    }
}

/* ------------------------------------------------------------------------ */
/* Re-executed helpers: one rule set chosen by the environment               */
/* ------------------------------------------------------------------------ */

/* In the helper: run every caller under the rule set, report the counts. */
static int helper_main(const char *token, const char *label, int report)
{
    qtest_init();
    struct rules r;
    if (parse_rules(token, label, &r) != 0)
        return 97;
    all_callers(&r);
    long counts[2] = {__atomic_load_n(&qtest_st->passed, __ATOMIC_SEQ_CST),
                      __atomic_load_n(&qtest_st->failed, __ATOMIC_SEQ_CST)};
    ssize_t w = write(report, counts, sizeof counts);
    return w == (ssize_t)sizeof counts ? 0 : 96;
}

/* Runs this binary with `vars` added to the environment (the mlock-related
 * QNXCOMPAT variables of ours removed) under rule set `token`; adds the
 * helper's counts to ours and CHECKs that it ran to the end.  Returns the
 * helper's pid. */
static pid_t run_helper(const char *const *vars, const char *token)
{
    char label[200] = "";
    for (int i = 0; vars[i]; i++)
        snprintf(label + strlen(label), sizeof label - strlen(label), "%s%s",
                 i ? " " : "", vars[i]);
    char *envp[600];
    int n = 0;
    for (char **e = environ; *e && n < 580; e++)
        if (strncmp(*e, "QNXCOMPAT=", 10) != 0 &&
            strncmp(*e, "QNXCOMPAT_TRACE", 15) != 0 &&
            strncmp(*e, "QNXCOMPAT_QNX_VERSION=", 22) != 0 &&
            strncmp(*e, "QNXCOMPAT_ABILITIES=", 20) != 0)
            envp[n++] = *e;
    for (int i = 0; vars[i] && n < 598; i++)
        envp[n++] = (char *)vars[i];
    envp[n] = NULL;

    int p[2];
    if (pipe(p) != 0)
        qtest_fatal("pipe");
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", p[1]);
    pid_t pid = fork();
    if (pid < 0)
        qtest_fatal("fork");
    if (pid == 0) {
        close(p[0]);
        char *argv[] = {"t_mlock", "--rules", (char *)token, label, fdarg, NULL};
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    close(p[1]);
    long counts[2] = {0, 0};
    ssize_t got = 0;
    struct pollfd pf = {p[0], POLLIN, 0};
    if (poll(&pf, 1, 60000) == 1)
        got = read(p[0], counts, sizeof counts);
    close(p[0]);
    int st = qtest_wait(pid, 10000);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
              got == (ssize_t)sizeof counts,
          "helper with %s (%s rules): %s, %s", label, token, d,
          got == (ssize_t)sizeof counts ? "reported its counts"
                                        : "reported no counts");
    if (got == (ssize_t)sizeof counts) {
        __atomic_add_fetch(&qtest_st->passed, counts[0], __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&qtest_st->failed, counts[1], __ATOMIC_SEQ_CST);
    }
    return pid;
}

struct env_case {
    const char *vars[3];
    const char *rules; /* the rule set under the shim */
};

static const struct env_case env_cases[] = {
    {{"QNXCOMPAT_QNX_VERSION=8", NULL}, "v8"},
    {{"QNXCOMPAT_QNX_VERSION=7", NULL}, "v7"},
    {{"QNXCOMPAT_ABILITIES=mem_lock", NULL}, "v7+mem_lock"},
    {{"QNXCOMPAT_ABILITIES=spawn,mem_lock", NULL}, "v7+mem_lock"},
    {{"QNXCOMPAT_ABILITIES=spawn", NULL}, "v7"},
    {{"QNXCOMPAT_QNX_VERSION=8", "QNXCOMPAT_ABILITIES=mem_lock", NULL}, "v8"},
    {{"QNXCOMPAT=off", NULL}, "linux"},
    {{"QNXCOMPAT=off", "QNXCOMPAT_QNX_VERSION=8", NULL}, "linux"},
};

static void environment_cases(void)
{
    int shim = qtest_mode_shim();
    for (size_t i = 0; i < sizeof env_cases / sizeof env_cases[0]; i++)
        run_helper(env_cases[i].vars, shim ? env_cases[i].rules : "linux");
}

/* QNXCOMPAT_TRACE=1 with a trace file: the default rules, and lines for
 * root's mlockall(MCL_CURRENT|MCL_FUTURE) and nobody's refused mlock. */
static void trace(void)
{
    const char *tpath;
    int tfd = qtest_tmpfile(0, &tpath);
    if (fchmod(tfd, 0666) != 0) /* nobody's calls are traced too */
        qtest_fatal("fchmod");
    close(tfd);
    char tfile[128];
    snprintf(tfile, sizeof tfile, "QNXCOMPAT_TRACE_FILE=%s", tpath);
    const char *vars[] = {"QNXCOMPAT_TRACE=1", tfile, NULL};
    int shim = qtest_mode_shim();
    run_helper(vars, shim ? "v7" : "linux");

    char *t = qtest_slurp(tpath);
    char len[64];
    snprintf(len, sizeof len, ", len=%zu) = -1 EPERM (", pg);
    if (shim) {
        CHECK(qtest_has_line(t, "] mlockall(MCL_CURRENT|MCL_FUTURE) = 0 (",
                             NULL),
              "trace lacks root's \"mlockall(MCL_CURRENT|MCL_FUTURE) = 0\"");
        CHECK(qtest_has_line(t, "] mlock(addr=0x", len),
              "trace lacks nobody's \"mlock(addr=0x...%s\"", len);
        CHECK(qtest_has_line(t, "] munlockall() = 0 (", NULL),
              "trace lacks \"munlockall() = 0\"");
    } else {
        CHECK(t[0] == 0, "native run wrote a trace: %.200s", t);
    }
    free(t);
}

int main(int argc, char **argv)
{
    pg = (size_t)sysconf(_SC_PAGESIZE);
    if (argc == 5 && strcmp(argv[1], "--rules") == 0)
        return helper_main(argv[2], argv[3], atoi(argv[4]));

    qtest_init();
    struct rules def;
    parse_rules(qtest_mode_shim() ? "v7" : "linux", "default environment",
                &def);
    all_callers(&def);
    environment_cases();
    trace();
    return QTEST_DONE();
}
