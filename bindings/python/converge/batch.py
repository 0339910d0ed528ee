"""``Batch``: operations collected in a C batch and applied atomically.

Single operations cost one foreign call each. The ``*_many`` methods convert
every item first (so bad input raises before anything is added), pack the
keys and values into one buffer and the lengths and amounts into arrays, and
add them all in one call (``cvg_batch_*_many``); ``commit()`` reads every
delta back in one call (``cvg_deltas_packed``).
"""

from __future__ import annotations

import threading
from array import array
from ctypes import POINTER, byref, c_int64, c_size_t, c_uint64, c_void_p, sizeof, string_at
from typing import Any, Iterable, Optional

from ._ffi import Slice, Span, lib
from ._handle import U64_MAX, BytesLike, ManagedHandle, as_bytes, as_i64, as_u64
from .engine import Engine
from .errors import ClosedError, error
from .types import EMPTY_DELTAS, DeltaList

_batch_increment = lib.cvg_batch_increment
_batch_pn_add = lib.cvg_batch_pn_add
_batch_merge = lib.cvg_batch_merge
_increment_many = lib.cvg_batch_increment_many
_pn_add_many = lib.cvg_batch_pn_add_many
_merge_many = lib.cvg_batch_merge_many
_deltas_packed = lib.cvg_deltas_packed


