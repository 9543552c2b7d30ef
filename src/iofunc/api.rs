//! The C-facing side of the resource-manager lock API: decodes the QNX
//! structures a handler is given, runs the request on the process's
//! [`Store`], encodes the reply, and answers clients whose requests were
//! waiting. The exported symbols (in `hooks::iofunc`) call these.
//!
//! # Safety
//! Every function takes pointers from a C caller. Each states what it
//! needs of them; NULL is checked where QNX's handlers could be given it.
#![allow(unsafe_code)]

use core::ffi::c_void;
use core::fmt::Write;
use std::sync::Mutex;

use super::abi::*;
use super::msg::{self, Told};
use super::store::{Answer, Basis, Req, Set, Store, Token};
use crate::config::Func;
use crate::engine::range::{LockType, Range, Request};
use crate::sys::{self, Errno};
use crate::trace::{self, Cursor, Ret};

static STORE: Mutex<Option<Store>> = Mutex::new(None);

/// What `attr->lock_list` points to while the resource has locks or
/// waiters: an opaque, non-NULL marker (QNX's list head is private too).
static LOCK_LIST_MARKER: u8 = 0;

fn with_store<R>(f: impl FnOnce(&mut Store) -> R) -> R {
    let mut g = STORE.lock().unwrap_or_else(|p| p.into_inner());
    let st = g.get_or_insert_with(Store::new);
    let r = f(st);
    // QNXCOMPAT_VERIFY=1: every invariant of the lock state after every
    // call, as the registry's are.
    if crate::config::verify_each()
        && let Err(what) = st.check()
    {
        let mut buf = [0u8; 160];
        let mut c = Cursor::new(&mut buf);
        let _ = writeln!(c, "qnxcompat: iofunc lock state invariant broken: {what}");
        let n = c.len();
        let _ = sys::write(2, &buf[..n]);
        // SAFETY: abort never returns and takes no arguments.
        unsafe { libc::abort() };
    }
    r
}

/// The request kinds of `_IO_LOCK`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sub {
    Get,
    Set,
    SetWait,
}

/// The subtype (an fcntl command). On x86-64 glibc's `F_GETLK64`,
/// `F_SETLK64` and `F_SETLKW64` are `F_GETLK`, `F_SETLK` and `F_SETLKW`.
fn subtype(raw: u32) -> Option<Sub> {
    match raw as i32 {
        libc::F_GETLK => Some(Sub::Get),
        libc::F_SETLK => Some(Sub::Set),
        libc::F_SETLKW => Some(Sub::SetWait),
        _ => None,
    }
}

/// A flock_t's bytes, as a reply carries them.
fn flock_bytes(fl: &QnxFlock) -> [u8; 32] {
    let mut t = [0u8; 32];
    t[0..2].copy_from_slice(&fl.l_type.to_ne_bytes());
    t[2..4].copy_from_slice(&fl.l_whence.to_ne_bytes());
    t[4..8].copy_from_slice(&fl.l_zero1.to_ne_bytes());
    t[8..16].copy_from_slice(&fl.l_start.to_ne_bytes());
    t[16..24].copy_from_slice(&fl.l_len.to_ne_bytes());
    t[24..28].copy_from_slice(&fl.l_pid.to_ne_bytes());
    t[28..32].copy_from_slice(&fl.l_sysid.to_ne_bytes());
    t
}

fn as_libc(fl: &QnxFlock) -> libc::flock {
    // SAFETY: an all-zero flock is a valid value.
    let mut l: libc::flock = unsafe { core::mem::zeroed() };
    l.l_type = fl.l_type;
    l.l_whence = fl.l_whence;
    l.l_start = fl.l_start;
    l.l_len = fl.l_len;
    l.l_pid = fl.l_pid;
    l
}

