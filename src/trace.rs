//! Per-call tracing: one line per intercepted call, for example
//!
//! ```text
//! qnxcompat[812:812] lockf(fd=3, F_TLOCK, size=10) = -1 EAGAIN (3.1us)
//! ```
//!
//! A line is formatted into a stack buffer (no allocation) and written with a
//! single `write(2)`, so lines from many processes never interleave. With
//! QNXCOMPAT_TRACE_FILE the file is opened, appended to and closed for each
//! line: the library keeps no descriptor open between calls.

use core::fmt::{self, Write};

use crate::config::{self, Func};
use crate::sys::{self, Errno};

pub use crate::fmt::Cursor;

/// What an intercepted call returned.
#[derive(Clone, Copy)]
pub enum Ret {
    /// An int result; with -1, errno says why.
    Int(i64, Errno),
    /// A pointer result (mmap); MAP_FAILED comes with errno.
    Ptr(usize, Errno),
    /// No result (a void function).
    Void,
    /// A resource-manager handler's result: an errno value (0 is EOK),
    /// `_RESMGR_NPARTS(n)` (-n), `_RESMGR_NOREPLY` or `_RESMGR_DEFAULT`.
    Resmgr(i32),
    /// A blocking call starts to wait (its final line follows when it ends).
    Blocked,
}

const NOTE_LEN: usize = 384;

