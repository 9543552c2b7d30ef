/*
 * t_close_range_many.c - close_range()/closefrom() over thousands of
 * descriptors of locked files.
 *
 * QNX lockf(): "File locks are released on the first close by the locking
 * process of any file descriptor for the file."  close_range and closefrom
 * close many descriptors in one call (glibc does not go through close()),
 * and every file whose descriptor they closed must be released, however
 * many there are.  Linux releases them too, so both modes expect the same.
 *
 * A holder process opens N = 10,000 files (each its own file) and takes
 * F_SETLK write [0,10) on each, then:
 *   (a) close_range(3, ~0U, 0): another process must be granted every
 *       file's range (all N checked) while the holder still lives;
 *   (b) closefrom(3): the same (SKIP line if glibc has no closefrom);
 *   (c) close_range over the middle 60% of the descriptors: those files are
 *       released, the files whose descriptors survive stay locked (EAGAIN);
 *   (d) close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) closes nothing: every file
 *       stays locked.
 * The holder's locks are checked while it is alive, so its exit cannot be
 * what released them.
 *
 * Under the shim a lock the registry has no room for fails with ENOLCK
 * (never another error); the test needs at least 8,000 files locked to be
 * meaningful and says how many it got.
 *
 * Baseline bug: the close path noted only 64 locked descriptors and then
 * fell back to a scan capped at 256 files, so thousands stayed locked.
 */
#include "qtest.h"

#include <sys/syscall.h>

#define N 10000
#define MIN_LOCKED 8000

enum kind { CR_ALL, CLOSEFROM, CR_SUB, CR_CLOEXEC };
static const char *kind_name[] = {"close_range(3, ~0U, 0)", "closefrom(3)",
                                  "close_range(middle 60%)",
                                  "close_range(CLOSE_RANGE_CLOEXEC)"};

struct hold {
    volatile int state; /* 1 locked, 2 closed, 3 parent done */
    int kind;
    int lo, hi; /* CR_SUB range, in descriptors */
    int close_rc, close_err;
    int fd_of[N];
    unsigned char lock_res[N]; /* 0 or errno of the holder's F_SETLK */
};

static struct qtest_fileset fs;

static int do_close_range(unsigned lo, unsigned hi, int flags)
{
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
    return close_range(lo, hi, flags);
#else
    /* no glibc wrapper: the library cannot see this call either */
    return (int)syscall(SYS_close_range, lo, hi, flags);
#endif
}

static int have_closefrom(void)
{
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
    return 1;
#else
    return 0;
#endif
}

static void holder(void *arg)
{
    struct hold *h = arg;
    char p[160];
    for (int i = 0; i < N; i++) {
        qtest_fileset_path(&fs, i, p, sizeof p);
        int fd = open(p, O_RDWR);
        h->fd_of[i] = fd;
        if (fd < 0) {
            h->lock_res[i] = 254;
            continue;
        }
        errno = 0;
        int r = setlk(fd, F_WRLCK, 0, 10);
        h->lock_res[i] = r == 0 ? 0 : (unsigned char)(errno ? errno : 253);
    }
    /* for CR_SUB: close the middle 60% of the descriptors */
    h->lo = h->fd_of[N / 5];
    h->hi = h->fd_of[N - N / 5 - 1];
    __atomic_store_n(&h->state, 1, __ATOMIC_SEQ_CST);
    errno = 0;
    switch (h->kind) {
    case CR_ALL:
        h->close_rc = do_close_range(3, ~0U, 0);
        break;
    case CLOSEFROM:
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
        closefrom(3);
#endif
        h->close_rc = 0;
        break;
    case CR_SUB:
        h->close_rc = do_close_range((unsigned)h->lo, (unsigned)h->hi, 0);
        break;
    case CR_CLOEXEC:
        h->close_rc = do_close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        break;
    }
    h->close_err = errno;
    __atomic_store_n(&h->state, 2, __ATOMIC_SEQ_CST);
    qtest_wait_flag(&h->state, 3, 50000);
}

/* 1 if the holder's descriptor of file i survived the close call. */
static int survives(const struct hold *h, int i)
{
    switch (h->kind) {
    case CR_SUB:
        return h->fd_of[i] < h->lo || h->fd_of[i] > h->hi;
    case CR_CLOEXEC:
        return 1;
    default:
        return 0;
    }
}

