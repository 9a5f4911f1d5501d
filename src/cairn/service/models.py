"""Use cases on registered models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cairn.domain import names
from cairn.domain.access import Role
from cairn.domain.filters import parse_filter, parse_order_by
from cairn.domain.models import Actor, Page, RegisteredModel
from cairn.domain.promotion import gate_for
from cairn.domain.validation import clean_page_size, clean_tags, fingerprint
from cairn.errors import NotFound, PermissionDenied
from cairn.service.base import ServiceBase, require
from cairn.store.metadata import one_trip
from cairn.store.metadata.audit_store import event_template, new_event
from cairn.store.metadata.clock import to_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.idempotency_store import IdempotencyStore
from cairn.store.metadata.identity_store import IdentityStore
from cairn.store.metadata.loaders import load_models, models_from_rows
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.promotion_store import PromotionStore
from cairn.store.metadata.search import search_models_page

MODEL_ORDER_FIELDS = {"name", "created_at", "updated_at"}


class ModelsService(ServiceBase):
    def create_model(
        self,
        actor: Actor,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> RegisteredModel:
        names.validate_model_name(name)
        names.validate_text("description", description, names.MAX_DESCRIPTION_LENGTH)
        clean = clean_tags("tag", tags, names.MAX_TAG_VALUE_LENGTH)
        self._require_create(actor, name, "create_model")

        after = {"description": description, "tags": clean}

        def created(now: int) -> RegisteredModel:  # the model just inserted, from what was written
            at = to_datetime(now)
            return RegisteredModel(
                name=name,
                description=description,
                tags=dict(sorted(clean.items())),
                aliases={},
                latest_version=None,
                last_version=0,
                created_at=at,
                updated_at=at,
                created_by=actor.name,
                deleted_at=None,
            )

        if idempotency_key is None and one_trip.available(self.db.dialect):
            at = self.db.write_statement(
                lambda s: self._create_model_in_one_statement(
                    s, actor, name, description, clean, after
                )
            )
            if at is not None:
                return created(at)

        def run(s: Tx) -> RegisteredModel:
            now = self.clock()
            claim = None
            if idempotency_key is not None:
                store = IdempotencyStore(s)
                claim = store.claim(
                    idempotency_key,
                    actor.name,
                    "create_model",
                    fingerprint(name, description, clean),
                    now,
                )
                if claim.replay_model_id is not None:
                    return load_models(s, [claim.replay_model_id])[0]
            models = ModelStore(s)
            model_id = models.insert(name, description, actor.name, now)
            models.set_tags(model_id, clean)
            self._grant_creator(s, actor, model_id, now)
            self._audit(s, actor, "model.create", model_name=name, model_id=model_id, after=after)
            if claim is not None:
                IdempotencyStore(s).record(claim, model_id)
            return created(now)

        return self.db.write(run)

    def get_model(self, actor: Actor, name: str) -> RegisteredModel:
        names.validate_model_name(name)
        return self.db.read(
            lambda s: load_models(s, [self._model(s, actor, name, Role.READ, "get_model").id])[0]
        )

    def update_model(
        self, actor: Actor, name: str, *, description: str | None = None
    ) -> RegisteredModel:
        names.validate_model_name(name)
        values: dict[str, object] = {}
        if description is not None:
            values["description"] = names.validate_text(
                "description", description, names.MAX_DESCRIPTION_LENGTH
            )

        def run(s: Tx) -> RegisteredModel:
            row = self._model(s, actor, name, Role.WRITE, "update_model", lock=True)
            ModelStore(s).update(row.id, self.clock(), **values)
            before = {k: getattr(row, k) for k in values}
            self._audit(s, actor, "model.update", model=row, before=before, after=values)
            return load_models(s, [row.id])[0]

        return self.db.write(run)

    def rename_model(self, actor: Actor, name: str, new_name: str) -> RegisteredModel:
        names.validate_model_name(name)
        names.validate_model_name(new_name)
        self._require_create(actor, new_name, "rename_model")

        def run(s: Tx) -> RegisteredModel:
            row = self._model(s, actor, name, Role.MANAGE, "rename_model", lock=True)
            _refuse_new_gates(s, row, new_name)
            ModelStore(s).rename(row.id, name, new_name, self.clock())
            before, after = {"name": row.name}, {"name": new_name}
            self._audit(s, actor, "model.rename", model=row, before=before, after=after)
            return load_models(s, [row.id])[0]

        return self.db.write(run)

    def set_model_tag(self, actor: Actor, name: str, key: str, value: str) -> RegisteredModel:
        names.validate_model_name(name)
        clean = clean_tags("tag", {key: value}, names.MAX_TAG_VALUE_LENGTH)

        def run(s: Tx) -> RegisteredModel:
            row = self._model(s, actor, name, Role.WRITE, "set_model_tag", lock=True)
            old = load_models(s, [row.id])[0].tags.get(key)
            store = ModelStore(s)
            store.set_tags(row.id, clean)
            self._audit(
                s, actor, "model.tag.set", model=row, target=key, before=old, after=clean[key]
            )
            store.update(row.id, self.clock())
            return load_models(s, [row.id])[0]

        return self.db.write(run)

    def delete_model_tag(self, actor: Actor, name: str, key: str) -> RegisteredModel:
        names.validate_model_name(name)
        names.validate_key("tag", key)

        def run(s: Tx) -> RegisteredModel:
            row = self._model(s, actor, name, Role.WRITE, "delete_model_tag", lock=True)
            old = load_models(s, [row.id])[0].tags.get(key)
            store = ModelStore(s)
            if not store.delete_tag(row.id, key):
                raise NotFound(f"registered model {name!r} has no tag {key!r}")
            self._audit(s, actor, "model.tag.delete", model=row, target=key, before=old)
            store.update(row.id, self.clock())
            return load_models(s, [row.id])[0]

        return self.db.write(run)

    def delete_model(self, actor: Actor, name: str) -> None:
        """Soft delete: the model and its versions disappear until restored."""
        names.validate_model_name(name)

        def run(s: Tx) -> None:
            row = self._model(s, actor, name, Role.MANAGE, "delete_model", lock=True)
            now = self.clock()
            ModelStore(s).update(row.id, now, deleted_at=now)
            self._audit(s, actor, "model.delete", model=row)

        self.db.write(run)

    def restore_model(self, actor: Actor, name: str) -> RegisteredModel:
        names.validate_model_name(name)

        def run(s: Tx) -> RegisteredModel:
            store = ModelStore(s)
            row = store.find_deleted(name)
            if row is None or not actor.allows(Role.READ, row.id, row.name_key):
                raise NotFound(f"no deleted registered model {name!r} to restore")
            require(actor, Role.MANAGE, row, "restore_model")
            store.restore(row.id, row.name, self.clock())
            self._audit(s, actor, "model.restore", model=row)
            return load_models(s, [row.id])[0]

        return self.db.write(run)

    def search_models(
        self,
        actor: Actor,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[RegisteredModel]:
        expr = parse_filter(filter or "", "models")
        order = parse_order_by(list(order_by or []), MODEL_ORDER_FIELDS)
        size = clean_page_size(max_results, self.limits.default_page)

        def run(s: Tx) -> Page[RegisteredModel]:
            rows, token = search_models_page(
                s,
                expr=expr,
                order_by=order,
                max_results=size,
                page_token=page_token,
                include_deleted=include_deleted,
                readable=actor.readable(),
            )
            return Page(models_from_rows(s, rows), token)

        return self.db.read(run)

    def _create_model_in_one_statement(
        self,
        s: Tx,
        actor: Actor,
        name: str,
        description: str,
        tags: Mapping[str, str],
        after: Mapping[str, object],
    ) -> int | None:
        """``create_model``'s rows in one statement (``one_trip.py``, PostgreSQL): when it
        was written (its ``created_at``), or None when it could not be, having done nothing."""
        now = self.clock()
        event = new_event(actor, "model.create", at=now, model_name=name, after=after)
        template = event_template(event, ("model_id", "seq"))
        if template is None:
            return None
        made = one_trip.create_model(
            s,
            name,
            description,
            tags,
            created_by=actor.name,
            now=now,
            creator_grant=self._creator_grant(actor),
            audit=template,
        )
        return None if made is None else now

    def _creator_grant(self, actor: Actor) -> tuple[int, Role] | None:
        """(user id, role): what the creator of a model gets on it (MANAGE by default), or
        None (a caller without a user, or no role configured)."""
        if actor.user_id is None or self.limits.creator_role is None:
            return None
        return actor.user_id, Role.parse(self.limits.creator_role)

    def _grant_creator(self, s: Tx, actor: Actor, model_id: int, now: int) -> None:
        grant = self._creator_grant(actor)
        if grant is not None:
            IdentityStore(s).put_grant(
                "user",
                *grant,
                model_id=model_id,
                now=now,
                created_by=actor.name,
                new_model=True,
            )


def _refuse_new_gates(s: Tx, row: Any, new_name: str) -> None:
    """A rename must not put an alias the model carries under a promotion gate that did not
    protect it under its current name: renaming out of a policy's pattern, moving the alias,
    and renaming back would point a protected alias at a version no gate passed."""
    policies = PromotionStore(s).policies()
    if not policies:
        return
    new_key = names.name_key(new_name)
    for alias in load_models(s, [row.id])[0].aliases:
        gate = gate_for(policies, new_key, alias)
        if gate is None:
            continue
        now = gate_for(policies, row.name_key, alias)
        if now is None or not set(gate.policy_ids) <= set(now.policy_ids):
            raise PermissionDenied(
                f"renaming {row.name!r} to {new_name!r} would put its alias @{alias} under a "
                "promotion gate it did not pass; delete the alias first, then promote a "
                "version to it under the new name",
                denial={
                    "action": "rename_model",
                    "model": row.name,
                    "model_id": row.id,
                    "target": alias,
                },
            )
