//! Byte strings across the boundary: borrowed input slices, owned output
//! bytes (`cvg_bytes_t`), borrowed views (`cvg_slice_t`) and the owned list
//! of byte strings (`cvg_list_t`) that set reads return. Also the pointer
//! checks shared by every exported function.

use crate::status::{ffi_boundary, Failure};

/// An owned byte string returned by the library. Free it with
/// `cvg_bytes_free`; never with `free()`. The empty string is
/// `{NULL, 0}`. A `cvg_bytes_t` is plain data: its bytes may be read from
/// any number of threads at once, and it may be moved between threads and
/// freed from any thread (once, with no reader left).
#[repr(C)]
#[derive(Debug)]
pub struct cvg_bytes_t {
    /// The bytes (NULL when `len` is 0).
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
}

/// A borrowed view of bytes owned by someone else (a list, an iterator, a
/// set of deltas); valid as long as its owner, as that owner's function
/// documents. Never free it. The empty view is `{NULL, 0}`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct cvg_slice_t {
    /// The bytes (NULL when `len` is 0).
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl cvg_bytes_t {
    /// Hand `v` over to C.
    pub(crate) fn from_vec(v: Vec<u8>) -> cvg_bytes_t {
        if v.is_empty() {
            return cvg_bytes_t {
                ptr: std::ptr::null_mut(),
                len: 0,
            };
        }
        let len = v.len();
        let ptr = Box::into_raw(v.into_boxed_slice()).cast::<u8>();
        cvg_bytes_t { ptr, len }
    }
}

impl cvg_slice_t {
    /// The empty view `{NULL, 0}`.
    pub(crate) fn empty() -> cvg_slice_t {
        cvg_slice_t {
            ptr: std::ptr::null(),
            len: 0,
        }
    }

    /// A view of `b` (`{NULL, 0}` when empty).
    pub(crate) fn of(b: &[u8]) -> cvg_slice_t {
        if b.is_empty() {
            cvg_slice_t::empty()
        } else {
            cvg_slice_t {
                ptr: b.as_ptr(),
                len: b.len(),
            }
        }
    }
}

/// Free bytes the library returned and reset `*bytes` to `{NULL, 0}`, so a
/// second free is harmless. `bytes == NULL` and `{NULL, 0}` are no-ops.
///
/// # Safety
/// `*bytes` is `{NULL, 0}` or was returned by this library and not freed.
#[no_mangle]
pub unsafe extern "C" fn cvg_bytes_free(bytes: *mut cvg_bytes_t) {
    ffi_boundary!(() => {
        if bytes.is_null() {
            return;
        }
        // SAFETY: the caller passes a valid cvg_bytes_t.
        let b = unsafe { &mut *bytes };
        if !b.ptr.is_null() {
            // SAFETY: ptr/len came from Box<[u8]>::into_raw in from_vec.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(b.ptr, b.len)) });
        }
        b.ptr = std::ptr::null_mut();
        b.len = 0;
    })
}

/// Borrow the input byte string `(ptr, len)`. `(NULL, 0)` (or any pointer
/// with length 0) is the empty string; NULL with a length is an error.
///
/// # Safety
/// When `len > 0`, `ptr` points to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn input<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what}: length {len} exceeds PTRDIFF_MAX"
        )));
    }
    // SAFETY: checked non-NULL; the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrow a required pointer argument.
///
/// # Safety
/// A non-NULL `ptr` points to a valid `T` that outlives `'a`.
pub(crate) unsafe fn reference<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller guarantees validity of non-NULL pointers.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// Borrow a required pointer argument mutably.
///
/// # Safety
/// A non-NULL `ptr` points to a valid `T` not aliased elsewhere during `'a`.
pub(crate) unsafe fn reference_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller guarantees validity of non-NULL pointers.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(what))
}

/// Check that a required output pointer is not NULL (it is written only at
/// the end, on success).
pub(crate) fn required<T>(ptr: *mut T, what: &str) -> Result<(), Failure> {
    if ptr.is_null() {
        Err(Failure::null(what))
    } else {
        Ok(())
    }
}

/// Write `value` to an output pointer (NULL: drop it). Outputs may hold
/// uninitialized memory, so the old contents are never read or dropped.
///
/// # Safety
/// A non-NULL `ptr` is valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: the caller guarantees a valid, writable pointer.
        unsafe { ptr.write(value) };
    }
}

/// Where one byte string lies in a packed buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct cvg_span_t {
    /// Offset of its first byte.
    pub offset: usize,
    /// Its length.
    pub len: usize,
}

/// Byte strings packed into one buffer: two allocations however many there
/// are.
#[derive(Debug, Default)]
pub(crate) struct Packed {
    pub(crate) data: Vec<u8>,
    pub(crate) spans: Vec<cvg_span_t>,
}

