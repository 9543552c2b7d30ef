//! Settings from the environment, read once by the library constructor.
//!
//! | variable | meaning |
//! |---|---|
//! | `QNXCOMPAT=off` | every hook is a pure pass-through (A/B runs) |
//! | `QNXCOMPAT_TRACE` | `1`/`all`, or a comma list of functions (`lockf,flock`) |
//! | `QNXCOMPAT_TRACE_FILE` | append trace lines to this file instead of stderr |
//! | `QNXCOMPAT_REGISTRY` | the registry segment's name (default `qnxcompat-<uid>`) |
//! | `QNXCOMPAT_REGISTRY_GROUP` | share the registry with the members of this group (mode 0660) |
//! | `QNXCOMPAT_QNX_VERSION` | `7` (default) or `8`: which release's mlock rules apply |
//! | `QNXCOMPAT_ABILITIES` | comma list of QNX abilities granted to a non-root process: `mem_lock` (`PROCMGR_AID_MEM_LOCK`) |
//! | `QNXCOMPAT_FDCACHE=0` | no descriptor cache, for programs that close descriptors with raw syscalls |
//! | `QNXCOMPAT_FALLBACK` | `kernel`: a refused registry gives kernel locks instead of ENOLCK |
//! | `QNXCOMPAT_VERIFY` | `1`: check the registry's invariants after every operation |
//! | `QNXCOMPAT_FAULT` | test-only fault injection, see [`crate::fault`] |
//!
//! # Safety
//! The string settings are copied into static buffers by the constructor,
//! before any other thread of the process can run, and only read afterwards.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::sys;

/// Every interposed symbol, one bit each in the trace mask.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum Func {
    Fcntl,
    Fcntl64,
    UFcntl,
    Lockf,
    Lockf64,
    Flock,
    Close,
    UClose,
    Fclose,
    Fcloseall,
    Dup2,
    Dup3,
    CloseRange,
    Closefrom,
    Mlock,
    Munlock,
    Mlockall,
    Munlockall,
    Mmap,
    Mmap64,
    Munmap,
    Mlock2,
    IofuncLock,
    IofuncLockDefault,
    IofuncCloseDup,
    IofuncCloseDupDefault,
    IofuncCloseOcb,
    IofuncCloseOcbDefault,
    IofuncUnblock,
    IofuncUnblockDefault,
    MsgReply,
    MsgReplyv,
    MsgError,
}

impl Func {
    pub const ALL: [Func; 33] = [
        Func::Fcntl,
        Func::Fcntl64,
        Func::UFcntl,
        Func::Lockf,
        Func::Lockf64,
        Func::Flock,
        Func::Close,
        Func::UClose,
        Func::Fclose,
        Func::Fcloseall,
        Func::Dup2,
        Func::Dup3,
        Func::CloseRange,
        Func::Closefrom,
        Func::Mlock,
        Func::Munlock,
        Func::Mlockall,
        Func::Munlockall,
        Func::Mmap,
        Func::Mmap64,
        Func::Munmap,
        Func::Mlock2,
        Func::IofuncLock,
        Func::IofuncLockDefault,
        Func::IofuncCloseDup,
        Func::IofuncCloseDupDefault,
        Func::IofuncCloseOcb,
        Func::IofuncCloseOcbDefault,
        Func::IofuncUnblock,
        Func::IofuncUnblockDefault,
        Func::MsgReply,
        Func::MsgReplyv,
        Func::MsgError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Func::Fcntl => "fcntl",
            Func::Fcntl64 => "fcntl64",
            Func::UFcntl => "__fcntl",
            Func::Lockf => "lockf",
            Func::Lockf64 => "lockf64",
            Func::Flock => "flock",
            Func::Close => "close",
            Func::UClose => "__close",
            Func::Fclose => "fclose",
            Func::Fcloseall => "fcloseall",
            Func::Dup2 => "dup2",
            Func::Dup3 => "dup3",
            Func::CloseRange => "close_range",
            Func::Closefrom => "closefrom",
            Func::Mlock => "mlock",
            Func::Munlock => "munlock",
            Func::Mlockall => "mlockall",
            Func::Munlockall => "munlockall",
            Func::Mmap => "mmap",
            Func::Mmap64 => "mmap64",
            Func::Munmap => "munmap",
            Func::Mlock2 => "mlock2",
            Func::IofuncLock => "iofunc_lock",
            Func::IofuncLockDefault => "iofunc_lock_default",
            Func::IofuncCloseDup => "iofunc_close_dup",
            Func::IofuncCloseDupDefault => "iofunc_close_dup_default",
            Func::IofuncCloseOcb => "iofunc_close_ocb",
            Func::IofuncCloseOcbDefault => "iofunc_close_ocb_default",
            Func::IofuncUnblock => "iofunc_unblock",
            Func::IofuncUnblockDefault => "iofunc_unblock_default",
            Func::MsgReply => "MsgReply",
            Func::MsgReplyv => "MsgReplyv",
            Func::MsgError => "MsgError",
        }
    }

    fn bit(self) -> u64 {
        1 << self as u32
    }

    /// Whether a name in QNXCOMPAT_TRACE selects this symbol: its own name,
    /// or the family name (`fcntl` selects `fcntl64` and `__fcntl`;
    /// `iofunc` every `iofunc_*` function, `Msg` the replies).
    fn selected_by(self, word: &[u8]) -> bool {
        let name = self.name().as_bytes();
        if (word == b"iofunc" && name.starts_with(b"iofunc_")) || (word == b"Msg" && name.starts_with(b"Msg")) {
            return true;
        }
        let base = name.strip_prefix(b"__").unwrap_or(name);
        let base = base.strip_suffix(b"64").unwrap_or(base);
        word == name || word == base
    }
}

