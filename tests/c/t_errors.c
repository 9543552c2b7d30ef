/*
 * t_errors.c - error returns of fcntl() locking, lockf() and flock(), and
 * pass-through of the fcntl() commands that are not about locks.
 *
 * QNX docs checked: lib_ref f/fcntl.html (EBADF: "fildes isn't a valid open
 * file descriptor", or F_RDLCK on a descriptor not open for reading / F_WRLCK
 * not open for writing; EINVAL: invalid cmd, l_whence or l_type, or a start
 * before the beginning of the file; EOVERFLOW: an offset "can't be
 * represented correctly in an object of type off_t"; EFAULT), l/lockf.html,
 * f/flock.html and i/iofunc_lock.html.  QNX and Linux agree on all of these,
 * so every check runs in both modes.
 */
#include <sys/file.h>

#include "qtest.h"

/* the descriptor must be open for the kind of lock */
static void access_mode(const char *path)
{
    int ro = qtest_open(path, O_RDONLY);
    int wo = qtest_open(path, O_WRONLY);
    CHECK_ERR(setlk(ro, F_WRLCK, 0, 10), EBADF);
    CHECK_ERR(setlkw(ro, F_WRLCK, 0, 10), EBADF);
    CHECK_ERR(setlk(wo, F_RDLCK, 0, 10), EBADF);
    CHECK_ERR(setlkw(wo, F_RDLCK, 0, 10), EBADF);
    CHECK_GETLK_FREE(ro, 0, 0); /* nothing was locked */
    CHECK_OK(setlk(ro, F_RDLCK, 0, 10));
    CHECK_OK(unlock(ro, 0, 10));
    CHECK_OK(setlk(wo, F_WRLCK, 0, 10));
    CHECK_OK(unlock(wo, 0, 10));
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    CHECK_OK(fcntl(ro, F_GETLK, &fl)); /* testing needs no access */
    CHECK_EQ(fl.l_type, F_UNLCK);
    close(ro);
    close(wo);
}

static void bad_fd(void)
{
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    CHECK_ERR(fcntl(999, F_SETLK, &fl), EBADF);
    CHECK_ERR(fcntl(999, F_SETLKW, &fl), EBADF);
    CHECK_ERR(fcntl(999, F_GETLK, &fl), EBADF);
    CHECK_ERR(fcntl(-1, F_SETLK, &fl), EBADF);
    CHECK_ERR(lockf(999, F_TLOCK, 10), EBADF);
    CHECK_ERR(lockf(999, F_LOCK, 10), EBADF);
    CHECK_ERR(lockf(999, F_TEST, 10), EBADF);
    CHECK_ERR(lockf(999, F_ULOCK, 10), EBADF);
    CHECK_ERR(flock(999, LOCK_EX), EBADF);
    CHECK_ERR(flock(999, LOCK_EX | LOCK_NB), EBADF);
    CHECK_ERR(flock(-1, LOCK_UN), EBADF);
}

static void bad_args(int fd)
{
    CHECK_ERR(qtest_lk_whence(fd, F_SETLK, F_WRLCK, 7, 0, 10), EINVAL);
    CHECK_ERR(qtest_lk_whence(fd, F_GETLK, F_WRLCK, 7, 0, 10), EINVAL);
    CHECK_ERR(qtest_lk_whence(fd, F_SETLK, 99, SEEK_SET, 0, 10), EINVAL);
    CHECK_ERR(qtest_lk_whence(fd, F_SETLKW, 99, SEEK_SET, 0, 10), EINVAL);
    CHECK_ERR(qtest_lk_whence(fd, F_GETLK, 99, SEEK_SET, 0, 10), EINVAL);
    CHECK_ERR(qtest_lk_whence(fd, F_SETLK, F_WRLCK, SEEK_SET, -1, 10), EINVAL);
    CHECK_ERR(qtest_lk_whence(fd, F_GETLK, F_WRLCK, SEEK_SET, -1, 10), EINVAL);
    CHECK_ERR(qtest_lk_whence(fd, F_SETLK, F_WRLCK, SEEK_SET, 5, -10), EINVAL);
    CHECK_ERR(qtest_lk_whence(fd, F_SETLK, F_WRLCK, SEEK_END, -101, 1), EINVAL); /* size 100 */
    qtest_seek(fd, 10);
    CHECK_ERR(qtest_lk_whence(fd, F_SETLK, F_WRLCK, SEEK_CUR, -11, 1), EINVAL);
    CHECK_ERR(fcntl(fd, 9999, 0), EINVAL); /* unknown command */
    CHECK_ERR(flock(fd, 0), EINVAL);
    CHECK_ERR(flock(fd, LOCK_NB), EINVAL);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0); /* nothing was locked */
}

