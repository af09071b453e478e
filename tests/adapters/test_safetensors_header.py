from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store.safetensors_header import read_header


def raw_file(path: Path, header: Any, data: bytes = b"", *, length: int | None = None) -> Path:
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    size = len(blob) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + blob + data)
    return path


def corrupt(path: Path, **kw: Any) -> str:
    with pytest.raises(AdapterRejected) as info:
        read_header(path, **kw)
    assert info.value.reason is RejectReason.CORRUPT_WEIGHTS
    return info.value.message


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_reads_what_the_safetensors_library_writes(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(
        {"a": np.zeros((2, 3), np.float16), "b": np.ones(4, np.float32)},
        str(path),
        metadata={"format": "pt"},
    )
    header = read_header(path)
    assert header.tensors["a"].dtype == "F16" and header.tensors["a"].shape == (2, 3)
    assert header.tensors["b"].end - header.tensors["b"].begin == 16
    assert header.metadata == {"format": "pt"}
    assert header.file_bytes == path.stat().st_size


def test_empty_header_is_valid(tmp_path: Path) -> None:
    assert read_header(raw_file(tmp_path / "w", {})).tensors == {}


def test_shorter_than_the_length_prefix(tmp_path: Path) -> None:
    (tmp_path / "w").write_bytes(b"\x01\x02")
    assert "fewer than the 8-byte" in corrupt(tmp_path / "w")


def test_huge_header_length(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "w", {}, length=2**63)
    assert "exceeds" in corrupt(path)


def test_header_length_past_end_of_file(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "w", {}, length=1000)
    assert "past the end" in corrupt(path, max_header_bytes=4096)


def test_truncated_data(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "w", {"a": entry("F32", [4], 0, 16)}, b"\0" * 12)
    assert "truncated" in corrupt(path)


def test_offsets_out_of_range(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "w", {"a": entry("F32", [4], 100, 116)}, b"\0" * 16)
    assert "gap" in corrupt(path)


def test_overlapping_tensors(tmp_path: Path) -> None:
    header = {"a": entry("F32", [4], 0, 16), "b": entry("F32", [2], 8, 16)}
    assert "overlaps" in corrupt(raw_file(tmp_path / "w", header, b"\0" * 16))


def test_offsets_that_disagree_with_the_shape(tmp_path: Path) -> None:
    path = raw_file(tmp_path / "w", {"a": entry("F32", [5], 0, 16)}, b"\0" * 16)
    assert "do not fit" in corrupt(path)


@pytest.mark.parametrize(
    "bad",
    [
        entry("Q4_K", [4], 0, 16),
        {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]},
        {"dtype": "F32", "shape": [4.0], "data_offsets": [0, 16]},
        {"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "extra": 1},
        {"dtype": "F32", "shape": [4], "data_offsets": [16]},
        [1, 2, 3],
    ],
)
def test_malformed_entries(tmp_path: Path, bad: Any) -> None:
    corrupt(raw_file(tmp_path / "w", {"a": bad}, b"\0" * 16))


@pytest.mark.parametrize(
    "blob", [b"[1,2]", b"{not json}", b"\xff\xfe{}", b'{"a": 1, "a": 2}', b"   {}"]
)
def test_malformed_json(tmp_path: Path, blob: bytes) -> None:
    corrupt(raw_file(tmp_path / "w", blob))


def test_deeply_nested_json(tmp_path: Path) -> None:
    corrupt(raw_file(tmp_path / "w", b'{"__metadata__": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"))


def test_metadata_must_be_strings(tmp_path: Path) -> None:
    corrupt(raw_file(tmp_path / "w", {"__metadata__": {"format": 1}}))