/// Sends the answers a call produced, after the store is let go.
fn deliver(answers: &[Answer]) {
    for &a in answers {
        match a {
            Answer::Granted { rcvid, token } => {
                let mut data = vec![0u8; IO_LOCK_HEADER];
                data.extend_from_slice(&flock_bytes(&token));
                // Told only if the rcvid still waits for that client (QNX
                // 6.4 checks MsgInfo and the scoid it kept in l_sysid).
                let r = msg::tell(rcvid, Some(token.l_sysid as i32), Told::new(0, 0, data));
                trace_reply(Func::MsgReplyv, sys::monotonic_ns(), rcvid, 0, r, Some(&token));
            }
            Answer::Failed { rcvid, err } => {
                let r = msg::tell(rcvid, None, Told::new(err.0, -1, Vec::new()));
                trace_reply(Func::MsgError, sys::monotonic_ns(), rcvid, err.0, r, None);
            }
        }
    }
}

fn trace_reply(f: Func, start: u64, rcvid: i32, err: i32, r: Result<(), Errno>, fl: Option<&Token>) {
    let ret = match r {
        Ok(()) => Ret::Int(0, Errno(0)),
        Err(e) => Ret::Int(-1, e),
    };
    trace::line(f, start, ret, &|c: &mut Cursor| {
        write!(c, "rcvid={rcvid}, ")?;
        match (f, fl) {
            (Func::MsgError, _) => c.write_str(Errno(err).name()),
            (_, Some(fl)) => {
                c.write_str("EOK, ")?;
                trace::decode::flock(c, &as_libc(fl))
            }
            _ => c.write_str("EOK"),
        }
    });
}

/// Runs `f` on the store for the resource `attr`, then sends the answers
/// it produced once the store is let go. Around `f`: state left over from
/// before the structure was initialised again (its `lock_list` found NULL
/// while the store has state) is dropped first, and `attr->lock_list` says
/// afterwards whether the resource has lock state.
///
/// # Safety
/// `attr` is valid.
unsafe fn with_resource<R>(
    attr: *mut IofuncAttr,
    f: impl FnOnce(&mut Store, &mut Vec<Answer>) -> R,
) -> (R, Vec<Answer>) {
    let key = attr as usize;
    let mut answers = Vec::new();
    let r = with_store(|st| {
        // SAFETY: per the contract; lock_list is read and written through
        // the raw pointer.
        unsafe {
            if (*attr).lock_list.is_null() {
                st.forget(key, &mut answers);
            }
            let r = f(st, &mut answers);
            (*attr).lock_list =
                if st.busy(key) { &LOCK_LIST_MARKER as *const u8 as *mut c_void } else { core::ptr::null_mut() };
            r
        }
    });
    deliver(&answers);
    (r, answers)
}

fn client_basis(info: &MsgInfo) -> Basis {
    Basis::Client { nd: info.nd, pid: info.pid, scoid: info.scoid }
}

/// `iofunc_lock(ctp, msg, ocb, attr)`.
///
/// # Safety
/// Each pointer is NULL or valid; `msg` is followed by `msg->i.nbytes`
/// bytes of data.
pub unsafe fn lock(
    f: Func,
    ctp: *mut ResmgrContext,
    m: *mut IoLock,
    ocb: *mut IofuncOcb,
    attr: *mut IofuncAttr,
) -> i32 {
    let start = sys::monotonic_ns();
    if ctp.is_null() || m.is_null() || ocb.is_null() || attr.is_null() {
        trace::line(f, start, Ret::Resmgr(libc::EINVAL), &|c: &mut Cursor| c.write_str("NULL"));
        return libc::EINVAL;
    }
    // SAFETY: per the contract, all four are valid.
    let (hdr, info, rcvid) = unsafe { (m.read_unaligned(), (*ctp).info, (*ctp).rcvid) };
    let data = (m as *mut u8).wrapping_add(IO_LOCK_HEADER) as *mut QnxFlock;
    let before = if hdr.nbytes as usize >= core::mem::size_of::<QnxFlock>() {
        // SAFETY: the message carries at least a flock_t after its header
        // (which puts it at offset 12: unaligned).
        Some(unsafe { data.read_unaligned() })
    } else {
        None
    };
    let mut after = before;
    // SAFETY: per the contract.
    let r = unsafe { lock_inner(ctp, m, ocb, attr, &hdr, &info, rcvid, &mut after) };
    trace::line(f, start, Ret::Resmgr(r), &|c: &mut Cursor| {
        write!(c, "rcvid={rcvid}, pid={}, scoid={}, ocb={:p}, ", info.pid, info.scoid, ocb)?;
        match subtype(hdr.subtype) {
            Some(_) => trace::decode::cmd(c, hdr.subtype as i32)?,
            None => write!(c, "subtype={}", hdr.subtype)?,
        }
        match (before, after) {
            (None, _) => write!(c, ", nbytes={}", hdr.nbytes),
            (Some(b), Some(a)) if subtype(hdr.subtype) == Some(Sub::Get) && r == RESMGR_NPARTS_1 => {
                c.write_str(", ")?;
                trace::decode::flock(c, &as_libc(&b))?;
                c.write_str(" -> ")?;
                trace::decode::flock_answer(c, &as_libc(&a))
            }
            (Some(b), _) => {
                c.write_str(", ")?;
                trace::decode::flock(c, &as_libc(&b))
            }
        }
    });
    r
}

