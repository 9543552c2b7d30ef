/*
 * t_iofunc: the QNX resource-manager lock API, tested the way a QNX
 * resource-manager test would be: _IO_LOCK messages from two or three
 * simulated clients and their OCBs are handed to iofunc_lock_default(),
 * and what each blocked client is eventually told is collected from the
 * emulated MsgReply/MsgError path.
 *
 * QNX pages: iofunc_lock(), iofunc_lock_default() (spec/), and
 * iofunc_close_dup_default(), iofunc_unblock_default(), iofunc_func_init(),
 * iofunc_attr_init() (QNX's iofunc_attr_init() and iofunc_lock_default() pages).
 *
 * Built with -lqnxcompat (run.sh LINKED_TESTS): these functions exist only
 * in the library, so there is no native run.
 */
#include <sys/iofunc.h>

#include "qtest.h"
#include "qnxcompat.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>

/* An _IO_LOCK message as a client's libc sends it: the header, then the
 * flock_t at offset 12 (QNX: flock_t *fl = (flock_t *)(msg + 1)). */
struct lockmsg {
    io_lock_t     m;
    unsigned char data[sizeof(flock_t)];
};

struct client {
    resmgr_context_t ctp;
};

static int next_rcvid = 100;

static void client_init(struct client *c, pid_t pid, int scoid)
{
    memset(c, 0, sizeof *c);
    c->ctp.info.pid = pid;
    c->ctp.info.scoid = scoid;
    c->ctp.info.nd = 0;
}

static void ocb_init(iofunc_ocb_t *o, iofunc_attr_t *attr, int oflag)
{
    memset(o, 0, sizeof *o);
    o->attr = attr;
    o->ioflag = oflag + 1; /* QNX: open()'s oflag + 1 */
}

static void msg_build(struct lockmsg *lm, unsigned subtype, short type,
                      short whence, off_t start, off_t len)
{
    memset(lm, 0, sizeof *lm);
    lm->m.i.type = _IO_LOCK;
    lm->m.i.combine_len = sizeof(lm->m.i);
    lm->m.i.subtype = subtype;
    lm->m.i.nbytes = sizeof(flock_t);
    flock_t fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = whence;
    fl.l_start = start;
    fl.l_len = len;
    memcpy(lm->data, &fl, sizeof fl);
}

static flock_t msg_flock(const struct lockmsg *lm)
{
    flock_t fl;
    memcpy(&fl, lm->data, sizeof fl);
    return fl;
}

/* One request through the default handler; sets the client's rcvid. */
static int req(struct client *c, iofunc_ocb_t *o, unsigned sub, short type,
               off_t start, off_t len, struct lockmsg *out)
{
    struct lockmsg lm;
    msg_build(&lm, sub, type, SEEK_SET, start, len);
    c->ctp.rcvid = next_rcvid++;
    int r = iofunc_lock_default(&c->ctp, &lm.m, o);
    if (out)
        *out = lm;
    return r;
}

#define OK_PARTS _RESMGR_NPARTS(1)

/* A resource and three clients (pids pid0, pid0+1, pid0+2; scoids
 * scoid0...), each with an OCB opened O_RDWR on it. */
struct rm {
    iofunc_attr_t attr;
    struct client c[3];
    iofunc_ocb_t  o[3];
};

static void rm_init(struct rm *r, pid_t pid0, int scoid0)
{
    iofunc_attr_init(&r->attr, S_IFREG | 0666, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        client_init(&r->c[i], pid0 + i, scoid0 + i);
        ocb_init(&r->o[i], &r->attr, O_RDWR);
    }
}

#define RM_NAMES(r)                                                           \
    iofunc_attr_t *attr = &(r).attr;                                          \
    struct client *c1 = &(r).c[0], *c2 = &(r).c[1], *c3 = &(r).c[2];          \
    iofunc_ocb_t *o1 = &(r).o[0], *o2 = &(r).o[1], *o3 = &(r).o[2];           \
    (void)attr, (void)c1, (void)c2, (void)c3, (void)o1, (void)o2, (void)o3

static int told(int rcvid, struct qnxcompat_reply *r)
{
    memset(r, 0, sizeof *r);
    return qnxcompat_msg_reply(rcvid, r);
}

static void close_dup(struct client *c, iofunc_ocb_t *o)
{
    io_close_t cm;
    memset(&cm, 0, sizeof cm);
    cm.i.type = _IO_CLOSE;
    CHECK_EQ(iofunc_close_dup_default(&c->ctp, &cm, o), EOK);
}

static void check_store_empty(const char *what)
{
    size_t recs = 99, waiting = 99;
    qnxcompat_iofunc_stats(&recs, &waiting);
    CHECK(recs == 0 && waiting == 0, "%s: store holds %zu records, %zu waiters",
          what, recs, waiting);
}

/* ---- tables and attributes ---- */

