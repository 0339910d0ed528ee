"""Deletes and the collection of tombstones through the bindings: the cart
across two engines, absent versus empty, deletes based on an earlier read,
batches, collection on three engines that are members of each other (one
offline holding it back), a replica restored from an old copy of its
directory refused with BehindHorizonError, and bad input that changes
nothing."""

from __future__ import annotations

import shutil
from typing import Callable, Optional

import pytest

import converge
from converge import (
    BehindHorizonError,
    CollectReport,
    CorruptInputError,
    CrdtType,
    Engine,
    InvalidArgumentError,
    Member,
    SyncOutcome,
    WrongTypeError,
)

Factory = Callable[..., Engine]


def rid(n: int) -> bytes:
    return bytes([n]) * 16


def sync_ack(a: Engine, b: Engine) -> tuple[SyncOutcome, SyncOutcome]:
    """One session, ``a`` initiating, carried by hand; then each side
    acknowledges what the other holds when the other is a member."""
    sa, sb = a.sync_initiate(), b.sync_respond()
    assert sa.first_message is not None
    in_flight, to = [sa.first_message], sb
    while in_flight:
        replies: list[bytes] = []
        for m in in_flight:
            replies.extend(to.handle(m))
        in_flight, to = replies, (sa if to is sb else sb)
    for me, peer, session in ((a, b, sa), (b, a, sb)):
        ack = session.acknowledged()
        if ack is not None and peer.replica_id in {m.replica_id for m in me.members()}:
            me.acknowledge(peer.replica_id, ack)
    outcomes = sa.outcome, sb.outcome
    sa.close()
    sb.close()
    return outcomes


def make_members(*engines: Engine) -> None:
    for a in engines:
        for b in engines:
            if a is not b:
                a.register_peer(b.replica_id)


def dump(db: Engine) -> dict[bytes, Optional[bytes]]:
    """Every stored key and its encoded state."""
    return {k: db.state_bytes(k) for k, _ in db.stored_keys()}


def test_cart_across_two_engines(open_engine: Factory) -> None:
    phone = open_engine(replica_id=rid(1))
    laptop = open_engine(replica_id=rid(2))
    laptop.merge("cart", phone.orset("cart").add("tv"))
    # Checkout on the phone deletes the cart; the laptop adds a radio.
    delete = phone.delete("cart")
    assert delete
    assert phone.key_type("cart") is None
    radio = laptop.orset("cart").add("radio")
    phone.merge("cart", radio)
    laptop.merge("cart", delete)
    laptop.merge("cart", delete)  # duplicates change nothing
    phone.merge("cart", radio)
    for db in (phone, laptop):
        assert db.orset("cart").members() == [b"radio"]
        assert [k for k, _ in db.keys()] == [b"cart"]
    assert phone.state_bytes("cart") == laptop.state_bytes("cart")
    phone.sync_with(laptop)
    assert phone.root() == laptop.root()


def test_absent_is_not_empty(db: Engine) -> None:
    s = db.orset("s")
    s.add("x")
    s.remove("x")
    # Emptied, not deleted: present.
    assert db.key_type("s") == CrdtType.ORSET
    assert [k for k, _ in db.keys()] == [b"s"]
    assert db.delete("s") is not None
    assert db.key_type("s") is None
    assert s.members() == []
    assert list(db.keys()) == []
    # The tombstone is a stored state, with the type the key keeps.
    assert list(db.stored_keys()) == [(b"s", CrdtType.ORSET)]
    assert db.state_bytes("s") is not None
    # Nothing to delete: None, nothing changed.
    before = db.state_bytes("s")
    assert db.delete("s") is None
    assert db.delete("never") is None
    assert db.state_bytes("s") == before
    assert db.state_bytes("never") is None
    # The key keeps its type while the tombstone lives.
    with pytest.raises(WrongTypeError):
        db.counter("s").increment()
    with pytest.raises(WrongTypeError):
        db.counter("s").value()
    s.add("y")
    assert s.members() == [b"y"]
    assert db.key_type("s") == CrdtType.ORSET


