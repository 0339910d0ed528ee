//! Error types, one per concern: [`CodecError`] for bytes that do not decode,
//! [`Error`] for engine operations. Anti-entropy has its own
//! [`crate::sync::SyncError`].

use crate::causal::ReplicaId;
use crate::crdt::CrdtType;

/// Bytes that cannot be decoded. Nothing is changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended before the encoding did (includes empty input).
    #[error("truncated input: {0}")]
    Truncated(String),
    /// The leading format-version byte is not one this build reads.
    #[error("unknown format version {found} (this build reads version {supported})")]
    UnknownVersion {
        /// The version byte found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The kind byte after the version is not known.
    #[error("unknown encoding kind {0}")]
    UnknownKind(u8),
    /// The bytes are not a valid encoding.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// The input, or a length inside it, exceeds a hard limit.
    #[error("input too large: {len} bytes, limit {max}")]
    TooLarge {
        /// Size claimed or found.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A valid encoding of a state that no join produces (for example an
    /// empty entry or an uncompacted context): accepting it would break the
    /// byte equality of converged replicas.
    #[error("state is not in canonical form")]
    NotCanonical,
    /// The checksum trailer does not match the bytes: they were damaged.
    #[error("checksum mismatch: the bytes are damaged")]
    Checksum,
}

/// An engine operation failed. A failed operation changes nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// RocksDB reported an error none of the variants below describes
    /// (an invalid option, a missing store opened without
    /// `create_if_missing`, a shutdown in progress, ...).
    #[error("storage error: {0}")]
    Storage(String),
    /// The store's directory is locked: another engine has it open, in this
    /// process or another (RocksDB's `LOCK` file). Nothing was opened;
    /// retry once the other engine is closed.
    #[error("store is locked by another open engine: {0}")]
    Locked(String),
    /// RocksDB reported an I/O error (a failed read, write, fsync, rename,
    /// a file that vanished, ...), other than a full disk or a held lock.
    /// On the write path it poisons the engine like any failed write.
    #[error("I/O error: {0}")]
    Io(String),
    /// The disk (or RocksDB's space limit) is full: a write, flush or
    /// compaction could not get space. On the write path it poisons the
    /// engine; free space, then reopen.
    #[error("no space left: {0}")]
    NoSpace(String),
    /// RocksDB was busy: it timed out or asked to try again (`Busy`,
    /// `TryAgain`, `TimedOut`). Nothing was done; the operation may be
    /// retried.
    #[error("storage busy: {0}")]
    Busy(String),
    /// A write failed after it may have reached the WAL; the engine accepts
    /// no more writes until it is reopened (state on disk is then recovered).
    #[error("engine is poisoned by an earlier failed write; reopen it")]
    Poisoned,
    /// The key already holds another CRDT type.
    #[error(
        "wrong type for key: it holds {}, the operation is for {}",
        stored.with_article(),
        requested.with_article()
    )]
    WrongType {
        /// The type the key holds.
        stored: CrdtType,
        /// The type the operation needs.
        requested: CrdtType,
    },
    /// A typed read (counter value, set members, register, MV siblings)
    /// of a key that holds a type it cannot read.
    #[error(
        "wrong type for key: it holds {}, which cannot be read as {expected}",
        stored.with_article()
    )]
    WrongReadType {
        /// The type the key holds.
        stored: CrdtType,
        /// What the read reads, for example "a counter (G-Counter or
        /// PN-Counter)".
        expected: &'static str,
    },
    /// The key is longer than [`crate::MAX_KEY_LEN`].
    #[error("key of {len} bytes exceeds the limit of {max}")]
    KeyTooLarge {
        /// Key length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value or element is longer than [`crate::MAX_VALUE_LEN`].
    #[error("value of {len} bytes exceeds the limit of {max}")]
    ValueTooLarge {
        /// Value length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The key's state would be (or, for a store written before this
    /// limit was enforced, is) larger than [`crate::codec::MAX_STATE_LEN`]
    /// once encoded. A write that returns it changed nothing; a read that
    /// returns it concerns this key only.
    #[error(
        "state of key {} is {size} bytes, over the limit of {max}",
        KeyDisplay(key)
    )]
    StateTooLarge {
        /// The key.
        key: Vec<u8>,
        /// The encoded size the state would have (for a stored state that
        /// cannot be decoded within the limit: the bytes stored for it).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The pending area (deltas waiting for their causal dependencies) is
    /// full: the merge that returns it changed nothing. Run an
    /// anti-entropy session (or deliver the missing deltas) to drain it.
    #[error(
        "the pending area is full: {entries} entries of {bytes} bytes with this one, \
         limits {max_entries} entries and {max_bytes} bytes"
    )]
    PendingFull {
        /// Entries the area would hold with the refused ones.
        entries: u64,
        /// Bytes it would hold.
        bytes: u64,
        /// `Options::max_pending`.
        max_entries: u64,
        /// `Options::max_pending_bytes`.
        max_bytes: u64,
    },
    /// The cursor lacks an operation the changes feed's log no longer
    /// holds: run an anti-entropy session with the peer, then continue from
    /// its record.
    #[error("the cursor is too old: it lacks operation {needed}, and the log starts at {oldest}")]
    CursorTooOld {
        /// The oldest operation the cursor lacks.
        needed: u64,
        /// The oldest operation the log retains.
        oldest: u64,
    },
    /// Bytes given to the engine do not decode.
    #[error("invalid encoding: {0}")]
    Codec(#[from] CodecError),
    /// The replica id given at open differs from the one stored.
    #[error("replica id mismatch: the store belongs to {stored}, open asked for {given}")]
    ReplicaMismatch {
        /// Id persisted in the store.
        stored: ReplicaId,
        /// Id given in the options.
        given: ReplicaId,
    },
    /// The store was written by a format this build does not read.
    #[error("unsupported store format version {found} (this build reads {supported})")]
    UnsupportedFormat {
        /// Version found on disk.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// A counter entry would exceed 2^64 - 1.
    #[error("counter overflow")]
    Overflow,
    /// Persisted data is damaged: our own checks failed, or RocksDB
    /// reported `Corruption` (a block checksum mismatch, a damaged
    /// `MANIFEST` or `CURRENT`, ...).
    #[error("corruption: {0}")]
    Corruption(String),
    /// The embedder's merge function failed; nothing was written.
    #[error("merge function failed: {0}")]
    MergeFunction(String),
    /// The replica does not hold every dot of a session token yet (and no
    /// wait was asked for, or the wait timed out). Nothing changed; retry,
    /// wait longer, or read elsewhere.
    #[error("not yet visible: this replica lacks {missing} of the token's operations")]
    NotYetVisible {
        /// How many of the token's dots this replica does not hold.
        missing: u64,
    },
    /// An argument is out of its documented range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The engine is being closed: a [`crate::Engine::wait_for`] was
    /// interrupted by [`crate::Engine::interrupt_waits`], or would have had
    /// to wait after it. Nothing changed.
    #[error("the engine is being closed")]
    Closed,
}

impl From<rocksdb::Error> for Error {
    /// Keeps RocksDB's kind: see `Error::from_rocksdb`.
    fn from(e: rocksdb::Error) -> Self {
        let kind = e.kind();
        Error::from_rocksdb(kind, e.into_string())
    }
}

impl Error {
    /// The variant for a RocksDB error of `kind` with its full `message`
    /// (`Status::ToString()`: `"<code>: [<subcode>: ]<text>"`). The kind
    /// is the code; the subcode and the lock file only show in the text:
    ///
    /// - the directory lock: an `IOError` about the `LOCK` file, from
    ///   `LockFile` in RocksDB's POSIX file system — `"While lock file:
    ///   <dir>/LOCK: ..."` when another process holds it, `"lock hold by
    ///   current process ...: <dir>/LOCK: ..."` when this one does;
    /// - a full disk: an `IOError` with subcode `kNoSpace` (`"No space left
    ///   on device"`, from `ENOSPC`), or `kSpaceLimit` (`"Space limit
    ///   reached"`, the `SstFileManager` limit).
    pub(crate) fn from_rocksdb(kind: rocksdb::ErrorKind, message: String) -> Error {
        use rocksdb::ErrorKind as K;
        let detail = message
            .split_once(": ")
            .map_or(message.as_str(), |(_, rest)| rest);
        match kind {
            K::Corruption => Error::Corruption(message),
            K::IOError if is_lock_error(detail) => Error::Locked(message),
            K::IOError | K::Aborted
                if detail.starts_with("No space left on device")
                    || detail.starts_with("Space limit reached") =>
            {
                Error::NoSpace(message)
            }
            K::IOError => Error::Io(message),
            K::Busy | K::TryAgain | K::TimedOut => Error::Busy(message),
            _ => Error::Storage(message),
        }
    }

    /// The same error for another caller that waited on the failed
    /// operation (a follower of a group commit): same variant, `context`
    /// prefixed to the text.
    pub(crate) fn shared_copy(&self, context: &str) -> Error {
        match self {
            Error::Poisoned => Error::Poisoned,
            Error::Locked(m) => Error::Locked(format!("{context}: {m}")),
            Error::Io(m) => Error::Io(format!("{context}: {m}")),
            Error::NoSpace(m) => Error::NoSpace(format!("{context}: {m}")),
            Error::Busy(m) => Error::Busy(format!("{context}: {m}")),
            Error::Corruption(m) => Error::Corruption(format!("{context}: {m}")),
            other => Error::Storage(format!("{context}: {other}")),
        }
    }
}

/// Whether an `IOError`'s text is about RocksDB's directory lock: it names
/// the `LOCK` file, in the context `LockFile` gives.
fn is_lock_error(detail: &str) -> bool {
    let about_lock = detail.starts_with("While lock file")
        || detail.starts_with("lock hold by current process")
        || detail.starts_with("while open a file for lock");
    about_lock && (detail.contains("/LOCK") || detail.contains("\\LOCK"))
}

/// Shows a key in messages: printable ASCII as is, other bytes as `\xNN`,
/// at most 64 bytes of it.
pub(crate) struct KeyDisplay<'a>(pub(crate) &'a [u8]);

