//! Per-process state that the close path reads without the registry mutex.
//!
//! `close()` must be cheap when the process holds no locks on the file, and
//! async-signal-safe always. So the process keeps, in arrays of atomics (no
//! allocation, no lock; the per-slot ones lazily mapped, see `crate::lazy`):
//! - how many records it holds in each registry file slot (changed only
//!   under the registry mutex, by this process);
//! - a counting filter over `(dev, ino)` of the files it holds locks on,
//!   which answers "certainly not locked" for a `close()` after one `fstat`;
//! - the number of such files, which answers "nothing locked at all" with
//!   no syscall.
//!
//! A `close()` reached from a signal handler while the same thread is inside
//! the registry cannot take the mutex again; it marks the file's slot here
//! (one bit per registry file slot, so the mark can never be lost to a full
//! queue), and the interrupted call releases it on its way out
//! (`locks::settle_deferred`).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::engine::tree::NIL;
use crate::lazy::{LazyU32, LazyU64};
use crate::registry::layout::FILES;

const FILTER: usize = 1024;

// Every array indexed by registry file slot is lazily mapped (`crate::lazy`):
// a chunk exists once the process has locked a file in its slots
// (`ready`), and reads zero before that.
const _: () = assert!(FILES as usize <= crate::lazy::CHUNK * crate::lazy::DIR);

static OWN_RECORDS: LazyU32 = LazyU32::new();
/// The file each slot of `OWN_RECORDS` counts for, while it counts.
static SLOT_DEV: LazyU64 = LazyU64::new();
static SLOT_INO: LazyU64 = LazyU64::new();
/// Deferred releases: bit `s % 64` of word `s / 64` set means "release this
/// process's locks on the file of slot `s`".
static DEFERRED: LazyU64 = LazyU64::new();
static ANY_DEFERRED: AtomicU32 = AtomicU32::new(0);
static FILTER_COUNTS: [AtomicU32; FILTER] = [const { AtomicU32::new(0) }; FILTER];
static HELD_FILES: AtomicU32 = AtomicU32::new(0);
/// The registry owner slot of this process, a hint checked on use.
static OWNER_HINT: AtomicU32 = AtomicU32::new(NIL);

