from __future__ import annotations

import pytest

from gateway.adapters.serving.versions import AdapterVersion, Lease, VersionState
from tests.adapters.conftest import SpecFactory

pytestmark = pytest.mark.anyio


def test_new_version_is_loading_and_idle(make_spec: SpecFactory) -> None:
    version = AdapterVersion(make_spec("a"), "1", "a--x")
    assert version.state is VersionState.LOADING
    assert version.idle.is_set()
    assert not version.settled.is_set()


async def test_async_lease_releases_on_exit_even_on_error(make_spec: SpecFactory) -> None:
    version = AdapterVersion(make_spec("a"), "1", "a--x")
    version.acquire()
    lease = Lease(version, pinned=False)
    assert not version.idle.is_set()
    with pytest.raises(RuntimeError):
        async with lease:
            raise RuntimeError("upstream failed")
    assert lease.released
    assert (version.in_flight, version.requests_served) == (0, 1)
    assert version.idle.is_set()


def test_sync_lease_and_double_release(make_spec: SpecFactory) -> None:
    version = AdapterVersion(make_spec("a"), "1", "a--x")
    for _ in range(2):
        version.acquire()
    first, second = Lease(version, pinned=True), Lease(version, pinned=False)
    with first:
        assert first.pinned and first.name == "a" and first.engine_id == "a--x"
    first.release()
    assert version.in_flight == 1 and not version.idle.is_set()
    second.release()
    assert version.in_flight == 0 and version.idle.is_set()