class Batch(ManagedHandle):
    """An ordered list of operations, written all or nothing by ``commit()``;
    later operations on a key see earlier ones. Keeps its engine alive.

    ``with db.batch() as b: b.increment(k, 1); ...`` commits on a normal exit
    (the deltas are then in ``b.deltas``) and discards the batch if the block
    raises. Adding is serialized by a lock; one thread at a time should
    build a given batch.
    """

    def __init__(self, db: Engine, *, deltas: bool = True) -> None:
        self._db = db
        self._want_deltas = deltas
        self._lock = threading.Lock()
        #: The deltas of the last ``commit()`` (empty with ``deltas=False``).
        self.deltas: DeltaList = EMPTY_DELTAS
        super().__init__(lib.cvg_batch_new(), lib.cvg_batch_free)

    def close(self) -> None:
        """Free the batch without writing it. A second call does nothing."""
        with self._lock:
            super().close()

    def __enter__(self) -> "Batch":
        self._handle()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.commit()
        finally:
            self.close()

    def __len__(self) -> int:
        with self._lock:
            return int(lib.cvg_batch_len(self._handle()))

    def _add(self, fn: Any, key: BytesLike, *args: Any) -> None:
        k = key if type(key) is bytes else as_bytes(key, "key")
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                raise ClosedError("Batch is closed")
            rc = fn(ptr, k, len(k), *args)
        if rc:
            raise error(rc)

    # -- operations -----------------------------------------------------------

    def increment(self, key: BytesLike, n: int = 1) -> None:
        """G-Counter: add ``n`` (0..2**64-1) to ``key``."""
        # The hottest add: _add inlined, the common arguments checked inline.
        if type(n) is not int or not 0 <= n <= U64_MAX:
            n = as_u64(n)
        k = key if type(key) is bytes else as_bytes(key, "key")
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                raise ClosedError("Batch is closed")
            rc = _batch_increment(ptr, k, len(k), n)
        if rc:
            raise error(rc)

    def pn_add(self, key: BytesLike, n: int) -> None:
        """PN-Counter: add ``n`` (negative subtracts) to ``key``."""
        self._add(_batch_pn_add, key, as_i64(n))

    def gset_add(self, key: BytesLike, elem: BytesLike) -> None:
        """G-Set: add ``elem`` to ``key``."""
        e = as_bytes(elem, "elem")
        self._add(lib.cvg_batch_gset_add, key, e, len(e))

    def twop_add(self, key: BytesLike, elem: BytesLike) -> None:
        """2P-Set: add ``elem`` to ``key``."""
        e = as_bytes(elem, "elem")
        self._add(lib.cvg_batch_twop_add, key, e, len(e))

    def twop_remove(self, key: BytesLike, elem: BytesLike) -> None:
        """2P-Set: remove ``elem`` from ``key`` forever."""
        e = as_bytes(elem, "elem")
        self._add(lib.cvg_batch_twop_remove, key, e, len(e))

    def orset_add(self, key: BytesLike, elem: BytesLike) -> None:
        """OR-Set: add ``elem`` to ``key``."""
        e = as_bytes(elem, "elem")
        self._add(lib.cvg_batch_orset_add, key, e, len(e))

    def orset_remove(
        self, key: BytesLike, elem: BytesLike, context: Optional[BytesLike] = None
    ) -> None:
        """OR-Set: remove ``elem``: every add observed when the batch is
        applied, or only those within ``context`` (from a set read)."""
        e = as_bytes(elem, "elem")
        if context is None:
            self._add(lib.cvg_batch_orset_remove, key, e, len(e))
        else:
            c = as_bytes(context, "context")
            self._add(lib.cvg_batch_orset_remove_observed, key, e, len(e), c, len(c))

    def lww_set(self, key: BytesLike, value: BytesLike) -> None:
        """LWW register: write ``value`` to ``key``."""
        v = as_bytes(value)
        self._add(lib.cvg_batch_lww_set, key, v, len(v))

    def fww_set(self, key: BytesLike, value: BytesLike) -> None:
        """FWW register: write ``value`` to ``key``."""
        v = as_bytes(value)
        self._add(lib.cvg_batch_fww_set, key, v, len(v))

    def mv_write(
        self, key: BytesLike, value: BytesLike, context: Optional[BytesLike] = None
    ) -> None:
        """MV register: write ``value`` to ``key`` based on ``context`` (from
        an MV read; none: a blind write)."""
        v = as_bytes(value)
        c = b"" if context is None else as_bytes(context, "context")
        self._add(lib.cvg_batch_mv_write, key, v, len(v), c, len(c))

    def delete(self, key: BytesLike, observed: Optional[BytesLike] = None) -> None:
        """Delete ``key`` (any type): what it holds when the batch is
        applied, earlier operations of the batch included; or, with
        ``observed`` (an earlier ``Engine.state_bytes(key)``), only what
        that state holds. A delete with nothing to delete does nothing and
        has no delta in ``deltas``. ``observed`` is decoded now:
        ``CorruptInputError`` if it does not, and nothing is added; a state
        of another type makes the commit raise ``WrongTypeError``."""
        if observed is None:
            self._add(lib.cvg_batch_delete, key)
        else:
            o = as_bytes(observed, "observed")
            self._add(lib.cvg_batch_delete_observed, key, o, len(o))

    def merge(self, key: BytesLike, data: BytesLike) -> None:
        """Join a peer's delta or state ``data`` into ``key``; bytes that do
        not decode make ``commit()`` raise ``CorruptInputError``."""
        d = as_bytes(data, "data")
        self._add(_batch_merge, key, d, len(d))

    # -- bulk forms -----------------------------------------------------------

    def increment_many(self, items: Iterable[tuple[BytesLike, int]]) -> None:
        """Add a G-Counter increment for every ``(key, n)`` pair, in one
        foreign call."""
        keys: list[bytes] = []
        amounts: list[int] = []
        for k, n in items:
            keys.append(k if type(k) is bytes else as_bytes(k, "key"))
            amounts.append(n if type(n) is int and 0 <= n <= U64_MAX else as_u64(n))
        self._add_packed(_increment_many, keys, array("Q", amounts), c_uint64)

    def pn_add_many(self, items: Iterable[tuple[BytesLike, int]]) -> None:
        """Add a PN-Counter addition for every ``(key, n)`` pair, in one
        foreign call."""
        keys: list[bytes] = []
        amounts: list[int] = []
        for k, n in items:
            keys.append(as_bytes(k, "key"))
            amounts.append(as_i64(n))
        self._add_packed(_pn_add_many, keys, array("q", amounts), c_int64)

    def merge_many(self, items: Iterable[tuple[BytesLike, BytesLike]]) -> None:
        """Add a merge for every ``(key, data)`` pair (for example the
        ``Delta`` list another replica's ``commit()`` returned), in one
        foreign call."""
        keys: list[bytes] = []
        values: list[bytes] = []
        for k, d in items:
            keys.append(as_bytes(k, "key"))
            values.append(as_bytes(d, "data"))
        kblob, klens = _pack(keys)
        vblob, vlens = _pack(values)
        with self._lock:
            rc = _merge_many(
                self._handle(), kblob, len(kblob), klens, vblob, len(vblob), vlens, len(keys)
            )
        if rc:
            raise error(rc)

    def _add_packed(self, fn: Any, keys: list[bytes], amounts: "array[int]", ctype: Any) -> None:
        blob, lens = _pack(keys)
        n = len(keys)
        amts = (ctype * n).from_buffer(amounts) if n else None
        with self._lock:
            rc = fn(self._handle(), blob, len(blob), lens, amts, n)
        if rc:
            raise error(rc)

    # -- writing --------------------------------------------------------------

    def clear(self) -> None:
        """Remove every operation."""
        with self._lock:
            rc = lib.cvg_batch_clear(self._handle())
        if rc:
            raise error(rc)

    def commit(self) -> DeltaList:
        """Apply every operation atomically (all or none), then empty the
        batch for reuse. Returns the deltas of the local operations in batch
        order (merges produce none); also kept in ``self.deltas``."""
        db = self._db
        out = c_void_p()
        with self._lock:
            bptr = self._handle()
            rc = lib.cvg_engine_write(
                db._handle(), bptr, byref(out) if self._want_deltas else None
            )
            if rc:
                raise error(rc)
            deltas = _read_deltas(out.value) if self._want_deltas else EMPTY_DELTAS
            lib.cvg_batch_clear(bptr)
        self.deltas = deltas
        return deltas


def _pack(items: list[bytes]) -> tuple[bytes, Any]:
    """Items back to back in one buffer, and their lengths as a C array."""
    lens = array("Q", map(len, items))
    return b"".join(items), ((c_size_t * len(items)).from_buffer(lens) if items else None)


def _read_deltas(handle: Optional[int]) -> DeltaList:
    """Copy a ``cvg_deltas_t`` into a ``DeltaList`` (one foreign call, one
    copy of each packed buffer) and free it."""
    try:
        kbuf, dbuf = Slice(), Slice()
        kspans, dspans = POINTER(Span)(), POINTER(Span)()
        count = c_size_t()
        rc = _deltas_packed(
            handle, byref(kbuf), byref(kspans), byref(dbuf), byref(dspans), byref(count)
        )
        if rc:
            raise error(rc)
        n = count.value
        if n == 0:
            return EMPTY_DELTAS
        span_bytes = n * sizeof(Span)
        return DeltaList(
            string_at(kbuf.ptr, kbuf.len) if kbuf.len else b"",
            string_at(dbuf.ptr, dbuf.len) if dbuf.len else b"",
            string_at(kspans, span_bytes),
            string_at(dspans, span_bytes),
        )
    finally:
        lib.cvg_deltas_free(handle)
