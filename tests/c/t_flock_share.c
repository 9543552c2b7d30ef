/*
 * t_flock_share.c - a flock() lock belongs to the open file: who shares it,
 * and when it goes away.
 *
 * QNX docs (lib_ref f/flock.html, 7.0 and later): "Locks are applied to
 * files, not file descriptors.  That is, file descriptors duplicated through
 * dup() or fork() don't result in multiple instances of a lock, but rather
 * multiple references to a single lock.  If a process holding a lock on a
 * file forks and the child explicitly unlocks the file, the parent loses its
 * lock."  and "In QNX Neutrino 7.0 or later, if you open the same file
 * multiple times in a process, an flock() on one file descriptor locks out
 * an flock() on a different file descriptor."  The lock lives as long as
 * the open file: until the last descriptor of it is closed, in whichever
 * process, or every process that has one has died.  Linux behaves the same,
 * so every check runs in both modes.
 *
 * Descriptors of the one open file: dup, dup2, dup3, F_DUPFD,
 * F_DUPFD_CLOEXEC, fork, exec (this program re-executed as
 *     t_flock_share --after-exec UPFD DOWNFD FD
 * which obeys commands on DOWNFD and reports on UPFD), and SCM_RIGHTS.
 *
 * The lock is observed by probes that open the file themselves (another
 * open file, in another process), with flock() and, since under QNX a flock
 * lock also blocks fcntl locks, with F_SETLK (QNX-only: natively F_SETLK
 * always succeeds).
 */
#include <sys/file.h>
#include <sys/socket.h>

#include "qtest.h"

static const char *path; /* the test file */
static int fd;           /* the parent's O_RDWR open of it */

/* ---- helpers ---------------------------------------------------------------- */

/* Another process opens the file and gets `want` from flock(op); a lock it
 * gets is dropped again. */
#define CHECK_OTHER_FLOCK(op, want) CHECK_OTHER_FLOCK_AT(path, O_RDWR, op, want)

/* QNX-only: a flock lock also blocks fcntl locks, so the shim's lock list
 * must agree with what flock probes see (Linux: fcntl is never blocked). */
#define CHECK_OTHER_SETLK_SEES(held)                                          \
    do {                                                                      \
        int qt_w_;                                                            \
        if (qtest_mode_shim())                                                \
            qt_w_ = (held) ? EAGAIN : 0;                                      \
        else                                                                  \
            qt_w_ = 0; /* Linux: flock and fcntl locks are independent */     \
        CHECK_OTHER_FCNTL_AT(path, F_SETLK, F_WRLCK, 0, 0, qt_w_);            \
    } while (0)

/* the file is locked (exclusively) by some open file other than a fresh
 * one / not locked at all */
#define EXPECT_HELD()                                                         \
    do {                                                                      \
        CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, EWOULDBLOCK);                    \
        CHECK_OTHER_SETLK_SEES(1);                                            \
    } while (0)
#define EXPECT_FREE()                                                         \
    do {                                                                      \
        CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, 0);                              \
        CHECK_OTHER_SETLK_SEES(0);                                            \
    } while (0)

/* Send a command to a child and CHECK its answer (tag `reply`) is `want`
 * (0 or an errno of a -1 return). */
#define CHECK_CHILD_DOES(c, cmd, reply, want)                                 \
    do {                                                                      \
        struct qtest_msg qt_m_;                                               \
        qtest_say((c), (cmd));                                                \
        if (CHECK_HEAR((c), (reply), 5000, &qt_m_))                           \
            CHECK((want) == 0 ? qt_m_.val == 0                                \
                              : qt_m_.val == -1 && qt_m_.err == (want),       \
                  "child command '%c': expected %s, got %lld %s", (cmd),      \
                  qtest_probe_name(want), qt_m_.val,                          \
                  qt_m_.val == -1 ? qtest_errname(qt_m_.err) : "");           \
    } while (0)

/* Child-side command loop on descriptor lfd: 'T' flock(LOCK_EX|LOCK_NB),
 * 'S' flock(LOCK_SH|LOCK_NB), 'U' flock(LOCK_UN), 'C' close; each answered
 * with the lower-case tag and the result.  Returns on 'Q' (1) or on silence
 * or EOF (0). */
