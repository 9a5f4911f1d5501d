"""Turn rows into domain values, a page at a time, in a fixed number of queries.

Loading N versions costs at most five queries whatever N is (rows, tags and params,
metrics, files when any, aliases): no N+1.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, func, literal, select, tuple_, union_all

from cairn.domain.digests import manifest_digest
from cairn.domain.models import (
    FileEntry,
    ModelVersion,
    RegisteredModel,
    Stage,
    VersionStatus,
)
from cairn.store.metadata.clock import optional_datetime, to_datetime
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

V = model_versions
EMPTY_MANIFEST = manifest_digest([])
M = registered_models


def _entries(
    session: Connection, table: Any, owner: str, ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    grouped: dict[int, dict[str, Any]] = defaultdict(dict)
    if ids:
        owner_col = getattr(table.c, owner)
        rows = session.execute(
            select(owner_col, table.c.key, table.c.value)
            .where(owner_col.in_(ids))
            .order_by(owner_col, table.c.key)
        )
        for owner_id, key, value in rows:
            grouped[owner_id][key] = value
    return grouped


def _tags_and_params(
    session: Connection, ids: Sequence[int]
) -> tuple[dict[int, dict[str, str]], dict[int, dict[str, str]]]:
    """Tags and params of versions in one round trip (both are text key/values)."""
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    params: dict[int, dict[str, str]] = defaultdict(dict)
    query = union_all(
        select(
            literal("t").label("kind"),
            version_tags.c.version_id,
            version_tags.c.key,
            version_tags.c.value,
        ).where(version_tags.c.version_id.in_(ids)),
        select(
            literal("p").label("kind"),
            version_params.c.version_id,
            version_params.c.key,
            version_params.c.value,
        ).where(version_params.c.version_id.in_(ids)),
    )
    for kind, owner, key, value in session.execute(query.order_by("version_id", "key")):
        (tags if kind == "t" else params)[owner][key] = value
    return tags, params


def load_models(session: Connection, model_ids: Sequence[int]) -> list[RegisteredModel]:
    """RegisteredModel values for ``model_ids``, in that order."""
    if not model_ids:
        return []
    rows = {r.id: r for r in session.execute(select(M).where(M.c.id.in_(model_ids)))}
    tags = _entries(session, model_tags, "model_id", model_ids)
    alias_map: dict[int, dict[str, int]] = defaultdict(dict)
    for model_id, alias, version in session.execute(
        select(aliases.c.model_id, aliases.c.alias, aliases.c.version)
        .where(aliases.c.model_id.in_(model_ids))
        .order_by(aliases.c.model_id, aliases.c.alias_key)
    ):
        alias_map[model_id][alias] = version
    latest: dict[int, int] = dict(
        session.execute(
            select(V.c.model_id, func.max(V.c.version))
            .where(
                V.c.model_id.in_(model_ids),
                V.c.status == VersionStatus.READY.value,
                V.c.deleted_at.is_(None),
            )
            .group_by(V.c.model_id)
        ).all()
    )
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
        created_at=to_datetime(row.created_at),
        updated_at=to_datetime(row.updated_at),
        created_by=row.created_by,
        deleted_at=optional_datetime(row.deleted_at),
    )


def load_versions(session: Connection, version_ids: Sequence[int]) -> list[ModelVersion]:
    """ModelVersion values for ``version_ids``, in that order."""
    if not version_ids:
        return []
    rows = {
        r.id: r
        for r in session.execute(
            select(V, M.c.name.label("model_name"))
            .join(M, M.c.id == V.c.model_id)
            .where(V.c.id.in_(version_ids))
        )
    }
    tags, params = _tags_and_params(session, version_ids)
    metrics = _entries(session, version_metrics, "version_id", version_ids)
    files: dict[int, list[FileEntry]] = defaultdict(list)
    with_files = [vid for vid, row in rows.items() if row.digest != EMPTY_MANIFEST]
    if with_files:  # most registry-only versions have none: skip the query
        for vid, path, size, digest in session.execute(
            select(
                version_files.c.version_id,
                version_files.c.path,
                version_files.c.size,
                version_files.c.digest,
            )
            .where(version_files.c.version_id.in_(with_files))
            .order_by(version_files.c.version_id, version_files.c.path)
        ):
            files[vid].append(FileEntry(path, int(size), digest))
    pairs = {(r.model_id, r.version) for r in rows.values()}
    alias_names: dict[tuple[int, int], list[str]] = defaultdict(list)
    if pairs:
        for model_id, version, alias in session.execute(
            select(aliases.c.model_id, aliases.c.version, aliases.c.alias)
            .where(
                and_(
                    aliases.c.model_id.in_({p[0] for p in pairs}),
                    tuple_(aliases.c.model_id, aliases.c.version).in_(list(pairs)),
                )
            )
            .order_by(aliases.c.alias_key)
        ):
            alias_names[(model_id, version)].append(alias)
    result = []
    for vid in version_ids:
        row = rows.get(vid)
        if row is None:
            continue
        result.append(
            ModelVersion(
                name=row.model_name,
                version=row.version,
                status=VersionStatus(row.status),
                status_message=row.status_message,
                description=row.description,
                tags=tags[vid],
                params=params[vid],
                metrics={k: float(v) for k, v in metrics[vid].items()},
                aliases=tuple(alias_names[(row.model_id, row.version)]),
                stage=Stage(row.stage),
                semver=row.semver,
                source=row.source,
                run_id=row.run_id,
                run_link=row.run_link,
                files=tuple(files[vid]),
                size=int(row.size),
                digest=row.digest,
                created_at=to_datetime(row.created_at),
                updated_at=to_datetime(row.updated_at),
                created_by=row.created_by,
                deleted_at=optional_datetime(row.deleted_at),
            )
        )
    return result
