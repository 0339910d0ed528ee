"""Deletes and the collection of tombstones by causal stability.

**Deletes.** ``Engine.delete(key)`` deletes a key of any type and returns
its delta (ship it to the peers' ``merge`` like any other), or ``None``
when there was nothing to delete. A delete removes what it observed (what
this replica holds now, or the state given as ``observed``), so an update
concurrent with it survives: counters reset-remove (concurrent increments
count from zero), OR-Sets and MV registers keep concurrent adds and
writes, G-Sets and 2P-Sets drop the observed elements, an LWW delete is a
timestamped tombstone ordered like a write, an FWW delete starts a new
epoch whose first write wins. Afterwards the key reads as absent: its
type is ``None``, the reads of its type give what they give for a key
never written, ``keys()`` skips it (``stored_keys()`` lists it). Until its
tombstone is collected the key keeps its type (a write or read of another
type raises ``WrongTypeError``); a write of the same type re-creates it.

**Members and collection.** The replicas that share this replica's data
are its members: ``register_peer`` / ``remove_peer`` (these work with the
changes feed off), each with the causal context it acknowledged
(``acknowledge``, fed by ``SyncSession.acknowledged()`` or the feed's
cursors). ``Engine.collect()`` forgets every tombstone whose deletes every
member (and this replica's record) holds, and removes keys that read as
absent entirely. A member that never acknowledges holds collection back,
visibly (``CollectReport.waiting_on``). Nothing collected comes back: a
peer whose record lacks collected deletes and that holds data is refused
by sync with ``BehindHorizonError``.
"""

from __future__ import annotations

from ctypes import byref, c_void_p
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from ._ffi import BlockerStruct, Bytes, CollectReportStruct, lib, take_bytes
from ._handle import BytesLike, as_bytes
from .errors import error
from .feed import _list_items

_delete = lib.cvg_engine_delete
_delete_observed = lib.cvg_engine_delete_observed


@dataclass(frozen=True)
class CollectReport:
    """What ``Engine.collect()`` did, or what ``Engine.tombstones()`` finds
    now without collecting."""

    #: Tombstones collected (``tombstones()``: that could be collected now).
    collected: int
    #: Of those, keys removed entirely (they read as absent).
    purged: int
    #: Tombstones whose deletes some member (or this replica) lacks.
    waiting: int
    #: The replicas holding collection back (16-byte ids, ascending) and
    #: how many tombstones wait for each.
    waiting_on: dict[bytes, int] = field(default_factory=dict)
    #: The deletes collected so far on this replica, an encoded version
    #: vector (the format of ``Engine.version_vector()``).
    horizon: bytes = b""


class Member(NamedTuple):
    """A replica registered as sharing this replica's data, and the
    encoded causal context it acknowledged."""

    replica_id: bytes
    acknowledged: bytes


def _report(fn: Any, call: Any) -> CollectReport:
    """Run ``cvg_engine_collect`` or ``cvg_engine_tombstones`` through the
    engine's ``call`` and read every output."""
    r, blockers, horizon = CollectReportStruct(), c_void_p(), Bytes()
    call(fn, byref(r), byref(blockers), byref(horizon))
    try:
        h = take_bytes(horizon)
        waiting_on: dict[bytes, int] = {}
        b = BlockerStruct()
        for i in range(lib.cvg_blockers_len(blockers)):
            rc = lib.cvg_blockers_get(blockers, i, byref(b))
            if rc:
                raise error(rc)
            waiting_on[bytes(b.replica)] = b.tombstones
    finally:
        lib.cvg_blockers_free(blockers)
    return CollectReport(r.collected, r.purged, r.waiting, waiting_on, h)


class DeleteMethods:
    """The delete, collection and membership methods of ``Engine`` (kept in
    this module, which owns the subject)."""

    if TYPE_CHECKING:

        def _call(self, fn: Any, *args: Any) -> None: ...

    def delete(self, key: BytesLike, observed: Optional[BytesLike] = None) -> Optional[bytes]:
        """Delete ``key``, whatever its type; returns the delta for the
        peers' ``merge``, or ``None`` when there was nothing to delete (the
        key was never written or already reads as absent).

        ``observed`` (optional) is the encoded state of an earlier
        ``state_bytes(key)`` read, here or on another replica: only what it
        holds is deleted, so writes made after that read survive. Without
        it, everything this replica holds of the key now is deleted. Raises,
        changing nothing: ``CorruptInputError`` when ``observed`` does not
        decode, ``WrongTypeError`` when it is a state of another type than
        the key holds."""
        k = as_bytes(key, "key")
        out = Bytes()
        if observed is None:
            self._call(_delete, k, len(k), byref(out))
        else:
            o = as_bytes(observed, "observed")
            self._call(_delete_observed, k, len(k), o, len(o), byref(out))
        return take_bytes(out) or None

    def collect(self) -> CollectReport:
        """Collect the tombstones whose deletes every member has
        acknowledged: each such key forgets its tombstone, and a key that
        reads as absent is removed entirely (compaction reclaims the
        space). With no member registered, every delete this replica holds
        is stable: register every replica that shares the data first.
        Returns what was collected and what still waits, on whom. Keys are
        collected one atomic write at a time; safe at any time,
        concurrently with writes and syncs."""
        return _report(lib.cvg_engine_collect, self._call)

    def tombstones(self) -> CollectReport:
        """What ``collect()`` would collect now, and what waits on whom,
        without collecting anything."""
        return _report(lib.cvg_engine_tombstones, self._call)

    def members(self) -> list[Member]:
        """The registered replicas (``register_peer``), by ascending id,
        with the causal contexts they acknowledged. Works with the changes
        feed off (unlike ``feed_info()``)."""
        ids, ctxs = c_void_p(), c_void_p()
        self._call(lib.cvg_engine_members, byref(ids), byref(ctxs))
        try:
            return [Member(i, c) for i, c in zip(_list_items(ids), _list_items(ctxs))]
        finally:
            lib.cvg_list_free(ids)
            lib.cvg_list_free(ctxs)
