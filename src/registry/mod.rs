//! The cross-process lock registry: storage at the bottom of the library.
//!
//! One shared segment, one robust process-shared mutex. Everything in the
//! segment is read and written only under the mutex, held through a
//! [`Guard`] (`guard.rs`). The guard hands out `&mut` views of the tables
//! (never of the mutex itself), collects files whose waiters must be woken,
//! and wakes them after the mutex is dropped (parking_lot's "decide under
//! the lock, wake outside it").
//!
//! The storage layer decides nothing about liveness and runs no probe: it
//! says what it can vouch for ([`Vouch`]), hands out [`Ticket`]s, and the
//! policy layer above probes outside the mutex and re-checks the ticket's
//! generation before acting (`crate::locks`, `crate::liveness`). No module
//! here imports one above it.
//!
//! | file | job |
//! |---|---|
//! | `layout.rs` | `repr(C)` structs, sizes, offsets, ABI hash, lock legend |
//! | `shm.rs` | creating, checking and mapping the segment; refusals |
//! | `guard.rs` | reaching the registry, the mutex, the wake set |
//! | `mod.rs` | the tables, the one slab allocator, record storage |
//! | `records.rs` | lock records through the range engine |
//! | `files.rs` | file slots and hash chains |
//! | `owners.rs` | owner slots, life marks, vouching |
//! | `waiters.rs` | registered waiters, the wait-for graph |
//! | `maps.rs` | recorded file mappings |
//! | `repair.rs` | rebuilding after a holder died mid-update |
//! | `verify.rs` | the consistency check |
//!
//! # Invariants
//! Stated here as `fs/locks.c` states its own; [`Tables::verify`] checks
//! the first seven, and debug builds (or `QNXCOMPAT_VERIFY=1`) run it after
//! every operation, when the guard drops.
//!
//! 1. Every live record is in exactly one file's treap (its `file`) and on
//!    exactly one owner's record list (its `owner`); counts match.
//! 2. Within one file, one owner's records never overlap, and same-type
//!    ones never touch (the range engine's invariant).
//! 3. Every in-use file slot is on the hash chain of its `(dev, ino)`;
//!    free slots are on the free list, never on a chain.
//! 4. A file slot is freed only when nothing refers to it: no record, no
//!    mapping, no sleeper reading its futex word (`sleepers`), no registered
//!    waiter naming it (`waiters`). So a sleeper never wakes on a slot that
//!    another file took, and a registration never names another file.
//! 5. A process owner slot is freed only after its anchor was probed dead
//!    (`crate::liveness`); a live process's slot is never re-initialised
//!    (its life mark may sit on a live thread's robust list).
//! 6. An owner with records, waiters or mappings is never freed.
//! 7. Mapping counts per file equal the mapping records naming it.
//! 8. Every index kept outside the mutex carries a generation checked at
//!    use: waiter registrations (`CallState::waiter_gen`), open-file tokens
//!    (slot and generation in the kernel lock's range), probe tickets
//!    (owner generation), anchors (nonce). Per-process record counts are
//!    indexed by file slot, which invariant 4 keeps while they are non-zero.
//! 9. No liveness probe, `/proc` read of another process, or blocking
//!    syscall runs while the mutex is held. (The caller's own
//!    `/proc/self/fdinfo` and its own descriptor's OFD token, both bounded
//!    and non-blocking, are the exceptions; see `docs/design.md`.)
//!
//! When a process dies holding the mutex, the next locker gets `EOWNERDEAD`
//! and [`Tables::repair`] rebuilds every derived structure from the flat
//! record array, normalising (never dropping) the records a half-finished
//! update left behind.
//!
//! # Safety
//! This file turns the mapped segment into references. The mapping is never
//! unmapped; the tables are only referenced while the mutex is held, and the
//! header's mutex is only ever touched through raw pointers.
#![allow(unsafe_code)]

mod chunks;
mod files;
mod guard;
pub mod inspect;
pub mod layout;
mod maps;
mod owners;
mod records;
mod repair;
pub mod shm;
mod verify;
mod waiters;

pub use chunks::{Mapping, Slab};
pub use guard::{
    Attach, Guard, Reach, Registry, WakeSet, attach_named, attached, forget_after_fork, in_registry, reach, section,
    set_on_leave,
};
pub use owners::{Sample, Ticket, Vouch};
pub use verify::Census;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::engine::deadlock::{self, Cycle, WaitGraph};
use crate::engine::lockset::{self, Pool, SetError, SetOutcome};
use crate::engine::range::{LockType, Range, Request};
use crate::engine::tree::{self, Arena, ArenaMut, Corrupt, LockRecord, NIL, RECORD_FREE, RECORD_LIVE};
use crate::sys::{self, Errno};
use layout::*;

