/*
 * The C-ABI edge of libqnxcompat: entry points that stable Rust cannot
 * define. fcntl() is variadic; fcntl, lockf and flock are cancellation points
 * whose blocking wait must let pthread_cancel() unwind, which it must never
 * do through Rust frames (they are nounwind and would abort).
 *
 * So every function here reads its arguments the way glibc does, calls a
 * fixed-signature Rust function, and loops: Rust waits in bounded slices and
 * returns QNXCOMPAT_AGAIN between them, and this loop offers cancellation.
 * No policy lives in C.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/file.h>
#include <fcntl.h>

/* Sentinels shared with src/hooks/entry.rs. */
#define QNXCOMPAT_AGAIN (-1000) /* a wait slice ended: offer cancellation, call again */
#define QNXCOMPAT_EINTR (-1001) /* a signal interrupted the wait: offer cancellation, fail EINTR */

/* Which exported spelling was called, so traces name it. */
enum qnxcompat_entry { ENTRY_FCNTL = 0, ENTRY_FCNTL64 = 1, ENTRY___FCNTL = 2, ENTRY_LOCKF = 3, ENTRY_LOCKF64 = 4 };

/* State that spans the slices of one call: its start time, for tracing,
 * and its registration in the wait-for graph (src/locks.rs CallState). */
struct qnxcompat_call {
    uint64_t start_ns;
    uint32_t slices;
    uint32_t waiter;
    uint32_t waiter_gen;
    uint32_t sig_base;
    uint32_t check_epoch;
    int32_t holder_pid; /* what the call met in its way, for tracing */
    uint32_t holder_kind;
    uint32_t told;
    int64_t holder_start;
    int64_t holder_end;
};

extern long qnxcompat_fcntl(int fd, int cmd, uintptr_t arg, int entry, struct qnxcompat_call *call);
extern long qnxcompat_lockf(int fd, int function, int64_t size, int entry, struct qnxcompat_call *call);
extern long qnxcompat_flock(int fd, int operation, struct qnxcompat_call *call);
extern void qnxcompat_call_abandon(struct qnxcompat_call *call);

/* Runs when pthread_cancel() unwinds a blocked call: drops its waiter
 * registration, so no stale edge is left in the wait-for graph. */
static void abandon(void *call)
{
    qnxcompat_call_abandon((struct qnxcompat_call *)call);
}

/* Calls `expr` until it stops asking for another wait slice, offering
 * cancellation between slices. The shim is compiled without -fexceptions,
 * so pthread_cleanup_push is glibc's setjmp-based form, run by glibc's
 * forced unwind through its own stop function: no frame of the shim has a
 * landing pad, and the library needs no unwinder or personality routine
 * of its own (nor libgcc_s, whose loading cost every process start). */
#define WAIT_LOOP(r, expr, call)                                                                   \
    do {                                                                                           \
        pthread_cleanup_push(abandon, &(call));                                                    \
        while (((r) = (expr)) == QNXCOMPAT_AGAIN)                                                  \
            pthread_testcancel();                                                                  \
        pthread_cleanup_pop(0);                                                                    \
    } while (0)

/* errno is the call's own: a success leaves it as the caller had it,
 * whatever the library's own syscalls did on the way. */
static int settle(long r, int saved_errno)
{
    if (r == QNXCOMPAT_EINTR) {
        pthread_testcancel();
        errno = EINTR;
        return -1;
    }
    if (r >= 0)
        errno = saved_errno;
    return (int)r;
}

static int blocking_fcntl_cmd(int cmd)
{
    return cmd == F_SETLKW
#ifdef F_SETLKW64
           || cmd == F_SETLKW64
#endif
#ifdef F_OFD_SETLKW
           || cmd == F_OFD_SETLKW
#endif
        ;
}

static int fcntl_entry(int fd, int cmd, uintptr_t arg, int entry)
{
    struct qnxcompat_call call = {0};
    long r;
    int saved_errno = errno;
    if (blocking_fcntl_cmd(cmd))
        pthread_testcancel();
    WAIT_LOOP(r, qnxcompat_fcntl(fd, cmd, arg, entry, &call), call);
    return settle(r, saved_errno);
}