/// Every `Func` bit.
const ALL_FUNCS: u64 = (1 << Func::ALL.len()) - 1;

/// The trace mask's bit for `QNXCOMPAT_TRACE=locks`: only the lock calls,
/// and only the closes that released something.
const LOCKS_ONLY: u64 = 1 << 63;

/// The calls `locks` selects: the lock calls and the closing calls.
fn is_lock_func(f: Func) -> bool {
    use Func::*;
    matches!(
        f,
        Fcntl
            | Fcntl64
            | UFcntl
            | Lockf
            | Lockf64
            | Flock
            | Close
            | Fcloseall
            | Dup2
            | Dup3
            | CloseRange
            | Closefrom
            | UClose
            | Fclose
            | IofuncLock
            | IofuncLockDefault
            | IofuncCloseOcb
            | IofuncCloseOcbDefault
    )
}

/// Parses a QNXCOMPAT_TRACE value into a mask of `Func` bits; `Err` with
/// the first word that names nothing.
pub fn parse_trace_checked(value: &[u8]) -> Result<u64, &[u8]> {
    match value {
        b"" | b"0" | b"off" | b"no" => Ok(0),
        b"1" | b"all" | b"yes" | b"on" => Ok(ALL_FUNCS),
        list => {
            let mut mask = 0;
            for w in list.split(|&c| c == b',').map(|w| w.trim_ascii()).filter(|w| !w.is_empty()) {
                if w == b"locks" {
                    mask |= Func::ALL.iter().filter(|f| is_lock_func(**f)).fold(LOCKS_ONLY, |m, f| m | f.bit());
                    continue;
                }
                let m = Func::ALL.iter().filter(|f| f.selected_by(w)).fold(0, |m, f| m | f.bit());
                if m == 0 {
                    return Err(w);
                }
                mask |= m;
            }
            Ok(mask)
        }
    }
}

/// Parses a QNXCOMPAT_TRACE value, ignoring words that name nothing.
pub fn parse_trace(value: &[u8]) -> u64 {
    match parse_trace_checked(value) {
        Ok(m) => m,
        Err(_) => {
            value.split(|&c| c == b',').map(|w| parse_trace_checked(w.trim_ascii()).unwrap_or(0)).fold(0, |m, w| m | w)
        }
    }
}

/// Whether `QNXCOMPAT_TRACE=locks` asks for the lock calls only (fcntl
/// lines only for lock commands, close lines only when they released).
pub fn trace_locks_only() -> bool {
    TRACE_MASK.load(Ordering::Relaxed) & LOCKS_ONLY != 0
}

static TRACE_TIME: AtomicBool = AtomicBool::new(false);

/// Whether trace lines start with the wall-clock time (QNXCOMPAT_TRACE_TIME=1).
pub fn trace_time() -> bool {
    TRACE_TIME.load(Ordering::Relaxed)
}

