"""The gate on every move of a protected alias: what a policy asks, checked now.

``AliasGuard`` is shared by the promotion use cases (``promotion.py``) and the direct alias
moves (``aliases.py``). Every policy matching a model and an alias applies
(``domain.promotion.gate_for``); its checks are evaluated against the version as it is at
that moment: the version is live and READY, each metric condition holds, the scan verdict is
clean and not quarantined, a verified signature covers the version's files.

A direct move (``set_alias``: the native route, the MLflow route, ``cairn alias set``) of a
protected alias is allowed only when the gate needs no approval and every check passes; it
is then recorded as an applied promotion with its checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cairn.domain.access import Actor, Role
from cairn.domain.models import FileEntry, VersionStatus
from cairn.domain.promotion import (
    Check,
    Condition,
    Gate,
    PromotionStatus,
    check_to_json,
    describe_failures,
    gate_for,
)
from cairn.errors import Conflict, PermissionDenied
from cairn.service.base import ServiceBase
from cairn.service.signature_diff import signature_diff
from cairn.store.metadata.aliases_store import AliasStore
from cairn.store.metadata.database import Tx
from cairn.store.metadata.loaders import load_versions
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.promotion_store import PromotionStore
from cairn.store.metadata.signatures_store import SignatureStore
from cairn.store.metadata.versions_store import VersionStore

APPROVALS = "approvals"
COMPATIBLE = "compatible"


def role_check(actor: Actor, model: Any, need: Role, gate: Gate | None) -> Check:
    held = actor.role_on(model.id, model.name_key)
    source = "the alias's policy" if gate is not None else "an unprotected alias"
    return Check(
        "role",
        held is not None and held >= need,
        f"{actor.name} holds {held.name if held else 'no role'} on {model.name!r}; "
        f"{source} needs {need.name}",
    )


class AliasGuard(ServiceBase):
    """The gate itself: shared by the promotion use cases and the direct alias moves."""

    @staticmethod
    def _gate(s: Tx, model: Any, alias: str) -> Gate | None:
        return gate_for(PromotionStore(s).policies(), model.name_key, alias)

    @staticmethod
    def _require_role(actor: Actor, role: Role, model: Any, action: str, doing: str) -> None:
        if not actor.allows(role, model.id, model.name_key):
            raise PermissionDenied(
                f"{role.name} on model {model.name!r} is required to {doing}",
                denial={"action": action, "model": model.name, "model_id": model.id},
            )

    def _evaluate(self, s: Tx, gate: Gate, model: Any, number: int, alias: str) -> list[Check]:
        """The gate's checks on moving ``alias`` to version ``number`` as things are now
        (approvals aside)."""
        store = PromotionStore(s)
        row = store.version_row(model.id, number)
        if row is None or row.deleted_at is not None:
            state = "was deleted" if row is not None else "does not exist"
            checks = [Check("version", False, f"version {number} of {model.name!r} {state}")]
            checks += [
                Check(name, False, f"version {number} is not available")
                for name in gate_check_names(gate)
            ]
            return checks
        ready = row.status == VersionStatus.READY.value
        checks = [Check("version", ready, f"version {number} is {row.status}")]
        if gate.conditions:
            metrics = store.metrics(int(row.id))
            checks += [metric_check(c, metrics, number) for c in gate.conditions]
        if gate.require_clean_scan:
            checks.append(scan_check(store.scan(int(row.id)), number))
        if gate.require_signature:
            signed = SignatureStore(s).has_verified(int(row.id))
            detail = (
                "a verified signature covers the version's files"
                if signed
                else f"version {number} has no verified signature covering its files"
            )
            checks.append(Check("signature", signed, detail))
        if gate.require_compatible:
            checks.append(self._compatible_check(s, model, number, alias))
        return checks

    def _compatible_check(self, s: Tx, model: Any, number: int, alias: str) -> Check:
        """Whether version ``number``'s MLmodel signature breaks callers of the version
        ``alias`` points at now (``domain/mlmodel.py``); a version that cannot show its
        signature fails, where the current one has a signature to keep."""
        row = AliasStore(s).find(model.id, alias)
        current = None if row is None else int(row.version)
        if current is None or current == number:
            return Check(COMPATIBLE, True, f"@{alias} points at no other version")
        old, new = _manifests(s, model.id, current, number)
        d = signature_diff(self.blobs, old, new)
        if d.old_path is None:
            return Check(COMPATIBLE, True, f"version {current} (@{alias}) has no signature")
        if d.new_path is None:  # old's was read, so what could not be is new's
            why = "it has no signature"
            if d.unreadable:
                path, reason = d.unreadable[0]
                why = f"its MLmodel ({path}) is unreadable: {reason}"
            return Check(
                COMPATIBLE, False, f"version {number} cannot be checked against {current}: {why}"
            )
        breaking = [c for c in d.changes if c.breaking]
        if not breaking:
            return Check(
                COMPATIBLE, True, f"version {number}'s signature keeps callers of {current} working"
            )
        said = "; ".join(f"{c.section} {c.name} {c.kind}" for c in breaking)
        return Check(
            COMPATIBLE, False, f"version {number}'s signature breaks callers of {current}: {said}"
        )

    def _refuse_failing(
        self, checks: Sequence[Check], model: Any, number: int, alias: str, action: str
    ) -> None:
        failing = [c for c in checks if not c.passed and c.check != APPROVALS]
        if failing:
            raise Conflict(
                f"moving @{alias} of {model.name!r} to version {number} is refused by its "
                f"promotion gate: {describe_failures(failing)}; nothing was changed",
                denial={
                    "action": action,
                    "model": model.name,
                    "model_id": model.id,
                    "version": number,
                    "target": alias,
                    "checks": [check_to_json(c) for c in checks],
                },
            )

    def _move_alias(
        self, s: Tx, actor: Actor, model: Any, alias: str, number: int, by: str
    ) -> None:
        """Point the alias, keep its history (moved ``by``), audit it as ``set_alias`` does."""
        now = self.clock()
        previous = AliasStore(s).set(model.id, alias, number, by, now)
        ModelStore(s).update(model.id, now)
        if previous == number:
            return
        self._audit(
            s,
            actor,
            "alias.set",
            model=model,
            version=number,
            target=alias,
            before=previous,
            after=number,
        )

    def _check_alias_policy(self, s: Tx, actor: Actor, model: Any, alias: str, number: int) -> None:
        """Called by ``set_alias`` before it moves ``alias``: refuse what a policy forbids.

        Unprotected aliases pass untouched. On a protected alias the caller needs the
        gate's role; a gate that needs approvals refuses (use ``promote``); failing checks
        refuse; otherwise the move is recorded as an applied promotion with its checks.
        """
        gate = self._gate(s, model, alias)
        if gate is None:
            return
        self._require_role(
            actor, gate.min_role, model, "alias.set", f"move the protected alias @{alias}"
        )
        if gate.approvals:
            raise PermissionDenied(
                f"alias @{alias} of {model.name!r} is protected: moving it needs "
                f"{gate.approvals} approval(s); request it with "
                f"`cairn promote models:/{model.name}/{number} --to {alias}`",
                denial={
                    "action": "alias.set",
                    "model": model.name,
                    "model_id": model.id,
                    "version": number,
                    "target": alias,
                },
            )
        checks = [role_check(actor, model, gate.min_role, gate)]
        checks += self._evaluate(s, gate, model, number, alias)
        self._refuse_failing(checks, model, number, alias, "alias.set")
        request_id = PromotionStore(s).insert_request(
            model.id,
            number,
            alias,
            actor.name,
            status=PromotionStatus.APPLIED,
            comment="set directly (alias set)",
            checks=checks,
            now=self.clock(),
        )
        self._audit(
            s,
            actor,
            "promotion.apply",
            model=model,
            version=number,
            target=alias,
            after={"promotion": request_id, "checks": [check_to_json(c) for c in checks]},
        )

    def _check_alias_delete_policy(self, s: Tx, actor: Actor, model: Any, alias: str) -> None:
        """Called by ``delete_alias``: removing a protected alias needs the gate's role."""
        gate = self._gate(s, model, alias)
        if gate is not None:
            self._require_role(
                actor,
                gate.min_role,
                model,
                "alias.delete",
                f"delete the protected alias @{alias}",
            )


