//! File slots and their hash chains.

use super::layout::*;
use super::*;

impl Tables<'_> {
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
        let files = &*self.files;
        let fl = &mut *self.free;
        let i = slab_take(
            &mut fl.file,
            &mut fl.file_high,
            &mut fl.backed[Table::Files as usize],
            Table::Files,
            FILES,
            |i| files.get(i as usize).map(|f| f.next),
        )
        .ok_or(Errno::NOLCK)?;
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
            waiters: 0,
            unrecorded: 0,
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
        let b = bucket_of(dev, ino);
        if !slab_unlink(self.files, &mut self.buckets[b], i, |f| &mut f.next) {
            return;
        }
        let f = &mut self.files[i as usize];
        f.in_use = 0;
        f.next = self.free.file;
        self.free.file = i;
    }
}
