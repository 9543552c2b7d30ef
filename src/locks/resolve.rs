//! Who a request is for: the caller's process owner, or the owner of the
//! open file description behind its descriptor.

use super::*;

/// The registry owner for `spec` on `file`, created when `create`; `None`
/// when it does not exist and `create` is false. `me` is the caller's image
/// (None: it has claimed no anchor, so it owns nothing).
pub(super) fn resolve_owner(
    t: &mut Tables,
    spec: OwnerSpec,
    file: &FileRef,
    create: bool,
    me: Option<Me>,
) -> Result<Option<u32>, Errno> {
    let hint = local::owner_hint();
    let process = |t: &mut Tables| -> Result<Option<u32>, Errno> {
        let Some(me) = me else { return Ok(None) };
        if !create {
            let found = t.find_process(me.nonce, hint);
            if let Some(o) = found {
                // Found by a search (a fork child's owner, made by its
                // parent): the next call finds it at once.
                local::set_owner_hint(o);
            }
            return Ok(found);
        }
        let o = t.process_owner(me.nonce, me.anchor, me.pid, hint)?;
        local::set_owner_hint(o);
        t.hold_life(o);
        Ok(Some(o))
    };
    match spec {
        OwnerSpec::Process => process(t),
        OwnerSpec::OpenFile(fd, flavor) => {
            // The process that locks through the open file releases it: the
            // deadlock graph follows it.
            let locker = if create { process(t)? } else { me.and_then(|m| t.find_process(m.nonce, hint)) };
            // The descriptor cache remembers the owner; the registry says
            // whether that slot still is it.
            if let Some((slot, generation)) = local::fd_owner(fd) {
                let token = identity::Token { slot, generation };
                if let Some(o) =
                    t.openfile_owner(token.slot, token.generation, identity::TOKEN_GENS, file.dev, file.ino)
                {
                    relabel_if_idle(t, o, flavor, create, locker, me, fd);
                    return Ok(Some(o));
                }
            }
            if crate::mirror::on() {
                return mirrored_owner(t, &Ask { fd, file, flavor, create, locker, me });
            }
            let mut found = None;
            let mut stale = [None; 4];
            let mut nstale = 0;
            // Retired here, and no open-file owner made anywhere since: the
            // open file still has none (only a creation could give it one).
            let known_empty = local::fd_retired(fd) == Some(t.free.ofd_created);
            if !known_empty {
                identity::tokens_of(fd, &mut |tok| match t.openfile_owner(
                    tok.slot,
                    tok.generation,
                    identity::TOKEN_GENS,
                    file.dev,
                    file.ino,
                ) {
                    Some(o) => found = Some(o),
                    None if nstale < stale.len() => {
                        stale[nstale] = Some(tok);
                        nstale += 1;
                    }
                    None => {}
                })?;
            }
            // A token whose slot was reaped and reused names nobody now.
            for tok in stale.iter().flatten() {
                identity::drop_token(fd, *tok);
            }
            let ask = Ask { fd, file, flavor, create, locker, me };
            let o = match found_or_new(t, found, &ask)? {
                Found::Done(o) => return Ok(o),
                Found::New(o) => o,
            };
            let token = identity::Token { slot: o, generation: t.owners[o as usize].generation % identity::TOKEN_GENS };
            if let Err(e) = identity::take(fd, token, file.readable) {
                t.release_owner_if_idle(o);
                // A kernel lock over the token is a lock held outside the
                // library over the whole file: a real conflict. Anything
                // else is a kernel-side failure, never reported as one.
                return Err(if e == Errno::AGAIN || e == Errno::ACCES { Errno::AGAIN } else { Errno::NOLCK });
            }
            local::fd_set_owner(fd, o, token.generation);
            Ok(Some(o))
        }
    }
}

