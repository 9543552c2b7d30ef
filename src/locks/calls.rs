//! The QNX call shapes: lockf's mapping, fcntl's lock commands, flock.

use super::*;

/// QNX `lockf()` on top of the registry (QNX libc's mapping, not glibc's):
/// F_LOCK = F_SETLKW write, F_TLOCK = F_SETLK write, F_ULOCK = unlock, and
/// F_TEST = F_GETLK *write*, so another process's read lock fails it too.
pub fn lockf(fd: i32, function: i32, size: i64, call: &mut CallState) -> Outcome {
    if !matches!(function, libc::F_LOCK | libc::F_TLOCK | libc::F_TEST | libc::F_ULOCK) {
        return Outcome::Failed(Errno::INVAL);
    }
    let file = match FileRef::of(fd) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    if matches!(function, libc::F_LOCK | libc::F_TLOCK) && !file.writable {
        return Outcome::Failed(Errno::BADF);
    }
    let cur = match identity::position(fd) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e),
    };
    // QNX lockf(): F_LOCK and F_TLOCK fail with EAGAIN on a mapped file.
    let request = |req, range, wait| SetRequest {
        owner: OwnerSpec::Process,
        req,
        range,
        wait,
        nomem: Errno::NOMEM,
        convert: false,
        refuse_mapped: matches!(req, Request::Lock(_)),
    };
    // QNX lockf(): F_ULOCK with size OFF_MAX, when the process holds a
    // size-0 lock in that range, is treated as F_ULOCK with size 0.
    if function == libc::F_ULOCK && size == i64::MAX && holds_lock_to_eof(&file, Range::new(cur, EOF)) {
        return set(fd, &file, request(Request::Unlock, Range::new(cur, EOF), false), call);
    }
    let q = match Range::from_flock(cur, 0, size) {
        Ok(q) => q,
        Err(e) => return Outcome::Failed(e),
    };
    match function {
        libc::F_TEST => match test(fd, &file, OwnerSpec::Process, LockType::Write, q, Errno::NOMEM) {
            Ok(None) => Outcome::Done(0),
            Ok(Some(c)) => {
                call.met_conflict(&c);
                Outcome::Failed(Errno::ACCES)
            }
            Err(o) => o,
        },
        libc::F_ULOCK => set(fd, &file, request(Request::Unlock, q, false), call),
        _ => set(fd, &file, request(Request::Lock(LockType::Write), q, function == libc::F_LOCK), call),
    }
}

/// The lock commands of fcntl, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockCmd {
    GetLk,
    SetLk,
    SetLkW,
    OfdGetLk,
    OfdSetLk,
    OfdSetLkW,
}

impl LockCmd {
    pub fn from_raw(cmd: i32) -> Option<LockCmd> {
        Some(match cmd {
            libc::F_GETLK => LockCmd::GetLk,
            libc::F_SETLK => LockCmd::SetLk,
            libc::F_SETLKW => LockCmd::SetLkW,
            libc::F_OFD_GETLK => LockCmd::OfdGetLk,
            libc::F_OFD_SETLK => LockCmd::OfdSetLk,
            libc::F_OFD_SETLKW => LockCmd::OfdSetLkW,
            _ => return None,
        })
    }

    fn is_ofd(self) -> bool {
        matches!(self, LockCmd::OfdGetLk | LockCmd::OfdSetLk | LockCmd::OfdSetLkW)
    }
}

/// Splits `l_type` into the lock type and whether QNX's F_FLOCK bit is set.
pub(super) fn decode_type(l_type: i16) -> (i32, bool) {
    let raw = l_type as i32;
    (raw & !crate::F_FLOCK, raw & crate::F_FLOCK != 0)
}

