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


def test_close_waits_for_calls_in_flight_and_then_refuses_new_ones(tmp_path) -> None:
    db = Engine(tmp_path / "s")
    counter = db.counter("c")
    done = [0] * THREADS
    started = threading.Event()

    def work(i: int) -> None:
        while True:
            try:
                counter.increment()
            except converge.ClosedError:
                return
            done[i] += 1
            started.set()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    started.wait(10)
    db.close()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    with Engine(tmp_path / "s") as again:
        assert again.counter("c").value() == sum(done) > 0


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
