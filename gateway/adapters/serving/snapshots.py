"""Immutable views of the registry for listings (GET /v1/adapters) and health pages."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from gateway.adapters.serving.versions import AdapterVersion, VersionState
from gateway.adapters.store.manifest import ServingDefaults


class VersionSnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    engine_id: str
    state: VersionState
    public: bool
    # Rolled out beside the public version (GET /v1/adapters/{name}/rollout).
    candidate: bool = False
    digest: str
    base_model: str | None
    rank: int
    target_modules: tuple[str, ...]
    failure_reason: str | None
    failure_message: str | None
    created_at: float
    loaded_at: float | None
    load_seconds: float | None
    requests_served: int
    in_flight: int

    @classmethod
    def of(cls, version: AdapterVersion, *, public: bool, candidate: bool = False
           ) -> VersionSnapshot:
        spec = version.spec
        return cls(
            version=version.version,
            engine_id=version.engine_id,
            state=version.state,
            public=public,
            candidate=candidate,
            digest=spec.digest,
            base_model=spec.base_model,
            rank=spec.rank,
            target_modules=spec.target_modules,
            failure_reason=version.failure_reason,
            failure_message=version.failure_message,
            created_at=version.created_at,
            loaded_at=version.loaded_at,
            load_seconds=version.load_seconds,
            requests_served=version.requests_served,
            in_flight=version.in_flight,
        )


class AdapterSnapshot(BaseModel):
    """One adapter name: which version is public, and every version still tracked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    public_version: str | None
    description: str
    serving: ServingDefaults
    versions: tuple[VersionSnapshot, ...]

    @classmethod
    def of(cls, name: str, versions: list[AdapterVersion], public: AdapterVersion | None,
           candidate: AdapterVersion | None) -> AdapterSnapshot:
        shown = public or (versions[-1] if versions else None)
        return cls(
            name=name,
            public_version=public.version if public else None,
            description=shown.spec.description if shown else "",
            serving=shown.spec.serving if shown else ServingDefaults(),
            versions=tuple(VersionSnapshot.of(v, public=v is public, candidate=v is candidate)
                           for v in versions),
        )
