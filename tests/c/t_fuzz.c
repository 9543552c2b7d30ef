/*
 * t_fuzz.c - hostile and bad input, then a fuzz loop over the lock calls.
 *
 * Part 1, hostile input (both modes; each call runs in a fresh child, so that
 * a crash is reported as a failure of that call and the rest goes on):
 *   - a struct flock pointer that is NULL, 1, a kernel address, a PROT_NONE
 *     page, or a struct straddling into a PROT_NONE page, for F_GETLK,
 *     F_SETLK, F_SETLKW and F_OFD_GETLK/SETLK/SETLKW through fcntl, fcntl64
 *     and __fcntl: -1 EFAULT, as the kernel gives;
 *   - a struct in a read-only page: the GETLK commands must write the answer
 *     back (-1 EFAULT), the SETLK ones only read it (0 or an errno);
 *   - a struct that was used once (the library may remember its page as
 *     good) whose page then went away by a raw munmap or mprotect system
 *     call or by shmdt, none of which goes through libc's wrappers: EFAULT;
 *   - huge and overflowing ranges, bad l_whence, l_type and commands, lockf
 *     functions and sizes, flock operations (EINVAL / EOVERFLOW);
 *   - descriptors that are not open, directories, O_PATH, pipes, sockets,
 *     /dev/null, files open for the wrong access: an errno or success.
 * Part 2, the fuzz loop: 4 processes at once make random calls (default
 * 200,000 in all; QTEST_LONG=1: 1,000,000): fcntl with the lock commands and
 * some unknown ones, random l_type (garbage, F_FLOCK|type), l_whence,
 * l_start/l_len (0, +-1, INT64_MIN/MAX, around 1<<62, around the shim's
 * token region near 2^63 - 2^32, negatives), lockf with random functions,
 * offsets and sizes, flock with random operations (garbage bits too), on a
 * pool of descriptors (files O_RDONLY/O_WRONLY/O_RDWR, one shared between
 * the processes, a pipe, a socket, /dev/null, a directory, closed numbers).
 * Blocking calls run under a 5 ms repeating timer (EINTR is allowed).  No
 * process may crash or hang; every -1 must carry an errno from
 * {EBADF, EINVAL, EOVERFLOW, EAGAIN, EACCES, EDEADLK, EINTR, ENOLCK, ENOMEM,
 * EFAULT, EWOULDBLOCK, ESPIPE, EOPNOTSUPP, ENOSYS}; under the shim every
 * 10,000 calls the process checks the registry with qnxcompat_verify().
 * Before each call a process records it in shared memory, so that the call
 * that crashed or hung can be named.
 *
 * QTEST_SEED=<n> repeats the random choices.
 */
#include <dlfcn.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include "qtest.h"

#define NFUZZ 4
#define VERIFY_EVERY 10000
#define MAX_REPORTS 10

typedef int (*fcntl_fn)(int, int, ...);
typedef int (*lockf_fn)(int, int, off_t);
static int shim;
static const char *path_a, *path_b;
static fcntl_fn under_fcntl; /* __fcntl, if exported */

static const int lock_cmds[] = {F_GETLK,     F_SETLK,     F_SETLKW,
                                F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW};
#define NCMDS ((int)(sizeof lock_cmds / sizeof lock_cmds[0]))

/* ------------------------------------------------------------------------ */
/* Part 1: hostile pointers, each call in its own child                      */
/* ------------------------------------------------------------------------ */

/* Wait (<= 10 s) for a child that runs one call: its exit status (0 or an
 * errno), -sig if it was killed by a signal, -1000 if it hung. */
static int child_result(pid_t pid)
{
    int st = qtest_wait(pid, 10000);
    if (st == -1)
        return -1000;
    if (st >= 0 && WIFSIGNALED(st))
        return -WTERMSIG(st);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -999;
}

/* Fork a child to make one call, with an alarm of 10 s; 0 in the child. */
static pid_t fork_caller(void)
{
    pid_t pid = qtest_fork();
    if (pid == 0) {
        alarm(10);
        signal(SIGALRM, SIG_DFL);
    }
    return pid;
}

/* Run one fcntl in a child, on its own open of file A (so that an OFD lock
 * it takes goes with it): returns its result as 0 / errno, or -sig if it was
 * killed by a signal, or -1000 if it hung. */
static int fcntl_in_child(int entry, int cmd, void *arg)
{
    pid_t pid = fork_caller();
    if (pid == 0) {
        int fd = open(path_a, O_RDWR);
        if (fd < 0)
            _exit(253);
        errno = 0;
        int r = entry == 0   ? fcntl(fd, cmd, arg)
                : entry == 1 ? fcntl64(fd, cmd, arg)
                             : under_fcntl(fd, cmd, arg);
        _exit(r == 0 ? 0 : r == -1 ? (errno & 0xff) : 254);
    }
    return child_result(pid);
}

