"""``/api/v1/deployments`` (where versions run, and the feedback posted against them) and
the reads of one model or version: ``…/deployments`` and ``…/feedback``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictInt
from starlette.responses import JSONResponse

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.v1.models import IdempotencyKey
from cairn.api.v1.schemas import Strict
from cairn.domain.deployments import (
    MAX_POINTS,
    FeedbackPoint,
    deployment_to_json,
    event_to_json,
    point_to_json,
    receipt_to_json,
    summary_to_json,
)
from cairn.domain.models import Page

router = lean_router(tags=["deployments"])


class DeploymentSet(Strict):
    model_uri: str = Field(
        description="models:/NAME/VERSION, models:/NAME@ALIAS (resolved now; the alias is "
        "kept) or models:/NAME/latest."
    )
    environment: str | None = Field(
        None, description="prod, staging, …; required for a new deployment."
    )
    url: str | None = Field(None, description="http(s) URL, stored, never fetched; '' clears it.")
    expect: StrictInt | None = Field(
        None, ge=0, description="Version it must serve now; 0: new or retired."
    )
    reason: str = ""


class Retire(Strict):
    expect: StrictInt | None = Field(None, ge=0, description="Version it must serve now.")
    reason: str = ""


class DeploymentOut(BaseModel):
    name: str
    environment: str
    url: str | None
    model: str
    version: int | None = Field(description="The version it serves; null once retired.")
    alias: str | None = Field(description="The alias the version was given through.")
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    retired_at: datetime | None


class DeploymentPage(BaseModel):
    deployments: list[DeploymentOut]
    next_page_token: str | None


class EventOut(BaseModel):
    deployment: str
    environment: str
    model: str
    from_version: int | None
    to_version: int | None = Field(description="null: retired.")
    alias: str | None
    actor: str | None
    reason: str
    at: datetime = Field(description="When it came in force.")
    until: datetime | None = Field(description="When the next change replaced it; null: now.")


class EventList(BaseModel):
    events: list[EventOut]


class PointIn(Strict):
    key: str
    value: float
    timestamp: datetime = Field(description="RFC 3339; a time without zone is UTC.")
    labels: dict[str, str] = Field(default_factory=dict)


class FeedbackIn(Strict):
    points: list[PointIn] = Field(description=f"1 to {MAX_POINTS} observations.")


class PointOut(BaseModel):
    key: str
    value: float
    timestamp: datetime
    labels: dict[str, str]
    deployment: str
    model: str
    version: int = Field(description="The version the deployment served at the timestamp.")


class PointPage(BaseModel):
    points: list[PointOut]
    next_page_token: str | None


class ReceiptOut(BaseModel):
    deployment: str
    model: str
    accepted: int
    versions: dict[str, int] = Field(description="Version → points linked to it.")
    replayed: bool = Field(description="The same Idempotency-Key and batch again: not stored.")


class SummaryOut(BaseModel):
    key: str
    count: int
    min: float
    max: float
    mean: float
    last: float
    last_at: datetime


class SummaryList(BaseModel):
    metrics: list[SummaryOut]


def _points_page(page: Page[FeedbackPoint]) -> JSONResponse:
    points = [point_to_json(p) for p in page.items]
    return json({"points": points, "next_page_token": page.next_page_token})


# -- deployments -------------------------------------------------------------------------


@router.get("/deployments", response_model=DeploymentPage)
def list_deployments(
    service: Service,
    actor: Caller,
    model: str | None = None,
    version: int | None = None,
    environment: str | None = None,
    retired: bool = False,
    max_results: int | None = None,
    page_token: str | None = None,
) -> JSONResponse:
    """Deployments the caller may see, by name (``version`` needs ``model``)."""
    page = service.list_deployments(
        actor,
        model=model,
        version=version,
        environment=environment,
        retired=retired,
        max_results=max_results,
        page_token=page_token,
    )
    return json(
        {
            "deployments": [deployment_to_json(d) for d in page.items],
            "next_page_token": page.next_page_token,
        }
    )


@router.put("/deployments/{deployment}", response_model=DeploymentOut)
def set_deployment(
    deployment: str, body: DeploymentSet, service: Service, actor: Caller
) -> JSONResponse:
    """Record that the deployment now serves ``model_uri`` (WRITE on the model)."""
    made = service.set_deployment(
        actor,
        deployment,
        body.model_uri,
        environment=body.environment,
        url=body.url,
        expect=body.expect,
        reason=body.reason,
    )
    return json(deployment_to_json(made))


@router.get("/deployments/{deployment}", response_model=DeploymentOut)
def get_deployment(deployment: str, service: Service, actor: Caller) -> JSONResponse:
    return json(deployment_to_json(service.get_deployment(actor, deployment)))


@router.post("/deployments/{deployment}/retire", response_model=DeploymentOut)
def retire_deployment(
    deployment: str, service: Service, actor: Caller, body: Retire | None = None
) -> JSONResponse:
    """End the deployment; its history is kept."""
    body = body or Retire()
    retired = service.retire_deployment(actor, deployment, expect=body.expect, reason=body.reason)
    return json(deployment_to_json(retired))


@router.get("/deployments/{deployment}/history", response_model=EventList)
def deployment_history(
    deployment: str, service: Service, actor: Caller, limit: int | None = None
) -> JSONResponse:
    """Every change of what it serves, newest first."""
    events = service.deployment_history(actor, deployment, limit=limit)
    return json({"events": [event_to_json(e) for e in events]})


@router.get("/deployments/{deployment}/serving", response_model=EventOut)
def deployment_at(deployment: str, at: datetime, service: Service, actor: Caller) -> JSONResponse:
    """The change in force at ``at`` (RFC 3339): what it served then."""
    return json(event_to_json(service.deployment_at(actor, deployment, at)))


# -- feedback ----------------------------------------------------------------------------


@router.post("/deployments/{deployment}/feedback", status_code=201, response_model=ReceiptOut)
def push_feedback(
    deployment: str,
    body: FeedbackIn,
    service: Service,
    actor: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Store observations, each linked to the version served at its timestamp (WRITE)."""
    points = [FeedbackPoint(p.key, p.value, p.timestamp, p.labels) for p in body.points]
    receipt = service.push_feedback(actor, deployment, points, idempotency_key=idempotency_key)
    return json(receipt_to_json(receipt), 201)


