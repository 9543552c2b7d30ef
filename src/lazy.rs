//! Process-local arrays of atomics that cost nothing until used.
//!
//! The per-process bookkeeping that the close path reads (`crate::local`)
//! is indexed by registry file slot, and the registry reaches hundreds of
//! thousands of slots. Static arrays of that size would sit in every
//! preloaded process's address space, where `mlockall(MCL_CURRENT)` counts
//! them against `RLIMIT_MEMLOCK` whether touched or not. So each array is a
//! directory of fixed-size chunks, mapped (anonymous, zeroed) the first time
//! an entry in them is written: a process that locks one file maps one
//! chunk per array.
//!
//! Reads of an entry whose chunk was never mapped see zero. Mapping is a raw
//! `mmap` syscall (async-signal-safe), raced with a compare-exchange, and a
//! chunk is never unmapped, so a reference handed out stays valid for the
//! process's life (and across `fork`, as its copy).
//!
//! # Safety
//! Chunks are turned into `&'static` slices of atomics: each was mapped
//! zeroed (a valid bit pattern for an atomic), is never unmapped, and is
//! only ever accessed through atomics.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::sys;

/// Entries per chunk.
pub const CHUNK: usize = 4096;
/// Chunks per array: up to `CHUNK * DIR` entries.
pub const DIR: usize = 256;

macro_rules! lazy_array {
    ($name:ident, $atom:ty, $word:ty) => {
        /// A lazily mapped array of `CHUNK * DIR` atomics (see the module).
        pub struct $name {
            dir: [AtomicPtr<$atom>; DIR],
            /// One past the highest chunk ever mapped: scans stop there.
            top: AtomicUsize,
        }

        impl $name {
            pub const fn new() -> Self {
                $name { dir: [const { AtomicPtr::new(core::ptr::null_mut()) }; DIR], top: AtomicUsize::new(0) }
            }

            /// How many entries the array can hold.
            pub const fn capacity(&self) -> usize {
                CHUNK * DIR
            }

            fn chunk(&self, c: usize) -> Option<&'static [$atom]> {
                let p = self.dir.get(c)?.load(Ordering::Acquire);
                // SAFETY: see the module header: a published chunk is a
                // zeroed mapping of CHUNK atomics that lives forever.
                (!p.is_null()).then(|| unsafe { core::slice::from_raw_parts(p, CHUNK) })
            }

            /// Entry `i`, if its chunk is mapped.
            pub fn get(&self, i: usize) -> Option<&'static $atom> {
                self.chunk(i / CHUNK).map(|c| &c[i % CHUNK])
            }

            /// Entry `i`, mapping its chunk first if needed; `None` when `i`
            /// is beyond the capacity or the kernel has no memory for it.
            pub fn get_or_map(&self, i: usize) -> Option<&'static $atom> {
                let c = i / CHUNK;
                if let Some(x) = self.get(i) {
                    return Some(x);
                }
                let slot = self.dir.get(c)?;
                let fresh = sys::map_anon(CHUNK * size_of::<$atom>()).ok()? as *mut $atom;
                match slot.compare_exchange(core::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        self.top.fetch_max(c + 1, Ordering::AcqRel);
                    }
                    // Another thread (or a signal handler) mapped it first.
                    // SAFETY: `fresh` was never published.
                    Err(_) => unsafe { sys::unmap(fresh as *mut u8, CHUNK * size_of::<$atom>()) },
                }
                self.get(i)
            }

            /// The value of entry `i` (zero when its chunk was never mapped).
            pub fn load(&self, i: usize, o: Ordering) -> $word {
                self.get(i).map_or(0, |x| x.load(o))
            }

            /// Calls `f(i, entry)` for every entry of every mapped chunk.
            pub fn for_each(&self, f: &mut dyn FnMut(usize, &'static $atom)) {
                for c in 0..self.top.load(Ordering::Acquire).min(DIR) {
                    if let Some(chunk) = self.chunk(c) {
                        for (k, x) in chunk.iter().enumerate() {
                            f(c * CHUNK + k, x);
                        }
                    }
                }
            }

            /// Calls `f(i, value)` for every non-zero entry.
            pub fn for_each_nonzero(&self, f: &mut dyn FnMut(usize, $word)) {
                self.for_each(&mut |i, x| {
                    let v = x.load(Ordering::Acquire);
                    if v != 0 {
                        f(i, v);
                    }
                });
            }

            /// Sets every mapped entry to zero.
            pub fn clear(&self) {
                self.for_each(&mut |_, x| {
                    if x.load(Ordering::Relaxed) != 0 {
                        x.store(0, Ordering::Relaxed);
                    }
                });
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

lazy_array!(LazyU32, AtomicU32, u32);
lazy_array!(LazyU64, AtomicU64, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_reads_zero_and_writes_map_one_chunk() {
        let a = LazyU32::new();
        assert_eq!(a.load(5 * CHUNK + 3, Ordering::Relaxed), 0);
        assert!(a.get(5 * CHUNK + 3).is_none());
        a.get_or_map(5 * CHUNK + 3).unwrap().store(7, Ordering::Relaxed);
        assert_eq!(a.load(5 * CHUNK + 3, Ordering::Relaxed), 7);
        assert!(a.get(4 * CHUNK).is_none(), "only the written entry's chunk is mapped");
        let mut seen = vec![];
        a.for_each_nonzero(&mut |i, v| seen.push((i, v)));
        assert_eq!(seen, vec![(5 * CHUNK + 3, 7)]);
        a.clear();
        assert_eq!(a.load(5 * CHUNK + 3, Ordering::Relaxed), 0);
        assert!(a.get_or_map(CHUNK * DIR).is_none(), "beyond the capacity");
    }
}
