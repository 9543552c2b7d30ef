/*
 * t_mlockall_limit.c - mlockall() by an unprivileged process under the
 * default memory-lock limit, with the registry attached and growing.
 *
 * A real-time program (QNX's usual caller) locks all its memory at start:
 * mlockall(MCL_CURRENT|MCL_FUTURE).  On Linux an unprivileged process may
 * do so within RLIMIT_MEMLOCK, whose default is 8 MiB.  For MCL_CURRENT the
 * kernel compares the process's whole mapped size, not just the pages it
 * would lock, with the limit (mm/mlock.c, mlockall(): total_vm, every
 * mapping including PROT_NONE reservations and shared mappings, against
 * RLIMIT_MEMLOCK in pages; else ENOMEM); with MCL_FUTURE in force every
 * later mapping must fit what is then locked under the limit (mmap, brk,
 * mremap: EAGAIN / ENOMEM).  So everything the library maps - its own
 * image and the registry segment - counts, and a segment of tens of MiB
 * makes mlockall fail for every such program; so does a registry that
 * grows by mapping large chunks while memory is locked.
 *
 * The helper is this binary re-executed (qtest_spawn_after) as
 *     t_mlockall_limit --nobody DIR N
 * after its before() step set RLIMIT_MEMLOCK soft and hard to 8 MiB and
 * dropped to nobody (qtest_become_nobody), with QNXCOMPAT_ABILITIES=mem_lock
 * (QNX 7: mlockall needs PROCMGR_AID_MEM_LOCK; the library reads its
 * environment when it loads, hence the exec) and a registry of its own
 * (QNXCOMPAT_REGISTRY, derived from the test's: one of root's is refused to
 * nobody).  It uses no threads (a thread's malloc arena reserves 64 MiB of
 * address space, which would count against the limit too).  It
 *   1. write-locks byte 0 of file 0 of DIR (so the library has attached its
 *      registry segment),
 *   2. mlockall(MCL_CURRENT|MCL_FUTURE): must be 0, and lock memory (VmLck),
 *   3. write-locks byte 0 of files 1..N (N = 200; the registry may grow
 *      while memory is locked): each must be 0,
 *   4. forks a probe (as nobody, on the same registry): its F_GETLK on the
 *      last file must report the helper's lock,
 *   5. munlockall(): must be 0, VmLck 0 after it,
 * printing "KEY value" lines that this process checks.  Natively the same
 * holds (a small process fits 8 MiB), so both modes expect success.
 */
#include "qtest.h"

#define NFILES 200               /* locked after mlockall */
#define MEMLOCK (8L * 1024 * 1024) /* Linux's default RLIMIT_MEMLOCK */

/* ---- the helper (nobody) ------------------------------------------------ */

static void say(const char *key, long v) { qtest_print("%s %ld", key, v); }

/* 0, or the errno of a -1 return */
static long res(int r, int e) { return r == 0 ? 0 : r == -1 ? e : -1; }

static int lock_file(const struct qtest_fileset *fs, int i)
{
    char p[160];
    qtest_fileset_path(fs, i, p, sizeof p);
    int fd = open(p, O_RDWR);
    if (fd < 0)
        return -errno;
    errno = 0;
    int r = setlk(fd, F_WRLCK, 0, 1);
    return r == 0 ? fd : -(errno ? errno : 255);
}

