"""Use cases on the audit log: query it, verify its chain, record refused attempts.

Every mutation appends its own event inside its own transaction (``ServiceBase._audit``);
this module reads the log back and records what was refused. The instance ADMIN sees the
whole log; a caller who MANAGEs a model sees that model's events.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cairn.domain import names
from cairn.domain.access import Actor, Role
from cairn.domain.audit import (
    AuditEvent,
    AuditReport,
    EventPage,
    clean_after_seq,
    clean_anchor,
    clean_event_filter,
    clean_outcome,
)
from cairn.domain.codec import validate_time
from cairn.domain.models import Page
from cairn.domain.validation import clean_page_size
from cairn.errors import InvalidParameter, PermissionDenied
from cairn.service.base import ServiceBase
from cairn.store.metadata.audit_store import AuditStore, new_event
from cairn.store.metadata.clock import from_datetime
from cairn.store.metadata.database import Tx

_ACTION_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?")
_DENIAL_FIELDS = frozenset({"action", "model", "model_id", "version", "target"})
# A refusal names the use case it refused (``set_alias``); the log files it under the action
# the use case records when it succeeds, so one filter finds both (``--action alias``).
DENIED_AS = {
    "create_model": "model.create",
    "update_model": "model.update",
    "rename_model": "model.rename",
    "set_model_tag": "model.tag.set",
    "delete_model_tag": "model.tag.delete",
    "delete_model": "model.delete",
    "restore_model": "model.restore",
    "create_version": "version.create",
    "update_version": "version.update",
    "set_version_tag": "version.tag.set",
    "delete_version_tag": "version.tag.delete",
    "transition_stage": "version.stage",
    "delete_version": "version.delete",
    "restore_version": "version.restore",
    "purge_version": "version.purge",
    "finalize_version": "version.finalize",
    "expire_pending": "version.expire",
    "set_alias": "alias.set",
    "delete_alias": "alias.delete",
    "import_model": "import.model",
    "import_version": "import.version",
    "reserve_versions": "import.reserve",
    "gc": "gc.run",
    "rollback_alias": "alias.set",
    "prune_versions": "version.delete",
    "purge_versions": "version.purge",  # prune_versions(purge=True)
    "set_retention": "retention.policy",
    "clear_retention": "retention.policy",
    "set_scan_policy": "scan.policy",
    "rescan_version": "scan.rerun",
    "override_quarantine": "artifact.quarantine_override",
    "add_signer": "signer.add",
    "remove_signer": "signer.remove",
    "add_signature": "signature.add",
    "create_user": "user.create",
    "update_user": "user.update",
    "create_group": "group.create",
    "delete_group": "group.delete",
    "add_group_member": "group.add_member",
    "remove_group_member": "group.remove_member",
    "grant": "grant.set",
    "grant_pattern": "grant.set",
    "revoke": "grant.revoke",
    "revoke_pattern": "grant.revoke",
    "create_token_for_user": "token.create",
    "set_deployment": "deployment.set",
    "retire_deployment": "deployment.retire",
    "push_feedback": "deployment.feedback",
}


class AuditService(ServiceBase):
    def list_audit(
        self,
        actor: Actor,
        *,
        model: str | None = None,
        actor_name: str | None = None,
        action: str | None = None,
        alias: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        oldest_first: bool = False,
    ) -> Page[AuditEvent]:
        """Audit events matching every filter given, newest first.

        ``model`` keeps to one model (for the instance ADMIN: also its deleted namesakes
        and refused attempts on that name); ``alias`` to the moves of one alias (who moved
        ``@production``, when, from which version); ``action`` to an action and those
        below it (``alias`` covers ``alias.set`` and ``alias.delete``); ``since`` is
        inclusive and ``until`` exclusive.
        """
        if model is not None:
            names.validate_model_name(model)
        if alias is not None:
            names.validate_alias(alias)
        if actor_name is not None:
            names.validate_text("actor", actor_name, 256, allow_newlines=False)
        if action is not None and (len(action) > 64 or not _ACTION_RE.fullmatch(action)):
            raise InvalidParameter(
                f"action {action!r} is not valid; use an action such as 'alias.set', "
                "or a family such as 'alias' or 'version.tag'"
            )
        outcome = clean_outcome(outcome)
        since, until = validate_time("since", since), validate_time("until", until)
        start = None if since is None else from_datetime(since)
        end = None if until is None else from_datetime(until)
        size = clean_page_size(max_results, self.limits.default_page)
        _require_scope(actor, model)

        def run(s: Tx) -> Page[AuditEvent]:
            by_id, by_name = self._scope(s, actor, model)
            events, token = AuditStore(s).list(
                model_id=by_id,
                model_name=by_name,
                actor=actor_name,
                action=action,
                alias=alias,
                outcome=outcome,
                since=start,
                until=end,
                max_results=size,
                page_token=page_token,
                oldest_first=oldest_first,
            )
            return Page(events, token)

        return self.db.read(run)

    def tail_events(
        self,
        actor: Actor,
        *,
        after_seq: int = 0,
        model: str | None = None,
        events: Sequence[str] | str | None = None,
        outcome: str | None = None,
        max_results: int | None = None,
    ) -> EventPage:
        """The log's events after ``after_seq`` (0: from its start; ``FROM_END``: from its
        end), oldest first, and the cursor to pass next: a tail that neither skips nor
        repeats an event.

        Who sees what is ``list_audit``'s rule: the instance ADMIN every event (with
        ``model``, that name's, deleted namesakes and refused attempts included); MANAGE
        on a model, that model's events. An event's name is its audit action; ``events``
        selects some in the webhook grammar (``*``, ``alias.*``, ``version.tag.*``,
        ``alias.set``); ``outcome`` keeps to ``ok`` or to ``denied`` attempts. One read,
        never a wait: callers that wait for events call again (``api/v1/audit.py``).
        """
        cursor = clean_after_seq(after_seq)
        if model is not None:
            names.validate_model_name(model)
        selected = clean_event_filter(events)
        outcome = clean_outcome(outcome)
        size = clean_page_size(max_results, self.limits.default_page)
        _require_scope(actor, model)

        def run(s: Tx) -> EventPage:
            by_id, by_name = self._scope(s, actor, model)
            found, after = AuditStore(s).tail(
                after_seq=cursor,
                model_id=by_id,
                model_name=by_name,
                events=selected,
                outcome=outcome,
                max_results=size,
            )
            return EventPage(found, after)

        return self.db.read(run)

    def _scope(self, s: Tx, actor: Actor, model: str | None) -> tuple[int | None, str | None]:
        """``(model_id, model_name)`` to read the log by: the ADMIN reads a model's
        events by its name, anyone else by the id of the live model they MANAGE."""
        if model is None:
            return None, None
        if actor.admin:
            return None, model
        return int(self._model(s, actor, model, Role.MANAGE, "audit.list").id), None

    def verify_audit(self, actor: Actor, *, anchor: tuple[int, str] | None = None) -> AuditReport:
        """Walk the whole chain and report the first event that does not fit it.

        ``anchor``: a head recorded earlier somewhere Cairn cannot write, ``(head_seq,
        head_hash)``; the chain must still pass through it. Only this finds the newest
        events deleted together with the head set back (a consistent, shorter chain)."""
        wanted = None if anchor is None else clean_anchor(anchor)
        self._require_admin(actor, "audit.verify")
        return self.db.read(lambda s: AuditStore(s).verify(anchor=wanted))

    def record_denial(self, actor: Actor, denial: Mapping[str, Any]) -> None:
        """Append an ``outcome="denied"`` event for a refused attempt, in its own transaction.

        ``denial`` is what the refusing check knew: ``action`` (a use case's name is filed
        under the action it records on success, see ``DENIED_AS``), and where known
        ``model`` (a name), ``model_id``, ``version`` and ``target``; any other keys are
        kept in the event's ``after`` (what the caller asked for). The actor may be
        anonymous.
        """
        asked = str(denial.get("action") or "unknown")
        action = DENIED_AS.get(asked, asked)
        model_name = denial.get("model")
        model_id = denial.get("model_id")
        version = denial.get("version")
        target = denial.get("target")
        extra = {k: v for k, v in denial.items() if k not in _DENIAL_FIELDS}

        def run(s: Tx) -> None:
            event = new_event(
                actor,
                action,
                at=self.clock(),
                outcome="denied",
                model_name=None if model_name is None else str(model_name),
                model_id=model_id if _is_int(model_id) else None,
                version=_as_int(version),
                target=None if target is None else str(target),
                after=extra or None,
            )
            AuditStore(s).append(event)

        self.db.write(run)


def _require_scope(actor: Actor, model: str | None) -> None:
    if model is None and not actor.admin:
        raise PermissionDenied(
            "the instance ADMIN role is required to list the whole audit log; "
            "pass a model you MANAGE to see its events",
            denial={"action": "audit.list"},
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value: object) -> int | None:
    """A version number as a denial may carry it (an int, or the digits from a URL)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdecimal() and len(value) < 10:
        return int(value)
    return None
