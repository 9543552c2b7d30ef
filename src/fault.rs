//! Test-only fault injection: `QNXCOMPAT_FAULT=<point>[:<n>]` makes the
//! process stop for good the n-th time (default: first) it reaches `point`,
//! so a test can SIGKILL it there. Points:
//!
//! - `entry`: at the start of a lock call;
//! - `before-mutex`: just before taking the registry mutex;
//! - `holding-mutex`: just after taking the registry mutex;
//! - `mid-update`: inside a lock update, after an existing record was
//!   detached and before the update completes;
//! - `after-unlock`: just after releasing the registry mutex.
//!
//! Before stopping it prints `qnxcompat: fault <point> reached (pid N)` to
//! stderr so the test knows when to kill. `QNXCOMPAT_FAULT=raise:<point>[:<n>]`
//! instead raises SIGUSR1 in the calling thread there, the n-th time, and
//! goes on: a test's handler then runs at that exact step of a lock call.
//! Unset, a point costs one relaxed atomic load.

use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::sys;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum Point {
    HoldingMutex = 1,
    MidUpdate = 2,
    Entry = 3,
    BeforeMutex = 4,
    AfterUnlock = 5,
}

const POINTS: [Point; 5] =
    [Point::HoldingMutex, Point::MidUpdate, Point::Entry, Point::BeforeMutex, Point::AfterUnlock];

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::HoldingMutex => "holding-mutex",
            Point::MidUpdate => "mid-update",
            Point::Entry => "entry",
            Point::BeforeMutex => "before-mutex",
            Point::AfterUnlock => "after-unlock",
        }
    }
}

/// Whether the armed point raises SIGUSR1 instead of stopping.
static RAISE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The armed point (0: none) and how many more passes before it fires.
static ARMED: AtomicU32 = AtomicU32::new(0);
static REMAINING: AtomicU32 = AtomicU32::new(0);

/// Parses a QNXCOMPAT_FAULT value; called by the constructor.
pub fn arm(value: &[u8]) {
    let (value, raise) = match value.strip_prefix(b"raise:") {
        Some(rest) => (rest, true),
        None => (value, false),
    };
    RAISE.store(raise, Ordering::Relaxed);
    let (name, count) = match value.iter().position(|&c| c == b':') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &b"1"[..]),
    };
    let point = POINTS.into_iter().find(|p| p.name().as_bytes() == name);
    let n = core::str::from_utf8(count).ok().and_then(|s| s.parse::<u32>().ok()).unwrap_or(1).max(1);
    if let Some(p) = point {
        REMAINING.store(n, Ordering::Relaxed);
        ARMED.store(p as u32, Ordering::Release);
    }
}

/// A fault point: stops the process here if armed for it.
pub fn point(p: Point) {
    if ARMED.load(Ordering::Relaxed) != p as u32 {
        return;
    }
    if REMAINING.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    if RAISE.load(Ordering::Relaxed) {
        ARMED.store(0, Ordering::Relaxed);
        let saved = sys::Errno::last();
        sys::raise_in_thread(libc::SIGUSR1);
        saved.set();
        return;
    }
    let mut buf = [0u8; 96];
    let mut c = crate::fmt::Cursor::new(&mut buf);
    let _ = writeln!(c, "qnxcompat: fault {} reached (pid {})", p.name(), sys::getpid());
    let n = c.len();
    let _ = sys::write(2, &buf[..n]);
    loop {
        sys::pause();
    }
}
