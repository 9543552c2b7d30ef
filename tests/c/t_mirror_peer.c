/*
 * t_mirror_peer.c - preloaded processes and peers outside the library see
 * each other's locks, through the kernel mirror.
 *
 * A peer is a process without the library that opens the file itself:
 * peer_static (a static binary, never preloaded) and this binary
 * re-executed with LD_PRELOAD removed ("--peer", qtest_peer_main); every
 * scenario runs with each.
 *
 *   (a) we hold, the peer asks: our F_SETLK write / read, lockf, F_SETLK to
 *       EOF, flock and F_OFD_SETLK locks make the peer's F_SETLK,
 *       F_OFD_SETLK, lockf(F_TLOCK), lockf(F_TEST) and flock(LOCK_NB) fail
 *       with EAGAIN/EACCES/EWOULDBLOCK where they conflict (and succeed
 *       where they do not); its F_GETLK and F_OFD_GETLK report our lock
 *       exactly, with our pid (-1 for our OFD lock).  Our flock conflicts
 *       with the peer's POSIX locks (QNX: flock and fcntl locks are one
 *       list) only through the mirror's whole-file OFD lock, so under the
 *       shim only.
 *   (b) the peer holds, we ask: F_SETLK -> EAGAIN/EACCES, lockf(F_TLOCK) ->
 *       EAGAIN/EACCES, lockf(F_TEST) -> EACCES/EAGAIN (under the shim also
 *       against the peer's read lock: QNX probes with a write lock),
 *       flock(LOCK_NB) -> EWOULDBLOCK (against its flock; under the shim also
 *       against its POSIX lock); F_GETLK / F_OFD_GETLK report the peer's
 *       lock with l_pid as the kernel gives it (its pid, -1 for OFD locks).
 *   (c) blocking: a preloaded child's F_SETLKW, lockf(F_LOCK) and
 *       flock(LOCK_EX) wait while the peer holds, are granted once it lets
 *       go (no bound on how fast), and the lock they got is the peer's to
 *       see; a SIGALRM caught by a handler without SA_RESTART makes each
 *       fail with EINTR, leaving nothing held.
 *
 * Natively (plain kernel locks) the same except where marked "under the
 * shim".  With QNXCOMPAT_MIRROR=off (run.sh's mirror-off run) the kernel
 * and the registry do not meet: each side's lock calls succeed against the
 * other's locks and F_GETLK reports nothing, and (c) is granted at once
 * (its EINTR checks are skipped).  Ranges stay below 2^62 so that the
 * library's open-file tokens are never in the way.
 */
#include "qtest.h"

static const char *path;
static int test_fd;
static int me;

/* The peer p's `kind` call on [start, start+len): refused (EAGAIN, or
 * EACCES for fcntl and lockf; EWOULDBLOCK for flock) if busy, else 0.  The
 * scenario is the caller's `w`. */
static void peer_try(const struct qtest_peer *p, int busy, const char *kind,
                     short type, off_t start, off_t len, const char *what,
                     int line)
{
    int flock_call = strcmp(kind, "flock") == 0;
    qtest_check_peer_try(p, kind, type, start, len, path, busy ? EAGAIN : 0,
                         busy && !flock_call ? EACCES : busy ? EAGAIN : 0,
                         what, __FILE__, line);
}

#define PEER_TRY(busy, kind, type, start, len)                                \
    peer_try(p, (busy), (kind), (type), (start), (len), w, __LINE__)

/* The peer p's F_GETLK ("fcntl") or F_OFD_GETLK ("ofd") reports {type,
 * lstart, llen, pid} if `busy`, else no lock. */
#define PEER_GET(busy, kind, start, len, type, lstart, llen, pid)             \
    CHECK_PEER_GET(p, (kind), (start), (len), path, (busy) ? (type) : F_UNLCK, \
                   (lstart), (llen), (pid), w)

/* F_GETLK (cmd F_GETLK or F_OFD_GETLK) in this process, with a write query
 * on [start, start+len): exactly {type, lstart, llen, pid}, or F_UNLCK:
 * free, nothing else changed. */
