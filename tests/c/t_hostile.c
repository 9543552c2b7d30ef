/*
 * t_hostile.c - the lock registry as an attack surface (shim only).
 *
 * Another user (needs root to run: the test drops a child to nobody):
 *   - root takes locks (fcntl write and read, an OFD lock, a flock) under
 *     the registry QNXCOMPAT_REGISTRY=<R>;
 *   - a child that drops to nobody (setgroups/setgid/setuid 65534) and
 *     re-executes itself with the same QNXCOMPAT_REGISTRY gets exactly one
 *     refusal line on stderr and kernel locks: with the kernel mirror off
 *     (QNXCOMPAT_MIRROR=off) its F_GETLK does not see root's locks and its
 *     F_SETLK on them succeeds (in the kernel); with the mirror on (the
 *     default) root's locks are kernel locks too, so it sees them and its
 *     requests on them fail; either way its unlocks and flock() change
 *     nothing of root's, it cannot open
 *     /dev/shm/<R> for reading or writing (EACCES), nor unlink or rename it,
 *     and qnxcompat_verify() cannot attach it;
 *   - afterwards a root probe still sees every one of root's locks;
 *   - nobody plants segments for root: a forged registry (right size, a
 *     valid header) and a symlink to a root-owned file.  A root process told
 *     to use them refuses each with one line and falls back to kernel locks,
 *     and neither the forged segment nor the symlink's target is changed;
 *   - nobody's kernel locks (all it has) against root's open-file tokens
 *     (see token_attacks): they must not keep a dead root process's flock
 *     alive, and with the mirror off they must not deny root flock/OFD
 *     locks (with the mirror on they are real conflicts).
 * Scribbled contents: in a registry of its own (<R>-scribble), helper
 * processes (this binary re-executed) take locks; then this process
 * overwrites random bytes of the live segment beyond the header page (in the
 * pages in use, and anywhere), from a few bytes to whole pages, and the
 * helpers carry on with random lock calls on the old files and a new one.
 * They must not crash or hang, and every call must return 0 or a documented
 * errno.  qnxcompat_verify() may then report the registry inconsistent (the
 * output says what it said), but a new process must still be able to lock a
 * new file, and another must see and respect that lock.
 *
 * Natively there is no registry: the test only shows the Linux expectation
 * (nobody's F_GETLK does see root's kernel lock).
 *
 * Helper modes (this binary re-executed):
 *     t_hostile --nobody FILE FLOCKFILE REG     the unprivileged child
 *     t_hostile --use FILE                      lock once (planted segments)
 *     t_hostile --worker FILE SEED NOPS         a scribble-round helper
 *     t_hostile --newfile FILE                  lock a new file, check a fork
 *     t_hostile --nobody-kernel FILE whole|exact START LEN   hold a kernel
 *                                               read lock (run as nobody)
 *     t_hostile --flock-holder FILE             flock, report the token
 */
#include <grp.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/time.h>

#include "qtest.h"

#define NOBODY 65534
#define HDR_PAGE 4096

/* ------------------------------------------------------------------------ */
/* Helpers: this binary re-executed, with pipes on 0, 1 and 2 (qtest_spawn)  */
/* ------------------------------------------------------------------------ */

/* Helpers that are refused the registry (another user's, or a planted one)
 * test what they do with kernel locks, so they opt into the kernel fallback;
 * without it a refused registry fails every lock call (fail closed), which
 * refuses_planted() checks too. */
static int spawn_fallback = 1;

/* In the forked helper, before the exec: die with the test, and drop to
 * nobody if *arg. */
