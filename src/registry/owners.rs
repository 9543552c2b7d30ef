//! Owner slots: processes and open files, their life marks, and what the
//! registry can vouch for without a probe.
//!
//! # Safety
//! Reads and re-initialises the process-shared life-mark mutexes in place.
#![allow(unsafe_code)]

use super::layout::*;
use super::*;

impl Tables<'_> {
    /// The owner slots ever used.
    pub fn used_owners(&self) -> impl Iterator<Item = &OwnerSlot> + '_ {
        self.owners.iter_to(self.owner_high())
    }

    /// The owner slot of the process image with `nonce`, if it has one.
    ///
    /// A search that finds none is remembered (in this process, for this
    /// registry and nonce) with the registry's count of process owners made:
    /// while the count is unchanged the answer stands, so a process that
    /// holds nothing (F_GETLK, lockf F_TEST, an unlock) does not scan every
    /// owner on every call.
    pub fn find_process(&self, nonce: u64, hint: u32) -> Option<u32> {
        let is_me = |o: &OwnerSlot| o.kind == OWNER_PROCESS && o.nonce == nonce;
        if self.owners.get(hint as usize).is_some_and(is_me) {
            return Some(hint);
        }
        let base = self.map as *const Mapping as u64;
        let made = u64::from(self.free.proc_created);
        if ABSENT_NONCE.load(Ordering::Relaxed) == nonce
            && ABSENT_TABLE.load(Ordering::Relaxed) == base
            && ABSENT_AT.load(Ordering::Relaxed) == made
        {
            return None;
        }
        let found = self.used_owners().position(is_me).map(|i| i as u32);
        if found.is_none() {
            ABSENT_NONCE.store(nonce, Ordering::Relaxed);
            ABSENT_TABLE.store(base, Ordering::Relaxed);
            ABSENT_AT.store(made, Ordering::Relaxed);
        }
        found
    }

    /// The owner slot of the process image with `nonce` (anchor `anchor`),
    /// created if needed.
    pub fn process_owner(&mut self, nonce: u64, anchor: u32, pid: i32, hint: u32) -> Result<u32, Errno> {
        if let Some(i) = self.find_process(nonce, hint) {
            // A fork child's owner was made by its parent, before its pid.
            self.owners[i as usize].pid = pid;
            return Ok(i);
        }
        let i = self.new_owner(OWNER_PROCESS, 0, pid, nonce, 0, 0)?;
        self.free.proc_created = self.free.proc_created.wrapping_add(1);
        self.owners[i as usize].anchor = anchor;
        self.owners[i as usize].locker = i;
        Ok(i)
    }

    /// Takes a free owner slot for a new owner; ENOLCK when the table is
    /// full. The slot's generation moves on, so old tokens never name it.
    pub fn new_owner(&mut self, kind: u8, flavor: u8, pid: i32, nonce: u64, dev: u64, ino: u64) -> Result<u32, Errno> {
        let owners = &self.owners;
        let f = &mut *self.free;
        let i = slab_take(&mut f.owner, &mut f.owner_high, self.map, Table::Owners, |i| {
            owners.get(i as usize).map(|o| o.next_free)
        })
        .ok_or(Errno::NOLCK)?;
        // Field by field: the slot holds a mutex, which must not be moved.
        let o = &mut self.owners[i as usize];
        o.kind = kind;
        o.flavor = flavor;
        o.pid = pid;
        o.nonce = nonce;
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
        o.anchor = NIL;
        o.locker = NIL;
        o.unrecorded = 0;
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
        if o.kind != OWNER_PROCESS || (super::guard::life_slot() == i && life_says_alive(o)) {
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
            super::guard::set_life_slot(i);
        }
    }

    /// The open-file owner that `token` names for the file `(dev, ino)`,
    /// if the slot still is that owner.
    pub fn openfile_owner(&self, slot: u32, generation: u32, gens: u32, dev: u64, ino: u64) -> Option<u32> {
        let o = self.owners.get(slot as usize).filter(|_| (slot as usize) < self.owner_high())?;
        (o.kind == OWNER_OPENFILE && generation == o.generation % gens && o.dev == dev && o.ino == ino).then_some(slot)
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
    pub(super) fn free_owner_if_idle(&mut self, i: u32) {
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
        // A dead process's registrations for open files go with it.
        if self.owners.get(owner as usize).is_some_and(|o| o.kind == OWNER_PROCESS) {
            for w in 0..(self.free.waiter_high as usize).min(self.waiters.len()) {
                if self.waiters[w].in_use == 1 && self.waiters[w].proc_ == owner {
                    self.remove_waiter(w as u32);
                }
            }
        }
        self.drop_maps(owner);
        if let Some(o) = self.owners.get_mut(owner as usize) {
            o.nlocks = 0;
            o.lock_head = NIL;
        }
        // Reaped owners are dead (or an open file nobody holds).
        self.free_owner_if_idle(owner);
        Ok(())
    }

    /// What the registry alone can say about owner `i`'s liveness.
    pub fn vouch(&self, i: u32) -> Vouch {
        let Some(o) = self.owners.get(i as usize) else { return Vouch::Dead };
        // An open file's ticket carries its change count where a process's
        // carries its anchor: a verdict holds for the locks it was probed on.
        let anchor = if o.kind == OWNER_OPENFILE { u32::from(o.changes) } else { o.anchor };
        let ticket = Ticket { owner: i, generation: o.generation, anchor, nonce: o.nonce };
        match o.kind {
            OWNER_PROCESS if life_says_alive(o) => Vouch::Alive,
            OWNER_PROCESS => Vouch::ProbeProcess(ticket),
            OWNER_OPENFILE => {
                // The forgery check (a scan for the token's holders) is
                // needed only once the process that locked is not proven
                // alive: while it lives, the token is its own.
                let verify = self.owners.get(o.locker as usize).is_none_or(|l| !life_says_alive(l));
                Vouch::ProbeOpenFile(ticket, verify, self.sample(i))
            }
            _ => Vouch::Dead,
        }
    }

    /// One of owner `i`'s locks (the head of its list): its type and range.
    pub fn sample_lock(&self, i: u32) -> Option<(LockType, Range)> {
        let o = self.owners.get(i as usize)?;
        let r = self.records.get(o.lock_head as usize)?;
        Some((LockType::from_raw(r.ltype)?, r.range()))
    }

    /// What a probe of open-file owner `i` needs: one of its locks, its
    /// file, and the descriptor that last started locking through it.
    pub fn sample(&self, i: u32) -> Option<Sample> {
        let o = self.owners.get(i as usize)?;
        let (ltype, range) = self.sample_lock(i)?;
        Some(Sample { ltype, range, dev: o.dev, ino: o.ino, pid: o.pid, fd: o.fd })
    }

    /// Whether owner slots exist from `from` on.
    pub fn more_owners_after(&self, from: u32) -> bool {
        (from as usize) < self.owner_high()
    }

    /// Whether `t` still names the owner it was issued for.
    pub fn ticket_current(&self, t: &Ticket) -> bool {
        self.owners.get(t.owner as usize).is_some_and(|o| o.kind != OWNER_FREE && o.generation == t.generation)
    }

    /// Up to `out.len()` process owners that the registry cannot vouch for
    /// (to be probed outside the mutex when the owner table is full).
    /// The search starts at slot `*from` and leaves `*from` past the last
    /// slot looked at (the owner table's high-water mark when done).
    pub fn unvouched(&self, from: &mut u32, out: &mut [Ticket]) -> usize {
        let mut n = 0;
        while *from < self.owner_high() as u32 {
            if n == out.len() {
                break;
            }
            let i = *from;
            *from += 1;
            if let Vouch::ProbeProcess(t) = self.vouch(i) {
                out[n] = t;
                n += 1;
            }
        }
        n
    }
}