static int nobody_main(const char *dir, int n)
{
    struct qtest_fileset fs;
    snprintf(fs.dir, sizeof fs.dir, "%s", dir);
    fs.n = n + 1;
    struct rlimit rl;
    getrlimit(RLIMIT_MEMLOCK, &rl);
    say("UID", (long)geteuid());
    say("MEMLOCK_SOFT", qtest_rlim_long(rl.rlim_cur));
    say("MEMLOCK_HARD", qtest_rlim_long(rl.rlim_max));
    say("SHIM", qtest_get_verify() != NULL);

    int fd0 = lock_file(&fs, 0);
    say("FIRST", fd0 >= 0 ? 0 : -fd0);
    say("VMSIZE_KB", (long)qtest_status_field(0, "VmSize:"));

    errno = 0;
    int r = mlockall(MCL_CURRENT | MCL_FUTURE);
    say("MLOCKALL", res(r, errno));
    say("VMLCK_KB", (long)qtest_status_field(0, "VmLck:"));

    int ok = 0, first_bad = -1, first_err = 0, last_fd = -1;
    for (int i = 1; i <= n; i++) {
        int fd = lock_file(&fs, i);
        if (fd >= 0) {
            ok++;
            last_fd = fd;
        } else if (first_bad < 0) {
            first_bad = i;
            first_err = -fd;
        }
    }
    say("LOCKED", ok);
    say("FIRST_BAD", first_bad);
    say("FIRST_BAD_ERR", first_err);
    say("VMSIZE_AFTER_KB", (long)qtest_status_field(0, "VmSize:"));
    say("VMLCK_AFTER_KB", (long)qtest_status_field(0, "VmLck:"));

    /* another process (a fork: nobody, the same registry) sees the last */
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    int g = last_fd >= 0 ? qtest_probe_getlk(last_fd, F_WRLCK, 0, 1, &fl) : -1;
    say("GETLK", g);
    say("GETLK_TYPE", fl.l_type);
    say("GETLK_START", (long)fl.l_start);
    say("GETLK_LEN", (long)fl.l_len);
    say("GETLK_PID", (long)fl.l_pid);
    say("PID", (long)getpid());

    errno = 0;
    r = munlockall();
    say("MUNLOCKALL", res(r, errno));
    say("VMLCK_END_KB", (long)qtest_status_field(0, "VmLck:"));
    say("DONE", 1);
    return 0;
}

/* ---- the test ----------------------------------------------------------- */

/* Before the exec, as root: the limit (lowering the hard one too, so that
 * nobody cannot raise it), then nobody. */
static void limit_and_drop(void *arg)
{
    (void)arg;
    struct rlimit rl = {(rlim_t)MEMLOCK, (rlim_t)MEMLOCK};
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        _exit(95);
    if (qtest_become_nobody() != 0)
        _exit(96);
}

