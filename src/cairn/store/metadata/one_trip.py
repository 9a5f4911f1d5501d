"""PostgreSQL: the commonest writes as one statement each (data-modifying CTEs).

Over a network every statement is a round trip, and a create took eight: allocate the
number, insert the version, its tags, params and metrics, read the scan policy, record the
verdict, take the audit head, append the event. Here the same rows come from one statement
whose parts feed each other (``RETURNING``), so a create costs one round trip plus the
transaction's own; the audit event's chain hash is computed by the database from the
pieces ``audit_store.event_template`` cut around the values only it knows (``sha256`` of
the same bytes ``event_hash`` hashes), so the chain is the one the usual way builds.

A statement here does nothing at all when its precondition fails (no such live model, the
model's stored name not spelled as given, no audit head): it returns no row and the caller
takes the usual way, which reports the error or repairs the head. Locks are taken in the
usual order (the model's row, then the audit head), so the two ways never deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, literal_column

from cairn.domain.access import Role
from cairn.domain.models import ModelVersion, VersionSpec
from cairn.domain.names import alias_key, name_key
from cairn.domain.semver import order_key
from cairn.store.metadata.audit_store import HASHED_FIELDS, EventTemplate
from cairn.store.metadata.identity_watch import mark_changed
from cairn.store.metadata.loaders import load_versions, version_of_whole
from cairn.store.metadata.prepared import driver_execute
from cairn.store.metadata.schema import model_versions
from cairn.store.metadata.whole import whole_sql

_EVENT_COLUMNS = tuple(c for c in HASHED_FIELDS if c != "seq")  # seq: the chain's
_NEXT_SEQ = "head0.seq + 1"


def available(dialect: str) -> bool:
    """Whether a database of ``dialect`` takes the writes of this module (PostgreSQL):
    callers ask before they prepare an audit event and call one of them."""
    return dialect == "postgresql"


def _append_event(source: str, holes: tuple[tuple[str, str], ...]) -> str:
    """SQL of the CTEs that append an event to the audit chain once per row of the CTE
    ``source`` (one row, or none: then nothing). ``holes`` are the template's holes in
    the order they appear in its hashed body, each with the SQL of its stored value over
    ``source`` (``seq``: ``_NEXT_SEQ``); in the hashed body a hole is that value's JSON.
    Built at import, from this module's constants; the values are bound at run time
    (``_event_params``)."""
    stored = dict(holes)
    hashed = ["head0.hash", "%(a_piece0)s"]
    for i, (_, sql) in enumerate(holes, start=1):
        hashed += [f"COALESCE(to_json({sql})::text, 'null')", f"%(a_piece{i})s"]
    values = ", ".join(stored.get(c, f"%(a_{c})s") for c in _EVENT_COLUMNS)
    return f"""head0 AS (
    SELECT a.seq, a.hash FROM audit_head a, {source} WHERE a.id = 1 FOR UPDATE OF a
), head AS (
    UPDATE audit_head
    SET seq = {_NEXT_SEQ},
        hash = encode(sha256(convert_to({" || ".join(hashed)}, 'UTF8')), 'hex')
    FROM head0, {source} WHERE audit_head.id = 1
    RETURNING audit_head.seq, audit_head.hash, head0.hash AS prev_hash
), event AS (
    INSERT INTO audit_events (seq, {", ".join(_EVENT_COLUMNS)}, prev_hash, hash)
    SELECT head.seq, {values}, head.prev_hash, head.hash
    FROM head, {source}
)"""  # noqa: S608 (identifiers and SQL of this module; every value is a bound parameter)


def _event_params(t: EventTemplate, holes: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The bound values of ``_append_event(source, holes)`` for the event ``t``."""
    if t.holes != tuple(h for h, _ in holes):  # pragma: no cover (the JSON keys are sorted)
        raise AssertionError(f"audit template holes {t.holes} do not match the statement")
    params = {f"a_piece{i}": piece for i, piece in enumerate(t.pieces)}
    params.update({f"a_{c}": t.row[c] for c in _EVENT_COLUMNS if c not in t.holes})
    return params


