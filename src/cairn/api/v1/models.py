"""``/api/v1/models``: registered models."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query
from starlette.responses import JSONResponse, Response

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.offload import brief
from cairn.api.v1.schemas import (
    ModelCreate,
    ModelOut,
    ModelPage,
    ModelRename,
    ModelUpdate,
    PruneIn,
    PruneOut,
    RetentionIn,
    RetentionOut,
    TagValue,
)
from cairn.domain.codec import model_to_json, prune_to_json, retention_to_json

router = lean_router(prefix="/models", tags=["models"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
OrderBy = Annotated[list[str] | None, Query()]
WithFiles = Annotated[
    bool,
    Query(
        description="false: leave each version's manifest out (`files` is null; `size` and "
        "`digest` still describe it), for a listing of versions of many files"
    ),
]


@router.post("", status_code=201, response_model=ModelOut)
async def create_model(
    body: ModelCreate, service: Service, actor: Caller, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    model = await brief(
        service,
        lambda: service.create_model(
            actor,
            body.name,
            description=body.description,
            tags=body.tags,
            idempotency_key=idempotency_key,
        ),
    )
    return json(model_to_json(model), 201)


@router.get("", response_model=ModelPage)
async def list_models(
    service: Service,
    actor: Caller,
    filter: str | None = None,
    order_by: OrderBy = None,
    max_results: int | None = None,
    page_token: str | None = None,
    include_deleted: bool = False,
) -> JSONResponse:
    page = await brief(
        service,
        lambda: service.search_models(
            actor,
            filter,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
            include_deleted=include_deleted,
        ),
        bounded=False,
    )
    return json(
        {"models": [model_to_json(m) for m in page.items], "next_page_token": page.next_page_token}
    )


@router.get("/{name}", response_model=ModelOut)
async def get_model(name: str, service: Service, actor: Caller) -> JSONResponse:
    return json(model_to_json(await brief(service, lambda: service.get_model(actor, name))))


@router.patch("/{name}", response_model=ModelOut)
async def update_model(
    name: str, body: ModelUpdate, service: Service, actor: Caller
) -> JSONResponse:
    updated = await brief(
        service, lambda: service.update_model(actor, name, description=body.description)
    )
    return json(model_to_json(updated))


@router.post("/{name}/rename", response_model=ModelOut)
def rename_model(name: str, body: ModelRename, service: Service, actor: Caller) -> JSONResponse:
    return json(model_to_json(service.rename_model(actor, name, body.new_name)))


@router.delete("/{name}", status_code=204)
def delete_model(name: str, service: Service, actor: Caller) -> Response:
    service.delete_model(actor, name)
    return Response(status_code=204)


@router.post("/{name}/restore", response_model=ModelOut)
def restore_model(name: str, service: Service, actor: Caller) -> JSONResponse:
    return json(model_to_json(service.restore_model(actor, name)))


@router.post("/{name}/prune", response_model=PruneOut)
def prune_versions(name: str, body: PruneIn, service: Service, actor: Caller) -> JSONResponse:
    """Delete the versions older than the newest ``keep``, except those an alias, the
    Staging or Production stage, a live deployment or an upload in progress holds, the
    lineage parents (but through retrain) of versions those hold, and those created within
    ``keep_days`` (MANAGE); with ``filter``, only among the versions it matches. A dry
    run unless ``dry_run`` is false; soft (restorable) unless ``purge``."""
    report = service.prune_versions(
        actor,
        name,
        keep=body.keep,
        keep_days=body.keep_days,
        dry_run=body.dry_run,
        purge=body.purge,
        filter=body.filter,
    )
    return json(prune_to_json(report))


@router.get("/{name}/retention", response_model=RetentionOut)
def get_retention(name: str, service: Service, actor: Caller) -> JSONResponse:
    """The model's own retention policy (null: none) and the one gc applies to it."""
    return json(retention_to_json(service.get_retention(actor, name)))


@router.put("/{name}/retention", response_model=RetentionOut)
def set_retention(name: str, body: RetentionIn, service: Service, actor: Caller) -> JSONResponse:
    """Give the model its own retention policy (MANAGE): gc keeps its newest ``keep``
    versions (null: every one) and those created within ``keep_days``, by the rule of
    ``prune``; it replaces the instance's policy for this model."""
    policy = service.set_retention(actor, name, keep=body.keep, keep_days=body.keep_days)
    return json(retention_to_json(policy))


@router.delete("/{name}/retention", response_model=RetentionOut)
def clear_retention(name: str, service: Service, actor: Caller) -> JSONResponse:
    """Return the model to the instance's retention policy (MANAGE)."""
    return json(retention_to_json(service.clear_retention(actor, name)))


@router.put("/{name}/tags/{key:path}", response_model=ModelOut)
async def set_model_tag(
    name: str, key: str, body: TagValue, service: Service, actor: Caller
) -> JSONResponse:
    tagged = await brief(service, lambda: service.set_model_tag(actor, name, key, body.value))
    return json(model_to_json(tagged))


@router.delete("/{name}/tags/{key:path}", response_model=ModelOut)
async def delete_model_tag(name: str, key: str, service: Service, actor: Caller) -> JSONResponse:
    untagged = await brief(service, lambda: service.delete_model_tag(actor, name, key))
    return json(model_to_json(untagged))
