//! The shared segment's layout: `repr(C)` structs, their sizes and offsets.
//! No logic lives here.
//!
//! ```text
//! chunk 0:   [Header][Chunks: counts and the chunk directory]
//! chunk 1..: table chunks, in the order they were needed
//! ```
//!
//! The segment grows in `CHUNK`-byte chunks and starts with three (the
//! header, and one bucket and one anchor chunk): a process that maps it stays
//! far under the default `RLIMIT_MEMLOCK`, which `mlockall(MCL_CURRENT)`
//! compares with the whole address space. Each table is a sequence of
//! chunks, its `k`th named by its directory entry `k`, allocated when the
//! table's high-water mark first reaches it; a slot never moves. A chunk is
//! allocated in the file (`fallocate`) before any slot in it is used, so a
//! full `/dev/shm` makes a lock call fail with ENOLCK (lockf: ENOMEM), never
//! a process die of SIGBUS.
//!
//! Locks legend for every field: (c) constant once the creator has published
//! the header; (r) guarded by the registry mutex; (a) atomic, read without
//! the mutex.
//!
//! The segment holds indices, never pointers: every process maps it at its
//! own address. Structs are never `Clone` or `Copy`: the mutex must not move.

use core::sync::atomic::{AtomicU32, AtomicU64};

pub use crate::engine::tree::LockRecord;

/// "QNXCREG1" once the creator has finished initialising.
pub const MAGIC: u64 = u64::from_le_bytes(*b"QNXCREG1");
/// Bumped whenever any struct below changes meaning.
pub const LAYOUT_VERSION: u32 = 5;

/// `Header::mode`: grants are mirrored into the kernel (`crate::mirror`).
pub const MODE_MIRROR: u32 = 1;
/// `Header::mode`: the registry alone decides (`QNXCOMPAT_MIRROR=off`).
pub const MODE_PURE: u32 = 2;

/// Bytes per chunk: the unit the segment grows by.
pub const CHUNK: usize = 32 * 1024;

/// Table capacities: the most slots each table can grow to.
pub const OWNERS: u32 = 16_384;
pub const FILES: u32 = 262_144;
pub const RECORDS: u32 = 1 << 21;
/// Blocked requests registered for deadlock detection.
pub const WAITERS: u32 = 65_536;
/// File mappings (mmap) recorded for lockf's mapped-file rule.
pub const MAPS: u32 = 131_072;
/// Liveness anchors: process images that use the registry at once.
pub const LIVES: u32 = 16_384;
/// Hash buckets of the file table: `BUCKETS_MIN` at first, doubled (and the
/// chains split) whenever there are more files in use than twice as many.
pub const BUCKETS_MIN: u32 = 8192;
pub const BUCKETS_MAX: u32 = 262_144;
/// Records that only unlocks may use, so that an unlock that splits a lock
/// still succeeds when lock requests already get ENOLCK.
pub const UNLOCK_RESERVE: u32 = 256;
/// Where anchor `k`'s two bytes sit in the segment file's offset space (far
/// beyond its end: a kernel lock needs no data under it).
pub const ANCHOR_BASE: i64 = 1 << 40;

#[repr(C)]
pub struct Header {
    /// (a) `MAGIC` once initialised; 0 while the creator works.
    pub magic: AtomicU64,
    /// (c) `LAYOUT_VERSION`.
    pub version: u32,
    /// (c) Table capacities, checked against ours on attach.
    pub owners: u32,
    pub files: u32,
    pub buckets: u32,
    pub records: u32,
    /// (c) `MODE_MIRROR` or `MODE_PURE`: whether grants are mirrored into
    /// the kernel (every process on one segment must agree).
    pub mode: u32,
    /// (c) `CHUNK`, checked on attach.
    pub size: u64,
    /// (a) Number of repairs after a mutex holder died (diagnostics).
    pub repairs: AtomicU32,
    pub _pad1: u32,
    /// (c) `ABI_HASH`: the shape of every struct below, so that two builds
    /// that agree on sizes but not on meaning never share a segment.
    pub abi: u64,
    /// (a) The last identity nonce handed out (see `LifeSlot`).
    pub nonce: AtomicU64,
    /// The registry mutex: robust, process-shared, error-checking. Never
    /// covered by a Rust reference while other processes may lock it.
    pub mutex: libc::pthread_mutex_t,
    pub _pad2: [u8; 24],
    /// (r) The free lists, apart from the mutex so `&mut` never spans it.
    pub free: FreeLists,
    /// (a) Which chunks hold which table (written under the mutex, read by
    /// anyone: atomics, so never covered by a `&mut`).
    pub chunks: Chunks,
}