fn filter_index(dev: u64, ino: u64) -> usize {
    ((dev ^ ino.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32) as usize % FILTER
}

/// Maps the process's bookkeeping for file slot `file`, so that `account`
/// and the close path can never miss it; false when the kernel has no
/// memory (the lock call then fails, before anything is granted).
pub fn ready(file: u32) -> bool {
    let s = file as usize;
    s < FILES as usize
        && OWN_RECORDS.get_or_map(s).is_some()
        && SLOT_DEV.get_or_map(s).is_some()
        && SLOT_INO.get_or_map(s).is_some()
        && DEFERRED.get_or_map(s / 64).is_some()
        && SCRATCH_COUNT.get_or_map(s).is_some()
}

/// Records that this process's record count in file slot `file` changed by
/// `delta`. Call under the registry mutex, after `ready(file)`.
pub fn account(file: u32, dev: u64, ino: u64, delta: i32) {
    let f = file as usize;
    let Some(slot) = (if delta > 0 { ready(file).then(|| OWN_RECORDS.get(f)).flatten() } else { OWN_RECORDS.get(f) })
    else {
        return;
    };
    if delta == 0 {
        return;
    }
    let before = slot.load(Ordering::Relaxed);
    let after = (before as i64 + delta as i64).max(0) as u32;
    if before == 0 && after > 0 {
        if let (Some(d), Some(i)) = (SLOT_DEV.get(f), SLOT_INO.get(f)) {
            d.store(dev, Ordering::Relaxed);
            i.store(ino, Ordering::Relaxed);
        }
        slot.store(after, Ordering::Release);
        index_insert(file, dev, ino);
        return account_filter(dev, ino, before, after);
    }
    slot.store(after, Ordering::Release);
    if before > 0 && after == 0 {
        index_remove(file, dev, ino);
    }
    account_filter(dev, ino, before, after);
}

fn account_filter(dev: u64, ino: u64, before: u32, after: u32) {
    let f = &FILTER_COUNTS[filter_index(dev, ino)];
    if before == 0 && after > 0 {
        f.fetch_add(1, Ordering::Relaxed);
        HELD_FILES.fetch_add(1, Ordering::Release);
    } else if before > 0 && after == 0 {
        f.fetch_sub(1, Ordering::Relaxed);
        HELD_FILES.fetch_sub(1, Ordering::Release);
    }
}

// ---- The held files, by (dev, ino) ------------------------------------
//
// An open-addressing index from a held file to its registry slot, so that
// the paths that look at many descriptors at once (exec, close_range,
// closefrom, fcloseall) find each descriptor's slot in O(1). Written only
// by `account` (under the registry mutex, so by one thread at a time);
// read without a lock, and every hit is checked against `SLOT_DEV`/`SLOT_INO`,
// with a scan of the held slots behind it, so a racing rebuild never makes a
// lookup miss. Its chunks are mapped as entries are written; an entry whose
// chunk cannot be mapped is left out, and the scan behind finds the slot.

const INDEX: usize = 1 << 17;
const TOMB: u32 = u32::MAX;
static INDEX_SLOTS: LazyU32 = LazyU32::new();
static INDEX_TOMBS: AtomicU32 = AtomicU32::new(0);
const _: () = assert!(INDEX <= crate::lazy::CHUNK * crate::lazy::DIR);

fn index_home(dev: u64, ino: u64) -> usize {
    ((dev.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ino).wrapping_mul(0xff51_afd7_ed55_8ccd) >> 17) as usize % INDEX
}

fn index_insert(slot: u32, dev: u64, ino: u64) {
    if INDEX_TOMBS.load(Ordering::Relaxed) as usize > INDEX / 4 {
        index_rebuild();
    }
    let mut i = index_home(dev, ino);
    for _ in 0..INDEX {
        let v = INDEX_SLOTS.load(i, Ordering::Relaxed);
        if v == 0 || v == TOMB {
            let Some(e) = INDEX_SLOTS.get_or_map(i) else { return };
            if v == TOMB {
                INDEX_TOMBS.fetch_sub(1, Ordering::Relaxed);
            }
            e.store(slot + 1, Ordering::Release);
            return;
        }
        i = (i + 1) % INDEX;
    }
}

fn index_remove(slot: u32, dev: u64, ino: u64) {
    let mut i = index_home(dev, ino);
    for _ in 0..INDEX {
        let v = INDEX_SLOTS.load(i, Ordering::Relaxed);
        if v == 0 {
            return;
        }
        if v == slot + 1 {
            if let Some(e) = INDEX_SLOTS.get(i) {
                e.store(TOMB, Ordering::Release);
            }
            INDEX_TOMBS.fetch_add(1, Ordering::Relaxed);
            return;
        }
        i = (i + 1) % INDEX;
    }
}

fn index_rebuild() {
    INDEX_SLOTS.clear();
    INDEX_TOMBS.store(0, Ordering::Relaxed);
    OWN_RECORDS.for_each_nonzero(&mut |s, _| {
        index_insert(s as u32, SLOT_DEV.load(s, Ordering::Relaxed), SLOT_INO.load(s, Ordering::Relaxed));
    });
}

fn holds_slot_for(s: usize, dev: u64, ino: u64) -> bool {
    OWN_RECORDS.load(s, Ordering::Acquire) != 0
        && SLOT_DEV.load(s, Ordering::Relaxed) == dev
        && SLOT_INO.load(s, Ordering::Relaxed) == ino
}

/// The registry slot of a file this process holds locks on, if it does.
pub fn slot_of(dev: u64, ino: u64) -> Option<u32> {
    let mut i = index_home(dev, ino);
    for _ in 0..INDEX {
        let v = INDEX_SLOTS.load(i, Ordering::Acquire);
        if v == 0 {
            break;
        }
        if v != TOMB && holds_slot_for((v - 1) as usize, dev, ino) {
            return Some(v - 1);
        }
        i = (i + 1) % INDEX;
    }
    // The complete slower path: the held slots, by scan.
    let mut found = None;
    OWN_RECORDS.for_each_nonzero(&mut |s, _| {
        if found.is_none() && holds_slot_for(s, dev, ino) {
            found = Some(s as u32);
        }
    });
    found
}

/// The file of held slot `s`, if this process holds locks there.
pub fn held_file(s: u32) -> Option<(u64, u64)> {
    let s = s as usize;
    (OWN_RECORDS.load(s, Ordering::Acquire) != 0)
        .then(|| (SLOT_DEV.load(s, Ordering::Relaxed), SLOT_INO.load(s, Ordering::Relaxed)))
}

// ---- Per-slot scratch for the many-descriptor paths ---------------------
//
// One user at a time (a process-local spin lock): per held slot, a count of
// descriptors seen, and a bit. No fixed list, no limit.

static SCRATCH_BUSY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static SCRATCH_COUNT: LazyU32 = LazyU32::new();

/// The per-slot scratch counters, for the duration of `f` (which must not
/// call back into a path that uses them). Entry `s` exists for every slot
/// `s` this process holds locks in (`ready`).
pub fn with_slot_scratch<R>(f: impl FnOnce(&'static LazyU32) -> R) -> R {
    while SCRATCH_BUSY.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        crate::sys::sched_yield();
    }
    let r = f(&SCRATCH_COUNT);
    SCRATCH_COUNT.clear();
    SCRATCH_BUSY.store(false, Ordering::Release);
    r
}

/// This process's record count in file slot `file`.
pub fn own_records(file: u32) -> u32 {
    OWN_RECORDS.load(file as usize, Ordering::Relaxed)
}

/// Calls `f(slot)` for every file slot this process holds records in.
pub fn for_each_held(f: &mut dyn FnMut(u32)) {
    OWN_RECORDS.for_each_nonzero(&mut |s, _| f(s as u32));
}

/// Whether the process holds locks on any file at all (no syscall).
pub fn holds_any() -> bool {
    HELD_FILES.load(Ordering::Acquire) != 0
}

/// Whether the process may hold locks on `(dev, ino)`; false is certain.
pub fn may_hold(dev: u64, ino: u64) -> bool {
    FILTER_COUNTS[filter_index(dev, ino)].load(Ordering::Relaxed) != 0
}

pub fn owner_hint() -> u32 {
    OWNER_HINT.load(Ordering::Relaxed)
}

pub fn set_owner_hint(i: u32) {
    OWNER_HINT.store(i, Ordering::Relaxed);
}

/// Forgets everything: a fork child holds no locks, and owns nothing.
pub fn forget_after_fork() {
    // Cheap when nothing is held: every count is then zero already.
    if HELD_FILES.load(Ordering::Acquire) == 0 && !has_deferred() {
        // Stored only when set: a fork child's first write to a page is a
        // copy-on-write fault.
        if OWNER_HINT.load(Ordering::Relaxed) != NIL {
            OWNER_HINT.store(NIL, Ordering::Relaxed);
        }
        return;
    }
    OWN_RECORDS.clear();
    for c in &FILTER_COUNTS {
        c.store(0, Ordering::Relaxed);
    }
    HELD_FILES.store(0, Ordering::Release);
    INDEX_SLOTS.clear();
    INDEX_TOMBS.store(0, Ordering::Relaxed);
    OWNER_HINT.store(NIL, Ordering::Relaxed);
    DEFERRED.clear();
    ANY_DEFERRED.store(0, Ordering::Relaxed);
}

/// Marks a release of this process's locks on `(dev, ino)` for the thread
/// that holds the registry (async-signal-safe; never fails: one bit per
/// slot). A file this process holds nothing on needs no mark.
pub fn defer_release(dev: u64, ino: u64) {
    OWN_RECORDS.for_each_nonzero(&mut |s, _| {
        if SLOT_DEV.load(s, Ordering::Relaxed) == dev
            && SLOT_INO.load(s, Ordering::Relaxed) == ino
            && let Some(word) = DEFERRED.get(s / 64)
        {
            word.fetch_or(1 << (s % 64), Ordering::AcqRel);
            ANY_DEFERRED.store(1, Ordering::Release);
        }
    });
}

/// Whether any release is deferred (one load).
pub fn has_deferred() -> bool {
    ANY_DEFERRED.load(Ordering::Acquire) != 0
}

/// Takes every deferred release, calling `f(dev, ino)` for each.
pub fn take_deferred(f: &mut dyn FnMut(u64, u64)) {
    ANY_DEFERRED.store(0, Ordering::Release);
    DEFERRED.for_each(&mut |w, word| {
        let mut bits = word.swap(0, Ordering::AcqRel);
        while bits != 0 {
            let s = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            f(SLOT_DEV.load(s, Ordering::Relaxed), SLOT_INO.load(s, Ordering::Relaxed));
        }
    });
}

/// What a descriptor refers to, cached so that the lock fast path makes no
/// syscall: its file and access mode, and the open-file owner its open file
/// description has in the registry.
///
/// An entry is filled on a descriptor's first lock call and forgotten on
/// every path the library sees that closes or (re)creates a descriptor
/// number: close, fclose, fcloseall, dup2/dup3 over it, close_range,
/// closefrom, open/openat/creat, dup and fcntl F_DUPFD. A descriptor closed
/// behind the library's back (a raw `syscall(SYS_close)`) and reused by a
/// call it does not see would leave a stale entry: `QNXCOMPAT_FDCACHE=0`
/// turns the cache off for such programs.
///
/// Each entry is a seqlock: `meta` is cleared while the words change, and a
/// reader keeps what it read only if `meta` was valid and unchanged around
/// the read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FdInfo {
    pub dev: u64,
    pub ino: u64,
    pub readable: bool,
    pub writable: bool,
    /// A regular file (what mmap bookkeeping tracks).
    pub regular: bool,
}