def test_every_type_reads_a_deleted_key_as_never_written(db: Engine) -> None:
    db.counter("g").increment(3)
    db.pncounter("pn").add(-2)
    db.gset("gs").add("x")
    db.twopset("tp").add("x")
    db.lww("lww").set("v")
    db.fww("fww").set("v")
    db.mvreg("mv").write("v")
    keys = ["g", "pn", "gs", "tp", "lww", "fww", "mv"]
    for k in keys:
        assert db.delete(k) is not None, k
        assert db.key_type(k) is None, k
    assert db.counter("g").value() == 0
    assert db.pncounter("pn").value() == 0
    assert db.gset("gs").members() == [] and db.twopset("tp").members() == []
    assert db.lww("lww").get() is None and db.fww("fww").get() is None
    assert db.mvreg("mv").values() == []
    assert list(db.keys()) == []
    assert sorted(k for k, _ in db.stored_keys()) == sorted(k.encode() for k in keys)


def test_delete_based_on_an_earlier_read(db: Engine) -> None:
    c = db.counter("c")
    c.increment(3)
    read = db.state_bytes("c")
    assert read is not None
    c.increment(4)
    assert db.delete("c", observed=read) is not None
    assert c.value() == 4


def test_bad_observed_bytes_change_nothing(db: Engine) -> None:
    db.counter("c").increment(3)
    db.gset("g").add("x")
    before = dump(db)
    with pytest.raises(CorruptInputError):
        db.delete("c", observed=b"\xff\x00garbage")
    with pytest.raises(CorruptInputError):
        db.delete("c", observed=b"")
    # The state of another type (a G-Set) for a counter.
    gset_state = db.state_bytes("g")
    assert gset_state is not None
    with pytest.raises(WrongTypeError):
        db.delete("c", observed=gset_state)
    with pytest.raises(TypeError):
        db.delete("c", observed=5)  # type: ignore[arg-type]
    assert dump(db) == before
    assert db.counter("c").value() == 3


def test_deletes_in_batches(db: Engine) -> None:
    db.gset("g").add("x")
    g_state = db.state_bytes("g")
    with db.batch() as b:
        b.increment("n", 1)
        b.delete("n")
        b.delete("never")  # nothing to delete: no delta
        b.delete("g", observed=g_state)
        with pytest.raises(CorruptInputError):
            b.delete("g", observed=b"junk")
        assert len(b) == 4
    assert [d.key for d in b.deltas] == [b"n", b"n", b"g"]
    assert db.key_type("n") is None and db.key_type("g") is None
    # A delete based on a state of another type fails the whole batch.
    db.counter("c").increment(1)
    before = dump(db)
    b2 = db.batch()
    b2.increment("c", 5)
    b2.delete("c", observed=g_state)
    with pytest.raises(WrongTypeError):
        b2.commit()
    b2.close()
    assert dump(db) == before


