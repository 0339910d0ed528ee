"""Session tokens: what a client wrote or read, as bytes.

A token is an encoded causal context: the set of operations (dots) it stands
for. ``Engine.context()`` is every operation a replica holds; the token of
a write lists that write's operations (``delta_token(delta)``,
``Delta.token``, ``DeltaList.token``). ``Engine.wait_for(token, timeout)``
on any replica returns once that replica holds them, so reads there see
them: read-your-writes and monotonic reads across replicas. Tokens join
(``join_tokens``) and compare as bytes (equal sets encode equally); ``b""``
is the empty token.
"""

from __future__ import annotations

from ctypes import byref, c_size_t

from ._ffi import Bytes, lib, take_bytes
from ._handle import BytesLike, as_bytes
from .errors import error

_token_join = lib.cvg_token_join
_delta_token = lib.cvg_delta_token
_token_of_deltas = lib.cvg_token_of_deltas


def _join(a: bytes, b: bytes) -> bytes:
    out = Bytes()
    rc = _token_join(a, len(a), b, len(b), byref(out))
    if rc:
        raise error(rc)
    return take_bytes(out)


def join_tokens(*tokens: BytesLike) -> bytes:
    """The join of session tokens: the token of everything any of them
    stands for (with none: the empty token). Keep the join of a session's
    write tokens and read contexts and pass it to ``Engine.wait_for``
    before each read. The result is canonical: equal sets of operations
    give equal bytes. ``CorruptInputError`` if a token does not decode."""
    items = [as_bytes(t, "token") for t in tokens] or [b""]
    acc = items[0]
    # A single token is joined with the empty one, so it is checked too.
    for b in items[1:] or [b""]:
        acc = _join(acc, b)
    return acc


def delta_token(delta: BytesLike) -> bytes:
    """The token of one write, from the delta it returned (every local
    operation returns one): wait for it on another replica to read the
    write there. ``CorruptInputError`` if the bytes do not decode,
    ``InvalidArgumentError`` for a full state (it names no operation)."""
    d = as_bytes(delta, "delta")
    out = Bytes()
    rc = _delta_token(d, len(d), byref(out))
    if rc:
        raise error(rc)
    return take_bytes(out)


def token_of_packed(deltas: bytes, lengths: bytes, count: int) -> bytes:
    """The token of ``count`` deltas packed back to back in ``deltas``,
    their lengths in ``lengths`` (``count`` native ``size_t`` values)."""
    lens = (c_size_t * count).from_buffer_copy(lengths) if count else None
    out = Bytes()
    rc = _token_of_deltas(deltas, len(deltas), lens, count, byref(out))
    if rc:
        raise error(rc)
    return take_bytes(out)
