//! Atomic batches: a `cvg_batch_t` collects operations, `cvg_engine_write`
//! applies them all or none and returns their deltas packed in one
//! `cvg_deltas_t` (three allocations however many operations).

use crate::bytes::{cvg_slice_t, input, reference, reference_mut, write_out, Packed};
use crate::cvg_status_t;
use crate::engine::{cvg_engine_t, engine};
use crate::status::{ffi_boundary, Failure};
use engine::{codec, Batch, Dot};

/// An ordered list of operations to apply atomically with
/// `cvg_engine_write`: all or nothing, and later operations on a key see
/// earlier ones. Created by `cvg_batch_new`, released by `cvg_batch_free`;
/// a batch is not consumed by a write and may be reused (see
/// `cvg_batch_clear`). Adding an operation copies its key and bytes.
///
/// Thread safety: a batch has no lock inside. Every call that changes it
/// (each `cvg_batch_*` add, the `_many` forms, `cvg_batch_clear`,
/// `cvg_batch_free`) needs exclusive access: no other call on the same
/// batch, from any thread, meanwhile. The calls that take it `const`
/// (`cvg_batch_len`, and `cvg_engine_write`, which only reads it) may run
/// on several threads at once: the same batch may be applied to one or
/// several engines by concurrent `cvg_engine_write` calls, as long as no
/// thread changes it. Building several batches on several threads at once
/// is fine; a batch may be built on one thread and written on another.
pub struct cvg_batch_t {
    pub(crate) inner: Batch,
}

/// The deltas of a `cvg_engine_write`, one per local operation (merges
/// produce none, nor do deletes with nothing to delete), in batch order,
/// each with its key. Owned; created by
/// `cvg_engine_write`, released by `cvg_deltas_free`.
///
/// Thread safety: immutable. `cvg_deltas_len`, `cvg_deltas_get`,
/// `cvg_deltas_packed` and `cvg_deltas_token` may run on any number of
/// threads at once;
/// `cvg_deltas_free` needs exclusive access (no reader running) and may be
/// called from any thread. The views it hands out die with it.
pub struct cvg_deltas_t {
    pub(crate) keys: Packed,
    pub(crate) deltas: Packed,
    /// The dot `(origin, seq)` of each delta, for `cvg_deltas_token`
    /// (kept so the token needs no decoding).
    pub(crate) dots: Vec<Dot>,
}

/// A new, empty batch. Never returns NULL.
#[no_mangle]
pub extern "C" fn cvg_batch_new() -> *mut cvg_batch_t {
    ffi_boundary!(std::ptr::null_mut() => {
        Box::into_raw(Box::new(cvg_batch_t { inner: Batch::new() }))
    })
}

/// Free a batch. The pointer is invalid after the call. NULL is a no-op.
///
/// # Safety
/// `batch` is NULL or live with no call running on it; it is not used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_free(batch: *mut cvg_batch_t) {
    ffi_boundary!(() => {
        if !batch.is_null() {
            // SAFETY: created by Box::into_raw in cvg_batch_new.
            drop(unsafe { Box::from_raw(batch) });
        }
    })
}

/// Number of operations in the batch (0 for NULL).
///
/// # Safety
/// `batch` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_len(batch: *const cvg_batch_t) -> usize {
    // SAFETY: the caller passes NULL or a live batch.
    ffi_boundary!(0 => { unsafe { batch.as_ref() }.map_or(0, |b| b.inner.len()) })
}

/// Remove every operation, keeping the memory for reuse.
///
/// # Safety
/// `batch` is NULL or live with no other call running on it.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_clear(batch: *mut cvg_batch_t) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: the caller passes NULL or a live batch.
        unsafe { reference_mut(batch, "batch") }?.inner.clear();
        Ok(())
    })
}

/// Check the batch and key, then let `f` push one operation.
///
/// # Safety
/// `batch` is NULL or live with no other user; `key` points to `key_len`
/// bytes.
unsafe fn add(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    f: impl FnOnce(&mut Batch, Vec<u8>) -> Result<(), Failure>,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (b, k) = unsafe {
            (
                reference_mut(batch, "batch")?,
                crate::engine::key(key, key_len)?,
            )
        };
        f(&mut b.inner, k.to_vec())
    })
}

/// Add a G-Counter increment of `key` by `n`.
///
/// # Safety
/// `batch` is NULL or live; `key` points to `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_increment(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    n: u64,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            b.increment(k, n);
            Ok(())
        })
    }
}

