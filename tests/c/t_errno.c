/*
 * t_errno.c - the library never changes errno behind the program's back.
 *
 * POSIX: "The value of errno shall be defined only after a call to a
 * function for which it is explicitly stated to be set and until it is
 * changed by the next function call"; programs rely on glibc leaving errno
 * alone on success and on main() starting with errno 0.  A preloaded
 * library whose constructor or lock paths make failing syscalls of their
 * own (probing dead owners, scanning descriptors) must restore errno.
 *
 *   (a) main() of a new preloaded image sees errno == 0 (printed as
 *       inherited, never set by the test) when it starts:
 *        a1  a plain exec, after a lock holder was SIGKILLed (its locks are
 *            still in the registry);
 *        a2  an exec that adopts locks (one kept descriptor, one
 *            close-on-exec descriptor of locked files), after the kill;
 *        a3  the same with a file mapping in the old image;
 *   (b) errno = EBADMSG, then each successful call, and errno must still be
 *       EBADMSG: F_SETLK, F_GETLK, F_SETLK unlock, F_SETLKW (free, and
 *       after waiting for another process's lock), lockf F_TLOCK / F_TEST /
 *       F_ULOCK / F_LOCK, flock LOCK_EX / LOCK_UN, close of a locked fd,
 *       mmap / munmap of a file, dup2 over a locked fd, dup, open, fork (in
 *       both processes), close_range / closefrom over locked fds, fclose of
 *       a locked stream, F_SETLK over a SIGKILLed holder's range, munlock,
 *       and mlock (as root).
 * Same expectations natively and under the shim.
 *
 * Helper mode: t_errno --errno   print "ERRNO <errno at main's entry>".
 */
#include "qtest.h"

#define KEEP_FD 40

static const char *path, *path2;
static int test_fd, test_fd2;

/* ---- (a) ---------------------------------------------------------------- */

static void holder_killed(void)
{
    pid_t p = fork();
    if (p < 0)
        qtest_fatal("fork");
    if (p == 0) {
        alarm(QTEST_CHILD_TIMEOUT_S);
        int fd = open(path, O_RDWR);
        setlk(fd, F_WRLCK, 50, 10);
        flock(open(path2, O_RDWR), LOCK_EX);
        for (;;)
            pause();
    }
    qtest_msleep(100);
    kill(p, SIGKILL);
    qtest_wait(p, 5000);
}

static void before_adopt(void *arg)
{
    int with_map = arg != NULL;
    int fd = open(path, O_RDWR);
    if (fd < 0 || dup2(fd, KEEP_FD) != KEEP_FD)
        _exit(90);
    close(fd);
    if (setlk(KEEP_FD, F_WRLCK, 0, 10) != 0)
        _exit(91);
    int fc = open(path2, O_RDWR | O_CLOEXEC);
    if (fc < 0 || setlk(fc, F_WRLCK, 0, 10) != 0)
        _exit(92);
    if (with_map &&
        mmap(NULL, 4096, PROT_READ, MAP_SHARED, KEEP_FD, 0) == MAP_FAILED)
        _exit(93);
}

static void check_main_errno(const char *what, void (*before)(void *),
                             void *arg)
{
    char *av[] = {"t_errno", "--errno", NULL};
    qtest_helper h = qtest_spawn_after(NULL, av, NULL, before, arg);
    char out[256] = "", err[1024] = "", o1[300], e1[1100];
    qtest_read_until(h.out, out, sizeof out, "ERRNO", 10000);
    int st = qtest_helper_finish(&h, 5000, out, sizeof out, err, sizeof err);
    long long e = qtest_out_val(out, "ERRNO", -1);
    CHECK(e == 0, "%s: main() of the new image started with errno %s "
          "(stdout \"%s\", stderr \"%s\")", what,
          e < 0 ? "unknown" : qtest_errname((int)e),
          qtest_oneline(out, o1, sizeof o1), qtest_oneline(err, e1, sizeof e1));
    CHECK(qtest_exited0(st), "%s: helper status %#x", what, st);
}

/* ---- (b) ---------------------------------------------------------------- */

#define MARK EBADMSG

/* Run `call` (which must succeed) with errno = MARK before it; CHECK that
 * it succeeded and errno is still MARK. */
