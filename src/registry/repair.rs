//! Repair after a mutex holder died or a walk met an inconsistency.

use super::layout::*;
use super::*;

impl Tables<'_> {
    /// Rebuilds every derived structure from the record array. Used after a
    /// mutex holder died and when a walk met an inconsistency. It decides
    /// nothing about liveness (no probe runs under the mutex): dead owners
    /// are reaped later, when a request meets their locks. An owner whose
    /// records a half-finished update left overlapping is normalised, not
    /// dropped: it keeps, byte by byte, the strongest lock any of its
    /// records gave it, so the union of "before" and "after" survives (both
    /// were free of conflicts with everyone else, so the union is too). Its
    /// open file may be shared with live processes that believe they hold it.
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
        // Waiters: dropped; live ones register again on their next wake,
        // which is now (each sleeps on its own word).
        for w in self.waiters.iter_mut_to(self.free.waiter_high as usize) {
            w.wake.fetch_add(1, Ordering::Release);
            if w.in_use == 1 && w.sleeping == 1 {
                sys::futex_wake_all(&w.wake);
            }
            w.in_use = 0;
            w.fnext = NIL;
            w.fprev = NIL;
        }
        let owner_high = self.owner_high();
        for o in self.owners.iter_mut_to(owner_high) {
            o.waiter_head = NIL;
            o.nwaiters = 0;
        }
        self.free.waiter = NIL;
        self.free.waiter_high = 0;
        self.free.openfile_waiters = 0;
        // Mappings: dropped and rebuilt below from the mapping table.
        for o in self.owners.iter_mut_to(owner_high) {
            o.map_head = NIL;
            o.nmaps = 0;
        }
        // Files: keep identities, rebuild chains and the free list.
        self.clear_buckets();
        self.free.file = NIL;
        self.free.files_in_use = 0;
        for i in (0..self.file_high()).rev() {
            let (dev, ino, in_use) = {
                let f = &mut self.files[i];
                f.root = NIL;
                f.nrecords = 0;
                f.mappings = 0;
                f.waiters = 0;
                f.whead = NIL;
                f.wtail = NIL;
                (f.dev, f.ino, f.in_use == 1)
            };
            if in_use {
                let b = self.bucket_of(dev, ino);
                let head = self.buckets[b];
                self.files[i].next = head;
                self.buckets[b] = i as u32;
                self.free.files_in_use += 1;
            } else {
                let f = &mut self.files[i];
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
        for f in 0..self.file_high() as u32 {
            if self.files[f as usize].in_use != 1 {
                continue;
            }
            if self.normalise(f) {
                touched(f);
            }
            if lockset::check(self, self.files[f as usize].root).is_err() {
                // The treap itself is beyond repair: last resort.
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

    /// Re-applies every record of `file` that clashes with another record
    /// of its owner (overlap, or same-type contact): writes first, then
    /// reads, so each byte keeps the strongest type it had. Returns whether
    /// anything changed.
    pub(super) fn normalise(&mut self, file: u32) -> bool {
        let mut changed = false;
        for _ in 0..RECORDS {
            let root = self.files[file as usize].root;
            let Some(i) = lockset::first_offending_record(self, root) else { break };
            let (owner, ltype, range) = {
                let r = &self.records[i as usize];
                (r.owner, LockType::from_raw(r.ltype), r.range())
            };
            changed = true;
            if self.remove_record(i).is_err() {
                break;
            }
            if let Some(t) = ltype {
                // A conflict with another owner cannot arise from a union of
                // two conflict-free states; if it does, the record goes.
                let _ = self.set(file, owner, Request::Lock(t), range);
            }
        }
        changed
    }

    pub(super) fn drop_file_locks(&mut self, file: u32) {
        for i in 0..self.record_high() as u32 {
            if self.records[i as usize].state == RECORD_LIVE && self.records[i as usize].file == file {
                let _ = self.free(i);
            }
        }
        self.files[file as usize].root = NIL;
    }
}
