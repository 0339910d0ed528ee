"""Typed handles: one class per CRDT, bound to one key of an engine.

A handle holds no C resource of its own; it keeps its engine alive, and
using it after the engine is closed raises ``ClosedError``. Local
operations return their delta (``bytes``) to ship to the peers.
"""

from __future__ import annotations

from ctypes import byref, c_bool, c_int64, c_void_p, string_at
from typing import Any, Callable, ClassVar, Optional

from ._ffi import MERGE_FN, I128, Bytes, SiblingStruct, Slice, StampStruct, lib, take_bytes
from ._handle import U64_MAX, BytesLike, as_bytes, as_i64, as_u64
from .engine import Engine
from .enums import CrdtType
from .errors import ClosedError, ConvergeError, MergeFunctionError, error
from .types import MVRead, RegisterValue, SetRead, Sibling, Stamp

_increment = lib.cvg_engine_increment
_bytes_free = lib.cvg_bytes_free
_pn_add = lib.cvg_engine_pn_add
_counter_value = lib.cvg_engine_counter_value
_OVERFLOW = 12  # CVG_STATUS_OVERFLOW
_MERGE_FUNCTION = 13  # CVG_STATUS_MERGE_FUNCTION


class CrdtHandle:
    """Base of the typed handles: an engine and a key."""

    __slots__ = ("_db", "_key")

    #: The ``CrdtType`` ``Engine.key_type`` reports for this CRDT (a ``str``:
    #: its name); empty on this base class.
    type_name: ClassVar[str] = ""

    def __init__(self, db: Engine, key: BytesLike) -> None:
        self._db = db
        self._key = as_bytes(key, "key")

    @property
    def key(self) -> bytes:
        """The key this handle is bound to."""
        return self._key

    @property
    def engine(self) -> Engine:
        """The engine this handle belongs to."""
        return self._db

    def state_bytes(self) -> Optional[bytes]:
        """The encoded full state (``None`` if never written)."""
        return self._db.state_bytes(self._key)

    def merge(self, data: BytesLike) -> None:
        """Join a peer's delta or state into this key."""
        self._db.merge(self._key, data)

    def __repr__(self) -> str:
        return f"<converge.{type(self).__name__} {self._key!r}>"

    def _op(self, fn: Any, *args: Any) -> bytes:
        """Run the local operation ``fn(engine, key, key_len, *args, &delta)``
        and return the delta."""
        ptr = self._db._ptr
        if ptr is None:
            raise ClosedError("Engine is closed")
        key = self._key
        out = Bytes()
        rc = fn(ptr, key, len(key), *args, out)
        if rc:
            raise error(rc)
        return take_bytes(out)

    def _value(self) -> int:
        """A counter value (int64, or the 128-bit read when it overflows)."""
        db, key = self._db, self._key
        out = c_int64()
        ptr = db._ptr
        if ptr is None:
            raise ClosedError("Engine is closed")
        rc = _counter_value(ptr, key, len(key), out)
        if rc == _OVERFLOW:
            wide = I128()
            rc = lib.cvg_engine_counter_value_wide(ptr, key, len(key), byref(wide))
            if not rc:
                return int((wide.hi << 64) + wide.lo)
        if rc:
            raise error(rc)
        return out.value

    def _set_read(self) -> SetRead:
        """Members and context of a set."""
        key = self._key
        lst, ctx = c_void_p(), Bytes()
        self._db._call(lib.cvg_engine_set_members, key, len(key), byref(lst), byref(ctx))
        try:
            item = Slice()
            members = []
            for i in range(lib.cvg_list_len(lst)):
                rc = lib.cvg_list_get(lst, i, byref(item))
                if rc:
                    raise error(rc)
                members.append(string_at(item.ptr, item.len) if item.len else b"")
        finally:
            lib.cvg_list_free(lst)
            context = take_bytes(ctx)
        return SetRead(members, context)

    def _register(self) -> Optional[RegisterValue]:
        """The winning write of an LWW or FWW register."""
        key = self._key
        found, value, stamp = c_bool(), Bytes(), StampStruct()
        self._db._call(
            lib.cvg_engine_register, key, len(key), byref(found), byref(value), byref(stamp)
        )
        data = take_bytes(value)
        if not found.value:
            return None
        return RegisterValue(data, Stamp(stamp.wall_ms, stamp.logical, bytes(stamp.replica)))


