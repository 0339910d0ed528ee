"""ctypes declarations of the C ABI (include/converge.h) and library loading.

This module owns the only description of the C functions the package calls:
``FUNCTIONS`` maps each ``cvg_`` name to its ctypes result and argument
types, and ``tests/test_header.py`` checks it against the header so the two
cannot drift apart. The library is loaded from the copy bundled inside the
package (``converge/_lib/libconverge.so``), put there when the package was
built. ctypes releases the GIL around every call made through ``CDLL``.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_double,
    c_int,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)

#: The ABI version (major, minor) these declarations were written for; the
#: loaded library must report the same (while major is 0, a minor bump may
#: break the ABI).
ABI_VERSION = (0, 1)

_LIB_NAMES = {"linux": "libconverge.so", "darwin": "libconverge.dylib", "win32": "converge.dll"}


def library_filename() -> str:
    """The file name of the shared library on this platform."""
    for prefix, name in _LIB_NAMES.items():
        if sys.platform.startswith(prefix):
            return name
    return "libconverge.so"


#: Where the bundled library lives: the ``_lib`` directory of this package.
LIBRARY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib", library_filename())


class Bytes(Structure):
    """``cvg_bytes_t``: an owned byte string, freed with ``cvg_bytes_free``."""

    _fields_ = [("ptr", c_void_p), ("len", c_size_t)]


class Slice(Structure):
    """``cvg_slice_t``: a borrowed view of bytes owned by another object."""

    _fields_ = [("ptr", c_void_p), ("len", c_size_t)]


class Span(Structure):
    """``cvg_span_t``: where one byte string lies in a packed buffer."""

    _fields_ = [("offset", c_size_t), ("len", c_size_t)]


class SiblingStruct(Structure):
    """``cvg_sibling_t``: one MV register value with its dot."""

    _fields_ = [("value", Slice), ("replica", c_uint8 * 16), ("counter", c_uint64)]


class RootStruct(Structure):
    """``cvg_root_t``: the root of the anti-entropy tree."""

    _fields_ = [("hash", c_uint8 * 16), ("count", c_uint64)]


class I128(Structure):
    """``cvg_i128_t``: a 128-bit signed integer as two 64-bit halves."""

    _fields_ = [("lo", c_uint64), ("hi", c_int64)]


class StampStruct(Structure):
    """``cvg_stamp_t``: when and by whom a register value was written."""

    _fields_ = [("wall_ms", c_uint64), ("logical", c_uint32), ("replica", c_uint8 * 16)]


class SyncConfigStruct(Structure):
    """``cvg_sync_config_t``: the limits of a sync session."""

    _fields_ = [("message_budget", c_size_t), ("max_message", c_size_t), ("use_iblt", c_bool)]


class SyncStatsStruct(Structure):
    """``cvg_sync_stats_t``: the traffic of one side of a sync session."""

    _fields_ = [
        (name, c_uint64)
        for name in (
            "messages_sent",
            "messages_received",
            "bytes_sent",
            "bytes_received",
            "states_sent",
            "states_received",
            "state_bytes_sent",
            "state_bytes_received",
            "flights",
            "diff_micros",
            "states_rejected",
        )
    ]


class PendingInfoStruct(Structure):
    """``cvg_pending_info_t``: what the pending area holds."""

    _fields_ = [(name, c_uint64) for name in ("entries", "bytes", "missing", "stuck")]


class FeedInfoStruct(Structure):
    """``cvg_feed_info_t``: the state of the changes feed."""

    _fields_ = [(name, c_uint64) for name in ("floor", "last", "bytes", "peers")]


class CollectReportStruct(Structure):
    """``cvg_collect_report_t``: what a collection did (or would do)."""

    _fields_ = [(name, c_uint64) for name in ("collected", "purged", "waiting", "blockers")]


class BlockerStruct(Structure):
    """``cvg_blocker_t``: a replica holding collection back."""

    _fields_ = [("replica", c_uint8 * 16), ("tombstones", c_uint64)]


#: ``cvg_merge_fn``: ``int (*)(void *user_data, const cvg_sibling_t *, size_t, cvg_buffer_t *)``.
MERGE_FN = CFUNCTYPE(c_int, c_void_p, POINTER(SiblingStruct), c_size_t, c_void_p)

#: Every C struct the package mirrors, by its name in the header.
STRUCTS = {
    "cvg_bytes_t": Bytes,
    "cvg_slice_t": Slice,
    "cvg_span_t": Span,
    "cvg_sibling_t": SiblingStruct,
    "cvg_root_t": RootStruct,
    "cvg_i128_t": I128,
    "cvg_stamp_t": StampStruct,
    "cvg_sync_config_t": SyncConfigStruct,
    "cvg_sync_stats_t": SyncStatsStruct,
    "cvg_pending_info_t": PendingInfoStruct,
    "cvg_feed_info_t": FeedInfoStruct,
    "cvg_collect_report_t": CollectReportStruct,
    "cvg_blocker_t": BlockerStruct,
}

# Short names for the declaration table. Opaque handles are c_void_p; byte
# inputs are c_char_p so a `bytes` object is passed without a copy.
_S = c_uint32  # cvg_status_t
_H = c_void_p  # a handle pointer (cvg_engine_t *, cvg_batch_t *, ...)
_HP = POINTER(c_void_p)  # a handle out-parameter (cvg_engine_t **, ...)
_B = c_char_p  # const uint8_t * (bytes in)
_N = c_size_t
_BYTES = POINTER(Bytes)
_SLICE = POINTER(Slice)

#: name -> (restype, argtypes), in header order.
FUNCTIONS: dict[str, tuple[object, list[object]]] = {
    "cvg_version": (c_char_p, []),
    "cvg_batch_new": (_H, []),
    "cvg_batch_free": (None, [_H]),
    "cvg_batch_len": (c_size_t, [_H]),
    "cvg_batch_clear": (_S, [_H]),
    "cvg_batch_increment": (_S, [_H, _B, _N, c_uint64]),
    "cvg_batch_pn_add": (_S, [_H, _B, _N, c_int64]),
    "cvg_batch_gset_add": (_S, [_H, _B, _N, _B, _N]),
    "cvg_batch_twop_add": (_S, [_H, _B, _N, _B, _N]),
    "cvg_batch_twop_remove": (_S, [_H, _B, _N, _B, _N]),
    "cvg_batch_orset_add": (_S, [_H, _B, _N, _B, _N]),
    "cvg_batch_orset_remove": (_S, [_H, _B, _N, _B, _N]),
    "cvg_batch_lww_set": (_S, [_H, _B, _N, _B, _N]),
    "cvg_batch_fww_set": (_S, [_H, _B, _N, _B, _N]),
    "cvg_batch_merge": (_S, [_H, _B, _N, _B, _N]),
    "cvg_batch_orset_remove_observed": (_S, [_H, _B, _N, _B, _N, _B, _N]),
    "cvg_batch_mv_write": (_S, [_H, _B, _N, _B, _N, _B, _N]),
    "cvg_batch_delete": (_S, [_H, _B, _N]),
    "cvg_batch_delete_observed": (_S, [_H, _B, _N, _B, _N]),
    "cvg_engine_write": (_S, [_H, _H, _HP]),
    "cvg_deltas_len": (c_size_t, [_H]),
    "cvg_deltas_get": (_S, [_H, c_size_t, _SLICE, _SLICE]),
    "cvg_deltas_free": (None, [_H]),
    "cvg_batch_increment_many": (_S, [_H, _B, _N, POINTER(c_size_t), POINTER(c_uint64), _N]),
    "cvg_batch_pn_add_many": (_S, [_H, _B, _N, POINTER(c_size_t), POINTER(c_int64), _N]),
    "cvg_batch_merge_many": (
        _S,
        [_H, _B, _N, POINTER(c_size_t), _B, _N, POINTER(c_size_t), _N],
    ),
    "cvg_deltas_packed": (
        _S,
        [_H, _SLICE, POINTER(POINTER(Span)), _SLICE, POINTER(POINTER(Span)), POINTER(c_size_t)],
    ),
    "cvg_bytes_free": (None, [_BYTES]),
    "cvg_list_len": (c_size_t, [_H]),
    "cvg_list_get": (_S, [_H, c_size_t, _SLICE]),
    "cvg_list_free": (None, [_H]),
    "cvg_buffer_append": (_S, [_H, _B, _N]),
    "cvg_engine_mv_resolve": (_S, [_H, _B, _N, MERGE_FN, c_void_p, POINTER(c_bool), _BYTES]),
    "cvg_engine_open": (_S, [c_char_p, _H, _HP]),
    "cvg_engine_close": (_S, [_H]),
    "cvg_engine_replica_id": (_S, [_H, POINTER(c_uint8)]),
    "cvg_engine_version_vector": (_S, [_H, _BYTES]),
    "cvg_engine_key_type": (_S, [_H, _B, _N, POINTER(c_uint8)]),
    "cvg_crdt_type_name": (c_char_p, [c_uint8]),
    "cvg_engine_state_bytes": (_S, [_H, _B, _N, POINTER(c_bool), _BYTES]),
    "cvg_engine_merge": (_S, [_H, _B, _N, _B, _N]),
    "cvg_engine_settle": (_S, [_H, POINTER(c_size_t)]),
    "cvg_engine_unsettled_keys": (_S, [_H, POINTER(c_size_t)]),
    "cvg_engine_root": (_S, [_H, POINTER(RootStruct)]),
    "cvg_engine_verify": (_S, [_H, POINTER(c_bool), POINTER(c_uint64)]),
    "cvg_engine_flush": (_S, [_H]),
    "cvg_engine_sync_wal": (_S, [_H]),
    "cvg_delivery_name": (c_char_p, [c_uint8]),
    "cvg_engine_pending": (_S, [_H, POINTER(PendingInfoStruct), _BYTES]),
    "cvg_engine_changes_since": (
        _S,
        [_H, _B, _N, c_size_t, _BYTES, _BYTES, POINTER(c_uint64), POINTER(c_bool)],
    ),
    "cvg_engine_apply_changes": (_S, [_H, _B, _N, POINTER(c_uint8)]),
    "cvg_engine_feed_info": (_S, [_H, POINTER(FeedInfoStruct), _HP, _HP]),
    "cvg_engine_register_peer": (_S, [_H, _B, _N]),
    "cvg_engine_acknowledge": (_S, [_H, _B, _N, _B, _N]),
    "cvg_engine_remove_peer": (_S, [_H, _B, _N]),
    "cvg_engine_collect": (_S, [_H, POINTER(CollectReportStruct), _HP, _BYTES]),
    "cvg_engine_tombstones": (_S, [_H, POINTER(CollectReportStruct), _HP, _BYTES]),
    "cvg_blockers_len": (c_size_t, [_H]),
    "cvg_blockers_get": (_S, [_H, c_size_t, POINTER(BlockerStruct)]),
    "cvg_blockers_free": (None, [_H]),
    "cvg_engine_members": (_S, [_H, _HP, _HP]),
    "cvg_engine_keys": (_S, [_H, _B, _N, _HP]),
    "cvg_engine_stored_keys": (_S, [_H, _B, _N, _HP]),
    "cvg_iter_next": (_S, [_H, POINTER(c_bool), _SLICE, POINTER(c_uint8)]),
    "cvg_iter_free": (None, [_H]),
    "cvg_engine_increment": (_S, [_H, _B, _N, c_uint64, _BYTES]),
    "cvg_engine_pn_add": (_S, [_H, _B, _N, c_int64, _BYTES]),
    "cvg_engine_gset_add": (_S, [_H, _B, _N, _B, _N, _BYTES]),
    "cvg_engine_twop_add": (_S, [_H, _B, _N, _B, _N, _BYTES]),
    "cvg_engine_twop_remove": (_S, [_H, _B, _N, _B, _N, _BYTES]),
    "cvg_engine_orset_add": (_S, [_H, _B, _N, _B, _N, _BYTES]),
    "cvg_engine_lww_set": (_S, [_H, _B, _N, _B, _N, _BYTES]),
    "cvg_engine_fww_set": (_S, [_H, _B, _N, _B, _N, _BYTES]),
    "cvg_engine_orset_remove": (_S, [_H, _B, _N, _B, _N, _BYTES]),
    "cvg_engine_orset_remove_observed": (_S, [_H, _B, _N, _B, _N, _B, _N, _BYTES]),
    "cvg_engine_mv_write": (_S, [_H, _B, _N, _B, _N, _B, _N, _BYTES]),
    "cvg_engine_delete": (_S, [_H, _B, _N, _BYTES]),
    "cvg_engine_delete_observed": (_S, [_H, _B, _N, _B, _N, _BYTES]),
    "cvg_options_new": (_H, []),
    "cvg_options_free": (None, [_H]),
    "cvg_options_set_replica_id": (_S, [_H, _B, _N]),
    "cvg_options_set_durability": (_S, [_H, c_uint32]),
    "cvg_options_set_create_if_missing": (_S, [_H, c_bool]),
    "cvg_options_set_block_cache_bytes": (_S, [_H, c_size_t]),
    "cvg_options_set_write_buffer_bytes": (_S, [_H, c_size_t]),
    "cvg_options_set_background_jobs": (_S, [_H, c_uint32]),
    "cvg_options_set_compression": (_S, [_H, c_bool]),
    "cvg_options_set_bloom_bits_per_key": (_S, [_H, c_double]),
    "cvg_options_set_lock_stripes": (_S, [_H, c_size_t]),
    "cvg_options_set_anti_entropy": (_S, [_H, c_bool]),
    "cvg_options_set_max_successive_merges": (_S, [_H, c_size_t]),
    "cvg_options_set_type_cache_entries": (_S, [_H, c_size_t]),
    "cvg_options_set_state_cache_bytes": (_S, [_H, c_size_t]),
    "cvg_options_set_changes_feed": (_S, [_H, c_bool]),
    "cvg_options_set_feed_retain_bytes": (_S, [_H, c_uint64]),
    "cvg_options_set_max_pending": (_S, [_H, c_size_t]),
    "cvg_options_set_max_pending_bytes": (_S, [_H, c_uint64]),
    "cvg_engine_counter_value": (_S, [_H, _B, _N, POINTER(c_int64)]),
    "cvg_engine_counter_value_wide": (_S, [_H, _B, _N, POINTER(I128)]),
    "cvg_engine_set_members": (_S, [_H, _B, _N, _HP, _BYTES]),
    "cvg_engine_register": (_S, [_H, _B, _N, POINTER(c_bool), _BYTES, POINTER(StampStruct)]),
    "cvg_engine_mv_read": (_S, [_H, _B, _N, _HP, _BYTES]),
    "cvg_siblings_len": (c_size_t, [_H]),
    "cvg_siblings_get": (_S, [_H, c_size_t, POINTER(SiblingStruct)]),
    "cvg_siblings_free": (None, [_H]),
    "cvg_last_error_message": (c_size_t, [c_void_p, c_size_t]),
    "cvg_status_name": (c_char_p, [c_uint32]),
    "cvg_sync_outcome_name": (c_char_p, [c_uint8]),
    "cvg_sync_config_default": (SyncConfigStruct, []),
    "cvg_sync_initiate": (_S, [_H, POINTER(SyncConfigStruct), _HP, _BYTES]),
    "cvg_sync_respond": (_S, [_H, POINTER(SyncConfigStruct), _HP]),
    "cvg_sync_handle": (_S, [_H, _B, _N, _HP]),
    "cvg_sync_receive": (_S, [_H, _B, _N]),
    "cvg_sync_next_message": (_S, [_H, _BYTES, POINTER(c_bool)]),
    "cvg_sync_flags": (_S, [_H, POINTER(c_uint32)]),
    "cvg_sync_outcome": (_S, [_H, POINTER(c_uint8)]),
    "cvg_sync_stats": (_S, [_H, POINTER(SyncStatsStruct)]),
    "cvg_sync_acknowledged": (_S, [_H, _BYTES]),
    "cvg_sync_free": (None, [_H]),
    "cvg_sync_engines": (
        _S,
        [_H, _H, POINTER(SyncConfigStruct), POINTER(c_uint8), POINTER(c_uint8)],
    ),
    "cvg_engine_context": (_S, [_H, _BYTES]),
    "cvg_engine_wait_for": (_S, [_H, _B, _N, c_uint64]),
    "cvg_engine_token_missing": (_S, [_H, _B, _N, POINTER(c_uint64)]),
    "cvg_token_join": (_S, [_B, _N, _B, _N, _BYTES]),
    "cvg_delta_token": (_S, [_B, _N, _BYTES]),
    "cvg_deltas_token": (_S, [_H, _BYTES]),
    "cvg_token_of_deltas": (_S, [_B, _N, POINTER(c_size_t), _N, _BYTES]),
}

#: ``CVG_CRDT_*`` numbers and the names ``cvg_crdt_type_name`` gives them.
CRDT_TYPES = {
    "CVG_CRDT_NONE": 0,
    "CVG_CRDT_GCOUNTER": 1,
    "CVG_CRDT_PNCOUNTER": 2,
    "CVG_CRDT_GSET": 3,
    "CVG_CRDT_TWOP_SET": 4,
    "CVG_CRDT_ORSET": 5,
    "CVG_CRDT_LWW_REGISTER": 6,
    "CVG_CRDT_FWW_REGISTER": 7,
    "CVG_CRDT_MV_REGISTER": 8,
}

#: ``CVG_SYNC_*`` outcome numbers by the names ``cvg_sync_outcome_name`` gives
#: them (the values of ``converge.SyncOutcome``).
SYNC_OUTCOMES = {
    "running": 0,
    "equal": 1,
    "repaired": 2,
    "converged": 3,
    "diverged": 4,
    "failed": 5,
}

#: ``CVG_DELIVERY_*`` numbers by the names ``cvg_delivery_name`` gives them
#: (the values of ``converge.Delivery``).
DELIVERIES = {"applied": 0, "pending": 1, "duplicate": 2}

#: ``CVG_DURABILITY_*`` numbers by the names ``Engine(durability=...)`` takes
#: (the values of ``converge.Durability``).
DURABILITY = {"sync": 0, "buffered": 1, "none": 2}


class _Lib:
    """The loaded library with every function of ``FUNCTIONS`` declared."""

    def __init__(self, path: str) -> None:
        if not os.path.exists(path):
            raise ImportError(
                f"converge: the bundled library {path} is missing; this package was not "
                "built with it. Build it with `make lib` and reinstall "
                "(`pip install ./bindings/python`, see bindings/python/README.md)"
            )
        self.path = path
        self.cdll = ctypes.CDLL(path)
        for name, (restype, argtypes) in FUNCTIONS.items():
            fn = getattr(self.cdll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        version: str = self.cdll.cvg_version().decode("ascii")
        major, minor = (int(p) for p in version.split(".")[:2])
        if (major, minor) != ABI_VERSION:
            raise ImportError(
                f"converge: {path} is version {version}, these bindings need "
                f"{ABI_VERSION[0]}.{ABI_VERSION[1]}.x"
            )
        self.version: str = version

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not in FUNCTIONS; typed as Any so that the
        # declared functions need no per-name stubs.
        raise AttributeError(f"converge: {name} is not declared in converge._ffi.FUNCTIONS")


lib = _Lib(LIBRARY_PATH)


def take_bytes(out: Bytes) -> bytes:
    """Copy a library-owned ``cvg_bytes_t`` into ``bytes`` and free it."""
    n = out.len
    if not n:
        return b""
    data = ctypes.string_at(out.ptr, n)
    _bytes_free(out)  # ctypes passes a Structure by reference itself
    return data


_bytes_free = lib.cvg_bytes_free
