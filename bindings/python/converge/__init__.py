"""Converge: a replication storage engine (CRDTs over RocksDB), from Python.

``converge.Engine`` opens a replica store; typed handles (``db.counter(k)``,
``db.orset(k)``, ``db.mvreg(k)``, ...) run operations and reads; every local
operation returns its delta, the bytes to ``merge`` into the other replicas.
Keys and values may be ``bytes``, ``bytearray``, ``memoryview`` or ``str``
(encoded as UTF-8); everything read back is ``bytes``. Errors are
``ConvergeError`` subclasses (see ``converge.errors``). Sync outcomes,
durabilities and CRDT types are the ``str`` enums ``SyncOutcome``,
``Durability`` and ``CrdtType``. Session tokens (``Engine.context()``,
``delta_token``, ``Delta.token``, ``join_tokens``, ``Engine.wait_for``) give
read-your-writes and monotonic reads across replicas. Deltas that arrive
before their causal dependencies wait in a pending area
(``Engine.pending()``); the changes feed (``Engine.changes_since``,
``Engine.apply_changes``, ``Delivery``) pushes a replica's operations to a
peer from a causal cursor (see ``converge.feed``). ``Engine.delete``
deletes a key of any type as a replicated operation; ``Engine.collect()``
forgets tombstones once every member (``register_peer``) has acknowledged
them (see ``converge.gc``).
"""

from ._ffi import lib as _lib
from .batch import Batch
from .crdts import (
    Counter,
    CrdtHandle,
    FWWRegister,
    GSet,
    LWWRegister,
    MVRegister,
    ORSet,
    PNCounter,
    TwoPSet,
)
from .engine import Engine, KeyIterator
from .enums import CrdtType, Delivery, Durability, SyncOutcome
from .errors import (
    STATUS_ERRORS,
    ClosedError,
    ConvergeError,
    CorruptInputError,
    CorruptionError,
    BehindHorizonError,
    BusyError,
    CounterOverflowError,
    CursorTooOldError,
    InvalidArgumentError,
    KeyTooLargeError,
    LockedError,
    MergeFunctionError,
    NoSpaceError,
    NotYetVisibleError,
    NullPointerError,
    OtherError,
    PanicError,
    PendingFullError,
    PoisonedError,
    ReplicaMismatchError,
    StateTooLargeError,
    StorageError,
    StorageIOError,
    SyncProtocolError,
    UnsupportedFormatError,
    ValueTooLargeError,
    WrongTypeError,
)
from .feed import FeedInfo, FeedPage, PendingInfo
from .gc import CollectReport, Member
from .limits import MAX_KEY_LEN, MAX_MESSAGE_LEN, MAX_STATE_LEN, MAX_VALUE_LEN
from .sync import SyncSession, SyncStats
from .tokens import delta_token, join_tokens
from .types import Delta, DeltaList, MVRead, RegisterValue, Root, SetRead, Sibling, Stamp, VerifyReport

#: The version of this package.
__version__ = "0.1.0"


def library_version() -> str:
    """The version ``cvg_version()`` of the loaded libconverge reports."""
    return _lib.version


def library_path() -> str:
    """The path of the loaded libconverge (the copy bundled in the package)."""
    return _lib.path


__all__ = [
    "Batch",
    "BehindHorizonError",
    "BusyError",
    "ClosedError",
    "CollectReport",
    "ConvergeError",
    "CorruptInputError",
    "CorruptionError",
    "Counter",
    "CounterOverflowError",
    "CrdtHandle",
    "CrdtType",
    "CursorTooOldError",
    "Delivery",
    "Delta",
    "DeltaList",
    "Durability",
    "Engine",
    "FWWRegister",
    "FeedInfo",
    "FeedPage",
    "GSet",
    "InvalidArgumentError",
    "KeyIterator",
    "KeyTooLargeError",
    "LockedError",
    "LWWRegister",
    "MVRead",
    "MVRegister",
    "Member",
    "MergeFunctionError",
    "NoSpaceError",
    "NotYetVisibleError",
    "NullPointerError",
    "MAX_KEY_LEN",
    "MAX_MESSAGE_LEN",
    "MAX_STATE_LEN",
    "MAX_VALUE_LEN",
    "ORSet",
    "OtherError",
    "PNCounter",
    "PanicError",
    "PendingFullError",
    "PendingInfo",
    "PoisonedError",
    "RegisterValue",
    "ReplicaMismatchError",
    "Root",
    "STATUS_ERRORS",
    "SetRead",
    "Sibling",
    "Stamp",
    "StateTooLargeError",
    "StorageError",
    "StorageIOError",
    "SyncProtocolError",
    "SyncSession",
    "SyncOutcome",
    "SyncStats",
    "TwoPSet",
    "UnsupportedFormatError",
    "ValueTooLargeError",
    "VerifyReport",
    "WrongTypeError",
    "delta_token",
    "join_tokens",
    "library_path",
    "library_version",
]
