//! The caller's `struct flock`, read and written without trusting the
//! pointer: fcntl(2) must fail with EFAULT for an unmapped or unreadable
//! argument, never crash the program.
//!
//! Copies go through the kernel (`process_vm_readv`/`writev` on ourselves),
//! which reports EFAULT. To keep the uncontended lock path free of
//! syscalls, each thread remembers the last page it verified, and for what
//! (read, write); the memory is then accessed directly. The remembered page
//! is forgotten whenever the address space may have lost it: munmap,
//! mremap, mprotect and MAP_FIXED mappings bump a global generation.
//!
//! # Safety
//! Direct accesses happen only to a page verified in the current generation.
#![allow(unsafe_code)]

use core::cell::Cell;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::sys::{self, Errno};

static GENERATION: AtomicU32 = AtomicU32::new(1);

const READABLE: u8 = 1;
const WRITABLE: u8 = 2;

thread_local! {
    /// (page, generation, READABLE|WRITABLE) verified last by this thread.
    static VERIFIED: Cell<(usize, u32, u8)> = const { Cell::new((0, 0, 0)) };
}

/// Something may have unmapped or protected memory: forget verified pages.
pub fn mappings_changed() {
    GENERATION.fetch_add(1, Ordering::Release);
}

const SIZE: usize = size_of::<libc::flock>();

fn page_of(addr: usize) -> Option<usize> {
    let page = sys::page_size();
    let first = addr & !(page - 1);
    // A struct that straddles two pages is never cached.
    (addr.checked_add(SIZE - 1)? & !(page - 1) == first).then_some(first)
}

fn verified(addr: usize, need: u8) -> bool {
    let Some(page) = page_of(addr) else { return false };
    let (p, g, f) = VERIFIED.with(|v| v.get());
    p == page && g == GENERATION.load(Ordering::Acquire) && f & need == need
}

fn remember(addr: usize, got: u8) {
    let Some(page) = page_of(addr) else { return };
    let generation = GENERATION.load(Ordering::Acquire);
    VERIFIED.with(|v| {
        let (p, g, f) = v.get();
        let flags = if p == page && g == generation { f | got } else { got };
        v.set((page, generation, flags));
    });
}

/// Reads the `struct flock` at `addr`; EFAULT if it cannot be read.
pub fn read_flock(addr: usize) -> Result<libc::flock, Errno> {
    if addr == 0 {
        return Err(Errno::FAULT);
    }
    if verified(addr, READABLE) {
        // SAFETY: the page was verified readable in this generation.
        return Ok(unsafe { core::ptr::read_unaligned(addr as *const libc::flock) });
    }
    let mut buf = [0u8; SIZE];
    match sys::copy_in(addr, &mut buf) {
        Ok(()) => {
            remember(addr, READABLE);
            // SAFETY: `buf` holds SIZE bytes copied from a struct flock.
            Ok(unsafe { core::ptr::read_unaligned(buf.as_ptr() as *const libc::flock) })
        }
        // No process_vm_readv here (seccomp, an old kernel): trust the
        // pointer as libc would have handed it to the kernel.
        Err(e) if e == Errno::NOSYS || e == Errno::PERM => {
            // SAFETY: as the caller's fcntl contract promises.
            Ok(unsafe { core::ptr::read_unaligned(addr as *const libc::flock) })
        }
        Err(e) => Err(e),
    }
}

/// Writes `fl` to the `struct flock` at `addr`; EFAULT if it cannot be.
pub fn write_flock(addr: usize, fl: &libc::flock) -> Result<(), Errno> {
    if addr == 0 {
        return Err(Errno::FAULT);
    }
    if verified(addr, WRITABLE) {
        // SAFETY: the page was verified writable in this generation.
        unsafe { core::ptr::write_unaligned(addr as *mut libc::flock, *fl) };
        return Ok(());
    }
    // SAFETY: a struct flock is plain data; we view its bytes.
    let bytes = unsafe { core::slice::from_raw_parts(fl as *const libc::flock as *const u8, SIZE) };
    match sys::copy_out(bytes, addr) {
        Ok(()) => {
            remember(addr, WRITABLE);
            Ok(())
        }
        Err(e) if e == Errno::NOSYS || e == Errno::PERM => {
            // SAFETY: as the caller's fcntl contract promises.
            unsafe { core::ptr::write_unaligned(addr as *mut libc::flock, *fl) };
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_through_the_kernel() {
        let mut fl = libc::flock { l_type: 1, l_whence: 0, l_start: 7, l_len: 9, l_pid: 0 };
        let addr = &mut fl as *mut libc::flock as usize;
        let got = read_flock(addr).unwrap();
        assert_eq!((got.l_start, got.l_len), (7, 9));
        let new = libc::flock { l_type: 2, l_whence: 0, l_start: 1, l_len: 2, l_pid: 3 };
        write_flock(addr, &new).unwrap();
        assert_eq!((fl.l_type, fl.l_start, fl.l_pid), (2, 1, 3));
        assert_eq!(read_flock(0).unwrap_err(), Errno::FAULT);
        assert_eq!(read_flock(1).unwrap_err(), Errno::FAULT);
        assert_eq!(write_flock(8, &new).unwrap_err(), Errno::FAULT);
    }
}