static int command_loop(int up, int down, int lfd)
{
    for (;;) {
        struct qtest_msg m;
        if (qtest_get(down, 30000, &m) != 1)
            return 0;
        int r;
        switch (m.tag) {
        case 'Q': return 1;
        case 'T': r = flock(lfd, LOCK_EX | LOCK_NB); break;
        case 'S': r = flock(lfd, LOCK_SH | LOCK_NB); break;
        case 'U': r = flock(lfd, LOCK_UN); break;
        case 'C': r = close(lfd); break;
        default: r = -2; break;
        }
        qtest_put(up, m.tag - 'A' + 'a', r, r == -1 ? errno : 0);
    }
}

/* ---- dup and friends -------------------------------------------------------- */

enum dupkind { DUP, DUP2, DUP3, DUPFD, DUPFD_CLOEXEC };
static const char *const dupnames[] = {"dup", "dup2", "dup3", "F_DUPFD",
                                       "F_DUPFD_CLOEXEC"};

static int make_dup(enum dupkind k)
{
    int d = -1;
    switch (k) {
    case DUP: d = dup(fd); break;
    case DUP2: d = dup2(fd, 60); break;
    case DUP3: d = dup3(fd, 61, O_CLOEXEC); break;
    case DUPFD: d = fcntl(fd, F_DUPFD, 70); break;
    case DUPFD_CLOEXEC: d = fcntl(fd, F_DUPFD_CLOEXEC, 80); break;
    }
    CHECK(d >= 0, "%s: %s", dupnames[k], qtest_errname(errno));
    return d;
}

static void dups(enum dupkind k)
{
    /* locked through the original, shared by the dup */
    CHECK_OK(flock(fd, LOCK_EX));
    int d = make_dup(k);
    CHECK(flock(d, LOCK_EX | LOCK_NB) == 0, "%s: flock(LOCK_EX|LOCK_NB) on "
          "the duplicate of the holder: %s", dupnames[k], qtest_errname(errno));
    EXPECT_HELD();
    /* closing the duplicate leaves the lock to the original */
    CHECK_OK(close(d));
    EXPECT_HELD();
    /* an unlock through a duplicate unlocks the open file */
    d = make_dup(k);
    CHECK(flock(d, LOCK_UN) == 0, "%s: flock(LOCK_UN) on the duplicate: %s",
          dupnames[k], qtest_errname(errno));
    EXPECT_FREE();

    /* locked through the duplicate, unlocked through the original */
    CHECK(flock(d, LOCK_SH) == 0, "%s: flock(LOCK_SH) on the duplicate: %s",
          dupnames[k], qtest_errname(errno));
    CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, 0);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB)); /* upgrade of the same lock */
    EXPECT_HELD();
    CHECK_OK(flock(fd, LOCK_UN));
    EXPECT_FREE();
    CHECK_OK(close(d));
}

/* ---- a second open() in the same process --------------------------------- */

