//! The cross-process lock registry: one shared segment, one robust mutex.
//!
//! Everything in the segment is read and written only under the mutex, held
//! through a [`Guard`]. The guard hands out `&mut` views of the tables (never
//! of the mutex itself), collects files whose waiters must be woken, and
//! wakes them after the mutex is dropped (parking_lot's "decide under the
//! lock, wake outside it").
//!
//! When a process dies holding the mutex, the next locker gets `EOWNERDEAD`
//! and [`Tables::repair`] rebuilds every derived structure (treaps, owner
//! lists, hash chains, free lists) from the flat record array. That discards
//! whatever half-finished update the dead process left, then reaps the locks
//! of every dead owner, before `pthread_mutex_consistent`.
//!
//! # Safety
//! This file turns the mapped segment into references. The mapping is never
//! unmapped; the tables are only referenced while the mutex is held, and the
//! header's mutex is only ever touched through raw pointers.
#![allow(unsafe_code)]

pub mod layout;
pub mod shm;

use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32, Ordering};

use crate::engine::deadlock::{self, Cycle, WaitGraph};
use crate::engine::lockset::{self, Pool, SetError, SetOutcome};
use crate::engine::range::{LockType, Range, Request};
use crate::engine::tree::{self, Arena, ArenaMut, Corrupt, LockRecord, NIL, RECORD_FREE, RECORD_LIVE};
use crate::owner::{self, Liveness, ProcessIdentity};
use crate::sys::{self, Errno};
use layout::*;

/// The mutable tables of the segment, valid while the mutex is held.
pub struct Tables<'g> {
    pub free: &'g mut FreeLists,
    pub owners: &'g mut [OwnerSlot],
    pub files: &'g mut [FileSlot],
    pub buckets: &'g mut [u32],
    pub waiters: &'g mut [WaiterSlot],
    pub maps: &'g mut [MapSlot],
    pub scratch: &'g mut Scratch,
    pub records: &'g mut [LockRecord],
}

impl Arena for Tables<'_> {
    fn records(&self) -> &[LockRecord] {
        self.records
    }
}

impl ArenaMut for Tables<'_> {
    fn records_mut(&mut self) -> &mut [LockRecord] {
        self.records
    }
}

impl Pool for Tables<'_> {
    fn alloc(&mut self, owner: u32, file: u32) -> Option<u32> {
        let head = self.owners.get(owner as usize)?.lock_head;
        let i = if self.free.record != NIL {
            let i = self.free.record;
            self.free.record = self.records.get(i as usize)?.onext;
            i
        } else if self.free.record_high < RECORDS {
            self.free.record_high += 1;
            self.free.record_high - 1
        } else {
            return None;
        };
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

    fn can_alloc(&self, n: u32, for_unlock: bool) -> bool {
        let need = if for_unlock { n } else { n + UNLOCK_RESERVE };
        self.free.nrecords >= need
    }

    fn checkpoint(&mut self) {
        crate::fault::point(crate::fault::Point::MidUpdate);
    }
}

fn bucket_of(dev: u64, ino: u64) -> usize {
    let h = (dev.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ino).wrapping_mul(0xff51_afd7_ed55_8ccd);
    (h >> 40) as usize % BUCKETS as usize
}

/// The tables of the segment mapped at `base`.
///
/// # Safety
/// `base` maps a whole segment, and for `'a` the caller holds its mutex (or,
/// while initialising, is its only user).
pub(crate) unsafe fn tables_at<'a>(base: *mut u8) -> Tables<'a> {
    // SAFETY: per the contract nobody else touches the tables; each slice
    // lies within the mapping at the layout's offsets, and they overlap
    // neither each other nor the mutex.
    unsafe {
        Tables {
            free: &mut (*(base as *mut Header)).free,
            owners: core::slice::from_raw_parts_mut(base.add(OFFSETS.owners) as *mut OwnerSlot, OWNERS as usize),
            files: core::slice::from_raw_parts_mut(base.add(OFFSETS.files) as *mut FileSlot, FILES as usize),
            buckets: core::slice::from_raw_parts_mut(base.add(OFFSETS.buckets) as *mut u32, BUCKETS as usize),
            waiters: core::slice::from_raw_parts_mut(base.add(OFFSETS.waiters) as *mut WaiterSlot, WAITERS as usize),
            maps: core::slice::from_raw_parts_mut(base.add(OFFSETS.maps) as *mut MapSlot, MAPS as usize),
            scratch: &mut *(base.add(OFFSETS.scratch) as *mut Scratch),
            records: core::slice::from_raw_parts_mut(base.add(OFFSETS.records) as *mut LockRecord, RECORDS as usize),
        }
    }
}

