//! The caller's `struct flock`, read and written without trusting the
//! pointer: fcntl(2) must fail with EFAULT for an unmapped or unreadable
//! argument, never crash the program.
//!
//! Memory of the calling thread's own stack, between its stack pointer and
//! the top of its stack, is mapped and writable for as long as the thread
//! lives, and that is where a `struct flock` normally is: it is accessed
//! directly, so the uncontended lock path makes no syscall. Any other
//! address is copied through the kernel (`process_vm_readv`/`writev` on
//! ourselves), which reports EFAULT, whatever the program unmapped, freed or
//! protected behind the library's back.
//!
//! # Safety
//! Direct accesses happen only between the stack pointer and the top of the
//! calling thread's stack.
#![allow(unsafe_code)]

use core::cell::Cell;

use crate::sys::{self, Errno};

const SIZE: usize = size_of::<libc::flock>();

thread_local! {
    /// The top of this thread's stack: 0 not known yet, 1 unknown for good,
    /// 2 being asked of glibc right now.
    static STACK_TOP: Cell<usize> = const { Cell::new(0) };
}

/// Notes the main thread's stack top now. The constructor calls it
/// for the main thread, so that no lock call ever runs `pthread_getattr_np`
/// there: for the main thread glibc reads `/proc/self/maps` and allocates
/// to answer, which a call from a signal handler must not do.
pub fn prime() {
    // The main thread's frames all lie below where its stack began, which
    // glibc records in `__libc_stack_end`: a bound with no syscall (what is
    // above it, argv and the environment, just goes through the kernel copy).
    unsafe extern "C" {
        static __libc_stack_end: *const libc::c_void;
    }
    // SAFETY: glibc defines the symbol for every dynamically linked program
    // and sets it before any constructor runs; we only read its value.
    let end = unsafe { __libc_stack_end } as usize;
    if end > 1 {
        STACK_TOP.with(|t| t.set(end));
    } else {
        let _ = stack_top();
    }
}

/// The top (highest address) of the calling thread's stack, asked of glibc
/// once per thread. `pthread_getattr_np` is not async-signal-safe: a lock
/// call from a signal handler that interrupted the question gets "unknown"
/// (its `struct flock` goes through the kernel copy) instead of asking again.
fn stack_top() -> usize {
    let known = STACK_TOP.with(|t| t.get());
    if known == 2 {
        return 1;
    }
    if known != 0 {
        return known;
    }
    STACK_TOP.with(|t| t.set(2));
    // SAFETY: an all-zero attr is storage that pthread_getattr_np fills; the
    // out-pointers are valid; the attr is destroyed after use.
    let top = unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
            let mut addr: *mut libc::c_void = core::ptr::null_mut();
            let mut size: libc::size_t = 0;
            let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
            libc::pthread_attr_destroy(&mut attr);
            if r == 0 { (addr as usize).saturating_add(size) } else { 1 }
        } else {
            1
        }
    };
    STACK_TOP.with(|t| t.set(top));
    top
}

/// Whether `[addr, addr + SIZE)` lies in the calling thread's live stack.
fn on_own_stack(addr: usize) -> bool {
    let marker = 0u8;
    let sp = &marker as *const u8 as usize;
    let top = stack_top();
    top > 1 && sp <= addr && addr.checked_add(SIZE).is_some_and(|end| end <= top)
}

/// Reads the `struct flock` at `addr`; EFAULT if it cannot be read.
pub fn read_flock(addr: usize) -> Result<libc::flock, Errno> {
    if addr == 0 {
        return Err(Errno::FAULT);
    }
    if on_own_stack(addr) {
        // SAFETY: the thread's live stack is mapped and readable.
        return Ok(unsafe { core::ptr::read_unaligned(addr as *const libc::flock) });
    }
    let mut buf = [0u8; SIZE];
    match sys::copy_in(addr, &mut buf) {
        Ok(()) => {
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
    if on_own_stack(addr) {
        // SAFETY: the thread's live stack is mapped and writable.
        unsafe { core::ptr::write_unaligned(addr as *mut libc::flock, *fl) };
        return Ok(());
    }
    // SAFETY: a struct flock is plain data; we view its bytes.
    let bytes = unsafe { core::slice::from_raw_parts(fl as *const libc::flock as *const u8, SIZE) };
    match sys::copy_out(bytes, addr) {
        Ok(()) => Ok(()),
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
        // Off the stack: copied through the kernel.
        let mut heap = Box::new(libc::flock { l_type: 1, l_whence: 0, l_start: 5, l_len: 6, l_pid: 0 });
        let addr = &mut *heap as *mut libc::flock as usize;
        assert!(!on_own_stack(addr));
        assert_eq!(read_flock(addr).unwrap().l_start, 5);
        write_flock(addr, &new).unwrap();
        assert_eq!(heap.l_pid, 3);
    }
}