struct FdEntry {
    meta: AtomicU64,
    dev: AtomicU64,
    ino: AtomicU64,
    /// Open-file owner: slot | generation << 32, or u64::MAX.
    owner: AtomicU64,
}

const FD_CACHE: usize = 4096;
const VALID: u64 = 1 << 63;
const READABLE: u64 = 1;
const WRITABLE: u64 = 2;
const REGULAR: u64 = 4;
const SEQ: u64 = 8;
const NO_OWNER: u64 = u64::MAX;

static FDS: [FdEntry; FD_CACHE] = [const {
    FdEntry { meta: AtomicU64::new(0), dev: AtomicU64::new(0), ino: AtomicU64::new(0), owner: AtomicU64::new(NO_OWNER) }
}; FD_CACHE];
static FD_CACHE_ON: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// Turns the descriptor cache off (QNXCOMPAT_FDCACHE=0).
pub fn disable_fd_cache() {
    FD_CACHE_ON.store(false, Ordering::Relaxed);
}

fn fd_entry(fd: i32) -> Option<&'static FdEntry> {
    if !FD_CACHE_ON.load(Ordering::Relaxed) {
        return None;
    }
    FDS.get(usize::try_from(fd).ok()?)
}

/// The cached file and access mode of `fd`, if known.
pub fn fd_lookup(fd: i32) -> Option<FdInfo> {
    let e = fd_entry(fd)?;
    let m1 = e.meta.load(Ordering::Acquire);
    if m1 & VALID == 0 {
        return None;
    }
    let (dev, ino) = (e.dev.load(Ordering::Relaxed), e.ino.load(Ordering::Relaxed));
    core::sync::atomic::fence(Ordering::Acquire);
    (e.meta.load(Ordering::Relaxed) == m1).then_some(FdInfo {
        dev,
        ino,
        readable: m1 & READABLE != 0,
        writable: m1 & WRITABLE != 0,
        regular: m1 & REGULAR != 0,
    })
}

