//! `cvg_engine_t`: open and close, identity, key metadata, merges of peer
//! bytes and the anti-entropy / maintenance calls.

use crate::bytes::{cvg_bytes_t, input, required, write_out};
use crate::cvg_status_t;
use crate::options::cvg_options_t;
use crate::registry::{self, Closing, Guard};
use crate::status::{ffi_boundary, Failure};
use engine::{codec, CrdtType, Engine, Options};
use std::ffi::{c_char, CStr};

/// An open replica store. Created by `cvg_engine_open`, closed by
/// `cvg_engine_close`. Opaque: the pointer is a generation-tagged name of
/// the engine, never dereferenced by the caller or the library, so a
/// closed handle stays safe to pass (see docs/C_API.md, "Thread safety").
///
/// Thread safety: every function taking a `const cvg_engine_t *` (every
/// operation, read, `cvg_engine_write`, `cvg_engine_merge`,
/// `cvg_engine_keys`, `cvg_engine_mv_resolve`, `cvg_sync_initiate`,
/// `cvg_sync_respond`, `cvg_sync_engines`, maintenance, the changes feed
/// and the pending area: `cvg_engine_changes_since`,
/// `cvg_engine_apply_changes`, `cvg_engine_pending`, the peer calls, and
/// `cvg_engine_close` itself) may be called from any number of threads at
/// once on the same engine, and concurrently with calls on its iterators
/// and sync sessions. Writes to one key are serialized inside the engine.
/// Closing while other threads are inside calls is defined: they finish
/// normally, calls that start after the close return `CVG_STATUS_CLOSED`
/// (so does any later call with the handle, a second close included), and
/// the store itself is closed by the last call to return. The engine may
/// be closed from any thread, including from inside a merge function it
/// is running.
pub struct cvg_engine_t {
    /// Never instantiated: the handle only names a registry slot.
    _opaque: [u8; 0],
}

/// The CRDT type of a key: one of the `CVG_CRDT_*` values. The numbers are
/// the engine's persisted type tags: never reused.
pub type cvg_crdt_type_t = u8;

/// The key was never written.
pub const CVG_CRDT_NONE: cvg_crdt_type_t = 0;
/// Grow-only counter.
pub const CVG_CRDT_GCOUNTER: cvg_crdt_type_t = 1;
/// Counter with increments and decrements.
pub const CVG_CRDT_PNCOUNTER: cvg_crdt_type_t = 2;
/// Grow-only set.
pub const CVG_CRDT_GSET: cvg_crdt_type_t = 3;
/// Two-phase set: an element removed never comes back.
pub const CVG_CRDT_TWOP_SET: cvg_crdt_type_t = 4;
/// Observed-remove set, add wins.
pub const CVG_CRDT_ORSET: cvg_crdt_type_t = 5;
/// Last-writer-wins register.
pub const CVG_CRDT_LWW_REGISTER: cvg_crdt_type_t = 6;
/// First-writer-wins register.
pub const CVG_CRDT_FWW_REGISTER: cvg_crdt_type_t = 7;
/// Multi-value register.
pub const CVG_CRDT_MV_REGISTER: cvg_crdt_type_t = 8;

/// The root of the anti-entropy tree: equal roots mean equal data.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct cvg_root_t {
    /// XOR of every key's 128-bit entry hash, big-endian.
    pub hash: [u8; 16],
    /// Number of keys.
    pub count: u64,
}

/// Enter a call on the engine a handle names: the guard derefs to the
/// engine and keeps it open until dropped. `CVG_STATUS_NULL_POINTER` for
/// NULL, `CVG_STATUS_CLOSED` for a closed handle.
pub(crate) fn engine(engine: *const cvg_engine_t) -> Result<Guard, Failure> {
    if engine.is_null() {
        return Err(Failure::null("engine"));
    }
    registry::enter(engine as usize)
}

/// Borrow a key argument.
///
/// # Safety
/// `key` points to `key_len` readable bytes (or `key_len` is 0).
pub(crate) unsafe fn key<'a>(key: *const u8, key_len: usize) -> Result<&'a [u8], Failure> {
    // SAFETY: forwarded caller guarantee.
    unsafe { input(key, key_len, "key") }
}

