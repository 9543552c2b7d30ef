/*
 * qtest.h - tiny header-only test framework for the qnxcompat C tests.
 *
 * Every test program is run twice by tests/c/run.sh: natively
 * (QTEST_MODE=native, no LD_PRELOAD) and under the shim (QTEST_MODE=shim,
 * LD_PRELOAD=libqnxcompat.so).  Behaviour on which QNX Neutrino and Linux
 * agree is checked in both modes; QNX-only behaviour is checked inside
 * `if (qtest_mode_shim()) { ... } else { ...native expectation... }`.
 *
 * Checks:
 *   CHECK(cond, fmt, ...)       cond must hold; fmt/... describe it on failure
 *   CHECK_OK(expr)              expr must return 0
 *   CHECK_ERR(expr, E)          expr must return -1 with errno == E
 *   CHECK_ERR2(expr, E1, E2)    expr must return -1 with errno E1 or E2
 *   CHECK_EQ(actual, expected)  two integer values must be equal
 *
 * The pass/fail counters live in a MAP_SHARED|MAP_ANONYMOUS page, so checks
 * made by forked children are counted too; the parent additionally checks
 * that every child exits with status 0 (a crash or hang is a failure).
 * QTEST_DONE() prints the single summary line "N passed, N failed" and gives
 * the exit status (0 iff nothing failed); qtest_skip(why) ends a run that has
 * nothing to check in its mode.
 *
 * Helpers (all bounded in time):
 *   qtest_tmpfile(size, &path)  unique /tmp file, O_RDWR, unlinked at the end
 *   setlk/setlkw/unlock(fd, [type,] start, len)  fcntl on a SEEK_SET range
 *   qtest_lockf_at(fd, off, func, size)          lseek + lockf
 *   qtest_fork()                fork with the child's alarm armed
 *   qtest_child_start(fn, arg)  fork a child running fn; parent and child
 *       exchange tagged messages: child_say/child_report/child_await in the
 *       child, qtest_say/CHECK_HEAR/qtest_wait_blocked in the parent;
 *       CHECK_CHILD_FINISH tells it to quit ('Q') and checks its exit status
 *       (qtest_read_rec/qtest_write_rec carry a test's own fixed-size records)
 *   RUN_IN_CHILD(fn, arg)       run fn in a child and check it exits 0
 *   CHECK_ALL_EXIT0(pids, n, ms, what)  every one of n children exits 0
 *   qtest_rnd/qtest_rnd_below, qtest_seed() (QTEST_SEED), qtest_long_mode()
 *       (QTEST_LONG), qtest_lock_errno_ok(e): the errnos a lock call may give
 *
 * Lock calls as data (struct qtest_call: qtest_call_fcntl/_lockf/_flock,
 * run or undone by qtest_call_run) and children that make one through an
 * inherited descriptor or an open file of their own (struct qtest_actor):
 *   CHECK_START_HOLDER(actor)   a qtest_holder child took its lock; it
 *       releases it on CHECK_HOLDER_RELEASE(&c)
 *   CHECK_START_HOLDERS(a, n)   one child (qtest_holder_all) took the locks
 *       of n actors, in order; CHECK_HOLDER_RELEASE releases them all
 *   CHECK_START_WAITER(actor)   a qtest_waiter child announced its blocking
 *       call; CHECK_GRANTED(&c, t0, what) checks it was granted in time
 *
 * Cross-process lock observation: POSIX locks belong to a process, so these
 * fork a short-lived "probe" process (qtest_probe) that acts on an inherited
 * descriptor:
 *   CHECK_CAN_LOCK(fd, type, start, len)     probe's F_SETLK succeeds
 *   CHECK_CANNOT_LOCK(fd, type, start, len)  probe's F_SETLK: -1 EAGAIN
 *   CHECK_GETLK(fd, start, len, type, lstart, llen, pid)  probe's F_GETLK
 *       reports exactly that lock (l_whence SEEK_SET)
 *   CHECK_GETLK_FREE(fd, start, len)         probe's F_GETLK: only l_type
 *       changes, to F_UNLCK
 *   CHECK_OTHER_LOCKF(fd, func, off, size, result)  probe's lockf gives
 *       result (0, or the errno of a -1 return)
 * or on an open file of its own (it opens the path itself):
 *   CHECK_OTHER_FLOCK_AT(path, flags, op, result)             flock(op)
 *   CHECK_OTHER_FCNTL_AT(path, cmd, type, start, len, result) fcntl(cmd)
 *   CHECK_OTHER_GETLK_AT(path, cmd, start, len, type, lstart, llen, pid)
 *       F_GETLK or F_OFD_GETLK reports exactly that lock
 *   qtest_probe_path(path, QTEST_BY_FLOCK|QTEST_BY_OFD, ...)  the result of
 *       flock(LOCK_EX|LOCK_NB) or F_OFD_SETLK
 * A lock a probe obtains is released again before it exits.
 *
 * Helper processes (this binary, or another program, exec'd with a changed
 * environment: without LD_PRELOAD, with QNXCOMPAT_FAULT or another
 * QNXCOMPAT_REGISTRY ...): qtest_spawn / qtest_spawn_after (run a step in
 * the forked child first, e.g. take locks the new image inherits) give a
 * qtest_helper whose stdin/stdout/stderr are pipes; qtest_read_until,
 * qtest_helper_say, qtest_out_val ("KEY value" lines), qtest_helper_finish,
 * qtest_helper_kill; in the helper qtest_wait_eof and qtest_setlk_path.
 * CHECK_RUN_SELF runs this binary with environment edits to completion (a
 * traced run: qtest_trace_file gives the file and its environment edit,
 * CHECK_TRACED finds its QNXCOMPAT_TRACE lines).  Also
 * qtest_make_segment / qtest_registry_name / qtest_file_snapshot for
 * planted registry segments, qtest_registry_path (this run's own segment
 * file in /dev/shm), qtest_wait_state, qtest_count_lines,
 * qtest_status_field (a number of /proc/PID/status: voluntary_ctxt_switches);
 * qtest_become_nobody() drops to uid/gid QTEST_NOBODY (65534).
 *
 * The kernel mirror (every lock the library grants is a kernel lock too):
 *   qtest_mirror_off() (QNXCOMPAT_MIRROR=off under the shim),
 *   qtest_kernel_sees() (natively, or with the mirror on), qtest_mirror_on()
 *   CHECK_KERNEL(fd, want, cls, type, pid, start, end, what)  /proc/locks
 *       shows `want` such locks on fd's file (qtest_kernel_count; the
 *       library's open-file tokens near 2^63 left out of "any range");
 *       qtest_lslocks_count does the same through lslocks(8)
 *   peers outside the library (qtest_peer_main: peer_static.c, or a test
 *       binary re-executed with "--peer" and without LD_PRELOAD; qtest_peers
 *       lists both): CHECK_PEER_TRY, CHECK_PEER_GET, CHECK_PEER_HOLD and
 *       CHECK_PEER_RELEASE; qtest_call_name names a struct qtest_call
 *
 * Many descriptors and files (the "no silent limits" tests):
 *   qtest_shared(size)                 zeroed MAP_SHARED|MAP_ANONYMOUS memory
 *   qtest_raise_nofile(n), qtest_need_nofile(want, need)  RLIMIT_NOFILE soft
 *       (and, as root, hard) limit to at least n; or SKIP the test;
 *       qtest_raise_rlimit(res, n) the same for any resource (RLIMIT_NPROC)
 *   qtest_fileset_create/_path/_remove many small files in a private
 *       directory, named by index
 *   qtest_probe_fileset(...)           ONE other process F_SETLKs a range of
 *       each of a list of those files (a fresh open of each) and reports
 *       each result: 0 or the errno; qtest_count_eq, qtest_first_ne
 *   qtest_probe_reqs(reqs, n, ans, res, ms)  ONE other process makes a list
 *       of probe requests (struct qtest_req: F_GETLK queries, F_SETLK or
 *       flock tries) and reports each answer and result
 *   qtest_fork_fn(fn, arg)             fork a child running fn(arg) then
 *       _exit(0), with its own alarm
 *   qtest_wait_flag(p, want, ms)       wait until a shared int reaches a
 *       value (bounded)
 *
 * Nothing can hang: qtest_init() arms alarm(QTEST_TIMEOUT_S), every child
 * arms its own alarm, and every wait for a child or a message is bounded
 * (a child that does not finish in time is killed and counted as failed).
 */
#ifndef QTEST_H
#define QTEST_H

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define QTEST_TIMEOUT_S 90       /* whole test program */
#define QTEST_CHILD_TIMEOUT_S 60 /* any forked child */
#define QTEST_WAIT_MS 10000      /* default bound for waiting on a child */
#define QTEST_MAX_TMP 32

/* ------------------------------------------------------------------------ */
/* Counters and reporting                                                    */
/* ------------------------------------------------------------------------ */

struct qtest_state {
    long passed;
    long failed;
};

static struct qtest_state *qtest_st;
static pid_t qtest_main_pid;
static char qtest_tmp_paths[QTEST_MAX_TMP][64];
static int qtest_ntmp;

/* Name of an errno value ("EAGAIN"), "0" for none. */
static inline const char *qtest_errname(int e)
{
    if (e == 0)
        return "0";
    const char *n = strerrorname_np(e);
    return n ? n : "E???";
}

/* Print one line with a single write(2) so that lines from several
 * processes do not interleave. */
static inline void qtest_print(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline void qtest_print(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDOUT_FILENO, buf, (size_t)n);
    (void)w;
}

/* Setup failure (pipe, fork, mkstemp ...): not a check result, abort. */
#define qtest_fatal(what)                                                     \
    do {                                                                      \
        qtest_print("FATAL %s:%d: %s failed (errno %s)", __FILE__, __LINE__,  \
                    (what), qtest_errname(errno));                            \
        _exit(99);                                                            \
    } while (0)

