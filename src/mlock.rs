//! QNX's memory-locking rules for `mlock`, `munlock`, `mlockall` and
//! `munlockall`, as a pure policy: the hooks ask it what to do, then either
//! fail with its errno, succeed without calling the kernel, or run the real
//! call (so memory really is resident) and pass its errors through.
//!
//! QNX 7.x (the default; the QNX Neutrino C Library Reference, `mlock()`):
//! - locking needs the `PROCMGR_AID_MEM_LOCK` ability, which by default only
//!   root has: without it, EPERM, even where Linux's RLIMIT_MEMLOCK would
//!   allow the call. `QNXCOMPAT_ABILITIES=mem_lock` grants the ability to a
//!   non-root process, as `procmgr_ability()` would on QNX;
//! - `addr` must be a multiple of the page size: EINVAL otherwise (the QNX
//!   page says "must"; EINVAL is POSIX's errno for it);
//! - a range that is not wholly mapped: ENOMEM (checked before privilege, as
//!   QNX's memory manager validates the range first);
//! - `mlockall` with flags 0 or any bit outside MCL_CURRENT|MCL_FUTURE
//!   (there is no MCL_ONFAULT on QNX): EINVAL, before the privilege check;
//! - `munlock` and `munlockall` need no privilege.
//!
//! QNX 8.0 (`QNXCOMPAT_QNX_VERSION=8`): all memory is always locked, so
//! `mlock` only checks that the range is mapped (ENOMEM) and everything else
//! returns 0.

use crate::sys::Errno;

/// Which QNX release's rules apply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    V7,
    V8,
}

/// Who is asking.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Caller {
    pub version: Version,
    /// Effective uid 0, or the PROCMGR_AID_MEM_LOCK ability granted.
    pub privileged: bool,
}

/// What the hook does with a call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Run the real function and return its result.
    Real,
    /// Return 0 without calling the kernel.
    Succeed,
    Fail(Errno),
}

/// `mlock(addr, len)`. `mapped` says whether the range is wholly mapped.
pub fn mlock(c: Caller, addr: usize, page: usize, mapped: &dyn Fn() -> bool) -> Verdict {
    match c.version {
        Version::V8 => {
            if mapped() {
                Verdict::Succeed
            } else {
                Verdict::Fail(Errno::NOMEM)
            }
        }
        Version::V7 => {
            if !addr.is_multiple_of(page) {
                Verdict::Fail(Errno::INVAL)
            } else if !mapped() {
                Verdict::Fail(Errno::NOMEM)
            } else if !c.privileged {
                Verdict::Fail(Errno::PERM)
            } else {
                Verdict::Real
            }
        }
    }
}

/// `mlockall(flags)`.
/// `mlock2(addr, len, flags)`. QNX has no mlock2 (it is Linux's); as a way
/// to lock memory it follows `mlock`'s rules, privilege included (QNX's
/// rule is about locking memory, whatever the call), after its own flags
/// are checked: only `MLOCK_ONFAULT` is known, anything else is EINVAL,
/// before privilege, as `mlockall` checks its flags. (inferred)
pub fn mlock2(c: Caller, addr: usize, page: usize, flags: u32, mapped: &dyn Fn() -> bool) -> Verdict {
    if flags & !MLOCK_ONFAULT != 0 {
        return Verdict::Fail(Errno::INVAL);
    }
    mlock(c, addr, page, mapped)
}

/// Linux's `MLOCK_ONFAULT`.
pub const MLOCK_ONFAULT: u32 = 1;

pub fn mlockall(c: Caller, flags: i32) -> Verdict {
    let known = libc::MCL_CURRENT | libc::MCL_FUTURE;
    match c.version {
        Version::V8 => Verdict::Succeed,
        Version::V7 if flags == 0 || flags & !known != 0 => Verdict::Fail(Errno::INVAL),
        Version::V7 if !c.privileged => Verdict::Fail(Errno::PERM),
        Version::V7 => Verdict::Real,
    }
}

/// `munlock` and `munlockall`: no privilege needed on 7.x; a no-op on 8.0.
pub fn munlock(c: Caller) -> Verdict {
    match c.version {
        Version::V8 => Verdict::Succeed,
        Version::V7 => Verdict::Real,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT7: Caller = Caller { version: Version::V7, privileged: true };
    const USER7: Caller = Caller { version: Version::V7, privileged: false };
    const USER8: Caller = Caller { version: Version::V8, privileged: false };

    #[test]
    fn qnx7_mlock_order_of_checks() {
        assert_eq!(mlock(USER7, 4096, 4096, &|| true), Verdict::Fail(Errno::PERM));
        assert_eq!(mlock(ROOT7, 4096, 4096, &|| true), Verdict::Real);
        assert_eq!(mlock(ROOT7, 4097, 4096, &|| true), Verdict::Fail(Errno::INVAL));
        assert_eq!(mlock(USER7, 4097, 4096, &|| true), Verdict::Fail(Errno::INVAL));
        assert_eq!(mlock(USER7, 4096, 4096, &|| false), Verdict::Fail(Errno::NOMEM));
    }

    #[test]
    fn qnx7_mlockall_flags_before_privilege() {
        assert_eq!(mlockall(USER7, 0), Verdict::Fail(Errno::INVAL));
        assert_eq!(mlockall(USER7, libc::MCL_ONFAULT | libc::MCL_CURRENT), Verdict::Fail(Errno::INVAL));
        assert_eq!(mlockall(USER7, libc::MCL_CURRENT), Verdict::Fail(Errno::PERM));
        assert_eq!(mlockall(ROOT7, libc::MCL_CURRENT | libc::MCL_FUTURE), Verdict::Real);
        assert_eq!(munlock(USER7), Verdict::Real);
    }

    #[test]
    fn qnx8_everything_is_locked() {
        assert_eq!(mlock(USER8, 4097, 4096, &|| true), Verdict::Succeed);
        assert_eq!(mlock(USER8, 4096, 4096, &|| false), Verdict::Fail(Errno::NOMEM));
        assert_eq!(mlockall(USER8, 0), Verdict::Succeed);
        assert_eq!(munlock(USER8), Verdict::Succeed);
    }
}
