/*
 * t_full_shm.c - a full /dev/shm: lock calls fail with ENOLCK (lockf:
 * ENOMEM), never SIGBUS, never another errno.
 *
 * The registry is a file in /dev/shm, mapped.  A tmpfs page that cannot be
 * allocated when it is first touched kills the process with SIGBUS, so a
 * library that touches unallocated pages of its segment turns a full
 * /dev/shm into crashes.  POSIX fcntl: "[ENOLCK] ... the number of locked
 * regions would exceed a system-imposed limit"; the QNX lockf page has no
 * ENOLCK, ENOMEM instead; flock: ENOLCK.  The library says so on stderr.
 *
 * As root, a child enters a private mount namespace (unshare(CLONE_NEWNS),
 * mounts made private), mounts a small tmpfs on /dev/shm and execs a helper
 * mode of this program (under the shim: preloaded, with a fresh
 * QNXCOMPAT_REGISTRY name, which lives in that tmpfs):
 *   (1) size=4k: the registry cannot be created; the first F_SETLK gives
 *       -1 ENOLCK, lockf(F_TLOCK) -1 ENOMEM, flock(LOCK_EX|LOCK_NB) -1
 *       ENOLCK (each on a file of its own); exactly one stderr line
 *       mentions qnxcompat; exit 0.  The same with size=1M, except that
 *       there the registry may fit (then all three succeed);
 *   (2) the smallest of size=4M, 8M, 16M, 32M, 64M in which the first lock
 *       succeeds (the registry is created); then the rest of the tmpfs is
 *       filled with a dummy file (write until ENOSPC); then the helper locks
 *       up to 19,000 distinct files (RLIMIT_NOFILE permitting), then up to
 *       400,000 ranges of one file (5,000 natively: the kernel's list is
 *       linear), until calls fail: every failure must be -1
 *       ENOLCK (lockf: ENOMEM), no crash, at least one stderr line, and
 *       the process exits normally (its exit releases everything).
 * Natively (no library) every call succeeds.  SKIP (with a check) when not
 * root or when unshare/mount fails.
 *
 * Baseline bug: the registry file was sparse and its pages were touched
 * without being allocated: SIGBUS.
 */
#include "qtest.h"

#include <sched.h>
#include <sys/mount.h>

#define NFILES_MAX 19000
#define NRANGES_SHIM 400000
#define NRANGES_NATIVE 5000
#define MAXFAIL 200

static const char *mount_opts; /* for before() */
static int nfiles = NFILES_MAX; /* distinct files to lock (RLIMIT_NOFILE) */

/* ------------------------------------------------------------------------ */
/* Helper side (exec'd inside the namespace)                                 */
/* ------------------------------------------------------------------------ */

static void say_rc(const char *key, int r, int e)
{
    qtest_print("%s %d", key, r == 0 ? 0 : e ? e : -1);
}

/* --first DIR: F_SETLK, lockf(F_TLOCK), flock(LOCK_EX|LOCK_NB), each on a
 * file of its own in DIR; each result as "KEY errno|0". */
static int helper_first(const char *dir)
{
    static const char *keys[] = {"SETLK", "LOCKF", "FLOCK"};
    for (int i = 0; i < 3; i++) {
        char p[200];
        snprintf(p, sizeof p, "%s/first%d", dir, i);
        int fd = open(p, O_RDWR | O_CREAT, 0600);
        if (fd < 0)
            return 3;
        unlink(p);
        errno = 0;
        int r = i == 0   ? setlk(fd, F_WRLCK, 0, 10)
                : i == 1 ? lockf(fd, F_TLOCK, 0)
                         : flock(fd, LOCK_EX | LOCK_NB);
        say_rc(keys[i], r, errno);
    }
    qtest_print("DONE 0");
    return 0;
}

