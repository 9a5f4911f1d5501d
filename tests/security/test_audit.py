"""The audit log through the service, on SQLite and PostgreSQL: what mutations record, how
the log is queried and who may query it, and that tampering with the stored chain is found."""

from __future__ import annotations

import hashlib
import itertools
import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from cairn.domain.access import SYSTEM, Actor, Grant, Role, Scope
from cairn.domain.audit import AuditEvent
from cairn.domain.blob_batch import frames
from cairn.domain.models import FileEntry, VersionSpec
from cairn.errors import InvalidParameter, NotFound, PermissionDenied
from cairn.service import (
    aliases,
    artifacts,
    downloads,
    maintenance,
    models,
    portability,
    retention,
    version_reads,
    versions,
)
from cairn.service.registry import RegistryService
from cairn.store.metadata.audit_store import GENESIS, AuditStore, event_hash
from cairn.store.metadata.clock import to_datetime

START = 1_800_000_000_000_000  # microseconds; one tick per second
ADMIN = Actor("root", is_admin=True, request_id="req-admin", client="127.0.0.1")
ALICE = Actor(
    "alice",
    user_id=1,
    grants=(Grant(Role.MANAGE, pattern="*"),),
    request_id="req-alice",
    client="10.0.0.7",
)
MIA = Actor("mia", user_id=2, grants=(Grant(Role.MANAGE, pattern="fraud"),))  # one model
RITA = Actor("rita", user_id=3, grants=(Grant(Role.WRITE, pattern="*"),))  # no MANAGE


class Clock:
    def __init__(self) -> None:
        self._ticks = itertools.count(START, 1_000_000)

    def __call__(self) -> int:
        return next(self._ticks)


@pytest.fixture
def svc(service: RegistryService) -> RegistryService:
    service.clock = Clock()
    return service


def all_events(svc: RegistryService, **filters: Any) -> list[AuditEvent]:
    """Every matching event, oldest first, across pages of 2 (so paging is exercised)."""
    events: list[AuditEvent] = []
    token = None
    while True:
        page = svc.list_audit(ADMIN, oldest_first=True, max_results=2, page_token=token, **filters)
        events.extend(page.items)
        token = page.next_page_token
        if token is None:
            return events


def sql(svc: RegistryService, statement: str, **params: Any) -> None:
    """Change the stored log behind Cairn's back, as someone with database access could."""
    with svc.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def chain(svc: RegistryService, n: int) -> None:
    """``n`` events through a public use case that needs no models."""
    for i in range(n):
        svc.record_denial(ALICE, {"action": "model.create", "model": f"m{i}", "why": i})


def stored(svc: RegistryService, seq: int) -> dict[str, Any]:
    with svc.db.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_events WHERE seq = :s"), {"s": seq}).one()
    return dict(row._mapping)


# -- what gets recorded --------------------------------------------------------------------


def test_mutations_record_who_what_when_and_the_change(svc: RegistryService) -> None:
    svc.create_model(ALICE, "fraud", description="first")
    svc.update_model(ALICE, "fraud", description="second")
    svc.create_version(ALICE, "fraud")
    svc.set_alias(ALICE, "fraud", "production", 1)
    events = all_events(svc)
    assert [e.action for e in events] == [
        "model.create",
        "model.update",
        "version.create",
        "alias.set",
    ]
    update = events[1]
    assert (update.actor, update.model, update.outcome) == ("alice", "fraud", "ok")
    assert (update.request_id, update.client) == ("req-alice", "10.0.0.7")
    assert update.before == {"description": "first"}
    assert update.after == {"description": "second"}
    assert to_datetime(START) <= events[0].at < update.at < events[2].at  # the service's clock
    assert events[2].version == 1
    moved = events[3]
    assert (moved.target, moved.version, moved.before, moved.after) == ("production", 1, None, 1)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert svc.verify_audit(ADMIN).ok


