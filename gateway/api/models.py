"""The models list: the base model and every served adapter."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.deps import UserDep
from gateway.inference.targets import TargetResolver
from gateway.protocol import ModelCard, ModelList

router = APIRouter(tags=["models"])


@router.get("/v1/models")
async def list_models(request: Request, _: UserDep) -> ModelList:
    """Lists the base model and every served adapter (adapters have `parent` set)."""
    targets: TargetResolver = request.app.state.targets
    created: int = request.app.state.started_at
    base = ModelCard(id=targets.base_model, created=created, root=targets.base_model)
    cards = [base]
    if targets.adapters is not None:
        cards += [
            ModelCard(id=name, created=created, root=root, parent=targets.base_model)
            for name, root in targets.adapters.public_names()
        ]
    return ModelList(data=cards)