/// Open (or create) the store in directory `path` (a NUL-terminated path in
/// the platform's encoding). `options` may be NULL for the defaults. On
/// success `*engine_out` is a new handle to release with
/// `cvg_engine_close`. A directory is opened by one engine at a time:
/// another open of it, by this process or another, fails with
/// `CVG_STATUS_LOCKED` until it is closed.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `options` is NULL or live
/// options; `engine_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_open(
    path: *const c_char,
    options: *const cvg_options_t,
    engine_out: *mut *mut cvg_engine_t,
) -> cvg_status_t {
    ffi_boundary!({
        if path.is_null() {
            return Err(Failure::null("path"));
        }
        required(engine_out, "engine_out")?;
        // SAFETY: checked non-NULL; NUL-terminated per the contract.
        let path = unsafe { CStr::from_ptr(path) };
        if path.is_empty() {
            return Err(Failure::invalid("path is empty"));
        }
        // SAFETY: NULL or live options.
        let opts = match unsafe { options.as_ref() } {
            Some(o) => o.inner.clone(),
            None => Options::default(),
        };
        let e = Engine::open(os_path(path)?, opts)?;
        let handle = registry::register(e)? as *mut cvg_engine_t;
        // SAFETY: checked non-NULL.
        unsafe { write_out(engine_out, handle) };
        Ok(())
    })
}

#[cfg(unix)]
fn os_path(p: &CStr) -> Result<std::path::PathBuf, Failure> {
    use std::os::unix::ffi::OsStrExt;
    Ok(std::ffi::OsStr::from_bytes(p.to_bytes()).into())
}

#[cfg(not(unix))]
fn os_path(p: &CStr) -> Result<std::path::PathBuf, Failure> {
    p.to_str()
        .map(Into::into)
        .map_err(|_| Failure::invalid("path is not UTF-8"))
}

/// Close the engine. May be called from any thread, while other threads
/// are inside calls on the engine: those calls finish normally, and every
/// call that starts after this one (on any thread, with this handle)
/// returns `CVG_STATUS_CLOSED` and does nothing. There is nothing to free
/// afterwards: the handle only names the engine, and names a closed engine
/// for good (a second close returns `CVG_STATUS_CLOSED`). NULL is a no-op
/// returning `CVG_STATUS_OK`.
///
/// The store (RocksDB, its directory lock, the anti-entropy tree) is
/// closed when the last reference goes: here if no call is running and no
/// key iterator or sync session of the engine is open, else by the last
/// running call as it returns, or by the last iterator or session as it is
/// freed. A clean close persists the anti-entropy tree so the next open
/// need not rebuild it.
///
/// Statuses: `CVG_STATUS_OK` if the store was closed here, or if calls were
/// running on other threads (the last of them closes it; a failure of
/// that close is not reported: the next open recovers as after a crash).
/// `CVG_STATUS_POISONED` if an earlier write failed (the store is closed
/// all the same; the data is recovered at the next open); a storage status
/// if persisting the tree failed (the store is closed all the same; the
/// next open rebuilds the tree); `CVG_STATUS_INVALID_ARGUMENT` if key
/// iterators or sync sessions of this engine are still open: the engine is
/// closed to new calls, and they keep the store open (a reopen of the
/// directory fails with `CVG_STATUS_LOCKED`) until the last of them is
/// freed, which closes it. `CVG_STATUS_CLOSED` if the handle was already
/// closed. Whatever the status, the handle is closed afterwards.
///
/// # Safety
/// None: any pointer value is accepted (a value that is no engine handle
/// gives `CVG_STATUS_INVALID_ARGUMENT`).
#[no_mangle]
pub extern "C" fn cvg_engine_close(engine: *const cvg_engine_t) -> cvg_status_t {
    ffi_boundary!({
        if engine.is_null() {
            return Ok(());
        }
        match registry::close(engine as usize)? {
            Closing::Deferred => Ok(()),
            Closing::Now(e) => match registry::finish(e)? {
                true => Ok(()),
                false => Err(Failure::invalid(
                    "key iterators or sync sessions are still open: the store closes when \
                     the last is freed (the engine is closed to new calls all the same)",
                )),
            },
        }
    })
}

