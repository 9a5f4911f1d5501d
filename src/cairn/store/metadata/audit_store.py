"""The audit log: append-only and hash-chained.

Each event's hash is SHA-256 over the previous event's hash and the event's canonical JSON,
so changing, removing or reordering any stored event breaks every hash after it. The chain's
tip lives in ``audit_head`` (one row); appending updates that row first, which locks it until
the transaction ends, so concurrent writers append one after another and the chain never forks.

``verify`` walks the chain from event 1 to the head and names the first event where the
stored log stops matching it: a changed field (the recomputed hash differs), a removed or
moved event (a gap in ``seq`` or a ``prev_hash`` that is not its predecessor's hash), a
removed tail (the events end before the head) or an added event (one beyond the head).
The chain proves the log was not rewritten *behind Cairn's back*; someone who can rewrite
the whole table and its head can forge a consistent chain, which is why the report gives
the head's hash to be kept elsewhere.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cairn.domain.access import Actor
from cairn.domain.audit import FROM_END, AuditEvent, AuditReport
from cairn.domain.names import name_key
from cairn.errors import InvalidParameter
from cairn.store.metadata.clock import to_datetime
from cairn.store.metadata.prepared import Prepared
from cairn.store.metadata.schema import audit_events, audit_head, registered_models

# the page-token format of every listing (URL-safe base64 JSON bound to the query)
from cairn.store.metadata.search import decode_page_token, encode_page_token

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "outcome",
    "model",
    "model_id",
    "version",
    "target",
    "before",
    "after",
    "request_id",
    "client",
)
# text columns are clipped to their width before hashing, so what is stored is what is hashed
# (a denial can carry whatever a caller typed into a URL)
_WIDTHS = {
    name: int(getattr(audit_events.c[name].type, "length", 0) or 0)
    for name in ("actor", "action", "outcome", "model", "target", "request_id", "client")
}
MAX_LIST = 1000
VERIFY_BATCH = 1000


def event_hash(prev_hash: str, event: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + _body(event)).encode()).hexdigest()


def _body(event: dict[str, Any]) -> str:
    """What an event's hash covers after the previous hash: canonical ASCII JSON."""
    return json.dumps(
        {k: event.get(k) for k in HASHED_FIELDS}, sort_keys=True, separators=(",", ":")
    )


def new_event(
    actor: Actor,
    action: str,
    *,
    at: int,
    outcome: str = "ok",
    model_name: str | None = None,
    model_id: int | None = None,
    version: int | None = None,
    target: str | None = None,
    before: Any = None,
    after: Any = None,
) -> dict[str, Any]:
    """An event's columns but ``seq``, ``prev_hash`` and ``hash`` (the chain gives those)."""
    return {
        "at": int(at),
        "actor": _clip("actor", actor.name),
        "action": _clip("action", action),
        "outcome": _clip("outcome", outcome),
        "model": _clip("model", model_name),
        "model_id": None if model_id is None else int(model_id),
        "version": None if version is None else int(version),
        "target": _clip("target", target),
        "before": _dump(before),
        "after": _dump(after),
        "request_id": _clip("request_id", actor.request_id),
        "client": _clip("client", actor.client),
    }


# Stand-ins for the values only the database knows while a one-statement write runs
# (one_trip.py): numbers out of every real id's, sequence number's and version's range
# (``before``, stored as JSON text, stands in as a number too: the statement writes the
# JSON of its text there).
_HOLES = {
    "model_id": -(10**15) - 1,
    "seq": -(10**15) - 2,
    "version": -(10**15) - 3,
    "before": -(10**15) - 4,
}


@dataclass(frozen=True, slots=True)
class EventTemplate:
    """An event to be appended by SQL: its known columns, and its hashed body cut around
    the ``holes`` (in the order they appear in it) that the statement fills in, so that
    ``sha256(prev_hash || pieces[0] || hole || pieces[1] || ...)`` is ``event_hash``."""

    row: dict[str, Any]
    holes: tuple[str, ...]
    pieces: tuple[str, ...]


