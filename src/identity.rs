//! Open-file identity and liveness, for locks owned by an open file
//! description (QNX flock() and `F_FLOCK`, Linux `F_OFD_*`).
//!
//! Linux gives an open file description no id we can read, and it is shared
//! by dup, fork, exec and SCM_RIGHTS behind our back. So each open-file
//! owner in the registry is anchored to the kernel itself: its open file
//! description holds a kernel OFD lock, the *token*, on a reserved byte range
//! far above any real data, whose position names the owner's registry slot
//! and whose length names the slot's generation:
//!
//! ```text
//! g     = generation % TOKEN_GENS                      (30 bits)
//! start = TOKEN_BASE + slot * TOKEN_STRIDE + g / 2^15
//! len   = 1 + g % 2^15
//! ```
//!
//! so a token stays inside its slot's stride and names 2^30 generations
//! of it before one repeats.
//!
//! - **Identity.** `/proc/self/fdinfo/<fd>` lists exactly the OFD locks held
//!   through that open file description, so the token found there names the
//!   descriptor's owner; descriptors that share the description share it.
//! - **Liveness.** The kernel drops the token when the last descriptor of the
//!   description closes anywhere, or when every process holding one dies.
//!   From any other descriptor of the file, `F_OFD_GETLK` on the token byte
//!   reports it while the owner lives.
//!
//! The token is taken through the caller's own descriptor with the kernel
//! (raw syscalls, never our own hooks), as a write lock on a writable
//! descriptor and a read lock otherwise, so any descriptor that can lock at
//! all can carry one.
//!
//! **With the kernel mirror on** (`crate::mirror`, the default) there is no
//! token: an open-file owner's registry locks are exactly the OFD locks of
//! its open file description, so the description is recognised by them (a
//! [`Mark::Lock`]: one of its locks, exact type and range), and it is alive
//! while the kernel holds them. Two descriptions that hold exactly the same
//! read locks cannot be told apart; since they hold the same locks, taking
//! one for the other changes no answer of the registry.

use core::fmt::Write;

use crate::engine::range::{EOF, LockType, Range};
use crate::local;
use crate::registry::layout::OWNERS;
use crate::sys::{self, Errno};

/// Where tokens live: the top 2^32 bytes of the offset space, far above any
/// real file data and any range a program locks short of "to EOF".
pub const TOKEN_BASE: i64 = i64::MAX - (1 << 32);
pub const TOKEN_STRIDE: i64 = 1 << 16;
pub const TOKEN_GENS: u32 = 1 << 30;
/// Generations carried by the length; the rest go in the start offset.
const LEN_GENS: u32 = 1 << 15;

const _: () = assert!(TOKEN_BASE + OWNERS as i64 * TOKEN_STRIDE < i64::MAX - (1 << 31));

/// What recognises an open file description in `/proc/<pid>/fdinfo`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mark {
    /// The owner's token (mirror off).
    Token(Token),
    /// One of the owner's mirror locks (mirror on), and a descriptor known
    /// to have held the description: `(pid, fd)` of the process that last
    /// started locking through it. While that descriptor still carries the
    /// lock, a descriptor is the owner's only if the kernel says it is the
    /// same open file description (`kcmp`); otherwise the lock alone
    /// decides.
    Lock(LockType, Range, i32, i32),
}

/// Whether descriptor `fa` of process `a` and `fb` of `b` are one open file
/// description (`kcmp(KCMP_FILE)`); None when the kernel cannot say (a
/// process or descriptor gone, no permission, no kcmp).
pub fn same_description(a: i32, fa: i32, b: i32, fb: i32) -> Option<bool> {
    match sys::kcmp_file(a, fa, b, fb) {
        Ok(r) => Some(r == 0),
        Err(_) => None,
    }
}

/// Whether descriptor `fd` of process `pid` (0: ourselves) holds exactly
/// the OFD lock `t` on `r`.
pub fn carries(pid: i32, fd: i32, t: LockType, r: Range) -> bool {
    let mut yes = false;
    let _ = ofd_locks_in(pid, fd, &mut |lt, lr| yes |= lt == t && lr == r);
    yes
}

/// For a holder scan: `mark` with its reference dropped when the reference
/// descriptor no longer carries the lock (the lock alone decides then).
fn checked(mark: Mark) -> Mark {
    match mark {
        Mark::Lock(t, r, pid, fd) if pid > 0 && fd >= 0 && !carries(pid, fd, t, r) => Mark::Lock(t, r, 0, -1),
        m => m,
    }
}

