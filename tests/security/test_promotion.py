"""Protected aliases: policies, promotion requests, approvals and gate checks.

Runs on SQLite and PostgreSQL. Actors are built directly: a requester and a second person
who both MANAGE, a writer, a reader, and an outsider who sees none of these models.
Scan verdicts and signatures are written as rows (what the scanning and signing parts of
the service record), so each gate can be put in every state.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, insert, select, update

from cairn.domain.access import SYSTEM, Actor, Grant, Role
from cairn.domain.models import FileEntry, VersionSpec
from cairn.domain.promotion import PromotionStatus, parse_condition
from cairn.domain.signatures import material_digest
from cairn.errors import Conflict, InvalidParameter, NotFound, PermissionDenied
from cairn.service.registry import RegistryService
from cairn.store.metadata.schema import (
    aliases,
    audit_events,
    model_versions,
    registered_models,
    trusted_signers,
    version_scans,
    version_signatures,
)

ALICE = Actor("alice", user_id=1, grants=(Grant(Role.MANAGE, pattern="*"),))
BOB = Actor("bob", user_id=2, grants=(Grant(Role.MANAGE, pattern="*"),))
DAVE = Actor("dave", user_id=4, grants=(Grant(Role.WRITE, pattern="*"),))
READER = Actor("carol", user_id=3, grants=(Grant(Role.READ, pattern="*"),))
OUTSIDER = Actor("eve", user_id=5, grants=(Grant(Role.MANAGE, pattern="other"),))
CARL = Actor("carl", user_id=6, grants=(Grant(Role.MANAGE, pattern="risk.*"),))


class Clock:
    def __init__(self) -> None:
        self._ticks = itertools.count(1_800_000_000_000_000, 1_000_000)

    def __call__(self) -> int:
        return next(self._ticks)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def svc(service: RegistryService) -> RegistryService:
    """Model 'risk.fraud' with v1 (auc 0.95), v2 (auc 0.85), v3 (a file, auc 0.97)."""
    service.clock = Clock()
    service.create_model(SYSTEM, "risk.fraud")
    service.create_model(SYSTEM, "churn")
    service.create_version(SYSTEM, "risk.fraud", VersionSpec(metrics={"auc": 0.95}))
    service.create_version(SYSTEM, "risk.fraud", VersionSpec(metrics={"auc": 0.85}))
    data = b"weights"
    spec = VersionSpec(metrics={"auc": 0.97}, files=(FileEntry("w.bin", len(data), digest(data)),))
    service.create_version(SYSTEM, "risk.fraud", spec)
    service.put_blob(SYSTEM, "risk.fraud", 3, digest(data), [data])
    service.create_version(SYSTEM, "churn", VersionSpec(metrics={"auc": 0.5}))
    # the people as the identity tables hold them: an approval counts only while its
    # author still holds the gate's role there
    for actor in (ALICE, BOB, DAVE, READER, OUTSIDER, CARL):
        service.create_user(SYSTEM, actor.name)
        for g in actor.grants:
            assert g.pattern is not None
            service.grant(SYSTEM, f"user:{actor.name}", g.role, pattern=g.pattern)
    return service


def alias_of(svc: RegistryService, name: str, alias: str) -> int | None:
    return svc.get_model(SYSTEM, name).aliases.get(alias)


def version_id(svc: RegistryService, name: str, version: int) -> int:
    def run(s: Any) -> int:
        return int(
            s.execute(
                select(model_versions.c.id)
                .join(registered_models, registered_models.c.id == model_versions.c.model_id)
                .where(registered_models.c.name == name, model_versions.c.version == version)
            ).scalar_one()
        )

    return svc.db.read(run)


def set_scan(svc: RegistryService, version: int, status: str, quarantined: bool = False) -> None:
    vid = version_id(svc, "risk.fraud", version)

    def run(s: Any) -> None:
        found = s.execute(select(version_scans).where(version_scans.c.version_id == vid)).first()
        values = {"status": status, "quarantined": quarantined, "action": "label"}
        if found is None:
            s.execute(insert(version_scans).values(version_id=vid, scanned_at=1, **values))
        else:
            s.execute(update(version_scans).where(version_scans.c.version_id == vid).values(values))

    svc.db.write(run)


def add_signature(
    svc: RegistryService, version: int, files: dict[str, str], verified: bool
) -> None:
    """A signature row as the signing service records it, by a trusted signer."""
    vid = version_id(svc, "risk.fraud", version)

    def trust(s: Any) -> None:
        if s.execute(
            select(trusted_signers).where(trusted_signers.c.name == "release-key")
        ).first():
            return
        s.execute(
            insert(trusted_signers).values(
                name="release-key", kind="key", material="(test)", created_at=0
            )
        )

    svc.db.write(trust)
    svc.db.write(
        lambda s: s.execute(
            insert(version_signatures).values(
                version_id=vid,
                verified=verified,
                signer="release-key",
                signer_digest=material_digest("(test)"),
                identity="SHA256:test",
                digests=json.dumps(files),
                bundle="{}",
                created_at=1,
            )
        )
    )


def audit_actions(svc: RegistryService) -> list[tuple[str, str, str | None]]:
    rows = svc.db.read(
        lambda s: s.execute(
            select(audit_events.c.actor, audit_events.c.action, audit_events.c.target).order_by(
                audit_events.c.seq
            )
        ).all()
    )
    return [(r.actor, r.action, r.target) for r in rows]


def checks_of(request: Any) -> dict[str, bool]:
    return {c.check: c.passed for c in request.checks}


# -- no policy ---------------------------------------------------------------------------


def test_without_a_policy_promote_is_an_alias_set_needing_write(svc: RegistryService) -> None:
    with pytest.raises(PermissionDenied, match="WRITE"):
        svc.promote(READER, "risk.fraud", 1, "production")
    request = svc.promote(DAVE, "risk.fraud", 1, "production", comment="first release")
    assert request.status is PromotionStatus.APPLIED
    assert request.requester == "dave" and request.comment == "first release"
    assert checks_of(request) == {"role": True}
    assert alias_of(svc, "risk.fraud", "production") == 1
    history = svc.alias_history(SYSTEM, "risk.fraud", "production")
    assert [(e.from_version, e.to_version, e.actor) for e in history] == [(None, 1, "dave")]
    assert ("dave", "alias.set", "production") in audit_actions(svc)


def test_promote_refuses_missing_and_unready_versions(svc: RegistryService) -> None:
    with pytest.raises(NotFound):
        svc.promote(ALICE, "risk.fraud", 9, "production")
    with pytest.raises(NotFound):
        svc.promote(OUTSIDER, "risk.fraud", 1, "production")  # cannot read: no leak
    svc.create_version(SYSTEM, "risk.fraud", VersionSpec(files=(FileEntry("x", 1, digest(b"x")),)))
    with pytest.raises(InvalidParameter, match="PENDING"):
        svc.promote(ALICE, "risk.fraud", 4, "production")


# -- approvals ---------------------------------------------------------------------------


def test_approval_by_a_second_person_moves_the_alias(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "risk.*", "production", approvals=1, conditions=["auc>=0.9"])
    with pytest.raises(PermissionDenied, match="MANAGE"):
        svc.promote(DAVE, "risk.fraud", 1, "production")  # WRITE is not enough here
    request = svc.promote(ALICE, "risk.fraud", 1, "production", comment="v1 is better")
    assert request.status is PromotionStatus.PENDING
    assert checks_of(request) == {
        "role": True,
        "version": True,
        "metric auc >= 0.9": True,
        "approvals": False,
    }
    assert alias_of(svc, "risk.fraud", "production") is None

    with pytest.raises(PermissionDenied, match="someone else"):
        svc.approve(ALICE, request.id)
    with pytest.raises(PermissionDenied, match="MANAGE"):
        svc.approve(READER, request.id)
    with pytest.raises(PermissionDenied):
        svc.approve(DAVE, request.id)
    with pytest.raises(NotFound):
        svc.approve(OUTSIDER, request.id)
    assert alias_of(svc, "risk.fraud", "production") is None

    done = svc.approve(BOB, request.id, comment="looks good")
    assert done.status is PromotionStatus.APPLIED
    assert done.decided_at is not None
    assert all(c.passed for c in done.checks)
    assert [(a.approver, a.decision, a.comment) for a in done.approvals] == [
        ("bob", "approve", "looks good")
    ]
    assert alias_of(svc, "risk.fraud", "production") == 1
    history = svc.alias_history(SYSTEM, "risk.fraud", "production")
    assert [(e.from_version, e.to_version, e.actor) for e in history] == [(None, 1, "alice")]
    actions = audit_actions(svc)
    for event in [
        ("alice", "promotion.request", "production"),
        ("bob", "promotion.approve", "production"),
        ("bob", "alias.set", "production"),
        ("bob", "promotion.apply", "production"),
    ]:
        assert event in actions
    assert svc.get_request(READER, request.id) == done
    with pytest.raises(Conflict, match="applied"):
        svc.approve(BOB, request.id)


def test_two_approvals_need_two_other_people(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "*", "prod*", approvals=2)
    request = svc.promote(ALICE, "risk.fraud", 2, "Production-EU")
    assert svc.approve(BOB, request.id).status is PromotionStatus.PENDING
    with pytest.raises(Conflict, match="already decided"):
        svc.approve(BOB, request.id)
    assert alias_of(svc, "risk.fraud", "Production-EU") is None
    done = svc.approve(CARL, request.id)
    assert done.status is PromotionStatus.APPLIED
    assert "2 of 2" in next(c.detail for c in done.checks if c.check == "approvals")
    assert alias_of(svc, "risk.fraud", "Production-EU") == 2


def lose_role(svc: RegistryService, name: str, how: str) -> None:
    if how == "revoked":
        svc.revoke(SYSTEM, f"user:{name}", pattern="*")
    elif how == "lowered":
        svc.grant(SYSTEM, f"user:{name}", Role.WRITE, pattern="*")
    else:
        svc.update_user(SYSTEM, name, disabled=True)


@pytest.mark.parametrize("how", ["revoked", "lowered", "disabled"])
def test_an_approval_counts_only_while_its_author_holds_the_role(
    svc: RegistryService, how: str
) -> None:
    svc.set_policy(SYSTEM, "risk.*", "production", approvals=2)
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    assert svc.approve(BOB, request.id).status is PromotionStatus.PENDING
    lose_role(svc, "bob", how)
    after = svc.approve(CARL, request.id)
    assert after.status is PromotionStatus.PENDING
    assert checks_of(after)["approvals"] is False
    detail = next(c.detail for c in after.checks if c.check == "approvals")
    assert "1 of 2" in detail and "(carl)" in detail
    assert "bob" in detail and "no longer" in detail
    assert alias_of(svc, "risk.fraud", "production") is None
    # asking again evaluates again: still short of an approval
    assert svc.promote(ALICE, "risk.fraud", 1, "production").status is PromotionStatus.PENDING
    # a third person who holds the role makes up the count
    svc.create_user(SYSTEM, "frank")
    svc.grant(SYSTEM, "user:frank", Role.MANAGE, model="risk.fraud")
    frank = Actor("frank", grants=(Grant(Role.MANAGE, pattern="risk.fraud"),))
    assert svc.approve(frank, request.id).status is PromotionStatus.APPLIED
    assert alias_of(svc, "risk.fraud", "production") == 1


@pytest.mark.parametrize("how", ["revoked", "lowered", "disabled"])
def test_a_request_applies_only_while_its_requester_holds_the_role(
    svc: RegistryService, how: str
) -> None:
    svc.set_policy(SYSTEM, "risk.*", "production", approvals=1)
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    lose_role(svc, "alice", how)
    after = svc.approve(BOB, request.id)
    assert after.status is PromotionStatus.PENDING
    assert checks_of(after) == {"role": False, "version": True, "approvals": True}
    detail = next(c.detail for c in after.checks if c.check == "role")
    assert "alice" in detail and "MANAGE" in detail
    assert alias_of(svc, "risk.fraud", "production") is None
    # given back what the policy needs, asking again (by the requester) applies it
    if how == "disabled":
        svc.update_user(SYSTEM, "alice", disabled=False)
    else:
        svc.grant(SYSTEM, "user:alice", Role.MANAGE, pattern="*")
    assert svc.promote(ALICE, "risk.fraud", 1, "production").status is PromotionStatus.APPLIED
    assert alias_of(svc, "risk.fraud", "production") == 1


def test_an_approval_through_a_group_counts_while_the_group_holds_the_role(
    svc: RegistryService,
) -> None:
    svc.create_user(SYSTEM, "gina")
    svc.create_group(SYSTEM, "release")
    svc.set_membership(SYSTEM, "release", "gina", member=True)
    svc.grant(SYSTEM, "group:release", Role.MANAGE, pattern="risk.*")
    gina = Actor("gina", grants=(Grant(Role.MANAGE, pattern="risk.*"),))
    svc.set_policy(SYSTEM, "risk.*", "production", approvals=2)
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    svc.approve(gina, request.id)
    svc.set_membership(SYSTEM, "release", "gina", member=False)
    assert svc.approve(BOB, request.id).status is PromotionStatus.PENDING
    svc.set_membership(SYSTEM, "release", "gina", member=True)
    assert svc.promote(ALICE, "risk.fraud", 1, "production").status is PromotionStatus.APPLIED


def test_metric_gate_failing_at_request_is_refused_and_recorded_nowhere(
    svc: RegistryService,
) -> None:
    svc.set_policy(SYSTEM, "risk.fraud", "production", approvals=1, conditions=["auc >= 0.9"])
    with pytest.raises(Conflict, match=r"metric auc >= 0.9: auc = 0.85"):
        svc.promote(ALICE, "risk.fraud", 2, "production")
    assert svc.list_requests(SYSTEM).items == []
    assert alias_of(svc, "risk.fraud", "production") is None


def test_alias_never_moves_while_a_check_fails_even_after_approval(
    svc: RegistryService,
) -> None:
    svc.set_policy(SYSTEM, "risk.*", "production", approvals=1, conditions=["auc>=0.9"])
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    # the policy is tightened while the request waits: v1's auc 0.95 no longer passes
    svc.set_policy(SYSTEM, "risk.*", "production", approvals=1, conditions=["auc>=0.96"])
    after = svc.approve(BOB, request.id)
    assert after.status is PromotionStatus.PENDING
    assert checks_of(after)["metric auc >= 0.96"] is False
    assert checks_of(after)["approvals"] is True
    assert alias_of(svc, "risk.fraud", "production") is None
    assert "promotion.apply" not in [a for _, a, _ in audit_actions(svc)]
    # asking again evaluates again: still failing, still pending, still not moved
    again = svc.promote(ALICE, "risk.fraud", 1, "production")
    assert again.id == request.id and again.status is PromotionStatus.PENDING
    assert alias_of(svc, "risk.fraud", "production") is None
    # once the gate is satisfied (policy relaxed back), asking again applies it
    svc.set_policy(SYSTEM, "risk.*", "production", approvals=1, conditions=["auc>=0.9"])
    applied = svc.promote(ALICE, "risk.fraud", 1, "production")
    assert applied.id == request.id and applied.status is PromotionStatus.APPLIED
    assert alias_of(svc, "risk.fraud", "production") == 1


def forget_scan(svc: RegistryService, version: int) -> None:
    """As for a version made before scanning existed: no verdict recorded."""
    vid = version_id(svc, "risk.fraud", version)
    svc.db.write(
        lambda s: s.execute(delete(version_scans).where(version_scans.c.version_id == vid))
    )


def test_scan_gate(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "risk.fraud", "*", require_clean_scan=True)
    forget_scan(svc, 1)
    with pytest.raises(Conflict, match="has not been scanned"):
        svc.promote(ALICE, "risk.fraud", 1, "production")
    set_scan(svc, 1, "flagged")
    with pytest.raises(Conflict, match="scan verdict: flagged"):
        svc.promote(ALICE, "risk.fraud", 1, "production")
    set_scan(svc, 1, "clean", quarantined=True)
    with pytest.raises(Conflict, match="quarantined"):
        svc.promote(ALICE, "risk.fraud", 1, "production")
    set_scan(svc, 1, "clean")
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    assert request.status is PromotionStatus.APPLIED
    assert checks_of(request)["scan"] is True
    assert alias_of(svc, "risk.fraud", "production") == 1


def test_scan_quarantined_while_waiting_blocks_the_move(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "risk.fraud", "production", approvals=1, require_clean_scan=True)
    set_scan(svc, 1, "clean")
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    set_scan(svc, 1, "flagged", quarantined=True)
    after = svc.approve(BOB, request.id)
    assert after.status is PromotionStatus.PENDING and checks_of(after)["scan"] is False
    assert alias_of(svc, "risk.fraud", "production") is None


def test_signature_gate(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "risk.fraud", "production", require_signature=True)
    with pytest.raises(Conflict, match="no verified signature"):
        svc.promote(ALICE, "risk.fraud", 3, "production")
    add_signature(svc, 3, {"w.bin": digest(b"weights")}, verified=False)
    with pytest.raises(Conflict, match="no verified signature"):
        svc.promote(ALICE, "risk.fraud", 3, "production")
    add_signature(svc, 3, {"w.bin": digest(b"other bytes")}, verified=True)  # other files
    with pytest.raises(Conflict, match="no verified signature"):
        svc.promote(ALICE, "risk.fraud", 3, "production")
    add_signature(svc, 3, {"w.bin": digest(b"weights")}, verified=True)
    request = svc.promote(ALICE, "risk.fraud", 3, "production")
    assert request.status is PromotionStatus.APPLIED and checks_of(request)["signature"]
    assert alias_of(svc, "risk.fraud", "production") == 3


def mlmodel(inputs: list[dict[str, Any]]) -> bytes:
    """An MLmodel file as MLflow writes it: YAML whose signature sections are JSON text."""
    signature = {"inputs": json.dumps(inputs), "outputs": '[{"type": "long"}]', "params": None}
    return (
        "flavors: {}\nsignature:\n"
        + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in signature.items())
    ).encode()


def with_files(svc: RegistryService, name: str, files: dict[str, bytes]) -> int:
    spec = VersionSpec(files=tuple(FileEntry(p, len(b), digest(b)) for p, b in files.items()))
    number = svc.create_version(SYSTEM, name, spec).version
    for data in files.values():
        if digest(data) in svc.missing_blobs(SYSTEM, name, number):
            svc.put_blob(SYSTEM, name, number, digest(data), [data])
    return number


def test_compatible_gate(svc: RegistryService) -> None:
    age = {"type": "double", "name": "age", "required": True}
    tenure = {"type": "double", "name": "tenure", "required": True}
    svc.create_model(SYSTEM, "scorer")
    one = with_files(svc, "scorer", {"MLmodel": mlmodel([age])})
    needs_more = with_files(svc, "scorer", {"MLmodel": mlmodel([age, tenure])})
    optional = with_files(svc, "scorer", {"MLmodel": mlmodel([age, {**tenure, "required": False}])})
    unsigned = with_files(svc, "scorer", {"model.pkl": b"weights"})
    broken = with_files(svc, "scorer", {"MLmodel": b"signature: [unclosed"})
    svc.set_policy(SYSTEM, "scorer", "production", require_compatible=True)
    assert svc.list_policies(SYSTEM, model="scorer")[0].require_compatible

    first = svc.promote(ALICE, "scorer", one, "production")  # nothing to break yet
    assert first.status is PromotionStatus.APPLIED and checks_of(first)["compatible"]
    with pytest.raises(Conflict, match="breaks callers of 1: inputs tenure added"):
        svc.promote(ALICE, "scorer", needs_more, "production")
    with pytest.raises(Conflict, match="breaks callers of 1"):  # a direct move too
        svc.set_alias(ALICE, "scorer", "production", needs_more)
    assert alias_of(svc, "scorer", "production") == one
    svc.set_alias(ALICE, "scorer", "production", optional)  # an optional input breaks nothing
    assert alias_of(svc, "scorer", "production") == optional
    with pytest.raises(Conflict, match=f"version {unsigned} cannot be checked .* no signature"):
        svc.promote(ALICE, "scorer", unsigned, "production")
    with pytest.raises(Conflict, match="its MLmodel \\(MLmodel\\) is unreadable: not YAML"):
        svc.promote(ALICE, "scorer", broken, "production")
    # back from a version without a signature, anything goes: it promised nothing
    svc.delete_alias(ALICE, "scorer", "production")
    svc.set_policy(SYSTEM, "scorer", "production")
    svc.set_alias(ALICE, "scorer", "production", unsigned)
    svc.set_policy(SYSTEM, "scorer", "production", require_compatible=True)
    assert svc.promote(ALICE, "scorer", needs_more, "production").status is (
        PromotionStatus.APPLIED
    )


def test_deleted_version_cannot_be_applied(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "risk.fraud", "production", approvals=1)
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    svc.delete_version(SYSTEM, "risk.fraud", 1)
    after = svc.approve(BOB, request.id)
    assert after.status is PromotionStatus.PENDING
    version_check = next(c for c in after.checks if c.check == "version")
    assert not version_check.passed and "deleted" in version_check.detail
    assert alias_of(svc, "risk.fraud", "production") is None


def test_alias_moved_meanwhile_is_moved_to_the_requested_version(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "risk.fraud", "production", approvals=1)
    svc.set_policy(SYSTEM, "risk.fraud", "staging", approvals=0)
    first = svc.promote(ALICE, "risk.fraud", 1, "production")
    second = svc.promote(ALICE, "risk.fraud", 2, "production")
    assert first.id != second.id
    svc.approve(BOB, second.id)
    assert alias_of(svc, "risk.fraud", "production") == 2
    svc.approve(BOB, first.id)
    assert alias_of(svc, "risk.fraud", "production") == 1
    history = svc.alias_history(SYSTEM, "risk.fraud", "production")
    assert [(e.from_version, e.to_version) for e in history] == [(2, 1), (None, 2)]


# -- reject, cancel, listing ---------------------------------------------------------


def test_reject_flow(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "risk.*", "production", approvals=1)
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    with pytest.raises(PermissionDenied, match="cancel"):
        svc.reject(ALICE, request.id)
    with pytest.raises(PermissionDenied):
        svc.reject(READER, request.id)
    rejected = svc.reject(BOB, request.id, comment="wait for the audit")
    assert rejected.status is PromotionStatus.REJECTED
    assert [(a.approver, a.decision, a.comment) for a in rejected.approvals] == [
        ("bob", "reject", "wait for the audit")
    ]
    with pytest.raises(Conflict, match="rejected"):
        svc.approve(CARL, request.id)
    assert alias_of(svc, "risk.fraud", "production") is None
    assert ("bob", "promotion.reject", "production") in audit_actions(svc)


def test_cancel_flow(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "risk.*", "production", approvals=1)
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    with pytest.raises(PermissionDenied, match="requester"):
        svc.cancel(BOB, request.id)
    cancelled = svc.cancel(ALICE, request.id, comment="wrong version")
    assert cancelled.status is PromotionStatus.CANCELLED
    with pytest.raises(Conflict, match="cancelled"):
        svc.approve(BOB, request.id)
    with pytest.raises(Conflict):
        svc.cancel(ALICE, request.id)
    assert alias_of(svc, "risk.fraud", "production") is None
    assert ("alice", "promotion.cancel", "production") in audit_actions(svc)


def test_listing_shows_only_readable_models(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "*", "production", approvals=1)
    fraud = svc.promote(ALICE, "risk.fraud", 1, "production")
    churn = svc.promote(ALICE, "churn", 1, "production")
    svc.approve(BOB, churn.id)
    risk_reader = Actor("rita", grants=(Grant(Role.READ, pattern="risk.*"),))
    assert [r.id for r in svc.list_requests(SYSTEM).items] == [churn.id, fraud.id]
    assert [r.id for r in svc.list_requests(risk_reader).items] == [fraud.id]
    assert svc.list_requests(OUTSIDER).items == []
    with pytest.raises(NotFound):
        svc.get_request(OUTSIDER, fraud.id)
    pending = svc.list_requests(READER, status="pending")
    assert [r.id for r in pending.items] == [fraud.id]
    assert [r.id for r in svc.list_requests(READER, model="churn").items] == [churn.id]
    page = svc.list_requests(READER, max_results=1)
    assert [r.id for r in page.items] == [churn.id] and page.next_page_token
    rest = svc.list_requests(READER, max_results=1, page_token=page.next_page_token)
    assert [r.id for r in rest.items] == [fraud.id] and rest.next_page_token is None
    with pytest.raises(InvalidParameter):
        svc.list_requests(READER, status="done")
    with pytest.raises(InvalidParameter, match="page_token"):
        svc.list_requests(READER, page_token="nonsense!")


# -- policies --------------------------------------------------------------------------


def test_policies_are_admin_only_and_validated(svc: RegistryService) -> None:
    with pytest.raises(PermissionDenied, match="ADMIN"):
        svc.set_policy(ALICE, "risk.*", "production", approvals=1)
    with pytest.raises(InvalidParameter):
        svc.set_policy(SYSTEM, "risk*", "production")
    with pytest.raises(InvalidParameter):
        svc.set_policy(SYSTEM, "*", "latest")
    with pytest.raises(InvalidParameter):
        svc.set_policy(SYSTEM, "*", "production", approvals=-1)
    with pytest.raises(InvalidParameter):
        svc.set_policy(SYSTEM, "*", "production", min_role="READ")
    with pytest.raises(InvalidParameter):
        svc.set_policy(SYSTEM, "*", "production", conditions=["auc >= nan"])
    with pytest.raises(InvalidParameter):
        svc.set_policy(SYSTEM, "*", "production", conditions=[{"metric": "auc", "op": "~"}])
    policy = svc.set_policy(SYSTEM, "Risk.*", "Production", approvals=1, conditions=["auc>0.9"])
    assert (policy.model_pattern, policy.alias_pattern) == ("risk.*", "production")
    again = svc.set_policy(SYSTEM, "risk.*", "production", min_role="WRITE")
    assert again.id == policy.id and again.approvals == 0 and again.min_role is Role.WRITE
    assert [p.id for p in svc.list_policies(SYSTEM)] == [policy.id]
    with pytest.raises(PermissionDenied):
        svc.list_policies(ALICE)
    assert [p.id for p in svc.list_policies(READER, model="risk.fraud")] == [policy.id]
    assert svc.list_policies(READER, model="churn") == []
    with pytest.raises(PermissionDenied):
        svc.delete_policy(ALICE, policy.id)
    svc.delete_policy(SYSTEM, policy.id)
    with pytest.raises(NotFound):
        svc.delete_policy(SYSTEM, policy.id)
    actions = [a for _, a, _ in audit_actions(svc)]
    assert actions.count("policy.set") == 2 and actions.count("policy.delete") == 1


def test_matching_policies_combine_into_the_strictest_gate(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "*", "*", min_role="WRITE", conditions=["auc>=0.9"])
    svc.set_policy(SYSTEM, "risk.*", "prod*", approvals=1)
    assert svc.promote(DAVE, "risk.fraud", 1, "staging").status is PromotionStatus.APPLIED
    with pytest.raises(Conflict, match="auc"):
        svc.promote(DAVE, "risk.fraud", 2, "staging")
    with pytest.raises(PermissionDenied):  # prod* asks MANAGE (the default)
        svc.promote(DAVE, "risk.fraud", 1, "production")
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    assert request.status is PromotionStatus.PENDING
    assert set(checks_of(request)) == {"role", "version", "metric auc >= 0.9", "approvals"}
    # 'churn' is outside risk.*: only the '*' policy applies
    with pytest.raises(Conflict, match=r"auc = 0\.5"):
        svc.promote(DAVE, "churn", 1, "production")


def test_parse_condition() -> None:
    c = parse_condition(" loss<0.25 ")
    assert (c.metric, c.op, c.value) == ("loss", "<", 0.25)
    assert c.holds(0.2) and not c.holds(0.25)
    for bad in ["auc", "auc >= ", "auc => 0.9", ">= 0.9", "auc >= inf", "auc >= x"]:
        with pytest.raises(InvalidParameter):
            parse_condition(bad)


# -- direct alias moves ------------------------------------------------------------------


def test_direct_set_of_a_protected_alias_is_refused(svc: RegistryService) -> None:
    svc.set_policy(SYSTEM, "risk.*", "production", approvals=1)
    with pytest.raises(PermissionDenied, match="cairn promote"):
        svc.set_alias(ALICE, "risk.fraud", "production", 1)
    with pytest.raises(PermissionDenied):
        svc.set_alias(SYSTEM, "risk.fraud", "Production", 1)  # any case, even the admin
    assert alias_of(svc, "risk.fraud", "production") is None
    svc.set_alias(DAVE, "risk.fraud", "staging", 1)  # unprotected: as before
    assert alias_of(svc, "risk.fraud", "staging") == 1


def test_direct_set_passes_a_gate_without_approvals_and_is_recorded(
    svc: RegistryService,
) -> None:
    svc.set_policy(SYSTEM, "risk.*", "production", conditions=["auc>=0.9"])
    with pytest.raises(PermissionDenied, match="MANAGE"):
        svc.set_alias(DAVE, "risk.fraud", "production", 1)
    with pytest.raises(Conflict, match=r"auc = 0\.85"):
        svc.set_alias(ALICE, "risk.fraud", "production", 2)
    svc.set_alias(ALICE, "risk.fraud", "production", 1)
    assert alias_of(svc, "risk.fraud", "production") == 1
    (record,) = svc.list_requests(SYSTEM).items
    assert record.status is PromotionStatus.APPLIED and record.requester == "alice"
    assert checks_of(record) == {"role": True, "version": True, "metric auc >= 0.9": True}
    # deleting a protected alias needs the policy's role
    with pytest.raises(PermissionDenied, match="MANAGE"):
        svc.delete_alias(DAVE, "risk.fraud", "production")
    svc.delete_alias(ALICE, "risk.fraud", "production")
    assert alias_of(svc, "risk.fraud", "production") is None


def test_a_rename_is_no_side_door_into_a_protected_alias(svc: RegistryService) -> None:
    """Renaming the model out of a policy's pattern, moving the alias there, and renaming
    it back would point a protected alias at a version no gate passed: a rename that puts
    the model's aliases under a gate that did not protect them is refused."""
    svc.set_policy(SYSTEM, "risk.*", "production", approvals=1)
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    svc.approve(BOB, request.id)
    assert alias_of(svc, "risk.fraud", "production") == 1
    svc.rename_model(ALICE, "risk.fraud", "lab.fraud")  # leaving the pattern: allowed
    svc.set_alias(ALICE, "lab.fraud", "production", 2)  # unprotected under this name
    with pytest.raises(PermissionDenied, match="production"):
        svc.rename_model(ALICE, "lab.fraud", "risk.fraud")
    assert alias_of(svc, "lab.fraud", "production") == 2
    with pytest.raises(NotFound):
        svc.get_model(SYSTEM, "risk.fraud")
    # without the alias, or with one no policy protects, the rename back is allowed
    svc.set_alias(ALICE, "lab.fraud", "staging", 2)
    svc.delete_alias(ALICE, "lab.fraud", "production")
    svc.rename_model(ALICE, "lab.fraud", "risk.fraud")
    assert svc.get_model(SYSTEM, "risk.fraud").aliases == {"staging": 2}
    # a rename among names the same policies cover keeps the gate: allowed
    svc.promote(ALICE, "risk.fraud", 1, "production")
    svc.approve(BOB, svc.list_requests(SYSTEM, status="pending").items[0].id)
    svc.rename_model(ALICE, "risk.fraud", "risk.fraud2")
    assert alias_of(svc, "risk.fraud2", "production") == 1


