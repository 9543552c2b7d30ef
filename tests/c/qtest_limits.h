/*
 * qtest_limits.h - helpers shared by the "no silent limits" tests
 * (t_exec_cloexec, t_close_range_many, t_full_shm, t_unlock_reserve,
 * t_many_waiters, ...).  Header-only, on top of qtest.h; meant to be folded
 * into qtest.h later.
 *
 *   qtest_shared(size)                 zeroed MAP_SHARED|MAP_ANONYMOUS memory
 *   qtest_raise_nofile(n)              RLIMIT_NOFILE soft (and, as root,
 *                                      hard) limit to at least n
 *   qtest_fileset_create/_path/_remove many small files in a private
 *                                      directory, named by index
 *   qtest_probe_fileset(...)           ONE other process F_SETLKs a range of
 *                                      each of a list of those files (a
 *                                      fresh open of each) and reports each
 *                                      result: 0 or the errno
 *   qtest_fork_fn(fn, arg)             fork a child running fn(arg) then
 *                                      _exit(0), with its own alarm
 *   qtest_wait_flag(p, want, ms)       wait until a shared int reaches a
 *                                      value (bounded)
 */
#ifndef QTEST_LIMITS_H
#define QTEST_LIMITS_H

#include "qtest.h"

#include <sys/resource.h>

/* Zeroed memory shared with forked children. */
static inline void *qtest_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        qtest_fatal("mmap shared");
    return p;
}

/* Raise RLIMIT_NOFILE to at least `want` (the hard limit too, which root
 * may do up to fs.nr_open).  Returns the soft limit now in force. */
static inline long qtest_raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if ((long)rl.rlim_cur >= want)
        return (long)rl.rlim_cur;
    struct rlimit nl = rl;
    nl.rlim_cur = (rlim_t)want;
    if ((long)nl.rlim_max < want)
        nl.rlim_max = (rlim_t)want;
    if (setrlimit(RLIMIT_NOFILE, &nl) != 0) {
        nl.rlim_cur = rl.rlim_max; /* best effort: up to the hard limit */
        nl.rlim_max = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    return (long)rl.rlim_cur;
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
    pid_t p = fork();
    if (p < 0)
        qtest_fatal("fork");
    if (p == 0) {
        alarm(QTEST_CHILD_TIMEOUT_S);
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

#endif /* QTEST_LIMITS_H */
