/*
 * t_intercept.c - interception of the 64-bit entry points, and the shim's
 * footprint on the descriptor table.
 *
 * This file is compiled with _FILE_OFFSET_BITS=64, so glibc's headers
 * redirect fcntl() to fcntl64() and lockf() to lockf64(); the shim must
 * intercept those names too.  The proof is QNX behaviour that Linux does not
 * have (QNX docs checked: lib_ref l/lockf.html - F_TEST fails with EACCES
 * when another process holds any lock on the section, read locks included;
 * glibc's F_TEST ignores read locks).  F_SETLK64/F_GETLK64 with struct
 * flock64 are checked above 4 GiB (f/fcntl.html).
 *
 * The shim must not use up descriptors: the set of open fds is the same
 * before and after a batch of lock operations, in a forked child that locks,
 * and in a freshly exec'd image (re-run as "t_intercept --fresh-fds PATH"
 * with every fd above 2 closed).
 */
#define _FILE_OFFSET_BITS 64

#include <sys/file.h>

#include "qtest.h"

_Static_assert(sizeof(off_t) == 8, "64-bit off_t");

#define GIB ((off_t)1 << 30)
#define MAXFD 1024

static const char *path;
static int fd;

/* lockf(F_TEST) sees a foreign read lock only under the shim */
static void read_lock_visible(int through_fcntl64)
{
    if (through_fcntl64) {
        struct flock64 fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_RDLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = 0;
        fl.l_len = 10;
        CHECK_OK(fcntl64(fd, F_SETLK64, &fl));
    } else {
        CHECK_OK(setlk(fd, F_RDLCK, 0, 10)); /* fcntl -> fcntl64 */
    }
    CHECK_GETLK(fd, 0, 10, F_RDLCK, 0, 10, getpid());
    if (qtest_mode_shim())
        CHECK_OTHER_LOCKF(fd, F_TEST, 0, 10, EACCES);
    else
        CHECK_OTHER_LOCKF(fd, F_TEST, 0, 10, 0);
    CHECK_OK(unlock(fd, 0, 10));
    CHECK_OTHER_LOCKF(fd, F_TEST, 0, 10, 0);
}

static void getlk64_child(void *arg)
{
    (void)arg;
    struct flock64 fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 4 * GIB;
    fl.l_len = 2 * GIB;
    CHECK_OK(fcntl64(fd, F_GETLK64, &fl));
    CHECK(fl.l_type == F_WRLCK && fl.l_start == 5 * GIB && fl.l_len == 100 &&
              fl.l_pid == getppid(),
          "F_GETLK64: got {%s, start=%lld, len=%lld, pid=%d}",
          qtest_typename(fl.l_type), (long long)fl.l_start,
          (long long)fl.l_len, (int)fl.l_pid);
    fl.l_type = F_WRLCK;
    fl.l_start = 5 * GIB + 50;
    fl.l_len = 1;
    CHECK_ERR(fcntl64(fd, F_SETLK64, &fl), EAGAIN);
}

static void large_offsets(void)
{
    struct flock64 fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 5 * GIB;
    fl.l_len = 100;
    CHECK_OK(fcntl64(fd, F_SETLK64, &fl));
    CHECK_GETLK(fd, 4 * GIB, 2 * GIB, F_WRLCK, 5 * GIB, 100, getpid());
    CHECK_CAN_LOCK(fd, F_WRLCK, GIB, 100);
    RUN_IN_CHILD(getlk64_child, NULL);
    fl.l_type = F_UNLCK;
    CHECK_OK(fcntl64(fd, F_SETLK64, &fl));
    CHECK_CAN_LOCK(fd, F_WRLCK, 5 * GIB, 100);
}

#define CHECK_SAME_FDS(before, what)                                          \
    do {                                                                      \
        char qt_now_[MAXFD], qt_d_[256];                                      \
        qtest_open_fds(qt_now_, MAXFD);                                       \
        qtest_fd_diff((before), qt_now_, MAXFD, qt_d_, sizeof qt_d_);         \
        CHECK(memcmp((before), qt_now_, MAXFD) == 0,                          \
              "open fds changed by %s: %s", (what), qt_d_);                   \
    } while (0)