class Counter(CrdtHandle):
    """A grow-only counter: ``db.counter(b"likes").increment(5)``."""

    __slots__ = ()
    type_name = CrdtType.GCOUNTER

    def increment(self, n: int = 1) -> bytes:
        """Add ``n`` (0..2**64-1) and return the delta. ``CounterOverflowError``
        if this replica's share would pass 2**64-1."""
        # The hottest call: _op inlined, the common argument checked inline.
        if type(n) is not int or not 0 <= n <= U64_MAX:
            n = as_u64(n)
        ptr = self._db._ptr
        if ptr is None:
            raise ClosedError("Engine is closed")
        key = self._key
        out = Bytes()
        # A Structure passed for a POINTER(Structure) parameter is passed by
        # reference by ctypes itself, cheaper than byref().
        rc = _increment(ptr, key, len(key), n, out)
        if rc:
            raise error(rc)
        size = out.len
        if not size:
            return b""
        data = string_at(out.ptr, size)
        _bytes_free(out)
        return data

    def value(self) -> int:
        """The counter's value (0 if never written)."""
        return self._value()


class PNCounter(CrdtHandle):
    """A counter with increments and decrements: ``db.pncounter(k).add(-3)``."""

    __slots__ = ()
    type_name = CrdtType.PNCOUNTER

    def add(self, n: int) -> bytes:
        """Add ``n`` (negative subtracts; within int64) and return the delta."""
        return self._op(_pn_add, as_i64(n))

    def increment(self, n: int = 1) -> bytes:
        """Add ``n``; same as ``add(n)``."""
        return self._op(_pn_add, as_i64(n))

    def decrement(self, n: int = 1) -> bytes:
        """Subtract ``n``; same as ``add(-n)``."""
        return self._op(_pn_add, as_i64(-n))

    def value(self) -> int:
        """The counter's value (0 if never written)."""
        return self._value()


class _SetHandle(CrdtHandle):
    """Reads shared by the three sets."""

    __slots__ = ()

    def members(self) -> list[bytes]:
        """The members in byte order (empty if never written)."""
        return self._set_read().members

    def read(self) -> SetRead:
        """Members and the encoded causal context of this read."""
        return self._set_read()

    def __contains__(self, elem: BytesLike) -> bool:
        return as_bytes(elem, "elem") in self._set_read().members


class GSet(_SetHandle):
    """A grow-only set."""

    __slots__ = ()
    type_name = CrdtType.GSET

    def add(self, elem: BytesLike) -> bytes:
        """Add ``elem`` and return the delta."""
        e = as_bytes(elem, "elem")
        return self._op(lib.cvg_engine_gset_add, e, len(e))


class TwoPSet(_SetHandle):
    """A two-phase set: an element removed never comes back."""

    __slots__ = ()
    type_name = CrdtType.TWOP_SET

    def add(self, elem: BytesLike) -> bytes:
        """Add ``elem`` (no effect if it was ever removed); returns the delta."""
        e = as_bytes(elem, "elem")
        return self._op(lib.cvg_engine_twop_add, e, len(e))

    def remove(self, elem: BytesLike) -> bytes:
        """Remove ``elem`` forever; returns the delta."""
        e = as_bytes(elem, "elem")
        return self._op(lib.cvg_engine_twop_remove, e, len(e))


class ORSet(_SetHandle):
    """An observed-remove set (an add concurrent with a remove wins):
    ``db.orset(b"cart:alice").add(b"tv")``."""

    __slots__ = ()
    type_name = CrdtType.ORSET

    def add(self, elem: BytesLike) -> bytes:
        """Add ``elem``; returns the delta."""
        e = as_bytes(elem, "elem")
        return self._op(lib.cvg_engine_orset_add, e, len(e))

    def remove(self, elem: BytesLike, context: Optional[BytesLike] = None) -> Optional[bytes]:
        """Remove ``elem``: every add of it observed now, or, with
        ``context`` (from ``read().context``), only the adds that read saw,
        so later adds survive. Returns the delta, or ``None`` when the
        remove removed nothing (``elem`` is not a member, or the key does
        not exist): such a remove writes nothing and does not create the
        key."""
        e = as_bytes(elem, "elem")
        if context is None:
            return self._op(lib.cvg_engine_orset_remove, e, len(e)) or None
        c = as_bytes(context, "context")
        return self._op(lib.cvg_engine_orset_remove_observed, e, len(e), c, len(c)) or None