static void getlk_here(int cmd, off_t start, off_t len, int type,
                       off_t lstart, off_t llen, pid_t pid, const char *what,
                       int line)
{
    int fd = cmd == F_OFD_GETLK ? qtest_open(path, O_RDWR) : test_fd;
    pid_t upid = cmd == F_OFD_GETLK ? 0 : -7;
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, start, len);
    fl.l_pid = upid;
    errno = 0;
    int r = fcntl(fd, cmd, &fl);
    char who[160];
    snprintf(who, sizeof who, "%s: %s in this process", what,
             qtest_cmdname(cmd));
    qtest_check_answer(who, qtest_probe_result(r, errno), &fl, start, len,
                       upid, type, lstart, llen, pid, __FILE__, line);
    if (fd != test_fd)
        close(fd); /* no fcntl lock of ours is held here */
}

#define GETLK_HERE(cmd, start, len, type, lstart, llen, pid, what)            \
    getlk_here((cmd), (start), (len), (type), (lstart), (llen), (pid),       \
               (what), __LINE__)

/* F_GETLK here for a lock the peer holds: reported if we see it. */
#define GETLK_PEERS(cmd, start, len, type, lstart, llen, pid, what)           \
    GETLK_HERE((cmd), (start), (len), seen ? (type) : F_UNLCK, (lstart),     \
               (llen), (pid), (what))

/* ------------------------------------------------------------------------ */
/* (a) we hold, the peer asks                                                */
/* ------------------------------------------------------------------------ */

static void peer_sees_ours(const struct qtest_peer *p)
{
    int seen = qtest_kernel_sees(), mirror = qtest_mirror_on();
    int fd = test_fd;
    const char *w;

    w = "(a) our F_SETLK write [10,20)";
    CHECK_OK(setlk(fd, F_WRLCK, 10, 10));
    PEER_TRY(seen, "fcntl", F_WRLCK, 15, 10);
    PEER_TRY(seen, "fcntl", F_RDLCK, 19, 1);
    PEER_TRY(seen, "ofd", F_RDLCK, 0, 11);
    PEER_TRY(seen, "lockf", F_WRLCK, 12, 2);
    PEER_TRY(seen, "ftest", F_WRLCK, 0, 100);
    CHECK_PEER_TRY(p, "fcntl", F_WRLCK, 20, 10, path, 0, 0,
                   "(a) our F_SETLK write [10,20), the peer on [20,30)");
    PEER_GET(seen, "fcntl", 0, 100, F_WRLCK, 10, 10, me);
    PEER_GET(seen, "ofd", 0, 100, F_WRLCK, 10, 10, me);
    CHECK_OK(unlock(fd, 10, 10));
    CHECK_PEER_TRY(p, "fcntl", F_WRLCK, 0, 0, path, 0, 0,
                   "(a) after our unlock of [10,20)");

    w = "(a) our F_SETLK read [30,40)";
    CHECK_OK(setlk(fd, F_RDLCK, 30, 10));
    PEER_TRY(0, "fcntl", F_RDLCK, 30, 10);
    PEER_TRY(seen, "fcntl", F_WRLCK, 39, 5);
    PEER_GET(seen, "fcntl", 0, 0, F_RDLCK, 30, 10, me);
    CHECK_OK(unlock(fd, 30, 10));

    w = "(a) our lockf(F_TLOCK, 10) at 50";
    CHECK_OK(qtest_lockf_at(fd, 50, F_TLOCK, 10));
    PEER_TRY(seen, "fcntl", F_RDLCK, 55, 1);
    PEER_TRY(seen, "lockf", F_WRLCK, 40, 11);
    PEER_GET(seen, "fcntl", 0, 0, F_WRLCK, 50, 10, me);
    CHECK_OK(qtest_lockf_at(fd, 50, F_ULOCK, 10));

    w = "(a) our F_SETLK write from 80, l_len 0";
    CHECK_OK(setlk(fd, F_WRLCK, 80, 0));
    PEER_TRY(seen, "fcntl", F_WRLCK, 1 << 20, 1);
    PEER_GET(seen, "fcntl", 90, 1, F_WRLCK, 80, 0, me);
    CHECK_OK(unlock(fd, 0, 0));

    /* our flock, on a description of its own */
    int fd2 = qtest_open(path, O_RDWR);
    w = "(a) our flock(LOCK_EX)";
    CHECK_OK(flock(fd2, LOCK_EX));
    PEER_TRY(seen, "flock", F_WRLCK, 0, 0);
    PEER_TRY(seen, "flock", F_RDLCK, 0, 0);
    /* under the shim: the whole-file OFD lock; natively independent */
    PEER_TRY(mirror, "fcntl", F_RDLCK, 0, 10);
    PEER_TRY(mirror, "lockf", F_WRLCK, 1 << 20, 1);
    PEER_GET(mirror, "fcntl", 0, 10, F_WRLCK, 0, 0, -1);
    w = "(a) our flock(LOCK_SH)";
    CHECK_OK(flock(fd2, LOCK_SH));
    PEER_TRY(0, "flock", F_RDLCK, 0, 0);
    PEER_TRY(seen, "flock", F_WRLCK, 0, 0);
    PEER_TRY(0, "fcntl", F_RDLCK, 0, 10);
    PEER_TRY(mirror, "fcntl", F_WRLCK, 0, 10);
    CHECK_OK(flock(fd2, LOCK_UN));
    w = "(a) after our flock(LOCK_UN)";
    PEER_TRY(0, "flock", F_WRLCK, 0, 0);
    PEER_TRY(0, "fcntl", F_WRLCK, 0, 0);
    close(fd2);

    /* our OFD lock, on a description of its own */
    int fd3 = qtest_open(path, O_RDWR);
    w = "(a) our F_OFD_SETLK write [60,70)";
    CHECK_OK(qtest_lk(fd3, F_OFD_SETLK, F_WRLCK, 60, 10));
    PEER_TRY(seen, "fcntl", F_RDLCK, 65, 1);
    PEER_TRY(seen, "ofd", F_WRLCK, 69, 1);
    PEER_GET(seen, "fcntl", 0, 100, F_WRLCK, 60, 10, -1);
    PEER_GET(seen, "ofd", 0, 100, F_WRLCK, 60, 10, -1);
    CHECK_OK(qtest_lk(fd3, F_OFD_SETLK, F_UNLCK, 60, 10));
    CHECK_PEER_TRY(p, "fcntl", F_WRLCK, 0, 0, path, 0, 0,
                   "(a) after our F_OFD_SETLK unlock");
    close(fd3);
}

