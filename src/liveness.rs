//! Liveness the kernel vouches for: is a process owner's image still
//! running with the library?
//!
//! Each process image that takes a process-owned lock first claims an
//! *anchor* `k` (see `registry::layout::LifeSlot`): a kernel OFD write lock
//! on byte `ANCHOR_BASE + 2k` of the segment file (`+ 2k + 1` after an
//! exec), held through an open file that nothing but a one-page mapping
//! refers to. The library keeps no descriptor open: the mapping keeps the
//! open file, and so the lock, alive. The kernel drops both when the image
//! ends:
//! - **exit or crash**: the mapping goes with the address space;
//! - **exec**: likewise; an exec into an image that loads the library hands
//!   the anchor over through a *bridge* (below), any other exec ends it;
//! - **fork**: the mapping is `MADV_DONTFORK`, so a child never keeps its
//!   parent's anchor (and a fork child that inherited it anyway, through a
//!   fork racing the `madvise`, unmaps it in the atfork handler).
//!
//! It does not end when the main thread exits while others run, and it
//! does not depend on pids, pid namespaces or `/proc`: two processes with
//! the same pid in two namespaces, or started in the same clock tick, hold
//! different anchors and nonces.
//!
//! Claiming: a write lock on both bytes `[2k, 2k+1]`, which the kernel grants
//! only if no image holds either, then the claimer publishes a fresh nonce in
//! `LifeSlot::nonce` and keeps one byte. An owner is alive exactly while its
//! anchor is locked and still carries the owner's nonce.
//!
//! Probing ([`probe`]) opens the segment file, asks `F_OFD_GETLK` about the
//! two bytes, and closes it again: three syscalls, never run under the
//! registry mutex (the caller decides under the lock, probes outside it, and
//! re-checks by generation).
//!
//! **The exec bridge.** Before an exec whose new image will load the library
//! (the environment preloads it, and the file is neither static nor
//! set-id), the exec hook opens the segment file again without
//! close-on-exec and takes the anchor's *other* byte through it, then passes
//! `QNXCOMPAT_ADOPT=k:nonce:fd` in the new environment. The new image's
//! constructor checks that descriptor, maps it as its anchor and closes it:
//! the owner lives on, with its locks. A failed exec drops the bridge.
//!
//! # Safety
//! This file maps one page of the segment file and reads the shared life
//! table through the registry's accessors only.
#![allow(unsafe_code)]

use core::ffi::CStr;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::registry::layout::{ANCHOR_BASE, LIVES};
use crate::registry::{self, Registry};
use crate::sys::{self, Errno};

/// This image's anchor, nonce and the byte (0 or 1) its anchor lock holds.
static NONCE: AtomicU64 = AtomicU64::new(0);
static ANCHOR: AtomicU32 = AtomicU32::new(0);
static BYTE: AtomicU8 = AtomicU8::new(0);
/// The anchor mapping's address (0: none).
static MAPPING: AtomicUsize = AtomicUsize::new(0);
/// 0: none, 1: a thread is claiming, 2: claimed.
static STATE: AtomicU8 = AtomicU8::new(0);
/// The pid this identity was made for (reported as l_pid).
static PID: AtomicU32 = AtomicU32::new(0);

/// A bridge descriptor taken for an exec that has not happened yet, and a
/// child anchor's descriptor taken for a fork that has not happened yet
/// (-1: none). Descriptors survive fork as well as exec: a fork by another
/// thread meanwhile would hand them to a child that keeps the anchor alive
/// after its owner is gone, so every fork child closes them, unless it is
/// the child the anchor was claimed for (`FOR_MY_CHILD`, a thread-local the
/// child inherits from the thread that forked it).
static BRIDGE_FD: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(-1);
static CHILD_FD: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(-1);

thread_local! {
    static FOR_MY_CHILD: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// A process image's identity in the registry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Me {
    pub anchor: u32,
    pub nonce: u64,
    pub pid: i32,
}

fn byte_of(anchor: u32, which: u8) -> i64 {
    ANCHOR_BASE + 2 * anchor as i64 + which as i64
}

fn ofd(fd: i32, cmd: i32, ltype: i32, start: i64, len: i64) -> Result<libc::flock, Errno> {
    let mut fl =
        libc::flock { l_type: ltype as i16, l_whence: libc::SEEK_SET as i16, l_start: start, l_len: len, l_pid: 0 };
    sys::fcntl_lock(fd, cmd, &mut fl)?;
    Ok(fl)
}

