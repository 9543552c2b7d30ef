/*
 * t_pidns.c - lock owners in several pid namespaces sharing one registry.
 *
 * Processes in different pid namespaces (containers, sandboxes) can share
 * /dev/shm, and so one registry.  A pid means something else in each
 * namespace, and one namespace may not see the processes of another at all:
 * neither may turn into a double grant.
 *
 *   holder in A: a new pid namespace A (with its own /proc) runs a
 *     preloaded holder of F_SETLK write [0,10), at a high pid of A (A's
 *     ns_last_pid is set so that no process of the root namespace has that
 *     pid).  Then, each a freshly exec'd preloaded process:
 *       - one starting in another new namespace B (own /proc; it can see
 *         none of A's processes) must get EAGAIN for [0,10);
 *       - afterwards one in A's own namespace (setns) must get EAGAIN;
 *       - and one in the root namespace must get EAGAIN,
 *     as must a plain forked probe; once the holder exits, [0,10) is free.
 *   two inits: two processes that are both pid 1 of a new namespace, forked
 *     as close together as possible so that they have the same start time
 *     (tried up to 10 times), each take F_SETLK write [0,10): the second
 *     must get EAGAIN (they are two processes, not one owner).
 *
 * Needs root and unshare(CLONE_NEWPID | CLONE_NEWNS); without them it
 * checks a plain two-process conflict and prints SKIP for the rest.  A
 * /proc mounted with hidepid=2 hides nothing from root, so that variant is
 * skipped (SKIP line).  Natively (kernel locks) the expectations are the
 * same.
 *
 * Helper modes (this binary re-executed; LD_PRELOAD and QNXCOMPAT_REGISTRY
 * are inherited, so under the shim each is preloaded):
 *     t_pidns --holder PATH   F_SETLK write [0,10), "LOCKED <rc> <pid>",
 *                             wait for EOF on stdin
 *     t_pidns --probe PATH    "SETLK <0|errno> <pid>" for F_SETLK write
 *                             [0,10) (released again)
 *     t_pidns --init PATH     "READY <pid>", then on a line on stdin do what
 *                             --holder does, "SETLK <0|errno>"; wait for EOF
 */
#include "qtest.h"

#include <sched.h>
#include <sys/mount.h>

static const char *path;

/* ------------------------------------------------------------------------ */
/* Helper side                                                               */
/* ------------------------------------------------------------------------ */

static int helper_main(int argc, char **argv)
{
    alarm(30);
    if (argc < 3)
        return 2;
    if (strcmp(argv[1], "--holder") == 0) {
        int r = qtest_setlk_path(argv[2], 0, 10, 1);
        qtest_print("LOCKED %d %d", r, (int)getpid());
        qtest_wait_eof();
        return 0;
    }
    if (strcmp(argv[1], "--probe") == 0) {
        qtest_print("SETLK %d %d", qtest_setlk_path(argv[2], 0, 10, 0),
                    (int)getpid());
        return 0;
    }
    if (strcmp(argv[1], "--init") == 0) {
        qtest_print("READY %d", (int)getpid());
        char b;
        if (read(0, &b, 1) != 1)
            return 4;
        qtest_print("SETLK %d", qtest_setlk_path(argv[2], 0, 10, 1));
        qtest_wait_eof();
        return 0;
    }
    return 2;
}

/* ------------------------------------------------------------------------ */
/* Namespaces (run in the forked child before the exec)                      */
/* ------------------------------------------------------------------------ */

/* Wait for pid and exit with its status (a launcher or a namespace init).
 * It first closes every descriptor, so that it keeps no pipe end of this
 * or another helper open while it waits. */
