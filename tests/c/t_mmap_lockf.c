/*
 * t_mmap_lockf.c - lockf() on a file that is mapped with mmap().
 *
 * QNX docs checked: lib_ref l/lockf.html: "EAGAIN: The function argument is
 * F_LOCK or F_TLOCK and the file is mapped with mmap()".  The shim's reading
 * (docs/semantics.md, "Locks and mapped files"): the rule holds while any
 * process maps any part of the file, shared or private (both send the
 * resource manager an _IO_MMAP); F_TEST and F_ULOCK are unaffected, and so is
 * fcntl (the rule is documented for lockf only); anonymous mappings never
 * count.  munmap (partial ones too), MAP_FIXED over a mapping and mremap
 * change what is mapped; a fork child maps what its parent mapped; exec
 * drops the old image's mappings; a mapping dies with its process.
 *
 * Linux has no such rule: natively every F_LOCK/F_TLOCK here succeeds (and
 * is released again), which shows that each check tells QNX from Linux.
 * Wherever a lock is granted, another process's F_SETLK of its first byte
 * must then fail: granted means held.  Each scenario uses a file of its own.
 *
 * The exec cases re-execute this program as
 *     t_mmap_lockf --exec-wait UPFD DOWNFD
 * which says 'E' on UPFD and exits when it reads a byte (or EOF) on DOWNFD,
 * with the shim, without it (LD_PRELOAD removed) and with QNXCOMPAT=off: in
 * every case the new image no longer maps the file.  The trace case as
 *     t_mmap_lockf --trace-tlock FD
 * which maps FD, calls lockf(FD, F_TLOCK, 10) and exits 0 if the result
 * was the one expected in this mode.
 */
#include "qtest.h"

static size_t pg;
static const char *path;
static int fd;

/* Each scenario gets a file of its own, so that one failure cannot spill
 * into the next. */
static void new_file(void)
{
    if (fd > 0)
        close(fd);
    fd = qtest_tmpfile((off_t)(8 * pg), &path);
}

/* ------------------------------------------------------------------------ */
/* Expectations                                                              */
/* ------------------------------------------------------------------------ */

/* This process's lockf(func, size) at offset off must give `want` (0 or an
 * errno); a lock it obtains is released again. */
static void own_lockf(const char *state, int f, int func, off_t off,
                      off_t size, int want, const char *file, int line)
{
    errno = 0;
    int rc = qtest_lockf_at(f, off, func, size);
    int got = rc == 0 ? 0 : rc == -1 ? errno : -1;
    qtest_record(got == want, file, line,
                 "%s: lockf(%s, size=%lld) at %lld by this process: expected "
                 "%s%s, got %s%s", state, qtest_lockfname(func),
                 (long long)size, (long long)off, want ? "-1 " : "",
                 qtest_probe_name(want), rc == -1 ? "-1 " : "",
                 got < 0 ? "a bad return value" : qtest_probe_name(got));
    if (rc == 0 && (func == F_LOCK || func == F_TLOCK)) {
        /* granted means held: another process cannot lock its first byte */
        if (size > 0) {
            int o = qtest_probe_setlk(f, F_WRLCK, off, 1);
            qtest_record(o == EAGAIN, file, line,
                         "%s: lockf(%s, size=%lld) at %lld by this process "
                         "returned 0, but another process's F_SETLK of byte "
                         "%lld then gave %s, not -1 EAGAIN (lock not held)",
                         state, qtest_lockfname(func), (long long)size,
                         (long long)off, (long long)off, qtest_probe_name(o));
        }
        int u = qtest_lockf_at(f, off, F_ULOCK, size);
        qtest_record(u == 0, file, line, "%s: F_ULOCK after a granted %s: %d %s",
                     state, qtest_lockfname(func), u,
                     u ? qtest_errname(errno) : "");
    }
}

