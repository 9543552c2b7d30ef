/*
 * t_thread_flock.c - no false EDEADLK between threads of one process.
 *
 * QNX: flock() is an fcntl lock with F_FLOCK, owned by the open file
 * (QNX's "open control block"); fcntl/lockf locks are owned by the process;
 * all of them sit in one list per file and conflict with each other.
 * EDEADLK means "a deadlock was detected": a wait that can never end.  A
 * thread that waits for a lock another thread of its process holds (and is
 * free to release) is not deadlocked: it must block and be granted.
 * Linux: flock and fcntl locks never conflict.
 *
 *   (a) thread 1 holds flock(fd1, LOCK_EX); thread 2 does F_SETLKW write,
 *       whole file, through fd2 (another open of the file): under the shim
 *       it blocks (no EDEADLK) and is granted after thread 1's LOCK_UN;
 *       natively it is granted at once.
 *   (a2) the reverse: thread 1 holds F_SETLK write (process lock), thread 2
 *       does a blocking flock(fd2, LOCK_EX): the same expectations.
 *   (b) LTP fcntl34/fcntl36 style: 6 threads, each with its own open file
 *       of the same file, F_OFD_SETLKW write on [0,8), read a counter from
 *       the file, increment, write, unlock; 200 times each: no EDEADLK, no
 *       other error, final count 1,200, never two threads inside at once.
 *   (c) Rust std File::lock style: 4 threads, each its own open file,
 *       flock(LOCK_EX) / LOCK_UN 300 times: no EDEADLK, mutual exclusion.
 * Both modes for (b) and (c).
 *
 * Baseline bug: an open-file owner's waits were charged to the whole
 * process, so a thread waiting behind another thread's flock or OFD lock
 * closed a "cycle" through its own process and got EDEADLK.
 */
#include "qtest.h"

#include <pthread.h>

static const char *path;

/* ---- (a), (a2) ----------------------------------------------------------- */

struct t2 {
    int fd;
    int use_flock; /* 0: F_SETLKW write whole file; 1: flock(LOCK_EX) */
    volatile int done;
    int rc, err;
};