/// Unlinks `target` from the singly linked list that starts at `head` and
/// runs through `next` (the one list unlink every table uses); false when it
/// is not on the list. The walk is bounded by the table's size, so a
/// scribbled list ends it rather than looping.
fn slab_unlink<T: layout::SlotOf>(
    items: &mut Slab<'_, T>,
    head: &mut u32,
    target: u32,
    next: fn(&mut T) -> &mut u32,
) -> bool {
    let mut prev = NIL;
    let mut cur = *head;
    for _ in 0..items.len() {
        if cur == target || cur == NIL {
            break;
        }
        prev = cur;
        cur = items.get_mut(cur as usize).map_or(NIL, |x| *next(x));
    }
    if cur != target || cur == NIL {
        return false;
    }
    let Some(after) = items.get_mut(target as usize).map(|x| *next(x)) else { return false };
    slab_relink(items, head, prev, after, next);
    true
}

/// Makes `after` follow `prev` (or start the list at `head`, when `prev` is
/// NIL): the second half of an unlink whose walk already knows `prev`.
fn slab_relink<T: layout::SlotOf>(
    items: &mut Slab<'_, T>,
    head: &mut u32,
    prev: u32,
    after: u32,
    next: fn(&mut T) -> &mut u32,
) {
    match items.get_mut(prev as usize) {
        Some(p) => *next(p) = after,
        None => *head = after,
    }
}

/// The one slab allocator every table uses: a slot from the free list
/// (`head`, linked through `next_of`), else the next never-used slot above
/// the high-water mark `high`, else `None` (the table is full). Slots never
/// move, so an index held anywhere stays valid until its slot is freed.
///
/// A never-used slot's chunk is added to the table first (see `chunks.rs`);
/// when that fails (a full `/dev/shm`) the table counts as full, and the
/// call fails with its errno, never with SIGBUS later.
fn slab_take(
    head: &mut u32,
    high: &mut u32,
    map: &'static Mapping,
    table: Table,
    next_of: impl Fn(u32) -> Option<u32>,
) -> Option<u32> {
    if *head != NIL {
        let i = *head;
        *head = next_of(i)?;
        Some(i)
    } else if *high < table.shape().1 && map.grow_to(table, *high + 1) {
        *high += 1;
        Some(*high - 1)
    } else {
        None
    }
}

/// The mutable tables of the segment, valid while the mutex is held.
pub struct Tables<'g> {
    pub free: &'g mut FreeLists,
    pub owners: Slab<'g, OwnerSlot>,
    pub files: Slab<'g, FileSlot>,
    pub buckets: Slab<'g, u32>,
    pub waiters: Slab<'g, WaiterSlot>,
    pub maps: Slab<'g, MapSlot>,
    pub records: Slab<'g, LockRecord>,
    /// The segment as this process maps it (to grow a table).
    pub map: &'static Mapping,
}

impl Arena for Slab<'_, LockRecord> {
    fn rec(&self, i: u32) -> Result<&LockRecord, Corrupt> {
        self.get(i as usize).ok_or(Corrupt)
    }
}

impl ArenaMut for Slab<'_, LockRecord> {
    fn rec_mut(&mut self, i: u32) -> Result<&mut LockRecord, Corrupt> {
        self.get_mut(i as usize).ok_or(Corrupt)
    }
}

impl Arena for Tables<'_> {
    fn rec(&self, i: u32) -> Result<&LockRecord, Corrupt> {
        self.records.rec(i)
    }
}

impl ArenaMut for Tables<'_> {
    fn rec_mut(&mut self, i: u32) -> Result<&mut LockRecord, Corrupt> {
        self.records.rec_mut(i)
    }
}