/// A token: the owner slot and generation it names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Token {
    pub slot: u32,
    pub generation: u32,
}

impl Token {
    fn start(self) -> i64 {
        let g = self.generation % TOKEN_GENS;
        TOKEN_BASE + self.slot as i64 * TOKEN_STRIDE + (g / LEN_GENS) as i64
    }

    fn len(self) -> i64 {
        1 + (self.generation % TOKEN_GENS % LEN_GENS) as i64
    }

    /// The token a kernel lock range `[start, end]` names, if it is one.
    pub fn from_range(start: i64, end: i64) -> Option<Token> {
        let off = start.checked_sub(TOKEN_BASE)?;
        if off < 0 || off / TOKEN_STRIDE >= OWNERS as i64 {
            return None;
        }
        let hi = off % TOKEN_STRIDE;
        if hi >= (TOKEN_GENS / LEN_GENS) as i64 {
            return None;
        }
        let len = end.checked_sub(start)?.checked_add(1)?;
        if !(1..=LEN_GENS as i64).contains(&len) {
            return None;
        }
        Some(Token { slot: (off / TOKEN_STRIDE) as u32, generation: (hi as u32) * LEN_GENS + (len - 1) as u32 })
    }

    /// Whether this token stands for generation `generation` of its slot.
    pub fn names(self, generation: u32) -> bool {
        self.generation == generation % TOKEN_GENS
    }
}

/// What a descriptor refers to: its file `(st_dev, st_ino)` and access
/// mode. (Not to be confused with the open file description's *identity*,
/// the token below.)
#[derive(Clone, Copy, Debug)]
pub struct FileRef {
    pub dev: u64,
    pub ino: u64,
    pub readable: bool,
    pub writable: bool,
    pub regular: bool,
}

impl FileRef {
    /// What `fd` refers to: from the descriptor cache when possible, so the
    /// uncontended lock path makes no syscall.
    pub fn of(fd: i32) -> Result<FileRef, Errno> {
        if let Some(i) = local::fd_lookup(fd) {
            return Ok(FileRef {
                dev: i.dev,
                ino: i.ino,
                readable: i.readable,
                writable: i.writable,
                regular: i.regular,
            });
        }
        let ticket = local::fd_ticket(fd);
        let st = sys::fstat(fd)?;
        let fl = sys::fcntl_int(fd, libc::F_GETFL, 0)? as i32;
        // An O_PATH descriptor can neither read nor write: no lock through it.
        let acc = if fl & libc::O_PATH != 0 { -1 } else { fl & libc::O_ACCMODE };
        let f = FileRef {
            dev: st.st_dev,
            ino: st.st_ino,
            readable: acc == libc::O_RDONLY || acc == libc::O_RDWR,
            writable: acc == libc::O_WRONLY || acc == libc::O_RDWR,
            regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
        };
        local::fd_store(
            fd,
            local::FdInfo { dev: f.dev, ino: f.ino, readable: f.readable, writable: f.writable, regular: f.regular },
            ticket,
        );
        Ok(f)
    }

    /// The offset `l_whence` counts from.
    pub fn base(&self, fd: i32, whence: i16) -> Result<i64, Errno> {
        match whence as i32 {
            libc::SEEK_SET => Ok(0),
            libc::SEEK_CUR => position(fd),
            libc::SEEK_END => sys::fstat(fd).map(|st| st.st_size),
            _ => Err(Errno::INVAL),
        }
    }
}

/// The file position a lock's `SEEK_CUR` (and lockf) counts from. A pipe,
/// FIFO or socket has none (`lseek` gives ESPIPE); the kernel's fcntl then
/// uses the file's `f_pos`, which is 0, and so do we: lockf and `SEEK_CUR`
/// locks on them work as natively. (QNX lockf(): locking "may be supported
/// for other files".)
pub fn position(fd: i32) -> Result<i64, Errno> {
    match sys::current_offset(fd) {
        Err(Errno(libc::ESPIPE)) => Ok(0),
        other => other,
    }
}

fn ofd_lock(fd: i32, cmd: i32, ltype: i32, start: i64, len: i64) -> Result<libc::flock, Errno> {
    let mut fl =
        libc::flock { l_type: ltype as i16, l_whence: libc::SEEK_SET as i16, l_start: start, l_len: len, l_pid: 0 };
    sys::fcntl_lock(fd, cmd, &mut fl)?;
    Ok(fl)
}

