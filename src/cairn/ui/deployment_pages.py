"""The UI's deployment pages: the list (by environment, by model), and one deployment's
state, history and monitoring feedback, the version it serves now beside the one before.
They read through the deployments use cases as the signed-in caller: a deployment of a
model the caller may not read is neither listed nor found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import Request
from starlette.responses import Response

from cairn.domain.deployments import Deployment, DeploymentEvent, FeedbackPoint, FeedbackSummary
from cairn.domain.models import Page
from cairn.errors import InvalidParameter, NotFound
from cairn.ui.pages import PAGE_SIZE, Viewer, page_route
from cairn.ui.web import service_of, show

SPARK_POINTS = 40  # latest points of each key drawn in a deployment page's sparkline
LATEST_POINTS = 10  # latest points listed (with their labels) on a deployment page


def _arg(request: Request, key: str) -> str:
    return request.query_params.get(key, "").strip()


@page_route("/deployments")
def deployments(request: Request, actor: Viewer) -> Response:
    """Deployments the caller may read, by name; ``environment`` and ``model`` narrow the
    list, ``retired`` adds the retired ones. A filter the service refuses (a malformed
    environment, a model that is not there) is shown on the page, with its status."""
    environment, model = _arg(request, "environment"), _arg(request, "model")
    retired, token = bool(_arg(request, "retired")), _arg(request, "page")
    service = service_of(request)

    def read() -> tuple[Page[Deployment], dict[str, DeploymentEvent]]:
        page = service.list_deployments(
            actor,
            model=model or None,
            environment=environment or None,
            retired=retired,
            max_results=PAGE_SIZE,
            page_token=token or None,
        )
        return page, service.current_deployment_events(actor, [d.name for d in page.items])

    page: Page[Deployment] = Page([])
    events: dict[str, DeploymentEvent] = {}
    error, status = None, 200
    try:
        page, events = service.read_together(read)
    except (InvalidParameter, NotFound) as exc:
        error, status = exc.message, exc.http_status
    return show(
        request,
        "deployments.html",
        status,
        page=page,
        events=events,
        environment=environment,
        model=model,
        retired=retired,
        error=error,
        paged=bool(token),
    )


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One metric key of a deployment: its summary on the version served now and on the
    one before (None: no points there), and its latest points now, for a sparkline."""

    key: str
    now: FeedbackSummary | None
    before: FeedbackSummary | None
    recent: Sequence[float]


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """What a deployment's page shows, read in one transaction."""

    deployment: Deployment
    history: list[DeploymentEvent]
    now_version: int | None
    before_version: int | None
    now: list[FeedbackSummary]
    before: list[FeedbackSummary]
    recent: dict[str, list[FeedbackPoint]]


@page_route("/deployments/{name}")
def deployment(request: Request, name: str, actor: Viewer) -> Response:
    service = service_of(request)

    def read() -> DeploymentView:
        found = service.get_deployment(actor, name)
        history = service.deployment_history(actor, name)
        now_version, before_version = versions_compared(found, history)
        now: list[FeedbackSummary] = []
        before: list[FeedbackSummary] = []
        recent: dict[str, list[FeedbackPoint]] = {}
        if now_version is not None:
            now = service.deployment_feedback_summary(actor, name, now_version)
            recent = service.recent_deployment_feedback(
                actor, name, now_version, per_key=SPARK_POINTS
            )
        if before_version is not None:
            before = service.deployment_feedback_summary(actor, name, before_version)
        return DeploymentView(found, history, now_version, before_version, now, before, recent)

    view = service.read_together(read)
    latest = sorted(
        (p for points in view.recent.values() for p in points), key=lambda p: p.at, reverse=True
    )
    return show(
        request,
        "deployment.html",
        deployment=view.deployment,
        history=view.history,
        current=view.history[0] if view.history else None,
        now_version=view.now_version,
        before_version=view.before_version,
        keys=key_rows(view.now, view.before, view.recent),
        latest=latest[:LATEST_POINTS],
        complete=len(view.history) < service.limits.max_alias_history,
    )


def versions_compared(
    found: Deployment, history: Sequence[DeploymentEvent]
) -> tuple[int | None, int | None]:
    """The version the deployment serves now (None: retired) and the one it served
    before it, the latest other version in its history (None: it never served another).
    Retired, "before" is the last version it served."""
    now = found.version
    before = next((e.to_version for e in history if e.to_version not in (None, now)), None)
    return now, before


def key_rows(
    now: Sequence[FeedbackSummary],
    before: Sequence[FeedbackSummary],
    recent: dict[str, list[FeedbackPoint]],
) -> list[KeyRow]:
    """One row per key of either version, by key."""
    by_now = {s.key: s for s in now}
    by_before = {s.key: s for s in before}
    return [
        KeyRow(
            key,
            by_now.get(key),
            by_before.get(key),
            [p.value for p in recent.get(key, [])],
        )
        for key in sorted(by_now.keys() | by_before.keys())
    ]