static const char *entry_name(int e)
{
    return e == 0 ? "fcntl" : e == 1 ? "fcntl64" : "__fcntl";
}

static void describe_result(int r, char *buf, size_t n)
{
    if (r == 0)
        snprintf(buf, n, "0");
    else if (r == -1000)
        snprintf(buf, n, "hung");
    else if (r < 0)
        snprintf(buf, n, "CRASHED with signal %d (%s)", -r, strsignal(-r));
    else if (r == 254)
        snprintf(buf, n, "an odd return value");
    else if (r == 253)
        snprintf(buf, n, "(setup failed)");
    else if (r == 252)
        snprintf(buf, n, "(the first call, on a good page, failed)");
    else
        snprintf(buf, n, "-1 %s", qtest_errname(r));
}

static long crashes;

/* A struct flock the library has already read and written through once,
 * whose page then goes away behind libc's back (a raw munmap or mprotect
 * system call, or shmdt): the next call must still give EFAULT.  Each case
 * runs in a child: 0 / errno of the second call, -sig if it crashed. */
static int stale_case(int how, int cmd)
{
    pid_t pid = fork_caller();
    if (pid == 0) {
        int fd = open(path_a, O_RDWR);
        long pg = sysconf(_SC_PAGESIZE);
        char *p;
        int shmid = -1;
        if (how == 2) {
            shmid = shmget(IPC_PRIVATE, (size_t)pg, IPC_CREAT | 0600);
            p = shmid < 0 ? (char *)-1 : shmat(shmid, NULL, 0);
            if (shmid >= 0)
                shmctl(shmid, IPC_RMID, NULL);
        } else {
            p = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        }
        if (fd < 0 || p == (char *)-1 || p == MAP_FAILED)
            _exit(253);
        struct flock *fl = (struct flock *)(p + 64);
        *fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
        fl->l_pid = 0;
        if (fcntl(fd, cmd, fl) != 0) /* the page is seen, and fine */
            _exit(252);
        if (cmd == F_SETLK || cmd == F_OFD_SETLK) {
            fl->l_type = F_UNLCK;
            if (fcntl(fd, cmd, fl) != 0)
                _exit(252);
            fl->l_type = F_WRLCK;
        }
        if (how == 0)
            syscall(SYS_munmap, p, pg);
        else if (how == 1)
            syscall(SYS_mprotect, p, pg, PROT_NONE);
        else
            syscall(SYS_shmdt, p);
        errno = 0;
        int r = fcntl(fd, cmd, fl);
        _exit(r == 0 ? 0 : r == -1 ? (errno & 0xff) : 254);
    }
    return child_result(pid);
}

static void describe_result(int r, char *buf, size_t n);

static void stale_pages(void)
{
    static const char *hows[] = {"a raw munmap system call",
                                 "a raw mprotect(PROT_NONE) system call",
                                 "shmdt"};
    for (int how = 0; how < 3; how++)
        for (int c = 0; c < NCMDS; c++) {
            int cmd = lock_cmds[c];
            if (cmd == F_SETLKW || cmd == F_OFD_SETLKW)
                continue; /* as F_SETLK / F_OFD_SETLK here */
            int r = stale_case(how, cmd);
            char d[96];
            describe_result(r, d, sizeof d);
            crashes += r < 0;
            CHECK(r == EFAULT, "%s with a struct flock used once, then gone "
                  "by %s: expected -1 EFAULT, got %s", qtest_cmdname(cmd), hows[how],
                  d);
        }
}

static void bad_pointers(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *two = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *ro = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (two == MAP_FAILED || ro == MAP_FAILED)
        qtest_fatal("mmap");
    if (mprotect(two + pg, (size_t)pg, PROT_NONE) != 0)
        qtest_fatal("mprotect");
    /* a valid-looking struct in a read-only page */
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    memcpy(ro, &fl, sizeof fl);
    if (mprotect(ro, (size_t)pg, PROT_READ) != 0)
        qtest_fatal("mprotect");
    /* the start of a struct at the end of a page, the rest unmapped */
    char *straddle = two + pg - 8;
    memcpy(straddle, &fl, 8);

    struct {
        const char *name;
        void *p;
    } ptrs[] = {
        {"NULL", NULL},
        {"(void *)1", (void *)1},
        {"a kernel address", (void *)(uintptr_t)0xffffffffff600000ULL},
        {"a PROT_NONE page", two + pg},
        {"a struct straddling into a PROT_NONE page", straddle},
    };
    int nentries = under_fcntl ? 3 : 2;
    for (int e = 0; e < nentries; e++)
        for (int c = 0; c < NCMDS; c++) {
            for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) {
                int r = fcntl_in_child(e, lock_cmds[c], ptrs[i].p);
                char d[96];
                describe_result(r, d, sizeof d);
                crashes += r < 0;
                CHECK(r == EFAULT, "%s(fd, %s, %s): expected -1 EFAULT, got %s",
                      entry_name(e), qtest_cmdname(lock_cmds[c]), ptrs[i].name, d);
            }
            /* read-only struct: GETLK writes the answer back */
            int get = lock_cmds[c] == F_GETLK || lock_cmds[c] == F_OFD_GETLK;
            int r = fcntl_in_child(e, lock_cmds[c], ro);
            char d[96];
            describe_result(r, d, sizeof d);
            crashes += r < 0;
            if (get)
                CHECK(r == EFAULT, "%s(fd, %s, struct in a read-only page): "
                      "expected -1 EFAULT (the answer cannot be written), got "
                      "%s", entry_name(e), qtest_cmdname(lock_cmds[c]), d);
            else
                CHECK(r >= 0 && r != 254 && (r == 0 || qtest_lock_errno_ok(r)),
                      "%s(fd, %s, struct in a read-only page): expected 0 or "
                      "an errno, got %s", entry_name(e), qtest_cmdname(lock_cmds[c]),
                      d);
        }
    munmap(two, (size_t)pg * 2);
    munmap(ro, (size_t)pg);
    stale_pages();
}

