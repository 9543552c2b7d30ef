/*
 * t_mirror_clone.c - a clone(CLONE_FILES) child (it shares our descriptor
 * table, not our memory: no CLONE_VM; its own stack) that closes a
 * descriptor of a file we hold a POSIX lock on releases that lock, as on
 * Linux, where POSIX locks belong to the descriptor table (xfstests
 * generic/478):
 *
 *   (a) the child closes the locked descriptor itself; our descriptor is
 *       then gone too (EBADF);
 *   (b) the child closes another descriptor of the same file (another
 *       open), the locked one stays ours;
 *   (c) control: a child that exits without closing anything leaves the
 *       lock held.
 *
 * Before the child runs, the lock is refused to a peer outside the library
 * (peer_static and this binary without LD_PRELOAD) and to a preloaded
 * process (a forked probe, its own open); afterwards both get it, and
 * /proc/locks shows no POSIX lock of ours.
 *
 * With QNXCOMPAT_MIRROR=off the peers outside the library never see our
 * lock (they get it before and after); the preloaded probe's view is the
 * same as with the mirror, except in (b): with no kernel lock to consult,
 * the registry cannot tell that a process sharing our descriptor table
 * closed another descriptor of the file, and keeps the lock until we close
 * ours (docs/semantics.md).
 */
#include "qtest.h"

#include <sched.h>

#define STACK_SIZE (256 * 1024)

static const char *path;

static int child_close(void *arg)
{
    alarm(QTEST_CHILD_TIMEOUT_S);
    return close(*(int *)arg) == 0 ? 0 : 1;
}

static int child_exit(void *arg)
{
    (void)arg;
    return 0;
}

/* Run fn(arg) in a clone(CLONE_FILES | SIGCHLD) child on a stack of its own
 * and CHECK that it exits 0. */
static void run_clone_files(int (*fn)(void *), void *arg, const char *what)
{
    char *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        qtest_fatal("mmap stack");
    pid_t pid = clone(fn, stack + STACK_SIZE, CLONE_FILES | SIGCHLD, arg);
    if (pid < 0)
        qtest_fatal("clone");
    int st = qtest_wait(pid, QTEST_WAIT_MS);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    CHECK(qtest_exited0(st), "%s: clone(CLONE_FILES) child: %s", what, d);
    munmap(stack, STACK_SIZE);
}

/* CHECK who can take a write lock on [0,10): the peers outside the library
 * and a preloaded probe (its own open). */
static void check_lockable(const struct qtest_peer *peers, int npeers,
                           int held, const char *what)
{
    int outside = held && qtest_kernel_sees();
    for (int i = 0; i < npeers; i++)
        CHECK_PEER_TRY(&peers[i], "fcntl", F_WRLCK, 0, 10, path,
                       outside ? EAGAIN : 0, outside ? EACCES : 0, what);
    int r = qtest_probe_fcntl(path, F_SETLK, F_WRLCK, 0, 10);
    CHECK(held ? r == EAGAIN || r == EACCES : r == 0,
          "%s: a preloaded process's F_SETLK write [0,10) gave %s, "
          "expected %s", what, qtest_probe_name(r),
          held ? "EAGAIN or EACCES" : "0");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--peer") == 0)
        return qtest_peer_main(argc - 1, argv + 1);
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int me = (int)getpid();
    int tmp = qtest_tmpfile(100, &path);
    qtest_track_path(path); /* removed on a timeout too */
    close(tmp);
    struct qtest_peer peers[2];
    int npeers = qtest_peers(peers);
    int n = qtest_kernel_sees() ? 1 : 0;

    /* (a) the child closes the locked descriptor */
    {
        const char *w = "(a) child closes the locked descriptor";
        int fd = qtest_open(path, O_RDWR);
        CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
        CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 0, 9, "(a) before the child");
        check_lockable(peers, npeers, 1, "(a) before the child");
        int probe = qtest_open(path, O_RDONLY);
        run_clone_files(child_close, &fd, w);
        CHECK_ERR(fcntl(fd, F_GETFD), EBADF);
        CHECK_KERNEL(probe, 0, "POSIX", QTEST_KANY, me, QTEST_KANY,
                     QTEST_KANY, w);
        check_lockable(peers, npeers, 0, w);
        close(probe);
    }

    /* (b) the child closes another descriptor of the file */
    {
        const char *w = "(b) child closes another descriptor of the file";
        int fd = qtest_open(path, O_RDWR);
        int other = qtest_open(path, O_RDONLY);
        CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
        check_lockable(peers, npeers, 1, "(b) before the child");
        run_clone_files(child_close, &other, w);
        CHECK_ERR(fcntl(other, F_GETFD), EBADF);
        CHECK(fcntl(fd, F_GETFD) >= 0, "%s: our locked descriptor is gone", w);
        CHECK_KERNEL(fd, 0, "POSIX", QTEST_KANY, me, QTEST_KANY, QTEST_KANY,
                     w);
        /* With the mirror off nothing tells the registry (docs/semantics.md):
         * the preloaded probe still meets the lock. */
        check_lockable(peers, npeers, qtest_mirror_off(), w);
        close(fd);
    }

    /* (c) control: the child exits without closing */
    {
        const char *w = "(c) child exits without closing";
        int fd = qtest_open(path, O_RDWR);
        CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
        run_clone_files(child_exit, NULL, w);
        CHECK(fcntl(fd, F_GETFD) >= 0, "%s: our descriptor is gone", w);
        CHECK_KERNEL(fd, n, "POSIX", F_WRLCK, me, 0, 9, w);
        check_lockable(peers, npeers, 1, w);
        CHECK_OK(unlock(fd, 0, 10));
        check_lockable(peers, npeers, 0, "(c) after our unlock");
        close(fd);
    }
    return QTEST_DONE();
}
