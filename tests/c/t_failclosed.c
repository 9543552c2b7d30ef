/*
 * t_failclosed.c - a registry the library cannot use fails lock calls
 * closed, unless kernel locks are asked for.
 *
 * Falling back to kernel locks silently splits the processes of a user into
 * two worlds that do not see each other's locks (the ones that attached the
 * registry and the ones that refused it): double grants.  So a refused
 * segment makes every lock call fail, with one line on stderr:
 *
 *   (a) /dev/shm/<registry> planted before any lock call, with another
 *       layout: magic "QNXCREG1", version 0xDEAD, 1 MiB, mode 0600, ours;
 *   (b) a proper segment (made by a preloaded process) whose mode was then
 *       opened up to 0644;
 *   (c) (root only) a segment owned by another user (nobody);
 *   (d) a proper segment made by a process of the other kernel-mirror mode
 *       (QNXCOMPAT_MIRROR=off against the default, and the reverse), whose
 *       line names QNXCOMPAT_MIRROR;
 * for each, a process that loads the library with that registry gets
 *   F_SETLK -> -1 ENOLCK, lockf(F_TLOCK) -> -1 ENOMEM, flock -> -1 ENOLCK,
 *   each twice, and exactly one stderr line containing "qnxcompat";
 * and with QNXCOMPAT_FALLBACK=kernel in its environment the same calls
 * return 0 (kernel locks), still with exactly one such line.  The planted
 * segment is never changed.
 *
 * Natively (no library) every call returns 0 and nothing is printed.
 *
 * The registries are named "<QNXCOMPAT_REGISTRY>-fc-<tag>" and set in the
 * environment of a re-executed helper, so the test's own registry is left
 * alone; every one is removed again.
 *
 * Helper modes (this binary re-executed):
 *     t_failclosed --calls PATH    the lock calls, one "NAME <result>" line
 *                                  each ("SETLK1 -1 ENOLCK", "TLOCK2 0")
 *     t_failclosed --lock-once PATH   take and drop one lock (creates the
 *                                  registry)
 */
#include "qtest.h"

#define NOBODY_UID 65534
#define SEG_ODD_SIZE (1 << 20)

static const char *path;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void say(const char *name, int r, int e)
{
    char b[64];
    qtest_print("%s %s", name, qtest_rc_str(r, e, b, sizeof b));
}

static int calls_main(const char *p)
{
    int fd = open(p, O_RDWR);
    if (fd < 0)
        return 3;
    for (int i = 1; i <= 2; i++) {
        char n[16];
        errno = 0;
        int r = setlk(fd, F_WRLCK, 0, 10);
        snprintf(n, sizeof n, "SETLK%d", i);
        say(n, r, errno);
        if (r == 0)
            unlock(fd, 0, 10);

        qtest_seek(fd, 20);
        errno = 0;
        r = lockf(fd, F_TLOCK, 10);
        snprintf(n, sizeof n, "TLOCK%d", i);
        say(n, r, errno);
        if (r == 0) {
            qtest_seek(fd, 20);
            lockf(fd, F_ULOCK, 10);
        }

        errno = 0;
        r = flock(fd, LOCK_EX);
        snprintf(n, sizeof n, "FLOCK%d", i);
        say(n, r, errno);
        if (r == 0)
            flock(fd, LOCK_UN);
    }
    close(fd);
    return 0;
}