impl std::fmt::Display for KeyDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 64;
        f.write_str("\"")?;
        for &b in self.0.iter().take(SHOWN) {
            match b {
                b'"' | b'\\' => write!(f, "\\{}", b as char)?,
                0x20..=0x7e => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_str("\"")?;
        if self.0.len() > SHOWN {
            write!(f, " (first {SHOWN} of {} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use rocksdb::ErrorKind as K;

    fn classify(kind: K, message: &str) -> Error {
        Error::from_rocksdb(kind, message.to_string())
    }

    /// The texts are RocksDB 11's `Status::ToString()` for each case.
    #[test]
    fn rocksdb_errors_keep_their_kind() {
        let other_process =
            "IO error: While lock file: /tmp/s/LOCK: Resource temporarily unavailable";
        assert!(matches!(
            classify(K::IOError, other_process),
            Error::Locked(_)
        ));
        let this_process = "IO error: lock hold by current process, acquire time 1764140000 \
                            acquiring thread 140: /tmp/s/LOCK: No locks available";
        assert!(matches!(
            classify(K::IOError, this_process),
            Error::Locked(_)
        ));
        let full = "IO error: No space left on device: While appending to file: \
                    /tmp/s/000012.log: No space left on device";
        assert!(matches!(classify(K::IOError, full), Error::NoSpace(_)));
        let limit = "IO error: Space limit reached: Max allowed space was reached";
        assert!(matches!(classify(K::IOError, limit), Error::NoSpace(_)));
        let io = "IO error: While fsync: a file descriptor: Input/output error";
        assert!(matches!(classify(K::IOError, io), Error::Io(_)));
        // A file merely named LOCK-something in another context is no lock.
        let named = "IO error: While open a file for reading: /tmp/LOCKS/000001.sst: \
                     No such file or directory";
        assert!(matches!(classify(K::IOError, named), Error::Io(_)));
        let corrupt = "Corruption: block checksum mismatch: stored = 1, computed = 2";
        assert!(matches!(
            classify(K::Corruption, corrupt),
            Error::Corruption(_)
        ));
        for (k, m) in [
            (K::Busy, "Resource busy: "),
            (K::TryAgain, "Operation failed. Try again.: "),
            (K::TimedOut, "Operation timed out: Timeout Acquiring Mutex"),
        ] {
            assert!(matches!(classify(k, m), Error::Busy(_)), "{m}");
        }
        let missing =
            "Invalid argument: /tmp/x/CURRENT: does not exist (create_if_missing is false)";
        assert!(matches!(
            classify(K::InvalidArgument, missing),
            Error::Storage(_)
        ));
        let e = classify(K::IOError, full);
        assert!(e.to_string().contains("No space left on device"), "{e}");
    }

    #[test]
    fn a_shared_copy_keeps_the_variant() {
        let e = Error::NoSpace("IO error: No space left on device".into());
        let c = e.shared_copy("group commit failed");
        assert!(matches!(&c, Error::NoSpace(m) if m.starts_with("group commit failed: IO")));
        assert!(matches!(Error::Poisoned.shared_copy("x"), Error::Poisoned));
        assert!(matches!(
            Error::Overflow.shared_copy("x"),
            Error::Storage(_)
        ));
    }
}
