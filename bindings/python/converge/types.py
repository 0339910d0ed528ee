"""The plain values reads return: named tuples, so they unpack and compare
like tuples. Every byte string in them is ``bytes``."""

from __future__ import annotations

from typing import Iterator, NamedTuple, Sequence, Union, overload

from .tokens import delta_token, token_of_packed


class Delta(NamedTuple):
    """A local operation's delta and the key it is for: pass ``delta`` to
    ``Engine.merge(key, delta)`` on every peer."""

    key: bytes
    delta: bytes

    @property
    def token(self) -> bytes:
        """The session token of this operation (``delta_token(delta)``):
        wait for it on another replica to read the write there."""
        return delta_token(self.delta)


class DeltaList(Sequence[Delta]):
    """The deltas of a batch, in operation order: a read-only sequence of
    ``Delta`` over the two packed buffers the library returned (one copy
    each), so a 100,000-operation batch costs no per-delta work until the
    deltas are used. Compares equal to any sequence of the same deltas.
    ``keys_buffer``, ``deltas_buffer`` and the span arrays expose the packed
    form for shipping many deltas at once."""

    __slots__ = ("keys_buffer", "deltas_buffer", "_kspans", "_dspans", "_token")

    def __init__(self, keys: bytes, data: bytes, kspans: bytes, dspans: bytes) -> None:
        #: Every key, back to back.
        self.keys_buffer = keys
        #: Every encoded delta, back to back.
        self.deltas_buffer = data
        self._kspans = memoryview(kspans).cast("Q")
        self._dspans = memoryview(dspans).cast("Q")
        self._token: bytes | None = None

    @property
    def token(self) -> bytes:
        """The session token of the whole write: every operation of these
        deltas (one foreign call over the packed deltas, computed on first
        use). Wait for it with ``Engine.wait_for`` on another replica to
        read the write there."""
        if self._token is None:
            n = len(self)
            lengths = self._dspans[1::2].tobytes()  # (offset, len) pairs
            self._token = token_of_packed(self.deltas_buffer, lengths, n)
        return self._token

    def __len__(self) -> int:
        return len(self._kspans) // 2

    def _at(self, i: int) -> Delta:
        ko, kl = self._kspans[2 * i], self._kspans[2 * i + 1]
        do, dl = self._dspans[2 * i], self._dspans[2 * i + 1]
        return Delta(self.keys_buffer[ko : ko + kl], self.deltas_buffer[do : do + dl])

    @overload
    def __getitem__(self, i: int) -> Delta: ...

    @overload
    def __getitem__(self, i: slice) -> list[Delta]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[Delta, list[Delta]]:
        if isinstance(i, slice):
            return [self._at(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("delta index out of range")
        return self._at(i)

    def __iter__(self) -> Iterator[Delta]:
        return (self._at(i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DeltaList({list(self)!r})"


EMPTY_DELTAS = DeltaList(b"", b"", b"", b"")


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