thread_local! {
    /// A detail the call's trace line ends with (e.g. an EDEADLK cycle),
    /// and its length (0: none), kept apart so that the common no-note case
    /// costs one load. Plain data, so no TLS destructor is registered.
    static NOTE: core::cell::Cell<[u8; NOTE_LEN]> = const { core::cell::Cell::new([0; NOTE_LEN]) };
    static NOTE_USED: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// Attaches a detail to the current call's trace line (only while tracing).
pub fn set_note(write_note: &dyn Fn(&mut Cursor) -> fmt::Result) {
    if !config::tracing_any() {
        return;
    }
    let mut buf = [0u8; NOTE_LEN];
    let mut c = Cursor::new(&mut buf);
    let _ = write_note(&mut c);
    let n = c.len();
    NOTE.with(|cell| cell.set(buf));
    NOTE_USED.with(|u| u.set(n));
}

/// Writes one trace line for `f`, if `f` is traced. `args` writes the
/// decoded arguments; `start_ns` is when the call began.
pub fn line(f: Func, start_ns: u64, ret: Ret, args: &dyn Fn(&mut Cursor) -> fmt::Result) {
    // No tracing at all: no note can be pending, and the thread-local
    // storage (a __tls_get_addr call in a shared object) is left alone.
    if !config::tracing_any() {
        return;
    }
    let note_len = NOTE_USED.with(|u| u.replace(0));
    if !config::traced(f) {
        return;
    }
    let note = if note_len > 0 { NOTE.with(|cell| cell.get()) } else { [0; NOTE_LEN] };
    let saved = Errno::last();
    let elapsed = sys::monotonic_ns().saturating_sub(start_ns);
    let mut buf = [0u8; 1024];
    let mut c = Cursor::new(&mut buf[..1023]);
    if config::trace_time() {
        let _ = wall_clock(&mut c);
    }
    let _ = write!(c, "qnxcompat[{}:{}] {}(", sys::getpid(), sys::gettid(), f.name());
    let _ = args(&mut c);
    let _ = match ret {
        Ret::Int(-1, e) => write!(c, ") = -1 {}", e.name()),
        Ret::Int(r, _) => write!(c, ") = {r}"),
        Ret::Ptr(p, e) if p == usize::MAX => write!(c, ") = MAP_FAILED {}", e.name()),
        Ret::Ptr(p, _) => write!(c, ") = {p:#x}"),
        Ret::Void => write!(c, ")"),
        Ret::Blocked => write!(c, ") blocked"),
        Ret::Resmgr(r) => match r {
            i32::MIN => c.write_str(") = _RESMGR_NOREPLY"),
            -0x7fff_ffff => c.write_str(") = _RESMGR_DEFAULT"),
            0 => c.write_str(") = EOK"),
            r if r < 0 => write!(c, ") = _RESMGR_NPARTS({})", -r),
            e => write!(c, ") = {}", Errno(e).name()),
        },
    };
    let _ = write!(c, " (");
    let _ = duration(&mut c, elapsed);
    let _ = c.write_str(")");
    if note_len > 0 {
        let _ = c.write_str(" ");
        let _ = c.write_str(core::str::from_utf8(&note[..note_len]).unwrap_or(""));
    }
    let _ = c.write_str("\n");
    let n = c.len();
    // A truncated line still ends in a newline.
    if n == 1023 {
        buf[1022] = b'\n';
    }
    emit(&buf[..n.max(1)]);
    saved.set();
}

/// `12:04:05.123456 ` (UTC, CLOCK_REALTIME), for QNXCOMPAT_TRACE_TIME=1.
fn wall_clock(c: &mut Cursor) -> fmt::Result {
    let (sec, nsec) = sys::realtime();
    let day = sec.rem_euclid(86_400);
    write!(c, "{:02}:{:02}:{:02}.{:06} ", day / 3600, day / 60 % 60, day % 60, nsec / 1000)
}

/// Writes `<path>` for descriptor `fd` (as `strace -y` does), or nothing
/// when it cannot be read. Only called while tracing.
pub fn fd_path(c: &mut Cursor, fd: i32) -> fmt::Result {
    path_of(c, fd, true)
}

/// Writes descriptor `fd`'s path, bare (or nothing).
pub fn fd_path_bare(c: &mut Cursor, fd: i32) -> fmt::Result {
    path_of(c, fd, false)
}

fn path_of(c: &mut Cursor, fd: i32, brackets: bool) -> fmt::Result {
    let mut name = [0u8; 32];
    let mut n = Cursor::new(&mut name[..31]);
    let _ = write!(n, "/proc/self/fd/{fd}");
    let len = n.len();
    let Ok(p) = core::ffi::CStr::from_bytes_with_nul(&name[..=len]) else { return Ok(()) };
    let mut buf = [0u8; 256];
    match sys::readlink(p, &mut buf) {
        Ok(k) if k > 0 => {
            let p = core::str::from_utf8(&buf[..k]).unwrap_or("?");
            if brackets { write!(c, "<{p}>") } else { c.write_str(p) }
        }
        _ => Ok(()),
    }
}

/// Writes ` (cmd)`, process `pid`'s command name, when it can be read.
pub fn comm(c: &mut Cursor, pid: i32) -> fmt::Result {
    if pid <= 0 {
        return Ok(());
    }
    let mut name = [0u8; 40];
    let mut n = Cursor::new(&mut name[..39]);
    let _ = write!(n, "/proc/{pid}/comm");
    let len = n.len();
    let Ok(p) = core::ffi::CStr::from_bytes_with_nul(&name[..=len]) else { return Ok(()) };
    let Ok(fd) = sys::open(p, libc::O_RDONLY, 0) else { return Ok(()) };
    let mut buf = [0u8; 32];
    let k = sys::read(fd, &mut buf).unwrap_or(0);
    let _ = sys::close(fd);
    let text = core::str::from_utf8(&buf[..k]).unwrap_or("").trim_end();
    if text.is_empty() { Ok(()) } else { write!(c, " ({text})") }
}

/// Writes `[start-end]` (`EOF` for a range to end of file).
pub fn range(c: &mut Cursor, start: i64, end: i64) -> fmt::Result {
    if end == i64::MAX { write!(c, "[{start}-EOF]") } else { write!(c, "[{start}-{end}]") }
}

/// Writes `ns` as `850ns`, `3.1us`, `12.4ms` or `2.05s`.
pub fn duration(c: &mut Cursor, ns: u64) -> fmt::Result {
    match ns {
        0..1_000 => write!(c, "{ns}ns"),
        1_000..1_000_000 => write!(c, "{}.{}us", ns / 1_000, ns % 1_000 / 100),
        1_000_000..1_000_000_000 => write!(c, "{}.{}ms", ns / 1_000_000, ns % 1_000_000 / 100_000),
        _ => write!(c, "{}.{:02}s", ns / 1_000_000_000, ns % 1_000_000_000 / 10_000_000),
    }
}

fn emit(bytes: &[u8]) {
    let mut path = [0u8; 257];
    match config::trace_file(&mut path) {
        Some(p) => {
            if let Ok(fd) = sys::open(p, libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, 0o644) {
                let _ = sys::write(fd, bytes);
                let _ = sys::close(fd);
            }
        }
        None => {
            let _ = sys::write(2, bytes);
        }
    }
}

/// Symbolic decoders for arguments.
pub mod decode {
    use super::*;

    pub fn fcntl_cmd(cmd: i32) -> Option<&'static str> {
        Some(match cmd {
            libc::F_DUPFD => "F_DUPFD",
            libc::F_GETFD => "F_GETFD",
            libc::F_SETFD => "F_SETFD",
            libc::F_GETFL => "F_GETFL",
            libc::F_SETFL => "F_SETFL",
            libc::F_GETLK => "F_GETLK",
            libc::F_SETLK => "F_SETLK",
            libc::F_SETLKW => "F_SETLKW",
            libc::F_OFD_GETLK => "F_OFD_GETLK",
            libc::F_OFD_SETLK => "F_OFD_SETLK",
            libc::F_OFD_SETLKW => "F_OFD_SETLKW",
            libc::F_DUPFD_CLOEXEC => "F_DUPFD_CLOEXEC",
            libc::F_SETOWN => "F_SETOWN",
            libc::F_GETOWN => "F_GETOWN",
            libc::F_SETLEASE => "F_SETLEASE",
            libc::F_GETLEASE => "F_GETLEASE",
            libc::F_NOTIFY => "F_NOTIFY",
            libc::F_SETPIPE_SZ => "F_SETPIPE_SZ",
            libc::F_GETPIPE_SZ => "F_GETPIPE_SZ",
            libc::F_ADD_SEALS => "F_ADD_SEALS",
            libc::F_GET_SEALS => "F_GET_SEALS",
            _ => return None,
        })
    }

    pub fn cmd(c: &mut Cursor, cmd: i32) -> fmt::Result {
        match fcntl_cmd(cmd) {
            Some(n) => c.write_str(n),
            None => write!(c, "{cmd}"),
        }
    }

    /// `l_type`, with QNX's F_FLOCK bit shown as `|F_FLOCK`.
    pub fn lock_type(c: &mut Cursor, t: i16) -> fmt::Result {
        let flock_bit = t as i32 & crate::F_FLOCK != 0;
        let base = t as i32 & !crate::F_FLOCK;
        match base {
            libc::F_RDLCK => c.write_str("F_RDLCK")?,
            libc::F_WRLCK => c.write_str("F_WRLCK")?,
            libc::F_UNLCK => c.write_str("F_UNLCK")?,
            other => write!(c, "{other}")?,
        }
        if flock_bit { c.write_str("|F_FLOCK") } else { Ok(()) }
    }

    pub fn whence(c: &mut Cursor, w: i16) -> fmt::Result {
        match w as i32 {
            libc::SEEK_SET => c.write_str("SEEK_SET"),
            libc::SEEK_CUR => c.write_str("SEEK_CUR"),
            libc::SEEK_END => c.write_str("SEEK_END"),
            other => write!(c, "{other}"),
        }
    }

    /// `{F_WRLCK, SEEK_SET, start=0, len=10}`: a request. Its `l_pid` is
    /// ignored by every command but F_GETLK's answer, so it is not shown.
    pub fn flock(c: &mut Cursor, fl: &libc::flock) -> fmt::Result {
        c.write_str("{")?;
        lock_type(c, fl.l_type)?;
        c.write_str(", ")?;
        whence(c, fl.l_whence)?;
        write!(c, ", start={}, len={}", fl.l_start, fl.l_len)?;
        c.write_str("}")
    }

    /// F_GETLK's answer: as `flock`, plus `pid=` for a lock found.
    pub fn flock_answer(c: &mut Cursor, fl: &libc::flock) -> fmt::Result {
        c.write_str("{")?;
        lock_type(c, fl.l_type)?;
        c.write_str(", ")?;
        whence(c, fl.l_whence)?;
        write!(c, ", start={}, len={}", fl.l_start, fl.l_len)?;
        if fl.l_type as i32 & !crate::F_FLOCK != libc::F_UNLCK {
            write!(c, ", pid={}", fl.l_pid)?;
        }
        c.write_str("}")
    }

    pub fn lockf_function(c: &mut Cursor, f: i32) -> fmt::Result {
        match f {
            libc::F_ULOCK => c.write_str("F_ULOCK"),
            libc::F_LOCK => c.write_str("F_LOCK"),
            libc::F_TLOCK => c.write_str("F_TLOCK"),
            libc::F_TEST => c.write_str("F_TEST"),
            other => write!(c, "{other}"),
        }
    }

    /// Writes the names of the set bits, `A|B`, then any unknown rest.
    pub fn bits(c: &mut Cursor, v: i64, names: &[(i64, &str)]) -> fmt::Result {
        let mut rest = v;
        let mut first = true;
        for &(bit, name) in names {
            if v & bit != 0 {
                if !first {
                    c.write_str("|")?;
                }
                c.write_str(name)?;
                rest &= !bit;
                first = false;
            }
        }
        if rest != 0 || first {
            if !first {
                c.write_str("|")?;
            }
            write!(c, "{rest:#x}")?;
        }
        Ok(())
    }

    pub fn flock_op(c: &mut Cursor, op: i32) -> fmt::Result {
        bits(
            c,
            op as i64,
            &[
                (libc::LOCK_SH as i64, "LOCK_SH"),
                (libc::LOCK_EX as i64, "LOCK_EX"),
                (libc::LOCK_UN as i64, "LOCK_UN"),
                (libc::LOCK_NB as i64, "LOCK_NB"),
            ],
        )
    }

    pub fn mcl(c: &mut Cursor, flags: i32) -> fmt::Result {
        bits(
            c,
            flags as i64,
            &[
                (libc::MCL_CURRENT as i64, "MCL_CURRENT"),
                (libc::MCL_FUTURE as i64, "MCL_FUTURE"),
                (libc::MCL_ONFAULT as i64, "MCL_ONFAULT"),
            ],
        )
    }

    pub fn prot(c: &mut Cursor, p: i32) -> fmt::Result {
        if p == libc::PROT_NONE {
            return c.write_str("PROT_NONE");
        }
        bits(
            c,
            p as i64,
            &[
                (libc::PROT_READ as i64, "PROT_READ"),
                (libc::PROT_WRITE as i64, "PROT_WRITE"),
                (libc::PROT_EXEC as i64, "PROT_EXEC"),
            ],
        )
    }

    pub fn map_flags(c: &mut Cursor, f: i32) -> fmt::Result {
        bits(
            c,
            f as i64,
            &[
                (libc::MAP_SHARED as i64, "MAP_SHARED"),
                (libc::MAP_PRIVATE as i64, "MAP_PRIVATE"),
                (libc::MAP_FIXED as i64, "MAP_FIXED"),
                (libc::MAP_ANONYMOUS as i64, "MAP_ANONYMOUS"),
                (libc::MAP_NORESERVE as i64, "MAP_NORESERVE"),
                (libc::MAP_POPULATE as i64, "MAP_POPULATE"),
                (libc::MAP_LOCKED as i64, "MAP_LOCKED"),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: impl Fn(&mut Cursor) -> fmt::Result) -> String {
        let mut buf = [0u8; 256];
        let mut c = Cursor::new(&mut buf);
        f(&mut c).unwrap();
        String::from_utf8(c.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn decodes_symbolically() {
        let fl = libc::flock {
            l_type: libc::F_WRLCK as i16,
            l_whence: libc::SEEK_CUR as i16,
            l_start: 0,
            l_len: 10,
            l_pid: 0,
        };
        assert_eq!(render(|c| decode::flock(c, &fl)), "{F_WRLCK, SEEK_CUR, start=0, len=10}");
        let t = (libc::F_WRLCK | crate::F_FLOCK) as i16;
        assert_eq!(render(|c| decode::lock_type(c, t)), "F_WRLCK|F_FLOCK");
        assert_eq!(render(|c| decode::flock_op(c, libc::LOCK_EX | libc::LOCK_NB)), "LOCK_EX|LOCK_NB");
        assert_eq!(render(|c| decode::mcl(c, libc::MCL_CURRENT | libc::MCL_FUTURE)), "MCL_CURRENT|MCL_FUTURE");
        assert_eq!(render(|c| decode::mcl(c, 0)), "0x0");
        assert_eq!(render(|c| decode::lockf_function(c, libc::F_TLOCK)), "F_TLOCK");
        assert_eq!(render(|c| decode::cmd(c, libc::F_SETLKW)), "F_SETLKW");
    }

    #[test]
    fn durations() {
        assert_eq!(render(|c| duration(c, 850)), "850ns");
        assert_eq!(render(|c| duration(c, 3_150)), "3.1us");
        assert_eq!(render(|c| duration(c, 12_400_000)), "12.4ms");
        assert_eq!(render(|c| duration(c, 2_050_000_000)), "2.05s");
    }

    #[test]
    fn cursor_truncates() {
        let mut buf = [0u8; 4];
        let mut c = Cursor::new(&mut buf);
        let _ = c.write_str("abcdef");
        assert_eq!(c.as_bytes(), b"abcd");
    }
}