const MODE_UNINIT: u8 = 0;
const MODE_ON: u8 = 1;
const MODE_OFF: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(MODE_UNINIT);
static QNX8: AtomicBool = AtomicBool::new(false);
/// The group a shared registry belongs to, or u32::MAX for a private one.
static SHARED_GID: AtomicU32 = AtomicU32::new(u32::MAX);
static ABILITY_MEM_LOCK: AtomicBool = AtomicBool::new(false);
static TRACE_MASK: AtomicU64 = AtomicU64::new(0);

/// A fixed buffer written once by the constructor, then only read.
struct StaticBuf {
    bytes: UnsafeCell<[u8; 256]>,
    len: AtomicU32,
}

// SAFETY: written only by the constructor before any reader exists (the
// length is published with Release and read with Acquire).
unsafe impl Sync for StaticBuf {}

impl StaticBuf {
    const fn new() -> StaticBuf {
        StaticBuf { bytes: UnsafeCell::new([0; 256]), len: AtomicU32::new(0) }
    }

    /// # Safety
    /// Only the constructor calls this, before other threads exist.
    unsafe fn set(&self, v: &[u8]) {
        let n = v.len().min(255);
        // SAFETY: per the contract, nobody reads concurrently.
        unsafe { (&mut *self.bytes.get())[..n].copy_from_slice(&v[..n]) };
        self.len.store(n as u32, Ordering::Release);
    }

    fn get(&self) -> &[u8] {
        let n = self.len.load(Ordering::Acquire) as usize;
        // SAFETY: bytes [..n] were written before `len` was published and
        // never change afterwards.
        unsafe { &(&*self.bytes.get())[..n] }
    }
}

static TRACE_FILE: StaticBuf = StaticBuf::new();
static REGISTRY_NAME: StaticBuf = StaticBuf::new();
static FAULT: StaticBuf = StaticBuf::new();
static FD_CACHE: AtomicBool = AtomicBool::new(true);

/// Reads the environment. Called once from the library constructor.
pub fn load() {
    let off = sys::getenv(c"QNXCOMPAT").is_some_and(|v| matches!(v.to_bytes(), b"off" | b"0" | b"no"));
    let mask = sys::getenv(c"QNXCOMPAT_TRACE").map_or(0, |v| parse_trace(v.to_bytes()));
    TRACE_MASK.store(mask, Ordering::Relaxed);
    TRACE_TIME.store(
        sys::getenv(c"QNXCOMPAT_TRACE_TIME").is_some_and(|v| matches!(v.to_bytes(), b"1" | b"on" | b"yes")),
        Ordering::Relaxed,
    );
    // SAFETY: we are the constructor; no other thread runs yet.
    unsafe {
        if let Some(path) = sys::getenv(c"QNXCOMPAT_TRACE_FILE") {
            TRACE_FILE.set(path.to_bytes());
        }
        let gid = sys::getenv(c"QNXCOMPAT_REGISTRY_GROUP").and_then(group_id);
        if let Some(g) = gid {
            SHARED_GID.store(g, Ordering::Relaxed);
        }
        match sys::getenv(c"QNXCOMPAT_REGISTRY") {
            Some(name) => REGISTRY_NAME.set(name.to_bytes()),
            None => {
                // No version in the name: processes of two layouts must meet
                // on one segment, so that the second is refused (fail
                // closed) rather than granting what the first holds.
                // (Digits by hand: core::fmt's code would be two more pages
                // to fault in at every process start.)
                let mut buf = [0u8; 64];
                let (prefix, id): (&[u8], u32) = match gid {
                    Some(g) => (b"qnxcompat-g", g),
                    None => (b"qnxcompat-", sys::geteuid()),
                };
                buf[..prefix.len()].copy_from_slice(prefix);
                let n = prefix.len() + decimal(id, &mut buf[prefix.len()..]);
                REGISTRY_NAME.set(&buf[..n]);
            }
        }
    }
    let v8 = sys::getenv(c"QNXCOMPAT_QNX_VERSION").is_some_and(|v| matches!(v.to_bytes(), b"8" | b"8.0" | b"8.0.0"));
    QNX8.store(v8, Ordering::Relaxed);
    let mem_lock = sys::getenv(c"QNXCOMPAT_ABILITIES").is_some_and(|v| {
        v.to_bytes().split(|&c| c == b',').any(|w| {
            let w = w.trim_ascii();
            w.eq_ignore_ascii_case(b"mem_lock") || w == b"PROCMGR_AID_MEM_LOCK"
        })
    });
    ABILITY_MEM_LOCK.store(mem_lock, Ordering::Relaxed);
    let no_cache = sys::getenv(c"QNXCOMPAT_FDCACHE").is_some_and(|v| matches!(v.to_bytes(), b"0" | b"off" | b"no"));
    FD_CACHE.store(!no_cache, Ordering::Relaxed);
    VERIFY_EACH.store(sys::getenv(c"QNXCOMPAT_VERIFY").is_some_and(|v| v.to_bytes() == b"1"), Ordering::Relaxed);
    let mirror_off = sys::getenv(c"QNXCOMPAT_MIRROR").is_some_and(|v| matches!(v.to_bytes(), b"off" | b"0" | b"no"));
    MIRROR.store(!mirror_off, Ordering::Relaxed);
    let fallback = sys::getenv(c"QNXCOMPAT_FALLBACK").is_some_and(|v| v.to_bytes() == b"kernel");
    KERNEL_FALLBACK.store(fallback, Ordering::Relaxed);
    if let Some(f) = sys::getenv(c"QNXCOMPAT_FAULT") {
        // SAFETY: we are the constructor; no other thread runs yet.
        unsafe { FAULT.set(f.to_bytes()) };
    }
    STRICT.store(
        sys::getenv(c"QNXCOMPAT_STRICT").is_some_and(|v| matches!(v.to_bytes(), b"1" | b"on" | b"yes")),
        Ordering::Relaxed,
    );
    MODE.store(if off { MODE_OFF } else { MODE_ON }, Ordering::Release);
    check_settings(shared_gid().is_some());
}

