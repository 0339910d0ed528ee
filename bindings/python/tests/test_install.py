"""The package under test is the installed one, with its bundled library."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import sysconfig

import converge
from converge import _ffi


def _site_dirs() -> set[str]:
    paths = sysconfig.get_paths()
    return {os.path.realpath(paths["purelib"]), os.path.realpath(paths["platlib"])}


def test_converge_is_imported_from_site_packages() -> None:
    package_dir = os.path.realpath(os.path.dirname(converge.__file__))
    assert os.path.dirname(package_dir) in _site_dirs(), converge.__file__
    assert "bindings" not in package_dir.split(os.sep)


def test_the_bundled_library_is_the_one_loaded() -> None:
    package_dir = os.path.realpath(os.path.dirname(converge.__file__))
    bundled = os.path.join(package_dir, "_lib", _ffi.library_filename())
    assert os.path.realpath(converge.library_path()) == bundled
    with open("/proc/self/maps") as maps:
        loaded = {line.split()[-1] for line in maps if "libconverge" in line}
    assert {os.path.realpath(p) for p in loaded} == {bundled}


def test_the_installed_distribution_records_the_library_and_py_typed() -> None:
    files = {str(f) for f in importlib.metadata.files("converge") or []}
    assert f"converge/_lib/{_ffi.library_filename()}" in files
    assert "converge/py.typed" in files
    assert importlib.metadata.version("converge") == converge.__version__


def test_a_user_script_works_in_an_isolated_interpreter(tmp_path) -> None:
    script = (
        "import converge, sys\n"
        "with converge.Engine(sys.argv[1]) as db:\n"
        "    db.counter(b'likes').increment(5)\n"
        "    print(db.counter(b'likes').value(), converge.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", script, str(tmp_path / "db")],
        cwd="/",
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out[0] == "5" and os.path.dirname(os.path.dirname(os.path.realpath(out[1]))) in _site_dirs()