/* Write to path until ENOSPC; returns bytes written. */
static long long fill_shm(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    static char buf[65536];
    memset(buf, 0x5a, sizeof buf);
    long long total = 0;
    size_t chunk = sizeof buf;
    while (chunk >= 1) {
        ssize_t w = write(fd, buf, chunk);
        if (w > 0) {
            total += w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        chunk /= 2; /* ENOSPC (or short): try smaller pieces */
    }
    close(fd);
    return total;
}

/* How a run of F_SETLKs went: granted, failed, failed with an errno other
 * than ENOLCK (and the last such errno, -2 for an odd return). */
struct tally {
    int ok, fail, bad, baderr;
};

/* Count one F_SETLK that returned r with errno e; 1 if it was granted. */
static int tally_add(struct tally *t, int r, int e)
{
    if (r == 0) {
        t->ok++;
        return 1;
    }
    t->fail++;
    if (r != -1 || e != ENOLCK) {
        t->bad++;
        t->baderr = r == -1 ? e : -2;
    }
    return 0;
}

/* PREFIX_OK, _FAIL, _BAD and _BADERR lines for the parent. */
static void tally_say(const char *prefix, const struct tally *t)
{
    qtest_print("%s_OK %d", prefix, t->ok);
    qtest_print("%s_FAIL %d", prefix, t->fail);
    qtest_print("%s_BAD %d", prefix, t->bad);
    qtest_print("%s_BADERR %d", prefix, t->baderr);
}

/* --fill DIR ISSHIM: create, fill, then lock until failures. */
static int helper_fill(const char *dir, int shim)
{
    char p[200];
    snprintf(p, sizeof p, "%s/first", dir);
    int fd0 = open(p, O_RDWR | O_CREAT, 0600);
    if (fd0 < 0)
        return 3;
    errno = 0;
    int r = setlk(fd0, F_WRLCK, 0, 10);
    say_rc("CREATE", r, errno);
    if (r != 0)
        return 0;
    long long filled = fill_shm("/dev/shm/qtest-fill");
    qtest_print("FILLED %lld", filled);

    /* distinct files */
    struct tally files = {0, 0, 0, 0};
    for (int i = 0; i < nfiles && files.fail < MAXFAIL; i++) {
        snprintf(p, sizeof p, "%s/f%d", dir, i);
        int fd = open(p, O_RDWR | O_CREAT, 0600);
        if (fd < 0) {
            qtest_print("OPENFAIL %d", errno);
            break;
        }
        unlink(p); /* the lock is on the inode; nothing to clean up later */
        errno = 0;
        r = setlk(fd, F_WRLCK, 0, 1);
        if (!tally_add(&files, r, errno))
            close(fd);
    }
    tally_say("FILES", &files);

    /* ranges of one file: 1-byte write locks at stride 2 (never merge) */
    snprintf(p, sizeof p, "%s/ranges", dir);
    int fr = open(p, O_RDWR | O_CREAT, 0600);
    unlink(p);
    int nr = shim ? NRANGES_SHIM : NRANGES_NATIVE;
    struct tally ranges = {0, 0, 0, 0};
    for (int k = 0; k < nr && ranges.fail < MAXFAIL; k++) {
        errno = 0;
        r = setlk(fr, F_WRLCK, 2 * (off_t)k, 1);
        tally_add(&ranges, r, errno);
    }
    tally_say("RANGES", &ranges);

    /* lockf and flock on yet another file: 0, or ENOMEM / ENOLCK */
    snprintf(p, sizeof p, "%s/last", dir);
    int fl = open(p, O_RDWR | O_CREAT, 0600);
    unlink(p);
    errno = 0;
    r = lockf(fl, F_TLOCK, 0);
    say_rc("LOCKF", r, errno);
    int fl2 = open("/proc/self/fd/0", O_RDONLY); /* keep numbering stable */
    (void)fl2;
    snprintf(p, sizeof p, "%s/last2", dir);
    int ff = open(p, O_RDWR | O_CREAT, 0600);
    unlink(p);
    errno = 0;
    r = flock(ff, LOCK_EX | LOCK_NB);
    say_rc("FLOCK", r, errno);
    /* an unlock always works */
    errno = 0;
    r = unlock(fr, 0, 0);
    say_rc("UNLOCK", r, errno);
    unlink("/dev/shm/qtest-fill");
    qtest_print("DONE 0");
    return 0; /* exit: the destructor releases everything */
}

static int helper_main(int argc, char **argv)
{
    alarm(60);
    if (argc >= 3 && strcmp(argv[1], "--first") == 0)
        return helper_first(argv[2]);
    if (argc >= 5 && strcmp(argv[1], "--fill") == 0) {
        nfiles = atoi(argv[4]);
        return helper_fill(argv[2], atoi(argv[3]));
    }
    return 2;
}

/* ------------------------------------------------------------------------ */
/* Test side                                                                 */
/* ------------------------------------------------------------------------ */

/* before(): in the forked child, a private mount namespace with a small
 * tmpfs on /dev/shm.  Exit 80 (after a line) if that cannot be done. */
static void enter_namespace(void *arg)
{
    (void)arg;
    if (unshare(CLONE_NEWNS) != 0) {
        qtest_print("NS_FAILED unshare %d", errno);
        _exit(80);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        qtest_print("NS_FAILED private %d", errno);
        _exit(80);
    }
    if (mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
              mount_opts) != 0) {
        qtest_print("NS_FAILED mount %d", errno);
        _exit(80);
    }
}

