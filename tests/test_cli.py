from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import main


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures the root logger for a terminal; put pytest's handlers back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_missing_configuration_file_is_a_clean_error(capfd: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", "restored-after-the-test")
    assert main(["serve", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml does not exist" in capfd.readouterr().err


def test_unknown_key_is_a_clean_error(capfd: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", "restored-after-the-test")
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  prot: 1\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert "server.prot" in capfd.readouterr().err