static void tables(void)
{
    resmgr_connect_funcs_t cf;
    resmgr_io_funcs_t io;
    memset(&cf, 0xa5, sizeof cf);
    memset(&io, 0xa5, sizeof io);
    iofunc_func_init(_RESMGR_CONNECT_NFUNCS, &cf, _RESMGR_IO_NFUNCS, &io);
    CHECK_EQ(cf.nfuncs, 8);
    CHECK_EQ(io.nfuncs, 33);
    CHECK(cf.open == NULL, "no connect default: iofunc_open_default is absent");
    CHECK(io.lock == iofunc_lock_default, "io.lock = iofunc_lock_default");
    CHECK(io.close_dup == iofunc_close_dup_default, "io.close_dup default");
    CHECK(io.unblock == iofunc_unblock_default, "io.unblock default");
    CHECK(io.close_ocb == iofunc_close_ocb_default, "io.close_ocb default");
    CHECK(io.read == NULL && io.write == NULL && io.stat == NULL &&
              io.utime64 == NULL,
          "handlers the library lacks are NULL, not stubs");

    iofunc_attr_t dir, a;
    memset(&dir, 0x5a, sizeof dir);
    iofunc_attr_init(&dir, S_IFDIR | S_ISGID | 0775, NULL, NULL);
    CHECK_EQ(dir.uid, geteuid());
    CHECK_EQ(dir.gid, getegid());
    CHECK_EQ(dir.nlink, 1);
    CHECK(dir.lock_list == NULL && dir.mount == NULL, "attr zeroed");
    CHECK_EQ(dir.flags, IOFUNC_ATTR_DIRTY_TIME | IOFUNC_ATTR_MTIME |
                            IOFUNC_ATTR_ATIME | IOFUNC_ATTR_CTIME);
    dir.gid = 4242;
    struct _client_info ci;
    memset(&ci, 0, sizeof ci);
    ci.cred.euid = 1234;
    ci.cred.egid = 5678;
    iofunc_attr_init(&a, S_IFREG | 0644, &dir, &ci);
    CHECK_EQ(a.uid, 1234);
    CHECK_EQ(a.gid, 4242); /* from the set-group-ID directory */
    iofunc_attr_init(&a, S_IFDIR | 0755, &dir, &ci);
    CHECK(a.mode & S_ISGID, "a directory in a set-group-ID one inherits S_ISGID");
    dir.mode = S_IFDIR | 0755;
    iofunc_attr_init(&a, S_IFREG | 0644, &dir, &ci);
    CHECK_EQ(a.gid, 5678);
    CHECK_EQ(iofunc_time_update(&a), EOK);
    CHECK(a.mtime > 1000000000 && a.atime == a.mtime && a.ctime == a.mtime,
          "times set: %ld", (long)a.mtime);
    CHECK_EQ(a.flags, IOFUNC_ATTR_DIRTY_TIME);

    iofunc_lock_list_t *l = iofunc_lock_calloc(NULL, NULL, 64);
    CHECK(l != NULL && ((unsigned char *)l)[63] == 0, "lock_calloc zeroes");
    iofunc_lock_free(l, 64);
    errno = 0;
    CHECK(iofunc_lock_calloc(NULL, NULL, (size_t)3 << 30) == NULL &&
              errno == ENOMEM,
          "lock_calloc over 2 GiB: NULL, ENOMEM");
}

/* ---- conflicts and the two bases ---- */

static void bases(void)
{
    struct rm rm;
    rm_init(&rm, 501, 11);
    RM_NAMES(rm);
    iofunc_ocb_t o1b;
    ocb_init(&o1b, attr, O_RDWR);

    CHECK_EQ(req(c1, o1, F_SETLK, F_WRLCK, 0, 10, NULL), OK_PARTS);
    CHECK(attr->lock_list != NULL, "lock_list set while locks exist");
    /* fcntl basis: the process. Its second OCB is the same owner. */
    CHECK_EQ(req(c1, &o1b, F_SETLK, F_WRLCK, 5, 10, NULL), OK_PARTS);
    CHECK_EQ(req(c2, o2, F_SETLK, F_WRLCK, 0, 1, NULL), EAGAIN);
    CHECK_EQ(req(c2, o2, F_SETLK, F_RDLCK, 14, 1, NULL), EAGAIN);
    CHECK_EQ(req(c2, o2, F_SETLK, F_RDLCK, 15, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c3, o3, F_SETLK, F_RDLCK, 15, 5, NULL), OK_PARTS);
    /* The merged lock [0, 14] is reported whole. */
    struct lockmsg g;
    CHECK_EQ(req(c3, o3, F_GETLK, F_RDLCK, 3, 1, &g), OK_PARTS);
    flock_t fl = msg_flock(&g);
    CHECK(fl.l_type == F_WRLCK && fl.l_start == 0 && fl.l_len == 15 &&
              fl.l_pid == 501,
          "GETLK: {%d, %ld, %ld, pid %d}", fl.l_type, (long)fl.l_start,
          (long)fl.l_len, fl.l_pid);
    /* An unlock in the middle splits it. */
    CHECK_EQ(req(c1, o1, F_SETLK, F_UNLCK, 5, 2, NULL), OK_PARTS);
    CHECK_EQ(req(c2, o2, F_SETLK, F_WRLCK, 5, 2, NULL), OK_PARTS);
    CHECK_EQ(req(c3, o3, F_SETLK, F_WRLCK, 4, 1, NULL), EAGAIN);
    CHECK_EQ(req(c3, o3, F_SETLK, F_WRLCK, 7, 1, NULL), EAGAIN);

    /* F_FLOCK basis: the OCB. Two OCBs of one client conflict; one OCB
     * used by two clients (a dup() across processes) is one owner. And
     * flock locks share the list with fcntl locks. */
    iofunc_attr_t fa;
    iofunc_attr_init(&fa, S_IFREG | 0666, NULL, NULL);
    iofunc_ocb_t fo1, fo2;
    ocb_init(&fo1, &fa, O_RDWR);
    ocb_init(&fo2, &fa, O_RDWR);
    CHECK_EQ(req(c1, &fo1, F_SETLK, F_WRLCK | F_FLOCK, 0, 0, NULL), OK_PARTS);
    CHECK_EQ(req(c1, &fo2, F_SETLK, F_WRLCK | F_FLOCK, 0, 0, NULL), EAGAIN);
    CHECK_EQ(req(c2, &fo1, F_SETLK, F_RDLCK | F_FLOCK, 0, 0, NULL), OK_PARTS);
    CHECK_EQ(req(c1, &fo2, F_SETLK, F_RDLCK, 0, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c1, &fo2, F_SETLK, F_UNLCK, 0, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c1, &fo2, F_SETLK, F_WRLCK, 0, 1, NULL), EAGAIN);
    CHECK_EQ(req(c1, &fo2, F_GETLK, F_WRLCK, 0, 1, &g), OK_PARTS);
    fl = msg_flock(&g);
    CHECK(fl.l_type == (F_RDLCK | F_FLOCK) && fl.l_start == 0 && fl.l_len == 0 &&
              fl.l_pid == 501,
          "GETLK of an OCB's lock: type %#x (want F_RDLCK|F_FLOCK), len %ld, "
          "pid %d (the client that first locked through it)",
          fl.l_type, (long)fl.l_len, fl.l_pid);
    /* A client's close does not touch the OCB's locks (dup semantics). */
    close_dup(c1, &fo1);
    CHECK_EQ(req(c3, &fo2, F_SETLK, F_WRLCK | F_FLOCK, 0, 0, NULL), EAGAIN);
    CHECK_EQ(req(c2, &fo1, F_SETLK, F_UNLCK | F_FLOCK, 0, 0, NULL), OK_PARTS);
    CHECK(fa.lock_list == NULL, "lock_list NULL again once the last lock went");

    /* Release on close: the first close of any of c1's descriptors. */
    close_dup(c1, &o1b);
    CHECK_EQ(req(c3, o3, F_SETLK, F_WRLCK, 0, 5, NULL), OK_PARTS);
    /* No release for an OCB with no access, or a mapped one (QNX 6.4). */
    iofunc_ocb_t none, mapped;
    ocb_init(&none, attr, O_RDWR);
    none.ioflag = 0;
    ocb_init(&mapped, attr, O_RDWR);
    mapped.flags |= IOFUNC_OCB_MMAP;
    close_dup(c3, &none);
    close_dup(c3, &mapped);
    CHECK_EQ(req(c1, o1, F_SETLK, F_WRLCK, 0, 1, NULL), EAGAIN);
    close_dup(c2, o2);
    close_dup(c3, o3);
    CHECK(attr->lock_list == NULL, "every lock released");
    check_store_empty("after bases");
}

