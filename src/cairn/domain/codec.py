"""Domain values to and from the native API's JSON.

One codec for the server (responses), the HTTP client (parsing them) and the CLI's
``--json`` (printing local results exactly as the API would).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cairn.domain.artifacts import FileLink, PruneReport, Retention, RetentionPolicy
from cairn.domain.models import (
    AliasEvent,
    FileEntry,
    ModelVersion,
    RegisteredModel,
    Stage,
    VersionStatus,
)
from cairn.errors import InvalidParameter


def validate_time(kind: str, value: object) -> datetime | None:
    """``value`` if it is a ``datetime`` (or None), else ``InvalidParameter``: a string
    or a number for a time is refused alike by the HTTP client and by the service."""
    if value is None or isinstance(value, datetime):
        return value
    raise InvalidParameter(f"{kind} must be a datetime, not {value!r}")


def require_int(kind: str, value: object) -> int:
    """``value`` if it is an integer (a bool is not), else ``InvalidParameter``: a string
    or a float from an SDK caller must not reach a comparison (a ``TypeError``) or the
    database, and the API refuses it too."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"{kind} must be an integer, not {value!r}")
    return value


def require_number(kind: str, value: object) -> float:
    """``value`` if it is an int or a float (a bool is not), else ``InvalidParameter``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameter(f"{kind} must be a number, not {value!r}")
    return value


def format_time(value: datetime | None) -> str | None:
    """RFC 3339, UTC, microseconds, ``Z`` suffix; a time without zone is UTC (as the
    service and the API take it), never the machine's local time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _time(value: str) -> datetime:
    parsed = parse_time(value)
    assert parsed is not None
    return parsed


def optional_number(value: Any) -> float | None:
    return None if value is None else float(value)


def file_to_json(f: FileEntry) -> dict[str, Any]:
    return {"path": f.path, "size": f.size, "digest": f.digest}


def file_from_json(d: dict[str, Any]) -> FileEntry:
    return FileEntry(d["path"], int(d["size"]), d["digest"])


def link_to_json(k: FileLink) -> dict[str, Any]:
    return {**file_to_json(k.file), "url": k.url}


def link_from_json(d: dict[str, Any]) -> FileLink:
    return FileLink(file_from_json(d), d["url"])


def model_to_json(m: RegisteredModel) -> dict[str, Any]:
    return {
        "name": m.name,
        "description": m.description,
        "tags": dict(m.tags),
        "aliases": dict(m.aliases),
        "latest_version": m.latest_version,
        "last_version": m.last_version,
        "created_at": format_time(m.created_at),
        "updated_at": format_time(m.updated_at),
        "created_by": m.created_by,
        "deleted_at": format_time(m.deleted_at),
    }


def model_from_json(d: dict[str, Any]) -> RegisteredModel:
    return RegisteredModel(
        name=d["name"],
        description=d["description"],
        tags=dict(d["tags"]),
        aliases={k: int(v) for k, v in d["aliases"].items()},
        latest_version=d["latest_version"],
        # a server older than the field sends none: 0, "not known" (the exporter then
        # falls back on the versions it sees)
        last_version=int(d.get("last_version") or 0),
        created_at=_time(d["created_at"]),
        updated_at=_time(d["updated_at"]),
        created_by=d.get("created_by"),
        deleted_at=parse_time(d.get("deleted_at")),
    )


def version_to_json(v: ModelVersion, *, files: bool = True) -> dict[str, Any]:
    """``files=False``: a version read without its manifest, whose ``files`` is null."""
    manifest = [file_to_json(f) for f in v.files]
    return {
        "name": v.name,
        "version": v.version,
        "status": v.status.value,
        "status_message": v.status_message,
        "description": v.description,
        "tags": dict(v.tags),
        "params": dict(v.params),
        "metrics": dict(v.metrics),
        "aliases": list(v.aliases),
        "stage": v.stage.value,
        "semver": v.semver,
        "source": v.source,
        "run_id": v.run_id,
        "run_link": v.run_link,
        "files": manifest if files else None,
        "size": v.size,
        "digest": v.digest,
        "created_at": format_time(v.created_at),
        "updated_at": format_time(v.updated_at),
        "created_by": v.created_by,
        "deleted_at": format_time(v.deleted_at),
    }


def version_from_json(d: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        name=d["name"],
        version=int(d["version"]),
        status=VersionStatus(d["status"]),
        status_message=d.get("status_message", ""),
        description=d["description"],
        tags=dict(d["tags"]),
        params=dict(d["params"]),
        metrics={k: float(v) for k, v in d["metrics"].items()},
        aliases=tuple(d["aliases"]),
        stage=Stage(d["stage"]),
        semver=d.get("semver"),
        source=d.get("source"),
        run_id=d.get("run_id"),
        run_link=d.get("run_link"),
        files=tuple(file_from_json(f) for f in d["files"] or ()),
        size=int(d["size"]),
        digest=d.get("digest"),
        created_at=_time(d["created_at"]),
        updated_at=_time(d["updated_at"]),
        created_by=d.get("created_by"),
        deleted_at=parse_time(d.get("deleted_at")),
    )


def alias_event_to_json(e: AliasEvent) -> dict[str, Any]:
    return {
        "name": e.name,
        "alias": e.alias,
        "from_version": e.from_version,
        "to_version": e.to_version,
        "actor": e.actor,
        "at": format_time(e.at),
    }


def alias_event_from_json(d: dict[str, Any]) -> AliasEvent:
    return AliasEvent(
        name=d["name"],
        alias=d["alias"],
        from_version=d["from_version"],
        to_version=d["to_version"],
        actor=d.get("actor"),
        at=_time(d["at"]),
    )


def prune_to_json(r: PruneReport) -> dict[str, Any]:
    return {
        "model": r.model,
        "keep": r.keep,
        "keep_days": r.keep_days,
        "filter": r.filter,
        "dry_run": r.dry_run,
        "purge": r.purge,
        "pruned": list(r.pruned),
        "protected": list(r.protected),
        "bytes": r.bytes,
    }


def prune_from_json(d: dict[str, Any]) -> PruneReport:
    return PruneReport(
        model=d["model"],
        keep=int(d["keep"]),
        keep_days=None if d.get("keep_days") is None else float(d["keep_days"]),
        dry_run=bool(d["dry_run"]),
        purge=bool(d["purge"]),
        pruned=tuple(int(v) for v in d["pruned"]),
        protected=tuple(int(v) for v in d["protected"]),
        bytes=int(d["bytes"]),
        filter=d.get("filter"),
    )


def _retention_to_json(r: Retention) -> dict[str, Any]:
    return {"keep": r.keep, "keep_days": r.keep_days}


def _retention_from_json(d: dict[str, Any]) -> Retention:
    days = d.get("keep_days")
    return Retention(None if d["keep"] is None else int(d["keep"]), optional_number(days))


def retention_to_json(p: RetentionPolicy) -> dict[str, Any]:
    return {
        "name": p.name,
        "own": None if p.own is None else _retention_to_json(p.own),
        "effective": _retention_to_json(p.effective),
    }


def retention_from_json(d: dict[str, Any]) -> RetentionPolicy:
    own = d.get("own")
    return RetentionPolicy(
        d["name"],
        None if own is None else _retention_from_json(own),
        _retention_from_json(d["effective"]),
    )
