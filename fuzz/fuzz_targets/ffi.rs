//! The C entry points that take bytes, called as a C program would (through
//! the `converge-ffi` crate's `extern "C"` functions): `cvg_engine_merge`,
//! `cvg_engine_apply_changes`, `cvg_engine_changes_since` (cursor), the
//! token functions (`cvg_token_join`, `cvg_engine_wait_for`,
//! `cvg_engine_token_missing`, `cvg_delta_token`, `cvg_token_of_deltas`)
//! and sync sessions (`cvg_sync_initiate` / `cvg_sync_respond`,
//! `cvg_sync_handle`, `cvg_sync_receive` / `cvg_sync_next_message`).
//! Input: a mode byte ([`converge_fuzz::RESEAL`]: repair every encoding's
//! frame), then operations, each an opcode byte and its arguments (see
//! [`run`]).
//!
//! Checked: no call panics (a panic caught at the boundary returns
//! `CVG_STATUS_PANIC`, which fails the target); bad bytes get a status
//! about the input (never a storage status: `STORAGE`, `IO`, `LOCKED`,
//! `BUSY`, `NO_SPACE`, nor `POISONED`, `CORRUPTION`, `CLOSED`, `OTHER`) and a
//! message to read; outputs are written only on success and free cleanly.
#![no_main]

use converge_fuzz::fixture::{lock, FIXTURE_REPLICA};
use converge_fuzz::{framed, reframe, session_of, Input, Scratch, RESEAL};
use ffi::bytes::{
    cvg_bytes_free, cvg_bytes_t, cvg_list_free, cvg_list_get, cvg_list_len, cvg_slice_t,
};
use ffi::cvg_status_t as S;
use ffi::engine::{cvg_engine_close, cvg_engine_merge, cvg_engine_open, cvg_engine_t};
use ffi::feed::{cvg_delivery_t, cvg_engine_apply_changes, cvg_engine_changes_since};
use ffi::ops::cvg_engine_increment;
use ffi::options::{
    cvg_options_free, cvg_options_new, cvg_options_set_background_jobs,
    cvg_options_set_block_cache_bytes, cvg_options_set_replica_id,
    cvg_options_set_write_buffer_bytes,
};
use ffi::status::cvg_last_error_message;
use ffi::sync::{
    cvg_sync_config_default, cvg_sync_free, cvg_sync_handle, cvg_sync_initiate,
    cvg_sync_next_message, cvg_sync_outcome, cvg_sync_outcome_t, cvg_sync_receive,
    cvg_sync_respond, cvg_sync_t,
};
use ffi::token::{
    cvg_delta_token, cvg_engine_token_missing, cvg_engine_wait_for, cvg_token_join,
    cvg_token_of_deltas,
};
use libfuzzer_sys::fuzz_target;
use std::ffi::CString;
use std::path::Path;
use std::ptr;
use std::sync::Mutex;

/// An engine opened through the C ABI, closed through it when dropped.
struct Handle(*mut cvg_engine_t);

// SAFETY: the C ABI documents engine handles as shareable between threads
// (the ffi crate's tests check `cvg_engine_t: Send + Sync`).
unsafe impl Send for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        let st = cvg_engine_close(self.0);
        assert_eq!(st, S::CVG_STATUS_OK, "closing the engine");
    }
}

fn open(dir: &Path) -> Handle {
    let path = CString::new(dir.as_os_str().as_encoded_bytes()).expect("a path without NUL");
    let id = FIXTURE_REPLICA.to_be_bytes();
    let mut engine = ptr::null_mut();
    // SAFETY: every pointer is live for the calls; the options are freed
    // once, after the open copied them.
    unsafe {
        let o = cvg_options_new();
        ok(cvg_options_set_replica_id(o, id.as_ptr(), id.len()));
        ok(cvg_options_set_block_cache_bytes(o, 1 << 20));
        ok(cvg_options_set_write_buffer_bytes(o, 4 << 20));
        ok(cvg_options_set_background_jobs(o, 1));
        ok(cvg_engine_open(path.as_ptr(), o, &mut engine));
        cvg_options_free(o);
        for (i, k) in [&b"gc"[..], b"k00", b"k01"].into_iter().enumerate() {
            ok(cvg_engine_increment(
                engine,
                k.as_ptr(),
                k.len(),
                i as u64 + 1,
                ptr::null_mut(),
            ));
        }
    }
    Handle(engine)
}

static ENGINE: Mutex<Scratch<Handle>> = Mutex::new(Scratch::new("ffi", open, close));

fn close() {
    lock(&ENGINE).close();
}

