//! The kernel mirror's side of a request (see `crate::mirror`): the kernel
//! lock a grant takes and the unlock that follows the registry's, the
//! kernel's word on registry locks in the way, F_GETLK's outside holders,
//! waits for them, and the comparison behind `qnxcompat_verify()`.

use super::*;

/// Notes that owner `o`'s locks changed (see `OwnerSlot::changes`).
pub(super) fn changed(t: &mut Tables, o: u32) {
    if let Some(s) = t.owners.get_mut(o as usize) {
        s.changes = s.changes.wrapping_add(1);
    }
}

/// The kernel lock kind that mirrors `spec`'s locks.
pub(super) fn kind_of(spec: OwnerSpec) -> crate::mirror::Kind {
    match spec {
        OwnerSpec::Process => crate::mirror::Kind::Posix,
        OwnerSpec::OpenFile(..) => crate::mirror::Kind::Ofd,
    }
}

/// Takes the kernel mirror of a lock the registry is about to grant: a
/// POSIX or OFD lock on the range, and for a flock() call (the requests
/// that convert) a kernel flock() first and a whole-file OFD lock.
/// `had_none`: the owner held nothing before, so a flock() taken here is
/// undone when the OFD lock is refused.
pub(super) fn kernel_lock(
    fd: i32,
    r: &SetRequest,
    file: &FileRef,
    want: LockType,
    had_none: bool,
) -> Result<(), crate::mirror::Refused> {
    use crate::mirror;
    if r.convert {
        mirror::flock(fd, if want == LockType::Write { libc::LOCK_EX } else { libc::LOCK_SH })?;
        let res = mirror::lock(fd, mirror::Kind::Ofd, want, Range::WHOLE, file.writable);
        if res.is_err() && had_none {
            let _ = mirror::flock(fd, libc::LOCK_UN);
        }
        return res;
    }
    mirror::lock(fd, kind_of(r.owner), want, r.range, file.writable)
}

/// Removes the kernel mirror of an unlock: the range, and for an open-file
/// owner left with nothing (or a flock() unlock) its kernel flock() too.
pub(super) fn kernel_unlock(mirrored: bool, fd: i32, r: &SetRequest, owner_empty: bool) {
    if !mirrored {
        return;
    }
    crate::mirror::unlock(fd, kind_of(r.owner), r.range);
    if matches!(r.owner, OwnerSpec::OpenFile(..)) && (owner_empty || r.convert) {
        let _ = crate::mirror::flock(fd, libc::LOCK_UN);
    }
}

/// After the kernel granted a lock that the registry then could not record
/// (a corrupt treap): puts the kernel back to the owner's registry state on
/// the range, which the failed `set` left as it was.
pub(super) fn kernel_restore(t: &Tables, fd: i32, r: &SetRequest, slot: u32, owner: u32, had_none: bool) {
    use crate::mirror;
    let kind = kind_of(r.owner);
    let q = if r.convert { Range::WHOLE } else { r.range };
    mirror::unlock(fd, kind, q);
    let _ = t.for_each_own_in(slot, owner, q, &mut |lt, piece| {
        let _ = mirror::lock(fd, kind, lt, piece, true);
    });
    if r.convert && had_none {
        let _ = mirror::flock(fd, libc::LOCK_UN);
    }
}

/// A question for the kernel about a registry lock in the way: its owner
/// and generation, the part of it in the way, and the kind to ask as.
#[derive(Clone, Copy)]
pub(super) struct Question {
    owner: u32,
    generation: u32,
    part: Range,
    kind: crate::mirror::Kind,
}

/// What `KernelSeen::judge` knows about a registry lock in the way.
pub(super) enum Seen {
    /// Somebody holds a lock there in the kernel: it stands.
    Held,
    /// Nobody does, confirmed now (under the mutex): the registry's lock is
    /// one nobody holds, to be dropped.
    Stale,
    /// Not asked yet: ask with the mutex dropped (`ask`), then look again.
    Ask(Question),
}

/// The kernel's word on the last registry lock in the way of one call,
/// asked with the registry mutex dropped (a probe), once per call and
/// blocker, so that a waiter's wake-ups make no syscall under the mutex.
/// "Nobody holds it" is asked again under the mutex before anything is
/// dropped: its holder's descriptor was closed behind the registry's back
/// (a process sharing the descriptor table), or the holder is gone. The
/// kernel's answer wins.
#[derive(Default)]
pub(super) struct KernelSeen(Option<(Question, bool)>);