static inline void qtest_alloc_state(void)
{
    if (qtest_st)
        return;
    void *p = mmap(NULL, sizeof *qtest_st, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        qtest_fatal("mmap counters");
    qtest_st = p;
}

static inline void qtest_record(int ok, const char *file, int line,
                                const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void qtest_record(int ok, const char *file, int line,
                                const char *fmt, ...)
{
    qtest_alloc_state();
    if (ok) {
        __atomic_add_fetch(&qtest_st->passed, 1, __ATOMIC_SEQ_CST);
        return;
    }
    __atomic_add_fetch(&qtest_st->failed, 1, __ATOMIC_SEQ_CST);
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (getpid() == qtest_main_pid)
        qtest_print("FAIL %s:%d: %s", file, line, msg);
    else
        qtest_print("FAIL %s:%d [child %d]: %s", file, line, (int)getpid(),
                    msg);
}

#define CHECK(cond, ...) qtest_record(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

static inline void qtest_check_err(long rc, int err, int want1, int want2,
                                   const char *expr, const char *file,
                                   int line)
{
    int ok = rc == -1 && (err == want1 || err == want2);
    if (want1 == want2)
        qtest_record(ok, file, line, "%s: expected -1 %s, got %ld %s", expr,
                     qtest_errname(want1), rc, rc == -1 ? qtest_errname(err) : "");
    else
        qtest_record(ok, file, line, "%s: expected -1 %s or %s, got %ld %s",
                     expr, qtest_errname(want1), qtest_errname(want2), rc,
                     rc == -1 ? qtest_errname(err) : "");
}

#define CHECK_ERR2(expr, e1, e2)                                              \
    do {                                                                      \
        errno = 0;                                                            \
        long qt_rc_ = (long)(expr);                                           \
        int qt_e_ = errno;                                                    \
        qtest_check_err(qt_rc_, qt_e_, (e1), (e2), #expr, __FILE__, __LINE__); \
    } while (0)

#define CHECK_ERR(expr, e) CHECK_ERR2(expr, e, e)

#define CHECK_OK(expr)                                                        \
    do {                                                                      \
        errno = 0;                                                            \
        long qt_rc_ = (long)(expr);                                           \
        int qt_e_ = errno;                                                    \
        CHECK(qt_rc_ == 0, "%s: expected 0, got %ld %s", #expr, qt_rc_,       \
              qt_rc_ == -1 ? qtest_errname(qt_e_) : "");                      \
    } while (0)

#define CHECK_EQ(actual, expected)                                            \
    do {                                                                      \
        long long qt_a_ = (long long)(actual);                                \
        long long qt_x_ = (long long)(expected);                              \
        CHECK(qt_a_ == qt_x_, "%s is %lld, expected %lld (%s)", #actual,      \
              qt_a_, qt_x_, #expected);                                       \
    } while (0)

/* 1 when run under the shim (QTEST_MODE=shim), 0 natively. */
static inline int qtest_mode_shim(void)
{
    const char *m = getenv("QTEST_MODE");
    if (m && strcmp(m, "shim") == 0)
        return 1;
    if (m && strcmp(m, "native") == 0)
        return 0;
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "qnxcompat") != NULL;
}

static inline void qtest_on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL qtest: timeout (alarm) - process killed\n";
    ssize_t w = write(STDOUT_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(124);
}

/* Children and temporary paths a test must not leave behind if its alarm
 * fires: install qtest_on_timeout as the SIGALRM handler, and it kills the
 * tracked children and unlinks the tracked paths before failing the test. */
#define QTEST_MAX_TRACK 64
static volatile pid_t qtest_tracked[QTEST_MAX_TRACK] __attribute__((unused));
static char qtest_tracked_paths[QTEST_MAX_TRACK][256] __attribute__((unused));
static volatile int qtest_tracked_path_used[QTEST_MAX_TRACK] __attribute__((unused));

static inline void qtest_track(pid_t p)
{
    for (int i = 0; i < QTEST_MAX_TRACK; i++)
        if (qtest_tracked[i] == 0) {
            qtest_tracked[i] = p;
            return;
        }
}

static inline void qtest_untrack(pid_t p)
{
    for (int i = 0; i < QTEST_MAX_TRACK; i++)
        if (qtest_tracked[i] == p)
            qtest_tracked[i] = 0;
}

static inline void qtest_track_path(const char *p)
{
    for (int i = 0; i < QTEST_MAX_TRACK; i++)
        if (!qtest_tracked_path_used[i]) {
            snprintf(qtest_tracked_paths[i], sizeof qtest_tracked_paths[i], "%.255s", p);
            qtest_tracked_path_used[i] = 1;
            return;
        }
}

/* Unlinks a tracked path and stops tracking it. */
static inline void qtest_remove_path(const char *p)
{
    unlink(p);
    for (int i = 0; i < QTEST_MAX_TRACK; i++)
        if (qtest_tracked_path_used[i] && strcmp(qtest_tracked_paths[i], p) == 0)
            qtest_tracked_path_used[i] = 0;
}

static inline void qtest_on_timeout(int sig)
{
    if (getpid() == qtest_main_pid) {
        for (int i = 0; i < QTEST_MAX_TRACK; i++)
            if (qtest_tracked[i] > 0)
                kill(qtest_tracked[i], SIGKILL);
        for (int i = 0; i < QTEST_MAX_TRACK; i++)
            if (qtest_tracked_path_used[i])
                unlink(qtest_tracked_paths[i]);
    }
    qtest_on_alarm(sig);
}

/* Call first thing in main(). */
static inline void qtest_init(void)
{
    qtest_main_pid = getpid();
    qtest_alloc_state();
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, qtest_on_alarm);
    alarm(QTEST_TIMEOUT_S);
}

static inline int qtest_done(void)
{
    if (getpid() != qtest_main_pid)
        _exit(0);
    for (int i = 0; i < qtest_ntmp; i++)
        unlink(qtest_tmp_paths[i]);
    alarm(0);
    long p = __atomic_load_n(&qtest_st->passed, __ATOMIC_SEQ_CST);
    long f = __atomic_load_n(&qtest_st->failed, __ATOMIC_SEQ_CST);
    qtest_print("%ld passed, %ld failed", p, f);
    return f == 0 ? 0 : 1;
}

#define QTEST_DONE() qtest_done()

/* A run that has nothing to check in this mode (e.g. tracing natively):
 * says why, for run.sh to show "SKIP ... (why)" rather than a PASS with no
 * check, and ends with an empty summary. run.sh fails any other run that
 * made no check. */
static inline int qtest_skip(const char *why)
{
    printf("qtest: skipped: %s\n0 passed, 0 failed\n", why);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Small utilities                                                           */
/* ------------------------------------------------------------------------ */

static inline double qtest_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline void qtest_msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* A small seedable random generator (xorshift64).  Its state is per
 * process: a forked child goes on with a copy unless it sets qtest_rng. */
static unsigned long long qtest_rng __attribute__((unused)) = 1;

static inline unsigned long long qtest_rnd(void)
{
    unsigned long long x = qtest_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return qtest_rng = x;
}

static inline int qtest_rnd_below(int n)
{
    return (int)(qtest_rnd() % (unsigned long long)n);
}

/* The seed of a run's random choices: QTEST_SEED=<n> if set (to repeat a
 * run), else one from the time and pid; never 0.  Also seeds qtest_rnd(). */
static inline unsigned long long qtest_seed(void)
{
    const char *s = getenv("QTEST_SEED");
    unsigned long long seed = s ? strtoull(s, NULL, 0)
                                : (unsigned long long)time(NULL) * 2654435761ULL ^
                                      (unsigned long long)getpid();
    if (seed == 0)
        seed = 1;
    qtest_rng = seed;
    return seed;
}

/* 1 under QTEST_LONG (set and not "0"): the long versions that
 * scripts/stress.sh runs. */
static inline int qtest_long_mode(void)
{
    const char *l = getenv("QTEST_LONG");
    return l && *l && strcmp(l, "0") != 0;
}

/* 1 if e is an errno a lock call (fcntl, lockf, flock) may fail with, on
 * any input: the set the fuzz and scribble tests accept (EWOULDBLOCK is
 * EAGAIN on Linux). */
static inline int qtest_lock_errno_ok(int e)
{
    switch (e) {
    case EBADF: case EINVAL: case EOVERFLOW: case EAGAIN: case EACCES:
    case EDEADLK: case EINTR: case ENOLCK: case ENOMEM: case EFAULT:
    case ESPIPE: case EOPNOTSUPP: case ENOSYS:
        return 1;
    default:
        return 0;
    }
}

/* Handle sig with fn (sa_flags flags, e.g. 0 so that it interrupts a
 * blocking call with EINTR, or SA_RESTART). */
static inline void qtest_on_signal(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* Read a small file (a /proc entry) with one read(2) into buf,
 * NUL-terminated: the length, or -1 if it cannot be read.  Safe in a
 * signal handler. */
static inline ssize_t qtest_read_file(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t got = read(fd, buf, n - 1);
    close(fd);
    if (got < 0)
        return -1;
    buf[got] = 0;
    return got;
}

/* Create a unique file /tmp/qtest-PID-XXXXXX of `size` bytes, open O_RDWR.
 * It is unlinked by QTEST_DONE().  *path (if not NULL) receives its name. */
static inline int qtest_tmpfile(off_t size, const char **path)
{
    if (qtest_ntmp >= QTEST_MAX_TMP)
        qtest_fatal("too many temp files");
    char *p = qtest_tmp_paths[qtest_ntmp];
    snprintf(p, sizeof qtest_tmp_paths[0], "/tmp/qtest-%d-XXXXXX",
             (int)getpid());
    int fd = mkstemp(p);
    if (fd < 0)
        qtest_fatal("mkstemp");
    qtest_ntmp++;
    if (ftruncate(fd, size) != 0)
        qtest_fatal("ftruncate");
    if (path)
        *path = p;
    return fd;
}

static inline int qtest_open(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        qtest_fatal("open");
    return fd;
}

static inline void qtest_seek(int fd, off_t off)
{
    if (lseek(fd, off, SEEK_SET) != off)
        qtest_fatal("lseek");
}

/* A struct flock for [start, start+len) relative to `whence`. */
static inline struct flock qtest_fl(short type, short whence, off_t start,
                                    off_t len)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = whence;
    fl.l_start = start;
    fl.l_len = len;
    return fl;
}

/* fcntl(fd, cmd, {type, whence, start, len}) (l_pid 0) */
static inline int qtest_lk_whence(int fd, int cmd, short type, short whence,
                                  off_t start, off_t len)
{
    struct flock fl = qtest_fl(type, whence, start, len);
    return fcntl(fd, cmd, &fl);
}

/* fcntl(fd, cmd, {type, SEEK_SET, start, len}) */
static inline int qtest_lk(int fd, int cmd, short type, off_t start, off_t len)
{
    return qtest_lk_whence(fd, cmd, type, SEEK_SET, start, len);
}

/* The library's registry check, qnxcompat_verify(name, msg, msglen) (0:
 * consistent; see shim/include/qnxcompat.h), or NULL when the library is
 * not loaded. */
typedef int (*qtest_verify_fn)(const char *, char *, size_t);

static inline qtest_verify_fn qtest_get_verify(void)
{
    return (qtest_verify_fn)dlsym(RTLD_DEFAULT, "qnxcompat_verify");
}

#define setlk(fd, type, start, len) qtest_lk(fd, F_SETLK, type, start, len)
#define setlkw(fd, type, start, len) qtest_lk(fd, F_SETLKW, type, start, len)
#define unlock(fd, start, len) qtest_lk(fd, F_SETLK, F_UNLCK, start, len)

/* ------------------------------------------------------------------------ */
/* Children                                                                  */
/* ------------------------------------------------------------------------ */

/* fork(), with the child's alarm armed (QTEST_CHILD_TIMEOUT_S): any child
 * a test forks cannot outlive a hang.  Returns 0 in the child. */
static inline pid_t qtest_fork(void)
{
    pid_t pid = fork();
    if (pid < 0)
        qtest_fatal("fork");
    if (pid == 0)
        alarm(QTEST_CHILD_TIMEOUT_S);
    return pid;
}

/* Wait up to timeout_ms for pid; on timeout kill it (SIGKILL) and reap it.
 * Returns the wait status, or -1 on timeout. */
static inline int qtest_wait(pid_t pid, int timeout_ms)
{
    double end = qtest_now_ms() + timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -2;
        if (qtest_now_ms() > end)
            break;
        qtest_msleep(2);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return -1;
}

static inline void qtest_describe_status(int st, char *buf, size_t n)
{
    if (st == -1)
        snprintf(buf, n, "timed out (killed)");
    else if (st < -1)
        snprintf(buf, n, "waitpid failed");
    else if (WIFEXITED(st))
        snprintf(buf, n, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(buf, n, "status 0x%x", st);
}

/* CHECK that pid exits with status 0 within QTEST_WAIT_MS. */
#define CHECK_EXIT0(pid)                                                      \
    do {                                                                      \
        int qt_st_ = qtest_wait((pid), QTEST_WAIT_MS);                        \
        char qt_d_[96];                                                       \
        qtest_describe_status(qt_st_, qt_d_, sizeof qt_d_);                   \
        CHECK(qt_st_ >= 0 && WIFEXITED(qt_st_) && WEXITSTATUS(qt_st_) == 0,   \
              "child %d: %s", (int)(pid), qt_d_);                             \
    } while (0)

/* Wait for each of pids[0..n) (up to timeout_ms each; one that does not
 * exit in time is killed) and CHECK that every one exited with status 0:
 * one failure names how many did not and the first of them. */
static inline void qtest_check_all_exit0(const pid_t *pids, int n,
                                         int timeout_ms, const char *what,
                                         const char *file, int line)
{
    int bad = 0, first = -1, first_st = 0;
    for (int i = 0; i < n; i++) {
        int st = qtest_wait(pids[i], timeout_ms);
        if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) && bad++ == 0) {
            first = i;
            first_st = st;
        }
    }
    char d[96] = "";
    if (first >= 0)
        qtest_describe_status(first_st, d, sizeof d);
    qtest_record(bad == 0, file, line, "%s: %d of %d did not exit 0; first: "
                 "#%d (pid %d): %s", what, bad, n, first,
                 first >= 0 ? (int)pids[first] : 0, d);
}

#define CHECK_ALL_EXIT0(pids, n, timeout_ms, what)                            \
    qtest_check_all_exit0((pids), (n), (timeout_ms), (what), __FILE__, __LINE__)

/* Message exchanged between a test process and its child over pipes. */
struct qtest_msg {
    int tag;       /* a character such as 'L' (locked), 'R' (ready) ... */
    int err;       /* errno accompanying a result */
    long long val; /* return value */
};

/* A child started by qtest_child_start(), seen from the parent. */
typedef struct {
    pid_t pid;
    int from_child; /* read end of child -> parent pipe */
    int to_child;   /* write end of parent -> child pipe */
} qtest_child;

/* In a child started by qtest_child_start(): its ends of the two pipes. */
static int qtest_up_fd = -1;
static int qtest_down_fd = -1;

/* Write one fixed-size record (a message, or a test's own command struct)
 * to a pipe. */
static inline void qtest_write_rec(int fd, const void *rec, size_t n)
{
    ssize_t w;
    do
        w = write(fd, rec, n);
    while (w < 0 && errno == EINTR);
}

/* Read one record of n bytes within timeout_ms: 1 = got it, 0 = timeout,
 * -1 = EOF (or a short read). */
static inline int qtest_read_rec(int fd, int timeout_ms, void *rec, size_t n)
{
    double end = qtest_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(end - qtest_now_ms());
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, left < 0 ? 0 : left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;
        ssize_t got = read(fd, rec, n);
        if (got < 0 && errno == EINTR)
            continue;
        return got == (ssize_t)n ? 1 : -1;
    }
}

static inline void qtest_put(int fd, int tag, long long val, int err)
{
    struct qtest_msg m = {tag, err, val};
    qtest_write_rec(fd, &m, sizeof m);
}

/* Read one message within timeout_ms: 1 = got it, 0 = timeout, -1 = EOF. */
static inline int qtest_get(int fd, int timeout_ms, struct qtest_msg *m)
{
    return qtest_read_rec(fd, timeout_ms, m, sizeof *m);
}

/* Fork a child running fn(arg) then _exit(0).  The child talks to the
 * parent with child_say()/child_report()/child_await(). */
static inline qtest_child qtest_child_start(void (*fn)(void *), void *arg)
{
    int up[2], down[2];
    if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0)
        qtest_fatal("pipe");
    pid_t pid = qtest_fork();
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        qtest_up_fd = up[1];
        qtest_down_fd = down[0];
        fn(arg);
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    qtest_child c = {pid, up[0], down[1]};
    return c;
}

/* Child side. */
static inline void child_say(int tag) { qtest_put(qtest_up_fd, tag, 0, 0); }
static inline void child_report(int tag, long long rc, int err)
{
    qtest_put(qtest_up_fd, tag, rc, err);
}
/* Wait (bounded) for the parent to send `tag`; returns 1 if it did. */
static inline int child_await(int tag, int timeout_ms)
{
    struct qtest_msg m;
    return qtest_get(qtest_down_fd, timeout_ms, &m) == 1 && m.tag == tag;
}

/* Parent side. */
static inline void qtest_say(qtest_child *c, int tag)
{
    qtest_put(c->to_child, tag, 0, 0);
}

/* CHECK that the child sends `tag` within timeout_ms; fills *m if given. */
#define CHECK_HEAR(c, want_tag, timeout_ms, m)                                \
    qtest_check_hear((c), (want_tag), (timeout_ms), (m), __FILE__, __LINE__)

static inline int qtest_check_hear(qtest_child *c, int want, int timeout_ms,
                                   struct qtest_msg *out, const char *file,
                                   int line)
{
    struct qtest_msg m = {0, 0, 0};
    int r = qtest_get(c->from_child, timeout_ms, &m);
    int ok = r == 1 && m.tag == want;
    qtest_record(ok, file, line, "message '%c' from child %d: %s (tag '%c')",
                 want, (int)c->pid,
                 r == 1 ? "wrong message" : r == 0 ? "timed out" : "child gone",
                 m.tag ? m.tag : '-');
    if (out)
        *out = m;
    return ok;
}