fn ok(st: S) {
    assert_eq!(st, S::CVG_STATUS_OK, "a set-up call failed");
}

/// A status a call may return for bad input bytes: success, or a failure
/// about the input with a message to read.
fn input_status(st: S) -> bool {
    if st == S::CVG_STATUS_OK {
        return true;
    }
    assert!(
        !matches!(
            st,
            S::CVG_STATUS_PANIC
                | S::CVG_STATUS_STORAGE
                | S::CVG_STATUS_POISONED
                | S::CVG_STATUS_CORRUPTION
                | S::CVG_STATUS_OTHER
                | S::CVG_STATUS_NULL_POINTER
                | S::CVG_STATUS_CLOSED
                | S::CVG_STATUS_LOCKED
                | S::CVG_STATUS_IO
                | S::CVG_STATUS_BUSY
                | S::CVG_STATUS_NO_SPACE
        ),
        "status {st:?} for bad input"
    );
    // SAFETY: NULL buffer of length 0: only the length is asked.
    let len = unsafe { cvg_last_error_message(ptr::null_mut(), 0) };
    assert!(len > 0, "a failure ({st:?}) without a message");
    false
}

/// Free owned bytes the library returned.
fn free(mut b: cvg_bytes_t) {
    // SAFETY: returned by the library, freed once.
    unsafe { cvg_bytes_free(&mut b) };
    assert!(b.ptr.is_null() && b.len == 0);
}

fn empty() -> cvg_bytes_t {
    cvg_bytes_t {
        ptr: ptr::null_mut(),
        len: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut slot = lock(&ENGINE);
    let e = slot.get().0;
    let mut input = Input::new(data);
    let mode = input.byte();
    while !input.is_empty() {
        run(e, mode, &mut input);
    }
});

/// One operation: opcode byte % 6 — 0 merge (key chunk, payload chunk);
/// 1 apply a page (chunk); 2 changes since a cursor (chunk, limit byte);
/// 3 tokens (two chunks: joined, waited for, counted; the first also
/// read as a delta); 4 packed deltas (count byte, that many chunks);
/// 5 a sync session (role byte: bit 0 initiate, bit 1 no IBLT, bit 2
/// `cvg_sync_receive` + `cvg_sync_next_message` instead of
/// `cvg_sync_handle`; message count byte; that many chunks).
fn run(e: *mut cvg_engine_t, mode: u8, input: &mut Input) {
    match input.byte() % 6 {
        0 => {
            let key = input.chunk().to_vec();
            let payload = framed(mode, input.chunk());
            // SAFETY: live engine; slices live for the call.
            let st = unsafe {
                cvg_engine_merge(e, key.as_ptr(), key.len(), payload.as_ptr(), payload.len())
            };
            input_status(st);
        }
        1 => {
            let page = framed(mode, input.chunk());
            let mut delivery: cvg_delivery_t = 0xEE;
            // SAFETY: as above; the output is writable.
            let st =
                unsafe { cvg_engine_apply_changes(e, page.as_ptr(), page.len(), &mut delivery) };
            if input_status(st) {
                assert!(delivery <= 2, "delivery {delivery}");
            } else {
                assert_eq!(delivery, 0xEE, "an output written on failure");
            }
        }
        2 => {
            let cursor = framed(mode, input.chunk());
            let limit = usize::from(input.byte());
            let (mut page, mut next) = (empty(), empty());
            let (mut ops, mut more) = (u64::MAX, false);
            // SAFETY: as above.
            let st = unsafe {
                cvg_engine_changes_since(
                    e,
                    cursor.as_ptr(),
                    cursor.len(),
                    limit,
                    &mut page,
                    &mut next,
                    &mut ops,
                    &mut more,
                )
            };
            if input_status(st) {
                assert!(!next.ptr.is_null(), "a cursor is never empty bytes");
                assert_eq!(ops == 0, page.ptr.is_null());
            } else {
                assert!(page.ptr.is_null() && next.ptr.is_null() && ops == u64::MAX);
            }
            free(page);
            free(next);
        }
        3 => {
            let a = framed(mode, input.chunk());
            let b = framed(mode, input.chunk());
            let mut joined = empty();
            // SAFETY: as above.
            let st =
                unsafe { cvg_token_join(a.as_ptr(), a.len(), b.as_ptr(), b.len(), &mut joined) };
            if input_status(st) {
                let mut missing = u64::MAX;
                // SAFETY: as above.
                let st =
                    unsafe { cvg_engine_token_missing(e, joined.ptr, joined.len, &mut missing) };
                assert_eq!(st, S::CVG_STATUS_OK, "a joined token reads");
                // SAFETY: as above.
                let st = unsafe { cvg_engine_wait_for(e, joined.ptr, joined.len, 0) };
                let expected = if missing == 0 {
                    S::CVG_STATUS_OK
                } else {
                    S::CVG_STATUS_NOT_YET_VISIBLE
                };
                assert_eq!(st, expected);
            }
            free(joined);
            let mut token = empty();
            // SAFETY: as above.
            let st = unsafe { cvg_delta_token(a.as_ptr(), a.len(), &mut token) };
            if !input_status(st) {
                assert!(token.ptr.is_null());
            }
            free(token);
        }
        4 => {
            let n = usize::from(input.byte() % 8);
            let mut packed = Vec::new();
            let mut lens = Vec::new();
            for _ in 0..n {
                let d = framed(mode, input.chunk());
                lens.push(d.len());
                packed.extend_from_slice(&d);
            }
            let mut token = empty();
            // SAFETY: as above.
            let st = unsafe {
                cvg_token_of_deltas(
                    packed.as_ptr(),
                    packed.len(),
                    lens.as_ptr(),
                    lens.len(),
                    &mut token,
                )
            };
            input_status(st);
            free(token);
        }
        _ => session(e, mode, input),
    }
}