/* ---- F_GETLK replies ---- */

static void getlk(void)
{
    struct rm rm;
    rm_init(&rm, 601, 21);
    RM_NAMES(rm);
    ocb_init(o2, attr, O_RDONLY);
    attr->nbytes = 100;

    /* SEEK_END counts from attr->nbytes, SEEK_CUR from ocb->offset. */
    struct lockmsg lm;
    msg_build(&lm, F_SETLK, F_WRLCK, SEEK_END, -10, 5);
    c1->ctp.rcvid = next_rcvid++;
    CHECK_EQ(iofunc_lock(&c1->ctp, &lm.m, o1, attr), OK_PARTS);
    o1->offset = 40;
    msg_build(&lm, F_SETLK, F_WRLCK, SEEK_CUR, 2, 0);
    CHECK_EQ(iofunc_lock(&c1->ctp, &lm.m, o1, attr), OK_PARTS);

    msg_build(&lm, F_GETLK, F_RDLCK, SEEK_SET, 0, 50);
    c2->ctp.rcvid = next_rcvid++;
    int r = iofunc_lock_default(&c2->ctp, &lm.m, o2);
    CHECK_EQ(r, OK_PARTS);
    CHECK(c2->ctp.iov[0].iov_base == (void *)&lm.m &&
              c2->ctp.iov[0].iov_len == sizeof(struct _io_lock_reply) + sizeof(flock_t),
          "the reply is one part: {_io_lock_reply, flock_t} in the message "
          "(iov %p/%zu)", c2->ctp.iov[0].iov_base, c2->ctp.iov[0].iov_len);
    CHECK(lm.m.o.zero[0] == 0 && lm.m.o.zero[1] == 0 && lm.m.o.zero[2] == 0,
          "reply header zero");
    flock_t fl = msg_flock(&lm);
    CHECK(fl.l_type == F_WRLCK && fl.l_whence == SEEK_SET && fl.l_start == 42 &&
              fl.l_len == 0 && fl.l_pid == 601,
          "first conflict: {%d, %d, %ld, %ld, pid %d}, want {F_WRLCK, SEEK_SET, "
          "42, 0 (to EOF), 601}",
          fl.l_type, fl.l_whence, (long)fl.l_start, (long)fl.l_len, fl.l_pid);
    uint32_t sysid;
    memcpy(&sysid, lm.data + 28, sizeof sysid);
    CHECK_EQ(sysid, 0); /* QNX l_sysid: the holder's node, 0 = this one */

    /* No conflict: only l_type changes, to F_UNLCK. */
    msg_build(&lm, F_GETLK, F_RDLCK, SEEK_SET, 0, 42);
    CHECK_EQ(iofunc_lock_default(&c2->ctp, &lm.m, o2), OK_PARTS);
    fl = msg_flock(&lm);
    CHECK(fl.l_type == F_UNLCK && fl.l_start == 0 && fl.l_len == 42,
          "free range: type %d start %ld len %ld", fl.l_type, (long)fl.l_start,
          (long)fl.l_len);
    /* The caller never sees its own locks. */
    CHECK_EQ(req(c1, o1, F_GETLK, F_WRLCK, 0, 0, &lm), OK_PARTS);
    CHECK_EQ(msg_flock(&lm).l_type, F_UNLCK);
    /* F_GETLK of F_UNLCK is EINVAL; a GETLK needs no access. */
    CHECK_EQ(req(c2, o2, F_GETLK, F_UNLCK, 0, 0, NULL), EINVAL);
    iofunc_ocb_t wo;
    ocb_init(&wo, attr, O_WRONLY);
    CHECK_EQ(req(c2, &wo, F_GETLK, F_RDLCK, 0, 0, NULL), OK_PARTS);
    close_dup(c1, o1);
    check_store_empty("after getlk");
}

