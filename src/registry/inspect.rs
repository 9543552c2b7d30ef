//! Reading the registry for people: the rows behind `qnxcompat locks` and
//! the figures behind `qnxcompat doctor`.
//!
//! A listing never holds the mutex for longer than a lock call does: it
//! copies at most [`BATCH`] rows, from at most [`SCAN`] slots, per hold,
//! then drops the mutex before handing them on. Each row is true at the
//! instant of its batch; the listing as a whole is a sequence of such
//! instants, as `/proc/locks` read page by page is.

use super::layout::*;
use super::*;

/// Rows copied per hold of the mutex.
pub const BATCH: usize = 128;
/// Slots looked at per hold of the mutex.
const SCAN: usize = 4096;

/// What a row is.
pub const ROW_LOCK: u32 = 1;
pub const ROW_WAITER: u32 = 2;

/// Lock kinds, as `lslocks` names them.
pub const KIND_POSIX: u32 = 1;
pub const KIND_FLOCK: u32 = 2;
pub const KIND_OFD: u32 = 3;

/// One lock or one blocked request. The C layout is the public one
/// (`struct qnxcompat_lock_row` in `<qnxcompat.h>`).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Row {
    /// `ROW_LOCK` or `ROW_WAITER`.
    pub what: u32,
    /// `KIND_*`.
    pub kind: u32,
    /// `F_RDLCK` or `F_WRLCK`.
    pub ltype: i32,
    /// The owner's pid (for an open file: the process that last started
    /// locking through it), in the registry's creator's namespace.
    pub pid: i32,
    /// The range, inclusive; `end == i64::MAX` runs to end of file.
    pub start: i64,
    pub end: i64,
    pub dev: u64,
    pub ino: u64,
    /// The owner's slot and generation: an owner's identity in a listing.
    pub owner: u32,
    pub owner_gen: u32,
    /// 1 when a live thread holds the owner's life mark (certainly alive);
    /// 0 proves nothing either way.
    pub alive: u32,
    /// For a waiter: the owner of the first lock that blocks it, its pid
    /// and kind (`u32::MAX`, 0, 0: none now, it is about to be granted).
    pub blocker: u32,
    pub blocker_pid: i32,
    pub blocker_kind: u32,
    /// For a waiter: the pid of the waiting process.
    pub waiter_pid: i32,
    pub _pad: u32,
}

/// The registry's figures, for `qnxcompat doctor`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Health {
    pub layout_version: u32,
    /// `MODE_MIRROR` (1) or `MODE_PURE` (2).
    pub mode: u32,
    pub abi: u64,
    /// Bytes of the segment in use (chunks allocated times their size).
    pub bytes: u64,
    pub process_owners: u32,
    pub openfile_owners: u32,
    /// Process owners no live thread vouches for (dead, or alive with its
    /// marking thread gone: `qnxcompat_reap` probes them).
    pub unvouched: u32,
    pub owners_cap: u32,
    pub records: u32,
    pub records_cap: u32,
    pub files: u32,
    pub files_cap: u32,
    pub waiters: u32,
    pub waiters_cap: u32,
    pub maps: u32,
    pub maps_cap: u32,
    pub repairs: u32,
    pub _pad: u32,
}

/// An owner's kind, as `KIND_*`.
pub fn kind_of(o: &OwnerSlot) -> u32 {
    match (o.kind, o.flavor) {
        (OWNER_PROCESS, _) => KIND_POSIX,
        (_, FLAVOR_LINUX_OFD) => KIND_OFD,
        _ => KIND_FLOCK,
    }
}

fn ltype_c(t: u8) -> i32 {
    match LockType::from_raw(t) {
        Some(LockType::Read) => libc::F_RDLCK,
        _ => libc::F_WRLCK,
    }
}

/// Fills `out` with the rows `row` makes of slots `*at` on (at most `SCAN`
/// slots, below `high`), moving `*at` past them; returns how many.
fn scan(at: &mut usize, high: usize, out: &mut [Row], row: &dyn Fn(usize) -> Option<Row>) -> usize {
    let mut n = 0;
    let stop = (*at).saturating_add(SCAN).min(high);
    while *at < stop && n < out.len() {
        if let Some(r) = row(*at) {
            out[n] = r;
            n += 1;
        }
        *at += 1;
    }
    n
}

