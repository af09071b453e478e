"""Parse and check a safetensors header without loading any tensor (and without torch).

Layout: an 8-byte little-endian header length ``n``, ``n`` bytes of JSON mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to
the data section) plus an optional ``__metadata__`` string map, then the data section.
A well-formed file's tensors tile the data section exactly, with no gaps or overlaps.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from gateway.adapters.errors import AdapterRejected, RejectReason

DEFAULT_MAX_HEADER_BYTES = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
METADATA_KEY = "__metadata__"

# Byte-sized dtypes of the safetensors format; sub-byte ones (F4, F6) never occur in LoRA weights.
DTYPE_SIZES: Mapping[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, str]
    header_bytes: int
    file_bytes: int


class _Corrupt(ValueError):
    pass


def read_header(
    path: Path, *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES, hasher: Any = None
) -> SafetensorsHeader:
    """Read and check the header of ``path``; any defect is a ``corrupt_weights`` rejection.

    With ``hasher`` (a ``hashlib`` object), the whole file goes through it in the same
    read as the header: the digest is then of exactly the bytes that were checked, even if
    the file is replaced meanwhile (the open handle keeps reading what it opened).
    """
    try:
        with path.open("rb") as handle:
            file_bytes = os.fstat(handle.fileno()).st_size
            prefix = handle.read(8)
            length = _header_length(prefix, file_bytes, max_header_bytes)
            raw = handle.read(length)
            if hasher is not None:
                _hash_rest(handle, hasher, prefix + raw, file_bytes)
        if len(raw) != length:
            raise _Corrupt("the file ended inside its header")
        tensors, metadata = _parse(raw, file_bytes - 8 - length)
    except _Corrupt as exc:
        raise AdapterRejected(
            RejectReason.CORRUPT_WEIGHTS,
            f"{path.name} is not a valid safetensors file: {exc}. Save the adapter again "
            "(PEFT's save_pretrained writes safetensors by default) and copy it completely.",
            path=path,
        ) from exc
    return SafetensorsHeader(tensors, metadata, length, file_bytes)


def _hash_rest(handle: BinaryIO, hasher: Any, head: bytes, file_bytes: int) -> None:
    hasher.update(head)
    seen = len(head)
    while chunk := handle.read(min(_CHUNK, file_bytes - seen + 1)):
        seen += len(chunk)
        if seen > file_bytes:
            raise _Corrupt("the file grew while it was being read; let the copy finish")
        hasher.update(chunk)
    if seen != file_bytes:
        raise _Corrupt("the file shrank while it was being read; let the copy finish")


def _header_length(prefix: bytes, file_bytes: int, max_header_bytes: int) -> int:
    if len(prefix) < 8:
        raise _Corrupt(f"it has {file_bytes} bytes, fewer than the 8-byte header length")
    (length,) = struct.unpack("<Q", prefix)
    if length < 2:
        raise _Corrupt(f"header length {length} is too small for a JSON object")
    if length > max_header_bytes:
        raise _Corrupt(f"header length {length} exceeds the {max_header_bytes}-byte limit")
    if 8 + length > file_bytes:
        raise _Corrupt(f"header length {length} runs past the end of the {file_bytes}-byte file")
    return int(length)


def _parse(raw: bytes, data_bytes: int) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    document = _load_json(raw)
    metadata = _metadata(document.pop(METADATA_KEY, {}))
    tensors = {name: _tensor(name, entry) for name, entry in document.items()}
    _check_tiling(tensors.values(), data_bytes)
    return tensors, metadata


def _load_json(raw: bytes) -> dict[str, Any]:
    if not raw.startswith(b"{"):
        raise _Corrupt("the header does not start with '{'")
    try:
        document = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _Corrupt(f"the header is not valid JSON ({type(exc).__name__})") from exc
    if not isinstance(document, dict):
        raise _Corrupt("the header is not a JSON object")
    return document


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Corrupt(f"the header names {key!r} twice")
        result[key] = value
    return result


def _metadata(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _Corrupt("__metadata__ must map strings to strings")
    return value


def _tensor(name: str, entry: Any) -> TensorInfo:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _Corrupt(f"tensor {name!r} must have exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise _Corrupt(f"tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _Corrupt(f"tensor {name!r} has an invalid shape {shape!r}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_count, offsets)):
        raise _Corrupt(f"tensor {name!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    if end < begin or end - begin != math.prod(shape) * DTYPE_SIZES[dtype]:
        raise _Corrupt(f"tensor {name!r}: data_offsets {offsets} do not fit {dtype}{shape}")
    return TensorInfo(name, dtype, tuple(shape), begin, end)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_tiling(tensors: Iterable[TensorInfo], data_bytes: int) -> None:
    position = 0
    for info in sorted(tensors, key=lambda t: (t.begin, t.end)):
        if info.begin != position:
            problem = "overlaps another tensor" if info.begin < position else "leaves a gap"
            raise _Corrupt(f"tensor {info.name!r} {problem} in the data section")
        position = info.end
    if position != data_bytes:
        raise _Corrupt(
            f"the tensors cover {position} bytes but the data section has {data_bytes} "
            "(a truncated or padded file)"
        )