/* 1 if the child sends nothing for `ms` milliseconds. */
static inline int qtest_silent(qtest_child *c, int ms)
{
    struct pollfd p = {c->from_child, POLLIN, 0};
    qtest_msleep(ms);
    return poll(&p, 1, 0) == 0;
}

/* The scheduler state in a /proc stat file ('S', 'R', ...; '?' if it
 * cannot be read): /proc/PID/stat, /proc/self/task/TID/stat. */
static inline char qtest_stat_state(const char *path)
{
    char buf[512];
    if (qtest_read_file(path, buf, sizeof buf) < 0)
        return '?';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

/* Scheduler state of a process from /proc/PID/stat ('S', 'R', ...). */
static inline char qtest_proc_state(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    return qtest_stat_state(path);
}

/* The child announced it is about to block (it sent a message just before
 * the blocking call).  Wait until it sleeps (best effort, <= 1 s), then 200 ms
 * more, and return 1 if it has still not reported anything, i.e. it is
 * blocked in the call. */
static inline int qtest_wait_blocked(qtest_child *c)
{
    double end = qtest_now_ms() + 1000;
    while (qtest_now_ms() < end) {
        char s = qtest_proc_state(c->pid);
        if (s == 'S' || s == 'D')
            break;
        qtest_msleep(5);
    }
    return qtest_silent(c, 200);
}

/* Tell the child to quit ('Q'), CHECK it exits with status 0, close pipes. */
#define CHECK_CHILD_FINISH(c)                                                 \
    do {                                                                      \
        qtest_say((c), 'Q');                                                  \
        CHECK_EXIT0((c)->pid);                                                \
        close((c)->from_child);                                               \
        close((c)->to_child);                                                 \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Probes: a fresh process tries a lock call, on an inherited descriptor or  */
/* on an open file of its own                                                */
/* ------------------------------------------------------------------------ */

/* Run fn(arg) in a forked "probe" (with its own alarm) that _exit()s with
 * what fn returns: 0, an errno (see qtest_probe_result), or 255 for "could
 * not even try".  Returns that, or -1 if the probe crashed, hung (it is
 * killed after QTEST_WAIT_MS) or gave 255. */
static inline int qtest_probe(int (*fn)(const void *), const void *arg)
{
    pid_t pid = qtest_fork();
    if (pid == 0) {
        _exit(fn(arg));
    }
    int st = qtest_wait(pid, QTEST_WAIT_MS);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) == 255)
        return -1;
    return WEXITSTATUS(st);
}

/* What a probe returns for a call that gave r with errno e: 0, the errno,
 * or 255 for a return value other than 0 and -1. */
static inline int qtest_probe_result(int r, int e)
{
    return r == 0 ? 0 : r == -1 ? (e & 0xff) : 255;
}

/* A probe's result for a message: "0", the errno's name or "probe died". */
static inline const char *qtest_probe_name(int r)
{
    return r < 0 ? "probe died" : r == 0 ? "0" : qtest_errname(r);
}

/* "F_WRLCK", "F_RDLCK|F_FLOCK" ..., or the number in hex. */
static inline const char *qtest_typename(int t)
{
    static __thread char bufs[4][24];
    static __thread int next;
    const char *base;
    switch (t & ~F_FLOCK) {
    case F_RDLCK: base = "F_RDLCK"; break;
    case F_WRLCK: base = "F_WRLCK"; break;
    case F_UNLCK: base = "F_UNLCK"; break;
    default: base = NULL;
    }
    if (base && !(t & F_FLOCK))
        return base;
    char *b = bufs[next++ & 3];
    if (base)
        snprintf(b, sizeof bufs[0], "%s|F_FLOCK", base);
    else
        snprintf(b, sizeof bufs[0], "%#x", t);
    return b;
}

/* "F_SETLK", "F_OFD_GETLK" ..., or "cmd N". */
static inline const char *qtest_cmdname(int cmd)
{
    static __thread char bufs[4][24];
    static __thread int next;
    switch (cmd) {
    case F_GETLK: return "F_GETLK";
    case F_SETLK: return "F_SETLK";
    case F_SETLKW: return "F_SETLKW";
    case F_OFD_GETLK: return "F_OFD_GETLK";
    case F_OFD_SETLK: return "F_OFD_SETLK";
    case F_OFD_SETLKW: return "F_OFD_SETLKW";
    default: {
        char *b = bufs[next++ & 3];
        snprintf(b, sizeof bufs[0], "cmd %d", cmd);
        return b;
    }
    }
}

/* "LOCK_EX|LOCK_NB" ..., or the number of a bad operation. */
static inline const char *qtest_flockname(int op)
{
    static __thread char bufs[4][48];
    static __thread int next;
    char *b = bufs[next++ & 3];
    const char *base;
    switch (op & ~LOCK_NB) {
    case LOCK_SH: base = "LOCK_SH"; break;
    case LOCK_EX: base = "LOCK_EX"; break;
    case LOCK_UN: base = "LOCK_UN"; break;
    default: snprintf(b, sizeof bufs[0], "%d", op); return b;
    }
    snprintf(b, sizeof bufs[0], "%s%s", base, op & LOCK_NB ? "|LOCK_NB" : "");
    return b;
}

static inline const char *qtest_lockfname(int func)
{
    switch (func) {
    case F_LOCK: return "F_LOCK";
    case F_TLOCK: return "F_TLOCK";
    case F_TEST: return "F_TEST";
    case F_ULOCK: return "F_ULOCK";
    default: return "?";
    }
}

/* A probe's request.  On an inherited descriptor (fd), or (path not NULL)
 * on an open of path (flags) of its own, i.e. another open file:
 * flock(op) if op, else fcntl(cmd, {type, SEEK_SET, start, len, l_pid 0});
 * lockf: lockf(func, len) at offset start on its own open of fd's file.  A
 * lock it gets is dropped again before it exits. */
struct qtest_req {
    int fd;
    const char *path;
    int flags;
    int op, cmd, func;
    short type;
    off_t start, len;
};

static inline int qtest_req_fd(const struct qtest_req *q)
{
    return q->path ? open(q->path, q->flags) : q->fd;
}

static inline int qtest_req_lock(const void *arg)
{
    const struct qtest_req *q = arg;
    int fd = qtest_req_fd(q);
    if (fd < 0)
        return 255;
    errno = 0;
    int r, e;
    if (q->op) {
        r = flock(fd, q->op);
        e = errno;
        if (r == 0)
            flock(fd, LOCK_UN);
    } else {
        struct flock fl = qtest_fl(q->type, SEEK_SET, q->start, q->len);
        r = fcntl(fd, q->cmd, &fl);
        e = errno;
        fl.l_type = (short)((q->type & F_FLOCK) | F_UNLCK);
        if (r == 0)
            fcntl(fd, q->cmd, &fl);
    }
    if (q->path)
        close(fd);
    return qtest_probe_result(r, e);
}

/* Returns 0 if another process could F_SETLK `type` on [start, start+len)
 * (it then unlocks it again before exiting), otherwise its errno (or -1 if
 * the probe crashed or hung). */
static inline int qtest_probe_setlk(int fd, short type, off_t start, off_t len)
{
    struct qtest_req q = {fd, NULL, 0, 0, F_SETLK, 0, type, start, len};
    return qtest_probe(qtest_req_lock, &q);
}

/* Another process opens path (flags) itself and calls flock(op). */
static inline int qtest_probe_flock(const char *path, int flags, int op)
{
    struct qtest_req q = {-1, path, flags, op, 0, 0, 0, 0, 0};
    return qtest_probe(qtest_req_lock, &q);
}

/* Another process opens path O_RDWR itself and calls
 * fcntl(cmd, {type, SEEK_SET, start, len}) (F_SETLK, F_OFD_SETLK ...;
 * type may carry F_FLOCK). */
static inline int qtest_probe_fcntl(const char *path, int cmd, short type,
                                    off_t start, off_t len)
{
    struct qtest_req q = {-1, path, O_RDWR, 0, cmd, 0, type, start, len};
    return qtest_probe(qtest_req_lock, &q);
}

/* The query of qtest_probe_query, and the pipe its answer goes back on. */
struct qtest_query {
    struct qtest_req q;
    int answer_fd;
};

/* In a probe: the query q (cmd F_GETLK or F_OFD_GETLK about `type` on
 * [start, start+len), l_pid prefilled -7, or 0 for F_OFD_GETLK); the
 * answer goes to *fl.  Returns what a probe returns (255: cannot open). */
static inline int qtest_req_query(const struct qtest_req *q, struct flock *fl)
{
    int fd = qtest_req_fd(q);
    if (fd < 0)
        return 255;
    *fl = qtest_fl(q->type, SEEK_SET, q->start, q->len);
    fl->l_pid = q->cmd == F_OFD_GETLK ? 0 : -7;
    errno = 0;
    int r = fcntl(fd, q->cmd, fl);
    int e = errno;
    if (q->path)
        close(fd);
    return qtest_probe_result(r, e);
}

static inline int qtest_query_fn(const void *arg)
{
    const struct qtest_query *a = arg;
    struct flock fl;
    int r = qtest_req_query(&a->q, &fl);
    if (r != 255)
        qtest_write_rec(a->answer_fd, &fl, sizeof fl);
    return r;
}

/* Another process asks fcntl(cmd) (F_GETLK or F_OFD_GETLK) about `type`
 * on [start, start+len), on the inherited fd or (path not NULL) on an
 * O_RDWR open of path of its own; the answer goes to *out (l_type -1 if
 * none came back).  Returns 0, its errno, or -1 (probe crashed).  The query
 * struct is prefilled with l_pid -7 for F_GETLK (0 for F_OFD_GETLK, which
 * requires it) so that a "free" answer can be seen to leave the other
 * fields alone. */
static inline int qtest_probe_query(int fd, const char *path, int cmd,
                                    short type, off_t start, off_t len,
                                    struct flock *out)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        qtest_fatal("pipe");
    struct qtest_query a = {{fd, path, O_RDWR, 0, cmd, 0, type, start, len},
                            p[1]};
    int r = qtest_probe(qtest_query_fn, &a);
    close(p[1]);
    if (qtest_read_rec(p[0], 0, out, sizeof *out) != 1) {
        memset(out, 0, sizeof *out);
        out->l_type = -1;
    }
    close(p[0]);
    return r;
}

/* Another process does F_GETLK with `type` on [start, start+len) through
 * the inherited fd (see qtest_probe_query). */
static inline int qtest_probe_getlk(int fd, short type, off_t start, off_t len,
                                    struct flock *out)
{
    return qtest_probe_query(fd, NULL, F_GETLK, type, start, len, out);
}

/* Another process can lock `type` on [start, start+len). */
#define CHECK_CAN_LOCK(fd, type, start, len)                                  \
    do {                                                                      \
        int qt_r_ = qtest_probe_setlk((fd), (type), (start), (len));          \
        CHECK(qt_r_ == 0,                                                     \
              "other process F_SETLK %s start=%lld len=%lld: expected 0, "    \
              "got %s",                                                       \
              qtest_typename(type), (long long)(start), (long long)(len),     \
              qtest_probe_name(qt_r_));                                       \
    } while (0)

/* Another process gets -1 EAGAIN for F_SETLK `type` on [start, start+len). */
#define CHECK_CANNOT_LOCK(fd, type, start, len)                               \
    do {                                                                      \
        int qt_r_ = qtest_probe_setlk((fd), (type), (start), (len));          \
        CHECK(qt_r_ == EAGAIN,                                                \
              "other process F_SETLK %s start=%lld len=%lld: expected -1 "    \
              "EAGAIN, got %s",                                               \
              qtest_typename(type), (long long)(start), (long long)(len),     \
              qtest_probe_name(qt_r_));                                       \
    } while (0)

static inline void qtest_check_other_flock(const char *path, int flags,
                                           int op, int want, const char *file,
                                           int line)
{
    int r = qtest_probe_flock(path, flags, op);
    qtest_record(r == want, file, line,
                 "other process, own open file: flock(%s): expected %s, got %s",
                 qtest_flockname(op), qtest_probe_name(want),
                 qtest_probe_name(r));
}

static inline void qtest_check_other_fcntl(const char *path, int cmd,
                                           short type, off_t start, off_t len,
                                           int want, const char *file,
                                           int line)
{
    int r = qtest_probe_fcntl(path, cmd, type, start, len);
    qtest_record(r == want, file, line,
                 "other process, own open file: %s %s start=%lld len=%lld: "
                 "expected %s, got %s", qtest_cmdname(cmd), qtest_typename(type),
                 (long long)start, (long long)len, qtest_probe_name(want),
                 qtest_probe_name(r));
}

/* Another process, through its own open of path (flags), gets `want` (0 or
 * the errno of a -1 return) from flock(op). */
#define CHECK_OTHER_FLOCK_AT(path, flags, op, want)                           \
    qtest_check_other_flock((path), (flags), (op), (want), __FILE__, __LINE__)

/* Another process, through its own O_RDWR open of path, gets `want` from
 * fcntl(cmd, {type, SEEK_SET, start, len}). */
#define CHECK_OTHER_FCNTL_AT(path, cmd, type, start, len, want)               \
    qtest_check_other_fcntl((path), (cmd), (type), (start), (len), (want),    \
                            __FILE__, __LINE__)

/* CHECK a struct flock that a query (by `who`) on [start, start+len)
 * returned with rc r: exactly {want_type, SEEK_SET, want_start, want_len,
 * want_pid}, or, for want_type F_UNLCK, "free": only l_type changed (to
 * F_UNLCK) from the query, whose l_pid was upid. */
/* 1 if the answer is what qtest_check_answer wants (below). */
static inline int qtest_answer_ok(int r, const struct flock *fl, off_t start,
                                  off_t len, pid_t upid, int want_type,
                                  off_t want_start, off_t want_len,
                                  pid_t want_pid)
{
    if (want_type == F_UNLCK)
        return r == 0 && fl->l_type == F_UNLCK && fl->l_whence == SEEK_SET &&
               fl->l_start == start && fl->l_len == len && fl->l_pid == upid;
    return r == 0 && fl->l_type == want_type && fl->l_whence == SEEK_SET &&
           fl->l_start == want_start && fl->l_len == want_len &&
           fl->l_pid == want_pid;
}

