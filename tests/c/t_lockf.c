/*
 * t_lockf.c - lockf() F_LOCK / F_TLOCK / F_TEST / F_ULOCK.
 *
 * QNX docs checked: lib_ref l/lockf.html and i/iofunc_lock.html:
 *  - F_TLOCK fails with EACCES or EAGAIN "if the section is already locked by
 *    another process" (the shim answers EAGAIN);
 *  - F_TEST returns -1 EACCES "if a lock by another process is present on the
 *    specified section" - any lock, read locks included (glibc's F_TEST only
 *    tests with F_RDLCK, so natively a foreign read lock gives 0);
 *  - EBADF: F_LOCK/F_TLOCK and "the file descriptor isn't open for writing";
 *  - EINVAL: bad function, "or the size plus the current file offset is less
 *    than 0";
 *  - size < 0: the section "extends backward" from the current offset;
 *    size == 0: from the offset "through the present or any future
 *    end-of-file";
 *  - F_ULOCK releases wholly or in part; with an existing size-0 lock, an
 *    F_ULOCK of size OFF_MAX unlocks to the end of file and beyond.
 */
#include "qtest.h"

#define BIG ((off_t)1 << 40)
#define GIB ((off_t)1 << 30)

/* F_TLOCK / F_TEST by another process vs our write lock */
static void tlock_test(int fd)
{
    int shim = qtest_mode_shim();
    CHECK_OK(qtest_lockf_at(fd, 0, F_LOCK, 10));
    CHECK_OK(qtest_lockf_at(fd, 0, F_TEST, 10)); /* own lock */
    if (shim) {
        CHECK_OTHER_LOCKF(fd, F_TLOCK, 0, 10, EAGAIN);
        CHECK_OTHER_LOCKF(fd, F_TEST, 5, 10, EACCES);
    } else {
        CHECK_OTHER_LOCKF2(fd, F_TLOCK, 0, 10, EAGAIN, EACCES);
        CHECK_OTHER_LOCKF2(fd, F_TEST, 5, 10, EACCES, EAGAIN);
    }
    CHECK_OTHER_LOCKF(fd, F_TEST, 10, 10, 0);  /* free section */
    CHECK_OTHER_LOCKF(fd, F_TLOCK, 10, 10, 0);
    CHECK_OK(qtest_lockf_at(fd, 0, F_ULOCK, 10));
    CHECK_OTHER_LOCKF(fd, F_TEST, 0, 10, 0);
}

/* F_TEST sees a foreign READ lock on QNX only */
static void test_vs_read_lock(int fd)
{
    CHECK_OK(setlk(fd, F_RDLCK, 20, 10));
    if (qtest_mode_shim()) {
        CHECK_OTHER_LOCKF(fd, F_TEST, 20, 10, EACCES);
        CHECK_OTHER_LOCKF(fd, F_TEST, 29, 1, EACCES);
        CHECK_OTHER_LOCKF(fd, F_TLOCK, 25, 1, EAGAIN);
    } else {
        CHECK_OTHER_LOCKF(fd, F_TEST, 20, 10, 0);
        CHECK_OTHER_LOCKF2(fd, F_TLOCK, 25, 1, EAGAIN, EACCES);
    }
    CHECK_OTHER_LOCKF(fd, F_TEST, 30, 10, 0);
    CHECK_OK(unlock(fd, 20, 10));
}

static void errors(int fd, const char *path)
{
    int ro = qtest_open(path, O_RDONLY);
    CHECK_ERR(lockf(ro, F_LOCK, 10), EBADF);
    CHECK_ERR(lockf(ro, F_TLOCK, 10), EBADF);
    close(ro);
    CHECK_ERR(lockf(fd, 42, 10), EINVAL);
    CHECK_ERR(qtest_lockf_at(fd, 5, F_LOCK, -10), EINVAL);
    CHECK_ERR(qtest_lockf_at(fd, 5, F_TLOCK, -6), EINVAL);
    CHECK_OTHER_LOCKF(fd, F_TLOCK, 0, 0, 0); /* nothing was locked */
}

/* size < 0 locks the bytes before the offset; size 0 locks to EOF and beyond */
static void sizes(int fd)
{
    CHECK_OK(qtest_lockf_at(fd, 10, F_LOCK, -5)); /* [5,10) */
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 5, 1);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 9, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 4, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 10, 1);
    CHECK_GETLK(fd, 0, 0, F_WRLCK, 5, 5, getpid());
    CHECK_OK(qtest_lockf_at(fd, 10, F_ULOCK, -5));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);

    CHECK_OK(qtest_lockf_at(fd, 50, F_LOCK, 0)); /* [50, inf) */
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 50, 1);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, BIG, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 49, 1);
    CHECK_GETLK(fd, 60, 1, F_WRLCK, 50, 0, getpid());
    CHECK_OK(qtest_lockf_at(fd, 50, F_ULOCK, 0));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
}

