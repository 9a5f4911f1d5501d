"""Model versions: rows and their tags, params, metrics and file manifest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)

from cairn.domain.digests import manifest_digest
from cairn.domain.models import Stage, VersionSpec, VersionStatus
from cairn.domain.semver import order_key
from cairn.errors import NotFound
from cairn.store.metadata import whole
from cairn.store.metadata.holds import held
from cairn.store.metadata.loaders import newest_ready
from cairn.store.metadata.prepared import Prepared, Upsert
from cairn.store.metadata.schema import (
    PENDING_ROWS,
    model_versions,
    registered_models,
    version_files,
    version_metrics,
    version_params,
    version_scans,
    version_tags,
)

V = model_versions
_R = model_versions.alias("candidate")  # where a lineage walk starts (``holds``)

# built once, run on the driver: see models_store
_INSERT = Prepared(
    insert(V).returning(V.c.id),
    columns=(
        "model_id",
        "version",
        "status",
        "stage",
        "description",
        "semver",
        "semver_key",
        "source",
        "run_id",
        "run_link",
        "digest",
        "size",
        "created_at",
        "updated_at",
        "created_by",
    ),
)
_BY_ID_QUERY = select(V).where(V.c.id == bindparam("version_id"))
_BY_ID = Prepared(_BY_ID_QUERY)
_BY_ID_LOCKED = Prepared(_BY_ID_QUERY.with_for_update())
_NEWEST_READY = Prepared(newest_ready(bindparam("model_id"), V.c.version))
_FIND = Prepared(
    select(V).where(V.c.model_id == bindparam("model_id"), V.c.version == bindparam("version"))
)
# MLflow's latest_versions: the newest READY live version per (model, stage) of some live
# models, each one a step down the (model_id, stage, version) index from its end, so its
# cost does not grow with the model's versions. On PostgreSQL a LATERAL subquery per model
# and stage returns the row itself (joined to the version by id instead, its planner
# hashed a scan of every version on small tables), with its child rows (``whole.py``);
# SQLite, which has no LATERAL, joins the version to the id a correlated subquery finds,
# for every stage (the caller keeps those it asked for).
_LIVE_NAMED = (
    registered_models.c.name_key.in_(bindparam("keys", expanding=True)),
    registered_models.c.deleted_at.is_(None),
)


_EVERY_STAGE = union_all(*(select(literal(st.value).label("stage")) for st in Stage)).subquery("s")
_NEWEST_ROW = newest_ready(registered_models.c.id, stage=_EVERY_STAGE.c.stage).lateral("v")
_LATEST_BY_STAGE_PG = Prepared(
    whole.page(
        select(_NEWEST_ROW, registered_models.c.name.label("model_name"))
        .select_from(registered_models)
        .join(_EVERY_STAGE, true())
        .join(_NEWEST_ROW, true())
        .where(*_LIVE_NAMED)
        .subquery("page"),
        (),
    ),
    one_plan=True,  # planning it took 2 ms, running it 0.5
    dialect="postgresql",
)
_X = V.alias("x")
_NEWEST_ID = newest_ready(
    registered_models.c.id, _X.c.id, stage=_EVERY_STAGE.c.stage, versions=_X
).scalar_subquery()
_LATEST_BY_STAGE = Prepared(
    select(V, registered_models.c.name.label("model_name"))
    .select_from(registered_models)
    .join(_EVERY_STAGE, true())
    .join(V, V.c.id == _NEWEST_ID)
    .where(*_LIVE_NAMED),
    dialect="sqlite",
)
# a new version's children: nothing to conflict with, plain multi-row inserts
_ENTRY_COLUMNS = ("version_id", "key", "value")
_INSERT_ENTRIES = {
    t.name: Prepared(insert(t), columns=_ENTRY_COLUMNS)
    for t in (version_tags, version_params, version_metrics)
}
_SET_ENTRIES = {
    t.name: Upsert(t, ("version_id", "key"), ("value",))
    for t in (version_tags, version_params, version_metrics)
}
_INSERT_FILES = Prepared(insert(version_files), columns=("version_id", "path", "size", "digest"))


class VersionStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    def insert(
        self,
        model_id: int,
        version: int,
        spec: VersionSpec,
        status: VersionStatus,
        created_by: str | None,
        now: int,
    ) -> int:
        version_id = _INSERT.scalar(
            self.s,
            {
                "model_id": model_id,
                "version": version,
                "status": status.value,
                "stage": Stage.NONE.value,
                "description": spec.description,
                "semver": spec.semver,
                "semver_key": order_key(spec.semver),
                "source": spec.source,
                "run_id": spec.run_id,
                "run_link": spec.run_link,
                "digest": manifest_digest(spec.files),
                "size": sum(f.size for f in spec.files),
                "created_at": now,
                "updated_at": now,
                "created_by": created_by,
            },
        )
        version_id = int(version_id)
        for table, entries in (
            (version_tags, spec.tags),
            (version_params, spec.params),
            (version_metrics, spec.metrics),
        ):
            if entries:
                rows = [
                    {"version_id": version_id, "key": k, "value": v} for k, v in entries.items()
                ]
                _INSERT_ENTRIES[table.name].run_many(self.s, rows)
        if spec.files:
            _INSERT_FILES.run_many(
                self.s,
                [
                    {"version_id": version_id, "path": f.path, "size": f.size, "digest": f.digest}
                    for f in spec.files
                ],
            )
        return version_id

    def set_entries(self, table: Any, version_id: int, entries: Mapping[str, object]) -> None:
        if not entries:
            return
        rows = [{"version_id": version_id, "key": k, "value": v} for k, v in entries.items()]
        _SET_ENTRIES[table.name].run_many(self.s, rows)

    def delete_entry(self, table: Any, version_id: int, key: str) -> bool:
        result = self.s.execute(
            delete(table).where(table.c.version_id == version_id, table.c.key == key)
        )
        return bool(result.rowcount)

    def set_tags(self, version_id: int, tags: Mapping[str, str]) -> None:
        self.set_entries(version_tags, version_id, tags)

    def delete_tag(self, version_id: int, key: str) -> bool:
        return self.delete_entry(version_tags, version_id, key)

    def find(self, model_id: int, version: int) -> Any:
        return _FIND.first(self.s, {"model_id": model_id, "version": version})

    def get(self, model_id: int, name: str, version: int, *, deleted: bool = False) -> Any:
        """A live version (or, with ``deleted=True``, a soft-deleted one)."""
        row = self.find(model_id, version)
        if row is None or (row.deleted_at is not None) != deleted:
            state = "deleted " if deleted else ""
            raise NotFound(f"{state}version {version} of model {name!r} does not exist")
        return row

    def get_by_id(self, version_id: int, *, lock: bool = False) -> Any:
        query = _BY_ID_LOCKED if lock else _BY_ID
        row = query.first(self.s, {"version_id": version_id})
        if row is None:
            raise NotFound(f"model version #{version_id} does not exist")
        return row

    def purge(self, version_id: int) -> None:
        """Remove a version's row for good (its number stays used: the counter lives on)."""
        self.s.execute(delete(V).where(V.c.id == version_id))

    def deleted_before(self, cut: int) -> list[Row[Any]]:
        """Versions soft-deleted before ``cut`` that nothing holds (``holds.held``): a live
        deployment still serving one, or a lineage child an alias, a stage or a deployment
        holds, keeps it until that lets go."""
        # ``deleted_at < cut`` implies the partial index's condition for both planners
        roots = select(_R.c.id).where(_R.c.deleted_at < cut)
        return list(self.s.execute(select(V).where(V.c.deleted_at < cut, ~held(V, roots))))

    def nth_newest_ready(self, model_id: int, n: int) -> int | None:
        """The number of the model's ``n``-th newest live READY version that is not
        quarantined (None: it has fewer). An upload still going on (PENDING), one that never
        finished (FAILED) or one its scan quarantined (its files are refused) is not one of
        the newest a retention keeps: it would push out the newest usable one."""
        quarantined = (
            select(version_scans.c.version_id)
            .where(version_scans.c.version_id == V.c.id, version_scans.c.quarantined.is_(True))
            .exists()
        )
        value = self.s.execute(
            select(V.c.version)
            .where(
                V.c.model_id == model_id,
                V.c.deleted_at.is_(None),
                V.c.status == VersionStatus.READY.value,
                ~quarantined,
            )
            .order_by(V.c.version.desc())
            .offset(n - 1)
            .limit(1)
        ).scalar()
        return None if value is None else int(value)

    def models_over(self, keep: int) -> list[str]:
        """Names of the live models with more than ``keep`` live versions or a live FAILED
        one (those a retention keeping ``keep`` may prune from), by name."""
        failed = case((V.c.status == VersionStatus.FAILED.value, 1), else_=0)
        rows = self.s.execute(
            select(registered_models.c.name)
            .join(V, V.c.model_id == registered_models.c.id)
            .where(registered_models.c.deleted_at.is_(None), V.c.deleted_at.is_(None))
            .group_by(
                registered_models.c.id, registered_models.c.name, registered_models.c.name_key
            )
            .having(or_(func.count() > keep, func.max(failed) == 1))
            .order_by(registered_models.c.name_key)
        )
        return [name for (name,) in rows]

    def live_below(
        self,
        model_id: int,
        below: int | None,
        created_before: int | None = None,
        matching: ColumnElement[bool] | None = None,
    ) -> list[Row[Any]]:
        """(id, version, prunable) of the model's live versions beyond what a retention
        keeps (``beyond_kept``: numbered below ``below``, or FAILED) and ``matching`` (a
        condition such as ``search.version_matches``), oldest first; ``prunable`` per
        ``prunable(...)``."""
        rule = prunable(model_id, created_before)
        return list(
            self.s.execute(
                select(V.c.id, V.c.version, rule.label("prunable"))
                .where(V.c.model_id == model_id, V.c.deleted_at.is_(None), beyond_kept(below))
                .where(true() if matching is None else matching)
                .order_by(V.c.version)
            )
        )

    def delete_many(self, version_ids: Sequence[int], now: int) -> None:
        """Soft-delete these versions (a thousand at a time: SQLite's bound on parameters)."""
        for chunk in _chunks(version_ids):
            self.s.execute(
                update(V).where(V.c.id.in_(chunk)).values(deleted_at=now, updated_at=now)
            )

    def purge_many(self, version_ids: Sequence[int]) -> None:
        for chunk in _chunks(version_ids):
            self.s.execute(delete(V).where(V.c.id.in_(chunk)))

    def pending_before(self, cut: int) -> list[Row[Any]]:
        """PENDING versions created before ``cut``, locked: an upload that makes one READY
        meanwhile either commits first (and the row no longer qualifies) or waits."""
        query = select(V).where(PENDING_ROWS, V.c.created_at < cut).with_for_update()
        return list(self.s.execute(query))

    def latest_ready_by_stage(
        self, key_names: Sequence[str], stages: Sequence[str], *, files: bool = True
    ) -> list[Row[Any]]:
        """Rows (with ``model_name``) of the newest READY live version per (model, stage)
        for live models whose name keys are ``key_names``: one query, one row per pair
        that exists (on PostgreSQL with their child rows, files only if ``files``)."""
        if not key_names or not stages:
            return []
        query = _LATEST_BY_STAGE_PG if self.s.dialect.name == "postgresql" else _LATEST_BY_STAGE
        wanted = set(stages)
        params = {"keys": list(key_names), "with_files": files}
        return [r for r in query.all(self.s, params) if r.stage in wanted]

    def latest_ready(self, model_id: int) -> int | None:
        value = _NEWEST_READY.scalar(self.s, {"model_id": model_id})
        return None if value is None else int(value)

    def semver_candidates(
        self, model_id: int, low: str, high: str, *, below: str | None = None, limit: int | None
    ) -> list[Row[Any]]:
        """(version, semver, semver_key) of the model's READY live versions whose
        ``semver_key`` is within [low, high] (and under ``below``), highest key first, the
        newest number first among equal keys; ``limit`` rows at most."""
        query = (
            select(V.c.version, V.c.semver, V.c.semver_key)
            .where(
                V.c.model_id == model_id,
                V.c.semver_key.is_not(None),
                V.c.semver_key >= low,
                V.c.semver_key <= high,
                V.c.status == VersionStatus.READY.value,
                V.c.deleted_at.is_(None),
            )
            .order_by(V.c.semver_key.desc(), V.c.version.desc())
            .limit(limit)
        )
        if below is not None:
            query = query.where(V.c.semver_key < below)
        return list(self.s.execute(query))

    def update(self, version_id: int, now: int, **values: object) -> None:
        if "semver" in values:  # its order key goes with it
            values["semver_key"] = order_key(values["semver"])  # type: ignore[arg-type]
        self.s.execute(update(V).where(V.c.id == version_id).values(updated_at=now, **values))

    def archive_stage(self, model_id: int, stage: Stage, keep_version: int, now: int) -> None:
        """Move every other live version in ``stage`` to Archived."""
        self.s.execute(
            update(V)
            .where(
                V.c.model_id == model_id,
                V.c.stage == stage.value,
                V.c.version != keep_version,
                V.c.deleted_at.is_(None),
            )
            .values(stage=Stage.ARCHIVED.value, updated_at=now)
        )


