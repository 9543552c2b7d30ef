//! Registered waiters and the wait-for graph derived from them.
//!
//! # Safety
//! The deadlock search's scratch is a process-local mapping turned into
//! slices while the registry mutex is held (`search_scratch`).
#![allow(unsafe_code)]

use super::layout::*;
use super::*;

impl Tables<'_> {
    /// Registers a blocked request of `owner`, made by the process owner
    /// `proc_` (nonce `nonce`), for deadlock searches; returns the slot and
    /// its generation, or `None` when the waiter table is full.
    pub fn add_waiter(
        &mut self,
        owner: u32,
        file: u32,
        t: LockType,
        q: Range,
        proc_: u32,
        nonce: u64,
    ) -> Option<(u32, u32)> {
        let waiters = &self.waiters;
        let f = &mut *self.free;
        let w = slab_take(&mut f.waiter, &mut f.waiter_high, self.map, Table::Waiters, |i| {
            waiters.get(i as usize).map(|w| w.next)
        })?;
        let o = self.owners.get_mut(owner as usize)?;
        let head = o.waiter_head;
        o.waiter_head = w;
        o.nwaiters += 1;
        if o.kind == OWNER_OPENFILE {
            self.free.openfile_waiters += 1;
        }
        if let Some(f) = self.files.get_mut(file as usize) {
            f.waiters += 1;
        }
        let generation = self.waiters[w as usize].generation.wrapping_add(1);
        self.free.graph_epoch = self.free.graph_epoch.wrapping_add(1);
        self.waiters[w as usize] = WaiterSlot {
            owner,
            next: head,
            file,
            ltype: t as u8,
            in_use: 1,
            _pad: [0; 2],
            start: q.start,
            end: q.end,
            proc_,
            generation,
            nonce,
            heartbeat_ns: sys::monotonic_ns(),
        };
        Some((w, generation))
    }

    /// Whether waiter `w` of generation `generation` is still the
    /// registration of `owner` (a repair or a reap may have dropped it);
    /// refreshes its heartbeat.
    pub fn refresh_waiter(&mut self, w: u32, generation: u32, owner: u32) -> bool {
        match self.waiters.get_mut(w as usize) {
            Some(s) if s.in_use == 1 && s.owner == owner && s.generation == generation => {
                s.heartbeat_ns = sys::monotonic_ns();
                true
            }
            _ => false,
        }
    }

    /// Unregisters waiter `w` if it still is generation `generation`.
    pub fn remove_waiter_if(&mut self, w: u32, generation: u32) {
        if self.waiters.get(w as usize).is_some_and(|s| s.in_use == 1 && s.generation == generation) {
            self.remove_waiter(w);
        }
    }

    /// Unregisters waiter `w`.
    pub fn remove_waiter(&mut self, w: u32) {
        let Some(owner) = self.waiters.get(w as usize).filter(|s| s.in_use == 1).map(|s| s.owner) else { return };
        let Some(o) = self.owners.get_mut(owner as usize) else { return };
        if slab_unlink(&mut self.waiters, &mut o.waiter_head, w, |s: &mut WaiterSlot| &mut s.next) {
            o.nwaiters = o.nwaiters.saturating_sub(1);
            if o.kind == OWNER_OPENFILE {
                self.free.openfile_waiters = self.free.openfile_waiters.saturating_sub(1);
            }
        }
        let file = self.waiters[w as usize].file;
        self.free.graph_epoch = self.free.graph_epoch.wrapping_add(1);
        if let Some(f) = self.files.get_mut(file as usize) {
            f.waiters = f.waiters.saturating_sub(1);
        }
        let s = &mut self.waiters[w as usize];
        s.in_use = 0;
        s.next = self.free.waiter;
        self.free.waiter = w;
        self.release_file_if_empty(file);
    }

    /// Unregisters every waiter of `owner`.
    pub(super) fn remove_waiters_of(&mut self, owner: u32) {
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
    pub fn find_cycle(&mut self, requester: u32, file: u32, t: LockType, q: Range) -> Option<Cycle> {
        let root = self.files.get(file as usize).map_or(NIL, |f| f.root);
        let high = self.waiter_high();
        let open_file_waits = self.free.openfile_waiters > 0;
        let view = GraphView {
            owners: &self.owners,
            waiters: &self.waiters,
            waiter_high: high,
            files: &self.files,
            records: &self.records,
            now: sys::monotonic_ns(),
            open_file_waits,
        };
        // The search's marks live in this process (the registry mutex makes
        // their user unique): mapped on the first search, 12 bytes an owner.
        let sc = search_scratch()?;
        let records = &self.records;
        deadlock::find_cycle_from(
            &view,
            requester,
            &mut |f| {
                let _ = lockset::for_each_conflict(records, root, requester, t, q, &mut |_, r| {
                    f(r.owner);
                    true
                });
            },
            &mut deadlock::Scratch { mark: sc.0, parent: sc.1, stack: sc.2, epoch: sc.3 },
        )
    }

    /// How many blocked requests (each one a blocked thread) a process with
    /// pid `pid` has registered.
    pub fn waiting_threads(&self, pid: i32) -> u32 {
        let now = sys::monotonic_ns();
        self.waiters
            .iter_to(self.waiter_high())
            .filter(|w| {
                w.in_use == 1
                    && now.saturating_sub(w.heartbeat_ns) < WAITER_STALE_NS
                    && self.owners.get(w.proc_ as usize).is_some_and(|o| o.kind == OWNER_PROCESS && o.pid == pid)
            })
            .count() as u32
    }

    /// Calls `f` with each fresh registered waiter of `owner`.
    pub fn waiters_of(&self, owner: u32, f: &mut dyn FnMut(u32, &WaiterSlot)) {
        GraphView {
            owners: &self.owners,
            waiters: &self.waiters,
            waiter_high: self.waiter_high(),
            files: &self.files,
            records: &self.records,
            now: sys::monotonic_ns(),
            open_file_waits: true,
        }
        .each_waiter(owner, f);
    }

    /// The process owners whose waits keep `owner` waiting: itself for a
    /// process, the processes that registered its waits for an open file.
    pub fn waiting_processes(&self, owner: u32, f: &mut dyn FnMut(u32)) {
        match self.owners.get(owner as usize) {
            Some(o) if o.kind == OWNER_PROCESS => f(owner),
            Some(_) => self.waiters_of(owner, &mut |_, w| f(w.proc_)),
            None => {}
        }
    }
}

