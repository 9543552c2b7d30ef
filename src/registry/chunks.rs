//! The segment's chunks: how a process maps them, how a table grows by one,
//! and [`Slab`], a table seen through its chunk directory.
//!
//! A process maps the segment once at attach, as large as it then is. When
//! it later needs a chunk beyond its mapping (one another process added, or
//! one it adds itself), it maps the segment again, larger, and keeps the old
//! mapping. Every chunk is always reached through the *first* mapping that
//! covered it, so each slot has one address in the process for good: glibc's
//! robust mutexes (the registry mutex in chunk 0, the life marks in owner
//! slots) are linked into a thread's robust list by address, and a mutex
//! locked at one address and unlocked at another would corrupt that list.
//! The file doubles as it grows, so a process holds a handful of mappings,
//! together at most about twice the segment's size.
//!
//! The library keeps no descriptor open: a chunk is added, and a larger
//! mapping made, through a descriptor opened by path for that one step and
//! checked to be the very file attached (device and inode), else the step
//! fails (ENOLCK) rather than touch another registry.
//!
//! # Safety
//! This file turns chunk numbers into pointers. A pointer is formed only for
//! a chunk the directory names, below the chunk count, within a live
//! mapping (mappings are never unmapped, apart from a tool's `detach`).
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use super::layout::*;
use crate::engine::tree::NIL;
use crate::sys::{self, Errno};

/// One process's view of one segment file.
pub struct Mapping {
    /// Every mapping made, oldest first, each longer than the one before,
    /// and how many there are (published after the entry is written).
    bases: [AtomicPtr<u8>; MAPPINGS],
    lens: [AtomicUsize; MAPPINGS],
    count: AtomicUsize,
    /// Held while a mapping is added (one thread at a time; the adder runs
    /// as a registry section, so no handler of ours interrupts it).
    adding: core::sync::atomic::AtomicBool,
    /// Each table chunk's address, once found (a chunk never moves, and
    /// its directory entry never changes once published).
    cache: [AtomicPtr<u8>; DIR_TOTAL],
    /// The file attached, to re-open by `path` and check.
    dev: AtomicU64,
    ino: AtomicU64,
    /// NUL-terminated; written only at attach, before the mapping is
    /// published to any other thread.
    path: UnsafeCell<[u8; 256]>,
}

// SAFETY: `path` is written once, before publication, then only read; the
// other fields are atomics.
unsafe impl Sync for Mapping {}

/// Mappings a process can hold of one segment: the file at least doubles
/// between two, from 96 KiB, so 40 reach far past any registry.
const MAPPINGS: usize = 40;

impl Mapping {
    pub const fn new() -> Self {
        Mapping {
            bases: [const { AtomicPtr::new(core::ptr::null_mut()) }; MAPPINGS],
            lens: [const { AtomicUsize::new(0) }; MAPPINGS],
            count: AtomicUsize::new(0),
            adding: core::sync::atomic::AtomicBool::new(false),
            cache: [const { AtomicPtr::new(core::ptr::null_mut()) }; DIR_TOTAL],
            dev: AtomicU64::new(0),
            ino: AtomicU64::new(0),
            path: UnsafeCell::new([0; 256]),
        }
    }

    /// Records a fresh attach: `base` maps `len` bytes of the file
    /// `(dev, ino)` found at `path`.
    ///
    /// # Safety
    /// No other thread may use this mapping state during the call.
    pub unsafe fn set(&self, base: *mut u8, len: usize, dev: u64, ino: u64, path: &[u8]) {
        // SAFETY: per the contract, nobody else reads `path` now.
        let p = unsafe { &mut *self.path.get() };
        let n = path.len().min(p.len() - 1);
        p[..n].copy_from_slice(&path[..n]);
        p[n] = 0;
        self.dev.store(dev, Ordering::Relaxed);
        self.ino.store(ino, Ordering::Relaxed);
        for c in &self.cache {
            c.store(core::ptr::null_mut(), Ordering::Relaxed);
        }
        self.bases[0].store(base, Ordering::Relaxed);
        self.lens[0].store(len, Ordering::Relaxed);
        self.count.store(1, Ordering::Release);
    }

    /// The first mapping: the header, and the registry mutex, are always
    /// reached through it.
    pub fn base(&self) -> *mut u8 {
        self.bases[0].load(Ordering::Acquire)
    }

    /// Bytes of the file mapped (by the newest mapping).
    pub fn mapped(&self) -> usize {
        match self.count.load(Ordering::Acquire) {
            0 => 0,
            n => self.lens[n - 1].load(Ordering::Acquire),
        }
    }