/// Copy this replica's 16-byte id (big-endian) to `id_out`, which must
/// have room for 16 bytes.
///
/// # Safety
/// `engine` is NULL or a live handle; `id_out` is NULL or 16 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_replica_id(
    engine: *const cvg_engine_t,
    id_out: *mut u8,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let e = self::engine(engine)?;
        required(id_out, "id_out")?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(id_out.cast::<[u8; 16]>(), e.replica_id().to_bytes()) };
        Ok(())
    })
}

/// The engine's version vector (what it has seen of every replica),
/// encoded with the engine's codec (`converge::codec::encode_vv`), into
/// `*vv_out` (free with `cvg_bytes_free`).
///
/// # Safety
/// `engine` is NULL or a live handle; `vv_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_version_vector(
    engine: *const cvg_engine_t,
    vv_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let e = self::engine(engine)?;
        required(vv_out, "vv_out")?;
        let bytes = codec::encode_vv(&e.version_vector());
        // SAFETY: checked non-NULL.
        unsafe { write_out(vv_out, cvg_bytes_t::from_vec(bytes)) };
        Ok(())
    })
}

/// The CRDT type of `key` into `*type_out`: a `CVG_CRDT_*` value,
/// `CVG_CRDT_NONE` if the key was never written.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` points to `key_len` bytes;
/// `type_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_key_type(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    type_out: *mut cvg_crdt_type_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, k) = unsafe { (self::engine(engine)?, self::key(key, key_len)?) };
        required(type_out, "type_out")?;
        let t = e.key_type(k)?.map_or(CVG_CRDT_NONE, CrdtType::tag);
        // SAFETY: checked non-NULL.
        unsafe { write_out(type_out, t) };
        Ok(())
    })
}

/// The lower-case name of a CRDT type (`"gcounter"`, `"orset"`, ...) as a
/// static NUL-terminated string; `"none"` for `CVG_CRDT_NONE`, NULL for a
/// number that is no type. Do not free. Thread-safe.
#[no_mangle]
pub extern "C" fn cvg_crdt_type_name(crdt_type: cvg_crdt_type_t) -> *const c_char {
    ffi_boundary!(std::ptr::null() => {
        if crdt_type == CVG_CRDT_NONE {
            return c"none".as_ptr();
        }
        let name: &'static CStr = match CrdtType::from_tag(crdt_type) {
            None => return std::ptr::null(),
            Some(CrdtType::GCounter) => c"gcounter",
            Some(CrdtType::PNCounter) => c"pncounter",
            Some(CrdtType::GSet) => c"gset",
            Some(CrdtType::TwoPSet) => c"2pset",
            Some(CrdtType::ORSet) => c"orset",
            Some(CrdtType::LwwRegister) => c"lww",
            Some(CrdtType::FwwRegister) => c"fww",
            Some(CrdtType::MvRegister) => c"mvreg",
        };
        name.as_ptr()
    })
}

/// The encoded full state of `key` (what a peer passes to
/// `cvg_engine_merge`): `*found_out` is true and `*state_out` holds the
/// bytes (free with `cvg_bytes_free`), or `*found_out` is false and
/// `*state_out` is `{NULL, 0}` if the key was never written.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` points to `key_len` bytes;
/// `found_out` and `state_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_state_bytes(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    found_out: *mut bool,
    state_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, k) = unsafe { (self::engine(engine)?, self::key(key, key_len)?) };
        required(found_out, "found_out")?;
        required(state_out, "state_out")?;
        let state = e.state_bytes(k)?;
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(found_out, state.is_some());
            write_out(state_out, cvg_bytes_t::from_vec(state.unwrap_or_default()));
        }
        Ok(())
    })
}

/// Join a peer's encoded delta or full state (`bytes`, as returned by an
/// operation's `delta_out` or by `cvg_engine_state_bytes`) into `key`.
/// Applying the same bytes twice, or out of order, is harmless: a delta
/// whose causal dependencies this replica does not hold yet (its origin's
/// earlier operations, and the operations its origin had merged before
/// it) is kept in the pending area and becomes visible once they arrive
/// (see `cvg_engine_pending`). Bytes that do not decode give
/// `CVG_STATUS_CORRUPT_INPUT`, bytes of another type than the key holds
/// `CVG_STATUS_WRONG_TYPE`, a delta that would have to wait in a full
/// pending area `CVG_STATUS_PENDING_FULL`; nothing is written then.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` and `bytes` point to their
/// lengths in bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_merge(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    bytes: *const u8,
    bytes_len: usize,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, k, b) = unsafe {
            (
                self::engine(engine)?,
                self::key(key, key_len)?,
                input(bytes, bytes_len, "bytes")?,
            )
        };
        Ok(e.merge(k, b)?)
    })
}

