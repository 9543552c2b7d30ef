//! Creating, checking and mapping the registry segment. The only module that
//! maps it.
//!
//! The segment is `/dev/shm/<name>`, mode 0600, mapped at the size it has
//! (it grows in chunks, see `chunks.rs`; glibc's robust-mutex list needs the
//! mutex to stay at one address, and it does: old mappings are kept), and
//! its descriptor is closed straight after mapping: test suites count fds.
//!
//! First-use races: every attacher holds the kernel's `flock(LOCK_EX)` on the
//! segment file while it checks or initialises it. Whoever finds it empty, or
//! left half-initialised by a creator that died (the kernel dropped that
//! creator's flock), initialises it; everyone else sees a published header.
//!
//! # Safety
//! This file maps shared memory and initialises the process-shared mutex in
//! place. The mapping is never unmapped while the process runs.
#![allow(unsafe_code)]

use core::ffi::CStr;
use core::sync::atomic::Ordering;

use super::layout::*;
use crate::fmt::Cursor;
use crate::sys::{self, Errno};
use core::fmt::Write;

/// Why a segment was not used; each has a one-line explanation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refusal {
    /// The name is empty, too long, or has a '/'.
    BadName,
    /// open/fstat/mmap failed with this errno.
    Io(Errno),
    /// Another uid owns the segment.
    Foreign { uid: u32 },
    /// Group or others may access it (others, for a group-shared one).
    Permissive { mode: u32 },
    /// A shared registry that belongs to another group.
    WrongGroup { gid: u32, want: u32 },
    /// Its size is not a whole number of chunks: another layout, or
    /// truncated.
    WrongSize { size: u64 },
    /// The header names another layout or table sizes.
    WrongVersion { version: u32 },
    /// The registry's processes mirror their locks into the kernel and we
    /// do not, or the reverse (`QNXCOMPAT_MIRROR`).
    WrongMode { mirrored: bool },
    /// The header's magic is neither ours nor the "initialising" zero.
    Scribbled,
    /// The robust process-shared mutex could not be set up.
    NoRobustMutex(i32),
}

impl Refusal {
    /// Writes the one-line explanation.
    pub fn describe(self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        match self {
            Refusal::BadName => write!(
                w,
                "invalid registry name QNXCOMPAT_REGISTRY=\"{}\" (1 to 200 characters, no '/')",
                core::str::from_utf8(crate::config::registry_name()).unwrap_or("?")
            ),
            Refusal::Io(e) => write!(w, "cannot open or map it: {}", e.name()),
            Refusal::Foreign { uid } => write!(w, "it is owned by uid {uid}, not by us"),
            Refusal::Permissive { mode } => {
                write!(w, "its mode {mode:o} lets other users in (want 0600, or 0660 when shared)")
            }
            Refusal::WrongGroup { gid, want } => {
                write!(w, "it belongs to group {gid}, not to the sharing group {want}")
            }
            Refusal::WrongSize { size } => {
                write!(
                    w,
                    "its size {size} is not a whole number of {CHUNK}-byte chunks (another version, or truncated)"
                )
            }
            Refusal::WrongVersion { version } => {
                write!(
                    w,
                    "it has layout version {version} (or another ABI), we use {LAYOUT_VERSION} (ABI {ABI_HASH:#x})"
                )
            }
            Refusal::WrongMode { mirrored: true } => {
                write!(w, "its processes mirror their locks into the kernel, and QNXCOMPAT_MIRROR=off here says not to")
            }
            Refusal::WrongMode { mirrored: false } => {
                write!(w, "its processes run with QNXCOMPAT_MIRROR=off, and here the kernel mirror is on")
            }
            Refusal::Scribbled => write!(w, "its header is corrupt"),
            Refusal::NoRobustMutex(e) => write!(w, "robust process-shared mutexes are unavailable ({e})"),
        }
    }
}

/// The mapped segment: `len` bytes at `base` of the file `(dev, ino)`.
pub struct Segment {
    pub base: *mut u8,
    pub len: usize,
    pub dev: u64,
    pub ino: u64,
}