/* releasing the middle of a section leaves two sections */
static void ulock_split(int fd)
{
    pid_t me = getpid();
    CHECK_OK(qtest_lockf_at(fd, 0, F_LOCK, 30));
    CHECK_OK(qtest_lockf_at(fd, 10, F_ULOCK, 10));
    CHECK_CAN_LOCK(fd, F_WRLCK, 10, 10);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 0, 1);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 9, 1);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 20, 1);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 29, 1);
    CHECK_GETLK(fd, 0, 15, F_WRLCK, 0, 10, me);
    CHECK_GETLK(fd, 15, 15, F_WRLCK, 20, 10, me);
    CHECK_OK(qtest_lockf_at(fd, 0, F_ULOCK, 30));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
}

/* F_ULOCK of size OFF_MAX over a size-0 lock releases it to EOF and beyond */
static void ulock_off_max(int fd)
{
    /* the section ends exactly at OFF_MAX: the same everywhere */
    CHECK_OK(qtest_lockf_at(fd, 100, F_LOCK, 0));
    CHECK_OK(qtest_lockf_at(fd, 100, F_ULOCK, LLONG_MAX - 100 + 1));
    CHECK_CAN_LOCK(fd, F_WRLCK, BIG, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, 100, 0);

    /* size == OFF_MAX itself: QNX unlocks [100, inf); Linux overflows */
    CHECK_OK(qtest_lockf_at(fd, 100, F_LOCK, 0));
    if (qtest_mode_shim()) {
        CHECK_OK(qtest_lockf_at(fd, 100, F_ULOCK, LLONG_MAX));
        CHECK_CAN_LOCK(fd, F_WRLCK, BIG, 1);
        CHECK_CAN_LOCK(fd, F_WRLCK, 100, 0);
    } else {
        CHECK_ERR(qtest_lockf_at(fd, 100, F_ULOCK, LLONG_MAX), EOVERFLOW);
        CHECK_CANNOT_LOCK(fd, F_WRLCK, BIG, 1);
    }
    CHECK_OK(unlock(fd, 0, 0));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
}

/* lockf64 at offsets above 4 GiB */
static void above_4g(int fd)
{
    off_t at = 5 * GIB;
    qtest_seek(fd, at);
    CHECK_OK(lockf64(fd, F_TLOCK, 100));
    if (qtest_mode_shim())
        CHECK_OTHER_LOCKF(fd, F_TLOCK, at + 50, 10, EAGAIN);
    else
        CHECK_OTHER_LOCKF2(fd, F_TLOCK, at + 50, 10, EAGAIN, EACCES);
    CHECK_OTHER_LOCKF(fd, F_TLOCK, GIB, 100, 0);
    CHECK_OTHER_LOCKF(fd, F_TLOCK, at + 100, 10, 0);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, at, 1);
    CHECK_CAN_LOCK(fd, F_WRLCK, GIB, 100);
    CHECK_GETLK(fd, 4 * GIB, 2 * GIB, F_WRLCK, at, 100, getpid());
    qtest_seek(fd, at);
    CHECK_OK(lockf64(fd, F_ULOCK, 100));
    CHECK_CAN_LOCK(fd, F_WRLCK, at, 100);
}

/* lockf() and fcntl() locks are the same locks */
static void same_locks(int fd)
{
    CHECK_OK(qtest_lockf_at(fd, 0, F_LOCK, 10));
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 0, 10);
    CHECK_CANNOT_LOCK(fd, F_RDLCK, 5, 1);
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, getpid());
    CHECK_OK(unlock(fd, 0, 10)); /* fcntl releases a lockf lock */
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);

    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    if (qtest_mode_shim())
        CHECK_OTHER_LOCKF(fd, F_TLOCK, 0, 10, EAGAIN);
    else
        CHECK_OTHER_LOCKF2(fd, F_TLOCK, 0, 10, EAGAIN, EACCES);
    CHECK_OK(qtest_lockf_at(fd, 0, F_ULOCK, 10)); /* lockf releases fcntl's */
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
}

int main(void)
{
    qtest_init();
    const char *path;
    int fd = qtest_tmpfile(100, &path);
    tlock_test(fd);
    test_vs_read_lock(fd);
    errors(fd, path);
    sizes(fd);
    ulock_split(fd);
    ulock_off_max(fd);
    above_4g(fd);
    same_locks(fd);
    close(fd);
    return QTEST_DONE();
}
