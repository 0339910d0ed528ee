"""Anti-entropy sync sessions (``cvg_sync_*``): two replicas find the keys
whose states differ and exchange them.

The transport is the caller's: the initiator sends ``first_message``, and
each side passes every message it receives to ``receive()``, in order,
then sends every message ``next_message()`` gives until it returns
``None`` (``handle()`` does both and returns the replies as a list), even
the replies of the call that ended the session. Replies are built as they
are pulled (states read from the store a few at a time), so a session's
memory is bounded whatever the replica's size or the peer's messages. A side is ``done`` when its ``outcome`` is no longer
``SyncOutcome.RUNNING``; an ended side sends and accepts nothing more, so a
loop carrying messages between two sides stops when no message is in
flight either way. The sides then hold one of these pairs: ``EQUAL`` and
``EQUAL``; ``CONVERGED`` and ``CONVERGED`` (success: each side's causal
record now also covers the other's, so a token from either is visible on
both); ``DIVERGED`` and ``DIVERGED`` (a write landed meanwhile: sync
again). ``REPAIRED`` is no longer produced (sync protocol 2 tells both
sides the verdict). A failed ``handle()`` leaves its side ``FAILED`` and the peer
``RUNNING`` (there is no abort message); a message handed to a side that
has already ended raises ``SyncProtocolError`` and leaves its outcome as it
was. ``Engine.sync_with(other)`` runs
a whole session between two engines of this process in one call.
"""

from __future__ import annotations

import threading
from ctypes import byref, c_bool, c_uint8, c_uint32, c_void_p, string_at
from typing import TYPE_CHECKING, NamedTuple, Optional

from ._ffi import Bytes, Slice, SyncConfigStruct, SyncStatsStruct, lib, take_bytes
from ._handle import BytesLike, ManagedHandle, as_bytes
from .enums import SyncOutcome
from .errors import error

if TYPE_CHECKING:
    from .engine import Engine

class SyncStats(NamedTuple):
    """The traffic of one side of a session so far."""

    messages_sent: int
    messages_received: int
    bytes_sent: int
    bytes_received: int
    states_sent: int
    states_received: int
    state_bytes_sent: int
    state_bytes_received: int
    flights: int
    diff_micros: int
    #: States received but left unmerged: the key's state would exceed the
    #: state size limit (those keys still differ).
    states_rejected: int


def sync_config(
    message_budget: Optional[int] = None,
    max_message: Optional[int] = None,
    use_iblt: Optional[bool] = None,
) -> SyncConfigStruct:
    """The library's default session limits with the given ones changed."""
    config: SyncConfigStruct = lib.cvg_sync_config_default()
    if message_budget is not None:
        config.message_budget = message_budget
    if max_message is not None:
        config.max_message = max_message
    if use_iblt is not None:
        config.use_iblt = bool(use_iblt)
    return config


def outcome_name(n: int) -> SyncOutcome:
    """The ``SyncOutcome`` of a ``CVG_SYNC_*`` number (``ValueError`` for a
    number these bindings do not know)."""
    return SyncOutcome.from_number(n)


