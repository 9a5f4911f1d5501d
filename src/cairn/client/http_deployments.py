"""The SDK's deployment and monitoring-feedback calls over HTTP: a part of ``HttpClient``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cairn.client.http_transport import HttpTransport, model_seg, seg, version_seg, whole
from cairn.domain.codec import format_time, validate_time
from cairn.domain.deployments import (
    Deployment,
    DeploymentEvent,
    FeedbackPoint,
    FeedbackReceipt,
    FeedbackSummary,
    clean_points,
    deployment_from_json,
    event_from_json,
    point_from_json,
    point_to_json,
    receipt_from_json,
    summary_from_json,
    validate_deployment_name,
)
from cairn.domain.models import Page
from cairn.domain.uris import parse_version_number


def _path(name: str) -> str:
    return f"/deployments/{seg(validate_deployment_name(name))}"


def _window(since: datetime | None, until: datetime | None) -> dict[str, Any]:
    return {
        "since": format_time(validate_time("since", since)),
        "until": format_time(validate_time("until", until)),
    }


class DeploymentCalls(HttpTransport):
    def set_deployment(
        self,
        name: str,
        model_uri: str,
        *,
        environment: str | None = None,
        url: str | None = None,
        expect: int | None = None,
        reason: str = "",
    ) -> Deployment:
        body = {
            "model_uri": model_uri,
            "environment": environment,
            "url": url,
            "expect": whole("expect", expect),
            "reason": reason,
        }
        return deployment_from_json(self._request("PUT", _path(name), json=body))

    def get_deployment(self, name: str) -> Deployment:
        return deployment_from_json(self._request("GET", _path(name)))

    def list_deployments(
        self,
        *,
        model: str | None = None,
        version: int | str | None = None,
        environment: str | None = None,
        retired: bool = False,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[Deployment]:
        query = {
            "model": model,
            "version": None if version is None else parse_version_number(version),
            "environment": environment,
            "retired": "true" if retired else None,
            "max_results": whole("max_results", max_results),
            "page_token": page_token,
        }
        body = self._request("GET", "/deployments", params=query)
        found = [deployment_from_json(d) for d in body["deployments"]]
        return Page(found, body.get("next_page_token"))

    def retire_deployment(
        self, name: str, *, expect: int | None = None, reason: str = ""
    ) -> Deployment:
        body = {"expect": whole("expect", expect), "reason": reason}
        return deployment_from_json(self._request("POST", f"{_path(name)}/retire", json=body))

    def deployment_history(self, name: str, *, limit: int | None = None) -> list[DeploymentEvent]:
        query = {"limit": whole("limit", limit)}
        body = self._request("GET", f"{_path(name)}/history", params=query)
        return [event_from_json(e) for e in body["events"]]

    def deployment_at(self, name: str, at: datetime) -> DeploymentEvent:
        query = {"at": format_time(validate_time("at", at))}
        return event_from_json(self._request("GET", f"{_path(name)}/serving", params=query))

    def list_servings(
        self, name: str, version: int | str | None = None, *, limit: int | None = None
    ) -> list[DeploymentEvent]:
        path = f"/models/{model_seg(name)}"
        if version is not None:
            path += f"/versions/{version_seg(version)}"
        body = self._request("GET", f"{path}/deployments", params={"limit": whole("limit", limit)})
        return [event_from_json(e) for e in body["events"]]

    def push_feedback(
        self,
        name: str,
        points: Sequence[FeedbackPoint | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> FeedbackReceipt:
        """Sent with an ``Idempotency-Key`` (one is made up if none is given), so a retried
        batch is stored once."""
        body = {"points": [point_to_json(p) for p in clean_points(points)]}
        headers = self._key(idempotency_key)
        answer = self._request("POST", f"{_path(name)}/feedback", json=body, headers=headers)
        return receipt_from_json(answer)

    def deployment_feedback(
        self,
        name: str,
        *,
        key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[FeedbackPoint]:
        query = {
            "key": key,
            **_window(since, until),
            "max_results": whole("max_results", max_results),
            "page_token": page_token,
        }
        return _points(self._request("GET", f"{_path(name)}/feedback", params=query))

    def version_feedback(
        self,
        name: str,
        version: int | str,
        *,
        key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[FeedbackPoint]:
        query = {
            "key": key,
            **_window(since, until),
            "max_results": whole("max_results", max_results),
            "page_token": page_token,
        }
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/feedback"
        return _points(self._request("GET", path, params=query))

    def feedback_summary(
        self,
        name: str,
        version: int | str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        deployment: str | None = None,
    ) -> list[FeedbackSummary]:
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/feedback/summary"
        params = _window(since, until)
        if deployment is not None:
            params["deployment"] = deployment
        body = self._request("GET", path, params=params)
        return [summary_from_json(s) for s in body["metrics"]]


def _points(body: Any) -> Page[FeedbackPoint]:
    return Page([point_from_json(p) for p in body["points"]], body.get("next_page_token"))
