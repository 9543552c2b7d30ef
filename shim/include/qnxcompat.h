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

#ifdef __cplusplus
}
#endif

#endif /* QNXCOMPAT_H */
