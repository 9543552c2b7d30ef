/*
 * bench.c: the qnxcompat benchmark driver.
 *
 * usage: bench --native|--shim DIR SCENARIO...
 *
 *   --native / --shim   which run this is; --shim checks that libqnxcompat is
 *                       really mapped into the process, --native that it is not
 *                       (scenario 9 also behaves differently, see below)
 *   DIR                 a directory for scratch files (removed by the caller)
 *   SCENARIO            s1 s2_1000 s2_10000 s2_100000 s3 s4 s5 s6 s7 s8 s9 s10
 *                       s11 s12 s13 s14 s15, or "all"
 *
 * Output, one line each, machine readable:
 *   RESULT <id> <value> <unit>   the median of the measurements
 *   DETAIL <id> <free text>      iteration count, min/median/max, set-up times
 *   ERROR  <id> <free text>      a wrong result (a call failed, a missing
 *                                EDEADLK, a broken hand-off, ...)
 * The exit status is 0 when no ERROR line was printed.
 *
 * Method: each timed unit is calibrated so that one measurement takes about
 * BENCH_TARGET_MS (default 100 ms), then run BENCH_WARMUP times (default 2)
 * untimed and BENCH_REPS times (default 7) timed with
 * clock_gettime(CLOCK_MONOTONIC); the median is reported.
 *
 * Build: cc -O2 -pthread -o bench bench/bench.c   (bench/run.sh does this)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAXREPS 101

static int g_shim;         /* 1 under --shim */
static const char *g_dir;  /* scratch directory */
static int g_reps = 7;     /* timed measurements per result */
static int g_warmup = 2;   /* untimed runs before them */
static double g_target_ns = 100e6; /* wanted length of one measurement */
static int g_errors;
static volatile sig_atomic_t g_alarm; /* the watchdog fired */

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void result(const char *id, double v, const char *unit)
{
    printf("RESULT %s %.10g %s\n", id, v, unit);
    fflush(stdout);
}

static void detail(const char *id, const char *fmt, ...)
{
    va_list ap;
    printf("DETAIL %s ", id);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static void fail(const char *id, const char *fmt, ...)
{
    va_list ap;
    printf("ERROR %s ", id);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    g_errors++;
}

static void on_alarm(int sig)
{
    (void)sig;
    g_alarm = 1;
}

/* Arm the watchdog: SIGALRM without SA_RESTART, so a blocked F_SETLKW
 * returns EINTR (natively and under the shim) instead of hanging. */
static void watchdog(unsigned secs)
{
    g_alarm = 0;
    alarm(secs);
}

/* {type, SEEK_SET, start, len}, every other field 0 */
static struct flock flock_of(short type, off_t start, off_t len)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    return fl;
}

static int lk(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock fl = flock_of(type, start, len);
    return fcntl(fd, cmd, &fl);
}