/// The wait-for graph, derived from the registered waiters and the lock
/// lists. An owner waits for the holders of every lock that conflicts with
/// one of its fresh registrations; and, since a lock is released by a
/// process, an owner also waits for whatever blocks the process that took
/// its locks (`OwnerSlot::locker`): an open file whose locker is blocked in
/// fcntl cannot release its flock, and a process blocked in flock cannot
/// release its fcntl locks. So cycles through both kinds of owner are found.
pub(super) struct GraphView<'a> {
    pub(super) owners: &'a Slab<'a, OwnerSlot>,
    pub(super) waiters: &'a Slab<'a, WaiterSlot>,
    /// The waiter slots ever used.
    pub(super) waiter_high: usize,
    pub(super) files: &'a Slab<'a, FileSlot>,
    pub(super) records: &'a Slab<'a, LockRecord>,
    pub(super) now: u64,
    /// Whether any registered wait belongs to an open-file owner. Without
    /// one, a process owner's edges come from its own waiter list alone,
    /// and the search is linear in the graph's size.
    pub(super) open_file_waits: bool,
}

impl GraphView<'_> {
    pub(super) fn each_waiter(&self, owner: u32, f: &mut dyn FnMut(u32, &WaiterSlot)) {
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
    /// The process owner that releases `owner`'s locks: itself for a
    /// process, the process that locked through it for an open file.
    fn locker_of(&self, owner: u32) -> Option<u32> {
        self.owners.get(owner as usize).filter(|o| o.kind != OWNER_FREE && o.locker != NIL).map(|o| o.locker)
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
        let locker = self.locker_of(owner);
        for w in self
            .waiters
            .iter_to(self.waiter_high)
            .filter(|w| self.fresh(w) && (w.owner == owner || Some(w.proc_) == locker))
        {
            self.blockers_of_wait(w, f);
        }
    }

    fn is_requester(&self, owner: u32, requester: u32) -> bool {
        owner == requester || (self.locker_of(owner).is_some() && self.locker_of(owner) == self.locker_of(requester))
    }
}

/// The deadlock search's marks: mark, parent and stack, one entry per owner
/// slot, and the epoch. Process-local (mapped on first use, never freed);
/// used only under the registry mutex, which makes its user unique.
#[allow(clippy::type_complexity)]
fn search_scratch() -> Option<(&'static mut [u32], &'static mut [u32], &'static mut [u32], &'static mut u32)> {
    use core::sync::atomic::AtomicPtr;
    static SCRATCH: AtomicPtr<u32> = AtomicPtr::new(core::ptr::null_mut());
    let n = OWNERS as usize;
    let mut p = SCRATCH.load(Ordering::Acquire);
    if p.is_null() {
        p = sys::map_anon((3 * n + 1) * 4).ok()? as *mut u32;
        SCRATCH.store(p, Ordering::Release);
    }
    // SAFETY: `p` maps 3n + 1 zeroed u32s for good; the registry mutex is
    // held by this thread, so no other reference into them is live.
    unsafe {
        Some((
            core::slice::from_raw_parts_mut(p, n),
            core::slice::from_raw_parts_mut(p.add(n), n),
            core::slice::from_raw_parts_mut(p.add(2 * n), n),
            &mut *p.add(3 * n),
        ))
    }
}
