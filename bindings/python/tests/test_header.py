"""The ctypes declarations in converge._ffi and the exception table must
match include/converge.h: function names, arity and argument/result types,
struct layouts, status numbers and constants. Regenerating the header with
a changed ABI makes these tests fail until the Python tables follow."""

from __future__ import annotations

import ctypes
import re
import subprocess
from ctypes import (
    POINTER,
    c_bool,
    c_char_p,
    c_double,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)

import pytest

import converge
from converge import _ffi
from converge.errors import STATUS_ERRORS

from conftest import HEADER

_SCALARS = {
    "size_t": c_size_t,
    "uint64_t": c_uint64,
    "int64_t": c_int64,
    "uint32_t": c_uint32,
    "bool": c_bool,
    "double": c_double,
    "cvg_crdt_type_t": c_uint8,
    "cvg_durability_t": c_uint32,
    "cvg_status_t": c_uint32,
    "cvg_sync_outcome_t": c_uint8,
    "cvg_delivery_t": c_uint8,
    "uint8_t": c_uint8,
}


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def ctype_of(c_type: str) -> object:
    """The ctypes type the bindings must declare for a C parameter type."""
    t = " ".join(c_type.replace("*", " * ").split())
    if t == "void":
        return None
    if t in ("const char *", "const uint8_t *"):
        return c_char_p
    if t in ("void *", "char *"):
        return c_void_p
    if t == "cvg_merge_fn":
        return _ffi.MERGE_FN
    if t in _SCALARS:
        return _SCALARS[t]
    m = re.fullmatch(r"struct (cvg_\w+)", t)
    if m and m.group(1) in _ffi.STRUCTS:
        return _ffi.STRUCTS[m.group(1)]
    m = re.fullmatch(r"(?:const )?struct (cvg_\w+) \*", t)
    if m:
        struct = _ffi.STRUCTS.get(m.group(1))
        return c_void_p if struct is None else POINTER(struct)
    m = re.fullmatch(r"(?:const )?struct (cvg_\w+) \* \*", t)
    if m:
        struct = _ffi.STRUCTS.get(m.group(1))
        return POINTER(c_void_p) if struct is None else POINTER(POINTER(struct))
    m = re.fullmatch(r"(?:const )?(\w+) \*", t)
    if m and m.group(1) in _SCALARS:
        return POINTER(_SCALARS[m.group(1)])
    raise AssertionError(f"no ctypes mapping for C type {c_type!r}")


def header_functions(text: str) -> dict[str, tuple[object, list[object]]]:
    """name -> (restype, argtypes) of every function prototype."""
    body = strip_comments(text)
    out = {}
    for m in re.finditer(r"([A-Za-z_][\w \*]*?)\b(cvg_\w+)\(([^;{}]*?)\);", body, flags=re.S):
        ret, name, params = m.group(1), m.group(2), m.group(3).strip()
        if "typedef" in ret:
            continue
        args = []
        if params and params != "void":
            for p in params.split(","):
                p = " ".join(p.split())
                pm = re.fullmatch(r"(.*?)\s*\b(\w+)", p)
                assert pm, p
                args.append(ctype_of(pm.group(1)))
        out[name] = (ctype_of(ret.strip()), args)
    return out


def declaration_mismatches(text: str) -> list[str]:
    """Every difference between the header and ``_ffi.FUNCTIONS``."""
    header = header_functions(text)
    problems = []
    for name in sorted(set(header) | set(_ffi.FUNCTIONS)):
        if name not in _ffi.FUNCTIONS:
            problems.append(f"{name}: in the header, not declared in Python")
        elif name not in header:
            problems.append(f"{name}: declared in Python, not in the header")
        else:
            (hret, hargs), (pret, pargs) = header[name], _ffi.FUNCTIONS[name]
            if len(hargs) != len(pargs):
                problems.append(f"{name}: {len(hargs)} parameters in C, {len(pargs)} in Python")
            elif hargs != pargs:
                problems.append(f"{name}: parameter types {hargs} in C, {pargs} in Python")
            if hret != pret:
                problems.append(f"{name}: returns {hret} in C, {pret} in Python")
    return problems


def header_statuses(text: str) -> dict[str, int]:
    block = re.search(r"enum cvg_status_t\b.*?\{(.*?)\};", strip_comments(text), flags=re.S)
    assert block, "no enum cvg_status_t in the header"
    return {n: int(v) for n, v in re.findall(r"(CVG_STATUS_\w+)\s*=\s*(\d+)", block.group(1))}


def status_mismatches(text: str) -> list[str]:
    header = header_statuses(text)
    python = {cls.c_name: code for code, cls in STATUS_ERRORS.items()}
    python["CVG_STATUS_OK"] = 0
    return [
        f"{name}: {header.get(name)} in C, {python.get(name)} in Python"
        for name in sorted(set(header) | set(python))
        if header.get(name) != python.get(name)
    ]


def header_defines(text: str) -> dict[str, int]:
    return {n: int(v) for n, v in re.findall(r"#define (\w+) (\d+)\s*$", text, flags=re.M)}


def test_every_function_is_declared_with_the_header_types(header_text: str) -> None:
    assert len(header_functions(header_text)) >= 70
    assert declaration_mismatches(header_text) == []


