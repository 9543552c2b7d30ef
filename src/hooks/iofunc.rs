//! The exported resource-manager API: QNX's `iofunc_*` lock helpers, the
//! emulated `Msg*` reply calls, and the test hooks of `<qnxcompat.h>`.
//! Each decodes nothing itself: `crate::iofunc::api` does the work.
//!
//! None of these is reached from a signal handler by the interposer; they
//! take the iofunc store's mutex, so a program must not call them from a
//! handler that may interrupt one of them (QNX's take the attribute lock,
//! with the same consequence).
//!
//! # Safety
//! Pointer arguments come from C callers, as the QNX prototypes in
//! `shim/include/sys/iofunc.h` and `sys/neutrino.h` describe them.
#![allow(unsafe_code)]

use core::ffi::{c_int, c_long, c_void};

use crate::config::Func;
use crate::iofunc::abi::*;
use crate::iofunc::{api, msg};
use crate::sys::Errno;

/// `ocb->attr`, what every `*_default` handler works on (NULL for a NULL
/// OCB: the handler then fails with EINVAL).
///
/// # Safety
/// `ocb` is NULL or valid.
unsafe fn attr_of(ocb: *mut IofuncOcb) -> *mut IofuncAttr {
    // SAFETY: per the contract.
    unsafe { ocb.as_ref() }.map_or(core::ptr::null_mut(), |o| o.attr)
}

/// `int iofunc_lock(resmgr_context_t *ctp, io_lock_t *msg, iofunc_ocb_t *ocb, iofunc_attr_t *attr)`
///
/// # Safety
/// As QNX's: valid pointers, `msg` followed by its `nbytes` of data.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_lock(
    ctp: *mut ResmgrContext,
    m: *mut IoLock,
    ocb: *mut IofuncOcb,
    attr: *mut IofuncAttr,
) -> c_int {
    // SAFETY: the caller's pointers, as the contract says.
    unsafe { api::lock(Func::IofuncLock, ctp, m, ocb, attr) }
}

/// `int iofunc_lock_default(resmgr_context_t *ctp, io_lock_t *msg, iofunc_ocb_t *ocb)`:
/// `iofunc_lock()` on `ocb->attr`.
///
/// # Safety
/// As `iofunc_lock`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_lock_default(ctp: *mut ResmgrContext, m: *mut IoLock, ocb: *mut IofuncOcb) -> c_int {
    // SAFETY: the caller's pointers (the contract).
    let attr = unsafe { attr_of(ocb) };
    // SAFETY: as above.
    unsafe { api::lock(Func::IofuncLockDefault, ctp, m, ocb, attr) }
}

/// `int iofunc_close_dup(resmgr_context_t *ctp, io_close_t *msg, iofunc_ocb_t *ocb, iofunc_attr_t *attr)`
///
/// # Safety
/// Valid pointers (`msg` is not read).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_close_dup(
    ctp: *mut ResmgrContext,
    _msg: *mut c_void,
    ocb: *mut IofuncOcb,
    attr: *mut IofuncAttr,
) -> c_int {
    // SAFETY: the caller's pointers.
    unsafe { api::close_dup(Func::IofuncCloseDup, ctp, ocb, attr) }
}

/// `int iofunc_close_dup_default(resmgr_context_t *ctp, io_close_t *msg, iofunc_ocb_t *ocb)`
///
/// # Safety
/// Valid pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_close_dup_default(
    ctp: *mut ResmgrContext,
    _msg: *mut c_void,
    ocb: *mut IofuncOcb,
) -> c_int {
    // SAFETY: the caller's pointer.
    let attr = unsafe { attr_of(ocb) };
    // SAFETY: the caller's pointers.
    unsafe { api::close_dup(Func::IofuncCloseDupDefault, ctp, ocb, attr) }
}

/// `int iofunc_close_ocb(resmgr_context_t *ctp, iofunc_ocb_t *ocb, iofunc_attr_t *attr)`
///
/// # Safety
/// Valid pointers; `ocb` is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_close_ocb(
    ctp: *mut ResmgrContext,
    ocb: *mut IofuncOcb,
    attr: *mut IofuncAttr,
) -> c_int {
    // SAFETY: the caller's pointers.
    unsafe { api::close_ocb(Func::IofuncCloseOcb, ctp, ocb, attr) }
}

