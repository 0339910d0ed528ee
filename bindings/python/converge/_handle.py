"""The managed-handle base class every owner of a C handle derives from,
and the conversions of Python arguments to the bytes the C ABI takes."""

from __future__ import annotations

import operator
import uuid
import weakref
from typing import Any, Callable, Union

from .errors import ClosedError, InvalidArgumentError

#: What the package accepts wherever the C ABI takes bytes: ``bytes``,
#: ``bytearray`` and ``memoryview`` as they are, ``str`` encoded as UTF-8.
BytesLike = Union[bytes, bytearray, memoryview, str]

U64_MAX = (1 << 64) - 1
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1


def as_bytes(value: BytesLike, what: str = "value") -> bytes:
    """``value`` as ``bytes``: str is encoded as UTF-8, buffers are copied."""
    t = type(value)
    if t is bytes:
        return value  # type: ignore[return-value]
    if t is str:
        return value.encode("utf-8")  # type: ignore[union-attr]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return str(value).encode("utf-8")
    raise TypeError(f"{what} must be bytes, bytearray, memoryview or str, not {t.__name__}")


def as_u64(n: Any, what: str = "n") -> int:
    """``n`` as an int in 0..2**64-1, else ``InvalidArgumentError``."""
    value: int = operator.index(n)
    if not 0 <= value <= U64_MAX:
        raise InvalidArgumentError(f"{what} must be in 0..2**64-1, got {value}")
    return value


def as_i64(n: Any, what: str = "n") -> int:
    """``n`` as an int in -2**63..2**63-1, else ``InvalidArgumentError``."""
    value: int = operator.index(n)
    if not I64_MIN <= value <= I64_MAX:
        raise InvalidArgumentError(f"{what} must be in -2**63..2**63-1, got {value}")
    return value


#: What the package accepts as a replica id: 16 bytes, an ``int`` in
#: 0..2**128-1 (its 16 big-endian bytes, the engine's u128) or a
#: ``uuid.UUID``.
ReplicaIdLike = Union[bytes, bytearray, memoryview, int, uuid.UUID]


def as_replica_id(value: Any, what: str = "replica_id") -> bytes:
    """A replica id argument as the bytes the C ABI takes. The length of
    bytes is the library's to check (it wants 16)."""
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 1 << 128:
            raise ValueError(f"an int {what} must be in 0 .. 2**128 - 1")
        return value.to_bytes(16, "big")
    raise TypeError(f"{what} must be 16 bytes, an int or a uuid.UUID")


class ManagedHandle:
    """Owns one C handle: ``close()`` releases it (idempotent), using the
    object afterwards raises ``ClosedError``, ``with`` closes it on exit, and
    a ``weakref.finalize`` releases it if the object is collected unclosed.
    """

    _ptr: int | None

    def __init__(self, ptr: int, release: Callable[[int], Any]) -> None:
        self._ptr = ptr
        self._finalizer = weakref.finalize(self, release, ptr)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._ptr is None

    def _handle(self) -> int:
        """The live C pointer, or ``ClosedError``."""
        ptr = self._ptr
        if ptr is None:
            raise ClosedError(f"{type(self).__name__} is closed")
        return ptr

    def _release(self) -> None:
        """Release the C handle now; runs at most once."""
        self._ptr = None
        self._finalizer()

    def close(self) -> None:
        """Release the C handle. A second call does nothing."""
        if self._ptr is not None:
            self._release()

    def __enter__(self) -> Any:
        self._handle()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else "open"
        return f"<{type(self).__module__}.{type(self).__qualname__} {state}>"