/* glibc's __libc_fcntl64 reads the third argument as one void *; so do we. */
#define READ_ARG(cmd, arg)                                                                         \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, cmd);                                                                         \
        arg = (uintptr_t)va_arg(ap, void *);                                                       \
        va_end(ap);                                                                                \
    } while (0)

__attribute__((visibility("default"))) int fcntl(int fd, int cmd, ...)
{
    uintptr_t arg;
    READ_ARG(cmd, arg);
    return fcntl_entry(fd, cmd, arg, ENTRY_FCNTL);
}

__attribute__((visibility("default"))) int fcntl64(int fd, int cmd, ...)
{
    uintptr_t arg;
    READ_ARG(cmd, arg);
    return fcntl_entry(fd, cmd, arg, ENTRY_FCNTL64);
}

__attribute__((visibility("default"))) int __fcntl(int fd, int cmd, ...)
{
    uintptr_t arg;
    READ_ARG(cmd, arg);
    return fcntl_entry(fd, cmd, arg, ENTRY___FCNTL);
}

static int lockf_entry(int fd, int function, int64_t size, int entry)
{
    struct qnxcompat_call call = {0};
    long r;
    int saved_errno = errno;
    if (function == F_LOCK)
        pthread_testcancel();
    WAIT_LOOP(r, qnxcompat_lockf(fd, function, size, entry, &call), call);
    return settle(r, saved_errno);
}

__attribute__((visibility("default"))) int lockf(int fd, int function, off_t size)
{
    return lockf_entry(fd, function, (int64_t)size, ENTRY_LOCKF);
}

__attribute__((visibility("default"))) int lockf64(int fd, int function, off64_t size)
{
    return lockf_entry(fd, function, (int64_t)size, ENTRY_LOCKF64);
}

__attribute__((visibility("default"))) int flock(int fd, int operation)
{
    struct qnxcompat_call call = {0};
    long r;
    int saved_errno = errno;
    if (!(operation & LOCK_NB))
        pthread_testcancel();
    WAIT_LOOP(r, qnxcompat_flock(fd, operation, &call), call);
    return settle(r, saved_errno);
}

/*
 * exec: QNX releases a process's locks on the first close of any descriptor
 * for a file, and exec closes the close-on-exec ones. Rust marks the locks
 * such a close releases; the new image drops them as it loads, and a failed
 * exec clears the marks. glibc's exec family calls __execve internally, so
 * each spelling is wrapped; the variadic execl* build their argv here, as
 * glibc does, and go through the wrapped execv* spelling.
 */
#include <dlfcn.h>
#include <string.h>
#include <stddef.h>

/* Before the real exec: marks locks exec's closes release and, when the new
 * image will load the library, takes the anchor bridge (a descriptor that
 * survives the exec) and writes "QNXCOMPAT_ADOPT=..." into buf. Returns the
 * bridge descriptor, or -1. `path` NULL with `fd` >= 0 means fexecve. */
extern int qnxcompat_before_exec(const char *path, int fd, int search, char *const envp[], char *buf, size_t len);
extern void qnxcompat_exec_failed(int bridge);

extern char **environ;

typedef int (*exec_path_fn)(const char *, char *const[], char *const[]);
typedef int (*exec_fd_fn)(int, char *const[], char *const[]);

