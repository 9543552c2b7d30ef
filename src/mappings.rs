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

use crate::local;
use crate::owner;
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
    let Ok(file) = crate::locks::OpenFile::of(fd) else { return };
    if !file.regular {
        return;
    }
    let Reach::Ready(reg) = registry::reach(true) else { return };
    let Ok(mut g) = reg.lock() else { return };
    let mut t = g.tables();
    let Ok(me) = t.process_owner(owner::current(), local::owner_hint()) else { return };
    local::set_owner_hint(me);
    t.hold_life(me);
    let Ok(file) = t.file_slot(file.dev, file.ino) else { return };
    if t.add_map(me, file, addr as u64, pages(len)).is_ok() {
        adjust(1);
    } else {
        t.release_file_if_empty(file);
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
/// records must exist before either process can act. The registry mutex is
/// held across the real fork, and the parent records the child's copies
/// before letting go; a child that unmaps at once waits for the mutex and
/// finds its records. (The child keeps this process's count of records.)
pub fn fork_mapped(real_fork: &dyn Fn() -> libc::pid_t) -> libc::pid_t {
    let Some(reg) = registry::attached() else { return real_fork() };
    let Ok(mut g) = reg.lock() else { return real_fork() };
    let pid = real_fork();
    if pid == 0 {
        // The child does not own the mutex (the parent's thread does), so it
        // must neither unlock it nor run the guard's wake-ups.
        core::mem::forget(g);
        return pid;
    }
    if pid > 0 {
        let mut t = g.tables();
        if let (Some(parent), Some(child)) = (own_slot(&t), owner::identity_of(pid))
            && let Ok(c) = t.new_owner(registry::layout::OWNER_PROCESS, 0, child.pid, child.starttime, 0, 0)
        {
            t.copy_maps(parent, c);
        }
    }
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
    let me = owner::current();
    let hint = local::owner_hint();
    let is_me = |o: &registry::layout::OwnerSlot| {
        o.kind == registry::layout::OWNER_PROCESS && o.pid == me.pid && o.starttime == me.starttime
    };
    if t.owners.get(hint as usize).is_some_and(is_me) {
        return Some(hint);
    }
    t.used_owners().iter().position(is_me).map(|i| i as u32)
}