def test_who_moved_production_is_one_call(svc: RegistryService) -> None:
    svc.create_model(ALICE, "fraud")
    for _ in range(3):
        svc.create_version(ALICE, "fraud")
    svc.set_alias(ALICE, "fraud", "production", 1)
    svc.set_alias(ALICE, "fraud", "staging", 3)
    svc.set_alias(ADMIN, "fraud", "Production", 2)  # aliases match in any case
    svc.delete_alias(ALICE, "fraud", "production")
    page = svc.list_audit(ADMIN, model="fraud", alias="production")
    assert [(e.actor, e.action, e.before, e.after) for e in page.items] == [
        ("alice", "alias.delete", 2, None),
        ("root", "alias.set", 1, 2),
        ("alice", "alias.set", None, 1),
    ]


def test_denials_are_recorded_with_the_anonymous_or_named_caller(svc: RegistryService) -> None:
    svc.create_model(ALICE, "fraud")
    svc.record_denial(Actor("anonymous", client="10.9.9.9"), {"action": "authenticate"})
    with pytest.raises(PermissionDenied) as refused:  # rita may write, not delete
        svc.delete_model(RITA, "fraud")
    assert refused.value.denial is not None
    svc.record_denial(RITA, refused.value.denial)
    svc.record_denial(RITA, {"action": "set_alias", "model": "fraud", "version": "3"})
    denied = all_events(svc, outcome="denied")
    assert [(e.actor, e.action, e.model, e.version, e.client) for e in denied] == [
        ("anonymous", "authenticate", None, None, "10.9.9.9"),
        ("rita", "model.delete", "fraud", None, None),
        ("rita", "alias.set", "fraud", 3, None),
    ]
    # found by the model's filter, by id or (named only) by name in any case
    denied_fraud = all_events(svc, model="FRAUD", outcome="denied")
    assert [e.action for e in denied_fraud] == ["model.delete", "alias.set"]
    assert [e.outcome for e in all_events(svc, model="fraud", action="model")] == ["ok", "denied"]
    assert svc.verify_audit(ADMIN).ok


def test_every_refusal_is_filed_under_the_action_its_success_records(
    svc: RegistryService,
) -> None:
    """``--action user`` (or ``grant``, ``scan``...) finds refused attempts as well as the
    changes: each use case's refusal is filed under the action it records on success."""
    rob = Actor("rob", user_id=4, grants=(Grant(Role.READ, pattern="*"),))  # reads only
    svc.create_model(ALICE, "fraud")
    svc.create_version(ALICE, "fraud")
    svc.set_alias(ALICE, "fraud", "production", 1)
    refusals: list[tuple[Any, str]] = [
        (lambda: svc.create_user(RITA, "eve"), "user.create"),
        (lambda: svc.update_user(RITA, "alice", admin=True), "user.update"),
        (lambda: svc.create_group(RITA, "risk"), "group.create"),
        (lambda: svc.delete_group(RITA, "risk"), "group.delete"),
        (lambda: svc.set_membership(RITA, "risk", "alice", member=True), "group.add_member"),
        (lambda: svc.set_membership(RITA, "risk", "alice", member=False), "group.remove_member"),
        (lambda: svc.grant(RITA, "user:rita", "MANAGE", model="fraud"), "grant.set"),
        (lambda: svc.revoke(RITA, "user:alice", model="fraud"), "grant.revoke"),
        (lambda: svc.grant(RITA, "user:rita", "READ", pattern="*"), "grant.set"),
        (lambda: svc.revoke(RITA, "user:alice", pattern="*"), "grant.revoke"),
        (lambda: svc.create_token(RITA, user="alice"), "token.create"),
        (lambda: svc.remove_signer(RITA, "release"), "signer.remove"),
        (lambda: svc.add_signature(rob, "fraud", 1, b"{}"), "signature.add"),
        (lambda: svc.set_scan_policy(RITA, "fraud", "label"), "scan.policy"),
        (lambda: svc.rescan_version(RITA, "fraud", 1), "scan.rerun"),
        (lambda: svc.set_retention(RITA, "fraud", keep=3), "retention.policy"),
        (lambda: svc.clear_retention(RITA, "fraud"), "retention.policy"),
        (lambda: svc.rollback_alias(rob, "fraud", "production"), "alias.set"),
        (lambda: svc.prune_versions(RITA, "fraud", keep=1, dry_run=False), "version.delete"),
        (
            lambda: svc.prune_versions(RITA, "fraud", keep=1, dry_run=False, purge=True),
            "version.purge",
        ),
    ]
    for call, _ in refusals:
        with pytest.raises(PermissionDenied) as refused:
            call()
        assert refused.value.denial is not None
        svc.record_denial(RITA, refused.value.denial)
    # refusals that need more setting up than a test of names deserves
    svc.record_denial(RITA, {"action": "add_signer"})
    svc.record_denial(RITA, {"action": "override_quarantine", "model": "fraud", "version": 1})
    expected = [action for _, action in refusals] + ["signer.add", "artifact.quarantine_override"]
    assert [e.action for e in all_events(svc, outcome="denied")] == expected


