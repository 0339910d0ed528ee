//! Typed reads: counter values, set members, register values and MV
//! siblings, each with the encoded causal context a later remove or write
//! needs.

use crate::bytes::{cvg_bytes_t, cvg_list_t, cvg_slice_t, reference, required, write_out, Packed};
use crate::cvg_status_t;
use crate::engine::{cvg_engine_t, engine, key};
use crate::status::{ffi_boundary, Failure};
use engine::{codec, Dot, Sibling};

/// A 128-bit signed integer as two 64-bit halves: the value is
/// `hi * 2^64 + lo` (two's complement, so `hi` is -1 for small negative
/// numbers).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct cvg_i128_t {
    /// Low 64 bits.
    pub lo: u64,
    /// High 64 bits, signed.
    pub hi: i64,
}

/// When and by whom a register value was written.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct cvg_stamp_t {
    /// Hybrid clock: milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Hybrid clock: logical counter within the millisecond.
    pub logical: u32,
    /// The writing replica's 16-byte id.
    pub replica: [u8; 16],
}

/// One value of an MV register, with the dot (replica, counter) of the
/// write that produced it. `value` is borrowed from its owner.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct cvg_sibling_t {
    /// The value.
    pub value: cvg_slice_t,
    /// The writing replica's 16-byte id.
    pub replica: [u8; 16],
    /// That replica's event counter for this key.
    pub counter: u64,
}

impl cvg_sibling_t {
    pub(crate) fn new(value: &[u8], dot: Dot) -> cvg_sibling_t {
        cvg_sibling_t {
            value: cvg_slice_t::of(value),
            replica: dot.replica.to_bytes(),
            counter: dot.counter,
        }
    }
}

/// The siblings of an MV register, owned. Created by `cvg_engine_mv_read`,
/// released by `cvg_siblings_free`.
///
/// Thread safety: immutable. `cvg_siblings_len` and `cvg_siblings_get` may
/// run on any number of threads at once; `cvg_siblings_free` needs
/// exclusive access (no reader running) and may be called from any thread.
/// The values it hands out die with it.
pub struct cvg_siblings_t {
    values: Packed,
    dots: Vec<Dot>,
}

impl cvg_siblings_t {
    fn of(siblings: &[Sibling]) -> cvg_siblings_t {
        let bytes = siblings.iter().map(|s| s.value.len()).sum();
        let mut values = Packed::with_capacity(siblings.len(), bytes);
        for s in siblings {
            values.push(&s.value);
        }
        cvg_siblings_t {
            values,
            dots: siblings.iter().map(|s| s.dot).collect(),
        }
    }
}

/// Value of the G-Counter or PN-Counter `key` into `*value_out` (0 if never
/// written). `CVG_STATUS_OVERFLOW` if it does not fit an `int64_t` (use
/// `cvg_engine_counter_value_wide`); `CVG_STATUS_WRONG_TYPE` if the key
/// holds another type.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` points to `key_len` bytes;
/// `value_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_counter_value(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    value_out: *mut i64,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, k) = unsafe { (self::engine(engine)?, self::key(key, key_len)?) };
        required(value_out, "value_out")?;
        let v = e.counter_value(k)?;
        let v = i64::try_from(v).map_err(|_| {
            Failure::new(
                cvg_status_t::CVG_STATUS_OVERFLOW,
                format!("counter value {v} does not fit int64_t"),
            )
        })?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(value_out, v) };
        Ok(())
    })
}

/// Value of the G-Counter or PN-Counter `key` as a 128-bit integer (never
/// overflows). `CVG_STATUS_WRONG_TYPE` if the key holds another type.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` points to `key_len` bytes;
/// `value_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_counter_value_wide(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    value_out: *mut cvg_i128_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, k) = unsafe { (self::engine(engine)?, self::key(key, key_len)?) };
        required(value_out, "value_out")?;
        let v = e.counter_value(k)?;
        let wide = cvg_i128_t {
            lo: v as u64,
            hi: (v >> 64) as i64,
        };
        // SAFETY: checked non-NULL.
        unsafe { write_out(value_out, wide) };
        Ok(())
    })
}

/// Members of the G-Set, 2P-Set or OR-Set `key`, in byte order, into a new
/// list `*members_out` (free with `cvg_list_free`; empty if never written).
/// `context_out` (optional: may be NULL) receives the encoded causal
/// context of the read, to pass to `cvg_engine_orset_remove_observed`
/// (free with `cvg_bytes_free`; for G-Sets and 2P-Sets it is the empty
/// context). `CVG_STATUS_WRONG_TYPE` if the key holds another type.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` points to `key_len` bytes; the
/// outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_set_members(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    members_out: *mut *mut cvg_list_t,
    context_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, k) = unsafe { (self::engine(engine)?, self::key(key, key_len)?) };
        required(members_out, "members_out")?;
        let read = e.set_members(k)?;
        let bytes = read.members.iter().map(Vec::len).sum();
        let mut items = Packed::with_capacity(read.members.len(), bytes);
        for m in &read.members {
            items.push(m);
        }
        let ctx = (!context_out.is_null()).then(|| codec::encode_context(&read.context));
        let list = Box::into_raw(Box::new(cvg_list_t { items }));
        // SAFETY: checked non-NULL / NULL or writable.
        unsafe {
            write_out(members_out, list);
            if let Some(ctx) = ctx {
                write_out(context_out, cvg_bytes_t::from_vec(ctx));
            }
        }
        Ok(())
    })
}

