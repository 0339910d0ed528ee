"""Three replicas, random operations, random delivery order (deltas,
duplicates, full states): every key ends with equal values and equal
encoded states everywhere.

Deltas are delivered causally: one that arrives before an earlier
operation of its origin (or before what its origin had merged) waits in the
pending area. A full state merged by hand brings data but no operations to
the causal record, so the replicas, shared by every example, end each
example with anti-entropy sessions (also an example hypothesis abandons
half-way, when it runs out of data): their records then cover every
operation, the pending areas drain, and the next example's deltas apply
once delivered."""

from __future__ import annotations

import itertools
import random
from typing import Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converge import Engine

KINDS = ["gcounter", "pncounter", "gset", "2pset", "orset", "lww", "fww", "mvreg"]
_namespace = itertools.count()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    base = tmp_path_factory.mktemp("convergence")
    engines = [Engine(base / f"r{i}", replica_id=bytes([i + 1]) * 16) for i in range(3)]
    yield engines
    for e in engines:
        e.close()


def apply(db: Engine, kind: str, key: str, action: int, elem: str, n: int) -> Optional[bytes]:
    """One local operation; returns its delta (``None`` for an OR-Set
    remove that removed nothing: no operation)."""
    if kind == "gcounter":
        return db.counter(key).increment(n)
    if kind == "pncounter":
        return db.pncounter(key).add(n - 5)
    if kind == "gset":
        return db.gset(key).add(elem)
    if kind == "2pset":
        s = db.twopset(key)
        return s.remove(elem) if action else s.add(elem)
    if kind == "orset":
        s = db.orset(key)
        if action == 0:
            return s.add(elem)
        return s.remove(elem, context=s.read().context if action == 2 else None)
    if kind == "lww":
        return db.lww(key).set(elem)
    if kind == "fww":
        return db.fww(key).set(elem)
    m = db.mvreg(key)
    return m.write(elem, context=m.read().context if action else None)


def value(db: Engine, kind: str, key: str) -> object:
    if kind in ("gcounter", "pncounter"):
        return db.counter(key).value()
    if kind in ("gset", "2pset", "orset"):
        return db.orset(key).members() if kind == "orset" else db.gset(key).members()
    if kind in ("lww", "fww"):
        return db.lww(key).get()
    return sorted(db.mvreg(key).values())


op = st.tuples(
    st.integers(0, 2),  # replica
    st.sampled_from(KINDS),
    st.integers(0, 1),  # key index
    st.integers(0, 2),  # action variant
    st.sampled_from(["a", "b", "c"]),
    st.integers(1, 9),
)
step = st.one_of(op, st.tuples(st.just("deliver"), st.integers(0, 2), st.integers(0, 6)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(step, min_size=1, max_size=40),
    final=st.sampled_from(["deltas", "states", "mixed"]),
    rnd=st.randoms(use_true_random=False),
)
def test_replicas_converge(replicas, steps, final, rnd: random.Random) -> None:
    try:
        run_example(replicas, steps, final, rnd)
    finally:
        for x, y in ((0, 1), (0, 2), (0, 1)):
            replicas[x].sync_with(replicas[y])
    # The sessions exchanged the records: nothing waits any more, and the
    # records are equal.
    assert [db.pending().entries for db in replicas] == [0, 0, 0]
    assert replicas[0].context() == replicas[1].context() == replicas[2].context()


def run_example(replicas, steps, final, rnd: random.Random) -> None:
    """Run the operations and deliveries, then check every key."""
    ns = next(_namespace)
    produced: list[tuple[int, str, bytes]] = []  # (origin, key, delta)
    keys: dict[str, str] = {}
    for s in steps:
        if s[0] == "deliver":
            _, target, count = s
            pending = [p for p in produced if p[0] != target]
            for origin, key, delta in rnd.sample(pending, min(count, len(pending))):
                replicas[target].merge(key, delta)
            continue
        r, kind, k, action, elem, n = s
        key = f"{ns}:{kind}:{k}"
        delta = apply(replicas[r], kind, key, action, elem, n)
        if delta is None:
            # Removed nothing: wrote nothing, not even the key.
            assert replicas[r].key_type(key) in (None, "orset")
            continue
        keys[key] = kind
        produced.append((r, key, delta))
    for target in range(3):
        if final in ("deltas", "mixed"):
            pending = [p for p in produced if p[0] != target]
            pending += rnd.sample(pending, len(pending) // 3)  # duplicates
            rnd.shuffle(pending)
            for _, key, delta in pending:
                replicas[target].merge(key, delta)
        if final in ("states", "mixed"):
            for key in keys:
                for other in rnd.sample(range(3), 3):
                    state = replicas[other].state_bytes(key)
                    if other != target and state is not None:
                        replicas[target].merge(key, state)
    for key, kind in keys.items():
        states = [db.state_bytes(key) for db in replicas]
        assert states[0] is not None and states[0] == states[1] == states[2], key
        values = [value(db, kind, key) for db in replicas]
        assert values[0] == values[1] == values[2], (key, values)


def test_seeded_workload_converges_to_equal_roots(open_engine) -> None:
    rnd = random.Random(7)
    dbs = [open_engine() for _ in range(3)]
    produced = []
    for i in range(300):
        r = rnd.randrange(3)
        kind = rnd.choice(KINDS)
        key = f"{kind}:{rnd.randrange(5)}"
        delta = apply(dbs[r], kind, key, rnd.randrange(3), rnd.choice("abcd"), rnd.randrange(1, 9))
        if delta is not None:
            produced.append((r, key, delta))
    for target in range(3):
        with dbs[target].batch() as b:
            b.merge_many((k, d) for o, k, d in rnd.sample(produced, len(produced)) if o != target)
    roots = [db.root() for db in dbs]
    assert roots[0] == roots[1] == roots[2] and roots[0].keys > 0
    assert all(db.verify().consistent for db in dbs)