fn segment_path(buf: &mut [u8; 256]) -> Result<&CStr, Errno> {
    registry::shm::path_for(crate::config::registry_name(), buf).map_err(|_| Errno::NOLCK)
}

/// This image's identity, if it has claimed an anchor (no syscall).
pub fn current() -> Option<Me> {
    if STATE.load(Ordering::Acquire) != 2 {
        return None;
    }
    Some(Me {
        anchor: ANCHOR.load(Ordering::Relaxed),
        nonce: NONCE.load(Ordering::Relaxed),
        pid: PID.load(Ordering::Relaxed) as i32,
    })
}

/// This image's identity, claiming an anchor first if it has none. ENOLCK
/// when no anchor can be had (every one is held, or the segment file cannot
/// be opened). Call without the registry mutex.
pub fn ensure(reg: &Registry) -> Result<Me, Errno> {
    // Another thread's claim takes a few syscalls; a claim that does not end
    // is this very thread's, interrupted by a signal handler that locks:
    // that call fails rather than wait for itself.
    let mut spins = 0u32;
    loop {
        if let Some(me) = current() {
            return Ok(me);
        }
        if crate::owner::in_shared_memory_child() {
            // A vfork child: POSIX allows it only _exit and exec.
            return Err(Errno::NOLCK);
        }
        // The claim, from taking the state on, is not to be abandoned
        // half-way by a handler's longjmp: a registry section.
        let claimed = registry::section(|| match STATE.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                let r = claim(reg);
                STATE.store(if r.is_ok() { 2 } else { 0 }, Ordering::Release);
                Ok(r)
            }
            Err(s) => Err(s),
        });
        match claimed {
            Ok(r) => return r,
            Err(2) => continue, // claimed by another thread, or stale after fork (handled in current())
            Err(_) => {
                spins += 1;
                if spins > 100_000 {
                    return Err(Errno::NOLCK);
                }
                sys::sched_yield();
            }
        }
    }
}

fn claim(reg: &Registry) -> Result<Me, Errno> {
    let mut buf = [0u8; 256];
    let path = segment_path(&mut buf)?;
    let fd = sys::open(path, libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW, 0).map_err(|_| Errno::NOLCK)?;
    let r = claim_through(reg, fd);
    let _ = sys::close(fd);
    r
}

fn claim_through(reg: &Registry, fd: i32) -> Result<Me, Errno> {
    let pid = sys::getpid();
    let (k, nonce) = claim_anchor(reg, fd, pid)?;
    adopt_mapping(fd)?;
    publish(k, nonce, 0, pid);
    Ok(Me { anchor: k, nonce, pid })
}

/// Claims a free anchor through the open file behind `fd`: a write lock on
/// both its bytes, which the kernel grants only when no image holds either,
/// then a fresh nonce published for it; byte 0 is kept, byte 1 left for an
/// exec bridge. ENOLCK when every anchor is held.
fn claim_anchor(reg: &Registry, fd: i32, pid: i32) -> Result<(u32, u64), Errno> {
    let start = reg.header_nonce().load(Ordering::Relaxed) as u32;
    loop {
        // The anchors that exist; when every one is held, the table grows
        // by a chunk (up to LIVES) and the search goes on there.
        let n = reg.lives();
        for i in 0..n {
            let k = (start.wrapping_add(i)) % n;
            match ofd(fd, libc::F_OFD_SETLK, libc::F_WRLCK, byte_of(k, 0), 2) {
                Ok(_) => {}
                Err(e) if e == Errno::AGAIN || e == Errno::ACCES => continue,
                Err(_) => return Err(Errno::NOLCK),
            }
            let Some(life) = reg.life(k) else {
                let _ = ofd(fd, libc::F_OFD_SETLK, libc::F_UNLCK, byte_of(k, 0), 2);
                return Err(Errno::NOLCK);
            };
            let nonce = reg.header_nonce().fetch_add(1, Ordering::AcqRel) + 1;
            life.nonce.store(nonce, Ordering::Release);
            life.pid.store(pid as u32, Ordering::Relaxed);
            let _ = ofd(fd, libc::F_OFD_SETLK, libc::F_UNLCK, byte_of(k, 1), 1);
            return Ok((k, nonce));
        }
        if n >= LIVES || !reg.grow_lives(n) {
            return Err(Errno::NOLCK);
        }
    }
}

