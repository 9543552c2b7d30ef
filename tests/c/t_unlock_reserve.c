/*
 * t_unlock_reserve.c - an unlock never fails for lack of room.
 *
 * POSIX/QNX: F_SETLK with F_UNLCK removes a lock; splitting a lock in two
 * needs one more record, and our docs (docs/semantics.md) promise that an
 * unlock never fails for lack of room, even when lock requests already get
 * ENOLCK because the registry's lock records run out.
 *
 * One process takes F_SETLK write locks on 3-byte ranges at stride 4 of one
 * file, [4k, 4k+2] for k = 0, 1, 2, ... (gaps keep them from merging):
 *   - under the shim until a call fails, which must be -1 ENOLCK (capped at
 *     3,000,000 calls; a NOTE says so if no ENOLCK came);
 *   - natively a fixed 8,000 ranges (the kernel has no such limit here;
 *     its lock list is linear, so 20,000 would take ~10 s per pass).
 * Then 400 and then 4,000 more splitting unlocks [4k+1, 4k+1], for distinct
 * k spread over all the ranges, must ALL succeed, and another process's
 * F_GETLK must see the pieces: [4k, 4k] and [4k+2, 4k+2] held by us, 4k+1
 * free.  Finally one unlock of everything succeeds and the file is free.
 *
 * Baseline bug: only 256 records were reserved for unlocks; the 257th
 * splitting unlock of a full registry failed with ENOLCK.
 */
#include "qtest.h"

#define CAP_SHIM 3000000L
#define N_NATIVE 8000L
#define SPLIT1 400
#define SPLIT2 4000

struct piece {
    short type; /* l_type found (F_UNLCK: free) */
    off_t start, len;
    pid_t pid;
    int rc;
};

struct probe_job {
    int fd;
    int n;
    const long *ks;
    struct piece *out; /* shared, 3 per k */
    volatile int *done;
};

static void probe_child(void *arg)
{
    struct probe_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        for (int b = 0; b < 3; b++) {
            struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 4 * j->ks[i] + b, 1);
            errno = 0;
            int r = fcntl(j->fd, F_GETLK, &fl);
            struct piece *p = &j->out[3 * i + b];
            p->rc = r == 0 ? 0 : errno;
            p->type = fl.l_type;
            p->start = fl.l_start;
            p->len = fl.l_len;
            p->pid = fl.l_pid;
        }
    }
    __atomic_store_n(j->done, 1, __ATOMIC_SEQ_CST);
}

/* Another process's F_GETLK on each byte 4k, 4k+1, 4k+2 of the given ks:
 * returns the number of k whose pieces are not exactly as split. */
static int check_pieces(int fd, const long *ks, int n, const char *what)
{
    size_t sz = sizeof(struct piece) * 3 * (size_t)n + 64;
    struct piece *out = qtest_shared(sz);
    volatile int *done = (volatile int *)((char *)out + sz - 64);
    struct probe_job j = {fd, n, ks, out, done};
    pid_t pid = qtest_fork_fn(probe_child, &j);
    int st = qtest_wait(pid, 30000);
    CHECK(qtest_exited0(st) && *done, "%s: the probe did not finish", what);
    int bad = 0, first = -1;
    for (int i = 0; i < n; i++) {
        long k = ks[i];
        struct piece *p = &out[3 * i];
        int ok = p[0].rc == 0 && p[0].type == F_WRLCK && p[0].start == 4 * k &&
                 p[0].len == 1 && p[0].pid == getpid() && p[1].rc == 0 &&
                 p[1].type == F_UNLCK && p[2].rc == 0 &&
                 p[2].type == F_WRLCK && p[2].start == 4 * k + 2 &&
                 p[2].len == 1 && p[2].pid == getpid();
        if (!ok) {
            bad++;
            if (first < 0)
                first = i;
        }
    }
    if (bad) {
        struct piece *p = &out[3 * first];
        CHECK(0, "%s: %d of %d split ranges look wrong to another process; "
              "first k=%ld: byte 4k -> %s [%lld,+%lld] pid %d rc %s; 4k+1 -> "
              "%s; 4k+2 -> %s [%lld,+%lld]", what, bad, n, ks[first],
              qtest_typename(p[0].type), (long long)p[0].start,
              (long long)p[0].len, (int)p[0].pid, qtest_errname(p[0].rc),
              qtest_typename(p[1].type), qtest_typename(p[2].type),
              (long long)p[2].start, (long long)p[2].len);
    } else {
        CHECK(1, "pieces");
    }
    munmap(out, sz);
    return bad;
}