static void *real_symbol(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

static int exec_done(int r, int bridge)
{
    int saved = errno;
    qnxcompat_exec_failed(bridge);
    errno = saved;
    return r;
}

/* The real function, looked up once per wrapper and cached. */
#define REAL_OR_ENOSYS(type, var, name)                                                            \
    static type var##_cache;                                                                       \
    REAL_FROM(type, var, var##_cache, name)

/* The same with the cache `cache` declared outside (the exec family's,
 * filled by the constructor qnxcompat_prime_exec). */
#define REAL_FROM(type, var, cache, name)                                                          \
    type var = __atomic_load_n(&cache, __ATOMIC_ACQUIRE);                                          \
    if (!var) {                                                                                    \
        var = (type)real_symbol(name);                                                             \
        __atomic_store_n(&cache, var, __ATOMIC_RELEASE);                                           \
    }                                                                                              \
    if (!var) {                                                                                    \
        errno = ENOSYS;                                                                            \
        return -1;                                                                                 \
    }

/* The real exec functions, looked up by the constructor: a fork child that
 * execs then runs no dlsym (its pages of ld.so and of the symbol tables are
 * not yet its own: each would be a page fault, in every fork + exec). */
static exec_path_fn real_execve_cache, real_execvpe_cache;
static exec_fd_fn real_fexecve_cache;

__attribute__((constructor)) static void qnxcompat_prime_exec(void)
{
    __atomic_store_n(&real_execve_cache, (exec_path_fn)real_symbol("execve"), __ATOMIC_RELEASE);
    __atomic_store_n(&real_execvpe_cache, (exec_path_fn)real_symbol("execvpe"), __ATOMIC_RELEASE);
    __atomic_store_n(&real_fexecve_cache, (exec_fd_fn)real_symbol("fexecve"), __ATOMIC_RELEASE);
}

static size_t env_count(char *const envp[])
{
    size_t n = 0;
    while (envp && envp[n])
        n++;
    return n;
}

/* Runs `call` with `env` = envp plus the bridge variable (on the stack: exec
 * may run in a fork child of a threaded program, where malloc is unsafe). */
#define WITH_BRIDGE(path, fd, search, envp, call)                                                  \
    do {                                                                                           \
        char bridge_var[96];                                                                       \
        char *const *env_in = (envp);                                                              \
        int bridge = qnxcompat_before_exec((path), (fd), (search), env_in, bridge_var,             \
                                           sizeof bridge_var);                                     \
        size_t env_n = bridge >= 0 ? env_count(env_in) : 0;                                        \
        char *env_new[env_n + 2];                                                                  \
        char *const *env = env_in;                                                                 \
        if (bridge >= 0) {                                                                         \
            size_t k = 0;                                                                          \
            for (size_t i = 0; i < env_n; i++)                                                     \
                if (strncmp(env_in[i], "QNXCOMPAT_ADOPT=", 16) != 0)                               \
                    env_new[k++] = env_in[i];                                                      \
            env_new[k++] = bridge_var;                                                             \
            env_new[k] = NULL;                                                                     \
            env = env_new;                                                                         \
        }                                                                                          \
        return exec_done((call), bridge);                                                          \
    } while (0)

__attribute__((visibility("default"))) int execve(const char *path, char *const argv[], char *const envp[])
{
    REAL_FROM(exec_path_fn, real, real_execve_cache, "execve");
    WITH_BRIDGE(path, -1, 0, envp, real(path, argv, env));
}

__attribute__((visibility("default"))) int execvpe(const char *file, char *const argv[], char *const envp[])
{
    REAL_FROM(exec_path_fn, real, real_execvpe_cache, "execvpe");
    WITH_BRIDGE(file, -1, 1, envp, real(file, argv, env));
}

__attribute__((visibility("default"))) int execv(const char *path, char *const argv[])
{
    REAL_FROM(exec_path_fn, real, real_execve_cache, "execve");
    WITH_BRIDGE(path, -1, 0, environ, real(path, argv, env));
}

__attribute__((visibility("default"))) int execvp(const char *file, char *const argv[])
{
    REAL_FROM(exec_path_fn, real, real_execvpe_cache, "execvpe");
    WITH_BRIDGE(file, -1, 1, environ, real(file, argv, env));
}

__attribute__((visibility("default"))) int fexecve(int fd, char *const argv[], char *const envp[])
{
    REAL_FROM(exec_fd_fn, real, real_fexecve_cache, "fexecve");
    WITH_BRIDGE(NULL, fd, 0, envp, real(fd, argv, env));
}

/* Counts execl's arguments up to the terminating NULL. */
#define COUNT_ARGS(last, n)                                                                        \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, last);                                                                        \
        for (n = 1; va_arg(ap, char *) != NULL; n++)                                               \
            ;                                                                                      \
        va_end(ap);                                                                                \
    } while (0)

/* Fills argv[0..n] (argv[n] = NULL); for execle, also reads the envp that
 * follows the NULL. */
#define FILL_ARGS(last, argv, n, envp)                                                             \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, last);                                                                        \
        argv[0] = (char *)(last);                                                                  \
        for (size_t i = 1; i <= (n); i++)                                                          \
            argv[i] = va_arg(ap, char *);                                                          \
        char *const **envp_out = (envp);                                                           \
        if (envp_out)                                                                              \
            *envp_out = va_arg(ap, char *const *);                                                 \
        va_end(ap);                                                                                \
    } while (0)