/// # Safety
/// As `lock`, with every pointer valid.
#[allow(clippy::too_many_arguments)]
unsafe fn lock_inner(
    ctp: *mut ResmgrContext,
    m: *mut IoLock,
    ocb: *mut IofuncOcb,
    attr: *mut IofuncAttr,
    hdr: &IoLock,
    info: &MsgInfo,
    rcvid: i32,
    fl: &mut Option<QnxFlock>,
) -> i32 {
    let Some(sub) = subtype(hdr.subtype) else { return libc::EINVAL };
    let Some(req_fl) = *fl else { return libc::EINVAL };
    let by_ocb = req_fl.l_type as i32 & crate::F_FLOCK != 0;
    let base = req_fl.l_type as i32 & !crate::F_FLOCK;
    let req = match base {
        libc::F_RDLCK => Request::Lock(LockType::Read),
        libc::F_WRLCK => Request::Lock(LockType::Write),
        libc::F_UNLCK => Request::Unlock,
        _ => return libc::EINVAL,
    };
    // SAFETY: per the contract.
    let (ioflag, offset, nbytes) = unsafe { ((*ocb).ioflag, (*ocb).offset, (*attr).nbytes) };
    if sub != Sub::Get {
        // QNX iofunc_lock_default(): "a read lock on a write-only resource,
        // or a write lock on a read-only resource" is EBADF.
        match req {
            Request::Lock(LockType::Read) if ioflag & IO_FLAG_RD == 0 => return libc::EBADF,
            Request::Lock(LockType::Write) if ioflag & IO_FLAG_WR == 0 => return libc::EBADF,
            _ => {}
        }
    }
    let origin = match req_fl.l_whence as i32 {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => offset,
        libc::SEEK_END => nbytes,
        _ => return libc::EINVAL,
    };
    let range = match Range::from_flock(origin, req_fl.l_start, req_fl.l_len) {
        Ok(r) => r,
        Err(e) => return e.0,
    };
    let basis = if by_ocb { Basis::Ocb(ocb as usize) } else { client_basis(info) };
    let key = attr as usize;
    // SAFETY: attr is valid (the contract).
    let (result, _) = unsafe {
        with_resource(attr, |st, answers| match (sub, req) {
            (Sub::Get, Request::Unlock) => Err(Errno::INVAL),
            (Sub::Get, Request::Lock(t)) => st.test(key, basis, t, range).map(|h| {
                let mut out = req_fl;
                match h {
                    Some(h) => {
                        out.l_type = match h.ltype {
                            LockType::Read => libc::F_RDLCK as i16,
                            LockType::Write => libc::F_WRLCK as i16,
                        };
                        if h.by_ocb {
                            out.l_type |= crate::F_FLOCK as i16;
                        }
                        out.l_whence = libc::SEEK_SET as i16;
                        out.l_start = h.range.start;
                        out.l_len = h.range.flock_len();
                        out.l_pid = h.pid;
                        out.l_sysid = h.nd;
                    }
                    None => out.l_type = libc::F_UNLCK as i16,
                }
                *fl = Some(out);
                Set::Granted
            }),
            (s, _) => {
                let q = Req { basis, pid: info.pid, nd: info.nd, req, range };
                // The answer carries the flock as requested, with the
                // client's scoid in l_sysid (QNX 6.4).
                let token = QnxFlock { l_sysid: info.scoid as u32, ..req_fl };
                let wait = (s == Sub::SetWait).then_some((rcvid, token));
                let r = st.set(key, q, wait, answers);
                if r == Ok(Set::Waiting) {
                    // In the book before the store is let go, so that no
                    // grant can be told before the rcvid is known to wait.
                    msg::left_unreplied(rcvid, info);
                }
                r
            }
        })
    };
    match result {
        Ok(Set::Granted) => {
            let out = fl.unwrap_or(req_fl);
            // SAFETY: the message is valid for its header and nbytes >= 32
            // bytes of data (checked when `fl` was read); the reply header
            // overlays the request header.
            unsafe {
                (m as *mut [u32; 3]).write_unaligned([0; 3]);
                (m as *mut u8).wrapping_add(IO_LOCK_HEADER).cast::<QnxFlock>().write_unaligned(out);
                (*ctp).iov[0] = libc::iovec { iov_base: m as *mut c_void, iov_len: IO_LOCK_REPLY_LEN };
            }
            RESMGR_NPARTS_1
        }
        Ok(Set::Waiting) => RESMGR_NOREPLY,
        Err(e) => e.0,
    }
}