/// Add a PN-Counter addition of `n` (negative subtracts) to `key`.
///
/// # Safety
/// `batch` is NULL or live; `key` points to `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_pn_add(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    n: i64,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            b.pn_add(k, n);
            Ok(())
        })
    }
}

/// Add a G-Set add of `elem` to `key`.
///
/// # Safety
/// `batch` is NULL or live; `key` and `elem` point to their lengths in
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_gset_add(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            b.gset_add(k, input(elem, elem_len, "elem")?);
            Ok(())
        })
    }
}

/// Add a 2P-Set add of `elem` to `key`.
///
/// # Safety
/// `batch` is NULL or live; `key` and `elem` point to their lengths in
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_twop_add(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            b.twop_add(k, input(elem, elem_len, "elem")?);
            Ok(())
        })
    }
}

/// Add a 2P-Set remove of `elem` from `key`.
///
/// # Safety
/// `batch` is NULL or live; `key` and `elem` point to their lengths in
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_twop_remove(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            b.twop_remove(k, input(elem, elem_len, "elem")?);
            Ok(())
        })
    }
}

/// Add an OR-Set add of `elem` to `key`.
///
/// # Safety
/// `batch` is NULL or live; `key` and `elem` point to their lengths in
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_orset_add(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            b.orset_add(k, input(elem, elem_len, "elem")?);
            Ok(())
        })
    }
}

/// Add an OR-Set remove of `elem` from `key` (every add of it observed
/// when the batch is applied, earlier operations of the batch included).
/// A remove that removes nothing then does nothing and has no delta in the
/// write's `cvg_deltas_t`.
///
/// # Safety
/// `batch` is NULL or live; `key` and `elem` point to their lengths in
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_orset_remove(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            b.orset_remove(k, input(elem, elem_len, "elem")?);
            Ok(())
        })
    }
}

/// Add an LWW register write of `value` to `key`.
///
/// # Safety
/// `batch` is NULL or live; `key` and `value` point to their lengths in
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_lww_set(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            b.lww_set(k, input(value, value_len, "value")?);
            Ok(())
        })
    }
}

/// Add an FWW register write of `value` to `key`.
///
/// # Safety
/// `batch` is NULL or live; `key` and `value` point to their lengths in
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_fww_set(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            b.fww_set(k, input(value, value_len, "value")?);
            Ok(())
        })
    }
}

/// Add a merge of a peer's encoded delta or full state `bytes` into
/// `key`. The bytes are checked when the batch is written: bytes that do
/// not decode make `cvg_engine_write` fail with `CVG_STATUS_CORRUPT_INPUT`.
///
/// # Safety
/// `batch` is NULL or live; `key` and `bytes` point to their lengths in
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_merge(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    bytes: *const u8,
    bytes_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            b.merge(k, input(bytes, bytes_len, "bytes")?);
            Ok(())
        })
    }
}

/// Add an OR-Set remove of the adds of `elem` within `context` (encoded,
/// from `cvg_engine_set_members`; `(NULL, 0)` is the empty context). The
/// context is decoded now: `CVG_STATUS_CORRUPT_INPUT` if it does not, and
/// nothing is added. A remove that removes nothing has no delta.
///
/// # Safety
/// `batch` is NULL or live; `key`, `elem` and `context` point to their
/// lengths in bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_orset_remove_observed(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
    context: *const u8,
    context_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            let elem = input(elem, elem_len, "elem")?;
            let ctx = codec::decode_context(input(context, context_len, "context")?)?;
            b.orset_remove_observed(k, elem, ctx);
            Ok(())
        })
    }
}

/// Add an MV register write of `value` to `key` based on `context` (encoded,
/// from `cvg_engine_mv_read`; `(NULL, 0)` is the empty context). The context
/// is decoded now: `CVG_STATUS_CORRUPT_INPUT` if it does not, and nothing is
/// added.
///
/// # Safety
/// `batch` is NULL or live; `key`, `value` and `context` point to their
/// lengths in bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_mv_write(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    context: *const u8,
    context_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            let value = input(value, value_len, "value")?;
            let ctx = codec::decode_context(input(context, context_len, "context")?)?;
            b.mv_write(k, value, ctx);
            Ok(())
        })
    }
}

/// Add a delete of `key` (any type): everything the key holds when the
/// batch is applied, earlier operations of the batch included; see
/// `cvg_engine_delete`. A delete with nothing to delete (the key reads as
/// absent then) does nothing and has no delta in the write's
/// `cvg_deltas_t`.
///
/// # Safety
/// `batch` is NULL or live; `key` points to `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_delete(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            b.delete(k, None);
            Ok(())
        })
    }
}

