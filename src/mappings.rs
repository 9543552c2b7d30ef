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
    let Ok(st) = sys::fstat(fd) else { return };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return;
    }
    let Reach::Ready(reg) = registry::reach(true) else { return };
    let Ok(mut g) = reg.lock() else { return };
    let mut t = g.tables();
    let Ok(me) = t.process_owner(owner::current(), local::owner_hint()) else { return };
    local::set_owner_hint(me);
    let Ok(file) = t.file_slot(st.st_dev, st.st_ino) else {
        t.release_owner_if_idle(me);
        return;
    };
    if t.add_map(me, file, addr as u64, len as u64).is_ok() {
        adjust(1);
    } else {
        t.release_file_if_empty(file);
        t.release_owner_if_idle(me);
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
    t.unmap_range(me, addr as u64, len as u64);
    adjust(t.owners[me as usize].nmaps as i64 - before);
    t.release_owner_if_idle(me);
}

/// After a successful mremap: the file mapped at `old` is now mapped at
/// `new` for `new_len` bytes.
pub fn remapped(old: usize, old_len: usize, new: usize, new_len: usize) {
    if MAPPED.load(Ordering::Relaxed) == 0 {
        return;
    }
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    let mut t = g.tables();
    let Some(me) = own_slot(&t) else { return };
    let Some(file) = t.mapped_file_at(me, old as u64) else { return };
    let before = t.owners[me as usize].nmaps as i64;
    // Record the new place first, so the file never looks unmapped.
    let _ = t.add_map(me, file, new as u64, new_len as u64);
    let span = if new == old { new_len.max(old_len) } else { old_len };
    // Cut the old range out, then restore the new one if they overlapped.
    t.unmap_range(me, old as u64, span as u64);
    if new == old || (new < old + old_len && old < new + new_len) {
        let _ = t.add_map(me, file, new as u64, new_len as u64);
    }
    adjust(t.owners[me as usize].nmaps as i64 - before);
}

/// In a fork child: the child maps what the parent mapped. `parent` is the
/// parent's owner slot.
pub fn inherit(parent: u32) {
    MAPPED.store(0, Ordering::Relaxed);
    if parent == crate::engine::tree::NIL {
        return;
    }
    let Some(reg) = registry::attached() else { return };
    let Ok(mut g) = reg.lock() else { return };
    let mut t = g.tables();
    if t.owners.get(parent as usize).is_none_or(|o| o.nmaps == 0) {
        return;
    }
    let Ok(me) = t.process_owner(owner::current(), crate::engine::tree::NIL) else { return };
    local::set_owner_hint(me);
    adjust(t.copy_maps(parent, me) as i64);
}

/// At load after an exec: the old image's mappings are gone.
pub fn forget_old_image(t: &mut registry::Tables, me: u32) {
    t.drop_maps(me);
    MAPPED.store(0, Ordering::Relaxed);
}

/// Whether this process's parent had mappings recorded (fork handler).
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
