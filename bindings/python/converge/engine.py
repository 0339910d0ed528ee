"""``Engine``: an open replica store, and ``KeyIterator`` over its keys.

The C engine handle may be used by any number of threads at once, and
``cvg_engine_close`` may run while other threads are inside calls on it:
the handle is a name the library never frees, so a call that read the
pointer just before ``close()`` cleared it gets ``CVG_STATUS_CLOSED``
(raised as ``ClosedError``) or finishes normally, and the store closes when
the last such call returns. Calls therefore only read ``self._ptr``: no
in-flight bookkeeping, no waiting in ``close()``.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
import uuid
import weakref
from ctypes import byref, c_bool, c_size_t, c_uint8, c_uint64, c_void_p, string_at
from typing import TYPE_CHECKING, Any, Iterator, Optional, Union

from . import _ffi
from ._ffi import Bytes, RootStruct, Slice, lib, take_bytes
from ._handle import BytesLike, ManagedHandle, as_bytes, as_replica_id, as_u64
from .enums import CrdtType, Durability, SyncOutcome
from .errors import ClosedError, InvalidArgumentError, error
from .feed import FeedMethods
from .gc import DeleteMethods
from .types import Root, VerifyReport

if TYPE_CHECKING:
    from .batch import Batch
    from .sync import SyncSession
    from .crdts import (
        Counter,
        FWWRegister,
        GSet,
        LWWRegister,
        MVRegister,
        ORSet,
        PNCounter,
        TwoPSet,
    )

_engine_close = lib.cvg_engine_close
_CLOSED = 21  # CVG_STATUS_CLOSED
_INVALID_ARGUMENT = 1  # CVG_STATUS_INVALID_ARGUMENT
_engine_context = lib.cvg_engine_context
_engine_wait_for = lib.cvg_engine_wait_for
_NOT_YET_VISIBLE = 18  # CVG_STATUS_NOT_YET_VISIBLE
#: The longest single C wait of ``Engine.wait_for``, in seconds.
_WAIT_SLICE = 0.2
_iter_next = lib.cvg_iter_next
_iter_free = lib.cvg_iter_free

#: ``CVG_CRDT_*`` number -> its ``CrdtType`` (``None`` for ``CVG_CRDT_NONE``,
#: a key never written): one dict lookup on the iteration path.
CRDT_TYPES_BY_NUMBER: dict[int, Optional[CrdtType]] = {0: None, **{t.number: t for t in CrdtType}}


def crdt_type(n: int) -> Optional[CrdtType]:
    """The ``CrdtType`` of a ``CVG_CRDT_*`` number (``None`` for NONE)."""
    try:
        return CRDT_TYPES_BY_NUMBER[n]
    except KeyError:
        return CrdtType.from_number(n)  # raises ValueError with the number


def _close_quietly(ptr: int) -> None:
    """Finalizer: close an engine nobody closed (its status is lost)."""
    _engine_close(ptr)


def _open_options(
    replica_id: Any, durability: Union[Durability, str], settings: dict[str, Any]
) -> int:
    """A new ``cvg_options_t`` with the given settings (caller frees it)."""
    if durability not in _ffi.DURABILITY:
        raise InvalidArgumentError(
            f"durability must be one of {sorted(_ffi.DURABILITY)}, got {durability!r}"
        )
    opts: int = lib.cvg_options_new()
    try:
        calls: list[tuple[Any, tuple[Any, ...]]] = [
            (lib.cvg_options_set_durability, (_ffi.DURABILITY[durability],))
        ]
        if replica_id is not None:
            rid = as_replica_id(replica_id, "replica_id")
            calls.append((lib.cvg_options_set_replica_id, (rid, len(rid))))
        for name, value in settings.items():
            if value is not None:
                calls.append((getattr(lib, f"cvg_options_set_{name}"), (value,)))
        for fn, args in calls:
            try:
                rc = fn(opts, *args)
            except ctypes.ArgumentError as e:
                raise TypeError(f"{fn.__name__}: {e}") from None
            if rc:
                raise error(rc)
    except BaseException:
        lib.cvg_options_free(opts)
        raise
    return opts


class Engine(FeedMethods, DeleteMethods, ManagedHandle):
    """An open replica store (a RocksDB directory).

    ``with converge.Engine(path, replica_id=..., durability="buffered") as db:``
    opens or creates the store and closes it on exit. One engine may be
    shared by any number of threads. Keys and values may be ``bytes``,
    ``bytearray``, ``memoryview`` or ``str`` (encoded as UTF-8); everything
    read back is ``bytes``. Local operations return their delta: the bytes
    to pass to ``merge(key, delta)`` on the other replicas.

    Options (``None`` keeps the engine's default): ``replica_id`` (16 bytes;
    an ``int`` in 0..2**128-1, stored as its 16 big-endian bytes; or a
    ``uuid.UUID``; default: the stored one, generated at first open),
    ``durability`` (a ``Durability``, or its string ``"sync"``,
    ``"buffered"`` or ``"none"``),
    ``create_if_missing``, ``block_cache_bytes``, ``write_buffer_bytes``,
    ``background_jobs``, ``compression``, ``bloom_bits_per_key``,
    ``lock_stripes``, ``anti_entropy`` (maintain the anti-entropy tree;
    without it ``root``, ``verify`` and ``settle`` raise
    ``InvalidArgumentError``), ``max_successive_merges``,
    ``type_cache_entries``, ``state_cache_bytes`` (OR-Set and MV-register
    states the write path keeps decoded: their estimated memory, default
    64 MiB; 0 disables); for causal delivery and the changes feed (see
    ``converge.feed``): ``changes_feed`` (keep the log of local operations,
    default true; without it ``changes_since`` and ``feed_info`` raise
    ``InvalidArgumentError``, while the peer calls still keep the
    membership deletes are collected by: see ``converge.gc``),
    ``feed_retain_bytes`` (log bytes
    kept even for peers that have not acknowledged, default 64 MiB),
    ``max_pending`` and ``max_pending_bytes`` (the pending area's bounds,
    default 100,000 entries and 256 MiB; past them ``PendingFullError``).
    """

    def __init__(
        self,
        path: Union[str, bytes, "os.PathLike[Any]"],
        *,
        replica_id: Union[bytes, bytearray, memoryview, int, uuid.UUID, None] = None,
        durability: Union[Durability, str] = Durability.BUFFERED,
        create_if_missing: Optional[bool] = None,
        block_cache_bytes: Optional[int] = None,
        write_buffer_bytes: Optional[int] = None,
        background_jobs: Optional[int] = None,
        compression: Optional[bool] = None,
        bloom_bits_per_key: Optional[float] = None,
        lock_stripes: Optional[int] = None,
        anti_entropy: Optional[bool] = None,
        max_successive_merges: Optional[int] = None,
        type_cache_entries: Optional[int] = None,
        state_cache_bytes: Optional[int] = None,
        changes_feed: Optional[bool] = None,
        feed_retain_bytes: Optional[int] = None,
        max_pending: Optional[int] = None,
        max_pending_bytes: Optional[int] = None,
    ) -> None:
        # Key iterators and sync sessions: they keep the C store open, so
        # close() closes them first.
        self._children: "weakref.WeakSet[ManagedHandle]" = weakref.WeakSet()
        self._close_lock = threading.Lock()
        self._ptr = None
        raw_path = os.fsencode(os.fspath(path))
        if b"\0" in raw_path:
            raise InvalidArgumentError("path contains a NUL byte")
        settings = {
            "create_if_missing": create_if_missing,
            "block_cache_bytes": block_cache_bytes,
            "write_buffer_bytes": write_buffer_bytes,
            "background_jobs": background_jobs,
            "compression": compression,
            "bloom_bits_per_key": bloom_bits_per_key,
            "lock_stripes": lock_stripes,
            "anti_entropy": anti_entropy,
            "max_successive_merges": max_successive_merges,
            "type_cache_entries": type_cache_entries,
            "state_cache_bytes": state_cache_bytes,
            "changes_feed": changes_feed,
        }
        # ctypes would wrap a negative number around: checked here.
        for name, limit in (
            ("feed_retain_bytes", feed_retain_bytes),
            ("max_pending", max_pending),
            ("max_pending_bytes", max_pending_bytes),
        ):
            settings[name] = None if limit is None else as_u64(limit, name)
        opts = _open_options(replica_id, durability, settings)
        out = c_void_p()
        try:
            rc = lib.cvg_engine_open(raw_path, opts, byref(out))
            if rc:
                raise error(rc)
        finally:
            lib.cvg_options_free(opts)
        super().__init__(out.value, _close_quietly)  # type: ignore[arg-type]
        self.path = os.fsdecode(raw_path)
        rid = (c_uint8 * 16)()
        self._call(lib.cvg_engine_replica_id, rid)
        self._replica_id = bytes(rid)

    # -- calls ------------------------------------------------------------------

    def _call(self, fn: Any, *args: Any) -> None:
        """Call ``fn(engine, *args)``; raise on failure (``ClosedError`` if
        the engine is closed, here or on another thread meanwhile)."""
        ptr = self._ptr
        if ptr is None:
            raise ClosedError("Engine is closed")
        rc = fn(ptr, *args)
        if rc:
            raise error(rc)

    def close(self) -> None:
        """Close the engine: close the key iterators and sync sessions
        still open, then the engine. Safe while other threads are inside
        calls on it: those calls finish, calls made afterwards raise
        ``ClosedError``, and the store (the directory lock, the persisted
        anti-entropy tree) is released when the last of them returns. A
        second call does nothing. May be called from inside a merge
        function (``MVRegister.resolve``): the resolution finishes first.
        Raises ``PoisonedError`` if an earlier write failed (the data is
        recovered at the next open); the engine is closed either way."""
        with self._close_lock:
            ptr = self._ptr
            if ptr is None:
                return
            self._ptr = None
            children = list(self._children)
        for child in children:
            child.close()
        self._finalizer.detach()
        rc = _engine_close(ptr)
        # CLOSED: another thread closed it first (its finalizer cannot: we
        # detached it). INVALID_ARGUMENT: an iterator or session created by
        # a call that was in flight is still open; it closes itself (see
        # _adopt) and the store with it.
        if rc and rc not in (_CLOSED, _INVALID_ARGUMENT):
            raise error(rc)

    def _adopt(self, child: ManagedHandle) -> None:
        """Register a new key iterator or sync session, so that ``close()``
        closes it; if the engine was closed while the child was being
        created, close the child now and raise ``ClosedError``."""
        self._children.add(child)
        if self._ptr is None:
            child.close()
            raise ClosedError("Engine is closed")

    def __enter__(self) -> "Engine":
        self._handle()
        return self

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else "open"
        return f"<converge.Engine {self.path!r} {state}>"

    # -- identity and metadata ----------------------------------------------

    @property
    def replica_id(self) -> bytes:
        """This replica's 16-byte id."""
        return self._replica_id

    def version_vector(self) -> bytes:
        """The encoded version vector: what this replica has seen of every
        replica."""
        out = Bytes()
        self._call(lib.cvg_engine_version_vector, byref(out))
        return take_bytes(out)

    def key_type(self, key: BytesLike) -> Optional[CrdtType]:
        """The CRDT type of ``key`` (a ``CrdtType``, equal to its name:
        ``"gcounter"``, ``"orset"``, ...), ``None`` if it was never
        written or reads as absent (deleted)."""
        k = as_bytes(key, "key")
        out = c_uint8()
        self._call(lib.cvg_engine_key_type, k, len(k), byref(out))
        return crdt_type(out.value)

    def state_bytes(self, key: BytesLike) -> Optional[bytes]:
        """The encoded full state of ``key`` (for ``merge`` on a peer, or
        as ``delete(key, observed=...)``), ``None`` if it was never written.
        A deleted key whose tombstone is not collected yet has a state: its
        tombstone, which peers need."""
        k = as_bytes(key, "key")
        found, out = c_bool(), Bytes()
        self._call(lib.cvg_engine_state_bytes, k, len(k), byref(found), byref(out))
        data = take_bytes(out)
        return data if found.value else None

    def merge(self, key: BytesLike, data: BytesLike) -> None:
        """Join a peer's delta or full state ``data`` into ``key``.
        Idempotent and order-insensitive. ``CorruptInputError`` if the bytes
        do not decode, ``WrongTypeError`` if they are of another type than
        the key holds; nothing is written then."""
        k, d = as_bytes(key, "key"), as_bytes(data, "data")
        self._call(lib.cvg_engine_merge, k, len(k), d, len(d))

    # -- session tokens -------------------------------------------------------

    def context(self) -> bytes:
        """This replica's causal record as a session token: every operation
        it holds (its own, and the peers' deltas it merged). Taken after a
        read, it is a token of what that read saw: pass it to ``wait_for``
        on another replica to read there at least as much (monotonic
        reads). A full state merged by hand (``merge`` of ``state_bytes``)
        adds no operation to the record; a sync session that ends
        ``converged`` or ``equal`` adds the peer's record."""
        out = Bytes()
        self._call(_engine_context, byref(out))
        return take_bytes(out)

    def wait_for(self, token: BytesLike, timeout: Optional[float] = None) -> None:
        """Return once this replica holds every operation of ``token`` (from
        ``context()``, ``delta_token``, ``Delta.token``, ``DeltaList.token``
        or ``join_tokens``; ``b""`` is the empty token): reads afterwards
        see its effects. ``timeout=None`` (or 0) does not wait; otherwise
        wait at most ``timeout`` seconds (``math.inf``: no limit). Raises
        ``NotYetVisibleError`` if the replica still lacks some (the message
        says how many), ``CorruptInputError`` if the token does not decode.

        The GIL is released during the wait, which is woken by the commits
        that grow the record (writes, merges of deltas), not by polling.
        ``close()`` on another thread wakes it: it then raises
        ``ClosedError``. The wait runs in slices of at most 0.2 s so that
        ``KeyboardInterrupt`` is not held up by a long wait.

        A session read is this wait, then ``context()``, then the read:
        the context is a token of at least what the read saw."""
        t = as_bytes(token, "token")
        if timeout is None:
            self._call(_engine_wait_for, t, len(t), 0)
            return
        seconds = float(timeout)
        if not seconds >= 0:  # negative or NaN
            raise InvalidArgumentError(f"timeout must be >= 0 seconds, got {timeout!r}")
        deadline = time.monotonic() + seconds
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            step = min(remaining, _WAIT_SLICE)
            ptr = self._handle()
            rc = _engine_wait_for(ptr, t, len(t), math.ceil(step * 1000))
            if not rc:
                return
            if rc != _NOT_YET_VISIBLE or step >= remaining:
                raise error(rc)

    def token_missing(self, token: BytesLike) -> int:
        """How many operations of ``token`` this replica does not hold yet
        (0: ``wait_for`` returns at once)."""
        t = as_bytes(token, "token")
        out = c_uint64()
        self._call(lib.cvg_engine_token_missing, t, len(t), byref(out))
        return out.value

    # -- anti-entropy and maintenance ---------------------------------------

    def settle(self) -> int:
        """Fold the keys written since the last settle into the
        anti-entropy tree; returns how many were folded."""
        out = c_size_t()
        self._call(lib.cvg_engine_settle, byref(out))
        return out.value

    def unsettled_keys(self) -> int:
        """Keys written but not yet folded into the anti-entropy tree (a
        background thread folds them within about 20 ms of a pause in
        writing; ``settle()`` and ``root()`` fold the rest). A key written
        more than once since that thread last looked (it looks every 20 ms)
        counts once per write until it next looks."""
        out = c_size_t()
        self._call(lib.cvg_engine_unsettled_keys, byref(out))
        return out.value

    def root(self) -> Root:
        """The anti-entropy tree's root (settles first): equal roots mean
        equal data."""
        out = RootStruct()
        self._call(lib.cvg_engine_root, byref(out))
        return Root(bytes(out.hash), out.count)

    def verify(self) -> VerifyReport:
        """Recompute the anti-entropy tree and compare it with the
        maintained one."""
        ok, keys = c_bool(), c_uint64()
        self._call(lib.cvg_engine_verify, byref(ok), byref(keys))
        return VerifyReport(ok.value, keys.value)

    def flush(self) -> None:
        """Flush memtables to table files (a checkpoint)."""
        self._call(lib.cvg_engine_flush)

    def sync_wal(self) -> None:
        """Fsync the log: earlier buffered writes survive power loss."""
        self._call(lib.cvg_engine_sync_wal)

    # -- children -------------------------------------------------------------

    def keys(self, prefix: BytesLike = b"") -> "KeyIterator":
        """An iterator of ``(key, CrdtType)`` over the keys starting with
        ``prefix``, in byte order, over a snapshot taken now. Keys that
        read as absent (deleted) are skipped."""
        return KeyIterator(self, as_bytes(prefix, "prefix"))

    def stored_keys(self, prefix: BytesLike = b"") -> "KeyIterator":
        """As ``keys()``, but also the keys that read as absent (deleted,
        their tombstones not collected yet), with the type they keep:
        every key with a stored state."""
        return KeyIterator(self, as_bytes(prefix, "prefix"), stored=True)

    def batch(self, *, deltas: bool = True) -> "Batch":
        """A new atomic batch. ``with db.batch() as b:`` commits it on a
        normal exit (``b.deltas`` then holds the deltas) and discards it on
        an exception. ``deltas=False`` skips encoding the deltas."""
        from .batch import Batch

        self._handle()
        return Batch(self, deltas=deltas)

    def sync_initiate(
        self,
        *,
        message_budget: Optional[int] = None,
        max_message: Optional[int] = None,
        use_iblt: Optional[bool] = None,
    ) -> "SyncSession":
        """Start a sync session as the initiator; send its
        ``first_message`` to the peer. The limits default to the library's
        (see ``cvg_sync_config_t``)."""
        from .sync import SyncSession, sync_config

        return SyncSession(self, True, sync_config(message_budget, max_message, use_iblt))

    def sync_respond(
        self,
        *,
        message_budget: Optional[int] = None,
        max_message: Optional[int] = None,
        use_iblt: Optional[bool] = None,
    ) -> "SyncSession":
        """Create the responder side of a sync session: pass it the
        initiator's first message with ``handle()``."""
        from .sync import SyncSession, sync_config

        return SyncSession(self, False, sync_config(message_budget, max_message, use_iblt))

    def sync_with(
        self,
        other: "Engine",
        *,
        message_budget: Optional[int] = None,
        max_message: Optional[int] = None,
        use_iblt: Optional[bool] = None,
    ) -> tuple[SyncOutcome, SyncOutcome]:
        """Run a whole sync session with another engine of this process
        (this one initiates); returns both sides' outcomes, this one's
        first: ``(EQUAL, EQUAL)`` when nothing differed,
        ``(CONVERGED, CONVERGED)`` after a repair, ``(DIVERGED, DIVERGED)``
        if a write landed during the session (sync again). A
        failure raises instead (``SyncProtocolError``, ...)."""
        from .sync import sync_config

        if other is self:
            raise InvalidArgumentError("an engine cannot sync with itself")
        config = sync_config(message_budget, max_message, use_iblt)
        oa, ob = c_uint8(), c_uint8()
        self._call(lib.cvg_sync_engines, other._handle(), byref(config), byref(oa), byref(ob))
        return SyncOutcome.from_number(oa.value), SyncOutcome.from_number(ob.value)

    def counter(self, key: BytesLike) -> "Counter":
        """The G-Counter at ``key``."""
        from .crdts import Counter

        return Counter(self, key)

    def pncounter(self, key: BytesLike) -> "PNCounter":
        """The PN-Counter at ``key``."""
        from .crdts import PNCounter

        return PNCounter(self, key)

    def gset(self, key: BytesLike) -> "GSet":
        """The G-Set at ``key``."""
        from .crdts import GSet

        return GSet(self, key)

    def twopset(self, key: BytesLike) -> "TwoPSet":
        """The 2P-Set at ``key``."""
        from .crdts import TwoPSet

        return TwoPSet(self, key)

    def orset(self, key: BytesLike) -> "ORSet":
        """The OR-Set (add wins) at ``key``."""
        from .crdts import ORSet

        return ORSet(self, key)

    def lww(self, key: BytesLike) -> "LWWRegister":
        """The last-writer-wins register at ``key``."""
        from .crdts import LWWRegister

        return LWWRegister(self, key)

    def fww(self, key: BytesLike) -> "FWWRegister":
        """The first-writer-wins register at ``key``."""
        from .crdts import FWWRegister

        return FWWRegister(self, key)

    def mvreg(self, key: BytesLike) -> "MVRegister":
        """The multi-value register at ``key``."""
        from .crdts import MVRegister

        return MVRegister(self, key)