impl Packed {
    pub(crate) fn with_capacity(items: usize, bytes: usize) -> Packed {
        Packed {
            data: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(items),
        }
    }

    /// Append one byte string; returns its index.
    pub(crate) fn push(&mut self, b: &[u8]) -> usize {
        self.spans.push(cvg_span_t {
            offset: self.data.len(),
            len: b.len(),
        });
        self.data.extend_from_slice(b);
        self.spans.len() - 1
    }

    /// Append one byte string written by `fill` straight into the buffer;
    /// returns its index.
    pub(crate) fn push_with(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> usize {
        let offset = self.data.len();
        fill(&mut self.data);
        self.spans.push(cvg_span_t {
            offset,
            len: self.data.len() - offset,
        });
        self.spans.len() - 1
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&[u8]> {
        self.spans
            .get(i)
            .map(|s| &self.data[s.offset..s.offset + s.len])
    }
}

/// An owned, immutable list of byte strings, stored in one buffer: set
/// members (`cvg_engine_set_members`) or sync replies (`cvg_sync_handle`).
/// Released by `cvg_list_free`.
///
/// Thread safety: immutable. `cvg_list_len` and `cvg_list_get` may run on
/// any number of threads at once; `cvg_list_free` needs exclusive access
/// (no reader running) and may be called from any thread. The views it
/// hands out die with it.
pub struct cvg_list_t {
    pub(crate) items: Packed,
}

/// Number of byte strings in `list` (0 for NULL).
///
/// # Safety
/// `list` is NULL or a live list.
#[no_mangle]
pub unsafe extern "C" fn cvg_list_len(list: *const cvg_list_t) -> usize {
    // SAFETY: the caller passes NULL or a live list.
    ffi_boundary!(0 => { unsafe { list.as_ref() }.map_or(0, |l| l.items.len()) })
}

/// Borrow item `index` of `list` into `*item_out`; the view is valid until
/// `cvg_list_free(list)`. `CVG_STATUS_INVALID_ARGUMENT` if `index` is not
/// below `cvg_list_len(list)`.
///
/// # Safety
/// `list` is NULL or a live list; `item_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cvg_list_get(
    list: *const cvg_list_t,
    index: usize,
    item_out: *mut cvg_slice_t,
) -> crate::cvg_status_t {
    ffi_boundary!({
        // SAFETY: the caller passes NULL or a live list.
        let list = unsafe { reference(list, "list") }?;
        required(item_out, "item_out")?;
        let item = list.items.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} out of range (list has {})",
                list.items.len()
            ))
        })?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(item_out, cvg_slice_t::of(item)) };
        Ok(())
    })
}

/// Free a list and every view borrowed from it. The pointer is invalid
/// after the call. NULL is a no-op.
///
/// # Safety
/// `list` is NULL or a live list with no call running on it; neither it
/// nor its views are used afterwards.
#[no_mangle]
pub unsafe extern "C" fn cvg_list_free(list: *mut cvg_list_t) {
    ffi_boundary!(() => {
        if !list.is_null() {
            // SAFETY: created by Box::into_raw in the read functions.
            drop(unsafe { Box::from_raw(list) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_bytes_round_trip_and_double_free_is_harmless() {
        let mut b = cvg_bytes_t::from_vec(vec![1, 2, 3]);
        assert_eq!(
            unsafe { std::slice::from_raw_parts(b.ptr, b.len) },
            [1, 2, 3]
        );
        unsafe { cvg_bytes_free(&mut b) };
        assert!(b.ptr.is_null() && b.len == 0);
        unsafe { cvg_bytes_free(&mut b) };
        unsafe { cvg_bytes_free(std::ptr::null_mut()) };
        let e = cvg_bytes_t::from_vec(Vec::new());
        assert!(e.ptr.is_null());
    }

    #[test]
    fn input_accepts_null_empty_and_rejects_null_with_length() {
        assert_eq!(unsafe { input(std::ptr::null(), 0, "key") }.unwrap(), b"");
        let e = unsafe { input(std::ptr::null(), 3, "key") }.unwrap_err();
        assert_eq!(e.status, crate::cvg_status_t::CVG_STATUS_NULL_POINTER);
        let x = [7u8];
        let e = unsafe { input(x.as_ptr(), usize::MAX, "key") }.unwrap_err();
        assert_eq!(e.status, crate::cvg_status_t::CVG_STATUS_INVALID_ARGUMENT);
    }

    #[test]
    fn packed_keeps_items_apart() {
        let mut p = Packed::with_capacity(3, 8);
        p.push(b"ab");
        p.push(b"");
        p.push(b"cde");
        assert_eq!(p.len(), 3);
        assert_eq!(p.get(0), Some(&b"ab"[..]));
        assert_eq!(p.get(1), Some(&b""[..]));
        assert_eq!(p.get(2), Some(&b"cde"[..]));
        assert_eq!(p.get(3), None);
    }
}
