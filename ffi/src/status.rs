//! Status codes, the per-thread last error message, and the panic boundary
//! every exported function runs inside.

use engine::{CodecError, Error};
use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The result of every fallible `cvg_` function. Numbers are part of the
/// ABI: a retired number is never reused, new numbers are only appended.
/// `cvg_last_error_message` gives the details of the last failure on the
/// calling thread.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum cvg_status_t {
    /// Success: every output was written.
    CVG_STATUS_OK = 0,
    /// An argument is out of its documented range (an unknown enum value,
    /// an index past the end, a length above `PTRDIFF_MAX`, a path that is
    /// not valid, ...).
    CVG_STATUS_INVALID_ARGUMENT = 1,
    /// A required pointer is NULL (or a byte pointer is NULL with a
    /// non-zero length).
    CVG_STATUS_NULL_POINTER = 2,
    /// The key already holds another CRDT type than the operation is for.
    CVG_STATUS_WRONG_TYPE = 3,
    /// The key is longer than the engine's limit (64 KiB).
    CVG_STATUS_KEY_TOO_LARGE = 4,
    /// A value or set element is longer than the engine's limit (16 MiB).
    CVG_STATUS_VALUE_TOO_LARGE = 5,
    /// Bytes given to the engine (a delta, a state, a context) do not
    /// decode: truncated, damaged, not canonical, too large, or of an
    /// unknown format version (the message says which).
    CVG_STATUS_CORRUPT_INPUT = 6,
    /// Data persisted in the store is damaged: the engine's own checks
    /// failed, or RocksDB reported corruption (a block checksum mismatch, a
    /// damaged `MANIFEST` or `CURRENT` file, ...). Restore the replica from
    /// a peer or a backup.
    CVG_STATUS_CORRUPTION = 7,
    /// RocksDB reported an error that none of the more precise storage
    /// statuses describes (`CVG_STATUS_LOCKED`, `CVG_STATUS_IO`,
    /// `CVG_STATUS_BUSY`, `CVG_STATUS_NO_SPACE`, `CVG_STATUS_CORRUPTION`):
    /// an invalid RocksDB option, a missing store opened without
    /// `create_if_missing`, ... The message says what.
    CVG_STATUS_STORAGE = 8,
    /// An earlier write failed after it may have reached the log: the
    /// engine accepts no more writes until it is closed and reopened.
    CVG_STATUS_POISONED = 9,
    /// The replica id given at open differs from the one stored.
    CVG_STATUS_REPLICA_MISMATCH = 10,
    /// The store was written by a format version this build does not read.
    CVG_STATUS_UNSUPPORTED_FORMAT = 11,
    /// A counter would overflow, or its value does not fit the output type.
    CVG_STATUS_OVERFLOW = 12,
    /// The embedder's merge function reported a failure; nothing was
    /// written.
    CVG_STATUS_MERGE_FUNCTION = 13,
    /// A bug: Rust code panicked. The panic was caught at the boundary;
    /// nothing was written to the outputs.
    CVG_STATUS_PANIC = 14,
    /// An engine error newer than this version of the C ABI; the message
    /// says what it is.
    CVG_STATUS_OTHER = 15,
    /// A sync message out of sequence, of another session, not expected in
    /// the session's phase, or sent to a session that has ended. The
    /// session has ended; start a new one.
    CVG_STATUS_SYNC_PROTOCOL = 16,
    /// The key's state would be larger than the state size limit
    /// (`CVG_MAX_STATE_LEN`, 64 MiB encoded) after this write: nothing was
    /// written. Also returned by reads of a key that already holds more (a
    /// store written before the limit was enforced): that key only.
    CVG_STATUS_STATE_TOO_LARGE = 17,
    /// The replica does not hold every operation of a session token yet
    /// (`cvg_engine_wait_for` without a wait, or its wait timed out; the
    /// message says how many are missing). Nothing changed: retry, wait
    /// longer, or read on another replica.
    CVG_STATUS_NOT_YET_VISIBLE = 18,
    /// The pending area (deltas and pages of changes received before their
    /// causal dependencies) is full: the merge or page that returns it
    /// changed nothing. Deliver what the pending entries wait for
    /// (`cvg_engine_pending` says what), or run an anti-entropy session,
    /// then send it again. The limits are `cvg_options_set_max_pending`
    /// and `cvg_options_set_max_pending_bytes`.
    CVG_STATUS_PENDING_FULL = 19,
    /// The cursor given to `cvg_engine_changes_since` lacks an operation
    /// the changes feed's log no longer holds (the message says which, and
    /// where the log starts). Nothing changed: run an anti-entropy session
    /// with the peer (`cvg_sync_*`), then continue the feed from the
    /// peer's record (its `cvg_engine_context`).
    CVG_STATUS_CURSOR_TOO_OLD = 20,
    /// The engine handle was closed (`cvg_engine_close`, maybe on another
    /// thread) before this call started: the call did nothing. Also the
    /// status of a second `cvg_engine_close`, and of a
    /// `cvg_engine_wait_for` that the close interrupted.
    CVG_STATUS_CLOSED = 21,
    /// The store's directory is locked: another engine has it open, in this
    /// process or another (RocksDB's `LOCK` file). Nothing was opened;
    /// retry once the other engine is closed.
    CVG_STATUS_LOCKED = 22,
    /// RocksDB reported an I/O error (a failed read, write or fsync, a file
    /// that vanished, ...), other than a full disk or a held lock. A write
    /// that returns it poisons the engine (`CVG_STATUS_POISONED` from then
    /// on): close and reopen.
    CVG_STATUS_IO = 23,
    /// RocksDB was busy: it timed out or asked to try again. Nothing was
    /// done; the call may be retried.
    CVG_STATUS_BUSY = 24,
    /// The disk (or RocksDB's space limit) is full. A write that returns it
    /// poisons the engine: free space, then close and reopen. Nothing
    /// acknowledged is lost.
    CVG_STATUS_NO_SPACE = 25,
    /// A sync session was refused: the peer holds data but its causal
    /// record lacks deletes whose tombstones this replica already collected
    /// (`cvg_engine_collect`): it was restored from an old copy of its
    /// directory, or missed deletes every member acknowledged. Syncing it
    /// could bring purged keys back, so nothing was exchanged. Recovery:
    /// rebuild that replica from a live one: open a new, empty store (with
    /// a new replica id: the old copy may lack operations its id already
    /// issued) and sync it (a replica that holds no data is always
    /// accepted); on the other replicas, retire the old id
    /// (`cvg_engine_remove_peer`) and register the new one. The message
    /// names the origin and the sequence numbers.
    CVG_STATUS_BEHIND_HORIZON = 26,
}

