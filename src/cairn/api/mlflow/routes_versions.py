"""MLflow's ``model-versions/*`` endpoints over Cairn's service.

``source`` is stored verbatim as opaque text: Cairn never reads, lists or fetches it (the
root of most of MLflow's CVEs). ``model_id`` is accepted and ignored, as OSS MLflow does;
MLflow 3's ``models:/m-…`` sources register like any other text. MLflow's answers show no
version's files, so the versions are read without them (``files=False``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import JSONResponse

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.mlflow.artifacts import download_uri
from cairn.api.mlflow.filters import translate_filter, translate_order_by
from cairn.api.mlflow.params import (
    FLAG,
    INTEGER,
    MAX_PAGE,
    REQUIRED,
    REQUIRED_EMPTY,
    STRINGS,
    TAGS,
    TEXT,
    VERSION,
    Body,
    in_body,
    in_query,
    page_size,
)
from cairn.api.mlflow.wire import version_json
from cairn.api.offload import brief
from cairn.domain.models import VersionSpec
from cairn.errors import NotFound

router = lean_router(tags=["mlflow"])


@router.post(
    "/model-versions/create",
    openapi_extra=in_body(
        name=REQUIRED,
        source=REQUIRED,
        run_id=TEXT,
        run_link=TEXT,
        description=TEXT,
        tags=TAGS,
        model_id=TEXT,
    ),
)
async def create_model_version(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name = p.required("name")
    spec = VersionSpec(
        description=p.text("description") or "",
        tags=p.tags(),
        source=p.required("source"),
        run_id=p.text("run_id") or None,
        run_link=p.text("run_link") or None,
    )
    p.text("model_id")  # MLflow 3 sends it; OSS MLflow neither stores nor returns it
    version = await brief(service, lambda: service.create_version(actor, name, spec))
    return json({"model_version": version_json(version)})


@router.patch(
    "/model-versions/update",
    openapi_extra=in_body(name=REQUIRED, version=VERSION, description=TEXT),
)
async def update_model_version(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name, number, description = p.required("name"), p.version(), p.text("description")
    version = await brief(
        service,
        lambda: service.update_version(actor, name, number, description=description, files=False),
    )
    return json({"model_version": version_json(version)})


@router.post(
    "/model-versions/transition-stage",
    openapi_extra=in_body(
        name=REQUIRED, version=VERSION, stage=REQUIRED, archive_existing_versions=FLAG
    ),
)
async def transition_model_version_stage(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name, number, stage = p.required("name"), p.version(), p.required("stage")
    archive = p.flag("archive_existing_versions")
    version = await brief(
        service,
        lambda: service.transition_stage(
            actor, name, number, stage, archive_existing_versions=archive, files=False
        ),
    )
    return json({"model_version": version_json(version)})


@router.delete("/model-versions/delete", openapi_extra=in_body(name=REQUIRED, version=VERSION))
def delete_model_version(p: Body, service: Service, actor: Caller) -> JSONResponse:
    service.delete_version(actor, p.required("name"), p.version())
    return json({})


@router.get("/model-versions/get", openapi_extra=in_query(name=REQUIRED, version=VERSION))
async def get_model_version(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name, number = p.required("name"), p.version()
    version = await brief(service, lambda: service.get_version(actor, name, number, files=False))
    return json({"model_version": version_json(version)})


@router.get(
    "/model-versions/search",
    openapi_extra=in_query(filter=TEXT, max_results=INTEGER, order_by=STRINGS, page_token=TEXT),
)
async def search_model_versions(p: Body, service: Service, actor: Caller) -> JSONResponse:
    flt = translate_filter(p.text("filter"), "versions")
    order_by = translate_order_by(p.strings("order_by"), "versions")
    size, token = page_size(p, MAX_PAGE), p.text("page_token") or None
    page = await brief(
        service,
        lambda: service.search_versions(
            actor, flt, order_by=order_by, max_results=size, page_token=token, files=False
        ),
        bounded=service.searches_one_model(flt),
    )
    body: dict[str, Any] = {}
    if page.items:
        body["model_versions"] = [version_json(v) for v in page.items]
    if page.next_page_token:
        body["next_page_token"] = page.next_page_token
    return json(body)


@router.get(
    "/model-versions/get-download-uri",
    openapi_extra=in_query(name=REQUIRED, version=VERSION),
)
async def get_model_version_download_uri(
    request: Request, p: Body, service: Service, actor: Caller
) -> JSONResponse:
    name, number = p.required("name"), p.version()
    # the version's files decide the answer: as many as it has
    version = await brief(service, lambda: service.get_version(actor, name, number), bounded=False)
    return json({"artifact_uri": download_uri(request, service, actor, version)})


@router.post(
    "/model-versions/set-tag",
    openapi_extra=in_body(name=REQUIRED, version=VERSION, key=REQUIRED, value=REQUIRED_EMPTY),
)
async def set_model_version_tag(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name, version = p.required("name"), p.version()
    key, value = p.required("key"), p.required("value", allow_empty=True)
    await brief(
        service, lambda: service.set_version_tag(actor, name, version, key, value, files=False)
    )
    return json({})


@router.delete(
    "/model-versions/delete-tag",
    openapi_extra=in_body(name=REQUIRED, version=VERSION, key=REQUIRED),
)
async def delete_model_version_tag(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name, version, key = p.required("name"), p.version(), p.required("key")

    def delete() -> None:
        try:
            service.delete_version_tag(actor, name, version, key, files=False)
        except NotFound:  # as in MLflow, an absent tag is no error; an absent version is
            service.get_version(actor, name, version, files=False)

    await brief(service, delete)
    return json({})
