"""Causal delivery and the changes feed.

**Causal delivery.** Every delta carries what it depends on: its origin's
earlier operations and the operations its origin had merged before it. A
replica that receives a delta (``Engine.merge``, ``Batch.merge``) or a page
of changes (``Engine.apply_changes``) before its dependencies keeps it in
a persisted, bounded *pending area*, invisible, and applies it atomically
once they arrive: a comment is never shown before the post it answers.
``Engine.pending()`` says what waits and what it needs; past the
``max_pending`` / ``max_pending_bytes`` options a merge raises
``PendingFullError`` and changes nothing.

**The changes feed.** Each replica logs its own operations. A *cursor* is
what a peer holds, as an encoded causal context (the bytes of a session
token: the peer's ``Engine.context()``, the ``next`` of the previous page,
or ``b""`` for nothing yet). ``Engine.changes_since(cursor, limit)`` returns
the operations the cursor lacks as one page, coalesced per key, and the
next cursor; the peer applies the page with ``Engine.apply_changes``. The
log is truncated past ``feed_retain_bytes`` and up to what every peer
registered with ``register_peer`` has ``acknowledge``-d; a cursor that
lacks an operation the log dropped raises ``CursorTooOldError``: run an
anti-entropy session with that peer, then continue from its context.
"""

from __future__ import annotations

import operator
from ctypes import byref, c_bool, c_size_t, c_uint8, c_uint64, c_void_p, sizeof, string_at
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from ._ffi import Bytes, FeedInfoStruct, PendingInfoStruct, Slice, lib, take_bytes
from ._handle import BytesLike, ReplicaIdLike, as_bytes, as_replica_id
from .enums import Delivery
from .errors import InvalidArgumentError, error

_pending = lib.cvg_engine_pending
_changes_since = lib.cvg_engine_changes_since
_apply_changes = lib.cvg_engine_apply_changes
_feed_info = lib.cvg_engine_feed_info
_SIZE_MAX = (1 << (8 * sizeof(c_size_t))) - 1


class PendingInfo(NamedTuple):
    """What the pending area holds (``Engine.pending()``)."""

    #: Entries waiting (a delta, or a page of changes).
    entries: int
    #: Their encoded size in bytes.
    nbytes: int
    #: The join of what they need, as a token: once the replica holds it
    #: (``Engine.token_missing(needed) == 0``), every entry but the stuck
    #: ones has been applied. Ask the peers for it, or sync.
    needed: bytes
    #: How many operations of ``needed`` the replica lacks.
    missing: int
    #: Entries whose dependencies are met but that cannot be applied (their
    #: state would pass the size limit, or their key holds another type).
    stuck: int


class FeedPage(NamedTuple):
    """One page of the changes feed (``Engine.changes_since``)."""

    #: The page to ship to the peer, for its ``Engine.apply_changes``;
    #: ``None`` when the cursor lacks nothing.
    changes: Optional[bytes]
    #: How many operations the page carries.
    operations: int
    #: The cursor to ask from next: the given one plus the page's
    #: operations.
    next: bytes
    #: Whether the log holds more operations that ``next`` lacks.
    more: bool


class FeedInfo(NamedTuple):
    """The state of the changes feed (``Engine.feed_info()``)."""

    #: The oldest sequence number the log retains (it holds
    #: ``floor..last``; empty when ``floor == last + 1``).
    floor: int
    #: The last sequence number this replica issued.
    last: int
    #: Bytes the log holds.
    nbytes: int
    #: Registered peers (16-byte replica ids, ascending) -> the cursor each
    #: acknowledged.
    peers: dict[bytes, bytes]


def _list_items(lst: c_void_p) -> list[bytes]:
    """Copy every item of a ``cvg_list_t`` (the caller frees it)."""
    item, out = Slice(), []
    for i in range(lib.cvg_list_len(lst)):
        rc = lib.cvg_list_get(lst, i, byref(item))
        if rc:
            raise error(rc)
        out.append(string_at(item.ptr, item.len) if item.len else b"")
    return out