/// The chunk directory.
#[repr(C)]
pub struct Chunks {
    /// (a) Chunks allocated in the file, the header's own included; the
    /// next one allocated is chunk number `used`.
    pub used: AtomicU32,
    /// (a) Hash buckets in use (a power of two).
    pub nbuckets: AtomicU32,
    /// (a) Chunks each table has, by `Table`: its slots below
    /// `have * per_chunk` exist.
    pub have: [AtomicU32; TABLES],
    /// (a) Table `t`'s chunk `k` is chunk number `dir[DIR_START[t] + k]`.
    pub dir: [AtomicU32; DIR_TOTAL],
}

/// Slots are handed out from a free list, else from above a high-water
/// mark: slots at or above the mark have never been used, so creating the
/// registry touches none of their pages.
#[repr(C)]
pub struct FreeLists {
    /// (r) Head of the free record list (linked through `onext`).
    pub record: u32,
    /// (r) Number of free records, counting those above the mark.
    pub nrecords: u32,
    /// (r) Head of the free file-slot list (linked through `next`).
    pub file: u32,
    /// (r) Head of the free owner-slot list (linked through `next_free`).
    pub owner: u32,
    /// (r) Head of the free waiter list (linked through `next`).
    pub waiter: u32,
    /// (r) Head of the free mapping list (linked through `next`).
    pub map: u32,
    /// (r) High-water marks: slots `>= mark` are unused.
    pub record_high: u32,
    pub file_high: u32,
    pub owner_high: u32,
    pub waiter_high: u32,
    pub map_high: u32,
    /// (r) Process owners made so far (wrapping): a process that found no
    /// owner of its own when this count was current, and finds it
    /// unchanged, still has none (only a creation could give it one), so
    /// it need not scan the owner table again.
    pub proc_created: u32,
    /// (r) Owners with `unrecorded` mappings; when it drops to zero every
    /// file's `unrecorded` is cleared (see `OwnerSlot::unrecorded`).
    pub unrecorded_owners: u32,
    /// (r) Bumped whenever a waiter registers or goes: a sleeping request
    /// re-runs its cycle check when it changed (a grant that ends one
    /// wait can close a cycle around another).
    pub graph_epoch: u32,
    /// (r) Open-file owners made so far (wrapping): a descriptor whose owner
    /// was retired when this count was current, and finds it unchanged,
    /// knows its open file has no owner and no token, without reading
    /// fdinfo.
    pub ofd_created: u32,
    /// (r) File slots in use (the bucket count doubles past twice as many).
    pub files_in_use: u32,
    /// (r) Registered waiters of open-file owners (the deadlock search
    /// takes its faster, per-owner path while there are none).
    pub openfile_waiters: u32,
}

/// The growable tables, as indexes into `Chunks::have` and `DIR_START`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Table {
    Owners = 0,
    Files = 1,
    Waiters = 2,
    Maps = 3,
    Records = 4,
    Lives = 5,
    Buckets = 6,
}

pub const TABLES: usize = 7;

impl Table {
    pub const ALL: [Table; TABLES] =
        [Table::Owners, Table::Files, Table::Waiters, Table::Maps, Table::Records, Table::Lives, Table::Buckets];