static inline void qtest_check_answer(const char *who, int r,
                                      const struct flock *fl, off_t start,
                                      off_t len, pid_t upid, int want_type,
                                      off_t want_start, off_t want_len,
                                      pid_t want_pid, const char *file,
                                      int line)
{
    int ok = qtest_answer_ok(r, fl, start, len, upid, want_type, want_start,
                             want_len, want_pid);
    char want[160];
    if (want_type == F_UNLCK)
        snprintf(want, sizeof want, "no lock {F_UNLCK, whence=0, start=%lld, "
                 "len=%lld, pid=%d (unchanged)}", (long long)start,
                 (long long)len, (int)upid);
    else
        snprintf(want, sizeof want, "{%s, whence=0, start=%lld, len=%lld, "
                 "pid=%d}", qtest_typename(want_type), (long long)want_start,
                 (long long)want_len, (int)want_pid);
    qtest_record(ok, file, line,
                 "%s start=%lld len=%lld: expected %s, got rc=%s {%s, "
                 "whence=%d, start=%lld, len=%lld, pid=%d}",
                 who, (long long)start, (long long)len, want,
                 qtest_probe_name(r), qtest_typename(fl->l_type), fl->l_whence,
                 (long long)fl->l_start, (long long)fl->l_len,
                 (int)fl->l_pid);
}

/* Another process's cmd (F_GETLK or F_OFD_GETLK) with a write query on
 * [start, start+len), through fd or (path not NULL) its own open of path,
 * reports exactly {type, SEEK_SET, lstart, llen, pid}; type F_UNLCK: no
 * lock, and nothing else changed. */
static inline void qtest_check_getlk_by(int fd, const char *path, int cmd,
                                        off_t start, off_t len,
                                        short want_type, off_t want_start,
                                        off_t want_len, pid_t want_pid,
                                        const char *file, int line)
{
    struct flock fl;
    int r = qtest_probe_query(fd, path, cmd, F_WRLCK, start, len, &fl);
    char who[80];
    snprintf(who, sizeof who, "other process%s %s",
             path ? ", own open file:" : "", qtest_cmdname(cmd));
    qtest_check_answer(who, r, &fl, start, len, cmd == F_OFD_GETLK ? 0 : -7,
                       want_type, want_start, want_len, want_pid, file, line);
}

/* Another process's F_GETLK(F_WRLCK) on [start, start+len) reports exactly
 * the lock {type, SEEK_SET, lstart, llen, pid}. */
#define CHECK_GETLK(fd, start, len, type, lstart, llen, pid)                  \
    qtest_check_getlk_by((fd), NULL, F_GETLK, (start), (len), (type),         \
                         (lstart), (llen), (pid), __FILE__, __LINE__)

/* Another process's F_GETLK(F_WRLCK) on [start, start+len) finds no lock
 * and changes nothing but l_type (set to F_UNLCK). */
#define CHECK_GETLK_FREE(fd, start, len)                                      \
    CHECK_GETLK((fd), (start), (len), F_UNLCK, 0, 0, 0)

/* Another process's cmd (F_GETLK or F_OFD_GETLK) through its own open of
 * path: as CHECK_GETLK. */
#define CHECK_OTHER_GETLK_AT(path, cmd, start, len, type, lstart, llen, pid)  \
    qtest_check_getlk_by(-1, (path), (cmd), (start), (len), (type),           \
                         (lstart), (llen), (pid), __FILE__, __LINE__)

static inline int qtest_req_lockf(const void *arg)
{
    const struct qtest_req *q = arg;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", q->fd);
    int nfd = open(path, fcntl(q->fd, F_GETFL) & O_ACCMODE);
    if (nfd < 0 || lseek(nfd, q->start, SEEK_SET) != q->start)
        return 255;
    errno = 0;
    int r = lockf(nfd, q->func, q->len);
    int e = errno;
    if (r == 0 && (q->func == F_LOCK || q->func == F_TLOCK)) {
        lseek(nfd, q->start, SEEK_SET);
        lockf(nfd, F_ULOCK, q->len);
    }
    return qtest_probe_result(r, e);
}

/* Another process calls lockf(func, size) at offset `off` on its own open
 * file description of fd's file (so the file offset is not shared with us).
 * A lock it obtains is released before it exits.  Returns 0 or errno (-1 if
 * the probe died). */
static inline int qtest_probe_lockf(int fd, int func, off_t off, off_t size)
{
    struct qtest_req q = {fd, NULL, 0, 0, 0, func, 0, off, size};
    return qtest_probe(qtest_req_lockf, &q);
}

/* CHECK another process's lockf (qtest_probe_lockf) gives ok1 or ok2;
 * `state` (if not NULL) starts the failure message. */
static inline void qtest_check_lockf(const char *state, int fd, int func,
                                     off_t off, off_t size, int ok1, int ok2,
                                     const char *file, int line)
{
    int r = qtest_probe_lockf(fd, func, off, size);
    char want[64];
    if (ok1 == ok2)
        snprintf(want, sizeof want, "%s", ok1 ? qtest_errname(ok1) : "0");
    else
        snprintf(want, sizeof want, "%s or %s",
                 ok1 ? qtest_errname(ok1) : "0", ok2 ? qtest_errname(ok2) : "0");
    qtest_record(r == ok1 || r == ok2, file, line,
                 "%s%sother process lockf(%s, size=%lld) at offset %lld: "
                 "expected %s, got %s", state ? state : "", state ? ": " : "",
                 qtest_lockfname(func), (long long)size, (long long)off, want,
                 qtest_probe_name(r));
}

/* Another process's lockf(func, size) at offset off gives `result` (0 for
 * success, else the errno of a -1 return); CHECK_OTHER_LOCKF2 accepts
 * either of two results. */
#define CHECK_OTHER_LOCKF2(fd, func, off, size, r1, r2)                       \
    qtest_check_lockf(NULL, (fd), (func), (off), (size), (r1), (r2),          \
                      __FILE__, __LINE__)
#define CHECK_OTHER_LOCKF(fd, func, off, size, r)                             \
    CHECK_OTHER_LOCKF2(fd, func, off, size, r, r)
/* The same, the failure message starting with `state`. */
#define CHECK_OTHER_LOCKF_IN(state, fd, func, off, size, r)                   \
    qtest_check_lockf((state), (fd), (func), (off), (size), (r), (r),         \
                      __FILE__, __LINE__)

/* Run fn(arg) in a forked child (its checks are counted) and CHECK that it
 * exits with status 0. */
#define RUN_IN_CHILD(fn, arg)                                                 \
    do {                                                                      \
        qtest_child qt_c_ = qtest_child_start((fn), (arg));                   \
        CHECK_EXIT0(qt_c_.pid);                                               \
        close(qt_c_.from_child);                                              \
        close(qt_c_.to_child);                                                \
    } while (0)

/* lseek to off, then lockf */
static inline int qtest_lockf_at(int fd, off_t off, int func, off_t size)
{
    qtest_seek(fd, off);
    return lockf(fd, func, size);
}

/* ------------------------------------------------------------------------ */
/* Lock calls as data, and children that hold or wait for a lock            */
/* ------------------------------------------------------------------------ */

/* One lock call: fcntl(cmd, {type, SEEK_SET, start, len, l_pid 0}) (type
 * may carry F_FLOCK), lockf(cmd, len) at offset start, or flock(cmd). */
enum { QTEST_CALL_FCNTL = 1, QTEST_CALL_LOCKF, QTEST_CALL_FLOCK };
struct qtest_call {
    int kind; /* QTEST_CALL_* */
    int cmd;  /* fcntl command, lockf function or flock operation */
    short type;
    off_t start, len;
};

static inline struct qtest_call qtest_call_fcntl(int cmd, short type,
                                                 off_t start, off_t len)
{
    struct qtest_call c = {QTEST_CALL_FCNTL, cmd, type, start, len};
    return c;
}

static inline struct qtest_call qtest_call_lockf(int func, off_t off,
                                                 off_t size)
{
    struct qtest_call c = {QTEST_CALL_LOCKF, func, 0, off, size};
    return c;
}

static inline struct qtest_call qtest_call_flock(int op)
{
    struct qtest_call c = {QTEST_CALL_FLOCK, op, 0, 0, 0};
    return c;
}

/* Make the call on fd (undo: remove what it took instead: F_UNLCK, keeping
 * F_FLOCK; F_ULOCK; LOCK_UN).  Returns what the call returned (-2: the
 * lseek before a lockf failed). */
static inline int qtest_call_run(int fd, const struct qtest_call *c, int undo)
{
    switch (c->kind) {
    case QTEST_CALL_FCNTL: {
        short type = undo ? (short)((c->type & F_FLOCK) | F_UNLCK) : c->type;
        struct flock fl = qtest_fl(type, SEEK_SET, c->start, c->len);
        return fcntl(fd, c->cmd, &fl);
    }
    case QTEST_CALL_LOCKF:
        if (lseek(fd, c->start, SEEK_SET) != c->start)
            return -2;
        return lockf(fd, undo ? F_ULOCK : c->cmd, c->len);
    case QTEST_CALL_FLOCK:
        return flock(fd, undo ? LOCK_UN : c->cmd);
    }
    errno = EINVAL;
    return -2;
}

/* "F_SETLK F_WRLCK start=0 len=10", "lockf(F_TLOCK, 10) at 5",
 * "flock(LOCK_EX|LOCK_NB)": a call, for messages. */
static inline const char *qtest_call_name(const struct qtest_call *c,
                                          char *buf, size_t n)
{
    if (c->kind == QTEST_CALL_FCNTL)
        snprintf(buf, n, "%s %s start=%lld len=%lld", qtest_cmdname(c->cmd),
                 qtest_typename(c->type), (long long)c->start,
                 (long long)c->len);
    else if (c->kind == QTEST_CALL_LOCKF)
        snprintf(buf, n, "lockf(%s, %lld) at %lld", qtest_lockfname(c->cmd),
                 (long long)c->len, (long long)c->start);
    else
        snprintf(buf, n, "flock(%s)", qtest_flockname(c->cmd));
    return buf;
}

/* A child that holds or waits: it makes `call` on the inherited
 * descriptor fd, or (path not NULL) on an O_RDWR open of path of its own
 * (another open file).  A waiter first installs a SIGALRM handler with
 * sa_flags if that is >= 0 (so that SIGALRM interrupts its call). */
struct qtest_actor {
    struct qtest_call call;
    int fd;
    const char *path;
    int sa_flags;
};

static inline int qtest_actor_fd(const struct qtest_actor *a)
{
    return a->path ? qtest_open(a->path, O_RDWR) : a->fd;
}

/* Several lock calls that one holder child makes, in order. */
#define QTEST_MAX_HELD 16
struct qtest_actors {
    const struct qtest_actor *a;
    int n; /* 1 .. QTEST_MAX_HELD */
};

/* Child: make each call in turn and report 'L' (result, errno) for each;
 * on 'U' undo them all and report one 'u' (0, or the first failed undo's
 * result and errno); return on 'Q' (or EOF, or 30 s without a word). */
static inline void qtest_holder_all(void *arg)
{
    const struct qtest_actors *s = arg;
    int fds[QTEST_MAX_HELD];
    if (s->n < 1 || s->n > QTEST_MAX_HELD)
        qtest_fatal("qtest_holder_all: number of calls");
    for (int i = 0; i < s->n; i++) {
        fds[i] = qtest_actor_fd(&s->a[i]);
        errno = 0;
        int r = qtest_call_run(fds[i], &s->a[i].call, 0);
        child_report('L', r, errno);
    }
    for (;;) {
        struct qtest_msg m;
        if (qtest_get(qtest_down_fd, 30000, &m) != 1 || m.tag == 'Q')
            return;
        if (m.tag == 'U') {
            int r = 0, e = 0;
            for (int i = 0; i < s->n; i++) {
                errno = 0;
                int ri = qtest_call_run(fds[i], &s->a[i].call, 1);
                if (ri != 0 && r == 0) {
                    r = ri;
                    e = errno;
                }
            }
            child_report('u', r, e);
        }
    }
}

/* Child: take the lock of one actor (qtest_holder_all with one call). */
static inline void qtest_holder(void *arg)
{
    struct qtest_actors s = {arg, 1};
    qtest_holder_all(&s);
}

/* Start a holder child of n locks (qtest_holder_all) and CHECK that it got
 * each of them. */
static inline qtest_child qtest_start_holders(const struct qtest_actor *a,
                                              int n, const char *file,
                                              int line)
{
    struct qtest_actors s = {a, n};
    qtest_child c = qtest_child_start(qtest_holder_all, &s);
    for (int i = 0; i < n; i++) {
        struct qtest_msg m;
        char name[96];
        if (!qtest_check_hear(&c, 'L', 5000, &m, file, line))
            break;
        qtest_record(m.val == 0, file, line,
                     "holder: taking lock %d of %d (%s) gave %lld %s", i + 1,
                     n, qtest_call_name(&a[i].call, name, sizeof name), m.val,
                     qtest_errname(m.err));
    }
    return c;
}

/* Start a holder child (qtest_holder) and CHECK that it got its lock. */
static inline qtest_child qtest_start_holder(struct qtest_actor a,
                                             const char *file, int line)
{
    return qtest_start_holders(&a, 1, file, line);
}

#define CHECK_START_HOLDER(actor) qtest_start_holder((actor), __FILE__, __LINE__)
/* ... of the n calls of actors a[0..n) (CHECK_HOLDER_RELEASE undoes all). */
#define CHECK_START_HOLDERS(a, n) qtest_start_holders((a), (n), __FILE__, __LINE__)