impl Tables<'_> {
    /// Empties every table: no slot is below a high-water mark.
    pub fn reset(&mut self) {
        *self.free = FreeLists {
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
            _pad: 0,
        };
        self.buckets.fill(NIL);
    }

    /// The owner slots ever used.
    pub fn used_owners(&self) -> &[OwnerSlot] {
        &self.owners[..self.owner_high()]
    }

    /// The high-water marks, clamped: they are read from shared memory.
    fn owner_high(&self) -> usize {
        (self.free.owner_high as usize).min(self.owners.len())
    }
    fn file_high(&self) -> usize {
        (self.free.file_high as usize).min(self.files.len())
    }
    fn record_high(&self) -> usize {
        (self.free.record_high as usize).min(self.records.len())
    }

    /// The file slot of `(dev, ino)`, if it has one.
    pub fn find_file(&self, dev: u64, ino: u64) -> Option<u32> {
        let mut i = self.buckets[bucket_of(dev, ino)];
        for _ in 0..FILES {
            let f = self.files.get(i as usize)?;
            if f.in_use == 1 && f.dev == dev && f.ino == ino {
                return Some(i);
            }
            i = f.next;
        }
        None
    }

    /// The file slot of `(dev, ino)`, created if needed; ENOLCK when full.
    pub fn file_slot(&mut self, dev: u64, ino: u64) -> Result<u32, Errno> {
        if let Some(i) = self.find_file(dev, ino) {
            return Ok(i);
        }
        let i = if self.free.file != NIL {
            let i = self.free.file;
            self.free.file = self.files.get(i as usize).ok_or(Errno::NOLCK)?.next;
            i
        } else if self.free.file_high < FILES {
            self.free.file_high += 1;
            self.free.file_high - 1
        } else {
            return Err(Errno::NOLCK);
        };
        let f = &mut self.files[i as usize];
        let b = bucket_of(dev, ino);
        *f = FileSlot {
            dev,
            ino,
            root: NIL,
            next: self.buckets[b],
            nrecords: 0,
            in_use: 1,
            wake: AtomicU32::new(f.wake.load(Ordering::Relaxed)),
            mappings: 0,
            sleepers: 0,
            _pad: 0,
        };
        self.buckets[b] = i;
        Ok(i)
    }

    /// Returns an empty file slot to the free list.
    pub fn release_file_if_empty(&mut self, i: u32) {
        let Some(f) = self.files.get(i as usize) else { return };
        if f.in_use != 1 || f.nrecords != 0 || f.root != NIL || f.mappings != 0 {
            return;
        }
        let (dev, ino) = (f.dev, f.ino);
        let b = bucket_of(dev, ino);
        // Unlink from the hash chain.
        let mut prev = NIL;
        let mut cur = self.buckets[b];
        for _ in 0..FILES {
            if cur == i || cur == NIL {
                break;
            }
            prev = cur;
            cur = self.files.get(cur as usize).map_or(NIL, |f| f.next);
        }
        if cur != i {
            return;
        }
        let next = self.files[i as usize].next;
        if prev == NIL {
            self.buckets[b] = next;
        } else {
            self.files[prev as usize].next = next;
        }
        let f = &mut self.files[i as usize];
        f.in_use = 0;
        f.next = self.free.file;
        self.free.file = i;
    }

    /// The owner slot of a process, created if needed.
    pub fn process_owner(&mut self, me: ProcessIdentity, hint: u32) -> Result<u32, Errno> {
        let is_me = |o: &OwnerSlot| o.kind == OWNER_PROCESS && o.pid == me.pid && o.starttime == me.starttime;
        if self.owners.get(hint as usize).is_some_and(is_me) {
            return Ok(hint);
        }
        if let Some(i) = self.used_owners().iter().position(is_me) {
            return Ok(i as u32);
        }
        self.new_owner(OWNER_PROCESS, 0, me.pid, me.starttime, 0, 0)
    }

    /// Takes a free owner slot for a new owner; ENOLCK when the table is
    /// full. The slot's generation moves on, so old tokens never name it.
    pub fn new_owner(
        &mut self,
        kind: u8,
        flavor: u8,
        pid: i32,
        starttime: u64,
        dev: u64,
        ino: u64,
    ) -> Result<u32, Errno> {
        let i = if self.free.owner != NIL {
            let i = self.free.owner;
            self.free.owner = self.owners.get(i as usize).ok_or(Errno::NOLCK)?.next_free;
            i
        } else if self.free.owner_high < OWNERS {
            self.free.owner_high += 1;
            self.free.owner_high - 1
        } else {
            return Err(Errno::NOLCK);
        };
        // Field by field: the slot holds a mutex, which must not be moved.
        let o = &mut self.owners[i as usize];
        o.kind = kind;
        o.flavor = flavor;
        o.pid = pid;
        o.starttime = starttime;
        o.lock_head = NIL;
        o.nlocks = 0;
        o.next_free = NIL;
        o.generation = o.generation.wrapping_add(1);
        o.dev = dev;
        o.ino = ino;
        o.waiter_head = NIL;
        o.nwaiters = 0;
        o.map_head = NIL;
        o.nmaps = 0;
        o.alive_at_ns = 0;
        // A slot is reused only once its last owner is gone, so nobody holds
        // its life mark: start it afresh.
        // SAFETY: the mutex lives in the mapping at a fixed address and no
        // live thread holds or waits on it.
        let _ = unsafe { shm::init_robust_mutex(&mut o.life) };
        Ok(i)
    }

    /// Makes the calling process hold the life mark of its owner slot `i`
    /// (see `OwnerSlot::life`), unless one of its threads already does.
    /// Never blocks: a mark held by a live thread is left alone.
    pub fn hold_life(&mut self, i: u32) {
        let Some(o) = self.owners.get_mut(i as usize) else { return };
        if o.kind != OWNER_PROCESS || (crate::local::life_slot() == i && life_says_alive(o)) {
            return;
        }
        // SAFETY: an initialised robust mutex at a fixed address; trylock
        // never blocks, and EOWNERDEAD makes us its consistent owner.
        let r = unsafe { libc::pthread_mutex_trylock(&mut o.life) };
        if r == libc::EOWNERDEAD {
            // SAFETY: we hold the mutex after EOWNERDEAD.
            unsafe { libc::pthread_mutex_consistent(&mut o.life) };
        }
        if r == 0 || r == libc::EOWNERDEAD {
            crate::local::set_life_slot(i);
        }
    }

    /// The open-file owner that `token` names for the file `(dev, ino)`,
    /// if the slot still is that owner.
    pub fn openfile_owner(&self, token: crate::openfile::Token, dev: u64, ino: u64) -> Option<u32> {
        let o = self.used_owners().get(token.slot as usize)?;
        (o.kind == OWNER_OPENFILE && token.names(o.generation) && o.dev == dev && o.ino == ino).then_some(token.slot)
    }

    /// Returns an idle open-file owner's slot to the free list. A process
    /// owner's slot is never freed here, only when its process is dead
    /// (`reap_owner`): a live process holds its slot's life mark, linked in
    /// a thread's robust list, and re-initialising that mutex for a new
    /// owner would corrupt the list, so that the kernel, walking it when the
    /// process dies, would stop short of the registry mutex and leave it
    /// held forever.
    pub fn release_owner_if_idle(&mut self, i: u32) {
        if self.owners.get(i as usize).is_some_and(|o| o.kind == OWNER_OPENFILE) {
            self.free_owner_if_idle(i);
        }
    }

    /// Frees an owner slot that holds nothing, of any kind; the caller knows
    /// no live thread holds its life mark.
    fn free_owner_if_idle(&mut self, i: u32) {
        let free_head = self.free.owner;
        let Some(o) = self.owners.get_mut(i as usize) else { return };
        if o.kind == OWNER_FREE || o.nlocks != 0 || o.nwaiters != 0 || o.nmaps != 0 {
            return;
        }
        o.kind = OWNER_FREE;
        o.lock_head = NIL;
        o.next_free = free_head;
        self.free.owner = i;
    }

    /// Applies a lock request to a file's treap.
    pub fn set(&mut self, file: u32, owner: u32, req: Request, q: Range) -> Result<SetOutcome, SetError> {
        let mut root = self.files.get(file as usize).ok_or(SetError::Corrupt)?.root;
        let r = lockset::set(self, &mut root, file, owner, req, q);
        self.files[file as usize].root = root;
        r
    }

    /// Calls `f` with the owner of every lock in `file` that conflicts with
    /// `owner` taking `t` on `q` (duplicates possible).
    pub fn for_each_conflict(
        &self,
        file: u32,
        owner: u32,
        t: LockType,
        q: Range,
        f: &mut dyn FnMut(u32),
    ) -> Result<(), Corrupt> {
        let root = self.files.get(file as usize).ok_or(Corrupt)?.root;
        lockset::for_each_conflict(self, root, owner, t, q, &mut |_, r| {
            f(r.owner);
            true
        })
    }

    /// The first lock of another owner in `file` that conflicts.
    pub fn first_conflict(&self, file: u32, owner: u32, t: LockType, q: Range) -> Result<Option<u32>, Corrupt> {
        let root = self.files.get(file as usize).ok_or(Corrupt)?.root;
        lockset::first_conflict(self, root, owner, t, q)
    }

    /// Removes `owner`'s locks in `file` whose type is not `want` (a flock
    /// conversion releases the old lock before asking for the new one).
    pub fn release_other_type(&mut self, file: u32, owner: u32, want: LockType) -> Result<SetOutcome, SetError> {
        let root = self.files.get(file as usize).ok_or(SetError::Corrupt)?.root;
        if !lockset::holds_other_type(self, root, owner, want)? {
            return Ok(SetOutcome::default());
        }
        self.set(file, owner, Request::Unlock, Range::WHOLE)
    }

    /// Whether `owner` holds a lock in `file` on `q` that runs to EOF.
    pub fn holds_lock_to_eof(&self, file: u32, owner: u32, q: Range) -> Result<bool, Corrupt> {
        let root = self.files.get(file as usize).ok_or(Corrupt)?.root;
        lockset::holds_lock_to_eof(self, root, owner, q)
    }

    /// Removes all of `owner`'s locks in `file`; returns how many went.
    pub fn remove_owner_in_file(&mut self, file: u32, owner: u32) -> Result<u32, Corrupt> {
        let mut root = self.files.get(file as usize).ok_or(Corrupt)?.root;
        let r = lockset::remove_owner(self, &mut root, owner);
        self.files[file as usize].root = root;
        r
    }

    /// Takes one live record out of its file and frees it; returns its file.
    pub fn remove_record(&mut self, i: u32) -> Result<u32, Corrupt> {
        let file = self.rec(i)?.file;
        let mut root = self.files.get(file as usize).ok_or(Corrupt)?.root;
        let r = tree::remove(self, &mut root, i);
        self.files[file as usize].root = root;
        r?;
        self.free(i)?;
        Ok(file)
    }

    /// Calls `f` with each record of `owner`, following its list; `f` may
    /// change the record but not unlink it.
    pub fn for_each_owned(&mut self, owner: u32, f: &mut dyn FnMut(u32, &mut LockRecord, &FileSlot)) {
        let mut r = self.owners.get(owner as usize).map_or(NIL, |o| o.lock_head);
        for _ in 0..RECORDS {
            let Some(rec) = self.records.get_mut(r as usize) else { break };
            let next = rec.onext;
            if let Some(file) = self.files.get(rec.file as usize) {
                f(r, rec, file);
            }
            r = next;
        }
    }

    /// Registers a blocked request of `owner` for deadlock searches;
    /// `None` when the waiter table is full (the request then waits unseen).
    pub fn add_waiter(&mut self, owner: u32, file: u32, t: LockType, q: Range, me: ProcessIdentity) -> Option<u32> {
        let w = if self.free.waiter != NIL {
            let w = self.free.waiter;
            self.free.waiter = self.waiters.get(w as usize)?.next;
            w
        } else if self.free.waiter_high < WAITERS {
            self.free.waiter_high += 1;
            self.free.waiter_high - 1
        } else {
            return None;
        };
        let o = self.owners.get_mut(owner as usize)?;
        let head = o.waiter_head;
        o.waiter_head = w;
        o.nwaiters += 1;
        self.waiters[w as usize] = WaiterSlot {
            owner,
            next: head,
            file,
            ltype: t as u8,
            in_use: 1,
            _pad: [0; 2],
            start: q.start,
            end: q.end,
            pid: me.pid,
            _pad2: 0,
            starttime: me.starttime,
            heartbeat_ns: sys::monotonic_ns(),
        };
        Some(w)
    }

    /// Whether waiter `w` is still the registration of `owner` by `me`
    /// (a repair or a reap may have dropped it); refreshes its heartbeat.
    pub fn refresh_waiter(&mut self, w: u32, owner: u32, me: ProcessIdentity) -> bool {
        match self.waiters.get_mut(w as usize) {
            Some(s) if s.in_use == 1 && s.owner == owner && s.pid == me.pid && s.starttime == me.starttime => {
                s.heartbeat_ns = sys::monotonic_ns();
                true
            }
            _ => false,
        }
    }

    /// Unregisters waiter `w`.
    pub fn remove_waiter(&mut self, w: u32) {
        let Some(owner) = self.waiters.get(w as usize).filter(|s| s.in_use == 1).map(|s| s.owner) else { return };
        let Some(o) = self.owners.get(owner as usize) else { return };
        // Unlink from the owner's list.
        let mut prev = NIL;
        let mut cur = o.waiter_head;
        for _ in 0..WAITERS {
            if cur == w || cur == NIL {
                break;
            }
            prev = cur;
            cur = self.waiters.get(cur as usize).map_or(NIL, |s| s.next);
        }
        let next = self.waiters[w as usize].next;
        if cur == w {
            match self.waiters.get_mut(prev as usize) {
                Some(p) => p.next = next,
                None => self.owners[owner as usize].waiter_head = next,
            }
            let o = &mut self.owners[owner as usize];
            o.nwaiters = o.nwaiters.saturating_sub(1);
        }
        let s = &mut self.waiters[w as usize];
        s.in_use = 0;
        s.next = self.free.waiter;
        self.free.waiter = w;
    }

    /// Unregisters every waiter of `owner`.
    fn remove_waiters_of(&mut self, owner: u32) {
        for _ in 0..WAITERS {
            let head = self.owners.get(owner as usize).map_or(NIL, |o| o.waiter_head);
            if head == NIL || self.waiters.get(head as usize).is_none_or(|s| s.owner != owner || s.in_use != 1) {
                break;
            }
            self.remove_waiter(head);
        }
        if let Some(o) = self.owners.get_mut(owner as usize) {
            o.waiter_head = NIL;
            o.nwaiters = 0;
        }
    }

    /// Whether `requester`, about to wait for `blockers`, closes a cycle in
    /// the wait-for graph.
    pub fn find_cycle(&mut self, requester: u32, blockers: &[u32]) -> Option<Cycle> {
        let waiters = &self.waiters[..(self.free.waiter_high as usize).min(self.waiters.len())];
        let open_file_waits = waiters
            .iter()
            .any(|w| w.in_use == 1 && self.owners.get(w.owner as usize).is_some_and(|o| o.kind == OWNER_OPENFILE));
        let view = GraphView {
            owners: self.owners,
            waiters,
            files: self.files,
            records: self.records,
            now: sys::monotonic_ns(),
            open_file_waits,
        };
        let sc = &mut *self.scratch;
        let mut s = deadlock::Scratch {
            mark: &mut sc.mark,
            parent: &mut sc.parent,
            stack: &mut sc.stack,
            epoch: &mut sc.epoch,
        };
        deadlock::find_cycle(&view, requester, blockers, &mut s)
    }

    /// Checks every structure against every other: free lists, treaps and
    /// their invariants, owner lists, counts, hash chains, waiters and
    /// mappings. The torture and load tests run it after the chaos.
    pub fn verify(&self) -> Result<Census, &'static str> {
        let mut c = Census::default();
        let rh = self.record_high();
        // Records: every live one is in its file's treap and its owner's list.
        let mut free = 0u32;
        let mut r = self.free.record;
        for _ in 0..RECORDS {
            let Some(rec) = self.records.get(r as usize) else { break };
            if rec.state != RECORD_FREE {
                return Err("a live record is on the free list");
            }
            free += 1;
            r = rec.onext;
        }
        if free + (RECORDS - rh as u32) != self.free.nrecords {
            return Err("free record count is wrong");
        }
        c.records = self.records[..rh].iter().filter(|r| r.state == RECORD_LIVE).count() as u32;
        let mut in_trees = 0u32;
        for (i, f) in self.files[..self.file_high()].iter().enumerate() {
            if f.in_use != 1 {
                continue;
            }
            c.files += 1;
            if self.find_file(f.dev, f.ino) != Some(i as u32) {
                return Err("a file is missing from its hash chain");
            }
            let n = lockset::check(self, f.root).map_err(|_| "a lock list breaks its invariants")?;
            if n as u32 != f.nrecords {
                return Err("a file's record count is wrong");
            }
            in_trees += n as u32;
        }
        if in_trees != c.records {
            return Err("a live record is in no lock list");
        }
        let mut in_lists = 0u32;
        let mut maps = 0u32;
        for (i, o) in self.used_owners().iter().enumerate() {
            if o.kind == OWNER_FREE {
                continue;
            }
            c.owners += 1;
            let (mut n, mut prev, mut r) = (0, NIL, o.lock_head);
            while let Some(rec) = self.records.get(r as usize) {
                if rec.owner != i as u32 || rec.state != RECORD_LIVE || rec.oprev != prev || n > RECORDS {
                    return Err("an owner's record list is broken");
                }
                n += 1;
                prev = r;
                r = rec.onext;
            }
            if n != o.nlocks {
                return Err("an owner's lock count is wrong");
            }
            in_lists += n;
            let (mut m, mut x) = (0, o.map_head);
            while let Some(ms) = self.maps.get(x as usize) {
                if ms.owner != i as u32 || ms.in_use != 1 || m > MAPS {
                    return Err("an owner's mapping list is broken");
                }
                m += 1;
                x = ms.next;
            }
            if m != o.nmaps {
                return Err("an owner's mapping count is wrong");
            }
            maps += m;
        }
        if in_lists != c.records {
            return Err("a live record is on no owner's list");
        }
        let file_maps: u32 = self.files[..self.file_high()].iter().filter(|f| f.in_use == 1).map(|f| f.mappings).sum();
        if file_maps != maps {
            return Err("file mapping counts disagree with the mapping lists");
        }
        c.maps = maps;
        c.waiters = self.waiters[..(self.free.waiter_high as usize).min(self.waiters.len())]
            .iter()
            .filter(|w| w.in_use == 1)
            .count() as u32;
        Ok(c)
    }

    /// Whether process `pid` has a fresh blocked request registered.
    pub fn process_is_waiting(&self, pid: i32) -> bool {
        let now = sys::monotonic_ns();
        self.waiters[..(self.free.waiter_high as usize).min(self.waiters.len())]
            .iter()
            .any(|w| w.in_use == 1 && w.pid == pid && now.saturating_sub(w.heartbeat_ns) < WAITER_STALE_NS)
    }

    /// Calls `f` with each fresh registered waiter of `owner`.
    pub fn waiters_of(&self, owner: u32, f: &mut dyn FnMut(u32, &WaiterSlot)) {
        GraphView {
            owners: self.owners,
            waiters: self.waiters,
            files: self.files,
            records: self.records,
            now: sys::monotonic_ns(),
            open_file_waits: true,
        }
        .each_waiter(owner, f);
    }

    /// Drops a registration whose waiting process has died.
    /// A process owner's own waiters are its threads, alive when it is (the
    /// caller checked the owner); an open file's waiters are checked here.
    pub fn drop_dead_waiters(&mut self, owner: u32) -> bool {
        let mut dead = [NIL; 16];
        let mut n = 0;
        let own_pid = self.owners.get(owner as usize).filter(|o| o.kind == OWNER_PROCESS).map(|o| o.pid);
        self.waiters_of(owner, &mut |i, w| {
            if Some(w.pid) == own_pid {
                return;
            }
            let id = ProcessIdentity { pid: w.pid, starttime: w.starttime };
            if n < dead.len() && (!sys::pid_exists(w.pid) || owner::liveness(id) == Liveness::Dead) {
                dead[n] = i;
                n += 1;
            }
        });
        for &w in &dead[..n] {
            self.remove_waiter(w);
        }
        n > 0
    }

    /// Records that `owner` mapped `[addr, addr + len)` of `file`; ENOMEM
    /// when the mapping table is full.
    pub fn add_map(&mut self, owner: u32, file: u32, addr: u64, len: u64) -> Result<(), Errno> {
        let m = if self.free.map != NIL {
            let m = self.free.map;
            self.free.map = self.maps.get(m as usize).ok_or(Errno::NOMEM)?.next;
            m
        } else if self.free.map_high < MAPS {
            self.free.map_high += 1;
            self.free.map_high - 1
        } else {
            return Err(Errno::NOMEM);
        };
        let (Some(o), true) = (self.owners.get_mut(owner as usize), (file as usize) < self.files.len()) else {
            return Err(Errno::NOMEM);
        };
        let head = o.map_head;
        o.map_head = m;
        o.nmaps += 1;
        self.files[file as usize].mappings += 1;
        self.maps[m as usize] = MapSlot { owner, file, next: head, in_use: 1, addr, len };
        Ok(())
    }

    /// Forgets the part of `owner`'s mappings inside `[addr, addr + len)`
    /// (munmap, MAP_FIXED over a mapping, mremap); returns how many mapping
    /// records went. A mapping split in two keeps its whole record when no
    /// slot is free: a mapping wrongly kept only makes lockf refuse, never
    /// lets it lock a mapped file.
    pub fn unmap_range(&mut self, owner: u32, addr: u64, len: u64) -> u32 {
        let end = addr.saturating_add(len);
        let mut removed = 0;
        let mut prev = NIL;
        let mut m = self.owners.get(owner as usize).map_or(NIL, |o| o.map_head);
        for _ in 0..MAPS {
            let Some(slot) = self.maps.get(m as usize) else { break };
            let (next, file, a, b) = (slot.next, slot.file, slot.addr, slot.addr.saturating_add(slot.len));
            if a >= end || b <= addr {
                prev = m;
                m = next;
                continue;
            }
            match (a < addr, b > end) {
                (true, true) => {
                    // The hole is in the middle: keep the left piece here and
                    // record the right piece as a new mapping (it goes on the
                    // list head, behind this walk).
                    if self.add_map(owner, file, end, b - end).is_ok() {
                        self.maps[m as usize].len = addr - a;
                    }
                }
                (true, false) => {
                    self.maps[m as usize].len = addr - a;
                }
                (false, true) => {
                    self.maps[m as usize].addr = end;
                    self.maps[m as usize].len = b - end;
                }
                (false, false) => {
                    match self.maps.get_mut(prev as usize) {
                        Some(p) => p.next = next,
                        None => self.owners[owner as usize].map_head = next,
                    }
                    self.free_map(m, owner, file);
                    removed += 1;
                    m = next;
                    continue;
                }
            }
            prev = m;
            m = next;
        }
        removed
    }

    fn free_map(&mut self, m: u32, owner: u32, file: u32) {
        if let Some(o) = self.owners.get_mut(owner as usize) {
            o.nmaps = o.nmaps.saturating_sub(1);
        }
        if let Some(f) = self.files.get_mut(file as usize) {
            f.mappings = f.mappings.saturating_sub(1);
        }
        let s = &mut self.maps[m as usize];
        s.in_use = 0;
        s.next = self.free.map;
        self.free.map = m;
        self.release_file_if_empty(file);
    }

    /// Forgets every mapping of `owner` (it exec'd or died).
    pub fn drop_maps(&mut self, owner: u32) {
        self.unmap_range(owner, 0, u64::MAX);
        if let Some(o) = self.owners.get_mut(owner as usize) {
            o.map_head = NIL;
            o.nmaps = 0;
        }
    }

    /// Gives `child` a copy of `parent`'s mappings (fork copies them).
    pub fn copy_maps(&mut self, parent: u32, child: u32) -> u32 {
        let mut copied = 0;
        let mut m = self.owners.get(parent as usize).map_or(NIL, |o| o.map_head);
        for _ in 0..MAPS {
            let Some(slot) = self.maps.get(m as usize) else { break };
            let (next, file, addr, len) = (slot.next, slot.file, slot.addr, slot.len);
            if slot.in_use == 1 && self.add_map(child, file, addr, len).is_ok() {
                copied += 1;
            }
            m = next;
        }
        copied
    }

    /// The file of `owner`'s mapping that contains `addr`, if any.
    pub fn mapped_file_at(&self, owner: u32, addr: u64) -> Option<u32> {
        let mut m = self.owners.get(owner as usize).map_or(NIL, |o| o.map_head);
        for _ in 0..MAPS {
            let slot = self.maps.get(m as usize)?;
            if slot.addr <= addr && addr < slot.addr.saturating_add(slot.len) {
                return Some(slot.file);
            }
            m = slot.next;
        }
        None
    }

    /// Whether any live process maps `file` (QNX lockf's mapped-file rule).
    /// Another process's records are checked against what it really maps:
    /// a dead process is reaped, and a process that no longer maps the file
    /// (it exec'd an image without the library, say) loses its records for
    /// it. Returns `Changed` when anything went, since the file slot itself
    /// may then have been freed: the caller looks it up again.
    pub fn file_is_mapped(&mut self, file: u32, me_pid: i32, touched: &mut dyn FnMut(u32)) -> MapCheck {
        let Some(f) = self.files.get(file as usize) else { return MapCheck::Unmapped };
        if f.mappings == 0 {
            return MapCheck::Unmapped;
        }
        let (dev, ino) = (f.dev, f.ino);
        for i in 0..(self.free.map_high as usize).min(self.maps.len()) {
            let (in_use, mfile, owner) = (self.maps[i].in_use, self.maps[i].file, self.maps[i].owner);
            if in_use != 1 || mfile != file {
                continue;
            }
            if self.owner_is_dead(owner, None) {
                let _ = self.reap_owner(owner, touched);
                return MapCheck::Changed;
            }
            let pid = self.owners.get(owner as usize).map_or(0, |o| o.pid);
            if pid != me_pid && owner::maps_file(pid, dev, ino) == Some(false) {
                self.drop_maps_of_file(owner, file);
                return MapCheck::Changed;
            }
        }
        MapCheck::Mapped
    }

    /// Forgets `owner`'s mappings of `file`.
    fn drop_maps_of_file(&mut self, owner: u32, file: u32) {
        let mut prev = NIL;
        let mut m = self.owners.get(owner as usize).map_or(NIL, |o| o.map_head);
        for _ in 0..MAPS {
            let Some(slot) = self.maps.get(m as usize) else { break };
            let next = slot.next;
            if slot.file == file {
                match self.maps.get_mut(prev as usize) {
                    Some(p) => p.next = next,
                    None => self.owners[owner as usize].map_head = next,
                }
                self.free_map(m, owner, file);
            } else {
                prev = m;
            }
            m = next;
        }
    }

    /// Removes every lock of `owner`, in every file, and frees its slot.
    /// Calls `touched` with each file that lost locks.
    pub fn reap_owner(&mut self, owner: u32, touched: &mut dyn FnMut(u32)) -> Result<(), Corrupt> {
        for _ in 0..RECORDS {
            let head = self.owners.get(owner as usize).ok_or(Corrupt)?.lock_head;
            if head == NIL {
                break;
            }
            let file = self.remove_record(head)?;
            touched(file);
            self.release_file_if_empty(file);
        }
        self.remove_waiters_of(owner);
        self.drop_maps(owner);
        if let Some(o) = self.owners.get_mut(owner as usize) {
            o.nlocks = 0;
            o.lock_head = NIL;
        }
        // Reaped owners are dead (or an open file nobody holds).
        self.free_owner_if_idle(owner);
        Ok(())
    }

    /// Rebuilds every derived structure from the record array, then reaps
    /// dead owners. Used after a mutex holder died and when a walk met an
    /// inconsistency. Locks of live owners survive; a lock list that still
    /// breaks its invariants afterwards is dropped rather than trusted.
    pub fn repair(&mut self, touched: &mut dyn FnMut(u32)) {
        // Owners: keep identities, rebuild lists and the free list.
        self.free.owner = NIL;
        self.free.owner_high = self.owner_high() as u32;
        self.free.file_high = self.file_high() as u32;
        self.free.record_high = self.record_high() as u32;
        for i in (0..self.owner_high()).rev() {
            let o = &mut self.owners[i];
            o.lock_head = NIL;
            o.nlocks = 0;
            if o.kind != OWNER_PROCESS && o.kind != OWNER_OPENFILE {
                o.kind = OWNER_FREE;
                o.next_free = self.free.owner;
                self.free.owner = i as u32;
            }
        }
        // Waiters: dropped; live ones register again on their next wake.
        for o in self.owners.iter_mut() {
            o.waiter_head = NIL;
            o.nwaiters = 0;
        }
        self.free.waiter = NIL;
        self.free.waiter_high = 0;
        // Mappings: dropped and rebuilt below from the mapping table.
        for o in self.owners.iter_mut() {
            o.map_head = NIL;
            o.nmaps = 0;
        }
        // Files: keep identities, rebuild chains and the free list.
        self.buckets.fill(NIL);
        self.free.file = NIL;
        for i in (0..self.file_high()).rev() {
            let f = &mut self.files[i];
            f.root = NIL;
            f.nrecords = 0;
            f.mappings = 0;
            if f.in_use == 1 {
                let b = bucket_of(f.dev, f.ino);
                f.next = self.buckets[b];
                self.buckets[b] = i as u32;
            } else {
                f.in_use = 0;
                f.next = self.free.file;
                self.free.file = i as u32;
            }
        }
        // Records: live ones with a valid owner and file go back in.
        self.free.record = NIL;
        self.free.nrecords = RECORDS - self.record_high() as u32;
        for i in (0..self.record_high()).rev() {
            let r = &self.records[i];
            let valid = r.state == RECORD_LIVE
                && LockType::from_raw(r.ltype).is_some()
                && r.start >= 0
                && r.start <= r.end
                && self.owners.get(r.owner as usize).is_some_and(|o| o.kind != OWNER_FREE)
                && self.files.get(r.file as usize).is_some_and(|f| f.in_use == 1);
            let i = i as u32;
            if valid {
                let (owner, file) = (r.owner, r.file);
                let head = self.owners[owner as usize].lock_head;
                {
                    let r = &mut self.records[i as usize];
                    r.onext = head;
                    r.oprev = NIL;
                }
                if let Some(h) = self.records.get_mut(head as usize) {
                    h.oprev = i;
                }
                self.owners[owner as usize].lock_head = i;
                self.owners[owner as usize].nlocks += 1;
                self.files[file as usize].nrecords += 1;
                let mut root = self.files[file as usize].root;
                if tree::insert(self, &mut root, i).is_ok() {
                    self.files[file as usize].root = root;
                }
            } else {
                let head = self.free.record;
                self.records[i as usize] = LockRecord { state: RECORD_FREE, onext: head, ..Default::default() };
                self.free.record = i;
                self.free.nrecords += 1;
            }
        }
        self.relink_maps();
        // The dead holder's half-finished update concerns its own records:
        // reap the dead first, so their debris goes before anything is judged.
        self.reap_dead(touched);
        // A list that still breaks its invariants loses the records of the
        // owners that break them (one owner's overlapping or touching
        // same-type records); other owners' locks are kept.
        for f in 0..self.file_high() as u32 {
            if self.files[f as usize].in_use != 1 {
                continue;
            }
            for _ in 0..OWNERS {
                let root = self.files[f as usize].root;
                let Some(bad) = lockset::first_offender(self, root) else { break };
                let _ = self.remove_owner_in_file(f, bad);
                touched(f);
            }
            if lockset::check(self, self.files[f as usize].root).is_err() {
                self.drop_file_locks(f);
                touched(f);
            }
        }
        for f in 0..self.file_high() as u32 {
            self.release_file_if_empty(f);
        }
        for o in 0..self.owner_high() as u32 {
            self.release_owner_if_idle(o);
        }
    }

    /// Rebuilds owners' mapping lists and files' mapping counts from the
    /// mapping table (repair).
    fn relink_maps(&mut self) {
        self.free.map = NIL;
        let high = (self.free.map_high as usize).min(self.maps.len());
        self.free.map_high = high as u32;
        for i in (0..high).rev() {
            let m = &self.maps[i];
            let valid = m.in_use == 1
                && self.owners.get(m.owner as usize).is_some_and(|o| o.kind == OWNER_PROCESS)
                && self.files.get(m.file as usize).is_some_and(|f| f.in_use == 1);
            if valid {
                let (owner, file) = (m.owner, m.file);
                let o = &mut self.owners[owner as usize];
                self.maps[i].next = o.map_head;
                o.map_head = i as u32;
                o.nmaps += 1;
                self.files[file as usize].mappings += 1;
            } else {
                self.maps[i].in_use = 0;
                self.maps[i].next = self.free.map;
                self.free.map = i as u32;
            }
        }
    }

    fn drop_file_locks(&mut self, file: u32) {
        for i in 0..self.record_high() as u32 {
            if self.records[i as usize].state == RECORD_LIVE && self.records[i as usize].file == file {
                let _ = self.free(i);
            }
        }
        self.files[file as usize].root = NIL;
    }

    /// Reaps every owner whose process has died, and frees idle slots (an
    /// open-file owner abandoned by a cancelled wait holds nothing; its
    /// token, if still on some description, names a past generation).
    pub fn reap_dead(&mut self, touched: &mut dyn FnMut(u32)) {
        for i in 0..self.owner_high() as u32 {
            if self.owner_is_dead(i, None) && self.reap_owner(i, touched).is_err() {
                // A broken owner list: drop the slot; repair rebuilds later.
                self.owners[i as usize].kind = OWNER_FREE;
            }
            self.release_owner_if_idle(i);
        }
    }

    /// Reaps the owners whose pid no longer exists at all: a cheap check
    /// (one `kill(pid, 0)` each) run when a process attaches.
    pub fn reap_vanished(&mut self, touched: &mut dyn FnMut(u32)) {
        for i in 0..self.owner_high() as u32 {
            let o = &self.owners[i as usize];
            if o.kind == OWNER_PROCESS && o.pid > 0 && !sys::pid_exists(o.pid) && self.reap_owner(i, touched).is_err() {
                self.owners[i as usize].kind = OWNER_FREE;
            }
        }
    }

    /// Like `owner_is_dead`, but never trusting an earlier `/proc` check: a
    /// found deadlock must not rest on a process that became a zombie since.
    pub fn owner_is_dead_now(&mut self, i: u32, probe: Option<i32>) -> bool {
        if let Some(o) = self.owners.get_mut(i as usize) {
            o.alive_at_ns = 0;
        }
        self.owner_is_dead(i, probe)
    }

    /// Whether the owner in slot `i` has died: a process that exited, or an
    /// open file whose every descriptor closed. An open file can only be
    /// probed through `probe`, a descriptor of the same file belonging to
    /// another open file description; without one it counts as alive.
    pub fn owner_is_dead(&mut self, i: u32, probe: Option<i32>) -> bool {
        match self.owners.get_mut(i as usize) {
            Some(o) if o.kind == OWNER_PROCESS => {
                if life_says_alive(o) {
                    return false;
                }
                if !sys::pid_exists(o.pid) {
                    return true;
                }
                let now = sys::monotonic_ns();
                if now.saturating_sub(o.alive_at_ns) < LIVENESS_TTL_NS {
                    return false;
                }
                let dead = owner::liveness(ProcessIdentity { pid: o.pid, starttime: o.starttime }) == Liveness::Dead;
                if !dead {
                    o.alive_at_ns = now;
                }
                dead
            }
            Some(o) if o.kind == OWNER_OPENFILE => {
                let Some(fd) = probe else { return false };
                let token = crate::openfile::Token { slot: i, generation: o.generation % crate::openfile::TOKEN_GENS };
                // The full check (a scan of our processes' descriptors) is
                // needed only once the process that took the lock is gone:
                // while it lives, the token is its own. A positive scan is
                // trusted for as long as a process check.
                let now = sys::monotonic_ns();
                let verify = now.saturating_sub(o.alive_at_ns) >= LIVENESS_TTL_NS && !sys::pid_exists(o.pid);
                let alive = crate::openfile::alive(fd, token, verify);
                if alive && verify {
                    o.alive_at_ns = now;
                }
                !alive
            }
            _ => false,
        }
    }
}