/// Builds `/dev/shm/<name>` into `buf`.
pub fn path_for<'a>(name: &[u8], buf: &'a mut [u8; 256]) -> Result<&'a CStr, Refusal> {
    const DIR: &[u8] = b"/dev/shm/";
    if name.is_empty() || name.len() + DIR.len() + 1 > buf.len() || name.iter().any(|&c| c == b'/' || c == 0) {
        return Err(Refusal::BadName);
    }
    buf[..DIR.len()].copy_from_slice(DIR);
    buf[DIR.len()..DIR.len() + name.len()].copy_from_slice(name);
    buf[DIR.len() + name.len()] = 0;
    CStr::from_bytes_with_nul(&buf[..DIR.len() + name.len() + 1]).map_err(|_| Refusal::BadName)
}

/// Opens (creating if needed) and maps the segment at `path`.
/// With `create == false`, a missing segment is `Io(ENOENT)`.
pub fn attach(path: &CStr, create: bool) -> Result<Segment, Refusal> {
    attach_as(path, create, crate::config::shared_gid(), false)
}

/// As `attach`, for a tool that only reads and reaps (`qnxcompat locks`,
/// `doctor`): a segment of either mirror mode will do.
pub fn attach_tool(path: &CStr) -> Result<Segment, Refusal> {
    attach_as(path, false, crate::config::shared_gid(), true)
}

/// As `attach`, for a registry private to this uid (`gid` None, mode 0600)
/// or shared with the members of group `gid` (mode 0660, that group).
pub fn attach_as(path: &CStr, create: bool, gid: Option<u32>, any_mode: bool) -> Result<Segment, Refusal> {
    let flags = libc::O_RDWR | libc::O_NOFOLLOW | if create { libc::O_CREAT } else { 0 };
    let mode = if gid.is_some() { 0o660 } else { 0o600 };
    let fd = sys::open(path, flags, mode).map_err(Refusal::Io)?;
    if let Some(g) = gid {
        // A segment we just created: give it the group, whatever the umask.
        if sys::fstat(fd).is_ok_and(|st| st.st_uid == sys::geteuid() && st.st_size == 0) {
            let _ = sys::fchown_group(fd, g);
            let _ = sys::fchmod(fd, 0o660);
        }
    }
    let result = attach_fd(fd, gid, any_mode);
    let _ = sys::close(fd);
    result
}

fn kernel_flock(fd: i32, op: i32) -> Result<(), Errno> {
    loop {
        // SAFETY: integer-only syscall on our own descriptor.
        let r = unsafe { libc::syscall(libc::SYS_flock, fd, op) };
        if r == 0 {
            return Ok(());
        }
        let e = Errno::last();
        if e != Errno::INTR {
            return Err(e);
        }
    }
}

fn attach_fd(fd: i32, gid: Option<u32>, any_mode: bool) -> Result<Segment, Refusal> {
    let st = sys::fstat(fd).map_err(Refusal::Io)?;
    match gid {
        // Private: ours alone.
        None => {
            if st.st_uid != sys::geteuid() {
                return Err(Refusal::Foreign { uid: st.st_uid });
            }
            if st.st_mode & 0o077 != 0 {
                return Err(Refusal::Permissive { mode: st.st_mode & 0o7777 });
            }
        }
        // Shared: the named group's, and nobody else's. We can open it only
        // as a member (or its owner), so the group check is what matters.
        Some(g) => {
            if st.st_gid != g {
                return Err(Refusal::WrongGroup { gid: st.st_gid, want: g });
            }
            if st.st_mode & 0o007 != 0 {
                return Err(Refusal::Permissive { mode: st.st_mode & 0o7777 });
            }
        }
    }
    kernel_flock(fd, libc::LOCK_EX).map_err(Refusal::Io)?;
    let result = map_checked(fd, any_mode);
    let _ = kernel_flock(fd, libc::LOCK_UN);
    result
}