    /// (entry size, capacity) of the table.
    #[inline]
    pub const fn shape(self) -> (usize, u32) {
        match self {
            Table::Owners => (size_of::<OwnerSlot>(), OWNERS),
            Table::Files => (size_of::<FileSlot>(), FILES),
            Table::Waiters => (size_of::<WaiterSlot>(), WAITERS),
            Table::Maps => (size_of::<MapSlot>(), MAPS),
            Table::Records => (size_of::<LockRecord>(), RECORDS),
            Table::Lives => (size_of::<LifeSlot>(), LIVES),
            Table::Buckets => (size_of::<u32>(), BUCKETS_MAX),
        }
    }

    /// Slots in the table's first chunk (a slot never straddles two
    /// chunks). Chunk `k` is `CHUNK << k` bytes and holds `per_chunk() << k`
    /// slots: a table doubles as it grows, so its directory stays short
    /// (and fits, with the header, in the segment's first page).
    #[inline]
    pub const fn per_chunk(self) -> u32 {
        (CHUNK / self.shape().0) as u32
    }

    /// Slots in the table's first `k` chunks.
    pub const fn slots_in(self, k: u32) -> u64 {
        (self.per_chunk() as u64) * ((1u64 << k) - 1)
    }

    /// The most chunks the table can have (a table of constants: the
    /// slot look-up runs this on every access).
    #[inline]
    pub const fn max_chunks(self) -> u32 {
        GEOMETRY.max_chunks[self as usize]
    }

    const fn count_max_chunks(self) -> u32 {
        let mut k = 0;
        while self.slots_in(k) < self.shape().1 as u64 {
            k += 1;
        }
        k
    }

    /// Which chunk slot `i` is in, and its index there.
    #[inline]
    pub const fn locate(self, i: usize) -> (u32, usize) {
        let per = self.per_chunk() as usize;
        let q = i / per + 1;
        let k = usize::BITS - 1 - q.leading_zeros();
        (k, i - per * ((1 << k) - 1))
    }

    /// Where the table's directory starts in `Chunks::dir`.
    #[inline]
    pub const fn dir_start(self) -> usize {
        GEOMETRY.dir_start[self as usize]
    }
}

/// The table a slot type lives in: each table has a type of its own, so a
/// `Slab<T>` knows its table's geometry at compile time.
pub trait SlotOf {
    const TABLE: Table;
}

macro_rules! slot_of {
    ($($t:ty => $table:ident),* $(,)?) => {
        $(impl SlotOf for $t {
            const TABLE: Table = Table::$table;
        })*
    };
}

// A hash bucket (`u32`) is the head of a chain of file slots.
slot_of! {
    OwnerSlot => Owners,
    FileSlot => Files,
    WaiterSlot => Waiters,
    MapSlot => Maps,
    LockRecord => Records,
    LifeSlot => Lives,
    u32 => Buckets,
}

/// Each table's chunk count and directory start, computed once.
struct Geometry {
    max_chunks: [u32; TABLES],
    dir_start: [usize; TABLES],
}

const GEOMETRY: Geometry = {
    let mut g = Geometry { max_chunks: [0; TABLES], dir_start: [0; TABLES] };
    let mut at = 0;
    let mut k = 0;
    while k < TABLES {
        g.max_chunks[k] = Table::ALL[k].count_max_chunks();
        g.dir_start[k] = at;
        at += g.max_chunks[k] as usize;
        k += 1;
    }
    g
};

/// The most chunks a segment can have: the header's and every table's.
pub const MAX_CHUNKS: u64 = {
    let mut n = 1;
    let mut k = 0;
    while k < TABLES {
        n += (1u64 << Table::ALL[k].max_chunks()) - 1;
        k += 1;
    }
    n
};

/// Directory entries for every table.
pub const DIR_TOTAL: usize = {
    let mut n = 0;
    let mut k = 0;
    while k < TABLES {
        n += Table::ALL[k].max_chunks() as usize;
        k += 1;
    }
    n
};