static STRICT: AtomicBool = AtomicBool::new(false);

/// Whether `QNXCOMPAT_STRICT=1` makes any fallback to Linux semantics (and
/// any bad setting) a hard error: one line, then exit status 70.
pub fn strict() -> bool {
    STRICT.load(Ordering::Relaxed)
}

/// The exit status of a process that `QNXCOMPAT_STRICT=1` stops (EX_SOFTWARE).
pub const STRICT_EXIT: i32 = 70;

/// Writes one `qnxcompat: ...` line on stderr (one write).
pub fn complain(parts: &[&[u8]]) {
    let mut buf = [0u8; 600];
    let mut n = 0;
    for p in [&b"qnxcompat: "[..]].iter().chain(parts.iter()).chain([&b"\n"[..]].iter()) {
        let k = p.len().min(buf.len() - 1 - n);
        buf[n..n + k].copy_from_slice(&p[..k]);
        n += k;
    }
    if buf[n - 1] != b'\n' {
        buf[n] = b'\n';
        n += 1;
    }
    let _ = sys::write(2, &buf[..n]);
}

/// Under `QNXCOMPAT_STRICT=1`: says so and ends the process.
pub fn strict_stop(why: &[u8]) {
    if strict() {
        complain(&[b"QNXCOMPAT_STRICT=1: ", why, b": exiting with status 70"]);
        sys::exit_now(STRICT_EXIT);
    }
}

/// The settings every process understands, each with what it accepts.
const SETTINGS: [(&[u8], &[u8]); 17] = [
    (b"QNXCOMPAT", b"on, off (or 1, 0, yes, no)"),
    (
        b"QNXCOMPAT_TRACE",
        b"1, all, locks, or a comma list of functions (fcntl, lockf, flock, close, mlock, mmap, iofunc, Msg, ...)",
    ),
    (b"QNXCOMPAT_TRACE_FILE", b"a writable file's path"),
    (b"QNXCOMPAT_TRACE_TIME", b"1 or 0"),
    (b"QNXCOMPAT_REGISTRY", b"a name for /dev/shm/NAME: 1 to 200 characters, no '/'"),
    (b"QNXCOMPAT_REGISTRY_GROUP", b"a group name or number"),
    (b"QNXCOMPAT_QNX_VERSION", b"7, 7.0, 7.1, 8, 8.0"),
    (b"QNXCOMPAT_ABILITIES", b"a comma list of: mem_lock (PROCMGR_AID_MEM_LOCK)"),
    (b"QNXCOMPAT_FDCACHE", b"1 or 0"),
    (b"QNXCOMPAT_FALLBACK", b"kernel, or none"),
    (b"QNXCOMPAT_VERIFY", b"1 or 0"),
    (b"QNXCOMPAT_MIRROR", b"on or off"),
    (b"QNXCOMPAT_STRICT", b"1 or 0"),
    (b"QNXCOMPAT_FAULT", b"test-only fault injection"),
    (b"QNXCOMPAT_LIB", b"the qnxcompat command's library path"),
    (b"QNXCOMPAT_WARNED", b"set by the library"),
    (b"QNXCOMPAT_ADOPT", b"set by the library across an exec"),
];

