//! `qnxcompat`: runs programs under libqnxcompat.so (`run`), lists the
//! registry's locks and blocked requests like `lslocks` (`locks`), and
//! checks the library and the registry (`doctor`).
//!
//! The command never links the library's interposers into itself: it finds
//! `libqnxcompat.so` beside itself (or in the install prefix's `lib/`) and
//! loads it with `dlopen` for the registry calls of `<qnxcompat.h>`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{CStr, CString, OsString, c_char, c_int, c_long, c_void};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "qnxcompat",
    version,
    about = "QNX Neutrino file and memory locking on Linux, through libqnxcompat.so"
)]
#[command(long_about = "QNX Neutrino file and memory locking on Linux, through libqnxcompat.so.\n\n\
    `qnxcompat run -- CMD` runs a command and everything it spawns under the library; \
    `qnxcompat locks` lists the registry's locks and blocked requests like lslocks; \
    `qnxcompat doctor` checks that the library loads and interposes, and the registry's health.")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a command, and everything it spawns, under the library.
    ///
    /// Sets an absolute LD_PRELOAD (ld.so ignores a relative one) and execs
    /// the command: its exit status is the command's.
    Run {
        /// Trace every intercepted call (SET: `all`, `locks`, or a comma list
        /// of functions such as `fcntl,lockf,flock`).
        #[arg(long, value_name = "SET", num_args = 0..=1, default_missing_value = "all", require_equals = true)]
        trace: Option<String>,
        /// Append trace lines to this file instead of stderr.
        #[arg(long, value_name = "FILE")]
        trace_file: Option<PathBuf>,
        /// Use /dev/shm/NAME as the lock registry.
        #[arg(long, value_name = "NAME")]
        registry: Option<String>,
        /// Make any fallback to Linux semantics a hard error (QNXCOMPAT_STRICT=1);
        /// a registry that cannot be used fails the run before the command starts.
        #[arg(long)]
        strict: bool,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// List the registry's locks and blocked requests, like lslocks.
    Locks {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// The registry to read (default: QNXCOMPAT_REGISTRY, or the user's).
        #[arg(long, value_name = "NAME")]
        registry: Option<String>,
        /// Only the locks and requests of this process.
        #[arg(long, value_name = "P")]
        pid: Option<i32>,
        /// Only the locks and requests on this file.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Check that the library loads and interposes, and the registry's health.
    Doctor {
        /// Clear what dead owners left behind (their locks, waits and mappings).
        #[arg(long)]
        reap: bool,
        /// The registry to check (default: QNXCOMPAT_REGISTRY, or the user's).
        #[arg(long, value_name = "NAME")]
        registry: Option<String>,
    },
    /// Print the man page (roff) on standard output.
    #[command(hide = true)]
    Man,
    /// Internal: report which object defines each interposed symbol.
    #[command(hide = true, name = "__interposed")]
    Interposed,
}

/// `struct qnxcompat_lock_row`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct Row {
    what: u32,
    kind: u32,
    ltype: i32,
    pid: i32,
    start: i64,
    end: i64,
    dev: u64,
    ino: u64,
    owner: u32,
    owner_gen: u32,
    alive: u32,
    blocker: u32,
    blocker_pid: i32,
    blocker_kind: u32,
    waiter_pid: i32,
    _pad: u32,
}

/// `struct qnxcompat_health`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct Health {
    layout_version: u32,
    mode: u32,
    abi: u64,
    bytes: u64,
    process_owners: u32,
    openfile_owners: u32,
    unvouched: u32,
    owners_cap: u32,
    records: u32,
    records_cap: u32,
    files: u32,
    files_cap: u32,
    waiters: u32,
    waiters_cap: u32,
    maps: u32,
    maps_cap: u32,
    repairs: u32,
    _pad: u32,
}

const _: () = assert!(size_of::<Row>() == 80 && size_of::<Health>() == 80);