class LWWRegister(CrdtHandle):
    """A last-writer-wins register (hybrid logical clock order)."""

    __slots__ = ()
    type_name = CrdtType.LWW_REGISTER

    def set(self, value: BytesLike) -> bytes:
        """Write ``value`` at the next clock tick; returns the delta."""
        v = as_bytes(value)
        return self._op(lib.cvg_engine_lww_set, v, len(v))

    def get(self) -> Optional[bytes]:
        """The winning value, ``None`` if never written."""
        r = self._register()
        return None if r is None else r.value

    def read(self) -> Optional[RegisterValue]:
        """The winning value with its stamp, ``None`` if never written."""
        return self._register()


class FWWRegister(LWWRegister):
    """A first-writer-wins register: once replicas met, the first write is
    final."""

    __slots__ = ()
    type_name = CrdtType.FWW_REGISTER

    def set(self, value: BytesLike) -> bytes:
        """Write ``value`` (it wins only if no earlier write exists);
        returns the delta."""
        v = as_bytes(value)
        return self._op(lib.cvg_engine_fww_set, v, len(v))


class MVRegister(CrdtHandle):
    """A multi-value register: concurrent writes are kept as siblings."""

    __slots__ = ()
    type_name = CrdtType.MV_REGISTER

    def write(self, value: BytesLike, context: Optional[BytesLike] = None) -> bytes:
        """Write ``value``, replacing the siblings ``context`` (from
        ``read().context``) covers; without a context every current value
        stays as a sibling. Returns the delta."""
        v = as_bytes(value)
        c = b"" if context is None else as_bytes(context, "context")
        return self._op(lib.cvg_engine_mv_write, v, len(v), c, len(c))

    def read(self) -> MVRead:
        """The siblings (ordered by dot) and the context for the next write."""
        key = self._key
        sibs, ctx = c_void_p(), Bytes()
        self._db._call(lib.cvg_engine_mv_read, key, len(key), byref(sibs), byref(ctx))
        try:
            out: list[Sibling] = []
            s = SiblingStruct()
            for i in range(lib.cvg_siblings_len(sibs)):
                rc = lib.cvg_siblings_get(sibs, i, byref(s))
                if rc:
                    raise error(rc)
                out.append(_sibling(s))
        finally:
            lib.cvg_siblings_free(sibs)
            context = take_bytes(ctx)
        return MVRead(out, context)

    def values(self) -> list[bytes]:
        """The siblings' values."""
        return self.read().values

    def resolve(self, fn: Callable[[list[Sibling]], BytesLike]) -> Optional[bytes]:
        """If there are two or more siblings, write ``fn(siblings)`` in their
        place and return the delta; otherwise return ``None`` without calling
        ``fn``. ``fn`` runs on this thread while the C call waits; if it
        raises, ``MergeFunctionError`` is raised from it and nothing is
        written."""
        db, key = self._db, self._key
        failure: list[BaseException] = []

        def callback(_user: Any, siblings: Any, count: int, buf: Any) -> int:
            try:
                merged = as_bytes(fn([_sibling(siblings[i]) for i in range(count)]), "merged")
                rc = lib.cvg_buffer_append(buf, merged, len(merged))
                if rc:
                    failure.append(error(rc))
                    return 1
                return 0
            except BaseException as e:  # never unwind into C
                failure.append(e)
                return 1

        cb = MERGE_FN(callback)
        resolved, out = c_bool(), Bytes()
        rc = lib.cvg_engine_mv_resolve(
            db._handle(), key, len(key), cb, None, byref(resolved), byref(out)
        )
        if rc:
            exc = error(rc)
            if failure:
                cause = failure[0]
                if isinstance(cause, ConvergeError):
                    raise cause
                if rc == _MERGE_FUNCTION and isinstance(exc, MergeFunctionError):
                    raise MergeFunctionError(f"{exc.message}: {cause!r}", rc) from cause
            raise exc
        delta = take_bytes(out)
        return delta if resolved.value else None


def _sibling(s: SiblingStruct) -> Sibling:
    v = s.value
    value = string_at(v.ptr, v.len) if v.len else b""
    return Sibling(value, bytes(s.replica), s.counter)