/* ---- errors ---- */

static void errors(void)
{
    iofunc_attr_t attr;
    iofunc_attr_init(&attr, S_IFREG | 0666, NULL, NULL);
    struct client c;
    client_init(&c, 701, 31);
    iofunc_ocb_t ro, wo, rw;
    ocb_init(&ro, &attr, O_RDONLY);
    ocb_init(&wo, &attr, O_WRONLY);
    ocb_init(&rw, &attr, O_RDWR);

    CHECK_EQ(req(&c, &wo, F_SETLK, F_RDLCK, 0, 1, NULL), EBADF);
    CHECK_EQ(req(&c, &ro, F_SETLK, F_WRLCK, 0, 1, NULL), EBADF);
    CHECK_EQ(req(&c, &wo, F_SETLKW, F_RDLCK, 0, 1, NULL), EBADF);
    CHECK_EQ(req(&c, &ro, F_SETLK, F_WRLCK | F_FLOCK, 0, 1, NULL), EBADF);
    CHECK_EQ(req(&c, &ro, F_SETLK, F_RDLCK, 0, 1, NULL), OK_PARTS);
    CHECK_EQ(req(&c, &wo, F_SETLK, F_WRLCK, 5, 1, NULL), OK_PARTS);
    CHECK_EQ(req(&c, &ro, F_SETLK, F_UNLCK, 0, 0, NULL), OK_PARTS);

    struct lockmsg lm;
    msg_build(&lm, F_DUPFD, F_RDLCK, SEEK_SET, 0, 1);
    CHECK_EQ(iofunc_lock_default(&c.ctp, &lm.m, &rw), EINVAL);
    msg_build(&lm, F_SETLK, 7, SEEK_SET, 0, 1);
    CHECK_EQ(iofunc_lock_default(&c.ctp, &lm.m, &rw), EINVAL);
    msg_build(&lm, F_SETLK, F_RDLCK, 3, 0, 1);
    CHECK_EQ(iofunc_lock_default(&c.ctp, &lm.m, &rw), EINVAL);
    msg_build(&lm, F_SETLK, F_RDLCK, SEEK_SET, -1, 1);
    CHECK_EQ(iofunc_lock_default(&c.ctp, &lm.m, &rw), EINVAL);
    msg_build(&lm, F_SETLK, F_RDLCK, SEEK_SET, 5, -6);
    CHECK_EQ(iofunc_lock_default(&c.ctp, &lm.m, &rw), EINVAL);
    msg_build(&lm, F_SETLK, F_RDLCK, SEEK_SET, LLONG_MAX, 2);
    CHECK_EQ(iofunc_lock_default(&c.ctp, &lm.m, &rw), EOVERFLOW);
    msg_build(&lm, F_SETLK, F_RDLCK, SEEK_SET, 0, 1);
    lm.m.i.nbytes = 8; /* a short message: no whole flock_t */
    CHECK_EQ(iofunc_lock_default(&c.ctp, &lm.m, &rw), EINVAL);
    CHECK_EQ(iofunc_lock_default(&c.ctp, &lm.m, NULL), EINVAL);
    check_store_empty("after errors");
}

/* iofunc_close_ocb() frees the OCB through its mount's ocb_free (QNX's
 * contract); this one counts the calls, so OCBs can live on the stack. */
static int freed_ocbs;
static void my_ocb_free(iofunc_ocb_t *ocb)
{
    (void)ocb;
    freed_ocbs++;
}
static iofunc_funcs_t my_funcs = {_IOFUNC_NFUNCS, NULL, my_ocb_free, NULL, NULL, NULL};
static iofunc_mount_t my_mount = {0, 0, 0, 512, &my_funcs, NULL};

/* ---- blocking, granting, unblocking, deadlock ---- */