def test_status_numbers_match_the_enum(header_text: str) -> None:
    assert len(header_statuses(header_text)) >= 16
    assert status_mismatches(header_text) == []


def test_status_names_match_the_library() -> None:
    for code, cls in STATUS_ERRORS.items():
        assert _ffi.lib.cvg_status_name(code).decode() == cls.c_name


def test_constants_match_the_header(header_text: str) -> None:
    defines = header_defines(header_text)
    crdt = {k: v for k, v in defines.items() if k.startswith("CVG_CRDT_")}
    assert crdt == _ffi.CRDT_TYPES
    durability = {
        k.removeprefix("CVG_DURABILITY_").lower(): v
        for k, v in defines.items()
        if k.startswith("CVG_DURABILITY_")
    }
    assert durability == _ffi.DURABILITY
    outcomes = {
        k.removeprefix("CVG_SYNC_").lower(): v for k, v in defines.items() if k.startswith("CVG_SYNC_")
    }
    assert outcomes == _ffi.SYNC_OUTCOMES
    deliveries = {
        k.removeprefix("CVG_DELIVERY_").lower(): v for k, v in defines.items() if k.startswith("CVG_DELIVERY_")
    }
    assert deliveries == _ffi.DELIVERIES


def test_limits_match_the_header(header_text: str) -> None:
    defines = header_defines(header_text)
    limits = {k.removeprefix("CVG_"): v for k, v in defines.items() if k.startswith("CVG_MAX_")}
    assert limits == {
        "MAX_KEY_LEN": converge.MAX_KEY_LEN,
        "MAX_VALUE_LEN": converge.MAX_VALUE_LEN,
        "MAX_STATE_LEN": converge.MAX_STATE_LEN,
        "MAX_MESSAGE_LEN": converge.MAX_MESSAGE_LEN,
    }


def test_versions_agree(header_text: str) -> None:
    d = header_defines(header_text)
    version = f"{d['CONVERGE_VERSION_MAJOR']}.{d['CONVERGE_VERSION_MINOR']}.{d['CONVERGE_VERSION_PATCH']}"
    assert (d["CONVERGE_VERSION_MAJOR"], d["CONVERGE_VERSION_MINOR"]) == _ffi.ABI_VERSION
    assert converge.library_version() == version
    assert converge.__version__ == version


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace("cvg_engine_sync_wal(", "cvg_engine_sync_log("),
        lambda t: t.replace(
            "cvg_status_t cvg_engine_flush(const struct cvg_engine_t *engine);",
            "cvg_status_t cvg_engine_flush(const struct cvg_engine_t *engine, bool wait);",
        ),
        lambda t: t.replace("uint64_t n,\n", "int64_t n,\n", 1),
        lambda t: t.replace("size_t cvg_batch_len(", "uint32_t cvg_batch_len("),
        lambda t: t.replace("void cvg_iter_free(struct cvg_iter_t *iter);", ""),
    ],
)
def test_a_drifted_prototype_is_detected(header_text: str, mutate: object) -> None:
    drifted = mutate(header_text)  # type: ignore[operator]
    assert drifted != header_text
    assert declaration_mismatches(drifted) != []


def test_a_renumbered_status_is_detected(header_text: str) -> None:
    assert status_mismatches(header_text.replace("CVG_STATUS_OVERFLOW = 12", "CVG_STATUS_OVERFLOW = 16")) != []
    added = header_text.replace("CVG_STATUS_OTHER = 15,", "CVG_STATUS_OTHER = 15,\n  CVG_STATUS_NEW = 16,")
    assert status_mismatches(added) != []


def _struct_fields(text: str) -> dict[str, list[str]]:
    body = strip_comments(text)
    out = {}
    for m in re.finditer(r"typedef struct (cvg_\w+) \{(.*?)\} \1;", body, flags=re.S):
        out[m.group(1)] = re.findall(r"(\w+)(?:\[\d+\])?;", m.group(2))
    return out


def test_struct_fields_match_by_name(header_text: str) -> None:
    fields = _struct_fields(header_text)
    assert set(fields) == set(_ffi.STRUCTS)
    for name, struct in _ffi.STRUCTS.items():
        assert [f[0] for f in struct._fields_] == fields[name], name


def test_struct_layouts_match_the_c_compiler(header_text: str, tmp_path: object) -> None:
    """sizeof and offsetof as gcc computes them from the header."""
    lines = ["#include <stddef.h>", "#include <stdio.h>", f'#include "{HEADER}"', "int main(void) {"]
    expected = []
    for name, struct in _ffi.STRUCTS.items():
        lines.append(f'printf("%zu\\n", sizeof(struct {name}));')
        expected.append(ctypes.sizeof(struct))
        for field, _ in struct._fields_:
            lines.append(f'printf("%zu\\n", offsetof(struct {name}, {field}));')
            expected.append(getattr(struct, field).offset)
    lines += ["return 0;", "}"]
    src = tmp_path / "layout.c"  # type: ignore[operator]
    exe = tmp_path / "layout"  # type: ignore[operator]
    src.write_text("\n".join(lines))
    subprocess.run(["gcc", "-std=c11", "-o", str(exe), str(src)], check=True)
    got = [int(x) for x in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()]
    assert got == expected
