from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store.paths import resolve_adapter_path, resolve_roots


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, ...]:
    first, second = tmp_path / "store", tmp_path / "more"
    for root in (first, second):
        root.mkdir()
    (first / "router").mkdir()
    (second / "other").mkdir()
    (first / "file.txt").write_text("x")
    return resolve_roots([first, second])


def reason(requested: str, roots: tuple[Path, ...]) -> RejectReason:
    with pytest.raises(AdapterRejected) as info:
        resolve_adapter_path(requested, roots)
    return info.value.reason


def test_relative_paths_are_under_the_first_root(roots: tuple[Path, ...]) -> None:
    assert resolve_adapter_path("router", roots) == roots[0] / "router"
    assert resolve_adapter_path("./router/", roots) == roots[0] / "router"


def test_absolute_paths_inside_any_root(roots: tuple[Path, ...]) -> None:
    assert resolve_adapter_path(str(roots[1] / "other"), roots) == roots[1] / "other"


def test_dotdot_that_stays_inside_is_fine(roots: tuple[Path, ...]) -> None:
    assert resolve_adapter_path("router/../router", roots) == roots[0] / "router"


@pytest.mark.parametrize("requested", ["../more/other", "../../etc", "router/../../more/other"])
def test_dotdot_escapes_are_refused(roots: tuple[Path, ...], requested: str) -> None:
    assert reason(requested, roots) is RejectReason.PATH_OUTSIDE_ROOTS


def test_absolute_path_outside_roots(roots: tuple[Path, ...], tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    assert reason(str(tmp_path / "elsewhere"), roots) is RejectReason.PATH_OUTSIDE_ROOTS
    assert reason("/etc", roots) is RejectReason.PATH_OUTSIDE_ROOTS


def test_the_root_itself_is_not_an_adapter(roots: tuple[Path, ...]) -> None:
    assert reason(".", roots) is RejectReason.PATH_OUTSIDE_ROOTS
    assert reason(str(roots[1]), roots) is RejectReason.PATH_OUTSIDE_ROOTS


def test_symlink_escaping_the_store(roots: tuple[Path, ...], tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", roots[0] / "sneaky")
    assert reason("sneaky", roots) is RejectReason.PATH_OUTSIDE_ROOTS


def test_symlink_within_the_store(roots: tuple[Path, ...]) -> None:
    os.symlink(roots[1] / "other", roots[0] / "alias")
    assert resolve_adapter_path("alias", roots) == roots[1] / "other"


def test_symlink_loop(roots: tuple[Path, ...]) -> None:
    os.symlink(roots[0] / "loop", roots[0] / "loop")
    assert reason("loop", roots) in (RejectReason.INVALID_PATH, RejectReason.NOT_FOUND)


@pytest.mark.parametrize(
    "url", ["https://huggingface.co/x/y", "hf://org/adapter", "s3://bucket/a", "file:///etc"]
)
def test_urls_are_refused(roots: tuple[Path, ...], url: str) -> None:
    with pytest.raises(AdapterRejected) as info:
        resolve_adapter_path(url, roots)
    assert info.value.reason is RejectReason.INVALID_PATH
    assert "never downloaded" in info.value.message


def test_hub_id_that_is_not_a_folder(roots: tuple[Path, ...]) -> None:
    with pytest.raises(AdapterRejected) as info:
        resolve_adapter_path("some-org/some-adapter", roots)
    assert info.value.reason is RejectReason.NOT_FOUND
    assert "hub id" in info.value.message


def test_hub_id_shaped_path_that_exists_is_a_folder(roots: tuple[Path, ...]) -> None:
    (roots[0] / "team").mkdir()
    (roots[0] / "team" / "adapter").mkdir()
    assert resolve_adapter_path("team/adapter", roots) == roots[0] / "team" / "adapter"


def test_files_are_not_adapters(roots: tuple[Path, ...]) -> None:
    assert reason("file.txt", roots) is RejectReason.NOT_A_DIRECTORY


@pytest.mark.parametrize("requested", ["", "  ", "router\x00/x", "a" * 2000])
def test_malformed_paths(roots: tuple[Path, ...], requested: str) -> None:
    assert reason(requested, roots) is RejectReason.INVALID_PATH


def test_at_least_one_root_is_needed() -> None:
    with pytest.raises(ValueError, match="adapters.roots"):
        resolve_roots([])
