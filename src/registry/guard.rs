//! Reaching the registry, its mutex and the per-thread "inside" flag, and
//! the wake-ups that run after the mutex is dropped.
//!
//! # Safety
//! Takes the process-shared mutex through raw pointers and turns the
//! mapping into table references while it is held.
#![allow(unsafe_code)]

use super::layout::*;
use super::*;
use core::sync::atomic::AtomicU8;

/// Where the registry stands for this process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Attach {
    /// Not attached yet.
    None = 0,
    /// Another thread is attaching.
    Busy = 1,
    Attached = 2,
    /// Refused (the message was printed): locks fall back to the kernel.
    Fallback = 3,
}

static STATE: AtomicU8 = AtomicU8::new(Attach::None as u8);

thread_local! {
    /// Set while this thread is inside the registry (from just before it
    /// takes the mutex until just after it drops it). Const-initialised and
    /// without Drop, so no TLS destructor is registered.
    static IN_REGISTRY: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Whether this thread is inside the registry: a signal handler's close()
/// must then defer its release, not take the mutex.
pub fn in_registry() -> bool {
    IN_REGISTRY.with(|c| c.get())
}

fn set_in_registry(v: bool) {
    IN_REGISTRY.with(|c| c.set(v));
}

/// Runs `f` as a registry section: the thread counts as inside the registry
/// (signals the library's trampoline catches are held back until it
/// leaves), for steps that must not be abandoned half-way by a handler's
/// longjmp, such as attaching the segment or claiming an anchor. Nested
/// sections run `f` plainly.
pub fn section<R>(f: impl FnOnce() -> R) -> R {
    if in_registry() {
        return f();
    }
    set_in_registry(true);
    let r = f();
    left_registry();
    r
}

/// What runs when a thread leaves the registry (set once by the policy
/// layer: storage calls no module above it).
static ON_LEAVE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Sets the function run each time a thread leaves the registry.
pub fn set_on_leave(f: fn()) {
    ON_LEAVE.store(f as usize, Ordering::Release);
}

fn left_registry() {
    set_in_registry(false);
    let f = ON_LEAVE.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: only `set_on_leave` stores here, always a `fn()`.
        let f: fn() = unsafe { core::mem::transmute(f) };
        f();
    }
}

/// In a fork child: the thread that forked is not inside the registry.
pub fn forget_after_fork() {
    // Each store only when needed: a fork child's first write to a page is
    // a copy-on-write fault, in every fork + exec.
    if in_registry() {
        set_in_registry(false);
    }
    // A thread that was waking from the overflow list is not in the child.
    if SPILL_BUSY.load(Ordering::Relaxed) {
        SPILL_BUSY.store(false, Ordering::Release);
    }
    if LIFE_SLOT.load(Ordering::Relaxed) != NIL {
        LIFE_SLOT.store(NIL, Ordering::Relaxed);
    }
}

/// The owner slot whose life mark one of this process's threads holds.
static LIFE_SLOT: AtomicU32 = AtomicU32::new(NIL);

pub(super) fn life_slot() -> u32 {
    LIFE_SLOT.load(Ordering::Relaxed)
}

pub(super) fn set_life_slot(i: u32) {
    LIFE_SLOT.store(i, Ordering::Relaxed);
}
/// This process's own registry, as it maps it.
static OWN: Mapping = Mapping::new();
/// A registry a tool attached by name (one at a time).
static NAMED: Mapping = Mapping::new();
static NAMED_BUSY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The registry, attached on first use.
#[derive(Clone, Copy)]
pub struct Registry {
    map: &'static Mapping,
}

/// Outcome of trying to reach the registry.
pub enum Reach {
    Ready(Registry),
    /// No segment exists and `create` was false: nothing is locked anywhere.
    Absent,
    /// The registry is refused; use kernel locks.
    Fallback,
    /// This very thread is attaching it (a signal handler interrupted the
    /// attach): the nested call cannot wait for itself.
    Busy,
}

/// The thread attaching the registry right now (0: none).
static ATTACHER: AtomicU32 = AtomicU32::new(0);