impl Tables<'_> {
    /// Copies the live records from slot `*at` on into `out` (at most
    /// `out.len()` rows, from at most `SCAN` slots) and moves `*at` past
    /// them; returns how many. `*at` reaching the high-water mark ends it.
    pub fn lock_rows(&self, at: &mut usize, out: &mut [Row]) -> usize {
        scan(at, self.record_high(), out, &|i| {
            let r = self.records.get(i).filter(|r| r.state == RECORD_LIVE)?;
            Some(Row {
                what: ROW_LOCK,
                ltype: ltype_c(r.ltype),
                start: r.start,
                end: r.end,
                ..self.row_of(r.owner, r.file)?
            })
        })
    }

    /// As `lock_rows`, for the registered waiters, each with the owner of
    /// the first lock that blocks it now.
    pub fn waiter_rows(&self, at: &mut usize, out: &mut [Row]) -> usize {
        scan(at, self.waiter_high(), out, &|i| {
            let w = self.waiters.get(i).filter(|w| w.in_use != 0 && 0 <= w.start && w.start <= w.end)?;
            let t = LockType::from_raw(w.ltype)?;
            let mut row = Row {
                what: ROW_WAITER,
                ltype: ltype_c(w.ltype),
                start: w.start,
                end: w.end,
                alive: 1,
                ..self.row_of(w.owner, w.file)?
            };
            row.waiter_pid = self.owners.get(w.proc_ as usize).map_or(row.pid, |p| p.pid);
            if let Ok(Some(b)) = self.first_conflict(w.file, w.owner, t, Range::new(w.start, w.end))
                && let Some(rec) = self.records.get(b as usize)
                && let Some(bo) = self.owners.get(rec.owner as usize)
            {
                row.blocker = rec.owner;
                row.blocker_pid = bo.pid;
                row.blocker_kind = kind_of(bo);
            }
            Some(row)
        })
    }

    /// What a row says of its owner and file.
    fn row_of(&self, owner: u32, file: u32) -> Option<Row> {
        let (o, f) = (self.owners.get(owner as usize)?, self.files.get(file as usize)?);
        Some(Row {
            kind: kind_of(o),
            pid: o.pid,
            dev: f.dev,
            ino: f.ino,
            owner,
            owner_gen: o.generation,
            alive: u32::from(o.kind == OWNER_PROCESS && owners::life_says_alive(o)),
            blocker: u32::MAX,
            ..Row::default()
        })
    }

    /// The registry's figures (what can be counted under one hold: the
    /// tables' high-water marks bound the scan).
    pub fn health(&self) -> Health {
        let header = self.map.header();
        let mut h = Health {
            layout_version: header.version,
            mode: header.mode,
            abi: header.abi,
            bytes: u64::from(header.chunks.used.load(Ordering::Acquire)) * CHUNK as u64,
            owners_cap: OWNERS,
            records: RECORDS - self.free.nrecords,
            records_cap: RECORDS,
            files: self.free.files_in_use,
            files_cap: FILES,
            waiters_cap: WAITERS,
            maps_cap: MAPS,
            repairs: header.repairs.load(Ordering::Relaxed),
            ..Health::default()
        };
        for o in self.used_owners() {
            match o.kind {
                OWNER_PROCESS => {
                    h.process_owners += 1;
                    if !owners::life_says_alive(o) {
                        h.unvouched += 1;
                    }
                }
                OWNER_OPENFILE => h.openfile_owners += 1,
                _ => {}
            }
        }
        h.waiters = self.waiters.iter_to(self.waiter_high()).filter(|w| w.in_use != 0).count() as u32;
        h.maps = self.maps.iter_to((self.free.map_high as usize).min(self.maps.len())).filter(|m| m.in_use != 0).count()
            as u32;
        h
    }
}

// The C layouts of `<qnxcompat.h>`.
const _: () = assert!(core::mem::size_of::<Row>() == 80 && core::mem::offset_of!(Row, owner) == 48);
const _: () = assert!(core::mem::size_of::<Health>() == 80 && core::mem::offset_of!(Health, repairs) == 72);
