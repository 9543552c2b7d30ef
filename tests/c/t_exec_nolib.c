/*
 * t_exec_nolib.c - locks across an exec into an image without the library.
 *
 * A preloaded process takes a lock on a descriptor that stays open across
 * exec (no FD_CLOEXEC), then execs a program that does not load
 * libqnxcompat: that image closes the descriptor, tells us, and sleeps.
 * QNX releases a process's locks on the first close of a descriptor of the
 * file, Linux releases POSIX locks on any close by the process: either way
 * the lock is gone, and another (preloaded) process must now get it, even
 * though the process that holds the registry record is still alive.
 *
 *   (a) this binary re-exec'd with LD_PRELOAD removed from its environment;
 *   (b) /usr/bin/env -u LD_PRELOAD /bin/sh -c 'exec N>&-; ...', and the same
 *       through env -i (an empty environment);
 *   (c) a static binary compiled at test time (LD_PRELOAD left in place: a
 *       static binary never loads it); SKIP if `cc -static` fails;
 *   (d) control: an exec into this binary WITH the library, which keeps the
 *       descriptor open: the lock stays held (EAGAIN for others), since the
 *       library adopts locks across an exec into a preloaded image; once the
 *       image exits the lock is free;
 *   (e) flock(LOCK_EX) variants of (a) and (d), on a description of the
 *       holder's own: freed by the close in a library-less image, kept by a
 *       preloaded image that keeps the descriptor;
 *   (f) (d) with LD_PRELOAD naming the library through a symbolic link
 *       whose name lacks "libqnxcompat" (under the shim only): kept.
 *
 * Same expectations natively (plain kernel locks) and under the shim.
 *
 * Helper modes (this binary re-executed):
 *     t_exec_nolib --close FD    close FD, print "CLOSED <rc>", wait for EOF
 *                                on stdin
 *     t_exec_nolib --keep FD     print "KEPT <F_GETFD rc>", wait for EOF
 */
#include "qtest.h"

#define FLOCK_FD 10 /* where the flock holder puts its own description */

static const char *path;
static int test_fd;
static char test_fd_str[16];

/* ------------------------------------------------------------------------ */
/* Helper side                                                               */
/* ------------------------------------------------------------------------ */

static int helper_main(int argc, char **argv)
{
    alarm(30);
    if (argc < 3)
        return 2;
    int fd = atoi(argv[2]);
    if (strcmp(argv[1], "--close") == 0) {
        errno = 0;
        int r = close(fd);
        qtest_print("CLOSED %d", r == 0 ? 0 : errno);
        qtest_wait_eof();
        return 0;
    }
    if (strcmp(argv[1], "--keep") == 0) {
        qtest_print("KEPT %d", fcntl(fd, F_GETFD) >= 0 ? 0 : errno);
        qtest_wait_eof();
        return 0;
    }
    return 2;
}

/* ------------------------------------------------------------------------ */
/* Test side                                                                 */
/* ------------------------------------------------------------------------ */

/* before(): in the forked child, take F_SETLK write [0,10) on the test
 * descriptor (inherited, not close-on-exec). */
static void lock_before_exec(void *arg)
{
    (void)arg;
    if (fcntl(test_fd, F_GETFD) & FD_CLOEXEC)
        _exit(96);
    if (setlk(test_fd, F_WRLCK, 0, 10) != 0)
        _exit(97);
}

/* before(): open our own description of the file at FLOCK_FD (not
 * close-on-exec) and flock(LOCK_EX) it. */
static void flock_before_exec(void *arg)
{
    (void)arg;
    int fd = open(path, O_RDWR);
    if (fd < 0 || dup2(fd, FLOCK_FD) != FLOCK_FD)
        _exit(95);
    close(fd);
    if (flock(FLOCK_FD, LOCK_EX) != 0)
        _exit(97);
}

/* Another process's flock(LOCK_EX|LOCK_NB) on a description of its own:
 * 0 or its errno (-1: the probe failed). */
static int probe_flock(void)
{
    return qtest_probe_path(path, QTEST_BY_FLOCK, F_WRLCK, 0, 0);
}

static const char *res(int r)
{
    return r == 0 ? "0 (granted)" : r < 0 ? "probe died" : qtest_errname(r);
}

/* Run one case: spawn (lock in the child, exec), wait for the helper's
 * `ready` line, then check what another process gets; finally end the
 * helper and check the lock is free. `posix`: an fcntl lock on [0,10),
 * else a flock.  `held`: whether it must still be held. */
static void run_case(const char *what, const char *exe, char *const argv[],
                     char *const env[], int posix, const char *ready,
                     int held)
{
    qtest_helper h = qtest_spawn_after(exe, argv, env,
                                       posix ? lock_before_exec
                                             : flock_before_exec, NULL);
    char out[512] = "", err[1024] = "", o1[600], e1[1100];
    qtest_read_until(h.out, out, sizeof out, ready, 8000);
    int got = strstr(out, ready) != NULL;
    CHECK(got && qtest_out_val(out, ready, -1) == 0,
          "%s: the exec'd image did not report \"%s 0\": stdout \"%s\"", what,
          ready, qtest_oneline(out, o1, sizeof o1));
    if (!got) {
        qtest_read_until(h.err, err, sizeof err, NULL, 200);
        qtest_print("    %s: helper stderr: %s", what,
                    qtest_oneline(err, e1, sizeof e1));
        qtest_helper_kill(&h);
        return;
    }
    int r = posix ? qtest_probe_setlk(test_fd, F_WRLCK, 0, 10) : probe_flock();
    int want = held ? EAGAIN : 0; /* EWOULDBLOCK is EAGAIN */
    CHECK(r == want, "%s: another process's %s gave %s %s; expected %s", what,
          posix ? "F_SETLK [0,10)" : "flock(LOCK_EX|LOCK_NB)", res(r),
          held ? "while the exec'd image keeps the descriptor"
               : "after the library-less image closed the descriptor",
          held ? "EAGAIN" : "0 (the close released the lock)");
    if (posix && !held)
        CHECK_GETLK_FREE(test_fd, 0, 100);
    int st = qtest_helper_finish(&h, 5000, out, sizeof out, err, sizeof err);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    CHECK(qtest_exited0(st), "%s: helper %s; stderr \"%s\"", what, d,
          qtest_oneline(err, e1, sizeof e1));
    /* the holder is gone: nothing is left */
    if (posix)
        CHECK_CAN_LOCK(test_fd, F_WRLCK, 0, 10);
    else
        CHECK(probe_flock() == 0, "%s: flock not free after the holder exited",
              what);
}