    /// The address of bytes `[off, end)` of the file: in the first mapping
    /// that covers `end`, so always the same address.
    fn at(&self, off: usize, end: usize) -> Option<*mut u8> {
        let n = self.count.load(Ordering::Acquire).min(MAPPINGS);
        (0..n).find(|&i| self.lens[i].load(Ordering::Acquire) >= end).map(|i| {
            // SAFETY: mapping `i` covers `end > off`.
            unsafe { self.bases[i].load(Ordering::Acquire).add(off) }
        })
    }

    /// The newest mapping, for a tool's detach.
    pub fn newest(&self) -> (*mut u8, usize) {
        match self.count.load(Ordering::Acquire) {
            0 => (core::ptr::null_mut(), 0),
            n => (self.bases[n - 1].load(Ordering::Acquire), self.lens[n - 1].load(Ordering::Acquire)),
        }
    }

    pub fn path(&self) -> Option<&core::ffi::CStr> {
        // SAFETY: written before publication, read-only since.
        let p = unsafe { &*self.path.get() };
        core::ffi::CStr::from_bytes_until_nul(p).ok()
    }

    /// The header (it sits at the start of every mapping).
    pub fn header(&self) -> &'static Header {
        // SAFETY: chunk 0 is in every mapping, which lives forever; the
        // fields read through a shared reference are atomics or constants.
        unsafe { &*(self.base() as *const Header) }
    }

    /// The chunk directory.
    pub fn chunks(&self) -> &'static Chunks {
        &self.header().chunks
    }

    /// Opens the attached file again, checked to be the same file.
    fn reopen(&self) -> Result<i32, Errno> {
        let path = self.path().ok_or(Errno::NOLCK)?;
        let fd = sys::open(path, libc::O_RDWR | libc::O_NOFOLLOW, 0).map_err(|_| Errno::NOLCK)?;
        match sys::fstat(fd) {
            Ok(st)
                if st.st_dev == self.dev.load(Ordering::Relaxed) && st.st_ino == self.ino.load(Ordering::Relaxed) =>
            {
                Ok(fd)
            }
            _ => {
                let _ = sys::close(fd);
                Err(Errno::NOLCK)
            }
        }
    }

    /// Makes the mapping cover the first `need` bytes of the file.
    pub fn cover(&self, need: usize) -> Result<(), Errno> {
        if need <= self.mapped() {
            return Ok(());
        }
        let fd = self.reopen()?;
        let r = self.cover_with(fd, need);
        let _ = sys::close(fd);
        r
    }

    fn cover_with(&self, fd: i32, need: usize) -> Result<(), Errno> {
        if need <= self.mapped() {
            return Ok(());
        }
        super::guard::section(|| {
            let mut spins = 0u32;
            while self.adding.swap(true, Ordering::Acquire) {
                spins += 1;
                if spins > 1_000_000 {
                    return Err(Errno::NOLCK);
                }
                sys::sched_yield();
            }
            let r = self.add_mapping(fd, need);
            self.adding.store(false, Ordering::Release);
            r
        })
    }

    fn add_mapping(&self, fd: i32, need: usize) -> Result<(), Errno> {
        if need <= self.mapped() {
            return Ok(());
        }
        // The whole file, never more: every mapped byte has file behind it
        // (no SIGBUS), and the file grows by doubling (`add_chunk`), so
        // mappings are few. A chunk count that claims more than the file
        // holds (a scribbled header) covers what there is: `slot_ptr` then
        // refuses the chunks beyond.
        let len = sys::fstat(fd).map_err(|_| Errno::NOLCK)?.st_size as usize / CHUNK * CHUNK;
        if len <= self.mapped() {
            return Ok(());
        }
        let n = self.count.load(Ordering::Acquire);
        if n >= MAPPINGS {
            return Err(Errno::NOLCK);
        }
        let base = sys::map_shared(fd, len).map_err(|_| Errno::NOLCK)?;
        // The old mappings stay: references into them remain valid, and
        // what they cover is still reached through them (`at`).
        self.bases[n].store(base, Ordering::Relaxed);
        self.lens[n].store(len, Ordering::Relaxed);
        self.count.store(n + 1, Ordering::Release);
        Ok(())
    }

    /// Makes the mapping cover every chunk allocated so far.
    pub fn cover_all(&self) -> Result<(), Errno> {
        let used = self.chunks().used.load(Ordering::Acquire) as usize;
        self.cover(used * CHUNK)
    }

    /// Adds chunk `have[t]` to table `t`: allocated in the file, mapped,
    /// filled for its table, then named in the directory. Call with the
    /// registry mutex held. False when the table is at its capacity, the
    /// file system has no room, or the file cannot be reached.
    pub fn add_chunk(&self, t: Table) -> bool {
        let ch = self.chunks();
        let k = ch.have[t as usize].load(Ordering::Acquire);
        if k >= t.max_chunks() {
            return false;
        }
        let Ok(fd) = self.reopen() else { return false };
        let c = ch.used.load(Ordering::Acquire) as usize;
        let n = 1usize << k; // chunk k is n CHUNKs long
        if (c + n) as u64 > MAX_CHUNKS {
            return false; // more chunks than every table together has: scribbled
        }
        let end = (c + n) * CHUNK;
        // The file doubles (its pages cost nothing until allocated), so that
        // a process maps it again only when it has doubled.
        let ok = sys::fstat(fd).is_ok_and(|st| {
            let size = st.st_size as usize;
            size >= end || sys::ftruncate(fd, end.max(2 * size).next_multiple_of(CHUNK) as u64).is_ok()
        }) && match sys::fallocate(fd, (c * CHUNK) as u64, (n * CHUNK) as u64) {
            Ok(()) => true,
            Err(e) => {
                super::shm::full_message(self.path().map_or(&[][..], |p| p.to_bytes()), e);
                false
            }
        } && self.cover_with(fd, end).is_ok();
        let _ = sys::close(fd);
        if !ok {
            return false;
        }
        // Chunk `c` is allocated in the file and mapped; nothing refers to
        // it yet (no directory entry names it).
        let Some(p) = self.at(c * CHUNK, end) else { return false };
        if t == Table::Buckets {
            // SAFETY: as above; n CHUNKs of u32s.
            unsafe { core::slice::from_raw_parts_mut(p as *mut u32, n * CHUNK / 4) }.fill(NIL);
        } else {
            // A dead grower may have written nothing, but a chunk is
            // cleared anyway: its slots must read as never used.
            // SAFETY: as above.
            unsafe { core::ptr::write_bytes(p, 0, n * CHUNK) };
        }
        ch.dir[t.dir_start() + k as usize].store(c as u32, Ordering::Release);
        ch.used.store((c + n) as u32, Ordering::Release);
        ch.have[t as usize].store(k + 1, Ordering::Release);
        true
    }

    /// Grows table `t` until it has at least `n` slots (or its capacity).
    pub fn grow_to(&self, t: Table, n: u32) -> bool {
        let have = |m: &Self| m.chunks().have[t as usize].load(Ordering::Acquire).min(t.max_chunks());
        while t.slots_in(have(self)) < u64::from(n.min(t.shape().1)) {
            if !self.add_chunk(t) {
                return false;
            }
        }
        true
    }

    /// Slot `i` of table `t`, if it exists (mapped and named).
    pub fn slot_ptr(&self, t: Table, i: usize) -> Option<*mut u8> {
        let ch = self.chunks();
        let (k, at) = t.locate(i);
        let k = k as usize;
        let slot = t.dir_start() + k;
        if k < t.max_chunks() as usize
            && let Some(p) = self.cache.get(slot).map(|c| c.load(Ordering::Acquire)).filter(|p| !p.is_null())
        {
            // SAFETY: a cached chunk lies within a live mapping for good.
            return Some(unsafe { p.add(at * t.shape().0) });
        }
        // Every value read here may be scribbled: each is checked, so a bad
        // one gives "no such slot", never a pointer outside the mapping.
        if k >= ch.have[t as usize].load(Ordering::Acquire) as usize || k >= t.max_chunks() as usize {
            return None;
        }
        let c = ch.dir.get(t.dir_start() + k)?.load(Ordering::Acquire) as usize;
        if c == 0 || c >= ch.used.load(Ordering::Acquire) as usize {
            return None;
        }
        let end = (c + (1 << k)) * CHUNK;
        if end > self.mapped() && (self.cover_all().is_err() || end > self.mapped()) {
            return None;
        }
        let p = self.at(c * CHUNK, end)?;
        if let Some(e) = self.cache.get(slot) {
            e.store(p, Ordering::Release);
        }
        // SAFETY: `at` is within chunk `c`, which `p` starts.
        Some(unsafe { p.add(at * t.shape().0) })
    }
}