__attribute__((visibility("default"))) int execl(const char *path, const char *arg, ...)
{
    size_t n;
    COUNT_ARGS(arg, n);
    char *argv[n + 1];
    FILL_ARGS(arg, argv, n, (char *const **)NULL);
    return execv(path, argv);
}

__attribute__((visibility("default"))) int execlp(const char *file, const char *arg, ...)
{
    size_t n;
    COUNT_ARGS(arg, n);
    char *argv[n + 1];
    FILL_ARGS(arg, argv, n, (char *const **)NULL);
    return execvp(file, argv);
}

__attribute__((visibility("default"))) int execle(const char *path, const char *arg, ...)
{
    size_t n;
    COUNT_ARGS(arg, n);
    char *argv[n + 1];
    char *const *envp = NULL;
    FILL_ARGS(arg, argv, n, &envp);
    return execve(path, argv, envp);
}

/*
 * mremap is variadic (the new address comes only with MREMAP_FIXED): read it
 * as glibc does, remap, then tell Rust where the file mapping went.
 */
#include <sys/mman.h>

extern void qnxcompat_remapped(void *old, size_t old_len, void *new_addr, size_t new_len);

typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);

__attribute__((visibility("default"))) void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *want = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        want = va_arg(ap, void *);
        va_end(ap);
    }
    static mremap_fn cache;
    mremap_fn real = __atomic_load_n(&cache, __ATOMIC_ACQUIRE);
    if (!real) {
        real = (mremap_fn)real_symbol("mremap");
        __atomic_store_n(&cache, real, __ATOMIC_RELEASE);
    }
    if (!real) {
        errno = ENOSYS;
        return MAP_FAILED;
    }
    void *r = real(old, old_len, new_len, flags, want);
    if (r != MAP_FAILED) {
        int saved = errno;
        qnxcompat_remapped(old, old_len, r, new_len);
        errno = saved;
    }
    return r;
}

/*
 * Descriptor creation: the open family and dup return numbers that may have
 * been closed behind the library's back; each result is reported so that the
 * descriptor cache (src/local.rs) forgets what it knew of that number.
 */
extern void qnxcompat_fd_fresh(int fd);

static int fresh(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        qnxcompat_fd_fresh(fd);
        errno = saved;
    }
    return fd;
}

/* open's mode argument exists only with O_CREAT or O_TMPFILE (glibc). */
#define NEEDS_MODE(flags) (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE)
#define READ_MODE(last, flags, mode)                                                               \
    do {                                                                                           \
        mode = 0;                                                                                  \
        if (NEEDS_MODE(flags)) {                                                                   \
            va_list ap;                                                                            \
            va_start(ap, last);                                                                    \
            mode = va_arg(ap, mode_t);                                                             \
            va_end(ap);                                                                            \
        }                                                                                          \
    } while (0)

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*open2_fn)(const char *, int);
typedef int (*openat2_fn)(int, const char *, int);
typedef int (*creat_fn)(const char *, mode_t);
typedef int (*dup_fn)(int);

