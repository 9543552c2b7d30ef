/*
 * t_fdcache_race.c - a lock lands on the file the descriptor refers to NOW.
 *
 * POSIX/QNX: fcntl(fd, F_SETLK) locks the file that fd refers to at the
 * time of the call.  A library that caches a descriptor's file must never
 * let a concurrent lookup (another thread's F_GETLK on the same number)
 * store the identity of a file the number referred to before a close/dup2
 * replaced it.
 *
 * Threads A (three of them) loop F_GETLK on descriptor number N.  The main
 * thread, 20,000 rounds (~1-2 s): makes N refer to the other of two files
 * (3 rounds in 4 dup2(src, N), 1 in 4 close(N) and an open() that gets
 * number N back), pauses 0-40 us (as a hand-off from a swapping thread to
 * a locking thread would), takes F_SETLK write [0,1) on N, and asks a
 * checker process (its own
 * descriptors of both files) with F_GETLK where the lock is: on the file N
 * refers to now, held by us, and not on the other.  Then both files are
 * released (open + close of each: first close releases) for the next
 * round.  0 wrong rounds allowed, natively and under the shim.
 *
 * Baseline bug: thread A's lookup could store the old file's identity
 * after the swap had forgotten it; the lock then went to the old file
 * (here: wrong in about 50 of 20,000 rounds).
 */
#include "qtest.h"

#include <pthread.h>

#define ROUNDS 20000
#define NGETLK 3 /* threads looping F_GETLK on N */

static const char *path[2];
static int NFD; /* descriptor number N: the lowest free one */
static volatile int stop;
static long getlk_calls;

static void *getlk_loop(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 1);
        fcntl(NFD, F_GETLK, &fl);
        __atomic_add_fetch(&getlk_calls, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

struct answer {
    short type[2];
    pid_t pid[2];
};

/* Checker: for each byte read from `in`, F_GETLK [0,1) on both files. */
static void checker(int in, int out)
{
    int fd[2] = {open(path[0], O_RDWR), open(path[1], O_RDWR)};
    char c;
    while (read(in, &c, 1) == 1) {
        struct answer a;
        for (int k = 0; k < 2; k++) {
            struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 1);
            fl.l_pid = -7;
            if (fcntl(fd[k], F_GETLK, &fl) != 0)
                fl.l_type = -1;
            a.type[k] = fl.l_type;
            a.pid[k] = fl.l_pid;
        }
        if (write(out, &a, sizeof a) != sizeof a)
            break;
    }
    _exit(0);
}

/* Release all our locks on both files: the first close of any descriptor
 * of a file releases them. */
static void release_both(void)
{
    for (int k = 0; k < 2; k++) {
        int fd = open(path[k], O_RDWR);
        if (fd >= 0)
            close(fd);
    }
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int f0 = qtest_tmpfile(10, &path[0]);
    int f1 = qtest_tmpfile(10, &path[1]);
    int src[2] = {f0, f1};

    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC))
        qtest_fatal("pipe");
    pid_t cpid = fork();
    if (cpid < 0)
        qtest_fatal("fork");
    if (cpid == 0) {
        alarm(QTEST_CHILD_TIMEOUT_S);
        close(to[1]);
        close(from[0]);
        checker(to[0], from[1]);
    }
    qtest_track(cpid);
    close(to[0]);
    close(from[1]);

    NFD = dup(f0); /* every lower number is in use: close+open gets N back */
    if (NFD < 0)
        qtest_fatal("dup");
    pthread_t th[NGETLK];
    for (int i = 0; i < NGETLK; i++)
        if (pthread_create(&th[i], NULL, getlk_loop, NULL) != 0)
            qtest_fatal("pthread_create");
    unsigned seed = (unsigned)getpid();

    int wrong = 0, setlk_fail = 0, reopen_miss = 0, checker_fail = 0;
    char first_wrong[200] = "";
    double t0 = qtest_now_ms();
    for (int round = 0; round < ROUNDS; round++) {
        int cur = (round + 1) % 2; /* N refers to file 0 now; swap */
        int via_open = round % 8 >= 6; /* 1 round in 4 */
        if (via_open) {
            close(NFD);
            /* N is the lowest free number (else: dup2 it there, counted) */
            int fd = open(path[cur], O_RDWR);
            if (fd != NFD) {
                reopen_miss++;
                if (fd >= 0) {
                    dup2(fd, NFD);
                    close(fd);
                }
            }
        } else {
            dup2(src[cur], NFD);
        }
        /* a hand-off to the locking thread takes a few microseconds */
        double until = qtest_now_ms() + (rand_r(&seed) % 41) / 1000.0;
        while (qtest_now_ms() < until)
            ;
        errno = 0;
        if (setlk(NFD, F_WRLCK, 0, 1) != 0) {
            setlk_fail++;
            release_both();
            continue;
        }
        struct answer a;
        char c = 'C';
        struct pollfd p = {from[0], POLLIN, 0};
        if (write(to[1], &c, 1) != 1 || poll(&p, 1, 5000) != 1 ||
            read(from[0], &a, sizeof a) != (ssize_t)sizeof a) {
            checker_fail++;
            break;
        }
        int ok = a.type[cur] == F_WRLCK && a.pid[cur] == getpid() &&
                 a.type[1 - cur] == F_UNLCK;
        if (!ok) {
            if (!wrong)
                snprintf(first_wrong, sizeof first_wrong,
                         "round %d (%s): file N refers to: %s pid %d; the "
                         "old file: %s pid %d", round,
                         via_open ? "close+open" : "dup2",
                         qtest_typename(a.type[cur]), (int)a.pid[cur],
                         qtest_typename(a.type[1 - cur]),
                         (int)a.pid[1 - cur]);
            wrong++;
        }
        release_both();
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < NGETLK; i++)
        pthread_join(th[i], NULL);
    qtest_print("INFO %d rounds in %.0f ms, %ld concurrent F_GETLKs, %d "
                "reopen misses", ROUNDS, qtest_now_ms() - t0, getlk_calls,
                reopen_miss);
    CHECK(checker_fail == 0, "the checker process stopped answering");
    CHECK(setlk_fail == 0, "%d of %d F_SETLKs on N failed", setlk_fail,
          ROUNDS);
    CHECK(wrong == 0, "%d of %d rounds: the lock did not land (only) on the "
          "file N refers to; first: %s", wrong, ROUNDS, first_wrong);
    CHECK(getlk_calls > ROUNDS, "thread A made only %ld F_GETLK calls",
          getlk_calls);
    close(to[1]);
    CHECK_EXIT0(cpid);
    qtest_untrack(cpid);
    close(from[0]);
    close(NFD);
    return QTEST_DONE();
}