/// Caches what `fd` refers to.
/// The entry's state before an `fstat` whose result is to be cached: the
/// store succeeds only if no path forgot the descriptor in between.
pub fn fd_ticket(fd: i32) -> u64 {
    fd_entry(fd).map_or(0, |e| e.meta.load(Ordering::Acquire))
}

fn seq_of(meta: u64) -> u64 {
    meta & !(VALID | READABLE | WRITABLE | REGULAR)
}

/// Caches what `fd` refers to, as learnt since `ticket` (see `fd_ticket`).
/// A close, dup or open path that forgot the descriptor meanwhile moved its
/// sequence on, and then nothing is stored: the cache is never stale.
pub fn fd_store(fd: i32, info: FdInfo, ticket: u64) {
    let Some(e) = fd_entry(fd) else { return };
    let writing = seq_of(ticket).wrapping_add(SEQ) & !VALID;
    if e.meta.compare_exchange(ticket, writing, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return;
    }
    e.dev.store(info.dev, Ordering::Relaxed);
    e.ino.store(info.ino, Ordering::Relaxed);
    e.owner.store(NO_OWNER, Ordering::Relaxed);
    let flags = if info.readable { READABLE } else { 0 }
        | if info.writable { WRITABLE } else { 0 }
        | if info.regular { REGULAR } else { 0 };
    // A forget during the writes moved the sequence again: then the entry
    // stays invalid.
    let _ = e.meta.compare_exchange(writing, VALID | writing | flags, Ordering::AcqRel, Ordering::Relaxed);
}