/* Create DIR/NAME.PID of SIZE bytes, open O_RDWR. */
static int scratch(const char *name, off_t size, char *path, size_t pathlen)
{
    snprintf(path, pathlen, "%s/%s.%d", g_dir, name, (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        fail(name, "open %s: %s", path, strerror(errno));
        return -1;
    }
    if (size > 0 && ftruncate(fd, size) != 0) {
        fail(name, "ftruncate %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void done_file(int fd, const char *path)
{
    if (fd >= 0)
        close(fd);
    unlink(path);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Wait for PID; 0 when it exited with status 0. */
static int reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static void *shared_page(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap shared");
        exit(2);
    }
    memset(p, 0, size);
    return p;
}

/* ------------------------------------------------------------------ */
/* The generic micro-benchmark: calibrate, warm up, measure, median.    */
/* ------------------------------------------------------------------ */

/* Runs N iterations of the operation; 0, or -1 with errno set. */
typedef int (*op_fn)(void *ctx, long n);

static int run_once(op_fn fn, void *ctx, long n, double *ns)
{
    double t0 = now_ns();
    int r = fn(ctx, n);
    int e = errno;
    *ns = now_ns() - t0;
    errno = e;
    return r;
}

/* Median time per iteration in ns, or -1 after printing an ERROR. At least
 * MIN_N iterations per measurement. */
static double measure(const char *id, op_fn fn, void *ctx, long min_n)
{
    long n = 1;
    double t = 0, v[MAXREPS];
    for (;;) {
        if (run_once(fn, ctx, n, &t) != 0) {
            fail(id, "operation failed during calibration: %s", strerror(errno));
            return -1;
        }
        if (t >= g_target_ns / 2 || n >= (1L << 40))
            break;
        if (t < g_target_ns / 100)
            n *= 10;
        else
            n = (long)((double)n * g_target_ns / t) + 1;
    }
    n = (long)((double)n * g_target_ns / (t > 0 ? t : 1));
    if (n < 1)
        n = 1;
    if (n < min_n)
        n = min_n;
    for (int i = 0; i < g_warmup; i++) {
        if (run_once(fn, ctx, n, &t) != 0) {
            fail(id, "operation failed during warm-up: %s", strerror(errno));
            return -1;
        }
    }
    for (int i = 0; i < g_reps; i++) {
        if (run_once(fn, ctx, n, &t) != 0) {
            fail(id, "operation failed: %s", strerror(errno));
            return -1;
        }
        v[i] = t / (double)n;
    }
    double med = median_of(v, g_reps);
    detail(id, "iterations=%ld reps=%d min=%.1fns median=%.1fns max=%.1fns", n, g_reps, v[0],
           med, v[g_reps - 1]);
    return med;
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

struct fdctx {
    int fd;
};

/* F_SETLK write [0,10) + unlock. */
static int op_setlk_pair(void *c, long n)
{
    int fd = ((struct fdctx *)c)->fd;
    for (long i = 0; i < n; i++) {
        if (lk(fd, F_SETLK, F_WRLCK, 0, 10) != 0)
            return -1;
        if (lk(fd, F_SETLK, F_UNLCK, 0, 10) != 0)
            return -1;
    }
    return 0;
}

static int op_lockf_pair(void *c, long n)
{
    int fd = ((struct fdctx *)c)->fd;
    for (long i = 0; i < n; i++) {
        if (lockf(fd, F_TLOCK, 10) != 0)
            return -1;
        if (lockf(fd, F_ULOCK, 10) != 0)
            return -1;
    }
    return 0;
}

static int op_flock_pair(void *c, long n)
{
    int fd = ((struct fdctx *)c)->fd;
    for (long i = 0; i < n; i++) {
        if (flock(fd, LOCK_EX) != 0)
            return -1;
        if (flock(fd, LOCK_UN) != 0)
            return -1;
    }
    return 0;
}

static int op_dup_close(void *c, long n)
{
    int fd = ((struct fdctx *)c)->fd;
    for (long i = 0; i < n; i++) {
        int d = dup(fd);
        if (d < 0)
            return -1;
        if (close(d) != 0)
            return -1;
    }
    return 0;
}

/* dup through the raw syscall (never intercepted), close() through libc:
 * the close hook's cost in isolation. */
static int op_rawdup_close(void *c, long n)
{
    int fd = ((struct fdctx *)c)->fd;
    for (long i = 0; i < n; i++) {
        int d = (int)syscall(SYS_dup, fd);
        if (d < 0)
            return -1;
        if (close(d) != 0)
            return -1;
    }
    return 0;
}

/* Both through the raw syscall: the floor, identical in both runs. */
static int op_rawdup_rawclose(void *c, long n)
{
    int fd = ((struct fdctx *)c)->fd;
    for (long i = 0; i < n; i++) {
        int d = (int)syscall(SYS_dup, fd);
        if (d < 0)
            return -1;
        if (syscall(SYS_close, d) != 0)
            return -1;
    }
    return 0;
}

struct pathctx {
    const char *path;
};

static int op_open_close(void *c, long n)
{
    const char *path = ((struct pathctx *)c)->path;
    for (long i = 0; i < n; i++) {
        int d = open(path, O_RDWR);
        if (d < 0)
            return -1;
        if (close(d) != 0)
            return -1;
    }
    return 0;
}

/* dup; lock [0,10) on fd; close the dup (releases the lock: first close). */
static int op_lock_close(void *c, long n)
{
    int fd = ((struct fdctx *)c)->fd;
    for (long i = 0; i < n; i++) {
        int d = dup(fd);
        if (d < 0)
            return -1;
        if (lk(fd, F_SETLK, F_WRLCK, 0, 10) != 0) {
            int e = errno;
            close(d);
            errno = e;
            return -1;
        }
        if (close(d) != 0)
            return -1;
    }
    return 0;
}

static int op_mmap_munmap(void *c, long n)
{
    int fd = ((struct fdctx *)c)->fd;
    for (long i = 0; i < n; i++) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            return -1;
        if (munmap(p, 4096) != 0)
            return -1;
    }
    return 0;
}

static int op_spawn_true(void *c, long n)
{
    (void)c;
    static char *const argv[] = {"true", NULL};
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            execve("/bin/true", argv, environ);
            _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0) {
            if (errno != EINTR)
                return -1;
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            errno = ECHILD;
            return -1;
        }
    }
    return 0;
}

/* Scenario 9: the request that would close the cycle. */
struct dlctx {
    int fd;
    int blocking; /* 1: F_SETLKW, expect EDEADLK; 0: F_SETLK, expect EAGAIN */
    int bad_ret;  /* what went wrong, for the error message */
    int bad_errno;
    long calls; /* calls made so far, the failing one included */
};

static int op_deadlock_check(void *c, long n)
{
    struct dlctx *d = c;
    int cmd = d->blocking ? F_SETLKW : F_SETLK;
    for (long i = 0; i < n; i++) {
        d->calls++;
        int r = lk(d->fd, cmd, F_WRLCK, 0, 1);
        int e = errno;
        int ok = r == -1 && (d->blocking ? e == EDEADLK : (e == EAGAIN || e == EACCES));
        if (!ok) {
            d->bad_ret = r;
            d->bad_errno = r == 0 ? 0 : e;
            if (r == 0)
                lk(d->fd, F_SETLK, F_UNLCK, 0, 1);
            errno = r == 0 ? EPROTO : e;
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */
/* ------------------------------------------------------------------ */

static void s1(void)
{
    char path[512];
    struct fdctx c = {scratch("s1", 4096, path, sizeof path)};
    if (c.fd < 0)
        return;
    double v = measure("s1", op_setlk_pair, &c, 1);
    if (v >= 0)
        result("s1", v, "ns/pair");
    done_file(c.fd, path);
}

static long reg_blocks(const char *id, off_t *size)
{
    const char *name = getenv("QNXCOMPAT_REGISTRY");
    char p[512];
    struct stat st;
    if (!name) {
        fail(id, "QNXCOMPAT_REGISTRY is not set: cannot find the registry");
        return -1;
    }
    snprintf(p, sizeof p, "/dev/shm/%s", name);
    if (stat(p, &st) != 0) {
        fail(id, "stat %s: %s", p, strerror(errno));
        return -1;
    }
    if (size)
        *size = st.st_size;
    return (long)st.st_blocks;
}

/* The pair at [0,10) while the same owner holds COUNT single-byte locks,
 * every other byte from offset 1,000,000. */
static void s2(long count)
{
    char id[32], path[512];
    snprintf(id, sizeof id, "s2_%ld", count);
    struct fdctx c = {scratch(id, 4096, path, sizeof path)};
    if (c.fd < 0)
        return;
    long blocks0 = 0;
    if (g_shim) {
        /* Make sure the registry exists, then take its resident size. */
        if (op_setlk_pair(&c, 1) != 0)
            fail(id, "warm-up pair: %s", strerror(errno));
        blocks0 = reg_blocks(id, NULL);
    }
    /* One lock over [1e6, 1e6 + 2*count - 1), then unlock the odd bytes
     * from the top down. The result is the same as locking every other
     * byte one by one, but Linux builds it in O(count): an unlock skips
     * the conflict scan, and splitting the lowest (first) lock of the
     * owner's sorted list stops at once. Locking the bytes one by one
     * costs Linux O(count^2) (about a minute at 100,000). */
    double t0 = now_ns();
    if (lk(c.fd, F_SETLK, F_WRLCK, 1000000, 2 * count - 1) != 0) {
        fail(id, "pre-locking [1000000, +%ld): %s", 2 * count - 1, strerror(errno));
        done_file(c.fd, path);
        return;
    }
    for (long i = count - 2; i >= 0; i--) {
        if (lk(c.fd, F_SETLK, F_UNLCK, 1000000 + 2 * i + 1, 1) != 0) {
            fail(id, "pre-locking: unlock of byte %ld: %s", 1000000 + 2 * i + 1, strerror(errno));
            done_file(c.fd, path);
            return;
        }
    }
    double t1 = now_ns();
    detail(id, "pre-locking %ld ranges took %.3f s (%.1f us per lock)", count, (t1 - t0) / 1e9,
           (t1 - t0) / 1e3 / (double)count);
    /* Check the layout from another process (a child is another owner):
     * the first, second-to-last and last bytes are single-byte locks, the
     * odd bytes between them are free. */
    {
        pid_t pid = fork();
        if (pid == 0) {
            static const struct {
                long off;
                short type;
            } probe[] = {{0, F_WRLCK}, {1, F_UNLCK}, {-3, F_UNLCK}, {-2, F_WRLCK}};
            for (size_t k = 0; k < sizeof probe / sizeof probe[0]; k++) {
                off_t at = probe[k].off < 0 ? 2 * count + probe[k].off : probe[k].off;
                struct flock fl = flock_of(F_WRLCK, 1000000 + at, 1);
                if (fcntl(c.fd, F_GETLK, &fl) != 0)
                    _exit(2);
                if (fl.l_type != probe[k].type)
                    _exit(10 + (int)k);
            }
            _exit(0);
        }
        int r = reap(pid);
        if (r != 0)
            fail(id, "another process sees the wrong lock layout (probe status %d)", r);
    }
    if (g_shim && count == 100000 && blocks0 >= 0) {
        off_t size = 0;
        long blocks1 = reg_blocks(id, &size);
        if (blocks1 >= 0) {
            result("reg_size", (double)size, "bytes");
            result("reg_resident", (double)blocks1 * 512, "bytes");
            result("reg_resident_delta", (double)(blocks1 - blocks0) * 512, "bytes");
            result("reg_bytes_per_lock", (double)(blocks1 - blocks0) * 512 / (double)count,
                   "bytes/lock");
        }
    }
    double v = measure(id, op_setlk_pair, &c, 1);
    if (v >= 0)
        result(id, v, "ns/pair");
    double t2 = now_ns();
    close(c.fd);
    detail(id, "close() releasing %ld locks took %.3f ms", count, (now_ns() - t2) / 1e6);
    unlink(path);
}

static void s3(void)
{
    char path[512];
    struct fdctx c = {scratch("s3", 4096, path, sizeof path)};
    if (c.fd < 0)
        return;
    lseek(c.fd, 0, SEEK_SET);
    double v = measure("s3", op_lockf_pair, &c, 1);
    if (v >= 0)
        result("s3", v, "ns/pair");
    done_file(c.fd, path);
}

static void s4(void)
{
    char path[512];
    struct fdctx c = {scratch("s4", 4096, path, sizeof path)};
    if (c.fd < 0)
        return;
    double v = measure("s4", op_flock_pair, &c, 1);
    if (v >= 0)
        result("s4", v, "ns/pair");
    done_file(c.fd, path);
}

/* ---- Scenario 5: hand-off ping-pong between two processes ---------- */
/*
 * Three lock ranges L0, L1, L2 ("baton" protocol). Each process holds two
 * consecutive ones {k, k+1} (mod 3); a step is: unlock k, F_SETLKW k+2,
 * which the other process holds, so every step waits for a real hand-off.
 * Start: A (the parent) holds {0,1}, B (a child) holds {2} and asks for 0.
 * Every acquisition does seq++ in shared memory; strict alternation means
 * B's j-th acquisition sees 2j and A's j-th sees 2j-1. One round trip = one
 * step of A + one of B (two hand-offs).
 */
struct pp {
    _Atomic long seq;
    _Atomic int ready;
    _Atomic int bad;
    _Atomic int err;
};

#define PP_LEN 16
static int pp_lock(int fd, int k)
{
    return lk(fd, F_SETLKW, F_WRLCK, (off_t)(k % 3) * PP_LEN, PP_LEN);
}
static int pp_unlock(int fd, int k)
{
    return lk(fd, F_SETLK, F_UNLCK, (off_t)(k % 3) * PP_LEN, PP_LEN);
}

/* CPUs for A and B (-1: not pinned), and the result id. */
static int g_cpu_a = -1, g_cpu_b = -1;
static const char *g_pp_id = "s5";

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* One measurement of N round trips; ns, or -1 after an ERROR. */
static double pp_run(const char *path, struct pp *sh, long n)
{
    const char *id = g_pp_id;
    atomic_store(&sh->seq, 0);
    atomic_store(&sh->ready, 0);
    atomic_store(&sh->bad, 0);
    atomic_store(&sh->err, 0);
    int fd = open(path, O_RDWR);
    if (fd < 0) {
        fail(id, "open: %s", strerror(errno));
        return -1;
    }
    if (lk(fd, F_SETLK, F_WRLCK, 0, PP_LEN) != 0 || lk(fd, F_SETLK, F_WRLCK, PP_LEN, PP_LEN) != 0) {
        fail(id, "A: initial locks: %s", strerror(errno));
        close(fd);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fail(id, "fork: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (pid == 0) {
        /* B */
        pin(g_cpu_b);
        signal(SIGALRM, SIG_DFL);
        alarm(60);
        int bfd = open(path, O_RDWR);
        if (bfd < 0 || lk(bfd, F_SETLK, F_WRLCK, 2 * PP_LEN, PP_LEN) != 0)
            _exit(3);
        atomic_store(&sh->ready, 1);
        if (pp_lock(bfd, 0) != 0) {
            atomic_store(&sh->err, errno);
            _exit(4);
        }
        if (atomic_fetch_add(&sh->seq, 1) != 0)
            atomic_fetch_add(&sh->bad, 1);
        int k = 2;
        for (long j = 1; j < n; j++) {
            if (pp_unlock(bfd, k) != 0 || pp_lock(bfd, k + 2) != 0) {
                atomic_store(&sh->err, errno);
                _exit(4);
            }
            if (atomic_fetch_add(&sh->seq, 1) != 2 * j)
                atomic_fetch_add(&sh->bad, 1);
            k = (k + 1) % 3;
        }
        lk(bfd, F_SETLK, F_UNLCK, 0, 0);
        _exit(0);
    }
    /* A */
    while (!atomic_load(&sh->ready)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fail(id, "B died during set-up (status 0x%x)", st);
            close(fd);
            return -1;
        }
        usleep(100);
    }
    watchdog(60);
    int k = 0;
    double t0 = now_ns();
    for (long j = 1; j <= n; j++) {
        if (pp_unlock(fd, k) != 0 || pp_lock(fd, k + 2) != 0) {
            int e = errno;
            if (e == EINTR && g_alarm)
                fail(id, "A: F_SETLKW hung for 60 s at step %ld of %ld (no hand-off)", j, n);
            else
                fail(id, "A: step %ld: %s", j, strerror(e));
            kill(pid, SIGKILL);
            reap(pid);
            close(fd);
            alarm(0);
            return -1;
        }
        if (atomic_fetch_add(&sh->seq, 1) != 2 * j - 1)
            atomic_fetch_add(&sh->bad, 1);
        k = (k + 1) % 3;
    }
    double t = now_ns() - t0;
    alarm(0);
    lk(fd, F_SETLK, F_UNLCK, 0, 0);
    int r = reap(pid);
    close(fd);
    if (r != 0) {
        fail(id, "B exited with status %d (errno %s)", r, strerror(atomic_load(&sh->err)));
        return -1;
    }
    if (atomic_load(&sh->bad) != 0) {
        fail(id, "hand-off order broken: %d acquisitions out of strict alternation",
             atomic_load(&sh->bad));
        return -1;
    }
    return t;
}

static void s5_variant(const char *id, const char *path, struct pp *sh)
{
    g_pp_id = id;
    pin(g_cpu_a);
    long n = 200;
    double t = pp_run(path, sh, n);
    if (t < 0)
        return;
    n = (long)((double)n * g_target_ns / t);
    if (n < 50)
        n = 50;
    for (int i = 0; i < g_warmup; i++) {
        if (pp_run(path, sh, n) < 0)
            return;
    }
    double v[MAXREPS];
    for (int i = 0; i < g_reps; i++) {
        double ti = pp_run(path, sh, n);
        if (ti < 0)
            return;
        v[i] = (double)n / (ti / 1e9);
    }
    double med = median_of(v, g_reps);
    detail(id, "A on cpu %d, B on cpu %d; round_trips=%ld reps=%d min=%.0f/s median=%.0f/s max=%.0f/s (strict alternation verified)",
           g_cpu_a, g_cpu_b, n, g_reps, v[0], med, v[g_reps - 1]);
    result(id, med, "roundtrips/s");
}

/* Two variants: A and B pinned to two different CPUs (s5, the one with a
 * target: every hand-off is a cross-CPU wake-up), and both pinned to one
 * CPU (s5_1cpu: every hand-off is a context switch). Unpinned, the
 * scheduler's placement makes the rate vary by 3-5x between runs. */
static void s5(void)
{
    char path[512];
    int fd = scratch("s5", 4096, path, sizeof path);
    if (fd < 0)
        return;
    close(fd);
    struct pp *sh = shared_page(4096);
    cpu_set_t orig;
    int cpus[2], ncpus = 0;
    if (sched_getaffinity(0, sizeof orig, &orig) != 0)
        CPU_ZERO(&orig);
    for (int c = 0; c < CPU_SETSIZE && ncpus < 2; c++)
        if (CPU_ISSET(c, &orig))
            cpus[ncpus++] = c;
    if (ncpus >= 2) {
        g_cpu_a = cpus[0];
        g_cpu_b = cpus[1];
        s5_variant("s5", path, sh);
    } else {
        detail("s5", "fewer than 2 CPUs available: cannot pin A and B apart; running unpinned");
        g_cpu_a = g_cpu_b = -1;
        s5_variant("s5", path, sh);
    }
    if (ncpus >= 1) {
        g_cpu_a = g_cpu_b = cpus[0];
        s5_variant("s5_1cpu", path, sh);
    }
    sched_setaffinity(0, sizeof orig, &orig);
    g_cpu_a = g_cpu_b = -1;
    munmap(sh, 4096);
    unlink(path);
}

/* ---- Scenario 6: P processes, disjoint ranges, one file ------------- */

struct mp {
    _Atomic int stop;
    _Atomic int ready;
    _Atomic int failed;
    long count[64];
};

/* own_files: child i locks "<path>.<i>" (a file of its own) instead of
 * bytes [64 i, 64 i + 16) of path. */
static double mp_run_files(const char *path, struct mp *sh, int procs, double window_ns, int own_files)
{
    int gate[2];
    pid_t pids[64];
    if (pipe(gate) != 0) {
        fail("s6", "pipe: %s", strerror(errno));
        return -1;
    }
    atomic_store(&sh->stop, 0);
    atomic_store(&sh->ready, 0);
    atomic_store(&sh->failed, 0);
    for (int i = 0; i < procs; i++) {
        sh->count[i] = 0;
        pids[i] = fork();
        if (pids[i] < 0) {
            fail("s6", "fork: %s", strerror(errno));
            procs = i;
            break;
        }
        if (pids[i] == 0) {
            signal(SIGALRM, SIG_DFL);
            alarm(60);
            close(gate[1]);
            char own[600];
            snprintf(own, sizeof own, "%s.%d", path, i);
            int fd = open(own_files ? own : path, O_RDWR);
            if (fd < 0)
                _exit(3);
            off_t start = own_files ? 0 : (off_t)i * 64;
            atomic_fetch_add(&sh->ready, 1);
            char ch;
            while (read(gate[0], &ch, 1) < 0 && errno == EINTR) {
            }
            long c = 0;
            while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
                if (lk(fd, F_SETLK, F_WRLCK, start, 16) != 0 ||
                    lk(fd, F_SETLK, F_UNLCK, start, 16) != 0) {
                    atomic_store(&sh->failed, errno ? errno : -1);
                    _exit(4);
                }
                c++;
            }
            sh->count[i] = c;
            _exit(0);
        }
    }
    close(gate[0]);
    while (atomic_load(&sh->ready) < procs)
        usleep(100);
    struct timespec w = {(time_t)(window_ns / 1e9), (long)((long long)window_ns % 1000000000LL)};
    double t0 = now_ns();
    close(gate[1]); /* every child's read() returns 0: go */
    nanosleep(&w, NULL);
    atomic_store(&sh->stop, 1);
    double t = now_ns() - t0;
    int bad = 0;
    long total = 0;
    for (int i = 0; i < procs; i++) {
        if (reap(pids[i]) != 0)
            bad = 1;
        total += sh->count[i];
    }
    if (bad) {
        fail("s6", "a locking process failed (%d processes; errno %s)", procs,
             strerror(atomic_load(&sh->failed)));
        return -1;
    }
    return (double)total / (t / 1e9);
}

/* One result "<prefix>_p<n>" (median pairs/s) for each process count in
 * ps, each measured with mp_run_files. */
static void mp_series(const char *prefix, const char *path, const int *ps, size_t nps, int own_files)
{
    struct mp *sh = shared_page(4096);
    for (size_t k = 0; k < nps; k++) {
        char id[24];
        snprintf(id, sizeof id, "%s_p%d", prefix, ps[k]);
        double v[MAXREPS];
        int ok = 1;
        for (int i = 0; i < g_warmup && ok; i++)
            ok = mp_run_files(path, sh, ps[k], g_target_ns, own_files) >= 0;
        for (int i = 0; i < g_reps && ok; i++) {
            v[i] = mp_run_files(path, sh, ps[k], g_target_ns, own_files);
            ok = v[i] >= 0;
        }
        if (!ok)
            break;
        double med = median_of(v, g_reps);
        detail(id, "window=%.0fms reps=%d min=%.0f/s median=%.0f/s max=%.0f/s", g_target_ns / 1e6,
               g_reps, v[0], med, v[g_reps - 1]);
        result(id, med, "pairs/s");
    }
    munmap(sh, 4096);
}

/* ---- Scenario 13: 1 to 16 processes, each locking a file of its own -- */

static void s13(void)
{
    char path[512];
    int fd = scratch("s13", 4096, path, sizeof path);
    if (fd < 0)
        return;
    close(fd);
    static const int ps[] = {1, 2, 4, 8, 16};
    for (int i = 0; i < 16; i++) {
        char own[600];
        snprintf(own, sizeof own, "%s.%d", path, i);
        int f = open(own, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (f < 0) {
            fail("s13", "create %s: %s", own, strerror(errno));
            return;
        }
        close(f);
    }
    mp_series("s13", path, ps, sizeof ps / sizeof ps[0], 1);
    for (int i = 0; i < 16; i++) {
        char own[600];
        snprintf(own, sizeof own, "%s.%d", path, i);
        unlink(own);
    }
    unlink(path);
}

static void s6(void)
{
    char path[512];
    int fd = scratch("s6", 4096, path, sizeof path);
    if (fd < 0)
        return;
    close(fd);
    static const int ps[] = {1, 2, 4, 8};
    mp_series("s6", path, ps, sizeof ps / sizeof ps[0], 0);
    unlink(path);
}

/* Interleaved A/B: calibrate both, then in every rep run A and B back to
 * back (order alternating) and take the difference A - B per iteration;
 * the median of the differences cancels most of the drift between reps. */
static void measure_diff(const char *id, op_fn fa, op_fn fb, void *ctx)
{
    long na = 1;
    double t = 0, d[MAXREPS];
    for (;;) {
        if (run_once(fa, ctx, na, &t) != 0) {
            fail(id, "operation failed during calibration: %s", strerror(errno));
            return;
        }
        if (t >= g_target_ns / 4 || na >= (1L << 40))
            break;
        na = t < g_target_ns / 100 ? na * 10 : (long)((double)na * g_target_ns / 2 / t) + 1;
    }
    /* 5x the reps, each a fifth as long: more alternations, same time. */
    int reps = 5 * g_reps < MAXREPS ? 5 * g_reps : MAXREPS - (MAXREPS % 2 == 0);
    long n = (long)((double)na * g_target_ns / 10 / (t > 0 ? t : 1));
    if (n < 1)
        n = 1;
    for (int i = 0; i < g_warmup + reps; i++) {
        double ta = 0, tb = 0;
        int r;
        if (i % 2 == 0)
            r = run_once(fa, ctx, n, &ta) || run_once(fb, ctx, n, &tb);
        else
            r = run_once(fb, ctx, n, &tb) || run_once(fa, ctx, n, &ta);
        if (r) {
            fail(id, "operation failed: %s", strerror(errno));
            return;
        }
        if (i >= g_warmup)
            d[i - g_warmup] = (ta - tb) / (double)n;
    }
    double med = median_of(d, reps);
    detail(id, "interleaved A/B, iterations=%ld each, reps=%d: A-B min=%.1fns median=%.1fns max=%.1fns",
           n, reps, d[0], med, d[reps - 1]);
    result(id, med, "ns/pair");
}

static void s7(void)
{
    char path[512];
    struct fdctx c = {scratch("s7", 4096, path, sizeof path)};
    if (c.fd < 0)
        return;
    double v = measure("s7_dup_close", op_dup_close, &c, 1);
    if (v >= 0)
        result("s7_dup_close", v, "ns/pair");
    v = measure("s7_rawdup_close", op_rawdup_close, &c, 1);
    if (v >= 0)
        result("s7_rawdup_close", v, "ns/pair");
    v = measure("s7_rawdup_rawclose", op_rawdup_rawclose, &c, 1);
    if (v >= 0)
        result("s7_rawdup_rawclose", v, "ns/pair");
    /* close() above a raw SYS_close, and dup()+close() above raw
     * SYS_dup+SYS_close, each measured A/B in the same process. */
    measure_diff("s7_close_extra", op_rawdup_close, op_rawdup_rawclose, &c);
    measure_diff("s7_dupclose_extra", op_dup_close, op_rawdup_rawclose, &c);
    struct pathctx p = {path};
    v = measure("s7_open_close", op_open_close, &p, 1);
    if (v >= 0)
        result("s7_open_close", v, "ns/pair");
    done_file(c.fd, path);
}

/* 1 if another process sees a write lock on [0,10) of PATH, 0 if not, -1. */
static int other_sees_lock(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path, O_RDWR);
        struct flock fl = flock_of(F_WRLCK, 0, 10);
        if (fd < 0 || fcntl(fd, F_GETLK, &fl) != 0)
            _exit(2);
        _exit(fl.l_type == F_UNLCK ? 0 : 1);
    }
    int r = reap(pid);
    return r == 0 ? 0 : r == 1 ? 1 : -1;
}

static void s8(void)
{
    char path[512];
    struct fdctx c = {scratch("s8", 4096, path, sizeof path)};
    if (c.fd < 0)
        return;
    double v = measure("s8", op_lock_close, &c, 1);
    if (v >= 0)
        result("s8", v, "ns/iter");
    /* Check the semantics the loop relies on: the lock is there, and the
     * close of the dup removes it. */
    if (lk(c.fd, F_SETLK, F_WRLCK, 0, 10) != 0) {
        fail("s8", "check: F_SETLK: %s", strerror(errno));
    } else {
        int before = other_sees_lock(path);
        int d = dup(c.fd);
        close(d);
        int after = other_sees_lock(path);
        if (before != 1 || after != 0)
            fail("s8", "check: another process sees the lock %s close(dup) (%d/%d, want 1/0)",
                 before != 1 ? "missing before" : "still held after", before, after);
    }
    done_file(c.fd, path);
}

/* ---- Scenario 9: deadlock check against a 64-process chain ---------- */

#define CHAIN 64

static char proc_state(pid_t pid)
{
    char p[64], buf[512];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return '?';
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (r <= 0)
        return '?';
    buf[r] = 0;
    char *q = strrchr(buf, ')');
    return q && q[1] == ' ' ? q[2] : '?';
}

static void s9(void)
{
    char path[512];
    int fd = scratch("s9", 4096, path, sizeof path);
    if (fd < 0)
        return;
    struct chain {
        _Atomic int holding;
        _Atomic int blocking;
        _Atomic int failed;
    } *sh = shared_page(4096);
    pid_t pids[CHAIN];
    int made = 0;
    /* The parent holds byte CHAIN; child i holds byte i and waits on i+1. */
    if (lk(fd, F_SETLK, F_WRLCK, CHAIN, 1) != 0) {
        fail("s9", "parent lock: %s", strerror(errno));
        goto out;
    }
    double ts = now_ns();
    for (int i = CHAIN - 1; i >= 0; i--) {
        pid_t pid = fork();
        if (pid < 0) {
            fail("s9", "fork: %s", strerror(errno));
            goto out;
        }
        if (pid == 0) {
            signal(SIGALRM, SIG_DFL);
            alarm(300); /* never outlive a crashed parent for long */
            close(fd);
            int cfd = open(path, O_RDWR);
            if (cfd < 0 || lk(cfd, F_SETLK, F_WRLCK, i, 1) != 0) {
                atomic_store(&sh->failed, 1);
                _exit(3);
            }
            atomic_fetch_add(&sh->holding, 1);
            atomic_fetch_add(&sh->blocking, 1);
            int r = lk(cfd, F_SETLKW, F_WRLCK, i + 1, 1);
            /* Only SIGKILL should end this wait. */
            atomic_store(&sh->failed, r == 0 ? 100 : errno);
            _exit(4);
        }
        pids[made++] = pid;
        while (atomic_load(&sh->holding) < made) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                fail("s9", "chain child %d died during set-up (status 0x%x)", i, st);
                made--;
                goto out;
            }
            usleep(50);
        }
    }
    /* Wait until every child sleeps in its F_SETLKW. */
    for (int tries = 0;; tries++) {
        int sleeping = 0;
        for (int i = 0; i < made; i++)
            sleeping += proc_state(pids[i]) == 'S';
        if (sleeping == made)
            break;
        if (tries > 5000) {
            fail("s9", "only %d of %d chain processes are asleep after 5 s", sleeping, made);
            goto out;
        }
        usleep(1000);
    }
    usleep(50000);
    if (atomic_load(&sh->failed)) {
        fail("s9", "a chain process's F_SETLKW returned (%s)",
             atomic_load(&sh->failed) == 100 ? "granted" : strerror(atomic_load(&sh->failed)));
        goto out;
    }
    detail("s9", "chain of %d blocked processes set up in %.1f ms", made, (now_ns() - ts) / 1e6);

    struct dlctx d = {fd, 0, 0, 0, 0};
    /* F_SETLK (EAGAIN) against the chain: both runs. */
    watchdog(30);
    double v = measure("s9_setlk", op_deadlock_check, &d, 1);
    if (v >= 0) {
        result("s9_setlk", v, "ns/call");
        if (!g_shim)
            result("s9", v, "ns/call");
    } else {
        fail("s9_setlk", "F_SETLK against the chain returned %d (%s), want -1 EAGAIN", d.bad_ret,
             strerror(d.bad_errno));
    }
    if (g_shim) {
        /* The blocking request that closes the cycle: EDEADLK each time. */
        d.blocking = 1;
        d.calls = 0;
        watchdog(30);
        v = measure("s9", op_deadlock_check, &d, 1);
        if (v >= 0)
            result("s9", v, "ns/call");
        else if (g_alarm)
            fail("s9", "F_SETLKW closing a %d-process cycle blocked (30 s, until the watchdog) "
                 "instead of failing with EDEADLK, at call %ld (the earlier ones got EDEADLK)",
                 CHAIN + 1, d.calls);
        else
            fail("s9", "F_SETLKW closing a %d-process cycle returned %d (%s) at call %ld, want -1 EDEADLK",
                 CHAIN + 1, d.bad_ret, d.bad_errno ? strerror(d.bad_errno) : "granted", d.calls);
    }
    alarm(0);
    /* Did a chain process leave its wait? (Then the chain is broken, and
     * the parent's request may rightly block.) */
    for (int i = 0; i < made; i++) {
        int st;
        if (waitpid(pids[i], &st, WNOHANG) == pids[i]) {
            fail("s9", "chain process %d (pid %d, waiting on byte %d) left its F_SETLKW during the "
                 "measurement: %s (exit status %d)", CHAIN - 1 - i, (int)pids[i], CHAIN - i,
                 atomic_load(&sh->failed) == 100 ? "granted"
                                                 : strerror(atomic_load(&sh->failed)),
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            pids[i] = -1;
        }
    }
out:
    alarm(0);
    for (int i = 0; i < made; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGKILL);
    for (int i = 0; i < made; i++)
        if (pids[i] > 0)
            reap(pids[i]);
    munmap(sh, 4096);
    done_file(fd, path);
}

static void s10(void)
{
    /* At least 1,000 timed processes in all. */
    long min_n = (1000 + g_reps - 1) / g_reps;
    double v = measure("s10", op_spawn_true, NULL, min_n);
    if (v >= 0)
        result("s10", v, "ns/process");
}

static void s11(void)
{
    char path[512];
    struct fdctx c = {scratch("s11", 4096, path, sizeof path)};
    if (c.fd < 0)
        return;
    double v = measure("s11", op_mmap_munmap, &c, 1);
    if (v >= 0)
        result("s11", v, "ns/pair");
    done_file(c.fd, path);
}

/* ------------------------------------------------------------------ */

static int shim_mapped(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    int found = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "libqnxcompat"))
            found = 1;
    fclose(f);
    return found;
}