/* ------------------------------------------------------------------------ */
/* Part 1: bad values (in a child, so that a crash is one failure)           */
/* ------------------------------------------------------------------------ */

static const char *ctx = ""; /* what the EXPECT lines are about */

/* rc/errno must be one of the listed outcomes: 0 stands for success. */
static void expect_in(long rc, int e, const int *ok, int nok, const char *what,
                      const char *file, int line)
{
    int good = 0;
    for (int i = 0; i < nok; i++)
        if ((ok[i] == 0 && rc == 0) || (ok[i] != 0 && rc == -1 && e == ok[i]))
            good = 1;
    if (rc == -1 && !qtest_lock_errno_ok(e))
        good = 0;
    char want[128] = "";
    size_t n = 0;
    for (int i = 0; i < nok; i++)
        n += (size_t)snprintf(want + n, sizeof want - n, "%s%s", i ? "/" : "",
                              ok[i] ? qtest_errname(ok[i]) : "0");
    qtest_record(good, file, line, "%s%s: expected %s, got %ld %s", ctx, what,
                 want, rc, rc == -1 ? qtest_errname(e) : "");
}

#define EXPECT(expr, ...)                                                     \
    do {                                                                      \
        static const int qt_ok_[] = {__VA_ARGS__};                            \
        errno = 0;                                                            \
        long qt_rc_ = (long)(expr);                                           \
        int qt_e_ = errno;                                                    \
        expect_in(qt_rc_, qt_e_, qt_ok_, (int)(sizeof qt_ok_ / sizeof(int)),  \
                  #expr, __FILE__, __LINE__);                                 \
    } while (0)

static int lockf_at(int fd, off_t off, int func, off_t size)
{
    if (lseek(fd, off, SEEK_SET) != off)
        return -2;
    return lockf(fd, func, size);
}

/* Drop every kind of lock this process may hold through fd. */
static void release_fd(int fd)
{
    struct flock u = qtest_fl(F_UNLCK, SEEK_SET, 0, 0);
    fcntl(fd, F_SETLK, &u);
    fcntl(fd, F_OFD_SETLK, &u);
    u.l_type = 0x1000 | F_UNLCK;
    fcntl(fd, F_SETLK, &u);
    flock(fd, LOCK_UN);
}

static void bad_values(void *arg)
{
    (void)arg;
    int fd = qtest_open(path_a, O_RDWR); /* size 100 */
    const off_t MAX = INT64_MAX, MIN = INT64_MIN;
    char ctxbuf[64];
    for (int c = 0; c < NCMDS; c++) {
        int cmd = lock_cmds[c];
        snprintf(ctxbuf, sizeof ctxbuf, "[cmd %s] ", qtest_cmdname(cmd));
        ctx = ctxbuf;
        /* a start before the file */
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_SET, -1, 10), EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_SET, MIN, 10), EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_SET, 10, -11), EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_SET, 0, MIN), EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_END, -101, 1), EINVAL);
        /* a last byte off_t cannot hold */
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_SET, MAX, 2), EOVERFLOW, EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_SET, 2, MAX), EOVERFLOW, EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_END, MAX, 1), EOVERFLOW, EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_END, MAX - 50, 0), EOVERFLOW,
               EINVAL);
        qtest_seek(fd, 100);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_CUR, MAX - 50, 1), EOVERFLOW,
               EINVAL);
        /* edge ranges that are fine */
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_SET, MAX, 1), 0, EOVERFLOW);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_SET, MAX - 10, 0), 0);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_SET, 0, MAX), 0);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_SET, MAX, -MAX), 0);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, SEEK_SET, 1LL << 62, 1LL << 62), 0,
               EOVERFLOW);
        /* bad l_whence and l_type */
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, 3, 0, 10), EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, -1, 0, 10), EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, F_WRLCK, 0x7fff, 0, 10), EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, 3, SEEK_SET, 0, 10), EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, -1, SEEK_SET, 0, 10), EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, 0x7fff, SEEK_SET, 0, 10), EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, 4 /* F_EXLCK */, SEEK_SET, 0, 10), EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, 8 /* F_SHLCK */, SEEK_SET, 0, 10), EINVAL);
        /* F_UNLCK is no question for F_GETLK; Linux 6.7 made it one for
         * F_OFD_GETLK ("do I hold a lock here"), the shim did not */
        if (cmd == F_GETLK)
            EXPECT(qtest_lk_whence(fd, cmd, F_UNLCK, SEEK_SET, 0, 10), EINVAL);
        if (cmd == F_OFD_GETLK)
            EXPECT(qtest_lk_whence(fd, cmd, F_UNLCK, SEEK_SET, 0, 10), EINVAL, 0);
        /* release whatever the fine ones took (a blocking request of
         * another owner kind must not wait for them) */
        EXPECT(qtest_lk_whence(fd, F_SETLK, F_UNLCK, SEEK_SET, 0, 0), 0);
        EXPECT(qtest_lk_whence(fd, F_OFD_SETLK, F_UNLCK, SEEK_SET, 0, 0), 0);
        /* F_FLOCK | type: QNX's open-file locks under the shim, natively
         * an unknown type */
        EXPECT(qtest_lk_whence(fd, cmd, 0x1000 | F_WRLCK, SEEK_SET, 0, 10), 0, EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, 0x1000 | F_UNLCK, SEEK_SET, 0, 0), 0, EINVAL);
        EXPECT(qtest_lk_whence(fd, cmd, 0x1000 | 7, SEEK_SET, 0, 10), EINVAL);
        EXPECT(qtest_lk_whence(fd, F_SETLK, 0x1000 | F_UNLCK, SEEK_SET, 0, 0), 0, EINVAL);
        release_fd(fd);
    }
    ctx = "";
    /* OFD commands want l_pid 0 */
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    fl.l_pid = 1234;
    EXPECT(fcntl(fd, F_OFD_SETLK, &fl), EINVAL);
    EXPECT(fcntl(fd, F_OFD_GETLK, &fl), EINVAL);
    /* unknown commands with a struct flock (pass through: EINVAL) */
    fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    EXPECT(fcntl(fd, 12345, &fl), EINVAL);
    EXPECT(fcntl(fd, -1, &fl), EINVAL);
    EXPECT(fcntl(fd, 0x7fffffff, &fl), EINVAL);
    EXPECT(fcntl(fd, 999, &fl), EINVAL);
    EXPECT(fcntl64(fd, 12345, &fl), EINVAL);
    /* lockf: functions and sizes */
    EXPECT(lockf_at(fd, 0, 99, 10), EINVAL);
    EXPECT(lockf_at(fd, 0, -1, 10), EINVAL);
    EXPECT(lockf_at(fd, 10, F_LOCK, -11), EINVAL);
    EXPECT(lockf_at(fd, 10, F_TLOCK, MIN), EINVAL);
    EXPECT(lockf_at(fd, 10, F_TEST, MIN), EINVAL);
    EXPECT(lockf_at(fd, 10, F_ULOCK, MIN), EINVAL);
    EXPECT(lockf_at(fd, 10, F_TLOCK, MAX), EOVERFLOW, EINVAL);
    if (lseek(fd, 1LL << 40, SEEK_SET) == 1LL << 40)
        EXPECT(lockf(fd, F_TLOCK, MAX), EOVERFLOW, EINVAL);
    EXPECT(lockf_at(fd, 10, F_TLOCK, -10), 0);
    EXPECT(lockf_at(fd, 10, F_ULOCK, MAX), 0, EOVERFLOW);
    EXPECT(lockf_at(fd, 0, F_ULOCK, 0), 0);
    EXPECT(lockf64(fd, 99, 10), EINVAL);
    /* flock operations */
    EXPECT(flock(fd, 0), EINVAL);
    EXPECT(flock(fd, LOCK_NB), EINVAL);
    EXPECT(flock(fd, 0x100), EINVAL);
    /* -1 has LOCK_MAND set: Linux >= 5.15 ignores such a request and
     * returns 0; the shim (QNX) rejects unknown bits */
    EXPECT(flock(fd, -1), EINVAL, 0);
    EXPECT(flock(fd, LOCK_UN | 0x40), EINVAL);
    EXPECT(flock(fd, LOCK_SH | LOCK_EX), 0, EINVAL); /* QNX: shared */
    EXPECT(flock(fd, LOCK_UN), 0);
    close(fd);
}

