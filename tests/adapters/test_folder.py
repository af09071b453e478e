from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store.folder import check_no_pickles, content_digest, read_bounded
from tests.adapter_factory import write_adapter

FILES = ("adapter_config.json", "adapter_model.safetensors")


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils' sha256sum")
def test_digest_is_the_documented_sha256sum_pipeline(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a", name="a", num_layers=2)
    listing = subprocess.run(
        ["sha256sum", *FILES], cwd=folder, check=True, capture_output=True
    ).stdout
    expected = (
        subprocess.run(["sha256sum"], input=listing, check=True, capture_output=True)
        .stdout.split()[0]
        .decode()
    )
    digest, sizes = content_digest({name: folder / name for name in FILES})
    assert digest == expected
    assert sizes["adapter_model.safetensors"] == (folder / FILES[1]).stat().st_size


def test_digest_depends_on_every_byte(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a", name="a", num_layers=2)
    files = {name: folder / name for name in FILES}
    before = content_digest(files)[0]
    data = bytearray(files[FILES[1]].read_bytes())
    data[-1] ^= 1
    files[FILES[1]].write_bytes(bytes(data))
    assert content_digest(files)[0] != before


def test_pickle_files_are_found_by_name(tmp_path: Path) -> None:
    (tmp_path / "adapter_model.bin").write_bytes(b"x")
    (tmp_path / "README.md").write_text("binary? no")
    with pytest.raises(AdapterRejected) as info:
        check_no_pickles(tmp_path)
    assert info.value.reason is RejectReason.PICKLE_WEIGHTS
    (tmp_path / "adapter_model.bin").unlink()
    check_no_pickles(tmp_path)


def test_read_bounded(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 2000)
    assert len(read_bounded(path, 2000)) == 2000
    with pytest.raises(AdapterRejected) as info:
        read_bounded(path, 1999)
    assert info.value.reason is RejectReason.FILE_TOO_LARGE
