"""Protected aliases: policies, promotion requests and approvals (the gate is in ``gates``).

A policy (instance ADMIN only) protects the aliases matching its alias pattern on the models
matching its model pattern. Every matching policy applies (``domain.promotion.gate_for``).
Moving a protected alias needs the gate's role, its metric conditions, a clean scan and a
verified signature where asked, and — when the gate asks for approvals — that many approvals
from people other than the requester who hold the gate's role on the model.

``promote`` evaluates the checks at once. A failing check (other than missing approvals) is
refused with the list of what failed and nothing is recorded, since no approval could fix
it. With every check passing, the alias moves at once when no approval is needed; otherwise
a pending request keeps the checks so far. Each approval re-evaluates every check at that
moment (metrics, scan and signature may have changed, the version may have been deleted), and
the alias moves only when the approvals are all in and every check passes; a request whose
checks fail stays pending with the new results (``promote`` on the same version and alias
evaluates it again). The alias therefore never moves while a check fails. An approval counts
only while its author still holds the gate's role, and a request is applied only while
its requester does (``_role_now``, reloaded at each evaluation).

Authorization: policies are set, listed whole and deleted by the instance ADMIN only; the
policies applying to one model can be listed by anyone who may read it. Approvers and
rejecters need the gate's role on the model (MANAGE when no policy applies any more).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cairn.domain import names
from cairn.domain.access import LOCAL_ACTOR_PREFIX, Actor, Grants, Role, pattern_matches
from cairn.domain.models import Page, VersionStatus
from cairn.domain.promotion import (
    DEFAULT_MIN_ROLE,
    AliasPolicy,
    Check,
    Condition,
    Gate,
    PromotionRequest,
    PromotionStatus,
    check_to_json,
    policy_to_json,
    validate_policy_fields,
)
from cairn.domain.uris import parse_version_number
from cairn.domain.validation import clean_page_size
from cairn.errors import Conflict, InvalidParameter, NotFound, PermissionDenied
from cairn.service.gates import AliasGuard, approvals_check, role_check
from cairn.store.metadata.database import Tx
from cairn.store.metadata.identity_store import IdentityStore
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.promotion_store import PromotionStore
from cairn.store.metadata.versions_store import VersionStore

MAX_COMMENT = 4096


def _clean_comment(comment: object) -> str:
    if comment is None:
        return ""
    return names.validate_text("comment", comment, MAX_COMMENT)


class PromotionService(AliasGuard):
    # -- policies ----------------------------------------------------------------------

    def set_policy(
        self,
        actor: Actor,
        model_pattern: str,
        alias_pattern: str,
        *,
        min_role: Role | str = DEFAULT_MIN_ROLE,
        approvals: int = 0,
        conditions: Iterable[Condition | Mapping[str, Any] | str] = (),
        require_clean_scan: bool = False,
        require_signature: bool = False,
        require_compatible: bool = False,
    ) -> AliasPolicy:
        """Create or replace the policy of (model_pattern, alias_pattern); instance ADMIN."""
        model_key, alias_key, role, count, clean = validate_policy_fields(
            model_pattern, alias_pattern, min_role, approvals, conditions
        )
        for flag, value in (
            ("require_clean_scan", require_clean_scan),
            ("require_signature", require_signature),
            ("require_compatible", require_compatible),
        ):
            if not isinstance(value, bool):
                raise InvalidParameter(f"{flag} must be true or false; got {value!r}")
        self._require_admin(actor, "policy.set")

        def run(s: Tx) -> AliasPolicy:
            store = PromotionStore(s)
            before = store.find_policy(model_key, alias_key)
            policy_id = store.put_policy(
                model_key,
                alias_key,
                min_role=role,
                approvals=count,
                conditions=clean,
                require_clean_scan=require_clean_scan,
                require_signature=require_signature,
                require_compatible=require_compatible,
                actor=actor.name,
                now=self.clock(),
            )
            after = store.get_policy(policy_id)
            self._audit(
                s,
                actor,
                "policy.set",
                target=f"{model_key} @{alias_key}",
                before=None if before is None else _policy_rules(before),
                after=_policy_rules(after),
            )
            return after

        return self.db.write(run)

    def list_policies(self, actor: Actor, *, model: str | None = None) -> list[AliasPolicy]:
        """Every policy (instance ADMIN), or those that apply to ``model`` (READ on it)."""
        if model is None:
            self._require_admin(actor, "policy.list")
            return self.db.read(lambda s: PromotionStore(s).policies())
        names.validate_model_name(model)

        def run(s: Tx) -> list[AliasPolicy]:
            row = self._model(s, actor, model, Role.READ, "policy.list")
            return [p for p in PromotionStore(s).policies() if _model_matches(p, row.name_key)]

        return self.db.read(run)

    def delete_policy(self, actor: Actor, policy_id: int) -> None:
        _check_id("policy id", policy_id)
        self._require_admin(actor, "policy.delete")

        def run(s: Tx) -> None:
            store = PromotionStore(s)
            policy = store.get_policy(policy_id)
            store.delete_policy(policy_id)
            self._audit(
                s,
                actor,
                "policy.delete",
                target=f"{policy.model_pattern} @{policy.alias_pattern}",
                before=_policy_rules(policy),
            )

        self.db.write(run)

    # -- promotions --------------------------------------------------------------------

    def promote(
        self, actor: Actor, name: str, version: int | str, alias: str, *, comment: str = ""
    ) -> PromotionRequest:
        """Ask to point ``alias`` at ``version``; moves it now when the gate allows.

        Returns the request: ``applied`` (moved), or ``pending`` (waiting for approvals).
        A gate check that fails for any other reason than approvals refuses the call.
        """
        names.validate_model_name(name)
        names.validate_alias(alias)
        number = parse_version_number(version)
        note = _clean_comment(comment)

        def run(s: Tx) -> PromotionRequest:
            model = self._model(s, actor, name, Role.READ, "promotion.request", lock=True)
            gate = self._gate(s, model, alias)
            need = gate.min_role if gate is not None else Role.WRITE
            self._require_role(
                actor, need, model, "promotion.request", f"move @{alias} of {model.name!r}"
            )
            row = VersionStore(s).get(model.id, model.name, number)
            if row.status != VersionStatus.READY.value:
                raise InvalidParameter(
                    f"version {number} of {model.name!r} is {row.status}; only READY "
                    "versions can carry an alias"
                )
            store = PromotionStore(s)
            role = role_check(actor, model, need, gate)
            existing = store.find_pending(model.id, number, names.alias_key(alias))
            if existing is not None:  # the same promotion asked again: evaluate it again
                return self._reevaluate(s, actor, model, existing, gate)
            checks = [role]
            if gate is not None:
                checks += self._evaluate(s, gate, model, number, alias)
                if gate.approvals:
                    checks.append(approvals_check([], gate.approvals))
            self._refuse_failing(checks, model, number, alias, "promotion.request")
            pending = gate is not None and gate.approvals > 0
            request_id = store.insert_request(
                model.id,
                number,
                alias,
                actor.name,
                status=PromotionStatus.PENDING if pending else PromotionStatus.APPLIED,
                comment=note,
                checks=checks,
                now=self.clock(),
            )
            self._audit(
                s,
                actor,
                "promotion.request",
                model=model,
                version=number,
                target=alias,
                after={
                    "promotion": request_id,
                    "comment": note,
                    "checks": [check_to_json(c) for c in checks],
                },
            )
            if not pending:
                self._move_alias(s, actor, model, alias, number, actor.name)
                self._audit_apply(s, actor, model, request_id, number, alias, checks)
            return store.load_requests([request_id])[0]

        return self.db.write(run)

    def approve(self, actor: Actor, request_id: int, *, comment: str = "") -> PromotionRequest:
        """Approve a pending request; the alias moves once the approvals are in and every
        check passes when evaluated now."""
        return self._decide(actor, request_id, "approve", comment)

    def reject(self, actor: Actor, request_id: int, *, comment: str = "") -> PromotionRequest:
        """Reject a pending request: it is closed and the alias does not move."""
        return self._decide(actor, request_id, "reject", comment)

    def cancel(self, actor: Actor, request_id: int, *, comment: str = "") -> PromotionRequest:
        """Withdraw a pending request (its requester, or the instance ADMIN)."""
        _check_id("promotion request id", request_id)
        note = _clean_comment(comment)

        def run(s: Tx) -> PromotionRequest:
            store = PromotionStore(s)
            row, model = self._request(s, actor, request_id, lock=True)
            if not (actor.admin or names.same_identity(actor.name, row.requester)):
                raise PermissionDenied(
                    f"only the requester ({row.requester}) or an instance ADMIN can cancel "
                    f"promotion request {request_id}",
                    denial={
                        "action": "promotion.cancel",
                        "model": model.name,
                        "model_id": model.id,
                        "target": str(request_id),
                    },
                )
            _require_pending(row, "cancelled")
            checks = store.load_requests([request_id])[0].checks
            store.update_request(
                request_id, checks=checks, status=PromotionStatus.CANCELLED, now=self.clock()
            )
            self._audit(
                s,
                actor,
                "promotion.cancel",
                model=model,
                version=int(row.version),
                target=row.alias,
                after={"promotion": request_id, "comment": note},
            )
            return store.load_requests([request_id])[0]

        return self.db.write(run)

    def get_request(self, actor: Actor, request_id: int) -> PromotionRequest:
        _check_id("promotion request id", request_id)

        def run(s: Tx) -> PromotionRequest:
            self._request(s, actor, request_id)
            return PromotionStore(s).load_requests([request_id])[0]

        return self.db.read(run)

    def list_requests(
        self,
        actor: Actor,
        *,
        status: str | None = None,
        model: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[PromotionRequest]:
        """Requests on the models the caller may read, newest first."""
        wanted = None if status is None else PromotionStatus.parse(status)
        if model is not None:
            names.validate_model_name(model)
        size = clean_page_size(max_results, self.limits.default_page)

        def run(s: Tx) -> Page[PromotionRequest]:
            model_id = None
            if model is not None:
                model_id = int(self._model(s, actor, model, Role.READ, "promotion.list").id)
            store = PromotionStore(s)
            ids, token = store.list_request_ids(
                readable=actor.readable(),
                status=wanted,
                model_id=model_id,
                limit=size,
                page_token=page_token,
            )
            return Page(store.load_requests(ids), token)

        return self.db.read(run)

    # -- the steps ---------------------------------------------------------------------

    def _request(
        self, s: Tx, actor: Actor, request_id: int, *, lock: bool = False
    ) -> tuple[Any, Any]:
        """The request row and its live model, if the caller may read that model.

        With ``lock``, the model row is locked before the request row: the order every
        alias move takes (model, then request, then alias), so two moves cannot deadlock.
        """
        store = PromotionStore(s)
        row = store.get_request_row(request_id)
        missing = NotFound(f"promotion request {request_id} does not exist")
        if row.deleted_at is not None or not actor.allows(Role.READ, row.model_id, row.name_key):
            raise missing
        model = ModelStore(s).find_live(row.model_name, lock=lock)
        if model is None or int(model.id) != int(row.model_id):
            raise missing
        if lock:
            row = store.get_request_row(request_id, lock=True)
        return row, model

    def _decide(
        self, actor: Actor, request_id: int, decision: str, comment: str
    ) -> PromotionRequest:
        _check_id("promotion request id", request_id)
        note = _clean_comment(comment)
        action = f"promotion.{decision}"

        def run(s: Tx) -> PromotionRequest:
            store = PromotionStore(s)
            row, model = self._request(s, actor, request_id, lock=True)
            denial = {
                "action": action,
                "model": model.name,
                "model_id": model.id,
                "version": int(row.version),
                "target": str(request_id),
            }
            gate = self._gate(s, model, row.alias)
            need = gate.min_role if gate is not None else DEFAULT_MIN_ROLE
            self._require_role(actor, need, model, action, f"{decision} promotions of @{row.alias}")
            if names.same_identity(actor.name, row.requester):
                hint = "" if decision == "approve" else "; withdraw it with cancel"
                raise PermissionDenied(
                    f"{actor.name} requested promotion {request_id} and cannot {decision} it: "
                    f"the decision must come from someone else{hint}",
                    denial=denial,
                )
            _require_pending(row, f"{decision}d")
            if any(
                names.same_identity(d.approver, actor.name) for d in store.decisions(request_id)
            ):
                raise Conflict(
                    f"{actor.name} has already decided on promotion request {request_id}"
                )
            store.add_decision(request_id, actor.name, decision, note, self.clock())
            self._audit(
                s,
                actor,
                action,
                model=model,
                version=int(row.version),
                target=row.alias,
                after={"promotion": request_id, "comment": note},
            )
            if decision == "reject":
                checks = store.load_requests([request_id])[0].checks
                store.update_request(
                    request_id, checks=checks, status=PromotionStatus.REJECTED, now=self.clock()
                )
                return store.load_requests([request_id])[0]
            return self._reevaluate(s, actor, model, request_id, gate)

        return self.db.write(run)

    def _reevaluate(
        self, s: Tx, actor: Actor, model: Any, request_id: int, gate: Gate | None
    ) -> PromotionRequest:
        """Evaluate every check of a pending request now; apply it if all pass."""
        store = PromotionStore(s)
        request = store.load_requests([request_id])[0]
        number = request.version
        need = gate.min_role if gate is not None else Role.WRITE
        held = self._role_now(s, actor, request.requester, model)
        source = "the alias's policy" if gate is not None else "an unprotected alias"
        checks = [
            Check(
                "role",
                held is not None and held >= need,
                f"{request.requester} holds {held.name if held else 'no role'} on "
                f"{model.name!r}; {source} needs {need.name}",
            )
        ]
        if gate is not None:
            checks += self._evaluate(s, gate, model, number, request.alias)
            if gate.approvals:
                approvers: list[str] = []
                dropped: list[str] = []
                for d in store.decisions(request_id):
                    if d.decision != "approve" or names.same_identity(
                        d.approver, request.requester
                    ):
                        continue
                    role = self._role_now(s, actor, d.approver, model)
                    holds = role is not None and role >= gate.min_role
                    (approvers if holds else dropped).append(d.approver)
                checks.append(approvals_check(approvers, gate.approvals, dropped, gate.min_role))
        else:  # the policy was removed meanwhile: the version must still be there
            version = store.version_row(model.id, number)
            ok = version is not None and version.deleted_at is None
            ok = ok and version is not None and version.status == VersionStatus.READY.value
            checks.append(
                Check("version", ok, f"version {number} is {'READY' if ok else 'not available'}")
            )
        if all(c.passed for c in checks):
            store.update_request(
                request_id, checks=checks, status=PromotionStatus.APPLIED, now=self.clock()
            )
            self._move_alias(s, actor, model, request.alias, number, request.requester)
            self._audit_apply(s, actor, model, request_id, number, request.alias, checks)
        else:
            store.update_request(request_id, checks=checks)
        return store.load_requests([request_id])[0]

    @staticmethod
    def _role_now(s: Tx, actor: Actor, name: str, model: Any) -> Role | None:
        """The role the person ``name`` holds on ``model`` now: the caller's as
        authenticated, anyone else's as the identity tables say at this moment (None for
        a disabled or unknown account; MANAGE for an instance administrator). A request
        and its approvals count only while their authors still hold the gate's role."""
        if names.same_identity(name, actor.name):
            return actor.role_on(model.id, model.name_key)
        if name.startswith(LOCAL_ACTOR_PREFIX):  # holds the data directory: its owner
            return Role.MANAGE
        store = IdentityStore(s)
        user = store.find_user(name)
        if user is None or user.disabled_at is not None:
            return None
        if user.is_admin:
            return Role.MANAGE
        return Grants(store.grants_of(int(user.id))).role_on(model.id, model.name_key)

    def _audit_apply(
        self,
        s: Tx,
        actor: Actor,
        model: Any,
        request_id: int,
        number: int,
        alias: str,
        checks: Sequence[Check],
    ) -> None:
        self._audit(
            s,
            actor,
            "promotion.apply",
            model=model,
            version=number,
            target=alias,
            after={"promotion": request_id, "checks": [check_to_json(c) for c in checks]},
        )


# -- small rules ---------------------------------------------------------------------------


def _model_matches(policy: AliasPolicy, name_key: str) -> bool:
    return pattern_matches(policy.model_pattern, name_key)


def _policy_rules(policy: AliasPolicy) -> dict[str, Any]:
    rules = policy_to_json(policy)
    return {k: v for k, v in rules.items() if k not in ("created_at", "created_by")}


def _require_pending(row: Any, done: str) -> None:
    if row.status != PromotionStatus.PENDING.value:
        raise Conflict(
            f"promotion request {row.id} is {row.status}; only a pending request can be {done}"
        )


def _check_id(kind: str, value: object) -> None:
    # ids are 64-bit in the database: a larger number would fail there (500), not here
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 1 << 63:
        raise InvalidParameter(f"{kind} must be a positive 64-bit integer; got {value!r}")