fn session(e: *mut cvg_engine_t, mode: u8, input: &mut Input) {
    let role = input.byte();
    let count = input.byte() % 8;
    let mut config = cvg_sync_config_default();
    config.use_iblt = role & 2 == 0;
    let mut s: *mut cvg_sync_t = ptr::null_mut();
    let mut id = None;
    // SAFETY: live engine; outputs writable.
    unsafe {
        if role & 1 != 0 {
            let mut first = empty();
            ok(cvg_sync_initiate(e, &config, &mut s, &mut first));
            id = session_of(std::slice::from_raw_parts(first.ptr, first.len));
            free(first);
        } else {
            ok(cvg_sync_respond(e, &config, &mut s));
        }
    }
    for seq in 0..u32::from(count) {
        let raw = input.chunk();
        let msg = if mode & RESEAL != 0 {
            let sid = *id.get_or_insert_with(|| session_of(raw).unwrap_or(0x5e55));
            reframe(raw, sid, seq)
        } else {
            raw.to_vec()
        };
        if role & 4 != 0 {
            if !pull(s, &msg) {
                break;
            }
            continue;
        }
        let mut before: cvg_sync_outcome_t = 0;
        // SAFETY: live session.
        ok(unsafe { cvg_sync_outcome(s, &mut before) });
        let mut replies = ptr::null_mut();
        // SAFETY: live session; output writable.
        let st = unsafe { cvg_sync_handle(s, msg.as_ptr(), msg.len(), &mut replies) };
        if input_status(st) {
            // SAFETY: a live list from the call, freed once.
            unsafe {
                for i in 0..cvg_list_len(replies) {
                    let mut item = cvg_slice_t {
                        ptr: ptr::null(),
                        len: 0,
                    };
                    ok(cvg_list_get(replies, i, &mut item));
                    assert!(item.len > 0);
                }
                cvg_list_free(replies);
            }
        } else {
            assert!(replies.is_null(), "an output written on failure");
            let mut outcome: cvg_sync_outcome_t = 0;
            // SAFETY: live session.
            ok(unsafe { cvg_sync_outcome(s, &mut outcome) });
            if before == ffi::sync::CVG_SYNC_RUNNING {
                assert_eq!(outcome, ffi::sync::CVG_SYNC_FAILED);
            } else {
                // A side that had ended refuses the message and keeps its
                // outcome.
                assert_eq!(st, S::CVG_STATUS_SYNC_PROTOCOL);
                assert_eq!(outcome, before);
            }
            break;
        }
    }
    // SAFETY: a live session, freed once.
    unsafe { cvg_sync_free(s) };
}

/// `cvg_sync_receive`, then `cvg_sync_next_message` until it has nothing;
/// whether the session goes on.
fn pull(s: *mut cvg_sync_t, msg: &[u8]) -> bool {
    // SAFETY: live session; the message lives for the call.
    let st = unsafe { cvg_sync_receive(s, msg.as_ptr(), msg.len()) };
    if !input_status(st) {
        return false;
    }
    loop {
        let mut m = empty();
        let mut has = false;
        // SAFETY: live session; outputs writable.
        let st = unsafe { cvg_sync_next_message(s, &mut m, &mut has) };
        if !input_status(st) {
            assert!(m.ptr.is_null(), "an output written on failure");
            return false;
        }
        assert_eq!(has, !m.ptr.is_null());
        free(m);
        if !has {
            return true;
        }
    }
}