static void blocking(void)
{
    struct rm rm;
    rm_init(&rm, 801, 41);
    RM_NAMES(rm);
    struct qnxcompat_reply rep;

    CHECK_EQ(req(c1, o1, F_SETLK, F_WRLCK, 0, 100, NULL), OK_PARTS);
    CHECK_EQ(req(c2, o2, F_SETLKW, F_WRLCK, 10, 10, NULL), _RESMGR_NOREPLY);
    int w2 = c2->ctp.rcvid;
    CHECK_EQ(told(w2, &rep), EAGAIN); /* still REPLY-blocked */
    struct _msg_info mi;
    CHECK_EQ(MsgInfo(w2, &mi), 0);
    CHECK(mi.pid == 802 && mi.scoid == 42 && !(mi.flags & _NTO_MI_UNBLOCK_REQ),
          "MsgInfo of the waiting client: pid %d scoid %d flags %#x", mi.pid,
          mi.scoid, mi.flags);
    CHECK_EQ(req(c3, o3, F_SETLKW, F_RDLCK, 50, 1, NULL), _RESMGR_NOREPLY);
    int w3 = c3->ctp.rcvid;

    /* The holder's close grants both, each with its flock as requested. */
    close_dup(c1, o1);
    CHECK_EQ(told(w2, &rep), EOK);
    flock_t fl;
    memcpy(&fl, rep.data + sizeof(struct _io_lock_reply), sizeof fl);
    CHECK(rep.err == EOK && rep.status == 0 &&
              rep.nbytes == sizeof(struct _io_lock_reply) + sizeof(flock_t) &&
              fl.l_type == F_WRLCK && fl.l_start == 10 && fl.l_len == 10,
          "granted reply: err %d status %ld nbytes %zu flock {%d, %ld, %ld}",
          rep.err, rep.status, rep.nbytes, fl.l_type, (long)fl.l_start,
          (long)fl.l_len);
    CHECK_EQ(told(w3, &rep), EOK);
    CHECK_EQ(rep.err, EOK);
    CHECK_EQ(told(w2, &rep), ESRCH); /* collected: forgotten */
    CHECK_ERR(MsgInfo(w2, &mi), ESRCH);
    /* The granted locks are held. */
    CHECK_EQ(req(c1, o1, F_SETLK, F_RDLCK, 15, 1, NULL), EAGAIN);
    CHECK_EQ(req(c1, o1, F_SETLK, F_WRLCK, 50, 1, NULL), EAGAIN);
    CHECK_EQ(req(c1, o1, F_SETLK, F_RDLCK, 50, 1, NULL), OK_PARTS);

    /* iofunc_unblock_default: only a client that asked to be unblocked is
     * cancelled, with EINTR. */
    CHECK_EQ(req(c1, o1, F_SETLKW, F_WRLCK, 10, 1, NULL), _RESMGR_NOREPLY);
    int w1 = c1->ctp.rcvid;
    struct _pulse pulse;
    memset(&pulse, 0, sizeof pulse);
    pulse.code = _PULSE_CODE_UNBLOCK;
    pulse.value.sival_int = w1;
    resmgr_context_t uctp = c1->ctp;
    uctp.rcvid = 0;
    CHECK_EQ(iofunc_unblock_default(&uctp, &pulse, o1), _RESMGR_DEFAULT);
    CHECK_EQ(told(w1, &rep), EAGAIN);
    CHECK_EQ(qnxcompat_msg_unblock_request(w1), EOK);
    CHECK_EQ(MsgInfo(w1, &mi), 0);
    CHECK(mi.flags & _NTO_MI_UNBLOCK_REQ, "MsgInfo shows _NTO_MI_UNBLOCK_REQ");
    CHECK_EQ(iofunc_unblock_default(&uctp, &pulse, o1), _RESMGR_NOREPLY);
    CHECK_EQ(told(w1, &rep), EOK);
    CHECK_EQ(rep.err, EINTR);
    CHECK_EQ(iofunc_unblock_default(&uctp, &pulse, o1), _RESMGR_DEFAULT);
    /* By ctp->rcvid, without a pulse. */
    CHECK_EQ(req(c1, o1, F_SETLKW, F_WRLCK, 10, 1, NULL), _RESMGR_NOREPLY);
    w1 = c1->ctp.rcvid;
    CHECK_EQ(qnxcompat_msg_unblock_request(w1), EOK);
    CHECK_EQ(iofunc_unblock(&c1->ctp, attr), _RESMGR_NOREPLY);
    CHECK_EQ(told(w1, &rep), EOK);
    CHECK_EQ(rep.err, EINTR);
    CHECK_EQ(qnxcompat_msg_unblock_request(w1), ESRCH);

    /* EDEADLK between clients: c1 holds 50 (read), c2 holds 10..19.
     * c2 waits for c1's 50; c1's request for 10 would close the cycle. */
    CHECK_EQ(req(c2, o2, F_SETLKW, F_WRLCK, 50, 1, NULL), _RESMGR_NOREPLY);
    w2 = c2->ctp.rcvid;
    CHECK_EQ(req(c1, o1, F_SETLKW, F_WRLCK, 10, 1, NULL), EDEADLK);
    CHECK_EQ(told(w2, &rep), EAGAIN); /* the cycle's other waiter waits on */
    /* c1 and c3 let 50 go: c2 is granted. */
    CHECK_EQ(req(c1, o1, F_SETLK, F_UNLCK, 50, 1, NULL), OK_PARTS);
    CHECK_EQ(told(w2, &rep), EAGAIN); /* c3's read lock still blocks */
    close_dup(c3, o3);
    CHECK_EQ(told(w2, &rep), EOK);
    CHECK_EQ(rep.err, EOK);

    /* A three-client cycle: c1 holds A, c2 holds B, c3 holds C;
     * c1 waits B, c2 waits C, c3 asking for A is EDEADLK. */
    close_dup(c1, o1);
    close_dup(c2, o2);
    check_store_empty("before the three-client cycle");
    CHECK_EQ(req(c1, o1, F_SETLK, F_WRLCK, 1, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c2, o2, F_SETLK, F_WRLCK, 2, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c3, o3, F_SETLK, F_WRLCK, 3, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c1, o1, F_SETLKW, F_WRLCK, 2, 1, NULL), _RESMGR_NOREPLY);
    w1 = c1->ctp.rcvid;
    CHECK_EQ(req(c2, o2, F_SETLKW, F_WRLCK, 3, 1, NULL), _RESMGR_NOREPLY);
    w2 = c2->ctp.rcvid;
    CHECK_EQ(req(c3, o3, F_SETLKW, F_WRLCK, 1, 1, NULL), EDEADLK);
    /* Across two resources, and with an OCB-basis owner in the cycle. */
    iofunc_attr_t other;
    iofunc_attr_init(&other, S_IFREG | 0666, NULL, NULL);
    other.mount = &my_mount;
    iofunc_ocb_t oo3, oo1;
    ocb_init(&oo3, &other, O_RDWR);
    ocb_init(&oo1, &other, O_RDWR);
    CHECK_EQ(req(c1, &oo1, F_SETLK, F_WRLCK, 0, 0, NULL), OK_PARTS);
    CHECK_EQ(req(c3, &oo3, F_SETLKW, F_WRLCK, 0, 0, NULL), EDEADLK);
    CHECK_EQ(req(c3, &oo3, F_SETLKW, F_WRLCK | F_FLOCK, 0, 0, NULL), _RESMGR_NOREPLY);
    int w3o = c3->ctp.rcvid; /* the OCB waits for c1, c1 for c2, c2 for c3: no cycle */
    close_dup(c3, o3);    /* c2 granted */
    CHECK_EQ(told(w2, &rep), EOK);
    CHECK_EQ(rep.err, EOK);
    close_dup(c2, o2); /* c1 granted */
    CHECK_EQ(told(w1, &rep), EOK);
    CHECK_EQ(rep.err, EOK);
    close_dup(c1, &oo1); /* c1's lock on `other`: the OCB is granted */
    CHECK_EQ(told(w3o, &rep), EOK);
    CHECK_EQ(rep.err, EOK);
    close_dup(c1, o1);
    /* The OCB's own lock goes with the OCB (close_ocb), its waiters fail. */
    iofunc_ocb_t *heap = calloc(1, sizeof *heap);
    ocb_init(heap, &other, O_RDWR);
    CHECK_EQ(req(c1, heap, F_SETLKW, F_RDLCK | F_FLOCK, 0, 0, NULL), _RESMGR_NOREPLY);
    int wh = c1->ctp.rcvid;
    other.count = 2;
    other.rcount = 2;
    other.wcount = 2;
    CHECK_EQ(iofunc_close_ocb_default(&c3->ctp, NULL, &oo3), EOK);
    CHECK_EQ(told(wh, &rep), EOK);
    CHECK_EQ(rep.err, EOK);
    CHECK(other.count == 1 && other.rcount == 1 && other.wcount == 1,
          "close_ocb drops the open counts");
    int before = freed_ocbs;
    CHECK_EQ(iofunc_close_ocb_default(&c1->ctp, NULL, heap), EOK);
    CHECK_EQ(freed_ocbs, before + 1);
    free(heap);
    CHECK(other.lock_list == NULL && attr->lock_list == NULL, "all released");
    check_store_empty("after blocking");
}