static void *t2_main(void *arg)
{
    struct t2 *t = arg;
    errno = 0;
    int r = t->use_flock ? flock(t->fd, LOCK_EX) : setlkw(t->fd, F_WRLCK, 0, 0);
    t->err = errno;
    t->rc = r;
    __atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static int wait_done(volatile int *d, int ms)
{
    double end = qtest_now_ms() + ms;
    while (!__atomic_load_n(d, __ATOMIC_SEQ_CST)) {
        if (qtest_now_ms() > end)
            return 0;
        qtest_msleep(1);
    }
    return 1;
}

static void cross_kind(int flock_first)
{
    const char *what = flock_first
        ? "(a) thread 1 flock(LOCK_EX), thread 2 F_SETLKW"
        : "(a2) thread 1 F_SETLK, thread 2 flock(LOCK_EX)";
    int fd1 = qtest_open(path, O_RDWR);
    int fd2 = qtest_open(path, O_RDWR);
    if (flock_first)
        CHECK_OK(flock(fd1, LOCK_EX));
    else
        CHECK_OK(setlk(fd1, F_WRLCK, 0, 0));
    struct t2 t = {fd2, !flock_first, 0, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, t2_main, &t);
    int early = wait_done(&t.done, 400);
    if (qtest_mode_shim()) {
        CHECK(!early, "%s: thread 2 did not block (QNX: flock and fcntl "
              "locks conflict): %d %s", what, t.rc,
              t.rc ? qtest_errname(t.err) : "");
        if (early && t.rc == -1 && t.err == EDEADLK)
            qtest_print("    %s: a false EDEADLK: thread 1 is free to "
                        "release", what);
        double t0 = qtest_now_ms();
        if (flock_first)
            CHECK_OK(flock(fd1, LOCK_UN));
        else
            CHECK_OK(unlock(fd1, 0, 0));
        int got = wait_done(&t.done, 3000);
        if (!early)
            CHECK(got && t.rc == 0, "%s: thread 2 not granted after thread "
                  "1 let go (%s) after %.0f ms", what,
                  !got ? "still blocked" : qtest_errname(t.err),
                  qtest_now_ms() - t0);
    } else {
        CHECK(early && t.rc == 0, "%s: natively (flock and fcntl are "
              "independent) thread 2 should be granted at once: %s", what,
              !early ? "blocked" : qtest_errname(t.err));
        if (flock_first)
            flock(fd1, LOCK_UN);
        else
            unlock(fd1, 0, 0);
        wait_done(&t.done, 3000);
    }
    if (!t.done) {
        close(fd1); /* last resort: let it through */
        close(fd2);
        wait_done(&t.done, 3000);
    }
    if (t.done) {
        pthread_join(th, NULL);
    } else {
        CHECK(0, "%s: thread 2 hung", what);
        pthread_detach(th);
        return;
    }
    close(fd1);
    close(fd2);
    CHECK_CAN_LOCK(qtest_open(path, O_RDWR), F_WRLCK, 0, 0);
}

/* ---- (b), (c) ------------------------------------------------------------ */

#define OFD_THREADS 6
#define OFD_ITERS 200
#define FLOCK_THREADS 4
#define FLOCK_ITERS 300

struct worker {
    int use_flock;
    int iters;
    volatile int *inside;  /* threads inside the critical section */
    volatile int *overlap; /* times two were inside */
    volatile int *done;
    int edeadlk, other, other_err, did;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int fd = open(path, O_RDWR);
    for (int i = 0; i < w->iters && fd >= 0; i++) {
        errno = 0;
        int r;
        if (w->use_flock) {
            r = flock(fd, LOCK_EX);
        } else {
            struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 8);
            r = fcntl(fd, F_OFD_SETLKW, &fl);
        }
        if (r != 0) {
            if (errno == EDEADLK)
                w->edeadlk++;
            else {
                w->other++;
                w->other_err = errno;
            }
            continue;
        }
        if (__atomic_add_fetch(w->inside, 1, __ATOMIC_SEQ_CST) != 1)
            __atomic_add_fetch(w->overlap, 1, __ATOMIC_SEQ_CST);
        long long v = 0;
        if (pread(fd, &v, sizeof v, 0) != (ssize_t)sizeof v)
            v = 0;
        v++;
        if (pwrite(fd, &v, sizeof v, 0) != (ssize_t)sizeof v)
            w->other++;
        __atomic_sub_fetch(w->inside, 1, __ATOMIC_SEQ_CST);
        w->did++;
        if (w->use_flock) {
            flock(fd, LOCK_UN);
        } else {
            struct flock fl = qtest_fl(F_UNLCK, SEEK_SET, 0, 8);
            fcntl(fd, F_OFD_SETLK, &fl);
        }
    }
    if (fd >= 0)
        close(fd);
    __atomic_add_fetch(w->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void contend(int use_flock)
{
    const char *what = use_flock ? "(c) flock threads" : "(b) OFD threads";
    int nthreads = use_flock ? FLOCK_THREADS : OFD_THREADS;
    int iters = use_flock ? FLOCK_ITERS : OFD_ITERS;
    int fd = qtest_open(path, O_RDWR);
    long long zero = 0;
    if (pwrite(fd, &zero, sizeof zero, 0) != (ssize_t)sizeof zero)
        qtest_fatal("pwrite");
    static volatile int inside, overlap, done;
    inside = overlap = done = 0;
    struct worker w[8];
    pthread_t th[8];
    double t0 = qtest_now_ms();
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct worker){use_flock, iters, &inside, &overlap, &done,
                               0, 0, 0, 0};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    double end = qtest_now_ms() + 30000;
    while (__atomic_load_n(&done, __ATOMIC_SEQ_CST) < nthreads &&
           qtest_now_ms() < end)
        qtest_msleep(2);
    int finished = done == nthreads;
    CHECK(finished, "%s: only %d of %d threads finished in 30 s (a wait "
          "hung)", what, done, nthreads);
    if (!finished) {
        close(fd);
        return; /* threads left blocked: the summary still prints */
    }
    int edl = 0, oth = 0, oerr = 0, did = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        edl += w[i].edeadlk;
        oth += w[i].other;
        if (w[i].other)
            oerr = w[i].other_err;
        did += w[i].did;
    }
    long long v = -1;
    if (pread(fd, &v, sizeof v, 0) != (ssize_t)sizeof v)
        v = -1;
    qtest_print("INFO %s: %d threads x %d in %.0f ms: %d EDEADLK, %d other "
                "errors", what, nthreads, iters, qtest_now_ms() - t0, edl,
                oth);
    CHECK(edl == 0, "%s: %d false EDEADLK among %d lock calls of threads "
          "that each wait for one lock only", what, edl, nthreads * iters);
    CHECK(oth == 0, "%s: %d calls failed with %s", what, oth,
          qtest_errname(oerr));
    CHECK(overlap == 0, "%s: two threads were inside the lock %d times",
          what, overlap);
    CHECK(v == did && did == nthreads * iters, "%s: counter %lld, %d "
          "increments done, expected %d", what, v, did, nthreads * iters);
    close(fd);
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int fd = qtest_tmpfile(64, &path);
    cross_kind(1);
    cross_kind(0);
    contend(0);
    contend(1);
    close(fd);
    return QTEST_DONE();
}