/* Descriptors that are no regular open file, or open for the wrong access:
 * every call returns 0 or an errno of the documented set. */
static void odd_fds(void *arg)
{
    (void)arg;
    int pipefd[2], sv[2];
    if (pipe(pipefd) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        qtest_fatal("pipe/socketpair");
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
    int opath = open(path_a, O_PATH);
    int devnull = open("/dev/null", O_RDWR);
    int ro = qtest_open(path_a, O_RDONLY);
    int wo = qtest_open(path_a, O_WRONLY);
    int closed = dup(ro);
    close(closed);
    struct {
        const char *name;
        int fd;
    } fds[] = {{"-1", -1},           {"a closed number", closed},
               {"INT_MAX", INT_MAX}, {"1000 (not open)", 1000},
               {"a directory", dir}, {"an O_PATH descriptor", opath},
               {"a pipe (read end)", pipefd[0]},
               {"a pipe (write end)", pipefd[1]},
               {"a socket", sv[0]},  {"/dev/null", devnull},
               {"a file O_RDONLY", ro}, {"a file O_WRONLY", wo}};
    static const short types[] = {F_RDLCK, F_WRLCK, F_UNLCK, 0x1000 | F_WRLCK};
    static const int lfuncs[] = {F_LOCK, F_TLOCK, F_TEST, F_ULOCK};
    static const int fops[] = {LOCK_SH, LOCK_EX, LOCK_SH | LOCK_NB,
                               LOCK_EX | LOCK_NB, LOCK_UN};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        int fd = fds[i].fd;
        int bad = fd < 0 || fd == closed || fd == INT_MAX || fd == 1000;
        for (int c = 0; c < NCMDS; c++)
            for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
                int cmd = lock_cmds[c];
                if (cmd == F_SETLKW || cmd == F_OFD_SETLKW)
                    cmd = cmd == F_SETLKW ? F_SETLK : F_OFD_SETLK;
                struct flock fl = qtest_fl(types[t], SEEK_SET, 0, 10);
                errno = 0;
                int r = fcntl(fd, cmd, &fl);
                int e = errno;
                CHECK(r == 0 || (r == -1 && qtest_lock_errno_ok(e) &&
                                 (!bad || e == EBADF)),
                      "fcntl(%s, %s, %s): %d %s", fds[i].name, qtest_cmdname(cmd),
                      types[t] == F_RDLCK   ? "F_RDLCK"
                      : types[t] == F_WRLCK ? "F_WRLCK"
                      : types[t] == F_UNLCK ? "F_UNLCK"
                                            : "F_FLOCK|F_WRLCK",
                      r, r ? qtest_errname(e) : "");
            }
        for (size_t f = 0; f < sizeof lfuncs / sizeof lfuncs[0]; f++) {
            int func = lfuncs[f] == F_LOCK ? F_TLOCK : lfuncs[f];
            errno = 0;
            int r = lockf(fd, func, 10);
            int e = errno;
            CHECK(r == 0 || (r == -1 && qtest_lock_errno_ok(e) &&
                             (!bad || e == EBADF)),
                  "lockf(%s, %d, 10): %d %s", fds[i].name, func, r,
                  r ? qtest_errname(e) : "");
            if (r == 0 && func == F_TLOCK)
                lockf(fd, F_ULOCK, 10);
        }
        for (size_t o = 0; o < sizeof fops / sizeof fops[0]; o++) {
            int op = fops[o] == LOCK_SH || fops[o] == LOCK_EX
                         ? fops[o] | LOCK_NB
                         : fops[o];
            errno = 0;
            int r = flock(fd, op);
            int e = errno;
            CHECK(r == 0 || (r == -1 && qtest_lock_errno_ok(e) &&
                             (!bad || e == EBADF)),
                  "flock(%s, %#x): %d %s", fds[i].name, op, r,
                  r ? qtest_errname(e) : "");
        }
        if (!bad) { /* leave nothing behind */
            struct flock fl = qtest_fl(F_UNLCK, SEEK_SET, 0, 0);
            fcntl(fd, F_SETLK, &fl);
            fcntl(fd, F_OFD_SETLK, &fl);
            flock(fd, LOCK_UN);
        }
    }
    /* wrong access, exactly */
    CHECK_ERR(setlk(ro, F_WRLCK, 0, 10), EBADF);
    CHECK_ERR(setlk(wo, F_RDLCK, 0, 10), EBADF);
    CHECK_ERR(lockf(ro, F_TLOCK, 10), EBADF);
    close(pipefd[0]);
    close(pipefd[1]);
    close(sv[0]);
    close(sv[1]);
    close(dir);
    close(opath);
    close(devnull);
    close(ro);
    close(wo);
}

