"""The named values of the C ABI as ``enum.Enum`` subclasses of ``str``:
sync outcomes (``CVG_SYNC_*``), durabilities (``CVG_DURABILITY_*``), CRDT
types (``CVG_CRDT_*``) and deliveries of pages of changes
(``CVG_DELIVERY_*``).

Each member's value is the string the package has always used for it
(``"converged"``, ``"buffered"``, ``"gcounter"``, ...), and members are
``str`` instances that compare and hash equal to those strings and format
as them, so ``outcome == "converged"`` and ``{"sync": 0}[Durability.SYNC]``
keep working. ``number`` is the C constant; ``from_number`` maps a C number
back to its member.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from . import _ffi

_E = TypeVar("_E", bound="_CEnum")


class _CEnum(str, enum.Enum):
    """A ``str`` enum mirroring C constants: ``str()`` and ``format()`` give
    the value (not ``Class.MEMBER``), as ``enum.StrEnum`` does."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @property
    def number(self) -> int:
        """The C constant for this member."""
        return self._numbers()[self.value]

    @classmethod
    def _numbers(cls) -> dict[str, int]:
        raise NotImplementedError  # every concrete enum defines its table

    @classmethod
    def from_number(cls: type[_E], n: int) -> _E:
        """The member whose C constant is ``n``. ``ValueError`` for a number
        these bindings do not know (only a library newer than the bindings
        returns one, and the package refuses to load such a library)."""
        for name, number in cls._numbers().items():
            if number == n:
                return cls(name)
        raise ValueError(f"{n} is no {cls.__name__} number known to these bindings")


class SyncOutcome(_CEnum):
    """How one side of a sync session stands (``SyncSession.outcome``,
    ``Engine.sync_with``). Successful sessions end ``EQUAL`` or
    ``CONVERGED`` on both sides."""

    #: The session has not ended on this side.
    RUNNING = "running"
    #: The roots were already equal: nothing to exchange (both sides).
    EQUAL = "equal"
    #: Not produced since sync protocol 2 (both sides learn the verdict);
    #: kept so that the C numbering stays complete.
    REPAIRED = "repaired"
    #: The exchange completed and the roots are equal (both sides); each
    #: side's causal record now covers the other's.
    CONVERGED = "converged"
    #: The exchange completed but the roots differ (a write landed during
    #: the session): run another session, with ``use_iblt=False``.
    DIVERGED = "diverged"
    #: This side got a bad message; the peer stays ``RUNNING``. Start a new
    #: session.
    FAILED = "failed"

    @classmethod
    def _numbers(cls) -> dict[str, int]:
        return _ffi.SYNC_OUTCOMES

    @property
    def ended(self) -> bool:
        """Whether the side has ended (anything but ``RUNNING``)."""
        return self is not SyncOutcome.RUNNING


class Durability(_CEnum):
    """When a write is durable (``Engine(durability=...)``)."""

    #: The log is fsynced before a write returns: survives power loss.
    SYNC = "sync"
    #: The log is written but not fsynced: survives a process crash (default).
    BUFFERED = "buffered"
    #: No log: writes live in memory until flushed (bulk loads).
    NONE = "none"

    @classmethod
    def _numbers(cls) -> dict[str, int]:
        return _ffi.DURABILITY


#: ``CrdtType`` value -> ``CVG_CRDT_*`` number.
_CRDT_NUMBERS = {
    "gcounter": _ffi.CRDT_TYPES["CVG_CRDT_GCOUNTER"],
    "pncounter": _ffi.CRDT_TYPES["CVG_CRDT_PNCOUNTER"],
    "gset": _ffi.CRDT_TYPES["CVG_CRDT_GSET"],
    "2pset": _ffi.CRDT_TYPES["CVG_CRDT_TWOP_SET"],
    "orset": _ffi.CRDT_TYPES["CVG_CRDT_ORSET"],
    "lww": _ffi.CRDT_TYPES["CVG_CRDT_LWW_REGISTER"],
    "fww": _ffi.CRDT_TYPES["CVG_CRDT_FWW_REGISTER"],
    "mvreg": _ffi.CRDT_TYPES["CVG_CRDT_MV_REGISTER"],
}


class CrdtType(_CEnum):
    """The CRDT type a key holds (``Engine.key_type``, ``Engine.keys``); the
    values are the names ``cvg_crdt_type_name`` gives. A key never written
    has no type (``None``), not a member."""

    #: Grow-only counter (``Engine.counter``).
    GCOUNTER = "gcounter"
    #: Counter with increments and decrements (``Engine.pncounter``).
    PNCOUNTER = "pncounter"
    #: Grow-only set (``Engine.gset``).
    GSET = "gset"
    #: Two-phase set (``Engine.twopset``).
    TWOP_SET = "2pset"
    #: Observed-remove set, add wins (``Engine.orset``).
    ORSET = "orset"
    #: Last-writer-wins register (``Engine.lww``).
    LWW_REGISTER = "lww"
    #: First-writer-wins register (``Engine.fww``).
    FWW_REGISTER = "fww"
    #: Multi-value register (``Engine.mvreg``).
    MV_REGISTER = "mvreg"

    @classmethod
    def _numbers(cls) -> dict[str, int]:
        return _CRDT_NUMBERS


class Delivery(_CEnum):
    """What ``Engine.apply_changes`` did with a page of changes."""

    #: Its effects are visible, its operations in the replica's record.
    APPLIED = "applied"
    #: It waits in the pending area for operations it depends on (an
    #: earlier page, other replicas' operations); it is applied,
    #: atomically, once they arrive.
    PENDING = "pending"
    #: The replica already held every operation of the page: nothing
    #: changed.
    DUPLICATE = "duplicate"

    @classmethod
    def _numbers(cls) -> dict[str, int]:
        return _ffi.DELIVERIES