/// Takes `token` through `fd`'s open file description: a read lock when the
/// descriptor is readable (it then coexists with a foreign process's kernel
/// read locks over the range), a write lock otherwise.
pub fn take(fd: i32, token: Token, readable: bool) -> Result<(), Errno> {
    let ltype = if readable { libc::F_RDLCK } else { libc::F_WRLCK };
    ofd_lock(fd, libc::F_OFD_SETLK, ltype, token.start(), token.len()).map(drop)
}

/// Whether a token could now be taken through `fd`: no lock held outside
/// the library (a process outside it locking the whole file) covers the
/// token range any more. One `F_OFD_GETLK`; the caller polls it, between
/// interruptible sleeps, while such a lock is in the way.
pub fn outside_free(fd: i32, readable: bool) -> Result<bool, Errno> {
    let ltype = if readable { libc::F_RDLCK } else { libc::F_WRLCK };
    let fl = ofd_lock(fd, libc::F_OFD_GETLK, ltype, TOKEN_BASE, TOKEN_STRIDE * OWNERS as i64)?;
    Ok(fl.l_type as i32 == libc::F_UNLCK)
}

/// Drops `token` from `fd`'s open file description.
pub fn drop_token(fd: i32, token: Token) {
    let _ = ofd_lock(fd, libc::F_OFD_SETLK, libc::F_UNLCK, token.start(), token.len());
}

/// Whether the owner named by `token` still has an open file description
/// somewhere, probed through `fd`, a descriptor of the same file. If `fd`
/// itself carries the token, the owner is alive. Otherwise the kernel is
/// asked whether some description holds a lock on the token byte; with
/// `verify`, a lock that is there is confirmed by finding a process of our
/// own uid (the registry's trust domain) that holds the token through one of
/// its descriptors, so a token forged by another user, or another user's
/// lock over it, does not keep a dead owner alive. Unclear evidence (a
/// failed probe) says alive.
pub fn alive(fd: i32, token: Token, verify: bool) -> bool {
    let mut own = false;
    if tokens_of(fd, &mut |t| own |= t == token).is_err() || own {
        return true;
    }
    match ofd_lock(fd, libc::F_OFD_GETLK, libc::F_WRLCK, token.start(), 1) {
        Ok(fl) if fl.l_type as i32 == libc::F_UNLCK => false,
        Ok(fl) => {
            let exact = fl.l_pid == -1 && fl.l_start == token.start() && fl.l_len == token.len();
            if exact && !verify {
                return true;
            }
            let Ok(st) = sys::fstat(fd) else { return true };
            let mut held = false;
            holders(st.st_dev, st.st_ino, Mark::Token(token), Some(sys::geteuid()), &mut |_| held = true);
            held
        }
        Err(_) => true,
    }
}

/// The tokens held through `fd`'s open file description, from
/// `/proc/self/fdinfo/<fd>`: calls `f` with each.
pub fn tokens_of(fd: i32, f: &mut dyn FnMut(Token)) -> Result<(), Errno> {
    tokens_in(0, fd, f)
}

/// The tokens held through descriptor `fd` of process `pid` (0: ourselves).
fn tokens_in(pid: i32, fd: i32, f: &mut dyn FnMut(Token)) -> Result<(), Errno> {
    ofd_locks_in(pid, fd, &mut |_, r| {
        if let Some(t) = Token::from_range(r.start, r.end) {
            f(t)
        }
    })
}

/// The OFD locks held through `fd`'s open file description (its mirror
/// locks, or its token), from `/proc/self/fdinfo/<fd>`.
pub fn ofd_locks_of(fd: i32, f: &mut dyn FnMut(LockType, Range)) -> Result<(), Errno> {
    ofd_locks_in(0, fd, f)
}

/// The OFD locks held through descriptor `fd` of process `pid` (0: ourselves).
fn ofd_locks_in(pid: i32, fd: i32, f: &mut dyn FnMut(LockType, Range)) -> Result<(), Errno> {
    let mut path = [0u8; 48];
    let mut c = crate::fmt::Cursor::new(&mut path);
    let _ = if pid == 0 { write!(c, "/proc/self/fdinfo/{fd}\0") } else { write!(c, "/proc/{pid}/fdinfo/{fd}\0") };
    let n = c.len();
    let path = core::ffi::CStr::from_bytes_with_nul(&path[..n]).map_err(|_| Errno::INVAL)?;
    // Streamed line by line: a descriptor with many locks has an fdinfo
    // far longer than any fixed buffer.
    sys::for_each_line(path, &mut |line| {
        parse_fdinfo_line(line, f);
        true
    })
}