def event_template(event: dict[str, Any], holes: tuple[str, ...]) -> EventTemplate | None:
    """``event`` (from ``new_event``) with ``holes`` (always ``seq``) left to the statement;
    None if a known value happens to spell a stand-in (the caller takes the usual way)."""
    body = _body({**event, **{h: _HOLES[h] for h in holes}})
    at = sorted((body.find(f":{_HOLES[h]}"), h) for h in holes)
    if any(i < 0 or body.count(str(_HOLES[h])) != 1 for i, h in at):
        return None
    pieces, start = [], 0
    for i, h in at:
        pieces.append(body[start : i + 1])
        start = i + 1 + len(str(_HOLES[h]))
    pieces.append(body[start:])
    return EventTemplate(event, tuple(h for _, h in at), tuple(pieces))


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _load(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:  # not written by append; show it as it is stored
        return text


def _clip(name: str, value: str | None) -> str | None:
    width = _WIDTHS[name]
    if value is None or not width or len(value) <= width:
        return value
    return value[: width - 1] + "…"


def to_event(row: Row[Any]) -> AuditEvent:
    return AuditEvent(
        seq=int(row.seq),
        at=to_datetime(int(row.at)),
        actor=row.actor,
        action=row.action,
        outcome=row.outcome,
        model=row.model,
        version=row.version,
        target=row.target,
        before=_load(row.before),
        after=_load(row.after),
        request_id=row.request_id,
        client=row.client,
        hash=row.hash,
    )


# every audited change runs these three: built once, run on the driver (prepared.py)
_ADVANCE = Prepared(
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=audit_head.c.seq + 1)
    .returning(audit_head.c.seq, audit_head.c.hash)
)
_EVENT_COLUMNS = (*HASHED_FIELDS, "prev_hash", "hash")
_INSERT_EVENT = Prepared(insert(audit_events), columns=_EVENT_COLUMNS, dialect="sqlite")
_SET_HEAD_QUERY = update(audit_head).where(audit_head.c.id == 1).values(hash=bindparam("new_hash"))
_SET_HEAD = Prepared(_SET_HEAD_QUERY, dialect="sqlite")
# PostgreSQL: the event and the new head in one statement (a data-modifying CTE), one round
# trip fewer while the head row is locked: that lock orders every audited write, so its
# hold time bounds how many writes commit per second.
_APPEND = Prepared(
    _SET_HEAD_QUERY.add_cte(
        insert(audit_events)
        .values({c: bindparam(f"e_{c}") for c in _EVENT_COLUMNS})
        .cte("new_event")
    ),
    dialect="postgresql",
)


class AuditStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    # -- writing ------------------------------------------------------------------------

    def append(self, event: dict[str, Any]) -> int:
        """Append ``event`` (from ``new_event``) to the chain and return its ``seq``."""
        head = self._advance()
        if head is None:  # the head row is gone (a truncated table): start it again
            self._restore_head()
            head = self._advance()
            assert head is not None
        seq, prev = int(head.seq), str(head.hash)
        event = {"seq": seq, **event}
        digest = event_hash(prev, event)
        row = {**event, "prev_hash": prev, "hash": digest}
        if self.s.dialect.name == "postgresql":
            _APPEND.run(self.s, {**{f"e_{k}": v for k, v in row.items()}, "new_hash": digest})
        else:
            _INSERT_EVENT.run(self.s, row)
            _SET_HEAD.run(self.s, {"new_hash": digest})
        return seq

    def _advance(self) -> Any:
        """Take the next ``seq`` (locking the head row until commit) and the previous hash."""
        return _ADVANCE.first(self.s)

    def _restore_head(self) -> None:
        """Recreate the head from the last stored event (genesis when there is none)."""
        last = self.s.execute(
            select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc())
        ).first()
        seq, digest = (0, GENESIS) if last is None else (int(last.seq), str(last.hash))
        make = pg_insert if self.s.dialect.name == "postgresql" else sqlite_insert
        self.s.execute(
            make(audit_head)
            .values(id=1, seq=seq, hash=digest)
            .on_conflict_do_nothing(index_elements=["id"])
        )

    def tip(self) -> tuple[int, str]:
        row = self.s.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).first()
        return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))

    # -- reading ------------------------------------------------------------------------

    def list(
        self,
        *,
        model_id: int | None = None,
        model_name: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        alias: str | None = None,
        target: str | None = None,
        outcome: str | None = None,
        since: int | None = None,
        until: int | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        oldest_first: bool = False,
    ) -> tuple[list[AuditEvent], str | None]:
        """One page of events, newest first unless ``oldest_first``, and the next page's token.

        - ``model_id``: events about that model.
        - ``model_name``: events about every model, live or deleted, whose name has the
          key of ``model_name``, and events that name a model but had none to point at
          (such as a refused create) under that name in any case.
        - ``action``: that action or any below it (``alias`` matches ``alias.set`` and
          ``alias.delete``; ``alias.*`` means the same).
        - ``alias``: events moving or removing that alias (any case).
        - ``since`` (inclusive) and ``until`` (exclusive): microseconds since the epoch.
        """
        if not 1 <= max_results <= MAX_LIST:
            raise InvalidParameter(f"max_results must be between 1 and {MAX_LIST}")
        c = audit_events.c
        conditions = _about(model_id, model_name)
        if actor is not None:
            conditions.append(c.actor == actor)
        if action is not None:
            family = action.removesuffix(".*").removesuffix(".")
            conditions.append(
                or_(c.action == family, c.action.startswith(family + ".", autoescape=True))
            )
        if alias is not None:
            conditions.append(c.action.startswith("alias.", autoescape=True))
            conditions.append(func.lower(c.target) == alias.lower())
        if target is not None:
            conditions.append(c.target == target)
        if outcome is not None:
            conditions.append(c.outcome == outcome)
        if since is not None:
            conditions.append(c.at >= since)
        if until is not None:
            conditions.append(c.at < until)
        query = {
            "model_id": model_id,
            "model_name": name_key(model_name) if model_name is not None else None,
            "actor": actor,
            "action": action,
            "alias": alias.lower() if alias is not None else None,
            "target": target,
            "outcome": outcome,
            "since": since,
            "until": until,
            "oldest_first": oldest_first,
        }
        fingerprint = hashlib.sha256(
            json.dumps(["audit", query], sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()[:32]
        if page_token:
            (after_seq,) = decode_page_token(page_token, fingerprint, [int])
            assert isinstance(after_seq, int)
            conditions.append(c.seq > after_seq if oldest_first else c.seq < after_seq)
        rows = self.s.execute(
            select(audit_events)
            .where(*conditions)
            .order_by(c.seq.asc() if oldest_first else c.seq.desc())
            .limit(max_results + 1)
        ).all()
        events = [to_event(row) for row in rows[:max_results]]
        if len(rows) <= max_results:
            return events, None
        return events, encode_page_token(fingerprint, [events[-1].seq])

    def tail(
        self,
        *,
        after_seq: int,
        model_id: int | None = None,
        model_name: str | None = None,
        events: tuple[str, ...] | None = None,
        outcome: str | None = None,
        max_results: int = 100,
    ) -> tuple[builtins.list[AuditEvent], int]:
        """Events after ``after_seq``, oldest first, and the cursor to pass next.

        ``model_id`` and ``model_name`` as for ``list``; ``events``: a filter in the webhook
        grammar (``clean_event_filter``: names and families, None for every event).

        The chain's head is read first and only events up to it are read: an event's row
        and the head's move commit together, and the head's lock makes appends commit in
        ``seq`` order, so every event up to the head is there to be read (on PostgreSQL
        each statement of a read sees the commits made before it began). When fewer than
        ``max_results`` events match, the next cursor is the head: the events between
        were not selected and are never read again.
        """
        if not 1 <= max_results <= MAX_LIST:
            raise InvalidParameter(f"max_results must be between 1 and {MAX_LIST}")
        head, _ = self.tip()
        if after_seq == FROM_END:  # start at the end: the cursor is the head
            return [], head
        if head <= after_seq:
            return [], after_seq
        c = audit_events.c
        conditions = [c.seq > after_seq, c.seq <= head, *_about(model_id, model_name)]
        if events is not None:
            names = [e for e in events if not e.endswith(".*")]
            families = [e[:-1] for e in events if e.endswith(".*")]  # 'alias.*': 'alias.'
            conditions.append(
                or_(
                    c.action.in_(names),
                    *(c.action.startswith(f, autoescape=True) for f in families),
                )
            )
        if outcome is not None:
            conditions.append(c.outcome == outcome)
        rows = self.s.execute(
            select(audit_events).where(*conditions).order_by(c.seq.asc()).limit(max_results)
        ).all()
        found = [to_event(row) for row in rows]
        if len(found) == max_results:
            return found, found[-1].seq
        return found, head

    # -- verifying ----------------------------------------------------------------------

    def verify(
        self, batch: int = VERIFY_BATCH, *, anchor: tuple[int, str] | None = None
    ) -> AuditReport:
        """Check every stored event against the chain, in ``seq`` order, ``batch`` at a time.

        The head is read first and only events up to it are walked, so events appended
        while this runs are not mistaken for tampering. ``anchor`` ``(seq, hash)``: a head
        recorded earlier; event ``seq`` must exist and have that hash (the chain proves
        everything before it then), or the log was rewritten or cut short since.
        """
        c = audit_events.c
        head = self.s.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).first()
        if head is None:
            first = self.s.execute(select(func.min(c.seq))).scalar()
            if first is None:
                return AuditReport(ok=True, events=0, head_seq=0, head_hash=GENESIS)
            return AuditReport(
                ok=False,
                events=0,
                head_seq=0,
                head_hash="",
                first_bad_seq=int(first),
                reason="the chain's head row is missing while events are stored",
            )
        head_seq, head_hash = int(head.seq), str(head.hash)

        def bad(seq: int, checked: int, reason: str) -> AuditReport:
            return AuditReport(
                ok=False,
                events=checked,
                head_seq=head_seq,
                head_hash=head_hash,
                first_bad_seq=seq,
                reason=reason,
            )

        stray = self.s.execute(select(func.max(c.seq)).where(c.seq < 1)).scalar()
        if stray is not None:
            return bad(int(stray), 0, f"event {stray} has a sequence number below 1")

        expected, prev, checked = 1, GENESIS, 0
        while expected <= head_seq:
            rows = self.s.execute(
                select(audit_events)
                .where(c.seq >= expected, c.seq <= head_seq)
                .order_by(c.seq)
                .limit(batch)
            ).all()
            if not rows:
                break
            for row in rows:
                seq = int(row.seq)
                if seq != expected:
                    return bad(
                        expected,
                        checked,
                        f"event {expected} is missing (the next stored event is {seq})",
                    )
                if row.prev_hash != prev:
                    return bad(
                        seq,
                        checked,
                        f"event {seq} does not follow the hash of event {seq - 1}: "
                        "an event before it was changed, removed, added or moved",
                    )
                fields = {name: getattr(row, name) for name in HASHED_FIELDS}
                if event_hash(prev, fields) != row.hash:
                    return bad(
                        seq,
                        checked,
                        f"event {seq} does not match its hash: one of its fields was changed",
                    )
                if anchor is not None and seq == anchor[0] and row.hash != anchor[1]:
                    return bad(
                        seq,
                        checked,
                        f"event {seq}'s hash is not the one recorded for it: the log up to "
                        "it was rewritten",
                    )
                prev, expected, checked = row.hash, expected + 1, checked + 1

        if expected <= head_seq:
            return bad(
                expected,
                checked,
                f"the log ends at event {expected - 1} but its head is at event {head_seq}: "
                "events at the end were removed",
            )
        if prev != head_hash:
            return bad(
                max(head_seq, 1),
                checked,
                f"the head's hash does not match the hash of event {head_seq}",
            )
        if anchor is not None and anchor[0] > head_seq:
            return bad(
                head_seq + 1,
                checked,
                f"the log ends at event {head_seq} but a recorded head is at event "
                f"{anchor[0]}: events at its end were removed and its head set back",
            )
        extra = self.s.execute(select(func.min(c.seq)).where(c.seq > head_seq)).scalar()
        if extra is not None:
            # a concurrent append commits its event and the head together: an event beyond
            # the head as it is now was not written by Cairn
            now_seq, _ = self.tip()
            if int(extra) > now_seq:
                return bad(
                    int(extra),
                    checked,
                    f"event {extra} lies beyond the chain's head (event {now_seq}): "
                    "it was added outside Cairn",
                )
        return AuditReport(ok=True, events=checked, head_seq=head_seq, head_hash=head_hash)


def _about(model_id: int | None, model_name: str | None) -> list[ColumnElement[bool]]:
    """The conditions of events about one model, by id, or by name (``list``)."""
    c = audit_events.c
    conditions: list[ColumnElement[bool]] = []
    if model_id is not None:
        conditions.append(c.model_id == model_id)
    if model_name is not None:
        named = select(registered_models.c.id).where(
            registered_models.c.name_key == name_key(model_name)
        )
        conditions.append(
            or_(
                c.model_id.in_(named.scalar_subquery()),
                # folded by the database on both sides: SQLite's lower() folds
                # ASCII only, and a name folded by Python would not meet it there
                and_(c.model_id.is_(None), func.lower(c.model) == func.lower(model_name)),
            )
        )
    return conditions