def test_a_token_refused_for_asking_more_than_its_creator_has_is_recorded(
    svc: RegistryService,
) -> None:
    """A read token that asks for a write token, or a caller who is no user, is refused
    (403) like any unauthorized call, and the refusal reaches the log like theirs."""
    reader = Actor("rita", user_id=3, scope=Scope.READ)
    for actor, wanted in ((reader, "write"), (Actor("nobody"), "read")):
        with pytest.raises(PermissionDenied) as refused:
            svc.create_token(actor, scope=wanted)
        assert refused.value.denial is not None
        svc.record_denial(actor, refused.value.denial)
    denied = all_events(svc, outcome="denied")
    assert [(e.actor, e.action, e.after) for e in denied] == [
        ("rita", "token.create", {"scope": "write"}),
        ("nobody", "token.create", {"scope": "read"}),
    ]


def test_a_named_only_denial_is_found_by_its_non_ascii_name(svc: RegistryService) -> None:
    # SQLite's lower() folds ASCII only: the name must be folded by the database on both
    # sides, or a name with a non-ASCII capital never meets its own spelling there
    svc.record_denial(RITA, {"action": "set_alias", "model": "École", "version": "1"})
    svc.record_denial(RITA, {"action": "set_alias", "model": "Ökonomie.B", "version": "2"})
    assert [e.version for e in all_events(svc, model="École")] == [1]
    assert [e.version for e in all_events(svc, model="Ökonomie.b")] == [2]


def test_oversized_denial_fields_are_clipped_not_refused(svc: RegistryService) -> None:
    svc.record_denial(Actor("x" * 400), {"action": "a" * 100, "model": "m" * 5000})
    (event,) = all_events(svc)
    assert len(event.actor) == 256 and len(event.action) == 64 and len(event.model or "") == 256
    assert svc.verify_audit(ADMIN).ok


# -- querying --------------------------------------------------------------------------------


def test_filters(svc: RegistryService) -> None:
    svc.create_model(ALICE, "fraud")
    svc.create_model(ADMIN, "churn")
    svc.create_version(ALICE, "fraud")
    svc.set_version_tag(ALICE, "fraud", 1, "k", "v")
    svc.set_model_tag(ADMIN, "churn", "team", "growth")
    assert [e.model for e in all_events(svc, model="fraud")] == ["fraud"] * 3
    assert [e.action for e in all_events(svc, actor_name="root")] == [
        "model.create",
        "model.tag.set",
    ]
    assert [e.action for e in all_events(svc, action="version")] == [
        "version.create",
        "version.tag.set",
    ]
    assert [e.action for e in all_events(svc, action="model.tag.*")] == ["model.tag.set"]
    assert [e.action for e in all_events(svc, action="model.tag.set")] == ["model.tag.set"]
    times = [e.at for e in all_events(svc)]
    window = all_events(svc, since=times[1], until=times[3])
    assert [e.seq for e in window] == [2, 3]  # since inclusive, until exclusive
    newest = svc.list_audit(ADMIN, max_results=2)
    assert [e.seq for e in newest.items] == [5, 4] and newest.next_page_token
    rest = svc.list_audit(ADMIN, max_results=2, page_token=newest.next_page_token)
    assert [e.seq for e in rest.items] == [3, 2]
    with pytest.raises(InvalidParameter, match="page_token"):
        svc.list_audit(ADMIN, model="fraud", page_token=newest.next_page_token)
    with pytest.raises(InvalidParameter, match="outcome"):
        svc.list_audit(ADMIN, outcome="maybe")
    with pytest.raises(InvalidParameter, match="action"):
        svc.list_audit(ADMIN, action="DROP TABLE")