#define DEFINE_OPEN(name)                                                                          \
    __attribute__((visibility("default"))) int name(const char *path, int flags, ...)              \
    {                                                                                              \
        mode_t mode;                                                                               \
        READ_MODE(flags, flags, mode);                                                             \
        REAL_OR_ENOSYS(open_fn, real, #name);                                                      \
        return fresh(real(path, flags, mode));                                                     \
    }
DEFINE_OPEN(open)
DEFINE_OPEN(open64)

#define DEFINE_OPENAT(name)                                                                        \
    __attribute__((visibility("default"))) int name(int dirfd, const char *path, int flags, ...)   \
    {                                                                                              \
        mode_t mode;                                                                               \
        READ_MODE(flags, flags, mode);                                                             \
        REAL_OR_ENOSYS(openat_fn, real, #name);                                                    \
        return fresh(real(dirfd, path, flags, mode));                                              \
    }
DEFINE_OPENAT(openat)
DEFINE_OPENAT(openat64)

/* _FORTIFY_SOURCE's checked variants call the open syscall themselves. */
__attribute__((visibility("default"))) int __open_2(const char *path, int flags)
{
    REAL_OR_ENOSYS(open2_fn, real, "__open_2");
    return fresh(real(path, flags));
}

__attribute__((visibility("default"))) int __open64_2(const char *path, int flags)
{
    REAL_OR_ENOSYS(open2_fn, real, "__open64_2");
    return fresh(real(path, flags));
}

__attribute__((visibility("default"))) int __openat_2(int dirfd, const char *path, int flags)
{
    REAL_OR_ENOSYS(openat2_fn, real, "__openat_2");
    return fresh(real(dirfd, path, flags));
}

__attribute__((visibility("default"))) int __openat64_2(int dirfd, const char *path, int flags)
{
    REAL_OR_ENOSYS(openat2_fn, real, "__openat64_2");
    return fresh(real(dirfd, path, flags));
}

__attribute__((visibility("default"))) int creat(const char *path, mode_t mode)
{
    REAL_OR_ENOSYS(creat_fn, real, "creat");
    return fresh(real(path, mode));
}

__attribute__((visibility("default"))) int creat64(const char *path, mode_t mode)
{
    REAL_OR_ENOSYS(creat_fn, real, "creat64");
    return fresh(real(path, mode));
}

__attribute__((visibility("default"))) int dup(int fd)
{
    REAL_OR_ENOSYS(dup_fn, real, "dup");
    return fresh(real(fd));
}

/*
 * Run as a program ("./libqnxcompat.so"), the library says what it is and
 * how to use it, as libc.so.6 does, instead of crashing: the dynamic loader
 * it names in .interp maps it, runs the constructors, and jumps to
 * qnxcompat_run_as_program (the -e entry point, build.rs). Raw syscalls
 * only: nothing here needs more of libc than the loader gives.
 */
#include <sys/syscall.h>

#ifndef QNXCOMPAT_VERSION
#define QNXCOMPAT_VERSION "unknown"
#endif

__attribute__((used, section(".interp"))) static const char qnxcompat_interp[] =
    "/lib64/ld-linux-x86-64.so.2";

static const char qnxcompat_banner[] =
    "libqnxcompat " QNXCOMPAT_VERSION ": QNX Neutrino file and memory locking semantics on Linux.\n"
    "Usage: LD_PRELOAD=/absolute/path/to/libqnxcompat.so PROGRAM [ARGS...]\n"
    "       (or link with -lqnxcompat for the QNX iofunc lock API; see README.md)\n";

__attribute__((noreturn, visibility("default"))) void qnxcompat_run_as_program(void);
void qnxcompat_run_as_program(void)
{
    /* The entry point is a root of the link's section garbage collection;
     * naming .interp here keeps it (and so the PT_INTERP header). */
    __asm__ volatile("" : : "r"(qnxcompat_interp));
    syscall(SYS_write, 1, qnxcompat_banner, sizeof qnxcompat_banner - 1);
    syscall(SYS_exit_group, 0);
    __builtin_unreachable();
}