impl Default for Mapping {
    fn default() -> Self {
        Self::new()
    }
}

/// A table seen through its chunk directory: slot `i` is reached in two
/// loads, and the slots that exist are `0..len()`. It borrows the tables as
/// a slice would (`'g`: while the registry mutex is held). The slot type
/// names the table ([`SlotOf`]), so the geometry is constant.
pub struct Slab<'g, T> {
    map: &'static Mapping,
    _tables: PhantomData<&'g mut [T]>,
}

impl<'g, T: SlotOf> Slab<'g, T> {
    /// # Safety
    /// `T` is plain `repr(C)` data, valid all-zero, and for `'g` the caller
    /// holds the registry mutex (or is the segment's only user).
    pub unsafe fn new(map: &'static Mapping) -> Self {
        Slab { map, _tables: PhantomData }
    }

    /// How many slots exist (buckets: how many are in use).
    pub fn len(&self) -> usize {
        let ch = self.map.chunks();
        let t = T::TABLE;
        if t == Table::Buckets {
            return (ch.nbuckets.load(Ordering::Acquire) as usize).min(t.shape().1 as usize);
        }
        let have = ch.have[t as usize].load(Ordering::Acquire) as usize;
        (t.slots_in(have.min(t.max_chunks() as usize) as u32) as usize).min(t.shape().1 as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        // SAFETY: the slot exists (see `fast` and `Mapping::slot_ptr`),
        // holds a `T` (the table's type), and we hold the mutex.
        self.ptr(i).map(|p| unsafe { &*(p as *const T) })
    }

    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        // SAFETY: as in `get`; `&mut self` makes the reference unique.
        self.ptr(i).map(|p| unsafe { &mut *(p as *mut T) })
    }

