//! The consistency check behind `qnxcompat_verify()` and debug builds.

use super::layout::*;
use super::*;

impl Tables<'_> {
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
        c.records = self.records.iter_to(rh).filter(|r| r.state == RECORD_LIVE).count() as u32;
        let mut in_trees = 0u32;
        for (i, f) in self.files.iter_to(self.file_high()).enumerate() {
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
        for (i, o) in self.used_owners().enumerate() {
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
        let file_maps: u32 = self.files.iter_to(self.file_high()).filter(|f| f.in_use == 1).map(|f| f.mappings).sum();
        if file_maps != maps {
            return Err("file mapping counts disagree with the mapping lists");
        }
        c.maps = maps;
        c.waiters = self.waiters.iter_to(self.waiter_high()).filter(|w| w.in_use == 1).count() as u32;
        // Waiters: each file's arrival list holds exactly its registered
        // waiters, linked both ways.
        let mut listed = 0u32;
        for (i, f) in self.files.iter_to(self.file_high()).enumerate() {
            if f.in_use != 1 {
                continue;
            }
            let (mut n, mut prev, mut w) = (0u32, NIL, f.whead);
            while w != NIL {
                let Some(s) = self.waiters.get(w as usize) else { return Err("a file's waiter list is broken") };
                if s.in_use != 1 || s.file != i as u32 || s.fprev != prev || n > WAITERS {
                    return Err("a file's waiter list is broken");
                }
                n += 1;
                prev = w;
                w = s.fnext;
            }
            if prev != f.wtail || n != f.waiters {
                return Err("a file's waiter count or tail is wrong");
            }
            listed += n;
        }
        if listed != c.waiters {
            return Err("a registered waiter is on no file's list");
        }
        Ok(c)
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