fn is_bool(v: &[u8]) -> bool {
    matches!(v, b"" | b"1" | b"0" | b"on" | b"off" | b"yes" | b"no")
}

/// Whether setting `name` accepts `value`.
fn accepts(name: &[u8], value: &[u8], group_ok: bool) -> bool {
    match name {
        b"QNXCOMPAT"
        | b"QNXCOMPAT_TRACE_TIME"
        | b"QNXCOMPAT_FDCACHE"
        | b"QNXCOMPAT_VERIFY"
        | b"QNXCOMPAT_MIRROR"
        | b"QNXCOMPAT_STRICT" => is_bool(value),
        b"QNXCOMPAT_TRACE" => parse_trace_checked(value).is_ok(),
        b"QNXCOMPAT_REGISTRY" => {
            !value.is_empty() && value.len() <= 200 && !value.contains(&b'/') && value != b"." && value != b".."
        }
        b"QNXCOMPAT_REGISTRY_GROUP" => group_ok,
        b"QNXCOMPAT_QNX_VERSION" => matches!(value, b"7" | b"7.0" | b"7.1" | b"8" | b"8.0" | b"8.0.0"),
        b"QNXCOMPAT_ABILITIES" => value
            .split(|&c| c == b',')
            .map(|w| w.trim_ascii())
            .all(|w| w.is_empty() || w.eq_ignore_ascii_case(b"mem_lock") || w == b"PROCMGR_AID_MEM_LOCK"),
        b"QNXCOMPAT_FALLBACK" => matches!(value, b"" | b"kernel" | b"none"),
        _ => true,
    }
}

/// The settings' hash, so a process tree hears of one set of bad settings
/// once (`QNXCOMPAT_WARNED` carries it to the children): the sum of each
/// entry's FNV-1a, so the environment's order does not matter.
fn settings_hash(h: u64, entry: &[u8]) -> u64 {
    h.wrapping_add(
        entry.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)),
    )
}

/// A visitor of one setting: its whole entry, its name and its value.
type SettingFn<'a> = dyn FnMut(&[u8], &[u8], &[u8]) + 'a;

/// Calls `f` with each `QNXCOMPAT` / `QNXCOMPAT_*` entry of the environment
/// (but `QNXCOMPAT_WARNED`), its name and its value.
fn for_each_setting(f: &mut SettingFn<'_>) {
    sys::for_each_env(&mut |e| {
        if !e.starts_with(b"QNXCOMPAT") || e.starts_with(b"QNXCOMPAT_WARNED=") {
            return;
        }
        let eq = e.iter().position(|&c| c == b'=').unwrap_or(e.len());
        let (name, value) = (&e[..eq], e.get(eq + 1..).unwrap_or(b""));
        if name.starts_with(b"QNXCOMPAT_") || name == b"QNXCOMPAT" {
            f(e, name, value);
        }
    });
}

