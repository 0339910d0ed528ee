"""The plain values reads return: named tuples, so they unpack and compare
like tuples. Every byte string in them is ``bytes``."""

from __future__ import annotations

from typing import NamedTuple


class Delta(NamedTuple):
    """A local operation's delta and the key it is for: pass ``delta`` to
    ``Engine.merge(key, delta)`` on every peer."""

    key: bytes
    delta: bytes


class SetRead(NamedTuple):
    """A set's members in byte order and the encoded causal context of the
    read (pass it to ``ORSet.remove(elem, context=...)``; empty for G-Sets
    and 2P-Sets)."""

    members: list[bytes]
    context: bytes


class Stamp(NamedTuple):
    """When and by whom a register value was written: hybrid clock
    milliseconds, logical counter, and the writer's 16-byte replica id."""

    wall_ms: int
    logical: int
    replica: bytes


class RegisterValue(NamedTuple):
    """The winning value of an LWW or FWW register and its stamp."""

    value: bytes
    stamp: Stamp


class Sibling(NamedTuple):
    """One concurrent value of an MV register with the dot (replica id,
    counter) of the write that produced it."""

    value: bytes
    replica: bytes
    counter: int


class MVRead(NamedTuple):
    """An MV register's siblings (ordered by dot) and the encoded causal
    context to pass to the next ``MVRegister.write(value, context=...)``."""

    siblings: list[Sibling]
    context: bytes

    @property
    def values(self) -> list[bytes]:
        """The siblings' values."""
        return [s.value for s in self.siblings]


class Root(NamedTuple):
    """The anti-entropy tree's root: the XOR of every key's 128-bit entry
    hash and the number of keys. Equal roots mean equal data."""

    hash: bytes
    keys: int


class VerifyReport(NamedTuple):
    """Whether the maintained tree equals one recomputed from the data, and
    how many keys were hashed."""

    consistent: bool
    keys: int