/// With the init flock held: maps the segment, initialising it if it is
/// new or was abandoned half-way.
fn map_checked(fd: i32, any_mode: bool) -> Result<Segment, Refusal> {
    let st = sys::fstat(fd).map_err(Refusal::Io)?;
    let size = st.st_size as u64;
    let fresh = size == 0;
    if fresh {
        // The first chunks are allocated now, so a full /dev/shm is a
        // refusal here rather than SIGBUS at first touch.
        sys::ftruncate(fd, FIRST_CHUNKS as u64 * CHUNK as u64).map_err(Refusal::Io)?;
        if let Err(e) = sys::fallocate(fd, 0, FIRST_CHUNKS as u64 * CHUNK as u64) {
            let _ = sys::ftruncate(fd, 0);
            return Err(Refusal::Io(e));
        }
    } else if size < FIRST_CHUNKS as u64 * CHUNK as u64 || !size.is_multiple_of(CHUNK as u64) {
        return Err(Refusal::WrongSize { size });
    }
    let len = if fresh { FIRST_CHUNKS * CHUNK } else { size as usize };
    let base = sys::map_shared(fd, len).map_err(Refusal::Io)?;
    // SAFETY: the mapping is at least one chunk, page aligned, and Header
    // sits at offset 0.
    let header = unsafe { &*(base as *const Header) };
    let magic = header.magic.load(Ordering::Acquire);
    let verdict = if fresh || magic == 0 {
        // SAFETY: we hold the init flock, so nobody else writes the segment,
        // and no process uses an unpublished (magic 0) header.
        unsafe { initialise(base) }
    } else if magic != MAGIC {
        Err(Refusal::Scribbled)
    } else if header.version != LAYOUT_VERSION
        || header.abi != ABI_HASH
        || header.owners != OWNERS
        || header.files != FILES
        || header.buckets != BUCKETS_MAX
        || header.records != RECORDS
        || header.size != CHUNK as u64
    {
        Err(Refusal::WrongVersion { version: header.version })
    } else if header.mode != our_mode() && !any_mode {
        Err(Refusal::WrongMode { mirrored: header.mode == MODE_MIRROR })
    } else if header.chunks.used.load(Ordering::Acquire) as u64 * CHUNK as u64 > size {
        // Another process grew the segment since our fstat: it extends the
        // file before it publishes the chunks, so the file now covers them,
        // and the mapping covers the rest as it is used (`Mapping::cover`).
        // Truly short, it is truncated.
        let used = header.chunks.used.load(Ordering::Acquire) as u64 * CHUNK as u64;
        match sys::fstat(fd) {
            Ok(now) if now.st_size as u64 >= used => Ok(()),
            Ok(now) => Err(Refusal::WrongSize { size: now.st_size as u64 }),
            Err(e) => Err(Refusal::Io(e)),
        }
    } else {
        Ok(())
    };
    match verdict {
        Ok(()) => Ok(Segment { base, len, dev: st.st_dev, ino: st.st_ino }),
        Err(r) => {
            // SAFETY: nothing refers into the mapping yet.
            unsafe { sys::unmap(base, len) };
            Err(r)
        }
    }
}

/// Chunks a new segment starts with: the header, the first bucket chunk and
/// the first anchor chunk (every user needs all three).
pub const FIRST_CHUNKS: usize = 3;

/// This process's `Header::mode`.
fn our_mode() -> u32 {
    if crate::config::mirror() { MODE_MIRROR } else { MODE_PURE }
}

/// The one line for a segment that cannot grow (printed once per process).
pub(super) fn full_message(path: &[u8], e: Errno) {
    static SAID: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if SAID.swap(true, Ordering::Relaxed) {
        return;
    }
    let saved = Errno::last();
    let mut buf = [0u8; 400];
    let mut c = Cursor::new(&mut buf[..399]);
    let _ = writeln!(
        c,
        "qnxcompat: lock registry {} cannot grow: {}; lock calls that need room fail with ENOLCK (lockf: ENOMEM)",
        core::str::from_utf8(path).unwrap_or("?"),
        e.name()
    );
    let n = c.len();
    let _ = sys::write(2, &buf[..n]);
    // QNXCOMPAT_STRICT=1: neither ENOLCK nor the kernel's locks, but a stop.
    crate::config::strict_stop(b"the lock registry cannot be used");
    saved.set();
}