static void lock_batch(void)
{
    int fd2 = qtest_open(path, O_RDWR);
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_OK(setlkw(fd, F_RDLCK, 20, 10));
    CHECK_GETLK_FREE(fd, 40, 10);
    CHECK_OK(qtest_lockf_at(fd, 50, F_TLOCK, 10));
    CHECK_OK(qtest_lockf_at(fd, 50, F_TEST, 10));
    CHECK_OK(qtest_lockf_at(fd, 50, F_ULOCK, 10));
    CHECK_OK(unlock(fd, 0, 10));
    /* Shared: under QNX semantics flock shares the list with the read lock
     * above, and only a shared flock coexists with it. */
    CHECK_OK(flock(fd2, LOCK_SH | LOCK_NB));
    CHECK_OK(flock(fd2, LOCK_UN));
    void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED, "mmap: %s", qtest_errname(errno));
    if (m != MAP_FAILED)
        CHECK_OK(munmap(m, 4096));
    CHECK_OK(close(fd2)); /* releases the read lock */
    CHECK_GETLK_FREE(fd, 0, 0);
}

static void child_locks(void *arg)
{
    (void)arg;
    char before[MAXFD];
    qtest_open_fds(before, MAXFD);
    lock_batch();
    CHECK_OK(setlk(fd, F_WRLCK, 0, 0));
    CHECK_SAME_FDS(before, "locking in a forked child");
}

static void no_fds_used(void)
{
    char before[MAXFD];
    qtest_open_fds(before, MAXFD);
    lock_batch();
    CHECK_SAME_FDS(before, "a batch of lock operations");
    RUN_IN_CHILD(child_locks, NULL);
    CHECK_SAME_FDS(before, "a child that locked");

    int lowest = 0;
    while (before[lowest])
        lowest++;
    int n = qtest_open("/dev/null", O_RDONLY);
    CHECK_EQ(n, lowest);
    close(n);
}

/* The re-executed image: no fd above 2 may be open, before or after locking. */
static int fresh_fds(const char *file)
{
    char set[MAXFD];
    alarm(QTEST_CHILD_TIMEOUT_S);
    qtest_open_fds(set, MAXFD);
    for (int i = 3; i < MAXFD; i++)
        if (set[i])
            return 10 + i;
    int lowest = 0;
    while (set[lowest])
        lowest++;
    int f = qtest_open(file, O_RDWR);
    if (f != lowest)
        return 2;
    if (setlk(f, F_WRLCK, 0, 10) != 0 || unlock(f, 0, 10) != 0 ||
        qtest_lockf_at(f, 0, F_TLOCK, 10) != 0)
        return 3;
    close(f); /* releases the lockf lock */
    qtest_open_fds(set, MAXFD);
    for (int i = 3; i < MAXFD; i++)
        if (set[i])
            return 10 + i;
    return 0;
}

static void no_fds_after_exec(void)
{
    pid_t pid = qtest_fork();
    if (pid == 0) {
        closefrom(3);
        execl("/proc/self/exe", "t_intercept", "--fresh-fds", path, (char *)NULL);
        _exit(127);
    }
    int st = qtest_wait(pid, QTEST_WAIT_MS);
    int code = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    CHECK(code == 0, "fresh image: %s",
          code == 2 ? "open() did not return the lowest free fd"
          : code == 3 ? "lock operations failed"
          : code >= 10 ? "an fd above 2 is open (exit status 10 + fd)"
                       : "crashed or timed out");
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--fresh-fds") == 0)
        return fresh_fds(argv[2]);

    qtest_init();
    fd = qtest_tmpfile(100, &path);
    CHECK((void *)fcntl == (void *)fcntl64, "fcntl is not redirected to fcntl64");
    CHECK((void *)lockf == (void *)lockf64, "lockf is not redirected to lockf64");
    read_lock_visible(0);
    read_lock_visible(1);
    large_offsets();
    no_fds_used();
    no_fds_after_exec();
    close(fd);
    return QTEST_DONE();
}