#define CHECK_SAID(out, key, want, what)                                      \
    do {                                                                      \
        long long qt_v_ = qtest_out_val((out), (key), LLONG_MIN);             \
        CHECK(qt_v_ == (long long)(want), "%s: %s is %lld, expected %lld",    \
              (what), (key), qt_v_, (long long)(want));                       \
    } while (0)

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--nobody") == 0)
        return nobody_main(argv[2], atoi(argv[3]));
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);

    /* files 0..NFILES, owned by nobody */
    struct qtest_fileset fs;
    qtest_fileset_create(&fs, NFILES + 1, "mlockall");
    char p[160];
    if (chown(fs.dir, QTEST_NOBODY, QTEST_NOBODY) != 0)
        qtest_fatal("chown dir");
    for (int i = 0; i <= NFILES; i++) {
        qtest_fileset_path(&fs, i, p, sizeof p);
        if (chown(p, QTEST_NOBODY, QTEST_NOBODY) != 0)
            qtest_fatal("chown file");
    }

    /* the helper's registry: its own (nobody's), which run.sh's clean-up
     * of the test's registry name removes too; natively these variables
     * are read by nobody */
    char reg[128], regvar[160], n[16];
    qtest_registry_name(reg, sizeof reg, "nobody");
    snprintf(regvar, sizeof regvar, "QNXCOMPAT_REGISTRY=%s", reg);
    snprintf(p, sizeof p, "/dev/shm/%s", reg);
    qtest_track_path(p);
    snprintf(n, sizeof n, "%d", NFILES);
    char *av[] = {"t_mlockall_limit", "--nobody", fs.dir, n, NULL};
    char *env[] = {"QNXCOMPAT_ABILITIES=mem_lock", regvar, NULL};
    qtest_helper h = qtest_spawn_after(NULL, av, env, limit_and_drop, NULL);
    char out[4096] = "", err[2048] = "", o1[4200], e1[2100];
    qtest_read_until(h.out, out, sizeof out, "DONE", 30000);
    int st = qtest_helper_finish(&h, 10000, out, sizeof out, err, sizeof err);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    CHECK(qtest_exited0(st) && qtest_out_val(out, "DONE", 0) == 1,
          "helper (nobody, RLIMIT_MEMLOCK 8 MiB): %s; output \"%s\"; stderr "
          "\"%s\"", d, qtest_oneline(out, o1, sizeof o1),
          qtest_oneline(err, e1, sizeof e1));
    qtest_print("INFO helper: VmSize %lld kB before mlockall, %lld kB after "
                "%d more locks; VmLck %lld kB after mlockall, %lld kB after "
                "the locks",
                qtest_out_val(out, "VMSIZE_KB", -1),
                qtest_out_val(out, "VMSIZE_AFTER_KB", -1), NFILES,
                qtest_out_val(out, "VMLCK_KB", -1),
                qtest_out_val(out, "VMLCK_AFTER_KB", -1));

    const char *w = "nobody, RLIMIT_MEMLOCK 8 MiB";
    CHECK_SAID(out, "UID", QTEST_NOBODY, w);
    CHECK_SAID(out, "MEMLOCK_SOFT", MEMLOCK, w);
    CHECK_SAID(out, "MEMLOCK_HARD", MEMLOCK, w);
    CHECK_SAID(out, "SHIM", qtest_mode_shim(), w);
    CHECK_SAID(out, "FIRST", 0, "the first lock (registry attached)");
    long long ml = qtest_out_val(out, "MLOCKALL", -1);
    CHECK(ml == 0, "%s: mlockall(MCL_CURRENT|MCL_FUTURE) gave %s, expected 0 "
          "(VmSize %lld kB, limit %ld kB: MCL_CURRENT needs the whole mapped "
          "size under RLIMIT_MEMLOCK)", w,
          ml < 0 ? "no answer" : qtest_errname((int)ml),
          qtest_out_val(out, "VMSIZE_KB", -1), MEMLOCK / 1024);
    if (ml == 0)
        CHECK(qtest_out_val(out, "VMLCK_KB", 0) > 0,
              "%s: mlockall(MCL_CURRENT) succeeded but VmLck is %lld kB", w,
              qtest_out_val(out, "VMLCK_KB", 0));
    long long bad = qtest_out_val(out, "FIRST_BAD", -2);
    CHECK(qtest_out_val(out, "LOCKED", -1) == NFILES,
          "%s, memory locked: %lld of %d more files locked (first refused: "
          "file %lld, %s)", w, qtest_out_val(out, "LOCKED", -1), NFILES, bad,
          qtest_errname((int)qtest_out_val(out, "FIRST_BAD_ERR", 0)));
    long long g = qtest_out_val(out, "GETLK", -1);
    long long pid = qtest_out_val(out, "PID", -1);
    CHECK(g == 0 && qtest_out_val(out, "GETLK_TYPE", -1) == F_WRLCK &&
              qtest_out_val(out, "GETLK_START", -1) == 0 &&
              qtest_out_val(out, "GETLK_LEN", -1) == 1 &&
              qtest_out_val(out, "GETLK_PID", -1) == pid && pid > 0,
          "%s: another process's F_GETLK on file %d: rc %s, {%s, start=%lld, "
          "len=%lld, pid=%lld}; expected {F_WRLCK, start=0, len=1, pid=%lld}",
          w, NFILES, qtest_probe_name((int)g),
          qtest_typename((int)qtest_out_val(out, "GETLK_TYPE", -1)),
          qtest_out_val(out, "GETLK_START", -1),
          qtest_out_val(out, "GETLK_LEN", -1),
          qtest_out_val(out, "GETLK_PID", -1), pid);
    CHECK_SAID(out, "MUNLOCKALL", 0, w);
    CHECK_SAID(out, "VMLCK_END_KB", 0, "after munlockall()");

    qtest_fileset_remove(&fs);
    qtest_remove_path(p);
    return QTEST_DONE();
}
