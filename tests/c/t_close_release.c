/*
 * t_close_release.c - closing any descriptor of a file releases the
 * process's locks on it.
 *
 * QNX docs checked: lib_ref l/lockf.html ("File locks are released on the
 * first close by the locking process of any file descriptor for the file")
 * and f/fcntl.html ("All locks associated with a file for a given process are
 * removed when a file descriptor for that file is closed by that process or
 * the process holding that file descriptor terminates").  Linux does the
 * same for every way a descriptor gets closed, so all checks run in both
 * modes.  The lock state is observed with F_GETLK from a forked process.
 */
#include "qtest.h"

static const char *path;
static int fd1; /* the descriptor the locks are taken through */

#define LOCK() CHECK_OK(setlk(fd1, F_WRLCK, 0, 10))
#define EXPECT_HELD() CHECK_GETLK(fd1, 0, 10, F_WRLCK, 0, 10, getpid())
#define EXPECT_RELEASED() CHECK_GETLK_FREE(fd1, 0, 10)

static int open_again(void) { return qtest_open(path, O_RDWR); }

static void by_close(void)
{
    int fd2 = open_again();
    LOCK();
    EXPECT_HELD();
    CHECK_OK(close(fd2));
    EXPECT_RELEASED();
    CHECK_CAN_LOCK(fd1, F_WRLCK, 0, 10);

    /* a dup of the locking descriptor is "any file descriptor" too */
    LOCK();
    fd2 = dup(fd1);
    CHECK_OK(close(fd2));
    EXPECT_RELEASED();
}

static void by_fclose(void)
{
    FILE *f = fopen(path, "r");
    if (!f)
        qtest_fatal("fopen");
    LOCK();
    CHECK_OK(fclose(f));
    EXPECT_RELEASED();
}

static void by_dup2_dup3(void)
{
    int null = qtest_open("/dev/null", O_RDONLY);
    int fd2 = open_again();
    LOCK();
    CHECK_EQ(dup2(null, fd2), fd2); /* closes fd2's file implicitly */
    EXPECT_RELEASED();
    close(fd2);

    fd2 = open_again();
    LOCK();
    CHECK_EQ(dup3(null, fd2, O_CLOEXEC), fd2);
    EXPECT_RELEASED();
    close(fd2);

    /* dup2 onto itself closes nothing */
    LOCK();
    CHECK_EQ(dup2(fd1, fd1), fd1);
    EXPECT_HELD();
    CHECK_OK(unlock(fd1, 0, 10));
    close(null);
}

static void by_close_range(void)
{
    int fd2 = open_again();
    LOCK();
    CHECK_OK(close_range((unsigned)fd2, (unsigned)fd2, 0));
    EXPECT_RELEASED();

    /* CLOSE_RANGE_CLOEXEC only marks the descriptor: nothing is released */
    fd2 = open_again();
    LOCK();
    CHECK_OK(close_range((unsigned)fd2, (unsigned)fd2, CLOSE_RANGE_CLOEXEC));
    CHECK_EQ(fcntl(fd2, F_GETFD), FD_CLOEXEC);
    EXPECT_HELD();
    CHECK_OK(close(fd2));
    EXPECT_RELEASED();
}

static void by_closefrom(void)
{
    /* move fd2 above every other descriptor so closefrom() takes only it */
    int tmp = open_again();
    int fd2 = fcntl(tmp, F_DUPFD, 200);
    CHECK(fd2 >= 200, "F_DUPFD 200 gave %d", fd2);
    close(tmp);
    LOCK();
    closefrom(fd2);
    CHECK_ERR(fcntl(fd2, F_GETFD), EBADF);
    EXPECT_RELEASED();
}

/* closing descriptors of other files (or no file) releases nothing */
static void unrelated(void)
{
    int other = qtest_tmpfile(10, NULL);
    int p[2];
    if (pipe(p) != 0)
        qtest_fatal("pipe");
    LOCK();
    CHECK_OK(setlk(other, F_WRLCK, 0, 10));
    CHECK_OK(close(p[0]));
    CHECK_OK(close(p[1]));
    CHECK_ERR(close(999), EBADF);
    EXPECT_HELD();
    CHECK_OK(close(other));
    EXPECT_HELD();
    CHECK_OK(unlock(fd1, 0, 10));
    EXPECT_RELEASED();
}

/* Child: lock through the inherited fd1, then exit without unlocking. */
static void holder(void *arg)
{
    (void)arg;
    LOCK();
    child_say('L');
    if (child_await('Q', 30000))
        exit(0); /* normal exit, no unlock, no close */
}

static void by_exit(void)
{
    qtest_child c = qtest_child_start(holder, NULL);
    CHECK_HEAR(&c, 'L', 5000, NULL);
    CHECK_GETLK(fd1, 0, 10, F_WRLCK, 0, 10, c.pid);
    CHECK_ERR(setlk(fd1, F_WRLCK, 0, 10), EAGAIN);
    CHECK_CHILD_FINISH(&c);
    CHECK_GETLK_FREE(fd1, 0, 10);
    CHECK_CAN_LOCK(fd1, F_WRLCK, 0, 10);
    LOCK();
    CHECK_OK(unlock(fd1, 0, 10));
}

int main(void)
{
    qtest_init();
    fd1 = qtest_tmpfile(100, &path);
    by_close();
    by_fclose();
    by_dup2_dup3();
    by_close_range();
    by_closefrom();
    unrelated();
    by_exit();
    close(fd1);
    return QTEST_DONE();
}