/* ---- the record pool: a test limit, and growth past it ---- */

static void records(void)
{
    struct rm rm;
    rm_init(&rm, 901, 51);
    RM_NAMES(rm);

    CHECK_EQ(qnxcompat_iofunc_record_limit(64), EOK);
    int granted = 0, r = 0;
    for (int i = 0; i < 1000; i++) {
        r = req(c1, o1, F_SETLK, F_WRLCK, 1000 + 2 * i, 1, NULL);
        if (r != OK_PARTS)
            break;
        granted++;
    }
    CHECK_EQ(r, ENOMEM);
    CHECK(granted >= 40 && granted < 64, "%d locks under a 64-record limit", granted);
    /* An F_SETLKW that needs no wait but a record: ENOMEM, at once. */
    CHECK_EQ(req(c2, o2, F_SETLKW, F_WRLCK, 0, 1, NULL), ENOMEM);
    /* Unlocks that split a lock in two still work when full: 16 records
     * are kept for them. */
    CHECK_EQ(req(c1, o1, F_SETLK, F_UNLCK, 1000, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c1, o1, F_SETLK, F_WRLCK, 1000, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c2, o2, F_SETLK, F_WRLCK, 100000, 1000, NULL), ENOMEM);
    int splits = 0;
    for (int i = 0; i < 10; i++)
        splits += req(c1, o1, F_SETLK, F_RDLCK, 1000 + 4 * i, 1, NULL) == OK_PARTS;
    CHECK_EQ(splits, 0); /* a lock of another type splits nothing here, but needs the reserve */
    size_t recs = 0;
    qnxcompat_iofunc_stats(&recs, NULL);
    CHECK(recs <= 64, "%zu records under the limit", recs);
    close_dup(c1, o1);

    /* No limit: the pool grows far past any fixed table. */
    CHECK_EQ(qnxcompat_iofunc_record_limit(SIZE_MAX), EOK);
    /* Under QNXCOMPAT_VERIFY=1 every call checks the whole store: fewer. */
    const char *v = getenv("QNXCOMPAT_VERIFY");
    const int n = v && strcmp(v, "1") == 0 ? 2000 : 200000;
    int bad = 0;
    for (int i = 0; i < n && !bad; i++)
        bad = req(c1, o1, F_SETLK, i % 2 ? F_RDLCK : F_WRLCK, 3 * (off_t)i, 2, NULL) != OK_PARTS;
    CHECK(!bad, "%d locks granted", n);
    qnxcompat_iofunc_stats(&recs, NULL);
    CHECK_EQ(recs, (size_t)n);
    CHECK_EQ(req(c2, o2, F_SETLK, F_RDLCK, 3 * (off_t)(n - 1), 1, NULL), OK_PARTS);
    CHECK_EQ(req(c2, o2, F_SETLK, F_RDLCK, 3 * (off_t)(n - 2), 1, NULL), EAGAIN);
    close_dup(c1, o1);
    close_dup(c2, o2);
    check_store_empty("after records");

    /* close_ocb through the mount's ocb_free. */
    attr->mount = &my_mount;
    iofunc_ocb_t so;
    ocb_init(&so, attr, O_RDWR);
    CHECK_EQ(req(c1, &so, F_SETLK, F_WRLCK | F_FLOCK, 0, 0, NULL), OK_PARTS);
    int before = freed_ocbs;
    CHECK_EQ(iofunc_close_ocb_default(&c1->ctp, NULL, &so), EOK);
    CHECK_EQ(freed_ocbs, before + 1);
    check_store_empty("after close_ocb");

    /* An attribute initialised again over live state: the state goes,
     * its waiters are told ENOENT. */
    CHECK_EQ(req(c1, o1, F_SETLK, F_WRLCK, 0, 0, NULL), OK_PARTS);
    CHECK_EQ(req(c2, o2, F_SETLKW, F_WRLCK, 0, 0, NULL), _RESMGR_NOREPLY);
    int w = c2->ctp.rcvid;
    iofunc_attr_init(attr, S_IFREG | 0666, NULL, NULL);
    struct qnxcompat_reply rep;
    CHECK_EQ(told(w, &rep), EOK);
    CHECK_EQ(rep.err, ENOENT);
    check_store_empty("after attr_init");
}