/// Maps one page of `fd` as the anchor mapping: from now on it alone keeps
/// the open file (and its anchor lock) alive.
fn adopt_mapping(fd: i32) -> Result<(), Errno> {
    let addr = sys::map_shared_ro(fd, sys::page_size()).map_err(|_| Errno::NOLCK)?;
    // SAFETY: `addr` is the page we just mapped.
    unsafe { libc::madvise(addr as *mut libc::c_void, sys::page_size(), libc::MADV_DONTFORK) };
    let old = MAPPING.swap(addr as usize, Ordering::AcqRel);
    if old != 0 {
        // SAFETY: the previous anchor mapping is ours and nothing refers
        // into it (it is never read).
        unsafe { sys::unmap(old as *mut u8, sys::page_size()) };
    }
    Ok(())
}

fn publish(k: u32, nonce: u64, byte: u8, pid: i32) {
    crate::owner::note_pid();
    ANCHOR.store(k, Ordering::Relaxed);
    NONCE.store(nonce, Ordering::Relaxed);
    BYTE.store(byte, Ordering::Relaxed);
    PID.store(pid as u32, Ordering::Relaxed);
}

/// An anchor claimed by a parent for the child it is about to fork: the
/// descriptor is the claim's open file, inherited by the child.
pub struct ChildAnchor {
    pub fd: i32,
    pub anchor: u32,
    pub nonce: u64,
}

/// Before a fork whose child must exist in the registry at once (it maps
/// files): claims an anchor for the child through a new open file. The
/// parent closes the descriptor after the fork; the child maps it
/// ([`become_child`]). A failed fork closes it, and the anchor ends.
pub fn prepare_child(reg: &Registry) -> Result<ChildAnchor, Errno> {
    let mut buf = [0u8; 256];
    let path = segment_path(&mut buf)?;
    let fd = sys::open(path, libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW, 0).map_err(|_| Errno::NOLCK)?;
    CHILD_FD.store(fd, Ordering::Release);
    match claim_anchor(reg, fd, 0) {
        Ok((anchor, nonce)) => Ok(ChildAnchor { fd, anchor, nonce }),
        Err(e) => {
            CHILD_FD.store(-1, Ordering::Release);
            let _ = sys::close(fd);
            Err(e)
        }
    }
}

/// Around the fork a child anchor was claimed for: marks the forking thread
/// (see `CHILD_FD`), then, in the parent, gives the descriptor up.
pub fn fork_for_child<R>(c: &ChildAnchor, fork: impl FnOnce() -> R) -> R {
    FOR_MY_CHILD.with(|f| f.set(true));
    let r = fork();
    FOR_MY_CHILD.with(|f| f.set(false));
    let _ = c;
    r
}

/// In the parent after the fork (or a failed one): the child anchor's
/// descriptor is the child's now.
pub fn parent_after_fork(c: &ChildAnchor) {
    CHILD_FD.store(-1, Ordering::Release);
    let _ = sys::close(c.fd);
}

/// In the fork child: the anchor its parent claimed becomes its own.
pub fn become_child(reg: &Registry, c: &ChildAnchor) {
    CHILD_FD.store(-1, Ordering::Release);
    let pid = sys::getpid();
    if adopt_mapping(c.fd).is_ok() {
        if let Some(life) = reg.life(c.anchor) {
            life.pid.store(pid as u32, Ordering::Relaxed);
        }
        publish(c.anchor, c.nonce, 0, pid);
        STATE.store(2, Ordering::Release);
    }
    let _ = sys::close(c.fd);
}

/// What a probe found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Alive,
    Dead,
}