def _with(ctes: tuple[str, ...], final: str) -> str:
    """One statement: ``WITH`` the CTEs (``name AS (...)``), then ``final``."""
    return "WITH " + ",\n".join(ctes) + "\n" + final


def _entries(table: str, owner: str, value_type: str, prefix: str) -> str:
    """SQL of a CTE inserting one row of ``table`` per key given, for the new row of the
    CTE ``owner`` (``m``: a model, ``v``: a version)."""
    column = {"m": "model_id", "v": "version_id"}[owner]
    return f"""{table} AS (
    INSERT INTO {table} ({column}, key, value)
    SELECT {owner}.id, e.key, e.value
    FROM {owner}, unnest(%({prefix}_keys)s::text[], %({prefix}_values)s::{value_type}[])
        AS e(key, value)
)"""  # noqa: S608 (as above)


def _entry_params(prefix: str, entries: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}_keys": list(entries), f"{prefix}_values": list(entries.values())}


def _first(s: Connection, sql: str, params: dict[str, Any], *, named: bool = False) -> Any:
    """The statement's first row (``named``: with its columns as attributes), or None."""
    cursor = driver_execute(s, sql, params)
    try:
        if named:
            from psycopg.rows import namedtuple_row  # here: SQLite never loads the driver

            cursor.row_factory = namedtuple_row
        return cursor.fetchone()
    finally:
        cursor.close()


_VERSION_HOLES = (("model_id", "m.id"), ("seq", _NEXT_SEQ), ("version", "m.last_version"))
_CREATE_VERSION = _with(
    (
        """m AS (
    UPDATE registered_models
    SET last_version = last_version + 1, updated_at = %(now)s
    WHERE name_key = %(name_key)s AND name = %(name)s AND deleted_at IS NULL
      AND EXISTS (SELECT 1 FROM audit_head WHERE id = 1)
    RETURNING id, last_version
), v AS (
    INSERT INTO model_versions (model_id, version, status, stage, description, semver,
                                semver_key, source, run_id, run_link, digest, size,
                                created_at, updated_at, created_by)
    SELECT id, last_version, %(status)s, %(stage)s, %(description)s, %(semver)s,
           %(semver_key)s, %(source)s, %(run_id)s, %(run_link)s, %(digest)s, 0,
           %(now)s, %(now)s, %(created_by)s
    FROM m
    RETURNING id
), verdict AS (
    INSERT INTO version_scans (version_id, status, action, quarantined, summary, scanned_at)
    SELECT v.id, %(scan_status)s,
           COALESCE((SELECT scan_action FROM model_settings WHERE model_id = m.id),
                    %(scan_action)s),
           false, %(scan_summary)s, %(now)s
    FROM v, m
)""",
        _entries("version_tags", "v", "text", "tag"),
        _entries("version_params", "v", "text", "param"),
        _entries("version_metrics", "v", "float8", "metric"),
        _append_event("m", _VERSION_HOLES),
    ),
    "SELECT m.id, m.last_version FROM m, v",
)


def create_version(
    s: Connection,
    name: str,
    spec: VersionSpec,
    *,
    status: str,
    stage: str,
    digest: str,
    created_by: str,
    now: int,
    verdict: tuple[str, str, str],
    audit: EventTemplate,
) -> tuple[int, int] | None:
    """Create a version without files of the live model spelled exactly ``name``: the
    number, the row, its tags, params and metrics, its scan verdict (``status``, the
    instance's action unless the model has its own, summary) and the audit event.
    ``(model_id, number)``, or None having changed nothing (see the module's docstring)."""
    scan_status, scan_action, scan_summary = verdict
    params: dict[str, Any] = {
        "now": now,
        "name_key": name_key(name),
        "name": name,
        "status": status,
        "stage": stage,
        "description": spec.description,
        "semver": spec.semver,
        "semver_key": order_key(spec.semver),
        "source": spec.source,
        "run_id": spec.run_id,
        "run_link": spec.run_link,
        "digest": digest,
        "created_by": created_by,
        "scan_status": scan_status,
        "scan_action": scan_action,
        "scan_summary": scan_summary,
    }
    for prefix, entries in (("tag", spec.tags), ("param", spec.params), ("metric", spec.metrics)):
        params.update(_entry_params(prefix, entries))
    params.update(_event_params(audit, _VERSION_HOLES))
    row = _first(s, _CREATE_VERSION, params)
    return None if row is None else (int(row[0]), int(row[1]))


