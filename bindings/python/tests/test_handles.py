"""Managed handles: close() is idempotent, use after close raises
ClosedError, `with` works, finalizers release what was not closed, and
children keep their engine alive."""

from __future__ import annotations

import gc
import weakref

import pytest

import converge
from converge import Engine


def test_close_is_idempotent_and_use_after_close_raises(tmp_path) -> None:
    db = Engine(tmp_path / "s")
    counter = db.counter("c")
    counter.increment()
    assert not db.closed
    db.close()
    db.close()
    assert db.closed
    for use in (
        lambda: counter.increment(),
        lambda: counter.value(),
        lambda: db.orset("s").members(),
        lambda: db.mvreg("m").resolve(lambda s: b""),
        lambda: db.merge("c", b"x"),
        lambda: db.keys(),
        lambda: db.root(),
        lambda: db.version_vector(),
        lambda: db.batch(),
        lambda: db.__enter__(),
    ):
        with pytest.raises(converge.ClosedError):
            use()


def test_with_closes_and_the_store_can_be_reopened(tmp_path) -> None:
    with Engine(tmp_path / "s") as db:
        db.counter("c").increment(2)
    assert db.closed
    with Engine(tmp_path / "s") as again:
        assert again.counter("c").value() == 2


def test_an_unclosed_engine_is_closed_by_its_finalizer(tmp_path) -> None:
    db = Engine(tmp_path / "s")
    db.counter("c").increment()
    ref = weakref.ref(db)
    del db
    gc.collect()
    assert ref() is None
    with Engine(tmp_path / "s") as again:  # the RocksDB lock was released
        assert again.counter("c").value() == 1


def test_children_keep_the_engine_alive(tmp_path) -> None:
    counter = Engine(tmp_path / "s").counter("c")
    batch = counter.engine.batch()
    gc.collect()
    counter.increment(3)
    batch.increment("c", 1)
    batch.commit()
    assert counter.value() == 4
    it = counter.engine.keys()
    engine_ref = weakref.ref(counter.engine)
    del counter, batch
    gc.collect()
    assert engine_ref() is not None  # the iterator holds it
    assert list(it) == [(b"c", "gcounter")]
    del it
    gc.collect()
    assert engine_ref() is None
    with Engine(tmp_path / "s") as again:
        assert again.counter("c").value() == 4


def test_engine_close_closes_open_iterators(tmp_path) -> None:
    db = Engine(tmp_path / "s")
    for i in range(3):
        db.counter(f"k{i}").increment()
    it = db.keys()
    assert next(it) == (b"k0", "gcounter")
    db.close()
    assert it.closed
    with pytest.raises(converge.ClosedError):
        next(it)
    with Engine(tmp_path / "s") as again:  # the store really closed
        assert len(list(again.keys())) == 3


def test_iterator_and_batch_handles(db: Engine) -> None:
    db.counter("a").increment()
    with db.keys() as it:
        assert next(it) == (b"a", "gcounter")
    assert it.closed
    with pytest.raises(converge.ClosedError):
        next(it)
    it.close()
    batch = db.batch()
    batch.close()
    batch.close()
    with pytest.raises(converge.ClosedError):
        len(batch)
    with pytest.raises(converge.ClosedError):
        with batch:
            pass


def test_an_unclosed_batch_and_iterator_are_freed_by_finalizers(db: Engine) -> None:
    db.counter("a").increment()
    batch, it = db.batch(), db.keys()
    refs = [weakref.ref(batch), weakref.ref(it)]
    del batch, it
    gc.collect()
    assert [r() for r in refs] == [None, None]
    assert not list(db._children)


def test_closing_inside_a_merge_function_finishes_the_resolution(tmp_path) -> None:
    db = Engine(tmp_path / "s")
    m = db.mvreg("m")
    m.write("a")
    peer = Engine(tmp_path / "peer")
    m.merge(peer.mvreg("m").write("b"))
    peer.close()
    seen: list[type[BaseException]] = []

    def close_then_merge(siblings: list[converge.Sibling]) -> bytes:
        db.close()
        try:
            db.flush()
        except converge.ClosedError as e:
            seen.append(type(e))
        return b"x"

    assert m.resolve(close_then_merge) is not None
    assert db.closed and seen == [converge.ClosedError]
    with pytest.raises(converge.ClosedError):
        m.values()
    # The resolution was written and the store released as resolve returned.
    with Engine(tmp_path / "s") as again:
        assert again.mvreg("m").values() == [b"x"]


def test_repr_names_state(db: Engine) -> None:
    assert "open" in repr(db) and "Counter" in repr(db.counter("x"))
    batch = db.batch()
    batch.close()
    assert "closed" in repr(batch)