/// Whether the image that holds anchor `k` with `nonce` still runs. Unclear
/// evidence (the segment cannot be opened) says alive: a lock is reclaimed
/// only on proof. Call without the registry mutex.
pub fn probe(reg: &Registry, k: u32, nonce: u64) -> Verdict {
    if k >= LIVES {
        return Verdict::Dead;
    }
    match reg.life(k) {
        // Claimed again since: the image that had it is gone.
        Some(life) if life.nonce.load(Ordering::Acquire) != nonce => return Verdict::Dead,
        Some(_) => {}
        // Unclear (it cannot be mapped): alive.
        None => return Verdict::Alive,
    }
    // The registry's own path: a tool probes a registry it named, not the
    // process's.
    let Some(path) = reg.path() else { return Verdict::Alive };
    let Ok(fd) = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW, 0) else {
        return Verdict::Alive;
    };
    let r = ofd(fd, libc::F_OFD_GETLK, libc::F_WRLCK, byte_of(k, 0), 2);
    let _ = sys::close(fd);
    match r {
        Ok(fl) if fl.l_type as i32 == libc::F_UNLCK => Verdict::Dead,
        // Locked: alive unless a new claimer has published another nonce
        // in the meantime.
        Ok(_) if reg.life(k).is_some_and(|l| l.nonce.load(Ordering::Acquire) != nonce) => Verdict::Dead,
        _ => Verdict::Alive,
    }
}

/// In a fork child: the child is a new image with no anchor. A mapping it
/// inherited anyway (a fork that raced the `madvise`) is dropped, so it
/// never keeps the parent's anchor alive.
pub fn forget_after_fork() {
    // Nothing to forget in a process that never locked: then no store at
    // all (a fork child's first write to a page is a copy-on-write fault).
    if BRIDGE_FD.load(Ordering::Acquire) >= 0 {
        let bridge = BRIDGE_FD.swap(-1, Ordering::AcqRel);
        if bridge >= 0 {
            let _ = sys::close(bridge);
        }
    }
    if CHILD_FD.load(Ordering::Acquire) >= 0 && !FOR_MY_CHILD.with(|c| c.get()) {
        let child = CHILD_FD.swap(-1, Ordering::AcqRel);
        if child >= 0 {
            let _ = sys::close(child);
        }
    }
    if MAPPING.load(Ordering::Acquire) != 0 {
        let addr = MAPPING.swap(0, Ordering::AcqRel);
        if addr != 0 {
            // SAFETY: with MADV_DONTFORK the range is not mapped in the
            // child and munmap of it is a no-op; without it, it is our
            // inherited page.
            unsafe { sys::unmap(addr as *mut u8, sys::page_size()) };
        }
    }
    if STATE.load(Ordering::Acquire) != 0 {
        STATE.store(0, Ordering::Release);
    }
    if NONCE.load(Ordering::Relaxed) != 0 {
        NONCE.store(0, Ordering::Relaxed);
    }
}

/// The name of the environment variable that carries a bridge.
pub const ADOPT_VAR: &[u8] = b"QNXCOMPAT_ADOPT=";

/// Before an exec into an image that will load the library: takes the
/// bridge and writes `QNXCOMPAT_ADOPT=k:nonce:fd` (NUL-terminated) into
/// `out`; returns the bridge descriptor, or None (no anchor, or no room).
pub fn open_bridge(out: &mut [u8]) -> Option<i32> {
    let me = current()?;
    let mut buf = [0u8; 256];
    let path = segment_path(&mut buf).ok()?;
    // No O_CLOEXEC: the descriptor must survive the exec.
    let fd = sys::open_inheritable(path, libc::O_RDWR | libc::O_NOFOLLOW, 0).ok()?;
    BRIDGE_FD.store(fd, Ordering::Release);
    let other = 1 - BYTE.load(Ordering::Relaxed);
    if ofd(fd, libc::F_OFD_SETLK, libc::F_WRLCK, byte_of(me.anchor, other), 1).is_err() {
        let _ = sys::close(fd);
        return None;
    }
    use core::fmt::Write;
    let mut c = crate::fmt::Cursor::new(out);
    let ok =
        c.write_str("QNXCOMPAT_ADOPT=").is_ok() && write!(c, "{}:{}:{}:{}\0", me.anchor, me.nonce, fd, other).is_ok();
    if !ok {
        let _ = sys::close(fd);
        return None;
    }
    Some(fd)
}

/// After a failed exec: the image goes on, so the bridge goes.
pub fn close_bridge(fd: i32) {
    BRIDGE_FD.store(-1, Ordering::Release);
    let _ = sys::close(fd);
}