/* Compile a static helper; returns its path or NULL. */
static const char *build_static(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/qtest-static-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(dir))
        return NULL;
    static char bin[128];
    char src[128], cmd[512];
    snprintf(src, sizeof src, "%s/h.c", dir);
    snprintf(bin, sizeof bin, "%s/h", dir);
    FILE *f = fopen(src, "w");
    if (!f)
        return NULL;
    fputs("#include <stdlib.h>\n#include <unistd.h>\n"
          "int main(int c, char **v) {\n"
          "    alarm(30);\n"
          "    if (c < 2) return 2;\n"
          "    int r = close(atoi(v[1]));\n"
          "    if (write(1, r == 0 ? \"CLOSED 0\\n\" : \"CLOSED 9\\n\", 9) != 9)"
          " return 3;\n"
          "    char b;\n"
          "    while (read(0, &b, 1) > 0) ;\n"
          "    return 0;\n}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cc -static -O1 -o %s %s >/dev/null 2>&1", bin,
             src);
    int rc = system(cmd);
    unlink(src);
    if (rc != 0 || access(bin, X_OK) != 0) {
        unlink(bin);
        rmdir(dir);
        return NULL;
    }
    return bin;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strncmp(argv[1], "--", 2) == 0)
        return helper_main(argc, argv);
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    test_fd = qtest_tmpfile(100, &path);
    snprintf(test_fd_str, sizeof test_fd_str, "%d", test_fd);
    char flock_fd_str[16];
    snprintf(flock_fd_str, sizeof flock_fd_str, "%d", FLOCK_FD);
    char *no_preload[] = {"LD_PRELOAD", NULL};

    /* (a) re-exec without the library */
    {
        char *av[] = {"t_exec_nolib", "--close", test_fd_str, NULL};
        run_case("(a) self without LD_PRELOAD", NULL, av, no_preload, 1,
                 "CLOSED", 0);
    }
    /* (b) a shell, through env -u LD_PRELOAD and env -i */
    {
        char script[128];
        snprintf(script, sizeof script,
                 "exec %d>&-; echo CLOSED 0; while read x; do :; done",
                 test_fd);
        char *av[] = {"env", "-u", "LD_PRELOAD", "/bin/sh", "-c", script, NULL};
        run_case("(b) env -u LD_PRELOAD sh", "/usr/bin/env", av, NULL, 1,
                 "CLOSED", 0);
        char *av2[] = {"env", "-i", "PATH=/usr/bin:/bin", "/bin/sh", "-c",
                       script, NULL};
        run_case("(b) env -i sh", "/usr/bin/env", av2, NULL, 1, "CLOSED", 0);
    }
    /* (c) a static binary */
    {
        char dir[96];
        const char *bin = build_static(dir, sizeof dir);
        if (!bin) {
            qtest_print("SKIP (c) static binary: cc -static is not available");
        } else {
            char *av[] = {"h", test_fd_str, NULL};
            run_case("(c) static binary", bin, av, NULL, 1, "CLOSED", 0);
            unlink(bin);
            rmdir(dir);
        }
    }
    /* (d) control: a preloaded image keeps the descriptor and the lock */
    {
        char *av[] = {"t_exec_nolib", "--keep", test_fd_str, NULL};
        run_case("(d) self with the library, fd kept", NULL, av, NULL, 1,
                 "KEPT", 1);
    }
    /* (f) the library preloaded through a path without "libqnxcompat" in
     * its name (a symbolic link to it): still the library, so the locks
     * are adopted as in (d) */
    if (qtest_mode_shim() && getenv("LD_PRELOAD")) {
        char link[128], var[200];
        snprintf(link, sizeof link, "/tmp/qtest-qclink-%d.so", (int)getpid());
        unlink(link);
        if (symlink(getenv("LD_PRELOAD"), link) == 0) {
            snprintf(var, sizeof var, "LD_PRELOAD=%s", link);
            char *env[] = {var, NULL};
            char *av[] = {"t_exec_nolib", "--keep", test_fd_str, NULL};
            run_case("(f) self with the library through a link named otherwise",
                     NULL, av, env, 1, "KEPT", 1);
            unlink(link);
        } else {
            CHECK(0, "(f) symlink %s: %s", link, strerror(errno));
        }
    }
    /* (e) flock */
    {
        char *av[] = {"t_exec_nolib", "--close", flock_fd_str, NULL};
        run_case("(e) flock, self without LD_PRELOAD", NULL, av, no_preload, 0,
                 "CLOSED", 0);
        char *av2[] = {"t_exec_nolib", "--keep", flock_fd_str, NULL};
        run_case("(e) flock, self with the library, fd kept", NULL, av2, NULL,
                 0, "KEPT", 1);
    }
    close(test_fd);
    return QTEST_DONE();
}
