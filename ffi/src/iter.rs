//! `cvg_iter_t`: iteration over keys (with a prefix) and their types.

use crate::bytes::{cvg_slice_t, input, reference_mut, required, write_out};
use crate::cvg_status_t;
use crate::engine::{cvg_crdt_type_t, cvg_engine_t, CVG_CRDT_NONE};
use crate::status::{ffi_boundary, Failure};
use engine::{Engine, KeyIter};
use std::sync::Arc;

/// An iterator over the keys of an engine that start with a prefix, in
/// byte order, with their types, over a consistent snapshot taken when it
/// was created. Created by `cvg_engine_keys` or `cvg_engine_stored_keys`,
/// released by `cvg_iter_free`.
/// It holds a reference to the engine's store and keeps it open, even
/// after `cvg_engine_close`, until freed: free every iterator before
/// closing the engine to close the store at once (see there).
///
/// Thread safety: every call on an iterator (`cvg_iter_next`,
/// `cvg_iter_free`) needs exclusive access: one thread at a time, though
/// not always the same thread. Iterators are independent of each other
/// and of calls on their engine, which may run concurrently (they do not
/// see writes made after their creation).
pub struct cvg_iter_t {
    /// Declared first so it is dropped before the engine it borrows.
    iter: KeyIter<'static>,
    /// The key last returned (borrowed by the caller until the next call).
    current: Vec<u8>,
    /// Set after a failure: the iterator then stays at its end.
    failed: bool,
    /// Keeps the engine `iter` borrows alive.
    _engine: Arc<Engine>,
}

/// A new iterator over the keys of `engine` starting with `prefix`
/// (`(NULL, 0)`: every key) into `*iter_out` (free with `cvg_iter_free`).
/// Keys that read as absent (deleted: see `cvg_engine_delete`) are
/// skipped; `cvg_engine_stored_keys` lists them too.
///
/// # Safety
/// `engine` is NULL or a live handle; `prefix` points to `prefix_len`
/// bytes; `iter_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_keys(
    engine: *const cvg_engine_t,
    prefix: *const u8,
    prefix_len: usize,
    iter_out: *mut *mut cvg_iter_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe { new_iter(engine, prefix, prefix_len, iter_out, false) }
}

/// As `cvg_engine_keys`, but also lists the keys that read as absent
/// (deleted, their tombstone not collected yet), with the type they keep:
/// every key that has a stored state. Their tombstones are states a peer
/// needs when states are copied by hand (`cvg_engine_state_bytes`, then
/// `cvg_engine_merge`); anti-entropy finds them by itself.
///
/// # Safety
/// As `cvg_engine_keys`.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_stored_keys(
    engine: *const cvg_engine_t,
    prefix: *const u8,
    prefix_len: usize,
    iter_out: *mut *mut cvg_iter_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe { new_iter(engine, prefix, prefix_len, iter_out, true) }
}

/// Create an iterator for `cvg_engine_keys` (`stored`: false) or
/// `cvg_engine_stored_keys` (true).
///
/// # Safety
/// As `cvg_engine_keys`.
unsafe fn new_iter(
    engine: *const cvg_engine_t,
    prefix: *const u8,
    prefix_len: usize,
    iter_out: *mut *mut cvg_iter_t,
    stored: bool,
) -> cvg_status_t {
    ffi_boundary!({
        let handle = crate::engine::engine(engine)?;
        // SAFETY: forwarded caller guarantee.
        let prefix = unsafe { input(prefix, prefix_len, "prefix") }?;
        required(iter_out, "iter_out")?;
        let owner = Arc::clone(handle.arc());
        let it = if stored {
            owner.stored_keys(prefix)?
        } else {
            owner.keys(prefix)?
        };
        // SAFETY: `it` borrows the engine inside `owner`'s allocation, which
        // the iterator keeps alive in `_engine` and which never moves; the
        // field order drops `iter` first. The 'static lifetime never
        // escapes this struct.
        let iter = unsafe { std::mem::transmute::<KeyIter<'_>, KeyIter<'static>>(it) };
        let boxed = Box::new(cvg_iter_t {
            iter,
            current: Vec::new(),
            failed: false,
            _engine: owner,
        });
        // SAFETY: checked non-NULL.
        unsafe { write_out(iter_out, Box::into_raw(boxed)) };
        Ok(())
    })
}

/// Advance the iterator. `*has_key_out` is true and `*key_out` /
/// `*type_out` hold the next key and its `CVG_CRDT_*` type; or
/// `*has_key_out` is false at the end (then `*key_out` is `{NULL, 0}` and
/// `*type_out` is `CVG_CRDT_NONE`). The key is valid until the next call on
/// the iterator or `cvg_iter_free`. `key_out` and `type_out` are optional
/// (may be NULL). After a failure (a storage status such as
/// `CVG_STATUS_IO`, or `CVG_STATUS_CORRUPTION`) the iterator is at its
/// end. An iterator keeps working after its engine is closed.
///
/// # Safety
/// `iter` is NULL or live with no other user; the outputs are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_iter_next(
    iter: *mut cvg_iter_t,
    has_key_out: *mut bool,
    key_out: *mut cvg_slice_t,
    type_out: *mut cvg_crdt_type_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let it = unsafe { reference_mut(iter, "iter") }?;
        required(has_key_out, "has_key_out")?;
        let next = if it.failed { None } else { it.iter.next() };
        let (has, key, ty) = match next {
            None => (false, cvg_slice_t::empty(), CVG_CRDT_NONE),
            Some(Err(e)) => {
                it.failed = true;
                return Err(Failure::from(e));
            }
            Some(Ok((k, t))) => {
                it.current = k;
                (true, cvg_slice_t::of(&it.current), t.tag())
            }
        };
        // SAFETY: checked non-NULL / NULL or writable.
        unsafe {
            write_out(has_key_out, has);
            write_out(key_out, key);
            write_out(type_out, ty);
        }
        Ok(())
    })
}

/// Free an iterator and the key it last returned. The pointer is invalid
/// after the call. Freeing the last iterator of an engine already closed
/// with `cvg_engine_close` closes its store. NULL is a no-op.
///
/// # Safety
/// `iter` is NULL or live with no call running on it; it is not used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn cvg_iter_free(iter: *mut cvg_iter_t) {
    ffi_boundary!(() => {
        if !iter.is_null() {
            // SAFETY: created by Box::into_raw in cvg_engine_keys.
            drop(unsafe { Box::from_raw(iter) });
        }
    })
}