/// Add a delete of `key` that removes only what `observed` holds (the
/// encoded state of an earlier `cvg_engine_state_bytes` read); see
/// `cvg_engine_delete_observed`. The state is decoded now:
/// `CVG_STATUS_CORRUPT_INPUT` if it does not (`(NULL, 0)` included), and
/// nothing is added; a state of another type than the key holds makes
/// `cvg_engine_write` fail with `CVG_STATUS_WRONG_TYPE`.
///
/// # Safety
/// `batch` is NULL or live; `key` and `observed` point to their lengths in
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_delete_observed(
    batch: *mut cvg_batch_t,
    key: *const u8,
    key_len: usize,
    observed: *const u8,
    observed_len: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add(batch, key, key_len, |b, k| {
            let state = codec::decode_state(input(observed, observed_len, "observed")?)?;
            b.delete(k, Some(state));
            Ok(())
        })
    }
}

/// Apply `batch` atomically: every operation or none (a failure writes
/// nothing, and the status is the first failing operation's). On success,
/// if `deltas_out` is not NULL it receives the deltas of the local
/// operations (free with `cvg_deltas_free`); pass NULL when they are not
/// needed, which also skips encoding them. The batch is left unchanged.
///
/// # Safety
/// `engine` is NULL or a live handle; `batch` is NULL or live and not being
/// changed; `deltas_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_write(
    engine: *const cvg_engine_t,
    batch: *const cvg_batch_t,
    deltas_out: *mut *mut cvg_deltas_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, b) = unsafe { (self::engine(engine)?, reference(batch, "batch")?) };
        let written = e.write(&b.inner)?;
        if deltas_out.is_null() {
            return Ok(());
        }
        let key_bytes = written.iter().map(|d| d.key.len()).sum();
        let mut keys = Packed::with_capacity(written.len(), key_bytes);
        let mut deltas = Packed::with_capacity(written.len(), written.len() * 48);
        let mut dots = Vec::with_capacity(written.len());
        for kd in &written {
            keys.push(&kd.key);
            deltas.push_with(|buf| kd.delta.encode_into(buf));
            dots.push(kd.dot());
        }
        let out = Box::into_raw(Box::new(cvg_deltas_t { keys, deltas, dots }));
        // SAFETY: checked non-NULL.
        unsafe { write_out(deltas_out, out) };
        Ok(())
    })
}

/// Number of deltas (0 for NULL).
///
/// # Safety
/// `deltas` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn cvg_deltas_len(deltas: *const cvg_deltas_t) -> usize {
    // SAFETY: the caller passes NULL or a live handle.
    ffi_boundary!(0 => { unsafe { deltas.as_ref() }.map_or(0, |d| d.keys.len()) })
}

/// Borrow delta `index`: its key into `*key_out` and its encoded bytes (for
/// `cvg_engine_merge` on peers) into `*delta_out`; either output may be
/// NULL. Valid until `cvg_deltas_free(deltas)`.
/// `CVG_STATUS_INVALID_ARGUMENT` if `index` is not below
/// `cvg_deltas_len(deltas)`.
///
/// # Safety
/// `deltas` is NULL or live; the outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_deltas_get(
    deltas: *const cvg_deltas_t,
    index: usize,
    key_out: *mut cvg_slice_t,
    delta_out: *mut cvg_slice_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: the caller passes NULL or a live handle.
        let d = unsafe { reference(deltas, "deltas") }?;
        let (k, v) = match (d.keys.get(index), d.deltas.get(index)) {
            (Some(k), Some(v)) => (k, v),
            _ => {
                return Err(Failure::invalid(format!(
                    "index {index} out of range ({} deltas)",
                    d.keys.len()
                )))
            }
        };
        // SAFETY: NULL or writable.
        unsafe {
            write_out(key_out, cvg_slice_t::of(k));
            write_out(delta_out, cvg_slice_t::of(v));
        }
        Ok(())
    })
}

/// Free deltas and every view borrowed from them. The pointer is invalid
/// after the call. NULL is a no-op.
///
/// # Safety
/// `deltas` is NULL or live with no call running on it; neither it nor its
/// views are used afterwards.
#[no_mangle]
pub unsafe extern "C" fn cvg_deltas_free(deltas: *mut cvg_deltas_t) {
    ffi_boundary!(() => {
        if !deltas.is_null() {
            // SAFETY: created by Box::into_raw in cvg_engine_write.
            drop(unsafe { Box::from_raw(deltas) });
        }
    })
}