/// Parses a bridge value `k:nonce:fd:byte`.
pub fn parse_bridge(v: &[u8]) -> Option<(u32, u64, i32, u8)> {
    let mut it = v.split(|&c| c == b':');
    let num = |w: Option<&[u8]>| -> Option<u64> { core::str::from_utf8(w?).ok()?.parse().ok() };
    let k = num(it.next())?;
    let nonce = num(it.next())?;
    let fd = num(it.next())?;
    let byte = num(it.next())?;
    if it.next().is_some() || k >= LIVES as u64 || fd > i32::MAX as u64 || byte > 1 || nonce == 0 {
        return None;
    }
    Some((k as u32, nonce, fd as i32, byte as u8))
}

/// In the constructor of an image started by an exec that took a bridge:
/// verifies the bridge descriptor (the segment file, carrying the anchor's
/// lock, with our nonce still published), makes it this image's anchor and
/// closes it. Returns the inherited identity.
pub fn adopt_bridge(reg: &Registry, value: &[u8]) -> Option<Me> {
    let (k, nonce, fd, byte) = parse_bridge(value)?;
    let mut buf = [0u8; 256];
    let path = segment_path(&mut buf).ok()?;
    let seg = sys::stat(path).ok()?;
    let st = sys::fstat(fd).ok()?;
    if st.st_dev != seg.st_dev || st.st_ino != seg.st_ino {
        return None;
    }
    // From here `fd` is the bridge: it is closed whatever happens, so a
    // bridge that cannot be used is not leaked into the program.
    let r = adopt_checked(reg, path, fd, k, nonce, byte);
    let _ = sys::close(fd);
    r
}

fn adopt_checked(reg: &Registry, path: &CStr, fd: i32, k: u32, nonce: u64, byte: u8) -> Option<Me> {
    if reg.life(k)?.nonce.load(Ordering::Acquire) != nonce {
        return None;
    }
    // The bridge must hold its byte itself: re-taking it through the same
    // open file succeeds (a lock is never in conflict with its own open
    // file), and a probe through a fresh open file sees it held.
    ofd(fd, libc::F_OFD_SETLK, libc::F_WRLCK, byte_of(k, byte), 1).ok()?;
    let probe_fd = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0).ok()?;
    let held = ofd(probe_fd, libc::F_OFD_GETLK, libc::F_WRLCK, byte_of(k, byte), 1)
        .is_ok_and(|fl| fl.l_type as i32 != libc::F_UNLCK);
    let _ = sys::close(probe_fd);
    if !held {
        return None;
    }
    adopt_mapping(fd).ok()?;
    let pid = sys::getpid();
    reg.life(k)?.pid.store(pid as u32, Ordering::Relaxed);
    publish(k, nonce, byte, pid);
    STATE.store(2, Ordering::Release);
    Some(Me { anchor: k, nonce, pid })
}

/// Whether an exec of `path` (searched in `PATH` when `search` and it has
/// no '/'; or the open file `fd` when `path` is None) with environment
/// `envp` starts an image that loads this library: the environment
/// preloads it, and the file is a dynamically linked ELF (or a script whose
/// interpreter is one) that is neither set-user-id nor set-group-id.
/// Misjudging "yes" keeps the image's locks until it exits; "no" releases
/// them at the exec. Async-signal-safe: syscalls and stack buffers only.
///
/// # Safety
/// `envp` is NULL or a NULL-terminated array of NUL-terminated strings.
pub unsafe fn will_load_library(path: Option<&CStr>, fd: i32, search: bool, envp: *const *const libc::c_char) -> bool {
    // SAFETY: per the contract.
    if !unsafe { env_preloads_us(envp) } {
        return false;
    }
    let mut buf = [0u8; 512];
    let target: &CStr = match path {
        Some(p) if search && !p.to_bytes().contains(&b'/') => match search_path(p.to_bytes(), &mut buf) {
            Some(c) => c,
            None => return false,
        },
        Some(p) => p,
        None => {
            use core::fmt::Write;
            let mut c = crate::fmt::Cursor::new(&mut buf);
            if write!(c, "/proc/self/fd/{fd}\0").is_err() {
                return false;
            }
            let n = c.len();
            match CStr::from_bytes_with_nul(&buf[..n]) {
                Ok(c) => c,
                Err(_) => return false,
            }
        }
    };
    let mut copy = [0u8; 512];
    let t = target.to_bytes_with_nul();
    if t.len() > copy.len() {
        return false;
    }
    copy[..t.len()].copy_from_slice(t);
    let Ok(target) = CStr::from_bytes_with_nul(&copy[..t.len()]) else { return false };
    dynamic_image(target, 0)
}

