//! Calls into the library while the process exits — from a C `atexit`
//! handler, as a C program closing a global engine would (C++ static
//! destructors run at the same point) — return their status instead of
//! aborting the process. Found by the `ffi` fuzz target, whose exit hook
//! closes its engine (docs/RELIABILITY.md, "Fuzzing"): the thread's
//! last-error storage is destroyed before `atexit` handlers run, and the
//! panic boundary touched it outside `catch_unwind`.
//!
//! No test harness: the check needs the main thread (where `exit` runs the
//! handlers), so this program re-runs itself as a child and checks that
//! the child exits cleanly.

use converge::cvg_status_t;
use std::process::Command;
use std::ptr;

const CHILD: &str = "CONVERGE_EXIT_HANDLER_CHILD";

extern "C" fn at_exit() {
    // NULL is a valid engine argument (a no-op close).
    let closed = converge::engine::cvg_engine_close(ptr::null_mut());
    // SAFETY: "x" is one readable byte; (NULL, 0) is the empty token.
    let joined = unsafe {
        converge::token::cvg_token_join(b"x".as_ptr(), 1, ptr::null(), 0, ptr::null_mut())
    };
    if closed != cvg_status_t::CVG_STATUS_OK || joined != cvg_status_t::CVG_STATUS_CORRUPT_INPUT {
        eprintln!("at exit: close gave {closed:?}, a bad token {joined:?}");
        // SAFETY: ends the process at once, with a failing status.
        unsafe { libc::_exit(3) };
    }
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        // A call on this (the main) thread sets up its last-error storage,
        // which `exit` destroys before it runs the handler.
        let st = converge::engine::cvg_engine_close(ptr::null_mut());
        assert_eq!(st, cvg_status_t::CVG_STATUS_OK);
        // SAFETY: registers a plain extern "C" function.
        assert_eq!(unsafe { libc::atexit(at_exit) }, 0);
        return;
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let status = Command::new(exe)
        .env(CHILD, "1")
        .status()
        .expect("run the child");
    assert!(
        status.success(),
        "calls from an atexit handler ended the process: {status}"
    );
    println!("exit_handler: calls from an atexit handler return their status: ok");
}