/// `iofunc_close_dup(ctp, msg, ocb, attr)`: the client's locks on the
/// resource go (QNX: "frees all locks allocated for the client process"),
/// unless the OCB has no read or write access or is mapped (QNX 6.4).
///
/// # Safety
/// Each pointer is NULL or valid.
pub unsafe fn close_dup(f: Func, ctp: *mut ResmgrContext, ocb: *mut IofuncOcb, attr: *mut IofuncAttr) -> i32 {
    let start = sys::monotonic_ns();
    if ctp.is_null() || ocb.is_null() || attr.is_null() {
        trace::line(f, start, Ret::Resmgr(libc::EINVAL), &|c: &mut Cursor| c.write_str("NULL"));
        return libc::EINVAL;
    }
    // SAFETY: per the contract.
    let (info, ioflag, flags) = unsafe { ((*ctp).info, (*ocb).ioflag, (*ocb).flags) };
    let mut granted = 0;
    if ioflag & (IO_FLAG_RD | IO_FLAG_WR) != 0 && flags & IOFUNC_OCB_MMAP == 0 {
        // SAFETY: attr is valid.
        let ((), answers) = unsafe {
            with_resource(attr, |st, answers| st.release_all(attr as usize, client_basis(&info), false, answers))
        };
        granted = answers.iter().filter(|a| matches!(a, Answer::Granted { .. })).count();
    }
    trace::line(f, start, Ret::Resmgr(0), &|c: &mut Cursor| {
        write!(c, "pid={}, scoid={}, ocb={:p}, granted={granted}", info.pid, info.scoid, ocb)
    });
    0
}