static void helper_setup(void *arg)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (*(const int *)arg &&
        (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
        _exit(96);
}

/* This binary re-executed with argv, optionally as nobody, with
 * QNXCOMPAT_REGISTRY=registry (NULL: unchanged). */
static qtest_helper spawn(char *const *argv, const char *registry,
                          int as_nobody)
{
    char reg[300];
    char *env[3];
    int n = 0;
    if (registry) {
        snprintf(reg, sizeof reg, "QNXCOMPAT_REGISTRY=%s", registry);
        env[n++] = reg;
    }
    env[n++] = (registry || as_nobody) && spawn_fallback
                   ? "QNXCOMPAT_FALLBACK=kernel"
                   : "QNXCOMPAT_FALLBACK";
    env[n] = NULL;
    return qtest_spawn_after(NULL, argv, env, helper_setup, &as_nobody);
}

/* "KEY value" line from helper output: value as long, or LONG_MIN. */
#define out_val(out, key) ((long)qtest_out_val((out), (key), LONG_MIN))

static const char *registry_name(void)
{
    const char *r = getenv("QNXCOMPAT_REGISTRY");
    static char def[64];
    if (r && *r)
        return r;
    snprintf(def, sizeof def, "qnxcompat-v1-%d", (int)geteuid());
    return def;
}

/* ------------------------------------------------------------------------ */
/* The unprivileged child                                                    */
/* ------------------------------------------------------------------------ */

static void say(const char *key, long v) { qtest_print("%s %ld", key, v); }

/* result of a call as a number: 0, or -errno */
static long res(int r, int e) { return r == 0 ? 0 : r == -1 ? -e : -9999; }

static int nobody_main(const char *file, const char *flfile, const char *reg)
{
    say("UID", (long)getuid());
    say("SHIM", qtest_get_verify() != NULL);
    int fd = open(file, O_RDWR);
    int fg = open(flfile, O_RDWR);
    if (fd < 0 || fg < 0) {
        say("OPEN", -errno);
        return 1;
    }
    /* what can it see? */
    static const off_t starts[] = {0, 20, 40};
    static const char *keys[] = {"GETLK0", "GETLK20", "GETLK40"};
    for (int i = 0; i < 3; i++) {
        struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, starts[i], 10);
        int r = fcntl(fd, F_GETLK, &fl);
        say(keys[i], r == 0 ? fl.l_type : res(r, errno));
    }
    struct flock ofl = qtest_fl(F_WRLCK, SEEK_SET, 0, 100);
    ofl.l_pid = 0;
    int r = fcntl(fd, F_OFD_GETLK, &ofl);
    say("OFDGETLK", r == 0 ? ofl.l_type : res(r, errno));
    /* over the whole file it meets root's open-file token (a kernel OFD
     * lock near 2^63 - 2^32, documented): for the report only */
    ofl = qtest_fl(F_WRLCK, SEEK_SET, 0, 0);
    r = fcntl(fd, F_OFD_GETLK, &ofl);
    say("WHOLEGETLK", r == 0 ? ofl.l_type : res(r, errno));
    say("WHOLEGETLKSTART", r == 0 ? (long)ofl.l_start : 0);
    /* can it take what root holds, or remove it? */
    r = setlk(fd, F_WRLCK, 0, 10);
    say("SETLK0", res(r, errno));
    r = setlk(fd, F_WRLCK, 0, 100);
    say("SETLKALL", res(r, errno));
    r = setlk(fd, F_WRLCK, 0, 0);
    say("SETLKWHOLE", res(r, errno));
    r = unlock(fd, 0, 0);
    say("UNLOCKALL", res(r, errno));
    struct flock u = qtest_fl(F_UNLCK, SEEK_SET, 0, 0);
    u.l_pid = 0;
    r = fcntl(fd, F_OFD_SETLK, &u);
    say("OFDUNLOCK", res(r, errno));
    lseek(fd, 0, SEEK_SET);
    r = lockf(fd, F_TLOCK, 100);
    say("LOCKF", res(r, errno));
    lseek(fd, 0, SEEK_SET);
    lockf(fd, F_ULOCK, 0);
    r = flock(fg, LOCK_EX | LOCK_NB);
    say("FLOCK", res(r, errno));
    r = flock(fg, LOCK_UN);
    say("FLOCKUN", res(r, errno));
    /* the segment itself */
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/%s", reg);
    static const int modes[] = {O_RDONLY, O_WRONLY, O_RDWR};
    static const char *okeys[] = {"OPENR", "OPENW", "OPENRW"};
    for (int i = 0; i < 3; i++) {
        int s = open(path, modes[i]);
        say(okeys[i], s >= 0 ? 0 : -errno);
        if (s >= 0)
            close(s);
    }
    r = open(path, O_RDWR | O_TRUNC);
    say("OPENTRUNC", r >= 0 ? 0 : -errno);
    r = unlink(path);
    say("UNLINK", res(r, errno));
    char other[300];
    snprintf(other, sizeof other, "%s-renamed", path);
    r = rename(path, other);
    say("RENAME", res(r, errno));
    r = truncate(path, 0);
    say("TRUNCATE", res(r, errno));
    qtest_verify_fn vf = qtest_get_verify();
    char msg[200] = "";
    say("VERIFY", vf ? vf(reg, msg, sizeof msg) : -1);
    say("VERIFYNULL", vf ? vf(NULL, msg, sizeof msg) : -1);
    /* plant a forged registry and a symlink for root */
    struct stat st;
    off_t size = stat(path, &st) == 0 ? st.st_size : 8753152;
    char forged[300], link[300];
    snprintf(forged, sizeof forged, "%s-forged", path);
    snprintf(link, sizeof link, "%s-link", path);
    int ff = open(forged, O_RDWR | O_CREAT | O_EXCL, 0600);
    say("FORGE", ff >= 0 ? 0 : -errno);
    if (ff >= 0) {
        unsigned char hdr[64];
        memset(hdr, 0, sizeof hdr);
        memcpy(hdr, "QNXCREG1", 8);
        uint32_t v = 1;
        memcpy(hdr + 8, &v, 4);
        if (ftruncate(ff, size) != 0 || pwrite(ff, hdr, sizeof hdr, 0) != 64)
            say("FORGEWRITE", -errno);
        close(ff);
    }
    return 0;
}

/* As nobody (so with kernel locks): hold a read lock on FILE, either a
 * POSIX whole-file one ("whole") or an OFD one on [start, start+len), until
 * stdin closes. */
static int nobody_kernel_main(const char *file, const char *mode,
                              long long start, long long len)
{
    int fd = open(file, O_RDONLY);
    if (fd < 0)
        return 2;
    int whole = strcmp(mode, "whole") == 0;
    struct flock fl = qtest_fl(F_RDLCK, SEEK_SET, whole ? 0 : start,
                               whole ? 0 : len);
    fl.l_pid = 0;
    int r = fcntl(fd, whole ? F_SETLK : F_OFD_SETLK, &fl);
    say("HELD", res(r, errno));
    char b;
    while (read(0, &b, 1) > 0)
        ;
    return 0;
}

/* Take flock(LOCK_EX) on FILE and report the open file's token (a kernel
 * OFD lock listed in /proc/self/fdinfo), then wait to be killed. */
static int flock_holder_main(const char *file)
{
    int fd = open(file, O_RDWR);
    if (fd < 0)
        return 2;
    int r = flock(fd, LOCK_EX);
    say("FLOCK", res(r, errno));
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    char *t = qtest_slurp(path);
    long long a = -1, b = -1;
    for (char *l = strstr(t, "lock:"); l; l = strstr(l + 1, "lock:")) {
        char kind[16], adv[16], rw[16], dev[32];
        int id, pid;
        if (sscanf(l, "lock: %d: %15s %15s %15s %d %31s %lld %lld", &id, kind,
                   adv, rw, &pid, dev, &a, &b) == 8)
            break;
        a = b = -1;
    }
    free(t);
    qtest_print("TOKEN %lld", a);
    qtest_print("TOKENLEN %lld", a >= 0 ? b - a + 1 : -1);
    for (;;)
        pause();
}

