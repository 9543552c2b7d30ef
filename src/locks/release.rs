//! Releases: close, the many-descriptor paths, exec, exit.

use super::*;

/// Releases every lock this process holds on `(dev, ino)`: QNX releases a
/// process's locks on the first close of any descriptor for the file.
/// Safe to call from a signal handler: inside a registry call on this thread
/// the release is deferred to that call's exit.
/// Returns how many lock records it released (0 when the release was
/// deferred).
pub fn release_file(dev: u64, ino: u64) -> u32 {
    if registry::in_registry() {
        local::defer_release(dev, ino);
        return 0;
    }
    let n = release_file_now(dev, ino);
    settle_deferred();
    n
}

pub(super) fn release_file_now(dev: u64, ino: u64) -> u32 {
    let Some(reg) = registry::attached() else { return 0 };
    let Some(me) = liveness::current() else { return 0 };
    let Ok(mut g) = reg.lock() else {
        // The mutex could not be had (a handler interrupted this thread
        // between its flag and the mutex): never drop the release.
        local::defer_release(dev, ino);
        return 0;
    };
    let (mut t, wake) = g.split();
    let Some(slot) = t.find_file(dev, ino) else { return 0 };
    let me_slot = local::owner_hint();
    if !t.owners.get(me_slot as usize).is_some_and(|o| o.kind == OWNER_PROCESS && o.nonce == me.nonce) {
        return 0;
    }
    let mut released = 0;
    if let Ok(n) = t.remove_owner_in_file(slot, me_slot)
        && n > 0
    {
        released = n;
        wake.notify(&t.files, slot);
    }
    local::account(slot, dev, ino, -(local::own_records(slot) as i32));
    t.release_file_if_empty(slot);
    released
}

/// Runs the releases that signal handlers' close() calls deferred while
/// this thread was inside the registry. The hooks call it when a call
/// that used the registry returns; one atomic load when there are none.
pub fn settle_deferred() {
    if !local::has_deferred() || registry::in_registry() {
        return;
    }
    local::take_deferred(&mut |dev, ino| {
        release_file_now(dev, ino);
    });
}

/// The file behind `fd` if this process may hold locks on it; the cheap
/// test every close path runs before closing.
pub fn locked_file_of(fd: i32) -> Option<(u64, u64)> {
    // A vfork child sees its parent's summary but holds none of its locks.
    if !local::holds_any() || owner::in_shared_memory_child() {
        return None;
    }
    let (dev, ino) = match local::fd_lookup(fd) {
        Some(i) => (i.dev, i.ino),
        None => sys::fstat(fd).map(|st| (st.st_dev, st.st_ino)).ok()?,
    };
    local::may_hold(dev, ino).then_some((dev, ino))
}

/// Descriptors of locked files, counted per file before a call that may
/// close many of them (close_range, closefrom, fcloseall) and again after
/// it: every held file that lost a descriptor in the range is released
/// (QNX releases on the first close of any descriptor for the file). The
/// counts are per registry slot, so any number of descriptors and files is
/// settled, none is dropped for want of room.
pub struct FdSnapshot {
    lo: u32,
    hi: u32,
    active: bool,
}

/// Calls `f` with the held slot of every open descriptor in `[lo, hi]`
/// (`pred` filters by descriptor).
pub(super) fn for_each_held_fd(lo: u32, hi: u32, pred: &dyn Fn(i32) -> bool, f: &mut dyn FnMut(u32)) {
    let _ = sys::for_each_open_fd(&mut |fd| {
        if (fd as u32) < lo || (fd as u32) > hi || !pred(fd) {
            return;
        }
        if let Some((dev, ino)) = locked_file_of(fd)
            && let Some(slot) = local::slot_of(dev, ino)
        {
            f(slot);
        }
    });
}

impl FdSnapshot {
    /// Notes how many descriptors in `[lo, hi]` each held file has.
    pub fn take(lo: u32, hi: u32) -> FdSnapshot {
        FdSnapshot { lo, hi, active: local::holds_any() && !owner::in_shared_memory_child() }
    }

    /// Runs `close` between the two counts, then releases the files that
    /// lost a descriptor; also returns how many lock records went.
    pub fn around<R>(self, close: impl FnOnce() -> R) -> (R, u32) {
        if !self.active {
            return (close(), 0);
        }
        let mut released = 0;
        let (lo, hi) = (self.lo, self.hi);
        local::with_slot_scratch(|count| {
            for_each_held_fd(lo, hi, &|_| true, &mut |s| {
                if let Some(c) = count.get(s as usize) {
                    c.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                }
            });
            let r = close();
            for_each_held_fd(lo, hi, &|_| true, &mut |s| {
                if let Some(c) = count.get(s as usize) {
                    let _ = c.fetch_update(
                        core::sync::atomic::Ordering::Relaxed,
                        core::sync::atomic::Ordering::Relaxed,
                        |v| v.checked_sub(1),
                    );
                }
            });
            count.for_each_nonzero(&mut |s, _| {
                if let Some((dev, ino)) = local::held_file(s as u32) {
                    released += release_file(dev, ino);
                }
            });
            (r, released)
        })
    }
}