/* Tell a holder to release its lock, and CHECK that it did. */
#define CHECK_HOLDER_RELEASE(c)                                               \
    do {                                                                      \
        struct qtest_msg qt_m_;                                               \
        qtest_say((c), 'U');                                                  \
        if (CHECK_HEAR((c), 'u', 5000, &qt_m_))                               \
            CHECK(qt_m_.val == 0, "holder: releasing its lock gave %lld %s",  \
                  qt_m_.val, qtest_errname(qt_m_.err));                       \
    } while (0)

static inline void qtest_waiter_on_alarm(int sig) { (void)sig; }

/* Child: announce 'R', make the (blocking) call, report 'G' with the
 * result, and hold what it got until 'Q'. */
static inline void qtest_waiter(void *arg)
{
    const struct qtest_actor *a = arg;
    int fd = qtest_actor_fd(a);
    if (a->sa_flags >= 0)
        qtest_on_signal(SIGALRM, qtest_waiter_on_alarm, a->sa_flags);
    child_say('R');
    errno = 0;
    int r = qtest_call_run(fd, &a->call, 0);
    child_report('G', r, errno);
    child_await('Q', 30000);
}

/* Start a waiter child (qtest_waiter) and CHECK that it announces its
 * call ('R'). */
static inline qtest_child qtest_start_waiter(struct qtest_actor a,
                                             const char *file, int line)
{
    qtest_child c = qtest_child_start(qtest_waiter, &a);
    qtest_check_hear(&c, 'R', 5000, NULL, file, line);
    return c;
}

#define CHECK_START_WAITER(actor) qtest_start_waiter((actor), __FILE__, __LINE__)

/* The waiter's 'G' arrives within 5 s with result 0, and (if t0 > 0)
 * within 2 s of t0 (the release it waited for). */
static inline void qtest_check_granted(qtest_child *c, double t0,
                                       const char *what, const char *file,
                                       int line)
{
    struct qtest_msg m;
    if (qtest_check_hear(c, 'G', 5000, &m, file, line)) {
        double dt = qtest_now_ms() - t0;
        qtest_record(m.val == 0, file, line,
                     "%s: blocked request returned %lld %s", what, m.val,
                     qtest_errname(m.err));
        qtest_record(t0 <= 0 || dt < 2000, file, line,
                     "%s: granted %.0f ms after the release", what, dt);
    }
}

#define CHECK_GRANTED(c, t0, what)                                            \
    qtest_check_granted((c), (t0), (what), __FILE__, __LINE__)

/* ------------------------------------------------------------------------ */
/* Misc                                                                      */
/* ------------------------------------------------------------------------ */

/* Mark in set[] (size n) every fd open in this process. Returns the count. */
static inline int qtest_open_fds(char *set, int n)
{
    memset(set, 0, (size_t)n);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        qtest_fatal("opendir /proc/self/fd");
    int self = dirfd(d), count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd == self || fd < 0 || fd >= n)
            continue;
        set[fd] = 1;
        count++;
    }
    closedir(d);
    return count;
}

/* Describe the fds present in exactly one of two sets (for messages). */
static inline void qtest_fd_diff(const char *a, const char *b, int n,
                                 char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < n && used + 16 < len; i++)
        if (a[i] != b[i])
            used += (size_t)snprintf(buf + used, len - used, "%s%d ",
                                     a[i] ? "-" : "+", i);
}

/* A trace file for a traced child: a fresh empty temporary file (removed at
 * the end), and `env`, the environment edit that sends the child's trace
 * lines to it ("QNXCOMPAT_TRACE_FILE=<path>"). */
struct qtest_trace_file {
    const char *path;
    char env[128];
};

static inline struct qtest_trace_file qtest_trace_file(void)
{
    struct qtest_trace_file t;
    int fd = qtest_tmpfile(0, &t.path);
    close(fd);
    snprintf(t.env, sizeof t.env, "QNXCOMPAT_TRACE_FILE=%s", t.path);
    return t;
}

/* Read a whole (small) file into a malloc'd NUL-terminated string. */
static inline char *qtest_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            s = realloc(s, cap);
        }
    }
    s[len] = 0;
    fclose(f);
    return s;
}

/* The number after field `name` (with its colon: "voluntary_ctxt_switches:",
 * "VmLck:") at the start of a line of /proc/PID/status (pid 0: this
 * process), or -1 if there is no such field. */
static inline long long qtest_status_field(pid_t pid, const char *name)
{
    char path[64];
    if (pid == 0)
        snprintf(path, sizeof path, "/proc/self/status");
    else
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = qtest_slurp(path);
    long long v = -1;
    size_t n = strlen(name);
    for (char *line = text; line && *line;) {
        if (strncmp(line, name, n) == 0) {
            v = strtoll(line + n, NULL, 10);
            break;
        }
        char *eol = strchr(line, '\n');
        line = eol ? eol + 1 : NULL;
    }
    free(text);
    return v;
}

/* 1 if some line of text contains `a` and (if not NULL) `b` after it. */
static inline int qtest_has_line(const char *text, const char *a, const char *b)
{
    const char *p = text;
    while ((p = strstr(p, a)) != NULL) {
        const char *eol = strchr(p, '\n');
        if (!b)
            return 1;
        const char *q = strstr(p + strlen(a), b);
        if (q && (!eol || q < eol))
            return 1;
        p += strlen(a);
    }
    return 0;
}

/* The unprivileged user the tests drop to (nobody, nogroup). */
#define QTEST_NOBODY 65534

/* Become nobody: no supplementary groups, gid and uid 65534 (real, effective
 * and saved), so that no capability is left.  0, or -1 if a step failed.
 * E.g. in a forked child, or in qtest_spawn_after's before() step. */
static inline int qtest_become_nobody(void)
{
    if (setgroups(0, NULL) != 0 || setgid(QTEST_NOBODY) != 0 ||
        setuid(QTEST_NOBODY) != 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Helper processes: this binary (or another program) exec'd with a         */
/* changed environment, talking to us through its stdin/stdout/stderr        */
/* ------------------------------------------------------------------------ */

/* A helper started by qtest_spawn().  Its stdin, stdout and stderr are
 * pipes to us (in: we write, out/err: we read); every other descriptor it
 * inherits stays as it is (so it can act on an inherited, non-close-on-exec
 * descriptor).  The helper runs without the test framework: it reports on
 * stdout and arms its own alarm. */
typedef struct {
    pid_t pid;
    int in;
    int out;
    int err;
} qtest_helper;

/* Apply environment edits: "NAME=VALUE" sets NAME, "NAME" unsets it. */
static inline void qtest_apply_env(char *const *edits)
{
    for (; edits && *edits; edits++) {
        const char *eq = strchr(*edits, '=');
        if (!eq) {
            unsetenv(*edits);
            continue;
        }
        char name[128];
        size_t n = (size_t)(eq - *edits);
        if (n >= sizeof name)
            continue;
        memcpy(name, *edits, n);
        name[n] = 0;
        setenv(name, eq + 1, 1);
    }
}

/* Fork and exec `path` (NULL: this binary, /proc/self/exe) with argv, after
 * applying the environment edits `env` (see qtest_apply_env; NULL: none) in
 * the child.  E.g. {"LD_PRELOAD", NULL} starts a helper WITHOUT the shim,
 * {"QNXCOMPAT_FAULT=mid-update", NULL} one with fault injection armed (the
 * library reads its environment when it loads).  The child gets an alarm of
 * QTEST_CHILD_TIMEOUT_S and is tracked (see qtest_track).
 *
 * qtest_spawn_after() first runs before(arg) in the forked child (still
 * this program, so under the shim still preloaded), after its stdio was
 * connected: e.g. to take locks that the exec'd image inherits.  A
 * before() that fails should _exit() with a status of its own. */
static inline qtest_helper qtest_spawn_after(const char *path,
                                             char *const argv[],
                                             char *const env[],
                                             void (*before)(void *),
                                             void *arg)
{
    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) ||
        pipe2(perr, O_CLOEXEC))
        qtest_fatal("pipe");
    pid_t pid = qtest_fork();
    if (pid == 0) {
        signal(SIGALRM, SIG_DFL);
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        for (int i = 0; i < 2; i++) { /* keep only the copies on 0, 1, 2 */
            if (pin[i] > 2)
                close(pin[i]);
            if (pout[i] > 2)
                close(pout[i]);
            if (perr[i] > 2)
                close(perr[i]);
        }
        if (before)
            before(arg);
        qtest_apply_env(env);
        execv(path ? path : "/proc/self/exe", argv);
        _exit(98);
    }
    qtest_track(pid);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    qtest_helper h = {pid, pin[1], pout[0], perr[0]};
    return h;
}

static inline qtest_helper qtest_spawn(const char *path, char *const argv[],
                                       char *const env[])
{
    return qtest_spawn_after(path, argv, env, NULL, NULL);
}

/* Run this binary again with argv in a child, which applies the
 * environment edits env (qtest_apply_env; NULL: none) after before(arg) (if
 * not NULL), and CHECK that it exits with status 0 within QTEST_WAIT_MS
 * (else it is killed); `what` names it in the failure message.  Returns
 * its pid. */
static inline pid_t qtest_run_self(char *const argv[], char *const env[],
                                   void (*before)(void *), void *arg,
                                   const char *what, const char *file,
                                   int line)
{
    pid_t pid = qtest_fork();
    if (pid == 0) {
        if (before)
            before(arg);
        qtest_apply_env(env);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int st = qtest_wait(pid, QTEST_WAIT_MS);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    qtest_record(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, file, line,
                 "%s: %s", what, d);
    return pid;
}

#define CHECK_RUN_SELF(argv, env, before, arg, what)                          \
    qtest_run_self((argv), (env), (before), (arg), (what), __FILE__, __LINE__)

/* Read from fd into buf (NUL-terminated) until a line containing `want`
 * (if not NULL) is complete, EOF, or timeout_ms.  Returns the length. */
static inline size_t qtest_read_until(int fd, char *buf, size_t cap,
                                      const char *want, int timeout_ms)
{
    size_t len = 0;
    buf[0] = 0;
    double end = qtest_now_ms() + timeout_ms;
    while (len + 1 < cap) {
        const char *w = want ? strstr(buf, want) : NULL;
        if (w && strchr(w, '\n'))
            break;
        int left = (int)(end - qtest_now_ms());
        if (left <= 0)
            break;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = 0;
    }
    return len;
}

/* Write one line (a command) to the helper's stdin. */
static inline void qtest_helper_say(qtest_helper *h, const char *line)
{
    size_t n = strlen(line);
    ssize_t w = write(h->in, line, n);
    (void)w;
}

/* 1 if a wait status says "exited with status 0". */
static inline int qtest_exited0(int st)
{
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* End a helper: close its stdin (it may take EOF as "quit"), collect the
 * rest of its stdout/stderr (appended to out/err when not NULL), wait up to
 * timeout_ms for it (then SIGKILL), close the pipes and untrack it.
 * Returns the wait status (-1: killed on timeout). */
static inline int qtest_helper_finish(qtest_helper *h, int timeout_ms,
                                      char *out, size_t outcap, char *err,
                                      size_t errcap)
{
    close(h->in);
    int st = qtest_wait(h->pid, timeout_ms);
    if (out) {
        size_t l = strlen(out);
        qtest_read_until(h->out, out + l, outcap - l, NULL, 200);
    }
    if (err) {
        size_t l = strlen(err);
        qtest_read_until(h->err, err + l, errcap - l, NULL, 200);
    }
    close(h->out);
    close(h->err);
    qtest_untrack(h->pid);
    return st;
}

/* SIGKILL a helper and finish it. */
static inline void qtest_helper_kill(qtest_helper *h)
{
    kill(h->pid, SIGKILL);
    qtest_helper_finish(h, 5000, NULL, 0, NULL, 0);
}

/* The integer after "KEY " on a line of a helper's output (lines like
 * "SETLK -1 EAGAIN" or "RC 0"), or `dflt` if there is no such line. */
static inline long long qtest_out_val(const char *text, const char *key,
                                      long long dflt)
{
    size_t k = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, key, k) == 0 && p[k] == ' ')
            return atoll(p + k + 1);
    return dflt;
}

