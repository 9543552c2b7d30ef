//! The kernel mirror: every lock the registry grants is also a real kernel
//! lock of the same owner, so that programs outside the library (static
//! binaries, set-id programs, a cleared environment, other hosts over NFS),
//! `lslocks` and `/proc/locks` see it, and a lock they hold is a conflict
//! for preloaded processes.
//!
//! | registry owner | kernel mirror |
//! |---|---|
//! | the process (fcntl, lockf) | a POSIX lock on the caller's descriptor |
//! | an open file, Linux OFD commands | an OFD lock on the caller's descriptor |
//! | an open file, QNX `F_FLOCK` ranges | an OFD lock on the caller's descriptor |
//! | an open file, `flock()` | a whole-file OFD lock, and a kernel `flock()` |
//!
//! Every call here is one non-blocking `fcntl` or `flock` straight to the
//! kernel (never through the library's own hooks). The registry calls them
//! with its lock held, so that no other preloaded process sees a state in
//! which the two disagree: lock in the kernel first, then in the registry;
//! unlock in the registry first, then in the kernel.
//!
//! `QNXCOMPAT_MIRROR=off` turns the mirror off (a closed world in which
//! every process is preloaded); the registry header records the mode, and a
//! process of the other mode is refused.

use crate::engine::range::{EOF, LockType, Range};
use crate::sys::{self, Errno};

/// Which kernel lock stands for a registry owner's locks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// POSIX (process-owned) locks.
    Posix,
    /// OFD (open-file-owned) locks.
    Ofd,
}

impl Kind {
    fn set_cmd(self) -> i32 {
        match self {
            Kind::Posix => libc::F_SETLK,
            Kind::Ofd => libc::F_OFD_SETLK,
        }
    }

    fn get_cmd(self) -> i32 {
        match self {
            Kind::Posix => libc::F_GETLK,
            Kind::Ofd => libc::F_OFD_GETLK,
        }
    }
}

/// Whether the mirror is on in this process (`QNXCOMPAT_MIRROR`).
pub fn on() -> bool {
    crate::config::mirror()
}

fn flock_of(ltype: i32, q: Range) -> libc::flock {
    libc::flock {
        l_type: ltype as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: q.start,
        l_len: q.flock_len(),
        l_pid: 0,
    }
}

fn raw_type(t: LockType) -> i32 {
    match t {
        LockType::Read => libc::F_RDLCK,
        LockType::Write => libc::F_WRLCK,
    }
}

/// How the kernel refused a mirror lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refused {
    /// Another owner holds a conflicting kernel lock.
    Conflict,
    /// The kernel could not take it for another reason (ENOLCK, EBADF on a
    /// descriptor that changed, ...): never reported as a conflict.
    Failed(Errno),
}

fn refusal(e: Errno) -> Refused {
    if e == Errno::AGAIN || e == Errno::ACCES { Refused::Conflict } else { Refused::Failed(e) }
}

/// Takes a kernel lock of type `t` on `q` through `fd`. A write lock
/// through a descriptor not open for writing (QNX grants an exclusive
/// flock() to any descriptor) is taken as a read lock: the kernel allows no
/// other, and it still excludes every outside writer.
pub fn lock(fd: i32, kind: Kind, t: LockType, q: Range, writable: bool) -> Result<(), Refused> {
    let t = if t == LockType::Write && !writable { LockType::Read } else { t };
    let mut fl = flock_of(raw_type(t), q);
    sys::fcntl_lock(fd, kind.set_cmd(), &mut fl).map_err(refusal)
}

/// Removes the kernel locks on `q` through `fd`.
pub fn unlock(fd: i32, kind: Kind, q: Range) {
    let mut fl = flock_of(libc::F_UNLCK, q);
    let _ = sys::fcntl_lock(fd, kind.set_cmd(), &mut fl);
}

/// A kernel `flock()`, non-blocking: `LOCK_SH`, `LOCK_EX` or `LOCK_UN`.
pub fn flock(fd: i32, op: i32) -> Result<(), Refused> {
    loop {
        let Err(e) = sys::flock_raw(fd, op | libc::LOCK_NB) else { return Ok(()) };
        if e != Errno::INTR {
            return Err(if e == Errno::WOULDBLOCK { Refused::Conflict } else { Refused::Failed(e) });
        }
    }
}

/// A kernel lock that conflicts with a request, as the kernel reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KernelHolder {
    pub ltype: LockType,
    pub range: Range,
    /// The kernel's `l_pid`: the holder's pid for a POSIX lock, -1 for an
    /// OFD lock.
    pub pid: i32,
}

/// The first kernel lock of another owner that conflicts with a lock of
/// type `t` on `q` through `fd` (F_GETLK, or F_OFD_GETLK for an open-file
/// owner).
pub fn holder(fd: i32, kind: Kind, t: LockType, q: Range) -> Result<Option<KernelHolder>, Errno> {
    let mut fl = flock_of(raw_type(t), q);
    sys::fcntl_lock(fd, kind.get_cmd(), &mut fl)?;
    if fl.l_type as i32 == libc::F_UNLCK {
        return Ok(None);
    }
    let start = fl.l_start;
    let end = if fl.l_len == 0 { EOF } else { start.saturating_add(fl.l_len - 1) };
    let ltype = if fl.l_type as i32 == libc::F_RDLCK { LockType::Read } else { LockType::Write };
    Ok(Some(KernelHolder { ltype, range: Range::new(start, end), pid: fl.l_pid }))
}

/// Whether the kernel shows any lock of another owner overlapping `q`
/// (asked through `fd` as `kind`). A registry lock of another owner that
/// the kernel does not show is one nobody holds any more: its descriptor
/// was closed by a process sharing the descriptor table, or its owner is
/// gone. An error counts as "shown": the registry's answer stands.
pub fn shows_lock(fd: i32, kind: Kind, q: Range) -> bool {
    !matches!(holder(fd, kind, LockType::Write, q), Ok(None))
}