/* Split-unlock [4k+1] for each k; returns failures (CHECKed). */
static int split_all(int fd, const long *ks, int n, const char *what)
{
    int fail = 0, first_err = 0;
    long first_k = -1;
    double t0 = qtest_now_ms();
    for (int i = 0; i < n; i++) {
        errno = 0;
        if (unlock(fd, 4 * ks[i] + 1, 1) != 0) {
            if (!fail) {
                first_err = errno;
                first_k = i;
            }
            fail++;
        }
    }
    CHECK(fail == 0, "%s: %d of %d splitting unlocks failed (first: the "
          "%ld-th, -1 %s); an unlock must never fail for lack of room",
          what, fail, n, first_k, qtest_errname(first_err));
    qtest_print("INFO %s: %d splitting unlocks in %.0f ms", what, n,
                qtest_now_ms() - t0);
    return fail;
}

int main(void)
{
    qtest_init();
    int fd = qtest_tmpfile(0, NULL);
    /* With the kernel mirror every lock is also in the kernel's linear
     * per-file list, so filling the registry would take minutes: the
     * reserve is tested in the mirror-off run (run.sh), and the mirror-on
     * run does what the native one does. */
    long cap = qtest_mirror_off() ? CAP_SHIM : N_NATIVE;
    long n = 0;
    int err = 0;
    double t0 = qtest_now_ms();
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 3);
    for (; n < cap; n++) {
        fl.l_start = 4 * n;
        if (fcntl(fd, F_SETLK, &fl) != 0) {
            err = errno;
            break;
        }
    }
    qtest_print("INFO %ld ranges locked in %.0f ms%s%s", n,
                qtest_now_ms() - t0, err ? ", then -1 " : "",
                err ? qtest_errname(err) : "");
    if (qtest_mode_shim()) {
        CHECK(n == cap || err == ENOLCK, "lock #%ld failed with %s, expected "
              "ENOLCK (registry full)", n, qtest_errname(err));
        if (n == cap && qtest_mirror_off())
            qtest_print("NOTE no ENOLCK within %ld lock calls: the unlocks "
                        "below do not test the reserve", cap);
        /* full: a further lock is refused too, and a non-splitting request
         * does not crash anything */
        if (err == ENOLCK) {
            fl.l_start = 4 * (n + 10);
            errno = 0;
            int r = fcntl(fd, F_SETLK, &fl);
            CHECK(r == -1 && errno == ENOLCK, "a lock on a full registry "
                  "gave %d %s, expected -1 ENOLCK", r, qtest_errname(errno));
        }
    } else {
        CHECK(n == cap, "natively lock #%ld failed: %s", n,
              qtest_errname(err));
    }
    if (n < SPLIT1 + SPLIT2 + 10) {
        CHECK(0, "only %ld ranges locked: too few to split", n);
        close(fd);
        return QTEST_DONE();
    }
    /* distinct k spread over [0, n): first 400, then 4,000 others */
    static long ks[SPLIT1 + SPLIT2];
    /* evenly spread, first and last range included; interleaved so that
     * the first 400 span the whole file too */
    const int tot = SPLIT1 + SPLIT2;
    for (int i = 0; i < tot; i++) {
        int j = i < SPLIT1 ? i * (tot / SPLIT1) : /* every 11th slot */
                    (i - SPLIT1) + (i - SPLIT1) / (tot / SPLIT1 - 1) + 1;
        ks[i] = (long)((double)j * (double)(n - 1) / (double)(tot - 1));
    }
    split_all(fd, ks, SPLIT1, "400 splits");
    check_pieces(fd, ks, SPLIT1, "after 400 splits");
    split_all(fd, ks + SPLIT1, SPLIT2, "4,000 more splits");
    check_pieces(fd, ks, SPLIT1 + SPLIT2, "after 4,400 splits");
    /* an unlock of everything works and leaves nothing */
    CHECK_OK(unlock(fd, 0, 0));
    CHECK_GETLK_FREE(fd, 0, 0);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
    close(fd);
    return QTEST_DONE();
}
