"""The exception hierarchy, built from one table of C status codes.

Every failing ``cvg_`` call raises the class ``STATUS_ERRORS`` maps its
``cvg_status_t`` to, with the message ``cvg_last_error_message`` gives for
the calling thread, read right after the failing call. Wrong Python types
(an ``int`` where bytes are expected) raise the builtin ``TypeError``.
"""

from __future__ import annotations

import ctypes

from ._ffi import lib


class ConvergeError(Exception):
    """Base class of every error the package raises for the engine.

    ``status`` is the C status number (``None`` for errors that come from the
    bindings themselves, such as ``ClosedError``) and ``message`` the
    library's text.
    """

    #: The ``cvg_status_t`` name this class stands for (``None``: no status).
    c_name: str | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ClosedError(ConvergeError):
    """The engine, batch or iterator was closed before this use. Raised by
    the bindings themselves (``status`` is ``None``) for an object closed
    in Python, and for ``CVG_STATUS_CLOSED`` when the engine was closed by
    another thread while this call was on its way in (or, for
    ``Engine.wait_for``, while it waited)."""

    c_name = "CVG_STATUS_CLOSED"


class InvalidArgumentError(ConvergeError, ValueError):
    """An argument is out of its documented range."""

    c_name = "CVG_STATUS_INVALID_ARGUMENT"


class NullPointerError(ConvergeError):
    """A required pointer was NULL: a bug in the bindings, never user input."""

    c_name = "CVG_STATUS_NULL_POINTER"


class WrongTypeError(ConvergeError):
    """The key already holds another CRDT type than the operation is for."""

    c_name = "CVG_STATUS_WRONG_TYPE"


class KeyTooLargeError(ConvergeError, ValueError):
    """The key is longer than the engine's limit (64 KiB)."""

    c_name = "CVG_STATUS_KEY_TOO_LARGE"


class ValueTooLargeError(ConvergeError, ValueError):
    """A value or set element is longer than the engine's limit (16 MiB)."""

    c_name = "CVG_STATUS_VALUE_TOO_LARGE"


class CorruptInputError(ConvergeError, ValueError):
    """Bytes given to the engine (a delta, a state, a context) do not decode."""

    c_name = "CVG_STATUS_CORRUPT_INPUT"


class CorruptionError(ConvergeError):
    """Data persisted in the store is damaged: the engine's own checks
    failed, or RocksDB reported corruption (a block checksum mismatch, a
    damaged ``MANIFEST`` or ``CURRENT`` file, ...)."""

    c_name = "CVG_STATUS_CORRUPTION"


class StorageError(ConvergeError):
    """RocksDB reported an error. The subclasses keep RocksDB's kind
    (``LockedError``, ``StorageIOError``, ``BusyError``, ``NoSpaceError``);
    this class itself stands for the rest (an invalid RocksDB option, a
    missing store opened with ``create_if_missing=False``, ...). Damaged
    files are ``CorruptionError``."""

    c_name = "CVG_STATUS_STORAGE"


class LockedError(StorageError):
    """The store's directory is locked: another engine has it open, in
    this process or another. Nothing was opened; retry once it is closed."""

    c_name = "CVG_STATUS_LOCKED"


class StorageIOError(StorageError):
    """RocksDB reported an I/O error (a failed read, write or fsync, a file
    that vanished, ...), other than a full disk or a held lock. A write
    that raises it poisons the engine (``PoisonedError`` from then on):
    close and reopen. Not the builtin ``IOError`` (``OSError``)."""

    c_name = "CVG_STATUS_IO"


class BusyError(StorageError):
    """RocksDB was busy: it timed out or asked to try again. Nothing was
    done; the call may be retried."""

    c_name = "CVG_STATUS_BUSY"


class NoSpaceError(StorageError):
    """The disk (or RocksDB's space limit) is full. A write that raises it
    poisons the engine: free space, then close and reopen. Nothing
    acknowledged is lost."""

    c_name = "CVG_STATUS_NO_SPACE"


class PoisonedError(ConvergeError):
    """An earlier write failed: no more writes until the engine is reopened."""

    c_name = "CVG_STATUS_POISONED"


class ReplicaMismatchError(ConvergeError):
    """The replica id given at open differs from the one stored."""

    c_name = "CVG_STATUS_REPLICA_MISMATCH"


class UnsupportedFormatError(ConvergeError):
    """The store was written by a format version this build does not read."""

    c_name = "CVG_STATUS_UNSUPPORTED_FORMAT"


class CounterOverflowError(ConvergeError, ArithmeticError):
    """A counter would overflow (not the builtin ``OverflowError``)."""

    c_name = "CVG_STATUS_OVERFLOW"


