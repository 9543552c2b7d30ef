/*
 * t_fork_exec_threads.c - lock ownership across fork(), threads and exec().
 *
 * QNX docs checked: lib_ref f/fcntl.html (locks belong to the process: "Locks
 * aren't inherited by a child process created using fork()"; F_GETLK reports
 * the holder's l_pid; locks are removed when the process closes a descriptor
 * for the file), l/lockf.html (same for lockf), and the exec*() family
 * ("file descriptors ... remain open [across exec] unless FD_CLOEXEC is set",
 * and the process ID does not change, so its locks survive; a descriptor
 * closed by exec because of FD_CLOEXEC releases them).  QNX and Linux agree,
 * so all checks run in both modes.
 *
 * The exec cases re-execute this program as
 *     t_fork_exec_threads --after-exec UPFD DOWNFD
 * which reports its pid on UPFD and exits when told to on DOWNFD.
 */
#include <pthread.h>

#include "qtest.h"

static const char *path;
static int fd;

/* ---- fork ---------------------------------------------------------------- */

static void fork_child(void *arg)
{
    (void)arg;
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    CHECK_OK(fcntl(fd, F_GETLK, &fl));
    CHECK(fl.l_type == F_WRLCK && fl.l_start == 0 && fl.l_len == 10 &&
              fl.l_pid == getppid(),
          "child F_GETLK: got {%s, start=%lld, len=%lld, pid=%d}, parent %d",
          qtest_typename(fl.l_type), (long long)fl.l_start,
          (long long)fl.l_len, (int)fl.l_pid, (int)getppid());
    CHECK_ERR(setlk(fd, F_WRLCK, 0, 10), EAGAIN);
    CHECK_ERR(setlk(fd, F_RDLCK, 9, 1), EAGAIN);
    CHECK_OK(unlock(fd, 0, 10)); /* succeeds, but the parent's lock stays */
    CHECK_OK(setlk(fd, F_WRLCK, 10, 10));
    child_say('U');
    if (!child_await('C', 10000))
        return;
    CHECK_OK(close(fd)); /* releases the child's locks only */
    child_say('X');
    child_await('Q', 10000);
}

static void not_inherited(void)
{
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    qtest_child c = qtest_child_start(fork_child, NULL);
    CHECK_HEAR(&c, 'U', 5000, NULL);
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, getpid());
    CHECK_GETLK(fd, 10, 10, F_WRLCK, 10, 10, c.pid);
    qtest_say(&c, 'C');
    CHECK_HEAR(&c, 'X', 5000, NULL);
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, getpid());
    CHECK_GETLK_FREE(fd, 10, 10);
    CHECK_CHILD_FINISH(&c);
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, getpid());
    CHECK_OK(unlock(fd, 0, 10));
    CHECK_GETLK_FREE(fd, 0, 0);
}

/* ---- threads ------------------------------------------------------------- */

static void *thread_a(void *arg)
{
    (void)arg;
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    return NULL;
}

static void *thread_b(void *arg)
{
    (void)arg;
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    CHECK_OK(fcntl(fd, F_GETLK, &fl)); /* the process's own lock */
    CHECK_EQ(fl.l_type, F_UNLCK);
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10)); /* same owner: no conflict */
    CHECK_OK(setlkw(fd, F_WRLCK, 5, 10)); /* would deadlock if not */
    CHECK_OK(unlock(fd, 0, 15));
    return NULL;
}

/* Join with a bound: a thread stuck in F_SETLKW on its own process's lock
 * ends the test with a failure instead of a hang. */
static void join(pthread_t t, const char *name)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    int r = pthread_timedjoin_np(t, NULL, &until);
    CHECK(r == 0, "thread %s did not finish: %s", name, qtest_errname(r));
    if (r != 0)
        exit(QTEST_DONE());
}

static void threads(void)
{
    pthread_t a, b;
    pthread_create(&a, NULL, thread_a, NULL);
    join(a, "A");
    /* the lock outlives the thread that took it */
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, getpid());
    pthread_create(&b, NULL, thread_b, NULL);
    join(b, "B");
    CHECK_GETLK_FREE(fd, 0, 0);
}

/* ---- exec ---------------------------------------------------------------- */

struct exec_case {
    int cloexec; /* the child opens its descriptor with O_CLOEXEC */
    int keep_fd; /* it keeps the inherited `fd` open as a second descriptor */
};

static void exec_self(void)
{
    char up[16], down[16];
    snprintf(up, sizeof up, "%d", qtest_up_fd);
    snprintf(down, sizeof down, "%d", qtest_down_fd);
    fcntl(qtest_up_fd, F_SETFD, 0);
    fcntl(qtest_down_fd, F_SETFD, 0);
    execl("/proc/self/exe", "t_fork_exec_threads", "--after-exec", up, down,
          (char *)NULL);
    CHECK(0, "execl: %s", qtest_errname(errno));
}

/* Child: lock, say 'L', wait for 'X', exec. */
static void exec_child(void *arg)
{
    struct exec_case *ec = arg;
    if (!ec->keep_fd)
        close(fd);
    int lfd = qtest_open(path, O_RDWR | (ec->cloexec ? O_CLOEXEC : 0));
    CHECK_OK(setlk(lfd, F_WRLCK, 0, 10));
    child_say('L');
    if (child_await('X', 10000))
        exec_self();
}

static void across_exec(int cloexec, int keep_fd)
{
    struct exec_case ec = {cloexec, keep_fd};
    struct qtest_msg m;
    qtest_child c = qtest_child_start(exec_child, &ec);
    CHECK_HEAR(&c, 'L', 5000, NULL);
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, c.pid);
    qtest_say(&c, 'X');
    if (CHECK_HEAR(&c, 'E', 10000, &m))
        CHECK_EQ(m.val, c.pid); /* exec keeps the pid */
    if (cloexec) /* exec closed a descriptor of the file */
        CHECK_GETLK_FREE(fd, 0, 10);
    else
        CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, c.pid);
    CHECK_CHILD_FINISH(&c);
    CHECK_GETLK_FREE(fd, 0, 10);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
}

/* The re-executed image: report, wait, exit. */
static int after_exec(int up, int down)
{
    struct qtest_msg m;
    alarm(QTEST_CHILD_TIMEOUT_S);
    qtest_put(up, 'E', getpid(), 0);
    return qtest_get(down, 20000, &m) == 1 && m.tag == 'Q' ? 0 : 3;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--after-exec") == 0)
        return after_exec(atoi(argv[2]), atoi(argv[3]));

    qtest_init();
    fd = qtest_tmpfile(100, &path);
    not_inherited();
    threads();
    across_exec(0, 1); /* lock survives exec */
    across_exec(0, 0);
    across_exec(1, 0); /* the only descriptor is FD_CLOEXEC: released */
    across_exec(1, 1); /* exec closes one of two descriptors: released */
    close(fd);
    return QTEST_DONE();
}