/// Reaches the registry, attaching (and with `create`, creating) it first.
pub fn reach(create: bool) -> Reach {
    loop {
        match STATE.load(Ordering::Acquire) {
            s if s == Attach::Attached as u8 => return Reach::Ready(Registry { map: &OWN }),
            s if s == Attach::Fallback as u8 => return Reach::Fallback,
            s if s == Attach::Busy as u8 => {
                if ATTACHER.load(Ordering::Acquire) == sys::gettid() as u32 {
                    return Reach::Busy;
                }
                sys::sched_yield();
            }
            _ => {
                // From taking the state on, a registry section: a handler's
                // longjmp must not leave it "attaching" forever.
                let absent = section(|| {
                    if STATE
                        .compare_exchange(Attach::None as u8, Attach::Busy as u8, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                    {
                        return false;
                    }
                    ATTACHER.store(sys::gettid() as u32, Ordering::Release);
                    let mut buf = [0u8; 256];
                    let verdict =
                        shm::path_for(crate::config::registry_name(), &mut buf).and_then(|p| shm::attach(p, create));
                    ATTACHER.store(0, Ordering::Release);
                    match verdict {
                        Ok(seg) => {
                            let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
                            // SAFETY: the state is Busy: no other thread
                            // uses the mapping state until it is Attached.
                            unsafe { OWN.set(seg.base, seg.len, seg.dev, seg.ino, &buf[..end]) };
                            STATE.store(Attach::Attached as u8, Ordering::Release);
                            false
                        }
                        Err(shm::Refusal::Io(e)) if e == Errno::NOENT && !create => {
                            STATE.store(Attach::None as u8, Ordering::Release);
                            true
                        }
                        Err(refusal) => {
                            shm::refusal_message(&buf, refusal);
                            STATE.store(Attach::Fallback as u8, Ordering::Release);
                            false
                        }
                    }
                });
                if absent {
                    return Reach::Absent;
                }
            }
        }
    }
}

/// Attaches the named registry without creating it (for tools such as
/// `qnxcompat-check`, which run without the library preloaded).
/// One at a time: a second attach before the first's `detach` is refused
/// (`Io(EBUSY)`).
pub fn attach_named(name: &[u8]) -> Result<Registry, shm::Refusal> {
    let mut buf = [0u8; 256];
    let path = shm::path_for(name, &mut buf)?;
    if NAMED_BUSY.swap(true, Ordering::AcqRel) {
        return Err(shm::Refusal::Io(Errno(libc::EBUSY)));
    }
    match shm::attach_tool(path) {
        Ok(seg) => {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
            // SAFETY: NAMED_BUSY makes this thread its only user.
            unsafe { NAMED.set(seg.base, seg.len, seg.dev, seg.ino, &buf[..end]) };
            Ok(Registry { map: &NAMED })
        }
        Err(r) => {
            NAMED_BUSY.store(false, Ordering::Release);
            Err(r)
        }
    }
}

/// Whether this process has attached (cheap; no syscall).
pub fn attached() -> Option<Registry> {
    (STATE.load(Ordering::Acquire) == Attach::Attached as u8).then_some(Registry { map: &OWN })
}

impl Registry {
    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: the header is at offset 0 of a live mapping; we take the
        // field's address without creating a reference to the header.
        unsafe { &raw mut (*(self.map.base() as *mut Header)).mutex }
    }

    fn header(&self) -> &Header {
        self.map.header()
    }

    /// Takes the registry mutex, repairing the segment if its last holder
    /// died. ENOLCK if the mutex is unusable or this thread already holds it
    /// (a signal handler interrupted a registry call).
    pub fn lock(&self) -> Result<Guard, Errno> {
        if in_registry() {
            return Err(Errno::NOLCK);
        }
        // The flag goes up before the mutex call: a signal handler's close()
        // at any instruction from here to the guard's drop defers its
        // release instead of re-entering the (error-checking) mutex.
        set_in_registry(true);
        crate::fault::point(crate::fault::Point::BeforeMutex);
        // Map what others added first, so that what is left to map under
        // the mutex is rarely anything.
        let _ = self.map.cover_all();
        let r = self.lock_mutex();
        let mut guard = match r {
            0 | libc::EOWNERDEAD => Guard { map: self.map, mutex: self.mutex(), wake: WakeSet::default() },
            _ => {
                left_registry();
                return Err(Errno::NOLCK);
            }
        };
        // Chunks another process added since: mapped before any is used.
        if self.map.cover_all().is_err() {
            if r == libc::EOWNERDEAD {
                // Nothing can be repaired that cannot be reached: unlocked
                // without being made consistent, the mutex is unusable from
                // now on, and every lock call fails closed (ENOLCK).
                // SAFETY: we hold the mutex.
                unsafe { libc::pthread_mutex_unlock(self.mutex()) };
                core::mem::forget(guard);
                left_registry();
                return Err(Errno::NOLCK);
            }
            drop(guard);
            return Err(Errno::NOLCK);
        }
        crate::fault::point(crate::fault::Point::HoldingMutex);
        if r == libc::EOWNERDEAD {
            self.header().repairs.fetch_add(1, Ordering::Relaxed);
            let (mut t, wake) = guard.split();
            let mut touched = WakeSet::default();
            t.repair(&mut |f| touched.add(f));
            wake.absorb(&t.files, &touched);
            // SAFETY: we hold the (inconsistent) mutex and have repaired it.
            unsafe { libc::pthread_mutex_consistent(self.mutex()) };
        }
        Ok(guard)
    }

    /// Takes the registry mutex in slices of at most 50 ms. When an owner
    /// dies, the kernel wakes one waiter of the robust mutex; if that waiter
    /// is killed too, the wake is lost and the others would sleep forever
    /// on a free mutex. A bounded wait turns a lost wake into one slice.
    fn lock_mutex(&self) -> i32 {
        // Uncontended: no clock read.
        // SAFETY: the mutex was initialised by the segment's creator and
        // stays at this address.
        let r = unsafe { libc::pthread_mutex_trylock(self.mutex()) };
        if r != libc::EBUSY {
            return r;
        }
        loop {
            let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: `now` is a valid timespec to fill.
            unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
            let mut until = libc::timespec { tv_sec: now.tv_sec, tv_nsec: now.tv_nsec + 50_000_000 };
            if until.tv_nsec >= 1_000_000_000 {
                until.tv_sec += 1;
                until.tv_nsec -= 1_000_000_000;
            }
            // SAFETY: the mutex was initialised by the segment's creator and
            // stays at this address; `until` is a valid absolute time.
            let r = unsafe { libc::pthread_mutex_timedlock(self.mutex(), &until) };
            if r != libc::ETIMEDOUT {
                return r;
            }
        }
    }

    /// Unmaps a registry attached with `attach_named` (tools only: the
    /// process's own registry stays mapped for its lifetime).
    ///
    /// # Safety
    /// No guard or reference into this mapping may outlive the call.
    pub unsafe fn detach(self) {
        let (base, len) = self.map.newest();
        // SAFETY: per the contract (only the newest mapping of a tool's
        // attach goes; older ones, if any, stay).
        unsafe { sys::unmap(base, len) };
        if core::ptr::eq(self.map, &NAMED) {
            NAMED_BUSY.store(false, Ordering::Release);
        }
    }

    /// The segment file's path (as attached).
    pub fn path(&self) -> Option<&'static core::ffi::CStr> {
        self.map.path()
    }

    /// Anchors that exist now (the anchor table grows, see `grow_lives`).
    pub fn lives(&self) -> u32 {
        let have = self.map.chunks().have[Table::Lives as usize].load(Ordering::Acquire);
        (Table::Lives.slots_in(have.min(Table::Lives.max_chunks())) as u32).min(LIVES)
    }

    /// Adds a chunk of anchors, unless another process did since `seen`
    /// were counted; false when none can be added.
    pub fn grow_lives(&self, seen: u32) -> bool {
        let Ok(g) = self.lock() else { return false };
        let ok = self.lives() > seen || g.map.add_chunk(Table::Lives);
        drop(g);
        ok
    }

    /// Anchor `k`'s shared life slot (it lives as long as the process).
    pub fn life(&self, k: u32) -> Option<&'static LifeSlot> {
        let p = self.map.slot_ptr(Table::Lives, k as usize)?;
        // SAFETY: the slot exists and is mapped for good; its fields are
        // atomics.
        Some(unsafe { &*(p as *const LifeSlot) })
    }

    /// The header's nonce counter.
    pub fn header_nonce(&self) -> &'static AtomicU64 {
        &self.map.header().nonce
    }

    /// The futex word of waiter slot `i` (it lives as long as the process).
    pub fn waiter_word(&self, i: u32) -> Option<&'static AtomicU32> {
        super::waiters::waiter_word(self.map, i)
    }
}

