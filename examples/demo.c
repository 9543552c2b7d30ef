/*
 * What changes when a program runs under libqnxcompat: Linux and QNX
 * results side by side.
 *
 *   cc -D_GNU_SOURCE -I shim/include -o demo examples/demo.c
 *   LD_PRELOAD=$PWD/target/release/libqnxcompat.so ./demo
 *
 * The demo runs itself twice (its own file, with --run), both times preloaded:
 * once with QNXCOMPAT=off, where every hook is a pass-through (Linux
 * semantics), and once with QNX rules on. Each run prints one line per part
 * into a pipe; the parent prints the table and checks the QNX column.
 *
 * 1. flock(LOCK_EX) in one process, fcntl(F_SETLK, F_WRLCK) in another:
 *    Linux keeps the two lock kinds apart; QNX has one lock list per file.
 * 2. lockf(F_TEST) against another process's fcntl read lock: glibc probes
 *    with a read lock (section free); QNX libc with a write lock (EACCES).
 * 3. A blocked F_SETLKW whose process catches a signal installed with
 *    SA_RESTART: Linux restarts the call; QNX fails it with EINTR. The
 *    holder keeps the lock until the waiter's handler has reported.
 *
 * Exit status: 0 when both runs reported and the QNX results are QNX's,
 * 1 otherwise, 2 when the library is not preloaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#define PARTS 3
static const char *part_name[PARTS] = {
    "1 flock() vs fcntl() on one file",
    "2 lockf(F_TEST) vs a read lock",
    "3 F_SETLKW + signal with SA_RESTART",
};
static const char *qnx_expected[PARTS] = {"F_SETLK: EAGAIN", "-1 EACCES", "-1 EINTR"};

static char path[64];
static int report[2]; /* part 3: the waiter's pipe to the holder */

static const char *ename(int e)
{
    static char buf[16];
#define NAME(e) case e: return #e
    switch (e) { NAME(EAGAIN); NAME(EACCES); NAME(EINTR); NAME(EBADF); NAME(ENOLCK); NAME(ENOMEM); NAME(EDEADLK); }
    snprintf(buf, sizeof buf, "errno %d", e);
    return buf;
}