static void second_open(void)
{
    int fd2 = qtest_open(path, O_RDWR);
    CHECK_OK(flock(fd, LOCK_EX));
    CHECK_ERR(flock(fd2, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    CHECK_ERR(flock(fd2, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    /* closing another open file of the same file releases nothing */
    CHECK_OK(close(fd2));
    EXPECT_HELD();
    fd2 = qtest_open(path, O_RDONLY);
    CHECK_ERR(flock(fd2, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    CHECK_OK(flock(fd, LOCK_SH));
    CHECK_OK(flock(fd2, LOCK_SH | LOCK_NB));
    CHECK_ERR(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    CHECK_OK(close(fd2)); /* its shared lock goes with it */
    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
    EXPECT_HELD();
    CHECK_OK(flock(fd, LOCK_UN));
    EXPECT_FREE();
}

/* ---- release on the last close ------------------------------------------- */

static void last_close(void)
{
    int a = qtest_open(path, O_RDWR);
    CHECK_OK(flock(a, LOCK_EX));
    int b = dup(a);
    CHECK_OK(close(a));
    EXPECT_HELD();
    CHECK_OK(close(b));
    EXPECT_FREE();

    /* dup2 over the last descriptor closes the open file */
    int null = qtest_open("/dev/null", O_RDONLY);
    a = qtest_open(path, O_RDWR);
    CHECK_OK(flock(a, LOCK_EX));
    CHECK_EQ(dup2(null, a), a);
    EXPECT_FREE();
    CHECK_OK(close(a));

    /* dup2 of a descriptor onto another of the same open file closes
     * nothing */
    a = qtest_open(path, O_RDWR);
    b = dup(a);
    CHECK_OK(flock(a, LOCK_EX));
    CHECK_EQ(dup2(a, b), b);
    EXPECT_HELD();
    CHECK_OK(close(a));
    EXPECT_HELD();
    CHECK_OK(close(b));
    EXPECT_FREE();

    /* fclose of the stream that owns the only descriptor */
    FILE *f = fopen(path, "r+");
    if (!f)
        qtest_fatal("fopen");
    CHECK_OK(flock(fileno(f), LOCK_EX));
    EXPECT_HELD();
    CHECK_OK(fclose(f));
    EXPECT_FREE();
    close(null);
}

/* ---- fork -------------------------------------------------------------------- */

static void child_shares(void *arg)
{
    (void)arg;
    /* the parent's lock is ours too */
    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
    CHECK_OK(flock(fd, LOCK_EX));
    /* but not that of another open file in this process */
    int own = qtest_open(path, O_RDWR);
    CHECK_ERR(flock(own, LOCK_EX | LOCK_NB), EWOULDBLOCK);
    CHECK_ERR(flock(own, LOCK_SH | LOCK_NB), EWOULDBLOCK);
    close(own);
}

static void child_unlocks(void *arg)
{
    (void)arg;
    CHECK_OK(flock(fd, LOCK_UN));
}

static void child_locks(void *arg)
{
    (void)arg;
    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));
    /* exit without unlocking: the parent's descriptor keeps the lock */
}

/* Child: hold the inherited fd; commands as in command_loop. */
static void fork_holder(void *arg)
{
    int lfd = *(int *)arg;
    child_say('H');
    command_loop(qtest_up_fd, qtest_down_fd, lfd);
}

static void fork_share(void)
{
    CHECK_OK(flock(fd, LOCK_EX));
    RUN_IN_CHILD(child_shares, NULL);
    EXPECT_HELD(); /* the child's exit closed only its copy */
    CHECK_OK(flock(fd, LOCK_EX | LOCK_NB));

    /* a child's LOCK_UN makes the parent lose the lock */
    RUN_IN_CHILD(child_unlocks, NULL);
    EXPECT_FREE();
    /* the parent's unlock of a lock the child took */
    RUN_IN_CHILD(child_locks, NULL);
    EXPECT_HELD();
    CHECK_OK(flock(fd, LOCK_UN));
    EXPECT_FREE();

    /* the parent closes its descriptor: the child's keeps the lock */
    int x = qtest_open(path, O_RDWR);
    CHECK_OK(flock(x, LOCK_EX));
    qtest_child c = qtest_child_start(fork_holder, &x);
    CHECK_HEAR(&c, 'H', 5000, NULL);
    CHECK_OK(close(x));
    EXPECT_HELD();
    CHECK_CHILD_DOES(&c, 'S', 's', 0); /* a downgrade, by the child */
    CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, 0);
    CHECK_OTHER_FLOCK(LOCK_EX | LOCK_NB, EWOULDBLOCK);
    CHECK_CHILD_DOES(&c, 'T', 't', 0);
    EXPECT_HELD();
    CHECK_CHILD_FINISH(&c); /* its exit closes the last descriptor */
    EXPECT_FREE();
}

/* ---- exec ---------------------------------------------------------------- */

static int exec_fd;

/* Child: on 'X', re-execute this program with exec_fd open across it. */
static void exec_child(void *arg)
{
    (void)arg;
    child_say('H');
    if (!child_await('X', 10000))
        return;
    char up[16], down[16], f[16];
    snprintf(up, sizeof up, "%d", qtest_up_fd);
    snprintf(down, sizeof down, "%d", qtest_down_fd);
    snprintf(f, sizeof f, "%d", exec_fd);
    fcntl(qtest_up_fd, F_SETFD, 0);
    fcntl(qtest_down_fd, F_SETFD, 0);
    execl("/proc/self/exe", "t_flock_share", "--after-exec", up, down, f,
          (char *)NULL);
    CHECK(0, "execl: %s", qtest_errname(errno));
}

/* The re-executed image: report 'E' (with its pid), then obey commands. */
static int after_exec(int up, int down, int lfd)
{
    alarm(QTEST_CHILD_TIMEOUT_S);
    qtest_put(up, 'E', getpid(), 0);
    return command_loop(up, down, lfd) ? 0 : 3;
}

/* cloexec: the descriptor is FD_CLOEXEC; else it stays open across exec */
static void across_exec(int cloexec)
{
    struct qtest_msg m;
    exec_fd = qtest_open(path, O_RDWR | (cloexec ? O_CLOEXEC : 0));
    CHECK_OK(flock(exec_fd, LOCK_EX));
    qtest_child c = qtest_child_start(exec_child, NULL);
    CHECK_HEAR(&c, 'H', 5000, NULL);
    CHECK_OK(close(exec_fd)); /* only the child's descriptor is left */
    EXPECT_HELD();
    qtest_say(&c, 'X');
    if (CHECK_HEAR(&c, 'E', 10000, &m))
        CHECK_EQ(m.val, c.pid);
    if (cloexec) {
        /* exec closed the last descriptor */
        EXPECT_FREE();
    } else {
        EXPECT_HELD();
        CHECK_CHILD_DOES(&c, 'T', 't', 0); /* still the new image's lock */
        CHECK_CHILD_DOES(&c, 'U', 'u', 0);
        EXPECT_FREE();
        CHECK_CHILD_DOES(&c, 'T', 't', 0); /* the new image locks again */
        EXPECT_HELD();
    }
    CHECK_CHILD_FINISH(&c); /* its exit releases */
    EXPECT_FREE();
}

/* ---- SCM_RIGHTS -------------------------------------------------------------- */

static int send_fd(int sock, int sfd)
{
    char byte = 'F';
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof u.buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &sfd, sizeof(int));
    return sendmsg(sock, &mh, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof u.buf;
    struct pollfd p = {sock, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1 || recvmsg(sock, &mh, 0) != 1)
        return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
        return -1;
    int r;
    memcpy(&r, CMSG_DATA(cm), sizeof r);
    return r;
}

static int sock_pair[2];

/* Child (has no descriptor of the file): receive one, report 'R', obey. */
static void receiver(void *arg)
{
    (void)arg;
    close(sock_pair[0]);
    child_say('H');
    int rfd = recv_fd(sock_pair[1]);
    child_report('R', rfd, errno);
    if (rfd >= 0)
        command_loop(qtest_up_fd, qtest_down_fd, rfd);
}

static void scm_rights(void)
{
    struct qtest_msg m;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock_pair) != 0)
        qtest_fatal("socketpair");
    qtest_child c = qtest_child_start(receiver, NULL);
    close(sock_pair[1]);
    CHECK_HEAR(&c, 'H', 5000, NULL);
    /* opened after the fork: the child gets it only through the socket */
    int x = qtest_open(path, O_RDWR);
    CHECK_OK(flock(x, LOCK_EX));
    CHECK_OK(send_fd(sock_pair[0], x));
    if (!CHECK_HEAR(&c, 'R', 5000, &m) || m.val < 0) {
        CHECK(0, "receiving the descriptor failed");
        close(x);
        CHECK_CHILD_FINISH(&c);
        close(sock_pair[0]);
        return;
    }
    /* the receiver's unlock is the sender's unlock */
    EXPECT_HELD();
    CHECK_CHILD_DOES(&c, 'U', 'u', 0);
    EXPECT_FREE();
    CHECK_OK(flock(x, LOCK_EX | LOCK_NB));
    CHECK_CHILD_DOES(&c, 'T', 't', 0); /* same lock */
    /* the sender closes: the passed descriptor keeps the lock */
    CHECK_OK(close(x));
    EXPECT_HELD();
    CHECK_CHILD_DOES(&c, 'U', 'u', 0);
    EXPECT_FREE();
    CHECK_CHILD_DOES(&c, 'T', 't', 0);
    EXPECT_HELD();
    CHECK_CHILD_DOES(&c, 'C', 'c', 0); /* the last descriptor */
    EXPECT_FREE();
    CHECK_CHILD_FINISH(&c);
    close(sock_pair[0]);
}

/* ---- SIGKILL of every holder ---------------------------------------------- */

static int kill_fd;

/* Child: on 'G' lock through the inherited kill_fd; wait to be killed. */
static void kill_holder(void *arg)
{
    int take = *(int *)arg;
    if (take) {
        if (!child_await('G', 10000))
            return;
        child_report('L', flock(kill_fd, LOCK_EX), errno);
    } else {
        child_say('L');
    }
    child_await('Q', 50000);
}

/* Child: own open of the file, announce 'R', flock(LOCK_EX) (blocking),
 * report 'G'; hold until 'Q'. */
static void waiter(void *arg)
{
    (void)arg;
    int wfd = qtest_open(path, O_RDWR);
    child_say('R');
    int r = flock(wfd, LOCK_EX);
    child_report('G', r, errno);
    child_await('Q', 30000);
}

static void kill_and_check(qtest_child *c, int reap)
{
    kill(c->pid, SIGKILL);
    if (reap) {
        int st = qtest_wait(c->pid, 5000);
        CHECK(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "holder status %#x", st);
    }
}

/* Two processes share the open file (neither is this one); the lock stays
 * while either lives and goes when both have been killed.  reap: wait for
 * each killed holder before looking. */
static void killed_holders(int reap)
{
    int take = 1, keep = 0;
    struct qtest_msg m;
    kill_fd = qtest_open(path, O_RDWR);
    qtest_child a = qtest_child_start(kill_holder, &take);
    qtest_child b = qtest_child_start(kill_holder, &keep);
    CHECK_OK(close(kill_fd)); /* this process has no descriptor of it */
    CHECK_HEAR(&b, 'L', 5000, NULL);
    qtest_say(&a, 'G');
    if (CHECK_HEAR(&a, 'L', 5000, &m))
        CHECK(m.val == 0, "holder: flock(LOCK_EX) gave %lld %s", m.val,
              qtest_errname(m.err));
    EXPECT_HELD();

    if (reap) {
        /* a waiter blocks; it is granted only when the last holder dies */
        qtest_child w = qtest_child_start(waiter, NULL);
        CHECK_HEAR(&w, 'R', 5000, NULL);
        CHECK(qtest_wait_blocked(&w), "flock(LOCK_EX) waiter was not blocked");
        kill_and_check(&a, 1); /* the locker dies; b keeps the open file */
        CHECK(qtest_silent(&w, 300),
              "waiter granted although another process holds the open file");
        EXPECT_HELD();
        double t0 = qtest_now_ms();
        kill_and_check(&b, 1);
        if (CHECK_HEAR(&w, 'G', 5000, &m)) {
            double dt = qtest_now_ms() - t0;
            CHECK(m.val == 0, "waiter: flock(LOCK_EX) returned %lld %s", m.val,
                  qtest_errname(m.err));
            CHECK(dt < 2000, "waiter granted %.0f ms after SIGKILL of the last "
                  "holder", dt);
        }
        CHECK_OTHER_FLOCK(LOCK_SH | LOCK_NB, EWOULDBLOCK); /* the waiter's */
        CHECK_CHILD_FINISH(&w);
    } else {
        /* not reaped (zombies): another open in this process polls */
        kill_and_check(&b, 0);
        qtest_msleep(300);
        EXPECT_HELD();
        int own = qtest_open(path, O_RDWR);
        CHECK_ERR(flock(own, LOCK_EX | LOCK_NB), EWOULDBLOCK);
        double t0 = qtest_now_ms();
        kill_and_check(&a, 0);
        int r;
        while ((r = flock(own, LOCK_EX | LOCK_NB)) != 0 &&
               qtest_now_ms() - t0 < 2500)
            qtest_msleep(10);
        double dt = qtest_now_ms() - t0;
        CHECK(r == 0, "flock(LOCK_EX|LOCK_NB) still fails %.0f ms after "
                      "SIGKILL of the last holder (%s)", dt,
              qtest_errname(errno));
        CHECK_OK(close(own));
        int st = qtest_wait(a.pid, 5000);
        CHECK(st >= 0 && WIFSIGNALED(st), "holder a status %#x", st);
        st = qtest_wait(b.pid, 5000);
        CHECK(st >= 0 && WIFSIGNALED(st), "holder b status %#x", st);
    }
    close(a.from_child);
    close(a.to_child);
    close(b.from_child);
    close(b.to_child);
    EXPECT_FREE();
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--after-exec") == 0)
        return after_exec(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));

    qtest_init();
    fd = qtest_tmpfile(100, &path);
    for (enum dupkind k = DUP; k <= DUPFD_CLOEXEC; k++)
        dups(k);
    second_open();
    last_close();
    fork_share();
    across_exec(0);
    across_exec(1);
    scm_rights();
    killed_holders(1);
    killed_holders(0);
    close(fd);
    return QTEST_DONE();
}