def test_model_filter_follows_renames_and_deleted_namesakes(svc: RegistryService) -> None:
    svc.create_model(ALICE, "fraud")
    svc.rename_model(ALICE, "fraud", "fraud-v2")
    svc.delete_model(ALICE, "fraud-v2")
    svc.create_model(ALICE, "fraud-v2")  # a new model with the old one's name
    # admin by name: both models called fraud-v2 now, including the first one's history
    assert [e.action for e in all_events(svc, model="fraud-v2")] == [
        "model.create",
        "model.rename",
        "model.delete",
        "model.create",
    ]
    # a manager of the new model sees only the new model
    owner = Actor("olga", grants=(Grant(Role.MANAGE, pattern="fraud-v2"),))
    page = svc.list_audit(owner, model="fraud-v2")
    assert [e.seq for e in page.items] == [4]


def test_who_may_list_and_verify(svc: RegistryService) -> None:
    svc.create_model(ALICE, "fraud")
    svc.create_model(ALICE, "churn")
    assert [e.model for e in svc.list_audit(MIA, model="fraud").items] == ["fraud"]
    with pytest.raises(PermissionDenied) as refused:
        svc.list_audit(MIA)  # the whole log is for the instance admin
    assert refused.value.denial == {"action": "audit.list"}
    with pytest.raises(NotFound):  # cannot read churn: same answer as a missing model
        svc.list_audit(MIA, model="churn")
    with pytest.raises(NotFound):
        svc.list_audit(MIA, model="nope")
    with pytest.raises(PermissionDenied):  # can read and write fraud, but not MANAGE it
        svc.list_audit(RITA, model="fraud")
    with pytest.raises(PermissionDenied):
        svc.verify_audit(ALICE)
    assert svc.verify_audit(SYSTEM).ok


# -- the chain ------------------------------------------------------------------------------


def test_empty_and_intact_chains_verify(svc: RegistryService) -> None:
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.events, report.head_seq, report.head_hash) == (True, 0, 0, GENESIS)
    chain(svc, 5)
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.events, report.head_seq) == (True, 5, 5)
    assert report.first_bad_seq is None and report.reason is None
    assert report.head_hash == stored(svc, 5)["hash"]


def test_hash_is_over_previous_hash_and_fields(svc: RegistryService) -> None:
    chain(svc, 2)
    first, second = stored(svc, 1), stored(svc, 2)
    assert first["prev_hash"] == GENESIS and second["prev_hash"] == first["hash"]
    assert second["hash"] == event_hash(first["hash"], second)


def test_a_modified_field_is_found(svc: RegistryService) -> None:
    chain(svc, 5)
    sql(svc, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.first_bad_seq, report.events) == (False, 3, 2)
    assert report.reason and "changed" in report.reason


def test_a_modified_field_with_a_recomputed_hash_is_found_at_the_next_event(
    svc: RegistryService,
) -> None:
    chain(svc, 5)
    forged = stored(svc, 3) | {"actor": "mallory"}
    sql(
        svc,
        "UPDATE audit_events SET actor = 'mallory', hash = :h WHERE seq = 3",
        h=event_hash(forged["prev_hash"], forged),
    )
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.first_bad_seq) == (False, 4)


