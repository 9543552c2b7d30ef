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
        // Appended to the file's waiters: picks go in arrival order.
        let tail = match self.files.get_mut(file as usize) {
            Some(f) => {
                f.waiters += 1;
                let tail = f.wtail;
                f.wtail = w;
                if tail == NIL {
                    f.whead = w;
                }
                tail
            }
            None => NIL,
        };
        if let Some(p) = self.waiters.get_mut(tail as usize) {
            p.fnext = w;
        }
        let generation = self.waiters[w as usize].generation.wrapping_add(1);
        // A thread of the slot's last registration may still sleep on the
        // word: it moves on, so that sleep ends at its next wake-up check.
        let word = self.waiters[w as usize].wake.load(Ordering::Relaxed).wrapping_add(1);
        self.free.graph_epoch = self.free.graph_epoch.wrapping_add(1);
        self.waiters[w as usize] = WaiterSlot {
            owner,
            next: head,
            file,
            ltype: t as u8,
            in_use: 1,
            sleeping: 0,
            picked: 0,
            start: q.start,
            end: q.end,
            proc_,
            generation,
            nonce,
            heartbeat_ns: sys::monotonic_ns(),
            wake: AtomicU32::new(word),
            fnext: NIL,
            fprev: tail,
            _pad: 0,
        };
        Some((w, generation))
    }

    /// The futex word waiter `w` sleeps on, marked asleep: called under the
    /// mutex just before the sleep, with the word's value to sleep on. A
    /// pick after this changes the word, so the sleep cannot miss it.
    pub fn waiter_sleeps(&mut self, w: u32, generation: u32) -> Option<u32> {
        let s = self.waiters.get_mut(w as usize).filter(|s| s.in_use == 1 && s.generation == generation)?;
        s.sleeping = 1;
        s.picked = 0;
        Some(s.wake.load(Ordering::Acquire))
    }

    /// Waiter `w` is awake again (its next pass, under the mutex).
    pub fn waiter_woke(&mut self, w: u32, generation: u32) {
        if let Some(s) = self.waiters.get_mut(w as usize).filter(|s| s.in_use == 1 && s.generation == generation) {
            s.sleeping = 0;
        }
    }

    /// Picks the waiters of `file` that its lock list now grants, in
    /// arrival order, each unless it conflicts with one picked before it:
    /// one writer, or every compatible reader, or every waiter of a range
    /// that is free, never the crowd behind a picked writer. A picked
    /// waiter's word changes (under the mutex) and `wake` is called for
    /// those asleep, to wake once the mutex is dropped.
    ///
    /// No lost wake-up: a waiter left asleep conflicts with a picked one,
    /// which either takes the lock (and wakes the next on its release),
    /// leaves without it (and passes the wake on, `remove_waiter_if`), or
    /// meets a lock taken meanwhile and sleeps again (whose release picks
    /// again). A picked waiter killed before it runs leaves the others to
    /// their wait slices, as a SIGKILLed holder does.
    pub fn pick_waiters(&mut self, file: u32, wake: &mut dyn FnMut(u32)) {
        let Some(f) = self.files.get(file as usize).filter(|f| f.in_use == 1) else { return };
        let mut w = f.whead;
        // What was picked, for the conflict test against later waiters;
        // past its size every waiter the lock list grants is picked too (a
        // superset: waking too many is safe).
        let mut picked = [(NIL, LockType::Read, Range::WHOLE); 32];
        let mut n = 0;
        let mut steps = 0usize;
        while w != NIL && steps <= WAITERS as usize {
            steps += 1;
            let Some(s) = self.waiters.get(w as usize).filter(|s| s.in_use == 1 && s.file == file) else { break };
            let next = s.fnext;
            let (owner, t, q) =
                (s.owner, LockType::from_raw(s.ltype).unwrap_or(LockType::Write), Range { start: s.start, end: s.end });
            if s.picked == 1 && s.sleeping == 0 {
                // Picked before and not asleep again yet: it looks for
                // itself at its next pass, and stands for a pick here (no
                // wake-up, no look-up: a crowd of 10,000 freed at once
                // costs each later release a walk, not a wake per waiter).
                if n < picked.len() {
                    picked[n] = (owner, t, q);
                    n += 1;
                }
                w = next;
                continue;
            }
            let behind_pick =
                picked[..n].iter().any(|&(o, pt, pq)| o != owner && pq.overlaps(q) && pt.conflicts_with(t));
            // A broken list (Err) picks: the waiter finds out for itself.
            if !behind_pick && !matches!(self.first_conflict(file, owner, t, q), Ok(Some(_))) {
                if n < picked.len() {
                    picked[n] = (owner, t, q);
                    n += 1;
                }
                let s = &mut self.waiters[w as usize];
                s.picked = 1;
                s.wake.fetch_add(1, Ordering::Release);
                if s.sleeping == 1 {
                    // Awake from here on, as far as picks go: one wake-up.
                    s.sleeping = 0;
                    wake(w);
                }
            }
            w = next;
        }
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
    /// `granted`: its call took the lock; otherwise a pick it had is passed
    /// on to the file's next waiters.
    pub fn remove_waiter_if(&mut self, w: u32, generation: u32, granted: bool) {
        if self.waiters.get(w as usize).is_some_and(|s| s.in_use == 1 && s.generation == generation) {
            self.drop_waiter(w, !granted);
        }
    }

    /// Picks again among `file`'s waiters, waking them at once (the mutex
    /// held: this is the rare path of a picked waiter that left without the
    /// lock, or was dropped).
    fn pass_on(&mut self, file: u32) {
        let map = self.map;
        self.pick_waiters(file, &mut |w| wake_waiter(map, w));
    }

    /// Unregisters waiter `w`, whose call did not take the lock (a reap, a
    /// stale registration): a pick it had is passed on.
    pub fn remove_waiter(&mut self, w: u32) {
        self.drop_waiter(w, true);
    }

    fn drop_waiter(&mut self, w: u32, pass: bool) {
        let Some((owner, file, picked)) =
            self.waiters.get(w as usize).filter(|s| s.in_use == 1).map(|s| (s.owner, s.file, s.picked == 1))
        else {
            return;
        };
        self.unlink_file_waiter(w);
        self.drop_registration(w, owner);
        if pass && picked {
            self.pass_on(file);
        }
    }

    fn drop_registration(&mut self, w: u32, owner: u32) {
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

    /// Takes waiter `w` out of its file's arrival list. A sleeper is woken:
    /// its registration is gone (a reap or a stale drop), so it must look
    /// again.
    fn unlink_file_waiter(&mut self, w: u32) {
        let Some(s) = self.waiters.get(w as usize) else { return };
        let (file, next, prev, asleep) = (s.file, s.fnext, s.fprev, s.sleeping == 1);
        if asleep {
            s.wake.fetch_add(1, Ordering::Release);
            sys::futex_wake_all(&s.wake);
        }
        let linked = |x: &WaiterSlot| x.in_use == 1 && x.file == file;
        match self.waiters.get_mut(prev as usize).filter(|p| linked(p) && p.fnext == w) {
            Some(p) => p.fnext = next,
            None => {
                if let Some(f) = self.files.get_mut(file as usize).filter(|f| f.whead == w) {
                    f.whead = next;
                }
            }
        }
        match self.waiters.get_mut(next as usize).filter(|n| linked(n) && n.fprev == w) {
            Some(n) => n.fprev = prev,
            None => {
                if let Some(f) = self.files.get_mut(file as usize).filter(|f| f.wtail == w) {
                    f.wtail = prev;
                }
            }
        }
        let s = &mut self.waiters[w as usize];
        s.fnext = NIL;
        s.fprev = NIL;
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

/// The futex word of waiter slot `w` (it lives as long as the process).
pub fn waiter_word(map: &'static Mapping, w: u32) -> Option<&'static AtomicU32> {
    let p = map.slot_ptr(Table::Waiters, w as usize)?;
    // SAFETY: the slot exists and is mapped for good; only its atomic word
    // is referenced.
    Some(unsafe { &(*(p as *const WaiterSlot)).wake })
}

/// Wakes the thread asleep on waiter slot `w`'s word, if any.
pub fn wake_waiter(map: &'static Mapping, w: u32) {
    if let Some(word) = waiter_word(map, w) {
        sys::futex_wake_all(word);
    }
}
