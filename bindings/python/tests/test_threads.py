"""One engine shared by several Python threads."""

from __future__ import annotations

import threading

import pytest

import converge
from converge import Engine

THREADS = 4
ROUNDS = 300


def run_all(target, n: int = THREADS) -> list[BaseException]:
    failures: list[BaseException] = []
    barrier = threading.Barrier(n)

    def wrapper(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as e:  # reported by the test
            failures.append(e)

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return failures


def test_concurrent_writers_and_readers_lose_nothing(db: Engine) -> None:
    shared = db.counter("shared")
    cart = db.orset("cart")

    def work(i: int) -> None:
        own = db.pncounter(f"own:{i}")
        for r in range(ROUNDS):
            shared.increment()
            own.add(-1)
            cart.add(f"{i}:{r % 10}")
            assert shared.value() >= r + 1
            if r % 50 == 0:
                with db.batch() as b:
                    b.increment("shared", 1)
                    b.lww_set(f"reg:{i}", str(r))
                list(db.keys(prefix=f"own:{i}"))

    assert run_all(work) == []
    assert shared.value() == THREADS * ROUNDS + THREADS * (ROUNDS // 50)
    assert all(db.pncounter(f"own:{i}").value() == -ROUNDS for i in range(THREADS))
    assert len(cart.members()) == THREADS * 10
    assert db.verify().consistent


def test_errors_are_reported_to_the_thread_that_failed(db: Engine) -> None:
    db.gset("g").add("x")

    def work(i: int) -> None:
        for _ in range(200):
            if i % 2:
                with pytest.raises(converge.WrongTypeError) as e:
                    db.counter("g").increment()
                assert "a G-Set" in e.value.message
            else:
                with pytest.raises(converge.CorruptInputError) as e:
                    db.merge("x", b"\x05")
                assert "encoding" in e.value.message
                db.counter(f"ok{i}").increment()

    assert run_all(work) == []


CLOSE_THREADS = 16


def test_close_while_many_threads_call(tmp_path) -> None:
    """Sixteen threads call into one engine (operations, reads, batches,
    iterators, waits, syncs with a peer) while two others close it. Every
    worker ends with ``ClosedError``, nothing else; every acknowledged
    increment is in the reopened store. With a close that freed the handle
    under running calls, this crashes or corrupts memory."""
    peer = Engine(tmp_path / "peer")
    expected = 0
    for _round in range(3):
        db = Engine(tmp_path / "s")
        counter = db.counter("hits")
        acknowledged = [0] * CLOSE_THREADS
        failures: list[BaseException] = []
        entered = threading.Barrier(CLOSE_THREADS + 2)

        def work(i: int) -> None:
            first = True
            try:
                while True:
                    counter.increment()
                    acknowledged[i] += 1
                    if first:
                        first = False
                        entered.wait()
                    counter.value()
                    db.gset(f"set{i % 4}").add(b"m%d" % i)
                    db.wait_for(b"", timeout=1.0)
                    with db.batch(deltas=False) as b:
                        b.increment(f"batch{i}", 1)
                    if acknowledged[i] % 8 == 0:
                        for _ in db.keys("set"):
                            pass
                    if i == 0 and acknowledged[i] % 16 == 0:
                        db.sync_with(peer)
            except converge.ClosedError:
                return
            except BaseException as e:  # reported below
                failures.append(e)
                entered.abort()

        def close() -> None:
            try:
                entered.wait()
            except threading.BrokenBarrierError:
                pass
            db.close()

        workers = [threading.Thread(target=work, args=(i,)) for i in range(CLOSE_THREADS)]
        closers = [threading.Thread(target=close) for _ in range(2)]
        for t in workers + closers:
            t.start()
        for t in workers + closers:
            t.join()
        assert failures == [], failures
        assert db.closed
        with pytest.raises(converge.ClosedError):
            counter.increment()
        # The store was released by the last call out: it reopens with
        # every acknowledged increment, and no other.
        expected += sum(acknowledged)
        with Engine(tmp_path / "s") as again:
            assert again.counter("hits").value() == expected
    peer.close()


def test_one_iterator_shared_by_threads_yields_each_key_once(db: Engine) -> None:
    with db.batch(deltas=False) as b:
        b.increment_many((f"k{i:04}", 1) for i in range(400))
    it = db.keys()
    seen: list[list[bytes]] = [[] for _ in range(THREADS)]

    def work(i: int) -> None:
        for key, _ in it:
            seen[i].append(key)

    assert run_all(work) == []
    flat = sorted(k for keys in seen for k in keys)
    assert flat == [f"k{i:04}".encode() for i in range(400)]


def test_close_while_a_call_is_inside_the_library(tmp_path) -> None:
    """Deterministic: a merge function holds one call inside the library
    (``cvg_engine_mv_resolve``) while another thread closes the engine and
    a third waits for a token that never comes. The close returns at once,
    the resolution then finishes and is written, the wait is woken with
    ``ClosedError``, and the store is released after both. Against a
    library whose close freed the engine under running calls, the
    resolution would write through freed memory."""
    db = Engine(tmp_path / "s")
    peer = Engine(tmp_path / "peer")
    m = db.mvreg("m")
    m.write("a")
    m.merge(peer.mvreg("m").write("b"))
    never = converge.delta_token(peer.counter("elsewhere").increment())
    peer.close()
    inside, closed = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def merge(siblings: list[converge.Sibling]) -> bytes:
        inside.set()
        closed.wait()
        return b"merged"

    def resolver() -> None:
        try:
            results["resolve"] = m.resolve(merge)
        except BaseException as e:
            results["resolve"] = e

    def waiter() -> None:
        try:
            db.wait_for(never, timeout=600)
            results["wait"] = "returned"
        except BaseException as e:
            results["wait"] = type(e)

    threads = [threading.Thread(target=resolver), threading.Thread(target=waiter)]
    for t in threads:
        t.start()
    inside.wait()
    db.close()  # returns while the resolution is inside the library
    assert db.closed
    closed.set()
    for t in threads:
        t.join()
    assert isinstance(results["resolve"], bytes), results
    assert results["wait"] is converge.ClosedError
    with Engine(tmp_path / "s") as again:
        assert again.mvreg("m").values() == [b"merged"]
