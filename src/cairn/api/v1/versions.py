"""``/api/v1/models/{name}/versions``: model versions."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.offload import brief
from cairn.api.v1.models import IdempotencyKey, OrderBy, WithFiles
from cairn.api.v1.schemas import (
    StageTransition,
    TagValue,
    VersionCreate,
    VersionCreated,
    VersionOut,
    VersionPage,
    VersionUpdate,
)
from cairn.domain.codec import version_to_json
from cairn.domain.lineage import input_from_json
from cairn.domain.models import FileEntry, ModelVersion, VersionSpec

router = lean_router(prefix="/models/{name}/versions", tags=["versions"])


@router.post("", status_code=201, response_model=VersionCreated)
async def create_version(
    name: str,
    body: VersionCreate,
    service: Service,
    actor: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    spec = VersionSpec(
        description=body.description,
        tags=body.tags,
        params=body.params,
        metrics=body.metrics,
        semver=body.semver,
        source=body.source,
        run_id=body.run_id,
        run_link=body.run_link,
        files=tuple(FileEntry(f.path, f.size, f.digest) for f in body.files),
        lineage=tuple(input_from_json(i.model_dump(exclude_none=True)) for i in body.lineage),
    )

    def create() -> tuple[ModelVersion, list[str]]:
        version = service.create_version(actor, name, spec, idempotency_key=idempotency_key)
        missing = [] if not version.files else service.missing_blobs(actor, name, version.version)
        return version, missing

    version, missing = await brief(service, create)
    return json({**version_to_json(version), "missing": missing}, 201)


@router.get("", response_model=VersionPage)
async def list_versions(
    name: str,
    service: Service,
    actor: Caller,
    order_by: OrderBy = None,
    max_results: int | None = None,
    page_token: str | None = None,
    include_deleted: bool = False,
    files: WithFiles = True,
) -> JSONResponse:
    page = await brief(
        service,
        lambda: service.list_versions(
            actor,
            name,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
            include_deleted=include_deleted,
            files=files,
        ),
        bounded=not files,  # a page of manifests can be large
    )
    return json(
        {
            "versions": [version_to_json(v, files=files) for v in page.items],
            "next_page_token": page.next_page_token,
        }
    )


@router.get("/{version}", response_model=VersionOut)
async def get_version(name: str, version: str, service: Service, actor: Caller) -> JSONResponse:
    found = await brief(service, lambda: service.get_version(actor, name, version))
    return json(version_to_json(found))


@router.patch("/{version}", response_model=VersionOut)
def update_version(
    name: str, version: str, body: VersionUpdate, service: Service, actor: Caller
) -> JSONResponse:
    updated = service.update_version(
        actor, name, version, description=body.description, semver=body.semver
    )
    return json(version_to_json(updated))


@router.delete("/{version}", status_code=204)
def delete_version(
    name: str, version: str, service: Service, actor: Caller, purge: bool = False
) -> Response:
    """Soft delete (restorable); ``purge=true`` deletes for good so gc can reclaim bytes."""
    if purge:
        service.purge_version(actor, name, version)
    else:
        service.delete_version(actor, name, version)
    return Response(status_code=204)


@router.post("/{version}/restore", response_model=VersionOut)
def restore_version(name: str, version: str, service: Service, actor: Caller) -> JSONResponse:
    return json(version_to_json(service.restore_version(actor, name, version)))


@router.post("/{version}/stage", response_model=VersionOut)
def transition_stage(
    name: str, version: str, body: StageTransition, service: Service, actor: Caller
) -> JSONResponse:
    moved = service.transition_stage(
        actor, name, version, body.stage, archive_existing_versions=body.archive_existing_versions
    )
    return json(version_to_json(moved))


@router.put("/{version}/tags/{key:path}", response_model=VersionOut)
def set_version_tag(
    name: str, version: str, key: str, body: TagValue, service: Service, actor: Caller
) -> JSONResponse:
    return json(version_to_json(service.set_version_tag(actor, name, version, key, body.value)))


@router.delete("/{version}/tags/{key:path}", response_model=VersionOut)
def delete_version_tag(
    name: str, version: str, key: str, service: Service, actor: Caller
) -> JSONResponse:
    return json(version_to_json(service.delete_version_tag(actor, name, version, key)))