/* ------------------------------------------------------------------------ */
/* (b) the peer holds, we ask                                                */
/* ------------------------------------------------------------------------ */

/* One lock call in this process (flock on a description of its own, the
 * rest on test_fd): refused with e1 or e2 if busy, else granted (and
 * undone). */
static void call_here(int busy, struct qtest_call c, int e1, int e2,
                      const char *what, int line)
{
    int fd = c.kind == QTEST_CALL_FLOCK ? qtest_open(path, O_RDWR) : test_fd;
    errno = 0;
    int r = qtest_call_run(fd, &c, 0);
    int e = errno;
    char name[96];
    qtest_record(busy ? r == -1 && (e == e1 || e == e2) : r == 0, __FILE__,
                 line, "%s: our %s gave %d %s, expected %s", what,
                 qtest_call_name(&c, name, sizeof name), r,
                 r == -1 ? qtest_errname(e) : "",
                 busy ? "-1 (busy)" : "0 (free, or the peer is not seen)");
    if (r == 0 && !(c.kind == QTEST_CALL_LOCKF && c.cmd == F_TEST))
        qtest_call_run(fd, &c, 1);
    if (fd != test_fd)
        close(fd); /* no fcntl lock of ours is held here */
}

#define SETLK_HERE(busy, type, start, len, what)                              \
    call_here((busy), qtest_call_fcntl(F_SETLK, (type), (start), (len)),      \
              EAGAIN, EACCES, (what), __LINE__)
#define LOCKF_HERE(busy, func, off, size, what)                               \
    call_here((busy), qtest_call_lockf((func), (off), (size)), EAGAIN,        \
              EACCES, (what), __LINE__)
#define FLOCK_HERE(busy, op, what)                                            \
    call_here((busy), qtest_call_flock(op), EWOULDBLOCK, EWOULDBLOCK, (what), \
              __LINE__)