impl KernelSeen {
    /// Record `rec`, another owner's, in the way of a request on `q`.
    pub(super) fn judge(&mut self, t: &Tables, fd: i32, rec: u32, q: Range) -> Seen {
        let Some(n) = t.records.get(rec as usize) else { return Seen::Held };
        let r = n.range();
        let (start, end) = (r.start.max(q.start), r.end.min(q.end));
        if start > end {
            return Seen::Held;
        }
        let owner = t.owners.get(n.owner as usize);
        // As the kind opposite to the holder's: the caller's own locks of
        // that kind never hide it.
        let process = owner.is_some_and(|o| o.kind == OWNER_PROCESS);
        let kind = if process { crate::mirror::Kind::Ofd } else { crate::mirror::Kind::Posix };
        let question = Question {
            owner: n.owner,
            generation: owner.map_or(0, |o| o.generation),
            part: Range::new(start, end),
            kind,
        };
        match self.0 {
            Some((seen, held))
                if seen.owner == question.owner
                    && seen.generation == question.generation
                    && seen.part == question.part =>
            {
                if !held && !crate::mirror::shows_lock(fd, kind, question.part) {
                    self.0 = None;
                    return Seen::Stale;
                }
                Seen::Held
            }
            _ => Seen::Ask(question),
        }
    }

    /// Asks the kernel (call without the mutex).
    pub(super) fn ask(&mut self, fd: i32, q: Question) {
        self.0 = Some((q, crate::mirror::shows_lock(fd, q.kind, q.part)));
    }
}

/// Drops the part on `q` of record `rec`'s owner's locks that the kernel
/// showed nobody holds, waking the file's sleepers.
pub(super) fn drop_stale(t: &mut Tables, wake: &mut WakeSet, slot: u32, rec: u32, q: Range, me: Option<Me>) {
    let Some(n) = t.records.get(rec as usize) else { return };
    let (o, r) = (n.owner, n.range());
    let part = Range::new(r.start.max(q.start), r.end.min(q.end));
    let ours = me.and_then(|m| t.find_process(m.nonce, local::owner_hint())) == Some(o);
    let (dev, ino) = (t.files[slot as usize].dev, t.files[slot as usize].ino);
    match t.set(slot, o, Request::Unlock, part) {
        Ok(out) => {
            if ours {
                local::account(slot, dev, ino, out.delta);
            }
            if out.released {
                wake.notify(&t.files, slot);
            }
        }
        Err(_) => {
            let mut touched = WakeSet::default();
            t.repair(&mut |f| touched.add(f));
            wake.absorb(&t.files, &touched);
        }
    }
    t.release_owner_if_idle(o);
}

/// Between two tries of a request blocked by a lock held outside the
/// library: an interruptible sleep of 1 ms, doubling to 16 ms (the kernel
/// tells nobody when such a lock goes). `Some` ends the pass: the slice is
/// over (`Again`) or a caught signal came (`Interrupted`).
pub(super) fn outside_pause(call: &mut CallState, polls: &mut u32, slice_end: u64) -> Option<Outcome> {
    if call.signalled() {
        return Some(Outcome::Interrupted);
    }
    let now = sys::monotonic_ns();
    if now >= slice_end {
        call.slices += 1;
        return Some(Outcome::Again);
    }
    let nap = (1_000_000u64 << (*polls).min(4)).min(slice_end - now);
    *polls += 1;
    let seen = POLL_WORD.load(core::sync::atomic::Ordering::Acquire);
    crate::signals::sleeping_on(Some(&POLL_WORD));
    if !call.signalled() {
        let _ = sys::futex_wait_shared(&POLL_WORD, seen, nap);
    }
    crate::signals::sleeping_on(None);
    call.signalled().then_some(Outcome::Interrupted)
}

/// With the kernel mirror, after the registry found no conflict: a lock
/// held outside the library, as the kernel reports it (`l_pid` as the
/// kernel gives it: the holder's pid, or -1 for an OFD lock).
pub(super) fn kernel_test(fd: i32, spec: OwnerSpec, t: LockType, q: Range) -> Result<Option<Conflict>, Outcome> {
    if !crate::mirror::on() {
        return Ok(None);
    }
    match crate::mirror::holder(fd, kind_of(spec), t, q) {
        Ok(None) => Ok(None),
        Ok(Some(h)) => Ok(Some(Conflict {
            ltype: h.ltype,
            range: h.range,
            pid: h.pid,
            holder: if h.pid == -1 { Holder::LinuxOfd } else { Holder::Process },
        })),
        Err(e) => Err(Outcome::Failed(e)),
    }
}