struct run {
    int st;            /* wait status */
    int ns_failed;     /* the namespace could not be set up */
    char out[8192];
    char err[65536];
};

static void run_helper(struct run *rr, const char *opts, char **argv,
                       const char *tag)
{
    char reg[160], regenv[200];
    qtest_registry_name(reg, sizeof reg, tag);
    snprintf(regenv, sizeof regenv, "QNXCOMPAT_REGISTRY=%s", reg);
    char *env[] = {regenv, NULL};
    mount_opts = opts;
    qtest_helper h = qtest_spawn_after(NULL, argv, env, enter_namespace, NULL);
    rr->out[0] = rr->err[0] = 0;
    qtest_read_until(h.out, rr->out, sizeof rr->out, "DONE", 50000);
    rr->st = qtest_helper_finish(&h, 20000, rr->out, sizeof rr->out, rr->err,
                                 sizeof rr->err);
    rr->ns_failed = strstr(rr->out, "NS_FAILED") != NULL;
}

static const char *en(long long e)
{
    return e == 0 ? "0" : e < 0 ? "no answer" : qtest_errname((int)e);
}

static void check_status(const char *what, struct run *rr)
{
    char d[96], o1[900], e1[900];
    qtest_describe_status(rr->st, d, sizeof d);
    CHECK(qtest_exited0(rr->st),
          "%s: helper %s (a SIGBUS here is the bug); stdout \"%s\" stderr "
          "\"%.400s\"", what, d, qtest_oneline(rr->out, o1, sizeof o1),
          qtest_oneline(rr->err, e1, sizeof e1));
}

/* (1) a tiny /dev/shm.  `strict`: the registry cannot fit, the calls must
 * fail; else they may all succeed (the registry fit) or all fail. */