/* ------------------------------------------------------------------------ */
/* Part 2: the fuzz loop                                                     */
/* ------------------------------------------------------------------------ */

struct last_call {
    char text[200];
    long calls;        /* calls made so far */
    long bad_errno;    /* -1 with an errno outside the set */
    long odd_rc;       /* a return value that is neither 0.. nor -1 */
    long verifies, verify_bad;
    long by_errno[140]; /* histogram of errnos (index < 140) */
    long ok;
};

static struct last_call *lc; /* [NFUZZ] shared */
static long calls_per_proc;
static int shared_fd; /* O_RDWR of file A, inherited: one description */
static volatile sig_atomic_t ticks;

static void on_tick(int sig)
{
    (void)sig;
    ticks++;
}

static const long long edge_values[] = {
    0, 1, -1, 2, -2, 10, 100, 4096, -4096,
    INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1,
    1LL << 62, (1LL << 62) - 1, (1LL << 62) + 1, -(1LL << 62),
    1LL << 31, 1LL << 32, (1LL << 32) - 1,
    INT64_MAX - (1LL << 32),               /* the shim's token region */
    INT64_MAX - (1LL << 32) + (1LL << 16), /* (slot 1) */
    INT64_MAX / 2, -(INT64_MAX / 2),
};
#define NEDGE ((int)(sizeof edge_values / sizeof edge_values[0]))