/// Whether an owner's life mark is held by a live thread: its futex word
/// (glibc keeps it first in `pthread_mutex_t`: owner tid, plus the kernel's
/// FUTEX_OWNER_DIED bit) names an owner and the kernel has not marked it dead.
/// True proves the process alive; false proves nothing.
fn life_says_alive(o: &OwnerSlot) -> bool {
    // SAFETY: the first 4 bytes of the mutex are its futex word, an aligned
    // u32 in the mapping; we only load it atomically.
    let word = unsafe { &*(&o.life as *const libc::pthread_mutex_t as *const AtomicU32) }.load(Ordering::Acquire);
    word & 0x3fff_ffff != 0 && word & 0x4000_0000 == 0
}

/// The wait-for graph, derived from the registered waiters and the lock
/// lists. An owner waits for the holders of every lock that conflicts with
/// one of its fresh registrations; and, since a lock is released by a
/// process, an owner also waits for whatever blocks the process that took
/// its locks (`OwnerSlot::pid`): an open file whose locker is blocked in
/// fcntl cannot release its flock, and a process blocked in flock cannot
/// release its fcntl locks. So cycles through both kinds of owner are found.
struct GraphView<'a> {
    owners: &'a [OwnerSlot],
    waiters: &'a [WaiterSlot],
    files: &'a [FileSlot],
    records: &'a [LockRecord],
    now: u64,
    /// Whether any registered wait belongs to an open-file owner. Without
    /// one, a process owner's edges come from its own waiter list alone,
    /// and the search is linear in the graph's size.
    open_file_waits: bool,
}