type RowFn = unsafe extern "C" fn(*const Row, *mut c_void) -> c_int;
type LocksFn = unsafe extern "C" fn(*const c_char, Option<RowFn>, *mut c_void) -> c_int;
type HealthFn = unsafe extern "C" fn(*const c_char, *mut Health, usize) -> c_int;
type ReapFn = unsafe extern "C" fn(*const c_char, c_int, *mut c_long) -> c_long;
type VerifyFn = unsafe extern "C" fn(*const c_char, *mut c_char, usize) -> c_int;

/// The library, loaded with dlopen, and its C API.
struct Lib {
    path: PathBuf,
    locks: LocksFn,
    health: HealthFn,
    reap: ReapFn,
    verify: VerifyFn,
}

/// Where the library is: `QNXCOMPAT_LIB`, beside the command, or in the
/// install prefix's `lib/`.
fn find_lib() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("QNXCOMPAT_LIB") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(std::fs::canonicalize(&p).unwrap_or(p))
        } else {
            Err(format!("QNXCOMPAT_LIB={} is not a file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this command's own path: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let tried = [dir.join("libqnxcompat.so"), dir.join("../lib/libqnxcompat.so")];
    for t in &tried {
        if t.is_file() {
            return Ok(std::fs::canonicalize(t).unwrap_or_else(|_| t.clone()));
        }
    }
    Err(format!("libqnxcompat.so is in neither {} nor {} (set QNXCOMPAT_LIB)", tried[0].display(), tried[1].display()))
}

impl Lib {
    fn load() -> Result<Lib, String> {
        let path = find_lib()?;
        let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| "bad library path".to_string())?;
        // SAFETY: a valid C string; the library's constructor only reads
        // the environment and resolves its hook table.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if h.is_null() {
            // SAFETY: dlerror returns a C string or NULL.
            let e = unsafe { libc::dlerror() };
            let why = if e.is_null() {
                "unknown".into()
            } else {
                unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
            };
            return Err(format!("cannot load {}: {why}", path.display()));
        }
        let sym = |name: &CStr| -> Result<*mut c_void, String> {
            // SAFETY: `h` is a live handle, `name` a C string.
            let p = unsafe { libc::dlsym(h, name.as_ptr()) };
            if p.is_null() {
                Err(format!("{} does not export {}", path.display(), name.to_string_lossy()))
            } else {
                Ok(p)
            }
        };
        // SAFETY: each symbol has the signature `<qnxcompat.h>` declares.
        unsafe {
            Ok(Lib {
                locks: std::mem::transmute::<*mut c_void, LocksFn>(sym(c"qnxcompat_locks")?),
                health: std::mem::transmute::<*mut c_void, HealthFn>(sym(c"qnxcompat_health")?),
                reap: std::mem::transmute::<*mut c_void, ReapFn>(sym(c"qnxcompat_reap")?),
                verify: std::mem::transmute::<*mut c_void, VerifyFn>(sym(c"qnxcompat_verify")?),
                path,
            })
        }
    }

    fn rows(&self, registry: Option<&CStr>) -> Result<Vec<Row>, c_int> {
        unsafe extern "C" fn push(r: *const Row, ctx: *mut c_void) -> c_int {
            // SAFETY: `ctx` is the Vec below; `r` a valid row for the call.
            unsafe { (*(ctx as *mut Vec<Row>)).push(*r) };
            0
        }
        let mut v: Vec<Row> = Vec::new();
        let name = registry.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: `push` matches RowFn; `v` outlives the call.
        let r = unsafe { (self.locks)(name, Some(push), (&raw mut v).cast()) };
        if r == 0 { Ok(v) } else { Err(r) }
    }
}

/// The registry's name as the library will use it.
fn registry_name(explicit: Option<&str>) -> String {
    if let Some(n) = explicit {
        return n.to_string();
    }
    if let Ok(n) = std::env::var("QNXCOMPAT_REGISTRY") {
        return n;
    }
    // SAFETY: geteuid cannot fail.
    format!("qnxcompat-{}", unsafe { libc::geteuid() })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { trace, trace_file, registry, strict, command } => run(trace, trace_file, registry, strict, command),
        Cmd::Locks { json, registry, pid, file } => locks(json, registry, pid, file),
        Cmd::Doctor { reap, registry } => doctor(reap, registry),
        Cmd::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            let mut out = Vec::new();
            if man.render(&mut out).is_err() || std::io::stdout().write_all(&out).is_err() {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Cmd::Interposed => interposed(),
    }
}