static void run_variant(enum kind kind)
{
    const char *what = kind_name[kind];
    struct hold *h = qtest_shared(sizeof *h);
    h->kind = kind;
    double t0 = qtest_now_ms();
    pid_t pid = qtest_fork_fn(holder, h);
    int ok = qtest_wait_flag(&h->state, 2, 45000);
    CHECK(ok, "%s: the holder did not lock and close in time (state %d)",
          what, h->state);
    if (!ok) {
        kill(pid, SIGKILL);
        qtest_wait(pid, 5000);
        munmap(h, sizeof *h);
        return;
    }
    CHECK(h->close_rc == 0, "%s: returned %d %s", what, h->close_rc,
          qtest_errname(h->close_err));
    int locked = qtest_count_eq(h->lock_res, N, 0);
    int enolck = qtest_count_eq(h->lock_res, N, ENOLCK);
    int other = N - locked - enolck;
    int fo = -1;
    for (int i = 0; i < N && fo < 0; i++)
        if (h->lock_res[i] != 0 && h->lock_res[i] != ENOLCK)
            fo = i;
    if (qtest_mode_shim()) {
        CHECK(other == 0,
              "%s: %d of the holder's F_SETLKs failed with an errno other "
              "than ENOLCK (first: file %d, %s)", what, other, fo,
              fo >= 0 ? qtest_errname(h->lock_res[fo]) : "");
        CHECK(locked >= MIN_LOCKED,
              "%s: the holder could lock only %d files (want >= %d)", what,
              locked, MIN_LOCKED);
        if (enolck)
            qtest_print("NOTE %s: the holder locked %d of %d files; %d "
                        "F_SETLKs got ENOLCK (registry capacity)", what,
                        locked, N, enolck);
    } else {
        CHECK(locked == N, "%s: natively only %d of %d F_SETLKs succeeded "
              "(first failure: file %d, %s)", what, locked, N, fo,
              fo >= 0 ? qtest_errname(h->lock_res[fo]) : "");
    }
    /* another process, while the holder lives */
    static unsigned char res[N];
    int r = qtest_probe_fileset(&fs, NULL, N, F_WRLCK, 0, 10, res, 40000);
    CHECK(r == 0, "%s: the probe did not finish", what);
    int wrong_free = 0, wrong_held = 0, first_free = -1, first_held = -1;
    int nsurv = 0, nclosed = 0;
    for (int i = 0; i < N; i++) {
        if (h->lock_res[i] != 0)
            continue; /* never locked: nothing to check */
        if (survives(h, i)) {
            nsurv++;
            if (res[i] != EAGAIN) {
                wrong_free++;
                if (first_free < 0)
                    first_free = i;
            }
        } else {
            nclosed++;
            if (res[i] != 0) {
                wrong_held++;
                if (first_held < 0)
                    first_held = i;
            }
        }
    }
    CHECK(wrong_held == 0,
          "%s: %d of %d files whose descriptor was closed are still locked "
          "(first: file %d, fd %d: other process got %s)", what, wrong_held,
          nclosed, first_held, first_held >= 0 ? h->fd_of[first_held] : -1,
          first_held >= 0 ? (res[first_held] == 255 ? "no answer"
                                                    : qtest_errname(res[first_held]))
                          : "");
    CHECK(wrong_free == 0,
          "%s: %d of %d files whose descriptor survived were not locked "
          "any more (first: file %d, fd %d: other process got %s)", what,
          wrong_free, nsurv, first_free,
          first_free >= 0 ? h->fd_of[first_free] : -1,
          first_free >= 0 ? (res[first_free] == 0 ? "0 (granted)"
                                                  : qtest_errname(res[first_free]))
                          : "");
    CHECK(kill(pid, 0) == 0, "%s: the holder died before the probe ended",
          what);
    __atomic_store_n(&h->state, 3, __ATOMIC_SEQ_CST);
    CHECK_EXIT0(pid);
    qtest_print("INFO %s: %d closed, %d surviving locked files checked in "
                "%.0f ms", what, nclosed, nsurv, qtest_now_ms() - t0);
    munmap(h, sizeof *h);
}

int main(void)
{
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    if (!qtest_need_nofile(N + 200, N + 100))
        return QTEST_DONE();
    qtest_fileset_create(&fs, N, "crange");
    run_variant(CR_ALL);
    if (have_closefrom())
        run_variant(CLOSEFROM);
    else
        qtest_print("SKIP closefrom: glibc has no closefrom()");
    run_variant(CR_SUB);
    run_variant(CR_CLOEXEC);
    qtest_fileset_remove(&fs);
    return QTEST_DONE();
}
