/*
 * t_split_merge.c - splitting, coalescing, upgrading and downgrading locks.
 *
 * QNX docs checked: lib_ref f/fcntl.html ("There will be at most one type of
 * lock set for each byte in the file"; a new lock replaces the existing lock
 * on the bytes it covers) and l/lockf.html ("adjacent locked sections ... are
 * combined into a single locked section"; releasing the middle of a section
 * leaves "two separate locked sections").  QNX and Linux agree, so every check
 * runs in both modes.
 */
#include "qtest.h"

/* unlocking the middle of a lock leaves two pieces */
static void split(int fd)
{
    pid_t me = getpid();
    CHECK_OK(setlk(fd, F_WRLCK, 0, 100));
    CHECK_OK(unlock(fd, 40, 20));
    CHECK_CAN_LOCK(fd, F_WRLCK, 40, 20);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 0, 1);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 39, 1);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 60, 1);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 99, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 100, 1);
    CHECK_GETLK(fd, 30, 20, F_WRLCK, 0, 40, me);
    CHECK_GETLK(fd, 50, 20, F_WRLCK, 60, 40, me);
    CHECK_GETLK_FREE(fd, 40, 20);
    CHECK_OK(unlock(fd, 0, 0));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
}

/* adjacent and overlapping locks of one type coalesce */
static void merge(int fd)
{
    pid_t me = getpid();
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_OK(setlk(fd, F_WRLCK, 10, 10));
    CHECK_GETLK(fd, 0, 1, F_WRLCK, 0, 20, me);
    CHECK_GETLK(fd, 19, 1, F_WRLCK, 0, 20, me);
    CHECK_OK(unlock(fd, 0, 20));

    CHECK_OK(setlk(fd, F_RDLCK, 0, 10));
    CHECK_OK(setlk(fd, F_RDLCK, 5, 15)); /* overlapping */
    CHECK_GETLK(fd, 0, 1, F_RDLCK, 0, 20, me);
    CHECK_OK(setlk(fd, F_RDLCK, 30, 10));
    CHECK_OK(setlk(fd, F_RDLCK, 15, 20)); /* bridges [0,20) and [30,40) */
    CHECK_GETLK(fd, 39, 1, F_RDLCK, 0, 40, me);
    CHECK_OK(unlock(fd, 0, 40));

    /* different types do not merge */
    CHECK_OK(setlk(fd, F_RDLCK, 0, 10));
    CHECK_OK(setlk(fd, F_WRLCK, 10, 10));
    CHECK_GETLK(fd, 0, 1, F_RDLCK, 0, 10, me);
    CHECK_GETLK(fd, 15, 1, F_WRLCK, 10, 10, me);
    CHECK_OK(unlock(fd, 0, 20));
    CHECK_GETLK_FREE(fd, 0, 0);
}

/* a write lock on part of a read lock splits it into three */
static void upgrade(int fd)
{
    pid_t me = getpid();
    CHECK_OK(setlk(fd, F_RDLCK, 0, 30));
    CHECK_OK(setlk(fd, F_WRLCK, 10, 10));
    CHECK_GETLK(fd, 0, 1, F_RDLCK, 0, 10, me);
    CHECK_GETLK(fd, 12, 1, F_WRLCK, 10, 10, me);
    CHECK_GETLK(fd, 25, 1, F_RDLCK, 20, 10, me);
    CHECK_CAN_LOCK(fd, F_RDLCK, 0, 10);
    CHECK_CANNOT_LOCK(fd, F_RDLCK, 10, 10);
    CHECK_CAN_LOCK(fd, F_RDLCK, 20, 10);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 0, 1);
    CHECK_OK(unlock(fd, 0, 30));
}

/* write -> read downgrade lets other readers in, but not writers */
static void downgrade(int fd)
{
    pid_t me = getpid();
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_CANNOT_LOCK(fd, F_RDLCK, 0, 10);
    CHECK_OK(setlk(fd, F_RDLCK, 0, 10));
    CHECK_CAN_LOCK(fd, F_RDLCK, 0, 10);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 0, 10);
    CHECK_GETLK(fd, 0, 10, F_RDLCK, 0, 10, me);
    /* partial downgrade of a write lock */
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_OK(setlk(fd, F_RDLCK, 0, 5));
    CHECK_CAN_LOCK(fd, F_RDLCK, 0, 5);
    CHECK_CANNOT_LOCK(fd, F_RDLCK, 5, 5);
    CHECK_GETLK(fd, 0, 1, F_RDLCK, 0, 5, me);
    CHECK_GETLK(fd, 9, 1, F_WRLCK, 5, 5, me);
    CHECK_OK(unlock(fd, 0, 10));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
}

int main(void)
{
    qtest_init();
    int fd = qtest_tmpfile(100, NULL);
    split(fd);
    merge(fd);
    upgrade(fd);
    downgrade(fd);
    close(fd);
    return QTEST_DONE();
}