_MODEL_HOLES = (("model_id", "m.id"), ("seq", _NEXT_SEQ))
_CREATE_MODEL = _with(
    (
        """m AS (
    INSERT INTO registered_models (name, name_key, description, created_at, updated_at, created_by)
    SELECT %(name)s, %(name_key)s, %(description)s, %(now)s, %(now)s, %(created_by)s
    WHERE EXISTS (SELECT 1 FROM audit_head WHERE id = 1)
    ON CONFLICT DO NOTHING
    RETURNING id
), creator AS (
    INSERT INTO grants (subject_kind, subject_id, model_id, role, created_at, created_by)
    SELECT 'user', %(grant_user)s, m.id, %(grant_role)s, %(now)s, %(created_by)s
    FROM m WHERE %(grant_user)s::bigint IS NOT NULL
)""",
        _entries("model_tags", "m", "text", "tag"),
        _append_event("m", _MODEL_HOLES),
    ),
    "SELECT m.id FROM m",
)


def create_model(
    s: Connection,
    name: str,
    description: str,
    tags: Mapping[str, str],
    *,
    created_by: str,
    now: int,
    creator_grant: tuple[int, Role] | None,
    audit: EventTemplate,
) -> int | None:
    """Create the live model ``name`` with its tags, the creator's grant (user id, role)
    and the audit event: its id, or None having changed nothing (a live model of that
    name exists, or no audit head: see the module's docstring)."""
    grant_user, grant_role = creator_grant or (None, None)
    params: dict[str, Any] = {
        "name": name,
        "name_key": name_key(name),
        "description": description,
        "now": now,
        "created_by": created_by,
        "grant_user": grant_user,
        "grant_role": None if grant_role is None else grant_role.name,
        **_entry_params("tag", tags),
        **_event_params(audit, _MODEL_HOLES),
    }
    if grant_user is not None:  # as IdentityStore.put_grant: this process's caches hear it
        mark_changed(grant_user)
    row = _first(s, _CREATE_MODEL, params)
    return None if row is None else int(row[0])