/// The winning write of the LWW or FWW register `key`: `*found_out` is
/// false if it was never written (then `*value_out` is `{NULL, 0}` and
/// `*stamp_out` all zero). `value_out` (free with `cvg_bytes_free`) and
/// `stamp_out` are optional: may be NULL. `CVG_STATUS_WRONG_TYPE` if the
/// key holds another type.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` points to `key_len` bytes; the
/// outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_register(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    found_out: *mut bool,
    value_out: *mut cvg_bytes_t,
    stamp_out: *mut cvg_stamp_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, k) = unsafe { (self::engine(engine)?, self::key(key, key_len)?) };
        required(found_out, "found_out")?;
        let reg = e.register(k)?;
        let stamp = reg.as_ref().map_or(
            cvg_stamp_t {
                wall_ms: 0,
                logical: 0,
                replica: [0; 16],
            },
            |s| cvg_stamp_t {
                wall_ms: s.ts.wall_ms,
                logical: s.ts.logical,
                replica: s.replica.to_bytes(),
            },
        );
        let found = reg.is_some();
        let value = (!value_out.is_null()).then(|| reg.map(|s| s.value).unwrap_or_default());
        // SAFETY: checked non-NULL / NULL or writable.
        unsafe {
            write_out(found_out, found);
            if let Some(v) = value {
                write_out(value_out, cvg_bytes_t::from_vec(v));
            }
            write_out(stamp_out, stamp);
        }
        Ok(())
    })
}

/// The siblings of the MV register `key` (ordered by dot; none if never
/// written) into a new `*siblings_out` (free with `cvg_siblings_free`).
/// `context_out` (optional: may be NULL) receives the encoded causal
/// context to pass to the next `cvg_engine_mv_write` (free with
/// `cvg_bytes_free`). `CVG_STATUS_WRONG_TYPE` if the key holds another type.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` points to `key_len` bytes; the
/// outputs are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_mv_read(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    siblings_out: *mut *mut cvg_siblings_t,
    context_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, k) = unsafe { (self::engine(engine)?, self::key(key, key_len)?) };
        required(siblings_out, "siblings_out")?;
        let read = e.mv_read(k)?;
        let ctx = (!context_out.is_null()).then(|| codec::encode_context(&read.context));
        let siblings = Box::into_raw(Box::new(cvg_siblings_t::of(&read.siblings)));
        // SAFETY: checked non-NULL / NULL or writable.
        unsafe {
            write_out(siblings_out, siblings);
            if let Some(ctx) = ctx {
                write_out(context_out, cvg_bytes_t::from_vec(ctx));
            }
        }
        Ok(())
    })
}

/// Number of siblings (0 for NULL).
///
/// # Safety
/// `siblings` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn cvg_siblings_len(siblings: *const cvg_siblings_t) -> usize {
    // SAFETY: the caller passes NULL or a live handle.
    ffi_boundary!(0 => { unsafe { siblings.as_ref() }.map_or(0, |s| s.dots.len()) })
}

/// Sibling `index` into `*sibling_out`; its value is valid until
/// `cvg_siblings_free(siblings)`. `CVG_STATUS_INVALID_ARGUMENT` if `index`
/// is not below `cvg_siblings_len(siblings)`.
///
/// # Safety
/// `siblings` is NULL or live; `sibling_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_siblings_get(
    siblings: *const cvg_siblings_t,
    index: usize,
    sibling_out: *mut cvg_sibling_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: the caller passes NULL or a live handle.
        let s = unsafe { reference(siblings, "siblings") }?;
        required(sibling_out, "sibling_out")?;
        let (value, dot) = match (s.values.get(index), s.dots.get(index)) {
            (Some(v), Some(d)) => (v, *d),
            _ => {
                return Err(Failure::invalid(format!(
                    "index {index} out of range ({} siblings)",
                    s.dots.len()
                )))
            }
        };
        // SAFETY: checked non-NULL.
        unsafe { write_out(sibling_out, cvg_sibling_t::new(value, dot)) };
        Ok(())
    })
}

/// Free siblings and every value borrowed from them. The pointer is
/// invalid after the call. NULL is a no-op.
///
/// # Safety
/// `siblings` is NULL or live with no call running on it; neither it nor
/// its values are used afterwards.
#[no_mangle]
pub unsafe extern "C" fn cvg_siblings_free(siblings: *mut cvg_siblings_t) {
    ffi_boundary!(() => {
        if !siblings.is_null() {
            // SAFETY: created by Box::into_raw in cvg_engine_mv_read.
            drop(unsafe { Box::from_raw(siblings) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_halves_recombine() {
        for v in [0i128, -1, 5, i128::from(u64::MAX) * 3, -(1i128 << 70)] {
            let w = cvg_i128_t {
                lo: v as u64,
                hi: (v >> 64) as i64,
            };
            assert_eq!((i128::from(w.hi) << 64) | i128::from(w.lo), v);
        }
    }
}