@router.get("/deployments/{deployment}/feedback", response_model=PointPage)
def deployment_feedback(
    deployment: str,
    service: Service,
    actor: Caller,
    key: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> JSONResponse:
    """Its points, oldest first; ``since`` inclusive, ``until`` exclusive."""
    page = service.deployment_feedback(
        actor,
        deployment,
        key=key,
        since=since,
        until=until,
        max_results=max_results,
        page_token=page_token,
    )
    return _points_page(page)


# -- one model's and one version's ---------------------------------------------------------


@router.get("/models/{name}/deployments", response_model=EventList)
def model_servings(
    name: str, service: Service, actor: Caller, limit: int | None = None
) -> JSONResponse:
    """Where the model's versions ran, and when (``until`` null: serving now)."""
    events = service.list_servings(actor, name, limit=limit)
    return json({"events": [event_to_json(e) for e in events]})


@router.get("/models/{name}/versions/{version}/deployments", response_model=EventList)
def version_servings(
    name: str, version: str, service: Service, actor: Caller, limit: int | None = None
) -> JSONResponse:
    """Where this version ran, and when (``until`` null: serving now)."""
    events = service.list_servings(actor, name, version, limit=limit)
    return json({"events": [event_to_json(e) for e in events]})


@router.get("/models/{name}/versions/{version}/feedback", response_model=PointPage)
def version_feedback(
    name: str,
    version: str,
    service: Service,
    actor: Caller,
    key: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> JSONResponse:
    """Points measured while a deployment served this version, oldest first."""
    page = service.version_feedback(
        actor,
        name,
        version,
        key=key,
        since=since,
        until=until,
        max_results=max_results,
        page_token=page_token,
    )
    return _points_page(page)


@router.get("/models/{name}/versions/{version}/feedback/summary", response_model=SummaryList)
def feedback_summary(
    name: str,
    version: str,
    service: Service,
    actor: Caller,
    since: datetime | None = None,
    until: datetime | None = None,
    deployment: str | None = None,
) -> JSONResponse:
    """Per metric key, over every deployment (or only ``deployment``'s points): count,
    min, max, mean, last."""
    found = service.feedback_summary(
        actor, name, version, since=since, until=until, deployment=deployment
    )
    return json({"metrics": [summary_to_json(s) for s in found]})
