/*
 * t_repair_shared.c - crash repair must keep the locks of an open file that
 * a live process still shares.
 *
 * flock() locks, F_FLOCK locks and OFD locks belong to an open file
 * description.  Process P opens the file, locks through that description
 * and forks C, which shares the description (and so "holds" the locks too),
 * then P dies: SIGKILLed while it holds the registry mutex in the middle of
 * an update of the same description's locks (QNXCOMPAT_FAULT=mid-update,
 * read when the library loads, stops P there for good).  The next registry
 * user repairs the registry; the locks must survive it, because C is alive:
 *
 *   (a) flock(LOCK_EX), then P converts it to LOCK_SH (mid-update:1): a
 *       third process gets EWOULDBLOCK for flock(LOCK_EX|LOCK_NB);
 *   (b) F_OFD_SETLK write [0,10) and [20,30), then P merges them with
 *       [0,30) (mid-update:2, the second record of the merge): a third
 *       process gets EAGAIN for F_OFD_SETLK on [0,10) and on [20,30);
 *   (c) the same with F_SETLK F_WRLCK|F_FLOCK (QNX; shim only);
 *   (d) as (a), with the description also holding 200 kernel OFD locks
 *       (taken with raw syscalls, bypassing the library) on disjoint bytes,
 *       so that /proc/<pid>/fdinfo/<fd> is far longer than 4 KiB;
 *   (e) as (d), but P simply exits (no fault).
 * Each is probed twice, 150 ms apart (beyond the library's liveness cache);
 * once C is killed the lock is free.
 *
 * Natively there is no registry and no fault: P completes its update and is
 * killed afterwards; the kernel keeps the locks for C, with the same
 * expectations.
 *
 * Helper mode (this binary re-executed with QNXCOMPAT_FAULT set):
 *     t_repair_shared --victim KIND PATH    the P above; prints "CHILD <pid>"
 *         once locked and forked, then on a byte on stdin does its update
 *         ("RETURNED" if it comes back), or exits (KIND exit)
 */
#include "qtest.h"
#include <sys/syscall.h>

#define MANY 200

static const char *path;

/* ------------------------------------------------------------------------ */
/* P                                                                         */
/* ------------------------------------------------------------------------ */

static int ofd(int fd, short type, off_t start, off_t len)
{
    struct flock fl = qtest_fl(type, SEEK_SET, start, len);
    fl.l_pid = 0;
    return fcntl(fd, F_OFD_SETLK, &fl);
}

static int victim_main(const char *kind, const char *p)
{
    alarm(30);
    int fd = open(p, O_RDWR);
    if (fd < 0)
        return 3;
    int is_flock = strncmp(kind, "flock", 5) == 0;
    int is_fflock = strcmp(kind, "fflock") == 0;
    if (is_flock) {
        if (flock(fd, LOCK_EX) != 0)
            return 4;
        if (strstr(kind, "many"))
            for (int i = 0; i < MANY; i++) {
                struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 2 * i, 1);
                if (syscall(SYS_fcntl, fd, F_OFD_SETLK, &fl) != 0)
                    return 5;
            }
    } else if (is_fflock) {
        if (setlk(fd, F_WRLCK | F_FLOCK, 0, 10) != 0 ||
            setlk(fd, F_WRLCK | F_FLOCK, 20, 10) != 0)
            return 4;
    } else {
        if (ofd(fd, F_WRLCK, 0, 10) != 0 || ofd(fd, F_WRLCK, 20, 10) != 0)
            return 4;
    }
    pid_t c = fork();
    if (c < 0)
        return 6;
    if (c == 0) { /* C: shares the description, does nothing else */
        alarm(30);
        for (;;)
            pause();
    }
    qtest_print("CHILD %d", (int)c);
    char b;
    if (read(0, &b, 1) != 1)
        return 7;
    if (strstr(kind, "exit"))
        return 0;
    if (is_flock)
        flock(fd, LOCK_SH); /* the conversion: the fault stops us in here */
    else if (is_fflock)
        setlk(fd, F_WRLCK | F_FLOCK, 0, 30);
    else
        ofd(fd, F_WRLCK, 0, 30);
    qtest_print("RETURNED");
    qtest_wait_eof();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Test side                                                                 */
/* ------------------------------------------------------------------------ */

/* A third process, on a description of its own: flock(LOCK_EX|LOCK_NB)
 * (len < 0) or F_OFD_SETLK write [start, start+len).  0 or its errno. */
static int probe(off_t start, off_t len)
{
    return len < 0 ? qtest_probe_path(path, QTEST_BY_FLOCK, F_WRLCK, 0, 0)
                   : qtest_probe_path(path, QTEST_BY_OFD, F_WRLCK, start, len);
}

static const char *res(int r)
{
    return r == 0 ? "0 (granted: the live sharer's lock was dropped)"
                  : r < 0 ? "probe died" : qtest_errname(r);
}

