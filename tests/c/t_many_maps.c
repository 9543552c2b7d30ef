/*
 * t_many_maps.c - QNX lockf's mapped-file rule with more mappings than
 * the library's mapping table holds.
 *
 * QNX lockf(): "EAGAIN: The function argument is F_LOCK or F_TLOCK and the
 * file is mapped with mmap()."  The rule must hold however many mappings
 * processes have: a file that is mapped must never be lockf-locked.  Linux
 * has no such rule: natively lockf succeeds on a mapped file.
 *
 * A mapper process maps one small file NMAPS = 100,000 times (one page
 * each, MAP_SHARED and MAP_PRIVATE alternately; vm.max_map_count is raised
 * for the test and restored, or NMAPS drops to 60,000 with a NOTE line),
 * then maps two NEW files once each (MAP_SHARED, MAP_PRIVATE).  Then
 * another process (the test):
 *   - lockf(F_TLOCK, 0) and lockf(F_LOCK, 0) on each new file: -1 EAGAIN
 *     under the shim, 0 natively; fcntl F_SETLK is unaffected (0);
 *   - after the mapper munmap()s them: 0 natively; under the shim 0, or
 *     EAGAIN while the mapper lives (a library whose mapping table is full
 *     may keep treating the files as mapped until the mapper exits - a
 *     conservative fallback, reported as a NOTE);
 *   - after the mapper EXITS: 0 in both modes.
 * A control without the flood first shows the rule itself works.
 *
 * Baseline bug: once the mapping table was full, new mappings were not
 * recorded at all, so lockf granted locks on mapped files.
 */
#include "qtest.h"

#define NMAPS_WANT 100000
#define NMAPS_FALLBACK 60000
#define MAPCOUNT_PATH "/proc/sys/vm/max_map_count"

static long saved_map_count = -1;
static int nmaps = NMAPS_WANT;

static long read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static int write_long(const char *path, long v)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char b[32];
    int n = snprintf(b, sizeof b, "%ld\n", v);
    int ok = write(fd, b, (size_t)n) == n;
    close(fd);
    return ok ? 0 : -1;
}

static void restore_map_count(void)
{
    if (saved_map_count > 0 && getpid() == qtest_main_pid) {
        write_long(MAPCOUNT_PATH, saved_map_count);
        saved_map_count = -1;
    }
}

static void on_timeout(int sig)
{
    if (saved_map_count > 0 && getpid() == qtest_main_pid) {
        char b[32];
        int n = snprintf(b, sizeof b, "%ld\n", saved_map_count);
        int fd = open(MAPCOUNT_PATH, O_WRONLY);
        if (fd >= 0) {
            ssize_t w = write(fd, b, (size_t)n);
            (void)w;
            close(fd);
        }
    }
    qtest_on_timeout(sig);
}

struct mapper {
    volatile int state; /* 1 mapped, 2 unmap!, 3 unmapped, 4 exit! */
    int flood;          /* number of mappings of the flood file */
    int flood_fd, fd_b, fd_c;
    int done_maps;      /* flood mappings that succeeded */
    int map_err;        /* errno of the first failed flood mmap */
    int b_ok, c_ok, unmap_rc;
};

static void mapper(void *arg)
{
    struct mapper *m = arg;
    long page = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < m->flood; i++) {
        void *p = mmap(NULL, (size_t)page, PROT_READ,
                       (i & 1) ? MAP_PRIVATE : MAP_SHARED, m->flood_fd, 0);
        if (p == MAP_FAILED) {
            m->map_err = errno;
            break;
        }
        m->done_maps++;
    }
    void *b = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED,
                   m->fd_b, 0);
    void *c = mmap(NULL, (size_t)page, PROT_READ, MAP_PRIVATE, m->fd_c, 0);
    m->b_ok = b != MAP_FAILED;
    m->c_ok = c != MAP_FAILED;
    __atomic_store_n(&m->state, 1, __ATOMIC_SEQ_CST);
    if (!qtest_wait_flag(&m->state, 2, 50000))
        return;
    m->unmap_rc = (m->b_ok ? munmap(b, (size_t)page) : 0) |
                  (m->c_ok ? munmap(c, (size_t)page) : 0);
    __atomic_store_n(&m->state, 3, __ATOMIC_SEQ_CST);
    qtest_wait_flag(&m->state, 4, 50000);
}

/* Our own lockf(func, 0) at offset 0 of fd: 0 or errno.  A lock we get is
 * released again. */
static int my_lockf(int fd, int func)
{
    qtest_seek(fd, 0);
    errno = 0;
    int r = lockf(fd, func, 0);
    int e = errno;
    if (r == 0) {
        qtest_seek(fd, 0);
        lockf(fd, F_ULOCK, 0);
    }
    return r == 0 ? 0 : e ? e : -1;
}

static const char *rs(int r)
{
    return r == 0 ? "0" : r < 0 ? "-1 errno 0" : qtest_errname(r);
}