_Noreturn static void exit_like(pid_t pid)
{
    close_range(0, ~0U, 0);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

/* Fork; the parent waits for the child and exits like it (exit_like), the
 * child returns.  `err`: the exit status if fork fails. */
static void fork_on(int err)
{
    pid_t c = fork();
    if (c < 0)
        _exit(err);
    if (c > 0)
        exit_like(c);
}

/* Mount a /proc of the current pid namespace in a private mount namespace
 * (unshared before); quietly keeps the old /proc if that fails. */
static void own_proc(void)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

struct ns_spec {
    long last_pid;         /* > 0: set ns_last_pid so the helper gets +1 */
    int as_init;           /* exec the helper as pid 1 itself */
    volatile int *go;      /* not NULL: spin until *go before unsharing */
};

/* before(): unshare a new pid (and mount) namespace; its init (pid 1)
 * mounts its own /proc and either becomes the helper (as_init) or forks
 * it, optionally at a chosen pid.  Every process in between waits for its
 * child and exits with its status, so the helper's end ends the chain. */
static void enter_new_ns(void *arg)
{
    struct ns_spec *s = arg;
    if (s->go)
        while (!*s->go)
            ;
    if (unshare(CLONE_NEWPID | CLONE_NEWNS) != 0)
        _exit(90);
    fork_on(91);
    /* pid 1 of the new namespace */
    own_proc();
    if (s->as_init)
        return;
    if (s->last_pid > 0) {
        int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
        if (fd >= 0) {
            char b[32];
            int n = snprintf(b, sizeof b, "%ld", s->last_pid);
            ssize_t w = write(fd, b, (size_t)n);
            (void)w;
            close(fd);
        }
    }
    fork_on(92);
}

/* before(): join the pid and mount namespaces of host process *arg, and
 * fork the helper into them. */
static void join_ns(void *arg)
{
    pid_t target = *(pid_t *)arg;
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/ns/pid", (int)target);
    int pidfd = open(p, O_RDONLY);
    snprintf(p, sizeof p, "/proc/%d/ns/mnt", (int)target);
    int mntfd = open(p, O_RDONLY);
    if (pidfd < 0 || mntfd < 0 || setns(pidfd, CLONE_NEWPID) != 0 ||
        setns(mntfd, CLONE_NEWNS) != 0)
        _exit(93);
    close(pidfd);
    close(mntfd);
    fork_on(94);
}

/* ------------------------------------------------------------------------ */
/* Test side                                                                 */
/* ------------------------------------------------------------------------ */

/* Parent pid and start time (field 22) of a process, from our /proc. */
static int stat_of(pid_t pid, pid_t *ppid, unsigned long long *start)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    if (qtest_read_file(p, buf, sizeof buf) <= 0)
        return -1;
    char *q = strrchr(buf, ')');
    if (!q)
        return -1;
    char state;
    int pp;
    /* fields 3 (state), 4 (ppid), then 5..21, then 22 */
    if (sscanf(q + 1, " %c %d", &state, &pp) != 2)
        return -1;
    char *f = q + 2;
    for (int i = 3; i < 22 && f; i++) {
        f = strchr(f, ' ');
        if (f)
            f++;
    }
    if (!f)
        return -1;
    if (ppid)
        *ppid = pp;
    if (start)
        *start = strtoull(f, NULL, 10);
    return 0;
}

/* The (host) pid of a child of `parent`, waiting up to 2 s for it. */
static pid_t child_of(pid_t parent)
{
    double end = qtest_now_ms() + 2000;
    do {
        DIR *d = opendir("/proc");
        if (!d)
            return -1;
        struct dirent *e;
        pid_t found = -1;
        while ((e = readdir(d)) != NULL) {
            pid_t p = atoi(e->d_name), pp;
            if (p > 0 && stat_of(p, &pp, NULL) == 0 && pp == parent) {
                found = p;
                break;
            }
        }
        closedir(d);
        if (found > 0)
            return found;
        qtest_msleep(5);
    } while (qtest_now_ms() < end);
    return -1;
}

/* A pid that no process of the root namespace has, high in the range. */
static long free_pid(void)
{
    long max = 32768;
    char *t = qtest_slurp("/proc/sys/kernel/pid_max");
    if (atol(t) > 1000)
        max = atol(t);
    free(t);
    long top = max < 40000 ? max - 1 : 39999;
    for (long p = top - 500 - getpid() % 300; p > 300; p--)
        if (kill((pid_t)p, 0) == -1 && errno == ESRCH &&
            kill((pid_t)p - 1, 0) == -1 && errno == ESRCH)
            return p;
    return 0;
}

/* Run a --probe helper (spawned through before(arg)); returns its result
 * (0 or errno, -1: it failed) and the pid it saw itself as. */