use cvg_status_t::*;

/// A failure on its way out to C: the status and the message the calling
/// thread can read with `cvg_last_error_message`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: cvg_status_t,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: cvg_status_t, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// A required pointer argument is NULL.
    pub(crate) fn null(what: &str) -> Failure {
        Failure::new(CVG_STATUS_NULL_POINTER, format!("{what} is NULL"))
    }

    /// An argument is out of range.
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(CVG_STATUS_INVALID_ARGUMENT, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match &e {
            Error::Storage(_) => CVG_STATUS_STORAGE,
            Error::Locked(_) => CVG_STATUS_LOCKED,
            Error::Io(_) => CVG_STATUS_IO,
            Error::Busy(_) => CVG_STATUS_BUSY,
            Error::NoSpace(_) => CVG_STATUS_NO_SPACE,
            Error::Closed => CVG_STATUS_CLOSED,
            Error::Poisoned => CVG_STATUS_POISONED,
            Error::WrongType { .. } | Error::WrongReadType { .. } => CVG_STATUS_WRONG_TYPE,
            Error::KeyTooLarge { .. } => CVG_STATUS_KEY_TOO_LARGE,
            Error::ValueTooLarge { .. } => CVG_STATUS_VALUE_TOO_LARGE,
            Error::Codec(c) => return Failure::from(c.clone()),
            Error::ReplicaMismatch { .. } => CVG_STATUS_REPLICA_MISMATCH,
            Error::UnsupportedFormat { .. } => CVG_STATUS_UNSUPPORTED_FORMAT,
            Error::Overflow => CVG_STATUS_OVERFLOW,
            Error::Corruption(_) => CVG_STATUS_CORRUPTION,
            Error::MergeFunction(_) => CVG_STATUS_MERGE_FUNCTION,
            Error::InvalidArgument(_) => CVG_STATUS_INVALID_ARGUMENT,
            Error::StateTooLarge { .. } => CVG_STATUS_STATE_TOO_LARGE,
            Error::NotYetVisible { .. } => CVG_STATUS_NOT_YET_VISIBLE,
            Error::PendingFull { .. } => CVG_STATUS_PENDING_FULL,
            Error::CursorTooOld { .. } => CVG_STATUS_CURSOR_TOO_OLD,
            _ => CVG_STATUS_OTHER,
        };
        Failure::new(status, e.to_string())
    }
}