impl GraphView<'_> {
    fn each_waiter(&self, owner: u32, f: &mut dyn FnMut(u32, &WaiterSlot)) {
        let mut w = self.owners.get(owner as usize).map_or(NIL, |o| o.waiter_head);
        for _ in 0..WAITERS {
            let Some(s) = self.waiters.get(w as usize) else { break };
            if s.in_use != 1 || s.owner != owner {
                break;
            }
            if self.now.saturating_sub(s.heartbeat_ns) < WAITER_STALE_NS {
                f(w, s);
            }
            w = s.next;
        }
    }
}

impl GraphView<'_> {
    fn pid_of(&self, owner: u32) -> Option<i32> {
        self.owners.get(owner as usize).filter(|o| o.kind != OWNER_FREE).map(|o| o.pid)
    }

    fn fresh(&self, w: &WaiterSlot) -> bool {
        w.in_use == 1 && self.now.saturating_sub(w.heartbeat_ns) < WAITER_STALE_NS
    }
}

impl GraphView<'_> {
    /// Calls `f` with the owners that block wait `w`.
    fn blockers_of_wait(&self, w: &WaiterSlot, f: &mut dyn FnMut(u32)) {
        let (Some(file), Some(t)) = (self.files.get(w.file as usize), LockType::from_raw(w.ltype)) else { return };
        if w.start < 0 || w.start > w.end {
            return;
        }
        let q = Range { start: w.start, end: w.end };
        let _ = lockset::for_each_conflict(self.records, file.root, w.owner, t, q, &mut |_, r| {
            f(r.owner);
            true
        });
    }
}

