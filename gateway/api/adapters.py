"""Adapter management (admin): list, load, replace, unload; plus vLLM-compatible aliases."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.adapters.serving.service import AdapterService
from gateway.adapters.serving.snapshots import AdapterSnapshot
from gateway.deps import AdminDep
from gateway.errors import AdapterNotFound, Conflict
from gateway.rollouts.rollout import Action, RolloutPolicy

router = APIRouter(tags=["adapters"])


class LoadAdapter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096,
                      description="Adapter folder, relative to the first adapter root or "
                                  "absolute inside one of the roots.")
    name: str | None = Field(None, description="Name to serve it under when the folder has "
                                               "no adapter.yaml.")
    replace: bool = Field(False, description="Publish as a new version if the name exists "
                                             "with other content (hot swap).")
    rollout: RolloutPolicy | bool | None = Field(
        None, description="A new version of a served name: roll it out with this policy, "
        "true for the configured one, false for a hot swap; absent: as configured.")


class StartRollout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096,
                      description="The candidate's folder, inside the adapter roots.")
    policy: RolloutPolicy | None = Field(None, description="Stages and gate; absent: the "
                                         "configured policy (or the default one).")


class RolloutAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("operator's decision", max_length=1000)


class VllmLoadLora(BaseModel):
    model_config = ConfigDict(extra="allow")

    lora_name: str = Field(min_length=1, max_length=256)
    lora_path: str = Field(min_length=1, max_length=4096)
    load_inplace: bool = False


class VllmUnloadLora(BaseModel):
    model_config = ConfigDict(extra="allow")

    lora_name: str = Field(min_length=1, max_length=256)


class AdapterList(BaseModel):
    object: str = "list"
    data: list[AdapterSnapshot]


async def _service(request: Request) -> AdapterService:
    service: AdapterService = request.app.state.adapters
    return service


AdaptersDep = Annotated[AdapterService, Depends(_service)]


@router.get("/v1/adapters")
async def list_adapters(service: AdaptersDep, _: AdminDep) -> AdapterList:
    """Lists every adapter with its versions, states, digests and counters."""
    return AdapterList(data=service.registry.list())


@router.get("/v1/adapters/{name}")
async def get_adapter(name: str, service: AdaptersDep, _: AdminDep) -> AdapterSnapshot:
    """Shows one adapter."""
    return service.snapshot(name)


@router.post("/v1/adapters")
async def load_adapter(body: LoadAdapter, service: AdaptersDep, _: AdminDep) -> JSONResponse:
    """Validates an adapter folder inside the adapter roots and loads it (201 when new)."""
    snapshot, created = await service.load_path(body.path, name=body.name, replace=body.replace,
                                                rollout=body.rollout)
    return JSONResponse(snapshot.model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/v1/adapters/{name}/rollout")
async def get_rollout(name: str, service: AdaptersDep, _: AdminDep) -> dict[str, Any]:
    """The adapter's rollout: stage, shares, each version's numbers, the decisions and why."""
    return service.rollout(name).as_dict()


@router.post("/v1/adapters/{name}/rollout")
async def start_rollout(name: str, body: StartRollout, service: AdaptersDep, _: AdminDep
                        ) -> JSONResponse:
    """Loads a new version of a served adapter as the candidate of a rollout."""
    if service.registry.public(name) is None:
        raise AdapterNotFound(f"Adapter {name!r} is not served: load it first (a rollout "
                              "needs a stable version to compare with).", param="name")
    snapshot, created = await service.load_path(body.path, name=name, replace=True,
                                                rollout=body.policy or True)
    if not created or service.rollouts.active(name) is None:
        raise Conflict(f"{body.path!r} holds the version of {name!r} already served; a "
                       "rollout needs other content.")
    return JSONResponse(service.rollout(name).as_dict(), status_code=201)


@router.post("/v1/adapters/{name}/rollout/{action}")
async def decide_rollout(
    name: str, action: Literal["advance", "promote", "abort"], service: AdaptersDep,
    _: AdminDep, body: RolloutAction | None = None,
) -> dict[str, Any]:
    """Moves a running rollout by hand: to its next stage, to the candidate, or back."""
    reason = body.reason if body is not None else "operator's decision"
    return service.decide(name, Action(action), reason).as_dict()


@router.delete("/v1/adapters/{name}")
async def unload_adapter(name: str, service: AdaptersDep, _: AdminDep) -> AdapterSnapshot:
    """Stops serving an adapter; running requests finish first, then it leaves the engine."""
    return await service.unload(name)


@router.post("/v1/load_lora_adapter")
async def vllm_load(body: VllmLoadLora, service: AdaptersDep, _: AdminDep) -> PlainTextResponse:
    """vLLM-compatible load: `lora_name` and `lora_path` (inside the adapter roots)."""
    await service.load_path(body.lora_path, name=body.lora_name, replace=body.load_inplace)
    return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' added successfully.")


@router.post("/v1/unload_lora_adapter")
async def vllm_unload(
    body: VllmUnloadLora, service: AdaptersDep, _: AdminDep
) -> PlainTextResponse:
    """vLLM-compatible unload by `lora_name`."""
    await service.unload(body.lora_name)
    return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' removed successfully.")