/// Waiters picked beyond a guard's own 64, to wake once its mutex is dropped
/// (a release that frees thousands at once); one guard of the process uses
/// it at a time (`SPILL_BUSY`). Lazily mapped, so it costs nothing unused.
static SPILL: crate::lazy::LazyU32 = crate::lazy::LazyU32::new();
static SPILL_BUSY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Files whose waiters to pick (and wake, once the mutex is dropped).
pub struct WakeSet {
    files: [u32; 128],
    n: usize,
    all: bool,
}

impl Default for WakeSet {
    fn default() -> Self {
        WakeSet { files: [NIL; 128], n: 0, all: false }
    }
}

impl WakeSet {
    /// Marks file `f`'s waiters for waking: its futex word changes now,
    /// under the mutex, so a waiter that read the old value never sleeps
    /// through; the wake itself happens when the guard drops.
    pub fn notify(&mut self, files: &Slab<'_, FileSlot>, f: u32) {
        if files.get(f as usize).is_some_and(|slot| slot.whead != NIL) {
            self.add(f);
        }
    }

    /// Notifies every file collected in `touched` (see `notify`).
    pub fn absorb(&mut self, files: &Slab<'_, FileSlot>, touched: &WakeSet) {
        for &f in &touched.files[..touched.n] {
            self.notify(files, f);
        }
        // Which files were touched is lost: the guard then changes every
        // file's word and wakes those with sleepers.
        self.all |= touched.all;
    }