/* Lock once (in a segment nobody planted) and say what happened. */
static int use_main(const char *file)
{
    int fd = open(file, O_RDWR);
    if (fd < 0)
        return 2;
    int r = setlk(fd, F_WRLCK, 0, 10);
    say("SETLK", res(r, errno));
    r = unlock(fd, 0, 10);
    say("UNLOCK", res(r, errno));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Scribble-round helpers                                                    */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t ticks;
static void on_tick(int sig)
{
    (void)sig;
    ticks++;
}

static void tick(int on)
{
    struct itimerval it = {{0, on ? 20000 : 0}, {0, on ? 20000 : 0}};
    setitimer(ITIMER_REAL, &it, NULL);
}

/* Take some locks, say "R", wait for a line on stdin, then make nops random
 * calls on the shared file, a private one and a new one, reporting counts
 * ("OK n", "E<errno> n") and every call with an errno outside the set
 * ("BAD ..."). */
static int worker_main(const char *file, unsigned long long seed, int nops)
{
    qtest_rng = seed ? seed : 1;
    qtest_on_signal(SIGALRM, on_tick, 0);
    alarm(0);
    int fd = open(file, O_RDWR);
    int fd2 = open(file, O_RDWR);
    char priv[64];
    snprintf(priv, sizeof priv, "/tmp/qtest-hostile-%d", (int)getpid());
    int pf = open(priv, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || fd2 < 0 || pf < 0)
        return 2;
    unlink(priv);
    for (int i = 0; i < 40; i++) {
        int s = qtest_rnd_below(4000);
        setlk(fd, qtest_rnd_below(2) ? F_WRLCK : F_RDLCK, s, 1 + qtest_rnd_below(30));
    }
    for (int i = 0; i < 8; i++) {
        struct flock o = qtest_fl(F_WRLCK, SEEK_SET, 5000 + 50 * i, 20);
        o.l_pid = 0;
        fcntl(fd2, F_OFD_SETLK, &o);
    }
    flock(pf, LOCK_EX);
    qtest_print("R");
    char line[16];
    ssize_t n = read(0, line, sizeof line);
    if (n <= 0)
        return 3;
    snprintf(priv, sizeof priv, "/tmp/qtest-hostile-%d-new", (int)getpid());
    int nf = open(priv, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (nf < 0)
        return 4;
    unlink(priv);
    int pool[] = {fd, fd2, pf, nf};
    long ok = 0, bad = 0, by[140];
    memset(by, 0, sizeof by);
    for (int i = 0; i < nops; i++) {
        int f = pool[qtest_rnd_below(4)];
        int k = qtest_rnd_below(10);
        int r, e;
        char what[120];
        int s = qtest_rnd_below(6000), len = qtest_rnd_below(40);
        if (k < 6) {
            static const int cmds[] = {F_SETLK, F_SETLKW, F_GETLK,
                                       F_OFD_SETLK, F_OFD_SETLKW, F_OFD_GETLK};
            int cmd = cmds[qtest_rnd_below(6)];
            short type = (short[]){F_RDLCK, F_WRLCK, F_UNLCK,
                                   0x1000 | F_WRLCK}[qtest_rnd_below(4)];
            if ((cmd == F_GETLK || cmd == F_OFD_GETLK) && type == F_UNLCK)
                type = F_WRLCK;
            struct flock fl = qtest_fl(type, SEEK_SET, s, len);
            fl.l_pid = 0;
            snprintf(what, sizeof what, "fcntl(cmd %d, type %#x, %d, %d)", cmd,
                     (unsigned)type, s, len);
            int blocking = cmd == F_SETLKW || cmd == F_OFD_SETLKW;
            if (blocking)
                tick(1);
            errno = 0;
            r = fcntl(f, cmd, &fl);
            e = errno;
            if (blocking)
                tick(0);
        } else if (k < 8) {
            int func = qtest_rnd_below(4);
            lseek(f, s, SEEK_SET);
            snprintf(what, sizeof what, "lockf(%d, %d) at %d", func, len, s);
            if (func == F_LOCK)
                tick(1);
            errno = 0;
            r = lockf(f, func, len);
            e = errno;
            if (func == F_LOCK)
                tick(0);
        } else {
            int op = (int[]){LOCK_SH, LOCK_EX, LOCK_UN, LOCK_SH | LOCK_NB,
                             LOCK_EX | LOCK_NB}[qtest_rnd_below(5)];
            snprintf(what, sizeof what, "flock(%#x)", (unsigned)op);
            if (!(op & LOCK_NB))
                tick(1);
            errno = 0;
            r = flock(f, op);
            e = errno;
            if (!(op & LOCK_NB))
                tick(0);
        }
        if (r == 0) {
            ok++;
        } else if (r == -1 && qtest_lock_errno_ok(e)) {
            by[e]++;
        } else {
            if (bad++ < 5)
                qtest_print("BAD %s = %d %s", what, r,
                            r == -1 ? qtest_errname(e) : "");
        }
    }
    qtest_print("OK %ld", ok);
    for (int e = 0; e < 140; e++)
        if (by[e])
            qtest_print("E%d %ld", e, by[e]);
    qtest_print("BADCOUNT %ld", bad);
    return 0;
}

/* A new file: lock it, and check that a forked process sees and respects
 * the lock, and gets it once it is released. */
static int newfile_main(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0)
        return 2;
    int r = setlk(fd, F_WRLCK, 0, 10);
    say("LOCK", res(r, errno));
    int p[2], q[2];
    if (pipe(p) || pipe(q))
        return 3;
    pid_t c = fork();
    if (c == 0) {
        struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 100);
        int g = fcntl(fd, F_GETLK, &fl);
        say("CHILDGETLK", g == 0 ? fl.l_type : res(g, errno));
        say("CHILDGETPID", g == 0 ? fl.l_pid : 0);
        g = setlk(fd, F_WRLCK, 5, 1);
        say("CHILDSETLK", res(g, errno));
        char b;
        if (write(p[1], "x", 1) != 1 || read(q[0], &b, 1) != 1)
            _exit(5);
        g = setlk(fd, F_WRLCK, 0, 10);
        say("CHILDAFTER", res(g, errno));
        unlock(fd, 0, 10);
        _exit(0);
    }
    char b;
    if (read(p[0], &b, 1) != 1)
        return 4;
    r = unlock(fd, 0, 10);
    say("UNLOCK", res(r, errno));
    if (write(q[1], "y", 1) != 1)
        return 5;
    int st;
    waitpid(c, &st, 0);
    say("CHILDSTATUS", st);
    say("PARENTPID", (long)getpid());
    close(fd);
    unlink(path);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Part 1: another user                                                      */
/* ------------------------------------------------------------------------ */

static const char *file_f, *file_g;
static int fd_f, fd_g, fd_f2;

static void check_root_locks(const char *when)
{
    struct flock fl;
    int r = qtest_probe_getlk(fd_f, F_WRLCK, 0, 10, &fl);
    CHECK(r == 0 && fl.l_type == F_WRLCK && fl.l_start == 0 && fl.l_len == 10 &&
              fl.l_pid == getpid(),
          "%s: root's write lock [0,10): probe got rc %d {%s, %lld, %lld, pid "
          "%d}", when, r, qtest_typename(fl.l_type), (long long)fl.l_start,
          (long long)fl.l_len, (int)fl.l_pid);
    r = qtest_probe_getlk(fd_f, F_WRLCK, 20, 10, &fl);
    CHECK(r == 0 && fl.l_type == F_RDLCK && fl.l_pid == getpid(),
          "%s: root's read lock [20,30): probe got rc %d {%s, pid %d}", when, r,
          qtest_typename(fl.l_type), (int)fl.l_pid);
    r = qtest_probe_getlk(fd_f, F_WRLCK, 40, 10, &fl);
    CHECK(r == 0 && fl.l_type == F_WRLCK && fl.l_pid == -1,
          "%s: root's OFD lock [40,50): probe got rc %d {%s, pid %d}", when, r,
          qtest_typename(fl.l_type), (int)fl.l_pid);
    /* the flock: a probe with its own open file cannot get LOCK_EX */
    r = qtest_probe_path(file_g, QTEST_BY_FLOCK, F_WRLCK, 0, 0);
    CHECK(r == EWOULDBLOCK, "%s: root's flock on the second file: a probe's "
          "LOCK_EX|LOCK_NB gave %s", when,
          r < 0 ? "probe died" : r == 0 ? "0" : qtest_errname(r));
}

/* A root helper told to use a planted segment: one refusal line naming
 * `reason`, kernel locks, and the planted thing unchanged. */
static void refuses_planted(const char *name, const char *reason,
                            const char *what)
{
    char *argv[] = {"t_hostile", "--use", (char *)file_f, NULL};
    qtest_helper h = spawn(argv, name, 0);
    char out[1024] = "", err[1024] = "", e1[1100];
    int st = qtest_helper_finish(&h, 10000, out, sizeof out, err, sizeof err);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    CHECK(qtest_exited0(st), "%s: root helper %s", what, d);
    CHECK(qtest_count_char(err, '\n') == 1 &&
              strstr(err, "qnxcompat: not using lock registry ") == err &&
              strstr(err, reason) != NULL &&
              strstr(err, "; falling back to native kernel locks\n") != NULL,
          "%s: expected one refusal line mentioning \"%s\", got \"%s\"", what,
          reason, qtest_oneline(err, e1, sizeof e1));
    /* root holds [0,10): with the kernel mirror on, in the kernel too */
    long want = qtest_kernel_sees() ? -EAGAIN : 0;
    CHECK(out_val(out, "SETLK") == want && out_val(out, "UNLOCK") == 0,
          "%s: root helper's kernel locks: SETLK %ld (expected %ld: root's "
          "[0,10) is %s) UNLOCK %ld", what, out_val(out, "SETLK"), want,
          want ? "a kernel lock too (mirror on)" : "in the registry only",
          out_val(out, "UNLOCK"));
    qtest_print("hostile: %s: %s", what, qtest_oneline(err, e1, sizeof e1));
    /* Without the opt-in, the same helper fails closed. */
    spawn_fallback = 0;
    h = spawn(argv, name, 0);
    spawn_fallback = 1;
    out[0] = err[0] = 0;
    st = qtest_helper_finish(&h, 10000, out, sizeof out, err, sizeof err);
    CHECK(qtest_exited0(st) && out_val(out, "SETLK") == -ENOLCK && qtest_count_char(err, '\n') == 1 &&
              strstr(err, "lock calls fail with ENOLCK") != NULL,
          "%s without QNXCOMPAT_FALLBACK: want F_SETLK = -ENOLCK and one line, got SETLK %ld, \"%s\"", what,
          out_val(out, "SETLK"), qtest_oneline(err, e1, sizeof e1));
}

static void other_user(void)
{
    if (geteuid() != 0) {
        qtest_print("hostile: not root: the other-user checks are skipped");
        return;
    }
    const char *reg = registry_name();
    char segpath[256];
    snprintf(segpath, sizeof segpath, "/dev/shm/%s", reg);

    /* root's locks */
    CHECK_OK(setlk(fd_f, F_WRLCK, 0, 10));
    CHECK_OK(setlk(fd_f, F_RDLCK, 20, 10));
    struct flock o = qtest_fl(F_WRLCK, SEEK_SET, 40, 10);
    o.l_pid = 0;
    CHECK_OK(fcntl(fd_f2, F_OFD_SETLK, &o));
    CHECK_OK(flock(fd_g, LOCK_EX));
    check_root_locks("before");
    struct stat before;
    CHECK(stat(segpath, &before) == 0 && before.st_uid == 0 &&
              (before.st_mode & 0777) == 0600,
          "registry %s: uid %d mode %o", segpath, (int)before.st_uid,
          (unsigned)(before.st_mode & 0777));

    /* planted things must not exist yet; clean-up covers them */
    char forged[300], link[300], victim[64];
    snprintf(forged, sizeof forged, "%s-forged", segpath);
    snprintf(link, sizeof link, "%s-link", segpath);
    snprintf(victim, sizeof victim, "/tmp/qtest-hostile-victim-%d",
             (int)getpid());
    qtest_remove_path(forged);
    qtest_track_path(forged);
    qtest_track_path(link);
    qtest_track_path(victim);

    char *argv[] = {"t_hostile", "--nobody", (char *)file_f, (char *)file_g,
                    (char *)reg, NULL};
    qtest_helper h = spawn(argv, NULL, 1);
    char out[4096] = "", err[2048] = "", e1[2100], o1[4100];
    int st = qtest_helper_finish(&h, 15000, out, sizeof out, err, sizeof err);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    CHECK(qtest_exited0(st), "nobody helper %s; its output: %s", d,
          qtest_oneline(out, o1, sizeof o1));
    CHECK(out_val(out, "UID") == NOBODY, "helper uid %ld", out_val(out, "UID"));
    CHECK(out_val(out, "SHIM") == 1, "the shim is not loaded in the nobody "
          "helper (SHIM %ld): the checks below mean nothing",
          out_val(out, "SHIM"));
    /* one refusal line */
    char prefix[300];
    snprintf(prefix, sizeof prefix, "qnxcompat: not using lock registry %s: ",
             segpath);
    int one = qtest_count_char(err, '\n') == 1 &&
              strncmp(err, prefix, strlen(prefix)) == 0 &&
              strstr(err, "; falling back to native kernel locks\n") != NULL;
    CHECK(one, "nobody: expected one refusal line starting \"%s\", got \"%s\"",
          prefix, qtest_oneline(err, e1, sizeof e1));
    /* the reason: the segment is root's (it is seen as EACCES when the
     * library cannot even open it, or as "owned by uid 0") */
    CHECK(strstr(err, "owned by uid 0") || strstr(err, "EACCES"),
          "nobody: the refusal does not say the segment is root's: \"%s\"",
          qtest_oneline(err, e1, sizeof e1));
    qtest_print("hostile: nobody was told: %s", qtest_oneline(err, e1, sizeof e1));
    /* its own calls are kernel locks: with the mirror off it sees none of
     * root's locks, with the mirror on it sees each of them */
    int sees = qtest_kernel_sees();
    CHECK(sees ? out_val(out, "GETLK0") == F_WRLCK &&
                     out_val(out, "GETLK20") == F_RDLCK &&
                     out_val(out, "GETLK40") == F_WRLCK &&
                     out_val(out, "OFDGETLK") == F_WRLCK
               : out_val(out, "GETLK0") == F_UNLCK &&
                     out_val(out, "GETLK20") == F_UNLCK &&
                     out_val(out, "GETLK40") == F_UNLCK &&
                     out_val(out, "OFDGETLK") == F_UNLCK,
          "nobody's F_GETLK (mirror %s): [0,10) %ld, [20,30) %ld, [40,50) "
          "%ld, OFD %ld (F_RDLCK %d, F_WRLCK %d, F_UNLCK %d)",
          sees ? "on: expected root's locks" : "off: expected none",
          out_val(out, "GETLK0"), out_val(out, "GETLK20"),
          out_val(out, "GETLK40"), out_val(out, "OFDGETLK"), F_RDLCK, F_WRLCK,
          F_UNLCK);
    qtest_print("hostile: nobody's F_OFD_GETLK over the whole file: %s "
                "(start %ld); its F_SETLK over the whole file: %ld",
                out_val(out, "WHOLEGETLK") == F_UNLCK ? "nothing"
                : out_val(out, "WHOLEGETLK") == F_WRLCK ? "a write lock"
                                                         : "other",
                out_val(out, "WHOLEGETLKSTART"), out_val(out, "SETLKWHOLE"));
    long busy = sees ? -EAGAIN : 0, lockf_r = out_val(out, "LOCKF");
    CHECK(out_val(out, "SETLK0") == busy && out_val(out, "SETLKALL") == busy &&
              out_val(out, "UNLOCKALL") == 0 && out_val(out, "OFDUNLOCK") == 0 &&
              (lockf_r == busy || (sees && lockf_r == -EACCES)) &&
              out_val(out, "FLOCK") == (sees ? -EWOULDBLOCK : 0) &&
              out_val(out, "FLOCKUN") == 0,
          "nobody's kernel locks (mirror %s): SETLK0 %ld SETLKALL %ld "
          "UNLOCKALL %ld OFDUNLOCK %ld LOCKF %ld FLOCK %ld FLOCKUN %ld",
          sees ? "on: conflicts are -EAGAIN/-EWOULDBLOCK" : "off: all 0",
          out_val(out, "SETLK0"), out_val(out, "SETLKALL"),
          out_val(out, "UNLOCKALL"), out_val(out, "OFDUNLOCK"),
          out_val(out, "LOCKF"), out_val(out, "FLOCK"),
          out_val(out, "FLOCKUN"));
    /* the segment is closed to it */
    CHECK(out_val(out, "OPENR") == -EACCES && out_val(out, "OPENW") == -EACCES &&
              out_val(out, "OPENRW") == -EACCES &&
              out_val(out, "OPENTRUNC") == -EACCES,
          "nobody opening %s: read %ld write %ld rw %ld trunc %ld (expected "
          "-%d EACCES)", segpath, out_val(out, "OPENR"), out_val(out, "OPENW"),
          out_val(out, "OPENRW"), out_val(out, "OPENTRUNC"), EACCES);
    CHECK(out_val(out, "UNLINK") < 0 && out_val(out, "RENAME") < 0 &&
              out_val(out, "TRUNCATE") < 0,
          "nobody could unlink (%ld), rename (%ld) or truncate (%ld) the "
          "registry", out_val(out, "UNLINK"), out_val(out, "RENAME"),
          out_val(out, "TRUNCATE"));
    CHECK(out_val(out, "VERIFY") == 2 && out_val(out, "VERIFYNULL") == 2,
          "nobody's qnxcompat_verify: %ld / %ld, expected 2 (cannot attach)",
          out_val(out, "VERIFY"), out_val(out, "VERIFYNULL"));
    struct stat after;
    CHECK(stat(segpath, &after) == 0 && after.st_ino == before.st_ino &&
              after.st_size == before.st_size && after.st_uid == 0 &&
              (after.st_mode & 0777) == 0600,
          "registry %s changed: ino %lu -> %lu, size %lld -> %lld", segpath,
          (unsigned long)before.st_ino, (unsigned long)after.st_ino,
          (long long)before.st_size, (long long)after.st_size);
    /* root's locks are all still there */
    check_root_locks("after nobody");
    qtest_verify_fn vf = qtest_get_verify();
    char msg[256] = "";
    int vr = vf ? vf(NULL, msg, sizeof msg) : -1;
    CHECK(vr == 0, "qnxcompat_verify after nobody: %d %s", vr, msg);

    /* planted segments */
    CHECK(out_val(out, "FORGE") == 0, "nobody could not plant %s (%ld)",
          forged, out_val(out, "FORGE"));
    if (out_val(out, "FORGE") == 0) {
        struct stat fs0, fs1;
        unsigned char h0[64], h1[64];
        int ok0 = stat(forged, &fs0) == 0;
        int f0 = open(forged, O_RDONLY);
        ok0 = ok0 && f0 >= 0 && pread(f0, h0, sizeof h0, 0) == 64;
        if (f0 >= 0)
            close(f0);
        char name[300];
        snprintf(name, sizeof name, "%s-forged", reg);
        refuses_planted(name, "owned by uid 65534", "a segment forged by nobody");
        int f1 = open(forged, O_RDONLY);
        int ok1 = stat(forged, &fs1) == 0 && f1 >= 0 &&
                  pread(f1, h1, sizeof h1, 0) == 64;
        if (f1 >= 0)
            close(f1);
        CHECK(ok0 && ok1 && fs0.st_uid == NOBODY && fs1.st_uid == NOBODY &&
                  fs0.st_size == fs1.st_size && fs0.st_mode == fs1.st_mode &&
                  memcmp(h0, h1, sizeof h0) == 0,
              "the forged segment was changed by root's process");
    }
    qtest_remove_path(forged);
    /* a symlink planted by nobody, pointing at a root-owned file */
    int vf_fd = open(victim, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (vf_fd < 0)
        qtest_fatal("create victim");
    if (write(vf_fd, "precious\n", 9) != 9)
        qtest_fatal("write victim");
    close(vf_fd);
    pid_t pl = fork();
    if (pl == 0) {
        if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
            _exit(2);
        _exit(symlink(victim, link) == 0 ? 0 : 3);
    }
    st = qtest_wait(pl, 5000);
    CHECK(qtest_exited0(st), "nobody could not plant the symlink %s (status %#x)",
          link, st);
    if (qtest_exited0(st)) {
        char name[300];
        snprintf(name, sizeof name, "%s-link", reg);
        /* the reason is O_NOFOLLOW's ELOOP (the message may not name it) */
        refuses_planted(name, "cannot open or map it: ",
                        "a symlink planted by nobody");
        struct stat vs;
        char *text = qtest_slurp(victim);
        CHECK(stat(victim, &vs) == 0 && vs.st_size == 9 &&
                  strcmp(text, "precious\n") == 0 && vs.st_uid == 0,
              "the symlink's target %s was changed: size %lld", victim,
              (long long)vs.st_size);
        free(text);
    }
    qtest_remove_path(link);
    qtest_remove_path(victim);

    CHECK_OK(unlock(fd_f, 0, 0));
    o.l_type = F_UNLCK;
    CHECK_OK(fcntl(fd_f2, F_OFD_SETLK, &o));
    CHECK_OK(flock(fd_g, LOCK_UN));
}

/* Kernel locks of another user against root's open-file owners (flock,
 * OFD): each open-file owner keeps a kernel OFD lock, its "token", near
 * 2^63 - 2^32, and probes the token to tell whether the owner lives.
 *   deny:   nobody holds a kernel whole-file read lock; with the mirror
 *           off root's flock and OFD locks on the file must still work (the
 *           registry does not see kernel locks), a blocking flock must not
 *           fail EWOULDBLOCK; with the mirror on they are refused (a real
 *           conflict: EWOULDBLOCK, EAGAIN);
 *   revive: root's flock holder is SIGKILLed, then nobody holds a kernel
 *           lock over its token (a whole-file read lock, or an OFD read
 *           lock on exactly the token's range): the dead holder's flock
 *           must still be reaped, i.e. root gets LOCK_EX within 200 ms
 *           (with the mirror on: refused while nobody's lock, a real
 *           conflict, stands; granted once it is gone). */
static void token_attacks(void)
{
    const char *path;
    int tf = qtest_tmpfile(100, &path);
    if (fchmod(tf, 0666) != 0)
        qtest_fatal("fchmod");
    close(tf);
    char e1[1100];

    /* deny */
    {
        char *argv[] = {"t_hostile", "--nobody-kernel", (char *)path, "whole",
                        "0", "0", NULL};
        qtest_helper n = spawn(argv, NULL, 1);
        char held[64];
        qtest_read_until(n.out, held, sizeof held, "\n", 5000);
        CHECK(out_val(held, "HELD") == 0, "deny: nobody's whole-file kernel "
              "read lock: %s", held);
        int sees = qtest_kernel_sees();
        pid_t c = fork();
        if (c == 0 && sees) {
            /* the mirror: nobody's kernel lock is a real conflict */
            alarm(5);
            int fd = open(path, O_RDWR);
            CHECK_ERR(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
            struct flock o = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
            o.l_pid = 0;
            CHECK_ERR2(fcntl(fd, F_OFD_SETLK, &o), EAGAIN, EACCES);
            _exit(0);
        }
        if (c == 0) {
            alarm(5);
            int fd = open(path, O_RDWR);
            errno = 0;
            int r1 = flock(fd, LOCK_EX | LOCK_NB);
            int e1_ = errno;
            flock(fd, LOCK_UN);
            errno = 0;
            int r2 = flock(fd, LOCK_EX); /* blocking */
            int e2 = errno;
            flock(fd, LOCK_UN);
            struct flock o = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
            o.l_pid = 0;
            errno = 0;
            int r3 = fcntl(fd, F_OFD_SETLK, &o);
            int e3 = errno;
            CHECK(r1 == 0, "deny: root's flock(LOCK_EX|LOCK_NB) fails (%d %s) "
                  "while another user holds a kernel read lock on the whole "
                  "file", r1, qtest_errname(e1_));
            CHECK(r2 == 0, "deny: root's blocking flock(LOCK_EX) returned %d "
                  "%s while another user holds a kernel read lock on the "
                  "whole file%s", r2, qtest_errname(e2),
                  r2 == -1 && e2 == EWOULDBLOCK
                      ? " (a blocking flock never fails with EWOULDBLOCK)" : "");
            CHECK(r3 == 0, "deny: root's F_OFD_SETLK [0,10) fails (%d %s) "
                  "while another user holds a kernel read lock on the whole "
                  "file", r3, qtest_errname(e3));
            _exit(0);
        }
        int st = qtest_wait(c, 8000);
        CHECK(qtest_exited0(st), "deny: root's prober status %#x (hung?)", st);
        char out[256] = "", err[1024] = "";
        qtest_helper_finish(&n, 5000, out, sizeof out, err, sizeof err);
    }

    /* revive: twice, with each kind of kernel lock over the token */
    /* With the mirror on there is no token: only the whole-file lock. */
    for (int how = 0; how < (qtest_mirror_on() ? 1 : 2); how++) {
        const char *what = how == 0 ? "a whole-file POSIX read lock"
                                    : "an OFD read lock on exactly the token";
        char *hargv[] = {"t_hostile", "--flock-holder", (char *)path, NULL};
        qtest_helper a = spawn(hargv, NULL, 0);
        char tok[256];
        qtest_read_until(a.out, tok, sizeof tok, "TOKENLEN", 5000);
        long long start = -1, len = -1;
        char *p = strstr(tok, "TOKEN ");
        if (p)
            start = atoll(p + 6);
        p = strstr(tok, "TOKENLEN ");
        if (p)
            len = atoll(p + 9);
        CHECK(out_val(tok, "FLOCK") == 0 && (qtest_mirror_on() || (start > 0 && len > 0)),
              "revive: root's flock holder: %s", qtest_oneline(tok, e1, sizeof e1));
        qtest_helper_kill(&a);

        char sbuf[32], lbuf[32];
        snprintf(sbuf, sizeof sbuf, "%lld", start);
        snprintf(lbuf, sizeof lbuf, "%lld", len);
        char *nargv[] = {"t_hostile", "--nobody-kernel", (char *)path,
                         how == 0 ? "whole" : "exact", sbuf, lbuf, NULL};
        qtest_helper n = spawn(nargv, NULL, 1);
        char held[64];
        qtest_read_until(n.out, held, sizeof held, "\n", 5000);
        CHECK(out_val(held, "HELD") == 0, "revive: nobody's kernel lock (%s): "
              "%s", what, held);

        int fd = qtest_open(path, O_RDWR);
        double t0 = qtest_now_ms();
        int r;
        int e = 0;
        if (qtest_kernel_sees()) {
            /* the mirror: nobody's lock over the file is a real conflict */
            CHECK_ERR(r = flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
        } else {
            while ((r = flock(fd, LOCK_EX | LOCK_NB)) != 0 &&
                   qtest_now_ms() - t0 < 1000) {
                e = errno;
                qtest_msleep(5);
            }
        }
        double dt = qtest_now_ms() - t0;
        CHECK(qtest_kernel_sees() || (r == 0 && dt <= 200), "revive: the flock of a SIGKILLed root "
              "process is kept alive by another user's %s over its token: "
              "root's LOCK_EX|LOCK_NB %s after %.0f ms (%s)", what,
              r == 0 ? "granted only" : "still refused", dt,
              qtest_errname(e));
        if (r == 0)
            flock(fd, LOCK_UN);
        char out[256] = "", err[256] = "";
        qtest_helper_finish(&n, 5000, out, sizeof out, err, sizeof err);
        /* with nobody's lock gone, the dead holder's flock is reaped */
        t0 = qtest_now_ms();
        while ((r = flock(fd, LOCK_EX | LOCK_NB)) != 0 &&
               qtest_now_ms() - t0 < 1000)
            qtest_msleep(5);
        CHECK(r == 0, "revive: LOCK_EX still refused after nobody let go");
        flock(fd, LOCK_UN);
        close(fd);
    }
    unlink(path);
}

/* ------------------------------------------------------------------------ */
/* Part 2: scribbled contents                                                */
/* ------------------------------------------------------------------------ */

/* Overwrite `count` random spots of the segment beyond the header page: in
 * pages that hold data (most), and anywhere.  big: whole pages instead. */
static long scribble(const char *path, int count, int big, int *pages_used)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    long npages = (long)(st.st_size / 4096);
    long *used = malloc(sizeof *used * (size_t)npages);
    long nused = 0;
    unsigned char page[4096];
    for (long p = 1; p < npages; p++) { /* never the header page */
        if (pread(fd, page, sizeof page, p * 4096) != (ssize_t)sizeof page)
            break;
        for (int i = 0; i < 4096; i++)
            if (page[i]) {
                used[nused++] = p;
                break;
            }
    }
    *pages_used = (int)nused;
    long written = 0;
    for (int k = 0; k < count; k++) {
        long p = nused && qtest_rnd_below(4) ? used[qtest_rnd_below((int)nused)]
                                       : 1 + qtest_rnd_below((int)(npages - 1));
        if (big) {
            int fill = qtest_rnd_below(3);
            for (int i = 0; i < 4096; i++)
                page[i] = fill == 0 ? 0 : fill == 1 ? 0xff : (unsigned char)qtest_rnd();
            written += pwrite(fd, page, 4096, p * 4096) == 4096 ? 4096 : 0;
        } else {
            int len = 1 + qtest_rnd_below(16);
            int off = qtest_rnd_below(4096 - len);
            unsigned char b[16];
            for (int i = 0; i < len; i++)
                b[i] = (unsigned char)qtest_rnd();
            written += pwrite(fd, b, (size_t)len, p * 4096 + off) == len ? len : 0;
        }
    }
    free(used);
    close(fd);
    return written;
}

#define NWORK 4

static void scribble_round(int round, int count, int big)
{
    char reg[200], seg[260], vmsg[256];
    snprintf(reg, sizeof reg, "%s-scribble", registry_name());
    snprintf(seg, sizeof seg, "/dev/shm/%s", reg);
    unlink(seg);
    qtest_track_path(seg);
    const char *path;
    int hf = qtest_tmpfile(8000, &path);
    close(hf);
    qtest_verify_fn vf = qtest_get_verify();

    qtest_helper w[NWORK];
    int ready = 0;
    for (int i = 0; i < NWORK; i++) {
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", qtest_rnd());
        char *argv[] = {"t_hostile", "--worker", (char *)path, seed, "1500",
                        NULL};
        w[i] = spawn(argv, reg, 0);
        char b[8];
        qtest_read_until(w[i].out, b, sizeof b, "R\n", 10000);
        ready += strcmp(b, "R\n") == 0;
    }
    CHECK(ready == NWORK, "round %d: only %d of %d helpers took their locks",
          round, ready, NWORK);
    int v0 = vf ? vf(reg, vmsg, sizeof vmsg) : -1;
    CHECK(v0 == 0, "round %d: registry before scribbling: %d %s", round, v0,
          vmsg);

    int used = 0;
    long bytes = scribble(seg, count, big, &used);
    CHECK(bytes > 0, "round %d: could not scribble on %s", round, seg);
    char m1[256] = "";
    int v1 = vf ? vf(reg, m1, sizeof m1) : -1;

    /* the helpers carry on */
    for (int i = 0; i < NWORK; i++)
        if (write(w[i].in, "go\n", 3) != 3)
            qtest_fatal("write to helper");
    long ok = 0, bad = 0, errs = 0, crashed = 0, hung = 0;
    char errsum[400] = "";
    for (int i = 0; i < NWORK; i++) {
        char out[8192] = "", err[4096] = "", o1[1200], e1[1200];
        int st = qtest_helper_finish(&w[i], 20000, out, sizeof out, err, sizeof err);
        char d[96];
        qtest_describe_status(st, d, sizeof d);
        crashed += st >= 0 && WIFSIGNALED(st);
        hung += st == -1;
        CHECK(qtest_exited0(st), "round %d: helper %d after the scribble: %s; "
              "stdout: %.300s; stderr: %.300s", round, i, d,
              qtest_oneline(out, o1, sizeof o1), qtest_oneline(err, e1, sizeof e1));
        long b = out_val(out, "BADCOUNT");
        CHECK(b == 0, "round %d: helper %d: %ld calls returned an errno "
              "outside the set: %.500s", round, i, b,
              qtest_oneline(out, o1, sizeof o1));
        if (b > 0)
            bad += b;
        long k = out_val(out, "OK");
        if (k > 0)
            ok += k;
        for (int e = 1; e < 140; e++) {
            char key[8];
            snprintf(key, sizeof key, "E%d", e);
            long c = out_val(out, key);
            if (c > 0)
                errs += c;
        }
        if (err[0] && strlen(errsum) + 80 < sizeof errsum) {
            size_t n = strlen(errsum);
            snprintf(errsum + n, sizeof errsum - n, "%s[helper %d] %.120s",
                     n ? " " : "", i, qtest_oneline(err, e1, sizeof e1));
        }
    }
    char m2[256] = "";
    int v2 = vf ? vf(reg, m2, sizeof m2) : -1;

    /* new locks on a new file still work */
    char nfpath[80];
    snprintf(nfpath, sizeof nfpath, "/tmp/qtest-hostile-new-%d-%d",
             (int)getpid(), round);
    char *argv[] = {"t_hostile", "--newfile", nfpath, NULL};
    qtest_helper nh = spawn(argv, reg, 0);
    char out[2048] = "", err[2048] = "", o1[2100], e1[2100];
    int st = qtest_helper_finish(&nh, 15000, out, sizeof out, err, sizeof err);
    unlink(nfpath);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    int works = qtest_exited0(st) && out_val(out, "LOCK") == 0 &&
                out_val(out, "CHILDGETLK") == F_WRLCK &&
                out_val(out, "CHILDGETPID") == out_val(out, "PARENTPID") &&
                out_val(out, "CHILDSETLK") == -EAGAIN &&
                out_val(out, "UNLOCK") == 0 && out_val(out, "CHILDAFTER") == 0 &&
                out_val(out, "CHILDSTATUS") == 0;
    CHECK(works, "round %d: new locks on a new file after the scribble: %s; "
          "%s; stderr: %s", round, d, qtest_oneline(out, o1, sizeof o1),
          qtest_oneline(err, e1, sizeof e1));
    char m3[256] = "";
    int v3 = vf ? vf(reg, m3, sizeof m3) : -1;

    qtest_print("hostile: scribble round %d: %ld %s over %d pages in use: "
                "verify right after: %d (%s)", round, bytes,
                big ? "bytes in whole pages" : "random bytes", used, v1, m1);
    qtest_print("hostile:   %d helpers made %ld calls after it: %ld ok, %ld "
                "documented errors, %ld undocumented, %ld crashed, %ld hung; "
                "verify: %d (%s)", NWORK, ok + errs + bad, ok, errs, bad,
                crashed, hung, v2, m2);
    qtest_print("hostile:   a new file: %s; verify then: %d (%s)%s%s",
                works ? "locks work" : "BROKEN", v3, m3,
                errsum[0] ? "; helpers' stderr: " : "", errsum);
    qtest_remove_path(seg);
    unlink(path);
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc >= 3 && strncmp(argv[1], "--", 2) == 0) {
        alarm(60);
        setvbuf(stdout, NULL, _IONBF, 0);
        if (strcmp(argv[1], "--nobody") == 0 && argc == 5)
            return nobody_main(argv[2], argv[3], argv[4]);
        if (strcmp(argv[1], "--use") == 0)
            return use_main(argv[2]);
        if (strcmp(argv[1], "--worker") == 0 && argc == 5)
            return worker_main(argv[2], strtoull(argv[3], NULL, 0),
                               atoi(argv[4]));
        if (strcmp(argv[1], "--newfile") == 0)
            return newfile_main(argv[2]);
        if (strcmp(argv[1], "--nobody-kernel") == 0 && argc == 6)
            return nobody_kernel_main(argv[2], argv[3], atoll(argv[4]),
                                      atoll(argv[5]));
        if (strcmp(argv[1], "--flock-holder") == 0)
            return flock_holder_main(argv[2]);
        return 97;
    }
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    unsigned long long seed = qtest_seed();

    fd_f = qtest_tmpfile(100, &file_f);
    fd_g = qtest_tmpfile(100, &file_g);
    if (fchmod(fd_f, 0666) != 0 || fchmod(fd_g, 0666) != 0)
        qtest_fatal("fchmod");
    fd_f2 = qtest_open(file_f, O_RDWR);

    if (!qtest_mode_shim()) {
        /* Linux: locks are the kernel's, seen by every user */
        if (geteuid() == 0) {
            CHECK_OK(setlk(fd_f, F_WRLCK, 0, 10));
            pid_t c = fork();
            if (c == 0) {
                if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
                    _exit(2);
                int o = open(file_f, O_RDWR);
                struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
                int r = fcntl(o, F_GETLK, &fl);
                _exit(r == 0 && fl.l_type == F_WRLCK && fl.l_pid == getppid()
                          ? 0 : 3);
            }
            int st = qtest_wait(c, 5000);
            CHECK(qtest_exited0(st), "natively nobody's F_GETLK does not see root's "
                  "kernel lock (status %#x)", st);
            CHECK_OK(unlock(fd_f, 0, 10));
        }
        qtest_print("hostile: the registry checks run under the shim only");
        close(fd_f2);
        close(fd_f);
        close(fd_g);
        return QTEST_DONE();
    }
    qtest_print("hostile: seed %llu", seed);
    other_user();
    if (geteuid() == 0)
        token_attacks();
    static const struct {
        int count, big;
    } rounds[] = {{8, 0}, {64, 0}, {512, 0}, {4096, 0}, {4, 1}, {32, 1}};
    for (size_t i = 0; i < sizeof rounds / sizeof rounds[0]; i++)
        scribble_round((int)i + 1, rounds[i].count, rounds[i].big);
    close(fd_f2);
    close(fd_f);
    close(fd_g);
    return QTEST_DONE();
}