/// `int iofunc_close_ocb_default(resmgr_context_t *ctp, void *reserved, iofunc_ocb_t *ocb)`
///
/// # Safety
/// Valid pointers; `ocb` is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_close_ocb_default(
    ctp: *mut ResmgrContext,
    _reserved: *mut c_void,
    ocb: *mut IofuncOcb,
) -> c_int {
    // SAFETY: the caller's pointer.
    let attr = unsafe { attr_of(ocb) };
    // SAFETY: the caller's pointers.
    unsafe { api::close_ocb(Func::IofuncCloseOcbDefault, ctp, ocb, attr) }
}

/// `int iofunc_unblock(resmgr_context_t *ctp, iofunc_attr_t *attr)`
///
/// # Safety
/// Valid pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_unblock(ctp: *mut ResmgrContext, attr: *mut IofuncAttr) -> c_int {
    // SAFETY: the caller's pointers.
    unsafe { api::unblock(Func::IofuncUnblock, ctp, core::ptr::null(), attr) }
}

/// `int iofunc_unblock_default(resmgr_context_t *ctp, io_pulse_t *msg, iofunc_ocb_t *ocb)`
///
/// # Safety
/// Valid pointers (`msg` may be NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_unblock_default(
    ctp: *mut ResmgrContext,
    pulse: *const Pulse,
    ocb: *mut IofuncOcb,
) -> c_int {
    // SAFETY: the caller's pointer.
    let attr = unsafe { attr_of(ocb) };
    // SAFETY: the caller's pointers.
    unsafe { api::unblock(Func::IofuncUnblockDefault, ctp, pulse, attr) }
}

/// `void iofunc_attr_init(iofunc_attr_t *attr, mode_t mode, iofunc_attr_t *dattr, struct _client_info *info)`
///
/// # Safety
/// `attr` valid; `dattr`, `info` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_attr_init(
    attr: *mut IofuncAttr,
    mode: libc::mode_t,
    dattr: *const IofuncAttr,
    info: *const ClientInfo,
) {
    // SAFETY: the caller's pointers.
    unsafe { api::attr_init(attr, mode, dattr, info) }
}

/// The default I/O handlers this library has, by slot (as addresses: a
/// table slot holds any handler's pointer, and C calls it with its slot's
/// prototype, which is the function's own).
fn io_default(slot: usize) -> Handler {
    match slot {
        IO_CLOSE_OCB => iofunc_close_ocb_default as *const () as usize,
        IO_UNBLOCK => iofunc_unblock_default as *const () as usize,
        IO_LOCK => iofunc_lock_default as *const () as usize,
        IO_CLOSE_DUP => iofunc_close_dup_default as *const () as usize,
        _ => 0,
    }
}

/// `void iofunc_func_init(unsigned nconnect, resmgr_connect_funcs_t *connect, unsigned nio, resmgr_io_funcs_t *io)`:
/// `nconnect`/`nio` entries, the library's defaults where it has one
/// (I/O: close_ocb, unblock, lock, close_dup) and NULL elsewhere.
///
/// # Safety
/// Each table is NULL or has room for `nfuncs` and that many entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_func_init(
    nconnect: u32,
    connect: *mut ResmgrConnectFuncs,
    nio: u32,
    io: *mut ResmgrIoFuncs,
) {
    // SAFETY: per the contract, room for n entries after nfuncs. As QNX's:
    // min(n, the library's count) is recorded, entries past the library's
    // are zeroed, and a table given n = 0 is left alone.
    unsafe {
        if !connect.is_null() && nconnect > 0 {
            (*connect).nfuncs = nconnect.min(CONNECT_NFUNCS as u32);
            let f = core::ptr::addr_of_mut!((*connect).funcs) as *mut Handler;
            for i in 0..nconnect as usize {
                f.add(i).write(0);
            }
        }
        if !io.is_null() && nio > 0 {
            (*io).nfuncs = nio.min(IO_NFUNCS as u32);
            let f = core::ptr::addr_of_mut!((*io).funcs) as *mut Handler;
            for i in 0..nio as usize {
                f.add(i).write(if i < IO_NFUNCS { io_default(i) } else { 0 });
            }
        }
    }
}