impl From<CodecError> for Failure {
    /// Every codec error, an unknown format version included, is
    /// `CVG_STATUS_CORRUPT_INPUT`: garbage often starts with a byte that is
    /// no known version, and the message tells the cases apart.
    fn from(e: CodecError) -> Failure {
        Failure::new(CVG_STATUS_CORRUPT_INPUT, format!("invalid encoding: {e}"))
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

// `try_with`, not `with`: a call made while the thread exits (from a C
// `atexit` handler or a C++ static destructor, which run after the thread's
// storage is destroyed) has no message to keep, and `with` would panic
// outside the panic boundary and abort the process. Found by the `ffi`
// fuzz target (docs/RELIABILITY.md); tested by ffi/tests/exit_handler.rs.
fn set_last_error(message: String) {
    let _ = LAST_ERROR.try_with(|m| *m.borrow_mut() = message);
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|m| m.borrow_mut().clear());
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panic in converge: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panic in converge: {s}")
    } else {
        "panic in converge".to_string()
    }
}

/// Run the body of a status-returning exported function: clear the thread's
/// last error, catch panics, turn failures into a status plus message.
pub(crate) fn boundary<F>(body: F) -> cvg_status_t
where
    F: FnOnce() -> Result<(), Failure>,
{
    clear_last_error();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CVG_STATUS_OK,
        Ok(Err(f)) => {
            set_last_error(f.message);
            f.status
        }
        Err(payload) => {
            set_last_error(panic_message(payload.as_ref()));
            CVG_STATUS_PANIC
        }
    }
}

/// Run the body of an exported function that cannot fail and so returns a
/// plain value (a name, a length, nothing for the `_free` functions):
/// `fallback` is returned if it panics, and the message is then set. These
/// leave the last error message alone, so an error can be reported (its
/// status named, its objects freed) before the message is read.
pub(crate) fn boundary_value<T, F>(fallback: T, body: F) -> T
where
    F: FnOnce() -> T,
{
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            set_last_error(panic_message(payload.as_ref()));
            fallback
        }
    }
}

/// The panic boundary around every exported body.
///
/// `ffi_boundary!({ ... })`: the block evaluates to `Result<(), Failure>`
/// and the function returns `cvg_status_t`.
/// `ffi_boundary!(fallback => { ... })`: the block evaluates to a plain
/// value, `fallback` is returned on panic.
macro_rules! ffi_boundary {
    ($fallback:expr => $body:block) => {
        $crate::status::boundary_value($fallback, move || $body)
    };
    ($body:block) => {
        $crate::status::boundary(move || -> Result<(), $crate::status::Failure> { $body })
    };
}
pub(crate) use ffi_boundary;

