//! Recorded file mappings (QNX lockf's mapped-file rule).

use super::layout::*;
use super::*;

impl Tables<'_> {
    /// Records that `owner` mapped `[addr, addr + len)` of `file`; ENOMEM
    /// when the mapping table is full.
    pub fn add_map(&mut self, owner: u32, file: u32, addr: u64, len: u64) -> Result<(), Errno> {
        let maps = &self.maps;
        let f = &mut *self.free;
        let m = slab_take(&mut f.map, &mut f.map_high, self.map, Table::Maps, |i| maps.get(i as usize).map(|m| m.next))
            .ok_or(Errno::NOMEM)?;
        let (Some(o), true) = (self.owners.get_mut(owner as usize), (file as usize) < self.files.len()) else {
            return Err(Errno::NOMEM);
        };
        let head = o.map_head;
        o.map_head = m;
        o.nmaps += 1;
        self.files[file as usize].mappings += 1;
        self.maps[m as usize] = MapSlot { owner, file, next: head, in_use: 1, addr, len };
        Ok(())
    }

    /// Forgets the part of `owner`'s mappings inside `[addr, addr + len)`
    /// (munmap, MAP_FIXED over a mapping, mremap); returns how many mapping
    /// records went. A mapping split in two keeps its whole record when no
    /// slot is free: a mapping wrongly kept only makes lockf refuse, never
    /// lets it lock a mapped file.
    pub fn unmap_range(&mut self, owner: u32, addr: u64, len: u64) -> u32 {
        let end = addr.saturating_add(len);
        let mut removed = 0;
        let mut prev = NIL;
        let mut m = self.owners.get(owner as usize).map_or(NIL, |o| o.map_head);
        for _ in 0..MAPS {
            let Some(slot) = self.maps.get(m as usize) else { break };
            let (next, file, a, b) = (slot.next, slot.file, slot.addr, slot.addr.saturating_add(slot.len));
            if a >= end || b <= addr {
                prev = m;
                m = next;
                continue;
            }
            match (a < addr, b > end) {
                (true, true) => {
                    // The hole is in the middle: keep the left piece here and
                    // record the right piece as a new mapping (it goes on the
                    // list head, behind this walk).
                    if self.add_map(owner, file, end, b - end).is_ok() {
                        self.maps[m as usize].len = addr - a;
                    }
                }
                (true, false) => {
                    self.maps[m as usize].len = addr - a;
                }
                (false, true) => {
                    self.maps[m as usize].addr = end;
                    self.maps[m as usize].len = b - end;
                }
                (false, false) => {
                    slab_relink(
                        &mut self.maps,
                        &mut self.owners[owner as usize].map_head,
                        prev,
                        next,
                        |m: &mut MapSlot| &mut m.next,
                    );
                    self.free_map(m, owner, file);
                    removed += 1;
                    m = next;
                    continue;
                }
            }
            prev = m;
            m = next;
        }
        removed
    }

    pub(super) fn free_map(&mut self, m: u32, owner: u32, file: u32) {
        if let Some(o) = self.owners.get_mut(owner as usize) {
            o.nmaps = o.nmaps.saturating_sub(1);
        }
        if let Some(f) = self.files.get_mut(file as usize) {
            f.mappings = f.mappings.saturating_sub(1);
        }
        let s = &mut self.maps[m as usize];
        s.in_use = 0;
        s.next = self.free.map;
        self.free.map = m;
        self.release_file_if_empty(file);
    }

    /// Forgets every mapping of `owner` (it exec'd or died).
    pub fn drop_maps(&mut self, owner: u32) {
        self.unmap_range(owner, 0, u64::MAX);
        if let Some(o) = self.owners.get_mut(owner as usize) {
            o.map_head = NIL;
            o.nmaps = 0;
        }
        self.drop_unrecorded(owner);
    }

    /// Records, when the mapping table is full, that `owner` maps `file`
    /// somewhere (see `OwnerSlot::unrecorded`).
    pub fn add_unrecorded(&mut self, owner: u32, file: u32) {
        let (Some(o), Some(f)) = (self.owners.get(owner as usize), self.files.get(file as usize)) else { return };
        if o.unrecorded == 0 {
            self.free.unrecorded_owners += 1;
        }
        let _ = f;
        self.owners[owner as usize].unrecorded += 1;
        self.files[file as usize].unrecorded += 1;
    }

    /// Forgets `owner`'s unrecorded mappings (it died or exec'd); when no
    /// owner has any left, no file counts as mapped for them any more.
    pub fn drop_unrecorded(&mut self, owner: u32) {
        let Some(o) = self.owners.get_mut(owner as usize) else { return };
        if o.unrecorded == 0 {
            return;
        }
        o.unrecorded = 0;
        self.free.unrecorded_owners = self.free.unrecorded_owners.saturating_sub(1);
        if self.free.unrecorded_owners == 0 {
            for f in 0..self.file_high() {
                if self.files[f].unrecorded != 0 {
                    self.files[f].unrecorded = 0;
                    self.release_file_if_empty(f as u32);
                }
            }
        }
    }

    /// Calls `f` with each owner that has unrecorded mappings, while `f`
    /// returns true (the file marked by them may be any of theirs).
    pub fn for_each_unrecorded(&self, f: &mut dyn FnMut(u32) -> bool) {
        for (i, o) in self.used_owners().enumerate() {
            if o.kind == OWNER_PROCESS && o.unrecorded != 0 && !f(i as u32) {
                return;
            }
        }
    }

    /// Gives `child` a copy of `parent`'s mappings (fork copies them).
    pub fn copy_maps(&mut self, parent: u32, child: u32) -> u32 {
        let mut copied = 0;
        let mut m = self.owners.get(parent as usize).map_or(NIL, |o| o.map_head);
        for _ in 0..MAPS {
            let Some(slot) = self.maps.get(m as usize) else { break };
            let (next, file, addr, len) = (slot.next, slot.file, slot.addr, slot.len);
            if slot.in_use == 1 && self.add_map(child, file, addr, len).is_ok() {
                copied += 1;
            }
            m = next;
        }
        copied
    }

    /// The file of `owner`'s mapping that contains `addr`, if any.
    pub fn mapped_file_at(&self, owner: u32, addr: u64) -> Option<u32> {
        let mut m = self.owners.get(owner as usize).map_or(NIL, |o| o.map_head);
        for _ in 0..MAPS {
            let slot = self.maps.get(m as usize)?;
            if slot.addr <= addr && addr < slot.addr.saturating_add(slot.len) {
                return Some(slot.file);
            }
            m = slot.next;
        }
        None
    }

    /// Calls `f` with the owner of each mapping of `file` (QNX lockf's
    /// mapped-file rule); `f` returns false to stop.
    pub fn for_each_mapper(&self, file: u32, f: &mut dyn FnMut(u32) -> bool) {
        if self.files.get(file as usize).is_none_or(|s| s.mappings == 0) {
            return;
        }
        for m in self.maps.iter_to(self.free.map_high as usize) {
            if m.in_use == 1 && m.file == file && !f(m.owner) {
                return;
            }
        }
    }

    /// Rebuilds owners' mapping lists and files' mapping counts from the
    /// mapping table (repair).
    pub(super) fn relink_maps(&mut self) {
        self.free.map = NIL;
        let high = (self.free.map_high as usize).min(self.maps.len());
        self.free.map_high = high as u32;
        for i in (0..high).rev() {
            let m = &self.maps[i];
            let valid = m.in_use == 1
                && self.owners.get(m.owner as usize).is_some_and(|o| o.kind == OWNER_PROCESS)
                && self.files.get(m.file as usize).is_some_and(|f| f.in_use == 1);
            if valid {
                let (owner, file) = (m.owner, m.file);
                let o = &mut self.owners[owner as usize];
                self.maps[i].next = o.map_head;
                o.map_head = i as u32;
                o.nmaps += 1;
                self.files[file as usize].mappings += 1;
            } else {
                self.maps[i].in_use = 0;
                self.maps[i].next = self.free.map;
                self.free.map = i as u32;
            }
        }
    }
}