/// Lays out an empty registry and publishes it.
///
/// # Safety
/// `base` maps `FIRST_CHUNKS` chunks that no other process uses until the
/// magic is stored.
unsafe fn initialise(base: *mut u8) -> Result<(), Refusal> {
    // A fresh file reads as zeros already; a segment a dead creator
    // abandoned mid-way is cleared (its first chunks; the rest are cleared
    // as they are added to a table).
    // SAFETY: per the contract, the whole mapping is ours to write.
    unsafe { core::ptr::write_bytes(base, 0, FIRST_CHUNKS * CHUNK) };
    // SAFETY: offset 0 holds the header; the mapping is exclusively ours.
    let h = unsafe { &mut *(base as *mut Header) };
    h.version = LAYOUT_VERSION;
    h.abi = ABI_HASH;
    h.mode = our_mode();
    h.owners = OWNERS;
    h.files = FILES;
    h.buckets = BUCKETS_MAX;
    h.records = RECORDS;
    h.size = CHUNK as u64;
    // SAFETY: the mutex lives in shared memory that stays mapped at this
    // address for the life of the process; we initialise it exactly once
    // before anyone can see it.
    unsafe { init_robust_mutex(&mut h.mutex)? };
    // Chunk 1: the first buckets, all empty; chunk 2: the first anchors.
    // SAFETY: chunk 1 is within the mapping and ours.
    unsafe { core::slice::from_raw_parts_mut(base.add(CHUNK) as *mut u32, CHUNK / 4) }.fill(crate::engine::tree::NIL);
    let ch = &h.chunks;
    ch.dir[Table::Buckets.dir_start()].store(1, Ordering::Relaxed);
    ch.have[Table::Buckets as usize].store(1, Ordering::Relaxed);
    ch.nbuckets.store(BUCKETS_MIN, Ordering::Relaxed);
    ch.dir[Table::Lives.dir_start()].store(2, Ordering::Relaxed);
    ch.have[Table::Lives as usize].store(1, Ordering::Relaxed);
    ch.used.store(FIRST_CHUNKS as u32, Ordering::Relaxed);
    super::reset_free_lists(&mut h.free);
    h.magic.store(MAGIC, Ordering::Release);
    Ok(())
}

/// Initialises a robust, process-shared, error-checking mutex.
///
/// # Safety
/// `m` must not be in use and must stay at this address while used.
pub(crate) unsafe fn init_robust_mutex(m: *mut libc::pthread_mutex_t) -> Result<(), Refusal> {
    // SAFETY: an all-zero attr is only storage; pthread_mutexattr_init
    // initialises it before use, and each call gets valid pointers.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = core::mem::zeroed();
        let mut r = libc::pthread_mutexattr_init(&mut attr);
        if r == 0 {
            r = libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        }
        if r == 0 {
            r = libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
        }
        if r == 0 {
            r = libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_ERRORCHECK);
        }
        if r == 0 {
            r = libc::pthread_mutex_init(m, &attr);
        }
        libc::pthread_mutexattr_destroy(&mut attr);
        if r == 0 { Ok(()) } else { Err(Refusal::NoRobustMutex(r)) }
    }
}

/// The one-line stderr message for a refused registry segment.
pub fn refusal_message(path: &[u8; 256], why: Refusal) {
    let saved = Errno::last();
    let mut buf = [0u8; 512];
    let mut c = Cursor::new(&mut buf[..511]);
    let end = path.iter().position(|&b| b == 0).unwrap_or(0);
    let _ = write!(c, "qnxcompat: not using lock registry {}: ", core::str::from_utf8(&path[..end]).unwrap_or("?"));
    let _ = why.describe(&mut c);
    let _ = if crate::config::kernel_fallback() {
        c.write_str("; falling back to native kernel locks\n")
    } else {
        c.write_str(
            "; lock calls fail with ENOLCK (lockf: ENOMEM); QNXCOMPAT_FALLBACK=kernel uses kernel locks instead\n",
        )
    };
    let n = c.len();
    let _ = sys::write(2, &buf[..n]);
    // QNXCOMPAT_STRICT=1: neither ENOLCK nor the kernel's locks, but a stop.
    crate::config::strict_stop(b"the lock registry cannot be used");
    saved.set();
}