/// `fcntl(fd, cmd, fl)` for the lock commands: process-owned locks, or
/// open-file-owned ones with `F_FLOCK` in `l_type` or a Linux OFD command.
pub fn fcntl_lock(fd: i32, cmd: LockCmd, fl: &mut libc::flock, call: &mut CallState) -> Outcome {
    let file = match FileRef::of(fd) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    let (base_type, flock_bit) = decode_type(fl.l_type);
    // Linux: an OFD request must come with l_pid 0.
    if cmd.is_ofd() && fl.l_pid != 0 {
        return Outcome::Failed(Errno::INVAL);
    }
    let spec = if cmd.is_ofd() {
        OwnerSpec::OpenFile(fd, FLAVOR_LINUX_OFD)
    } else if flock_bit {
        OwnerSpec::OpenFile(fd, FLAVOR_QNX_FLOCK)
    } else {
        OwnerSpec::Process
    };
    let q = match file.base(fd, fl.l_whence).and_then(|b| Range::from_flock(b, fl.l_start, fl.l_len)) {
        Ok(q) => q,
        Err(e) => return Outcome::Failed(e),
    };
    if matches!(cmd, LockCmd::GetLk | LockCmd::OfdGetLk) {
        let t = match base_type {
            libc::F_RDLCK => LockType::Read,
            libc::F_WRLCK => LockType::Write,
            _ => return Outcome::Failed(Errno::INVAL),
        };
        return match test(fd, &file, spec, t, q, Errno::NOLCK) {
            Ok(None) => {
                fl.l_type = libc::F_UNLCK as i16;
                Outcome::Done(0)
            }
            Ok(Some(c)) => {
                let t = match c.ltype {
                    LockType::Read => libc::F_RDLCK,
                    LockType::Write => libc::F_WRLCK,
                };
                // QNX's F_GETLK shows a flock-kind holder with F_FLOCK set
                // and its pid; Linux shows an open-file holder with l_pid -1,
                // and so do the Linux OFD commands for any open-file holder.
                let (flag, pid) = match (c.holder, cmd.is_ofd()) {
                    (Holder::Process, _) => (0, c.pid),
                    (Holder::QnxFlock, false) => (crate::F_FLOCK, c.pid),
                    (Holder::QnxFlock, true) | (Holder::LinuxOfd, _) => (0, -1),
                };
                fl.l_type = (t | flag) as i16;
                fl.l_whence = libc::SEEK_SET as i16;
                fl.l_start = c.range.start;
                fl.l_len = c.range.flock_len();
                fl.l_pid = pid;
                Outcome::Done(0)
            }
            Err(o) => o,
        };
    }
    let req = match base_type {
        libc::F_RDLCK if !file.readable => return Outcome::Failed(Errno::BADF),
        libc::F_WRLCK if !file.writable => return Outcome::Failed(Errno::BADF),
        libc::F_RDLCK => Request::Lock(LockType::Read),
        libc::F_WRLCK => Request::Lock(LockType::Write),
        libc::F_UNLCK => Request::Unlock,
        _ => return Outcome::Failed(Errno::INVAL),
    };
    let wait = matches!(cmd, LockCmd::SetLkW | LockCmd::OfdSetLkW);
    let waited = call.slices > 0;
    let r = SetRequest { owner: spec, req, range: q, wait, nomem: Errno::NOLCK, convert: false, refuse_mapped: false };
    let out = set(fd, &file, r, call);
    // (With the kernel mirror, `set` checks this before it takes the kernel
    // lock; a descriptor closed after that drops both locks on its own.)
    if out == Outcome::Done(0) && !crate::mirror::on() && (waited || call.slices > 0) && !same_file(fd, &file) {
        // The descriptor was closed or replaced while we waited (Linux's
        // fcntl_setlk re-check): undo the grant and report EBADF.
        let undo = SetRequest { req: Request::Unlock, wait: false, ..r };
        let _ = set(fd, &file, undo, call);
        return Outcome::Failed(Errno::BADF);
    }
    out
}

pub(super) fn same_file(fd: i32, file: &FileRef) -> bool {
    sys::fstat(fd).is_ok_and(|st| st.st_dev == file.dev && st.st_ino == file.ino)
}

/// QNX `flock()`: a whole-file lock owned by the open file, in the same
/// list as fcntl and lockf locks. LOCK_SH is a read lock, LOCK_EX an
/// exclusive one (granted to a descriptor open for reading or writing),
/// LOCK_UN removes it; LOCK_NB fails a conflict with EWOULDBLOCK. A
/// conversion releases the old lock first.
pub fn flock(fd: i32, op: i32, call: &mut CallState) -> Outcome {
    const KNOWN: i32 = libc::LOCK_SH | libc::LOCK_EX | libc::LOCK_UN | libc::LOCK_NB;
    if op & !KNOWN != 0 {
        return Outcome::Failed(Errno::INVAL);
    }
    // QNX libc's order: LOCK_SH wins over LOCK_EX, then LOCK_UN.
    let req = if op & libc::LOCK_SH != 0 {
        Request::Lock(LockType::Read)
    } else if op & libc::LOCK_EX != 0 {
        Request::Lock(LockType::Write)
    } else if op & libc::LOCK_UN != 0 {
        Request::Unlock
    } else {
        return Outcome::Failed(Errno::INVAL);
    };
    let file = match FileRef::of(fd) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e),
    };
    let allowed = match req {
        Request::Lock(LockType::Read) => file.readable,
        _ => file.readable || file.writable,
    };
    if !allowed {
        return Outcome::Failed(Errno::BADF);
    }
    let r = SetRequest {
        owner: OwnerSpec::OpenFile(fd, FLAVOR_QNX_FLOCK),
        req,
        range: Range::WHOLE,
        wait: op & libc::LOCK_NB == 0,
        nomem: Errno::NOLCK,
        convert: true,
        refuse_mapped: false,
    };
    match set(fd, &file, r, call) {
        Outcome::Failed(Errno::AGAIN) => Outcome::Failed(Errno::WOULDBLOCK),
        other => other,
    }
}