fn fail(msg: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("qnxcompat: {msg}");
    ExitCode::from(code)
}

fn run(
    trace: Option<String>,
    trace_file: Option<PathBuf>,
    registry: Option<String>,
    strict: bool,
    command: Vec<OsString>,
) -> ExitCode {
    let lib = match find_lib() {
        Ok(p) => p,
        Err(e) => return fail(e, 125),
    };
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..]);
    let mut preload = OsString::from(lib.as_os_str());
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        // Already preloaded (a nested run): keep the rest, once.
        let rest: Vec<&str> =
            old.to_str().unwrap_or("").split([' ', ':']).filter(|w| !w.is_empty() && Path::new(w) != lib).collect();
        if !rest.is_empty() {
            preload.push(":");
            preload.push(rest.join(":"));
        }
    }
    cmd.env("LD_PRELOAD", &preload);
    if let Some(t) = trace {
        cmd.env("QNXCOMPAT_TRACE", t);
    }
    if let Some(f) = trace_file {
        let abs = if f.is_absolute() { f } else { std::env::current_dir().map(|d| d.join(&f)).unwrap_or(f) };
        cmd.env("QNXCOMPAT_TRACE_FILE", abs);
    }
    if let Some(r) = &registry {
        cmd.env("QNXCOMPAT_REGISTRY", r);
    }
    if strict {
        cmd.env("QNXCOMPAT_STRICT", "1");
        if std::env::var("QNXCOMPAT").is_ok_and(|v| matches!(v.as_str(), "off" | "0" | "no")) {
            return fail("--strict: QNXCOMPAT=off would run the command with Linux semantics", 125);
        }
        // A registry that exists but cannot be used fails the run now.
        let name = registry_name(registry.as_deref());
        if Path::new("/dev/shm").join(&name).exists() {
            let l = match Lib::load() {
                Ok(l) => l,
                Err(e) => return fail(e, 125),
            };
            let mut msg = [0 as c_char; 512];
            let c = CString::new(name.clone()).unwrap_or_default();
            // SAFETY: valid C string and buffer.
            let r = unsafe { (l.verify)(c.as_ptr(), msg.as_mut_ptr(), msg.len()) };
            if r != 0 {
                // SAFETY: verify NUL-terminates.
                let m = unsafe { CStr::from_ptr(msg.as_ptr()) }.to_string_lossy();
                return fail(format!("--strict: lock registry {name} cannot be used: {m}"), 125);
            }
        }
    }
    let e = cmd.exec();
    let code = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
    fail(format!("cannot run {}: {e}", command[0].to_string_lossy()), code)
}

/// What the command knows of the processes: their names and the files
/// their descriptors have open.
#[derive(Default)]
struct Procs {
    comm: HashMap<i32, String>,
    /// (dev, ino) -> path, from any process's descriptors.
    paths: HashMap<(u64, u64), String>,
    /// (dev, ino) -> pids with a descriptor whose open file holds an OFD
    /// or flock lock there (the kernel mirror's), else any descriptor.
    lockers: HashMap<(u64, u64), BTreeSet<i32>>,
    openers: HashMap<(u64, u64), BTreeSet<i32>>,
}

