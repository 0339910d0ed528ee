"""Shared fixtures: fresh engines in temporary directories."""

from __future__ import annotations

import os
import pathlib
from typing import Callable, Iterator

import pytest

import converge

HEADER = pathlib.Path(
    os.environ.get(
        "CONVERGE_HEADER",
        pathlib.Path(__file__).resolve().parents[3] / "include" / "converge.h",
    )
)


@pytest.fixture
def header_text() -> str:
    """The text of include/converge.h."""
    return HEADER.read_text()


@pytest.fixture
def open_engine(tmp_path: pathlib.Path) -> Iterator[Callable[..., converge.Engine]]:
    """A factory of engines in fresh directories, all closed at the end."""
    engines: list[converge.Engine] = []
    count = 0

    def factory(name: str | None = None, **kwargs: object) -> converge.Engine:
        nonlocal count
        count += 1
        path = tmp_path / (name or f"replica-{count}")
        db = converge.Engine(path, **kwargs)  # type: ignore[arg-type]
        engines.append(db)
        return db

    yield factory
    for db in engines:
        db.close()


@pytest.fixture
def db(open_engine: Callable[..., converge.Engine]) -> converge.Engine:
    """One fresh engine."""
    return open_engine()
