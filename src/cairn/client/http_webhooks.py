"""The SDK's webhook calls over HTTP (``/api/v1/webhooks``): a part of ``HttpClient``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cairn.client.http_transport import HttpTransport, seg, whole
from cairn.domain.models import Page


class WebhookCalls(HttpTransport):
    def create_webhook(
        self,
        name: str,
        url: str,
        *,
        events: Sequence[str] = ("*",),
        scope: str = "*",
        secret: str | None = None,
        active: bool = True,
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "url": url,
            "events": list(events),
            "scope": scope,
            "secret": secret,
            "active": active,
        }
        answer: dict[str, Any] = self._request("POST", "/webhooks", json=body)
        return answer

    def list_webhooks(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/webhooks")["webhooks"])

    def get_webhook(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("GET", f"/webhooks/{seg(name)}")
        return answer

    def update_webhook(
        self,
        name: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        scope: str | None = None,
        active: bool | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"url": url, "scope": scope, "active": active}
        body["events"] = None if events is None else list(events)
        given = {k: v for k, v in body.items() if v is not None}
        answer: dict[str, Any] = self._request("PATCH", f"/webhooks/{seg(name)}", json=given)
        return answer

    def delete_webhook(self, name: str) -> None:
        self._request("DELETE", f"/webhooks/{seg(name)}")

    def rotate_webhook_secret(self, name: str, *, secret: str | None = None) -> dict[str, Any]:
        path = f"/webhooks/{seg(name)}/rotate-secret"
        answer: dict[str, Any] = self._request("POST", path, json={"secret": secret})
        return answer

    def list_webhook_deliveries(
        self,
        name: str,
        *,
        status: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[dict[str, Any]]:
        query = {
            "status": status,
            "max_results": whole("max_results", max_results),
            "page_token": page_token,
        }
        body = self._request("GET", f"/webhooks/{seg(name)}/deliveries", params=query)
        return Page(list(body["deliveries"]), body.get("next_page_token"))

    def redeliver_webhook(self, name: str, delivery_id: str) -> dict[str, Any]:
        path = f"/webhooks/{seg(name)}/deliveries/{seg(delivery_id)}/redeliver"
        answer: dict[str, Any] = self._request("POST", path)
        return answer

    def ping_webhook(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("POST", f"/webhooks/{seg(name)}/ping")
        return answer

    def reencrypt_webhook_secrets(self) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("POST", "/webhook-secrets/reencrypt")
        return answer
