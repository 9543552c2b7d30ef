/*
 * t_exec_cloexec.c - exec with many close-on-exec descriptors of locked
 * files.
 *
 * QNX lockf(): "File locks are released on the first close by the locking
 * process of any file descriptor for the file."  exec closes the
 * close-on-exec descriptors, so their files' locks go; a lock held through
 * a descriptor that stays open across the exec stays with the process.
 * Linux (POSIX) behaves the same, so both modes expect the same.
 *
 * A forked child takes F_SETLK write [0,10) on
 *   - N files through close-on-exec descriptors (N = 10, then 1,000),
 *   - one file through a descriptor WITHOUT close-on-exec (fd KEEP_FD),
 *   - one file through a descriptor without close-on-exec that ALSO has a
 *     close-on-exec descriptor (unlocked): exec's close of that one releases
 *     the file (first close of any descriptor),
 * then execs this binary (the environment keeps LD_PRELOAD under the shim,
 * so the new image loads the library and adopts its locks).  While the new
 * image runs, another process must get -1 EAGAIN on the kept file's range
 * and be granted every other file's range.
 *
 * Baseline bug: with more than 64 close-on-exec files the exec wrapper
 * marked EVERY file for release, the kept one included.
 *
 * Helper mode: t_exec_cloexec --after FD   print "READY <0|errno of F_GETFD>"
 *                                          and wait for EOF on stdin.
 */
#include "qtest.h"

#define KEEP_FD 3000  /* the non-close-on-exec descriptor of the kept file */
#define BOTH_FD 3001  /* non-close-on-exec descriptor of the "both" file */
#define MAXN 1000

static struct qtest_fileset fs; /* files 0..MAXN-1 cloexec, MAXN kept, MAXN+1 both */
static int nclo;                 /* cloexec files used in this case */

static int helper_main(int argc, char **argv)
{
    alarm(30);
    if (argc < 3 || strcmp(argv[1], "--after") != 0)
        return 2;
    int fd = atoi(argv[2]);
    int r = fcntl(fd, F_GETFD);
    qtest_print("READY %d", r >= 0 ? 0 : errno);
    qtest_wait_eof();
    return 0;
}

/* before(): in the forked child, take the locks the exec'd image inherits. */
static void lock_before_exec(void *arg)
{
    (void)arg;
    char p[160];
    for (int i = 0; i < nclo; i++) {
        qtest_fileset_path(&fs, i, p, sizeof p);
        int fd = open(p, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            _exit(90);
        if (setlk(fd, F_WRLCK, 0, 10) != 0)
            _exit(91);
    }
    qtest_fileset_path(&fs, MAXN, p, sizeof p);
    int fd = open(p, O_RDWR); /* no O_CLOEXEC */
    if (fd < 0 || dup2(fd, KEEP_FD) != KEEP_FD)
        _exit(92);
    close(fd);
    if (fcntl(KEEP_FD, F_GETFD) & FD_CLOEXEC)
        _exit(93);
    if (setlk(KEEP_FD, F_WRLCK, 0, 10) != 0)
        _exit(94);
    /* "both": locked through a kept descriptor, plus a cloexec one */
    qtest_fileset_path(&fs, MAXN + 1, p, sizeof p);
    fd = open(p, O_RDWR);
    if (fd < 0 || dup2(fd, BOTH_FD) != BOTH_FD)
        _exit(95);
    close(fd);
    if (setlk(BOTH_FD, F_WRLCK, 0, 10) != 0)
        _exit(96);
    if (open(p, O_RDWR | O_CLOEXEC) < 0)
        _exit(97);
}

static void run_case(int n)
{
    nclo = n;
    char what[64];
    snprintf(what, sizeof what, "%d close-on-exec files", n);
    char fdstr[16];
    snprintf(fdstr, sizeof fdstr, "%d", KEEP_FD);
    char *av[] = {"t_exec_cloexec", "--after", fdstr, NULL};
    qtest_helper h = qtest_spawn_after(NULL, av, NULL, lock_before_exec, NULL);
    char out[512] = "", err[2048] = "", o1[600], e1[2100];
    qtest_read_until(h.out, out, sizeof out, "READY", 20000);
    int got = strstr(out, "READY") != NULL;
    CHECK(got && qtest_out_val(out, "READY", -1) == 0,
          "%s: the exec'd image did not report \"READY 0\": stdout \"%s\"",
          what, qtest_oneline(out, o1, sizeof o1));
    if (!got) {
        int st = qtest_helper_finish(&h, 3000, out, sizeof out, err, sizeof err);
        char d[96];
        qtest_describe_status(st, d, sizeof d);
        qtest_print("    %s: helper %s, stderr: %s", what, d,
                    qtest_oneline(err, e1, sizeof e1));
        return;
    }
    /* the kept file is still locked by the exec'd image */
    unsigned char res[MAXN + 2];
    int idx_keep[2] = {MAXN, MAXN + 1};
    int r = qtest_probe_fileset(&fs, idx_keep, 2, F_WRLCK, 0, 10, res, 10000);
    CHECK(r == 0, "%s: probe of the kept files died", what);
    CHECK(res[0] == EAGAIN,
          "%s: another process's F_SETLK on the file locked through the "
          "non-close-on-exec descriptor gave %s after the exec; expected "
          "EAGAIN (the descriptor stays open, so the lock stays)",
          what, res[0] == 0 ? "0 (granted)" : qtest_errname(res[0]));
    CHECK(res[1] == 0,
          "%s: the file locked through a kept descriptor that also had a "
          "close-on-exec descriptor: another process got %s; expected 0 "
          "(exec closed one of its descriptors: first close releases)",
          what, qtest_errname(res[1]));
    /* every close-on-exec file is free */
    r = qtest_probe_fileset(&fs, NULL, n, F_WRLCK, 0, 10, res, 20000);
    CHECK(r == 0, "%s: probe of the close-on-exec files died", what);
    int freed = qtest_count_eq(res, n, 0);
    int first = qtest_first_ne(res, n, 0);
    CHECK(freed == n,
          "%s: after the exec, another process was granted only %d of %d "
          "close-on-exec files' ranges (first refused: file %d, %s)",
          what, freed, n, first, first >= 0 ? qtest_errname(res[first]) : "");
    int st = qtest_helper_finish(&h, 5000, out, sizeof out, err, sizeof err);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    CHECK(qtest_exited0(st), "%s: helper %s; stderr \"%s\"", what, d,
          qtest_oneline(err, e1, sizeof e1));
    /* the image is gone: the kept file is free */
    r = qtest_probe_fileset(&fs, idx_keep, 1, F_WRLCK, 0, 10, res, 10000);
    CHECK(r == 0 && res[0] == 0,
          "%s: the kept file is not free after the image exited (%s)", what,
          r ? "probe died" : qtest_errname(res[0]));
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strncmp(argv[1], "--", 2) == 0)
        return helper_main(argc, argv);
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    if (!qtest_need_nofile(KEEP_FD + 200, KEEP_FD + 100))
        return QTEST_DONE();
    qtest_fileset_create(&fs, MAXN + 2, "cloexec");
    run_case(10);   /* control: below the baseline's 64-entry table */
    run_case(MAXN); /* the baseline released the kept file here */
    qtest_fileset_remove(&fs);
    return QTEST_DONE();
}
