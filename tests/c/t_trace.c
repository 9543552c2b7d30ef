/*
 * t_trace.c - QNXCOMPAT_TRACE output of the shim (shim only; natively it
 * prints "0 passed, 0 failed").
 *
 * Not QNX behaviour but the shim's own diagnostics: with QNXCOMPAT_TRACE=1
 * (or "all", or a comma list of function names) every intercepted call is
 * written as one line
 *     qnxcompat[PID:TID] FUNC(ARGS) = RESULT[ ERRNO] (TIME)
 * to stderr, or appended to the file named by QNXCOMPAT_TRACE_FILE.
 * QNXCOMPAT=off makes every hook a pure pass-through: native behaviour
 * (lockf(F_TEST) ignores read locks, as glibc's does), still traced, so a
 * program can be traced both ways.
 *
 * The traced programs are this binary re-executed as
 *     t_trace --act ACTION FD BUSY
 * with the environment under test.  FD and BUSY are inherited descriptors of
 * two files; this process holds a write lock on [0,10) of BUSY.
 */
#include <regex.h>
#include <sys/file.h>
#include <sys/syscall.h>

#include "qtest.h"

/* ---- actions run by the traced child --------------------------------------- */

static int act_basic(int fd, int busy)
{
    int bad = 0;
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    bad |= fcntl(fd, F_SETLKW, &fl) != 0;
    fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    bad |= (fcntl(fd, F_GETLK, &fl) != 0) << 1;
    bad |= (unlock(fd, 0, 10) != 0) << 2;
    bad |= (qtest_lockf_at(fd, 0, F_TLOCK, 10) != 0) << 3;
    bad |= !(qtest_lockf_at(busy, 0, F_TLOCK, 10) == -1 && errno == EAGAIN) << 4;
    qtest_lockf_at(fd, 0, F_ULOCK, 10);
    bad |= (flock(fd, LOCK_EX | LOCK_NB) != 0) << 5;
    flock(fd, LOCK_UN);
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED) {
        mlock(page, 4096); /* result depends on RLIMIT_MEMLOCK */
        munlock(page, 4096);
    }
    mlockall(MCL_CURRENT | MCL_FUTURE);
    munlockall();
    return bad;
}

static int act_lockf_flock(int fd)
{
    int bad = qtest_lockf_at(fd, 0, F_TLOCK, 10) != 0;
    qtest_lockf_at(fd, 0, F_ULOCK, 10);
    bad |= (flock(fd, LOCK_EX | LOCK_NB) != 0) << 1;
    flock(fd, LOCK_UN);
    return bad;
}

/* run with QNXCOMPAT=off: the kernel read lock on [200,210) is only seen by
 * F_TLOCK, not by glibc's F_TEST */
static int act_native_test(int fd)
{
    int bad = qtest_lockf_at(fd, 200, F_TEST, 10) != 0;
    int r = qtest_lockf_at(fd, 200, F_TLOCK, 10);
    bad |= !(r == -1 && (errno == EAGAIN || errno == EACCES)) << 1;
    return bad;
}

static int run_action(const char *act, int fd, int busy)
{
    alarm(QTEST_CHILD_TIMEOUT_S);
    if (strcmp(act, "basic") == 0)
        return act_basic(fd, busy);
    if (strcmp(act, "lockf_flock") == 0)
        return act_lockf_flock(fd);
    if (strcmp(act, "native_test") == 0)
        return act_native_test(fd);
    return 100;
}

/* ---- the test --------------------------------------------------------------- */

static int fd, busy;
static const char *trace_path;

struct run {
    const char *act;
    const char *trace;      /* QNXCOMPAT_TRACE, NULL: unset */
    int to_file;            /* set QNXCOMPAT_TRACE_FILE=trace_path */
    const char *qnxcompat;  /* QNXCOMPAT, NULL: unset */
};

/* In the traced child, before the exec: stderr to trace_path. */
static void stderr_to_trace(void *arg)
{
    (void)arg;
    int e = open(trace_path, O_WRONLY | O_APPEND);
    dup2(e, STDERR_FILENO);
    close(e);
}

/* Run the action in a re-executed child with the given environment (stderr
 * to trace_path when not tracing to a file).  Returns the child's pid; the
 * child is CHECKed to exit 0.  trace_path is emptied first. */
