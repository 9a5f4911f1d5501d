"""Deployments, their history, and the feedback points posted against them.

A deployment's history is a list of events, each in force from ``at`` until ``until``
(the next event's ``at``; NULL while in force), so "what did it serve at T" and "where
did version V run, when" are one indexed lookup each. Nothing here commits or decides:
the deployments service does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cairn.domain.access import ReadFilter
from cairn.domain.deployments import (
    Deployment,
    DeploymentEvent,
    FeedbackPoint,
    FeedbackSummary,
)
from cairn.store.metadata.clock import optional_datetime, to_datetime
from cairn.store.metadata.database import RetryTransaction
from cairn.store.metadata.schema import (
    deployment_events,
    deployments,
    feedback_points,
    registered_models,
)
from cairn.store.metadata.search import decode_page_token, encode_page_token, readable_models

D = deployments
E = deployment_events
F = feedback_points
M = registered_models
_DEPLOYMENT = select(D, M.c.name.label("model_name"), M.c.name_key.label("model_key")).join(
    M, M.c.id == D.c.model_id
)
_EVENT = (
    select(E, D.c.name.label("deployment_name"), D.c.environment, M.c.name.label("model_name"))
    .join(D, D.c.id == E.c.deployment_id)
    .join(M, M.c.id == E.c.model_id)
)


class DeploymentStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    # -- deployments -----------------------------------------------------------------------

    def find(self, name_key: str, *, lock: bool = False) -> Row[Any] | None:
        """The deployment with its model's name, name key and ``deleted_at``."""
        query = _DEPLOYMENT.add_columns(M.c.deleted_at).where(D.c.name_key == name_key)
        if lock:
            query = query.with_for_update(of=D)
        return self.s.execute(query).first()

    def insert(
        self,
        *,
        name: str,
        name_key: str,
        environment: str,
        url: str | None,
        model_id: int,
        actor: str | None,
        now: int,
    ) -> int:
        try:
            with self.s.begin_nested():
                return int(
                    self.s.execute(
                        insert(D)
                        .values(
                            name=name,
                            name_key=name_key,
                            environment=environment,
                            url=url,
                            model_id=model_id,
                            created_at=now,
                            updated_at=now,
                            created_by=actor,
                        )
                        .returning(D.c.id)
                    ).scalar_one()
                )
        except IntegrityError:  # created meanwhile by another caller: run again, find it
            raise RetryTransaction() from None

    def update(self, deployment_id: int, **values: Any) -> None:
        self.s.execute(update(D).where(D.c.id == deployment_id).values(**values))

    def list_page(
        self,
        *,
        readable: ReadFilter | None,
        model_id: int | None,
        version: int | None,
        environment: str | None,
        retired: bool,
        limit: int,
        page_token: str | None,
    ) -> tuple[list[Deployment], str | None]:
        """Deployments of live models the caller may read, by name, one page."""
        query = _DEPLOYMENT.where(M.c.deleted_at.is_(None)).order_by(D.c.name_key)
        if readable is not None:
            query = query.where(readable_models(readable))
        if model_id is not None:
            query = query.where(D.c.model_id == model_id)
        if version is not None:
            query = query.where(D.c.version == version)
        if environment is not None:
            query = query.where(D.c.environment == environment)
        if not retired:
            query = query.where(D.c.retired_at.is_(None))
        scope = _scope("deployments", model_id, version, environment, retired)
        if page_token:
            (after,) = decode_page_token(page_token, scope, (str,))
            query = query.where(D.c.name_key > after)
        rows = list(self.s.execute(query.limit(limit + 1)))
        token = encode_page_token(scope, [rows[limit - 1].name_key]) if len(rows) > limit else None
        return [to_deployment(r) for r in rows[:limit]], token

    # -- history ----------------------------------------------------------------------------

    def record(
        self,
        deployment_id: int,
        model_id: int,
        *,
        from_version: int | None,
        to_version: int | None,
        alias: str | None,
        actor: str | None,
        reason: str,
        now: int,
    ) -> None:
        """Append an event; the one in force until now ends now."""
        self.s.execute(
            update(E)
            .where(E.c.deployment_id == deployment_id, E.c.until.is_(None))
            .values(until=now)
        )
        self.s.execute(
            insert(E).values(
                deployment_id=deployment_id,
                model_id=model_id,
                from_version=from_version,
                to_version=to_version,
                alias=alias,
                actor=actor,
                reason=reason,
                at=now,
            )
        )

    def history(self, deployment_id: int, limit: int) -> list[DeploymentEvent]:
        query = _EVENT.where(E.c.deployment_id == deployment_id)
        rows = self.s.execute(query.order_by(E.c.at.desc(), E.c.id.desc()).limit(limit))
        return [_event(r) for r in rows]

    def in_force(self, deployment_id: int, at: int) -> DeploymentEvent | None:
        """The event in force at ``at`` (None: not yet deployed then)."""
        row = self.s.execute(
            _EVENT.where(E.c.deployment_id == deployment_id, E.c.at <= at)
            .order_by(E.c.at.desc(), E.c.id.desc())
            .limit(1)
        ).first()
        return None if row is None else _event(row)

    def spans(self, deployment_id: int, start: int, end: int) -> list[tuple[int, int | None]]:
        """(at, version) of the events in force at some time in [start, end], in order."""
        rows = self.s.execute(
            select(E.c.at, E.c.to_version)
            .where(
                E.c.deployment_id == deployment_id,
                E.c.at <= end,
                (E.c.until.is_(None)) | (E.c.until > start),
            )
            .order_by(E.c.at, E.c.id)
        )
        return [(int(r.at), r.to_version) for r in rows]

    def servings(self, model_id: int, version: int | None, limit: int) -> list[DeploymentEvent]:
        """Where the model's versions (or ``version``) ran: the events that put one in
        force, newest first; ``until`` None: still serving."""
        query = _EVENT.where(E.c.model_id == model_id, E.c.to_version.is_not(None))
        if version is not None:
            query = query.where(E.c.to_version == version)
        rows = self.s.execute(query.order_by(E.c.at.desc(), E.c.id.desc()).limit(limit))
        return [_event(r) for r in rows]

    def serving_now(self, model_id: int, version: int) -> list[Row[Any]]:
        """(name, environment) of the live deployments serving the version now, by name."""
        return list(
            self.s.execute(
                select(D.c.name, D.c.environment)
                .where(D.c.model_id == model_id, D.c.version == version)
                .order_by(D.c.name_key)
            )
        )

    # -- feedback ---------------------------------------------------------------------------

    def add_points(
        self, deployment_id: int, model_id: int, points: Sequence[tuple[FeedbackPoint, int, int]]
    ) -> None:
        """(point, its time in µs, the version in force then), in one INSERT executed for
        every row (executemany: psycopg pipelines it, SQLite loops in C). A literal
        multi-row VALUES was 5-9 times slower for 1,000 points: it compiles afresh for
        each batch size."""
        self.s.execute(
            insert(F),
            [
                {
                    "deployment_id": deployment_id,
                    "model_id": model_id,
                    "version": version,
                    "key": p.key,
                    "value": p.value,
                    "at": at,
                    "labels": json.dumps(dict(p.labels), sort_keys=True) if p.labels else None,
                }
                for p, at, version in points
            ],
        )

    def points_page(
        self,
        *,
        deployment_id: int | None = None,
        model_id: int | None = None,
        version: int | None = None,
        key: str | None,
        since: int | None,
        until: int | None,
        limit: int,
        page_token: str | None,
    ) -> tuple[list[FeedbackPoint], str | None]:
        """Points of a deployment, or of a model's version, oldest first, one page."""
        query = (
            select(F, D.c.name.label("deployment_name"), M.c.name.label("model_name"))
            .join(D, D.c.id == F.c.deployment_id)
            .join(M, M.c.id == F.c.model_id)
            .order_by(F.c.at, F.c.id)
        )
        if deployment_id is not None:
            query = query.where(F.c.deployment_id == deployment_id)
        if model_id is not None:
            query = query.where(F.c.model_id == model_id, F.c.version == version)
        if key is not None:
            query = query.where(F.c.key == key)
        if since is not None:
            query = query.where(F.c.at >= since)
        if until is not None:
            query = query.where(F.c.at < until)
        scope = _scope("feedback", deployment_id, model_id, version, key, since, until)
        if page_token:
            at, last = decode_page_token(page_token, scope, (int, int))
            query = query.where((F.c.at > at) | ((F.c.at == at) & (F.c.id > last)))
        rows = list(self.s.execute(query.limit(limit + 1)))
        token = None
        if len(rows) > limit:
            token = encode_page_token(scope, [int(rows[limit - 1].at), int(rows[limit - 1].id)])
        return [_point(r) for r in rows[:limit]], token

    def summary(
        self,
        model_id: int,
        version: int,
        since: int | None,
        until: int | None,
        *,
        deployment_id: int | None = None,
    ) -> list[FeedbackSummary]:
        """Per key: count, min, max, mean and the last value, computed by the database;
        over every deployment's points, or ``deployment_id``'s only."""
        where = [F.c.model_id == model_id, F.c.version == version]
        if deployment_id is not None:
            where.append(F.c.deployment_id == deployment_id)
        if since is not None:
            where.append(F.c.at >= since)
        if until is not None:
            where.append(F.c.at < until)
        ranked = (
            select(
                F.c.key,
                F.c.value,
                F.c.at,
                func.row_number()
                .over(partition_by=F.c.key, order_by=(F.c.at.desc(), F.c.id.desc()))
                .label("rank"),
            )
            .where(*where)
            .subquery()
        )
        totals = (
            select(
                F.c.key,
                func.count().label("count"),
                func.min(F.c.value).label("min"),
                func.max(F.c.value).label("max"),
                func.avg(F.c.value).label("mean"),
            )
            .where(*where)
            .group_by(F.c.key)
            .subquery()
        )
        rows = self.s.execute(
            select(totals, ranked.c.value.label("last"), ranked.c.at.label("last_at"))
            .join(ranked, (ranked.c.key == totals.c.key) & (ranked.c.rank == 1))
            .order_by(totals.c.key)
        )
        return [
            FeedbackSummary(
                key=r.key,
                count=int(r._mapping["count"]),
                min=float(r.min),
                max=float(r.max),
                mean=float(r.mean),
                last=float(r.last),
                last_at=to_datetime(int(r.last_at)),
            )
            for r in rows
        ]

    def recent_points(
        self, model_id: int, version: int, deployment_id: int | None, per_key: int
    ) -> list[FeedbackPoint]:
        """The latest ``per_key`` points of each key linked to the version (of every
        deployment, or ``deployment_id``'s only), by key, then oldest first."""
        where = [F.c.model_id == model_id, F.c.version == version]
        if deployment_id is not None:
            where.append(F.c.deployment_id == deployment_id)
        ranked = (
            select(
                F,
                func.row_number()
                .over(partition_by=F.c.key, order_by=(F.c.at.desc(), F.c.id.desc()))
                .label("rank"),
            )
            .where(*where)
            .subquery()
        )
        rows = self.s.execute(
            select(ranked, D.c.name.label("deployment_name"), M.c.name.label("model_name"))
            .join(D, D.c.id == ranked.c.deployment_id)
            .join(M, M.c.id == ranked.c.model_id)
            .where(ranked.c.rank <= per_key)
            .order_by(ranked.c.key, ranked.c.at, ranked.c.id)
        )
        return [_point(r) for r in rows]

    def current_events(
        self, name_keys: Sequence[str], readable: ReadFilter | None
    ) -> list[DeploymentEvent]:
        """The event in force now of each deployment named (by name key) whose live model
        the caller may read (``readable`` None: any)."""
        query = _EVENT.where(
            D.c.name_key.in_(name_keys), E.c.until.is_(None), M.c.deleted_at.is_(None)
        )
        if readable is not None:
            query = query.where(readable_models(readable))
        return [_event(r) for r in self.s.execute(query)]

    # -- retention (gc) ---------------------------------------------------------------------

    def with_points_before(self, cut: int) -> list[int]:
        """Ids of the deployments that hold feedback points measured before ``cut`` (an
        index probe each), in order."""
        old = select(F.c.id).where(F.c.deployment_id == D.c.id, F.c.at < cut).exists()
        return [
            int(i) for i in self.s.execute(select(D.c.id).where(old).order_by(D.c.id)).scalars()
        ]

    def count_points_before(self, deployment_ids: Sequence[int], cut: int) -> int:
        """How many points of these deployments were measured before ``cut``."""
        query = select(func.count()).select_from(F).where(_points_before(deployment_ids, cut))
        return int(self.s.execute(query).scalar_one())

    def delete_points_before(self, deployment_id: int, cut: int, limit: int) -> int:
        """Delete up to ``limit`` of the deployment's points measured before ``cut``, oldest
        first; how many went. One deployment at a time, in the index's order, so that the
        scan stops after ``limit`` rows however many more are due."""
        batch = (
            select(F.c.id)
            .where(_points_before([deployment_id], cut))
            .order_by(F.c.at, F.c.id)
            .limit(limit)
        )
        return int(self.s.execute(delete(F).where(F.c.id.in_(batch))).rowcount)


