/*
 * A small QNX-style program: what changes when it runs under libqnxcompat.
 *
 *   make demo    (runs it under LD_PRELOAD with QNXCOMPAT_TRACE=1)
 *
 * 1. QNX lockf(F_TEST) probes with a write lock, so another process's read
 *    lock makes it fail with EACCES (glibc's lockf reports the section free).
 * 2. QNX releases a process's locks on the first close of any descriptor
 *    for the file, and the release is visible to every process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *path = "/tmp/qnxcompat-demo.dat";

static int child_test(void)
{
    int fd = open(path, O_RDWR);
    int r = lockf(fd, F_TEST, 10);
    printf("child:  lockf(F_TEST) against parent's read lock = %d (%s)\n", r, r ? strerror(errno) : "free");
    close(fd);
    return r == -1 && errno == EACCES ? 0 : 1;
}

static int child_tlock(void)
{
    int fd = open(path, O_RDWR);
    int r = lockf(fd, F_TLOCK, 10);
    printf("child:  lockf(F_TLOCK) after parent closed another fd = %d (%s)\n", r, r ? strerror(errno) : "granted");
    close(fd);
    return r == 0 ? 0 : 1;
}

static int run_child(int (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int r = fn();
        fflush(stdout); /* _exit() does not flush: a pipe or file would lose it */
        _exit(r);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int main(void)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int other = open(path, O_RDONLY);
    if (fd < 0 || other < 0) {
        perror("open");
        return 1;
    }
    struct flock rd = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    if (fcntl(fd, F_SETLK, &rd) != 0) {
        perror("fcntl(F_SETLK)");
        return 1;
    }
    printf("parent: read-locked bytes 0-9\n");
    int failures = run_child(child_test);

    close(other); /* QNX: the first close of any descriptor releases the locks */
    printf("parent: closed a second descriptor of the file\n");
    failures += run_child(child_tlock);

    close(fd);
    unlink(path);
    printf("%s\n", failures ? "demo: NOT QNX semantics (run it under libqnxcompat.so)" : "demo: QNX semantics hold");
    return failures ? 1 : 0;
}
