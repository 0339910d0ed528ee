//! Bulk forms for callers whose per-call cost matters (bindings in other
//! languages): many batch operations added in one call, and all the deltas
//! of a write read in one call.

use crate::batch::{cvg_batch_t, cvg_deltas_t};
use crate::bytes::{cvg_slice_t, cvg_span_t, reference, reference_mut, required, write_out};
use crate::cvg_status_t;
use crate::status::{ffi_boundary, Failure};
use engine::Batch;

/// Borrow `count` elements (`(NULL, 0)` is empty).
///
/// # Safety
/// A non-NULL `ptr` points to `count` readable elements.
pub(crate) unsafe fn array<'a, T>(
    ptr: *const T,
    count: usize,
    what: &str,
) -> Result<&'a [T], Failure> {
    if count == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL and `count` elements per the caller.
    Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
}

/// Cut `data` into pieces of `lens` bytes; they must use it exactly.
pub(crate) fn split<'a>(
    data: &'a [u8],
    lens: &[usize],
    what: &str,
) -> Result<Vec<&'a [u8]>, Failure> {
    let mut out = Vec::with_capacity(lens.len());
    let mut at = 0usize;
    for len in lens {
        let end = at
            .checked_add(*len)
            .filter(|e| *e <= data.len())
            .ok_or_else(|| Failure::invalid(format!("{what} lengths exceed the {what} buffer")))?;
        out.push(&data[at..end]);
        at = end;
    }
    if at != data.len() {
        return Err(Failure::invalid(format!(
            "{what} lengths add up to {at}, the buffer holds {}",
            data.len()
        )));
    }
    Ok(out)
}

/// The keys of a bulk call: `count` keys packed back to back in `keys`
/// (`keys_len` bytes in all), key `i` being `key_lens[i]` bytes long.
///
/// # Safety
/// As for the exported functions below.
unsafe fn keys<'a>(
    keys: *const u8,
    keys_len: usize,
    key_lens: *const usize,
    count: usize,
) -> Result<Vec<&'a [u8]>, Failure> {
    // SAFETY: forwarded caller guarantees.
    let (data, lens) = unsafe {
        (
            array(keys, keys_len, "keys")?,
            array(key_lens, count, "key_lens")?,
        )
    };
    split(data, lens, "key")
}

/// Add `op(key, amounts[i])` for every packed key, all or nothing.
///
/// # Safety
/// As for `cvg_batch_increment_many`.
unsafe fn add_amounts<T: Copy>(
    batch: *mut cvg_batch_t,
    keys: *const u8,
    keys_len: usize,
    key_lens: *const usize,
    amounts: *const T,
    count: usize,
    op: fn(&mut Batch, Vec<u8>, T) -> &mut Batch,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (b, ks, ns) = unsafe {
            (
                reference_mut(batch, "batch")?,
                self::keys(keys, keys_len, key_lens, count)?,
                array(amounts, count, "amounts")?,
            )
        };
        for (k, n) in ks.into_iter().zip(ns) {
            op(&mut b.inner, k.to_vec(), *n);
        }
        Ok(())
    })
}

/// Add a G-Counter increment for each of `count` keys: the keys are packed
/// back to back in `keys` (`keys_len` bytes in all), key `i` is
/// `key_lens[i]` bytes long and is incremented by `amounts[i]`. All or
/// nothing: if the lengths do not add up to `keys_len`, nothing is added
/// (`CVG_STATUS_INVALID_ARGUMENT`).
///
/// # Safety
/// `batch` is NULL or live and used by no other thread; `keys` points to
/// `keys_len` bytes; `key_lens` and `amounts` to `count` elements.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_increment_many(
    batch: *mut cvg_batch_t,
    keys: *const u8,
    keys_len: usize,
    key_lens: *const usize,
    amounts: *const u64,
    count: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add_amounts(
            batch,
            keys,
            keys_len,
            key_lens,
            amounts,
            count,
            Batch::increment,
        )
    }
}

/// Add a PN-Counter addition for each of `count` keys (packed as for
/// `cvg_batch_increment_many`), key `i` by `amounts[i]`. All or nothing.
///
/// # Safety
/// As for `cvg_batch_increment_many`.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_pn_add_many(
    batch: *mut cvg_batch_t,
    keys: *const u8,
    keys_len: usize,
    key_lens: *const usize,
    amounts: *const i64,
    count: usize,
) -> cvg_status_t {
    // SAFETY: forwarded caller guarantees.
    unsafe {
        add_amounts(
            batch,
            keys,
            keys_len,
            key_lens,
            amounts,
            count,
            Batch::pn_add,
        )
    }
}

/// Add a merge of a peer's delta or state for each of `count` keys: keys
/// packed as for `cvg_batch_increment_many`, the values likewise in
/// `values` (`values_len` bytes, value `i` being `value_lens[i]` bytes).
/// All or nothing; the values are decoded at `cvg_engine_write`.
///
/// # Safety
/// As for `cvg_batch_increment_many`; `values` points to `values_len`
/// bytes and `value_lens` to `count` elements.
#[no_mangle]
pub unsafe extern "C" fn cvg_batch_merge_many(
    batch: *mut cvg_batch_t,
    keys: *const u8,
    keys_len: usize,
    key_lens: *const usize,
    values: *const u8,
    values_len: usize,
    value_lens: *const usize,
    count: usize,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (b, ks, vs) = unsafe {
            (
                reference_mut(batch, "batch")?,
                self::keys(keys, keys_len, key_lens, count)?,
                split(
                    array(values, values_len, "values")?,
                    array(value_lens, count, "value_lens")?,
                    "value",
                )?,
            )
        };
        for (k, v) in ks.into_iter().zip(vs) {
            b.inner.merge(k, v);
        }
        Ok(())
    })
}

/// All the deltas of a write at once: `*keys_out` and `*deltas_out` view
/// the two packed buffers, `*key_spans_out` and `*delta_spans_out` point to
/// `*count_out` spans each (entry `i` is the key and delta of operation
/// `i`). Every view lives as long as `deltas`.
///
/// # Safety
/// `deltas` is NULL or live; every output is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_deltas_packed(
    deltas: *const cvg_deltas_t,
    keys_out: *mut cvg_slice_t,
    key_spans_out: *mut *const cvg_span_t,
    deltas_out: *mut cvg_slice_t,
    delta_spans_out: *mut *const cvg_span_t,
    count_out: *mut usize,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: the caller passes NULL or a live handle.
        let d = unsafe { reference(deltas, "deltas") }?;
        required(keys_out, "keys_out")?;
        required(key_spans_out, "key_spans_out")?;
        required(deltas_out, "deltas_out")?;
        required(delta_spans_out, "delta_spans_out")?;
        required(count_out, "count_out")?;
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(keys_out, cvg_slice_t::of(&d.keys.data));
            write_out(key_spans_out, d.keys.spans.as_ptr());
            write_out(deltas_out, cvg_slice_t::of(&d.deltas.data));
            write_out(delta_spans_out, d.deltas.spans.as_ptr());
            write_out(count_out, d.keys.spans.len());
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_checks_lengths() {
        assert_eq!(
            split(b"abcd", &[1, 3], "key").unwrap(),
            vec![&b"a"[..], &b"bcd"[..]]
        );
        assert!(split(b"abcd", &[1, 2], "key").is_err());
        assert!(split(b"abcd", &[3, 2], "key").is_err());
        assert!(split(b"ab", &[usize::MAX, 3], "key").is_err());
        assert!(split(b"", &[], "key").unwrap().is_empty());
    }
}