static int run_probe(void (*before)(void *), void *arg, int *its_pid)
{
    char *argv[] = {"t_pidns", "--probe", (char *)path, NULL};
    qtest_helper h = qtest_spawn_after(NULL, argv, NULL, before, arg);
    char out[256] = "";
    qtest_read_until(h.out, out, sizeof out, "SETLK", 8000);
    int st = qtest_helper_finish(&h, 5000, NULL, 0, NULL, 0);
    const char *p = strstr(out, "SETLK ");
    int r = -1, pid = -1;
    if (!qtest_exited0(st) || !p || sscanf(p, "SETLK %d %d", &r, &pid) != 2)
        return -1;
    if (its_pid)
        *its_pid = pid;
    return r;
}

static const char *res(int r)
{
    return r == 0 ? "0 (granted: a double grant)"
                  : r < 0 ? "probe failed" : qtest_errname(r);
}

/* Can this process make pid namespaces? */
static int can_unshare(void)
{
    pid_t c = fork();
    if (c < 0)
        qtest_fatal("fork");
    if (c == 0) {
        if (unshare(CLONE_NEWPID | CLONE_NEWNS) != 0)
            _exit(1);
        fork_on(3);
        _exit(getpid() == 1 ? 0 : 2);
    }
    int st = qtest_wait(c, 5000);
    return qtest_exited0(st);
}

/* One probe of the holder_in_a scenario: 'B' a new namespace, 'A' the
 * holder's own, 'R' the root namespace (exec'd, then forked). */
static void probe_from(int fd, char where, pid_t ainit, int round)
{
    int r, pid = -1;
    if (where == 'B') {
        struct ns_spec b = {0, 0, NULL};
        r = run_probe(enter_new_ns, &b, &pid);
        CHECK(r == EAGAIN, "round %d: a process starting in namespace B (pid "
              "%d there, cannot see A's processes): F_SETLK [0,10) held in A "
              "gave %s, expected EAGAIN", round, pid, res(r));
    } else if (where == 'A') {
        if (ainit <= 0) {
            CHECK(0, "round %d: could not find the init of namespace A", round);
            return;
        }
        r = run_probe(join_ns, &ainit, &pid);
        CHECK(r == EAGAIN, "round %d: a process starting in A's namespace "
              "(pid %d there): F_SETLK [0,10) gave %s, expected EAGAIN", round,
              pid, res(r));
    } else {
        r = run_probe(NULL, NULL, NULL);
        CHECK(r == EAGAIN, "round %d: a process starting in the root "
              "namespace: F_SETLK [0,10) gave %s, expected EAGAIN", round,
              res(r));
        CHECK_CANNOT_LOCK(fd, F_WRLCK, 0, 10);
    }
}

/* A holder in a new namespace A; then probes from the places in `order`. */
static void holder_in_a(int fd, const char *order, int round)
{
    long last = free_pid();
    struct ns_spec a = {last, 0, NULL};
    char *argv[] = {"t_pidns", "--holder", (char *)path, NULL};
    qtest_helper h = qtest_spawn_after(NULL, argv, NULL, enter_new_ns, &a);
    char out[256] = "", o1[300];
    qtest_read_until(h.out, out, sizeof out, "LOCKED", 8000);
    int r = -1, hpid = -1;
    const char *p = strstr(out, "LOCKED ");
    if (!p || sscanf(p, "LOCKED %d %d", &r, &hpid) != 2 || r != 0) {
        CHECK(0, "round %d: holder in A did not lock [0,10): \"%s\"", round,
              qtest_oneline(out, o1, sizeof o1));
        qtest_helper_kill(&h);
        return;
    }
    CHECK(last == 0 || hpid == last + 1,
          "round %d: holder in A has pid %d there, expected %ld "
          "(ns_last_pid)", round, hpid, last + 1);
    qtest_print("NOTE round %d: holder in A: pid %d in A; the root namespace "
                "has no process %d; probes from %s", round, hpid, hpid, order);
    pid_t ainit = child_of(h.pid); /* A's init (host pid): holder's parent */
    for (const char *w = order; *w; w++)
        probe_from(fd, *w, ainit, round);
    int st = qtest_helper_finish(&h, 5000, NULL, 0, NULL, 0);
    CHECK(qtest_exited0(st), "round %d: holder in A: status %#x", round, st);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
}