// `find_process`'s memory of a search that found nothing: the nonce, the
// owner table's address (one per attached registry) and the creation count
// then. Written and read with the registry mutex held.
static ABSENT_NONCE: AtomicU64 = AtomicU64::new(0);
static ABSENT_TABLE: AtomicU64 = AtomicU64::new(0);
static ABSENT_AT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Whether an owner's life mark is held by a live thread: its futex word
/// (glibc keeps it first in `pthread_mutex_t`: owner tid, plus the kernel's
/// FUTEX_OWNER_DIED bit) names an owner and the kernel has not marked it dead.
/// True proves the process alive; false proves nothing.
pub(super) fn life_says_alive(o: &OwnerSlot) -> bool {
    // SAFETY: the first 4 bytes of the mutex are its futex word, an aligned
    // u32 in the mapping; we only load it atomically.
    let word = unsafe { &*(&o.life as *const libc::pthread_mutex_t as *const AtomicU32) }.load(Ordering::Acquire);
    word & 0x3fff_ffff != 0 && word & 0x4000_0000 == 0
}

/// What the registry can say about an owner's liveness without a probe.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Vouch {
    /// Proven alive (a live thread holds the process's life mark).
    Alive,
    /// Not an owner any more.
    Dead,
    /// A process whose anchor must be probed (see `crate::liveness`).
    ProbeProcess(Ticket),
    /// An open file whose token (or, with the kernel mirror, whose sample
    /// lock) must be probed through a descriptor of its file; with the flag,
    /// a found token must also be confirmed as held by one of our processes.
    ProbeOpenFile(Ticket, bool, Option<Sample>),
}

/// One lock of an open-file owner, with where to look for it (see
/// `Vouch::ProbeOpenFile`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Sample {
    pub ltype: LockType,
    pub range: Range,
    pub dev: u64,
    pub ino: u64,
    /// The process and descriptor that last started locking through it.
    pub pid: i32,
    pub fd: i32,
}

/// An owner as it was when a probe was decided: the probe's verdict applies
/// only while the slot still has this generation.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Ticket {
    pub owner: u32,
    pub generation: u32,
    pub anchor: u32,
    pub nonce: u64,
}