/* The file `f` refers to is (mapped = 1) or is not mapped by some process:
 * under the shim F_TLOCK and F_LOCK fail with EAGAIN for this process and
 * for another one exactly while it is mapped; natively they succeed. */
static void expect_mapped(int f, int mapped, const char *state,
                          const char *file, int line)
{
    int want = qtest_mode_shim() && mapped ? EAGAIN : 0;
    own_lockf(state, f, F_TLOCK, 0, 10, want, file, line);
    own_lockf(state, f, F_LOCK, 0, 10, want, file, line);
    qtest_check_lockf(state, f, F_TLOCK, 0, 10, want, want, file, line);
}

#define CHECK_MAPPED(f, state) expect_mapped((f), 1, (state), __FILE__, __LINE__)
#define CHECK_UNMAPPED(f, state)                                              \
    expect_mapped((f), 0, (state), __FILE__, __LINE__)

/* After the last mapper has gone (died, exited): F_TLOCK is granted within
 * about a second (the death may be noticed late); then CHECK_UNMAPPED. */
static void expect_unmapped_soon(int f, const char *state, const char *file,
                                 int line)
{
    double end = qtest_now_ms() + 1500;
    int rc, e = 0;
    do {
        errno = 0;
        rc = qtest_lockf_at(f, 0, F_TLOCK, 10);
        e = errno;
        if (rc == 0)
            break;
        qtest_msleep(20);
    } while (qtest_now_ms() < end);
    qtest_record(rc == 0, file, line,
                 "%s: lockf(F_TLOCK) still %d %s after 1.5 s of retries", state,
                 rc, rc ? qtest_errname(e) : "");
    if (rc == 0) {
        /* the first lock granted after the death is really held */
        int o = qtest_probe_setlk(f, F_WRLCK, 0, 1);
        qtest_record(o == EAGAIN, file, line,
                     "%s: lockf(F_TLOCK) returned 0, but another process's "
                     "F_SETLK of byte 0 then gave %s, not -1 EAGAIN (lock not "
                     "held)", state, qtest_probe_name(o));
        qtest_lockf_at(f, 0, F_ULOCK, 10);
    }
    expect_mapped(f, 0, state, file, line);
}

#define CHECK_UNMAPPED_SOON(f, state)                                         \
    expect_unmapped_soon((f), (state), __FILE__, __LINE__)

static char *map_file(int f, size_t len, int prot, int flags, off_t off)
{
    void *p = mmap(NULL, len, prot, flags, f, off);
    if (p == MAP_FAILED)
        qtest_fatal("mmap file");
    return p;
}

static char *map_rw(size_t npages, int flags)
{
    return map_file(fd, npages * pg, PROT_READ | PROT_WRITE, flags, 0);
}

/* ------------------------------------------------------------------------ */
/* In this process                                                           */
/* ------------------------------------------------------------------------ */

static void same_process(int flags, const char *kind)
{
    int shim = qtest_mode_shim();
    char st[96];
    snprintf(st, sizeof st, "not mapped yet (%s)", kind);
    CHECK_UNMAPPED(fd, st);

    char *p = map_rw(1, flags);
    snprintf(st, sizeof st, "first page mapped %s by this process", kind);
    CHECK_MAPPED(fd, st);
    /* the whole file counts, not only the mapped bytes */
    own_lockf(st, fd, F_TLOCK, 3 * pg, 10, shim ? EAGAIN : 0, __FILE__,
              __LINE__);
    own_lockf(st, fd, F_TLOCK, 0, 0, shim ? EAGAIN : 0, __FILE__, __LINE__);
    own_lockf(st, fd, F_LOCK, 2 * pg, -10, shim ? EAGAIN : 0, __FILE__,
              __LINE__);
    CHECK_OTHER_LOCKF_IN(st, fd, F_LOCK, 5 * pg, 100, shim ? EAGAIN : 0);
    /* F_TEST and F_ULOCK are unaffected */
    own_lockf(st, fd, F_TEST, 0, 10, 0, __FILE__, __LINE__);
    own_lockf(st, fd, F_ULOCK, 0, 10, 0, __FILE__, __LINE__);
    own_lockf(st, fd, F_ULOCK, 0, 0, 0, __FILE__, __LINE__);
    CHECK_OTHER_LOCKF_IN(st, fd, F_TEST, 0, 10, 0);
    CHECK_OTHER_LOCKF_IN(st, fd, F_ULOCK, 0, 10, 0);
    /* another descriptor of the same file */
    int fd2 = qtest_open(path, O_RDWR);
    CHECK_MAPPED(fd2, st);
    close(fd2);
    /* a failed munmap changes nothing */
    CHECK_ERR(munmap(p + 1, pg), EINVAL);
    CHECK_MAPPED(fd, "after a munmap that failed with EINVAL");

    CHECK_OK(munmap(p, pg));
    snprintf(st, sizeof st, "after munmap of the %s mapping", kind);
    CHECK_UNMAPPED(fd, st);
}

