//! The mlock family, with QNX's rules from [`crate::mlock`], and
//! mmap/munmap, which record file mappings for lockf's mapped-file rule.
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
use crate::{mappings, mlock};

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

/// Who is calling, for the mlock policy.
fn caller() -> mlock::Caller {
    mlock::Caller {
        version: if config::qnx8() { mlock::Version::V8 } else { mlock::Version::V7 },
        privileged: sys::geteuid() == 0 || config::has_mem_lock_ability(),
    }
}

/// Applies the policy's verdict: fail, succeed, or run the real call.
fn apply(verdict: mlock::Verdict, real: &dyn Fn() -> Option<c_int>) -> Option<c_int> {
    match verdict {
        mlock::Verdict::Real => real(),
        mlock::Verdict::Succeed => Some(0),
        mlock::Verdict::Fail(e) => {
            e.set();
            Some(-1)
        }
    }
}

/// Runs a memory-locking call under QNX's policy (or passes it through
/// when the library is off), traced as `f`.
fn policed(
    f: Func,
    verdict: &dyn Fn() -> mlock::Verdict,
    real: &dyn Fn() -> Option<c_int>,
    args: &dyn Fn(&mut Cursor) -> core::fmt::Result,
) -> c_int {
    traced_int(f, &|| if config::active() { apply(verdict(), real) } else { real() }, args)
}

/// # Safety
/// As mlock(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mlock(addr: *const c_void, len: usize) -> c_int {
    policed(
        Func::Mlock,
        &|| mlock::mlock(caller(), addr as usize, sys::page_size(), &|| sys::range_mapped(addr as usize, len)),
        // SAFETY: the caller's arguments, forwarded.
        &|| table::mlock::get().map(|f| unsafe { f(addr, len) }),
        &|c| write!(c, "addr={addr:p}, len={len}"),
    )
}

/// `mlock2(addr, len, flags)`: `mlock`'s rules (see `crate::mlock::mlock2`).
///
/// # Safety
/// As mlock2(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mlock2(addr: *const c_void, len: usize, flags: core::ffi::c_uint) -> c_int {
    policed(
        Func::Mlock2,
        &|| mlock::mlock2(caller(), addr as usize, sys::page_size(), flags, &|| sys::range_mapped(addr as usize, len)),
        // SAFETY: the caller's arguments, forwarded (the raw syscall where
        // this glibc has no wrapper).
        &|| {
            Some(match table::mlock2::get() {
                // SAFETY: as above.
                Some(f) => unsafe { f(addr, len, flags) },
                None => match crate::sys::mlock2_raw(addr as usize, len, flags) {
                    Ok(()) => 0,
                    Err(e) => {
                        e.set();
                        -1
                    }
                },
            })
        },
        &|c| write!(c, "addr={addr:p}, len={len}, flags={flags:#x}"),
    )
}

/// # Safety
/// As munlock(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn munlock(addr: *const c_void, len: usize) -> c_int {
    policed(
        Func::Munlock,
        &|| mlock::munlock(caller()),
        // SAFETY: the caller's arguments, forwarded.
        &|| table::munlock::get().map(|f| unsafe { f(addr, len) }),
        &|c| write!(c, "addr={addr:p}, len={len}"),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn mlockall(flags: c_int) -> c_int {
    policed(
        Func::Mlockall,
        &|| mlock::mlockall(caller(), flags),
        // SAFETY: the caller's argument, forwarded.
        &|| table::mlockall::get().map(|f| unsafe { f(flags) }),
        &|c| decode::mcl(c, flags),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn munlockall() -> c_int {
    policed(
        Func::Munlockall,
        &|| mlock::munlock(caller()),
        // SAFETY: no arguments.
        &|| table::munlockall::get().map(|f| unsafe { f() }),
        &|_| Ok(()),
    )
}

fn mmap_hook(f: Func, addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: i64) -> *mut c_void {
    let Some(real) = table::mmap::get() else {
        Errno::NOSYS.set();
        return libc::MAP_FAILED;
    };
    let start = if config::traced(f) { sys::monotonic_ns() } else { 0 };
    // SAFETY: the caller's arguments, forwarded.
    let p = unsafe { real(addr, len, prot, flags, fd, off) };
    let e = if p == libc::MAP_FAILED { Errno::last() } else { Errno(0) };
    if p != libc::MAP_FAILED && config::active() {
        let saved = Errno::last();
        mappings::mapped(p as usize, len, flags, fd);
        crate::locks::settle_deferred();
        saved.set();
    }
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
    traced_int(
        Func::Munmap,
        &|| {
            // SAFETY: the caller's arguments, forwarded.
            let r = table::munmap::get().map(|f| unsafe { f(addr, len) });
            if r == Some(0) && config::active() {
                let saved = Errno::last();
                mappings::unmapped(addr as usize, len);
                crate::locks::settle_deferred();
                saved.set();
            }
            r
        },
        &|c| write!(c, "addr={addr:p}, len={len}"),
    )
}

/// Called by the C `mremap` wrapper after a successful remap.
#[unsafe(no_mangle)]
pub extern "C" fn qnxcompat_remapped(old: *mut c_void, old_len: usize, new: *mut c_void, new_len: usize) {
    if config::active() {
        let saved = Errno::last();
        mappings::remapped(old as usize, old_len, new as usize, new_len);
        crate::locks::settle_deferred();
        saved.set();
    }
}
