/*
 * libqnxcompat's own C API (the interposed libc functions need no header).
 * A program that may also run without the library should look the function
 * up with dlsym(RTLD_DEFAULT, "qnxcompat_verify") rather than link to it.
 */
#ifndef QNXCOMPAT_H
#define QNXCOMPAT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Checks the lock registry named `registry` (NULL: the one this process
 * uses, from QNXCOMPAT_REGISTRY or the per-user default) for consistency:
 * every lock list, owner list, count, hash chain, waiter and mapping record
 * against every other. Writes a one-line summary into msg[len].
 * Returns 0 if consistent, 1 if not, 2 if the registry cannot be attached.
 */
int qnxcompat_verify(const char *registry, char *msg, size_t len);

/*
 * The emulated reply side of QNX message passing (<sys/neutrino.h>), for
 * tests of resource managers (link with -lqnxcompat).
 *
 * qnxcompat_msg_reply() collects what rcvid was told: by MsgReply*() (err
 * 0, status, the reply bytes) or MsgError() (err), from the program or from
 * the library (a waiting lock request granted, EINTR on unblock, ...).
 * Returns EOK and forgets the rcvid; EAGAIN while the rcvid still waits
 * for a reply; ESRCH if it was never left unreplied nor told anything.
 * data holds the first 512 bytes of the reply; nbytes its whole length.
 */
struct qnxcompat_reply {
    int    err;
    long   status;
    size_t nbytes;
    unsigned char data[512];
};
int qnxcompat_msg_reply(int rcvid, struct qnxcompat_reply *out);

/*
 * The client of a waiting rcvid asks to be unblocked (on QNX: it got a
 * signal or its timeout expired while REPLY-blocked): MsgInfo() then has
 * _NTO_MI_UNBLOCK_REQ, and iofunc_unblock_default() may cancel its
 * request. EOK, or ESRCH if rcvid is not waiting.
 */
int qnxcompat_msg_unblock_request(int rcvid);

/*
 * Test hook: the iofunc lock store keeps at most `records` live lock
 * records (SIZE_MAX, the default: as many as memory holds); past it lock
 * requests fail with ENOMEM. One record is kept back for unlocks.
 */
int qnxcompat_iofunc_record_limit(size_t records);

/* The iofunc lock store's live lock records and waiting requests. */
void qnxcompat_iofunc_stats(size_t *records, size_t *waiting);

/*
 * The registry as `qnxcompat locks` and `qnxcompat doctor` read it.
 * qnxcompat_locks() calls row() for every lock, then for every blocked
 * request, of the registry named `registry` (NULL: this process's); a
 * non-zero return from row() stops it and is returned. It never holds the
 * registry for longer than one lock call does: each row is true at the
 * instant it was copied. Returns 0, -1 if the registry cannot be locked,
 * -2 if it cannot be attached (absent, or refused).
 */
#include <stdint.h>
enum { QNXCOMPAT_ROW_LOCK = 1, QNXCOMPAT_ROW_WAITER = 2 };
enum { QNXCOMPAT_KIND_POSIX = 1, QNXCOMPAT_KIND_FLOCK = 2, QNXCOMPAT_KIND_OFD = 3 };
struct qnxcompat_lock_row {
    uint32_t what;        /* QNXCOMPAT_ROW_* */
    uint32_t kind;        /* QNXCOMPAT_KIND_* */
    int32_t  type;        /* F_RDLCK or F_WRLCK */
    int32_t  pid;         /* the owner's pid (an open file: its last locker) */
    int64_t  start, end;  /* inclusive; end == INT64_MAX: to end of file */
    uint64_t dev, ino;
    uint32_t owner, owner_gen; /* the owner's identity in this listing */
    uint32_t alive;       /* 1: a live thread of the owner vouches for it */
    uint32_t blocker;     /* a waiter: the blocking owner, UINT32_MAX none */
    int32_t  blocker_pid;
    uint32_t blocker_kind;
    int32_t  waiter_pid;  /* a waiter: the waiting process */
    uint32_t pad;
};
int qnxcompat_locks(const char *registry,
                    int (*row)(const struct qnxcompat_lock_row *, void *), void *ctx);

struct qnxcompat_health {
    uint32_t layout_version, mode; /* mode 1: kernel mirror, 2: registry only */
    uint64_t abi, bytes;
    uint32_t process_owners, openfile_owners, unvouched, owners_cap;
    uint32_t records, records_cap, files, files_cap;
    uint32_t waiters, waiters_cap, maps, maps_cap;
    uint32_t repairs, pad;
};
/* Fills at most `size` bytes of *out. 0, -1 or -2 as above. */
int qnxcompat_health(const char *registry, struct qnxcompat_health *out, size_t size);

/* Probes every process owner no live thread vouches for; with reap
 * non-zero, reaps the dead ones' locks, waiters and mappings. Returns how
 * many were found dead (*probed: how many were probed), -1 or -2 as above. */
long qnxcompat_reap(const char *registry, int reap, long *probed);

#ifdef __cplusplus
}
#endif

#endif /* QNXCOMPAT_H */