static pid_t run_traced(struct run r)
{
    char vars[3][256];
    snprintf(vars[0], sizeof vars[0], "QNXCOMPAT_TRACE%s%s",
             r.trace ? "=" : "", r.trace ? r.trace : "");
    snprintf(vars[1], sizeof vars[1], "QNXCOMPAT_TRACE_FILE%s%s",
             r.to_file ? "=" : "", r.to_file ? trace_path : "");
    snprintf(vars[2], sizeof vars[2], "QNXCOMPAT%s%s", r.qnxcompat ? "=" : "",
             r.qnxcompat ? r.qnxcompat : "");
    char *env[] = {vars[0], vars[1], vars[2], NULL};
    if (truncate(trace_path, 0) != 0)
        qtest_fatal("truncate");

    char fdarg[16], busyarg[16], what[160];
    snprintf(fdarg, sizeof fdarg, "%d", fd);
    snprintf(busyarg, sizeof busyarg, "%d", busy);
    snprintf(what, sizeof what, "traced child (act=%s trace=%s qnxcompat=%s)",
             r.act, r.trace ? r.trace : "(unset)",
             r.qnxcompat ? r.qnxcompat : "(unset)");
    char *argv[] = {"t_trace", "--act", (char *)r.act, fdarg, busyarg, NULL};
    return CHECK_RUN_SELF(argv, env, r.to_file ? NULL : stderr_to_trace, NULL,
                          what);
}

/* CHECK that the trace has a line starting "qnxcompat[PID:PID] " + text
 * (and containing `more` after it, if not NULL). */
#define CHECK_IN_TRACE(text, pid, more)                                       \
    do {                                                                      \
        char *qt_t_ = qtest_slurp_trace(trace_path);                                \
        CHECK_TRACED(qt_t_, (pid), (text), (more));                           \
        free(qt_t_);                                                          \
    } while (0)

#define CHECK_NOT_TRACED(text)                                                \
    do {                                                                      \
        char *qt_t_ = qtest_slurp_trace(trace_path);                                \
        CHECK(!qtest_has_line(qt_t_, (text), NULL),                           \
              "trace has \"%s\"; trace was:\n%s", (const char *)(text),       \
              qt_t_);                                                         \
        free(qt_t_);                                                          \
    } while (0)

#define CHECK_TRACE_EMPTY()                                                   \
    do {                                                                      \
        char *qt_t_ = qtest_slurp_trace(trace_path);                                \
        CHECK(qt_t_[0] == 0, "expected no trace output, got:\n%s", qt_t_);    \
        free(qt_t_);                                                          \
    } while (0)

/* every line has the form qnxcompat[PID:TID] FUNC(ARGS) = RESULT (TIME) */
static void check_line_format(void)
{
    regex_t re;
    if (regcomp(&re,
                "^qnxcompat\\[[0-9]+:[0-9]+\\] [a-z_0-9]+\\(.*\\) = [^ ]+"
                "( E[A-Z0-9]+)? \\([0-9.]+ ?[a-zµ]*s\\)"
                "( held by .*\\]| released [0-9]+ locks?)?$",
                REG_EXTENDED | REG_NOSUB) != 0)
        qtest_fatal("regcomp");
    char *t = qtest_slurp_trace(trace_path);
    int lines = 0, bad = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        if (regexec(&re, line, 0, NULL, 0) != 0 && bad++ < 3)
            CHECK(0, "badly formed trace line: %s", line);
    }
    CHECK(lines >= 7 && bad == 0, "%d trace lines, %d badly formed", lines, bad);
    free(t);
    regfree(&re);
}

