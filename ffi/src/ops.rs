//! One CRDT operation per call. Each returns the operation's encoded delta
//! through an optional `delta_out`: ship those bytes to peers, who pass
//! them to `cvg_engine_merge`.

use crate::bytes::{cvg_bytes_t, input, write_out};
use crate::cvg_status_t;
use crate::engine::{cvg_engine_t, engine, key};
use crate::status::{ffi_boundary, Failure};
use engine::{codec, Engine, KeyedDelta};

/// Run one operation and hand its encoded delta to `delta_out` (if not
/// NULL); an operation that changed nothing (`None`: a delete with
/// nothing to delete) hands over `{NULL, 0}` (an encoded delta is never
/// empty).
///
/// # Safety
/// `e` is NULL or a live handle; `k` points to `k_len` bytes; `delta_out`
/// is NULL or writable.
unsafe fn op<D: Into<Option<KeyedDelta>>>(
    e: *const cvg_engine_t,
    k: *const u8,
    k_len: usize,
    delta_out: *mut cvg_bytes_t,
    f: impl FnOnce(&Engine, &[u8]) -> Result<D, Failure>,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, k) = unsafe { (engine(e)?, key(k, k_len)?) };
        let kd: Option<KeyedDelta> = f(&e, k)?.into();
        if !delta_out.is_null() {
            let bytes = kd.map(|kd| kd.delta.encode()).unwrap_or_default();
            // SAFETY: checked non-NULL.
            unsafe { write_out(delta_out, cvg_bytes_t::from_vec(bytes)) };
        }
        Ok(())
    })
}

/// G-Counter: add `n` to `key`. `CVG_STATUS_OVERFLOW` if this replica's
/// share would exceed 2^64 - 1.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` points to `key_len` bytes;
/// `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_increment(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    n: u64,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            Ok(e.increment(k, n)?)
        })
    }
}

/// PN-Counter: add `n` to `key` (a negative `n` subtracts).
///
/// # Safety
/// As `cvg_engine_increment`.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_pn_add(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    n: i64,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe { op(engine, key, key_len, delta_out, |e, k| Ok(e.pn_add(k, n)?)) }
}

/// G-Set: add `elem` to `key`.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` and `elem` point to their
/// lengths in bytes; `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_gset_add(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            Ok(e.gset_add(k, input(elem, elem_len, "elem")?)?)
        })
    }
}

/// 2P-Set: add `elem` to `key` (no effect if it was ever removed).
///
/// # Safety
/// `engine` is NULL or a live handle; `key` and `elem` point to their
/// lengths in bytes; `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_twop_add(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            Ok(e.twop_add(k, input(elem, elem_len, "elem")?)?)
        })
    }
}

/// 2P-Set: remove `elem` from `key` forever.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` and `elem` point to their
/// lengths in bytes; `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_twop_remove(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            Ok(e.twop_remove(k, input(elem, elem_len, "elem")?)?)
        })
    }
}

/// OR-Set: add `elem` to `key` (an add concurrent with a remove wins).
///
/// # Safety
/// `engine` is NULL or a live handle; `key` and `elem` point to their
/// lengths in bytes; `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_orset_add(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            Ok(e.orset_add(k, input(elem, elem_len, "elem")?)?)
        })
    }
}

/// LWW register: write `value` to `key` at the next tick of this
/// replica's hybrid clock; the latest write wins.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` and `value` point to their
/// lengths in bytes; `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_lww_set(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            Ok(e.lww_set(k, input(value, value_len, "value")?)?)
        })
    }
}

/// FWW register: write `value` to `key`; it wins only if no earlier
/// write exists (once replicas have met, the first write is final).
///
/// # Safety
/// `engine` is NULL or a live handle; `key` and `value` point to their
/// lengths in bytes; `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_fww_set(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            Ok(e.fww_set(k, input(value, value_len, "value")?)?)
        })
    }
}

/// OR-Set: remove `elem` from `key`: every add of it this replica has
/// observed now. A remove that removes nothing (`elem` is not a member, or
/// the key does not exist) is no operation: it writes nothing, does not
/// create the key, and `*delta_out` is `(NULL, 0)`.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` and `elem` point to their
/// lengths in bytes; `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_orset_remove(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            Ok(e.orset_remove(k, input(elem, elem_len, "elem")?, None)?)
        })
    }
}

