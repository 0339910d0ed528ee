"""Anti-entropy sync sessions between replicas."""

from __future__ import annotations

import pytest

import converge
from converge import Engine


def diverge(a: Engine, b: Engine) -> None:
    a.counter("c").increment(3)
    b.counter("c").increment(4)
    a.orset("s").add("x")
    b.lww("r").set("b")
    with a.batch(deltas=False) as batch:
        batch.increment_many((f"k{i}", i + 1) for i in range(50))


def run_session(a: Engine, b: Engine, **config: object) -> tuple[converge.SyncSession, converge.SyncSession, int]:
    """Drive a session over an in-memory transport; returns both sides and
    the number of messages exchanged."""
    init = a.sync_initiate(**config)  # type: ignore[arg-type]
    resp = b.sync_respond(**config)  # type: ignore[arg-type]
    assert init.first_message and resp.first_message is None
    to_b, to_a, sent = [init.first_message], [], 1
    for _ in range(100):
        if not to_a and not to_b:
            break
        for m in to_b:
            to_a += resp.handle(m)
        to_b = []
        for m in to_a:
            to_b += init.handle(m)
        sent += len(to_a) + len(to_b)
        to_a = []
    assert init.done and resp.done
    return init, resp, sent


def test_a_session_over_messages_makes_the_replicas_equal(open_engine) -> None:
    a, b = open_engine(), open_engine()
    diverge(a, b)
    assert a.root() != b.root()
    with a.sync_initiate() as probe:
        assert probe.outcome == "running" and not probe.done
    init, resp, sent = run_session(a, b)
    assert (init.outcome, resp.outcome) == ("converged", "converged")
    assert a.root() == b.root()
    assert a.counter("c").value() == b.counter("c").value() == 7
    assert b.orset("s").members() == [b"x"] and a.lww("r").get() == b"b"
    stats = init.stats()
    assert stats.messages_sent >= 1 and stats.bytes_sent > 0
    assert init.stats().messages_sent + resp.stats().messages_sent == sent
    again, _, _ = run_session(a, b, use_iblt=False)
    assert again.outcome == "equal"


def test_sync_with_runs_a_whole_session(open_engine) -> None:
    a, b = open_engine(), open_engine()
    diverge(a, b)
    outcomes = a.sync_with(b, message_budget=1024)
    assert "converged" in outcomes and a.root() == b.root()
    assert a.sync_with(b) == ("equal", "equal")
    with pytest.raises(converge.InvalidArgumentError):
        a.sync_with(a)


def test_bad_messages_end_the_session_and_change_nothing(open_engine) -> None:
    a, b = open_engine(), open_engine()
    diverge(a, b)
    root = b.root()
    resp = b.sync_respond()
    with pytest.raises(converge.CorruptInputError):
        resp.handle(b"\x01garbage")
    assert resp.outcome == "failed" and b.root() == root
    init = a.sync_initiate()
    resp = b.sync_respond()
    replies = resp.handle(init.first_message or b"")
    with pytest.raises(converge.SyncProtocolError):
        resp.handle(init.first_message or b"")  # out of sequence
    assert resp.outcome == "failed" and replies


def test_sessions_are_managed_handles_closed_with_their_engine(tmp_path) -> None:
    db = Engine(tmp_path / "s")
    session = db.sync_respond()
    db.close()
    assert session.closed
    with pytest.raises(converge.ClosedError):
        session.handle(b"x")
    with pytest.raises(converge.ClosedError):
        db.sync_initiate()
    with Engine(tmp_path / "s"):  # the store really closed
        pass


def test_replies_are_pulled_one_message_at_a_time(open_engine) -> None:
    a, b = open_engine(), open_engine()
    with a.batch(deltas=False) as batch:
        batch.increment_many((f"a{i}", 1) for i in range(3000))
    init = a.sync_initiate(use_iblt=False, message_budget=4096)
    resp = b.sync_respond(use_iblt=False, message_budget=4096)
    assert init.first_message
    resp.receive(init.first_message)
    pulled = 0
    # One message in flight at a time: the side with something to send
    # sends it, the other takes it.
    sides = [(resp, init), (init, resp)]
    while True:
        for sender, receiver in sides:
            m = sender.next_message()
            if m is not None:
                assert len(m) < 2 * 4096 + 1024
                receiver.receive(m)
                pulled += 1
                break
        else:
            break
    assert (init.outcome, resp.outcome) == ("converged", "converged")
    assert pulled > 20, "a's 3,000 states travel in many small messages"
    assert not init.truncated and not resp.truncated
    assert a.root() == b.root()


def test_a_message_out_of_turn_fails_the_side(open_engine) -> None:
    a, b = open_engine(), open_engine()
    a.counter("x").increment(1)
    init, resp = a.sync_initiate(), b.sync_respond()
    assert init.first_message
    resp.receive(init.first_message)
    estimate = resp.next_message()
    assert estimate is not None and resp.next_message() is None
    init.receive(estimate)
    with pytest.raises(converge.SyncProtocolError):
        init.receive(estimate)
    assert init.outcome == "failed"