class MergeFunctionError(ConvergeError):
    """The merge function given to ``MVRegister.resolve`` failed; nothing was
    written. An exception it raised is chained as ``__cause__``."""

    c_name = "CVG_STATUS_MERGE_FUNCTION"


class PanicError(ConvergeError):
    """A bug in the library: Rust code panicked (caught at the boundary)."""

    c_name = "CVG_STATUS_PANIC"


class OtherError(ConvergeError):
    """An engine error newer than this version of the C ABI."""

    c_name = "CVG_STATUS_OTHER"


class SyncProtocolError(ConvergeError):
    """A sync message out of sequence, of another session, or sent after the
    session ended; the session has ended (start a new one). A message
    refused because the session had already ended leaves its outcome as it
    was."""

    c_name = "CVG_STATUS_SYNC_PROTOCOL"


class StateTooLargeError(ConvergeError, ValueError):
    """The key's state would exceed the state size limit (64 MiB encoded)
    after this write, so nothing was written; or a read met a key that
    already holds more (a store written before the limit was enforced)."""

    c_name = "CVG_STATUS_STATE_TOO_LARGE"


class NotYetVisibleError(ConvergeError):
    """The replica does not hold every operation of a session token yet
    (``Engine.wait_for`` without a timeout, or the timeout passed first).
    Nothing changed: retry, wait longer, or read on another replica. The
    message says how many operations are missing."""

    c_name = "CVG_STATUS_NOT_YET_VISIBLE"


class PendingFullError(ConvergeError):
    """The pending area (deltas and pages of changes received before their
    causal dependencies) is full: the merge or page that raised it changed
    nothing. Deliver what the pending entries wait for (``Engine.pending()``
    says what) or run an anti-entropy session, then send it again. The
    limits are the ``max_pending`` and ``max_pending_bytes`` options."""

    c_name = "CVG_STATUS_PENDING_FULL"


class CursorTooOldError(ConvergeError):
    """``Engine.changes_since`` was given a cursor that lacks an operation
    the changes feed's log no longer holds (the message says which). Nothing
    changed: run an anti-entropy session with the peer (``sync_with`` or a
    ``SyncSession``), then continue the feed from the peer's
    ``context()``."""

    c_name = "CVG_STATUS_CURSOR_TOO_OLD"


class BehindHorizonError(ConvergeError):
    """A sync session was refused: the peer holds data but its causal
    record lacks deletes whose tombstones this replica already collected
    (``Engine.collect``). It was restored from an old copy of its
    directory, or missed deletes every member acknowledged; syncing it
    could bring purged keys back, so nothing was exchanged. Recovery:
    rebuild that replica from a live one (a new, empty store with a new
    replica id, synced from a live replica: a replica holding no data is
    always accepted), and on the other replicas retire the old id
    (``remove_peer``) and register the new one."""

    c_name = "CVG_STATUS_BEHIND_HORIZON"


#: The one table: C status number -> exception class.
STATUS_ERRORS: dict[int, type[ConvergeError]] = {
    1: InvalidArgumentError,
    2: NullPointerError,
    3: WrongTypeError,
    4: KeyTooLargeError,
    5: ValueTooLargeError,
    6: CorruptInputError,
    7: CorruptionError,
    8: StorageError,
    9: PoisonedError,
    10: ReplicaMismatchError,
    11: UnsupportedFormatError,
    12: CounterOverflowError,
    13: MergeFunctionError,
    14: PanicError,
    15: OtherError,
    16: SyncProtocolError,
    17: StateTooLargeError,
    18: NotYetVisibleError,
    19: PendingFullError,
    20: CursorTooOldError,
    21: ClosedError,
    22: LockedError,
    23: StorageIOError,
    24: BusyError,
    25: NoSpaceError,
    26: BehindHorizonError,
}

_last_error_message = lib.cvg_last_error_message
_status_name = lib.cvg_status_name


def last_error_message() -> str:
    """The calling thread's message for its last failed ``cvg_`` call."""
    n = _last_error_message(None, 0)
    if n == 0:
        return ""
    buf = ctypes.create_string_buffer(n + 1)
    _last_error_message(buf, n + 1)
    return buf.value.decode("utf-8", errors="replace")


def error(status: int) -> ConvergeError:
    """The exception for a failed call's ``status``. Call it right after the
    failing call, on the same thread, before any other ``cvg_`` call."""
    message = last_error_message()
    cls = STATUS_ERRORS.get(status, ConvergeError)
    if not message:
        message = _status_name(status).decode("ascii")
    return cls(message, status)