/// `int iofunc_time_update(iofunc_attr_t *attr)`
///
/// # Safety
/// `attr` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_time_update(attr: *mut IofuncAttr) -> c_int {
    // SAFETY: the caller's pointer.
    unsafe { api::time_update(attr) }
}

/// `iofunc_lock_list_t *iofunc_lock_calloc(resmgr_context_t *ctp, IOFUNC_OCB_T *ocb, size_t size)`
///
/// # Safety
/// None beyond C's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_lock_calloc(_ctp: *mut c_void, _ocb: *mut c_void, size: usize) -> *mut c_void {
    if size > 1 << 31 {
        Errno::NOMEM.set();
        return core::ptr::null_mut();
    }
    // SAFETY: plain calloc.
    let p = unsafe { libc::calloc(size.max(1), 1) };
    if p.is_null() {
        Errno::NOMEM.set();
    }
    p
}

/// `void iofunc_lock_free(iofunc_lock_list_t *lock, size_t size)`
///
/// # Safety
/// `lock` came from `iofunc_lock_calloc` (or is NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iofunc_lock_free(lock: *mut c_void, _size: usize) {
    // SAFETY: per the contract.
    unsafe { libc::free(lock) }
}

/// Joins `parts` iovecs (QNX: a negative `parts` means one buffer of
/// `-parts` bytes at `iov`).
///
/// # Safety
/// `iov` describes readable memory as QNX's MsgReplyv requires.
unsafe fn gather(iov: *const libc::iovec, parts: c_int) -> Result<Vec<u8>, Errno> {
    if parts < 0 {
        let n = parts.unsigned_abs() as usize;
        if iov.is_null() {
            return Err(Errno::FAULT);
        }
        // SAFETY: per the contract, -parts readable bytes at iov.
        return Ok(unsafe { core::slice::from_raw_parts(iov as *const u8, n) }.to_vec());
    }
    if parts > 0 && iov.is_null() {
        return Err(Errno::FAULT);
    }
    let mut out = Vec::new();
    for i in 0..parts as usize {
        // SAFETY: per the contract, `parts` iovecs of readable memory.
        let v = unsafe { &*iov.add(i) };
        if v.iov_len > 0 {
            if v.iov_base.is_null() {
                return Err(Errno::FAULT);
            }
            // SAFETY: as above.
            out.extend_from_slice(unsafe { core::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) });
        }
    }
    Ok(out)
}

fn minus_one(r: Result<(), Errno>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => {
            e.set();
            -1
        }
    }
}

fn errno_value(r: Result<(), Errno>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.0,
    }
}

/// # Safety
/// `m` is NULL or readable for `bytes`.
unsafe fn reply(rcvid: c_int, status: c_long, m: *const c_void, bytes: usize) -> Result<(), Errno> {
    let data = if bytes == 0 {
        Vec::new()
    } else if m.is_null() {
        return Err(Errno::FAULT);
    } else {
        // SAFETY: per the contract.
        unsafe { core::slice::from_raw_parts(m as *const u8, bytes) }.to_vec()
    };
    api::program_reply(Func::MsgReply, rcvid, 0, status, data)
}

/// # Safety
/// As `gather`.
unsafe fn replyv(rcvid: c_int, status: c_long, iov: *const libc::iovec, parts: c_int) -> Result<(), Errno> {
    // SAFETY: per the contract.
    let data = unsafe { gather(iov, parts) }?;
    api::program_reply(Func::MsgReplyv, rcvid, 0, status, data)
}

/// `int MsgReply(int rcvid, long status, const void *msg, size_t bytes)` (emulated).
///
/// # Safety
/// `m` readable for `bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MsgReply(rcvid: c_int, status: c_long, m: *const c_void, bytes: usize) -> c_int {
    // SAFETY: per the contract.
    minus_one(unsafe { reply(rcvid, status, m, bytes) })
}

/// `MsgReply_r`: the errno value instead of -1.
///
/// # Safety
/// As `MsgReply`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MsgReply_r(rcvid: c_int, status: c_long, m: *const c_void, bytes: usize) -> c_int {
    // SAFETY: per the contract.
    errno_value(unsafe { reply(rcvid, status, m, bytes) })
}

