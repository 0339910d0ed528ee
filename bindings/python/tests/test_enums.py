"""``SyncOutcome``, ``Durability``, ``CrdtType`` and ``Delivery``: ``str`` enums that
keep the strings the package returned before, agree with the C constants
and names, and are what the engine returns and accepts."""

from __future__ import annotations

import json
import re
import uuid

import pytest

import converge
from converge import CrdtType, Delivery, Durability, Engine, SyncOutcome
from converge import _ffi
from converge._ffi import lib

ENUMS = (SyncOutcome, Durability, CrdtType, Delivery)

#: The strings the package returned (or took) for each enum before the
#: enums existed: they must stay equal.
LEGACY = {
    SyncOutcome: {"running", "equal", "repaired", "converged", "diverged", "failed"},
    Durability: {"sync", "buffered", "none"},
    CrdtType: {"gcounter", "pncounter", "gset", "2pset", "orset", "lww", "fww", "mvreg"},
    Delivery: {"applied", "pending", "duplicate"},
}

#: The ``#define`` prefix of each enum's C constants.
PREFIX = {
    SyncOutcome: "CVG_SYNC_",
    Durability: "CVG_DURABILITY_",
    CrdtType: "CVG_CRDT_",
    Delivery: "CVG_DELIVERY_",
}


def test_enums_are_exported_str_enums() -> None:
    for cls in ENUMS:
        assert cls.__name__ in converge.__all__ and getattr(converge, cls.__name__) is cls
        assert issubclass(cls, str)
        assert {m.value for m in cls} == LEGACY[cls]


@pytest.mark.parametrize("cls", ENUMS)
def test_members_behave_like_their_strings(cls: type) -> None:
    for member in cls:  # type: ignore[attr-defined]
        value = member.value
        assert member == value and value == member and isinstance(member, str)
        assert hash(member) == hash(value) and {value: 1}[member] == 1
        assert str(member) == value and f"{member}" == value and f"{member:>12}" == f"{value:>12}"
        assert json.dumps(member) == json.dumps(value)
        assert cls(value) is member


def test_numbers_match_the_header(header_text: str) -> None:
    defines = dict(re.findall(r"#define (CVG_(?:SYNC|DURABILITY|CRDT|DELIVERY)_\w+) (\d+)", header_text))
    for cls in ENUMS:
        for member in cls:  # type: ignore[attr-defined]
            assert int(defines[PREFIX[cls] + member.name]) == member.number
            assert cls.from_number(member.number) is member  # type: ignore[attr-defined]
    # Every C constant has a member, except CVG_CRDT_NONE (a key never
    # written has no type: None).
    names = {PREFIX[cls] + m.name for cls in ENUMS for m in cls}  # type: ignore[attr-defined]
    assert set(defines) - names == {"CVG_CRDT_NONE"}


def test_values_are_the_library_names() -> None:
    for outcome in SyncOutcome:
        assert lib.cvg_sync_outcome_name(outcome.number).decode() == outcome.value
    assert lib.cvg_sync_outcome_name(200) == b"unknown"
    for t in CrdtType:
        assert lib.cvg_crdt_type_name(t.number).decode() == t.value
    assert {d.value: d.number for d in Durability} == _ffi.DURABILITY
    for delivery in Delivery:
        assert lib.cvg_delivery_name(delivery.number).decode() == delivery.value
    assert lib.cvg_delivery_name(200) == b"unknown"


def test_unknown_numbers_raise() -> None:
    with pytest.raises(ValueError, match="200"):
        SyncOutcome.from_number(200)
    with pytest.raises(ValueError):
        CrdtType.from_number(_ffi.CRDT_TYPES["CVG_CRDT_NONE"])
    with pytest.raises(ValueError):
        Durability.from_number(3)
    with pytest.raises(ValueError):
        SyncOutcome("unknown")


def test_ended() -> None:
    assert [o for o in SyncOutcome if not o.ended] == [SyncOutcome.RUNNING]


def test_engine_returns_crdt_types(db: Engine) -> None:
    db.counter("c").increment(1)
    db.orset("s").add("x")
    db.lww("r").set("v")
    assert db.key_type("c") is CrdtType.GCOUNTER and db.key_type("c") == "gcounter"
    assert db.key_type("never") is None
    assert list(db.keys()) == [(b"c", CrdtType.GCOUNTER), (b"r", CrdtType.LWW_REGISTER), (b"s", CrdtType.ORSET)]
    assert all(type(t) is CrdtType for _, t in db.keys())
    assert converge.ORSet.type_name is CrdtType.ORSET and converge.TwoPSet.type_name == "2pset"


def test_engine_returns_sync_outcomes(open_engine) -> None:
    a, b = open_engine(), open_engine()
    same = a.sync_with(b)
    assert same == (SyncOutcome.EQUAL, SyncOutcome.EQUAL) == ("equal", "equal")
    assert all(type(o) is SyncOutcome for o in same)
    a.counter("c").increment(2)
    outcomes = a.sync_with(b)
    assert outcomes == (SyncOutcome.CONVERGED, SyncOutcome.CONVERGED)
    init = a.sync_initiate()
    assert init.outcome is SyncOutcome.RUNNING and not init.done
    resp = b.sync_respond()
    replies = resp.handle(init.first_message or b"")
    assert resp.outcome is SyncOutcome.EQUAL and resp.done
    assert init.handle(replies[0]) == [] and init.outcome is SyncOutcome.EQUAL


def test_engine_takes_durabilities(tmp_path) -> None:
    for d in Durability:
        with Engine(tmp_path / d.value, durability=d) as db:
            db.counter("c").increment(1)
    with Engine(tmp_path / "as-string", durability="sync") as db:
        assert db.counter("c").value() == 0
    with pytest.raises(converge.InvalidArgumentError, match="buffered"):
        Engine(tmp_path / "bad", durability="eventually")


def test_int_replica_ids(tmp_path) -> None:
    with Engine(tmp_path / "one", replica_id=1) as db:
        assert db.replica_id == (1).to_bytes(16, "big")
    # The same id as bytes or as a UUID opens the same store.
    with Engine(tmp_path / "one", replica_id=b"\0" * 15 + b"\1"):
        pass
    with Engine(tmp_path / "one", replica_id=uuid.UUID(int=1)):
        pass
    with pytest.raises(converge.ReplicaMismatchError):
        Engine(tmp_path / "one", replica_id=2)
    with Engine(tmp_path / "max", replica_id=2**128 - 1) as db:
        assert db.replica_id == b"\xff" * 16
    for bad in (-1, 2**128):
        with pytest.raises(ValueError):
            Engine(tmp_path / "bad", replica_id=bad)
    with pytest.raises(TypeError):
        Engine(tmp_path / "bad", replica_id=True)