def test_a_deleted_event_is_found(svc: RegistryService) -> None:
    chain(svc, 5)
    sql(svc, "DELETE FROM audit_events WHERE seq = 2")
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert report.reason and "missing" in report.reason


def test_a_deleted_first_event_is_found(svc: RegistryService) -> None:
    chain(svc, 3)
    sql(svc, "DELETE FROM audit_events WHERE seq = 1")
    assert svc.verify_audit(ADMIN).first_bad_seq == 1


def test_a_truncated_tail_is_found(svc: RegistryService) -> None:
    chain(svc, 5)
    sql(svc, "DELETE FROM audit_events WHERE seq >= 4")
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.first_bad_seq, report.events) == (False, 4, 3)
    assert report.reason and "removed" in report.reason


def test_a_truncated_tail_with_its_head_rewound_is_found_only_against_a_recorded_head(
    svc: RegistryService,
) -> None:
    """Deleting the newest events and setting the head back to the last one left is a
    consistent chain: only a head recorded elsewhere shows it (verify's ``anchor``)."""
    chain(svc, 5)
    recorded = svc.verify_audit(ADMIN)
    anchor = (recorded.head_seq, recorded.head_hash)
    assert svc.verify_audit(ADMIN, anchor=anchor).ok
    third = stored(svc, 3)["hash"]
    sql(svc, "DELETE FROM audit_events WHERE seq >= 4")
    sql(svc, "UPDATE audit_head SET seq = 3, hash = :h", h=third)
    assert svc.verify_audit(ADMIN).ok  # consistent: the limit security.md states
    report = svc.verify_audit(ADMIN, anchor=anchor)
    assert (report.ok, report.first_bad_seq, report.events) == (False, 4, 3)
    assert report.reason and "recorded head" in report.reason
    # an anchor the chain passes through with another hash: rewritten up to there
    report = svc.verify_audit(ADMIN, anchor=(2, third))
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert svc.verify_audit(ADMIN, anchor=(2, stored(svc, 2)["hash"])).ok
    for bad in ((0, third), (3, "x" * 64), (3, third[:-1])):
        with pytest.raises(InvalidParameter):
            svc.verify_audit(ADMIN, anchor=bad)


def test_verify_reads_the_head_appends_use_not_a_stray_row(svc: RegistryService) -> None:
    """Appends advance the head row ``id = 1``; verify and ``tip`` read that row too, not
    whichever row the database returns first (a stray second row must not decide)."""
    chain(svc, 5)
    sql(svc, "DELETE FROM audit_events WHERE seq >= 4")  # a cut tail
    sql(svc, "INSERT INTO audit_head (id, seq, hash) VALUES (0, 3, :h)", h=stored(svc, 3)["hash"])
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.first_bad_seq) == (False, 4)


def test_reordered_events_are_found(svc: RegistryService) -> None:
    chain(svc, 5)
    # swap events 2 and 3 by their sequence numbers
    sql(svc, "UPDATE audit_events SET seq = -1 WHERE seq = 2")
    sql(svc, "UPDATE audit_events SET seq = 2 WHERE seq = 3")
    sql(svc, "UPDATE audit_events SET seq = 3 WHERE seq = -1")
    assert svc.verify_audit(ADMIN).first_bad_seq == 2


def test_swapped_fields_are_found(svc: RegistryService) -> None:
    chain(svc, 5)
    two, four = stored(svc, 2), stored(svc, 4)
    sql(svc, "UPDATE audit_events SET model = :m WHERE seq = 2", m=four["model"])
    sql(svc, "UPDATE audit_events SET model = :m WHERE seq = 4", m=two["model"])
    assert svc.verify_audit(ADMIN).first_bad_seq == 2


def test_an_event_added_beyond_the_head_is_found(svc: RegistryService) -> None:
    chain(svc, 3)
    last = stored(svc, 3)
    forged = last | {"seq": 4, "actor": "mallory", "prev_hash": last["hash"]}
    forged["hash"] = event_hash(last["hash"], forged)
    columns = ", ".join(forged)
    sql(
        svc,
        f"INSERT INTO audit_events ({columns}) VALUES ({', '.join(':' + c for c in forged)})",
        **forged,
    )
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert report.reason and "beyond" in report.reason


