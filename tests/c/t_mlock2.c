/*
 * t_mlock2.c - mlock2() follows QNX's rules for locking memory.
 *
 * QNX 7.x mlock(): locking memory needs "superuser capabilities" (the
 * PROCMGR_AID_MEM_LOCK ability, by default root's only); "The addr must be
 * a multiple of PAGESIZE"; a range not wholly mapped is ENOMEM.  QNX has no
 * mlock2, but it is a way to lock memory, so a ported program that calls
 * Linux's mlock2 must meet the same rules (docs/semantics.md), with
 * QNXCOMPAT_ABILITIES=mem_lock granting the ability to a non-root process.
 * Natively Linux's rules: flags other than MLOCK_ONFAULT -> EINVAL;
 * unprivileged callers succeed within RLIMIT_MEMLOCK; addr is rounded down.
 *
 * The glibc symbol mlock2 is called (the library interposes that symbol),
 * through a weak reference with a raw syscall fallback for an old glibc.
 * Each case runs in a forked child, as root or as nobody (setgroups, setgid,
 * setuid 65534, RLIMIT_MEMLOCK 64 KiB, the page mapped and touched first);
 * the ability case runs in this binary re-exec'd with
 * QNXCOMPAT_ABILITIES=mem_lock in its environment (the library reads it at
 * load), which then drops to nobody:
 *
 *   case                      shim (QNX 7)     native (Linux)
 *   root, flags 0             0                0
 *   root, MLOCK_ONFAULT       0                0
 *   nobody, flags 0           EPERM            0
 *   nobody, MLOCK_ONFAULT     EPERM            0
 *   nobody + mem_lock, 0      0                0
 *   nobody + mem_lock, ONFAULT 0               0
 *   nobody, addr+1 (mapped)   EINVAL           0 (rounded down)
 *   root, addr+1              EINVAL           0
 *   root, unmapped page       ENOMEM           ENOMEM
 *   nobody, unmapped page     ENOMEM           ENOMEM
 *   root, flags 0x100         EINVAL           EINVAL
 *
 * Helper mode: t_mlock2 --case NAME   drop to nobody, run NAME, print
 * "RC <0|errno>".
 */
#include <grp.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "qtest.h"

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif
#define NOBODY 65534

extern int mlock2(const void *addr, size_t len, unsigned int flags)
    __attribute__((weak));

static long pg;

static int call_mlock2(const void *addr, size_t len, unsigned flags)
{
    if (mlock2)
        return mlock2(addr, len, flags);
    return (int)syscall(SYS_mlock2, addr, len, flags);
}

static int drop_to_nobody(void)
{
    struct rlimit rl = {65536, 65536};
    setrlimit(RLIMIT_MEMLOCK, &rl);
    gid_t g = NOBODY;
    if (setgroups(1, &g) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
        return -1;
    return 0;
}

enum kase { K_PLAIN, K_ONFAULT, K_UNALIGNED, K_UNMAPPED, K_BADFLAGS };
static const char *kname[] = {"plain", "onfault", "unaligned", "unmapped",
                              "badflags"};

/* Run one case in this process; returns 0 or errno. */
static int run_kase(enum kase k)
{
    char *p = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 250;
    p[0] = 1; /* mapped and present */
    p[pg] = 1;
    int r;
    errno = 0;
    switch (k) {
    case K_PLAIN:
        r = call_mlock2(p, (size_t)pg, 0);
        break;
    case K_ONFAULT:
        r = call_mlock2(p, (size_t)pg, MLOCK_ONFAULT);
        break;
    case K_UNALIGNED:
        r = call_mlock2(p + 1, (size_t)pg - 1, 0);
        break;
    case K_UNMAPPED:
        munmap(p + pg, (size_t)pg);
        r = call_mlock2(p + pg, (size_t)pg, 0);
        break;
    case K_BADFLAGS:
        r = call_mlock2(p, (size_t)pg, 0x100);
        break;
    default:
        r = -1;
    }
    int e = errno;
    if (r == 0)
        munlock(p, (size_t)pg * 2);
    return r == 0 ? 0 : e ? e : 251;
}

static int helper_main(int argc, char **argv)
{
    alarm(20);
    pg = sysconf(_SC_PAGESIZE);
    if (argc < 3)
        return 2;
    int k = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(argv[2], kname[i]) == 0)
            k = i;
    if (k < 0)
        return 2;
    if (drop_to_nobody() != 0) {
        qtest_print("RC 252");
        return 0;
    }
    qtest_print("RC %d", run_kase((enum kase)k));
    return 0;
}

