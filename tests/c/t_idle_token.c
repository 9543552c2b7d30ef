/*
 * t_idle_token.c - the library's kernel-side bookkeeping must not get in
 * the way of processes that do not load it.
 *
 * Under the shim, an open file description that has taken a flock() or an
 * OFD lock is an "open-file owner" in the registry, anchored by a kernel OFD
 * lock (a token) far up the offset space.  A process without the library
 * uses plain kernel locks; it must see exactly the locks the preloaded
 * process really holds, and nothing else:
 *
 *   (a) idle: a preloaded process takes flock(LOCK_EX) and drops it
 *       (LOCK_UN), keeping the descriptor open; a process WITHOUT the
 *       library then locks the whole file on its own descriptor:
 *       lockf(F_TLOCK, 0), F_SETLK write l_len 0, F_OFD_SETLK write l_len 0,
 *       F_SETLK read l_len 0 and a kernel flock(LOCK_EX|LOCK_NB) must all
 *       succeed (nothing is locked).  The same after an F_OFD_SETLK [0,10)
 *       and its unlock, and after a flock on a write-only descriptor (against
 *       a whole-file read lock).
 *   (b) busy: a process without the library holds a kernel whole-file write
 *       lock (F_SETLK, l_len 0) for ~500 ms.  A preloaded process's
 *       flock(LOCK_EX|LOCK_NB) on a fresh description meanwhile returns 0 or
 *       EWOULDBLOCK (the output says which); its blocking flock(LOCK_EX)
 *       must return 0 (at once, or once the kernel lock is gone), never
 *       -1 EWOULDBLOCK.
 *
 * Natively flock and fcntl locks are independent and nothing is left
 * behind, so every call succeeds at once.
 *
 * Helper modes (this binary re-executed, WITHOUT LD_PRELOAD):
 *     t_idle_token --peer PATH          the whole-file calls of (a), one
 *                                       "NAME <0|errno>" line each
 *     t_idle_token --hold PATH MS       F_SETLK write l_len 0, "HELD <rc>",
 *                                       sleep MS, unlock, "RELEASED <rc>",
 *                                       wait for EOF on stdin
 */
#include "qtest.h"

static const char *path;

/* ------------------------------------------------------------------------ */
/* Helpers (no library)                                                      */
/* ------------------------------------------------------------------------ */

static void report(const char *name, int r, int e)
{
    qtest_print("%s %d", name, r == 0 ? 0 : e);
}

/* The peer's whole-file calls. */
enum { BY_LOCKF, BY_FCNTL, BY_FLOCK };
static const struct peer_call {
    const char *name, *what;
    int by, cmd;
    short type;
} peer_calls[] = {
    {"TLOCK", "lockf(F_TLOCK, 0)", BY_LOCKF, F_TLOCK, 0},
    {"SETLK_WR", "F_SETLK F_WRLCK l_len 0", BY_FCNTL, F_SETLK, F_WRLCK},
    {"SETLK_RD", "F_SETLK F_RDLCK l_len 0", BY_FCNTL, F_SETLK, F_RDLCK},
    {"OFD_WR", "F_OFD_SETLK F_WRLCK l_len 0", BY_FCNTL, F_OFD_SETLK, F_WRLCK},
    {"FLOCK", "flock(LOCK_EX|LOCK_NB)", BY_FLOCK, LOCK_EX | LOCK_NB, 0},
};
#define NPEER (sizeof peer_calls / sizeof peer_calls[0])

static int peer_main(const char *p)
{
    int fd = open(p, O_RDWR);
    if (fd < 0)
        return 3;
    for (size_t i = 0; i < NPEER; i++) {
        const struct peer_call *c = &peer_calls[i];
        struct flock fl = qtest_fl(c->type, SEEK_SET, 0, 0);
        int r;
        errno = 0;
        if (c->by == BY_LOCKF)
            r = lockf(fd, c->cmd, 0);
        else if (c->by == BY_FLOCK)
            r = flock(fd, c->cmd);
        else
            r = fcntl(fd, c->cmd, &fl);
        report(c->name, r, errno);
        /* and undo it */
        fl.l_type = F_UNLCK;
        if (c->by == BY_LOCKF)
            lockf(fd, F_ULOCK, 0);
        else if (c->by == BY_FLOCK)
            flock(fd, LOCK_UN);
        else
            fcntl(fd, c->cmd, &fl);
    }
    close(fd);
    return 0;
}