/// Whether `envp` has an LD_PRELOAD naming this library.
///
/// # Safety
/// As for `will_load_library`.
unsafe fn env_preloads_us(envp: *const *const libc::c_char) -> bool {
    if envp.is_null() {
        return false;
    }
    let mut i = 0;
    loop {
        // SAFETY: per the contract, a NULL-terminated array.
        let e = unsafe { *envp.add(i) };
        if e.is_null() {
            return false;
        }
        // SAFETY: per the contract, NUL-terminated.
        let b = unsafe { CStr::from_ptr(e) }.to_bytes();
        if let Some(v) = b.strip_prefix(b"LD_PRELOAD=") {
            return v.split(|&c| c == b' ' || c == b':').any(names_us);
        }
        i += 1;
    }
}

/// Whether one LD_PRELOAD entry names this library: by its name, or, for a
/// path by another name (a link, a renamed copy's link), by being this
/// library's own file.
fn names_us(entry: &[u8]) -> bool {
    if entry.windows(12).any(|w| w == b"libqnxcompat") {
        return true;
    }
    if !entry.contains(&b'/') {
        return false;
    }
    let mut buf = [0u8; 512];
    if entry.len() >= buf.len() {
        return false;
    }
    buf[..entry.len()].copy_from_slice(entry);
    let Ok(c) = CStr::from_bytes_with_nul(&buf[..=entry.len()]) else { return false };
    let (Ok(st), Some((major, minor, ino))) = (sys::stat(c), own_file()) else { return false };
    st.st_ino == ino && libc::major(st.st_dev) as u64 == major && libc::minor(st.st_dev) as u64 == minor
}

/// This library's own file as `/proc/self/maps` shows the mapping of this
/// code: (device major, minor, inode). Read only for an LD_PRELOAD entry
/// without "libqnxcompat" in its name. Async-signal-safe (syscalls and
/// stack buffers; `dladdr` would take the loader's lock, which a fork child
/// of a threaded program may find held for good).
fn own_file() -> Option<(u64, u64, u64)> {
    let here = own_file as *const () as usize;
    let fd = sys::open(c"/proc/self/maps", libc::O_RDONLY, 0).ok()?;
    let mut chunk = [0u8; 4096];
    let mut line = [0u8; 256];
    let mut len = 0usize;
    let mut found = None;
    'read: while let Ok(n) = sys::read(fd, &mut chunk) {
        if n == 0 {
            break;
        }
        for &b in &chunk[..n] {
            if b != b'\n' {
                // Only the fields before the path matter: a long path is cut.
                if len < line.len() {
                    line[len] = b;
                    len += 1;
                }
                continue;
            }
            if let Some(f) = maps_line(&line[..len], here) {
                found = Some(f);
                break 'read;
            }
            len = 0;
        }
    }
    let _ = sys::close(fd);
    found
}

/// One line of /proc/self/maps ("start-end perms offset major:minor inode
/// path"): its file when `addr` lies in its range.
fn maps_line(l: &[u8], addr: usize) -> Option<(u64, u64, u64)> {
    let mut fields = l.split(|&c| c == b' ').filter(|f| !f.is_empty());
    let range = fields.next()?;
    let dash = range.iter().position(|&c| c == b'-')?;
    let (start, end) = (hex(&range[..dash])?, hex(&range[dash + 1..])?);
    if !(start as usize <= addr && addr < end as usize) {
        return None;
    }
    let _perms = fields.next()?;
    let _offset = fields.next()?;
    let dev = fields.next()?;
    let colon = dev.iter().position(|&c| c == b':')?;
    let ino = core::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    Some((hex(&dev[..colon])?, hex(&dev[colon + 1..])?, ino))
}

fn hex(b: &[u8]) -> Option<u64> {
    u64::from_str_radix(core::str::from_utf8(b).ok()?, 16).ok()
}