/* mmap64 counts too; so does a mapping made through a read-only descriptor,
 * and the mapping outlives the descriptor it was made with */
static void other_descriptors(void)
{
    void *p = mmap64(NULL, pg, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        qtest_fatal("mmap64");
    CHECK_MAPPED(fd, "mapped with mmap64");
    CHECK_OK(munmap(p, pg));
    CHECK_UNMAPPED(fd, "after munmap of the mmap64 mapping");

    int ro = qtest_open(path, O_RDONLY);
    char *a = map_file(ro, pg, PROT_READ, MAP_SHARED, 0);
    char *b = map_file(ro, pg, PROT_READ, MAP_PRIVATE, pg);
    CHECK_OK(close(ro));
    CHECK_MAPPED(fd, "mapped (shared and private) through a read-only "
                     "descriptor that is closed since");
    CHECK_OK(munmap(a, pg));
    CHECK_MAPPED(fd, "private read-only mapping left");
    CHECK_OK(munmap(b, pg));
    CHECK_UNMAPPED(fd, "both read-only mappings unmapped");

    /* a dup used for the mapping and closed */
    int d = dup(fd);
    char *c = map_file(d, pg, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    CHECK_OK(close(d));
    CHECK_MAPPED(fd, "mapped through a dup that is closed since");
    CHECK_OK(munmap(c, pg));
    CHECK_UNMAPPED(fd, "after munmap of the mapping made through a dup");
}

/* Mapping another file, or anonymous memory, changes nothing for this one. */
static void unrelated_mappings(void)
{
    const char *opath;
    int other = qtest_tmpfile(4 * pg, &opath);
    char *o = map_file(other, pg, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    CHECK_UNMAPPED(fd, "only another file is mapped");
    CHECK_MAPPED(other, "the other file is mapped");
    CHECK_OK(munmap(o, pg));
    CHECK_UNMAPPED(other, "the other file unmapped");
    close(other);

    char *s = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *q = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* Linux ignores the descriptor of an anonymous mapping */
    char *w = mmap(NULL, pg, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, fd, 0);
    CHECK(s != MAP_FAILED && q != MAP_FAILED && w != MAP_FAILED,
          "anonymous mmap failed");
    CHECK_UNMAPPED(fd, "anonymous mappings only (one given this file's fd)");
    if (s != MAP_FAILED)
        munmap(s, 2 * pg);
    if (q != MAP_FAILED)
        munmap(q, 2 * pg);
    if (w != MAP_FAILED)
        munmap(w, pg);
}

/* fcntl locks are not affected by the mapping; F_TEST sees conflicts as
 * usual; F_ULOCK releases a lock taken before the mapping */
static void fcntl_and_test(void)
{
    int shim = qtest_mode_shim();
    char *p = map_rw(2, MAP_SHARED);
    CHECK_OK(setlk(fd, F_WRLCK, 0, 10));
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 5, 1);
    CHECK_GETLK(fd, 0, 10, F_WRLCK, 0, 10, getpid());
    CHECK_OK(setlkw(fd, F_RDLCK, 20, 10));
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 25, 1);
    /* F_TEST by another process finds our lock */
    if (shim)
        CHECK_OTHER_LOCKF_IN("mapped, fcntl lock held", fd, F_TEST, 0, 10,
                             EACCES);
    else
        CHECK_OTHER_LOCKF2(fd, F_TEST, 0, 10, EACCES, EAGAIN);
    CHECK_OK(unlock(fd, 0, 0));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 0);
    CHECK_OK(munmap(p, 2 * pg));

    /* a lockf lock taken before the mapping is released by F_ULOCK */
    CHECK_OK(qtest_lockf_at(fd, 0, F_TLOCK, 10));
    p = map_rw(1, MAP_PRIVATE);
    CHECK_CANNOT_LOCK(fd, F_WRLCK, 0, 10);
    CHECK_OK(qtest_lockf_at(fd, 0, F_TEST, 10));
    CHECK_OK(qtest_lockf_at(fd, 0, F_ULOCK, 10));
    CHECK_CAN_LOCK(fd, F_WRLCK, 0, 10);
    CHECK_OK(munmap(p, pg));
    CHECK_UNMAPPED(fd, "after munmap");
}

