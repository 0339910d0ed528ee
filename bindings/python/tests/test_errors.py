"""Failures map to the right exception class, carry the library's message,
and change nothing."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import pytest

import converge
from converge import Engine, errors

KEY_LIMIT = converge.MAX_KEY_LEN
VALUE_LIMIT = converge.MAX_VALUE_LEN


def test_the_table_covers_every_status_with_distinct_classes() -> None:
    classes = list(converge.STATUS_ERRORS.values())
    assert sorted(converge.STATUS_ERRORS) == list(range(1, len(converge.STATUS_ERRORS) + 1))
    assert len(set(classes)) == len(classes)
    for code, cls in converge.STATUS_ERRORS.items():
        assert issubclass(cls, converge.ConvergeError)
        err = errors.error(code)
        assert type(err) is cls and err.status == code
    assert issubclass(converge.ClosedError, converge.ConvergeError)
    assert not issubclass(converge.CounterOverflowError, OverflowError)
    unknown = errors.error(999)
    assert type(unknown) is converge.ConvergeError and unknown.status == 999


def test_wrong_type_raises_with_the_library_message_and_changes_nothing(db: Engine) -> None:
    db.gset("g").add("x")
    before = db.state_bytes("g")
    for op in (
        lambda: db.counter("g").increment(),
        lambda: db.counter("g").value(),
        lambda: db.orset("g").add("y"),
        lambda: db.lww("g").set("v"),
        lambda: db.mvreg("g").read(),
        lambda: db.pncounter("g").add(1),
    ):
        with pytest.raises(converge.WrongTypeError) as e:
            op()
        assert e.value.status == 3
        assert "it holds a G-Set" in str(e.value) and e.value.message == str(e.value)
    assert db.state_bytes("g") == before
    with pytest.raises(converge.WrongTypeError):
        db.merge("g", db.counter("c").increment())
    # Each side is named, with its article.
    db.orset("s").add("x")
    with pytest.raises(converge.WrongTypeError, match="it holds an OR-Set, the operation is for a PN-Counter"):
        db.pncounter("s").add(1)
    with pytest.raises(converge.WrongTypeError, match=r"holds an OR-Set, which cannot be read as a counter"):
        db.counter("s").value()
    with pytest.raises(converge.WrongTypeError, match="it holds a G-Counter, the operation is for an OR-Set"):
        db.orset("c").add("x")


def test_size_limits(db: Engine) -> None:
    with pytest.raises(converge.KeyTooLargeError) as e:
        db.counter(b"k" * (KEY_LIMIT + 1)).increment()
    assert isinstance(e.value, ValueError)
    db.counter(b"k" * KEY_LIMIT).increment()
    with pytest.raises(converge.ValueTooLargeError):
        db.lww("v").set(bytes(VALUE_LIMIT + 1))
    assert db.key_type("v") is None
    batch = db.batch()
    batch.gset_add(b"k" * (KEY_LIMIT + 1), "x")
    with pytest.raises(converge.KeyTooLargeError):
        batch.commit()
    batch.close()


def test_limits_are_the_documented_sizes() -> None:
    assert (KEY_LIMIT, VALUE_LIMIT) == (64 << 10, 16 << 20)
    assert converge.MAX_STATE_LEN == 64 << 20
    assert converge.MAX_MESSAGE_LEN == (64 << 20) + (1 << 20)


def test_a_state_past_the_limit_raises_and_changes_nothing(db: Engine) -> None:
    db.counter("other").increment(7)
    for tag in range(3):
        db.gset("big").add(bytes([tag]) * VALUE_LIMIT)
    before = db.state_bytes("big")
    with pytest.raises(converge.StateTooLargeError) as e:
        db.gset("big").add(bytes([9]) * VALUE_LIMIT)
    assert isinstance(e.value, ValueError) and e.value.status == 17
    assert "big" in e.value.message and "67108864" in e.value.message
    assert db.state_bytes("big") == before
    batch = db.batch()
    batch.increment("other", 1)
    batch.gset_add("big", bytes([8]) * VALUE_LIMIT)
    with pytest.raises(converge.StateTooLargeError):
        batch.commit()
    batch.close()
    assert db.counter("other").value() == 7
    assert len(db.gset("big").members()) == 3


def test_corrupt_input(db: Engine) -> None:
    good = db.orset("s").add("x")
    for bad in (b"", b"\x00", good[:-1], good[:-1] + bytes([good[-1] ^ 1]), b"\xff" * 40):
        with pytest.raises(converge.CorruptInputError):
            db.merge("s", bad)
    with pytest.raises(converge.CorruptInputError):
        db.orset("s").remove("x", context=b"junk")
    with pytest.raises(converge.CorruptInputError):
        db.mvreg("m").write("v", context=b"junk")
    batch = db.batch()
    with pytest.raises(converge.CorruptInputError):
        batch.mv_write("m", "v", context=b"junk")
    with pytest.raises(converge.CorruptInputError):
        batch.orset_remove("s", "x", context=b"junk")
    assert len(batch) == 0
    batch.close()
    assert db.orset("s").members() == [b"x"] and db.key_type("m") is None


def test_invalid_arguments(tmp_path, db: Engine) -> None:
    with pytest.raises(converge.InvalidArgumentError):
        Engine(tmp_path / "a", replica_id=b"short")
    with pytest.raises(converge.InvalidArgumentError):
        Engine(tmp_path / "b", durability="eventually")
    with pytest.raises(converge.InvalidArgumentError):
        Engine(tmp_path / "c", background_jobs=0)
    with pytest.raises(converge.InvalidArgumentError):
        Engine(tmp_path / "d", bloom_bits_per_key=float("nan"))
    with pytest.raises(converge.InvalidArgumentError):
        Engine(str(tmp_path / "e") + "\0x")
    with pytest.raises(converge.InvalidArgumentError):
        db.counter("c").increment(-1)
    with pytest.raises(converge.InvalidArgumentError):
        db.counter("c").increment(2**64)
    with pytest.raises(converge.InvalidArgumentError):
        db.pncounter("p").add(2**63)
    assert db.key_type("c") is None and db.key_type("p") is None


def test_wrong_python_types_raise_type_error(db: Engine, tmp_path) -> None:
    with pytest.raises(TypeError):
        db.counter(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        db.counter("c").increment(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        db.orset("s").add(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Engine(tmp_path / "x", replica_id="not-bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Engine(tmp_path / "y", background_jobs="two")  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        db.counter("\udc80").increment()
    assert list(db.keys()) == []


def test_a_store_opened_twice_is_locked(tmp_path) -> None:
    with Engine(tmp_path / "s"):
        with pytest.raises(converge.LockedError) as e:
            Engine(tmp_path / "s")
        assert e.value.status == 22 and "LOCK" in e.value.message
        assert isinstance(e.value, converge.StorageError)
    with Engine(tmp_path / "s"):  # released with the first engine
        pass


def test_a_store_open_in_another_process_is_locked(tmp_path) -> None:
    """The LOCK file is an fcntl lock: another process sees it too."""
    path = tmp_path / "s"
    child = textwrap.dedent(
        """
        import sys, converge
        try:
            converge.Engine(sys.argv[1])
        except converge.LockedError as e:
            print("locked", e.status)
        else:
            print("opened")
        """
    )
    with Engine(path):
        run = subprocess.run(
            [sys.executable, "-c", child, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
    assert run.stdout.split() == ["locked", "22"], run.stderr


def test_a_failed_write_is_storage_io_error_then_poisoned(tmp_path) -> None:
    """An I/O fault injected without privileges: a child process whose file
    size limit (RLIMIT_FSIZE, 1 MiB) makes the log write fail with EFBIG.
    The write raises ``StorageIOError`` and poisons the engine."""
    child = textwrap.dedent(
        """
        import os, resource, signal, sys, converge
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        db = converge.Engine(sys.argv[1], durability="sync")
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        written = 0
        try:
            while written < 1000:
                db.lww(f"k{written}").set(os.urandom(64 * 1024))
                written += 1
        except converge.StorageIOError as e:
            print("io", e.status, written > 0)
        try:
            db.lww("again").set(b"x")
        except converge.PoisonedError:
            print("poisoned")
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.split() == ["io", "23", "True", "poisoned"], run.stderr


