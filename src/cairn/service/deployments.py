"""Use cases on deployments: record what a deployment serves, retire it, read its history,
and monitoring feedback linked to the version served when it was measured.

A deployment serves versions of one model, the one it was first recorded with (moving it
to another model would split its history and its permissions between two models: retire it
and record a new one). Writes need WRITE on that model, reads READ; a deployment of a
model the caller may not read is answered as one that does not exist. Every write is
audited in its own transaction.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from cairn.domain import names
from cairn.domain.access import Role
from cairn.domain.codec import format_time, require_int, validate_time
from cairn.domain.deployments import (
    Deployment,
    DeploymentEvent,
    FeedbackPoint,
    FeedbackReceipt,
    FeedbackSummary,
    clean_points,
    point_to_json,
    validate_deployment_name,
    validate_environment,
    validate_reason,
    validate_url,
)
from cairn.domain.models import Actor, Page, VersionStatus
from cairn.domain.uris import parse_model_uri, parse_version_number
from cairn.domain.validation import clean_page_size, fingerprint
from cairn.errors import AlreadyExists, Conflict, InvalidParameter, NotFound
from cairn.service.base import authorize
from cairn.service.version_reads import VersionReadsService
from cairn.store.metadata.clock import from_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.deployments_store import DeploymentStore, to_deployment
from cairn.store.metadata.idempotency_store import IdempotencyStore
from cairn.store.metadata.versions_store import VersionStore


class DeploymentsService(VersionReadsService):
    # -- writes ----------------------------------------------------------------------------

    def set_deployment(
        self,
        actor: Actor,
        name: str,
        model_uri: str,
        *,
        environment: str | None = None,
        url: str | None = None,
        expect: int | None = None,
        reason: str = "",
    ) -> Deployment:
        """Record that deployment ``name`` now serves ``model_uri`` (``models:/NAME/VERSION``,
        ``models:/NAME@ALIAS`` resolved now, its alias kept, or ``models:/NAME/latest``).

        A new deployment needs ``environment``; ``url`` ``""`` clears it. ``expect`` is a
        precondition: the version it serves now, 0 for "new or retired"; a mismatch is a
        ``Conflict`` and changes nothing."""
        validate_deployment_name(name)
        ref = parse_model_uri(model_uri)
        if ref.semver is not None:
            raise InvalidParameter(
                "a deployment serves one version: use models:/NAME/VERSION, models:/NAME@ALIAS "
                "or models:/NAME/latest, not a semver range"
            )
        env = None if environment is None else validate_environment(environment)
        link = None if url in (None, "") else validate_url(url)
        why = validate_reason(reason)
        _check_expect(expect)

        def run(s: Tx) -> Deployment:
            model = self._model(s, actor, ref.name, Role.WRITE, "set_deployment", lock=True)
            version = self._resolve(s, actor, ref, None, files=False)
            if version.status is not VersionStatus.READY:
                raise InvalidParameter(
                    f"version {version.version} of {model.name!r} is {version.status.value}; "
                    "only a READY version can be deployed"
                )
            store = DeploymentStore(s)
            row = store.find(names.name_key(name), lock=True)
            if row is not None and row.model_id != model.id:
                _refuse_other_model(actor, name, row, model.name)
            current = None if row is None else row.version
            _check_current(name, current, expect)
            now = self.clock()
            number = version.version
            if row is None:
                if env is None:
                    raise InvalidParameter(
                        f"deployment {name!r} is new: give its environment (e.g. prod, staging)"
                    )
                deployment_id = store.insert(
                    name=name,
                    name_key=names.name_key(name),
                    environment=env,
                    url=link,
                    model_id=model.id,
                    actor=actor.name,
                    now=now,
                )
            else:
                deployment_id = int(row.id)
            changes: dict[str, Any] = {}
            if row is not None:
                if env is not None and env != row.environment:
                    changes["environment"] = env
                if url is not None and link != row.url:
                    changes["url"] = link
            if current != number or row is None:
                changes.update(version=number, retired_at=None)
                store.record(
                    deployment_id,
                    model.id,
                    from_version=current,
                    to_version=number,
                    alias=ref.alias,
                    actor=actor.name,
                    reason=why,
                    now=now,
                )
            if row is None or row.alias != ref.alias:
                changes["alias"] = ref.alias
            if changes or row is None:
                store.update(deployment_id, updated_at=now, **changes)
                after = {k: v for k, v in changes.items() if k != "retired_at"}
                self._audit(
                    s,
                    actor,
                    "deployment.set",
                    model=model,
                    version=number,
                    target=name,
                    before=current,
                    after=after | ({"reason": why} if why else {}),
                )
            found = store.find(names.name_key(name))
            assert found is not None
            return to_deployment(found)

        return self.db.write(run)

    def retire_deployment(
        self, actor: Actor, name: str, *, expect: int | None = None, reason: str = ""
    ) -> Deployment:
        """End the deployment: it serves nothing from now on; its history is kept (setting
        it again brings it back, with the same model)."""
        validate_deployment_name(name)
        why = validate_reason(reason)
        _check_expect(expect)

        def run(s: Tx) -> Deployment:
            store = DeploymentStore(s)
            row = self._deployment_row(s, actor, name, Role.WRITE, "retire_deployment", lock=True)
            if row.version is None:
                raise Conflict(f"deployment {name!r} is already retired; nothing was changed")
            _check_current(name, row.version, expect)
            now = self.clock()
            store.update(row.id, version=None, retired_at=now, updated_at=now)
            store.record(
                row.id,
                row.model_id,
                from_version=row.version,
                to_version=None,
                alias=None,
                actor=actor.name,
                reason=why,
                now=now,
            )
            self._audit(
                s,
                actor,
                "deployment.retire",
                model_name=row.model_name,
                model_id=row.model_id,
                version=row.version,
                target=row.name,
                before=row.version,
                after={"reason": why} if why else None,
            )
            found = store.find(row.name_key)
            assert found is not None
            return to_deployment(found)

        return self.db.write(run)

    def push_feedback(
        self,
        actor: Actor,
        name: str,
        points: Sequence[FeedbackPoint | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> FeedbackReceipt:
        """Store a batch of observations of deployment ``name``, each linked to the version
        it served at the point's timestamp (one multi-row insert). A point from a time it
        served nothing (before it was recorded, while retired) or from the future refuses
        the whole batch. The same ``idempotency_key`` and batch again stores nothing more."""
        validate_deployment_name(name)
        batch = clean_points(points)
        times = [from_datetime(p.at) for p in batch]

        def run(s: Tx) -> FeedbackReceipt:
            now = self.clock()
            claim = None
            if idempotency_key is not None:
                body = fingerprint(names.name_key(name), [point_to_json(p) for p in batch])
                claim = IdempotencyStore(s).claim(
                    idempotency_key, actor.name, "push_feedback", body, now
                )
            row = self._deployment_row(s, actor, name, Role.WRITE, "push_feedback")
            late = max(times)
            if late > now:
                i = times.index(late)
                raise InvalidParameter(
                    f"point {i} ({batch[i].key!r}) is from the future "
                    f"({format_time(batch[i].at)}); post observations once they are made"
                )
            store = DeploymentStore(s)
            spans = store.spans(row.id, min(times), late)
            starts = [at for at, _ in spans]
            linked: list[tuple[FeedbackPoint, int, int]] = []
            for i, (point, at) in enumerate(zip(batch, times, strict=True)):
                k = bisect.bisect_right(starts, at) - 1
                version = spans[k][1] if k >= 0 else None
                if version is None:
                    raise InvalidParameter(
                        f"point {i} ({point.key!r}) at {format_time(point.at)}: deployment "
                        f"{row.name!r} served no version then (not yet recorded, or retired); "
                        "nothing was stored"
                    )
                linked.append((point, at, version))
            versions = dict(sorted(Counter(v for _, _, v in linked).items()))
            receipt = FeedbackReceipt(row.name, row.model_name, len(linked), versions)
            if claim is not None and claim.replay_model_id is not None:
                return replace(receipt, replayed=True)
            store.add_points(row.id, row.model_id, linked)
            if claim is not None:
                IdempotencyStore(s).record(claim, row.model_id)
            self._audit(
                s,
                actor,
                "deployment.feedback",
                model_name=row.model_name,
                model_id=row.model_id,
                target=row.name,
                after={"points": len(linked), "versions": {str(v): n for v, n in versions.items()}},
            )
            return receipt

        return self.db.write(run)

    # -- reads -----------------------------------------------------------------------------

    def get_deployment(self, actor: Actor, name: str) -> Deployment:
        validate_deployment_name(name)
        return self.db.read(
            lambda s: to_deployment(
                self._deployment_row(s, actor, name, Role.READ, "get_deployment")
            )
        )

    def list_deployments(
        self,
        actor: Actor,
        *,
        model: str | None = None,
        version: int | str | None = None,
        environment: str | None = None,
        retired: bool = False,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[Deployment]:
        """Deployments the caller may see, by name: of ``model`` (of its ``version``), in
        ``environment``; retired ones too with ``retired``."""
        size = clean_page_size(max_results, self.limits.default_page)
        number = None if version is None else parse_version_number(version)
        if number is not None and model is None:
            raise InvalidParameter("version needs model: the version of which model?")
        if environment is not None:
            validate_environment(environment)

        def run(s: Tx) -> Page[Deployment]:
            model_id = None
            if model is not None:
                model_id = int(self._model(s, actor, model, Role.READ, "list_deployments").id)
            items, token = DeploymentStore(s).list_page(
                readable=actor.readable(),
                model_id=model_id,
                version=number,
                environment=environment,
                retired=bool(retired),
                limit=size,
                page_token=page_token,
            )
            return Page(items, token)

        return self.db.read(run)

    def deployment_history(
        self, actor: Actor, name: str, *, limit: int | None = None
    ) -> list[DeploymentEvent]:
        """Every change of what ``name`` serves, newest first."""
        validate_deployment_name(name)
        count = self._history_limit(limit)

        def run(s: Tx) -> list[DeploymentEvent]:
            row = self._deployment_row(s, actor, name, Role.READ, "deployment_history")
            return DeploymentStore(s).history(row.id, count)

        return self.db.read(run)

    def deployment_at(self, actor: Actor, name: str, at: datetime) -> DeploymentEvent:
        """The change in force at ``at``: what ``name`` served then (``to_version`` None:
        retired then). Not found before it was first recorded."""
        validate_deployment_name(name)
        if validate_time("at", at) is None:
            raise InvalidParameter("at is required: the time to look at")

        def run(s: Tx) -> DeploymentEvent:
            row = self._deployment_row(s, actor, name, Role.READ, "deployment_at")
            event = DeploymentStore(s).in_force(row.id, from_datetime(at))
            if event is None:
                raise NotFound(f"deployment {name!r} was not recorded yet at {format_time(at)}")
            return event

        return self.db.read(run)

    def list_servings(
        self, actor: Actor, name: str, version: int | str | None = None, *, limit: int | None = None
    ) -> list[DeploymentEvent]:
        """Where the versions of model ``name`` (or its ``version``) ran, and when: each
        event that put one in force, with ``until`` (None: serving now); newest first."""
        names.validate_model_name(name)
        number = None if version is None else parse_version_number(version)
        count = self._history_limit(limit)

        def run(s: Tx) -> list[DeploymentEvent]:
            model = self._model(s, actor, name, Role.READ, "list_servings")
            if number is not None:
                VersionStore(s).get(model.id, name, number)  # not found says so
            return DeploymentStore(s).servings(model.id, number, count)

        return self.db.read(run)

    def deployment_feedback(
        self,
        actor: Actor,
        name: str,
        *,
        key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[FeedbackPoint]:
        """The points posted against deployment ``name``, oldest first."""
        validate_deployment_name(name)
        query = self._points_query(key, since, until, max_results, page_token)

        def run(s: Tx) -> Page[FeedbackPoint]:
            row = self._deployment_row(s, actor, name, Role.READ, "deployment_feedback")
            items, token = DeploymentStore(s).points_page(deployment_id=row.id, **query)
            return Page(items, token)

        return self.db.read(run)

    def version_feedback(
        self,
        actor: Actor,
        name: str,
        version: int | str,
        *,
        key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[FeedbackPoint]:
        """The points measured while some deployment served this version, oldest first."""
        names.validate_model_name(name)
        number = parse_version_number(version)
        query = self._points_query(key, since, until, max_results, page_token)

        def run(s: Tx) -> Page[FeedbackPoint]:
            model = self._model(s, actor, name, Role.READ, "version_feedback")
            VersionStore(s).get(model.id, name, number)
            store = DeploymentStore(s)
            items, token = store.points_page(model_id=model.id, version=number, **query)
            return Page(items, token)

        return self.db.read(run)

    def feedback_summary(
        self,
        actor: Actor,
        name: str,
        version: int | str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        deployment: str | None = None,
    ) -> list[FeedbackSummary]:
        """Per metric key, over every deployment (or only ``deployment``'s points, which
        must be a deployment of this model): count, min, max, mean and the last value."""
        names.validate_model_name(name)
        number = parse_version_number(version)
        start, end = _window(since, until)
        if deployment is not None:
            validate_deployment_name(deployment)

        def run(s: Tx) -> list[FeedbackSummary]:
            model = self._model(s, actor, name, Role.READ, "feedback_summary")
            VersionStore(s).get(model.id, name, number)
            only = None
            if deployment is not None:
                row = self._deployment_row(s, actor, deployment, Role.READ, "feedback_summary")
                if row.model_id != model.id:
                    raise InvalidParameter(
                        f"deployment {row.name!r} is not a deployment of {model.name!r}"
                    )
                only = row.id
            return DeploymentStore(s).summary(model.id, number, start, end, deployment_id=only)

        return self.db.read(run)

    # -- shared ----------------------------------------------------------------------------

    @staticmethod
    def _deployment_row(
        s: Tx, actor: Actor, name: str, role: Role, action: str, *, lock: bool = False
    ) -> Any:
        """The deployment ``name`` if the caller holds ``role`` on its live model; one who
        may not read that model hears that the deployment does not exist."""
        row = DeploymentStore(s).find(names.name_key(name), lock=lock)
        model = None
        if row is not None and row.deleted_at is None:
            model = SimpleNamespace(id=row.model_id, name=row.model_name, name_key=row.model_key)
        authorize(actor, model, role, action, f"deployment {name!r} does not exist")
        return row

    def _history_limit(self, limit: int | None) -> int:
        cap = self.limits.max_alias_history
        count = cap if limit is None else require_int("limit", limit)
        if not 1 <= count <= cap:
            raise InvalidParameter(f"limit must be between 1 and {cap}")
        return count

    def _points_query(
        self,
        key: str | None,
        since: datetime | None,
        until: datetime | None,
        max_results: int | None,
        page_token: str | None,
    ) -> dict[str, Any]:
        if key is not None:
            names.validate_key("metric", key)
        start, end = _window(since, until)
        return {
            "key": key,
            "since": start,
            "until": end,
            "limit": clean_page_size(max_results, self.limits.default_page),
            "page_token": page_token,
        }


def _window(since: datetime | None, until: datetime | None) -> tuple[int | None, int | None]:
    since, until = validate_time("since", since), validate_time("until", until)
    start = None if since is None else from_datetime(since)
    end = None if until is None else from_datetime(until)
    if start is not None and end is not None and end <= start:
        raise InvalidParameter("until must be later than since")
    return start, end


def _check_expect(expect: int | None) -> None:
    if expect is not None and require_int("expect", expect) < 0:
        raise InvalidParameter("expect must be a version number, or 0 for 'not serving'")


def _check_current(name: str, current: int | None, expect: int | None) -> None:
    actual = current or 0
    if expect is not None and actual != expect:
        now_at = "serves nothing" if actual == 0 else f"serves version {actual}"
        wanted = "nothing" if expect == 0 else f"version {expect}"
        raise Conflict(
            f"deployment {name!r} {now_at}, not {wanted} as expected; nothing was changed"
        )


def _refuse_other_model(actor: Actor, name: str, row: Any, model: str) -> None:
    if row.deleted_at is None and actor.allows(Role.READ, row.model_id, row.model_key):
        raise Conflict(
            f"deployment {name!r} serves versions of {row.model_name!r}, not {model!r}; "
            "a deployment keeps its model: record another deployment name"
        )
    raise AlreadyExists(f"deployment name {name!r} is already in use")
