"""Turn rows into domain values, a page at a time, in a fixed number of queries.

Loading N versions or models costs two statements whatever N is (rows, then all their
child rows): no N+1. On PostgreSQL a version, a search's page of versions and MLflow's
latest versions come with their child rows in one statement (``whole.py``); their rows
are read here too. Every loader can leave the versions' files out (``files=False``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    Row,
    Text,
    and_,
    bindparam,
    cast,
    literal,
    null,
    select,
    union_all,
)

from cairn.domain.models import (
    FileEntry,
    ModelVersion,
    RegisteredModel,
    Stage,
    VersionStatus,
)
from cairn.domain.names import alias_key, name_key
from cairn.store.metadata.clock import optional_datetime, to_datetime
from cairn.store.metadata.prepared import Prepared
from cairn.store.metadata.schema import (
    aliases,
    model_tags,
    model_versions,
    registered_models,
    version_files,
    version_metrics,
    version_params,
    version_tags,
)
from cairn.store.metadata.whole import WITH_FILES, whole

V = model_versions
M = registered_models
# Statements built once (building one costs more than running it on SQLite): the ids of a
# page are one expanding parameter; NULLs typed for the UNION ALLs' shared columns.
_IDS: Any = bindparam("ids", expanding=True)
_NO_TEXT = cast(null(), Text)
_NO_FLOAT = cast(null(), Float)
_NO_INT = cast(null(), BigInteger)


def newest_ready(model_id: Any, *wanted: Any, stage: Any = None, versions: Any = V) -> Any:
    """The newest READY live version of the model ``model_id`` (a column or a parameter),
    in ``stage`` if given: its ``wanted`` columns (every column of ``versions``, the
    versions table or an alias of it, by default), one row or none. One step down the
    ``(model_id, status, version)`` or ``(model_id, stage, version)`` index from its end,
    whatever the model's size (``max(version)`` over the same rows read every READY
    version to check ``deleted_at``: 12 ms a page of models, 60 ms a model of 500,000
    versions)."""
    conditions = [
        versions.c.model_id == model_id,
        versions.c.status == VersionStatus.READY.value,
        versions.c.deleted_at.is_(None),
    ]
    if stage is not None:
        conditions.append(versions.c.stage == stage)
    columns = wanted or (versions,)
    return select(*columns).where(*conditions).order_by(versions.c.version.desc()).limit(1)


# A page of models: two statements, the rows, then their tags, aliases and latest READY
# version numbers in one UNION ALL, put in order here (``_in_order``).
_MODEL_ROWS = Prepared(select(M).where(M.c.id.in_(_IDS)))
_MODEL_CHILDREN = Prepared(
    union_all(
        select(
            literal("t").label("kind"),
            model_tags.c.model_id.label("owner"),
            model_tags.c.key.label("name"),
            model_tags.c.value.label("text"),
            _NO_INT.label("number"),
            model_tags.c.key.label("sort"),
        ).where(model_tags.c.model_id.in_(_IDS)),
        select(
            literal("a"),
            aliases.c.model_id,
            aliases.c.alias,
            _NO_TEXT,
            aliases.c.version,
            aliases.c.alias_key,
        ).where(aliases.c.model_id.in_(_IDS)),
        select(
            literal("l"),
            M.c.id,
            _NO_TEXT,
            _NO_TEXT,
            cast(newest_ready(M.c.id, V.c.version).scalar_subquery(), BigInteger),
            _NO_TEXT,
        ).where(M.c.id.in_(_IDS)),
    )
)


def _in_order(rows: Sequence[Any]) -> list[Any]:
    """Child rows by kind, owner, then the sort key (a tag's key, an alias, a path): the
    order the values keep in their dicts and lists, and so in the API's JSON. Sorted here,
    not by the statement: SQLite sorts a UNION ALL by giving each of its arms a sorter of
    its own, a fixed cost that outweighed reading a page's few child rows (two alternated
    runs of ``benchmarks/asgi_costs.py --calls 2000``: a model search 267-275 → 252-254
    µs, through the MLflow API 420-431 → 392-394). Code-point order, as SQLite's and
    PostgreSQL's "C" collation give, on both databases."""
    return sorted(rows, key=lambda r: (r[0], r[1], r[-1] or ""))