impl WaitGraph for GraphView<'_> {
    fn blockers_of(&self, owner: u32, f: &mut dyn FnMut(u32)) {
        let is_process = self.owners.get(owner as usize).is_some_and(|o| o.kind == OWNER_PROCESS);
        if is_process && !self.open_file_waits {
            self.each_waiter(owner, &mut |_, w| self.blockers_of_wait(w, f));
            return;
        }
        let pid = self.pid_of(owner);
        for w in self.waiters.iter().filter(|w| self.fresh(w) && (w.owner == owner || Some(w.pid) == pid)) {
            self.blockers_of_wait(w, f);
        }
    }

    fn is_requester(&self, owner: u32, requester: u32) -> bool {
        owner == requester || (self.pid_of(owner).is_some() && self.pid_of(owner) == self.pid_of(requester))
    }
}

/// What `Tables::verify` counted in a consistent registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub records: u32,
    pub files: u32,
    pub owners: u32,
    pub waiters: u32,
    pub maps: u32,
}

/// What `Tables::file_is_mapped` found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MapCheck {
    Mapped,
    Unmapped,
    /// Stale records went; look the file up again.
    Changed,
}

/// Where the registry stands for this process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Attach {
    /// Not attached yet.
    None = 0,
    /// Another thread is attaching.
    Busy = 1,
    Attached = 2,
    /// Refused (the message was printed): locks fall back to the kernel.
    Fallback = 3,
}

