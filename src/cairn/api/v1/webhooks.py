"""``/api/v1/webhooks``: signed push events for the changes to a scope of models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.v1.schemas import Strict
from cairn.domain.webhooks import (
    Delivery,
    Webhook,
    delivery_to_json,
    secrets_report_to_json,
    webhook_to_json,
)

router = lean_router(tags=["webhooks"])

_EVENTS = "'*' (every event), families such as 'alias.*', or event names (docs/webhooks.md)."
_SCOPE = "'*' (the whole registry: instance ADMIN), a prefix such as 'risk.*', or a model name."


class WebhookCreate(Strict):
    name: str = Field(description="1-128 letters, digits, '.', '_', '-'.")
    url: str = Field(description="http(s) URL the events are POSTed to.")
    events: list[str] = Field(default_factory=lambda: ["*"], description=_EVENTS)
    scope: str = Field("*", description=_SCOPE)
    secret: str | None = Field(
        None, description="Signing secret (16-256 characters); default: one made by Cairn."
    )
    active: bool = True


class WebhookUpdate(Strict):
    url: str | None = None
    events: list[str] | None = Field(None, description=_EVENTS)
    scope: str | None = Field(None, description=_SCOPE)
    active: bool | None = Field(None, description="false pauses the webhook, true resumes it.")


class SecretRotate(Strict):
    secret: str | None = Field(None, description="The new secret; default: one made by Cairn.")


class WebhookOut(BaseModel):
    name: str
    url: str
    events: list[str]
    scope: str
    active: bool
    created_at: datetime
    created_by: str | None
    updated_at: datetime


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="The signing secret: shown now, never again.")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: str = Field(description="Sent as Cairn-Delivery; the same on every retry.")
    webhook: str
    event: str
    status: str = Field(description="pending, succeeded or failed.")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    redelivery_of: str | None
    payload: Any = Field(description="The JSON body POSTed (docs/webhooks.md).")


class SecretsReportOut(BaseModel):
    webhooks: int = Field(description="Webhooks whose secret was opened (and so checked).")
    encrypted: int = Field(description="Secrets that were in the clear, now sealed.")
    reencrypted: int = Field(description="Secrets sealed with an older key, now the current.")
    unchanged: int = Field(description="Secrets already sealed with the current key.")
    key: str = Field(description="The current key's id (a fingerprint, not the key).")


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryOut]
    next_page_token: str | None


def _with_secret(made: tuple[Webhook, str], status: int = 200) -> JSONResponse:
    webhook, secret = made
    return json({**webhook_to_json(webhook), "secret": secret}, status)


def _delivery(delivery: Delivery) -> JSONResponse:
    return json(delivery_to_json(delivery), 202)


@router.post("/webhooks", status_code=201, response_model=WebhookWithSecret)
def create_webhook(body: WebhookCreate, service: Service, actor: Caller) -> JSONResponse:
    """Create a webhook; the answer carries its signing secret, the only time it is shown."""
    made = service.create_webhook(
        actor,
        body.name,
        body.url,
        events=body.events,
        scope=body.scope,
        secret=body.secret,
        active=body.active,
    )
    return _with_secret(made, 201)


@router.get("/webhooks", response_model=WebhookList)
def list_webhooks(service: Service, actor: Caller) -> JSONResponse:
    """The webhooks the caller manages."""
    return json({"webhooks": [webhook_to_json(w) for w in service.list_webhooks(actor)]})


@router.post("/webhook-secrets/reencrypt", response_model=SecretsReportOut)
def reencrypt_webhook_secrets(service: Service, actor: Caller) -> JSONResponse:
    """Seal every webhook's signing secret with the server's current key (instance ADMIN):
    after adding a new first key to CAIRN_SECRET_KEYS, before dropping the old one."""
    return json(secrets_report_to_json(service.reencrypt_webhook_secrets(actor)))


@router.get("/webhooks/{name}", response_model=WebhookOut)
def get_webhook(name: str, service: Service, actor: Caller) -> JSONResponse:
    return json(webhook_to_json(service.get_webhook(actor, name)))


@router.patch("/webhooks/{name}", response_model=WebhookOut)
def update_webhook(name: str, body: WebhookUpdate, service: Service, actor: Caller) -> JSONResponse:
    """Change the url, events or scope, or pause (``active: false``) and resume."""
    webhook = service.update_webhook(
        actor, name, url=body.url, events=body.events, scope=body.scope, active=body.active
    )
    return json(webhook_to_json(webhook))


@router.delete("/webhooks/{name}", status_code=204)
def delete_webhook(name: str, service: Service, actor: Caller) -> Response:
    """Delete the webhook and its delivery log."""
    service.delete_webhook(actor, name)
    return Response(status_code=204)


@router.post("/webhooks/{name}/rotate-secret", response_model=WebhookWithSecret)
def rotate_webhook_secret(
    name: str, service: Service, actor: Caller, body: SecretRotate | None = None
) -> JSONResponse:
    """A new signing secret, used from the next attempt on; shown now, never again."""
    secret = None if body is None else body.secret
    return _with_secret(service.rotate_webhook_secret(actor, name, secret=secret))


@router.get("/webhooks/{name}/deliveries", response_model=DeliveryPage)
def list_webhook_deliveries(
    name: str,
    service: Service,
    actor: Caller,
    status: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> JSONResponse:
    """The delivery log, newest first (``status``: pending, succeeded or failed)."""
    page = service.list_webhook_deliveries(
        actor, name, status=status, max_results=max_results, page_token=page_token
    )
    return json(
        {
            "deliveries": [delivery_to_json(d) for d in page.items],
            "next_page_token": page.next_page_token,
        }
    )


@router.post(
    "/webhooks/{name}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
)
def redeliver_webhook(name: str, delivery_id: str, service: Service, actor: Caller) -> JSONResponse:
    """Queue that delivery's payload again, as a new delivery."""
    return _delivery(service.redeliver_webhook(actor, name, delivery_id))


@router.post("/webhooks/{name}/ping", status_code=202, response_model=DeliveryOut)
def ping_webhook(name: str, service: Service, actor: Caller) -> JSONResponse:
    """Queue a ``ping`` event."""
    return _delivery(service.ping_webhook(actor, name))
