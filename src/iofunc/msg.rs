//! The reply side of QNX message passing, emulated.
//!
//! On QNX a client that sent a message stays REPLY-blocked until the server
//! calls `MsgReply*()` or `MsgError()` on the message's receive id (rcvid).
//! There is no such kernel here, so the library keeps a book of the rcvids
//! a handler left unreplied (`_RESMGR_NOREPLY`), with their clients'
//! `_msg_info`, and records what each is eventually told, whether the
//! library tells it (a lock granted later, EINTR on unblock) or the
//! program does. `qnxcompat_msg_reply()` collects it: that is how a test
//! checks blocking and granting without real message passing.
//!
//! - A reply to an rcvid in the book that is still waiting is recorded;
//!   a second reply is ESRCH (QNX: the rcvid is gone once replied to).
//! - A reply to an rcvid the library never saw is recorded too: the
//!   program replies to messages it received itself.
//! - `MsgInfo()` answers for a waiting rcvid, with `_NTO_MI_UNBLOCK_REQ`
//!   once `qnxcompat_msg_unblock_request()` said the client asked to be
//!   unblocked (a signal or a timeout, on QNX).
//!
//! The book is process-local, behind its own mutex, taken after the lock
//! store's and never around a call out of the library.

use std::collections::HashMap;
use std::sync::Mutex;

use super::abi::{MsgInfo, NTO_MI_UNBLOCK_REQ};
use crate::sys::Errno;

/// What an rcvid was told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Told {
    /// 0 for `MsgReply*()`, else the `MsgError()` errno.
    pub err: i32,
    /// The status `MsgReply*()` gave (the client's `MsgSend()` result).
    pub status: i64,
    /// The reply bytes, all parts joined.
    pub data: Vec<u8>,
}

enum Entry {
    Waiting { info: MsgInfo, unblock: bool },
    Told(Told),
}

static BOOK: Mutex<Option<HashMap<i32, Entry>>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut HashMap<i32, Entry>) -> R) -> R {
    // A poisoned mutex cannot happen (panics abort); take the data anyway.
    let mut g = BOOK.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// `rcvid` (from a client described by `info`) waits for a reply.
pub fn left_unreplied(rcvid: i32, info: &MsgInfo) {
    with(|b| {
        b.insert(rcvid, Entry::Waiting { info: *info, unblock: false });
    });
}

/// Records a reply; ESRCH if `rcvid` was already told something that has
/// not been collected.
pub fn tell(rcvid: i32, told: Told) -> Result<(), Errno> {
    with(|b| match b.get(&rcvid) {
        Some(Entry::Told(_)) => Err(Errno::SRCH),
        _ => {
            b.insert(rcvid, Entry::Told(told));
            Ok(())
        }
    })
}

/// `MsgInfo()`: the info of a waiting rcvid.
pub fn info(rcvid: i32) -> Result<MsgInfo, Errno> {
    with(|b| match b.get(&rcvid) {
        Some(Entry::Waiting { info, unblock }) => {
            let mut i = *info;
            if *unblock {
                i.flags |= NTO_MI_UNBLOCK_REQ;
            }
            Ok(i)
        }
        _ => Err(Errno::SRCH),
    })
}

/// The client of a waiting rcvid asks to be unblocked.
pub fn request_unblock(rcvid: i32) -> Result<(), Errno> {
    with(|b| match b.get_mut(&rcvid) {
        Some(Entry::Waiting { unblock, .. }) => {
            *unblock = true;
            Ok(())
        }
        _ => Err(Errno::SRCH),
    })
}

/// Collects what `rcvid` was told (and forgets it): `Ok(told)`, or
/// EAGAIN while it still waits, ESRCH if the book does not know it.
pub fn collect(rcvid: i32) -> Result<Told, Errno> {
    with(|b| match b.get(&rcvid) {
        Some(Entry::Waiting { .. }) => Err(Errno::AGAIN),
        None => Err(Errno::SRCH),
        Some(Entry::Told(_)) => match b.remove(&rcvid) {
            Some(Entry::Told(t)) => Ok(t),
            _ => Err(Errno::SRCH),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book() {
        let mi = MsgInfo { pid: 7, scoid: 3, ..Default::default() };
        left_unreplied(1001, &mi);
        assert_eq!(collect(1001), Err(Errno::AGAIN));
        assert_eq!(info_flags(1001), 0);
        request_unblock(1001).unwrap();
        assert_eq!(info_flags(1001), NTO_MI_UNBLOCK_REQ);
        tell(1001, Told { err: libc::EINTR, status: -1, data: vec![] }).unwrap();
        assert_eq!(tell(1001, Told { err: 0, status: 0, data: vec![] }), Err(Errno::SRCH));
        assert_eq!(info(1001), Err(Errno::SRCH));
        assert_eq!(collect(1001).map(|t| t.err), Ok(libc::EINTR));
        assert_eq!(collect(1001), Err(Errno::SRCH));
        // A reply to an rcvid never seen is recorded.
        tell(1002, Told { err: 0, status: 5, data: vec![1, 2] }).unwrap();
        assert_eq!(collect(1002).map(|t| (t.status, t.data)), Ok((5, vec![1, 2])));
    }

    fn info_flags(rcvid: i32) -> i16 {
        info(rcvid).map(|i| i.flags).unwrap_or(-1)
    }
}