/// The kernel's `st_dev` as the library stores it.
fn scan_procs(want: &BTreeSet<(u64, u64)>) -> Procs {
    let mut p = Procs::default();
    let Ok(dir) = std::fs::read_dir("/proc") else { return p };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if let Ok(c) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
            p.comm.insert(pid, c.trim_end().to_string());
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(m) = std::fs::metadata(fd.path()) else { continue };
            let key = (m.dev(), m.ino());
            if !want.contains(&key) {
                continue;
            }
            if let Ok(l) = std::fs::read_link(fd.path()) {
                p.paths.entry(key).or_insert_with(|| l.to_string_lossy().into_owned());
            }
            p.openers.entry(key).or_default().insert(pid);
            let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy()))
                .unwrap_or_default();
            if info.lines().any(|l| l.starts_with("lock:") && (l.contains("OFDLCK") || l.contains("FLOCK"))) {
                p.lockers.entry(key).or_default().insert(pid);
            }
        }
    }
    p
}

/// The kernel's locks (`/proc/locks`): (class, dev, ino, start, end), with
/// class "POSIX", "OFDLCK" or "FLOCK" and end `i64::MAX` for EOF.
fn kernel_locks() -> Vec<(String, u64, u64, i64, i64)> {
    let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        // "1: POSIX  ADVISORY  WRITE 123 fd:00:4567 0 EOF", and "->" for a waiter.
        let f: Vec<&str> = line.split_whitespace().filter(|w| *w != "->").collect();
        if f.len() < 8 {
            continue;
        }
        let id: Vec<&str> = f[5].split(':').collect();
        if id.len() != 3 {
            continue;
        }
        let (Ok(maj), Ok(min), Ok(ino)) =
            (u32::from_str_radix(id[0], 16), u32::from_str_radix(id[1], 16), id[2].parse::<u64>())
        else {
            continue;
        };
        let start = f[6].parse::<i64>().unwrap_or(0);
        let end = if f[7] == "EOF" { i64::MAX } else { f[7].parse::<i64>().unwrap_or(i64::MAX) };
        out.push((f[1].to_string(), libc::makedev(maj, min), ino, start, end));
    }
    out
}

/// Whether the kernel holds a lock of the row's kind over its range (the
/// mirror's copy): a registry lock without one is held by nobody, and the
/// next locker that meets it drops it.
fn kernel_has(k: &[(String, u64, u64, i64, i64)], r: &Row) -> bool {
    k.iter().any(|(class, dev, ino, s, e)| {
        let kind_ok = match r.kind {
            1 => class == "POSIX",
            _ => class == "OFDLCK" || class == "FLOCK",
        };
        kind_ok && *dev == r.dev && *ino == r.ino && *s <= r.end && r.start <= *e
    })
}

fn kind_name(k: u32) -> &'static str {
    match k {
        1 => "posix",
        2 => "flock",
        3 => "ofd",
        _ => "?",
    }
}

fn type_name(t: i32) -> &'static str {
    if t == libc::F_RDLCK { "READ" } else { "WRITE" }
}