static long long rnd_off(void)
{
    int x = qtest_rnd_below(10);
    if (x < 5)
        return edge_values[qtest_rnd_below(NEDGE)];
    if (x < 9)
        return qtest_rnd_below(300) - 20;
    return (long long)qtest_rnd();
}

static short rnd_type(void)
{
    static const short t[] = {F_RDLCK, F_WRLCK, F_UNLCK, F_RDLCK, F_WRLCK,
                              F_UNLCK, 0x1000 | F_RDLCK, 0x1000 | F_WRLCK,
                              0x1000 | F_UNLCK, 4, 8, 3, -1, 0x1000};
    int x = qtest_rnd_below(16);
    if (x < (int)(sizeof t / sizeof t[0]))
        return t[x];
    return (short)qtest_rnd();
}

static short rnd_whence(void)
{
    int x = qtest_rnd_below(12);
    if (x < 9)
        return (short)(x % 3);
    return x == 9 ? 3 : (short)qtest_rnd();
}

static int rnd_cmd(void)
{
    int x = qtest_rnd_below(100);
    if (x < 30)
        return qtest_rnd_below(2) ? F_SETLK : F_GETLK;
    if (x < 55)
        return qtest_rnd_below(2) ? F_OFD_SETLK : F_OFD_GETLK;
    if (x < 62)
        return F_SETLKW;
    if (x < 68)
        return F_OFD_SETLKW;
    if (x < 88)
        return x < 78 ? F_SETLK : F_OFD_SETLK;
    /* some unknown commands: never a real one (those could change the
     * descriptors or arrange signals) */
    static const int unknown[] = {-1, 48, 99, 100, 777, 1023, 1100, 4096,
                                  12345, 0x7fffffff, INT_MIN};
    return unknown[qtest_rnd_below((int)(sizeof unknown / sizeof unknown[0]))];
}

static int rnd_lockf_func(void)
{
    int x = qtest_rnd_below(12);
    if (x < 10)
        return x % 4; /* F_ULOCK F_LOCK F_TLOCK F_TEST */
    return x == 10 ? 4 + qtest_rnd_below(100) : (int)qtest_rnd();
}

static int rnd_flock_op(void)
{
    static const int ops[] = {LOCK_SH, LOCK_EX, LOCK_UN, LOCK_SH | LOCK_NB,
                              LOCK_EX | LOCK_NB, LOCK_UN | LOCK_NB,
                              LOCK_SH | LOCK_EX, 0, LOCK_NB, 0x100, 0x40};
    int x = qtest_rnd_below(14);
    if (x < (int)(sizeof ops / sizeof ops[0]))
        return ops[x];
    return (int)qtest_rnd();
}