/// Copy the calling thread's last error message into `buf` as a
/// NUL-terminated string, truncated to `len - 1` bytes if needed, and return
/// the full length of the message in bytes (without the NUL): if the result
/// is `>= len`, the copy was truncated. Returns 0 (and writes an empty
/// string if `len > 0`) when the last `cvg_` call on this thread succeeded.
/// `buf` may be NULL when `len` is 0, to ask for the size.
///
/// Every function that returns a `cvg_status_t` clears the message when it
/// starts, so the message always belongs to the most recent such call on
/// this thread. The functions that cannot fail (`cvg_version`,
/// `cvg_status_name`, `cvg_crdt_type_name`, the `_len` getters, the
/// `_free` functions, `cvg_*_new`) and this one leave it alone, so a caller
/// may name the status and free its objects before reading the message.
/// Thread-safe.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_last_error_message(buf: *mut c_char, len: usize) -> usize {
    // Not wrapped in ffi_boundary!: it must not clear the message it reads.
    catch_unwind(AssertUnwindSafe(|| {
        LAST_ERROR.with(|m| {
            let m = m.borrow();
            let bytes = m.as_bytes();
            if !buf.is_null() && len > 0 {
                let n = bytes.len().min(len - 1);
                // SAFETY: the caller gives `len` writable bytes at `buf`.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
                    *buf.add(n) = 0;
                }
            }
            bytes.len()
        })
    }))
    .unwrap_or(0)
}

