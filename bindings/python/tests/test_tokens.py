"""Session tokens: read-your-writes and monotonic reads across two engines,
waits woken by merges from another thread, bad tokens, joins and the tokens
of batch writes."""

from __future__ import annotations

import math
import pathlib
import random
import threading
import time
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import converge
from converge import Engine

Open = Callable[..., Engine]


def test_read_your_writes_across_two_engines(open_engine: Open) -> None:
    a, b = open_engine(replica_id=1), open_engine(replica_id=2)
    delta = a.counter("likes").increment(5)
    token = converge.delta_token(delta)
    a.wait_for(token)  # the writer holds its own write at once
    assert a.token_missing(token) == 0
    with pytest.raises(converge.NotYetVisibleError, match="lacks 1 ") as e:
        b.wait_for(token)
    assert e.value.status == 18 and isinstance(e.value, converge.ConvergeError)
    with pytest.raises(converge.NotYetVisibleError):
        b.wait_for(token, timeout=0.02)
    assert b.token_missing(token) == 1
    assert b.counter("likes").value() == 0

    b.merge("likes", delta)
    b.wait_for(token)
    b.wait_for(token, timeout=math.inf)  # held: returns at once
    assert b.counter("likes").value() == 5
    # B now holds everything A does: A's context is visible there too.
    b.wait_for(a.context())


def test_a_full_state_makes_no_token_visible(open_engine: Open) -> None:
    a, c = open_engine(replica_id=1), open_engine(replica_id=3)
    delta = a.counter("likes").increment(5)
    state = a.state_bytes("likes")
    assert state is not None
    c.merge("likes", state)
    assert c.counter("likes").value() == 5
    with pytest.raises(converge.NotYetVisibleError):
        c.wait_for(converge.delta_token(delta))
    with pytest.raises(converge.InvalidArgumentError, match="full state"):
        converge.delta_token(state)
    c.merge("likes", delta)
    c.wait_for(converge.delta_token(delta))


def test_monotonic_reads_across_a_lagging_replica(open_engine: Open) -> None:
    a, b = open_engine(replica_id=1), open_engine(replica_id=2)
    d1 = a.counter("views").increment()
    d2 = a.counter("views").increment()
    b.merge("views", d1)  # B lags: only the first increment

    # The client reads 2 at A and keeps the context it read at.
    a.wait_for(b"")
    seen = a.context()
    assert a.counter("views").value() == 2

    # A plain read at B would go back in time; the token says so.
    assert b.counter("views").value() == 1
    with pytest.raises(converge.NotYetVisibleError, match="lacks 1 "):
        b.wait_for(seen)
    with pytest.raises(converge.NotYetVisibleError):
        b.wait_for(seen, timeout=0.01)
    b.merge("views", d1)  # a duplicate changes nothing
    assert b.token_missing(seen) == 1

    b.merge("views", d2)
    b.wait_for(seen)
    assert b.counter("views").value() == 2
    # The same operations: the same bytes.
    assert b.context() == a.context() == seen
    b.counter("views").increment()
    assert a.token_missing(b.context()) == 1


def test_a_waiting_thread_is_woken_by_merges(open_engine: Open) -> None:
    a, b = open_engine(replica_id=1), open_engine(replica_id=2)
    d1 = a.counter("wake").increment(1)
    d2 = a.counter("wake").increment(2)
    never = converge.delta_token(a.counter("other").increment())
    token = converge.join_tokens(converge.delta_token(d1), converge.delta_token(d2))
    assert b.token_missing(token) == 2
    results: dict[str, object] = {}
    started = threading.Barrier(4)

    def waiter(name: str, tok: bytes, timeout: float) -> None:
        started.wait()
        try:
            b.wait_for(tok, timeout=timeout)
            results[name] = b.counter("wake").value()
        except converge.ConvergeError as e:
            results[name] = e

    threads = [
        threading.Thread(target=waiter, args=("bounded", token, 120.0)),
        threading.Thread(target=waiter, args=("unbounded", token, math.inf)),
        threading.Thread(target=waiter, args=("never", never, 0.3)),
    ]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.1)  # let them block (the test is correct without it)
    b.merge("wake", d1)  # one of two: the waiters keep waiting
    time.sleep(0.05)
    b.merge("wake", d2)
    for t in threads:
        t.join(timeout=150)
    assert not any(t.is_alive() for t in threads)
    # Woken, and the read after the wait sees both writes.
    assert results["bounded"] == 3
    assert results["unbounded"] == 3
    assert isinstance(results["never"], converge.NotYetVisibleError)