/// The first executable `name` in the caller's PATH, as execvp finds it.
fn search_path<'a>(name: &[u8], buf: &'a mut [u8; 512]) -> Option<&'a CStr> {
    let path = sys::getenv(c"PATH").map_or(&b"/bin:/usr/bin"[..], |p| p.to_bytes());
    for dir in path.split(|&c| c == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let n = dir.len() + 1 + name.len();
        if n + 1 > buf.len() {
            continue;
        }
        buf[..dir.len()].copy_from_slice(dir);
        buf[dir.len()] = b'/';
        buf[dir.len() + 1..n].copy_from_slice(name);
        buf[n] = 0;
        let Ok(c) = CStr::from_bytes_with_nul(&buf[..=n]) else { continue };
        // SAFETY: `c` is NUL-terminated.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
            && sys::stat(c).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
        {
            // SAFETY: re-borrow of the same bytes for the caller's lifetime.
            return CStr::from_bytes_with_nul(&buf[..=n]).ok();
        }
    }
    None
}

/// Whether `path` is a 64-bit dynamically linked ELF that is not set-id, or
/// a script whose interpreter is one.
fn dynamic_image(path: &CStr, depth: u32) -> bool {
    let Ok(st) = sys::stat(path) else { return false };
    if st.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return false;
    }
    let Ok(fd) = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0) else {
        // Executable but not readable by us: most programs are dynamically
        // linked, and a wrong "yes" only keeps the locks until the program
        // exits (a wrong "no" would release them at once).
        return true;
    };
    let mut head = [0u8; 4096];
    let n = sys::pread(fd, &mut head, 0).unwrap_or(0);
    let head = &head[..n];
    let verdict = if head.starts_with(b"#!") && depth < 3 {
        let line = &head[2..];
        let line = &line[..line.iter().position(|&c| c == b'\n').unwrap_or(line.len())];
        let interp = line.trim_ascii_start();
        let end = interp.iter().position(|&c| c == b' ' || c == b'\t').unwrap_or(interp.len());
        let mut ibuf = [0u8; 256];
        if end < ibuf.len() && end > 0 {
            ibuf[..end].copy_from_slice(&interp[..end]);
            CStr::from_bytes_with_nul(&ibuf[..=end]).is_ok_and(|c| dynamic_image(c, depth + 1))
        } else {
            false
        }
    } else {
        elf_has_interp(fd, head)
    };
    let _ = sys::close(fd);
    verdict
}

/// Whether an ELF64 file (its first bytes in `head`) has a PT_INTERP.
fn elf_has_interp(fd: i32, head: &[u8]) -> bool {
    if head.len() < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(head[32..40].try_into().unwrap_or([0; 8]));
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    if phentsize < 4 || phnum == 0 {
        return false;
    }
    let mut ph = [0u8; 4096];
    let want = (phentsize * phnum).min(ph.len());
    let got = sys::pread(fd, &mut ph[..want], phoff as i64).unwrap_or(0);
    (0..got / phentsize)
        .any(|i| u32::from_le_bytes(ph[i * phentsize..i * phentsize + 4].try_into().unwrap_or([0; 4])) == 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_file_is_the_file_of_this_code() {
        assert_eq!(maps_line(b"7f00-7f80 r-xp 00001000 fd:01 123456   /x/lib.so", 0x7f10), Some((0xfd, 1, 123456)));
        assert_eq!(maps_line(b"7f00-7f80 r-xp 00001000 fd:01 123456   /x/lib.so", 0x7f80), None);
        assert_eq!(maps_line(b"garbage", 1), None);
        // In a test binary this code is the executable's.
        let st = sys::stat(c"/proc/self/exe").unwrap();
        assert_eq!(own_file(), Some((libc::major(st.st_dev) as u64, libc::minor(st.st_dev) as u64, st.st_ino)));
    }

    #[test]
    fn bridge_values() {
        assert_eq!(parse_bridge(b"3:99:7:1"), Some((3, 99, 7, 1)));
        assert_eq!(parse_bridge(b"3:0:7:1"), None);
        assert_eq!(parse_bridge(b"3:9:7:2"), None);
        assert_eq!(parse_bridge(b"3:9:7"), None);
        assert_eq!(parse_bridge(b"3:9:7:1:5"), None);
        assert_eq!(parse_bridge(b"999999:9:7:1"), None);
        assert_eq!(parse_bridge(b"x:9:7:1"), None);
    }
}