# -- checks ------------------------------------------------------------------------------


def _manifests(s: Tx, model_id: int, *numbers: int) -> tuple[tuple[FileEntry, ...], ...]:
    """The files of the model's versions ``numbers`` (live ones: an alias's target and a
    version the gate has found), read together."""
    store = VersionStore(s)
    ids = [store.find(model_id, n).id for n in numbers]
    return tuple(v.files for v in load_versions(s, ids))


def gate_check_names(gate: Gate) -> list[str]:
    found = [f"metric {c.text}" for c in gate.conditions]
    if gate.require_clean_scan:
        found.append("scan")
    if gate.require_signature:
        found.append("signature")
    if gate.require_compatible:
        found.append(COMPATIBLE)
    return found


def metric_check(condition: Condition, metrics: Mapping[str, float], number: int) -> Check:
    name = f"metric {condition.text}"
    if condition.metric not in metrics:
        return Check(name, False, f"version {number} has no metric {condition.metric!r}")
    actual = metrics[condition.metric]
    return Check(name, condition.holds(actual), f"{condition.metric} = {actual:g}")


def scan_check(scan: Any, number: int) -> Check:
    if scan is None:
        return Check("scan", False, f"version {number} has not been scanned")
    if scan.quarantined:
        return Check("scan", False, f"version {number} is quarantined (verdict: {scan.status})")
    clean = scan.status == "clean"
    return Check("scan", clean, f"scan verdict: {scan.status}")


def approvals_check(
    approvers: Sequence[str], need: int, dropped: Sequence[str] = (), role: Role = Role.MANAGE
) -> Check:
    """``approvers`` count; ``dropped`` approved, but no longer hold ``role`` on the model
    (a grant revoked or lowered, a group left, the account disabled)."""
    who = f" ({', '.join(approvers)})" if approvers else ""
    detail = f"{len(approvers)} of {need} approval(s){who}"
    if dropped:
        detail += f"; not counted, no longer holding {role.name}: {', '.join(dropped)}"
    return Check(APPROVALS, len(approvers) >= need, detail)