/* Make text printable on one line (newlines as \n) for a failure message. */
static inline const char *qtest_oneline(const char *s, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; s[i] && j + 3 < n; i++) {
        if (s[i] == '\n') {
            out[j++] = '\\';
            out[j++] = 'n';
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = 0;
    return out;
}

/* A trace file's text, with the paths the library shows after each
 * descriptor (`fd=3</tmp/x>`, as strace -y does) taken out, for tests
 * that match lines by descriptor number (tests/c/command.sh checks the
 * paths themselves). */
static inline char *qtest_slurp_trace(const char *path)
{
    char *t = qtest_slurp(path);
    if (!t)
        return t;
    char *w = t;
    for (const char *r = t; *r;) {
        if (r[0] == '<' && r > t && r[-1] >= '0' && r[-1] <= '9' && strchr(r, '>')) {
            const char *gt = strchr(r, '>');
            const char *nl = strchr(r, '\n');
            if (!nl || gt < nl) {
                r = gt + 1;
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = 0;
    return t;
}

/* CHECK that a QNXCOMPAT_TRACE text has a line with
 * "qnxcompat[PID:PID] " + what, and `more` (if not NULL) after it. */
static inline void qtest_check_traced(const char *trace, pid_t pid,
                                      const char *what, const char *more,
                                      const char *file, int line)
{
    char w[512];
    snprintf(w, sizeof w, "qnxcompat[%d:%d] %s", (int)pid, (int)pid, what);
    qtest_record(qtest_has_line(trace, w, more), file, line,
                 "trace lacks a line \"%s...%s\"; trace was:\n%s", w,
                 more ? more : "", trace);
}

#define CHECK_TRACED(trace, pid, what, more)                                  \
    qtest_check_traced((trace), (pid), (what), (more), __FILE__, __LINE__)

/* Number of times c occurs in s (e.g. the complete lines of a text). */
static inline int qtest_count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* Number of lines of text that contain `needle`. */
static inline int qtest_count_lines(const char *text, const char *needle)
{
    int n = 0;
    const char *p = text;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *q = strstr(p, needle);
        if (q && q < p + len)
            n++;
        p = eol ? eol + 1 : NULL;
    }
    return n;
}

/* "-1 EAGAIN" or "0": the result of a call, for helpers' output lines. */
static inline const char *qtest_rc_str(long rc, int err, char *buf, size_t n)
{
    if (rc == -1)
        snprintf(buf, n, "-1 %s", qtest_errname(err));
    else
        snprintf(buf, n, "%ld", rc);
    return buf;
}

/* Create /dev/shm/<name>-style file `path` (removed first, tracked for
 * removal on timeout) of `size` bytes with the first `hlen` bytes `hdr` and
 * the given mode: a planted registry segment. */
static inline void qtest_make_segment(const char *path, off_t size,
                                      const void *hdr, size_t hlen,
                                      mode_t mode)
{
    unlink(path);
    qtest_track_path(path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        qtest_fatal("create segment");
    if (ftruncate(fd, size) != 0)
        qtest_fatal("ftruncate segment");
    if (hlen && pwrite(fd, hdr, hlen, 0) != (ssize_t)hlen)
        qtest_fatal("write segment header");
    if (fchmod(fd, mode) != 0)
        qtest_fatal("fchmod segment");
    close(fd);
}

/* A registry name derived from the test's own (QNXCOMPAT_REGISTRY, set by
 * run.sh for the shim run), so that run.sh's clean-up of
 * /dev/shm/qnxcompat-test-$$-* removes it too: "<registry>-<tag>". */
static inline void qtest_registry_name(char *name, size_t n, const char *tag)
{
    const char *reg = getenv("QNXCOMPAT_REGISTRY");
    if (reg && *reg && strlen(reg) < 64 && !strchr(reg, '/'))
        snprintf(name, n, "%s-%s", reg, tag);
    else
        snprintf(name, n, "qnxcompat-test-%d-%s", (int)getpid(), tag);
}

/* The file of this run's registry segment when it is private to the test
 * (run.sh's shim runs: QNXCOMPAT_REGISTRY=qnxcompat-test-..., no
 * QNXCOMPAT_REGISTRY_GROUP): "/dev/shm/" + the name, as the library's
 * path_for (src/registry/shm.rs) makes it, into buf.  NULL when that
 * cannot be said (natively, a default or shared registry, an odd name);
 * *why then says why. */
static inline const char *qtest_registry_path(char *buf, size_t n,
                                              const char **why)
{
    const char *reg = getenv("QNXCOMPAT_REGISTRY");
    const char *grp = getenv("QNXCOMPAT_REGISTRY_GROUP");
    *why = !qtest_mode_shim() ? "not under the shim"
           : !reg || !*reg ? "QNXCOMPAT_REGISTRY is not set (default registry)"
           : strncmp(reg, "qnxcompat-test-", 15) != 0
               ? "QNXCOMPAT_REGISTRY is not a qnxcompat-test-* name of run.sh's"
           : strchr(reg, '/') || strlen(reg) > 200
               ? "QNXCOMPAT_REGISTRY is no plain name"
           : grp && *grp ? "the registry is shared (QNXCOMPAT_REGISTRY_GROUP)"
                         : NULL;
    if (*why)
        return NULL;
    snprintf(buf, n, "/dev/shm/%s", reg);
    return buf;
}

/* Wait (up to timeout_ms) until process pid is in scheduler state `state`
 * ('S', 'T', 'Z' ...); returns 1 if it got there. */
static inline int qtest_wait_state(pid_t pid, char state, int timeout_ms)
{
    double end = qtest_now_ms() + timeout_ms;
    while (qtest_proc_state(pid) != state) {
        if (qtest_now_ms() > end)
            return 0;
        qtest_msleep(2);
    }
    return 1;
}

/* In a helper: read stdin until EOF (the parent closes it to end us). */
static inline void qtest_wait_eof(void)
{
    char b;
    for (;;) {
        ssize_t n = read(0, &b, 1);
        if (n == 0 || (n < 0 && errno != EINTR))
            return;
    }
}

/* F_SETLK write [start, start+len) on a fresh descriptor of `path`:
 * returns 0 or the errno (-1: cannot open).  The lock is dropped again
 * unless `keep`. */
static inline int qtest_setlk_path(const char *path, off_t start, off_t len,
                                   int keep)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -1;
    errno = 0;
    int r = setlk(fd, F_WRLCK, start, len);
    int e = errno;
    if (r == 0 && !keep) {
        unlock(fd, start, len);
        close(fd);
    }
    return r == 0 ? 0 : e;
}

/* How qtest_probe_path() locks. */
enum { QTEST_BY_FLOCK, QTEST_BY_OFD };

/* Another process, on an open file description of its own (it opens
 * `path` O_RDWR): flock(LOCK_EX|LOCK_NB) (QTEST_BY_FLOCK), or F_OFD_SETLK
 * `type` on [start, start+len) (QTEST_BY_OFD).  Returns 0 or its errno
 * (-1: the probe died). */
static inline int qtest_probe_path(const char *path, int how, short type,
                                   off_t start, off_t len)
{
    return how == QTEST_BY_FLOCK
               ? qtest_probe_flock(path, O_RDWR, LOCK_EX | LOCK_NB)
               : qtest_probe_fcntl(path, F_OFD_SETLK, type, start, len);
}

/* The snapshot of a (segment) file: its stat and first bytes, to show that
 * something left it alone. */
struct qtest_file_snap {
    int ok;
    struct stat st;
    unsigned char head[256];
};

static inline struct qtest_file_snap qtest_file_snapshot(const char *path)
{
    struct qtest_file_snap s;
    memset(&s, 0, sizeof s);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return s;
    s.ok = fstat(fd, &s.st) == 0 && pread(fd, s.head, sizeof s.head, 0) >= 0;
    close(fd);
    return s;
}

/* 1 if two snapshots show the same file, unchanged. */
static inline int qtest_file_same(const struct qtest_file_snap *a,
                                  const struct qtest_file_snap *b)
{
    return a->ok && b->ok && a->st.st_ino == b->st.st_ino &&
           a->st.st_size == b->st.st_size && a->st.st_mode == b->st.st_mode &&
           a->st.st_uid == b->st.st_uid &&
           memcmp(a->head, b->head, sizeof a->head) == 0;
}

/* ------------------------------------------------------------------------ */
/* Many descriptors and files: the "no silent limits" tests                  */
/* ------------------------------------------------------------------------ */

/* Zeroed memory shared with forked children. */
static inline void *qtest_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        qtest_fatal("mmap shared");
    return p;
}

/* An rlimit value as a long (RLIM_INFINITY: LONG_MAX). */
static inline long qtest_rlim_long(rlim_t v)
{
    return v == RLIM_INFINITY || v > (rlim_t)LONG_MAX ? LONG_MAX : (long)v;
}

/* Raise the soft limit of resource `res` (RLIMIT_NOFILE, RLIMIT_NPROC ...)
 * to at least `want`, and the hard limit too if it is lower (root may).
 * Returns the soft limit now in force (LONG_MAX: unlimited; -1: no
 * getrlimit). */
static inline long qtest_raise_rlimit(int res, long want)
{
    struct rlimit rl;
    if (getrlimit(res, &rl) != 0)
        return -1;
    if (qtest_rlim_long(rl.rlim_cur) >= want)
        return qtest_rlim_long(rl.rlim_cur);
    struct rlimit nl = rl;
    nl.rlim_cur = (rlim_t)want;
    if (qtest_rlim_long(nl.rlim_max) < want)
        nl.rlim_max = (rlim_t)want;
    if (setrlimit(res, &nl) != 0) {
        nl.rlim_cur = rl.rlim_max; /* best effort: up to the hard limit */
        nl.rlim_max = rl.rlim_max;
        setrlimit(res, &nl);
    }
    getrlimit(res, &rl);
    return qtest_rlim_long(rl.rlim_cur);
}

/* Raise RLIMIT_NOFILE to at least `want` (the hard limit too, which root
 * may do up to fs.nr_open).  Returns the soft limit now in force. */
static inline long qtest_raise_nofile(long want)
{
    return qtest_raise_rlimit(RLIMIT_NOFILE, want);
}

/* Raise RLIMIT_NOFILE (qtest_raise_nofile) for a test that needs `need`
 * descriptors (asking for `want`).  0 if it cannot have them: it then says
 * SKIP and the caller ends the test. */
static inline int qtest_need_nofile(long want, long need)
{
    long lim = qtest_raise_nofile(want);
    if (lim >= need)
        return 1;
    qtest_print("SKIP: RLIMIT_NOFILE is %ld, cannot hold %ld descriptors",
                lim, need);
    CHECK(lim > 0, "getrlimit");
    return 0;
}

/* A directory of n empty files "f<index>". */
struct qtest_fileset {
    char dir[96];
    int n;
};

static inline void qtest_fileset_path(const struct qtest_fileset *fs, int i,
                                      char *buf, size_t n)
{
    snprintf(buf, n, "%s/f%d", fs->dir, i);
}

/* Create the directory (/tmp/qtest-PID-tag-XXXXXX, tracked for removal on
 * timeout only as a directory name: remove it with qtest_fileset_remove)
 * and n empty files in it. */
static inline void qtest_fileset_create(struct qtest_fileset *fs, int n,
                                        const char *tag)
{
    snprintf(fs->dir, sizeof fs->dir, "/tmp/qtest-%d-%s-XXXXXX",
             (int)getpid(), tag);
    if (!mkdtemp(fs->dir))
        qtest_fatal("mkdtemp");
    fs->n = n;
    char p[160];
    for (int i = 0; i < n; i++) {
        qtest_fileset_path(fs, i, p, sizeof p);
        int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            qtest_fatal("create fileset file");
        close(fd);
    }
}

static inline void qtest_fileset_remove(struct qtest_fileset *fs)
{
    char p[160];
    for (int i = 0; i < fs->n; i++) {
        qtest_fileset_path(fs, i, p, sizeof p);
        unlink(p);
    }
    rmdir(fs->dir);
}

/* Fork a child that runs fn(arg) and then _exit(0); it arms its own alarm
 * of QTEST_CHILD_TIMEOUT_S.  Returns its pid. */
static inline pid_t qtest_fork_fn(void (*fn)(void *), void *arg)
{
    pid_t p = qtest_fork();
    if (p == 0) {
        signal(SIGALRM, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    return p;
}

/* Wait until *p == want (shared memory written by another process), at
 * most timeout_ms.  Returns 1 if it got there. */
static inline int qtest_wait_flag(volatile int *p, int want, int timeout_ms)
{
    double end = qtest_now_ms() + timeout_ms;
    while (__atomic_load_n(p, __ATOMIC_SEQ_CST) != want) {
        if (qtest_now_ms() > end)
            return 0;
        qtest_msleep(1);
    }
    return 1;
}

struct qtest_fileset_probe {
    const struct qtest_fileset *fs;
    const int *idx;
    int n;
    short type;
    off_t start, len;
    unsigned char *res; /* shared */
    volatile int *done; /* shared */
};

static inline void qtest_fileset_probe_child(void *arg)
{
    struct qtest_fileset_probe *pr = arg;
    char p[160];
    for (int i = 0; i < pr->n; i++) {
        qtest_fileset_path(pr->fs, pr->idx ? pr->idx[i] : i, p, sizeof p);
        int fd = open(p, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            pr->res[i] = 254;
            continue;
        }
        errno = 0;
        int r = setlk(fd, pr->type, pr->start, pr->len);
        pr->res[i] = r == 0 ? 0 : (unsigned char)(errno ? errno : 253);
        if (r == 0)
            unlock(fd, pr->start, pr->len);
        close(fd);
    }
    __atomic_store_n(pr->done, 1, __ATOMIC_SEQ_CST);
}

/* ONE other process F_SETLKs `type` on [start, start+len) of each file
 * idx[i] (i < n; idx NULL: files 0..n-1) through a fresh open, undoing what
 * it gets; res[i] receives 0 or its errno (254: could not open).  Returns 0,
 * or -1 if the probe did not finish within timeout_ms (res then holds 255
 * for the files it did not reach). */
static inline int qtest_probe_fileset(const struct qtest_fileset *fs,
                                      const int *idx, int n, short type,
                                      off_t start, off_t len,
                                      unsigned char *res, int timeout_ms)
{
    size_t sz = (size_t)n + 64;
    unsigned char *shared = qtest_shared(sz);
    memset(shared, 255, (size_t)n);
    volatile int *done = (volatile int *)(shared + ((size_t)n + 7) / 8 * 8);
    struct qtest_fileset_probe pr = {fs, idx, n, type, start, len, shared,
                                     done};
    pid_t pid = qtest_fork_fn(qtest_fileset_probe_child, &pr);
    int st = qtest_wait(pid, timeout_ms);
    int ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && *done == 1;
    memcpy(res, shared, (size_t)n);
    munmap(shared, sz);
    return ok ? 0 : -1;
}

struct qtest_reqs_job {
    const struct qtest_req *reqs;
    int n;
    int *res;           /* shared */
    struct flock *ans;  /* shared */
    volatile int *done; /* shared */
};

static inline void qtest_reqs_child(void *arg)
{
    struct qtest_reqs_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        const struct qtest_req *q = &j->reqs[i];
        int r = !q->op && (q->cmd == F_GETLK || q->cmd == F_OFD_GETLK)
                    ? qtest_req_query(q, &j->ans[i])
                    : qtest_req_lock(q);
        j->res[i] = r == 255 ? -1 : r;
    }
    __atomic_store_n(j->done, 1, __ATOMIC_SEQ_CST);
}

/* ONE other process makes the requests reqs[0..n) in turn (struct
 * qtest_req, on an inherited descriptor or an open of a path of its own):
 * a query (cmd F_GETLK or F_OFD_GETLK, as in qtest_probe_query) puts its
 * answer in ans[i]; any other (flock(op), fcntl(cmd)) is a lock call that
 * is undone again if it succeeds (as in qtest_probe_setlk).  res[i]
 * receives 0, the errno, or -1 (could not open, or never reached).  For
 * checking thousands of locks with one fork.  Returns 0, or -1 if the
 * probe did not finish within timeout_ms. */
static inline int qtest_probe_reqs(const struct qtest_req *reqs, int n,
                                   struct flock *ans, int *res,
                                   int timeout_ms)
{
    size_t nn = n > 0 ? (size_t)n : 0;
    size_t sz = nn * (sizeof *res + sizeof *ans) + 64;
    unsigned char *shared = qtest_shared(sz);
    struct flock *sans = (struct flock *)shared;
    int *sres = (int *)(shared + nn * sizeof *ans);
    volatile int *done = (volatile int *)(sres + nn);
    for (size_t i = 0; i < nn; i++) {
        sres[i] = -1;
        sans[i].l_type = -1;
    }
    struct qtest_reqs_job j = {reqs, n, sres, sans, done};
    pid_t pid = qtest_fork_fn(qtest_reqs_child, &j);
    int st = qtest_wait(pid, timeout_ms);
    int ok = qtest_exited0(st) && *done == 1;
    memcpy(res, sres, nn * sizeof *res);
    memcpy(ans, sans, nn * sizeof *ans);
    munmap(shared, sz);
    return ok ? 0 : -1;
}

/* Count the entries of res[0..n) equal to v. */
static inline int qtest_count_eq(const unsigned char *res, int n, int v)
{
    int c = 0;
    for (int i = 0; i < n; i++)
        c += res[i] == v;
    return c;
}

/* The first index with res[i] != v, or -1. */
static inline int qtest_first_ne(const unsigned char *res, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (res[i] != v)
            return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* The kernel mirror: locks as the kernel sees them, and peers outside the   */
/* library                                                                   */
/* ------------------------------------------------------------------------ */

/* 1 under the shim with its kernel mirror turned off (QNXCOMPAT_MIRROR=off,
 * or 0): every lock then lives in the registry only, and neither do
 * processes outside the library see the shim's locks nor does the shim see
 * theirs.  run.sh's "mirror-off" runs set it. */
static inline int qtest_mirror_off(void)
{
    const char *m = getenv("QNXCOMPAT_MIRROR");
    return qtest_mode_shim() && m &&
           (strcmp(m, "off") == 0 || strcmp(m, "0") == 0);
}

/* 1 if the kernel sees this process's locks: natively (they are kernel
 * locks), or under the shim with the mirror on (the default). */
static inline int qtest_kernel_sees(void) { return !qtest_mirror_off(); }

/* 1 under the shim with the mirror on: where the mirror's own kernel locks
 * show (a flock() is also a whole-file OFD lock, so it conflicts with the
 * POSIX locks of processes outside the library, as QNX's flock conflicts
 * with fcntl locks). */
static inline int qtest_mirror_on(void)
{
    return qtest_mode_shim() && !qtest_mirror_off();
}

/* For an environment built from scratch (execve): put this run's
 * QNXCOMPAT_MIRROR setting, if any, at envp[i] (else leave it NULL).  Every
 * user of a registry must run with the same setting. */
static inline void qtest_env_mirror(char **envp, int i)
{
    static char var[64];
    const char *m = getenv("QNXCOMPAT_MIRROR");
    if (m)
        snprintf(var, sizeof var, "QNXCOMPAT_MIRROR=%s", m);
    envp[i] = m ? var : NULL;
}

#define QTEST_KEOF (-1LL)       /* a kernel lock's end: to EOF */
#define QTEST_KANY (-2LL)       /* a qtest_kernel_count() field: any value */
#define QTEST_TOKEN_BASE (1LL << 62) /* the library's open-file tokens lie
                                      * above (docs/design.md) */

/* One lock of /proc/locks (a held one: blocked requests, "->", are left
 * out). */
struct qtest_klock {
    char cls[8];          /* "POSIX", "FLOCK", "OFDLCK" */
    short type;           /* F_RDLCK, F_WRLCK (-1: another mode) */
    int pid;              /* -1 for OFD locks */
    long long start, end; /* end QTEST_KEOF: to the end of the file */
};

/* Parse one /proc/locks line ("12: POSIX  ADVISORY  WRITE 815 fe:00:1234 0
 * EOF"); 1 if it is a held lock on the file (dev, ino). */
static inline int qtest_parse_klock(const char *line, dev_t dev, ino_t ino,
                                    struct qtest_klock *k)
{
    const char *p = strchr(line, ':');
    if (!p)
        return 0;
    for (p++; *p == ' '; p++)
        ;
    if (strncmp(p, "->", 2) == 0)
        return 0;
    char mode[16], rw[16], end[24];
    unsigned maj, min;
    unsigned long lino;
    if (sscanf(p, "%7s %15s %15s %d %x:%x:%lu %lld %23s", k->cls, mode, rw,
               &k->pid, &maj, &min, &lino, &k->start, end) != 9)
        return 0;
    k->type = strcmp(rw, "WRITE") == 0 ? F_WRLCK
              : strcmp(rw, "READ") == 0 ? F_RDLCK : -1;
    k->end = strcmp(end, "EOF") == 0 ? QTEST_KEOF : atoll(end);
    return maj == major(dev) && min == minor(dev) && lino == ino;
}

/* One pass over /proc/locks: the held locks on (dev, ino), up to max into
 * out; returns how many there are (-1: no /proc/locks). */
static inline int qtest_kernel_pass(dev_t dev, ino_t ino,
                                    struct qtest_klock *out, int max)
{
    FILE *f = fopen("/proc/locks", "re");
    if (!f)
        return -1;
    char line[256];
    int n = 0;
    struct qtest_klock k;
    memset(&k, 0, sizeof k);
    while (fgets(line, sizeof line, f))
        if (qtest_parse_klock(line, dev, ino, &k)) {
            if (n < max)
                out[n] = k;
            n++;
        }
    fclose(f);
    return n;
}

/* The held kernel locks on fd's file, from /proc/locks: up to max (<= 64)
 * into out; returns how many there are (-1: no /proc/locks or no fstat).
 * The kernel hands /proc/locks out a page per read(2), by position in its
 * global list, so while other processes take and drop locks a pass can
 * show a lock twice or miss it: the answer is that of two passes in a row
 * that agree (at most 20 tries). */
static inline int qtest_kernel_locks(int fd, struct qtest_klock *out, int max)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    struct qtest_klock prev[64];
    int np = qtest_kernel_pass(st.st_dev, st.st_ino, prev, 64);
    for (int tries = 0; np >= 0 && tries < 20; tries++) {
        struct qtest_klock cur[64];
        int nc = qtest_kernel_pass(st.st_dev, st.st_ino, cur, 64);
        int same = nc == np && nc <= 64;
        for (int i = 0; same && i < nc; i++)
            same = strcmp(cur[i].cls, prev[i].cls) == 0 &&
                   cur[i].type == prev[i].type && cur[i].pid == prev[i].pid &&
                   cur[i].start == prev[i].start && cur[i].end == prev[i].end;
        memcpy(prev, cur, sizeof prev);
        np = nc;
        if (same)
            break;
    }
    if (np > 0)
        memcpy(out, prev, sizeof *out * (size_t)(np < max ? np : max));
    return np;
}

/* 1 if a kernel lock matches: cls (NULL: any), type, pid, start and end
 * (QTEST_KANY: any; start QTEST_KANY also leaves out the library's
 * tokens). */
static inline int qtest_klock_match(const struct qtest_klock *k,
                                    const char *cls, int type, int pid,
                                    long long start, long long end)
{
    if (start == QTEST_KANY && k->start >= QTEST_TOKEN_BASE)
        return 0;
    return (!cls || strcmp(k->cls, cls) == 0) &&
           (type == QTEST_KANY || k->type == type) &&
           (pid == QTEST_KANY || k->pid == pid) &&
           (start == QTEST_KANY || k->start == start) &&
           (end == QTEST_KANY || k->end == end);
}

/* How many kernel locks on fd's file match (qtest_klock_match); -1 if
 * /proc/locks cannot be read. */
static inline int qtest_kernel_count(int fd, const char *cls, int type,
                                     int pid, long long start, long long end)
{
    struct qtest_klock k[64];
    int n = qtest_kernel_locks(fd, k, 64);
    if (n < 0)
        return -1;
    int c = 0;
    for (int i = 0; i < n && i < 64; i++)
        c += qtest_klock_match(&k[i], cls, type, pid, start, end);
    return c;
}

/* The kernel locks on fd's file for a failure message ("POSIX WRITE 815
 * 0..9; FLOCK READ 815 0..EOF"), the library's tokens left out. */
static inline const char *qtest_kernel_describe(int fd, char *buf, size_t n)
{
    struct qtest_klock k[64];
    int c = qtest_kernel_locks(fd, k, 64);
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < c && i < 64 && used + 64 < n; i++) {
        if (k[i].start >= QTEST_TOKEN_BASE)
            continue;
        char end[24];
        if (k[i].end == QTEST_KEOF)
            snprintf(end, sizeof end, "EOF");
        else
            snprintf(end, sizeof end, "%lld", k[i].end);
        used += (size_t)snprintf(buf + used, n - used, "%s%s %s %d %lld..%s",
                                 used ? "; " : "", k[i].cls,
                                 k[i].type == F_WRLCK ? "WRITE" : "READ",
                                 k[i].pid, k[i].start, end);
    }
    if (c < 0)
        snprintf(buf, n, "(cannot read /proc/locks)");
    else if (!used)
        snprintf(buf, n, "(none)");
    return buf;
}

static inline void qtest_check_kernel(int fd, int want, const char *cls,
                                      int type, int pid, long long start,
                                      long long end, const char *what,
                                      const char *file, int line)
{
    int c = qtest_kernel_count(fd, cls, type, pid, start, end);
    char have[768];
    qtest_record(c == want, file, line,
                 "%s: /proc/locks has %d %s %s lock(s) of pid %d at "
                 "%lld..%lld (-1: EOF, -2: any), expected %d; it has: %s",
                 what, c, cls ? cls : "any",
                 type == F_WRLCK ? "WRITE" : type == F_RDLCK ? "READ" : "any",
                 pid, start, end, want,
                 qtest_kernel_describe(fd, have, sizeof have));
}

/* /proc/locks shows `want` (0 or 1) locks on fd's file of class cls
 * ("POSIX", "FLOCK", "OFDLCK"; NULL: any) and type (F_RDLCK, F_WRLCK;
 * QTEST_KANY), held by pid (-1 for OFD locks; QTEST_KANY) on exactly
 * start..end (end QTEST_KEOF: to EOF; QTEST_KANY: any, and start
 * QTEST_KANY any range below the library's tokens).  `what` starts the
 * failure message. */
#define CHECK_KERNEL(fd, want, cls, type, pid, start, end, what)              \
    qtest_check_kernel((fd), (want), (cls), (type), (pid), (start), (end),    \
                       (what), __FILE__, __LINE__)

/* Where a program is, from PATH ("lslocks" -> "/usr/bin/lslocks") into
 * buf; NULL if it is not there. */
static inline const char *qtest_which(const char *prog, char *buf, size_t n)
{
    const char *path = getenv("PATH");
    char dirs[1024];
    snprintf(dirs, sizeof dirs, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(buf, n, "%s/%s", d, prog);
        if (access(buf, X_OK) == 0)
            return buf;
    }
    return NULL;
}

/* 1 if a line of `lslocks --raw --noheadings --bytes -o
 * PID,TYPE,MODE,START,END,INODE,MAJ:MIN` is a lock on (dev, ino) that
 * matches as in qtest_klock_match (lslocks shows an end at EOF as 0). */
static inline int qtest_lslocks_line(const char *l, dev_t dev, ino_t ino,
                                     const char *cls, int type, int pid,
                                     long long start, long long end)
{
    struct qtest_klock k;
    char mode[16];
    unsigned long lino;
    unsigned maj, min;
    memset(&k, 0, sizeof k);
    if (sscanf(l, "%d %7s %15s %lld %lld %lu %u:%u", &k.pid, k.cls, mode,
               &k.start, &k.end, &lino, &maj, &min) != 8 || lino != ino ||
        maj != major(dev) || min != minor(dev))
        return 0;
    k.type = strcmp(mode, "WRITE") == 0 ? F_WRLCK
             : strcmp(mode, "READ") == 0 ? F_RDLCK : -1;
    return qtest_klock_match(&k, cls, type, pid, start,
                             end == QTEST_KEOF ? 0 : end);
}

/* How many locks lslocks(8) (util-linux, run without LD_PRELOAD) lists on
 * fd's file that match as in qtest_kernel_count; -1 if lslocks is not
 * installed, fails or takes more than 10 s.  Its output is read as it
 * comes (it lists every lock of the machine). */
static inline int qtest_lslocks_count(int fd, const char *cls, int type,
                                      int pid, long long start, long long end)
{
    struct stat st;
    char exe[256];
    if (fstat(fd, &st) != 0 || !qtest_which("lslocks", exe, sizeof exe))
        return -1;
    char *argv[] = {"lslocks", "--raw", "--noheadings", "--bytes", "-o",
                    "PID,TYPE,MODE,START,END,INODE,MAJ:MIN", NULL};
    char *env[] = {"LD_PRELOAD", NULL};
    qtest_helper h = qtest_spawn(exe, argv, env);
    char buf[4096];
    size_t len = 0;
    int c = 0, eof = 0;
    double deadline = qtest_now_ms() + 10000;
    while (!eof && qtest_now_ms() < deadline) {
        struct pollfd pf = {h.out, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t n = read(h.out, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        eof = n <= 0;
        len += n > 0 ? (size_t)n : 0;
        buf[len] = 0;
        char *l = buf, *nl;
        while ((nl = strchr(l, '\n')) != NULL) {
            *nl = 0;
            c += qtest_lslocks_line(l, st.st_dev, st.st_ino, cls, type, pid,
                                    start, end);
            l = nl + 1;
        }
        len = strlen(l);
        memmove(buf, l, len + 1);
        if (len == sizeof buf - 1)
            len = 0; /* a line that long is no lock */
    }
    int status = qtest_helper_finish(&h, 2000, NULL, 0, NULL, 0);
    return eof && qtest_exited0(status) ? c : -1;
}

/* ---- peers outside the library ------------------------------------------ */

/* A peer: a process that does not load the library and makes one lock call
 * on a file through its own open (O_RDWR) of it, running qtest_peer_main():
 * peer_static (tests/c/peer_static.c, linked -static, which the dynamic
 * loader never preloads), or a test binary re-executed with "--peer" first
 * and LD_PRELOAD removed from its environment.  Arguments:
 *
 *     OP KIND TYPE START LEN PATH
 *
 *   KIND  fcntl: F_SETLK / F_GETLK on {TYPE, SEEK_SET, START, LEN}
 *         ofd:   F_OFD_SETLK / F_OFD_GETLK on the same
 *         lockf: lockf(F_TLOCK, LEN) at offset START (TYPE ignored)
 *         ftest: lockf(F_TEST, LEN) at offset START (try only)
 *         flock: flock(LOCK_SH (TYPE r) or LOCK_EX (TYPE w) | LOCK_NB)
 *   TYPE  r (F_RDLCK) or w (F_WRLCK)
 *   OP    try:  make the call, print "RESULT <0|errno> <name>", undo what
 *               it got and exit
 *         get:  (fcntl, ofd) print "RESULT", then the answer's "TYPE",
 *               "START", "LEN" and "PID"
 *         hold: make the call, print "PID <pid>" and "HELD <0|errno>",
 *               keep it until a line or EOF comes on stdin (or a signal
 *               kills us), undo it, print "RELEASED <0|errno>" and exit
 *
 * It first prints "MAPPED <0|1>": whether libqnxcompat is mapped into it
 * (it must not be).  Exit status 0 unless the arguments or the open are
 * bad. */
static inline int qtest_peer_main(int argc, char **argv)
{
    alarm(30);
    if (argc != 7) {
        qtest_print("usage: %s try|get|hold fcntl|ofd|lockf|ftest|flock r|w "
                    "START LEN PATH", argc ? argv[0] : "peer");
        return 2;
    }
    const char *op = argv[1], *kind = argv[2], *path = argv[6];
    short type = argv[3][0] == 'w' ? F_WRLCK : F_RDLCK;
    off_t start = (off_t)atoll(argv[4]), len = (off_t)atoll(argv[5]);
    char *maps = qtest_slurp("/proc/self/maps");
    qtest_print("MAPPED %d", strstr(maps, "qnxcompat") != NULL);
    free(maps);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        qtest_print("OPEN %d %s", errno, qtest_errname(errno));
        return 3;
    }
    int ofd = strcmp(kind, "ofd") == 0;
    struct qtest_call c;
    if (strcmp(kind, "fcntl") == 0 || ofd)
        c = qtest_call_fcntl(ofd ? F_OFD_SETLK : F_SETLK, type, start, len);
    else if (strcmp(kind, "lockf") == 0 || strcmp(kind, "ftest") == 0)
        c = qtest_call_lockf(kind[0] == 'f' ? F_TEST : F_TLOCK, start, len);
    else if (strcmp(kind, "flock") == 0)
        c = qtest_call_flock((type == F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB);
    else
        return 2;
    if (strcmp(op, "get") == 0) {
        if (c.kind != QTEST_CALL_FCNTL)
            return 2;
        struct flock fl = qtest_fl(type, SEEK_SET, start, len);
        errno = 0;
        int r = fcntl(fd, ofd ? F_OFD_GETLK : F_GETLK, &fl);
        int e = r == 0 ? 0 : errno;
        qtest_print("RESULT %d %s", e, qtest_errname(e));
        qtest_print("TYPE %d\nSTART %lld\nLEN %lld\nPID %d", fl.l_type,
                    (long long)fl.l_start, (long long)fl.l_len, (int)fl.l_pid);
        return 0;
    }
    int hold = strcmp(op, "hold") == 0;
    if (!hold && strcmp(op, "try") != 0)
        return 2;
    errno = 0;
    int r = qtest_call_run(fd, &c, 0);
    int e = r == 0 ? 0 : errno ? errno : 255;
    int undo = r == 0 && c.cmd != F_TEST;
    if (!hold) {
        qtest_print("RESULT %d %s", e, qtest_errname(e));
    } else {
        qtest_print("PID %d\nHELD %d %s", (int)getpid(), e, qtest_errname(e));
        char b = 0;
        while (b != '\n' && (read(0, &b, 1) == 1 || errno == EINTR))
            ;
    }
    if (undo) {
        errno = 0;
        r = qtest_call_run(fd, &c, 1);
        if (hold)
            qtest_print("RELEASED %d", r == 0 ? 0 : errno);
    }
    close(fd);
    return 0;
}

/* A peer as the test sees it: exe NULL is the test binary itself,
 * re-executed with "--peer" and without LD_PRELOAD (its main() must hand
 * "--peer" to qtest_peer_main). */
struct qtest_peer {
    const char *exe;
    const char *name;
};

/* The static peer: $QTEST_PEER_STATIC, else peer_static next to this
 * binary (run.sh builds both into target/ctests/); NULL if not built. */
static inline const char *qtest_static_peer(void)
{
    static char p[PATH_MAX];
    const char *e = getenv("QTEST_PEER_STATIC");
    if (e && *e) {
        snprintf(p, sizeof p, "%s", e);
    } else {
        ssize_t n = readlink("/proc/self/exe", p, sizeof p - 16);
        if (n <= 0)
            return NULL;
        p[n] = 0;
        char *slash = strrchr(p, '/');
        snprintf(slash ? slash + 1 : p, 16, "peer_static");
    }
    return access(p, X_OK) == 0 ? p : NULL;
}

/* The peers to try: the static one (if built; else a SKIP line) and this
 * binary without LD_PRELOAD.  Returns how many went into p[0..2). */
static inline int qtest_peers(struct qtest_peer p[2])
{
    int n = 0;
    const char *s = qtest_static_peer();
    if (s)
        p[n++] = (struct qtest_peer){s, "static peer"};
    else
        qtest_print("SKIP static peer: peer_static is not built next to "
                    "this binary (tests/c/run.sh builds it)");
    p[n++] = (struct qtest_peer){NULL, "peer without LD_PRELOAD"};
    return n;
}

/* Start a peer with OP KIND TYPE START LEN PATH (see qtest_peer_main). */
static inline qtest_helper qtest_peer_spawn(const struct qtest_peer *peer,
                                            const char *op, const char *kind,
                                            short type, long long start,
                                            long long len, const char *path)
{
    char s[24], l[24];
    snprintf(s, sizeof s, "%lld", start);
    snprintf(l, sizeof l, "%lld", len);
    char *t = type == F_WRLCK ? "w" : "r";
    char *self[] = {"peer", "--peer", (char *)op, (char *)kind, t, s, l,
                    (char *)path, NULL};
    char *env[] = {"LD_PRELOAD", NULL};
    return peer->exe ? qtest_spawn(peer->exe, self + 1, NULL)
                     : qtest_spawn(NULL, self, env);
}

/* CHECK a peer's output: it ran outside the library (MAPPED 0) and said
 * `key`; returns the value after `key` (-1 if it did not say it). */
static inline long long qtest_peer_said(const struct qtest_peer *peer,
                                        const char *out, const char *key,
                                        const char *what, const char *file,
                                        int line)
{
    char o1[1100];
    long long v = qtest_out_val(out, key, -1);
    qtest_record(qtest_out_val(out, "MAPPED", -1) == 0 && v >= -1 &&
                     strstr(out, key), file, line,
                 "%s, %s: no \"%s\" line, or the library is mapped into it "
                 "(MAPPED 1): output \"%s\"", what, peer->name, key,
                 qtest_oneline(out, o1, sizeof o1));
    return strstr(out, key) ? v : -1;
}

/* Run a peer's try/get to its end: its output into out.  CHECKs that it
 * exits 0. */
static inline void qtest_peer_run(const struct qtest_peer *peer,
                                  const char *op, const char *kind,
                                  short type, long long start, long long len,
                                  const char *path, char *out, size_t n,
                                  const char *what, const char *file, int line)
{
    qtest_helper h = qtest_peer_spawn(peer, op, kind, type, start, len, path);
    out[0] = 0;
    char err[512] = "", e1[600];
    int st = qtest_helper_finish(&h, QTEST_WAIT_MS, out, n, err, sizeof err);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    qtest_record(qtest_exited0(st), file, line, "%s, %s: %s; stderr \"%s\"",
                 what, peer->name, d, qtest_oneline(err, e1, sizeof e1));
}

static inline void qtest_check_peer_try(const struct qtest_peer *peer,
                                        const char *kind, short type,
                                        long long start, long long len,
                                        const char *path, int want1,
                                        int want2, const char *what,
                                        const char *file, int line)
{
    char out[1024];
    qtest_peer_run(peer, "try", kind, type, start, len, path, out, sizeof out,
                   what, file, line);
    long long r = qtest_peer_said(peer, out, "RESULT", what, file, line);
    qtest_record(r == want1 || r == want2, file, line,
                 "%s, %s: %s %s start=%lld len=%lld gave %s, expected %s%s%s",
                 what, peer->name, kind, type == F_WRLCK ? "write" : "read",
                 start, len, r < 0 ? "no answer" : qtest_errname((int)r),
                 qtest_errname(want1), want1 == want2 ? "" : " or ",
                 want1 == want2 ? "" : qtest_errname(want2));
}

/* A peer's `kind` call ("fcntl", "ofd", "lockf", "ftest", "flock") of
 * `type` on [start, start+len) of path gives want1 or want2 (0, or the
 * errno of a -1 return).  `what` names the scenario. */
#define CHECK_PEER_TRY(peer, kind, type, start, len, path, want1, want2, what) \
    qtest_check_peer_try((peer), (kind), (type), (start), (len), (path),      \
                         (want1), (want2), (what), __FILE__, __LINE__)

static inline void qtest_check_peer_get(const struct qtest_peer *peer,
                                        const char *kind, long long start,
                                        long long len, const char *path,
                                        int want_type, long long want_start,
                                        long long want_len, int want_pid,
                                        const char *what, const char *file,
                                        int line)
{
    char out[1024], o1[1100];
    qtest_peer_run(peer, "get", kind, F_WRLCK, start, len, path, out,
                   sizeof out, what, file, line);
    long long r = qtest_peer_said(peer, out, "RESULT", what, file, line);
    long long t = qtest_out_val(out, "TYPE", -1);
    int ok = r == 0 && t == want_type;
    if (want_type != F_UNLCK)
        ok = ok && qtest_out_val(out, "START", -1) == want_start &&
             qtest_out_val(out, "LEN", -1) == want_len &&
             qtest_out_val(out, "PID", -2) == want_pid;
    qtest_record(ok, file, line,
                 "%s, %s: %s get (write) start=%lld len=%lld: expected "
                 "{%s, start=%lld, len=%lld, pid=%d}, got \"%s\"",
                 what, peer->name, kind, start, len, qtest_typename(want_type),
                 want_start, want_len, want_pid,
                 qtest_oneline(out, o1, sizeof o1));
}

/* A peer's F_GETLK (kind "fcntl") or F_OFD_GETLK ("ofd") with a write
 * query on [start, start+len) of path reports {type, lstart, llen, pid}
 * (type F_UNLCK: no lock; the rest is then not looked at). */
#define CHECK_PEER_GET(peer, kind, start, len, path, type, lstart, llen, pid,  \
                       what)                                                   \
    qtest_check_peer_get((peer), (kind), (start), (len), (path), (type),      \
                         (lstart), (llen), (pid), (what), __FILE__, __LINE__)

/* Start a peer that holds `kind` of `type` on [start, start+len) of path
 * and CHECK that it got it; h->pid is the holder's pid. */
static inline qtest_helper qtest_peer_hold(const struct qtest_peer *peer,
                                           const char *kind, short type,
                                           long long start, long long len,
                                           const char *path, const char *what,
                                           const char *file, int line)
{
    qtest_helper h = qtest_peer_spawn(peer, "hold", kind, type, start, len,
                                      path);
    char out[512];
    qtest_read_until(h.out, out, sizeof out, "HELD", 8000);
    long long r = qtest_peer_said(peer, out, "HELD", what, file, line);
    qtest_record(r == 0, file, line, "%s, %s: holding %s %s start=%lld "
                 "len=%lld gave %s", what, peer->name, kind,
                 type == F_WRLCK ? "write" : "read", start, len,
                 r < 0 ? "no answer" : qtest_errname((int)r));
    qtest_record(qtest_out_val(out, "PID", -1) == h.pid, file, line,
                 "%s, %s: holder says it is pid %lld, spawned as %d", what,
                 peer->name, qtest_out_val(out, "PID", -1), (int)h.pid);
    return h;
}

#define CHECK_PEER_HOLD(peer, kind, type, start, len, path, what)              \
    qtest_peer_hold((peer), (kind), (type), (start), (len), (path), (what),   \
                    __FILE__, __LINE__)

/* Tell a peer holder to let go (a line on its stdin: a forked child may
 * hold a copy of the pipe, so EOF may never come) and CHECK that it
 * unlocked and exited 0. */
static inline void qtest_peer_release(const struct qtest_peer *peer,
                                      qtest_helper *h, const char *what,
                                      const char *file, int line)
{
    char out[512] = "", o1[600];
    qtest_helper_say(h, "release\n");
    qtest_read_until(h->out, out, sizeof out, "RELEASED", QTEST_WAIT_MS);
    int st = qtest_helper_finish(h, QTEST_WAIT_MS, out, sizeof out, NULL, 0);
    qtest_record(qtest_exited0(st) && qtest_out_val(out, "RELEASED", -1) == 0,
                 file, line, "%s, %s: holder's release: status %#x, output "
                 "\"%s\"", what, peer->name, st,
                 qtest_oneline(out, o1, sizeof o1));
}

#define CHECK_PEER_RELEASE(peer, h, what)                                     \
    qtest_peer_release((peer), (h), (what), __FILE__, __LINE__)

#endif /* QTEST_H */