/// Calls `f` with every process (of `uid`, if given) that holds a
/// descriptor of the open file description carrying `token` (a file
/// `(dev, ino)`): a scan of every visible process's descriptors, for the
/// rare questions of whether an open file's lock can still be released by
/// someone, and whether a token is ours or forged.
pub fn holders(dev: u64, ino: u64, mark: Mark, uid: Option<u32>, f: &mut dyn FnMut(i32)) {
    let mark = checked(mark);
    let _ = sys::for_each_entry(c"/proc", &mut |name, _| {
        let Some(pid) = sys::entry_number(name) else { return };
        if let Some(uid) = uid {
            let mut p = [0u8; 32];
            let mut c = crate::fmt::Cursor::new(&mut p);
            let _ = write!(c, "/proc/{pid}\0");
            let n = c.len();
            let Ok(p) = core::ffi::CStr::from_bytes_with_nul(&p[..n]) else { return };
            if !sys::stat(p).is_ok_and(|st| st.st_uid == uid) {
                return;
            }
        }
        if holds_mark(pid, dev, ino, mark) {
            f(pid);
        }
    });
}

/// Like `holders`, over the processes `pids` only (the registry's own
/// process owners: the only processes that can release a lock through the
/// library).
pub fn holders_among(pids: &[i32], dev: u64, ino: u64, mark: Mark, f: &mut dyn FnMut(i32)) {
    let mark = checked(mark);
    for &pid in pids {
        if holds_mark(pid, dev, ino, mark) {
            f(pid);
        }
    }
}

/// Whether process `pid` holds a descriptor of `(dev, ino)` whose open file
/// description carries `mark`.
fn holds_mark(pid: i32, dev: u64, ino: u64, mark: Mark) -> bool {
    let mut dir = [0u8; 40];
    let mut c = crate::fmt::Cursor::new(&mut dir);
    let _ = write!(c, "/proc/{pid}/fd\0");
    let n = c.len();
    let Ok(dir) = core::ffi::CStr::from_bytes_with_nul(&dir[..n]) else { return false };
    let mut holds = false;
    let _ = sys::for_each_entry(dir, &mut |fdname, _| {
        let Some(fd) = sys::entry_number(fdname).filter(|_| !holds) else { return };
        let mut link = [0u8; 48];
        let mut c = crate::fmt::Cursor::new(&mut link);
        let _ = write!(c, "/proc/{pid}/fd/{fd}\0");
        let n = c.len();
        let Ok(link) = core::ffi::CStr::from_bytes_with_nul(&link[..n]) else { return };
        if sys::stat(link).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino) {
            holds = match mark {
                Mark::Token(token) => {
                    let mut h = false;
                    let _ = ofd_locks_in(pid, fd, &mut |_, r| h |= Token::from_range(r.start, r.end) == Some(token));
                    h
                }
                Mark::Lock(t, r, rp, rfd) if rp > 0 => {
                    carries(pid, fd, t, r) && same_description(pid, fd, rp, rfd) == Some(true)
                }
                Mark::Lock(t, r, _, _) => carries(pid, fd, t, r),
            };
        }
    });
    holds
}

/// How many threads process `pid` has (field 20 of `/proc/<pid>/stat`);
/// None when it cannot be read.
pub fn threads_of(pid: i32) -> Option<u32> {
    let mut path = [0u8; 32];
    let mut c = crate::fmt::Cursor::new(&mut path);
    write!(c, "/proc/{pid}/stat\0").ok()?;
    let n = c.len();
    let path = core::ffi::CStr::from_bytes_with_nul(&path[..n]).ok()?;
    let mut buf = [0u8; 1024];
    let len = sys::read_small_file(path, &mut buf).ok()?;
    let line = &buf[..len];
    let close = line.iter().rposition(|&b| b == b')')?;
    // Fields after the command: state is field 3, num_threads field 20.
    let w = line[close + 1..].split(|&b| b == b' ').filter(|w| !w.is_empty()).nth(17)?;
    core::str::from_utf8(w).ok()?.parse().ok()
}

/// Finds the OFD lock lines of an fdinfo text and reports each lock.
pub fn parse_fdinfo(text: &[u8], f: &mut dyn FnMut(LockType, Range)) {
    for line in text.split(|&c| c == b'\n') {
        parse_fdinfo_line(line, f);
    }
}