class FeedMethods:
    """The causal delivery and changes feed methods of ``Engine`` (kept in
    this module, which owns the subject)."""

    if TYPE_CHECKING:

        def _call(self, fn: Any, *args: Any) -> None: ...

    def pending(self) -> PendingInfo:
        """What the pending area holds: deltas and pages of changes
        received before their dependencies, invisible until those
        arrive."""
        info, needed = PendingInfoStruct(), Bytes()
        self._call(_pending, byref(info), byref(needed))
        return PendingInfo(info.entries, info.bytes, take_bytes(needed), info.missing, info.stuck)

    def changes_since(self, cursor: BytesLike, limit: int) -> FeedPage:
        """The operations of this replica that ``cursor`` lacks, at most
        ``limit`` of them (and at most 16 MiB of log), oldest first,
        coalesced into one state per key, as one page; and the next cursor.

        ``cursor`` is what the peer holds: its ``context()``, the ``next``
        of the previous page, or ``b""``. Raises ``CursorTooOldError`` when
        the log no longer holds an operation the cursor lacks (sync with
        the peer, then continue from its ``context()``),
        ``CorruptInputError`` when the cursor does not decode,
        ``InvalidArgumentError`` when it claims operations this replica has
        not issued, when ``limit`` is not positive, or when the feed is off."""
        c = as_bytes(cursor, "cursor")
        n = operator.index(limit)
        if not 0 <= n <= _SIZE_MAX:
            raise InvalidArgumentError(f"limit must be positive, got {n}")
        page, nxt, ops, more = Bytes(), Bytes(), c_uint64(), c_bool()
        self._call(_changes_since, c, len(c), n, byref(page), byref(nxt), byref(ops), byref(more))
        changes = take_bytes(page)
        return FeedPage(changes or None, ops.value, take_bytes(nxt), more.value)

    def apply_changes(self, page: BytesLike) -> Delivery:
        """Apply a page of changes from a peer (its ``changes_since``),
        atomically: ``Delivery.APPLIED`` (visible now),
        ``Delivery.PENDING`` (kept until this replica holds what it depends
        on) or ``Delivery.DUPLICATE`` (already held; nothing changed).
        Pages may arrive in any order and more than once. Raises, changing
        nothing: ``CorruptInputError`` for bytes that are not a page,
        ``PendingFullError`` when it would have to wait in a full pending
        area, ``WrongTypeError`` or ``StateTooLargeError`` when a key cannot
        take its state."""
        p = as_bytes(page, "page")
        out = c_uint8()
        self._call(_apply_changes, p, len(p), byref(out))
        return Delivery.from_number(out.value)

    def feed_info(self) -> FeedInfo:
        """The state of the changes feed and its registered peers, in one
        snapshot. ``InvalidArgumentError`` when the feed is off."""
        info, ids, cursors = FeedInfoStruct(), c_void_p(), c_void_p()
        self._call(_feed_info, byref(info), byref(ids), byref(cursors))
        try:
            peers = dict(zip(_list_items(ids), _list_items(cursors)))
        finally:
            lib.cvg_list_free(ids)
            lib.cvg_list_free(cursors)
        return FeedInfo(info.floor, info.last, info.bytes, peers)

    def register_peer(self, peer: ReplicaIdLike) -> None:
        """Register ``peer`` (its replica id: 16 bytes, an int or a
        ``uuid.UUID``) as sharing this replica's data: a member, whose
        acknowledgements the collection of tombstones waits for (see
        ``converge.gc``), and, with the changes feed on, a peer the log is
        kept for until it acknowledges, up to ``feed_retain_bytes``. Works
        with the feed off. Registering twice changes nothing; registrations
        are persisted."""
        p = as_replica_id(peer, "peer")
        self._call(lib.cvg_engine_register_peer, p, len(p))

    def acknowledge(self, peer: ReplicaIdLike, cursor: BytesLike) -> None:
        """Record that the registered ``peer`` holds ``cursor`` (joined with
        what it acknowledged before), and truncate the log of what every
        registered peer holds. ``cursor`` is an encoded causal context the
        peer holds: the ``next`` of a page it applied, its ``context()``, or
        ``SyncSession.acknowledged()`` after a session with it. Works with
        the feed off. ``InvalidArgumentError`` for a peer not
        registered or a cursor claiming operations this replica has not
        issued."""
        p, c = as_replica_id(peer, "peer"), as_bytes(cursor, "cursor")
        self._call(lib.cvg_engine_acknowledge, p, len(p), c, len(c))

    def remove_peer(self, peer: ReplicaIdLike) -> None:
        """Forget a registered peer (retire a member): the log is no longer
        kept for it and collection no longer waits for it. Works with the
        feed off. Removing an unknown peer changes nothing."""
        p = as_replica_id(peer, "peer")
        self._call(lib.cvg_engine_remove_peer, p, len(p))