/// The owners on a cycle of the wait-for graph (owner -> blocker edges).
fn cycle_owners(rows: &[Row]) -> BTreeSet<u32> {
    let mut edges: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.what == 2 && r.blocker != u32::MAX) {
        edges.entry(r.owner).or_default().insert(r.blocker);
    }
    let mut on = BTreeSet::new();
    for &start in edges.keys() {
        // Is `start` reachable from itself?
        let mut seen = BTreeSet::new();
        let mut stack: Vec<u32> = edges[&start].iter().copied().collect();
        while let Some(n) = stack.pop() {
            if n == start {
                on.insert(start);
                break;
            }
            if seen.insert(n) {
                stack.extend(edges.get(&n).into_iter().flatten().copied());
            }
        }
    }
    on
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn locks(json: bool, registry: Option<String>, pid: Option<i32>, file: Option<PathBuf>) -> ExitCode {
    let lib = match Lib::load() {
        Ok(l) => l,
        Err(e) => return fail(e, 1),
    };
    let name = registry_name(registry.as_deref());
    let cname = CString::new(name.clone()).unwrap_or_default();
    let rows = match lib.rows(Some(&cname)) {
        Ok(r) => r,
        // No registry: nothing is locked under the library.
        Err(-2) if !Path::new("/dev/shm").join(&name).exists() => Vec::new(),
        Err(-2) => return fail(format!("lock registry {name} cannot be attached (run `qnxcompat doctor`)"), 1),
        Err(_) => return fail(format!("lock registry {name} cannot be locked"), 1),
    };
    let want_file = match &file {
        Some(f) => match std::fs::metadata(f) {
            Ok(m) => Some((m.dev(), m.ino())),
            Err(e) => return fail(format!("{}: {e}", f.display()), 1),
        },
        None => None,
    };
    let files: BTreeSet<(u64, u64)> = rows.iter().map(|r| (r.dev, r.ino)).collect();
    let procs = scan_procs(&files);
    let cycles = cycle_owners(&rows);
    // With the kernel mirror, every granted lock is also a kernel lock: one
    // the kernel does not hold is stale (its owner's last descriptor went
    // by a path the library did not see), shown as such.
    let mut h = Health::default();
    // SAFETY: `h` is a valid out-parameter of its size.
    let mirrored = unsafe { (lib.health)(cname.as_ptr(), &mut h, size_of::<Health>()) } == 0 && h.mode == 1;
    let klocks = if mirrored { kernel_locks() } else { Vec::new() };
    let stale = |r: &Row| mirrored && r.what == 1 && !kernel_has(&klocks, r);
    let holders_of = |r: &Row| -> Vec<i32> {
        if r.kind == 1 {
            return vec![r.pid];
        }
        let key = (r.dev, r.ino);
        let set = procs.lockers.get(&key).or_else(|| procs.openers.get(&key));
        match set {
            Some(s) if !s.is_empty() => s.iter().copied().collect(),
            _ => vec![r.pid],
        }
    };
    let shown: Vec<&Row> = rows
        .iter()
        .filter(|r| want_file.is_none_or(|k| k == (r.dev, r.ino)))
        .filter(|r| pid.is_none_or(|p| r.pid == p || (r.what == 2 && r.waiter_pid == p) || holders_of(r).contains(&p)))
        .collect();
    let comm = |p: i32| procs.comm.get(&p).cloned().unwrap_or_else(|| "?".into());
    let path_of = |r: &Row| procs.paths.get(&(r.dev, r.ino)).cloned();
    let end_of = |r: &Row| if r.end == i64::MAX { "EOF".to_string() } else { r.end.to_string() };
    let mut out = String::new();
    if json {
        out.push_str(&format!("{{\"registry\": {}, \"locks\": [", json_str(&name)));
        for (i, r) in shown.iter().enumerate() {
            let pids = holders_of(r);
            let pid_list = pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
            let cmds = pids.iter().map(|p| json_str(&comm(*p))).collect::<Vec<_>>().join(", ");
            let waiting = r.what == 2;
            out.push_str(if i == 0 { "\n  " } else { ",\n  " });
            out.push_str(&format!(
                "{{\"command\": {}, \"pid\": {}, \"pids\": [{}], \"commands\": [{}], \"owner\": \"{}:{}\", \"kind\": \"{}\", \"type\": \"{}\", \"waiting\": {}, \"start\": {}, \"end\": {}, \"eof\": {}, \"dev\": {}, \"ino\": {}, \"path\": {}",
                json_str(&comm(if waiting { r.waiter_pid } else { pids[0] })),
                if waiting { r.waiter_pid } else { pids[0] },
                pid_list,
                cmds,
                r.owner,
                r.owner_gen,
                kind_name(r.kind),
                type_name(r.ltype),
                waiting,
                r.start,
                if r.end == i64::MAX { -1 } else { r.end },
                r.end == i64::MAX,
                r.dev,
                r.ino,
                path_of(r).map_or("null".into(), |p| json_str(&p)),
            ));
            if !waiting {
                out.push_str(&format!(", \"stale\": {}", stale(r)));
            }
            if waiting {
                if r.blocker != u32::MAX {
                    out.push_str(&format!(
                        ", \"blocker\": {{\"owner\": {}, \"pid\": {}, \"command\": {}, \"kind\": \"{}\"}}",
                        r.blocker,
                        r.blocker_pid,
                        json_str(&comm(r.blocker_pid)),
                        kind_name(r.blocker_kind)
                    ));
                } else {
                    out.push_str(", \"blocker\": null");
                }
                out.push_str(&format!(", \"deadlock\": {}", cycles.contains(&r.owner)));
            }
            out.push('}');
        }
        out.push_str(if shown.is_empty() { "]}\n" } else { "\n]}\n" });
    } else {
        let mut lines = vec![[
            "COMMAND".to_string(),
            "PID".into(),
            "KIND".into(),
            "TYPE".into(),
            "WAIT".into(),
            "START".into(),
            "END".into(),
            "PATH".into(),
            "BLOCKER".into(),
        ]];
        for r in &shown {
            let pids = holders_of(r);
            let waiting = r.what == 2;
            let who = if waiting { r.waiter_pid } else { pids[0] };
            let pid_col = if !waiting && r.kind != 1 {
                pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
            } else {
                who.to_string()
            };
            let blocker = if !waiting {
                if stale(r) { "(stale: no kernel lock)".into() } else { String::new() }
            } else if r.blocker == u32::MAX {
                "-".into()
            } else {
                let mut b = format!("{} ({})", r.blocker_pid, comm(r.blocker_pid));
                if cycles.contains(&r.owner) {
                    b.push_str(" DEADLOCK");
                }
                b
            };
            lines.push([
                comm(who),
                pid_col,
                kind_name(r.kind).into(),
                type_name(r.ltype).into(),
                if waiting { "*".into() } else { String::new() },
                r.start.to_string(),
                end_of(r),
                path_of(r).unwrap_or_else(|| format!("{}:{} (dev:ino)", r.dev, r.ino)),
                blocker,
            ]);
        }
        let mut w = [0usize; 9];
        for l in &lines {
            for (i, c) in l.iter().enumerate() {
                w[i] = w[i].max(c.len());
            }
        }
        for l in &lines {
            let mut s = String::new();
            for (i, c) in l.iter().enumerate() {
                if i == 8 {
                    s.push_str(c);
                } else {
                    s.push_str(&format!("{c:<width$} ", width = w[i]));
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        }
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

/// Runs in a child under LD_PRELOAD: which object defines each symbol.
fn interposed() -> ExitCode {
    for name in ["fcntl", "fcntl64", "lockf", "lockf64", "flock", "close", "mlock", "mlockall"] {
        let c = CString::new(name).unwrap_or_default();
        // SAFETY: RTLD_DEFAULT lookup of a C string; dladdr fills `info`.
        let (p, file) = unsafe {
            let p = libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr());
            let mut info: libc::Dl_info = std::mem::zeroed();
            let file = if !p.is_null() && libc::dladdr(p, &mut info) != 0 && !info.dli_fname.is_null() {
                CStr::from_ptr(info.dli_fname).to_string_lossy().into_owned()
            } else {
                "-".into()
            };
            (p, file)
        };
        println!("{name} {} {file}", !p.is_null());
    }
    ExitCode::SUCCESS
}

fn doctor(reap: bool, registry: Option<String>) -> ExitCode {
    let mut bad = 0;
    let mut say = |ok: bool, what: String| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            bad += 1;
        }
    };
    let lib = match Lib::load() {
        Ok(l) => {
            say(true, format!("library {} loads", l.path.display()));
            l
        }
        Err(e) => {
            say(false, e);
            return ExitCode::from(1);
        }
    };
    // Interposition, seen from a preloaded child.
    match std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .arg("__interposed")
            .env("LD_PRELOAD", &lib.path)
            .env_remove("QNXCOMPAT_TRACE")
            .output()
    }) {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut all = !text.is_empty();
            for l in text.lines() {
                let f: Vec<&str> = l.splitn(3, ' ').collect();
                let ok = f.len() == 3 && f[1] == "true" && std::fs::canonicalize(f[2]).is_ok_and(|p| p == lib.path);
                if !ok {
                    all = false;
                    say(false, format!("{} is not interposed (defined by {})", f[0], f.get(2).unwrap_or(&"?")));
                }
            }
            if all {
                say(
                    true,
                    "interposes fcntl, fcntl64, lockf, lockf64, flock, close, mlock, mlockall under LD_PRELOAD".into(),
                );
            }
            let err = String::from_utf8_lossy(&o.stderr);
            if !err.trim().is_empty() {
                say(false, format!("a preloaded process prints: {}", err.trim()));
            }
        }
        Err(e) => say(false, format!("cannot start a preloaded child: {e}")),
    }
    let name = registry_name(registry.as_deref());
    let cname = CString::new(name.clone()).unwrap_or_default();
    let path = Path::new("/dev/shm").join(&name);
    if !path.exists() {
        say(true, format!("lock registry {name}: none yet (created by the first lock)"));
        return if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) };
    }
    let mut msg = [0 as c_char; 512];
    // SAFETY: valid C string and buffer.
    let v = unsafe { (lib.verify)(cname.as_ptr(), msg.as_mut_ptr(), msg.len()) };
    // SAFETY: verify NUL-terminates.
    let m = unsafe { CStr::from_ptr(msg.as_ptr()) }.to_string_lossy().into_owned();
    say(v == 0, format!("lock registry {name}: {m}"));
    if v == 2 {
        return ExitCode::from(1);
    }
    let mut h = Health::default();
    // SAFETY: `h` is a valid out-parameter of its size.
    if unsafe { (lib.health)(cname.as_ptr(), &mut h, size_of::<Health>()) } == 0 {
        let pct = |a: u32, b: u32| if b == 0 { 0.0 } else { 100.0 * f64::from(a) / f64::from(b) };
        println!(
            "     layout version {}, {} mode, {} KiB in use, {} repairs after a holder died",
            h.layout_version,
            if h.mode == 1 { "kernel-mirror" } else { "registry-only" },
            h.bytes / 1024,
            h.repairs
        );
        let used = |what: &str, n: u32, cap: u32| format!("{what} {n} ({:.2}% of {cap})", pct(n, cap));
        println!(
            "     {} processes and {} open files; {}; {}; {}; {}",
            h.process_owners,
            h.openfile_owners,
            used("owners", h.process_owners + h.openfile_owners, h.owners_cap),
            used("records", h.records, h.records_cap),
            used("files", h.files, h.files_cap),
            used("waiters", h.waiters, h.waiters_cap),
        );
        println!("     {}", used("mappings", h.maps, h.maps_cap));
    }
    let mut probed: c_long = 0;
    // SAFETY: valid C string and out-parameter.
    let dead = unsafe { (lib.reap)(cname.as_ptr(), c_int::from(reap), &mut probed) };
    match dead {
        d if d < 0 => say(false, "cannot probe the registry's owners".into()),
        0 => say(true, format!("no dead owners ({probed} probed, the rest vouched for by a live thread)")),
        d if reap => say(true, format!("reaped {d} dead owners and everything they left ({probed} probed)")),
        d => say(
            false,
            format!(
                "{d} dead owners left locks or waits behind ({probed} probed): `qnxcompat doctor --reap` clears them"
            ),
        ),
    }
    if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(owner: u32, blocker: u32) -> Row {
        Row { what: 2, owner, blocker, ..Row::default() }
    }

    #[test]
    fn cycles_are_found_and_chains_are_not() {
        // 1 -> 2 -> 3 -> 1 is a cycle; 4 -> 1 waits on it without being on it;
        // 5 -> 6 is a plain chain; a lock row is no edge.
        let rows = [
            waiter(1, 2),
            waiter(2, 3),
            waiter(3, 1),
            waiter(4, 1),
            waiter(5, 6),
            Row { what: 1, owner: 6, blocker: 5, ..Row::default() },
            waiter(7, u32::MAX),
        ];
        let on = cycle_owners(&rows);
        assert_eq!(on.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn the_man_page_renders_from_the_definitions() {
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(".TH qnxcompat") && text.contains("locks") && text.contains("doctor"));
        Cli::command().debug_assert();
    }
}