struct job {
    enum kase k;
    int nobody;
    volatile int *rc;
};

static void job_main(void *arg)
{
    struct job *j = arg;
    if (j->nobody && drop_to_nobody() != 0) {
        *j->rc = 252;
        return;
    }
    *j->rc = run_kase(j->k);
}

/* The result of case k in a forked child (as nobody or root). */
static int in_child(enum kase k, int nobody)
{
    volatile int *rc = qtest_shared(sizeof(int));
    *rc = 255;
    struct job j = {k, nobody, rc};
    pid_t p = qtest_fork_fn(job_main, &j);
    int st = qtest_wait(p, 10000);
    int r = qtest_exited0(st) ? *rc : 255;
    munmap((void *)rc, sizeof(int));
    return r;
}

/* The result of case k in this binary re-exec'd with the ability. */
static int with_ability(enum kase k)
{
    char *av[] = {"t_mlock2", "--case", (char *)kname[k], NULL};
    char *env[] = {"QNXCOMPAT_ABILITIES=mem_lock", NULL};
    qtest_helper h = qtest_spawn(NULL, av, env);
    char out[256] = "", err[512] = "";
    qtest_read_until(h.out, out, sizeof out, "RC", 10000);
    int st = qtest_helper_finish(&h, 5000, out, sizeof out, err, sizeof err);
    long long r = qtest_out_val(out, "RC", 255);
    if (!qtest_exited0(st))
        return 255;
    return (int)r;
}

static const char *en(int r)
{
    return r == 0       ? "0"
           : r == 252   ? "could not drop to nobody"
           : r >= 250   ? "helper failed"
                        : qtest_errname(r);
}

#define EXPECT(what, got, shim_want, native_want)                             \
    do {                                                                      \
        int qt_w_ = qtest_mode_shim() ? (shim_want) : (native_want);          \
        int qt_g_ = (got);                                                    \
        CHECK(qt_g_ == qt_w_, "%s: mlock2 gave %s, expected %s", (what),      \
              en(qt_g_), en(qt_w_));                                          \
    } while (0)

int main(int argc, char **argv)
{
    if (argc >= 2 && strncmp(argv[1], "--", 2) == 0)
        return helper_main(argc, argv);
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    pg = sysconf(_SC_PAGESIZE);
    if (!mlock2)
        qtest_print("NOTE glibc has no mlock2: using the raw syscall (the "
                    "library cannot see it)");
    if (geteuid() != 0) {
        qtest_print("SKIP: not root (cannot drop to nobody)");
        EXPECT("caller's own, flags 0x100", run_kase(K_BADFLAGS), EINVAL,
               EINVAL);
        return QTEST_DONE();
    }
    EXPECT("root, flags 0", in_child(K_PLAIN, 0), 0, 0);
    EXPECT("root, MLOCK_ONFAULT", in_child(K_ONFAULT, 0), 0, 0);
    EXPECT("nobody, flags 0", in_child(K_PLAIN, 1), EPERM, 0);
    EXPECT("nobody, MLOCK_ONFAULT", in_child(K_ONFAULT, 1), EPERM, 0);
    EXPECT("nobody with QNXCOMPAT_ABILITIES=mem_lock, flags 0",
           with_ability(K_PLAIN), 0, 0);
    EXPECT("nobody with QNXCOMPAT_ABILITIES=mem_lock, MLOCK_ONFAULT",
           with_ability(K_ONFAULT), 0, 0);
    EXPECT("nobody, unaligned addr", in_child(K_UNALIGNED, 1), EINVAL, 0);
    EXPECT("root, unaligned addr", in_child(K_UNALIGNED, 0), EINVAL, 0);
    EXPECT("root, unmapped page", in_child(K_UNMAPPED, 0), ENOMEM, ENOMEM);
    EXPECT("nobody, unmapped page", in_child(K_UNMAPPED, 1), ENOMEM, ENOMEM);
    EXPECT("root, flags 0x100", in_child(K_BADFLAGS, 0), EINVAL, EINVAL);
    EXPECT("nobody, flags 0x100", in_child(K_BADFLAGS, 1), EINVAL, EINVAL);
    return QTEST_DONE();
}