/// Releases the locks of every file this process holds locks on but no
/// longer has a descriptor for (after exec closed close-on-exec
/// descriptors). Any number of files.
pub fn release_files_without_descriptors() {
    if !local::holds_any() {
        return;
    }
    local::with_slot_scratch(|open| {
        for_each_held_fd(0, u32::MAX, &|_| true, &mut |s| {
            if let Some(o) = open.get(s as usize) {
                o.store(1, core::sync::atomic::Ordering::Relaxed);
            }
        });
        local::for_each_held(&mut |s| {
            if open.load(s as usize, core::sync::atomic::Ordering::Relaxed) == 0
                && let Some((dev, ino)) = local::held_file(s)
            {
                let _ = release_file(dev, ino);
            }
        });
    });
}

/// This image's process owner slot, if it has one.
pub(super) fn find_owner(t: &Tables) -> Option<u32> {
    t.find_process(liveness::current()?.nonce, local::owner_hint())
}

/// Before an exec: marks this process's locks on every file that has a
/// close-on-exec descriptor, since exec's close of it releases them (QNX
/// releases on the first close of any descriptor). The new image drops
/// marked locks when it loads; a failed exec clears the marks. Any number
/// of descriptors and files: the marks are per registry slot.
pub fn mark_for_exec() {
    if !local::holds_any() || owner::in_shared_memory_child() {
        return;
    }
    local::with_slot_scratch(|doomed| {
        let cloexec = |fd: i32| sys::fcntl_int(fd, libc::F_GETFD, 0).is_ok_and(|v| v as i32 & libc::FD_CLOEXEC != 0);
        let mut any = false;
        for_each_held_fd(0, u32::MAX, &cloexec, &mut |s| {
            if let Some(d) = doomed.get(s as usize) {
                d.store(1, core::sync::atomic::Ordering::Relaxed);
            }
            any = true;
        });
        if any {
            set_exec_marks(&mut |slot| doomed.load(slot as usize, core::sync::atomic::Ordering::Relaxed) != 0);
        }
    });
}

/// After a failed exec: nothing was closed, so nothing is released.
pub fn clear_exec_marks() {
    if local::holds_any() && !owner::in_shared_memory_child() {
        set_exec_marks(&mut |_| false);
    }
}

pub(super) fn set_exec_marks(marked: &mut dyn FnMut(u32) -> bool) {
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    let mut t = g.tables();
    let Some(me_slot) = find_owner(&t) else { return };
    t.for_each_owned(me_slot, &mut |_, rec, _| {
        rec.flags = if marked(rec.file) { RECORD_EXEC_RELEASE } else { 0 };
    });
}

/// At load time: if this image was started by an exec that handed its
/// anchor over (`QNXCOMPAT_ADOPT`, see `crate::liveness`), take the anchor,
/// drop the locks exec's closes released, adopt the accounting of the
/// rest, and release files no descriptor refers to any more. Without the
/// variable this costs one `getenv`.
pub fn adopt_after_exec() {
    let Some(value) = sys::getenv(c"QNXCOMPAT_ADOPT") else { return };
    let value = value.to_bytes();
    let mut copy = [0u8; 96];
    let n = value.len().min(copy.len());
    copy[..n].copy_from_slice(&value[..n]);
    // Not for our own children: they are new images.
    sys::unsetenv_in_constructor(c"QNXCOMPAT_ADOPT");
    let Reach::Ready(reg) = registry::reach(false) else { return };
    let Some(me) = liveness::adopt_bridge(&reg, &copy[..n]) else { return };
    {
        let Ok(mut g) = reg.lock() else { return };
        let (mut t, wake) = g.split();
        let Some(me_slot) = t.find_process(me.nonce, NIL) else { return };
        local::set_owner_hint(me_slot);
        // exec made the kernel mark our life mark dead: take it again.
        t.hold_life(me_slot);
        crate::mappings::forget_old_image(&mut t, me_slot);
        let mut doomed = [NIL; 64];
        let mut more = true;
        while more {
            let mut n = 0;
            more = false;
            t.for_each_owned(me_slot, &mut |i, rec, _| {
                if rec.flags & RECORD_EXEC_RELEASE != 0 {
                    if n < doomed.len() {
                        doomed[n] = i;
                        n += 1;
                    } else {
                        more = true;
                    }
                }
            });
            for &i in &doomed[..n] {
                if let Ok(file) = t.remove_record(i) {
                    wake.notify(&t.files, file);
                    t.release_file_if_empty(file);
                }
            }
        }
        t.for_each_owned(me_slot, &mut |_, rec, f| local::account(rec.file, f.dev, f.ino, 1));
    }
    release_files_without_descriptors();
}

/// Releases every lock this process holds (at exit).
pub fn release_all() {
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    let (mut t, wake) = g.split();
    let Some(me_slot) = find_owner(&t) else { return };
    let mut touched = WakeSet::default();
    if t.reap_owner(me_slot, &mut |f| touched.add(f)).is_err() {
        t.repair(&mut |f| touched.add(f));
    }
    wake.absorb(&t.files, &touched);
}
