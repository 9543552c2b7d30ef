//! File mappings, recorded for QNX lockf()'s rule: "EAGAIN: The function
//! argument is F_LOCK or F_TLOCK and the file is mapped with mmap()".
//!
//! Each process records in the registry the regular files it maps (shared
//! or private: the QNX page says "mapped with mmap()", and either way sends
//! the resource manager an `_IO_MMAP`), so the rule holds whichever process
//! mapped the file. `munmap`, `MAP_FIXED` over a mapping and `mremap` adjust
//! the records, partial unmaps included; exec drops them (the new image has
//! none of the old mappings); a fork child gets a copy; a dead process's
//! records are reaped with its locks.
//!
//! Programs that map no files pay nothing: a process-local count of its
//! records lets munmap skip the registry when it is zero.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::engine::tree::NIL;
use crate::local;
use crate::registry::{self, Reach};
use crate::sys;

/// This process's mapping records.
static MAPPED: AtomicU32 = AtomicU32::new(0);

/// A length as the kernel counts it: whole pages.
fn pages(len: usize) -> u64 {
    let page = sys::page_size();
    len.div_ceil(page) as u64 * page as u64
}

fn adjust(delta: i64) {
    let now = MAPPED.load(Ordering::Relaxed) as i64;
    MAPPED.store((now + delta).max(0) as u32, Ordering::Relaxed);
}

/// After a successful mmap: records a mapping of a regular file.
pub fn mapped(addr: usize, len: usize, flags: i32, fd: i32) {
    if flags & libc::MAP_FIXED != 0 && MAPPED.load(Ordering::Relaxed) > 0 {
        unmapped(addr, len);
    }
    if fd < 0 || flags & libc::MAP_ANONYMOUS != 0 || len == 0 {
        return;
    }
    let Ok(file) = crate::identity::FileRef::of(fd) else { return };
    if !file.regular {
        return;
    }
    let Reach::Ready(reg) = registry::reach(true) else { return };
    let Ok(id) = crate::liveness::ensure(&reg) else { return };
    let Ok(mut g) = reg.lock() else { return };
    let mut t = g.tables();
    let Ok(me) = t.process_owner(id.nonce, id.anchor, id.pid, local::owner_hint()) else { return };
    local::set_owner_hint(me);
    t.hold_life(me);
    let Ok(file) = t.file_slot(file.dev, file.ino) else { return };
    if t.add_map(me, file, addr as u64, pages(len)).is_ok() {
        adjust(1);
    } else {
        // No slot left: the file is marked mapped until this process is
        // gone (or execs), rather than not at all.
        t.add_unrecorded(me, file);
    }
}

/// After a successful munmap (or before a MAP_FIXED mapping replaces one):
/// forgets the unmapped part of this process's file mappings.
pub fn unmapped(addr: usize, len: usize) {
    if MAPPED.load(Ordering::Relaxed) == 0 {
        return;
    }
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    let mut t = g.tables();
    let Some(me) = own_slot(&t) else { return };
    let before = t.owners[me as usize].nmaps as i64;
    t.unmap_range(me, addr as u64, pages(len));
    adjust(t.owners[me as usize].nmaps as i64 - before);
}

/// After a successful mremap: the file mapped at `old` is now mapped at
/// `new` for `new_len` bytes (moved, or shrunk or grown in place).
pub fn remapped(old: usize, old_len: usize, new: usize, new_len: usize) {
    if MAPPED.load(Ordering::Relaxed) == 0 {
        return;
    }
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    let mut t = g.tables();
    let Some(me) = own_slot(&t) else { return };
    let Some(file) = t.mapped_file_at(me, old as u64) else { return };
    let (dev, ino) = (t.files[file as usize].dev, t.files[file as usize].ino);
    let before = t.owners[me as usize].nmaps as i64;
    // Cutting the old range out may free the file's slot: find it again.
    t.unmap_range(me, old as u64, pages(old_len));
    if let Ok(file) = t.file_slot(dev, ino) {
        let _ = t.add_map(me, file, new as u64, pages(new_len));
        t.release_file_if_empty(file);
    }
    adjust(t.owners[me as usize].nmaps as i64 - before);
}

/// `fork()` by a process that maps files: the child maps them too, so its
/// records must exist before either process can act. The parent claims the
/// child's anchor and records the child's copies *before* the fork, under
/// the mutex, and lets go of the mutex before forking (no registry lock is
/// held across fork). The child takes the anchor over; a failed fork leaves
/// an owner whose anchor ended with the parent's descriptor, reaped as dead.
pub fn fork_mapped(real_fork: &dyn Fn() -> libc::pid_t) -> libc::pid_t {
    let Some(reg) = registry::attached() else { return real_fork() };
    let Ok(child) = crate::liveness::prepare_child(&reg) else { return real_fork() };
    let mut child_slot = None;
    if let Ok(mut g) = reg.lock() {
        let mut t = g.tables();
        if let Some(parent) = own_slot(&t)
            && let Ok(c) = t.process_owner(child.nonce, child.anchor, 0, NIL)
        {
            t.copy_maps(parent, c);
            child_slot = Some(c);
        }
    }
    let pid = crate::liveness::fork_for_child(&child, real_fork);
    if pid == 0 {
        crate::liveness::become_child(&reg, &child);
        if let Some(c) = child_slot {
            local::set_owner_hint(c);
        }
        return pid;
    }
    crate::liveness::parent_after_fork(&child);
    pid
}

/// At load after an exec: the old image's mappings are gone.
pub fn forget_old_image(t: &mut registry::Tables, me: u32) {
    t.drop_maps(me);
    MAPPED.store(0, Ordering::Relaxed);
}

/// Whether this process has file mappings on record.
pub fn any() -> bool {
    MAPPED.load(Ordering::Relaxed) > 0
}

fn own_slot(t: &registry::Tables) -> Option<u32> {
    t.find_process(crate::liveness::current()?.nonce, local::owner_hint())
}
