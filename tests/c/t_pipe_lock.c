/*
 * t_pipe_lock.c - lockf and SEEK_CUR locks on pipes and sockets.
 *
 * QNX libc's lockf builds {l_whence = SEEK_CUR, l_start = 0, l_len =
 * size}; fcntl with SEEK_CUR counts from the descriptor's offset.  A pipe
 * or a socket has no seekable offset (lseek gives ESPIPE), but a lock on
 * one is still a lock on that file: the Linux kernel uses the file
 * position it keeps (0) directly, and QNX's resource managers lock pipes
 * too.  So lockf(F_TLOCK, 0) and F_SETLK with SEEK_CUR must succeed (not
 * ESPIPE), and another process locking the same range of the same pipe
 * (either end: one file) or socket gets EAGAIN.  Same in both modes.
 *
 * For each of: a pipe (lock through the write end; the other process uses
 * the write end, and the read end for a read lock), a socketpair (one
 * socket, both processes):
 *   - lockf(fd, F_TLOCK, 0) succeeds; another process's F_SETLK [0,0),
 *     lockf(F_TLOCK, 0) give EAGAIN, lockf(F_TEST, 0) EACCES;
 *   - lockf(fd, F_ULOCK, 0) succeeds; then the other process can lock;
 *   - F_SETLK {F_WRLCK, SEEK_CUR, 0, 10} succeeds; the other process's
 *     F_SETLK SEEK_CUR [0,10) gets EAGAIN and [10,20) SEEK_SET succeeds;
 *   - F_GETLK with SEEK_CUR from the other process reports our lock.
 */
#include "qtest.h"

#include <sys/socket.h>

enum op { OP_SETLK_SET, OP_SETLK_CUR, OP_TLOCK, OP_TEST, OP_GETLK_CUR };

/* Another process does `op` on inherited fd: returns 0 or its errno (-1:
 * died).  For OP_GETLK_CUR, *pid receives l_pid (0 if the range is free). */
static int other(int fd, enum op op, short type, off_t start, off_t len,
                 pid_t *pid)
{
    volatile pid_t *shared = qtest_shared(sizeof(pid_t));
    pid_t p = fork();
    if (p < 0)
        qtest_fatal("fork");
    if (p == 0) {
        alarm(QTEST_CHILD_TIMEOUT_S);
        struct flock fl;
        int r = -1;
        errno = 0;
        switch (op) {
        case OP_SETLK_SET:
        case OP_SETLK_CUR:
            fl = qtest_fl(type, op == OP_SETLK_CUR ? SEEK_CUR : SEEK_SET,
                          start, len);
            r = fcntl(fd, F_SETLK, &fl);
            break;
        case OP_TLOCK:
            r = lockf(fd, F_TLOCK, len);
            break;
        case OP_TEST:
            r = lockf(fd, F_TEST, len);
            break;
        case OP_GETLK_CUR:
            fl = qtest_fl(F_WRLCK, SEEK_CUR, start, len);
            r = fcntl(fd, F_GETLK, &fl);
            *shared = r == 0 && fl.l_type != F_UNLCK ? fl.l_pid : 0;
            break;
        }
        _exit(r == 0 ? 0 : (errno & 0xff) ? (errno & 0xff) : 254);
    }
    int st = qtest_wait(p, QTEST_WAIT_MS);
    if (pid)
        *pid = *shared;
    munmap((void *)shared, sizeof(pid_t));
    if (st < 0 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static const char *en(int r)
{
    return r == 0 ? "0" : r < 0 ? "probe died" : qtest_errname(r);
}

#define EXPECT_OTHER(what, got, want)                                         \
    CHECK((got) == (want), "%s: %s gave %s, expected %s", (what), #got,       \
          en(got), en(want))

static void run(const char *what, int fd, int rfd)
{
    int r;
    errno = 0;
    r = lockf(fd, F_TLOCK, 0);
    CHECK(r == 0, "%s: lockf(F_TLOCK, 0) gave %d %s, expected 0 (a pipe or "
          "socket can be locked; no ESPIPE)", what, r, qtest_errname(errno));
    int setlk0 = other(fd, OP_SETLK_SET, F_WRLCK, 0, 0, NULL);
    EXPECT_OTHER(what, setlk0, EAGAIN);
    int tlock = other(fd, OP_TLOCK, F_WRLCK, 0, 0, NULL);
    EXPECT_OTHER(what, tlock, EAGAIN);
    int test = other(fd, OP_TEST, F_WRLCK, 0, 0, NULL);
    EXPECT_OTHER(what, test, EACCES);
    if (rfd >= 0) { /* the read end is the same pipe */
        int rd = other(rfd, OP_SETLK_SET, F_RDLCK, 0, 10, NULL);
        EXPECT_OTHER(what, rd, EAGAIN);
    }
    errno = 0;
    r = lockf(fd, F_ULOCK, 0);
    CHECK(r == 0, "%s: lockf(F_ULOCK, 0) gave %d %s", what, r,
          qtest_errname(errno));
    int after = other(fd, OP_SETLK_SET, F_WRLCK, 0, 0, NULL);
    EXPECT_OTHER(what, after, 0);

    /* SEEK_CUR through fcntl */
    struct flock fl = qtest_fl(F_WRLCK, SEEK_CUR, 0, 10);
    errno = 0;
    r = fcntl(fd, F_SETLK, &fl);
    CHECK(r == 0, "%s: F_SETLK {F_WRLCK, SEEK_CUR, 0, 10} gave %d %s, "
          "expected 0", what, r, qtest_errname(errno));
    int cur = other(fd, OP_SETLK_CUR, F_WRLCK, 0, 10, NULL);
    EXPECT_OTHER(what, cur, EAGAIN);
    int beyond = other(fd, OP_SETLK_SET, F_WRLCK, 10, 10, NULL);
    EXPECT_OTHER(what, beyond, 0);
    pid_t holder = 0;
    int g = other(fd, OP_GETLK_CUR, F_WRLCK, 0, 1, &holder);
    CHECK(g == 0 && holder == getpid(), "%s: another process's F_GETLK "
          "SEEK_CUR [0,1): rc %s, l_pid %d, expected our pid %d", what,
          en(g), (int)holder, (int)getpid());
    fl = qtest_fl(F_UNLCK, SEEK_CUR, 0, 10);
    errno = 0;
    r = fcntl(fd, F_SETLK, &fl);
    CHECK(r == 0, "%s: F_SETLK F_UNLCK SEEK_CUR gave %d %s", what, r,
          qtest_errname(errno));
    int free_again = other(fd, OP_SETLK_CUR, F_WRLCK, 0, 10, NULL);
    EXPECT_OTHER(what, free_again, 0);
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int p[2];
    if (pipe(p) != 0)
        qtest_fatal("pipe");
    /* some data in the pipe changes nothing */
    if (write(p[1], "x", 1) != 1)
        qtest_fatal("write");
    run("pipe", p[1], p[0]);
    close(p[0]);
    close(p[1]);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        qtest_fatal("socketpair");
    run("socketpair", sv[0], -1);
    close(sv[0]);
    close(sv[1]);
    return QTEST_DONE();
}
