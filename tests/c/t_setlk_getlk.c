/*
 * t_setlk_getlk.c - fcntl() F_SETLK / F_GETLK between processes.
 *
 * QNX docs checked: lib_ref f/fcntl.html (F_GETLK, F_SETLK, struct flock:
 * l_whence SEEK_SET/SEEK_CUR/SEEK_END, l_len 0 = "to the largest possible
 * offset", negative l_len, F_GETLK "returns ... l_pid of the process holding
 * the lock", or sets l_type to F_UNLCK and leaves the rest unchanged) and
 * i/iofunc_lock.html.  Both QNX and Linux follow POSIX here, so every check
 * runs in both modes.
 */
#include "qtest.h"

#define BIG ((off_t)1 << 40)

/* parent W [0,10) vs another process */
static void conflicts(int fd)
{
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 5, 10); /* [5,15) overlaps */
    CHECK_CANNOT_LOCK(fd, F_RDLCK, 9, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 10, 5); /* [10,15) touches only */
    CHECK_GETLK(fd, 5, 10, F_WRLCK, 0, 10, getpid());
    CHECK_GETLK_FREE(fd, 10, 100);
    /* a process never sees its own locks */
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    CHECK_OK(fcntl(fd, F_GETLK, &fl));
    CHECK_EQ(fl.l_type, F_UNLCK);
    CHECK_OK(unlock(fd, 0, 10));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
}

/* shared readers */
static void readers(int fd)
{
    CHECK_OK(setlk(fd, F_RDLCK, 0, 10));
    CHECK_CAN_LOCK(fd, F_RDLCK, 5, 10);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 5, 10);
    CHECK_GETLK(fd, 0, 1, F_RDLCK, 0, 10, getpid());
    /* a read query does not conflict with a read lock */
    struct flock fl;
    CHECK_OK(qtest_probe_getlk(fd, F_RDLCK, 0, 10, &fl));
    CHECK_EQ(fl.l_type, F_UNLCK);
    CHECK_OK(unlock(fd, 0, 10));
}

/* F_GETLK with l_type F_UNLCK is invalid */
static void getlk_unlck(int fd)
{
    struct flock fl = qtest_fl(F_UNLCK, SEEK_SET, 0, 10);
    CHECK_ERR(fcntl(fd, F_GETLK, &fl), EINVAL);
}

/* l_start=10, l_len=-5 locks [5,10) */
static void negative_len(int fd)
{
    CHECK_OK(setlk(fd, F_WRLCK, 10, -5));
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 5, 1);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 9, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 10, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 4, 1);
    CHECK_GETLK(fd, 0, 100, F_WRLCK, 5, 5, getpid());
    CHECK_OK(unlock(fd, 5, 5));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 100);
}

/* l_len=0 locks to EOF and beyond */
static void to_eof(int fd)
{
    CHECK_OK(setlk(fd, F_WRLCK, 50, 0));
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 50, 1);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 99, 1);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, BIG, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 50);
    CHECK_GETLK(fd, BIG, 10, F_WRLCK, 50, 0, getpid());
    CHECK_OK(unlock(fd, 50, 0));
    CHECK_CAN_LOCK(fd, F_WRLCK, BIG, 1);
}

static int query_fd;
static pid_t parent_pid;

/* child: F_GETLK relative to the current offset */
static void getlk_seek_cur(void *arg)
{
    (void)arg;
    qtest_seek(query_fd, 35);
    struct flock fl = qtest_fl(F_WRLCK, SEEK_CUR, 0, 10); /* [35,45) */
    fl.l_pid = -7;
    CHECK_OK(fcntl(query_fd, F_GETLK, &fl));
    CHECK(fl.l_type == F_RDLCK && fl.l_whence == SEEK_SET &&
              fl.l_start == 40 && fl.l_len == 10 && fl.l_pid == parent_pid,
          "F_GETLK SEEK_CUR: got {%s, whence=%d, start=%lld, len=%lld, pid=%d}",
          qtest_typename(fl.l_type), fl.l_whence, (long long)fl.l_start,
          (long long)fl.l_len, (int)fl.l_pid);
    /* free range: nothing but l_type changes, l_whence stays SEEK_CUR */
    fl = qtest_fl(F_WRLCK, SEEK_CUR, 15, 5); /* [50,55) */
    fl.l_pid = -7;
    CHECK_OK(fcntl(query_fd, F_GETLK, &fl));
    CHECK(fl.l_type == F_UNLCK && fl.l_whence == SEEK_CUR &&
              fl.l_start == 15 && fl.l_len == 5 && fl.l_pid == -7,
          "F_GETLK SEEK_CUR free: got {%s, whence=%d, start=%lld, len=%lld, "
          "pid=%d}",
          qtest_typename(fl.l_type), fl.l_whence, (long long)fl.l_start,
          (long long)fl.l_len, (int)fl.l_pid);
}

/* SEEK_CUR and SEEK_END starts are converted to absolute offsets */
static void whence(int fd)
{
    qtest_seek(fd, 20);
    struct flock fl = qtest_fl(F_WRLCK, SEEK_CUR, 5, 5); /* [25,30) */
    CHECK_OK(fcntl(fd, F_SETLK, &fl));
    qtest_seek(fd, 0);
    CHECK_GETLK(fd, 0, 100, F_WRLCK, 25, 5, getpid());
    CHECK_CAN_LOCK(fd, F_WRLCK, 24, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 30, 1);
    CHECK_OK(unlock(fd, 25, 5));

    /* file size is 100: SEEK_END -10, len 5 is [90,95) */
    fl = qtest_fl(F_WRLCK, SEEK_END, -10, 5);
    CHECK_OK(fcntl(fd, F_SETLK, &fl));
    CHECK_GETLK(fd, 0, 0, F_WRLCK, 90, 5, getpid());
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 94, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 89, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 95, 1);
    /* unlock relative to the end too */
    fl = qtest_fl(F_UNLCK, SEEK_END, -10, 5);
    CHECK_OK(fcntl(fd, F_SETLK, &fl));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);

    /* F_GETLK with SEEK_CUR: the answer is in SEEK_SET terms */
    CHECK_OK(setlk(fd, F_RDLCK, 40, 10));
    query_fd = fd;
    parent_pid = getpid();
    RUN_IN_CHILD(getlk_seek_cur, NULL);
    CHECK_OK(unlock(fd, 40, 10));
    qtest_seek(fd, 0);
}

int main(void)
{
    qtest_init();
    int fd = qtest_tmpfile(100, NULL);
    conflicts(fd);
    readers(fd);
    getlk_unlck(fd);
    negative_len(fd);
    to_eof(fd);
    whence(fd);
    close(fd);
    return QTEST_DONE();
}