static void overflow(int fd)
{
    CHECK_ERR(qtest_lk_whence(fd, F_SETLK, F_WRLCK, SEEK_SET, LLONG_MAX, 2), EOVERFLOW);
    CHECK_ERR(qtest_lk_whence(fd, F_GETLK, F_WRLCK, SEEK_SET, LLONG_MAX, 2), EOVERFLOW);
    qtest_seek(fd, 10);
    CHECK_ERR(qtest_lk_whence(fd, F_SETLK, F_WRLCK, SEEK_CUR, LLONG_MAX, 1), EOVERFLOW);
    CHECK_ERR(qtest_lk_whence(fd, F_SETLK, F_WRLCK, SEEK_END, LLONG_MAX, 1), EOVERFLOW);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0); /* nothing was locked */
    /* the very last byte is representable */
    CHECK_OK(qtest_lk_whence(fd, F_SETLK, F_WRLCK, SEEK_SET, LLONG_MAX, 1));
    /* a lock ending at OFF_MAX may be reported as l_len 1 or 0 ("to EOF") */
    struct flock fl;
    CHECK_OK(qtest_probe_getlk(fd, F_WRLCK, LLONG_MAX, 1, &fl));
    CHECK(fl.l_type == F_WRLCK && fl.l_start == LLONG_MAX &&
              (fl.l_len == 1 || fl.l_len == 0) && fl.l_pid == getpid(),
          "F_GETLK of the last byte: got {%s, start=%lld, len=%lld, pid=%d}",
          qtest_typename(fl.l_type), (long long)fl.l_start,
          (long long)fl.l_len, (int)fl.l_pid);
    CHECK_CAN_LOCK(fd, F_WRLCK, LLONG_MAX - 1, 1);
    CHECK_OK(unlock(fd, LLONG_MAX, 1));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
}

static void null_pointer(int fd)
{
    CHECK_ERR(fcntl(fd, F_SETLK, (struct flock *)NULL), EFAULT);
    CHECK_ERR(fcntl(fd, F_SETLKW, (struct flock *)NULL), EFAULT);
    CHECK_ERR(fcntl(fd, F_GETLK, (struct flock *)NULL), EFAULT);
}

/* commands that are not about locks pass through untouched */
static void passthrough(const char *path)
{
    int fd = qtest_open(path, O_RDWR | O_APPEND);
    CHECK_EQ(fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND | O_NONBLOCK),
             O_RDWR | O_APPEND);
    CHECK_OK(fcntl(fd, F_SETFL, O_APPEND | O_NONBLOCK));
    CHECK_EQ(fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND | O_NONBLOCK),
             O_RDWR | O_APPEND | O_NONBLOCK);
    CHECK_EQ(fcntl(fd, F_GETFD), 0);
    CHECK_OK(fcntl(fd, F_SETFD, FD_CLOEXEC));
    CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
    int d = fcntl(fd, F_DUPFD, 150);
    CHECK_EQ(d, 150);
    CHECK_EQ(fcntl(d, F_GETFD), 0);
    int d2 = fcntl(fd, F_DUPFD_CLOEXEC, 150);
    CHECK_EQ(d2, 151);
    CHECK_EQ(fcntl(d2, F_GETFD), FD_CLOEXEC);
    CHECK_ERR(fcntl(999, F_GETFD), EBADF);
    close(d2);
    close(d);
    close(fd);
}

int main(void)
{
    qtest_init();
    const char *path;
    int fd = qtest_tmpfile(100, &path);
    access_mode(path);
    bad_fd();
    bad_args(fd);
    overflow(fd);
    null_pointer(fd);
    passthrough(path);
    close(fd);
    return QTEST_DONE();
}