/// One fdinfo line: reports the lock if it is an OFD lock line (not a
/// blocked request's `->` line).
fn parse_fdinfo_line(line: &[u8], f: &mut dyn FnMut(LockType, Range)) {
    if !line.starts_with(b"lock:") || !contains(line, b"OFDLCK") || contains(line, b"->") {
        return;
    }
    let t = if contains(line, b" WRITE ") {
        LockType::Write
    } else if contains(line, b" READ ") {
        LockType::Read
    } else {
        return;
    };
    let mut fields = line.split(|&c| c == b' ' || c == b'\t').filter(|w| !w.is_empty()).rev();
    let (Some(end), Some(start)) = (fields.next(), fields.next()) else { return };
    let end = if end == b"EOF" { Some(EOF) } else { number(end) };
    if let (Some(start), Some(end)) = (number(start), end)
        && start <= end
    {
        f(t, Range::new(start, end));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn number(w: &[u8]) -> Option<i64> {
    if w.is_empty() || !w.iter().all(u8::is_ascii_digit) {
        return None;
    }
    w.iter().try_fold(0i64, |a, &c| a.checked_mul(10)?.checked_add(i64::from(c - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ranges_round_trip() {
        for generation in [0, 1, 40_000, 1 << 20, TOKEN_GENS - 1, TOKEN_GENS + 7] {
            let t = Token { slot: 17, generation };
            let (s, e) = (t.start(), t.start() + t.len() - 1);
            assert_eq!(Token::from_range(s, e), Some(Token { slot: 17, generation: generation % TOKEN_GENS }));
            assert!(Token::from_range(s, e).unwrap().names(generation));
            assert!(e < TOKEN_BASE + 18 * TOKEN_STRIDE, "stays within its stride");
        }
        let t = Token { slot: 17, generation: 40_000 };
        let (s, e) = (t.start(), t.start() + t.len() - 1);
        assert_ne!(Token::from_range(s + 1, e), Some(t));
        assert_eq!(Token::from_range(TOKEN_BASE + 17 * TOKEN_STRIDE + (TOKEN_GENS / LEN_GENS) as i64, e), None);
        assert_eq!(Token::from_range(0, 10), None);
        assert_eq!(
            Token::from_range(TOKEN_BASE + OWNERS as i64 * TOKEN_STRIDE, TOKEN_BASE + OWNERS as i64 * TOKEN_STRIDE),
            None
        );
    }

    #[test]
    fn parses_fdinfo_lock_lines() {
        let t = Token { slot: 3, generation: 5 };
        let text = format!(
            "pos:\t0\nflags:\t0100002\nlock:\t1: OFDLCK ADVISORY  WRITE -1 fe:00:1234 {} {}\nlock:\t2: POSIX  ADVISORY  WRITE 99 fe:00:1234 0 EOF\n",
            t.start(),
            t.start() + t.len() - 1
        );
        let mut seen = vec![];
        parse_fdinfo(text.as_bytes(), &mut |lt, r| seen.push((lt, Token::from_range(r.start, r.end))));
        assert_eq!(seen, vec![(LockType::Write, Some(t))]);
        let text = "lock:\t1: OFDLCK ADVISORY  READ -1 fe:00:1234 0 EOF\nlock:\t2: OFDLCK ADVISORY  WRITE -1 fe:00:1234 5 9\nlock:\t3: -> OFDLCK ADVISORY  WRITE -1 fe:00:1234 0 9\n";
        let mut seen = vec![];
        parse_fdinfo(text.as_bytes(), &mut |lt, r| seen.push((lt, r)));
        assert_eq!(seen, vec![(LockType::Read, Range::WHOLE), (LockType::Write, Range::new(5, 9))]);
    }

    #[test]
    fn kernel_tokens_identify_and_outlive() {
        use std::os::fd::AsRawFd;
        let dir = std::env::temp_dir().join(format!("qnxcompat-token-{}", std::process::id()));
        std::fs::write(&dir, b"x").unwrap();
        let a = std::fs::OpenOptions::new().read(true).write(true).open(&dir).unwrap();
        let b = std::fs::File::open(&dir).unwrap();
        let t = Token { slot: 9, generation: 2 };
        assert!(!alive(b.as_raw_fd(), t, true));
        take(a.as_raw_fd(), t, true).unwrap();
        let mut mine = vec![];
        tokens_of(a.as_raw_fd(), &mut |t| mine.push(t)).unwrap();
        assert_eq!(mine, vec![t]);
        let mut theirs = vec![];
        tokens_of(b.as_raw_fd(), &mut |t| theirs.push(t)).unwrap();
        assert!(theirs.is_empty());
        assert!(alive(b.as_raw_fd(), t, true));
        drop(a);
        assert!(!alive(b.as_raw_fd(), t, true), "the last close drops the token");
        std::fs::remove_file(&dir).unwrap();
    }
}
