/*
 * A registry shared on purpose by the members of a group
 * (QNXCOMPAT_REGISTRY_GROUP, docs/design.md "Security of the registry").
 *
 * Root takes a lock in a registry shared with the group "nogroup" (gid
 * 65534); a process of user nobody, a member, sees it and conflicts with it;
 * a process of another user that is not a member is refused (one line on
 * stderr) and fails closed, or falls back to kernel locks if told to: then,
 * with the kernel mirror off (QNXCOMPAT_MIRROR=off), it neither sees nor
 * touches root's lock; with the mirror on (the default) root's lock is a
 * kernel lock too, which it sees and conflicts with. The segment is mode
 * 0660, group 65534. Shim only: the setting is the library's.
 *
 * The variable is read when the library loads, so each user runs this binary
 * again (re-exec through /proc/self/exe) with it in the environment.
 */
#include "qtest.h"

#include <grp.h>
#include <sys/stat.h>

#define GID 65534

/* Re-executed as a member or a non-member: report what F_GETLK and F_SETLK
 * say about [0,10) of `path`, as the exit status. */
static int probe(const char *path)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return 90;
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    if (fcntl(fd, F_GETLK, &fl) != 0)
        return errno == ENOLCK ? 31 : 91; /* 31: refused, fails closed */
    if (fl.l_type == F_UNLCK)
        return 10; /* sees nothing */
    struct flock w = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    if (fcntl(fd, F_SETLK, &w) == 0)
        return 92; /* took a lock it should not get */
    return errno == EAGAIN ? 20 : 93; /* sees it and conflicts */
}

/* Fork a child as (uid, gid, groups), re-exec this binary in probe mode with
 * the group setting, collect its exit status and stderr. */
static int run_as(uid_t uid, gid_t gid, int member, int fallback, const char *path, const char *registry, char *err,
                  size_t errlen)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        gid_t groups[1] = {GID};
        if (setgroups(member ? 1 : 0, groups) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
            _exit(95);
        char *argv[] = {"t_group", "--probe", (char *)path, NULL};
        char reg[128], pre[512];
        snprintf(reg, sizeof reg, "QNXCOMPAT_REGISTRY=%s", registry);
        snprintf(pre, sizeof pre, "LD_PRELOAD=%s", getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
        char *envp[8] = {reg, pre, "QNXCOMPAT_REGISTRY_GROUP=nogroup", "QTEST_MODE=shim"};
        qtest_env_mirror(envp, 4);
        if (fallback)
            envp[envp[4] ? 5 : 4] = "QNXCOMPAT_FALLBACK=kernel";
        execve("/proc/self/exe", argv, envp);
        _exit(96);
    }
    close(p[1]);
    int st = qtest_wait(pid, 20000);
    ssize_t n = read(p[0], err, errlen - 1);
    err[n > 0 ? n : 0] = 0;
    close(p[0]);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Re-executed as root with the group setting: lock [0,10), say so, wait. */
static int hold(const char *path)
{
    int fd = open(path, O_RDWR);
    struct flock fl = qtest_fl(F_WRLCK, SEEK_SET, 0, 10);
    if (fd < 0 || fcntl(fd, F_SETLK, &fl) != 0)
        return 1;
    const char *up = getenv("QTEST_UP");
    if (!up || write(atoi(up), "L", 1) != 1)
        return 1;
    pause();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--probe") == 0)
        return probe(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--hold") == 0)
        return hold(argv[2]);
    qtest_init();
    if (!qtest_mode_shim())
        return qtest_skip("a shared registry exists only under the shim");
    if (geteuid() != 0 || !getgrgid(GID))
        return qtest_skip("needs root and the group it shares the registry with");
    /* The registry: our QNXCOMPAT_REGISTRY with a suffix, shared by group. */
    char registry[128], path[128], shm[160];
    snprintf(registry, sizeof registry, "%s-group", getenv("QNXCOMPAT_REGISTRY") ? getenv("QNXCOMPAT_REGISTRY") : "qnxcompat-test-group");
    snprintf(shm, sizeof shm, "/dev/shm/%s", registry);
    snprintf(path, sizeof path, "/tmp/qtest-group-%d", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0666);
    CHECK(fd >= 0, "open %s", path);
    fchmod(fd, 0666);

    /* Root holds [0,10) in the shared registry: a re-exec of ourselves would
     * lose the lock, so the holder is a child that keeps running. */
    int up[2];
    CHECK_OK(pipe(up));
    pid_t holder = fork();
    if (holder == 0) {
        char *argv2[] = {"t_group", "--hold", path, NULL};
        char reg[160], pre[512], upfd[32];
        snprintf(reg, sizeof reg, "QNXCOMPAT_REGISTRY=%s", registry);
        snprintf(pre, sizeof pre, "LD_PRELOAD=%s", getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
        snprintf(upfd, sizeof upfd, "QTEST_UP=%d", up[1]);
        char *envp[8] = {reg, pre, "QNXCOMPAT_REGISTRY_GROUP=nogroup", "QTEST_MODE=shim", upfd};
        qtest_env_mirror(envp, 5);
        execve("/proc/self/exe", argv2, envp);
        _exit(96);
    }
    close(up[1]);
    char ready = 0;
    CHECK(read(up[0], &ready, 1) == 1 && ready == 'L', "holder did not lock");

    struct stat st;
    CHECK(stat(shm, &st) == 0, "shared segment %s missing", shm);
    CHECK((st.st_mode & 0777) == 0660 && st.st_gid == GID, "segment mode %o gid %d, want 0660 gid %d",
          st.st_mode & 0777, (int)st.st_gid, GID);

    char err[512];
    int r = run_as(65534, GID, 1, 0, path, registry, err, sizeof err);
    CHECK(r == 20, "member (nobody): probe gave %d, want 20 (sees root's lock and conflicts); stderr: %s", r, err);
    CHECK(err[0] == 0, "member: unexpected stderr: %s", err);

    /* A non-member is refused: its lock calls fail closed with ENOLCK... */
    r = run_as(4321, 4321, 0, 0, path, registry, err, sizeof err);
    CHECK(r == 31, "non-member: probe gave %d, want 31 (F_GETLK fails with ENOLCK: fail closed)", r);
    CHECK(strstr(err, "qnxcompat: not using lock registry") && strstr(err, "EACCES") && !strchr(strchr(err, '\n') ? strchr(err, '\n') + 1 : "", '\n'),
          "non-member: want one refusal line naming EACCES, got: %s", err);
    /* ...unless it opts into kernel locks. */
    r = run_as(4321, 4321, 0, 1, path, registry, err, sizeof err);
    if (qtest_kernel_sees())
        CHECK(r == 20, "non-member with QNXCOMPAT_FALLBACK=kernel: probe gave %d, want 20 (kernel locks: it sees "
              "root's lock through the kernel mirror and conflicts)", r);
    else
        CHECK(r == 10, "non-member with QNXCOMPAT_FALLBACK=kernel, mirror off: probe gave %d, want 10 (kernel locks: "
              "it sees nothing)", r);
    CHECK(strstr(err, "falling back to native kernel locks"), "non-member with fallback: want the fallback line, got: %s",
          err);

    kill(holder, SIGTERM);
    qtest_wait(holder, 5000);
    unlink(path);
    unlink(shm);
    return QTEST_DONE();
}
