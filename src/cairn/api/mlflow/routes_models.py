"""MLflow's ``registered-models/*`` endpoints over Cairn's service.

Each route parses MLflow's parameters, calls ``RegistryService`` once or twice, and answers
proto-JSON. The differences from Cairn's native API are MLflow's, kept here: deleting a tag
or alias that is not there succeeds (as in MLflow), and a missing alias is a 400
INVALID_PARAMETER_VALUE ("Registered model alias X not found."), not a 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.mlflow.filters import translate_filter, translate_order_by
from cairn.api.mlflow.params import (
    INTEGER,
    REQUIRED,
    REQUIRED_EMPTY,
    STRINGS,
    TAGS,
    TEXT,
    VERSION,
    Body,
    Params,
    in_body,
    in_query,
    page_size,
)
from cairn.api.mlflow.wire import model_json, version_json
from cairn.api.offload import brief
from cairn.domain.models import Actor, ModelVersion, RegisteredModel
from cairn.domain.names import name_key
from cairn.domain.uris import ModelRef
from cairn.errors import InvalidParameter, NotFound
from cairn.service.registry import RegistryService

router = lean_router(tags=["mlflow"])

MODELS_PAGE = 100  # MLflow's default max_results for registered models


def models_with_latest(
    service: RegistryService, actor: Actor, models: Sequence[RegisteredModel]
) -> list[dict[str, Any]]:
    """Registered models with ``latest_versions``, all fetched in one service call (the
    versions without their files, which MLflow's answers do not show)."""
    names = [m.name for m in models]
    latest = service.latest_versions_by_stage(actor, names, files=False) if models else {}
    return [model_json(m, latest.get(name_key(m.name), ())) for m in models]


def _one(service: RegistryService, actor: Actor, model: RegisteredModel) -> JSONResponse:
    return json({"registered_model": models_with_latest(service, actor, [model])[0]})


@router.post(
    "/registered-models/create",
    openapi_extra=in_body(name=REQUIRED, description=TEXT, tags=TAGS, deployment_job_id=TEXT),
)
async def create_registered_model(p: Body, service: Service, actor: Caller) -> JSONResponse:
    p.text("deployment_job_id")  # Databricks-only: checked for type, then ignored
    name, description, tags = p.required("name"), p.text("description") or "", p.tags()
    model = await brief(
        service, lambda: service.create_model(actor, name, description=description, tags=tags)
    )
    return json({"registered_model": model_json(model)})


@router.post("/registered-models/rename", openapi_extra=in_body(name=REQUIRED, new_name=REQUIRED))
def rename_registered_model(p: Body, service: Service, actor: Caller) -> JSONResponse:
    model = service.rename_model(actor, p.required("name"), p.required("new_name"))
    return _one(service, actor, model)


@router.patch(
    "/registered-models/update",
    openapi_extra=in_body(name=REQUIRED, description=TEXT, deployment_job_id=TEXT),
)
async def update_registered_model(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name, description = p.required("name"), p.text("description")

    def update() -> JSONResponse:
        return _one(service, actor, service.update_model(actor, name, description=description))

    return await brief(service, update)


@router.delete("/registered-models/delete", openapi_extra=in_body(name=REQUIRED))
def delete_registered_model(p: Body, service: Service, actor: Caller) -> JSONResponse:
    service.delete_model(actor, p.required("name"))
    return json({})


@router.get("/registered-models/get", openapi_extra=in_query(name=REQUIRED))
async def get_registered_model(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name = p.required("name")  # the model and its latest versions: one read transaction
    return await brief(
        service,
        lambda: service.read_together(lambda: _one(service, actor, service.get_model(actor, name))),
    )


@router.get(
    "/registered-models/search",
    openapi_extra=in_query(filter=TEXT, max_results=INTEGER, order_by=STRINGS, page_token=TEXT),
)
async def search_registered_models(p: Body, service: Service, actor: Caller) -> JSONResponse:
    expr = translate_filter(p.text("filter"), "models")
    order_by = translate_order_by(p.strings("order_by"), "models")
    size, token = page_size(p, MODELS_PAGE), p.text("page_token") or None

    def search() -> dict[str, Any]:
        page = service.search_models(
            actor, expr, order_by=order_by, max_results=size, page_token=token
        )
        body: dict[str, Any] = {}
        if page.items:
            body["registered_models"] = models_with_latest(service, actor, page.items)
        if page.next_page_token:
            body["next_page_token"] = page.next_page_token
        return body

    return json(await brief(service, lambda: service.read_together(search), bounded=False))


async def _latest_versions(p: Params, service: RegistryService, actor: Actor) -> JSONResponse:
    name, stages = p.required("name"), p.strings("stages")

    def latest() -> list[ModelVersion]:
        model = service.get_model(actor, name)
        found = service.latest_versions_by_stage(actor, [model.name], stages or None, files=False)
        return found.get(name_key(model.name), [])

    versions = await brief(service, lambda: service.read_together(latest))
    return json({"model_versions": [version_json(v) for v in versions]} if versions else {})


@router.post(
    "/registered-models/get-latest-versions",
    openapi_extra=in_body(name=REQUIRED, stages=STRINGS),
)
async def get_latest_versions(p: Body, service: Service, actor: Caller) -> JSONResponse:
    """The newest READY version in each stage (or in ``stages``)."""
    return await _latest_versions(p, service, actor)


@router.get(
    "/registered-models/get-latest-versions",
    openapi_extra=in_query(name=REQUIRED, stages=STRINGS),
)
async def get_latest_versions_by_get(p: Body, service: Service, actor: Caller) -> JSONResponse:
    """The same, for clients that fall back to GET."""
    return await _latest_versions(p, service, actor)


@router.post(
    "/registered-models/set-tag",
    openapi_extra=in_body(name=REQUIRED, key=REQUIRED, value=REQUIRED_EMPTY),
)
async def set_registered_model_tag(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name, key, value = p.required("name"), p.required("key"), p.required("value", allow_empty=True)
    await brief(service, lambda: service.set_model_tag(actor, name, key, value))
    return json({})


@router.delete("/registered-models/delete-tag", openapi_extra=in_body(name=REQUIRED, key=REQUIRED))
async def delete_registered_model_tag(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name, key = p.required("name"), p.required("key")

    def delete() -> None:
        try:
            service.delete_model_tag(actor, name, key)
        except NotFound:  # a missing model is still an error; a missing tag not
            service.get_model(actor, name)

    await brief(service, delete)
    return json({})


@router.post(
    "/registered-models/alias",
    openapi_extra=in_body(name=REQUIRED, alias=REQUIRED, version=VERSION),
)
async def set_registered_model_alias(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name, alias, version = p.required("name"), p.required("alias"), p.version()
    await brief(service, lambda: service.set_alias(actor, name, alias, version))
    return json({})


@router.delete("/registered-models/alias", openapi_extra=in_body(name=REQUIRED, alias=REQUIRED))
async def delete_registered_model_alias(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name, alias = p.required("name"), p.required("alias")

    def delete() -> None:
        try:
            service.delete_alias(actor, name, alias)
        except NotFound:  # as in MLflow, deleting an absent alias succeeds
            service.get_model(actor, name)

    await brief(service, delete)
    return json({})


@router.get("/registered-models/alias", openapi_extra=in_query(name=REQUIRED, alias=REQUIRED))
async def get_model_version_by_alias(p: Body, service: Service, actor: Caller) -> JSONResponse:
    name, alias = p.required("name"), p.required("alias")
    latest = alias.lower() == "latest"
    ref = ModelRef(name, latest=True) if latest else ModelRef(name, alias=alias)

    def find() -> ModelVersion:
        try:
            return service.resolve(actor, ref, files=False)
        except NotFound:
            service.get_model(actor, name)  # a missing model stays a 404
            if latest:
                raise
            raise InvalidParameter(f"Registered model alias {alias} not found.") from None

    return json({"model_version": version_json(await brief(service, find))})
