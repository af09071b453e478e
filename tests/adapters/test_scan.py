from __future__ import annotations

import os
import pickle
from pathlib import Path

from gateway.adapters.errors import RejectReason
from gateway.adapters.store.base_model import BaseModelSpec
from gateway.adapters.store.scan import adapter_folders, scan
from gateway.adapters.store.validation import AdapterPolicy
from tests.adapter_factory import write_adapter

REPO_ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"


def test_scan_reports_valid_and_invalid_without_raising(
    store: Path, policy: AdapterPolicy, tmp_path: Path
) -> None:
    write_adapter(store / "good", name="good", num_layers=2)
    write_adapter(store / "deep", name="deep", rank=64, num_layers=1)
    (store / "pickled").mkdir()
    (store / "pickled" / "adapter_model.bin").write_bytes(pickle.dumps([1]))
    (store / "empty").mkdir()  # a copy that has not started: ignored
    (store / ".incoming").mkdir()  # hidden: being copied, ignored
    write_adapter(store / ".incoming", name="incoming", num_layers=1)
    (store / "notes.txt").write_text("files at the top are ignored")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x").write_text("x")
    os.symlink(tmp_path / "outside", store / "escape")

    result = scan(policy)

    assert [spec.name for spec in result.valid] == ["good"]
    reasons = {item.folder.name: item.reason for item in result.invalid}
    assert reasons == {
        "deep": RejectReason.RANK_TOO_LARGE,
        "pickled": RejectReason.PICKLE_WEIGHTS,
        "escape": RejectReason.PATH_OUTSIDE_ROOTS,
    }


def test_first_root_wins_a_duplicate_name(tmp_path: Path, base: BaseModelSpec) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    write_adapter(first / "router", name="router", num_layers=1)
    write_adapter(second / "router-copy", name="router", seed=1, num_layers=1)
    result = scan(AdapterPolicy.build([first, second], base, 16))
    assert [spec.path for spec in result.valid] == [(first / "router").resolve()]
    (duplicate,) = result.invalid
    assert duplicate.reason is RejectReason.DUPLICATE_NAME
    assert str(first / "router") in duplicate.message


def test_missing_root_is_skipped(tmp_path: Path, base: BaseModelSpec) -> None:
    policy = AdapterPolicy.build([tmp_path / "absent"], base, 16)
    assert adapter_folders(policy.roots) == []
    assert scan(policy).valid == ()


def test_shipped_store_is_valid(base: BaseModelSpec) -> None:
    result = scan(AdapterPolicy.build([REPO_ADAPTERS], base, 16))
    assert result.invalid == ()
    router = {spec.name: spec for spec in result.valid}["ticket-router"]
    assert router.serving.response_schema == "ticket"
    assert router.serving.system_prompt
    assert router.rank == 16 and router.target_modules == ("q_proj", "v_proj")
    assert router.manifest is not None and router.manifest.digest_hex == router.digest