/// `int MsgReplyv(int rcvid, long status, const iov_t *iov, int parts)` (emulated).
///
/// # Safety
/// `iov` as QNX requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MsgReplyv(rcvid: c_int, status: c_long, iov: *const libc::iovec, parts: c_int) -> c_int {
    // SAFETY: per the contract.
    minus_one(unsafe { replyv(rcvid, status, iov, parts) })
}

/// `MsgReplyv_r`.
///
/// # Safety
/// As `MsgReplyv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MsgReplyv_r(rcvid: c_int, status: c_long, iov: *const libc::iovec, parts: c_int) -> c_int {
    // SAFETY: per the contract.
    errno_value(unsafe { replyv(rcvid, status, iov, parts) })
}

/// `int MsgError(int rcvid, int err)` (emulated).
#[unsafe(no_mangle)]
pub extern "C" fn MsgError(rcvid: c_int, err: c_int) -> c_int {
    minus_one(api::program_reply(Func::MsgError, rcvid, err, -1, Vec::new()))
}

/// `MsgError_r`.
#[unsafe(no_mangle)]
pub extern "C" fn MsgError_r(rcvid: c_int, err: c_int) -> c_int {
    errno_value(api::program_reply(Func::MsgError, rcvid, err, -1, Vec::new()))
}

fn info_into(rcvid: c_int, out: *mut MsgInfo) -> Result<(), Errno> {
    let i = msg::info(rcvid)?;
    if out.is_null() {
        return Err(Errno::FAULT);
    }
    // SAFETY: a non-NULL out is a valid struct _msg_info (the contract).
    unsafe { out.write(i) };
    Ok(())
}

/// `int MsgInfo(int rcvid, struct _msg_info *info)` (emulated): the info of
/// an rcvid waiting for a reply.
///
/// # Safety
/// `info` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MsgInfo(rcvid: c_int, info: *mut MsgInfo) -> c_int {
    minus_one(info_into(rcvid, info))
}

/// `MsgInfo_r`.
///
/// # Safety
/// `info` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MsgInfo_r(rcvid: c_int, info: *mut MsgInfo) -> c_int {
    errno_value(info_into(rcvid, info))
}

/// `struct qnxcompat_reply` of `<qnxcompat.h>`.
#[repr(C)]
pub struct CollectedReply {
    pub err: c_int,
    pub status: c_long,
    pub nbytes: usize,
    pub data: [u8; 512],
}

/// `int qnxcompat_msg_reply(int rcvid, struct qnxcompat_reply *out)`:
/// what `rcvid` was told (EOK, and the rcvid is forgotten), EAGAIN while
/// it waits, ESRCH if unknown.
///
/// # Safety
/// `out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qnxcompat_msg_reply(rcvid: c_int, out: *mut CollectedReply) -> c_int {
    match msg::collect(rcvid) {
        Ok(t) => {
            // SAFETY: a non-NULL out is valid (the contract).
            if let Some(o) = unsafe { out.as_mut() } {
                o.err = t.err;
                o.status = t.status as c_long;
                o.nbytes = t.nbytes;
                let n = t.data.len().min(o.data.len());
                o.data[..n].copy_from_slice(&t.data[..n]);
            }
            0
        }
        Err(e) => e.0,
    }
}

/// `int qnxcompat_msg_unblock_request(int rcvid)`: the client of a waiting
/// rcvid asks to be unblocked (QNX: a signal or timeout while
/// REPLY-blocked). EOK, or ESRCH.
#[unsafe(no_mangle)]
pub extern "C" fn qnxcompat_msg_unblock_request(rcvid: c_int) -> c_int {
    errno_value(msg::request_unblock(rcvid))
}

/// `int qnxcompat_iofunc_record_limit(size_t records)`: test hook; at most
/// this many live lock records (SIZE_MAX: no limit but memory).
#[unsafe(no_mangle)]
pub extern "C" fn qnxcompat_iofunc_record_limit(records: usize) -> c_int {
    api::set_record_limit(records);
    0
}

/// `void qnxcompat_iofunc_stats(size_t *records, size_t *waiting)`.
///
/// # Safety
/// Each pointer NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qnxcompat_iofunc_stats(records: *mut usize, waiting: *mut usize) {
    let (r, w) = api::stats();
    // SAFETY: per the contract.
    unsafe {
        if let Some(p) = records.as_mut() {
            *p = r;
        }
        if let Some(p) = waiting.as_mut() {
            *p = w;
        }
    }
}
