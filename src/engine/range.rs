//! Byte ranges and lock types, with POSIX normalisation.
//!
//! A range is inclusive, `[start, end]`, and `end == EOF` means "to the end of
//! the file and past any future end" (`l_len == 0`). As in Linux `fs/locks.c`,
//! adjacency is tested with `start - 1` rather than `end + 1`, because
//! `EOF + 1` overflows.

use crate::sys::Errno;

/// The last representable offset; a range ending here runs to EOF and beyond.
pub const EOF: i64 = i64::MAX;

/// An inclusive byte range `[start, end]`, `0 <= start <= end`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Range {
    pub start: i64,
    pub end: i64,
}

impl Range {
    /// The whole file, including its future extent (flock's range).
    pub const WHOLE: Range = Range { start: 0, end: EOF };

    pub fn new(start: i64, end: i64) -> Range {
        debug_assert!(0 <= start && start <= end);
        Range { start, end }
    }

    pub fn overlaps(self, other: Range) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// True when the two ranges overlap or touch end to start.
    pub fn touches(self, other: Range) -> bool {
        (other.end >= self.start - 1 || self.start == 0) && (self.end >= other.start - 1 || other.start == 0)
    }

    /// `l_len` as F_GETLK reports it: 0 for a range that runs to EOF.
    pub fn flock_len(self) -> i64 {
        if self.end == EOF { 0 } else { self.end - self.start + 1 }
    }

    /// Normalises `(base + l_start, l_len)` the way POSIX `fcntl()` and QNX
    /// `iofunc_lock()` do. `base` is 0, the file offset or the file size,
    /// according to `l_whence`.
    ///
    /// - a start below 0, or a negative length reaching below 0: EINVAL;
    /// - a first or last byte that `off_t` cannot represent: EOVERFLOW.
    pub fn from_flock(base: i64, l_start: i64, l_len: i64) -> Result<Range, Errno> {
        let start = base.checked_add(l_start).ok_or(Errno::OVERFLOW)?;
        if start < 0 {
            return Err(Errno::INVAL);
        }
        match l_len {
            0 => Ok(Range::new(start, EOF)),
            len if len > 0 => {
                let end = start.checked_add(len - 1).ok_or(Errno::OVERFLOW)?;
                Ok(Range::new(start, end))
            }
            len => {
                // l_len < 0 covers [start + l_len, start - 1].
                let first = start.checked_add(len).ok_or(Errno::INVAL)?;
                if first < 0 || start == 0 {
                    return Err(Errno::INVAL);
                }
                Ok(Range::new(first, start - 1))
            }
        }
    }
}

/// A lock's type: shared (read) or exclusive (write).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum LockType {
    Read = 1,
    Write = 2,
}

impl LockType {
    /// Whether two locks of these types on overlapping bytes, held by
    /// different owners, conflict. Only two readers coexist.
    pub fn conflicts_with(self, other: LockType) -> bool {
        self == LockType::Write || other == LockType::Write
    }

    pub fn from_raw(raw: u8) -> Option<LockType> {
        match raw {
            1 => Some(LockType::Read),
            2 => Some(LockType::Write),
            _ => None,
        }
    }
}

/// What a set request asks for: a lock of some type, or its removal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Request {
    Lock(LockType),
    Unlock,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_length() {
        assert_eq!(Range::from_flock(0, 10, 5), Ok(Range::new(10, 14)));
        assert_eq!(Range::from_flock(100, -10, 1), Ok(Range::new(90, 90)));
    }

    #[test]
    fn zero_length_runs_to_eof() {
        assert_eq!(Range::from_flock(7, 0, 0), Ok(Range::new(7, EOF)));
        assert_eq!(Range::new(7, EOF).flock_len(), 0);
    }

    #[test]
    fn negative_length_locks_backwards() {
        assert_eq!(Range::from_flock(0, 10, -5), Ok(Range::new(5, 9)));
        assert_eq!(Range::from_flock(0, 5, -5), Ok(Range::new(0, 4)));
        assert_eq!(Range::from_flock(0, 5, -6), Err(Errno::INVAL));
        assert_eq!(Range::from_flock(0, 0, -1), Err(Errno::INVAL));
        assert_eq!(Range::from_flock(0, 0, i64::MIN), Err(Errno::INVAL));
    }

    #[test]
    fn bad_starts() {
        assert_eq!(Range::from_flock(0, -1, 1), Err(Errno::INVAL));
        assert_eq!(Range::from_flock(10, i64::MAX, 1), Err(Errno::OVERFLOW));
        assert_eq!(Range::from_flock(0, i64::MAX, 2), Err(Errno::OVERFLOW));
        assert_eq!(Range::from_flock(0, i64::MAX, 1), Ok(Range::new(EOF, EOF)));
    }

    #[test]
    fn touching() {
        let a = Range::new(0, 9);
        assert!(a.touches(Range::new(10, 20)));
        assert!(!a.touches(Range::new(11, 20)));
        assert!(Range::new(10, EOF).touches(a));
        assert!(Range::new(0, EOF).touches(Range::new(0, 0)));
    }

    #[test]
    fn conflicts() {
        assert!(!LockType::Read.conflicts_with(LockType::Read));
        assert!(LockType::Read.conflicts_with(LockType::Write));
        assert!(LockType::Write.conflicts_with(LockType::Read));
    }
}