/* ---- Scenario 12: F_GETLK with 1,000 live process owners ------------ */

/* F_GETLK write over [0,10) of a file nobody locks. */
static int op_getlk(void *c, long n)
{
    int fd = ((struct fdctx *)c)->fd;
    for (long i = 0; i < n; i++) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
        if (fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type != F_UNLCK)
            return -1;
    }
    return 0;
}

/* The F_GETLK loop by a process that holds nothing (under the shim: has no
 * owner of its own) on a file another process holds [100,110) of, first
 * with that one other owner, then with 1,000 more processes each holding a
 * byte of another file (1,000 live owners). */
static void s12(void)
{
    enum { N = 1000 };
    char path[512], other[512];
    struct fdctx c = {scratch("s12", 4096, path, sizeof path)};
    if (c.fd < 0)
        return;
    int ofd = scratch("s12o", 4096, other, sizeof other);
    if (ofd < 0)
        return;
    /* A holder of [100,110) of the probed file, so that the file is known
     * to the registry and each F_GETLK asks who the caller is (the registry
     * exists from then on, too). */
    int hold[2];
    if (pipe(hold) != 0) {
        fprintf(stdout, "ERROR s12: pipe\n");
        return;
    }
    pid_t first = fork();
    if (first == 0) {
        close(hold[1]);
        if (lk(c.fd, F_SETLK, F_WRLCK, 100, 10) != 0)
            _exit(1);
        char b;
        (void)!read(hold[0], &b, 1);
        _exit(0);
    }
    close(hold[0]);
    for (int tries = 0; tries < 10000; tries++) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 100, .l_len = 10};
        if (fcntl(c.fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
            break;
        usleep(100);
    }
    double v = measure("s12_none", op_getlk, &c, 1);
    if (v >= 0)
        result("s12_none", v, "ns/call");
    int go[2];
    if (pipe(go) != 0) {
        fprintf(stdout, "ERROR s12: pipe\n");
        return;
    }
    pid_t kids[N];
    int n = 0;
    for (; n < N; n++) {
        pid_t p = fork();
        if (p < 0)
            break;
        if (p == 0) {
            close(go[1]);
            /* each its own byte of one file: a process owner each */
            if (lk(ofd, F_SETLK, F_WRLCK, n, 1) != 0)
                _exit(1);
            char b;
            (void)!read(go[0], &b, 1); /* until the parent closes the pipe */
            _exit(0);
        }
        kids[n] = p;
    }
    close(go[0]);
    /* every child has locked once the byte after the last is the only free
     * one: wait until F_GETLK sees each child's lock */
    for (int i = 0; i < n; i++) {
        for (int tries = 0; tries < 10000; tries++) {
            struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = i, .l_len = 1};
            if (fcntl(ofd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
                break;
            usleep(100);
        }
    }
    if (n == N) {
        v = measure("s12_1000", op_getlk, &c, 1);
        if (v >= 0)
            result("s12_1000", v, "ns/call");
    } else {
        fprintf(stdout, "ERROR s12: only %d of %d children started\n", n, N);
    }
    close(go[1]);
    for (int i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
    close(hold[1]);
    if (first > 0)
        waitpid(first, NULL, 0);
    done_file(ofd, other);
    done_file(c.fd, path);
}

/* close() releasing M = 20,000 records of this process that sit behind (to
 * the right of) N = 20,000 records of another process in one file: the time
 * of the close alone, median of BENCH_REPS rounds (each round takes the
 * 20,000 locks again, untimed). */
static void s14(void)
{
    enum { N = 20000, M = 20000 };
    char path[512];
    int fd = scratch("s14", 0, path, sizeof path);
    if (fd < 0)
        return;
    int hold[2], ready[2];
    if (pipe(hold) != 0 || pipe(ready) != 0) {
        fail("s14", "pipe: %s", strerror(errno));
        return;
    }
    pid_t other = fork();
    if (other == 0) {
        close(hold[1]);
        close(ready[0]);
        for (int i = 0; i < N; i++) /* every other byte: 20,000 records */
            if (lk(fd, F_SETLK, F_WRLCK, 2 * i, 1) != 0)
                _exit(1);
        (void)!write(ready[1], "r", 1);
        char b;
        (void)!read(hold[0], &b, 1);
        _exit(0);
    }
    close(hold[0]);
    close(ready[1]);
    char b;
    if (read(ready[0], &b, 1) != 1) {
        fail("s14", "the other owner did not take its %d locks", N);
        close(hold[1]);
        waitpid(other, NULL, 0);
        done_file(fd, path);
        return;
    }
    /* Each round takes the 20,000 locks again, and the kernel checks each
     * new lock against its whole list of the file: natively (and with the
     * mirror on) a round's set-up takes about 30 s on this machine. So:
     * rounds until 20 s have gone, at most 5, at least 1; no warm-up (the
     * close touches records the set-up just wrote). */
    double v[MAXREPS];
    int reps = 0, rounds = g_reps < 5 ? g_reps : 5;
    double began = now_ns();
    for (int r = 0; r < rounds && (r == 0 || now_ns() - began < 20e9); r++) {
        int f2 = open(path, O_RDWR);
        if (f2 < 0) {
            fail("s14", "open: %s", strerror(errno));
            break;
        }
        int ok = 1;
        for (int i = 0; i < M && ok; i++)
            ok = lk(f2, F_SETLK, F_WRLCK, 2 * N + 2 * i, 1) == 0;
        if (!ok) {
            fail("s14", "lock %d: %s", r, strerror(errno));
            close(f2);
            break;
        }
        double t0 = now_ns();
        close(f2);
        double t1 = now_ns();
        /* the close released them all: the range is free for this process
         * (the other owner's records are still there) */
        int probe = open(path, O_RDWR);
        struct flock fl = flock_of(F_WRLCK, 2 * N, 2 * M);
        if (probe < 0 || fcntl(probe, F_GETLK, &fl) != 0) {
            fail("s14", "probe: %s", strerror(errno));
        }
        if (probe >= 0)
            close(probe);
        v[reps++] = t1 - t0;
    }
    close(hold[1]);
    waitpid(other, NULL, 0);
    if (reps > 0) {
        qsort(v, reps, sizeof v[0], cmp_double);
        detail("s14", "close releasing %d records behind %d others: min %.0f median %.0f max %.0f ns over %d", M, N,
               v[0], v[reps / 2], v[reps - 1], reps);
        result("s14", v[reps / 2], "ns/close");
    }
    done_file(fd, path);
}

#if defined(__x86_64__)
/* Runs body() in a traced child and counts the FUTEX_WAKE (and WAKE_OP,
 * WAKE_BITSET) system calls it makes in its whole life, exit included;
 * -1 if tracing is not possible here. */
static long futex_wakes_of(void (*body)(void *), void *arg)
{
    pid_t p = fork();
    if (p < 0)
        return -1;
    if (p == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
            _exit(99);
        raise(SIGSTOP);
        body(arg);
        exit(0); /* a normal exit: atexit handlers and destructors run */
    }
    int st;
    if (waitpid(p, &st, 0) != p || !WIFSTOPPED(st)) {
        return -1;
    }
    ptrace(PTRACE_SETOPTIONS, p, NULL, (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL));
    long wakes = 0;
    int inside = 0, sig = 0;
    for (;;) {
        if (ptrace(PTRACE_SYSCALL, p, NULL, (void *)(long)sig) != 0)
            break;
        sig = 0;
        if (waitpid(p, &st, 0) != p)
            break;
        if (WIFEXITED(st) || WIFSIGNALED(st))
            return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? wakes : -1;
        if (!WIFSTOPPED(st))
            continue;
        if (WSTOPSIG(st) == (SIGTRAP | 0x80)) {
            if (!inside) {
                struct user_regs_struct regs;
                if (ptrace(PTRACE_GETREGS, p, NULL, &regs) == 0 && regs.orig_rax == SYS_futex) {
                    int op = (int)regs.rsi & FUTEX_CMD_MASK;
                    if (op == FUTEX_WAKE || op == FUTEX_WAKE_OP || op == FUTEX_WAKE_BITSET)
                        wakes++;
                }
            }
            inside = !inside;
        } else {
            sig = WSTOPSIG(st);
        }
    }
    waitpid(p, &st, 0);
    return -1;
}
#endif

struct s15ctx {
    char (*paths)[512];
    int nfiles;
};

static void s15_body(void *arg)
{
    struct s15ctx *c = arg;
    for (int i = 0; i < c->nfiles; i++) {
        int fd = open(c->paths[i], O_RDWR);
        if (fd < 0 || lk(fd, F_SETLK, F_WRLCK, 0, 10) != 0)
            _exit(1);
    }
    /* the waiters see the locks and go to sleep; then exit(0) follows,
     * with the 100 files locked */
    usleep(500000);
}

/* A process with locks on 100 files exits while 20 other processes wait
 * for 20 of those files and 20 more wait on 20 files that it does not
 * touch: the FUTEX_WAKE calls of the exiting process, counted with ptrace.
 * The 20 waiters it frees need about 20; a herd or an overflow to "wake
 * everything" shows as many more. */
static void s15(void)
{
    enum { F = 100, W = 20 };
    static char paths[F + W][512];
    int fds[F + W];
    for (int i = 0; i < F + W; i++) {
        char name[32];
        snprintf(name, sizeof name, "s15_%d", i);
        fds[i] = scratch(name, 0, paths[i], sizeof paths[i]);
        if (fds[i] < 0)
            return;
    }
#if defined(__x86_64__)
    /* holders of the W untouched files (this process's locks) */
    for (int i = F; i < F + W; i++)
        if (lk(fds[i], F_SETLK, F_WRLCK, 0, 10) != 0)
            fail("s15", "lock untouched file %d: %s", i, strerror(errno));
    /* the exiting process, traced: it locks the F files, pauses while the
     * waiters queue (they block on its locks), then exits */
    struct s15ctx c = {paths, F};
    pid_t waiters[2 * W];
    int nw = 0;
    /* The waiters start once the files are locked: each polls F_GETLK until
     * it sees a lock, then blocks with F_SETLKW. */
    for (int k = 0; k < 2 * W; k++) {
        int target = k < W ? k * (F / W) : F + (k - W);
        pid_t p = fork();
        if (p == 0) {
            int fd = open(paths[target], O_RDWR);
            if (fd < 0)
                _exit(1);
            for (int tries = 0; tries < 200000; tries++) {
                struct flock fl = flock_of(F_WRLCK, 0, 10);
                if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
                    break;
                usleep(100);
            }
            watchdog(120);
            if (lk(fd, F_SETLKW, F_WRLCK, 0, 10) != 0)
                _exit(2);
            _exit(0);
        }
        if (p > 0)
            waiters[nw++] = p;
    }
    long wakes = futex_wakes_of(s15_body, &c);
    /* The W waiters on its files are granted now; the other W still wait:
     * release those. */
    for (int i = F; i < F + W; i++)
        lk(fds[i], F_SETLK, F_UNLCK, 0, 10);
    int bad = 0;
    for (int k = 0; k < nw; k++) {
        int st;
        if (waitpid(waiters[k], &st, 0) != waiters[k] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    if (bad)
        fail("s15", "%d of %d waiters were not granted", bad, nw);
    if (wakes < 0) {
        fail("s15", "could not trace the exiting process");
    } else {
        detail("s15", "exit with locks on %d files, %d waiters on them, %d on other files: %ld FUTEX_WAKE calls", F, W, W,
               wakes);
        result("s15", (double)wakes, "wakes");
    }
#else
    detail("s15", "skipped: the futex count uses x86-64 ptrace registers");
#endif
    for (int i = 0; i < F + W; i++)
        done_file(fds[i], paths[i]);
}

static void run(const char *s)
{
    if (!strcmp(s, "s1"))
        s1();
    else if (!strcmp(s, "s2_1000"))
        s2(1000);
    else if (!strcmp(s, "s2_10000"))
        s2(10000);
    else if (!strcmp(s, "s2_100000"))
        s2(100000);
    else if (!strcmp(s, "s3"))
        s3();
    else if (!strcmp(s, "s4"))
        s4();
    else if (!strcmp(s, "s5"))
        s5();
    else if (!strcmp(s, "s6"))
        s6();
    else if (!strcmp(s, "s7"))
        s7();
    else if (!strcmp(s, "s8"))
        s8();
    else if (!strcmp(s, "s9"))
        s9();
    else if (!strcmp(s, "s10"))
        s10();
    else if (!strcmp(s, "s11"))
        s11();
    else if (!strcmp(s, "s12"))
        s12();
    else if (!strcmp(s, "s13"))
        s13();
    else if (!strcmp(s, "s14"))
        s14();
    else if (!strcmp(s, "s15"))
        s15();
    else {
        fprintf(stderr, "bench: unknown scenario %s\n", s);
        exit(2);
    }
}

/* s2_100000 first: its registry-memory reading is then taken on a registry
 * that earlier scenarios have barely touched. */
static const char *const ALL[] = {"s2_100000", "s2_10000", "s2_1000", "s1", "s3", "s4", "s5",
                                  "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15"};

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[1], "--native") && strcmp(argv[1], "--shim"))) {
        fprintf(stderr, "usage: %s --native|--shim DIR SCENARIO...\n", argv[0]);
        return 2;
    }
    g_shim = !strcmp(argv[1], "--shim");
    g_dir = argv[2];
    const char *e;
    if ((e = getenv("BENCH_REPS")) && atoi(e) > 0)
        g_reps = atoi(e) < MAXREPS ? atoi(e) : MAXREPS;
    if ((e = getenv("BENCH_WARMUP")) && atoi(e) >= 0)
        g_warmup = atoi(e);
    if ((e = getenv("BENCH_TARGET_MS")) && atof(e) > 0)
        g_target_ns = atof(e) * 1e6;

    int mapped = shim_mapped();
    if (g_shim && mapped != 1) {
        printf("ERROR setup --shim but libqnxcompat is not mapped (LD_PRELOAD not applied?)\n");
        return 1;
    }
    if (!g_shim && mapped != 0) {
        printf("ERROR setup --native but libqnxcompat is mapped\n");
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: a blocked wait gets EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "all")) {
            for (size_t k = 0; k < sizeof ALL / sizeof ALL[0]; k++)
                run(ALL[k]);
        } else {
            run(argv[i]);
        }
    }
    return g_errors ? 1 : 0;
}