/* Kill a process that is not our child and wait until it is gone. */
static void kill_gone(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    double end = qtest_now_ms() + 3000;
    /* gone, or a zombie nobody reaped yet: either way dead */
    while (kill(pid, 0) == 0 && qtest_proc_state(pid) != 'Z' &&
           qtest_now_ms() < end)
        qtest_msleep(2);
}

static void run_case(const char *tag, const char *kind, const char *fault)
{
    char fenv[64];
    snprintf(fenv, sizeof fenv, "QNXCOMPAT_FAULT=%s", fault ? fault : "");
    char *env[] = {fault ? fenv : "QNXCOMPAT_FAULT", NULL};
    char *argv[] = {"t_repair_shared", "--victim", (char *)kind, (char *)path,
                    NULL};
    qtest_helper h = qtest_spawn(NULL, argv, env);
    char out[512] = "", err[1024] = "", o1[600], e1[1100];
    qtest_read_until(h.out, out, sizeof out, "CHILD", 8000);
    pid_t c = (pid_t)qtest_out_val(out, "CHILD", -1);
    if (c <= 0) {
        int st = qtest_helper_finish(&h, 2000, out, sizeof out, err, sizeof err);
        CHECK(0, "%s: P did not lock and fork (status %#x): \"%s\" \"%s\"", tag,
              st, qtest_oneline(out, o1, sizeof o1),
              qtest_oneline(err, e1, sizeof e1));
        return;
    }
    int is_flock = strncmp(kind, "flock", 5) == 0;
    int exits = strstr(kind, "exit") != NULL;
    qtest_helper_say(&h, "G");
    if (exits) {
        int st = qtest_helper_finish(&h, 5000, out, sizeof out, err, sizeof err);
        CHECK(qtest_exited0(st), "%s: P status %#x", tag, st);
    } else {
        if (qtest_mode_shim()) {
            char want[96];
            snprintf(want, sizeof want, "qnxcompat: fault mid-update reached "
                     "(pid %d)", (int)h.pid);
            qtest_read_until(h.err, err, sizeof err, "reached (pid", 8000);
            CHECK(strstr(err, want) != NULL, "%s: P did not stop at the fault "
                  "(stderr \"%s\", stdout \"%s\")", tag,
                  qtest_oneline(err, e1, sizeof e1),
                  qtest_oneline(out, o1, sizeof o1));
            qtest_wait_state(h.pid, 'S', 3000);
        } else {
            qtest_read_until(h.out, out, sizeof out, "RETURNED", 5000);
        }
        kill(h.pid, SIGKILL);
        int st = qtest_helper_finish(&h, 5000, NULL, 0, NULL, 0);
        CHECK(st >= 0 && WIFSIGNALED(st), "%s: P status %#x", tag, st);
    }

    /* C lives and shares the description: its locks stay */
    for (int i = 0; i < 2; i++) {
        if (is_flock) {
            int r = probe(0, -1);
            CHECK(r == EWOULDBLOCK, "%s, probe %d: a third process's "
                  "flock(LOCK_EX|LOCK_NB) gave %s while C shares the "
                  "description; expected EWOULDBLOCK", tag, i + 1, res(r));
        } else {
            int r1 = probe(0, 10), r2 = probe(20, 10);
            CHECK(r1 == EAGAIN, "%s, probe %d: a third process's F_OFD_SETLK "
                  "[0,10) gave %s while C shares the description; expected "
                  "EAGAIN", tag, i + 1, res(r1));
            CHECK(r2 == EAGAIN, "%s, probe %d: a third process's F_OFD_SETLK "
                  "[20,30) gave %s while C shares the description; expected "
                  "EAGAIN", tag, i + 1, res(r2));
        }
        qtest_msleep(150);
    }
    /* C goes: so does the last descriptor, and the locks */
    kill_gone(c);
    int r = -1;
    double end = qtest_now_ms() + 2000;
    do {
        r = is_flock ? probe(0, -1) : probe(0, 30);
        if (r == 0)
            break;
        qtest_msleep(20);
    } while (qtest_now_ms() < end);
    CHECK(r == 0, "%s: after C died the lock is still held (%s)", tag,
          qtest_errname(r));
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--victim") == 0)
        return victim_main(argv[2], argv[3]);
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int fd = qtest_tmpfile(1000, &path);
    close(fd);
    run_case("(a) flock conversion", "flock", "mid-update");
    run_case("(b) OFD merge", "ofd", "mid-update:2");
    if (qtest_mode_shim())
        run_case("(c) F_FLOCK merge", "fflock", "mid-update:2");
    run_case("(d) flock conversion, long fdinfo", "flock-many", "mid-update");
    run_case("(e) flock, long fdinfo, P exits", "flock-many-exit", NULL);
    return QTEST_DONE();
}