#define KEEPS_ERRNO(call)                                                     \
    do {                                                                      \
        errno = MARK;                                                         \
        long qt_r_ = (long)(call);                                            \
        int qt_e_ = errno;                                                    \
        CHECK(qt_r_ != -1 && qt_e_ == MARK,                                   \
              "%s: returned %ld; errno afterwards %s, expected it left at "   \
              "EBADMSG", #call, qt_r_, qtest_errname(qt_e_));                 \
    } while (0)

static int lockf_at(int fd, off_t off, int func, off_t size)
{
    qtest_seek(fd, off);
    return lockf(fd, func, size);
}

static void hold_then_release(void *arg)
{
    int fd = *(int *)arg;
    setlk(fd, F_WRLCK, 200, 10);
    child_say('L');
    qtest_msleep(150);
    unlock(fd, 200, 10);
    child_await('Q', 10000);
}

static void plain_calls(void)
{
    int fd = test_fd;
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    KEEPS_ERRNO(fcntl(fd, F_SETLK, &fl));
    fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    KEEPS_ERRNO(fcntl(fd, F_GETLK, &fl));
    fl = qtest_fl(F_UNLCK, SEEK_SET, 0, 10);
    KEEPS_ERRNO(fcntl(fd, F_SETLK, &fl));
    fl = qtest_fl(F_WRLCK, SEEK_SET, 20, 10);
    KEEPS_ERRNO(fcntl(fd, F_SETLKW, &fl));
    KEEPS_ERRNO(unlock(fd, 20, 10));
    KEEPS_ERRNO(lockf_at(fd, 30, F_TLOCK, 10));
    KEEPS_ERRNO(lockf_at(fd, 30, F_TEST, 10));
    KEEPS_ERRNO(lockf_at(fd, 30, F_ULOCK, 10));
    KEEPS_ERRNO(lockf_at(fd, 30, F_LOCK, 10));
    KEEPS_ERRNO(lockf_at(fd, 30, F_ULOCK, 10));
    int f2 = qtest_open(path2, O_RDWR);
    KEEPS_ERRNO(flock(f2, LOCK_EX));
    KEEPS_ERRNO(flock(f2, LOCK_UN));
    KEEPS_ERRNO(flock(f2, LOCK_SH | LOCK_NB));
    KEEPS_ERRNO(close(f2)); /* closes a flocked descriptor */

    /* F_SETLKW that waits for another process first */
    qtest_child c = qtest_child_start(hold_then_release, &fd);
    CHECK_HEAR(&c, 'L', 5000, NULL);
    fl = qtest_fl(F_WRLCK, SEEK_SET, 200, 10);
    KEEPS_ERRNO(fcntl(fd, F_SETLKW, &fl));
    KEEPS_ERRNO(unlock(fd, 200, 10));
    CHECK_CHILD_FINISH(&c);
    /* lockf(F_LOCK) that waits */
    c = qtest_child_start(hold_then_release, &fd);
    CHECK_HEAR(&c, 'L', 5000, NULL);
    KEEPS_ERRNO(lockf_at(fd, 200, F_LOCK, 10));
    KEEPS_ERRNO(lockf_at(fd, 200, F_ULOCK, 10));
    CHECK_CHILD_FINISH(&c);

    /* close of a locked descriptor, dup2 over one, dup, open */
    int a = qtest_open(path, O_RDWR);
    CHECK_OK(setlk(a, F_WRLCK, 300, 10));
    KEEPS_ERRNO(close(a));
    a = qtest_open(path, O_RDWR);
    CHECK_OK(setlk(a, F_WRLCK, 300, 10));
    int b = qtest_open(path2, O_RDWR);
    KEEPS_ERRNO(dup2(b, a)); /* a's file (path) is released */
    KEEPS_ERRNO(dup(b));
    KEEPS_ERRNO(open(path, O_RDWR));
    CHECK_CAN_LOCK(fd, F_WRLCK, 300, 10);

    /* mmap / munmap of a file */
    errno = MARK;
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    CHECK(m != MAP_FAILED && e == MARK, "mmap of a file: errno afterwards %s",
          qtest_errname(e));
    if (m != MAP_FAILED) {
        KEEPS_ERRNO(munlock(m, 4096));
        if (geteuid() == 0)
            KEEPS_ERRNO(mlock(m, 4096));
        KEEPS_ERRNO(munlock(m, 4096));
        KEEPS_ERRNO(munmap(m, 4096));
    }

    /* fclose of a locked stream */
    FILE *f = fopen(path, "r+");
    if (f) {
        CHECK_OK(setlk(fileno(f), F_WRLCK, 400, 10));
        KEEPS_ERRNO(fclose(f));
    }
    CHECK_CAN_LOCK(fd, F_WRLCK, 400, 10);

    /* F_SETLK over a SIGKILLed holder's range (the library reaps it) */
    holder_killed();
    int tries = 0, r;
    do {
        errno = MARK;
        fl = qtest_fl(F_WRLCK, SEEK_SET, 50, 10);
        r = fcntl(fd, F_SETLK, &fl);
        if (r != 0)
            qtest_msleep(20);
    } while (r != 0 && ++tries < 100);
    e = errno;
    CHECK(r == 0 && e == MARK, "F_SETLK over a killed holder's range: %d, "
          "errno afterwards %s (%d retries)", r, qtest_errname(e), tries);
    unlock(fd, 50, 10);
    /* flock over a killed holder's flock */
    int f3 = qtest_open(path2, O_RDWR);
    tries = 0;
    do {
        errno = MARK;
        r = flock(f3, LOCK_EX | LOCK_NB);
        if (r != 0)
            qtest_msleep(20);
    } while (r != 0 && ++tries < 100);
    e = errno;
    CHECK(r == 0 && e == MARK, "flock over a killed holder's flock: %d, "
          "errno afterwards %s (%d retries)", r, qtest_errname(e), tries);
    close(f3);
}

static void fork_keeps(void)
{
    errno = MARK;
    pid_t p = fork();
    if (p == 0) {
        int e = errno;
        _exit(e == MARK ? 0 : 1);
    }
    int e = errno;
    CHECK(p > 0 && e == MARK, "fork: errno in the parent afterwards %s",
          qtest_errname(e));
    int st = qtest_wait(p, 5000);
    CHECK(qtest_exited0(st), "fork: errno in the child was not EBADMSG");
}

static void range_closes(void)
{
    /* in a child: close_range / closefrom over locked descriptors */
    pid_t p = fork();
    if (p == 0) {
        alarm(30);
        int bad = 0;
        int a = open(path, O_RDWR), b = open(path2, O_RDWR);
        setlk(a, F_WRLCK, 500, 10);
        setlk(b, F_WRLCK, 500, 10);
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
        errno = MARK;
        int lo = a < b ? a : b, hi = a < b ? b : a;
        int r = close_range((unsigned)lo, (unsigned)hi, 0);
        bad |= r != 0 || errno != MARK;
        a = open(path, O_RDWR);
        setlk(a, F_WRLCK, 500, 10);
        errno = MARK;
        closefrom(a);
        bad |= (errno != MARK) << 1;
#endif
        _exit(bad);
    }
    int st = qtest_wait(p, 10000);
    CHECK(qtest_exited0(st), "close_range/closefrom over locked fds changed "
          "errno (child status %#x: bit 0 close_range, bit 1 closefrom)",
          st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : st);
}

int main(int argc, char **argv)
{
    int e0 = errno; /* first thing: what the runtime (and library) left */
    if (argc >= 2 && strcmp(argv[1], "--errno") == 0) {
        alarm(20);
        qtest_print("ERRNO %d", e0);
        return 0;
    }
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    CHECK(e0 == 0, "this test's own main() started with errno %s",
          qtest_errname(e0));
    test_fd = qtest_tmpfile(8192, &path);
    test_fd2 = qtest_tmpfile(8192, &path2);
    holder_killed();
    check_main_errno("a1 plain exec after a SIGKILLed holder", NULL, NULL);
    holder_killed();
    check_main_errno("a2 exec adopting locks", before_adopt, NULL);
    holder_killed();
    check_main_errno("a3 exec adopting locks and a mapping", before_adopt,
                     (void *)1);
    plain_calls();
    fork_keeps();
    range_closes();
    close(test_fd);
    close(test_fd2);
    return QTEST_DONE();
}