/* ---- a program's own reply, a cycle closed by a grant, an OCB's close ---- */

static void late(void)
{
    struct rm rm;
    rm_init(&rm, 1101, 81);
    RM_NAMES(rm);
    struct qnxcompat_reply rep;
    size_t recs, waiting;

    /* The program answers a waiting client itself: its request is dropped,
     * and when the rcvid is reused by another client, the old request's
     * grant never reaches the new one. */
    CHECK_EQ(req(c1, o1, F_SETLK, F_WRLCK, 0, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c2, o2, F_SETLKW, F_WRLCK, 0, 1, NULL), _RESMGR_NOREPLY);
    int w = c2->ctp.rcvid;
    CHECK_EQ(MsgError(w, ETIMEDOUT), 0);
    qnxcompat_iofunc_stats(&recs, &waiting);
    CHECK_EQ(waiting, 0);
    CHECK_EQ(told(w, &rep), EOK);
    CHECK_EQ(rep.err, ETIMEDOUT);
    CHECK_EQ(req(c1, o1, F_SETLK, F_WRLCK, 5, 1, NULL), OK_PARTS);
    struct lockmsg lm;
    msg_build(&lm, F_SETLKW, F_WRLCK, SEEK_SET, 5, 1);
    c3->ctp.rcvid = w;
    CHECK_EQ(iofunc_lock_default(&c3->ctp, &lm.m, o3), _RESMGR_NOREPLY);
    CHECK_EQ(req(c1, o1, F_SETLK, F_UNLCK, 0, 1, NULL), OK_PARTS);
    CHECK_EQ(told(w, &rep), EAGAIN); /* c3 still waits, for 5 */
    io_close_t cm;
    memset(&cm, 0, sizeof cm);
    CHECK_EQ(iofunc_close_dup(&c1->ctp, &cm, o1, attr), EOK);
    CHECK_EQ(told(w, &rep), EOK);
    flock_t fl;
    memcpy(&fl, rep.data + sizeof(struct _io_lock_reply), sizeof fl);
    CHECK(rep.err == EOK && fl.l_start == 5, "c3 granted 5 (err %d, start %ld)",
          rep.err, (long)fl.l_start);
    close_dup(c3, o3);
    CHECK_ERR(MsgReply(w, 0, NULL, 0), ESRCH); /* not waiting any more */
    CHECK_EQ(MsgReply_r(424242, 0, NULL, 0), ESRCH);
    CHECK_EQ(MsgError_r(424242, EIO), ESRCH);

    /* A cycle that a grant closes: c2 waits for 0 (held by c1) and, on
     * another thread, for 3 (held by c3); c3 waits for 0. When c1 lets 0
     * go, c2 (first in line) gets it: c3 now waits for c2, which waits for
     * c3. c3's request is told EDEADLK. */
    CHECK_EQ(req(c1, o1, F_SETLK, F_WRLCK, 0, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c3, o3, F_SETLK, F_WRLCK, 3, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c2, o2, F_SETLKW, F_WRLCK, 0, 1, NULL), _RESMGR_NOREPLY);
    int a = c2->ctp.rcvid;
    CHECK_EQ(req(c2, o2, F_SETLKW, F_WRLCK, 3, 1, NULL), _RESMGR_NOREPLY);
    int b = c2->ctp.rcvid;
    CHECK_EQ(req(c3, o3, F_SETLKW, F_WRLCK, 0, 1, NULL), _RESMGR_NOREPLY);
    int c = c3->ctp.rcvid;
    close_dup(c1, o1);
    CHECK_EQ(told(a, &rep), EOK);
    CHECK_EQ(rep.err, EOK);
    CHECK_EQ(told(c, &rep), EOK);
    CHECK_EQ(rep.err, EDEADLK);
    CHECK_EQ(told(b, &rep), EAGAIN);
    close_dup(c3, o3);
    CHECK_EQ(told(b, &rep), EOK);
    CHECK_EQ(rep.err, EOK);
    close_dup(c2, o2);

    /* The last close of an OCB fails the requests waiting through it. */
    attr->mount = &my_mount;
    iofunc_ocb_t x;
    ocb_init(&x, attr, O_RDWR);
    CHECK_EQ(req(c1, o1, F_SETLK, F_WRLCK, 0, 1, NULL), OK_PARTS);
    CHECK_EQ(req(c2, &x, F_SETLKW, F_WRLCK | F_FLOCK, 0, 0, NULL), _RESMGR_NOREPLY);
    int e = c2->ctp.rcvid;
    int before = freed_ocbs;
    CHECK_EQ(iofunc_close_ocb(&c2->ctp, &x, attr), EOK);
    CHECK_EQ(freed_ocbs, before + 1);
    CHECK_EQ(told(e, &rep), EOK);
    CHECK_EQ(rep.err, EBADF);
    close_dup(c1, o1);
    check_store_empty("after late");

    /* iofunc_func_init: n = 0 leaves a table alone; a longer table than the
     * library's is zeroed past its entries, nfuncs the library's count. */
    struct {
        resmgr_io_funcs_t io;
        void *more[4];
    } big;
    memset(&big, 0xa5, sizeof big);
    iofunc_func_init(0, NULL, 0, &big.io);
    CHECK_EQ(big.io.nfuncs, 0xa5a5a5a5u);
    iofunc_func_init(0, NULL, _RESMGR_IO_NFUNCS + 4, &big.io);
    CHECK_EQ(big.io.nfuncs, _RESMGR_IO_NFUNCS);
    CHECK(big.more[0] == NULL && big.more[3] == NULL, "entries past the library's zeroed");
}