    #[inline]
    fn ptr(&self, i: usize) -> Option<*mut u8> {
        if let Some(p) = self.fast(i) {
            return Some(p);
        }
        self.slow(i)
    }

    #[inline(never)]
    fn slow(&self, i: usize) -> Option<*mut u8> {
        if i >= self.len() {
            return None;
        }
        self.map.slot_ptr(T::TABLE, i)
    }

    /// Slot `i` through the chunk-address cache alone: a cached chunk
    /// exists, so every slot in it does (buckets: only the first
    /// `nbuckets` are in use, so the index is checked against that first).
    #[inline(always)]
    fn fast(&self, i: usize) -> Option<*mut u8> {
        let t = T::TABLE;
        if i >= t.shape().1 as usize {
            return None;
        }
        if t == Table::Buckets && i >= self.map.chunks().nbuckets.load(Ordering::Acquire) as usize {
            return None;
        }
        let (k, at) = t.locate(i);
        let p = self.map.cache.get(t.dir_start() + k as usize)?.load(Ordering::Acquire);
        // SAFETY: a cached chunk lies within a live mapping for good, and
        // `at` is within chunk `k`.
        (!p.is_null()).then(|| unsafe { p.add(at * t.shape().0) })
    }

    /// The slots below `n`, in order.
    pub fn iter_to(&self, n: usize) -> impl Iterator<Item = &T> + '_ {
        (0..n.min(self.len())).filter_map(move |i| self.get(i))
    }

    /// The slots below `n`, in order, mutably.
    pub fn iter_mut_to(&mut self, n: usize) -> impl Iterator<Item = &mut T> + '_ {
        let this: &Self = self;
        // SAFETY: every index is visited once, so the references are to
        // distinct slots, and `&mut self` is borrowed while they live.
        (0..n.min(this.len())).filter_map(move |i| this.ptr(i).map(|p| unsafe { &mut *(p as *mut T) }))
    }
}

/// A slot that does not exist, for an index that a broken invariant (or a
/// scribbled segment) produced: a fresh zeroed page of its own, so reads
/// see an unused slot and writes go nowhere, and the repair or the
/// consistency check finds the damage. Never shared, so a `&mut` to it is
/// unique. Only a process out of memory aborts here.
fn missing<T>(table: Table, i: usize) -> *mut T {
    const { assert!(size_of::<T>() <= 4096 && align_of::<T>() <= 4096) };
    match sys::map_anon(4096) {
        Ok(p) => p as *mut T,
        Err(_) => panic!("registry slot {i} of {table:?} does not exist"),
    }
}

impl<T: SlotOf> core::ops::Index<usize> for Slab<'_, T> {
    type Output = T;
    #[inline]
    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Some(x) => x,
            // SAFETY: a fresh zeroed page; every slot type is repr(C) plain
            // data for which all-zero is valid.
            None => unsafe { &*missing::<T>(T::TABLE, i) },
        }
    }
}

impl<T: SlotOf> core::ops::IndexMut<usize> for Slab<'_, T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        match self.ptr(i) {
            // SAFETY: as in `get_mut`.
            Some(p) => unsafe { &mut *(p as *mut T) },
            // SAFETY: as in `index`; the page is this reference's alone.
            None => unsafe { &mut *missing::<T>(T::TABLE, i) },
        }
    }
}
