"""``/api/v1/import/…``: what importers call (``cairn import mlflow``, ``cairn import DIR``).

These routes accept what ordinary creates do not: a version's number, and the original
creation time and creator. Re-sending the same import is safe: an existing version with
the same content is returned as it is.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field
from starlette.responses import JSONResponse

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.v1.schemas import FileIn, ModelOut, Strict, VersionCreated
from cairn.domain.codec import model_to_json, version_to_json
from cairn.domain.models import FileEntry, VersionSpec, VersionStatus

router = lean_router(prefix="/import/models", tags=["import"])


class ModelImport(Strict):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = Field(None, description="Original creation time (UTC).")
    created_by: str | None = Field(None, description="Original creator; default the caller.")


class VersionImport(Strict):
    description: str = ""
    files: list[FileIn] = Field(
        default_factory=list, description="The manifest: path, size, digest."
    )
    tags: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    semver: str | None = None
    source: str | None = None
    run_id: str | None = None
    run_link: str | None = None
    stage: str = "None"
    status: str = Field(
        "READY",
        description="READY (the version becomes READY once its files are stored) or FAILED.",
    )
    status_message: str = ""
    created_at: datetime | None = None
    created_by: str | None = None


class VersionReserve(Strict):
    up_to: int = Field(ge=0, description="Move the version counter up to this number.")


@router.post("", status_code=201, response_model=ModelOut)
def import_model(body: ModelImport, service: Service, actor: Caller) -> JSONResponse:
    """Create a model with its original creation time and creator (400 if it exists)."""
    model = service.import_model(
        actor,
        body.name,
        description=body.description,
        tags=body.tags,
        created_at=body.created_at,
        created_by=body.created_by,
    )
    return json(model_to_json(model), 201)


@router.put("/{name}/versions/{version}", response_model=VersionCreated)
def import_version(
    name: str, version: str, body: VersionImport, service: Service, actor: Caller
) -> JSONResponse:
    """Create version ``version`` exactly, or return it unchanged if it has the same content."""
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
    )
    imported = service.import_version(
        actor,
        name,
        version,
        spec,
        stage=body.stage,
        status=body.status,
        status_message=body.status_message,
        created_at=body.created_at,
        created_by=body.created_by,
    )
    missing = []
    if imported.status is VersionStatus.PENDING:
        missing = service.missing_blobs(actor, name, imported.version)
    return json({**version_to_json(imported), "missing": missing})


@router.post("/{name}/reserve", response_model=ModelOut)
def reserve_versions(
    name: str, body: VersionReserve, service: Service, actor: Caller
) -> JSONResponse:
    """Spend version numbers up to ``up_to``: later creates start above it."""
    return json(model_to_json(service.reserve_versions(actor, name, body.up_to)))