static int lock(int fd, int cmd, short type, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

/* fn in a child process, whose exit status is fn's result (0 or an errno). */
static pid_t spawn(int (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int r = fn();
        fflush(stdout); /* _exit() does not flush */
        _exit(r);
    }
    return pid;
}

static int reap(pid_t pid)
{
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static int setlk_whole_file(void)
{
    int fd = open(path, O_RDWR);
    return lock(fd, F_SETLK, F_WRLCK, 0) == 0 ? 0 : errno;
}

static int lockf_test(void)
{
    int fd = open(path, O_RDWR);
    return lockf(fd, F_TEST, 10) == 0 ? 0 : errno;
}

static volatile sig_atomic_t caught;
static void on_usr1(int sig)
{
    (void)sig;
    caught = 1;
    (void)!write(report[1], "s", 1);
}

#define GRANTED_UNSIGNALLED 200
static int setlkw_waiter(void)
{
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    int fd = open(path, O_RDWR);
    (void)!write(report[1], "r", 1); /* next: the blocking call */
    if (lock(fd, F_SETLKW, F_WRLCK, 10) != 0)
        return errno;
    return caught ? 0 : GRANTED_UNSIGNALLED;
}

/* Whether process pid is asleep (state S in /proc/pid/stat). */
static int asleep(pid_t pid)
{
    char name[64], buf[512];
    snprintf(name, sizeof name, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(name, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'S';
}

static int wait_byte(int fd, char want)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c = 0;
    while (poll(&p, 1, 5000) == 1 && read(fd, &c, 1) == 1)
        if (c == want)
            return 1;
    return 0;
}

/* One run (QNXCOMPAT=off or on): one line per part on stdout. */
static void run_parts(void)
{
    snprintf(path, sizeof path, "/tmp/qnxcompat-demo-%d.dat", (int)getpid());
    alarm(20); /* a hung run is killed, and the parent says so */

    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        printf("1 flock: %s\n", ename(errno));
    else if ((errno = reap(spawn(setlk_whole_file))) == 0)
        printf("1 both granted\n");
    else
        printf("1 F_SETLK: %s\n", ename(errno));
    close(fd);
    fflush(stdout);

    fd = open(path, O_RDWR);
    lock(fd, F_SETLK, F_RDLCK, 10);
    int r = reap(spawn(lockf_test));
    if (r == 0)
        printf("2 0 (unlocked)\n");
    else
        printf("2 -1 %s\n", ename(r));
    close(fd);
    fflush(stdout);

    fd = open(path, O_RDWR);
    lock(fd, F_SETLK, F_WRLCK, 10);
    if (pipe(report) != 0)
        exit(1);
    pid_t w = spawn(setlkw_waiter);
    if (wait_byte(report[0], 'r')) {
        for (int i = 0; i < 500 && !asleep(w); i++)
            usleep(10000);
        usleep(50000); /* well inside the wait */
        kill(w, SIGUSR1);
        wait_byte(report[0], 's'); /* the handler has run: now release */
    }
    lock(fd, F_SETLK, F_UNLCK, 10);
    r = reap(w);
    if (r == 0)
        printf("3 restarted, then granted\n");
    else if (r == GRANTED_UNSIGNALLED)
        printf("3 granted before the signal\n");
    else
        printf("3 -1 %s\n", ename(r));
    close(fd);
    unlink(path);
    fflush(stdout);
}

/* Runs this program again with QNXCOMPAT=off (qnx == 0) or unset, and
 * collects its lines; returns how many parts reported. */
static int run(char *self, int qnx, char lines[PARTS][64])
{
    char exe[4096]; /* this program's file, so that its runs are named for it, not "exe" */
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    int p[2];
    if (len <= 0 || pipe(p) != 0)
        return 0;
    exe[len] = 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        if (qnx) {
            unsetenv("QNXCOMPAT");
        } else {
            setenv("QNXCOMPAT", "off", 1);
            unsetenv("QNXCOMPAT_STRICT"); /* which would stop a QNXCOMPAT=off run */
        }
        execl(exe, self, "--run", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    char buf[66]; /* "N " and a result that fits lines[k] */
    int got = 0;
    while (f && fgets(buf, sizeof buf, f)) {
        int k = buf[0] - '1';
        buf[strcspn(buf, "\n")] = 0;
        if (k >= 0 && k < PARTS && buf[1] == ' ' && !lines[k][0]) {
            snprintf(lines[k], 64, "%s", buf + 2);
            got++;
        }
    }
    if (f)
        fclose(f);
    waitpid(pid, NULL, 0);
    return got;
}

/* Whether libqnxcompat is preloaded: named in LD_PRELOAD and mapped. */
static int preloaded(void)
{
    const char *pre = getenv("LD_PRELOAD");
    char line[512];
    int mapped = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    while (f && !mapped && fgets(line, sizeof line, f))
        mapped = strstr(line, "libqnxcompat") != NULL;
    if (f)
        fclose(f);
    return pre && strstr(pre, "libqnxcompat") && mapped;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--run") == 0) {
        run_parts();
        return 0;
    }
    if (!preloaded()) {
        fprintf(stderr, "demo: libqnxcompat.so is not preloaded; run it as\n"
                        "  LD_PRELOAD=/path/to/libqnxcompat.so %s\n", argv[0]);
        return 2;
    }
    static char linux_[PARTS][64], qnx[PARTS][64];
    int nl = run(argv[0], 0, linux_), nq = run(argv[0], 1, qnx);

    printf("%-38s %-26s %s\n", "part", "Linux", "QNX (qnxcompat)");
    for (int k = 0; k < PARTS; k++)
        printf("%-38s %-26s %s\n", part_name[k], linux_[k][0] ? linux_[k] : "(no result)",
               qnx[k][0] ? qnx[k] : "(no result)");

    int bad = 0;
    if (nl != PARTS || nq != PARTS) {
        printf("demo: a run reported %d of %d parts (Linux), %d of %d (QNX)\n", nl, PARTS, nq, PARTS);
        bad = 1;
    }
    for (int k = 0; k < PARTS; k++) {
        if (qnx[k][0] && strcmp(qnx[k], qnx_expected[k]) != 0) {
            printf("demo: part %d under QNX rules gave \"%s\", QNX gives \"%s\"\n", k + 1, qnx[k], qnx_expected[k]);
            bad = 1;
        } else if (linux_[k][0] && strcmp(linux_[k], qnx[k]) == 0) {
            printf("demo: note: part %d gave QNX's result with QNXCOMPAT=off too\n", k + 1);
        }
    }
    printf("%s\n", bad ? "demo: FAILED" : "demo: QNX semantics hold under libqnxcompat");
    return bad;
}
