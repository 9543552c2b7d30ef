/*
 * t_handler_calls.c - lock calls from signal handlers, and handlers that
 * longjmp out of lock calls, never hang the process.
 *
 * POSIX lists fcntl() among the async-signal-safe functions, so a program may
 * call it from a handler, at any moment of the same thread's own lock calls
 * (even its first, while the library attaches its registry), and may
 * siglongjmp out of a handler that interrupted one.  Found by review: the
 * library asked glibc for the thread's stack bounds (pthread_getattr_np,
 * not async-signal-safe) inside the lock call, and a nested call spun on the
 * registry's "attaching" state of the very thread it interrupted.
 *
 * Each case runs in a child with a timer firing every 50 us, bounded by a
 * 20 s wait: a hang is a failure.  Natively the same runs pass.
 */
#include "qtest.h"

#include <setjmp.h>
#include <sys/time.h>

static int fd;
static volatile sig_atomic_t hits;
static sigjmp_buf jb;

static void probe_handler(int sig)
{
    (void)sig;
    int e = errno;
    struct flock f = qtest_fl(F_WRLCK, SEEK_SET, 100, 1);
    fcntl(fd, F_GETLK, &f);
    hits++;
    errno = e;
}

static void jump_handler(int sig)
{
    (void)sig;
    hits++;
    siglongjmp(jb, 1);
}

static void tick(int usec)
{
    struct itimerval it = {{0, usec}, {0, usec}};
    setitimer(ITIMER_REAL, &it, NULL);
}

/* A handler's F_GETLK lands inside the main thread's lock calls, from the
 * very first (attach) on. */
static void handler_locks(void *path)
{
    fd = qtest_open(path, O_RDWR);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = probe_handler;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    tick(50);
    long bad = 0;
    for (long i = 0; i < 100000; i++) {
        bad += qtest_lk(fd, F_SETLK, F_WRLCK, i % 7, 3) != 0;
        bad += qtest_lk(fd, F_SETLK, F_UNLCK, i % 7, 3) != 0;
    }
    tick(0);
    child_report('D', bad, (int)hits);
}

/* The handler jumps out of whatever lock call it interrupted. */
static void handler_jumps(void *path)
{
    fd = qtest_open(path, O_RDWR);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = jump_handler;
    sigaction(SIGALRM, &sa, NULL);
    tick(50);
    static volatile long ops;
    sigsetjmp(jb, 1);
    while (ops < 100000) {
        qtest_lk(fd, F_SETLK, F_WRLCK, ops % 7, 3);
        qtest_lk(fd, F_SETLK, F_UNLCK, ops % 7, 3);
        ops++;
    }
    tick(0);
    /* Whatever the jumps left half done, locking still works. */
    int r = qtest_lk(fd, F_SETLK, F_WRLCK, 1000, 1);
    child_report('D', r == 0 ? 0 : -errno, (int)hits);
}

static void run(const char *what, void (*fn)(void *), const char *path)
{
    qtest_child c = qtest_child_start(fn, (void *)path);
    struct qtest_msg m;
    if (CHECK_HEAR(&c, 'D', 20000, &m)) {
        CHECK(m.val == 0, "%s: %lld lock calls failed", what, m.val);
        qtest_print("INFO %s: %d signals handled", what, m.err);
    }
    CHECK_CHILD_FINISH(&c);
}

int main(void)
{
    qtest_init();
    const char *path;
    int f = qtest_tmpfile(100, &path);
    close(f);
    run("a handler that calls fcntl", handler_locks, path);
    run("a handler that longjmps out of fcntl", handler_jumps, path);
    unlink(path);
    return QTEST_DONE();
}
