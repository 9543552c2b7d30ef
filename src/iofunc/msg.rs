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
//! - A reply to an rcvid in the book that is still waiting is recorded
//!   (its first 512 bytes, and its length); a reply to any other rcvid,
//!   a second reply included, is ESRCH (QNX: an rcvid is gone once
//!   replied to).
//! - Told answers wait to be collected; the book keeps the newest
//!   `MAX_TOLD` of them, so a resource manager run outside a test (which
//!   never collects) does not grow without bound.
//! - `MsgInfo()` answers for a waiting rcvid, with `_NTO_MI_UNBLOCK_REQ`
//!   once `qnxcompat_msg_unblock_request()` said the client asked to be
//!   unblocked (a signal or a timeout, on QNX).
//!
//! The book is process-local, behind its own mutex, taken after the lock
//! store's and never around a call out of the library.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::abi::{MsgInfo, NTO_MI_UNBLOCK_REQ};
use crate::sys::Errno;

/// The told answers kept for collection, at most.
pub const MAX_TOLD: usize = 4096;
/// The reply bytes kept of each.
pub const KEEP_BYTES: usize = 512;

/// What an rcvid was told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Told {
    /// 0 for `MsgReply*()`, else the `MsgError()` errno.
    pub err: i32,
    /// The status `MsgReply*()` gave (the client's `MsgSend()` result).
    pub status: i64,
    /// The reply's length, all parts joined.
    pub nbytes: usize,
    /// Its first `KEEP_BYTES` bytes.
    pub data: Vec<u8>,
}

impl Told {
    pub fn new(err: i32, status: i64, mut data: Vec<u8>) -> Told {
        let nbytes = data.len();
        data.truncate(KEEP_BYTES);
        Told { err, status, nbytes, data }
    }
}

enum Entry {
    Waiting { info: MsgInfo, unblock: bool },
    Told(Told),
}

/// The book: rcvid -> waiting or told.
#[derive(Default)]
pub struct Book {
    entries: HashMap<i32, Entry>,
    /// Told rcvids, oldest first (some may have been collected since).
    told: VecDeque<i32>,
}

impl Book {
    /// `rcvid` (from a client described by `info`) waits for a reply. (An
    /// uncollected answer to an earlier message with the same rcvid is
    /// replaced: that client is gone.)
    pub fn left_unreplied(&mut self, rcvid: i32, info: &MsgInfo) {
        self.entries.insert(rcvid, Entry::Waiting { info: *info, unblock: false });
    }

    /// Records a reply to a waiting rcvid (whose client has server
    /// connection `scoid`, when given); ESRCH if `rcvid` is not waiting, or
    /// is another client's.
    pub fn tell(&mut self, rcvid: i32, scoid: Option<i32>, told: Told) -> Result<(), Errno> {
        match self.entries.get(&rcvid) {
            Some(Entry::Waiting { info, .. }) if scoid.is_none_or(|s| s == info.scoid) => {}
            _ => return Err(Errno::SRCH),
        }
        self.entries.insert(rcvid, Entry::Told(told));
        self.told.push_back(rcvid);
        while self.told.len() > MAX_TOLD {
            if let Some(old) = self.told.pop_front()
                && matches!(self.entries.get(&old), Some(Entry::Told(_)))
            {
                self.entries.remove(&old);
            }
        }
        Ok(())
    }

    /// `MsgInfo()`: the info of a waiting rcvid.
    pub fn info(&self, rcvid: i32) -> Result<MsgInfo, Errno> {
        match self.entries.get(&rcvid) {
            Some(Entry::Waiting { info, unblock }) => {
                let mut i = *info;
                if *unblock {
                    i.flags |= NTO_MI_UNBLOCK_REQ;
                }
                Ok(i)
            }
            _ => Err(Errno::SRCH),
        }
    }

    /// The client of a waiting rcvid asks to be unblocked.
    pub fn request_unblock(&mut self, rcvid: i32) -> Result<(), Errno> {
        match self.entries.get_mut(&rcvid) {
            Some(Entry::Waiting { unblock, .. }) => {
                *unblock = true;
                Ok(())
            }
            _ => Err(Errno::SRCH),
        }
    }

