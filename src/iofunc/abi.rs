//! The C structures of `shim/include/sys/{neutrino,iomsg,resmgr,iofunc}.h`,
//! field for field (x86-64). The headers assert the same sizes and offsets
//! with `_Static_assert`, so a change on either side fails to build.

use core::ffi::c_void;

/// QNX `struct _msg_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgInfo {
    pub nd: u32,
    pub srcnd: u32,
    pub pid: i32,
    pub tid: i32,
    pub chid: i32,
    pub scoid: i32,
    pub coid: i32,
    pub msglen: i32,
    pub srcmsglen: i32,
    pub dstmsglen: i32,
    pub priority: i16,
    pub flags: i16,
    pub reserved: u32,
}

/// `_msg_info.flags`: the client asked to be unblocked.
pub const NTO_MI_UNBLOCK_REQ: i16 = 0x100;
/// `struct _pulse.code` of an unblock pulse (its value is the rcvid).
pub const PULSE_CODE_UNBLOCK: i8 = -32;

/// QNX `resmgr_context_t`.
#[repr(C)]
pub struct ResmgrContext {
    pub rcvid: i32,
    pub info: MsgInfo,
    pub msg: *mut c_void,
    pub dpp: *mut c_void,
    pub id: i32,
    pub extra: *mut c_void,
    pub msg_max_size: u32,
    pub status: i32,
    pub offset: i32,
    pub size: i32,
    pub iov: [libc::iovec; 1],
}

/// QNX `struct _io_lock` (`io_lock_t.i`); `nbytes` of data follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoLock {
    pub type_: u16,
    pub combine_len: u16,
    pub subtype: u32,
    pub nbytes: u32,
}

/// QNX `flock_t`: the lock data of an `_IO_LOCK` message and its reply.
/// Linux's `struct flock` has these fields at these offsets; QNX's
/// `l_zero1` and `l_sysid` are its padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QnxFlock {
    pub l_type: i16,
    pub l_whence: i16,
    pub l_zero1: i32,
    pub l_start: i64,
    pub l_len: i64,
    pub l_pid: i32,
    pub l_sysid: u32,
}

/// QNX `struct _pulse` (`io_pulse_t`).
#[repr(C)]
pub struct Pulse {
    pub type_: u16,
    pub subtype: u16,
    pub code: i8,
    pub zero: [u8; 3],
    pub value: usize,
    pub scoid: i32,
}

/// QNX `struct _cred_info`.
#[repr(C)]
pub struct CredInfo {
    pub ruid: u32,
    pub euid: u32,
    pub suid: u32,
    pub rgid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub ngroups: u32,
    pub grouplist: [u32; 8],
}

/// QNX `struct _client_info`.
#[repr(C)]
pub struct ClientInfo {
    pub nd: u32,
    pub pid: i32,
    pub sid: i32,
    pub flags: u32,
    pub cred: CredInfo,
}

/// QNX `iofunc_funcs_t`.
#[repr(C)]
pub struct IofuncFuncs {
    pub nfuncs: u32,
    pub ocb_calloc: Option<unsafe extern "C" fn(*mut ResmgrContext, *mut IofuncAttr) -> *mut IofuncOcb>,
    pub ocb_free: Option<unsafe extern "C" fn(*mut IofuncOcb)>,
    pub attr_lock: Option<unsafe extern "C" fn(*mut IofuncAttr) -> i32>,
    pub attr_unlock: Option<unsafe extern "C" fn(*mut IofuncAttr) -> i32>,
    pub attr_trylock: Option<unsafe extern "C" fn(*mut IofuncAttr) -> i32>,
}

/// QNX `iofunc_mount_t`.
#[repr(C)]
pub struct IofuncMount {
    pub flags: u32,
    pub conf: u32,
    pub dev: u64,
    pub blocksize: i32,
    pub funcs: *mut IofuncFuncs,
    pub power: *mut c_void,
}

/// QNX `iofunc_attr_t` (7.1 field order).
#[repr(C)]
pub struct IofuncAttr {
    pub mount: *mut IofuncMount,
    pub mmap_list: *mut c_void,
    pub lock_list: *mut c_void,
    pub acl: *mut c_void,
    pub lock: [u64; 5],
    pub flags: u32,
    pub count: u16,
    pub rcount: u16,
    pub wcount: u16,
    pub rlocks: u16,
    pub wlocks: u16,
    pub reserved: u16,
    pub nbytes: i64,
    pub inode: u64,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub atime: i64,
    pub ctime: i64,
    pub mode: u32,
    pub nlink: u64,
    pub rdev: u64,
    pub mtime_ns: u32,
    pub atime_ns: u32,
    pub ctime_ns: u32,
}