/// With the kernel mirror: the open-file owner of `fd`'s description is
/// the one whose registry locks are the description's kernel OFD locks
/// (`/proc/self/fdinfo/<fd>`); a description that holds none has no owner
/// yet, and one is made when `create`. No token is taken.
fn mirrored_owner(t: &mut Tables, a: &Ask) -> Result<Option<u32>, Errno> {
    let (fd, file, me) = (a.fd, a.file, a.me);
    // Retired here, and no open-file owner made anywhere since: the open
    // file still has none (only a creation could give it one).
    let known_empty = local::fd_retired(fd) == Some(t.free.ofd_created);
    let mut found = None;
    if !known_empty && let Some(slot) = t.find_file(file.dev, file.ino) {
        let (mut first, mut n) = (None, 0u32);
        identity::ofd_locks_of(fd, &mut |lt, r| {
            if first.is_none() {
                first = Some((lt, r));
            }
            n += 1;
        })?;
        if let Some((lt, r)) = first {
            // Among the owners holding exactly that lock, the best match:
            // one holding as many locks as the description does, last
            // locked by this process through this very descriptor number
            // (then it is this description, or a closed one that held the
            // same locks here), or at least by this process.
            let mine = me.map(|m| m.nonce);
            let mut best = (0u32, None);
            let _ = t.for_each_exact(slot, lt, r, &mut |o| {
                if let Some(s) = t.owners.get(o as usize)
                    && s.kind == OWNER_OPENFILE
                {
                    let ours = Some(s.nonce) == mine;
                    // The kernel's word, where the owner's last locking
                    // descriptor still exists: the same description.
                    let same = s.pid > 0
                        && s.fd >= 0
                        && identity::same_description(sys::getpid(), fd, s.pid, s.fd) == Some(true);
                    let score = 1
                        + 16 * u32::from(same)
                        + 8 * u32::from(s.nlocks == n)
                        + 4 * u32::from(ours && s.fd == fd)
                        + 2 * u32::from(ours);
                    if score > best.0 {
                        best = (score, Some(o));
                    }
                }
            });
            found = best.1;
        }
    }
    match found_or_new(t, found, a)? {
        Found::Done(o) => Ok(o),
        Found::New(o) => {
            local::fd_set_owner(fd, o, t.owners[o as usize].generation % identity::TOKEN_GENS);
            Ok(Some(o))
        }
    }
}

/// An open-file owner search: through `fd`, on `file`, for a call of
/// `flavor` that creates the owner when `create`, by the process `me`
/// whose process owner is `locker`.
#[derive(Clone, Copy)]
struct Ask<'a> {
    fd: i32,
    file: &'a FileRef,
    flavor: u8,
    create: bool,
    locker: Option<u32>,
    me: Option<Me>,
}

/// What `found_or_new` settled.
enum Found {
    /// The answer: the owner found (cached and relabelled), or none.
    Done(Option<u32>),
    /// A new open-file owner, made for the caller to finish.
    New(u32),
}

/// The end of an open-file owner search: the owner `found`, or a new one
/// when `create` (the caller identifies it to the kernel).
fn found_or_new(t: &mut Tables, found: Option<u32>, a: &Ask) -> Result<Found, Errno> {
    let Ask { fd, file, flavor, create, locker, me } = *a;
    if let Some(o) = found {
        local::fd_set_owner(fd, o, t.owners[o as usize].generation % identity::TOKEN_GENS);
        relabel_if_idle(t, o, flavor, create, locker, me, fd);
    }
    if found.is_some() || !create {
        return Ok(Found::Done(found));
    }
    let (Some(locker), Some(me)) = (locker, me) else { return Ok(Found::Done(None)) };
    let o = t.new_owner(OWNER_OPENFILE, flavor, me.pid, me.nonce, file.dev, file.ino)?;
    t.free.ofd_created = t.free.ofd_created.wrapping_add(1);
    t.owners[o as usize].locker = locker;
    t.owners[o as usize].fd = fd;
    Ok(Found::New(o))
}

/// An open-file owner that locks again after going idle: F_GETLK must name
/// the process that now took the lock, and report it in the flavor of the
/// call that took it; the deadlock graph must follow that process.
pub(super) fn relabel_if_idle(
    t: &mut Tables,
    o: u32,
    flavor: u8,
    locking: bool,
    locker: Option<u32>,
    me: Option<Me>,
    fd: i32,
) {
    if let Some(slot) = t.owners.get_mut(o as usize)
        && locking
        && slot.nlocks == 0
    {
        if let Some(me) = me {
            slot.pid = me.pid;
            slot.nonce = me.nonce;
        }
        if let Some(l) = locker {
            slot.locker = l;
        }
        slot.flavor = flavor;
        slot.fd = fd;
    }
}

/// After a call on an open-file owner: one that holds nothing and waits for
/// nothing gives back its slot and its kernel token, so no kernel lock of
/// the library's is left for a program outside it to trip on.
pub(super) fn retire_if_idle(t: &mut Tables, spec: OwnerSpec, o: u32) {
    let OwnerSpec::OpenFile(fd, _) = spec else { return };
    let Some(s) = t.owners.get(o as usize) else { return };
    if s.kind != OWNER_OPENFILE || s.nlocks != 0 || s.nwaiters != 0 {
        return;
    }
    if !crate::mirror::on() {
        let token = identity::Token { slot: o, generation: s.generation % identity::TOKEN_GENS };
        // Under the mutex: the slot may be reused the moment it is free, by
        // a token whose range overlaps this one's.
        identity::drop_token(fd, token);
    }
    local::fd_set_retired(fd, t.free.ofd_created);
    t.release_owner_if_idle(o);
}