# Moving an alias records the version it pointed at before, which this statement reads
# as of its start, before it waited for the model's lock: a move committed meanwhile makes
# that reading stale. So the alias row is written only if it still holds what was read (an
# upsert's ``DO UPDATE`` meets the row as it is now; an insert proves there was none), and
# otherwise nothing is written and the caller takes the usual way. The version row is
# locked too, so that a version deleted (or changed) meanwhile is seen as it is now. The
# move's time is taken after the wait, from the model's row as it is then (every change
# of a model's aliases touches it), so that the history's order is the order of the moves.
# The statement answers with the version, its aliases being those the snapshot has on it
# but this one, and this one as the upsert left it; a change of the model between the
# snapshot and the lock (``fresh`` false) makes the caller read them anew. The version is
# found by a value known before any join (joined to ``target``, the planner aggregated
# every version's children first).
_TARGET_VERSION = whole_sql(
    model_versions.c.id == literal_column("(SELECT version_id FROM target)")
)
_MOVE_HOLES = (("before", "move.previous::text"), ("model_id", "move.model_id"), ("seq", _NEXT_SEQ))
_MOVE_ALIAS = _with(
    (
        """target AS (
    SELECT m.id AS model_id, v.id AS version_id, GREATEST(%(now)s, m.updated_at) AS at,
           m.updated_at AS locked_at,
           (SELECT a.version FROM aliases a
            WHERE a.model_id = m.id AND a.alias_key = %(alias_key)s) AS previous
    FROM registered_models m
    JOIN model_versions v ON v.model_id = m.id AND v.version = %(version)s
    WHERE m.name_key = %(name_key)s AND m.name = %(name)s AND m.deleted_at IS NULL
      AND v.deleted_at IS NULL AND v.status = 'READY'
      AND NOT EXISTS (SELECT 1 FROM alias_policies)
      AND EXISTS (SELECT 1 FROM audit_head WHERE id = 1)
    FOR UPDATE OF m FOR SHARE OF v
), moved AS (
    INSERT INTO aliases AS a (model_id, alias_key, alias, version, updated_at)
    SELECT model_id, %(alias_key)s, %(alias)s, %(version)s, at FROM target
    ON CONFLICT (model_id, alias_key) DO UPDATE
    SET version = excluded.version,
        alias = CASE WHEN a.version = excluded.version THEN a.alias ELSE excluded.alias END,
        updated_at = CASE WHEN a.version = excluded.version THEN a.updated_at
                          ELSE excluded.updated_at END
    WHERE a.version = (SELECT previous FROM target)
    RETURNING a.xmax = 0 AS inserted, a.alias, a.alias_key
), move AS (
    SELECT target.model_id, target.at, CASE WHEN moved.inserted THEN NULL ELSE target.previous END
           AS previous
    FROM target, moved
    WHERE (CASE WHEN moved.inserted THEN NULL ELSE target.previous END)
          IS DISTINCT FROM %(version)s
), touch AS (
    UPDATE registered_models SET updated_at = target.at
    FROM target, moved WHERE registered_models.id = target.model_id
), history AS (
    INSERT INTO alias_events (model_id, alias_key, alias, from_version, to_version, actor, at)
    SELECT move.model_id, %(alias_key)s, %(alias)s, move.previous, %(version)s, %(actor)s,
           move.at
    FROM move
)""",
        _append_event("move", _MOVE_HOLES),
    ),
    f"""SELECT w.*,
       ARRAY(SELECT x.alias FROM (  -- the snapshot's but this one, and this one
           SELECT a.alias, a.alias_key FROM aliases a
           WHERE a.model_id = target.model_id AND a.version = %(version)s
             AND a.alias_key <> moved.alias_key
           UNION ALL SELECT moved.alias, moved.alias_key
       ) x ORDER BY x.alias_key) AS aliases_now,
       (SELECT r.updated_at FROM registered_models r WHERE r.id = target.model_id)
       = target.locked_at AS fresh
FROM target, moved, ({_TARGET_VERSION}) w""",  # noqa: S608 (as above)
)


def move_alias(
    s: Connection,
    name: str,
    alias: str,
    version: int,
    *,
    actor: str,
    now: int,
    audit: EventTemplate,
) -> ModelVersion | None:
    """Point ``alias`` of the live model spelled exactly ``name`` at its READY live
    ``version``: the alias row, its history event and the audit event when it moves, the
    model's time always. The version as it is then, or None having changed nothing: no
    such model or version, an instance with alias policies (whose gates the usual way
    applies), no audit head, or a concurrent change of the alias (see above)."""
    params: dict[str, Any] = {
        "name_key": name_key(name),
        "name": name,
        "alias_key": alias_key(alias),
        "alias": alias,
        "version": version,
        "actor": actor,
        "now": now,
        **_event_params(audit, _MOVE_HOLES),
    }
    row = _first(s, _MOVE_ALIAS, params, named=True)
    if row is None:
        return None
    if not row.fresh:  # the aliases changed while it waited for the model: read them anew
        return load_versions(s, [row.id])[0]
    return replace(version_of_whole(row), aliases=tuple(row.aliases_now))
