//! Lock records: a file's treap through the range engine, and an owner's
//! record list.

use super::layout::*;
use super::*;

impl Tables<'_> {
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

    /// Whether `owner` could take `t` on `q` in `file` now, without taking
    /// it: `Conflict` with the first conflicting record, `NoSpace` when
    /// `set` would refuse for room. (The kernel mirror takes the kernel
    /// lock between this check and the `set`, under one hold of the mutex.)
    pub fn lock_check(&mut self, file: u32, owner: u32, t: LockType, q: Range) -> Result<(), SetError> {
        let root = self.files.get(file as usize).ok_or(SetError::Corrupt)?.root;
        if let Some(c) = lockset::first_conflict(self, root, owner, t, q)? {
            return Err(SetError::Conflict(c));
        }
        if !self.can_alloc(2, false) {
            return Err(SetError::NoSpace);
        }
        Ok(())
    }

    /// Calls `f` with the owner of every record in `file` of exactly type
    /// `t` and range `q`.
    pub fn for_each_exact(&self, file: u32, t: LockType, q: Range, f: &mut dyn FnMut(u32)) -> Result<(), Corrupt> {
        let root = self.files.get(file as usize).ok_or(Corrupt)?.root;
        tree::for_each_overlap(self, root, q, &mut |_, n| {
            if n.start == q.start && n.end == q.end && n.ltype == t as u8 {
                f(n.owner);
            }
            true
        })
    }

    /// Calls `f` with each of `owner`'s locks in `file` overlapping `q`,
    /// clipped to `q`, in order.
    pub fn for_each_own_in(
        &self,
        file: u32,
        owner: u32,
        q: Range,
        f: &mut dyn FnMut(LockType, Range),
    ) -> Result<(), Corrupt> {
        let root = self.files.get(file as usize).ok_or(Corrupt)?.root;
        tree::for_each_overlap(self, root, q, &mut |_, n| {
            if n.owner == owner
                && let Some(t) = LockType::from_raw(n.ltype)
            {
                f(t, Range::new(n.start.max(q.start), n.end.min(q.end)));
            }
            true
        })
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
        let f = self.files.get(file as usize).ok_or(Corrupt)?;
        let (mut root, n) = (f.root, f.nrecords);
        let r = lockset::remove_owner(self, &mut root, owner, n);
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
}