def test_an_event_inserted_in_the_middle_is_found(svc: RegistryService) -> None:
    chain(svc, 4)
    # make room after event 2, insert a well-formed forgery there, and move the head along
    for seq in (4, 3):
        sql(svc, "UPDATE audit_events SET seq = :n WHERE seq = :o", n=seq + 1, o=seq)
    sql(svc, "UPDATE audit_head SET seq = seq + 1")
    two = stored(svc, 2)
    forged = two | {"seq": 3, "actor": "mallory", "prev_hash": two["hash"]}
    forged["hash"] = event_hash(two["hash"], forged)
    columns = ", ".join(forged)
    sql(
        svc,
        f"INSERT INTO audit_events ({columns}) VALUES ({', '.join(':' + c for c in forged)})",
        **forged,
    )
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.first_bad_seq) == (False, 4)  # the forgery's successor


def test_a_lost_head_row_is_reported_then_rebuilt_from_the_last_event(
    svc: RegistryService,
) -> None:
    chain(svc, 2)
    sql(svc, "DELETE FROM audit_head")
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.first_bad_seq) == (False, 1)
    chain(svc, 1)  # appending carries on from the last stored event
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.events) == (True, 3)


def test_an_emptied_log_starts_again(svc: RegistryService) -> None:
    chain(svc, 2)
    sql(svc, "DELETE FROM audit_events")
    sql(svc, "DELETE FROM audit_head")
    chain(svc, 1)
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.events, stored(svc, 1)["prev_hash"]) == (True, 1, GENESIS)


def test_verification_walks_in_batches(svc: RegistryService) -> None:
    chain(svc, 7)
    assert svc.db.read(lambda s: AuditStore(s).verify(batch=2)).events == 7
    sql(svc, "UPDATE audit_events SET client = 'elsewhere' WHERE seq = 6")
    report = svc.db.read(lambda s: AuditStore(s).verify(batch=2))
    assert (report.ok, report.first_bad_seq) == (False, 6)