/// OR-Set: remove the adds of `elem` within `context`: the encoded context
/// of an earlier `cvg_engine_set_members` read, so adds made after that
/// read (here or on other replicas) survive. `(NULL, 0)` is the empty
/// context (removes nothing). A context that does not decode gives
/// `CVG_STATUS_CORRUPT_INPUT`. As with `cvg_engine_orset_remove`, a remove
/// that removes nothing writes nothing and `*delta_out` is `(NULL, 0)`.
///
/// # Safety
/// `engine` is NULL or a live handle; `key`, `elem` and `context` point to
/// their lengths in bytes; `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_orset_remove_observed(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    elem: *const u8,
    elem_len: usize,
    context: *const u8,
    context_len: usize,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            let elem = input(elem, elem_len, "elem")?;
            let ctx = codec::decode_context(input(context, context_len, "context")?)?;
            Ok(e.orset_remove(k, elem, Some(ctx))?)
        })
    }
}

/// MV register: write `value` to `key`, replacing the siblings `context`
/// covers: the encoded context of the `cvg_engine_mv_read` this write is
/// based on. `(NULL, 0)` is the empty context (a blind write: every
/// current value stays as a sibling). A context that does not decode gives
/// `CVG_STATUS_CORRUPT_INPUT`.
///
/// # Safety
/// `engine` is NULL or a live handle; `key`, `value` and `context` point to
/// their lengths in bytes; `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_mv_write(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    context: *const u8,
    context_len: usize,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            let value = input(value, value_len, "value")?;
            let ctx = codec::decode_context(input(context, context_len, "context")?)?;
            Ok(e.mv_write(k, value, &ctx)?)
        })
    }
}

/// Delete `key`, whatever its type: remove everything this replica holds
/// of it now. The delete replicates like any operation (ship the delta to
/// peers' `cvg_engine_merge`); per type it removes what was observed, so
/// an update concurrent with it survives (counters: reset-remove, the
/// concurrent increments count from zero; OR-Set and MV register:
/// update-wins; G-Set and 2P-Set: the observed elements go; LWW: a
/// timestamped tombstone ordered like a write; FWW: a new epoch, where
/// the first write after the delete wins). See docs/C_API.md, "Deletes
/// and the collection of tombstones".
///
/// Afterwards the key reads as absent: `cvg_engine_key_type` gives
/// `CVG_CRDT_NONE`, the reads of its type give what they give for a key
/// never written (a counter 0, a set no members, a register not found, an
/// MV register no siblings), `cvg_engine_keys` skips it (but
/// `cvg_engine_stored_keys` lists it, and `cvg_engine_state_bytes` gives
/// its tombstone, which peers need). Until its tombstone is collected
/// (`cvg_engine_collect`) it keeps its type: a write or read of another
/// type gives `CVG_STATUS_WRONG_TYPE`, a write of the same type
/// re-creates it. Once collected, the key is gone entirely.
///
/// Nothing to delete (the key was never written, or already reads as
/// absent) is not an error: the call succeeds, changes nothing and sets
/// `*delta_out` to `{NULL, 0}`. A real delta is never empty.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` points to `key_len` bytes;
/// `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_delete(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            Ok(e.delete(k, None)?)
        })
    }
}

/// Delete `key`, removing only what `observed` holds: the encoded full
/// state of an earlier `cvg_engine_state_bytes` read of the key (on this
/// replica or another), so what was written after that read survives.
/// Otherwise as `cvg_engine_delete` (nothing to delete: `*delta_out` is
/// `{NULL, 0}`). `observed` is decoded first: bytes that do not decode
/// (`(NULL, 0)` included) give `CVG_STATUS_CORRUPT_INPUT`, a state of
/// another type than the key holds `CVG_STATUS_WRONG_TYPE`; nothing
/// changes then.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` and `observed` point to their
/// lengths in bytes; `delta_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_delete_observed(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    observed: *const u8,
    observed_len: usize,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        op(engine, key, key_len, delta_out, |e, k| {
            let state = codec::decode_state(input(observed, observed_len, "observed")?)?;
            Ok(e.delete(k, Some(&state))?)
        })
    }
}