def test_close_ends_a_wait_on_another_thread(open_engine: Open) -> None:
    a, b = open_engine(replica_id=1), open_engine(replica_id=2)
    token = converge.delta_token(a.counter("k").increment())
    outcome: list[BaseException] = []
    started = threading.Event()

    def waiter() -> None:
        started.set()
        try:
            b.wait_for(token, timeout=120.0)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    started.wait()
    time.sleep(0.05)
    b.close()  # does not wait out the 120 s: the wait runs in slices
    t.join(timeout=150)
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], converge.ClosedError)


def test_bad_tokens_raise_and_change_nothing(open_engine: Open) -> None:
    a = open_engine(replica_id=1)
    delta = a.counter("x").increment()
    good = a.context()
    assert len(good) > 8
    before = a.context()
    bad = [good[:n] for n in range(1, len(good))]
    bad += [good[:i] + bytes([good[i] ^ 0x10]) + good[i + 1 :] for i in range(len(good))]
    bad += [good + b"\0", b"not a token", delta]
    for t in bad:
        with pytest.raises(converge.CorruptInputError):
            a.wait_for(t)
        with pytest.raises(converge.CorruptInputError):
            a.wait_for(t, timeout=math.inf)  # refused before any wait
        with pytest.raises(converge.CorruptInputError):
            a.token_missing(t)
        with pytest.raises(converge.CorruptInputError):
            converge.join_tokens(good, t)
        with pytest.raises(converge.CorruptInputError):
            converge.join_tokens(t)
    with pytest.raises(converge.CorruptInputError):
        converge.delta_token(good)
    with pytest.raises(converge.CorruptInputError):
        converge.delta_token(delta[:-1])
    assert a.context() == before
    assert a.counter("x").value() == 1

    with pytest.raises(converge.InvalidArgumentError):
        a.wait_for(good, timeout=-1)
    with pytest.raises(converge.InvalidArgumentError):
        a.wait_for(good, timeout=math.nan)
    with pytest.raises(TypeError):
        a.wait_for(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        converge.join_tokens(good, None)  # type: ignore[arg-type]
    a.close()
    with pytest.raises(converge.ClosedError):
        a.wait_for(good)
    with pytest.raises(converge.ClosedError):
        a.context()


def test_join_and_the_empty_token(open_engine: Open) -> None:
    a, b, c = open_engine(replica_id=1), open_engine(replica_id=2), open_engine(replica_id=3)
    da = a.orset("cart").add("tv")
    db = b.orset("cart").add("radio")
    ta, tb = converge.delta_token(da), converge.delta_token(db)
    both = converge.join_tokens(ta, tb)
    assert both == converge.join_tokens(tb, ta) == converge.join_tokens(both, ta, tb)
    assert converge.join_tokens(ta) == ta == converge.join_tokens(ta, b"")
    empty = converge.join_tokens()
    assert empty and converge.join_tokens(b"", b"") == empty
    c.wait_for(b"")
    c.wait_for(empty)
    assert c.token_missing(both) == 2
    c.merge("cart", da)
    assert c.token_missing(both) == 1
    c.merge("cart", db)
    c.wait_for(both)
    assert c.context() == both
    # memoryview, bytearray and str are accepted like everywhere else.
    c.wait_for(memoryview(both))
    c.wait_for(bytearray(both))


def test_batch_tokens(open_engine: Open) -> None:
    a, b, peer = open_engine(replica_id=1), open_engine(replica_id=2), open_engine(replica_id=9)
    shipped = peer.counter("peer").increment()
    with a.batch() as batch:
        batch.increment("k1", 1)
        batch.merge("peer", shipped)  # the peer's operation, not this write's
        batch.increment("k2", 2)
        batch.orset_add("s", "x")
    deltas = batch.deltas
    assert len(deltas) == 3
    token = deltas.token
    assert token is deltas.token  # computed once
    assert token == converge.join_tokens(*(d.token for d in deltas))
    assert deltas[1].token == converge.delta_token(deltas[1].delta)
    b.merge("peer", shipped)
    assert b.token_missing(token) == 3
    with b.batch(deltas=False) as remote:
        remote.merge_many(deltas)
    b.wait_for(token)
    assert b.counter("k2").value() == 2

    # Merges only: no operation of its own, the empty token.
    with b.batch() as merges:
        merges.merge("peer", shipped)
    assert len(merges.deltas) == 0
    assert merges.deltas.token == converge.join_tokens()
    assert converge.DeltaList(b"", b"", b"", b"").token == converge.join_tokens()


def test_join_is_a_set_union(tmp_path: pathlib.Path) -> None:
    """Joining the tokens of any writes, in any order and grouping, gives
    the same bytes, and a fresh replica that merged exactly those writes
    holds exactly those whose origin's earlier writes it also merged (the
    others wait for them, causal delivery) and, once it merged those, all
    of them."""
    writers = {r: Engine(tmp_path / f"w{r}", replica_id=r, durability="none") for r in (1, 2, 3)}
    made: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    try:
        for r, w in writers.items():
            for s in range(1, 7):
                d = w.counter("c").increment()
                made[(r, s)] = (d, converge.delta_token(d))
    finally:
        for w in writers.values():
            w.close()
    runs = iter(range(1_000_000))

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.sampled_from(sorted(made)), max_size=12), st.randoms())
    def check(dots: list[tuple[int, int]], rnd: random.Random) -> None:
        tokens = [made[x][1] for x in dots]
        joined = converge.join_tokens(*tokens)
        shuffled = list(tokens)
        rnd.shuffle(shuffled)
        assert converge.join_tokens(*shuffled) == joined
        half = len(shuffled) // 2
        regrouped = converge.join_tokens(
            converge.join_tokens(*shuffled[:half]), converge.join_tokens(*shuffled[half:])
        )
        assert regrouped == joined
        chosen = set(dots)
        visible = [x for x in chosen if all((x[0], k) in chosen for k in range(1, x[1]))]
        closure = {(r, k) for r, s in chosen for k in range(1, s + 1)}
        with Engine(tmp_path / f"sink{next(runs)}", replica_id=4, durability="none") as sink:
            assert sink.token_missing(joined) == len(chosen)
            for x in reversed(dots):
                sink.merge("c", made[x][0])
            held = converge.join_tokens(*(made[x][1] for x in visible))
            sink.wait_for(held)
            assert sink.context() == held
            assert sink.pending().entries == len(chosen) - len(visible)
            for x in sorted(closure - chosen, reverse=True):
                sink.merge("c", made[x][0])
            sink.wait_for(joined)
            assert sink.context() == converge.join_tokens(*(made[x][1] for x in closure))
            assert sink.pending().entries == 0

    check()


def test_a_converged_sync_session_makes_the_peers_tokens_visible(open_engine: Open) -> None:
    a, b = open_engine(replica_id=1), open_engine(replica_id=2)
    token = converge.delta_token(a.orset("cart").add(b"tv"))
    with pytest.raises(converge.NotYetVisibleError):
        b.wait_for(token)
    assert a.sync_with(b) == ("converged", "converged")
    b.wait_for(token)
    assert a.context() == b.context()