static void run(const char *what, int flood)
{
    int flood_fd = qtest_tmpfile(4096, NULL);
    int fd_b = qtest_tmpfile(4096, NULL);
    int fd_c = qtest_tmpfile(4096, NULL);
    struct mapper *m = qtest_shared(sizeof *m);
    m->flood = flood;
    m->flood_fd = flood_fd;
    m->fd_b = fd_b;
    m->fd_c = fd_c;
    double t0 = qtest_now_ms();
    pid_t pid = qtest_fork_fn(mapper, m);
    int ok = qtest_wait_flag(&m->state, 1, 50000);
    CHECK(ok, "%s: the mapper did not finish mapping", what);
    if (!ok)
        goto out;
    CHECK(m->done_maps == flood, "%s: only %d of %d mmap calls succeeded (%s)",
          what, m->done_maps, flood, qtest_errname(m->map_err));
    CHECK(m->b_ok && m->c_ok, "%s: mmap of the new files failed", what);
    if (flood)
        qtest_print("INFO %s: %d mappings made in %.0f ms", what,
                    m->done_maps, qtest_now_ms() - t0);
    /* mapped: QNX refuses lockf F_TLOCK/F_LOCK, Linux grants them */
    int fds[2] = {fd_b, fd_c};
    const char *names[2] = {"MAP_SHARED file", "MAP_PRIVATE file"};
    for (int k = 0; k < 2; k++) {
        int want = qtest_mode_shim() ? EAGAIN : 0;
        int r = my_lockf(fds[k], F_TLOCK);
        CHECK(r == want, "%s: lockf(F_TLOCK) on a %s another process maps: "
              "got %s, expected %s", what, names[k], rs(r), rs(want));
        r = my_lockf(fds[k], F_LOCK);
        CHECK(r == want, "%s: lockf(F_LOCK) on a %s another process maps: "
              "got %s, expected %s", what, names[k], rs(r), rs(want));
        /* fcntl is not subject to the rule */
        errno = 0;
        r = setlk(fds[k], F_WRLCK, 0, 0);
        CHECK(r == 0, "%s: F_SETLK on a mapped %s: got %d %s", what,
              names[k], r, qtest_errname(errno));
        unlock(fds[k], 0, 0);
    }
    /* unmapped, mapper alive: 0, or (conservative fallback) EAGAIN */
    __atomic_store_n(&m->state, 2, __ATOMIC_SEQ_CST);
    ok = qtest_wait_flag(&m->state, 3, 20000);
    CHECK(ok && m->unmap_rc == 0, "%s: the mapper's munmap failed or hung",
          what);
    for (int k = 0; k < 2; k++) {
        int r = my_lockf(fds[k], F_TLOCK);
        if (qtest_mode_shim()) {
            CHECK(r == 0 || r == EAGAIN, "%s: lockf(F_TLOCK) on the %s after "
                  "munmap: got %s, expected 0 (or EAGAIN until the mapper "
                  "exits)", what, names[k], rs(r));
            if (r == EAGAIN)
                qtest_print("NOTE %s: %s still counts as mapped after munmap "
                            "while the mapper lives", what, names[k]);
        } else {
            CHECK(r == 0, "%s: lockf(F_TLOCK) on the %s after munmap: got %s",
                  what, names[k], rs(r));
        }
    }
    /* the mapper exits: free in both modes */
    __atomic_store_n(&m->state, 4, __ATOMIC_SEQ_CST);
    CHECK_EXIT0(pid);
    pid = 0;
    for (int k = 0; k < 2; k++) {
        int r = my_lockf(fds[k], F_TLOCK);
        CHECK(r == 0, "%s: lockf(F_TLOCK) on the %s after the mapper exited: "
              "got %s, expected 0", what, names[k], rs(r));
    }
    /* and the flood file too */
    int r = my_lockf(flood_fd, F_TLOCK);
    CHECK(r == 0, "%s: lockf(F_TLOCK) on the flooded file after the mapper "
          "exited: got %s", what, rs(r));
out:
    if (pid > 0) {
        kill(pid, SIGKILL);
        qtest_wait(pid, 5000);
    }
    munmap(m, sizeof *m);
    close(flood_fd);
    close(fd_b);
    close(fd_c);
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, on_timeout);
    long cur = read_long(MAPCOUNT_PATH);
    long need = NMAPS_WANT + 5000;
    if (cur > 0 && cur < need) {
        if (write_long(MAPCOUNT_PATH, need + 100000) == 0 &&
            read_long(MAPCOUNT_PATH) >= need) {
            saved_map_count = cur;
            qtest_print("INFO vm.max_map_count raised from %ld to %ld for "
                        "the test", cur, need + 100000);
        } else {
            nmaps = NMAPS_FALLBACK;
            if (cur < NMAPS_FALLBACK + 2000)
                nmaps = (int)cur - 2000;
            qtest_print("NOTE cannot raise vm.max_map_count (%ld): using %d "
                        "mappings instead of %d", cur, nmaps, NMAPS_WANT);
        }
    }
    run("control (no flood)", 0);
    char what[64];
    snprintf(what, sizeof what, "%d mappings", nmaps);
    run(what, nmaps);
    restore_map_count();
    CHECK(saved_map_count < 0, "vm.max_map_count not restored");
    return QTEST_DONE();
}