/* ------------------------------------------------------------------------ */
/* Partial munmap, MAP_FIXED, mremap                                         */
/* ------------------------------------------------------------------------ */

static void partial_munmap(void)
{
    char *p = map_rw(3, MAP_SHARED);
    CHECK_MAPPED(fd, "3 pages mapped");
    CHECK_OK(munmap(p + pg, pg));
    CHECK_MAPPED(fd, "middle page of 3 unmapped");
    CHECK_OK(munmap(p, pg));
    CHECK_MAPPED(fd, "middle and first pages unmapped, third mapped");
    CHECK_OK(munmap(p + 2 * pg, pg));
    CHECK_UNMAPPED(fd, "all 3 pages unmapped piecewise");

    /* one munmap over several mappings and the gaps between them */
    p = map_rw(3, MAP_PRIVATE);
    CHECK_OK(munmap(p + pg, pg));
    CHECK_MAPPED(fd, "first and third pages mapped");
    CHECK_OK(munmap(p, 3 * pg));
    CHECK_UNMAPPED(fd, "one munmap over both pieces");

    /* a length that is not a multiple of the page size */
    p = map_file(fd, pg + 100, PROT_READ, MAP_SHARED, 0);
    CHECK_OK(munmap(p + pg, 1));
    CHECK_MAPPED(fd, "(page + 100)-byte mapping, second page unmapped");
    CHECK_OK(munmap(p, 100));
    CHECK_UNMAPPED(fd, "(page + 100)-byte mapping, both pages unmapped");
}