def test_concurrent_appends_make_one_unbroken_chain(svc: RegistryService) -> None:
    threads, each = 6, 10
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                svc.record_denial(
                    Actor(f"user{n}"), {"action": "model.create", "model": f"m{n}-{i}"}
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    report = svc.verify_audit(ADMIN)
    assert (report.ok, report.events, report.head_seq) == (True, threads * each, threads * each)
    events = all_events(svc)
    assert [e.seq for e in events] == list(range(1, threads * each + 1))
    assert len({e.hash for e in events}) == threads * each


def test_times_given_without_a_zone_are_utc(svc: RegistryService) -> None:
    chain(svc, 3)
    naive = to_datetime(START + 1_000_000).replace(tzinfo=None)
    aware = datetime.fromtimestamp((START + 1_000_000) / 1e6, tz=UTC)
    assert all_events(svc, since=naive) == all_events(svc, since=aware)
    assert [e.seq for e in all_events(svc, since=naive)] == [2, 3]


# -- every mutation of the registry's use cases is audited ----------------------------------

AUDITED = {
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
    "set_alias": "alias.set",
    "delete_alias": "alias.delete",
    "rollback_alias": "alias.set",
    "put_blob": "version.finalize",  # the last blob makes the version READY
    "put_blobs": "version.finalize",
    "complete_upload": "version.finalize",
    "finalize_version": "version.finalize",  # when it is the call that makes it READY
    "purge_version": "version.purge",
    "prune_versions": "version.delete",  # one per version it deletes (purge: version.purge)
    "set_retention": "retention.policy",
    "clear_retention": "retention.policy",
    "expire_pending": "version.expire",
    "gc": "gc.run",
    "import_model": "import.model",
    "import_version": "import.version",
    "reserve_versions": "import.reserve",
}
NOT_AUDITED = {
    # reads
    "get_model", "search_models", "get_version", "resolve", "diff_versions", "list_versions",
    "get_retention",
    "search_versions",
    "latest_versions_by_stage", "alias_history", "missing_blobs", "upload_status", "list_files",
    "open_file", "file_urls", "read_files",
    # looks at a filter only: where a search may run
    "searches_one_model",
    # bytes in staging: nothing in the registry changes until the version becomes READY
    "begin_upload", "append_upload", "abort_upload",
    # an integrity check: re-hashes bytes and flags corrupt ones, changes no model
    "verify",
}  # fmt: skip


def test_every_use_case_is_classified() -> None:
    """A new public method on these services must be audited (or said not to change state)."""
    mixins = (
        models.ModelsService,
        versions.VersionsService,
        version_reads.VersionReadsService,
        aliases.AliasesService,
        artifacts.ArtifactsService,
        downloads.DownloadsService,
        maintenance.MaintenanceService,
        retention.RetentionService,
        portability.PortabilityService,
    )
    public = {n for c in mixins for n, v in vars(c).items() if callable(v) and n[0] != "_"}
    assert public == set(AUDITED) | NOT_AUDITED


def test_every_mutation_writes_its_event(svc: RegistryService) -> None:
    seen: dict[str, list[str]] = {}

    def expect(method: str, call: Any) -> Any:
        before = svc.verify_audit(ADMIN).head_seq
        result = call()
        new = [e for e in all_events(svc) if e.seq > before]
        seen[method] = [e.action for e in new]
        assert AUDITED[method] in seen[method], (method, seen[method])
        assert all(e.actor in ("alice", "root") for e in new)
        return result

    def blob(data: bytes) -> FileEntry:
        return FileEntry(
            f"{len(data)}.bin", len(data), "sha256:" + hashlib.sha256(data).hexdigest()
        )

    a, b = b"first file", b"second file!"
    expect("create_model", lambda: svc.create_model(ALICE, "fraud"))
    expect("update_model", lambda: svc.update_model(ALICE, "fraud", description="d"))
    expect("set_model_tag", lambda: svc.set_model_tag(ALICE, "fraud", "team", "risk"))
    expect("delete_model_tag", lambda: svc.delete_model_tag(ALICE, "fraud", "team"))
    expect("rename_model", lambda: svc.rename_model(ALICE, "fraud", "fraud2"))
    expect("delete_model", lambda: svc.delete_model(ALICE, "fraud2"))
    expect("restore_model", lambda: svc.restore_model(ALICE, "fraud2"))
    spec = VersionSpec(files=(blob(a),))
    expect("create_version", lambda: svc.create_version(ALICE, "fraud2", spec))
    expect("put_blob", lambda: svc.put_blob(ALICE, "fraud2", 1, blob(a).digest, [a]))
    expect("create_version", lambda: svc.create_version(ALICE, "fraud2", VersionSpec()))
    two = VersionSpec(files=(blob(b),))
    expect("create_version", lambda: svc.create_version(ALICE, "fraud2", two))
    ticket = svc.begin_upload(ALICE, "fraud2", 3, blob(b).digest)
    svc.append_upload(ALICE, ticket.upload_id, 0, [b])
    expect("complete_upload", lambda: svc.complete_upload(ALICE, ticket.upload_id))
    assert svc.finalize_version(ALICE, "fraud2", 3).status.value == "READY"
    c, d = b"third file", b"fourth file, longer"
    svc.create_version(ALICE, "fraud2", VersionSpec(files=(blob(c), blob(d))))  # 4, PENDING
    both = b"".join(frames([(blob(c).digest, c), (blob(d).digest, d)]))
    expect("put_blobs", lambda: svc.put_blobs(ALICE, "fraud2", 4, both))
    expect("update_version", lambda: svc.update_version(ALICE, "fraud2", 1, description="x"))
    expect("set_version_tag", lambda: svc.set_version_tag(ALICE, "fraud2", 1, "k", "v"))
    expect("delete_version_tag", lambda: svc.delete_version_tag(ALICE, "fraud2", 1, "k"))
    expect("transition_stage", lambda: svc.transition_stage(ALICE, "fraud2", 1, "Staging"))
    expect("set_alias", lambda: svc.set_alias(ALICE, "fraud2", "production", 1))
    svc.set_alias(ALICE, "fraud2", "production", 2)
    expect("rollback_alias", lambda: svc.rollback_alias(ALICE, "fraud2", "production"))
    expect("delete_alias", lambda: svc.delete_alias(ALICE, "fraud2", "production"))
    svc.set_alias(ALICE, "fraud2", "champion", 2)
    expect("delete_version", lambda: svc.delete_version(ALICE, "fraud2", 2))
    assert seen["delete_version"] == ["version.delete", "alias.delete"]  # the alias it carried
    expect("restore_version", lambda: svc.restore_version(ALICE, "fraud2", 2))
    expect("purge_version", lambda: svc.purge_version(ALICE, "fraud2", 2))
    svc.create_version(ALICE, "fraud2", VersionSpec(files=(blob(b"never sent"),)))  # PENDING
    svc.limits = replace(svc.limits, pending_timeout_s=0)
    expect("expire_pending", lambda: svc.expire_pending(ADMIN))
    expect("prune_versions", lambda: svc.prune_versions(ALICE, "fraud2", keep=1, dry_run=False))
    # keep=1 keeps 4, the newest READY one; 3 and the failed 5 go, 1 stays (Staging)
    assert seen["prune_versions"] == ["version.delete", "version.delete"]
    expect("set_retention", lambda: svc.set_retention(ALICE, "fraud2", keep=10))
    expect("clear_retention", lambda: svc.clear_retention(ALICE, "fraud2"))
    expect("gc", lambda: svc.gc(ADMIN, dry_run=False, grace_s=0))
    expect("import_model", lambda: svc.import_model(ADMIN, "imported"))
    expect("import_version", lambda: svc.import_version(ADMIN, "imported", 3, VersionSpec()))
    expect("reserve_versions", lambda: svc.reserve_versions(ADMIN, "imported", 9))
    svc.create_version(ALICE, "fraud2", VersionSpec())  # 6: 4 is now prunable
    # reads and dry runs leave no trace
    before = svc.verify_audit(ADMIN).head_seq
    svc.get_model(ALICE, "fraud2")
    svc.search_versions(ALICE, "name = 'fraud2'")
    svc.gc(ADMIN)
    assert svc.prune_versions(ALICE, "fraud2", keep=1).pruned == (4,)
    assert svc.verify_audit(ADMIN).head_seq == before
    assert set(AUDITED) - {"finalize_version"} <= set(seen)
    assert svc.verify_audit(ADMIN).ok


def test_gc_purging_expired_deleted_versions_records_each_purge(svc: RegistryService) -> None:
    """gc's purge of versions deleted longer ago than CAIRN_PURGE_DELETED_AFTER_DAYS is a purge
    like purge_version: each version gets its own version.purge event, in the transaction
    that purges it (not only a line of the gc.run summary written afterwards)."""
    svc.create_model(ALICE, "fraud")
    svc.create_version(ALICE, "fraud")
    svc.create_version(ALICE, "fraud")
    svc.delete_version(ALICE, "fraud", 1)
    svc.limits = replace(svc.limits, purge_deleted_after_s=0)
    before = svc.verify_audit(ADMIN).head_seq
    report = svc.gc(ADMIN, dry_run=False, grace_s=0)
    assert report.purged_versions == (("fraud", 1),)
    new = [e for e in all_events(svc) if e.seq > before]
    assert [(e.action, e.model, e.version, e.actor) for e in new] == [
        ("version.purge", "fraud", 1, "root"),
        ("gc.run", None, None, "root"),
    ]
    assert svc.verify_audit(ADMIN).ok
