//! File slots and their hash chains.

use super::layout::*;
use super::*;

impl Tables<'_> {
    /// The file slot of `(dev, ino)`, if it has one.
    pub fn find_file(&self, dev: u64, ino: u64) -> Option<u32> {
        let mut i = *self.buckets.get(self.bucket_of(dev, ino))?;
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
        self.grow_buckets();
        let files = &self.files;
        let fl = &mut *self.free;
        let i = slab_take(&mut fl.file, &mut fl.file_high, self.map, Table::Files, |i| {
            files.get(i as usize).map(|f| f.next)
        })
        .ok_or(Errno::NOLCK)?;
        self.free.files_in_use += 1;
        let b = self.bucket_of(dev, ino);
        let head = self.buckets[b];
        let f = &mut self.files[i as usize];
        *f = FileSlot {
            dev,
            ino,
            root: NIL,
            next: head,
            nrecords: 0,
            in_use: 1,
            spare: 0,
            mappings: 0,
            sleepers: 0,
            waiters: 0,
            unrecorded: 0,
            whead: NIL,
            wtail: NIL,
            _pad: 0,
        };
        self.buckets[b] = i;
        Ok(i)
    }

    /// Returns an empty file slot to the free list.
    pub fn release_file_if_empty(&mut self, i: u32) {
        let Some(f) = self.files.get(i as usize) else { return };
        // A slot is freed only when nothing refers to it: no lock, no
        // mapping, no sleeper reading its futex word, no registered waiter.
        if f.in_use != 1
            || f.nrecords != 0
            || f.root != NIL
            || f.mappings != 0
            || f.sleepers != 0
            || f.waiters != 0
            || f.unrecorded != 0
        {
            return;
        }
        let (dev, ino) = (f.dev, f.ino);
        let b = self.bucket_of(dev, ino);
        let Some(head) = self.buckets.get_mut(b) else { return };
        let mut h = *head;
        if !slab_unlink(&mut self.files, &mut h, i, |f| &mut f.next) {
            return;
        }
        self.buckets[b] = h;
        self.free.files_in_use = self.free.files_in_use.saturating_sub(1);
        let f = &mut self.files[i as usize];
        f.in_use = 0;
        f.next = self.free.file;
        self.free.file = i;
    }

    /// Doubles the hash buckets when the files in use outnumber them twice
    /// (up to `BUCKETS_MAX`): the new half's chunks are added, then each old
    /// chain is split between bucket `b` and `b + n`. Amortised O(1) per
    /// file; a holder that dies mid-way leaves chains the repair rebuilds
    /// (it re-hashes every file slot over `nbuckets`).
    fn grow_buckets(&mut self) {
        let n = self.buckets.len();
        if self.free.files_in_use as usize <= 2 * n || n >= BUCKETS_MAX as usize {
            return;
        }
        if !self.map.grow_to(Table::Buckets, 2 * n as u32) {
            return; // no room: longer chains, still complete
        }
        self.map.chunks().nbuckets.store(2 * n as u32, Ordering::Release);
        // Every file is on one chain: more steps than file slots means a
        // scribbled chain (a loop), and every chain is rebuilt instead.
        let mut budget = self.file_high() + 1;
        for b in 0..n {
            let mut cur = self.buckets[b];
            let (mut low, mut high) = (NIL, NIL);
            loop {
                if budget == 0 {
                    return self.rehash_files();
                }
                budget -= 1;
                let Some(f) = self.files.get_mut(cur as usize) else { break };
                let next = f.next;
                let to = bucket_in(f.dev, f.ino, 2 * n);
                if to == b {
                    f.next = low;
                    low = cur;
                } else {
                    f.next = high;
                    high = cur;
                }
                cur = next;
            }
            self.buckets[b] = low;
            self.buckets[b + n] = high;
        }
    }

    /// Rebuilds every hash chain from the in-use file slots.
    fn rehash_files(&mut self) {
        self.clear_buckets();
        for i in (0..self.file_high()).rev() {
            let Some((dev, ino, true)) = self.files.get(i).map(|f| (f.dev, f.ino, f.in_use == 1)) else { continue };
            let b = self.bucket_of(dev, ino);
            let head = self.buckets[b];
            self.files[i].next = head;
            self.buckets[b] = i as u32;
        }
    }
}
