//! The mlock family and mmap/munmap. Traced pass-throughs: QNX's memory
//! locking rules and the mapped-file lockf rule come with the mlock issue.
//!
//! # Safety
//! These are exported C functions; addresses are the caller's and are
//! handed to libc unchanged.
#![allow(unsafe_code)]

use core::ffi::{c_int, c_void};
use core::fmt::Write;

use super::{errno_of, table};
use crate::config::{self, Func};
use crate::sys::{self, Errno};
use crate::trace::{self, Cursor, Ret, decode};

/// Runs `real` and traces it as `f` with `args`.
fn traced_int(f: Func, real: &dyn Fn() -> Option<c_int>, args: &dyn Fn(&mut Cursor) -> core::fmt::Result) -> c_int {
    let start = if config::traced(f) { sys::monotonic_ns() } else { 0 };
    let r = real().unwrap_or_else(|| {
        Errno::NOSYS.set();
        -1
    });
    let e = errno_of(r as i64);
    trace::line(f, start, Ret::Int(r as i64, e), args);
    if r == -1 {
        e.set();
    }
    r
}

/// # Safety
/// As mlock(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mlock(addr: *const c_void, len: usize) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    traced_int(Func::Mlock, &|| table::mlock::get().map(|f| unsafe { f(addr, len) }), &|c| {
        write!(c, "addr={addr:p}, len={len}")
    })
}

/// # Safety
/// As munlock(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn munlock(addr: *const c_void, len: usize) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    traced_int(Func::Munlock, &|| table::munlock::get().map(|f| unsafe { f(addr, len) }), &|c| {
        write!(c, "addr={addr:p}, len={len}")
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn mlockall(flags: c_int) -> c_int {
    // SAFETY: the caller's argument, forwarded.
    traced_int(Func::Mlockall, &|| table::mlockall::get().map(|f| unsafe { f(flags) }), &|c| decode::mcl(c, flags))
}

#[unsafe(no_mangle)]
pub extern "C" fn munlockall() -> c_int {
    // SAFETY: no arguments.
    traced_int(Func::Munlockall, &|| table::munlockall::get().map(|f| unsafe { f() }), &|_| Ok(()))
}

fn mmap_hook(f: Func, addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: i64) -> *mut c_void {
    let Some(real) = table::mmap::get() else {
        Errno::NOSYS.set();
        return libc::MAP_FAILED;
    };
    if !config::traced(f) {
        // SAFETY: the caller's arguments, forwarded.
        return unsafe { real(addr, len, prot, flags, fd, off) };
    }
    let start = sys::monotonic_ns();
    // SAFETY: the caller's arguments, forwarded.
    let p = unsafe { real(addr, len, prot, flags, fd, off) };
    let e = if p == libc::MAP_FAILED { Errno::last() } else { Errno(0) };
    trace::line(f, start, Ret::Ptr(p as usize, e), &|c| {
        write!(c, "addr={addr:p}, len={len}, ")?;
        decode::prot(c, prot)?;
        c.write_str(", ")?;
        decode::map_flags(c, flags)?;
        write!(c, ", fd={fd}, off={off}")
    });
    if p == libc::MAP_FAILED {
        e.set();
    }
    p
}

/// # Safety
/// As mmap(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    mmap_hook(Func::Mmap, addr, len, prot, flags, fd, off)
}

/// # Safety
/// As mmap64(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    mmap_hook(Func::Mmap64, addr, len, prot, flags, fd, off)
}

/// # Safety
/// As munmap(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: usize) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    traced_int(Func::Munmap, &|| table::munmap::get().map(|f| unsafe { f(addr, len) }), &|c| {
        write!(c, "addr={addr:p}, len={len}")
    })
}
