"""Use cases on webhooks: create, list, read, change, pause, delete, rotate the secret,
read the delivery log, redeliver, ping; seal the secrets at rest and re-encrypt them.

Managing a webhook needs MANAGE on every model its scope covers (``domain.webhooks.
may_manage_scope``): the instance ADMIN for ``*``, a pattern grant covering a prefix, MANAGE
on one model. A webhook the caller may not manage is not found. The signing secret is
shown once, when it is made (created or rotated), and never again; the database holds it
sealed with the server's key, bound to its row (``keyring.py``). Every change is audited.
Deliveries of changes are written by the database (migration 0017), not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cairn.domain import webhooks as wh
from cairn.domain.access import Actor
from cairn.domain.models import Page
from cairn.domain.validation import clean_page_size
from cairn.errors import CairnError, Conflict, InvalidParameter, NotFound, PermissionDenied
from cairn.service.base import ServiceBase
from cairn.service.keyring import sealed_with
from cairn.service.webhook_net import Resolver, destination, resolve
from cairn.store.metadata.clock import to_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.webhooks_store import WebhookStore, to_webhook


class WebhooksService(ServiceBase):
    # how webhook hosts are resolved (tests give a fake DNS to show rebinding is caught)
    webhook_resolver: Resolver = staticmethod(resolve)

    def create_webhook(
        self,
        actor: Actor,
        name: str,
        url: str,
        *,
        events: Sequence[str] | str = "*",
        scope: str = "*",
        secret: str | None = None,
        active: bool = True,
    ) -> tuple[wh.Webhook, str]:
        """A new webhook and its signing secret (made here unless given; shown only now)."""
        wh.validate_webhook_name(name)
        clean_url = self._checked_url(url)
        chosen = wh.clean_events(events)
        scope, scope_key, exact = wh.clean_scope(scope)
        secret = wh.new_secret() if secret is None else wh.clean_secret(secret)
        _check_flag("active", active)

        self.keyring.current()  # the key file read (or made) before the transaction

        def run(s: Tx) -> wh.Webhook:
            self._require_scope(s, actor, scope, scope_key, exact, "webhook.create", name)
            now = self.clock()
            store = WebhookStore(s)
            made = store.create(
                {
                    "name": name,
                    "url": clean_url,
                    "secret": "",  # sealed below, bound to the id the row is given
                    "events": chosen,
                    "scope": scope,
                    "scope_key": scope_key,
                    "scope_exact": exact,
                    "active": active,
                    "created_at": now,
                    "created_by": actor.name,
                    "updated_at": now,
                }
            )
            store.set_secret(made.id, self._sealed(secret, made.id, name))
            self._audit(s, actor, "webhook.create", target=name, after=_shown(made))
            return made

        return self.db.write(run), secret

    def list_webhooks(self, actor: Actor) -> list[wh.Webhook]:
        """The webhooks the caller manages (every one, for the instance ADMIN)."""

        def run(s: Tx) -> list[wh.Webhook]:
            rows = WebhookStore(s).list_rows()
            return [to_webhook(r) for r in rows if self._manages(s, actor, r)]

        return self.db.read(run)

    def get_webhook(self, actor: Actor, name: str) -> wh.Webhook:
        return self.db.read(lambda s: to_webhook(self._webhook_row(s, actor, name, "webhook.get")))

    def update_webhook(
        self,
        actor: Actor,
        name: str,
        *,
        url: str | None = None,
        events: Sequence[str] | str | None = None,
        scope: str | None = None,
        active: bool | None = None,
    ) -> wh.Webhook:
        """Change what is given; ``active=False`` pauses it (nothing is queued, and what is
        queued waits), ``active=True`` resumes."""
        values: dict[str, Any] = {}
        if url is not None:
            values["url"] = self._checked_url(url)
        if events is not None:
            values["events"] = wh.clean_events(events)
        if scope is not None:
            values["scope"], values["scope_key"], values["scope_exact"] = wh.clean_scope(scope)
        if active is not None:
            values["active"] = _check_flag("active", active)
        if not values:
            raise InvalidParameter("give at least one of url, events, scope, active to change")

        def run(s: Tx) -> wh.Webhook:
            row = self._webhook_row(s, actor, name, "webhook.update", lock=True)
            if "scope" in values:
                self._require_scope(
                    s,
                    actor,
                    values["scope"],
                    values["scope_key"],
                    values["scope_exact"],
                    "webhook.update",
                    name,
                )
            store = WebhookStore(s)
            before = _shown(to_webhook(row))
            store.update(int(row.id), {**values, "updated_at": self.clock()})
            after = store.get(name)
            self._audit(s, actor, "webhook.update", target=name, before=before, after=_shown(after))
            return after

        return self.db.write(run)

    def delete_webhook(self, actor: Actor, name: str) -> None:
        """Delete it and its delivery log."""

        def run(s: Tx) -> None:
            row = self._webhook_row(s, actor, name, "webhook.delete", lock=True)
            WebhookStore(s).delete(int(row.id))
            self._audit(s, actor, "webhook.delete", target=name, before=_shown(to_webhook(row)))

        self.db.write(run)

    def rotate_webhook_secret(
        self, actor: Actor, name: str, *, secret: str | None = None
    ) -> tuple[wh.Webhook, str]:
        """A new signing secret (made here unless given), used from the next attempt on."""
        secret = wh.new_secret() if secret is None else wh.clean_secret(secret)
        self.keyring.current()

        def run(s: Tx) -> wh.Webhook:
            row = self._webhook_row(s, actor, name, "webhook.rotate_secret", lock=True)
            store = WebhookStore(s)
            sealed = self._sealed(secret, int(row.id), name)
            store.update(int(row.id), {"secret": sealed, "updated_at": self.clock()})
            self._audit(s, actor, "webhook.rotate_secret", target=name)
            return store.get(name)

        return self.db.write(run), secret

    def list_webhook_deliveries(
        self,
        actor: Actor,
        name: str,
        *,
        status: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[wh.Delivery]:
        """The delivery log, newest first."""
        if status is not None and status not in wh.STATUSES:
            raise InvalidParameter(f"status must be one of {', '.join(wh.STATUSES)}")
        size = clean_page_size(max_results, self.limits.default_page)

        def run(s: Tx) -> Page[wh.Delivery]:
            row = self._webhook_row(s, actor, name, "webhook.deliveries")
            items, token = WebhookStore(s).list_deliveries(
                row, status=status, max_results=size, page_token=page_token
            )
            return Page(items, token)

        return self.db.read(run)

    def redeliver_webhook(self, actor: Actor, name: str, delivery_id: str) -> wh.Delivery:
        """Queue the payload of delivery ``delivery_id`` again, as a new delivery (with
        its own ``Cairn-Delivery``; ``redelivery_of`` names the original)."""
        if not isinstance(delivery_id, str) or not 1 <= len(delivery_id) <= 36:
            raise NotFound(f"delivery {delivery_id!r} of this webhook does not exist")

        def run(s: Tx) -> wh.Delivery:
            row = self._webhook_row(s, actor, name, "webhook.redeliver")
            store = WebhookStore(s)
            original = store.delivery(row, delivery_id)
            if original.payload is None:
                raise Conflict(f"delivery {delivery_id!r} has no payload left to send")
            uid = store.add_delivery(
                int(row.id),
                original.event,
                original.payload,
                self.clock(),
                redelivery_of=original.id,
            )
            self._audit(s, actor, "webhook.redeliver", target=name, after={"delivery": uid})
            return store.delivery(row, uid)

        return self.db.write(run)

    def ping_webhook(self, actor: Actor, name: str) -> wh.Delivery:
        """Queue a ``ping`` event to check the receiver and its signature check."""

        def run(s: Tx) -> wh.Delivery:
            row = self._webhook_row(s, actor, name, "webhook.ping")
            now = self.clock()
            payload = wh.ping_payload(name, actor.name, to_datetime(now))
            store = WebhookStore(s)
            uid = store.add_delivery(int(row.id), wh.PING, payload, now)
            self._audit(s, actor, "webhook.ping", target=name, after={"delivery": uid})
            return store.delivery(row, uid)

        return self.db.write(run)

    # -- the secrets at rest ------------------------------------------------------------

    def reencrypt_webhook_secrets(self, actor: Actor) -> wh.SecretsReport:
        """Open every webhook's secret and seal it with the current key (the first of
        ``CAIRN_SECRET_KEYS``, or the key file's) where it is in the clear or sealed with
        another key: after adding a new first key, before dropping the old one. All or
        nothing: a secret that does not open (its key is not held, or it was altered)
        changes nothing and names the webhooks. Instance ADMIN; idempotent."""
        if not actor.admin:  # checked before a key is loaded (or its file made)
            raise PermissionDenied(
                "the instance ADMIN role is required to re-encrypt webhook secrets",
                denial={"action": "webhook.reencrypt"},
            )
        current = self.keyring.current()

        def run(s: Tx) -> wh.SecretsReport:
            store = WebhookStore(s)
            rows = store.secret_rows(lock=True)
            counts = {"encrypted": 0, "reencrypted": 0, "unchanged": 0}
            refused: list[str] = []
            for row in rows:
                try:
                    secret = self._revealed(row)
                except CairnError as exc:
                    refused.append(exc.message)
                    continue
                kid = sealed_with(row.secret)
                if kid == current.id:
                    counts["unchanged"] += 1
                    continue
                counts["encrypted" if kid is None else "reencrypted"] += 1
                store.set_secret(int(row.id), self._sealed(secret, int(row.id), row.name))
            if refused:
                more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
                raise Conflict(
                    f"nothing was re-encrypted: {refused[0]}{more}. Rotating a webhook's "
                    "secret (cairn webhooks rotate-secret) needs no old key"
                )
            report = wh.SecretsReport(webhooks=len(rows), key=current.id, **counts)
            if report.encrypted or report.reencrypted:
                self._audit(s, actor, "webhook.reencrypt", after=wh.secrets_report_to_json(report))
            return report

        return self.db.write(run)

    def seal_webhook_secrets_in_the_clear(self, actor: Actor) -> int:
        """Seal the secrets still stored in the clear (written before secrets were sealed),
        as every server start does; how many. Idempotent, and cheap when there are none:
        one read, no key loaded."""
        if not self.db.read(lambda s: WebhookStore(s).any_secret_in_the_clear()):
            return 0
        current = self.keyring.current()

        def run(s: Tx) -> int:
            store = WebhookStore(s)
            rows = store.secret_rows(clear_only=True, lock=True)
            for row in rows:
                store.set_secret(int(row.id), self._sealed(row.secret, int(row.id), row.name))
            if rows:
                after = {"encrypted": len(rows), "key": current.id}
                self._audit(s, actor, "webhook.reencrypt", after=after)
            return len(rows)

        return self.db.write(run)

    def _sealed(self, secret: str, webhook_id: int, name: str) -> str:
        return self.keyring.seal(secret, wh.secret_context(webhook_id, name))

    def _revealed(self, row: Any) -> str:
        return self.keyring.reveal(
            row.secret, wh.secret_context(int(row.id), row.name), wh.secret_label(row.name)
        )

    # -- checks -------------------------------------------------------------------------

    def _checked_url(self, url: str) -> str:
        clean = wh.clean_url(url)
        destination(
            clean,
            allow_private=self.limits.webhook_allow_private,
            resolver=self.webhook_resolver,
        )
        return clean

    def _webhook_row(
        self, s: Tx, actor: Actor, name: str, action: str, *, lock: bool = False
    ) -> Any:
        wh.validate_webhook_name(name)
        row = WebhookStore(s).find_row(name, lock=lock)
        if row is None or not self._manages(s, actor, row):
            raise NotFound(
                f"webhook {name!r} does not exist",
                denial=None if row is None else {"action": action, "target": name},
            )
        return row

    @staticmethod
    def _manages(s: Tx, actor: Actor, row: Any) -> bool:
        return wh.may_manage_scope(
            actor,
            row.scope_key,
            bool(row.scope_exact),
            _model_id(s, row.scope_key, row.scope_exact),
        )

    @staticmethod
    def _require_scope(
        s: Tx, actor: Actor, scope: str, scope_key: str, exact: bool, action: str, name: str
    ) -> None:
        if not wh.may_manage_scope(actor, scope_key, exact, _model_id(s, scope_key, exact)):
            need = "the instance ADMIN role" if not scope_key else f"MANAGE on {scope!r}"
            raise PermissionDenied(
                f"{need} is required for a webhook on {scope!r}",
                denial={"action": action, "target": name},
            )


def _model_id(s: Tx, scope_key: str, exact: bool) -> int | None:
    """The live model an exact scope names (its by-id grants count too), or None."""
    if not exact:
        return None
    row = ModelStore(s).find_live(scope_key)
    return None if row is None else int(row.id)


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidParameter(f"{name} must be true or false")
    return value


def _shown(w: wh.Webhook) -> dict[str, Any]:
    """What the audit log keeps of a webhook (never its secret)."""
    return {"url": w.url, "events": list(w.events), "scope": w.scope, "active": w.active}
