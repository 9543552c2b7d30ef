//! One lock call's state across its wait slices (`CallState`, the C
//! entry point's `struct qnxcompat_call`), what it met in its way, and how
//! it ended.

use super::*;
use crate::registry::inspect;

/// How a lock call ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Success, with this return value.
    Done(i64),
    Failed(Errno),
    /// A wait slice ended: offer cancellation and call again.
    Again,
    /// A signal interrupted the wait: offer cancellation, then EINTR.
    Interrupted,
    /// The registry is refused: let the kernel do it.
    Native,
    /// The call is about to wait, for the first time (only while tracing):
    /// trace that it starts, then call again.
    Blocked,
}

impl From<Errno> for Outcome {
    fn from(e: Errno) -> Outcome {
        Outcome::Failed(e)
    }
}

/// A conflicting lock, as F_GETLK reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Conflict {
    pub ltype: LockType,
    pub range: Range,
    /// The owning process, or for an open file the process that first
    /// locked through it.
    pub pid: i32,
    /// How the holder reports: a process, a QNX flock-kind open file, or a
    /// Linux OFD open file.
    pub holder: Holder,
}

/// The kind of a conflicting lock's owner, as F_GETLK shows it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Holder {
    Process,
    QnxFlock,
    LinuxOfd,
}

/// State kept across the slices of one blocking call (the C entry point's
/// `struct qnxcompat_call`).
#[repr(C)]
pub struct CallState {
    pub start_ns: u64,
    pub slices: u32,
    /// 1 + the registry waiter slot registered for this call, or 0.
    pub waiter: u32,
    /// That slot's generation: the registration is ours only while the
    /// slot still has it.
    pub waiter_gen: u32,
    /// The thread's caught-signal count when the call began, with
    /// `SIG_ARMED` set once taken (see `crate::signals`).
    pub sig_base: u32,
    /// The registry's graph epoch at this call's last cycle check.
    pub check_epoch: u32,
    /// What the call last met in its way, for its trace line: the holder's
    /// pid (0: unknown), `HELD_*` kind, and the range it holds.
    pub holder_pid: i32,
    pub holder_kind: u32,
    /// 1 once the call's wait was announced (a trace line when it starts).
    pub told: u32,
    pub holder_start: i64,
    pub holder_end: i64,
}

/// `CallState::holder_kind`: nothing met, a registry owner of each kind, or
/// a lock held outside the library (the kernel refused the mirror's lock).
/// The three registry kinds are the listing's (`registry::inspect`).
pub const HELD_NONE: u32 = 0;
pub const HELD_PROCESS: u32 = inspect::KIND_POSIX;
pub const HELD_FLOCK: u32 = inspect::KIND_FLOCK;
pub const HELD_OFD: u32 = inspect::KIND_OFD;
pub const HELD_OUTSIDE: u32 = 4;

const SIG_ARMED: u32 = 1 << 31;

impl CallState {
    /// Takes the thread's signal count at the call's first pass; then
    /// whether a caught signal arrived since.
    pub(super) fn signalled(&mut self) -> bool {
        let now = crate::signals::seen() & !SIG_ARMED;
        if self.sig_base & SIG_ARMED == 0 {
            self.sig_base = now | SIG_ARMED;
            return false;
        }
        self.sig_base & !SIG_ARMED != now
    }

    pub(super) fn waiter(&self) -> Option<u32> {
        self.waiter.checked_sub(1)
    }

    /// Remembers the holder of a conflicting registry record.
    pub(super) fn met(&mut self, t: &Tables, rec: u32) {
        let Some(r) = t.records.get(rec as usize) else { return };
        let Some(o) = t.owners.get(r.owner as usize) else { return };
        self.holder_pid = o.pid;
        self.holder_kind = inspect::kind_of(o);
        self.holder_start = r.start;
        self.holder_end = r.end;
    }

    /// Remembers the holder F_TEST or F_GETLK reported.
    pub fn met_conflict(&mut self, c: &Conflict) {
        self.holder_pid = c.pid;
        self.holder_kind = match c.holder {
            Holder::Process => HELD_PROCESS,
            Holder::QnxFlock => HELD_FLOCK,
            Holder::LinuxOfd => HELD_OFD,
        };
        self.holder_start = c.range.start;
        self.holder_end = c.range.end;
    }

    /// Remembers a lock held outside the library over `q`.
    pub(super) fn met_outside(&mut self, q: Range) {
        self.holder_pid = 0;
        self.holder_kind = HELD_OUTSIDE;
        self.holder_start = q.start;
        self.holder_end = q.end;
    }

    /// Whether the wait about to start should first be announced (only
    /// while tracing, once per call).
    pub(super) fn announce(&mut self) -> bool {
        if self.told != 0 || !crate::config::tracing_any() {
            return false;
        }
        self.told = 1;
        true
    }
}