static int hold_main(const char *p, int ms)
{
    int fd = open(p, O_RDWR);
    if (fd < 0)
        return 3;
    errno = 0;
    int r = setlk(fd, F_WRLCK, 0, 0);
    report("HELD", r, errno);
    qtest_msleep(ms);
    errno = 0;
    r = unlock(fd, 0, 0);
    report("RELEASED", r, errno);
    qtest_wait_eof();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Test side                                                                 */
/* ------------------------------------------------------------------------ */

static char *no_preload[] = {"LD_PRELOAD", NULL};

/* Run the library-less peer and check that each of its whole-file calls
 * succeeded. */
static void check_peer(const char *what)
{
    char *argv[] = {"t_idle_token", "--peer", (char *)path, NULL};
    qtest_helper h = qtest_spawn(NULL, argv, no_preload);
    char out[1024] = "", err[1024] = "", e1[1100];
    qtest_read_until(h.out, out, sizeof out, "FLOCK", 8000);
    int st = qtest_helper_finish(&h, 5000, out, sizeof out, err, sizeof err);
    CHECK(qtest_exited0(st), "%s: peer status %#x, stderr \"%s\"", what, st,
          qtest_oneline(err, e1, sizeof e1));
    for (size_t i = 0; i < NPEER; i++) {
        long long v = qtest_out_val(out, peer_calls[i].name, -1);
        CHECK(v == 0, "%s: a process without the library: %s on its own "
              "descriptor gave %s; expected 0 (nothing is locked)", what,
              peer_calls[i].what,
              v < 0 ? "no answer" : qtest_errname((int)v));
    }
}

static void idle(void)
{
    int fd = qtest_open(path, O_RDWR);
    CHECK_OK(flock(fd, LOCK_EX));
    CHECK_OK(flock(fd, LOCK_UN));
    check_peer("(a) after flock EX+UN");
    /* still idle after another round on the same description */
    CHECK_OK(flock(fd, LOCK_SH));
    CHECK_OK(flock(fd, LOCK_UN));
    check_peer("(a) after flock SH+UN");
    close(fd);

    fd = qtest_open(path, O_RDWR);
    struct flock o = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    o.l_pid = 0;
    CHECK_OK(fcntl(fd, F_OFD_SETLK, &o));
    o.l_type = F_UNLCK;
    CHECK_OK(fcntl(fd, F_OFD_SETLK, &o));
    check_peer("(a) after F_OFD_SETLK [0,10) + unlock");
    close(fd);

    fd = qtest_open(path, O_WRONLY);
    CHECK_OK(flock(fd, LOCK_EX));
    CHECK_OK(flock(fd, LOCK_UN));
    check_peer("(a) after flock EX+UN on a write-only descriptor");
    close(fd);
}

/* Start a library-less holder of a kernel whole-file write lock for ms. */
static qtest_helper start_holder(int ms, const char *what)
{
    char msbuf[16];
    snprintf(msbuf, sizeof msbuf, "%d", ms);
    char *argv[] = {"t_idle_token", "--hold", (char *)path, msbuf, NULL};
    qtest_helper h = qtest_spawn(NULL, argv, no_preload);
    char out[256] = "", o1[300];
    qtest_read_until(h.out, out, sizeof out, "HELD", 5000);
    CHECK(qtest_out_val(out, "HELD", -1) == 0,
          "%s: library-less holder's F_SETLK write l_len 0: \"%s\"", what,
          qtest_oneline(out, o1, sizeof o1));
    return h;
}

static void busy(void)
{
    /* non-blocking, on a fresh description */
    {
        qtest_helper h = start_holder(500, "(b) LOCK_NB");
        int fd = qtest_open(path, O_RDWR);
        errno = 0;
        int r = flock(fd, LOCK_EX | LOCK_NB);
        int e = errno;
        CHECK(r == 0 || (r == -1 && e == EWOULDBLOCK),
              "(b) flock(LOCK_EX|LOCK_NB) while another process holds a "
              "kernel whole-file write lock: %d %s, expected 0 or -1 "
              "EWOULDBLOCK", r, r == -1 ? qtest_errname(e) : "");
        qtest_print("NOTE (b) flock(LOCK_EX|LOCK_NB) against a foreign kernel "
                    "whole-file write lock: %s",
                    r == 0 ? "0" : qtest_errname(e));
        if (r == 0)
            CHECK_OK(flock(fd, LOCK_UN));
        close(fd);
        char out[256] = "";
        qtest_helper_finish(&h, 5000, out, sizeof out, NULL, 0);
    }
    /* blocking, on another fresh description */
    {
        qtest_helper h = start_holder(500, "(b) blocking");
        int fd = qtest_open(path, O_RDWR);
        double t0 = qtest_now_ms();
        errno = 0;
        int r = flock(fd, LOCK_EX);
        int e = errno;
        double dt = qtest_now_ms() - t0;
        CHECK(r == 0, "(b) blocking flock(LOCK_EX) while another process "
              "holds a kernel whole-file write lock returned %d %s after "
              "%.0f ms; expected 0%s", r, r == -1 ? qtest_errname(e) : "", dt,
              r == -1 && e == EWOULDBLOCK
                  ? " (a blocking flock never fails with EWOULDBLOCK)" : "");
        CHECK(dt < 5000, "(b) blocking flock took %.0f ms", dt);
        qtest_print("NOTE (b) blocking flock(LOCK_EX): %s after %.0f ms",
                    r == 0 ? "0" : qtest_errname(e), dt);
        if (r == 0)
            CHECK_OK(flock(fd, LOCK_UN));
        close(fd);
        char out[256] = "";
        int st = qtest_helper_finish(&h, 5000, out, sizeof out, NULL, 0);
        CHECK(qtest_exited0(st) && qtest_out_val(out, "RELEASED", -1) == 0,
              "(b) holder status %#x", st);
    }
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--peer") == 0) {
        alarm(20);
        return peer_main(argv[2]);
    }
    if (argc >= 4 && strcmp(argv[1], "--hold") == 0) {
        alarm(20);
        return hold_main(argv[2], atoi(argv[3]));
    }
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int fd = qtest_tmpfile(100, &path);
    close(fd);
    idle();
    busy();
    return QTEST_DONE();
}
