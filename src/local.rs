//! Per-process state that the close path reads without the registry mutex.
//!
//! `close()` must be cheap when the process holds no locks on the file, and
//! async-signal-safe always. So the process keeps, in fixed static arrays of
//! atomics (no allocation, no lock):
//! - how many records it holds in each registry file slot (changed only
//!   under the registry mutex, by this process);
//! - a counting filter over `(dev, ino)` of the files it holds locks on,
//!   which answers "certainly not locked" for a `close()` after one `fstat`;
//! - the number of such files, which answers "nothing locked at all" with
//!   no syscall.
//!
//! A `close()` reached from a signal handler while the same thread is inside
//! the registry cannot take the mutex again; it queues the file here, and the
//! interrupted call releases it on its way out.

use core::cell::Cell;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

use crate::engine::tree::NIL;
use crate::registry::layout::FILES;

thread_local! {
    /// Set while this thread holds the registry mutex. Const-initialised
    /// and without Drop, so no TLS destructor is registered.
    static IN_REGISTRY: Cell<bool> = const { Cell::new(false) };
}

pub fn in_registry() -> bool {
    IN_REGISTRY.with(|c| c.get())
}

pub fn set_in_registry(v: bool) {
    IN_REGISTRY.with(|c| c.set(v));
}

const FILTER: usize = 1024;

static OWN_RECORDS: [AtomicU32; FILES as usize] = [const { AtomicU32::new(0) }; FILES as usize];
static FILTER_COUNTS: [AtomicU16; FILTER] = [const { AtomicU16::new(0) }; FILTER];
static HELD_FILES: AtomicU32 = AtomicU32::new(0);
/// The registry owner slot of this process, a hint checked on use.
static OWNER_HINT: AtomicU32 = AtomicU32::new(NIL);

fn filter_index(dev: u64, ino: u64) -> usize {
    ((dev ^ ino.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32) as usize % FILTER
}

/// Records that this process's record count in file slot `file` changed by
/// `delta`. Call under the registry mutex.
pub fn account(file: u32, dev: u64, ino: u64, delta: i32) {
    let Some(slot) = OWN_RECORDS.get(file as usize) else { return };
    if delta == 0 {
        return;
    }
    let before = slot.load(Ordering::Relaxed);
    let after = (before as i64 + delta as i64).max(0) as u32;
    slot.store(after, Ordering::Relaxed);
    let f = &FILTER_COUNTS[filter_index(dev, ino)];
    if before == 0 && after > 0 {
        f.fetch_add(1, Ordering::Relaxed);
        HELD_FILES.fetch_add(1, Ordering::Release);
    } else if before > 0 && after == 0 {
        f.fetch_sub(1, Ordering::Relaxed);
        HELD_FILES.fetch_sub(1, Ordering::Release);
    }
}

/// This process's record count in file slot `file`.
pub fn own_records(file: u32) -> u32 {
    OWN_RECORDS.get(file as usize).map_or(0, |c| c.load(Ordering::Relaxed))
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
    for c in &OWN_RECORDS {
        c.store(0, Ordering::Relaxed);
    }
    for c in &FILTER_COUNTS {
        c.store(0, Ordering::Relaxed);
    }
    HELD_FILES.store(0, Ordering::Release);
    OWNER_HINT.store(NIL, Ordering::Relaxed);
    IN_REGISTRY.with(|c| c.set(false));
    for d in &DEFERRED {
        d.state.store(EMPTY, Ordering::Relaxed);
    }
}

/// Files whose release a signal-handler `close()` deferred.
struct Deferred {
    state: AtomicU32,
    dev: AtomicU64,
    ino: AtomicU64,
}

const EMPTY: u32 = 0;
const CLAIMED: u32 = 1;
const READY: u32 = 2;
static DEFERRED: [Deferred; 16] =
    [const { Deferred { state: AtomicU32::new(EMPTY), dev: AtomicU64::new(0), ino: AtomicU64::new(0) } }; 16];

/// Queues a release for the thread that holds the registry; false if full.
pub fn defer_release(dev: u64, ino: u64) -> bool {
    for d in &DEFERRED {
        if d.state.compare_exchange(EMPTY, CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            d.dev.store(dev, Ordering::Relaxed);
            d.ino.store(ino, Ordering::Relaxed);
            d.state.store(READY, Ordering::Release);
            return true;
        }
    }
    false
}

/// Runs queued releases; called after the registry mutex is dropped.
pub fn run_deferred_releases() {
    for d in &DEFERRED {
        if d.state.load(Ordering::Acquire) == READY {
            let (dev, ino) = (d.dev.load(Ordering::Relaxed), d.ino.load(Ordering::Relaxed));
            d.state.store(EMPTY, Ordering::Release);
            crate::locks::release_file(dev, ino);
        }
    }
}