/// QNX `iofunc_ocb_t`.
#[repr(C)]
pub struct IofuncOcb {
    pub attr: *mut IofuncAttr,
    pub ioflag: i32,
    pub offset: i64,
    pub sflag: u16,
    pub flags: u16,
    pub reserved: *mut c_void,
}

/// A handler slot of `resmgr_io_funcs_t` / `resmgr_connect_funcs_t`: a
/// function's address, or 0 (NULL).
pub type Handler = usize;

/// QNX `resmgr_io_funcs_t` (QNX 7's 33 handlers).
#[repr(C)]
pub struct ResmgrIoFuncs {
    pub nfuncs: u32,
    pub funcs: [Handler; IO_NFUNCS],
}

/// QNX `resmgr_connect_funcs_t`.
#[repr(C)]
pub struct ResmgrConnectFuncs {
    pub nfuncs: u32,
    pub funcs: [Handler; CONNECT_NFUNCS],
}

pub const IO_NFUNCS: usize = 33;
pub const CONNECT_NFUNCS: usize = 8;
/// Slots in `resmgr_io_funcs_t` (after `nfuncs`).
pub const IO_CLOSE_OCB: usize = 2;
pub const IO_UNBLOCK: usize = 6;
pub const IO_LOCK: usize = 14;
pub const IO_CLOSE_DUP: usize = 21;

/// `_IO_LOCK`, the message type.
pub const IO_LOCK_TYPE: u16 = 0x10F;
/// `ocb->ioflag` access bits.
pub const IO_FLAG_RD: i32 = 1;
pub const IO_FLAG_WR: i32 = 2;
/// `ocb->flags`: the client mapped the file.
pub const IOFUNC_OCB_MMAP: u16 = 2;
/// `attr->flags` bits.
pub const IOFUNC_ATTR_MTIME: u32 = 0x1;
pub const IOFUNC_ATTR_ATIME: u32 = 0x2;
pub const IOFUNC_ATTR_CTIME: u32 = 0x4;
pub const IOFUNC_ATTR_DIRTY_TIME: u32 = 0x40;

/// Handler results.
pub const RESMGR_NOREPLY: i32 = 0x8000_0000_u32 as i32;
pub const RESMGR_DEFAULT: i32 = 0x8000_0001_u32 as i32;
/// `_RESMGR_NPARTS(1)`.
pub const RESMGR_NPARTS_1: i32 = -1;

/// The size of the `_IO_LOCK` header, after which the `flock_t` follows.
pub const IO_LOCK_HEADER: usize = 12;
/// The reply: `struct _io_lock_reply` then the `flock_t`.
pub const IO_LOCK_REPLY_LEN: usize = IO_LOCK_HEADER + core::mem::size_of::<QnxFlock>();

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<MsgInfo>() == 48);
    assert!(offset_of!(MsgInfo, scoid) == 20);
    assert!(offset_of!(MsgInfo, flags) == 42);
    assert!(size_of::<ResmgrContext>() == 120);
    assert!(offset_of!(ResmgrContext, info) == 4);
    assert!(offset_of!(ResmgrContext, status) == 92);
    assert!(offset_of!(ResmgrContext, iov) == 104);
    assert!(size_of::<IoLock>() == IO_LOCK_HEADER);
    assert!(size_of::<QnxFlock>() == 32);
    assert!(size_of::<QnxFlock>() == size_of::<libc::flock>());
    assert!(offset_of!(QnxFlock, l_start) == offset_of!(libc::flock, l_start));
    assert!(offset_of!(QnxFlock, l_len) == offset_of!(libc::flock, l_len));
    assert!(offset_of!(QnxFlock, l_pid) == offset_of!(libc::flock, l_pid));
    assert!(size_of::<Pulse>() == 24);
    assert!(size_of::<ClientInfo>() == 76);
    assert!(offset_of!(ClientInfo, cred) == 16);
    assert!(offset_of!(Pulse, value) == 8);
    assert!(size_of::<IofuncMount>() == 40);
    assert!(size_of::<IofuncAttr>() == 176);
    assert!(offset_of!(IofuncAttr, lock_list) == 16);
    assert!(offset_of!(IofuncAttr, flags) == 72);
    assert!(offset_of!(IofuncAttr, nbytes) == 88);
    assert!(offset_of!(IofuncAttr, mode) == 136);
    assert!(size_of::<IofuncOcb>() == 40);
    assert!(offset_of!(IofuncOcb, offset) == 16);
    assert!(size_of::<ResmgrIoFuncs>() == 8 + 8 * IO_NFUNCS);
    assert!(size_of::<ResmgrConnectFuncs>() == 8 + 8 * CONNECT_NFUNCS);
    assert!(size_of::<libc::pthread_mutex_t>() == 40);
};