def load_models(session: Connection, model_ids: Sequence[int]) -> list[RegisteredModel]:
    """RegisteredModel values for ``model_ids``, in that order."""
    if not model_ids:
        return []
    rows = {r.id: r for r in _MODEL_ROWS.all(session, {"ids": list(model_ids)})}
    return models_from_rows(session, [rows[i] for i in model_ids if i in rows])


def models_from_rows(session: Connection, found: Sequence[Row[Any]]) -> list[RegisteredModel]:
    """RegisteredModel values for model rows at hand (a search's page), in their order:
    their tags, aliases and latest versions in one statement, unless the rows carry them
    (``whole.model_page``)."""
    if not found:
        return []
    if "tag_keys" in found[0]._fields:  # whole.model_page: the children came with the rows
        return [
            _model(
                r,
                _arrays(r.tag_keys, r.tag_values),
                _arrays(r.alias_names, r.alias_versions),
                r.latest_version,
            )
            for r in found
        ]
    model_ids = [int(r.id) for r in found]
    params = {"ids": model_ids}
    rows = {int(r.id): r for r in found}
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    alias_map: dict[int, dict[str, int]] = defaultdict(dict)
    latest: dict[int, int] = {}
    for kind, owner, name, text, number, _sort in _in_order(_MODEL_CHILDREN.all(session, params)):
        if kind == "t":
            tags[owner][name] = text
        elif kind == "a":
            alias_map[owner][name] = int(number)
        elif number is not None:
            latest[owner] = int(number)
    return [_model(rows[i], tags[i], alias_map[i], latest.get(i)) for i in model_ids if i in rows]


def _model(
    row: Row[Any], tags: dict[str, str], alias_map: dict[str, int], latest: int | None
) -> RegisteredModel:
    return RegisteredModel(
        name=row.name,
        description=row.description,
        tags=tags,
        aliases=alias_map,
        latest_version=latest,
        last_version=int(row.last_version),
        created_at=to_datetime(row.created_at),
        updated_at=to_datetime(row.updated_at),
        created_by=row.created_by,
        deleted_at=optional_datetime(row.deleted_at),
    )


# A page of versions (SQLite; PostgreSQL for a list of ids): two statements, the rows,
# then every child row (tags, params, metrics, aliases, files) in one UNION ALL whose
# columns carry text, float and integer values side by side.
_VERSION_ROWS = Prepared(
    select(V, M.c.name.label("model_name")).join(M, M.c.id == V.c.model_id).where(V.c.id.in_(_IDS))
)


def _children(kind: str, table: Any, value: str) -> Any:
    return select(
        literal(kind).label("kind"),
        table.c.version_id.label("owner"),
        table.c.key.label("name"),
        table.c.value if value == "text" else _NO_TEXT,
        table.c.value if value == "float" else _NO_FLOAT,
        _NO_INT,
        table.c.key.label("sort"),
    ).where(table.c.version_id.in_(_IDS))


_VERSION_CHILDREN = Prepared(
    union_all(
        _children("t", version_tags, "text"),
        _children("p", version_params, "text"),
        _children("m", version_metrics, "float"),
        select(
            literal("a"), V.c.id, aliases.c.alias, _NO_TEXT, _NO_FLOAT, _NO_INT, aliases.c.alias_key
        )
        .join(aliases, and_(aliases.c.model_id == V.c.model_id, aliases.c.version == V.c.version))
        .where(V.c.id.in_(_IDS)),
        select(
            literal("f"),
            version_files.c.version_id,
            version_files.c.path,
            version_files.c.digest,
            _NO_FLOAT,
            version_files.c.size,
            version_files.c.path,
        ).where(version_files.c.version_id.in_(_IDS), WITH_FILES),
    )
)