/// Validates every `QNXCOMPAT_*` variable: a bad value or an unknown name
/// gets one line that quotes it and says what is accepted; an unwritable
/// trace file is reported and the trace goes to stderr. Said once per
/// process tree (children inherit `QNXCOMPAT_WARNED`); under
/// `QNXCOMPAT_STRICT=1` any of it, or `QNXCOMPAT=off`, ends the process.
fn check_settings(group_ok: bool) {
    let group_set = sys::getenv(c"QNXCOMPAT_REGISTRY_GROUP").is_some();
    let mut hash = 0u64;
    let mut bad = 0u32;
    // First pass: is anything wrong, and what is the tree's hash?
    for_each_setting(&mut |e, name, value| {
        hash = settings_hash(hash, e);
        let known = SETTINGS.iter().any(|(n, _)| *n == name);
        if !known || !accepts(name, value, group_ok || !group_set) {
            bad += 1;
        }
    });
    let mut file_bad = false;
    let mut path = [0u8; 257];
    if tracing_any()
        && let Some(p) = trace_file(&mut path)
    {
        match sys::open(p, libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, 0o644) {
            Ok(fd) => {
                let _ = sys::close(fd);
            }
            Err(_) => file_bad = true,
        }
    }
    let off = MODE.load(Ordering::Relaxed) == MODE_OFF;
    if bad == 0 && !file_bad && !(off && strict()) {
        return;
    }
    // Said already in this process tree?
    let mut hex = [0u8; 17];
    for (i, d) in hex[..16].iter_mut().enumerate() {
        *d = b"0123456789abcdef"[(hash >> (60 - 4 * i) & 0xf) as usize];
    }
    let said = sys::getenv(c"QNXCOMPAT_WARNED").is_some_and(|v| v.to_bytes() == &hex[..16]);
    if !said || strict() {
        for_each_setting(&mut |_, name, value| match SETTINGS.iter().find(|(n, _)| *n == name) {
            None => complain(&[b"unknown setting ", name, b" ignored (see README.md for the QNXCOMPAT_* settings)"]),
            Some((_, what)) if !accepts(name, value, group_ok || !group_set) => {
                if name == b"QNXCOMPAT_TRACE"
                    && let Err(w) = parse_trace_checked(value)
                {
                    complain(&[name, b"=\"", value, b"\": \"", w, b"\" names nothing traced; accepted: ", what]);
                } else if name == b"QNXCOMPAT_REGISTRY" {
                    complain(&[
                        name,
                        b"=\"",
                        value,
                        b"\" is not a registry name: lock calls fail with ENOLCK (lockf: ENOMEM); accepted: ",
                        what,
                    ]);
                } else if name == b"QNXCOMPAT_REGISTRY_GROUP" {
                    complain(&[
                        name,
                        b"=\"",
                        value,
                        b"\": no such group; the registry stays private (accepted: ",
                        what,
                        b")",
                    ]);
                } else {
                    complain(&[name, b"=\"", value, b"\" is not understood and is ignored; accepted: ", what]);
                }
            }
            _ => {}
        });
        if file_bad {
            let n = path.iter().position(|&b| b == 0).unwrap_or(0);
            complain(&[
                b"cannot write the trace file QNXCOMPAT_TRACE_FILE=\"",
                &path[..n],
                b"\"; trace lines go to stderr",
            ]);
        }
        hex[16] = 0;
        if let Ok(v) = CStr::from_bytes_with_nul(&hex) {
            sys::setenv(c"QNXCOMPAT_WARNED", v);
        }
    }
    if file_bad {
        // SAFETY: we are the constructor; no other thread runs yet.
        unsafe { TRACE_FILE.set(b"") };
    }
    if off {
        strict_stop(b"QNXCOMPAT=off would give Linux semantics");
    }
    if bad > 0 || file_bad {
        strict_stop(b"a setting above is not understood");
    }
}

static MIRROR: AtomicBool = AtomicBool::new(true);

/// Whether every registry grant is also taken as a kernel lock
/// (`QNXCOMPAT_MIRROR`, on unless `off`; see `crate::mirror`).
pub fn mirror() -> bool {
    MIRROR.load(Ordering::Relaxed)
}

static KERNEL_FALLBACK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether `QNXCOMPAT_FALLBACK=kernel` asks that a registry that cannot be
/// used give Linux kernel locks instead of failing every lock call.
pub fn kernel_fallback() -> bool {
    KERNEL_FALLBACK.load(Ordering::Relaxed)
}

/// Whether hooks apply QNX semantics (false before the constructor ran and
/// under QNXCOMPAT=off).
pub fn active() -> bool {
    MODE.load(Ordering::Acquire) == MODE_ON
}

/// The group id named by QNXCOMPAT_REGISTRY_GROUP (a name or a number).
fn group_id(name: &CStr) -> Option<u32> {
    let b = name.to_bytes();
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        return core::str::from_utf8(b).ok()?.parse().ok();
    }
    // SAFETY: an all-zero group is a valid out-parameter for getgrnam_r.
    let mut grp: libc::group = unsafe { core::mem::zeroed() };
    let mut buf = [0 as libc::c_char; 4096];
    let mut out: *mut libc::group = core::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; glibc fills `grp` using
    // `buf` and sets `out` to `&grp` on success.
    let r = unsafe { libc::getgrnam_r(name.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut out) };
    (r == 0 && !out.is_null()).then_some(grp.gr_gid)
}