static void we_see_peers(const struct qtest_peer *p)
{
    int seen = qtest_kernel_sees(), mirror = qtest_mirror_on();
    int shim = qtest_mode_shim();
    const char *w;
    qtest_helper h;

    w = "(b) the peer's F_SETLK write [10,20)";
    h = CHECK_PEER_HOLD(p, "fcntl", F_WRLCK, 10, 10, path, w);
    SETLK_HERE(seen, F_WRLCK, 15, 1, w);
    SETLK_HERE(seen, F_RDLCK, 10, 1, w);
    SETLK_HERE(seen, F_WRLCK, 0, 0, w);
    SETLK_HERE(0, F_WRLCK, 20, 10, "(b) the peer's [10,20), ours [20,30)");
    LOCKF_HERE(seen, F_TLOCK, 12, 1, w);
    LOCKF_HERE(seen, F_TEST, 0, 0, w);
    GETLK_PEERS(F_GETLK, 0, 100, F_WRLCK, 10, 10, h.pid, w);
    GETLK_PEERS(F_OFD_GETLK, 0, 100, F_WRLCK, 10, 10, h.pid, w);
    /* under the shim a flock conflicts with any fcntl lock (QNX) */
    FLOCK_HERE(mirror, LOCK_EX | LOCK_NB, w);
    FLOCK_HERE(mirror, LOCK_SH | LOCK_NB, w);
    CHECK_PEER_RELEASE(p, &h, w);
    SETLK_HERE(0, F_WRLCK, 0, 0, "(b) after the peer let go of [10,20)");
    FLOCK_HERE(0, LOCK_EX | LOCK_NB, "(b) after the peer let go of [10,20)");

    w = "(b) the peer's F_SETLK read [30,40)";
    h = CHECK_PEER_HOLD(p, "fcntl", F_RDLCK, 30, 10, path, w);
    SETLK_HERE(0, F_RDLCK, 30, 10, w);
    SETLK_HERE(seen, F_WRLCK, 35, 1, w);
    /* QNX's F_TEST probes with a write lock, glibc's with a read lock */
    LOCKF_HERE(seen && shim, F_TEST, 30, 10, w);
    LOCKF_HERE(seen, F_TLOCK, 39, 1, w);
    GETLK_PEERS(F_GETLK, 0, 0, F_RDLCK, 30, 10, h.pid, w);
    FLOCK_HERE(0, LOCK_SH | LOCK_NB, w);
    FLOCK_HERE(mirror, LOCK_EX | LOCK_NB, w);
    CHECK_PEER_RELEASE(p, &h, w);

    w = "(b) the peer's lockf(F_TLOCK, 10) at 50";
    h = CHECK_PEER_HOLD(p, "lockf", F_WRLCK, 50, 10, path, w);
    SETLK_HERE(seen, F_RDLCK, 55, 1, w);
    LOCKF_HERE(seen, F_TLOCK, 45, 10, w);
    LOCKF_HERE(seen, F_TEST, 50, 1, w);
    GETLK_PEERS(F_GETLK, 0, 0, F_WRLCK, 50, 10, h.pid, w);
    CHECK_PEER_RELEASE(p, &h, w);

    w = "(b) the peer's F_OFD_SETLK write [60,70)";
    h = CHECK_PEER_HOLD(p, "ofd", F_WRLCK, 60, 10, path, w);
    SETLK_HERE(seen, F_WRLCK, 65, 1, w);
    LOCKF_HERE(seen, F_TLOCK, 69, 1, w);
    GETLK_PEERS(F_GETLK, 0, 100, F_WRLCK, 60, 10, -1, w);
    GETLK_PEERS(F_OFD_GETLK, 0, 100, F_WRLCK, 60, 10, -1, w);
    CHECK_PEER_RELEASE(p, &h, w);

    w = "(b) the peer's flock(LOCK_EX)";
    h = CHECK_PEER_HOLD(p, "flock", F_WRLCK, 0, 0, path, w);
    FLOCK_HERE(seen, LOCK_EX | LOCK_NB, w);
    FLOCK_HERE(seen, LOCK_SH | LOCK_NB, w);
    CHECK_PEER_RELEASE(p, &h, w);
    FLOCK_HERE(0, LOCK_EX | LOCK_NB, "(b) after the peer's flock(LOCK_UN)");

    w = "(b) the peer's flock(LOCK_SH)";
    h = CHECK_PEER_HOLD(p, "flock", F_RDLCK, 0, 0, path, w);
    FLOCK_HERE(0, LOCK_SH | LOCK_NB, w);
    FLOCK_HERE(seen, LOCK_EX | LOCK_NB, w);
    CHECK_PEER_RELEASE(p, &h, w);
}

/* ------------------------------------------------------------------------ */
/* (c) blocking on the peer's lock                                           */
/* ------------------------------------------------------------------------ */