static void map_fixed(void)
{
    /* anonymous memory mapped over the file mapping replaces it */
    char *p = map_rw(2, MAP_SHARED);
    void *r = mmap(p, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                   -1, 0);
    CHECK(r == p, "MAP_FIXED anonymous over the first page: %p, wanted %p", r,
          (void *)p);
    CHECK_MAPPED(fd, "MAP_FIXED anonymous over the first of 2 mapped pages");
    r = mmap(p + pg, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
             -1, 0);
    CHECK(r == p + pg, "MAP_FIXED anonymous over the second page failed");
    CHECK_UNMAPPED(fd, "MAP_FIXED anonymous over both mapped pages");
    munmap(p, 2 * pg);

    /* the file mapped again over its own mapping stays mapped */
    p = map_rw(1, MAP_SHARED);
    r = mmap(p, pg, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, pg);
    CHECK(r == p, "MAP_FIXED file mapping over itself failed");
    CHECK_MAPPED(fd, "the file MAP_FIXED over its own mapping");
    CHECK_OK(munmap(p, pg));
    CHECK_UNMAPPED(fd, "after munmap of the MAP_FIXED file mapping");

    /* the file MAP_FIXED into anonymous memory counts */
    char *a = mmap(NULL, 3 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        qtest_fatal("mmap");
    r = mmap(a + pg, pg, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
    CHECK(r == a + pg, "MAP_FIXED file into anonymous memory failed");
    CHECK_MAPPED(fd, "the file MAP_FIXED into anonymous memory");
    CHECK_OK(munmap(a, 3 * pg));
    CHECK_UNMAPPED(fd, "after munmap of the whole area");
}

static void remap(void)
{
    new_file();
    /* grow a 1-page mapping that cannot grow in place: it moves */
    char *area = mmap(NULL, 2 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                      0);
    if (area == MAP_FAILED)
        qtest_fatal("mmap");
    char *p = mmap(area, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                   fd, 0);
    if (p != area)
        qtest_fatal("mmap MAP_FIXED");
    CHECK_MAPPED(fd, "1 page mapped, an anonymous page after it");
    char *q = mremap(p, pg, 3 * pg, MREMAP_MAYMOVE);
    CHECK(q != MAP_FAILED && q != p, "mremap to 3 pages: %p (from %p)", q,
          (void *)p);
    if (q == MAP_FAILED)
        return;
    CHECK_MAPPED(fd, "after mremap(MREMAP_MAYMOVE) moved it, 3 pages");
    CHECK_OK(munmap(q, pg));
    CHECK_MAPPED(fd, "first of the 3 remapped pages unmapped");
    CHECK_OK(munmap(q + pg, 2 * pg));
    CHECK_UNMAPPED(fd, "after munmap of the moved mapping");
    munmap(area + pg, pg);

    new_file();
    /* MREMAP_FIXED: to a given address */
    char *target = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (target == MAP_FAILED)
        qtest_fatal("mmap");
    p = map_rw(1, MAP_PRIVATE);
    q = mremap(p, pg, pg, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    CHECK(q == target, "mremap MREMAP_FIXED: %p, wanted %p", q, (void *)target);
    CHECK_MAPPED(fd, "after mremap(MREMAP_FIXED)");
    CHECK_OK(munmap(target, pg));
    CHECK_UNMAPPED(fd, "after munmap at the MREMAP_FIXED address");
}

/* mremap that keeps the address (shrinking, growing in place).  Run last:
 * the registry is shared by every process, so if the library mishandles
 * these, the damage must not be mistaken for failures of other cases. */
static void remap_in_place(void)
{
    char *p, *q, *area;
    new_file();
    /* shrink in place, then unmap what is left */
    p = map_rw(3, MAP_SHARED);
    q = mremap(p, 3 * pg, pg, 0);
    CHECK(q == p, "mremap shrinking in place: %p (from %p)", q, (void *)p);
    CHECK_MAPPED(fd, "mapping shrunk to 1 page");
    CHECK_OK(munmap(p, pg));
    CHECK_UNMAPPED(fd, "after munmap of the shrunk mapping");

    new_file();
    /* grow in place where there is room */
    area = mmap(NULL, 3 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED)
        qtest_fatal("mmap");
    munmap(area + pg, 2 * pg);
    p = mmap(area, pg, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
    q = mremap(p, pg, 3 * pg, 0);
    CHECK(q == p, "mremap growing in place: %p (from %p)", q, (void *)p);
    if (q == p) {
        CHECK_OK(munmap(p, pg));
        CHECK_MAPPED(fd, "first page of a mapping grown in place unmapped");
        CHECK_OK(munmap(p + pg, 2 * pg));
    } else {
        munmap(p, pg);
    }
    CHECK_UNMAPPED(fd, "after munmap of the mapping grown in place");
}

/* ------------------------------------------------------------------------ */
/* Other processes                                                           */
/* ------------------------------------------------------------------------ */

/* child: map, 'M', await 'U', munmap, 'u', await 'Q' */
static void mapper(void *arg)
{
    int flags = *(int *)arg;
    char *p = map_rw(2, flags);
    CHECK_OK(close(fd)); /* the mapping outlives the descriptor */
    child_say('M');
    if (!child_await('U', 20000))
        return;
    CHECK_OK(munmap(p, 2 * pg));
    child_say('u');
    child_await('Q', 20000);
}

/* A child fn(arg) maps the file and says 'M'; told `go`, it lets the
 * mapping go and says `gone`.  CHECK the file is mapped for lockf before
 * (`before` says how) and not after. */
static qtest_child mapped_then_gone(void (*fn)(void *), void *arg, int go,
                                    int gone, const char *before,
                                    const char *after)
{
    qtest_child c = qtest_child_start(fn, arg);
    CHECK_HEAR(&c, 'M', 5000, NULL);
    CHECK_MAPPED(fd, before);
    qtest_say(&c, go);
    CHECK_HEAR(&c, gone, 5000, NULL);
    CHECK_UNMAPPED(fd, after);
    return c;
}

static void other_process(int flags, const char *kind)
{
    char st[96], st2[96];
    snprintf(st, sizeof st, "mapped %s by another process", kind);
    snprintf(st2, sizeof st2, "the other process unmapped it (%s)", kind);
    qtest_child c = mapped_then_gone(mapper, &flags, 'U', 'u', st, st2);
    CHECK_CHILD_FINISH(&c);
}

/* fork child: says 'R', checks its own lockf sees the inherited mapping,
 * awaits 'U', munmaps, 'u', awaits 'Q' (or 'X': exit without munmap) */
static char *inherited;

static void inheritor(void *arg)
{
    (void)arg;
    child_say('R');
    if (!child_await('C', 20000))
        return;
    expect_mapped(fd, 1, "fork child, inherited mapping", __FILE__, __LINE__);
    child_say('c');
    struct qtest_msg m;
    if (qtest_get(qtest_down_fd, 20000, &m) != 1 || m.tag == 'X')
        _exit(0); /* exit, still mapping it */
    CHECK_OK(munmap(inherited, pg));
    child_say('u');
    child_await('Q', 20000);
}

static void fork_inherits(void)
{
    new_file();
    /* the parent unmaps once the child runs */
    inherited = map_rw(1, MAP_SHARED);
    qtest_child c = qtest_child_start(inheritor, NULL);
    CHECK_HEAR(&c, 'R', 5000, NULL);
    CHECK_OK(munmap(inherited, pg));
    CHECK_MAPPED(fd, "parent unmapped, fork child still maps it");
    qtest_say(&c, 'C');
    CHECK_HEAR(&c, 'c', 10000, NULL);
    qtest_say(&c, 'U');
    CHECK_HEAR(&c, 'u', 5000, NULL);
    CHECK_UNMAPPED(fd, "parent and fork child unmapped it");
    CHECK_CHILD_FINISH(&c);

    new_file();
    /* the parent unmaps at once after fork() */
    inherited = map_rw(1, MAP_PRIVATE);
    c = qtest_child_start(inheritor, NULL);
    CHECK_OK(munmap(inherited, pg));
    CHECK_HEAR(&c, 'R', 5000, NULL);
    CHECK_MAPPED(fd, "parent unmapped right after fork, the child maps it");
    qtest_say(&c, 'C');
    CHECK_HEAR(&c, 'c', 10000, NULL);
    qtest_say(&c, 'X'); /* the child exits, still mapping it */
    CHECK_EXIT0(c.pid);
    close(c.from_child);
    close(c.to_child);
    CHECK_UNMAPPED_SOON(fd, "the fork child exited without munmap");

    new_file();
    /* the child unmaps, the parent still maps it */
    inherited = map_rw(1, MAP_SHARED);
    c = qtest_child_start(inheritor, NULL);
    CHECK_HEAR(&c, 'R', 5000, NULL);
    qtest_say(&c, 'C');
    CHECK_HEAR(&c, 'c', 10000, NULL);
    qtest_say(&c, 'U');
    CHECK_HEAR(&c, 'u', 5000, NULL);
    CHECK_MAPPED(fd, "the fork child unmapped, the parent still maps it");
    CHECK_CHILD_FINISH(&c);
    CHECK_MAPPED(fd, "the fork child exited, the parent still maps it");
    CHECK_OK(munmap(inherited, pg));
    CHECK_UNMAPPED(fd, "the parent unmapped too");
}

/* child: map, say 'M', then sleep until killed */
static void map_and_wait(void *arg)
{
    (void)arg;
    map_rw(2, MAP_SHARED);
    child_say('M');
    child_await('Q', 30000);
}

static void mapper_dies(void)
{
    new_file();
    qtest_child c = qtest_child_start(map_and_wait, NULL);
    CHECK_HEAR(&c, 'M', 5000, NULL);
    CHECK_MAPPED(fd, "mapped by a child that will be killed");
    CHECK_OK(kill(c.pid, SIGKILL));
    int st = qtest_wait(c.pid, 5000);
    CHECK(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
          "the mapping child was not killed");
    close(c.from_child);
    close(c.to_child);
    CHECK_UNMAPPED_SOON(fd, "the mapping child was SIGKILLed");

    new_file();
    /* killed without being reaped yet: a zombie maps nothing */
    c = qtest_child_start(map_and_wait, NULL);
    CHECK_HEAR(&c, 'M', 5000, NULL);
    CHECK_OK(kill(c.pid, SIGKILL));
    siginfo_t si;
    CHECK_OK(waitid(P_PID, (id_t)c.pid, &si, WEXITED | WNOWAIT));
    CHECK_UNMAPPED_SOON(fd, "the mapping child was SIGKILLed (zombie)");
    qtest_wait(c.pid, 5000);
    close(c.from_child);
    close(c.to_child);

    new_file();
    /* a normal exit without munmap */
    c = qtest_child_start(map_and_wait, NULL);
    CHECK_HEAR(&c, 'M', 5000, NULL);
    CHECK_MAPPED(fd, "mapped by a child that will exit");
    CHECK_CHILD_FINISH(&c);
    CHECK_UNMAPPED_SOON(fd, "the mapping child exited without munmap");
}

/* The exec'd image: 'E' on up, then wait for a message or EOF on down. */
static int exec_wait_main(int up, int down)
{
    alarm(QTEST_CHILD_TIMEOUT_S);
    qtest_put(up, 'E', 0, 0);
    struct pollfd p = {down, POLLIN, 0};
    poll(&p, 1, 30000);
    return 0;
}

/* Child of exec_case(): map the file, say 'M', wait for 'X', then exec this
 * binary (--exec-wait, its pipes passed on as descriptor numbers) with the
 * environment edits arg. */
static void map_then_exec(void *arg)
{
    map_rw(1, MAP_SHARED);
    child_say('M');
    if (!child_await('X', 20000))
        _exit(3);
    char a[16], b[16];
    snprintf(a, sizeof a, "%d", dup(qtest_up_fd)); /* without FD_CLOEXEC */
    snprintf(b, sizeof b, "%d", dup(qtest_down_fd));
    char *argv[] = {"t_mmap_lockf", "--exec-wait", a, b, NULL};
    qtest_apply_env(arg);
    execv("/proc/self/exe", argv);
    _exit(127);
}

/* A child maps the file, then execs this binary with the environment edits
 * `env` (see qtest_apply_env); after the new image says 'E' the file is no
 * longer mapped. */
static void exec_case(char **env, const char *what)
{
    char st[128], st2[128];
    snprintf(st, sizeof st, "mapped by a child before it execs %s", what);
    snprintf(st2, sizeof st2, "the mapping child exec'd %s", what);
    qtest_child c = mapped_then_gone(map_then_exec, env, 'X', 'E', st, st2);
    close(c.to_child); /* EOF: the new image exits */
    CHECK_EXIT0(c.pid);
    close(c.from_child);
}

static void exec_drops(void)
{
    new_file();
    exec_case(NULL, "this program (with the shim)");
    /* a program that does not load the shim */
    char *no_shim[] = {"LD_PRELOAD", NULL};
    new_file();
    exec_case(no_shim, "a program without the shim");
    /* the shim loaded but switched off in the new image */
    char *off[] = {"QNXCOMPAT=off", NULL};
    new_file();
    exec_case(off, "this program with QNXCOMPAT=off");
}

/* ------------------------------------------------------------------------ */
/* Trace                                                                     */
/* ------------------------------------------------------------------------ */

static int trace_tlock_main(int f)
{
    alarm(QTEST_CHILD_TIMEOUT_S);
    void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, f, 0);
    if (p == MAP_FAILED)
        return 2;
    lseek(f, 0, SEEK_SET);
    int rc = lockf(f, F_TLOCK, 10);
    int e = errno;
    int ok = qtest_mode_shim() ? rc == -1 && e == EAGAIN : rc == 0;
    if (rc == 0)
        lockf(f, F_ULOCK, 10);
    munmap(p, 4096);
    return ok ? 0 : 1;
}

static void trace(void)
{
    struct qtest_trace_file tf = qtest_trace_file();
    char *env[] = {"QNXCOMPAT", "QNXCOMPAT_TRACE=1", tf.env, NULL};
    char a[16];
    snprintf(a, sizeof a, "%d", fd);
    char *argv[] = {"t_mmap_lockf", "--trace-tlock", a, NULL};
    pid_t pid = CHECK_RUN_SELF(argv, env, NULL, NULL,
                               qtest_mode_shim()
                                   ? "traced child (map, lockf F_TLOCK: -1 "
                                     "EAGAIN expected)"
                                   : "traced child (map, lockf F_TLOCK: 0 "
                                     "expected)");
    char *t = qtest_slurp_trace(tf.path);
    if (qtest_mode_shim()) {
        char want[128];
        snprintf(want, sizeof want, "lockf(fd=%d, F_TLOCK, size=10) = -1 EAGAIN (",
                 fd);
        CHECK_TRACED(t, pid, want, NULL);
    } else {
        CHECK(t[0] == 0, "native run wrote a trace: %.200s", t);
    }
    free(t);
}

int main(int argc, char **argv)
{
    pg = (size_t)sysconf(_SC_PAGESIZE);
    if (argc == 4 && strcmp(argv[1], "--exec-wait") == 0)
        return exec_wait_main(atoi(argv[2]), atoi(argv[3]));
    if (argc == 3 && strcmp(argv[1], "--trace-tlock") == 0)
        return trace_tlock_main(atoi(argv[2]));

    qtest_init();
    new_file();
    same_process(MAP_SHARED, "MAP_SHARED");
    new_file();
    same_process(MAP_PRIVATE, "MAP_PRIVATE");
    new_file();
    other_descriptors();
    new_file();
    unrelated_mappings();
    new_file();
    fcntl_and_test();
    new_file();
    partial_munmap();
    new_file();
    map_fixed();
    remap();
    new_file();
    other_process(MAP_SHARED, "MAP_SHARED");
    new_file();
    other_process(MAP_PRIVATE, "MAP_PRIVATE");
    fork_inherits();
    mapper_dies();
    exec_drops();
    new_file();
    trace();
    remap_in_place();
    close(fd);
    return QTEST_DONE();
}