/// A liveness anchor (see `crate::liveness`). Anchor `k` is claimed by a
/// process image with a kernel OFD write lock on bytes
/// `ANCHOR_BASE + 2k .. + 2k + 1` of the segment file, held through an open
/// file that only a one-page `MADV_DONTFORK` mapping refers to: the kernel
/// drops it when the image ends (exit, crash, exec). The claimer then
/// publishes its nonce here; an owner is alive exactly while its anchor is
/// locked and still carries its nonce.
#[repr(C)]
pub struct LifeSlot {
    /// (a) The nonce of the image that claimed the anchor last.
    pub nonce: AtomicU64,
    /// (a) Its pid, in its own pid namespace (diagnostics only).
    pub pid: AtomicU32,
    pub _pad: u32,
}

/// Kinds of lock owner.
pub const OWNER_FREE: u8 = 0;
/// A process image, for fcntl and lockf locks: identified by its nonce and
/// kept alive by its anchor (see `LifeSlot`).
pub const OWNER_PROCESS: u8 = 1;
/// An open file description, for flock(), `F_FLOCK` and Linux OFD locks:
/// identified and kept alive by its kernel token (see `crate::identity`).
pub const OWNER_OPENFILE: u8 = 2;

/// An open file locked through QNX flock() or `F_FLOCK`: F_GETLK reports its
/// locks with `F_FLOCK` set and the pid that took them.
pub const FLAVOR_QNX_FLOCK: u8 = 0;
/// An open file locked through Linux `F_OFD_*`: reported as Linux does, with
/// `l_pid = -1`.
pub const FLAVOR_LINUX_OFD: u8 = 1;

#[repr(C)]
pub struct OwnerSlot {
    /// (r) `OWNER_*`.
    pub kind: u8,
    /// (r) For an open file: `FLAVOR_*`, how its locks are reported.
    pub flavor: u8,
    /// (r) For an open file: bumped at each change of its locks, so that a
    /// liveness verdict probed on its locks of before is not applied to
    /// its locks of after (it names the probe's `Ticket`).
    pub changes: u16,
    /// (r) The process id (F_GETLK's l_pid), in the locker's pid namespace;
    /// for an open file, the process that last started locking through it.
    /// Reported, never used to decide anything.
    pub pid: i32,
    /// (r) A process's identity: the nonce of its anchor. For an open file,
    /// the nonce of the process owner in `locker`.
    pub nonce: u64,
    /// (r) Head of this owner's record list (linked through `onext`/`oprev`).
    pub lock_head: u32,
    /// (r) Number of records this owner holds.
    pub nlocks: u32,
    /// (r) Next free owner slot.
    pub next_free: u32,
    /// (r) Bumped each time the slot is taken, so an old open-file token
    /// never names a new owner.
    pub generation: u32,
    /// (r) For an open file: its file, `(st_dev, st_ino)`.
    pub dev: u64,
    pub ino: u64,
    /// (r) Head of this owner's registered blocked requests.
    pub waiter_head: u32,
    /// (r) How many there are; an owner with waiters is never freed.
    pub nwaiters: u32,
    /// (r) Head of this process's recorded file mappings.
    pub map_head: u32,
    /// (r) How many there are; an owner with mappings is never freed.
    pub nmaps: u32,
    /// (r) Mappings this process made when the mapping table had no slot
    /// left: recorded only as a mark on the file (`FileSlot::unrecorded`),
    /// which stays until every owner with such mappings has exited or
    /// exec'd, so lockf never locks a file that may still be mapped.
    pub unrecorded: u32,
    /// (r) For an open file, with the kernel mirror: the descriptor through
    /// which the process in `nonce` last started locking (it tells apart
    /// two open files holding the same locks; see `locks::resolve`).
    pub fd: i32,
    /// (r) A process's anchor (`LifeSlot` index); NIL for an open file.
    pub anchor: u32,
    /// (r) For an open file: the process owner slot that last started
    /// locking through it (the deadlock graph's "who releases this");
    /// for a process, its own slot.
    pub locker: u32,
    /// The process's life mark: a robust, process-shared mutex that one of
    /// its threads holds. While its futex word names an owner thread without
    /// FUTEX_OWNER_DIED, the process is certainly alive (read without the
    /// registry mutex's help or any syscall); the kernel sets OWNER_DIED when
    /// that thread exits, the process dies or execs, and only then is
    /// `/proc` asked.
    pub life: libc::pthread_mutex_t,
}