/// With the kernel mirror: compares this process's fcntl and lockf locks in
/// the registry with its POSIX locks in `/proc/locks`, both ways (the
/// kernel merges and splits as the registry does, so they match record for
/// record). Ok with the number compared, or what disagrees. Called with the
/// registry locked, so that no call of this process changes either side
/// meanwhile: a diagnostic (`qnxcompat_verify()`), never on a lock path.
pub fn verify_mirror(t: &Tables) -> Result<u32, &'static str> {
    if !crate::mirror::on() {
        return Ok(0);
    }
    let owner = liveness::current().and_then(|me| t.find_process(me.nonce, local::owner_hint()));
    let pid = sys::getpid();
    let mut matched = 0u32;
    let mut bad = None;
    let _ = sys::for_each_line(c"/proc/locks", &mut |line| {
        let Some((lt, lpid, dev, ino, range)) = parse_proc_locks_line(line) else { return true };
        if lpid != pid {
            return true;
        }
        let mut found = false;
        if let (Some(o), Some(slot)) = (owner, t.find_file(dev, ino)) {
            let _ = t.for_each_exact(slot, lt, range, &mut |r| found |= r == o);
        }
        if !found {
            bad = Some("the kernel holds a POSIX lock of this process that its registry owner does not");
            return false;
        }
        matched += 1;
        true
    });
    if let Some(why) = bad {
        return Err(why);
    }
    let held = owner.and_then(|o| t.owners.get(o as usize)).map_or(0, |o| o.nlocks);
    if held != matched {
        return Err("a lock of this process in the registry is missing from the kernel");
    }
    Ok(matched)
}

/// One `/proc/locks` line of a POSIX lock (not a blocked request's `->`
/// line): type, pid, `st_dev`, inode and range.
fn parse_proc_locks_line(line: &[u8]) -> Option<(LockType, i32, u64, u64, Range)> {
    let mut w = line.split(|&c| c == b' ' || c == b'\t').filter(|w| !w.is_empty());
    w.next()?; // "N:"
    if w.next()? != b"POSIX" {
        return None;
    }
    w.next()?; // ADVISORY / MANDATORY
    let lt = match w.next()? {
        b"WRITE" => LockType::Write,
        b"READ" => LockType::Read,
        _ => return None,
    };
    let pid: i32 = core::str::from_utf8(w.next()?).ok()?.parse().ok()?;
    let mut id = w.next()?.split(|&c| c == b':');
    let hex = |b: &[u8]| u32::from_str_radix(core::str::from_utf8(b).ok()?, 16).ok();
    let (maj, min) = (hex(id.next()?)?, hex(id.next()?)?);
    let ino: u64 = core::str::from_utf8(id.next()?).ok()?.parse().ok()?;
    let start: i64 = core::str::from_utf8(w.next()?).ok()?.parse().ok()?;
    let end = w.next()?;
    let end = if end == b"EOF" { EOF } else { core::str::from_utf8(end).ok()?.parse().ok()? };
    (start <= end).then(|| (lt, pid, libc::makedev(maj, min), ino, Range::new(start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_locks_lines() {
        let l = b"1: POSIX  ADVISORY  WRITE 25725 fe:01:10010646 20 21";
        assert_eq!(
            parse_proc_locks_line(l),
            Some((LockType::Write, 25725, libc::makedev(0xfe, 1), 10010646, Range::new(20, 21)))
        );
        let l = b"7: POSIX  ADVISORY  READ 9 08:10:5 100 EOF";
        assert_eq!(parse_proc_locks_line(l), Some((LockType::Read, 9, libc::makedev(8, 16), 5, Range::new(100, EOF))));
        assert_eq!(parse_proc_locks_line(b"2: OFDLCK ADVISORY  WRITE -1 fe:00:1 5 9"), None);
        assert_eq!(parse_proc_locks_line(b"3: -> POSIX  ADVISORY  WRITE 9 fe:00:1 5 9"), None);
        assert_eq!(parse_proc_locks_line(b"4: FLOCK  ADVISORY  WRITE 9 fe:00:1 0 EOF"), None);
    }
}