static void two_inits(int fd)
{
    volatile int *go = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (go == MAP_FAILED)
        qtest_fatal("mmap");
    char *argv[] = {"t_pidns", "--init", (char *)path, NULL};
    unsigned long long s1 = 0, s2 = 1;
    int tries = 0;
    qtest_helper h1, h2;
    int pid1 = -1, pid2 = -1;
    for (;;) {
        tries++;
        *go = 0;
        struct ns_spec spec = {0, 1, go};
        h1 = qtest_spawn_after(NULL, argv, NULL, enter_new_ns, &spec);
        h2 = qtest_spawn_after(NULL, argv, NULL, enter_new_ns, &spec);
        qtest_msleep(20);
        *go = 1;
        char o1[128] = "", o2[128] = "";
        qtest_read_until(h1.out, o1, sizeof o1, "READY", 8000);
        qtest_read_until(h2.out, o2, sizeof o2, "READY", 8000);
        pid1 = (int)qtest_out_val(o1, "READY", -1);
        pid2 = (int)qtest_out_val(o2, "READY", -1);
        pid_t i1 = child_of(h1.pid), i2 = child_of(h2.pid);
        s1 = 0;
        s2 = 1;
        if (i1 > 0 && i2 > 0) {
            stat_of(i1, NULL, &s1);
            stat_of(i2, NULL, &s2);
        }
        if (s1 == s2 || tries >= 10)
            break;
        qtest_helper_kill(&h1);
        qtest_helper_kill(&h2);
    }
    CHECK(pid1 == 1 && pid2 == 1, "two inits: pids %d and %d, expected 1 and 1",
          pid1, pid2);
    qtest_print("NOTE two inits: start times %llu and %llu (%s, after %d "
                "tries)", s1, s2, s1 == s2 ? "the same" : "different", tries);
    qtest_helper_say(&h1, "L");
    char out[256] = "", o1[300];
    qtest_read_until(h1.out, out, sizeof out, "SETLK", 5000);
    CHECK(qtest_out_val(out, "SETLK", -1) == 0,
          "two inits: the first's F_SETLK [0,10): \"%s\"",
          qtest_oneline(out, o1, sizeof o1));
    qtest_helper_say(&h2, "L");
    out[0] = 0;
    qtest_read_until(h2.out, out, sizeof out, "SETLK", 5000);
    long long r = qtest_out_val(out, "SETLK", -1);
    CHECK(r == EAGAIN, "two inits (both pid 1, start times %s): the second's "
          "F_SETLK on the first's [0,10) gave %s, expected EAGAIN",
          s1 == s2 ? "equal" : "different",
          r == 0 ? "0 (one owner for two processes)"
                 : r < 0 ? "no answer" : qtest_errname((int)r));
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 0, 10);
    int st1 = qtest_helper_finish(&h1, 5000, NULL, 0, NULL, 0);
    int st2 = qtest_helper_finish(&h2, 5000, NULL, 0, NULL, 0);
    CHECK(qtest_exited0(st1) && qtest_exited0(st2),
          "two inits: statuses %#x %#x", st1, st2);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
    munmap((void *)go, 4096);
}

/* Without namespaces: a plain conflict, so the run still checks something. */
static void plain(int fd)
{
    char *argv[] = {"t_pidns", "--holder", (char *)path, NULL};
    qtest_helper h = qtest_spawn(NULL, argv, NULL);
    char out[256] = "";
    qtest_read_until(h.out, out, sizeof out, "LOCKED", 8000);
    CHECK(qtest_out_val(out, "LOCKED", -1) == 0, "plain holder did not lock");
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 0, 10);
    qtest_helper_finish(&h, 5000, NULL, 0, NULL, 0);
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strncmp(argv[1], "--", 2) == 0)
        return helper_main(argc, argv);
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int fd = qtest_tmpfile(100, &path);
    plain(fd);
    if (geteuid() != 0 || !can_unshare()) {
        qtest_print("SKIP pid namespaces: needs root and "
                    "unshare(CLONE_NEWPID|CLONE_NEWNS)");
    } else {
        holder_in_a(fd, "BAR", 1);
        holder_in_a(fd, "RAB", 2);
        holder_in_a(fd, "ABR", 3);
        two_inits(fd);
        qtest_print("SKIP hidepid=2: it hides nothing from root");
    }
    close(fd);
    return QTEST_DONE();
}