static int case_tiny(const char *dir, const char *size, int strict)
{
    static struct run rr;
    char *av[] = {"t_full_shm", "--first", (char *)dir, NULL};
    char opts[64], tag[32], what[64];
    snprintf(opts, sizeof opts, "size=%s,mode=1777", size);
    snprintf(tag, sizeof tag, "tiny%s", size);
    snprintf(what, sizeof what, "(1) %s /dev/shm", size);
    run_helper(&rr, opts, av, tag);
    if (rr.ns_failed)
        return -1;
    check_status(what, &rr);
    long long s = qtest_out_val(rr.out, "SETLK", -1);
    long long l = qtest_out_val(rr.out, "LOCKF", -1);
    long long f = qtest_out_val(rr.out, "FLOCK", -1);
    if (qtest_mode_shim() && !strict && s == 0) {
        CHECK(l == 0 && f == 0, "%s: the first F_SETLK succeeded (the "
              "registry fit) but lockf gave %s, flock %s", what, en(l),
              en(f));
        qtest_print("NOTE %s: the registry fit; the calls succeeded", what);
    } else if (qtest_mode_shim()) {
        CHECK(s == ENOLCK, "%s: first F_SETLK gave %s, expected -1 ENOLCK",
              what, en(s));
        CHECK(l == ENOMEM, "%s: lockf(F_TLOCK) gave %s, expected -1 ENOMEM",
              what, en(l));
        CHECK(f == ENOLCK, "%s: flock(LOCK_EX|LOCK_NB) gave %s, expected -1 "
              "ENOLCK", what, en(f));
        int n = qtest_count_lines(rr.err, "qnxcompat");
        char e1[900];
        CHECK(n == 1, "%s: %d stderr lines mention qnxcompat, expected 1: "
              "\"%.600s\"", what, n, qtest_oneline(rr.err, e1, sizeof e1));
    } else {
        CHECK(s == 0 && l == 0 && f == 0, "%s: natively F_SETLK %s, lockf "
              "%s, flock %s: expected all 0", what, en(s), en(l), en(f));
    }
    return 0;
}

