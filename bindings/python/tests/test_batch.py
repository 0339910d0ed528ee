"""Atomic batches: every operation kind, deltas, context manager rules."""

from __future__ import annotations

import pytest

import converge
from converge import Engine


def test_batch_of_every_operation_commits_atomically(open_engine) -> None:
    a, b = open_engine(), open_engine()
    ctx = a.orset("or").read().context
    mv_ctx = a.mvreg("mv").read().context
    with a.batch() as batch:
        batch.increment("c", 2)
        batch.increment(b"c")
        batch.pn_add("p", -4)
        batch.gset_add("g", "x")
        batch.twop_add("t", "x")
        batch.twop_add("t", "y")
        batch.twop_remove("t", "x")
        batch.orset_add("or", "x")
        batch.orset_add("or", "y")
        batch.orset_remove("or", "y")
        batch.orset_remove("or", "x", context=ctx)  # saw nothing: keeps x
        batch.lww_set("l", "v")
        batch.fww_set("f", "first")
        batch.mv_write("mv", "m", context=mv_ctx)
        assert len(batch) == 14
        assert a.counter("c").value() == 0  # nothing written yet
    assert batch.closed
    # The remove with a context that saw nothing removed nothing: no delta.
    assert len(batch.deltas) == 13
    assert [d.key for d in batch.deltas][:3] == [b"c", b"c", b"p"]
    assert a.counter("c").value() == 3 and a.pncounter("p").value() == -4
    assert a.gset("g").members() == [b"x"] and a.twopset("t").members() == [b"y"]
    assert a.orset("or").members() == [b"x"]
    assert a.lww("l").get() == b"v" and a.fww("f").get() == b"first"
    assert a.mvreg("mv").values() == [b"m"]
    with b.batch() as remote:
        remote.merge_many(batch.deltas)
    assert remote.deltas == []  # merges produce no deltas
    for key in [b"c", b"p", b"g", b"t", b"or", b"l", b"f", b"mv"]:
        assert b.state_bytes(key) == a.state_bytes(key)


def test_an_exception_in_the_block_writes_nothing(db: Engine) -> None:
    with pytest.raises(RuntimeError):
        with db.batch() as batch:
            batch.increment("c", 1)
            raise RuntimeError("abort")
    assert batch.closed
    assert db.counter("c").value() == 0 and db.key_type("c") is None


def test_a_failing_operation_writes_nothing(db: Engine) -> None:
    db.gset("g").add("x")
    batch = db.batch()
    batch.increment("c", 1)
    batch.increment("g", 1)  # g is a G-Set
    with pytest.raises(converge.WrongTypeError):
        batch.commit()
    assert db.key_type("c") is None
    batch.clear()
    batch.merge("c", b"\x01garbage")
    with pytest.raises(converge.CorruptInputError):
        batch.commit()
    assert db.key_type("c") is None
    batch.close()


def test_commit_returns_deltas_and_empties_the_batch_for_reuse(db: Engine) -> None:
    batch = db.batch()
    batch.increment_many([("a", 1), (b"b", 2), (bytearray(b"a"), 3)])
    deltas = batch.commit()
    assert [d.key for d in deltas] == [b"a", b"b", b"a"] and deltas == batch.deltas
    assert len(batch) == 0
    batch.pn_add_many([("p", -1), ("p", -1)])
    assert len(batch.commit()) == 2
    assert db.counter("a").value() == 4 and db.pncounter("p").value() == -2
    batch.close()
    batch.close()


def test_deltas_can_be_skipped(db: Engine) -> None:
    with db.batch(deltas=False) as batch:
        batch.increment_many((f"k{i % 10}", 1) for i in range(100))
    assert batch.deltas == []
    assert sum(db.counter(f"k{i}").value() for i in range(10)) == 100


def test_bad_items_in_a_bulk_add_add_nothing(db: Engine) -> None:
    batch = db.batch()
    with pytest.raises(converge.InvalidArgumentError):
        batch.increment_many([("a", 1), ("b", -1)])
    with pytest.raises(TypeError):
        batch.increment_many([("a", 1), (3, 1)])
    with pytest.raises(converge.InvalidArgumentError):
        batch.pn_add_many([("a", 1), ("b", 2**63)])
    assert len(batch) == 0
    batch.close()


def test_batch_keeps_the_engine_alive_and_fails_after_engine_close(open_engine) -> None:
    db = open_engine()
    batch = db.batch()
    batch.increment("c")
    db.close()
    with pytest.raises(converge.ClosedError):
        batch.commit()
    batch.close()
    with pytest.raises(converge.ClosedError):
        batch.increment("c")


def test_delta_list_is_a_packed_sequence(tmp_path):
    with converge.Engine(tmp_path / "dl", replica_id=9) as db:
        b = db.batch()
        b.increment_many([(b"a", 1), (b"bb", 2), (b"a", 3)])
        deltas = b.commit()
        b.close()
        assert isinstance(deltas, converge.DeltaList)
        assert len(deltas) == 3
        assert deltas[-1].key == b"a" and deltas[1].key == b"bb"
        assert [d.key for d in deltas[0:2]] == [b"a", b"bb"]
        assert deltas == list(deltas) and deltas != list(deltas)[:2]
        with pytest.raises(IndexError):
            deltas[3]
        total = sum(len(d.key) for d in deltas)
        assert len(deltas.keys_buffer) == total
        assert len(deltas.deltas_buffer) == sum(len(d.delta) for d in deltas)
        with converge.Engine(tmp_path / "peer", replica_id=10) as peer:
            with peer.batch() as p:
                p.merge_many(deltas)
            assert peer.counter(b"a").value() == 4