    /// Collects what `rcvid` was told (and forgets it): `Ok(told)`, or
    /// EAGAIN while it still waits, ESRCH if the book does not know it.
    pub fn collect(&mut self, rcvid: i32) -> Result<Told, Errno> {
        match self.entries.get(&rcvid) {
            Some(Entry::Waiting { .. }) => return Err(Errno::AGAIN),
            None => return Err(Errno::SRCH),
            Some(Entry::Told(_)) => {}
        }
        match self.entries.remove(&rcvid) {
            Some(Entry::Told(t)) => Ok(t),
            _ => Err(Errno::SRCH),
        }
    }
}

static BOOK: Mutex<Option<Book>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Book) -> R) -> R {
    // A poisoned mutex cannot happen (panics abort); take the data anyway.
    let mut g = BOOK.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(Book::default))
}

/// The process's book: [`Book::left_unreplied`].
pub fn left_unreplied(rcvid: i32, info: &MsgInfo) {
    with(|b| b.left_unreplied(rcvid, info))
}

/// [`Book::tell`].
pub fn tell(rcvid: i32, scoid: Option<i32>, told: Told) -> Result<(), Errno> {
    with(|b| b.tell(rcvid, scoid, told))
}

/// [`Book::info`].
pub fn info(rcvid: i32) -> Result<MsgInfo, Errno> {
    with(|b| b.info(rcvid))
}

/// [`Book::request_unblock`].
pub fn request_unblock(rcvid: i32) -> Result<(), Errno> {
    with(|b| b.request_unblock(rcvid))
}

/// [`Book::collect`].
pub fn collect(rcvid: i32) -> Result<Told, Errno> {
    with(|b| b.collect(rcvid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book() {
        let mut b = Book::default();
        let mi = MsgInfo { pid: 7, scoid: 3, ..Default::default() };
        b.left_unreplied(1001, &mi);
        assert_eq!(b.collect(1001), Err(Errno::AGAIN));
        assert_eq!(b.info(1001).map(|i| i.flags), Ok(0));
        b.request_unblock(1001).unwrap();
        assert_eq!(b.info(1001).map(|i| i.flags), Ok(NTO_MI_UNBLOCK_REQ));
        assert_eq!(b.tell(1001, Some(4), Told::new(libc::EINTR, -1, vec![])), Err(Errno::SRCH));
        b.tell(1001, Some(3), Told::new(libc::EINTR, -1, vec![])).unwrap();
        assert_eq!(b.tell(1001, None, Told::new(0, 0, vec![])), Err(Errno::SRCH));
        assert_eq!(b.info(1001), Err(Errno::SRCH));
        assert_eq!(b.collect(1001).map(|t| t.err), Ok(libc::EINTR));
        assert_eq!(b.collect(1001), Err(Errno::SRCH));
        // A reply to an rcvid never seen is ESRCH.
        assert_eq!(b.tell(1002, None, Told::new(0, 5, vec![1, 2])), Err(Errno::SRCH));
        // The reply bytes kept are bounded, and so are the answers kept.
        b.left_unreplied(1003, &mi);
        b.tell(1003, None, Told::new(0, 5, vec![7; 5000])).unwrap();
        assert_eq!(b.collect(1003).map(|t| (t.nbytes, t.data.len())), Ok((5000, KEEP_BYTES)));
        for r in 0..(MAX_TOLD as i32 + 10) {
            b.left_unreplied(-10 - r, &mi);
            b.tell(-10 - r, None, Told::new(0, 0, vec![])).unwrap();
        }
        assert_eq!(b.collect(-10), Err(Errno::SRCH), "the oldest answer was dropped");
        assert_eq!(b.collect(-10 - MAX_TOLD as i32).map(|t| t.err), Ok(0));
        assert!(b.entries.len() <= MAX_TOLD);
    }
}