def test_the_alias_table_is_only_written_by_applied_requests(svc: RegistryService) -> None:
    """Every row in ``aliases`` for a protected alias comes from an applied request."""
    svc.set_policy(SYSTEM, "*", "production", approvals=1)
    request = svc.promote(ALICE, "risk.fraud", 1, "production")
    svc.reject(BOB, request.id)
    rows = svc.db.read(lambda s: s.execute(select(aliases)).all())
    assert rows == []


# -- end to end: CLI and API against a live server ---------------------------------------


def test_promote_and_approve_round_trip_over_cli_and_api(
    live_server: str, admin_headers: dict[str, str]
) -> None:
    from typer.testing import CliRunner

    from cairn.cli.main import app

    runner = CliRunner()

    def cairn(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(app, ["--uri", live_server, *args])
        assert (result.exit_code == 0) is ok, result.output
        return result

    with httpx.Client(base_url=live_server + "/api/v1", headers=admin_headers) as http:
        assert http.post("/users", json={"name": "bob"}).status_code == 201
        grant = {"subject": "user:bob", "role": "MANAGE", "pattern": "*"}
        assert http.put("/grants", json=grant).status_code == 200
        made = http.post("/tokens", json={"user": "bob", "scope": "write"})
        assert made.status_code == 201, made.text
        bob = made.json()["token"]

        cairn("models", "create", "risk.fraud")
        cairn("versions", "create", "risk.fraud", "--metric", "auc=0.95")
        cairn("versions", "create", "risk.fraud", "--metric", "auc=0.80")
        policy = json.loads(
            cairn(
                "policies",
                "set",
                "--model",
                "risk.*",
                "--alias",
                "production",
                "--approvals",
                "1",
                "--metric",
                "auc>=0.9",
                "--json",
            ).stdout
        )[0]
        assert policy["conditions"] == [{"metric": "auc", "op": ">=", "value": 0.9}]

        refused = cairn("promote", "models:/risk.fraud/2", "--to", "production", ok=False)
        assert "auc = 0.8" in str(refused.exception)
        requested = json.loads(
            cairn(
                "promote", "models:/risk.fraud/1", "--to", "production", "-m", "ship", "--json"
            ).stdout
        )
        assert requested["status"] == "pending" and requested["comment"] == "ship"
        rid = requested["id"]
        waiting = json.loads(cairn("approvals", "list", "--json").stdout)
        assert [r["id"] for r in waiting] == [rid]

        # the direct routes cannot move a protected alias
        direct = http.put("/models/risk.fraud/aliases/production", json={"version": 1})
        assert direct.status_code == 403 and "cairn promote" in direct.json()["message"]
        mlflow = http.post(
            live_server + "/api/2.0/mlflow/registered-models/alias",
            json={"name": "risk.fraud", "alias": "production", "version": "1"},
        )
        assert mlflow.status_code == 403, mlflow.text
        own = http.post(f"/promotions/{rid}/approve", json={"comment": "me"})
        assert own.status_code == 403 and own.json()["error_code"] == "PERMISSION_DENIED"
        assert "production" not in http.get("/models/risk.fraud").json()["aliases"]

        approved = json.loads(
            cairn("--token", bob, "approvals", "approve", str(rid), "-m", "lgtm", "--json").stdout
        )
        assert approved["status"] == "applied"
        assert [(a["approver"], a["comment"]) for a in approved["approvals"]] == [("bob", "lgtm")]
        assert http.get("/models/risk.fraud").json()["aliases"] == {"production": 1}
        record = http.get(f"/promotions/{rid}").json()
        assert {c["check"]: c["passed"] for c in record["checks"]} == {
            "role": True,
            "version": True,
            "metric auc >= 0.9": True,
            "approvals": True,
        }
        applied = http.get("/promotions", params={"status": "applied"}).json()
        assert [r["id"] for r in applied["promotions"]] == [rid]
        assert http.get("/promotions", params={"status": "bogus"}).status_code == 400
        assert http.post("/promotions", json={"model": "risk.fraud", "extra": 1}).status_code == 400

        listed = json.loads(cairn("policies", "list", "--json").stdout)
        assert [p["id"] for p in listed] == [policy["id"]]
        assert not listed[0]["require_compatible"]
        stricter = cairn(
            "policies", "set", "--model", "risk.*", "--alias", "production",
            "--require-compatible", "--json",
        )  # fmt: skip
        assert json.loads(stricter.stdout)[0]["require_compatible"] is True
        cairn("policies", "delete", str(policy["id"]), "--yes")
        assert http.get("/policies").json() == {"policies": []}
