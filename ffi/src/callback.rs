//! The pluggable merge function: `cvg_engine_mv_resolve` hands an MV
//! register's siblings to a C callback, which writes the merged value into
//! a library-owned `cvg_buffer_t` (so no allocator crosses the boundary).

use crate::bytes::{cvg_bytes_t, input, reference_mut, write_out};
use crate::cvg_status_t;
use crate::engine::{cvg_engine_t, engine, key};
use crate::read::cvg_sibling_t;
use crate::status::{ffi_boundary, Failure};
use engine::MAX_VALUE_LEN;
use std::ffi::{c_int, c_void};

/// The output of a merge function: a growable byte buffer owned by the
/// library, valid only during the callback it is passed to. Append the
/// merged value with `cvg_buffer_append`. Thread safety: only the callback
/// it was passed to may use it, on the thread running that callback and
/// only during that call; the library frees it.
pub struct cvg_buffer_t {
    data: Vec<u8>,
}

/// A merge function for `cvg_engine_mv_resolve`: merge the `count`
/// concurrent values of an MV register (`siblings`, borrowed for the call)
/// into one, appended to `out` with `cvg_buffer_append`. Return 0 on
/// success; any other value is a failure and nothing is written (the
/// resolve returns `CVG_STATUS_MERGE_FUNCTION`). `user_data` is the pointer
/// given to `cvg_engine_mv_resolve`.
///
/// The callback runs on the calling thread. It may call other `cvg_`
/// functions (reads, writes, even on the same key: a write made
/// concurrently with the resolution survives as a sibling). It may close
/// the engine: the resolution in progress still finishes (and returns its
/// own status), calls made afterwards return `CVG_STATUS_CLOSED`, and the
/// store closes when the resolve returns. It must not unwind (C++
/// exceptions, `longjmp`) out of itself.
pub type cvg_merge_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        siblings: *const cvg_sibling_t,
        count: usize,
        out: *mut cvg_buffer_t,
    ) -> c_int,
>;

/// Append `len` bytes at `data` to a merge function's output buffer.
/// `CVG_STATUS_VALUE_TOO_LARGE` (and nothing appended) if the buffer would
/// exceed the engine's value limit (16 MiB).
///
/// # Safety
/// `buffer` is NULL or the buffer passed to the running callback; `data`
/// points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cvg_buffer_append(
    buffer: *mut cvg_buffer_t,
    data: *const u8,
    len: usize,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (buf, data) = unsafe { (reference_mut(buffer, "buffer")?, input(data, len, "data")?) };
        if buf.data.len().saturating_add(data.len()) > MAX_VALUE_LEN {
            return Err(Failure::new(
                cvg_status_t::CVG_STATUS_VALUE_TOO_LARGE,
                format!(
                    "merged value of {} bytes would exceed the limit of {MAX_VALUE_LEN}",
                    buf.data.len().saturating_add(data.len())
                ),
            ));
        }
        buf.data.extend_from_slice(data);
        Ok(())
    })
}

/// If the MV register `key` has two or more siblings, ask `merge_fn` for
/// one value and write it with the context of the read, replacing them:
/// `*resolved_out` (optional: may be NULL) is then true and `*delta_out`
/// (optional) receives the write's encoded delta (free with
/// `cvg_bytes_free`). With fewer than two siblings the callback is not
/// called, `*resolved_out` is false and `*delta_out` is `{NULL, 0}`.
/// A callback returning non-zero gives `CVG_STATUS_MERGE_FUNCTION` and
/// writes nothing. `CVG_STATUS_WRONG_TYPE` if the key is no MV register.
///
/// # Safety
/// `engine` is NULL or a live handle; `key` points to `key_len` bytes;
/// `merge_fn` follows the `cvg_merge_fn` contract; the outputs are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_engine_mv_resolve(
    engine: *const cvg_engine_t,
    key: *const u8,
    key_len: usize,
    merge_fn: cvg_merge_fn,
    user_data: *mut c_void,
    resolved_out: *mut bool,
    delta_out: *mut cvg_bytes_t,
) -> cvg_status_t {
    ffi_boundary!({
        // SAFETY: forwarded caller guarantees.
        let (e, k) = unsafe { (self::engine(engine)?, self::key(key, key_len)?) };
        let merge_fn = merge_fn.ok_or_else(|| Failure::null("merge_fn"))?;
        let resolved = e.mv_resolve(k, |siblings| {
            let views: Vec<cvg_sibling_t> = siblings
                .iter()
                .map(|s| cvg_sibling_t::new(&s.value, s.dot))
                .collect();
            let mut out = cvg_buffer_t { data: Vec::new() };
            // SAFETY: the views borrow `siblings`, alive for the call; the
            // callback follows the cvg_merge_fn contract.
            let rc = unsafe { merge_fn(user_data, views.as_ptr(), views.len(), &mut out) };
            if rc == 0 {
                Ok(out.data)
            } else {
                Err(format!("merge function returned {rc}"))
            }
        })?;
        let found = resolved.is_some();
        let delta = (!delta_out.is_null()).then(|| resolved.map(|kd| kd.delta.encode()));
        // SAFETY: NULL or writable.
        unsafe {
            write_out(resolved_out, found);
            if let Some(d) = delta {
                write_out(delta_out, cvg_bytes_t::from_vec(d.unwrap_or_default()));
            }
        }
        Ok(())
    })
}