/// The group sharing the registry, if QNXCOMPAT_REGISTRY_GROUP is set.
pub fn shared_gid() -> Option<u32> {
    let g = SHARED_GID.load(Ordering::Relaxed);
    (g != u32::MAX).then_some(g)
}

/// The QNX release whose mlock rules apply.
pub fn qnx8() -> bool {
    QNX8.load(Ordering::Relaxed)
}

/// Writes `v` in decimal at the start of `out` (at least 10 bytes); returns
/// how many bytes.
fn decimal(mut v: u32, out: &mut [u8]) -> usize {
    let mut digits = [0u8; 10];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for (i, d) in digits[..n].iter().rev().enumerate() {
        out[i] = *d;
    }
    n
}

/// Whether the descriptor cache is on (QNXCOMPAT_FDCACHE).
pub fn fd_cache() -> bool {
    FD_CACHE.load(Ordering::Relaxed)
}

static VERIFY_EACH: AtomicBool = AtomicBool::new(false);

/// Whether `QNXCOMPAT_VERIFY=1` asks for the registry's invariants to be
/// checked after every operation (always on in debug builds).
pub fn verify_each() -> bool {
    VERIFY_EACH.load(Ordering::Relaxed)
}

/// The QNXCOMPAT_FAULT setting, if any (see `crate::fault`).
pub fn fault_spec() -> Option<&'static [u8]> {
    let f = FAULT.get();
    (!f.is_empty()).then_some(f)
}

/// Whether the process was granted QNX's PROCMGR_AID_MEM_LOCK ability.
pub fn has_mem_lock_ability() -> bool {
    ABILITY_MEM_LOCK.load(Ordering::Relaxed)
}

/// Whether any call is traced. Tracing does not depend on QNXCOMPAT=off:
/// the same program can be traced with the QNX rules and without them (the
/// pass-through calls' lines show Linux's results).
pub fn tracing_any() -> bool {
    TRACE_MASK.load(Ordering::Relaxed) != 0
}

/// Whether calls to `f` are traced.
pub fn traced(f: Func) -> bool {
    TRACE_MASK.load(Ordering::Relaxed) & f.bit() != 0
}

/// The trace file path, if set (NUL-terminated copy in `buf`).
pub fn trace_file(buf: &mut [u8; 257]) -> Option<&CStr> {
    let p = TRACE_FILE.get();
    if p.is_empty() {
        return None;
    }
    buf[..p.len()].copy_from_slice(p);
    buf[p.len()] = 0;
    CStr::from_bytes_with_nul(&buf[..=p.len()]).ok()
}

pub fn registry_name() -> &'static [u8] {
    REGISTRY_NAME.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits() {
        for v in [0u32, 7, 10, 65534, 4_294_967_295] {
            let mut b = [0u8; 10];
            let n = decimal(v, &mut b);
            assert_eq!(&b[..n], v.to_string().as_bytes());
        }
    }

    #[test]
    fn trace_lists() {
        assert_eq!(parse_trace(b"1"), ALL_FUNCS);
        assert!(!parse_trace(b"all") & LOCKS_ONLY != 0);
        let m = parse_trace(b"locks");
        assert!(m & LOCKS_ONLY != 0 && m & Func::Fcntl64.bit() != 0 && m & Func::Close.bit() != 0);
        assert_eq!(m & Func::Mmap.bit(), 0);
        assert_eq!(parse_trace_checked(b"lokf"), Err(&b"lokf"[..]));
        assert_eq!(parse_trace(b"lokf,flock"), Func::Flock.bit());
        let m = parse_trace(b"iofunc");
        assert!(m & Func::IofuncLock.bit() != 0 && m & Func::IofuncUnblockDefault.bit() != 0);
        assert_eq!(m & (Func::MsgReply.bit() | Func::Fcntl.bit()), 0);
        assert_eq!(parse_trace(b""), 0);
        let m = parse_trace(b"lockf, flock");
        assert!(m & Func::Lockf.bit() != 0 && m & Func::Lockf64.bit() != 0);
        assert!(m & Func::Flock.bit() != 0);
        assert_eq!(m & Func::Fcntl.bit(), 0);
        let m = parse_trace(b"fcntl");
        assert!(m & Func::UFcntl.bit() != 0 && m & Func::Fcntl64.bit() != 0);
        let m = parse_trace(b"fcntl64");
        assert_eq!(m, Func::Fcntl64.bit());
        assert_eq!(parse_trace(b"nonsense"), 0);
    }
}