class KeyIterator(ManagedHandle):
    """Iterates ``(key, CrdtType)`` pairs over a snapshot of an engine's
    keys. Closed by ``close()``, by ``with``, when exhausted, or by the
    engine's ``close()``; keeps its engine alive. One thread at a time
    advances it (a lock enforces that)."""

    def __init__(self, db: Engine, prefix: bytes, *, stored: bool = False) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._exhausted = False
        out = c_void_p()
        fn = lib.cvg_engine_stored_keys if stored else lib.cvg_engine_keys
        db._call(fn, prefix, len(prefix), byref(out))
        super().__init__(out.value, _iter_free)  # type: ignore[arg-type]
        db._adopt(self)

    def close(self) -> None:
        """Free the C iterator (waits for a ``next`` running on another
        thread). A second call does nothing."""
        with self._lock:
            super().close()

    def __iter__(self) -> Iterator[tuple[bytes, CrdtType]]:
        return self

    def __enter__(self) -> "KeyIterator":
        self._handle()
        return self

    def __next__(self) -> tuple[bytes, CrdtType]:
        with self._lock:
            if self._exhausted:
                raise StopIteration
            ptr = self._handle()
            has, key, ty = c_bool(), Slice(), c_uint8()
            rc = _iter_next(ptr, byref(has), byref(key), byref(ty))
            if rc:
                raise error(rc)
            if not has.value:
                self._exhausted = True
                self._release()
                raise StopIteration
            k = string_at(key.ptr, key.len) if key.len else b""
            t = CRDT_TYPES_BY_NUMBER.get(ty.value) or CrdtType.from_number(ty.value)
            return k, t