def _points_before(deployment_ids: Sequence[int], cut: int) -> Any:
    """By the (deployment_id, at, id) index."""
    return F.c.deployment_id.in_(list(deployment_ids)) & (F.c.at < cut)


def _scope(kind: str, *parts: object) -> str:
    """What a page token is bound to: the query that gave it."""
    canonical = json.dumps([kind, *parts], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def to_deployment(row: Row[Any]) -> Deployment:
    return Deployment(
        name=row.name,
        environment=row.environment,
        url=row.url,
        model=row.model_name,
        version=row.version,
        alias=row.alias,
        created_at=to_datetime(row.created_at),
        updated_at=to_datetime(row.updated_at),
        created_by=row.created_by,
        retired_at=optional_datetime(row.retired_at),
    )


def _event(row: Row[Any]) -> DeploymentEvent:
    return DeploymentEvent(
        deployment=row.deployment_name,
        environment=row.environment,
        model=row.model_name,
        from_version=row.from_version,
        to_version=row.to_version,
        alias=row.alias,
        actor=row.actor,
        reason=row.reason,
        at=to_datetime(row.at),
        until=optional_datetime(row.until),
    )


def _point(row: Row[Any]) -> FeedbackPoint:
    return FeedbackPoint(
        key=row.key,
        value=float(row.value),
        at=to_datetime(row.at),
        labels=json.loads(row.labels) if row.labels else {},
        deployment=row.deployment_name,
        model=row.model_name,
        version=int(row.version),
    )