/// `iofunc_close_ocb(ctp, ocb, attr)`: the OCB's own locks (F_FLOCK basis)
/// go and its waiting requests fail with EBADF; the open counts drop; the
/// OCB is freed (`mount->funcs->ocb_free`, or `free()`).
///
/// # Safety
/// Each pointer is NULL or valid; `ocb` was allocated as its mount's
/// `ocb_free` (or `free()`) expects.
pub unsafe fn close_ocb(f: Func, ctp: *mut ResmgrContext, ocb: *mut IofuncOcb, attr: *mut IofuncAttr) -> i32 {
    let start = sys::monotonic_ns();
    if ocb.is_null() || attr.is_null() {
        trace::line(f, start, Ret::Resmgr(libc::EINVAL), &|c: &mut Cursor| c.write_str("NULL"));
        return libc::EINVAL;
    }
    let pid = if ctp.is_null() {
        0
    } else {
        // SAFETY: per the contract.
        unsafe { (*ctp).info.pid }
    };
    // SAFETY: attr is valid.
    unsafe {
        with_resource(attr, |st, answers| st.release_all(attr as usize, Basis::Ocb(ocb as usize), true, answers))
    };
    // SAFETY: per the contract, both are valid; fields are written through
    // the raw pointer (another thread may hold the attribute's own mutex),
    // under the mount's attr_lock when it has one, as QNX's
    // iofunc_close_ocb() does; the free function is the mount's own (or
    // libc's, for QNX's default calloc'd OCBs).
    unsafe {
        let ioflag = (*ocb).ioflag;
        let mount = (*attr).mount;
        let funcs = if mount.is_null() { core::ptr::null_mut() } else { (*mount).funcs };
        let slot = |n: u32| !funcs.is_null() && (*funcs).nfuncs >= n;
        let (lock, unlock) = if slot(4) { ((*funcs).attr_lock, (*funcs).attr_unlock) } else { (None, None) };
        if let Some(l) = lock {
            l(attr);
        }
        (*attr).count = (*attr).count.saturating_sub(1);
        if ioflag & IO_FLAG_RD != 0 {
            (*attr).rcount = (*attr).rcount.saturating_sub(1);
        }
        if ioflag & IO_FLAG_WR != 0 {
            (*attr).wcount = (*attr).wcount.saturating_sub(1);
        }
        if let Some(u) = unlock {
            u(attr);
        }
        let free_fn = if slot(2) { (*funcs).ocb_free } else { None };
        match free_fn {
            Some(free_ocb) => free_ocb(ocb),
            None => libc::free(ocb as *mut c_void),
        }
    }
    trace::line(f, start, Ret::Resmgr(0), &|c: &mut Cursor| write!(c, "pid={pid}, ocb={ocb:p}"));
    0
}

/// `iofunc_unblock(ctp, attr)`: cancels the waiting request of the rcvid
/// (`ctp->rcvid`, or the value of an unblock pulse) with EINTR if its
/// client asked to be unblocked (`MsgInfo()` has `_NTO_MI_UNBLOCK_REQ`).
///
/// # Safety
/// `ctp` and `attr` are NULL or valid; `pulse` is NULL or valid.
pub unsafe fn unblock(f: Func, ctp: *mut ResmgrContext, pulse: *const Pulse, attr: *mut IofuncAttr) -> i32 {
    let start = sys::monotonic_ns();
    if ctp.is_null() || attr.is_null() {
        trace::line(f, start, Ret::Resmgr(RESMGR_DEFAULT), &|c: &mut Cursor| c.write_str("NULL"));
        return RESMGR_DEFAULT;
    }
    // SAFETY: per the contract.
    let mut rcvid = unsafe { (*ctp).rcvid };
    // SAFETY: per the contract, a non-NULL pulse is valid.
    if let Some(p) = unsafe { pulse.as_ref() }
        && p.code == PULSE_CODE_UNBLOCK
    {
        rcvid = p.value as i32;
    }
    let may = |r: i32| msg::info(r).is_ok_and(|i| i.flags & NTO_MI_UNBLOCK_REQ != 0);
    // SAFETY: attr is valid.
    let (done, _) = unsafe { with_resource(attr, |st, answers| st.cancel(attr as usize, rcvid, &may, answers)) };
    let r = if done { RESMGR_NOREPLY } else { RESMGR_DEFAULT };
    trace::line(f, start, Ret::Resmgr(r), &|c: &mut Cursor| write!(c, "rcvid={rcvid}"));
    r
}