/// Fold every key written since the last settle into the anti-entropy tree;
/// `*folded_out` (optional: may be NULL) receives how many keys this call
/// folded (the background thread may have folded some already).
///
/// # Safety
/// `engine` is NULL or a live handle; `folded_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_settle(
    engine: *const cvg_engine_t,
    folded_out: *mut usize,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let n = self::engine(engine)?.settle()?;
        // SAFETY: NULL or writable.
        unsafe { write_out(folded_out, n) };
        Ok(())
    })
}

/// How many written keys the anti-entropy tree has not folded in yet, into
/// `*keys_out`. A background thread folds them within about 20 ms of a
/// pause in writing; `cvg_engine_settle` and reading the root fold the
/// rest. A key written more than once since the thread last looked (it
/// looks every 20 ms) counts once per write until it next looks.
///
/// # Safety
/// `engine` is NULL or a live handle; `keys_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_unsettled_keys(
    engine: *const cvg_engine_t,
    keys_out: *mut usize,
) -> cvg_status_t {
    ffi_boundary!({
        required(keys_out, "keys_out")?;
        // SAFETY: forwarded caller guarantees.
        let n = self::engine(engine)?.unsettled_keys();
        // SAFETY: checked non-NULL; writable by contract.
        unsafe { write_out(keys_out, n) };
        Ok(())
    })
}

/// The root of the anti-entropy tree (settles first) into `*root_out`.
/// Two replicas with equal roots hold equal data.
///
/// # Safety
/// `engine` is NULL or a live handle; `root_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_root(
    engine: *const cvg_engine_t,
    root_out: *mut cvg_root_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let e = self::engine(engine)?;
        required(root_out, "root_out")?;
        let node = e.root()?;
        let root = cvg_root_t {
            hash: node.hash.to_be_bytes(),
            count: node.count,
        };
        // SAFETY: checked non-NULL.
        unsafe { write_out(root_out, root) };
        Ok(())
    })
}

/// Recompute the anti-entropy tree from the data and compare it with the
/// maintained one: `*consistent_out` tells whether they are equal,
/// `*keys_out` (optional: may be NULL) how many keys were hashed.
///
/// # Safety
/// `engine` is NULL or a live handle; the outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_verify(
    engine: *const cvg_engine_t,
    consistent_out: *mut bool,
    keys_out: *mut u64,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let e = self::engine(engine)?;
        required(consistent_out, "consistent_out")?;
        let report = e.verify()?;
        // SAFETY: checked non-NULL / NULL or writable.
        unsafe {
            write_out(consistent_out, report.consistent);
            write_out(keys_out, report.keys);
        }
        Ok(())
    })
}

/// Flush memtables to table files (a checkpoint; durability comes from the
/// log and does not need it).
///
/// # Safety
/// `engine` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_flush(engine: *const cvg_engine_t) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    ffi_boundary!({ Ok(self::engine(engine)?.flush()?) })
}

/// Fsync the log: makes earlier writes done with `CVG_DURABILITY_BUFFERED`
/// safe against power loss.
///
/// # Safety
/// `engine` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_sync_wal(engine: *const cvg_engine_t) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    ffi_boundary!({ Ok(self::engine(engine)?.sync_wal()?) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_constants_are_the_engine_tags() {
        let ours = [
            CVG_CRDT_GCOUNTER,
            CVG_CRDT_PNCOUNTER,
            CVG_CRDT_GSET,
            CVG_CRDT_TWOP_SET,
            CVG_CRDT_ORSET,
            CVG_CRDT_LWW_REGISTER,
            CVG_CRDT_FWW_REGISTER,
            CVG_CRDT_MV_REGISTER,
        ];
        let tags: Vec<u8> = CrdtType::ALL.iter().map(|t| t.tag()).collect();
        assert_eq!(ours.to_vec(), tags);
        for t in CrdtType::ALL {
            let name = unsafe { CStr::from_ptr(cvg_crdt_type_name(t.tag())) };
            assert_eq!(name.to_str().unwrap(), t.name());
        }
        assert!(cvg_crdt_type_name(9).is_null());
    }
}
