"""``/api/v1/models/{name}/aliases``, ``/api/v1/resolve``, ``/api/v1/diff`` and
``/api/v1/search``."""

from __future__ import annotations

from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.offload import brief
from cairn.api.v1.models import OrderBy, WithFiles
from cairn.api.v1.schemas import AliasHistory, AliasSet, DiffOut, VersionOut, VersionPage
from cairn.domain.codec import alias_event_to_json, version_to_json
from cairn.domain.diff import VersionDiff
from cairn.domain.diff_codec import diff_to_json
from cairn.domain.uris import ModelRef

router = lean_router(tags=["aliases"])


@router.put("/models/{name}/aliases/{alias}", response_model=VersionOut)
async def set_alias(
    name: str, alias: str, body: AliasSet, service: Service, actor: Caller
) -> JSONResponse:
    version = await brief(
        service, lambda: service.set_alias(actor, name, alias, body.version, expect=body.expect)
    )
    return json(version_to_json(version))


@router.get("/models/{name}/aliases/{alias}", response_model=VersionOut)
async def resolve_alias(
    name: str, alias: str, service: Service, actor: Caller, as_of: datetime | None = None
) -> JSONResponse:
    """The version ``alias`` points at now, or pointed at ``as_of`` (RFC 3339)."""
    ref = ModelRef(name, alias=alias)
    return json(
        version_to_json(await brief(service, lambda: service.resolve(actor, ref, as_of=as_of)))
    )


@router.post("/models/{name}/aliases/{alias}/rollback", response_model=VersionOut)
async def rollback_alias(
    name: str, alias: str, service: Service, actor: Caller, as_of: datetime | None = None
) -> JSONResponse:
    """Move the alias back to the version it pointed at before its last move (a deleted
    alias is set again), or with ``as_of`` (RFC 3339) to the one it pointed at then: a
    move like ``PUT``, whose precondition is the alias's current version."""
    moved = await brief(service, lambda: service.rollback_alias(actor, name, alias, as_of=as_of))
    return json(version_to_json(moved))


@router.delete("/models/{name}/aliases/{alias}", status_code=204)
async def delete_alias(name: str, alias: str, service: Service, actor: Caller) -> Response:
    await brief(service, lambda: service.delete_alias(actor, name, alias))
    return Response(status_code=204)


@router.get("/models/{name}/aliases/{alias}/history", response_model=AliasHistory)
async def alias_history(
    name: str, alias: str, service: Service, actor: Caller, limit: int | None = None
) -> JSONResponse:
    events = await brief(
        service, lambda: service.alias_history(actor, name, alias, limit=limit), bounded=False
    )
    return json({"events": [alias_event_to_json(e) for e in events]})


@router.get("/models/{name}/alias-history", response_model=AliasHistory)
async def model_alias_history(
    name: str, service: Service, actor: Caller, limit: int | None = None
) -> JSONResponse:
    events = await brief(
        service, lambda: service.alias_history(actor, name, None, limit=limit), bounded=False
    )
    return json({"events": [alias_event_to_json(e) for e in events]})


@router.get("/resolve", response_model=VersionOut)
async def resolve(
    uri: str, service: Service, actor: Caller, as_of: datetime | None = None
) -> JSONResponse:
    """Resolve ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``models:/NAME/latest``."""
    found = await brief(service, lambda: service.resolve(actor, uri, as_of=as_of))
    return json(version_to_json(found))


@router.get("/diff", response_model=DiffOut)
async def diff_versions(
    old: str,
    new: str,
    service: Service,
    actor: Caller,
    old_as_of: datetime | None = None,
    tensors: bool = False,
    signature: bool = False,
) -> JSONResponse:
    """How the version ``new`` names differs from the one ``old`` names (two ``models:/``
    URIs, of one model or two): record fields, metrics (with their deltas), params, tags and
    files (changed, renamed, added, removed). ``old_as_of`` (RFC 3339) resolves ``old``'s
    alias as of that time: what changed since then. ``tensors=true`` adds which tensors of
    their safetensors files changed (added, removed, another dtype, shape or values),
    matched by name across files, however each version is sharded. ``signature=true``
    adds how the signatures of their MLflow ``MLmodel`` files differ, each change marked
    breaking or not for a caller written for ``old``."""

    def run() -> VersionDiff:
        return service.diff_versions(
            actor, old, new, old_as_of=old_as_of, tensors=tensors, signature=signature
        )

    # reading files is long by nature: never on the event loop
    reads_files = tensors or signature
    found = await (run_in_threadpool(run) if reads_files else brief(service, run, bounded=False))
    return json(diff_to_json(found))


@router.get("/search/versions", response_model=VersionPage, tags=["search"])
async def search_versions(
    service: Service,
    actor: Caller,
    filter: str | None = None,
    order_by: OrderBy = None,
    max_results: int | None = None,
    page_token: str | None = None,
    include_deleted: bool = False,
    files: WithFiles = True,
) -> JSONResponse:
    page = await brief(
        service,
        lambda: service.search_versions(
            actor,
            filter,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
            include_deleted=include_deleted,
            files=files,
        ),
        bounded=service.searches_one_model(filter),
    )
    return json(
        {
            "versions": [version_to_json(v, files=files) for v in page.items],
            "next_page_token": page.next_page_token,
        }
    )