impl Pool for Tables<'_> {
    fn alloc(&mut self, owner: u32, file: u32) -> Option<u32> {
        let head = self.owners.get(owner as usize)?.lock_head;
        let records = &self.records;
        let f = &mut *self.free;
        let i = slab_take(&mut f.record, &mut f.record_high, self.map, Table::Records, |i| {
            records.get(i as usize).map(|r| r.onext)
        })?;
        self.free.nrecords -= 1;
        self.records[i as usize] = LockRecord {
            owner,
            file,
            state: RECORD_LIVE,
            left: NIL,
            right: NIL,
            onext: head,
            oprev: NIL,
            ..Default::default()
        };
        if let Some(h) = self.records.get_mut(head as usize) {
            h.oprev = i;
        }
        let o = &mut self.owners[owner as usize];
        o.lock_head = i;
        o.nlocks += 1;
        if let Some(f) = self.files.get_mut(file as usize) {
            f.nrecords += 1;
        }
        Some(i)
    }

    fn free(&mut self, i: u32) -> Result<(), Corrupt> {
        let (owner, file, next, prev) = {
            let r = self.rec(i)?;
            (r.owner, r.file, r.onext, r.oprev)
        };
        match self.records.get_mut(prev as usize) {
            Some(p) => p.onext = next,
            None => {
                let o = self.owners.get_mut(owner as usize).ok_or(Corrupt)?;
                o.lock_head = next;
            }
        }
        if let Some(n) = self.records.get_mut(next as usize) {
            n.oprev = prev;
        }
        if let Some(o) = self.owners.get_mut(owner as usize) {
            o.nlocks = o.nlocks.saturating_sub(1);
        }
        if let Some(f) = self.files.get_mut(file as usize) {
            f.nrecords = f.nrecords.saturating_sub(1);
        }
        let free_head = self.free.record;
        let r = self.rec_mut(i)?;
        *r = LockRecord { state: RECORD_FREE, onext: free_head, ..Default::default() };
        self.free.record = i;
        self.free.nrecords += 1;
        Ok(())
    }

    /// Unlocks may use every free record; a lock may use one only while
    /// as many stay free as there are live records, so that every live
    /// record can still be split by an unlock (an unlock never fails for
    /// lack of room while splits do not outnumber the records there were).
    /// The records a call may take from above the high-water mark get their
    /// chunks here first.
    fn can_alloc(&mut self, n: u32, for_unlock: bool) -> bool {
        let live = RECORDS - self.free.nrecords;
        let need = if for_unlock { n } else { n + live.max(UNLOCK_RESERVE) };
        if self.free.nrecords < need {
            return false;
        }
        let above = RECORDS - self.free.record_high;
        let listed = self.free.nrecords - above;
        let fresh = n.saturating_sub(listed);
        fresh == 0 || self.map.grow_to(Table::Records, self.free.record_high + fresh)
    }

    fn checkpoint(&mut self) {
        crate::fault::point(crate::fault::Point::MidUpdate);
    }
}

/// The hash of a file, before it is reduced to a bucket.
fn file_hash(dev: u64, ino: u64) -> u64 {
    (dev.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ino).wrapping_mul(0xff51_afd7_ed55_8ccd) >> 20
}

/// The bucket of a file, among `n` (a power of two).
fn bucket_in(dev: u64, ino: u64, n: usize) -> usize {
    file_hash(dev, ino) as usize & (n - 1)
}

/// The free lists of an empty registry: no slot is below a high-water mark.
pub(crate) fn reset_free_lists(free: &mut FreeLists) {
    *free = FreeLists {
        record: NIL,
        nrecords: RECORDS,
        file: NIL,
        owner: NIL,
        waiter: NIL,
        map: NIL,
        record_high: 0,
        file_high: 0,
        owner_high: 0,
        waiter_high: 0,
        map_high: 0,
        proc_created: 0,
        unrecorded_owners: 0,
        graph_epoch: 0,
        ofd_created: 0,
        files_in_use: 0,
        openfile_waiters: 0,
    };
}

/// The tables of the segment `map` maps.
///
/// # Safety
/// For `'a` the caller holds the segment's mutex (or, while initialising, is
/// its only user), and the mapping covers every chunk allocated.
pub(crate) unsafe fn tables_at<'a>(map: &'static Mapping) -> Tables<'a> {
    // SAFETY: per the contract nobody else touches the tables; the free
    // lists are a field of the header apart from the mutex and the (atomic)
    // directory, and each slab's type is its table's.
    unsafe {
        Tables {
            free: &mut (*(map.base() as *mut Header)).free,
            owners: Slab::new(map),
            files: Slab::new(map),
            buckets: Slab::new(map),
            waiters: Slab::new(map),
            maps: Slab::new(map),
            records: Slab::new(map),
            map,
        }
    }
}

impl Tables<'_> {
    /// The bucket of a file.
    pub(super) fn bucket_of(&self, dev: u64, ino: u64) -> usize {
        bucket_in(dev, ino, self.buckets.len().max(1))
    }

    /// Empties every hash chain (the repair rebuilds them).
    pub(super) fn clear_buckets(&mut self) {
        self.buckets.iter_mut_to(usize::MAX).for_each(|b| *b = NIL);
    }

    /// The high-water marks, clamped: they are read from shared memory.
    pub(super) fn owner_high(&self) -> usize {
        (self.free.owner_high as usize).min(self.owners.len())
    }

    pub(super) fn file_high(&self) -> usize {
        (self.free.file_high as usize).min(self.files.len())
    }

    pub(super) fn record_high(&self) -> usize {
        (self.free.record_high as usize).min(self.records.len())
    }

    pub(super) fn waiter_high(&self) -> usize {
        (self.free.waiter_high as usize).min(self.waiters.len())
    }
}
