//! Closing an engine handle while other threads are inside calls on it:
//! they finish, later calls get `CVG_STATUS_CLOSED`, the store closes with
//! the last call, and a stale handle never reaches the engine that reuses
//! its slot. (The C suite runs the same under ASan and valgrind.)

use converge::cvg_status_t::{self, *};
use converge::engine::{cvg_engine_close, cvg_engine_open, cvg_engine_t};
use converge::ops::cvg_engine_increment;
use converge::options::{
    cvg_options_free, cvg_options_new, cvg_options_set_durability, CVG_DURABILITY_BUFFERED,
};
use converge::read::cvg_engine_counter_value;
use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn open(path: &Path) -> Result<*mut cvg_engine_t, cvg_status_t> {
    let p = CString::new(path.to_str().unwrap()).unwrap();
    let mut e: *mut cvg_engine_t = std::ptr::null_mut();
    let opts = cvg_options_new();
    let st = unsafe { cvg_options_set_durability(opts, CVG_DURABILITY_BUFFERED) };
    assert_eq!(st, CVG_STATUS_OK);
    let st = unsafe { cvg_engine_open(p.as_ptr(), opts, &mut e) };
    unsafe { cvg_options_free(opts) };
    match st {
        CVG_STATUS_OK => Ok(e),
        s => Err(s),
    }
}

/// A handle value that may cross threads (it names the engine; it is not
/// dereferenced).
#[derive(Clone, Copy)]
struct Handle(usize);

impl Handle {
    fn get(self) -> *const cvg_engine_t {
        self.0 as *const cvg_engine_t
    }
}

fn increment(h: Handle) -> cvg_status_t {
    unsafe { cvg_engine_increment(h.get(), b"k".as_ptr(), 1, 1, std::ptr::null_mut()) }
}

#[test]
fn close_while_threads_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = 0u64;
    for round in 0..3 {
        let e = Handle(open(dir.path()).unwrap() as usize);
        let entered = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let entered = Arc::clone(&entered);
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    loop {
                        match increment(e) {
                            CVG_STATUS_OK => {
                                if ok == 0 {
                                    entered.fetch_add(1, Ordering::SeqCst);
                                }
                                ok += 1;
                            }
                            CVG_STATUS_CLOSED => return ok,
                            s => panic!("unexpected status {s:?}"),
                        }
                    }
                })
            })
            .collect();
        // Close once every thread is calling in a loop.
        while entered.load(Ordering::SeqCst) < threads.len() {
            std::thread::yield_now();
        }
        assert_eq!(cvg_engine_close(e.get()), CVG_STATUS_OK);
        acknowledged += threads.into_iter().map(|t| t.join().unwrap()).sum::<u64>();
        // Every later use of the handle is refused, a second close too.
        assert_eq!(increment(e), CVG_STATUS_CLOSED);
        assert_eq!(cvg_engine_close(e.get()), CVG_STATUS_CLOSED);
        // The last call closed the store: it reopens, with every
        // acknowledged increment.
        let again = open(dir.path()).unwrap();
        let mut value = 0i64;
        let st = unsafe { cvg_engine_counter_value(again, b"k".as_ptr(), 1, &mut value) };
        assert_eq!(st, CVG_STATUS_OK);
        assert_eq!(value as u64, acknowledged, "round {round}");
        assert_eq!(cvg_engine_close(again), CVG_STATUS_OK);
    }
}

#[test]
fn a_stale_handle_never_reaches_the_engine_that_reuses_its_slot() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut stale = Vec::new();
    for i in 0..8 {
        let dir = if i % 2 == 0 { a.path() } else { b.path() };
        let e = open(dir).unwrap();
        for s in &stale {
            assert_eq!(increment(Handle(*s)), CVG_STATUS_CLOSED);
        }
        assert_eq!(increment(Handle(e as usize)), CVG_STATUS_OK);
        assert_eq!(cvg_engine_close(e), CVG_STATUS_OK);
        stale.push(e as usize);
    }
    // Garbage is refused without being dereferenced.
    assert_eq!(increment(Handle(1)), CVG_STATUS_INVALID_ARGUMENT);
    assert_eq!(
        increment(Handle(usize::MAX & !7)),
        CVG_STATUS_INVALID_ARGUMENT
    );
    assert_eq!(cvg_engine_close(std::ptr::null()), CVG_STATUS_OK);
}

#[test]
fn close_wakes_a_wait_and_it_returns_closed() {
    use converge::bytes::{cvg_bytes_free, cvg_bytes_t};
    use converge::token::{cvg_delta_token, cvg_engine_wait_for};
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A token of a write made on another replica, never delivered here.
    let other = open(a.path()).unwrap();
    let mut delta = cvg_bytes_t {
        ptr: std::ptr::null_mut(),
        len: 0,
    };
    let mut token = cvg_bytes_t {
        ptr: std::ptr::null_mut(),
        len: 0,
    };
    unsafe {
        assert_eq!(
            cvg_engine_increment(other, b"k".as_ptr(), 1, 1, &mut delta),
            CVG_STATUS_OK
        );
        assert_eq!(
            cvg_delta_token(delta.ptr, delta.len, &mut token),
            CVG_STATUS_OK
        );
        cvg_bytes_free(&mut delta);
    }
    assert_eq!(cvg_engine_close(other), CVG_STATUS_OK);
    let e = Handle(open(b.path()).unwrap() as usize);
    let t = (token.ptr as usize, token.len);
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || unsafe {
                cvg_engine_wait_for(e.get(), t.0 as *const u8, t.1, 600_000)
            })
        })
        .collect();
    // Whether a waiter is inside its wait or not there yet, it returns
    // CLOSED; one the close did not wake would end after its 10 minutes
    // with CVG_STATUS_NOT_YET_VISIBLE.
    assert_eq!(cvg_engine_close(e.get()), CVG_STATUS_OK);
    for w in waiters {
        assert_eq!(w.join().unwrap(), CVG_STATUS_CLOSED);
    }
    unsafe { cvg_bytes_free(&mut token) };
    // The store was closed by the last waiter out.
    assert_eq!(cvg_engine_close(open(b.path()).unwrap()), CVG_STATUS_OK);
}
