"""Fixtures for the monitoring tests: the Prometheus binaries they need."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

INSTALL_HINT = "install it with scripts/install_prometheus.sh (Debian's prometheus package)"


def skip_or_fail(reason: str) -> None:
    """Skips on a developer machine without the tool; fails under CI, which must have it."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)")
    pytest.skip(reason)


def _binary(name: str) -> Path:
    found = shutil.which(name)
    if found is None:
        skip_or_fail(f"{name} is not on PATH; {INSTALL_HINT}")
    assert found is not None
    return Path(found)


@pytest.fixture(scope="session")
def promtool() -> Path:
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> Path:
    return _binary("prometheus")