def beyond_kept(below: int | None) -> ColumnElement[bool]:
    """The versions a retention keeping the newest READY ones does not keep: those numbered
    below ``below``, the oldest of the kept (None: fewer are READY than it keeps, so it
    keeps every READY one), and every FAILED one, wherever it is (an upload that never
    finished is never one of those kept; its bytes already count for nothing)."""
    failed = V.c.status == VersionStatus.FAILED.value
    return failed if below is None else or_(V.c.version < below, failed)


def prunable_ids(
    model_id: int,
    below: int | None,
    created_before: int | None = None,
    matching: ColumnElement[bool] | None = None,
) -> Select[tuple[int]]:
    """Ids of the model's live versions beyond what a retention keeps (``beyond_kept``)
    and ``matching`` that ``prunable`` allows."""
    return select(V.c.id).where(
        V.c.model_id == model_id,
        V.c.deleted_at.is_(None),
        beyond_kept(below),
        prunable(model_id, created_before),
        true() if matching is None else matching,
    )


def prunable(model_id: int, created_before: int | None = None) -> ColumnElement[bool]:
    """Whether a version of the model may be pruned when it is older than the ones kept:
    nothing holds it (``holds.held``: an alias, the ``Staging`` or ``Production`` stage, a
    live deployment, or a lineage child one of those holds, through relations other than
    ``retrain``), no upload is still making it (``PENDING``), and (with
    ``created_before``) it was created before then."""
    roots = select(_R.c.id).where(_R.c.model_id == model_id, _R.c.deleted_at.is_(None))
    rule = ~held(V, roots) & (V.c.status != VersionStatus.PENDING.value)
    return rule if created_before is None else rule & (V.c.created_at < created_before)


def _chunks(ids: Sequence[int], size: int = 1000) -> list[Sequence[int]]:
    return [ids[at : at + size] for at in range(0, len(ids), size)]