static STATE: AtomicU8 = AtomicU8::new(Attach::None as u8);
static BASE: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

/// The registry, attached on first use.
pub struct Registry {
    base: *mut u8,
}

// SAFETY: the segment is shared memory guarded by a process-shared mutex;
// `Registry` only holds its (immutable) address.
unsafe impl Sync for Registry {}
// SAFETY: as above.
unsafe impl Send for Registry {}

/// Outcome of trying to reach the registry.
pub enum Reach {
    Ready(Registry),
    /// No segment exists and `create` was false: nothing is locked anywhere.
    Absent,
    /// The registry is refused; use kernel locks.
    Fallback,
}

/// Reaches the registry, attaching (and with `create`, creating) it first.
pub fn reach(create: bool) -> Reach {
    loop {
        match STATE.load(Ordering::Acquire) {
            s if s == Attach::Attached as u8 => return Reach::Ready(Registry { base: BASE.load(Ordering::Acquire) }),
            s if s == Attach::Fallback as u8 => return Reach::Fallback,
            s if s == Attach::Busy as u8 => core::hint::spin_loop(),
            _ => {
                if STATE
                    .compare_exchange(Attach::None as u8, Attach::Busy as u8, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    continue;
                }
                let mut buf = [0u8; 256];
                let verdict =
                    shm::path_for(crate::config::registry_name(), &mut buf).and_then(|p| shm::attach(p, create));
                match verdict {
                    Ok(seg) => {
                        BASE.store(seg.base, Ordering::Release);
                        STATE.store(Attach::Attached as u8, Ordering::Release);
                        Registry { base: seg.base }.reap_vanished();
                    }
                    Err(shm::Refusal::Io(e)) if e == Errno::NOENT && !create => {
                        STATE.store(Attach::None as u8, Ordering::Release);
                        return Reach::Absent;
                    }
                    Err(refusal) => {
                        crate::trace::refusal_message(&buf, refusal);
                        STATE.store(Attach::Fallback as u8, Ordering::Release);
                    }
                }
            }
        }
    }
}

