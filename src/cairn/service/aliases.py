"""Use cases on aliases: set or move (with an optional precondition), roll back, delete,
history."""

from __future__ import annotations

from datetime import datetime

from cairn.domain import names
from cairn.domain.access import Role
from cairn.domain.codec import require_int, validate_time
from cairn.domain.models import Actor, AliasEvent, ModelVersion, VersionStatus
from cairn.domain.uris import parse_version_number
from cairn.errors import Conflict, InvalidParameter, NotFound
from cairn.service.gates import AliasGuard
from cairn.store.metadata import one_trip
from cairn.store.metadata.aliases_store import AliasStore
from cairn.store.metadata.audit_store import event_template, new_event
from cairn.store.metadata.clock import from_datetime, to_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.loaders import load_versions
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.versions_store import VersionStore


class AliasesService(AliasGuard):
    def set_alias(
        self,
        actor: Actor,
        name: str,
        alias: str,
        version: int | str,
        *,
        expect: int | None = None,
    ) -> ModelVersion:
        """Point ``alias`` at ``version``.

        ``expect`` is a precondition: the version the alias points at now, or 0 for
        "the alias must not exist yet". A mismatch is a ``Conflict`` and changes nothing.
        """
        names.validate_model_name(name)
        names.validate_alias(alias)
        number = parse_version_number(version)
        if expect is not None and require_int("expect", expect) < 0:
            raise InvalidParameter("expect must be a version number, or 0 for 'not set yet'")

        if expect is None and self._one_statement_for(actor, name):
            moved = self.db.write_statement(
                lambda s: self._move_in_one_statement(s, actor, name, alias, number)
            )
            if moved is not None:
                return moved

        def run(s: Tx) -> ModelVersion:
            model = self._model(s, actor, name, Role.WRITE, "set_alias", lock=True)
            row = VersionStore(s).get(model.id, name, number)
            if row.status != VersionStatus.READY.value:
                raise InvalidParameter(
                    f"version {number} of {name!r} is {row.status}; only READY versions "
                    "can carry an alias"
                )
            aliases = AliasStore(s)
            if expect is not None:
                current = aliases.find(model.id, alias, lock=True)
                actual = 0 if current is None else int(current.version)
                if actual != expect:
                    now_at = "is not set" if actual == 0 else f"points at version {actual}"
                    raise Conflict(
                        f"alias {alias!r} of {name!r} {now_at}, not "
                        f"{'unset' if expect == 0 else f'version {expect}'} as expected; "
                        "nothing was changed"
                    )
            self._check_alias_policy(s, actor, model, alias, number)  # protected aliases
            now = self.clock()
            previous = aliases.set(model.id, alias, number, actor.name, now)
            ModelStore(s).update(model.id, now)
            if previous != number:
                self._audit(
                    s,
                    actor,
                    "alias.set",
                    model=model,
                    version=number,
                    target=alias,
                    before=previous,
                    after=number,
                )
            return load_versions(s, [row.id])[0]

        return self.db.write(run)

    def rollback_alias(
        self, actor: Actor, name: str, alias: str, *, as_of: datetime | None = None
    ) -> ModelVersion:
        """Move ``alias`` back to the version it pointed at before its last move (a
        deleted alias is set again), or with ``as_of`` to the one it pointed at then. A
        move like any other: ``set_alias`` with the alias's current version as its
        precondition (a conflict if it moves meanwhile), audited, kept in the history (so a
        second rollback undoes the first), and subject to a protected alias's policy."""
        validate_time("as_of", as_of)
        names.validate_model_name(name)
        names.validate_alias(alias)

        def plan(s: Tx) -> tuple[int, int]:
            model = self._model(s, actor, name, Role.WRITE, "rollback_alias")
            aliases = AliasStore(s)
            row = aliases.find(model.id, alias)
            current = 0 if row is None else int(row.version)
            if as_of is not None:
                event = aliases.as_of(model.id, alias, from_datetime(as_of))
                if event is None or event.to_version is None:
                    raise NotFound(
                        f"registered model {name!r} had no alias {alias!r} at {as_of.isoformat()}"
                    )
                return int(event.to_version), current
            last = aliases.history(model.id, alias, 1)
            if not last:
                raise NotFound(f"registered model {name!r} has no alias {alias!r}")
            if last[0].from_version is None:
                raise InvalidParameter(
                    f"alias {alias!r} of {name!r} was created by its last move: there is no "
                    "earlier version to roll back to"
                )
            return int(last[0].from_version), current

        target, current = self.db.read(plan)
        return self.set_alias(actor, name, alias, target, expect=current)

    def _move_in_one_statement(
        self, s: Tx, actor: Actor, name: str, alias: str, number: int
    ) -> ModelVersion | None:
        """``set_alias`` without a precondition, by a caller whose grants cover the name
        whatever the model's id, on an instance without alias policies, in one statement
        (``one_trip.py``, PostgreSQL): the version, or None having changed nothing."""
        now = self.clock()
        event = new_event(
            actor, "alias.set", at=now, model_name=name, version=number, target=alias, after=number
        )
        template = event_template(event, ("before", "model_id", "seq"))
        if template is None:
            return None
        return one_trip.move_alias(
            s, name, alias, number, actor=actor.name, now=now, audit=template
        )

    def delete_alias(self, actor: Actor, name: str, alias: str) -> None:
        names.validate_model_name(name)
        names.validate_alias(alias)

        def run(s: Tx) -> None:
            model = self._model(s, actor, name, Role.WRITE, "delete_alias", lock=True)
            self._check_alias_delete_policy(s, actor, model, alias)
            now = self.clock()
            previous = AliasStore(s).delete(model.id, alias, actor.name, now)
            if previous is None:
                raise NotFound(f"registered model {name!r} has no alias {alias!r}")
            ModelStore(s).update(model.id, now)
            gone = previous
            self._audit(
                s, actor, "alias.delete", model=model, version=gone, target=alias, before=gone
            )

        self.db.write(run)

    def alias_history(
        self, actor: Actor, name: str, alias: str | None = None, *, limit: int | None = None
    ) -> list[AliasEvent]:
        """Every move of ``alias`` (or of all the model's aliases), newest first."""
        names.validate_model_name(name)
        if alias is not None:
            names.validate_alias(alias)
        cap = self.limits.max_alias_history
        count = cap if limit is None else require_int("limit", limit)
        if not 1 <= count <= cap:
            raise InvalidParameter(f"limit must be between 1 and {cap}")

        def run(s: Tx) -> list[AliasEvent]:
            model = self._model(s, actor, name, Role.READ, "alias_history")
            rows = AliasStore(s).history(model.id, alias, count)
            return [
                AliasEvent(
                    name=model.name,
                    alias=r.alias,
                    from_version=r.from_version,
                    to_version=r.to_version,
                    actor=r.actor,
                    at=to_datetime(r.at),
                )
                for r in rows
            ]

        return self.db.read(run)