def test_collection_waits_for_every_member(open_engine: Factory) -> None:
    a = open_engine(replica_id=rid(1))
    b = open_engine(replica_id=rid(2), changes_feed=False)
    c = open_engine(replica_id=rid(3))
    make_members(a, b, c)
    # Membership works with the changes feed off (feed_info does not).
    assert [m.replica_id for m in b.members()] == [rid(1), rid(3)]
    assert all(isinstance(m, Member) for m in b.members())
    with pytest.raises(InvalidArgumentError):
        b.feed_info()
    with a.batch() as w:
        for i in range(5):
            w.increment(f"c{i}", i + 1)
        w.orset_add("cart", "tv")
    written = w.deltas
    for x, y in ((a, b), (a, c), (b, c)):
        assert sync_ack(x, y)[0] in ("converged", "equal")
    # A's record is what B acknowledged to it.
    assert dict(a.members())[rid(2)] == a.context()

    with a.batch() as d:
        d.delete("cart")
        d.delete("c0")
    # Nobody acknowledged the deletes: nothing collected, both wait.
    r = a.collect()
    assert isinstance(r, CollectReport)
    assert (r.collected, r.purged, r.waiting) == (0, 0, 2)
    assert r.waiting_on == {rid(2): 2, rid(3): 2}
    assert a.state_bytes("cart") is not None
    # B acknowledges; C is offline and holds collection back.
    sync_ack(a, b)
    r = a.tombstones()
    assert (r.collected, r.waiting, r.waiting_on) == (0, 2, {rid(3): 2})
    assert a.collect().collected == 0
    # C comes back.
    sync_ack(c, a)
    assert a.tombstones().collected == 2  # would collect, collects nothing
    assert a.state_bytes("cart") is not None
    r = a.collect()
    assert (r.collected, r.purged, r.waiting, r.waiting_on) == (2, 2, 0, {})
    assert r.horizon
    assert a.state_bytes("cart") is None
    assert sorted(k for k, _ in a.stored_keys()) == [b"c1", b"c2", b"c3", b"c4"]
    # B and C collect once each knows every member holds the deletes.
    sync_ack(b, c)
    for e in (b, c):
        r = e.collect()
        assert (r.collected, r.purged) == (2, 2), r
    for e in (a, b, c):
        assert e.tombstones().waiting == 0
        assert e.verify().consistent
    assert dump(a) == dump(b) == dump(c)
    assert a.root() == b.root() == c.root()
    assert a.root().keys == 4
    assert a.sync_with(b) == ("equal", "equal")
    # Redelivering the writes from before the deletes, and the deletes,
    # brings nothing back, on the replica that wrote them or another.
    for e in (a, b):
        for delta in list(written) + list(d.deltas):
            e.merge(delta.key, delta.delta)
        assert e.state_bytes("cart") is None and e.state_bytes("c0") is None
        assert e.orset("cart").members() == [] and e.counter("c0").value() == 0
    assert dump(a) == dump(b) == dump(c)


def test_a_replica_restored_from_an_old_copy_is_refused(open_engine: Factory, tmp_path) -> None:
    a = open_engine(replica_id=rid(1))
    b = converge.Engine(tmp_path / "b", replica_id=rid(2))
    make_members(a, b)
    a.orset("cart").add("tv")
    sync_ack(a, b)
    # A copy of B's directory, taken while B is closed.
    b.close()
    shutil.copytree(tmp_path / "b", tmp_path / "b-old")
    b = converge.Engine(tmp_path / "b", replica_id=rid(2))
    assert a.delete("cart") is not None
    sync_ack(a, b)
    assert a.collect().purged == 1
    b.close()
    # B comes back from the old copy, cart and tv included.
    restored = open_engine("b-old", replica_id=rid(2))
    assert restored.orset("cart").members() == [b"tv"]
    before = dump(a)
    with pytest.raises(BehindHorizonError) as info:
        a.sync_with(restored)
    assert info.value.status == 26 and "new replica id" in info.value.message
    with pytest.raises(BehindHorizonError):
        sync_ack(restored, a)
    assert dump(a) == before
    assert a.state_bytes("cart") is None
    # The documented recovery: a new, empty replica with a new id catches
    # up; the old id is retired.
    a.counter("n").increment()
    fresh = open_engine(replica_id=rid(7))
    assert fresh.sync_with(a) == ("converged", "converged")
    a.remove_peer(rid(2))
    a.register_peer(rid(7))
    assert [m.replica_id for m in a.members()] == [rid(7)]
    assert dump(fresh) == dump(a)


def test_acknowledged_is_none_unless_the_session_ended_well(open_engine: Factory) -> None:
    a = open_engine(replica_id=rid(1))
    b = open_engine(replica_id=rid(2))
    a.counter("n").increment()
    sa = a.sync_initiate()
    assert sa.acknowledged() is None  # running
    sb = b.sync_respond()
    with pytest.raises((converge.CorruptInputError, converge.SyncProtocolError)):
        sb.handle(b"not a message")
    assert sb.outcome == SyncOutcome.FAILED
    assert sb.acknowledged() is None
    sa.close()
    sb.close()
    assert sync_ack(a, b) == ("converged", "converged")


def test_unregistered_peers_cannot_acknowledge(db: Engine) -> None:
    with pytest.raises(InvalidArgumentError):
        db.acknowledge(rid(9), db.context())
    assert db.members() == []