/// The name of a status as a static NUL-terminated string (for example
/// `"CVG_STATUS_WRONG_TYPE"`), or `"CVG_STATUS_UNKNOWN"` for a number this
/// build does not know. Never NULL; do not free. Thread-safe.
#[no_mangle]
pub extern "C" fn cvg_status_name(status: u32) -> *const c_char {
    ffi_boundary!(c"CVG_STATUS_PANIC".as_ptr() => {
        let name: &'static std::ffi::CStr = match status {
            0 => c"CVG_STATUS_OK",
            1 => c"CVG_STATUS_INVALID_ARGUMENT",
            2 => c"CVG_STATUS_NULL_POINTER",
            3 => c"CVG_STATUS_WRONG_TYPE",
            4 => c"CVG_STATUS_KEY_TOO_LARGE",
            5 => c"CVG_STATUS_VALUE_TOO_LARGE",
            6 => c"CVG_STATUS_CORRUPT_INPUT",
            7 => c"CVG_STATUS_CORRUPTION",
            8 => c"CVG_STATUS_STORAGE",
            9 => c"CVG_STATUS_POISONED",
            10 => c"CVG_STATUS_REPLICA_MISMATCH",
            11 => c"CVG_STATUS_UNSUPPORTED_FORMAT",
            12 => c"CVG_STATUS_OVERFLOW",
            13 => c"CVG_STATUS_MERGE_FUNCTION",
            14 => c"CVG_STATUS_PANIC",
            15 => c"CVG_STATUS_OTHER",
            16 => c"CVG_STATUS_SYNC_PROTOCOL",
            17 => c"CVG_STATUS_STATE_TOO_LARGE",
            18 => c"CVG_STATUS_NOT_YET_VISIBLE",
            19 => c"CVG_STATUS_PENDING_FULL",
            20 => c"CVG_STATUS_CURSOR_TOO_OLD",
            21 => c"CVG_STATUS_CLOSED",
            22 => c"CVG_STATUS_LOCKED",
            23 => c"CVG_STATUS_IO",
            24 => c"CVG_STATUS_BUSY",
            25 => c"CVG_STATUS_NO_SPACE",
            26 => c"CVG_STATUS_BEHIND_HORIZON",
            _ => c"CVG_STATUS_UNKNOWN",
        };
        name.as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        let n = unsafe { cvg_last_error_message(std::ptr::null_mut(), 0) };
        let mut buf = vec![0 as c_char; n + 1];
        let m = unsafe { cvg_last_error_message(buf.as_mut_ptr(), buf.len()) };
        assert_eq!(m, n);
        let bytes: Vec<u8> = buf[..n].iter().map(|c| *c as u8).collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = ffi_boundary!({
            if std::hint::black_box(true) {
                panic!("boom");
            }
            Ok(())
        });
        assert_eq!(status, CVG_STATUS_PANIC);
        assert_eq!(last_error(), "panic in converge: boom");
        let v: i32 = ffi_boundary!(-1 => { panic!("{}", String::from("formatted")) });
        assert_eq!(v, -1);
        assert_eq!(last_error(), "panic in converge: formatted");
    }

    #[test]
    fn each_call_clears_the_message() {
        let status = ffi_boundary!({ Err(Failure::null("engine")) });
        assert_eq!(status, CVG_STATUS_NULL_POINTER);
        assert_eq!(last_error(), "engine is NULL");
        let _: usize = ffi_boundary!(0 => { 1 });
        assert_eq!(last_error(), "engine is NULL", "infallible calls keep it");
        assert_eq!(ffi_boundary!({ Ok(()) }), CVG_STATUS_OK);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn truncation_reports_the_full_length() {
        let _ = ffi_boundary!({ Err(Failure::invalid("0123456789")) });
        let mut buf = [1 as c_char; 4];
        let n = unsafe { cvg_last_error_message(buf.as_mut_ptr(), buf.len()) };
        assert_eq!(n, 10);
        assert_eq!(buf.map(|c| c as u8), *b"012\0");
    }

    #[test]
    fn status_names_match_numbers() {
        for s in [
            CVG_STATUS_OK,
            CVG_STATUS_WRONG_TYPE,
            CVG_STATUS_OTHER,
            CVG_STATUS_SYNC_PROTOCOL,
            CVG_STATUS_STATE_TOO_LARGE,
            CVG_STATUS_NOT_YET_VISIBLE,
            CVG_STATUS_PENDING_FULL,
            CVG_STATUS_CURSOR_TOO_OLD,
            CVG_STATUS_CLOSED,
            CVG_STATUS_LOCKED,
            CVG_STATUS_IO,
            CVG_STATUS_BUSY,
            CVG_STATUS_NO_SPACE,
            CVG_STATUS_BEHIND_HORIZON,
        ] {
            let name = unsafe { std::ffi::CStr::from_ptr(cvg_status_name(s as u32)) };
            assert_eq!(name.to_str().unwrap(), format!("{s:?}"));
        }
        let name = unsafe { std::ffi::CStr::from_ptr(cvg_status_name(999)) };
        assert_eq!(name.to_str().unwrap(), "CVG_STATUS_UNKNOWN");
    }

    #[test]
    fn engine_errors_map_to_their_status() {
        assert_eq!(Failure::from(Error::Poisoned).status, CVG_STATUS_POISONED);
        assert_eq!(Failure::from(Error::Overflow).status, CVG_STATUS_OVERFLOW);
        let codec = Error::Codec(CodecError::Checksum);
        assert_eq!(Failure::from(codec).status, CVG_STATUS_CORRUPT_INPUT);
        let version = CodecError::UnknownVersion {
            found: 9,
            supported: 1,
        };
        assert_eq!(Failure::from(version).status, CVG_STATUS_CORRUPT_INPUT);
        let store = Error::UnsupportedFormat {
            found: 9,
            supported: 1,
        };
        assert_eq!(Failure::from(store).status, CVG_STATUS_UNSUPPORTED_FORMAT);
        let not_yet = Failure::from(Error::NotYetVisible { missing: 2 });
        assert_eq!(not_yet.status, CVG_STATUS_NOT_YET_VISIBLE);
        assert!(not_yet.message.contains("lacks 2"), "{}", not_yet.message);
        let full = Failure::from(Error::PendingFull {
            entries: 4,
            bytes: 100,
            max_entries: 3,
            max_bytes: 1000,
        });
        assert_eq!(full.status, CVG_STATUS_PENDING_FULL);
        assert!(
            full.message.contains("limits 3 entries"),
            "{}",
            full.message
        );
        let old = Failure::from(Error::CursorTooOld {
            needed: 1,
            oldest: 7,
        });
        assert_eq!(old.status, CVG_STATUS_CURSOR_TOO_OLD);
        assert!(old.message.contains("starts at 7"), "{}", old.message);
        for (e, status) in [
            (Error::Locked("l".into()), CVG_STATUS_LOCKED),
            (Error::Io("i".into()), CVG_STATUS_IO),
            (Error::Busy("b".into()), CVG_STATUS_BUSY),
            (Error::NoSpace("n".into()), CVG_STATUS_NO_SPACE),
            (Error::Corruption("c".into()), CVG_STATUS_CORRUPTION),
            (Error::Storage("s".into()), CVG_STATUS_STORAGE),
        ] {
            assert_eq!(Failure::from(e).status, status);
        }
    }
}