static int lock_once_main(const char *p)
{
    int fd = open(p, O_RDWR);
    if (fd < 0 || setlk(fd, F_WRLCK, 0, 1) != 0 || unlock(fd, 0, 1) != 0)
        return 3;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Test side                                                                 */
/* ------------------------------------------------------------------------ */

/* Run the calls helper with registry `name` (fallback: QNXCOMPAT_FALLBACK
 * =kernel) and check its results. */
static void run_calls_env(const char *tag, const char *name, int fallback,
                          char *extra, const char *why)
{
    char regenv[160];
    snprintf(regenv, sizeof regenv, "QNXCOMPAT_REGISTRY=%s", name);
    char *env[] = {regenv,
                   fallback ? "QNXCOMPAT_FALLBACK=kernel" : "QNXCOMPAT_FALLBACK",
                   extra, NULL};
    char *argv[] = {"t_failclosed", "--calls", (char *)path, NULL};
    qtest_helper h = qtest_spawn(NULL, argv, env);
    char out[2048] = "", err[4096] = "", o1[2100], e1[4200];
    qtest_read_until(h.out, out, sizeof out, "FLOCK2", 10000);
    int st = qtest_helper_finish(&h, 5000, out, sizeof out, err, sizeof err);
    char d[96];
    qtest_describe_status(st, d, sizeof d);
    const char *how = fallback ? "with QNXCOMPAT_FALLBACK=kernel"
                               : "without QNXCOMPAT_FALLBACK";
    CHECK(qtest_exited0(st), "%s %s: helper %s; stdout \"%s\"", tag, how, d,
          qtest_oneline(out, o1, sizeof o1));

    int closed = qtest_mode_shim() && !fallback;
    static const char *const names[] = {"SETLK", "TLOCK", "FLOCK"};
    static const char *const closed_want[] = {"-1 ENOLCK", "-1 ENOMEM",
                                              "-1 ENOLCK"};
    static const char *const calls[] = {"F_SETLK", "lockf(F_TLOCK)",
                                        "flock(LOCK_EX)"};
    for (int i = 1; i <= 2; i++)
        for (int k = 0; k < 3; k++) {
            char key[16], got[64] = "(none)";
            snprintf(key, sizeof key, "%s%d ", names[k], i);
            const char *p = strstr(out, key);
            if (p) {
                p += strlen(key);
                size_t n = strcspn(p, "\n");
                snprintf(got, sizeof got, "%.*s", (int)n, p);
            }
            const char *want = closed ? closed_want[k] : "0";
            CHECK(strcmp(got, want) == 0,
                  "%s %s: %s #%d gave %s, expected %s%s", tag, how, calls[k],
                  i, got, want,
                  closed ? " (a refused registry fails closed)"
                         : qtest_mode_shim() ? " (kernel locks)" : "");
        }
    int lines = qtest_count_lines(err, "qnxcompat");
    int want_lines = qtest_mode_shim() ? 1 : 0;
    CHECK(lines == want_lines, "%s %s: %d stderr lines mention qnxcompat, "
          "expected %d: \"%s\"", tag, how, lines, want_lines,
          qtest_oneline(err, e1, sizeof e1));
    CHECK(!qtest_mode_shim() || !why || strstr(err, why),
          "%s %s: the line does not say why (\"%s\"): \"%s\"", tag, how,
          why ? why : "", qtest_oneline(err, e1, sizeof e1));
}

static void run_calls(const char *tag, const char *name, int fallback)
{
    run_calls_env(tag, name, fallback, NULL, NULL);
}

/* Both runs against the planted segment at /dev/shm/<name>; it must not
 * change. */
static void case_segment(const char *tag, const char *name)
{
    char seg[256];
    snprintf(seg, sizeof seg, "/dev/shm/%s", name);
    struct qtest_file_snap before = qtest_file_snapshot(seg);
    run_calls(tag, name, 0);
    run_calls(tag, name, 1);
    struct qtest_file_snap after = qtest_file_snapshot(seg);
    CHECK(qtest_file_same(&before, &after),
          "%s: the refused segment was changed (size %lld -> %lld, mode %o -> "
          "%o)", tag, (long long)before.st.st_size, (long long)after.st.st_size,
          (unsigned)before.st.st_mode, (unsigned)after.st.st_mode);
    qtest_remove_path(seg);
}

static void other_layout(void)
{
    char name[160], seg[256];
    qtest_registry_name(name, sizeof name, "fc-layout");
    snprintf(seg, sizeof seg, "/dev/shm/%s", name);
    unsigned char hdr[12];
    memcpy(hdr, "QNXCREG1", 8);
    uint32_t v = 0xDEAD;
    memcpy(hdr + 8, &v, 4);
    qtest_make_segment(seg, SEG_ODD_SIZE, hdr, sizeof hdr, 0600);
    case_segment("(a) other layout", name);
}

static void permissive(void)
{
    char name[160], seg[256];
    qtest_registry_name(name, sizeof name, "fc-perm");
    snprintf(seg, sizeof seg, "/dev/shm/%s", name);
    unlink(seg);
    qtest_track_path(seg);
    if (qtest_mode_shim()) {
        /* a proper segment, made by a preloaded process */
        char regenv[200];
        snprintf(regenv, sizeof regenv, "QNXCOMPAT_REGISTRY=%s", name);
        char *env[] = {regenv, NULL};
        char *argv[] = {"t_failclosed", "--lock-once", (char *)path, NULL};
        qtest_helper h = qtest_spawn(NULL, argv, env);
        int st = qtest_helper_finish(&h, 10000, NULL, 0, NULL, 0);
        struct stat sb;
        int made = qtest_exited0(st) && stat(seg, &sb) == 0 &&
                   (sb.st_mode & 0777) == 0600;
        CHECK(made, "(b) a preloaded process did not create the segment %s "
              "(status %#x)", seg, st);
        if (!made) {
            qtest_remove_path(seg);
            return;
        }
        if (chmod(seg, 0644) != 0)
            qtest_fatal("chmod segment");
    } else {
        qtest_make_segment(seg, SEG_ODD_SIZE, NULL, 0, 0644);
    }
    case_segment("(b) mode 0644", name);
}

/* (d) a segment made by a process of the other kernel-mirror mode: one
 * registry has one mode (a mirrored process would take a mirror-off
 * process's locks, which the kernel does not hold, for stale). */
static void other_mode(void)
{
    if (!qtest_mode_shim()) {
        qtest_print("SKIP (d) other mirror mode: no registry natively");
        return;
    }
    for (int off = 0; off < 2; off++) {
        char name[160], seg[256], regenv[200];
        qtest_registry_name(name, sizeof name, off ? "fc-mode-off" : "fc-mode-on");
        snprintf(seg, sizeof seg, "/dev/shm/%s", name);
        unlink(seg);
        qtest_track_path(seg);
        snprintf(regenv, sizeof regenv, "QNXCOMPAT_REGISTRY=%s", name);
        /* the creator: mirror off, or on */
        char *env[] = {regenv, off ? "QNXCOMPAT_MIRROR=off" : "QNXCOMPAT_MIRROR", NULL};
        char *argv[] = {"t_failclosed", "--lock-once", (char *)path, NULL};
        qtest_helper h = qtest_spawn(NULL, argv, env);
        int st = qtest_helper_finish(&h, 10000, NULL, 0, NULL, 0);
        CHECK(qtest_exited0(st), "(d) the creator (mirror %s): status %#x",
              off ? "off" : "on", st);
        const char *tag = off ? "(d) a mirror-off registry, the mirror on"
                              : "(d) a mirrored registry, QNXCOMPAT_MIRROR=off";
        char *user = off ? "QNXCOMPAT_MIRROR" : "QNXCOMPAT_MIRROR=off";
        run_calls_env(tag, name, 0, user, "QNXCOMPAT_MIRROR");
        run_calls_env(tag, name, 1, user, "QNXCOMPAT_MIRROR");
        qtest_remove_path(seg);
    }
}

static void foreign(void)
{
    if (geteuid() != 0) {
        qtest_print("SKIP (c) foreign owner: needs root to give a segment away");
        return;
    }
    char name[160], seg[256];
    qtest_registry_name(name, sizeof name, "fc-foreign");
    snprintf(seg, sizeof seg, "/dev/shm/%s", name);
    qtest_make_segment(seg, SEG_ODD_SIZE, NULL, 0, 0600);
    if (chown(seg, NOBODY_UID, (gid_t)-1) != 0)
        qtest_fatal("chown segment");
    case_segment("(c) owned by nobody", name);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--calls") == 0) {
        alarm(20);
        return calls_main(argv[2]);
    }
    if (argc >= 3 && strcmp(argv[1], "--lock-once") == 0) {
        alarm(20);
        return lock_once_main(argv[2]);
    }
    qtest_init();
    signal(SIGALRM, qtest_on_timeout);
    int fd = qtest_tmpfile(100, &path);
    close(fd);
    other_layout();
    permissive();
    other_mode();
    foreign();
    return QTEST_DONE();
}