/// Attaches the named registry without creating it (for tools such as
/// `qnxcompat-check`, which run without the library preloaded).
pub fn attach_named(name: &[u8]) -> Result<Registry, shm::Refusal> {
    let mut buf = [0u8; 256];
    let path = shm::path_for(name, &mut buf)?;
    shm::attach(path, false).map(|seg| Registry { base: seg.base })
}

/// Whether this process has attached (cheap; no syscall).
pub fn attached() -> Option<Registry> {
    if STATE.load(Ordering::Acquire) == Attach::Attached as u8 {
        Some(Registry { base: BASE.load(Ordering::Acquire) })
    } else {
        None
    }
}

impl Registry {
    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: the header is at offset 0 of a live mapping; we take the
        // field's address without creating a reference to the header.
        unsafe { &raw mut (*(self.base as *mut Header)).mutex }
    }

    fn header(&self) -> &Header {
        // SAFETY: the header lives as long as the mapping (forever); the
        // fields read through this reference are atomics or constants.
        unsafe { &*(self.base as *const Header) }
    }

    /// Takes the registry mutex, repairing the segment if its last holder
    /// died. ENOLCK if the mutex is unusable or this thread already holds it
    /// (a signal handler interrupted a registry call).
    pub fn lock(&self) -> Result<Guard, Errno> {
        if crate::local::in_registry() {
            return Err(Errno::NOLCK);
        }
        let r = self.lock_mutex();
        let mut guard = match r {
            0 | libc::EOWNERDEAD => Guard { base: self.base, mutex: self.mutex(), wake: WakeSet::default() },
            _ => return Err(Errno::NOLCK),
        };
        crate::local::set_in_registry(true);
        crate::fault::point(crate::fault::Point::HoldingMutex);
        if r == libc::EOWNERDEAD {
            self.header().repairs.fetch_add(1, Ordering::Relaxed);
            let (mut t, wake) = guard.split();
            let mut touched = WakeSet::default();
            t.repair(&mut |f| touched.add(f));
            wake.absorb(t.files, &touched);
            // SAFETY: we hold the (inconsistent) mutex and have repaired it.
            unsafe { libc::pthread_mutex_consistent(self.mutex()) };
        }
        Ok(guard)
    }

    /// Reaps owners whose processes are gone (on attach).
    fn reap_vanished(&self) {
        if let Ok(mut g) = self.lock() {
            let (mut t, wake) = g.split();
            let mut touched = WakeSet::default();
            t.reap_vanished(&mut |f| touched.add(f));
            wake.absorb(t.files, &touched);
        }
    }

    /// Takes the registry mutex in slices of at most 50 ms. When an owner
    /// dies, the kernel wakes one waiter of the robust mutex; if that waiter
    /// is killed too, the wake is lost and the others would sleep forever
    /// on a free mutex. A bounded wait turns a lost wake into one slice.
    fn lock_mutex(&self) -> i32 {
        loop {
            let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: `now` is a valid timespec to fill.
            unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
            let mut until = libc::timespec { tv_sec: now.tv_sec, tv_nsec: now.tv_nsec + 50_000_000 };
            if until.tv_nsec >= 1_000_000_000 {
                until.tv_sec += 1;
                until.tv_nsec -= 1_000_000_000;
            }
            // SAFETY: the mutex was initialised by the segment's creator and
            // stays at this address; `until` is a valid absolute time.
            let r = unsafe { libc::pthread_mutex_timedlock(self.mutex(), &until) };
            if r != libc::ETIMEDOUT {
                return r;
            }
        }
    }

    /// Unmaps a registry attached with `attach_named` (tools only: the
    /// process's own registry stays mapped for its lifetime).
    ///
    /// # Safety
    /// No guard or reference into this mapping may outlive the call.
    pub unsafe fn detach(self) {
        // SAFETY: per the contract.
        unsafe { sys::unmap(self.base, OFFSETS.size) };
    }

    /// The futex word of file slot `i` (it lives as long as the mapping).
    pub fn wake_word(&self, i: u32) -> &'static AtomicU32 {
        let i = i.min(FILES - 1) as usize;
        // SAFETY: the slot lies within the mapping, which is never unmapped;
        // only the atomic field is referenced.
        unsafe { &(*(self.base.add(OFFSETS.files) as *const FileSlot).add(i)).wake }
    }
}