/* ---- a thread pool: handlers on several threads at once ---- */

static iofunc_attr_t pool_attr;
static volatile int inside;
static volatile int overlap;

struct worker {
    struct client c;
    iofunc_ocb_t  o;
    int           rounds;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        struct lockmsg lm;
        msg_build(&lm, F_SETLK, F_WRLCK, SEEK_SET, 0, 1);
        w->c.ctp.rcvid = __sync_fetch_and_add(&next_rcvid, 1);
        if (iofunc_lock_default(&w->c.ctp, &lm.m, &w->o) != OK_PARTS)
            continue;
        if (__sync_fetch_and_add(&inside, 1) != 0)
            overlap = 1;
        __sync_fetch_and_sub(&inside, 1);
        msg_build(&lm, F_SETLK, F_UNLCK, SEEK_SET, 0, 1);
        if (iofunc_lock_default(&w->c.ctp, &lm.m, &w->o) != OK_PARTS)
            overlap = 2;
    }
    return NULL;
}

static void threads(void)
{
    iofunc_attr_init(&pool_attr, S_IFREG | 0666, NULL, NULL);
    struct worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        client_init(&w[i].c, 1000 + i, 60 + i);
        ocb_init(&w[i].o, &pool_attr, O_RDWR);
        w[i].rounds = 20000;
        CHECK_OK(pthread_create(&t[i], NULL, worker_main, &w[i]));
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(overlap == 0, "a write lock granted to two clients at once (%d)", overlap);
    check_store_empty("after threads");
}

/* ---- tracing ---- */

static int trace_act(void)
{
    struct rm rm;
    rm_init(&rm, 4001, 71);
    RM_NAMES(rm);
    c1->ctp.rcvid = 7001;
    c2->ctp.rcvid = 7002;
    struct lockmsg lm;
    msg_build(&lm, F_SETLK, F_WRLCK, SEEK_SET, 0, 10);
    int bad = iofunc_lock_default(&c1->ctp, &lm.m, o1) != OK_PARTS;
    msg_build(&lm, F_SETLKW, F_RDLCK | F_FLOCK, SEEK_SET, 5, 1);
    bad |= (iofunc_lock_default(&c2->ctp, &lm.m, o2) != _RESMGR_NOREPLY) << 1;
    msg_build(&lm, F_GETLK, F_RDLCK, SEEK_SET, 0, 0);
    bad |= (iofunc_lock(&c2->ctp, &lm.m, o2, attr) != OK_PARTS) << 2;
    io_close_t cm;
    bad |= (iofunc_close_dup_default(&c1->ctp, &cm, o1) != EOK) << 3;
    bad |= (MsgError(9999, EPERM) != -1 || errno != ESRCH) << 4;
    return bad;
}

static void trace(void)
{
    struct qtest_trace_file tf = qtest_trace_file();
    char *env[] = {"QNXCOMPAT_TRACE=iofunc,Msg", tf.env, NULL};
    char *argv[] = {"t_iofunc", "--trace-act", NULL};
    pid_t pid = CHECK_RUN_SELF(argv, env, NULL, NULL, "traced resource manager");
    char *t = qtest_slurp_trace(tf.path);
    char want[256];
    snprintf(want, sizeof want, "iofunc_lock_default(rcvid=7001, pid=4001, scoid=71, ocb=0x");
    CHECK_TRACED(t, pid, want, "F_SETLK, {F_WRLCK, SEEK_SET, start=0, len=10}) = _RESMGR_NPARTS(1) (");
    CHECK_TRACED(t, pid, "iofunc_lock_default(rcvid=7002, pid=4002, scoid=72, ocb=0x",
                 "F_SETLKW, {F_RDLCK|F_FLOCK, SEEK_SET, start=5, len=1}) = _RESMGR_NOREPLY (");
    CHECK_TRACED(t, pid, "iofunc_lock(rcvid=7002,",
                 "F_GETLK, {F_RDLCK, SEEK_SET, start=0, len=0} -> {F_WRLCK, SEEK_SET, "
                 "start=0, len=10, pid=4001}) = _RESMGR_NPARTS(1) (");
    CHECK_TRACED(t, pid, "iofunc_close_dup_default(pid=4001, scoid=71, ocb=0x",
                 "granted=1) = EOK (");
    CHECK_TRACED(t, pid, "MsgReplyv(rcvid=7002, EOK, {F_RDLCK|F_FLOCK, SEEK_SET, start=5, len=1}) = 0 (",
                 NULL);
    CHECK_TRACED(t, pid, "MsgError(rcvid=9999, EPERM) = -1 ESRCH (", NULL);
    free(t);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--trace-act") == 0)
        return trace_act();
    qtest_init();
    tables();
    bases();
    getlk();
    errors();
    blocking();
    records();
    late();
    threads();
    trace();
    return QTEST_DONE();
}
