"""Every CRDT type and operation through the typed handles."""

from __future__ import annotations

import uuid

import pytest

import converge
from converge import Engine


def test_counter_increment_value_and_delta(open_engine) -> None:
    a, b = open_engine(), open_engine()
    c = a.counter(b"likes")
    assert c.value() == 0
    d1 = c.increment(5)
    d2 = c.increment()
    assert isinstance(d1, bytes) and d1
    assert c.value() == 6
    b.merge(b"likes", d1)
    assert b.counter(b"likes").value() == 5
    b.counter(b"likes").merge(d2)
    b.merge(b"likes", d1)  # duplicate: harmless
    assert b.counter("likes").value() == 6
    assert a.key_type(b"likes") == "gcounter" == converge.Counter.type_name


def test_counter_beyond_int64_is_read_exactly(db: Engine) -> None:
    c = db.counter("big")
    c.increment(2**63 - 1)
    c.increment(10)
    assert c.value() == 2**63 + 9
    with pytest.raises(converge.CounterOverflowError) as e:
        c.increment(2**64 - 1)
    assert isinstance(e.value, ArithmeticError)
    assert c.value() == 2**63 + 9


def test_pncounter(db: Engine) -> None:
    p = db.pncounter("p")
    p.add(-3)
    p.increment(10)
    p.decrement(2)
    assert p.value() == 5
    p.add(-(2**63))
    assert p.value() == 5 - 2**63
    assert db.key_type("p") == "pncounter"


def test_gset(db: Engine) -> None:
    s = db.gset("g")
    assert s.members() == []
    s.add(b"b")
    s.add("a")
    s.add(bytearray(b"c"))
    s.add(memoryview(b"b"))
    assert s.members() == [b"a", b"b", b"c"]
    assert b"a" in s and "z" not in s
    assert s.read().context == db.gset("g").read().context
    assert db.key_type("g") == "gset"


def test_twopset_remove_is_final(open_engine) -> None:
    a, b = open_engine(), open_engine()
    s = a.twopset("t")
    deltas = [s.add("x"), s.add("y"), s.remove("x"), s.add("x")]
    assert s.members() == [b"y"]
    for d in reversed(deltas):
        b.merge("t", d)
    assert b.twopset("t").members() == [b"y"]
    assert a.key_type("t") == "2pset"


def test_orset_add_remove_and_observed_remove(open_engine) -> None:
    a, b = open_engine(), open_engine()
    cart = a.orset(b"cart:alice")
    add_tv = cart.add(b"tv")
    cart.add(b"radio")
    read = cart.read()
    assert read.members == [b"radio", b"tv"] and read.context
    # A concurrent add on b, then a's remove of what it observed: add wins.
    b.merge(b"cart:alice", add_tv)
    add_again = b.orset(b"cart:alice").add(b"tv")
    remove = cart.remove(b"tv", context=read.context)
    assert remove is not None
    assert cart.members() == [b"radio"]
    a.merge(b"cart:alice", add_again)
    b.merge(b"cart:alice", remove)
    assert a.orset(b"cart:alice").members() == [b"radio", b"tv"]
    assert b.orset(b"cart:alice").members() == [b"tv"]
    assert cart.remove("tv") is not None
    assert cart.members() == [b"radio"]
    assert a.key_type(b"cart:alice") == "orset"
    # A remove that removes nothing is no operation: no delta, no key.
    assert cart.remove("tv") is None
    assert cart.remove("radio", context=b"") is None
    assert a.orset("never").remove("x") is None
    assert a.key_type("never") is None


def test_lww_register(open_engine) -> None:
    a, b = open_engine(), open_engine()
    r = a.lww("r")
    assert r.get() is None and r.read() is None
    d1 = r.set(b"one")
    d = r.set("two")
    assert r.get() == b"two"
    value = r.read()
    assert value is not None
    assert value.value == b"two"
    assert value.stamp.replica == a.replica_id and value.stamp.wall_ms > 0
    # Causal delivery: the second write waits for the first at b.
    b.merge("r", d)
    assert b.lww("r").get() is None and b.pending().entries == 1
    b.merge("r", d1)
    assert b.lww("r").get() == b"two" and b.pending().entries == 0
    assert a.key_type("r") == "lww"


def test_fww_register_keeps_the_first_write(open_engine) -> None:
    a = open_engine()
    f = a.fww("f")
    f.set("first")
    f.set("second")
    assert f.get() == b"first"
    assert f.read().value == b"first"  # type: ignore[union-attr]
    assert a.key_type("f") == "fww"