/// The test hook behind `qnxcompat_iofunc_record_limit()`.
pub fn set_record_limit(limit: usize) {
    with_store(|st| st.set_record_limit(limit));
}

/// Live lock records and waiting requests (`qnxcompat_iofunc_stats()`).
pub fn stats() -> (usize, usize) {
    with_store(|st| (st.records(), st.waiting()))
}

/// `iofunc_attr_init(attr, mode, dattr, info)`, as QNX's.
///
/// # Safety
/// `attr` is valid; `dattr` and `info` are NULL or valid.
pub unsafe fn attr_init(attr: *mut IofuncAttr, mode: u32, dattr: *const IofuncAttr, info: *const ClientInfo) {
    if attr.is_null() {
        return;
    }
    let mut mode = mode;
    // SAFETY: per the contract.
    unsafe {
        let key = attr as usize;
        let mut answers = Vec::new();
        // The structure's lock state, if any, goes with it.
        with_store(|st| st.forget(key, &mut answers));
        deliver(&answers);
        core::ptr::write_bytes(attr, 0, 1);
        let a = &mut *attr;
        let d = dattr.as_ref();
        let i = info.as_ref();
        a.mount = d.map_or(core::ptr::null_mut(), |d| d.mount);
        a.flags = IOFUNC_ATTR_DIRTY_TIME | IOFUNC_ATTR_MTIME | IOFUNC_ATTR_ATIME | IOFUNC_ATTR_CTIME;
        a.uid = i.map_or_else(|| libc::getuid(), |i| i.cred.euid);
        a.gid = match d {
            Some(d) if d.mode & libc::S_ISGID != 0 => {
                if mode & libc::S_IFMT == libc::S_IFDIR {
                    mode |= libc::S_ISGID;
                }
                d.gid
            }
            _ => i.map_or_else(|| libc::getgid(), |i| i.cred.egid),
        };
        a.mode = mode;
        a.nlink = 1;
    }
}

/// `iofunc_time_update(attr)`.
///
/// # Safety
/// `attr` is NULL or valid.
pub unsafe fn time_update(attr: *mut IofuncAttr) -> i32 {
    if attr.is_null() {
        return libc::EINVAL;
    }
    let marks = IOFUNC_ATTR_MTIME | IOFUNC_ATTR_ATIME | IOFUNC_ATTR_CTIME;
    // SAFETY: per the contract; fields are read and written through the
    // raw pointer, never as a reference to the whole structure (its mutex
    // may be another thread's).
    unsafe {
        let flags = (*attr).flags;
        if flags & marks == 0 {
            return 0;
        }
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
        if flags & IOFUNC_ATTR_MTIME != 0 {
            (*attr).mtime = ts.tv_sec;
            (*attr).mtime_ns = ts.tv_nsec as u32;
        }
        if flags & IOFUNC_ATTR_ATIME != 0 {
            (*attr).atime = ts.tv_sec;
            (*attr).atime_ns = ts.tv_nsec as u32;
        }
        if flags & IOFUNC_ATTR_CTIME != 0 {
            (*attr).ctime = ts.tv_sec;
            (*attr).ctime_ns = ts.tv_nsec as u32;
        }
        (*attr).flags = (flags & !marks) | IOFUNC_ATTR_DIRTY_TIME;
    }
    0
}