/* A short repeating timer around blocking calls. */
static void tick_arm(void)
{
    struct itimerval it = {{0, 5000}, {0, 5000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static void tick_disarm(void)
{
    struct itimerval it = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static void fuzzer(void *arg)
{
    int me = (int)(intptr_t)arg;
    struct last_call *L = &lc[me];
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(0); /* the parent bounds us; SIGALRM is the tick now */
    qtest_on_signal(SIGALRM, on_tick, 0); /* no SA_RESTART */
    qtest_verify_fn vf = qtest_get_verify();

    /* the pool */
    int pipefd[2], sv[2];
    if (pipe(pipefd) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        qtest_fatal("pipe/socketpair");
    char priv[64];
    snprintf(priv, sizeof priv, "/tmp/qtest-fuzz-%d", (int)getpid());
    int pfd = open(priv, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (pfd < 0)
        qtest_fatal("open private file");
    unlink(priv);
    int pool[] = {
        qtest_open(path_a, O_RDONLY), qtest_open(path_a, O_WRONLY),
        qtest_open(path_a, O_RDWR),   qtest_open(path_a, O_RDWR),
        qtest_open(path_b, O_RDWR),   qtest_open(path_b, O_RDONLY),
        shared_fd,                    pfd,
        pipefd[0],                    pipefd[1],
        sv[0],                        qtest_open("/dev/null", O_RDWR),
        open("/tmp", O_RDONLY | O_DIRECTORY),
        -1, 900 + me, 950 + me, /* never open */
    };
    const char *pool_name[] = {
        "A O_RDONLY", "A O_WRONLY", "A O_RDWR", "A O_RDWR (2nd)", "B O_RDWR",
        "B O_RDONLY", "A O_RDWR (shared description)", "private file",
        "pipe read end", "pipe write end", "socket", "/dev/null", "/tmp",
        "-1", "closed", "closed"};
    int npool = (int)(sizeof pool / sizeof pool[0]);
    fcntl_fn entries[3] = {(fcntl_fn)fcntl, (fcntl_fn)fcntl64, under_fcntl};
    int nentries = under_fcntl ? 3 : 2;

    for (long i = 0; i < calls_per_proc; i++) {
        int pi = qtest_rnd_below(npool);
        int fd = pool[pi];
        int kind = qtest_rnd_below(100);
        long rc;
        int e;
        int blocking = 0;
        if (i % 64 == 63) { /* let go of everything now and then */
            for (int k = 0; k < npool; k++) {
                struct flock u = qtest_fl(F_UNLCK, SEEK_SET, 0, 0);
                fcntl(pool[k], F_SETLK, &u);
                fcntl(pool[k], F_OFD_SETLK, &u);
                flock(pool[k], LOCK_UN);
            }
        }
        if (kind < 60) {
            int cmd = rnd_cmd();
            struct flock fl;
            memset(&fl, 0, sizeof fl);
            fl.l_type = rnd_type();
            fl.l_whence = rnd_whence();
            fl.l_start = (off_t)rnd_off();
            fl.l_len = (off_t)rnd_off();
            fl.l_pid = qtest_rnd_below(8) ? 0 : (pid_t)qtest_rnd();
            int en = qtest_rnd_below(nentries);
            blocking = cmd == F_SETLKW || cmd == F_OFD_SETLKW;
            snprintf(L->text, sizeof L->text,
                     "%s(%s, %s, {type=%#x, whence=%d, start=%lld, len=%lld, "
                     "pid=%d})", en == 0 ? "fcntl" : en == 1 ? "fcntl64"
                                                             : "__fcntl",
                     pool_name[pi], qtest_cmdname(cmd), (unsigned)(unsigned short)
                     fl.l_type, fl.l_whence, (long long)fl.l_start,
                     (long long)fl.l_len, (int)fl.l_pid);
            if (blocking)
                tick_arm();
            errno = 0;
            rc = entries[en](fd, cmd, &fl);
            e = errno;
        } else if (kind < 80) {
            int func = rnd_lockf_func();
            long long off = qtest_rnd_below(3) ? qtest_rnd_below(300) : rnd_off();
            long long size = rnd_off();
            int l64 = qtest_rnd_below(2);
            snprintf(L->text, sizeof L->text,
                     "lseek(%s, %lld) + %s(%d, size=%lld)", pool_name[pi], off,
                     l64 ? "lockf64" : "lockf", func, size);
            if (fd >= 0)
                lseek(fd, (off_t)off, SEEK_SET);
            blocking = func == F_LOCK;
            if (blocking)
                tick_arm();
            errno = 0;
            rc = l64 ? lockf64(fd, func, (off64_t)size)
                     : lockf(fd, func, (off_t)size);
            e = errno;
        } else {
            int op = rnd_flock_op();
            snprintf(L->text, sizeof L->text, "flock(%s, %#x)", pool_name[pi],
                     (unsigned)op);
            blocking = !(op & LOCK_NB);
            if (blocking)
                tick_arm();
            errno = 0;
            rc = flock(fd, op);
            e = errno;
        }
        if (blocking)
            tick_disarm();
        L->calls++;
        if (rc == -1) {
            if (e >= 0 && e < 140)
                L->by_errno[e]++;
            if (!qtest_lock_errno_ok(e)) {
                if (L->bad_errno++ < MAX_REPORTS)
                    CHECK(0, "fuzzer %d: %s = -1 with errno %s (%d), not in "
                          "the documented set", me, L->text, qtest_errname(e),
                          e);
            }
        } else if (rc < 0) {
            if (L->odd_rc++ < MAX_REPORTS)
                CHECK(0, "fuzzer %d: %s returned %ld", me, L->text, rc);
        } else {
            L->ok++;
        }
        if (shim && (i + 1) % VERIFY_EVERY == 0) {
            char msg[256] = "";
            snprintf(L->text, sizeof L->text, "qnxcompat_verify after %ld calls",
                     i + 1);
            int vr = vf ? vf(NULL, msg, sizeof msg) : -1;
            L->verifies++;
            if (vr != 0) {
                L->verify_bad++;
                if (L->verify_bad <= MAX_REPORTS)
                    CHECK(0, "fuzzer %d: qnxcompat_verify after %ld calls = %d:"
                          " %s", me, i + 1, vr, vf ? msg : "not found");
            }
        }
    }
    snprintf(L->text, sizeof L->text, "(finished)");
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    qtest_init();
    shim = qtest_mode_shim();
    int long_mode = qtest_long_mode();
    long total = long_mode ? 1000000 : 200000;
    const char *s = getenv("QTEST_FUZZ_CALLS");
    if (s && atol(s) > 0)
        total = atol(s);
    calls_per_proc = (total + NFUZZ - 1) / NFUZZ;
    int wait_ms = long_mode ? 1500000 : 75000;
    alarm(long_mode ? 1800 : 110);
    unsigned long long seed = qtest_seed();
    qtest_print("fuzz: %s mode, %d processes x %ld calls, seed %llu",
                shim ? "shim" : "native", NFUZZ, calls_per_proc, seed);
    under_fcntl = (fcntl_fn)dlsym(RTLD_DEFAULT, "__fcntl");

    int fa = qtest_tmpfile(100, &path_a);
    int fb = qtest_tmpfile(4096, &path_b);

    /* part 1 */
    double t0 = qtest_now_ms();
    bad_pointers();
    qtest_print("fuzz: hostile pointers: %ld calls crashed the process",
                crashes);
    RUN_IN_CHILD(bad_values, NULL);
    RUN_IN_CHILD(odd_fds, NULL);
    double t1 = qtest_now_ms();

    /* part 2 */
    void *m = mmap(NULL, sizeof *lc * NFUZZ, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        qtest_fatal("mmap");
    lc = m;
    shared_fd = qtest_open(path_a, O_RDWR);
    qtest_child c[NFUZZ];
    for (int i = 0; i < NFUZZ; i++) {
        qtest_rng = seed + 0x9E3779B97F4A7C15ULL * (unsigned long long)(i + 1);
        c[i] = qtest_child_start(fuzzer, (void *)(intptr_t)i);
    }
    long calls = 0, bad = 0, odd = 0, ok = 0, verifies = 0, vbad = 0;
    long by_errno[140];
    memset(by_errno, 0, sizeof by_errno);
    for (int i = 0; i < NFUZZ; i++) {
        int left = wait_ms - (int)(qtest_now_ms() - t1);
        int st = qtest_wait(c[i].pid, left > 1000 ? left : 1000);
        char d[96];
        qtest_describe_status(st, d, sizeof d);
        CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "fuzzer %d: %s after %ld calls; last call: %s", i, d,
              lc[i].calls, lc[i].text);
        close(c[i].from_child);
        close(c[i].to_child);
        calls += lc[i].calls;
        bad += lc[i].bad_errno;
        odd += lc[i].odd_rc;
        ok += lc[i].ok;
        verifies += lc[i].verifies;
        vbad += lc[i].verify_bad;
        for (int k = 0; k < 140; k++)
            by_errno[k] += lc[i].by_errno[k];
    }
    double t2 = qtest_now_ms();
    /* the fuzzers' open-file locks through the shared description go with
     * its last descriptor */
    close(shared_fd);
    CHECK(calls >= total, "only %ld of %ld calls made", calls, total);
    CHECK(bad == 0, "%ld calls failed with an errno outside the set", bad);
    CHECK(odd == 0, "%ld calls returned a value other than >= 0 or -1", odd);
    if (shim) {
        CHECK(verifies >= calls / VERIFY_EVERY - NFUZZ,
              "only %ld registry checks", verifies);
        CHECK(vbad == 0, "%ld of %ld registry checks failed", vbad, verifies);
        qtest_verify_fn vf = qtest_get_verify();
        char msg[256] = "";
        int vr = vf ? vf(NULL, msg, sizeof msg) : -1;
        CHECK(vr == 0, "final qnxcompat_verify = %d: %s", vr, msg);
        qtest_print("fuzz: registry at the end: %s", msg);
    }
    /* the files are usable afterwards */
    CHECK_OK(setlk(fa, F_WRLCK, 0, 0));
    CHECK_OK(unlock(fa, 0, 0));
    CHECK_OK(setlk(fb, F_WRLCK, 0, 0));
    CHECK_OK(unlock(fb, 0, 0));
    close(fa);
    close(fb);

    char hist[600] = "";
    size_t n = 0;
    for (int k = 0; k < 140 && n + 32 < sizeof hist; k++)
        if (by_errno[k])
            n += (size_t)snprintf(hist + n, sizeof hist - n, " %s=%ld",
                                  qtest_errname(k), by_errno[k]);
    qtest_print("fuzz: part 1 (hostile input) took %.1f s", (t1 - t0) / 1e3);
    qtest_print("fuzz: %ld calls made in %.1f s by %d processes (%ld "
                "succeeded; -1 with:%s); %ld registry checks", calls,
                (t2 - t1) / 1e3, NFUZZ, ok, hist, verifies);
    return QTEST_DONE();
}
