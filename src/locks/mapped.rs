//! QNX lockf's mapped-file rule: whether a live process maps the file.

use super::*;

/// What the mapped-file check found.
pub(super) enum MapCheck {
    Mapped,
    Unmapped,
    /// A mapper was dead and is gone: look again.
    Reaped,
    Probe(Vouch),
}

/// Whether a live process maps `file` (QNX lockf's mapped-file rule). The
/// caller's own mappings count.
pub(super) fn mapped_check(t: &mut Tables, wake: &mut WakeSet, me: u32, file: u32, v: &Verdicts) -> MapCheck {
    let mut mappers = [NIL; 16];
    let mut n = 0;
    let mut more = false;
    t.for_each_mapper(file, &mut |o| {
        if !mappers[..n].contains(&o) {
            if n == mappers.len() {
                more = true;
                return false;
            }
            mappers[n] = o;
            n += 1;
        }
        true
    });
    if mappers[..n].contains(&me) {
        return MapCheck::Mapped;
    }
    if t.files.get(file as usize).is_some_and(|f| f.unrecorded != 0) {
        // Mapped by some owner that the mapping table had no room for:
        // mapped while any such owner lives.
        // The first such owner decides: alive, the file counts as mapped;
        // dead, it is reaped and the check runs again.
        let mut first = None;
        t.for_each_unrecorded(&mut |o| {
            first = Some(o);
            false
        });
        if let Some(o) = first {
            if o == me {
                return MapCheck::Mapped;
            }
            return match judge(t, wake, o, v) {
                Judged::Alive => MapCheck::Mapped,
                Judged::Reaped => MapCheck::Reaped,
                Judged::Probe(p) => MapCheck::Probe(p),
            };
        }
    }
    let mut reaped = false;
    for &o in &mappers[..n] {
        match judge(t, wake, o, v) {
            Judged::Alive => return MapCheck::Mapped,
            Judged::Reaped => reaped = true,
            Judged::Probe(p) => return MapCheck::Probe(p),
        }
    }
    if reaped || more { MapCheck::Reaped } else { MapCheck::Unmapped }
}