static void trace_to_file(void)
{
    char w[256];
    pid_t p = run_traced((struct run){"basic", "1", 1, NULL});
    snprintf(w, sizeof w,
             "fcntl(fd=%d, F_SETLKW, {F_WRLCK, SEEK_SET, start=0, len=10}) = 0 (",
             fd);
    CHECK_IN_TRACE(w, p, NULL);
    snprintf(w, sizeof w, "fcntl(fd=%d, F_GETLK, ", fd);
    CHECK_IN_TRACE(w, p, NULL);
    snprintf(w, sizeof w, "lockf(fd=%d, F_TLOCK, size=10) = 0 (", fd);
    CHECK_IN_TRACE(w, p, NULL);
    snprintf(w, sizeof w, "lockf(fd=%d, F_TLOCK, size=10) = -1 EAGAIN (", busy);
    char held[64]; /* the holder is this test process (the busy file's lock) */
    snprintf(held, sizeof held, ") held by pid %d (t_trace) [0-", (int)getpid());
    CHECK_IN_TRACE(w, p, held);
    snprintf(w, sizeof w, "flock(fd=%d, LOCK_EX|LOCK_NB) = 0 (", fd);
    CHECK_IN_TRACE(w, p, NULL);
    CHECK_IN_TRACE("mlock(addr=0x", p, ", len=4096) = ");
    CHECK_IN_TRACE("mlockall(MCL_CURRENT|MCL_FUTURE) = ", p, NULL);
    check_line_format();

    p = run_traced((struct run){"lockf_flock", "all", 1, NULL});
    snprintf(w, sizeof w, "lockf(fd=%d, F_TLOCK, size=10) = 0 (", fd);
    CHECK_IN_TRACE(w, p, NULL);
    snprintf(w, sizeof w, "flock(fd=%d, LOCK_EX|LOCK_NB) = 0 (", fd);
    CHECK_IN_TRACE(w, p, NULL);
}

static void trace_selection(void)
{
    pid_t p = run_traced((struct run){"lockf_flock", "lockf", 1, NULL});
    CHECK_IN_TRACE("lockf(fd=", p, NULL);
    CHECK_NOT_TRACED("] flock(");

    p = run_traced((struct run){"lockf_flock", "flock", 1, NULL});
    CHECK_IN_TRACE("flock(fd=", p, NULL);
    CHECK_NOT_TRACED("] lockf(");

    p = run_traced((struct run){"lockf_flock", "lockf,flock", 1, NULL});
    CHECK_IN_TRACE("lockf(fd=", p, NULL);
    CHECK_IN_TRACE("flock(fd=", p, NULL);

    run_traced((struct run){"lockf_flock", NULL, 1, NULL});
    CHECK_TRACE_EMPTY();
}

static void trace_to_stderr(void)
{
    char w[256];
    pid_t p = run_traced((struct run){"lockf_flock", "1", 0, NULL});
    snprintf(w, sizeof w, "lockf(fd=%d, F_TLOCK, size=10) = 0 (", fd);
    CHECK_IN_TRACE(w, p, NULL);
}

/* QNXCOMPAT=off: native lockf(F_TEST), against a read lock we place in the
 * kernel directly (bypassing the shim), and the trace shows it: F_TEST
 * granted (glibc ignores read locks), F_TLOCK refused by the kernel. */
static void off(void)
{
    struct flock fl = qtest_fl(F_RDLCK, SEEK_SET, 200, 10);
    CHECK_OK(syscall(SYS_fcntl, fd, F_SETLK, &fl));
    pid_t p = run_traced((struct run){"native_test", "1", 1, "off"});
    char w[128];
    snprintf(w, sizeof w, "lockf(fd=%d, F_TEST, size=10) = 0 (", fd);
    CHECK_IN_TRACE(w, p, NULL);
    snprintf(w, sizeof w, "lockf(fd=%d, F_TLOCK, size=10) = -1 E", fd);
    CHECK_IN_TRACE(w, p, NULL);
    fl.l_type = F_UNLCK;
    CHECK_OK(syscall(SYS_fcntl, fd, F_SETLK, &fl));
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--act") == 0)
        return run_action(argv[2], atoi(argv[3]), atoi(argv[4]));

    qtest_init();
    if (!qtest_mode_shim())
        return qtest_skip("tracing exists only under the shim");
    fd = qtest_tmpfile(1000, NULL);
    busy = qtest_tmpfile(1000, NULL);
    int tfd = qtest_tmpfile(0, &trace_path);
    close(tfd);
    CHECK_OK(setlk(busy, F_WRLCK, 0, 10)); /* contended by act_basic */
    trace_to_file();
    trace_selection();
    trace_to_stderr();
    off();
    close(busy);
    close(fd);
    return QTEST_DONE();
}
