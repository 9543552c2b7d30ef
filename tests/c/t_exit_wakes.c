/*
 * t_exit_wakes.c - reaping a dead process that held locks on many files
 * wakes only the files that have sleepers.
 *
 * A child takes a lock on each of NFILES files (more than the registry's
 * wake set holds, so the reap's set of touched files overflows) and exits.
 * The parent then locks each file: its first lock finds the dead child's
 * lock, reaps the child (every file changes) and goes on. Nobody sleeps on
 * any of the files, so the reap needs no FUTEX_WAKE at all; before the fix
 * it woke every file slot of the registry (one FUTEX_WAKE each, 8,193 for
 * a process with locks on 9 files in the scale issue's measurement).
 *
 * The parent's futex calls are counted by running that part under
 * strace(1) (`--inner`); without strace the test SKIPs. The bound is
 * generous (the process's own futex calls, none expected, are counted
 * too): fewer than NFILES / 4 wakes.
 *
 * With the kernel mirror on, the parent's kernel check finds each of the
 * child's locks gone and drops it alone (no reap over every file); the
 * mirror-off run (run.sh) takes the reap path.
 *
 * Natively there is no registry: the inner part only checks the locks.
 */
#include "qtest.h"

#define NFILES 200

static char dir[256];

static void path_of(int i, char *buf, size_t len)
{
    snprintf(buf, len, "%s/f%d", dir, i);
}

static int inner(void)
{
    int fds[NFILES];
    for (int i = 0; i < NFILES; i++) {
        char p[300];
        path_of(i, p, sizeof p);
        fds[i] = qtest_open(p, O_RDWR);
    }
    pid_t c = fork();
    if (c == 0) {
        for (int i = 0; i < NFILES; i++)
            if (setlk(fds[i], F_WRLCK, 0, 10) != 0)
                _exit(2);
        _exit(0); /* dies holding every lock (the kernel drops its own) */
    }
    int st = qtest_wait(c, QTEST_WAIT_MS);
    CHECK(qtest_exited0(st), "the locking child: status %#x", st);
    for (int i = 0; i < NFILES; i++)
        CHECK_OK(setlk(fds[i], F_WRLCK, 0, 10));
    for (int i = 0; i < NFILES; i++)
        close(fds[i]);
    return QTEST_DONE();
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--inner") == 0) {
        qtest_init();
        snprintf(dir, sizeof dir, "%s", argv[2]);
        return inner();
    }
    qtest_init();
    snprintf(dir, sizeof dir, "%s/qtest-wakes-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    if (mkdir(dir, 0700) != 0)
        qtest_fatal("mkdir");
    for (int i = 0; i < NFILES; i++) {
        char p[300];
        path_of(i, p, sizeof p);
        int fd = open(p, O_RDWR | O_CREAT, 0600);
        if (fd < 0)
            qtest_fatal("open");
        close(fd);
    }
    char trace[300];
    snprintf(trace, sizeof trace, "%s/strace.out", dir);
    int have_strace = system("command -v strace >/dev/null 2>&1") == 0;
    char cmd[1200];
    if (have_strace && qtest_mode_shim())
        snprintf(cmd, sizeof cmd, "strace -qq -e trace=futex -o %s %s --inner %s", trace, argv[0], dir);
    else
        snprintf(cmd, sizeof cmd, "%s --inner %s", argv[0], dir);
    int st = system(cmd);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the inner run (%s): status %#x", cmd, st);
    if (!have_strace) {
        qtest_print("SKIP futex count: strace(1) is not installed");
    } else if (qtest_mode_shim()) {
        FILE *f = fopen(trace, "r");
        long wakes = 0;
        char line[512];
        while (f && fgets(line, sizeof line, f))
            wakes += strstr(line, "FUTEX_WAKE") != NULL;
        if (f)
            fclose(f);
        CHECK(f != NULL, "no strace output in %s", trace);
        CHECK(wakes < NFILES / 4, "reaping a process that held locks on %d files made %ld FUTEX_WAKE calls, "
              "with nobody sleeping on any of them", NFILES, wakes);
        qtest_print("INFO %ld FUTEX_WAKE calls for a reap over %d files", wakes, NFILES);
    }
    for (int i = 0; i < NFILES; i++) {
        char p[300];
        path_of(i, p, sizeof p);
        unlink(p);
    }
    unlink(trace);
    rmdir(dir);
    return QTEST_DONE();
}