/// Files whose waiters to wake once the mutex is dropped.
#[derive(Default)]
pub struct WakeSet {
    files: [u32; 8],
    n: usize,
    all: bool,
}

impl WakeSet {
    /// Marks file `f`'s waiters for waking: its futex word changes now,
    /// under the mutex, so a waiter that read the old value never sleeps
    /// through; the wake itself happens when the guard drops.
    pub fn notify(&mut self, files: &[FileSlot], f: u32) {
        if let Some(slot) = files.get(f as usize) {
            slot.wake.fetch_add(1, Ordering::Release);
            if slot.sleepers > 0 {
                self.add(f);
            }
        }
    }

    /// Notifies every file collected in `touched` (see `notify`).
    pub fn absorb(&mut self, files: &[FileSlot], touched: &WakeSet) {
        for &f in &touched.files[..touched.n] {
            self.notify(files, f);
        }
        self.all |= touched.all;
    }

    /// Collects `f` without notifying it yet (for use inside a walk that
    /// borrows the tables).
    pub fn add(&mut self, f: u32) {
        if self.files[..self.n].contains(&f) {
            return;
        }
        if self.n == self.files.len() {
            self.all = true;
        } else {
            self.files[self.n] = f;
            self.n += 1;
        }
    }
}

/// The held registry mutex.
pub struct Guard {
    base: *mut u8,
    mutex: *mut libc::pthread_mutex_t,
    wake: WakeSet,
}

impl Guard {
    /// The tables and the wake set, borrowed for as long as the guard.
    pub fn split(&mut self) -> (Tables<'_>, &mut WakeSet) {
        // SAFETY: see `tables`; the wake set is process-local.
        let t = unsafe { tables_at(self.base) };
        (t, &mut self.wake)
    }

    /// The tables, borrowed for as long as the guard.
    pub fn tables(&mut self) -> Tables<'_> {
        // SAFETY: we hold the mutex (see `tables_at`).
        unsafe { tables_at(self.base) }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.wake.all {
            for i in 0..FILES {
                // SAFETY: as in `tables`, but only the atomic field is touched.
                let f = unsafe { &*(self.base.add(OFFSETS.files) as *const FileSlot).add(i as usize) };
                f.wake.fetch_add(1, Ordering::Release);
            }
        }
        // SAFETY: this guard holds the mutex.
        unsafe { libc::pthread_mutex_unlock(self.mutex) };
        crate::local::set_in_registry(false);
        let reg = Registry { base: self.base };
        if self.wake.all {
            for i in 0..FILES {
                sys::futex_wake_all(reg.wake_word(i));
            }
        } else {
            for &f in &self.wake.files[..self.wake.n] {
                sys::futex_wake_all(reg.wake_word(f));
            }
        }
        crate::local::run_deferred_releases();
    }
}