def test_a_damaged_store_is_corruption(tmp_path) -> None:
    path = tmp_path / "s"
    with Engine(path) as db:
        db.counter("c").increment()
    # CURRENT names the live MANIFEST, with a final newline.
    (path / "CURRENT").write_bytes(b"MANIFEST-damaged")
    with pytest.raises(converge.CorruptionError) as e:
        Engine(path)
    assert e.value.status == 7 and not isinstance(e.value, converge.StorageError)


def test_storage_errors_are_storage_error_subclasses() -> None:
    for cls in (
        converge.LockedError,
        converge.StorageIOError,
        converge.BusyError,
        converge.NoSpaceError,
    ):
        assert issubclass(cls, converge.StorageError) and cls is not converge.StorageError
    assert not issubclass(converge.StorageIOError, OSError)
    assert [converge.STATUS_ERRORS[n] for n in (21, 22, 23, 24, 25)] == [
        converge.ClosedError,
        converge.LockedError,
        converge.StorageIOError,
        converge.BusyError,
        converge.NoSpaceError,
    ]


def test_merge_function_failures(db: Engine) -> None:
    m = db.mvreg("m")
    m.write("a")
    m.write("b")
    before = db.state_bytes("m")

    def boom(siblings):
        raise KeyError("boom")

    with pytest.raises(converge.MergeFunctionError) as e:
        m.resolve(boom)
    assert isinstance(e.value.__cause__, KeyError) and e.value.status == 13
    with pytest.raises(converge.MergeFunctionError) as e:
        m.resolve(lambda s: 42)  # type: ignore[arg-type,return-value]
    assert isinstance(e.value.__cause__, TypeError)
    with pytest.raises(converge.ValueTooLargeError):
        m.resolve(lambda s: bytes(VALUE_LIMIT + 1))
    assert db.state_bytes("m") == before


def test_the_message_belongs_to_the_failing_call(db: Engine) -> None:
    with pytest.raises(converge.CorruptInputError) as e:
        db.merge("x", b"\x07")
    message = e.value.message
    assert "encoding" in message
    db.counter("ok").increment()  # a success clears the thread's message
    assert errors.last_error_message() == ""
    buf = ctypes.create_string_buffer(4)
    with pytest.raises(converge.CorruptInputError):
        db.merge("x", b"\x07")
    assert converge._ffi.lib.cvg_last_error_message(buf, 4) == len(message.encode())