# get-by-alias, the registry's hottest read: the live version a live model's alias names,
# found and loaded in the rows statement itself. The model id and the alias's version are
# scalar subqueries, so the version is one unique-index lookup on (model_id, version)
# whatever the planner knows: joined, PostgreSQL without statistics scanned every version
# of the model for the one the alias names.
_LIVE_MODEL_ID = (
    select(M.c.id)
    .where(M.c.name_key == bindparam("name_key"), M.c.deleted_at.is_(None))
    .scalar_subquery()
)
_ALIASED_WHERE = (
    V.c.model_id == _LIVE_MODEL_ID,
    V.c.version
    == select(aliases.c.version)
    .where(aliases.c.model_id == _LIVE_MODEL_ID, aliases.c.alias_key == bindparam("alias_key"))
    .scalar_subquery(),
    V.c.deleted_at.is_(None),
)
# get by number (``models:/NAME/3``, MLflow's get-model-version): the same, by its number
_NUMBERED_WHERE = (
    V.c.model_id == _LIVE_MODEL_ID,
    V.c.version == bindparam("number"),
    V.c.deleted_at.is_(None),
)


def _row_of(*where: Any) -> Prepared:
    return Prepared(
        select(V, M.c.name.label("model_name")).join(M, M.c.id == V.c.model_id).where(*where),
        dialect="sqlite",  # PostgreSQL reads the version whole (``_whole_of``)
    )


_ALIASED_ROW = _row_of(*_ALIASED_WHERE)
_NUMBERED_ROW = _row_of(*_NUMBERED_WHERE)


def load_versions(
    session: Connection, version_ids: Sequence[int], *, files: bool = True
) -> list[ModelVersion]:
    """ModelVersion values for ``version_ids``, in that order (two statements; one for a
    single version on PostgreSQL); without their files (``files`` empty) unless
    ``files``, as every loader here."""
    if not version_ids:
        return []
    if len(version_ids) == 1 and session.dialect.name == "postgresql":
        params = {"version_id": version_ids[0], "with_files": files}
        whole = _WHOLE_BY_ID.first(session, params)
        return [] if whole is None else [version_of_whole(whole)]
    rows = {r.id: r for r in _VERSION_ROWS.all(session, {"ids": list(version_ids)})}
    return _assemble(session, rows, version_ids, files)


def versions_from_rows(
    session: Connection, found: Sequence[Row[Any]], *, files: bool = True
) -> list[ModelVersion]:
    """ModelVersion values for version rows at hand, each with its ``model_name`` (a
    search's page), in their order: their child rows in one statement, unless the rows
    carry them (``whole.page``, whose own ``with_files`` said whether files came)."""
    if not found:
        return []
    if "tag_keys" in found[0]._fields:  # whole.page: the children came with the rows
        return [version_of_whole(r) for r in found]
    return _assemble(session, {int(r.id): r for r in found}, [int(r.id) for r in found], files)


def load_aliased_version(
    session: Connection, name: str, alias: str, *, files: bool = True
) -> tuple[int, ModelVersion] | None:
    """(model id, version): the live version the live model ``name``'s ``alias`` points
    at (PostgreSQL: one statement; SQLite: two)."""
    params = {"name_key": name_key(name), "alias_key": alias_key(alias), "with_files": files}
    return _load_live(session, _ALIASED_WHOLE, _ALIASED_ROW, params)


def load_numbered_version(
    session: Connection, name: str, number: int, *, files: bool = True
) -> tuple[int, ModelVersion] | None:
    """(model id, version): the live version ``number`` of the live model ``name``
    (PostgreSQL: one statement; SQLite: two)."""
    params = {"name_key": name_key(name), "number": number, "with_files": files}
    return _load_live(session, _NUMBERED_WHOLE, _NUMBERED_ROW, params)