/// `MsgReply*()` / `MsgError()` from the program: recorded in the book.
pub fn program_reply(f: Func, rcvid: i32, err: i32, status: i64, data: Vec<u8>) -> Result<(), Errno> {
    let start = sys::monotonic_ns();
    // A request of this rcvid still queued is dropped: the program has
    // answered it, and it must never be answered again.
    with_store(|st| st.drop_rcvid(rcvid));
    let r = msg::tell(rcvid, None, Told::new(err, status, data));
    trace::line(
        f,
        start,
        match r {
            Ok(()) => Ret::Int(0, Errno(0)),
            Err(e) => Ret::Int(-1, e),
        },
        &|c: &mut Cursor| {
            write!(c, "rcvid={rcvid}, ")?;
            if f == Func::MsgError { c.write_str(Errno(err).name()) } else { write!(c, "status={status}") }
        },
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(rcvid: i32, pid: i32) -> ResmgrContext {
        ResmgrContext {
            rcvid,
            info: MsgInfo { pid, scoid: pid + 1000, ..Default::default() },
            msg: core::ptr::null_mut(),
            dpp: core::ptr::null_mut(),
            id: 0,
            extra: core::ptr::null_mut(),
            msg_max_size: 0,
            status: 0,
            offset: 0,
            size: 0,
            iov: [libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 }],
        }
    }

    #[repr(C)]
    struct Msg {
        hdr: IoLock,
        fl: [u8; 32],
    }

    fn message(cmd: i32, t: i32, start: i64, len: i64) -> Msg {
        let fl = QnxFlock { l_type: t as i16, l_whence: 0, l_start: start, l_len: len, ..Default::default() };
        Msg {
            hdr: IoLock { type_: IO_LOCK_TYPE, combine_len: 12, subtype: cmd as u32, nbytes: 32 },
            fl: flock_bytes(&fl),
        }
    }

    fn boxed_attr() -> Box<IofuncAttr> {
        // SAFETY: all-zero is a valid IofuncAttr (pointers NULL).
        Box::new(unsafe { core::mem::zeroed() })
    }

    fn ocb_for(attr: &mut IofuncAttr, ioflag: i32) -> IofuncOcb {
        IofuncOcb { attr, ioflag, offset: 0, sflag: 0, flags: 0, reserved: core::ptr::null_mut() }
    }

    #[test]
    fn message_round_trip() {
        let mut attr = boxed_attr();
        let mut o1 = ocb_for(&mut attr, 3);
        let mut o2 = ocb_for(&mut attr, 3);
        let mut c1 = ctx(1, 501);
        let mut c2 = ctx(2, 502);
        let a = &mut *attr as *mut IofuncAttr;
        let mut m = message(libc::F_SETLK, libc::F_WRLCK, 0, 10);
        // SAFETY: valid pointers to live locals.
        unsafe {
            let hdr = &mut m as *mut Msg as *mut IoLock;
            assert_eq!(lock(Func::IofuncLock, &mut c1, hdr, &mut o1, a), RESMGR_NPARTS_1);
            assert_eq!(c1.iov[0].iov_len, IO_LOCK_REPLY_LEN);
            assert!(!(*a).lock_list.is_null());
            let mut g = message(libc::F_GETLK, libc::F_RDLCK, 5, 1);
            let gh = &mut g as *mut Msg as *mut IoLock;
            assert_eq!(lock(Func::IofuncLock, &mut c2, gh, &mut o2, a), RESMGR_NPARTS_1);
            let fl = (gh as *mut u8).add(IO_LOCK_HEADER).cast::<QnxFlock>().read_unaligned();
            assert_eq!((fl.l_type as i32, fl.l_start, fl.l_len, fl.l_pid), (libc::F_WRLCK, 0, 10, 501));
            let mut w = message(libc::F_SETLKW, libc::F_WRLCK, 5, 1);
            let wh = &mut w as *mut Msg as *mut IoLock;
            assert_eq!(lock(Func::IofuncLock, &mut c2, wh, &mut o2, a), RESMGR_NOREPLY);
            assert_eq!(msg::collect(2), Err(Errno::AGAIN));
            assert_eq!(close_dup(Func::IofuncCloseDup, &mut c1, &mut o1, a), 0);
            let told = msg::collect(2).unwrap();
            assert_eq!((told.err, told.data.len()), (0, IO_LOCK_REPLY_LEN));
            let mut u = message(libc::F_SETLK, libc::F_UNLCK, 0, 0);
            let uh = &mut u as *mut Msg as *mut IoLock;
            assert_eq!(lock(Func::IofuncLock, &mut c2, uh, &mut o2, a), RESMGR_NPARTS_1);
            assert!((*a).lock_list.is_null());
        }
    }
}