class SyncSession(ManagedHandle):
    """One side of a sync session, created by ``Engine.sync_initiate()`` or
    ``Engine.sync_respond()``. Keeps its engine alive; the engine's
    ``close()`` closes it. One message at a time (a lock enforces that).

    ``first_message`` is the initiator's first message (``None`` for a
    responder). ``outcome`` is a ``SyncOutcome`` (a ``str``): ``RUNNING``
    (``"running"``) until this side ends, then ``EQUAL``,
    ``CONVERGED``, ``DIVERGED`` (run another session with
    ``use_iblt=False``) or ``FAILED``; see the module docstring for the
    pairs the two sides end with.
    """

    def __init__(self, db: "Engine", initiate: bool, config: SyncConfigStruct) -> None:
        self._db = db
        self._lock = threading.Lock()
        out, first = c_void_p(), Bytes()
        if initiate:
            db._call(lib.cvg_sync_initiate, byref(config), byref(out), byref(first))
        else:
            db._call(lib.cvg_sync_respond, byref(config), byref(out))
        super().__init__(out.value, lib.cvg_sync_free)  # type: ignore[arg-type]
        data = string_at(first.ptr, first.len) if first.len else b""
        lib.cvg_bytes_free(byref(first))
        db._adopt(self)
        #: The first message to send to the peer (initiator only).
        self.first_message: Optional[bytes] = data if initiate else None

    def close(self) -> None:
        """Free the session (waits for a ``handle`` running on another
        thread). A second call does nothing."""
        with self._lock:
            super().close()

    def __enter__(self) -> "SyncSession":
        self._handle()
        return self

    def handle(self, message: BytesLike) -> list[bytes]:
        """Handle one message from the peer; returns the messages to send
        back, in order (possibly none); send them even if this call ended
        the session. A bad message raises ``CorruptInputError`` or
        ``SyncProtocolError`` and ends this side (``outcome`` is ``FAILED``);
        it changed nothing."""
        msg = as_bytes(message, "message")
        replies = c_void_p()
        with self._lock:
            rc = lib.cvg_sync_handle(self._handle(), msg, len(msg), byref(replies))
            if rc:
                raise error(rc)
        try:
            item, out = Slice(), []
            for i in range(lib.cvg_list_len(replies)):
                rc = lib.cvg_list_get(replies, i, byref(item))
                if rc:
                    raise error(rc)
                out.append(string_at(item.ptr, item.len) if item.len else b"")
            return out
        finally:
            lib.cvg_list_free(replies)

    def receive(self, message: BytesLike) -> None:
        """Take one message from the peer; pull the replies with
        ``next_message()`` until it returns ``None`` before passing the next
        one (a message given while replies are waiting is out of turn:
        ``SyncProtocolError``, and this side fails). Errors are those of
        ``handle()``; the failing message changed nothing."""
        msg = as_bytes(message, "message")
        with self._lock:
            rc = lib.cvg_sync_receive(self._handle(), msg, len(msg))
            if rc:
                raise error(rc)

    def next_message(self) -> Optional[bytes]:
        """The next message to send, built now, or ``None`` when this side
        has nothing to send until the peer answers (or it has ended)."""
        out, more = Bytes(), c_bool()
        with self._lock:
            rc = lib.cvg_sync_next_message(self._handle(), byref(out), byref(more))
            if rc:
                raise error(rc)
        data = string_at(out.ptr, out.len) if out.len else b""
        lib.cvg_bytes_free(byref(out))
        return data if more.value else None

    def _flags(self) -> int:
        flags = c_uint32()
        with self._lock:
            rc = lib.cvg_sync_flags(self._handle(), byref(flags))
            if rc:
                raise error(rc)
        return flags.value

    @property
    def truncated(self) -> bool:
        """More keys differed than one session repairs (2^20): this one
        repaired part of them and ends ``DIVERGED``; run another."""
        return bool(self._flags() & 1)  # CVG_FLAG_SYNC_TRUNCATED

    @property
    def staging_overflowed(self) -> bool:
        """The peer's states passed the staging bound (16 MiB) and were
        joined in several writes instead of one."""
        return bool(self._flags() & 2)  # CVG_FLAG_SYNC_STAGING_OVERFLOWED

    @property
    def outcome(self) -> SyncOutcome:
        """How this side stands: ``SyncOutcome.RUNNING`` until it ends."""
        n = c_uint8()
        with self._lock:
            rc = lib.cvg_sync_outcome(self._handle(), byref(n))
            if rc:
                raise error(rc)
        return SyncOutcome.from_number(n.value)

    @property
    def done(self) -> bool:
        """Whether this side has ended (``outcome`` is not ``RUNNING``)."""
        return self.outcome.ended

    def acknowledged(self) -> Optional[bytes]:
        """After this side ended ``EQUAL`` or ``CONVERGED``: what the peer
        holds, as an encoded causal context (the join of the records both
        sides sent). Pass it to ``Engine.acknowledge(peer_id, ...)`` when
        the peer is a member: the collection of tombstones waits for every
        member's acknowledgement. ``None`` while the session runs and after
        it ended ``DIVERGED`` or ``FAILED``: acknowledge nothing then."""
        if self.outcome not in (SyncOutcome.EQUAL, SyncOutcome.CONVERGED):
            return None
        out = Bytes()
        with self._lock:
            rc = lib.cvg_sync_acknowledged(self._handle(), byref(out))
            if rc:
                raise error(rc)
        return take_bytes(out)

    def stats(self) -> SyncStats:
        """This side's traffic so far."""
        s = SyncStatsStruct()
        with self._lock:
            rc = lib.cvg_sync_stats(self._handle(), byref(s))
            if rc:
                raise error(rc)
        return SyncStats(*(getattr(s, f) for f in SyncStats._fields))