def _load_live(
    session: Connection, whole: Prepared, rows: Prepared, params: dict[str, Any]
) -> tuple[int, ModelVersion] | None:
    if session.dialect.name == "postgresql":
        found = whole.first(session, params)
        return None if found is None else (int(found.model_id), version_of_whole(found))
    row = rows.first(session, params)
    if row is None:
        return None
    return int(row.model_id), _assemble(session, {row.id: row}, [row.id], params["with_files"])[0]


def _assemble(
    session: Connection, rows: dict[int, Row[Any]], version_ids: Sequence[int], with_files: bool
) -> list[ModelVersion]:
    """The versions of ``rows`` with their child rows (one statement; files only if
    ``with_files``), in ``version_ids`` order."""
    params = {"ids": list(rows), "with_files": with_files}
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    vparams: dict[int, dict[str, str]] = defaultdict(dict)
    metrics: dict[int, dict[str, float]] = defaultdict(dict)
    alias_names: dict[int, list[str]] = defaultdict(list)
    files: dict[int, list[FileEntry]] = defaultdict(list)
    children = _in_order(_VERSION_CHILDREN.all(session, params))
    for kind, owner, name, text, number, integer, _sort in children:
        if kind == "t":
            tags[owner][name] = text
        elif kind == "p":
            vparams[owner][name] = text
        elif kind == "m":
            metrics[owner][name] = float(number)
        elif kind == "a":
            alias_names[owner].append(name)
        else:
            files[owner].append(FileEntry(name, int(integer), text))
    result = []
    for vid in version_ids:
        row = rows.get(vid)
        if row is not None:
            result.append(
                _version(row, tags[vid], vparams[vid], metrics[vid], alias_names[vid], files[vid])
            )
    return result


# the stored spellings, looked up without Enum's call (a version read makes two)
_STATUSES = {s.value: s for s in VersionStatus}
_STAGES = {s.value: s for s in Stage}


def _version(
    row: Any,
    tags: dict[str, str],
    params: dict[str, str],
    metrics: dict[str, float],
    alias_names: Sequence[str],
    files: Sequence[FileEntry],
) -> ModelVersion:
    return ModelVersion(
        name=row.model_name,
        version=row.version,
        status=_STATUSES[row.status],
        status_message=row.status_message,
        description=row.description,
        tags=tags,
        params=params,
        metrics=metrics,
        aliases=tuple(alias_names),
        stage=_STAGES[row.stage],
        semver=row.semver,
        source=row.source,
        run_id=row.run_id,
        run_link=row.run_link,
        files=tuple(files),
        size=int(row.size),
        digest=row.digest,
        created_at=to_datetime(row.created_at),
        updated_at=to_datetime(row.updated_at),
        created_by=row.created_by,
        deleted_at=optional_datetime(row.deleted_at),
    )


def _whole_of(*where: Any) -> Prepared:
    """PostgreSQL: one version in one statement, its child rows as arrays (``whole.py``)."""
    return Prepared(whole(*where), dialect="postgresql")


_ALIASED_WHOLE = _whole_of(*_ALIASED_WHERE)
_NUMBERED_WHOLE = _whole_of(*_NUMBERED_WHERE)
_WHOLE_BY_ID = _whole_of(V.c.id == bindparam("version_id"))


def version_of_whole(row: Any) -> ModelVersion:
    """A version from a row of ``whole.whole`` (an aggregate over no rows is NULL)."""
    files = zip(row.file_paths or (), row.file_sizes or (), row.file_digests or (), strict=True)
    metrics = _arrays(row.metric_keys, row.metric_values)
    return _version(
        row,
        _arrays(row.tag_keys, row.tag_values),
        _arrays(row.param_keys, row.param_values),
        {k: float(v) for k, v in metrics.items()},
        row.alias_names or (),
        [FileEntry(path, int(size), digest) for path, size, digest in files],
    )


def _arrays(keys: Sequence[Any] | None, values: Sequence[Any] | None) -> dict[Any, Any]:
    """Two arrays of a ``whole`` row side by side, as a dict (NULL: none)."""
    return dict(zip(keys or (), values or (), strict=True))