def test_mvregister_siblings_context_and_resolve(open_engine) -> None:
    a, b = open_engine(), open_engine()
    m = a.mvreg("m")
    assert m.read().siblings == [] and m.values() == []
    da = m.write("from-a")
    db_ = b.mvreg("m").write("from-b")
    a.merge("m", db_)
    b.merge("m", da)
    assert sorted(m.values()) == [b"from-a", b"from-b"]
    read = m.read()
    assert {s.replica for s in read.siblings} == {a.replica_id, b.replica_id}
    dm = m.write("merged", context=read.context)
    assert m.values() == [b"merged"]
    # A blind write (no context) keeps the current value as a sibling.
    dbl = m.write("blind")
    assert sorted(m.values()) == [b"blind", b"merged"]
    seen = []

    def pick(siblings: list[converge.Sibling]) -> bytes:
        seen.append([s.value for s in siblings])
        return b"|".join(sorted(s.value for s in siblings))

    delta = m.resolve(pick)
    assert seen == [[b"merged", b"blind"]] or seen == [[b"blind", b"merged"]]
    assert delta and m.values() == [b"blind|merged"]
    assert m.resolve(pick) is None and len(seen) == 1
    # Causal delivery: the resolution waits at b for a's earlier writes.
    b.merge("m", delta)
    assert sorted(b.mvreg("m").values()) == [b"from-a", b"from-b"]
    b.merge("m", dbl)
    b.merge("m", dm)
    assert b.mvreg("m").values() == [b"blind|merged"]
    assert a.key_type("m") == "mvreg"


def test_resolve_may_read_the_engine_inside_the_callback(db: Engine) -> None:
    other = db.counter("n")
    other.increment(7)
    m = db.mvreg("m")
    m.write("x")
    m.write("y")
    assert m.resolve(lambda sibs: str(other.value()).encode()) is not None
    assert m.values() == [b"7"]


def test_state_bytes_key_type_and_replica_ids(open_engine) -> None:
    rid = uuid.UUID(int=42)
    a = open_engine(replica_id=rid)
    b = open_engine(replica_id=b"\x01" * 16)
    assert a.replica_id == rid.bytes and b.replica_id == b"\x01" * 16
    assert a.state_bytes("nothing") is None and a.key_type("nothing") is None
    a.orset("s").add("x")
    a.counter("c").increment(3)
    for key in ("s", "c"):
        state = a.state_bytes(key)
        assert state
        b.merge(key, state)
        assert b.state_bytes(key) == state
    assert b.orset("s").members() == [b"x"] and b.counter("c").value() == 3
    assert a.counter("c").state_bytes() == a.state_bytes("c")


def test_keys_with_types_and_prefix(db: Engine) -> None:
    db.counter("user:1:likes").increment()
    db.orset("user:1:cart").add("tv")
    db.lww("user:2:name").set("bob")
    db.gset(b"zeta\xff").add("x")
    assert list(db.keys()) == [
        (b"user:1:cart", "orset"),
        (b"user:1:likes", "gcounter"),
        (b"user:2:name", "lww"),
        (b"zeta\xff", "gset"),
    ]
    assert [k for k, _ in db.keys(prefix="user:1:")] == [b"user:1:cart", b"user:1:likes"]
    assert list(db.keys(prefix=b"none")) == []
    it = db.keys()
    db.counter("user:3").increment()  # after the snapshot
    assert len(list(it)) == 4
    with pytest.raises(StopIteration):
        next(it)


def test_anti_entropy_root_verify_settle_and_version_vector(open_engine) -> None:
    a, b = open_engine(), open_engine()
    assert a.root() == b.root() and a.root().keys == 0
    assert a.verify().consistent
    vv0 = a.version_vector()
    for key, delta in [("c", a.counter("c").increment(2)), ("s", a.orset("s").add("x"))]:
        b.merge(key, delta)
    assert a.version_vector() != vv0
    assert a.settle() >= 0
    assert a.unsettled_keys() == 0
    ra, rb = a.root(), b.root()
    assert ra == rb and ra.keys == 2 and len(ra.hash) == 16
    report = a.verify()
    assert report.consistent and report.keys == 2
    a.flush()
    a.sync_wal()


def test_data_survives_reopen(tmp_path) -> None:
    path = tmp_path / "store"
    with Engine(path, durability="sync") as db:
        rid = db.replica_id
        db.counter("c").increment(4)
        db.orset("s").add("x")
    with Engine(str(path), durability="none") as db:
        assert db.replica_id == rid
        assert db.counter("c").value() == 4 and db.orset("s").members() == [b"x"]
    with pytest.raises(converge.ReplicaMismatchError):
        Engine(path, replica_id=b"\x09" * 16)


def test_open_options_are_passed_through(tmp_path) -> None:
    with Engine(
        tmp_path / "o",
        durability="sync",
        block_cache_bytes=2 << 20,
        write_buffer_bytes=2 << 20,
        background_jobs=1,
        compression=False,
        bloom_bits_per_key=0.0,
        lock_stripes=16,
        max_successive_merges=4,
        type_cache_entries=0,
        state_cache_bytes=0,
    ) as db:
        db.counter("c").increment()
        assert db.counter("c").value() == 1
    with pytest.raises(converge.StorageError) as e:
        Engine(tmp_path / "missing", create_if_missing=False)
    assert type(e.value) is converge.StorageError  # RocksDB's InvalidArgument


def test_without_anti_entropy_the_tree_calls_are_refused(tmp_path) -> None:
    with Engine(tmp_path / "n", anti_entropy=False) as db:
        db.counter("c").increment()
        for call in (db.root, db.verify, db.settle):
            with pytest.raises(converge.InvalidArgumentError):
                call()
        assert db.counter("c").value() == 1
    with Engine(tmp_path / "n", anti_entropy=True) as db:
        assert db.root().keys == 1 and db.verify().consistent
