/*
 * t_mainexit.c - a process whose main thread has exited still holds its
 * locks.
 *
 * POSIX (and QNX) locks belong to the process, not to a thread: when the
 * main thread calls pthread_exit() while another thread keeps running, the
 * process lives on and keeps every lock.  Linux shows such a process as a
 * zombie in /proc/<pid>/stat (the thread-group leader is a zombie) and the
 * kernel marks the robust mutexes the main thread held as dead, so neither
 * is proof that the process is gone.
 *
 *   held:     the main thread takes F_SETLK write [0,10), starts a worker
 *             and calls pthread_exit(); another process must get EAGAIN
 *             (several probes, spaced beyond the library's liveness cache),
 *             F_GETLK must name the holder, and a process that attaches
 *             afresh (exec'd) must get EAGAIN too.  Once the worker returns
 *             (the whole process is gone) the range is free.
 *   unlock:   the same, then the worker unlocks [0,10) explicitly: the
 *             other process gets it while the holder still runs.
 *   relock:   the same, then the worker takes [20,30) as well: both ranges
 *             stay held (the worker's call must not drop the main thread's
 *             lock either).
 *
 * Same expectations natively and under the shim.
 *
 * Helper mode (this binary re-executed): t_mainexit --probe PATH START LEN
 * prints "SETLK <rc>" for a F_SETLK write on its own descriptor.
 */
#include "qtest.h"

#include <pthread.h>

static const char *path;

/* What the worker of the holder process does once the main thread is gone:
 * 'U' unlock [0,10), 'L' lock [20,30); each is reported back with the same
 * tag. 'Q' ends it (and with it the process). */
static void *worker(void *arg)
{
    int fd = *(int *)arg;
    child_say('W');
    for (;;) {
        struct qtest_msg m;
        int r = qtest_get(qtest_down_fd, 30000, &m);
        if (r != 1 || m.tag == 'Q')
            return NULL; /* the last thread returns: the process exits 0 */
        errno = 0;
        if (m.tag == 'U') {
            int rc = unlock(fd, 0, 10);
            child_report('U', rc, errno);
        } else if (m.tag == 'L') {
            int rc = setlk(fd, F_WRLCK, 20, 10);
            child_report('L', rc, errno);
        }
    }
}

static void holder(void *arg)
{
    static int fd;
    fd = *(int *)arg;
    errno = 0;
    int rc = setlk(fd, F_WRLCK, 0, 10);
    child_report('S', rc, errno);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, &fd) != 0)
        _exit(3);
    pthread_exit(NULL);
}

/* A process attaching afresh (this binary exec'd, with the same
 * environment): its F_SETLK write on [start, start+len) of its own
 * descriptor.  Returns 0 or the errno (-1: it failed otherwise). */
static int fresh_probe(off_t start, off_t len)
{
    char s[32], l[32];
    snprintf(s, sizeof s, "%lld", (long long)start);
    snprintf(l, sizeof l, "%lld", (long long)len);
    char *argv[] = {"t_mainexit", "--probe", (char *)path, s, l, NULL};
    qtest_helper h = qtest_spawn(NULL, argv, NULL);
    char out[256] = "";
    qtest_read_until(h.out, out, sizeof out, "SETLK", 5000);
    int st = qtest_helper_finish(&h, 5000, NULL, 0, NULL, 0);
    if (!qtest_exited0(st) || !strstr(out, "SETLK "))
        return -1;
    return (int)qtest_out_val(out, "SETLK", -1);
}

static int probe_main(int argc, char **argv)
{
    alarm(20);
    if (argc < 5)
        return 2;
    qtest_print("SETLK %d",
                qtest_setlk_path(argv[2], atoll(argv[3]), atoll(argv[4]), 0));
    return 0;
}

/* Start a holder, check its lock, wait until its main thread is gone. */
static qtest_child start_holder(int fd)
{
    qtest_child c = qtest_child_start(holder, &fd);
    struct qtest_msg m;
    if (CHECK_HEAR(&c, 'S', 5000, &m))
        CHECK(m.val == 0, "holder's F_SETLK [0,10): %lld %s", m.val,
              qtest_errname(m.err));
    CHECK_HEAR(&c, 'W', 5000, NULL);
    CHECK(qtest_wait_state(c.pid, 'Z', 3000),
          "holder %d: main thread did not exit (state %c)", (int)c.pid,
          qtest_proc_state(c.pid));
    return c;
}

/* Another process (several times, beyond the 100 ms liveness cache) and a
 * freshly attached one are refused [0,10). */
static void check_still_held(int fd, qtest_child *c, const char *what)
{
    for (int i = 0; i < 3; i++) {
        int r = qtest_probe_setlk(fd, F_WRLCK, 0, 10);
        CHECK(r == EAGAIN, "%s: probe %d: another process's F_SETLK [0,10) "
              "gave %s while the holder (main thread exited, worker running) "
              "lives; expected EAGAIN", what, i + 1,
              r == 0 ? "0 (granted: the live holder's lock was reaped)"
                     : r < 0 ? "probe died" : qtest_errname(r));
        qtest_msleep(150);
    }
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, c->pid);
    int r = fresh_probe(0, 10);
    CHECK(r == EAGAIN, "%s: a freshly exec'd process's F_SETLK [0,10) gave "
          "%s; expected EAGAIN", what,
          r == 0 ? "0 (granted)" : r < 0 ? "probe failed" : qtest_errname(r));
}

static void held(int fd)
{
    qtest_child c = start_holder(fd);
    check_still_held(fd, &c, "held");
    /* the worker returns: the whole process is gone, so is its lock */
    CHECK_CHILD_FINISH(&c);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
    CHECK_GETLK_FREE(fd, 0, 100);
}

static void worker_unlocks(int fd)
{
    qtest_child c = start_holder(fd);
    check_still_held(fd, &c, "unlock");
    qtest_say(&c, 'U');
    struct qtest_msg m;
    if (CHECK_HEAR(&c, 'U', 5000, &m))
        CHECK(m.val == 0, "worker's unlock [0,10): %lld %s", m.val,
              qtest_errname(m.err));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
    CHECK_GETLK_FREE(fd, 0, 100);
    CHECK_CHILD_FINISH(&c);
}

static void worker_relocks(int fd)
{
    qtest_child c = start_holder(fd);
    qtest_say(&c, 'L');
    struct qtest_msg m;
    if (CHECK_HEAR(&c, 'L', 5000, &m))
        CHECK(m.val == 0, "worker's F_SETLK [20,30): %lld %s", m.val,
              qtest_errname(m.err));
    check_still_held(fd, &c, "relock");
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 20, 10);
    CHECK_GETLK(fd, 20, 10, F_WRLCK, 20, 10, c.pid);
    CHECK_CHILD_FINISH(&c);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 30);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--probe") == 0)
        return probe_main(argc, argv);
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int fd = qtest_tmpfile(100, &path);
    held(fd);
    worker_unlocks(fd);
    worker_relocks(fd);
    close(fd);
    return QTEST_DONE();
}