struct block_case {
    const char *what;
    const char *kind; /* the peer's lock */
    short type;
    off_t start, len;
    struct qtest_call call; /* the preloaded child's blocking call */
    const char *after;      /* the peer's try on what the child then holds */
    short after_type;
    int after_err;
};

static void blocking(const struct qtest_peer *p, int *skip_said)
{
    int seen = qtest_kernel_sees();
    struct block_case cases[] = {
        {"(c) F_SETLKW write [15,25) vs the peer's write [10,20)", "fcntl",
         F_WRLCK, 10, 10, qtest_call_fcntl(F_SETLKW, F_WRLCK, 15, 10),
         "fcntl", F_RDLCK, EAGAIN},
        {"(c) lockf(F_LOCK, 10) at 5 vs the peer's read [10,20)", "fcntl",
         F_RDLCK, 10, 10, qtest_call_lockf(F_LOCK, 5, 10), "lockf", F_WRLCK,
         EAGAIN},
        {"(c) flock(LOCK_EX) vs the peer's flock(LOCK_SH)", "flock", F_RDLCK,
         0, 0, qtest_call_flock(LOCK_EX), "flock", F_RDLCK, EWOULDBLOCK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct block_case *b = &cases[i];
        /* granted once the peer lets go */
        qtest_helper h = CHECK_PEER_HOLD(p, b->kind, b->type, b->start,
                                         b->len, path, b->what);
        struct qtest_actor a = {b->call, -1, path, -1};
        qtest_child c = CHECK_START_WAITER(a);
        if (seen) {
            CHECK(qtest_wait_blocked(&c), "%s, %s: not blocked while the "
                  "peer holds its lock", b->what, p->name);
            CHECK_PEER_RELEASE(p, &h, b->what);
            CHECK_GRANTED(&c, 0, b->what);
            CHECK_PEER_TRY(p, b->after, b->after_type, b->call.start,
                           b->call.len ? b->call.len : 1, path, b->after_err,
                           b->after_err, "(c) what the waiter got");
            CHECK_CHILD_FINISH(&c);
        } else {
            CHECK_GRANTED(&c, 0, b->what); /* the peer is not seen */
            CHECK_CHILD_FINISH(&c);
            CHECK_PEER_RELEASE(p, &h, b->what);
        }

        /* a caught signal without SA_RESTART: EINTR */
        if (!seen) {
            if (!(*skip_said)++)
                qtest_print("SKIP (c) EINTR: with the mirror off nothing "
                            "waits for a peer's lock");
            continue;
        }
        h = CHECK_PEER_HOLD(p, b->kind, b->type, b->start, b->len, path,
                            b->what);
        a.sa_flags = 0;
        c = CHECK_START_WAITER(a);
        CHECK(qtest_wait_blocked(&c), "%s, %s: not blocked before the signal",
              b->what, p->name);
        kill(c.pid, SIGALRM);
        struct qtest_msg m;
        if (CHECK_HEAR(&c, 'G', 5000, &m))
            CHECK(m.val == -1 && m.err == EINTR, "%s, %s: a caught SIGALRM "
                  "(no SA_RESTART) gave %lld %s, expected -1 EINTR", b->what,
                  p->name, m.val, qtest_errname(m.err));
        CHECK_PEER_RELEASE(p, &h, b->what);
        /* the interrupted request left nothing behind */
        CHECK_PEER_TRY(p, b->after, F_WRLCK, b->call.start,
                       b->call.len ? b->call.len : 1, path, 0, 0,
                       "(c) after EINTR and the peer's release");
        CHECK_CHILD_FINISH(&c);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--peer") == 0)
        return qtest_peer_main(argc - 1, argv + 1);
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    me = (int)getpid();
    test_fd = qtest_tmpfile(100, &path);
    qtest_track_path(path); /* removed on a timeout too */
    qtest_print("NOTE mode %s", !qtest_mode_shim() ? "native"
                : qtest_mirror_off() ? "shim, QNXCOMPAT_MIRROR=off"
                                     : "shim, mirror on");
    struct qtest_peer peers[2];
    int n = qtest_peers(peers), skip_said = 0;
    for (int i = 0; i < n; i++) {
        peer_sees_ours(&peers[i]);
        we_see_peers(&peers[i]);
        blocking(&peers[i], &skip_said);
    }
    close(test_fd);
    return QTEST_DONE();
}