/// A file mapping made with mmap() by a process, kept so that lockf() can
/// refuse F_LOCK/F_TLOCK on a mapped file whichever process mapped it.
#[repr(C)]
pub struct MapSlot {
    /// (r) The process owner that mapped it.
    pub owner: u32,
    /// (r) The file slot mapped.
    pub file: u32,
    /// (r) Next mapping of the same owner, or next free slot.
    pub next: u32,
    /// (r) 1 while recorded.
    pub in_use: u32,
    /// (r) The mapped address range `[addr, addr + len)`.
    pub addr: u64,
    pub len: u64,
}

/// A blocked request, registered while it sleeps so that other requests'
/// deadlock searches see what it waits for.
#[repr(C)]
pub struct WaiterSlot {
    /// (r) The owner that waits.
    pub owner: u32,
    /// (r) Next waiter of the same owner, or next free slot.
    pub next: u32,
    /// (r) The file slot and the request it waits to be granted.
    pub file: u32,
    pub ltype: u8,
    /// (r) 1 while registered.
    pub in_use: u8,
    /// (r) 1 while its thread sleeps on `wake` (set under the mutex just
    /// before the sleep, cleared at its next pass).
    pub sleeping: u8,
    /// (r) 1 once a release picked it to be woken (see
    /// `Tables::pick_waiters`), until it sleeps again: a picked waiter that
    /// leaves without the lock passes the wake on.
    pub picked: u8,
    pub start: i64,
    pub end: i64,
    /// (r) The process owner slot of the waiting process, and its nonce:
    /// the waiter is its process's while the slot still carries the nonce.
    pub proc_: u32,
    /// (r) Bumped each time the slot is taken: a call's handle on its
    /// registration is (slot, generation).
    pub generation: u32,
    pub nonce: u64,
    /// (r) CLOCK_MONOTONIC of its last wake; a registration not refreshed
    /// for `WAITER_STALE_NS` belongs to a thread that was cancelled.
    pub heartbeat_ns: u64,
    /// (a) The waiting thread's futex word: bumped under the mutex when
    /// the waiter is picked, woken once the mutex is dropped. Each waiter
    /// sleeps on its own word, so a release wakes only the waiters it can
    /// grant (one writer, or every compatible reader), never the crowd.
    pub wake: AtomicU32,
    /// (r) The file's waiters in arrival order: the next and previous
    /// waiter of the same file (`FileSlot::whead`), NIL at the ends.
    pub fnext: u32,
    pub fprev: u32,
    pub _pad: u32,
}

/// How long a registered waiter may go without waking before it is ignored.
/// Registrations end explicitly when the call ends, is cancelled, or its
/// process dies; this only bounds the damage of a thread that vanished any
/// other way (a longjmp out of a signal handler), so it is generous: a busy
/// registry must never make a live waiter look stale.
pub const WAITER_STALE_NS: u64 = 10_000_000_000;

#[repr(C)]
pub struct FileSlot {
    /// (r) The file's identity, `(st_dev, st_ino)`.
    pub dev: u64,
    pub ino: u64,
    /// (r) Root of the file's lock treap.
    pub root: u32,
    /// (r) Next slot in the hash chain, or in the free list.
    pub next: u32,
    /// (r) Records in the treap.
    pub nrecords: u32,
    /// (r) 1 while the slot names a file.
    pub in_use: u32,
    /// Unused (it was the file's futex word; waiters sleep on their own,
    /// `WaiterSlot::wake`); kept so that the layout does not move.
    pub spare: u32,
    /// (r) Recorded mmap() mappings of the file, by any process.
    pub mappings: u32,
    /// (r) Requests asleep on `wake`; a release wakes only when there are
    /// some, so an uncontended unlock makes no syscall. A slot with
    /// sleepers is never freed: they read its futex word.
    pub sleepers: u32,
    /// (r) Registered waiters naming this slot; a slot they name is never
    /// freed.
    pub waiters: u32,
    /// (r) Mappings of this file that the mapping table had no room for
    /// (see `OwnerSlot::unrecorded`): the file counts as mapped while any
    /// owner with such mappings lives.
    pub unrecorded: u32,
    /// (r) The first and last of the file's registered waiters, in arrival
    /// order (`WaiterSlot::fnext`), NIL when none.
    pub whead: u32,
    pub wtail: u32,
    pub _pad: u32,
}