/* (2) a tmpfs that holds the registry, then filled */
static void case_filled(const char *dir)
{
    static struct run rr;
    static const char *sizes[] = {"4M", "8M", "16M", "32M", "64M"};
    char shim_arg[4];
    snprintf(shim_arg, sizeof shim_arg, "%d", qtest_mode_shim());
    const char *used = NULL;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char opts[64], tag[32];
        snprintf(opts, sizeof opts, "size=%s,mode=1777", sizes[i]);
        snprintf(tag, sizeof tag, "full%s", sizes[i]);
        char nf[16];
        snprintf(nf, sizeof nf, "%d", nfiles);
        char *av[] = {"t_full_shm", "--fill", (char *)dir, shim_arg, nf, NULL};
        run_helper(&rr, opts, av, tag);
        if (rr.ns_failed)
            return;
        long long c = qtest_out_val(rr.out, "CREATE", -1);
        if (c == 0) {
            used = sizes[i];
            break;
        }
        char what[64];
        snprintf(what, sizeof what, "(2) %s /dev/shm, create", sizes[i]);
        check_status(what, &rr);
        if (qtest_mode_shim())
            CHECK(c == ENOLCK, "%s: first F_SETLK gave %s; expected 0 or -1 "
                  "ENOLCK", what, en(c));
        else
            CHECK(c == 0, "%s: natively first F_SETLK gave %s", what, en(c));
    }
    CHECK(used != NULL, "(2): no tmpfs size up to 64M let the registry be "
          "created");
    if (!used)
        return;
    char what[64];
    snprintf(what, sizeof what, "(2) %s /dev/shm, filled", used);
    check_status(what, &rr);
    long long filled = qtest_out_val(rr.out, "FILLED", -1);
    long long fok = qtest_out_val(rr.out, "FILES_OK", -1);
    long long ffail = qtest_out_val(rr.out, "FILES_FAIL", -1);
    long long fbad = qtest_out_val(rr.out, "FILES_BAD", -1);
    long long fbe = qtest_out_val(rr.out, "FILES_BADERR", 0);
    long long rok = qtest_out_val(rr.out, "RANGES_OK", -1);
    long long rfail = qtest_out_val(rr.out, "RANGES_FAIL", -1);
    long long rbad = qtest_out_val(rr.out, "RANGES_BAD", -1);
    long long rbe = qtest_out_val(rr.out, "RANGES_BADERR", 0);
    long long lf = qtest_out_val(rr.out, "LOCKF", -1);
    long long fl = qtest_out_val(rr.out, "FLOCK", -1);
    long long ul = qtest_out_val(rr.out, "UNLOCK", -1);
    qtest_print("INFO %s: filled %lld bytes; files %lld ok / %lld failed; "
                "ranges %lld ok / %lld failed; lockf %s, flock %s", what,
                filled, fok, ffail, rok, rfail, en(lf), en(fl));
    CHECK(filled >= 0, "%s: could not fill /dev/shm", what);
    CHECK(fok >= 0 && rok >= 0, "%s: the helper did not get through the "
          "lock loops (crashed?)", what);
    CHECK(strstr(rr.out, "DONE 0") != NULL, "%s: helper did not finish",
          what);
    if (qtest_mode_shim()) {
        CHECK(fbad == 0, "%s: %lld distinct-file F_SETLKs failed with an "
              "errno other than ENOLCK (%s)", what, fbad, en(fbe));
        CHECK(rbad == 0, "%s: %lld range F_SETLKs failed with an errno other "
              "than ENOLCK (%s)", what, rbad, en(rbe));
        CHECK(lf == 0 || lf == ENOMEM, "%s: lockf(F_TLOCK) gave %s, expected "
              "0 or -1 ENOMEM", what, en(lf));
        CHECK(fl == 0 || fl == ENOLCK, "%s: flock gave %s, expected 0 or -1 "
              "ENOLCK", what, en(fl));
        CHECK(ul == 0, "%s: an unlock gave %s", what, en(ul));
        if (ffail > 0 || rfail > 0 || lf != 0 || fl != 0) {
            int n = qtest_count_lines(rr.err, "qnxcompat");
            CHECK(n >= 1, "%s: calls failed but no stderr line mentions "
                  "qnxcompat", what);
        } else {
            qtest_print("NOTE %s: no call failed (the registry had all its "
                        "room reserved)", what);
        }
    } else {
        CHECK(fok == nfiles && ffail == 0, "%s: natively %lld files locked, "
              "%lld failed", what, fok, ffail);
        CHECK(rok == NRANGES_NATIVE && rfail == 0, "%s: natively %lld ranges "
              "locked, %lld failed", what, rok, rfail);
        CHECK(lf == 0 && fl == 0 && ul == 0, "%s: natively lockf %s flock %s "
              "unlock %s", what, en(lf), en(fl), en(ul));
    }
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strncmp(argv[1], "--", 2) == 0)
        return helper_main(argc, argv);
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    if (geteuid() != 0) {
        qtest_print("SKIP: not root (needs a private mount namespace)");
        CHECK(geteuid() != 0, "not root");
        return QTEST_DONE();
    }
    long lim = qtest_raise_nofile(NFILES_MAX + 500);
    nfiles = lim - 300 < NFILES_MAX ? (int)lim - 300 : NFILES_MAX;
    int fd = qtest_tmpfile(100, NULL);
    char dir[96];
    snprintf(dir, sizeof dir, "/tmp/qtest-%d-fullshm-XXXXXX", (int)getpid());
    if (!mkdtemp(dir))
        qtest_fatal("mkdtemp");
    if (case_tiny(dir, "4k", 1) < 0) {
        qtest_print("SKIP: unshare(CLONE_NEWNS)/mount tmpfs failed");
        CHECK(1, "skip");
        close(fd);
        rmdir(dir);
        return QTEST_DONE();
    }
    case_tiny(dir, "1M", 0);
    case_filled(dir);
    char p[200];
    snprintf(p, sizeof p, "%s/first", dir);
    unlink(p);
    rmdir(dir);
    /* the test's own registry (outside the namespace) is untouched */
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_OK(unlock(fd, 0, 10));
    close(fd);
    return QTEST_DONE();
}