    /// Collects `f` without notifying it yet (for use inside a walk that
    /// borrows the tables).
    pub fn add(&mut self, f: u32) {
        if self.files[..self.n].contains(&f) {
            return;
        }
        if self.n == self.files.len() {
            self.all = true;
        } else {
            self.files[self.n] = f;
            self.n += 1;
        }
    }
}

/// The held registry mutex.
pub struct Guard {
    map: &'static Mapping,
    mutex: *mut libc::pthread_mutex_t,
    wake: WakeSet,
}

impl Guard {
    /// The tables and the wake set, borrowed for as long as the guard.
    pub fn split(&mut self) -> (Tables<'_>, &mut WakeSet) {
        // SAFETY: see `tables`; the wake set is process-local.
        let t = unsafe { tables_at(self.map) };
        (t, &mut self.wake)
    }

    /// The tables, borrowed for as long as the guard.
    pub fn tables(&mut self) -> Tables<'_> {
        // SAFETY: we hold the mutex, and the mapping covers every chunk
        // (see `tables_at`).
        unsafe { tables_at(self.map) }
    }
}

impl Guard {
    /// Drops the mutex and leaves the registry (the guard's last step).
    fn unlock(&self) {
        // SAFETY: this guard holds the mutex.
        unsafe { libc::pthread_mutex_unlock(self.mutex) };
        crate::fault::point(crate::fault::Point::AfterUnlock);
        left_registry();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if cfg!(debug_assertions) || crate::config::verify_each() {
            // The cross-table invariants (see the module header), after
            // every operation.
            // SAFETY: we still hold the mutex.
            if let Err(why) = unsafe { tables_at(self.map) }.verify() {
                let mut buf = [0u8; 160];
                let mut c = crate::fmt::Cursor::new(&mut buf);
                let _ =
                    core::fmt::Write::write_fmt(&mut c, format_args!("qnxcompat: registry invariant broken: {why}\n"));
                let n = c.len();
                let _ = sys::write(2, &buf[..n]);
                // SAFETY: abort has no preconditions; the registry's next
                // user repairs it (the mutex is robust).
                unsafe { libc::abort() };
            }
        }
        if self.wake.n == 0 && !self.wake.all {
            // Nothing released where anyone waits (every uncontended call).
            self.unlock();
            return;
        }
        // Pick the waiters that the changes grant, under the mutex; wake
        // them once it is dropped. Too many to remember: wake them now.
        let mut woken = [NIL; 64];
        let mut n = 0;
        // Past 64, the process-wide overflow list, when no other guard of
        // this process uses it (a thread or a handler of this thread may be
        // waking from it): else the wake happens now, under the mutex.
        let mut spill = 0usize;
        let mut spilling = false;
        {
            let map = self.map;
            let mut wake = |w: u32| {
                if n < woken.len() {
                    woken[n] = w;
                    n += 1;
                    return;
                }
                if !spilling && spill == 0 {
                    spilling = !SPILL_BUSY.swap(true, Ordering::Acquire);
                }
                match SPILL.get_or_map(spill).filter(|_| spilling) {
                    Some(e) => {
                        e.store(w, Ordering::Relaxed);
                        spill += 1;
                    }
                    None => super::waiters::wake_waiter(map, w),
                }
            };
            // SAFETY: we still hold the mutex.
            let mut t = unsafe { tables_at(self.map) };
            if self.wake.all {
                // More files than the set holds: every file with waiters
                // (a repair, or a release across more than 128 files).
                for f in 0..t.file_high() as u32 {
                    if t.files.get(f as usize).is_some_and(|s| s.in_use == 1 && s.whead != NIL) {
                        t.pick_waiters(f, &mut wake);
                    }
                }
            } else {
                for &f in &self.wake.files[..self.wake.n] {
                    t.pick_waiters(f, &mut wake);
                }
            }
        }
        self.unlock();
        for &w in &woken[..n] {
            super::waiters::wake_waiter(self.map, w);
        }
        if spilling {
            for e in (0..spill).filter_map(|i| SPILL.get(i)) {
                super::waiters::wake_waiter(self.map, e.load(Ordering::Relaxed));
            }
            SPILL_BUSY.store(false, Ordering::Release);
        }
    }
}
