//! The C ABI of Converge (`include/converge.h`, generated from this crate by
//! cbindgen). It only translates: C types in, engine calls, C types out.
//! Every decision lives in the `converge` engine crate.
//!
//! Modules, one concern each:
//! - [`status`]: `cvg_status_t`, the per-thread error message, the panic
//!   boundary (`ffi_boundary!`) every exported body runs inside;
//! - [`bytes`]: byte strings in and out, pointer checks, `cvg_list_t`;
//! - [`options`]: `cvg_options_t`, the open options builder;
//! - [`engine`]: open/close, identity, key metadata, merge, anti-entropy;
//! - `registry`: what an engine handle is (a generation-tagged slot of a
//!   process-wide table) and how a call holds its engine while it runs;
//! - [`feed`]: causal delivery (the pending area) and the changes feed;
//! - [`gc`]: the collection of tombstones and the membership it waits for;
//! - [`ops`]: one CRDT operation (or delete) per call, each returning its
//!   delta;
//! - [`read`]: typed reads (counters, sets, registers, MV siblings);
//! - [`batch`]: atomic batches and their packed deltas;
//! - [`bulk`]: many batch operations, or all deltas, in one call;
//! - [`iter`]: key iteration;
//! - [`callback`]: the pluggable MV merge function;
//! - [`sync`]: anti-entropy sync sessions driven by byte messages;
//! - [`token`]: session tokens (read-your-writes, monotonic reads) and
//!   waiting for them.
//!
//! See docs/C_API.md for ownership, threading and versioning rules.

#![allow(non_camel_case_types)]
#![allow(clippy::too_many_arguments)]
#![deny(missing_docs)]

// cbindgen emits items in module order (rustfmt keeps these sorted).
pub mod batch;
pub mod bulk;
pub mod bytes;
pub mod callback;
pub mod engine;
pub mod feed;
pub mod gc;
pub mod iter;
pub mod ops;
pub mod options;
pub mod read;
mod registry;
pub mod status;
pub mod sync;
pub mod token;

pub use status::cvg_status_t;

use std::ffi::c_char;

/// Major version of the library this header belongs to (the crate version
/// in Cargo.toml). While it is 0, a minor version bump may break the ABI.
pub const CONVERGE_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to.
pub const CONVERGE_VERSION_MINOR: u32 = 1;
/// Patch version of the library this header belongs to.
pub const CONVERGE_VERSION_PATCH: u32 = 0;
/// The version as one comparable number: `MAJOR * 10000 + MINOR * 100 +
/// PATCH` (minor and patch stay below 100).
pub const CONVERGE_VERSION_NUMBER: u32 = 100;

// The limits (FORMAT.md, "Limits"). Literal values, so that cbindgen can
// emit them; checked against the engine's at compile time.

/// Largest key, in bytes (64 KiB): longer keys fail with
/// `CVG_STATUS_KEY_TOO_LARGE`.
pub const CVG_MAX_KEY_LEN: usize = 65536;
/// Largest register value or set element, in bytes (16 MiB): larger ones
/// fail with `CVG_STATUS_VALUE_TOO_LARGE`.
pub const CVG_MAX_VALUE_LEN: usize = 16777216;
/// Largest encoded state of one key, and largest delta or state passed to
/// a merge, in bytes (64 MiB, everything included). A write that would
/// make a key's state larger fails with `CVG_STATUS_STATE_TOO_LARGE` and
/// writes nothing; a larger merge payload fails with
/// `CVG_STATUS_CORRUPT_INPUT`.
pub const CVG_MAX_STATE_LEN: usize = 67108864;
/// Largest sync message, in bytes (65 MiB): the ceiling of
/// `cvg_sync_config_t.max_message`, and its default.
pub const CVG_MAX_MESSAGE_LEN: usize = 68157440;

const _: () = {
    assert!(CVG_MAX_KEY_LEN == ::engine::MAX_KEY_LEN);
    assert!(CVG_MAX_VALUE_LEN == ::engine::MAX_VALUE_LEN);
    assert!(CVG_MAX_STATE_LEN == ::engine::codec::MAX_STATE_LEN);
    assert!(CVG_MAX_MESSAGE_LEN == ::engine::codec::MAX_MESSAGE_LEN);
};

/// The version of the loaded library as a static NUL-terminated string
/// (`"MAJOR.MINOR.PATCH"`). Compare it with the `CONVERGE_VERSION_*` macros
/// to detect a header / library mismatch. Never NULL; do not free.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn cvg_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    status::ffi_boundary!(V.as_ptr().cast() => { V.as_ptr().cast() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_the_crate_version() {
        let parse = |s: &str| s.parse::<u32>().unwrap();
        assert_eq!(
            CONVERGE_VERSION_MAJOR,
            parse(env!("CARGO_PKG_VERSION_MAJOR"))
        );
        assert_eq!(
            CONVERGE_VERSION_MINOR,
            parse(env!("CARGO_PKG_VERSION_MINOR"))
        );
        assert_eq!(
            CONVERGE_VERSION_PATCH,
            parse(env!("CARGO_PKG_VERSION_PATCH"))
        );
        const { assert!(CONVERGE_VERSION_MINOR < 100 && CONVERGE_VERSION_PATCH < 100) };
        assert_eq!(
            CONVERGE_VERSION_NUMBER,
            CONVERGE_VERSION_MAJOR * 10000 + CONVERGE_VERSION_MINOR * 100 + CONVERGE_VERSION_PATCH
        );
        let v = unsafe { std::ffi::CStr::from_ptr(cvg_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    /// The thread-safety rules the header states for each handle, as far
    /// as the compiler can check them (the engine handle is no Rust object:
    /// see the registry module): a handle whose `const` calls may run
    /// on several threads at once must be `Sync`; every handle may be used
    /// from (and freed on) another thread than the one that created it, so
    /// it must be `Send`. The exclusive calls (`*mut` parameters) are the
    /// caller's contract.
    #[test]
    fn handles_are_as_thread_safe_as_the_header_says() {
        fn shared_across_threads<T: Send + Sync>() {}
        fn moved_across_threads<T: Send>() {}
        shared_across_threads::<options::cvg_options_t>();
        shared_across_threads::<batch::cvg_batch_t>();
        shared_across_threads::<batch::cvg_deltas_t>();
        shared_across_threads::<bytes::cvg_list_t>();
        shared_across_threads::<read::cvg_siblings_t>();
        shared_across_threads::<gc::cvg_blockers_t>();
        shared_across_threads::<sync::cvg_sync_t>();
        moved_across_threads::<iter::cvg_iter_t>();
    }
}