/// Moves an entry's sequence on and invalidates it.
///
/// A plain load and store: a store racing it either lands first (and is
/// overwritten with an invalid entry) or finds the sequence moved (its
/// compare-and-swap fails); two forgets racing each other both move it.
fn forget_entry(e: &FdEntry) {
    let m = e.meta.load(Ordering::Relaxed);
    e.meta.store(seq_of(m).wrapping_add(SEQ) & !VALID, Ordering::Release);
}

/// Forgets `fd` (it was closed, replaced or created anew). Async-signal-safe.
pub fn fd_forget(fd: i32) {
    if let Some(e) = usize::try_from(fd).ok().and_then(|i| FDS.get(i)) {
        forget_entry(e);
    }
}

/// Forgets every descriptor in `[lo, hi]`.
pub fn fd_forget_range(lo: u32, hi: u32) {
    let hi = (hi as usize).min(FD_CACHE - 1);
    for e in FDS.iter().take(hi + 1).skip(lo as usize) {
        forget_entry(e);
    }
}

/// The open-file owner cached for `fd`: (slot, generation).
pub fn fd_owner(fd: i32) -> Option<(u32, u32)> {
    let e = fd_entry(fd)?;
    let m1 = e.meta.load(Ordering::Acquire);
    let o = e.owner.load(Ordering::Acquire);
    (m1 & VALID != 0 && o & RETIRED == 0 && e.meta.load(Ordering::Acquire) == m1)
        .then_some((o as u32, (o >> 32) as u32))
}

/// Marks in `owner`: bit 63 with the registry's open-file owner creation
/// count in the low bits, "this descriptor's open file had no owner left
/// when that count was current" (see `locks::resolve`).
const RETIRED: u64 = 1 << 63;

/// Notes that `fd`'s open-file owner was retired when the registry had
/// made `created` open-file owners.
pub fn fd_set_retired(fd: i32, created: u32) {
    if let Some(e) = fd_entry(fd) {
        e.owner.store(RETIRED | u64::from(created), Ordering::Release);
    }
}

/// The creation count noted when `fd`'s open-file owner was retired.
pub fn fd_retired(fd: i32) -> Option<u32> {
    let e = fd_entry(fd)?;
    let m1 = e.meta.load(Ordering::Acquire);
    let o = e.owner.load(Ordering::Acquire);
    (m1 & VALID != 0 && o != NO_OWNER && o & RETIRED != 0 && e.meta.load(Ordering::Acquire) == m1).then_some(o as u32)
}

/// Caches the open-file owner of `fd`'s open file description.
pub fn fd_set_owner(fd: i32, slot: u32, generation: u32) {
    if let Some(e) = fd_entry(fd) {
        e.owner.store(u64::from(slot) | u64::from(generation) << 32, Ordering::Release);
    }
}