// Layout checks (rustix's check_types): a change here must bump LAYOUT_VERSION.
const _: () = {
    assert!(size_of::<LockRecord>() == 56);
    assert!(size_of::<OwnerSlot>() == 120);
    assert!(core::mem::offset_of!(OwnerSlot, life) % 8 == 0);
    assert!(size_of::<MapSlot>() == 32);
    assert!(size_of::<WaiterSlot>() == 72);
    assert!(size_of::<LifeSlot>() == 16);
    assert!(size_of::<FileSlot>() == 64);
    assert!(size_of::<libc::pthread_mutex_t>() == 40);
    assert!(core::mem::offset_of!(Header, mutex) == 64);
    assert!(core::mem::offset_of!(Header, free) == 128);
    // The header, the free lists and the chunk directory share the first
    // page: the part of the segment that nothing but the library writes.
    assert!(size_of::<Header>() <= 4096);
    assert!(CHUNK.is_multiple_of(4096));
    assert!(BUCKETS_MIN.is_power_of_two() && BUCKETS_MAX.is_power_of_two());
    assert!(BUCKETS_MIN == Table::Buckets.per_chunk());
    assert!(UNLOCK_RESERVE < RECORDS);
    // The geometry table agrees with the tables it describes: each table's
    // chunks just hold its capacity, and the directories follow each other.
    let mut k = 0;
    let mut at = 0;
    while k < TABLES {
        let t = Table::ALL[k];
        assert!(t as usize == k);
        let n = t.max_chunks();
        assert!(n > 0 && t.slots_in(n) >= t.shape().1 as u64 && t.slots_in(n - 1) < t.shape().1 as u64);
        assert!(t.dir_start() == at);
        at += n as usize;
        k += 1;
    }
    assert!(at == DIR_TOTAL);
};

/// FNV-1a over the layout's every size and offset that matters, and its
/// table sizes: two builds with equal hashes agree on the segment's shape.
pub const ABI_HASH: u64 = {
    let parts: [u64; 28] = [
        LAYOUT_VERSION as u64,
        size_of::<Header>() as u64,
        size_of::<LifeSlot>() as u64,
        size_of::<OwnerSlot>() as u64,
        size_of::<FileSlot>() as u64,
        size_of::<WaiterSlot>() as u64,
        size_of::<MapSlot>() as u64,
        size_of::<LockRecord>() as u64,
        CHUNK as u64,
        core::mem::offset_of!(OwnerSlot, life) as u64,
        core::mem::offset_of!(OwnerSlot, nonce) as u64,
        core::mem::offset_of!(OwnerSlot, anchor) as u64,
        core::mem::offset_of!(WaiterSlot, nonce) as u64,
        core::mem::offset_of!(FileSlot, spare) as u64,
        core::mem::offset_of!(FileSlot, whead) as u64,
        core::mem::offset_of!(WaiterSlot, wake) as u64,
        core::mem::offset_of!(LockRecord, owner) as u64,
        OWNERS as u64,
        FILES as u64,
        BUCKETS_MAX as u64,
        RECORDS as u64,
        WAITERS as u64,
        MAPS as u64,
        LIVES as u64,
        ANCHOR_BASE as u64,
        DIR_TOTAL as u64,
        BUCKETS_MIN as u64,
        size_of::<Header>() as u64,
    ];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        let mut b = 0;
        while b < 8 {
            h ^= (parts[i] >> (b * 8)) & 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
            b += 1;
        }
        i += 1;
    }
    h
};
