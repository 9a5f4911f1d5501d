"""Lineage through the service: recording, idempotency, cycles, bounds, permissions, soft
deletes and audit. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from cairn.domain.access import SYSTEM, Actor, Grant, Role
from cairn.domain.lineage import InputKind, LineageInput, validate_input
from cairn.domain.models import VersionSpec
from cairn.errors import Conflict, InvalidParameter, NotFound, PermissionDenied
from cairn.service import lineage as lineage_service
from cairn.service.lineage import record_in
from cairn.service.registry import RegistryService
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.metadata.database import Database
from cairn.store.metadata.schema import (
    audit_events,
    lineage_inputs,
    model_versions,
    registered_models,
)

WRITER = Actor("wendy", user_id=1, grants=(Grant(Role.WRITE, pattern="team.*"),))
READER = Actor("rita", user_id=2, grants=(Grant(Role.READ, pattern="team.*"),))  # no secret.*
TRAIN = "s3://lake/train/2026-11"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def dataset(uri: str = TRAIN, **fields: Any) -> LineageInput:
    return validate_input("dataset", uri, **fields)


def parent(uri: str, relation: str = "fine-tune") -> LineageInput:
    return validate_input("model_version", uri, relation=relation)


@pytest.fixture
def svc(service: RegistryService) -> RegistryService:
    """team.base v1, v2; team.tuned v1; team.small v1; secret.teacher v1."""
    for name, count in (("team.base", 2), ("team.tuned", 1), ("team.small", 1), ("secret.t", 1)):
        service.create_model(SYSTEM, name)
        for n in range(count):
            service.create_version(SYSTEM, name, VersionSpec(run_id=f"run-{name}-{n + 1}"))
    return service


def rows(svc: RegistryService, table: Any) -> int:
    return int(svc.db.read(lambda s: s.execute(select(func.count()).select_from(table)).scalar()))


def audit_actions(svc: RegistryService) -> list[str]:
    return list(
        svc.db.read(
            lambda s: s.execute(
                select(audit_events.c.action)
                .where(audit_events.c.action.like("lineage.%"))
                .order_by(audit_events.c.seq)
            ).scalars()
        )
    )


def test_inputs_are_recorded_once_and_listed(svc: RegistryService) -> None:
    inputs = [
        dataset(digest="sha256:" + "a" * 64, role="train", name="cards"),
        validate_input("code", "https://git.example/ml/fraud.git", commit=COMMIT.upper()),
        parent("models:/team.base/1"),
    ]
    first = svc.record_inputs(WRITER, "team.tuned", 1, inputs)
    again = svc.record_inputs(WRITER, "team.tuned", 1, inputs)
    assert first == again
    assert [i.kind for i in first] == [InputKind.DATASET, InputKind.CODE, InputKind.MODEL_VERSION]
    assert first[1].commit == COMMIT  # lower-cased
    assert first[2].uri == "models:/team.base/1" and first[2].relation == "fine-tune"
    assert all(i.id is not None and i.created_by == "wendy" for i in first)
    assert svc.list_inputs(READER, "team.tuned", 1) == first
    assert rows(svc, lineage_inputs) == 3
    assert audit_actions(svc) == ["lineage.record"]  # the second call recorded nothing


def test_an_alias_parent_is_recorded_as_the_version_it_names(svc: RegistryService) -> None:
    svc.set_alias(SYSTEM, "team.base", "champion", 2)
    (made,) = svc.record_inputs(WRITER, "team.tuned", 1, [parent("models:/team.base@champion")])
    assert made.uri == "models:/team.base/2"


def test_a_parent_with_another_relation_is_a_conflict(svc: RegistryService) -> None:
    svc.record_inputs(WRITER, "team.tuned", 1, [parent("models:/team.base/1")])
    with pytest.raises(Conflict, match="relation 'fine-tune'"):
        svc.record_inputs(WRITER, "team.tuned", 1, [parent("models:/team.base/1", "quantize")])


def test_self_edges_and_cycles_are_refused_and_change_nothing(svc: RegistryService) -> None:
    with pytest.raises(InvalidParameter, match="itself"):
        svc.record_inputs(WRITER, "team.base", 1, [parent("models:/team.base/1")])
    svc.record_inputs(WRITER, "team.tuned", 1, [parent("models:/team.base/1")])
    svc.record_inputs(WRITER, "team.small", 1, [parent("models:/team.tuned/1", "distil")])
    before = rows(svc, lineage_inputs)
    with pytest.raises(InvalidParameter, match="cycle"):  # base/1 <- tuned/1 <- small/1
        svc.record_inputs(WRITER, "team.base", 1, [dataset(), parent("models:/team.small/1")])
    assert rows(svc, lineage_inputs) == before  # the dataset of the same call neither


def test_a_wide_level_reads_no_more_children_than_the_graph_can_show(
    svc: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thirty versions tuned from one: a downstream graph of at most five nodes reads six
    of them (one more, to know there are more), and says it is truncated."""
    svc.create_model(SYSTEM, "team.wide")
    for n in range(1, 31):
        svc.create_version(SYSTEM, "team.wide")
        if n > 1:
            svc.record_inputs(WRITER, "team.wide", n, [parent("models:/team.wide/1")])
    read: list[int] = []
    real = lineage_service.LineageStore.children_of

    def spy(self: Any, version_ids: Any, limit: int) -> list[Any]:
        rows = real(self, version_ids, limit)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(lineage_service.LineageStore, "children_of", spy)
    graph = svc.lineage_graph(SYSTEM, "team.wide", 1, direction="downstream", max_nodes=5)
    assert len(graph.nodes) == 5 and graph.truncated
    assert max(read) == 6


def test_the_cycle_check_is_one_query_however_long_the_ancestry(svc: RegistryService) -> None:
    """A chain of fine-tunes grows a version at a time: recording the next link costs the
    same statements at depth 3 as at depth 40 (the ancestry is walked in SQL, not one
    query per generation), and a cycle through the whole chain is still found."""
    svc.create_model(SYSTEM, "team.chain")
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    costs = {}
    for n in range(1, 41):
        svc.create_version(SYSTEM, "team.chain")
        if n == 1:
            continue
        event.listen(svc.db.engine, "before_cursor_execute", seen)
        try:
            svc.record_inputs(WRITER, "team.chain", n, [parent(f"models:/team.chain/{n - 1}")])
        finally:
            event.remove(svc.db.engine, "before_cursor_execute", seen)
        costs[n] = len(statements)
        statements.clear()
    assert costs[40] == costs[3], costs
    before = rows(svc, lineage_inputs)
    with pytest.raises(InvalidParameter, match="cycle"):
        svc.record_inputs(WRITER, "team.chain", 1, [parent("models:/team.chain/40")])
    assert rows(svc, lineage_inputs) == before


@pytest.mark.parametrize(
    ("kind", "uri", "fields", "message"),
    [
        ("dataset", "no-scheme", {}, "no scheme"),
        ("dataset", "s3://a b", {}, "U\\+0020"),
        ("dataset", "s3://x\x07", {}, "U\\+0007"),
        ("dataset", "s3://" + "x" * 2100, {}, "limit is 2048"),
        ("dataset", TRAIN, {"digest": "sha256:abc"}, "digest"),
        ("dataset", TRAIN, {"role": "fun"}, "role must be one of"),
        ("dataset", TRAIN, {"commit": COMMIT}, "takes no commit"),
        ("code", "https://git.example/r", {}, "needs the commit"),
        ("code", "https://git.example/r", {"commit": "main"}, "not a git commit"),
        ("model_version", "models:/team.base/1", {"relation": "cousin"}, "relation must be"),
        ("model_version", "models:/team.base@^1.0", {}, "semver range"),
        ("model_version", "team.base/1", {}, "not a model URI"),
        ("table", TRAIN, {}, "kind must be one of"),
    ],
)
def test_bad_inputs_are_refused_with_what_would_be_right(
    kind: str, uri: str, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message):
        validate_input(kind, uri, **fields)


def test_recording_needs_write_on_the_child_and_read_on_the_parent(
    svc: RegistryService,
) -> None:
    with pytest.raises(PermissionDenied):
        svc.record_inputs(READER, "team.tuned", 1, [dataset()])
    with pytest.raises(NotFound, match=r"secret\.t"):  # not readable: as if it did not exist
        svc.record_inputs(WRITER, "team.tuned", 1, [parent("models:/secret.t/1")])
    with pytest.raises(NotFound, match="version 9"):
        svc.record_inputs(WRITER, "team.tuned", 1, [parent("models:/team.base/9")])
    assert rows(svc, lineage_inputs) == 0
    assert audit_actions(svc) == []


def test_removing_an_input_needs_write_and_is_audited(svc: RegistryService) -> None:
    made = svc.record_inputs(WRITER, "team.tuned", 1, [dataset(), parent("models:/team.base/1")])
    assert made[0].id is not None
    with pytest.raises(PermissionDenied):
        svc.remove_input(READER, "team.tuned", 1, made[0].id)
    with pytest.raises(NotFound):  # an input of another version
        svc.remove_input(WRITER, "team.base", 1, made[0].id)
    hidden = svc.record_inputs(SYSTEM, "team.tuned", 1, [parent("models:/secret.t/1")])
    with pytest.raises(NotFound) as refused:  # it would name a model wendy cannot read
        assert hidden[-1].id is not None
        svc.remove_input(WRITER, "team.tuned", 1, hidden[-1].id)
    assert "secret" not in str(refused.value)
    svc.remove_input(SYSTEM, "team.tuned", 1, hidden[-1].id)
    gone = svc.remove_input(WRITER, "team.tuned", 1, made[0].id)
    assert gone == made[0]
    assert svc.list_inputs(WRITER, "team.tuned", 1) == made[1:]
    assert audit_actions(svc) == [
        "lineage.record",
        "lineage.record",
        "lineage.remove",
        "lineage.remove",
    ]


def chain(svc: RegistryService) -> None:
    """team.base/1 → team.tuned/1 (fine-tune) → team.small/1 (distil); secret.t/1 → small;
    a dataset on base, code on tuned; @prod on small, @champion on tuned."""
    svc.record_inputs(SYSTEM, "team.base", 1, [dataset(role="train")])
    svc.record_inputs(
        SYSTEM,
        "team.tuned",
        1,
        [
            parent("models:/team.base/1"),
            validate_input("code", "https://g.example/r", commit=COMMIT),
        ],
    )
    svc.record_inputs(
        SYSTEM,
        "team.small",
        1,
        [parent("models:/team.tuned/1", "distil"), parent("models:/secret.t/1", "distil")],
    )
    svc.set_alias(SYSTEM, "team.small", "prod", 1)
    svc.set_alias(SYSTEM, "team.tuned", "champion", 1)


def node_ids(graph: Any) -> set[str]:
    return {n.id for n in graph.nodes}


def test_upstream_walks_parents_datasets_code_and_runs(svc: RegistryService) -> None:
    chain(svc)
    graph = svc.lineage_graph(SYSTEM, "team.small", 1, direction="upstream", depth=5)
    assert node_ids(graph) == {
        "models:/team.small/1",
        "models:/team.tuned/1",
        "models:/team.base/1",
        "models:/secret.t/1",
        f"dataset:{TRAIN}",
        f"code:https://g.example/r@{COMMIT}",
        "run:run-team.small-1",
        "run:run-team.tuned-1",
        "run:run-team.base-1",
        "run:run-secret.t-1",
    }
    assert not graph.truncated
    kinds = {(e.source, e.target): (e.kind, dict(e.attrs)) for e in graph.edges}
    assert kinds[("models:/team.tuned/1", "models:/team.small/1")] == (
        "model_version",
        {"relation": "distil"},
    )
    assert kinds[(f"dataset:{TRAIN}", "models:/team.base/1")] == ("dataset", {"role": "train"})
    assert kinds[("run:run-team.base-1", "models:/team.base/1")][0] == "run"


def test_depth_and_node_limits_bound_the_walk_and_say_so(svc: RegistryService) -> None:
    chain(svc)
    one = svc.lineage_graph(SYSTEM, "team.small", 1, depth=1)
    assert "models:/team.tuned/1" in node_ids(one)
    assert "models:/team.base/1" not in node_ids(one)
    assert one.truncated  # team.tuned/1 has a parent beyond the depth
    few = svc.lineage_graph(SYSTEM, "team.small", 1, depth=5, max_nodes=3)
    assert len(few.nodes) == 3 and few.truncated
    assert all(e.source in node_ids(few) and e.target in node_ids(few) for e in few.edges)
    for bad in ({"depth": 0}, {"depth": 11}, {"max_nodes": 0}, {"max_nodes": 5000}):
        with pytest.raises(InvalidParameter):
            svc.lineage_graph(SYSTEM, "team.small", 1, **bad)
    with pytest.raises(InvalidParameter, match="direction"):
        svc.lineage_graph(SYSTEM, "team.small", 1, direction="sideways")


def test_downstream_walks_derived_versions_and_their_deployments(svc: RegistryService) -> None:
    chain(svc)
    graph = svc.lineage_graph(SYSTEM, "team.base", 1, direction="downstream")
    assert node_ids(graph) == {
        "models:/team.base/1",
        "models:/team.tuned/1",
        "models:/team.small/1",
        "models:/team.tuned@champion",
        "models:/team.small@prod",
    }
    edges = {(e.source, e.target, e.kind) for e in graph.edges}
    assert ("models:/team.small/1", "models:/team.small@prod", "deployment") in edges
    assert ("models:/team.base/1", "models:/team.tuned/1", "model_version") in edges


def test_downstream_shows_the_recorded_deployments_serving_a_version(
    svc: RegistryService,
) -> None:
    chain(svc)
    svc.set_deployment(
        SYSTEM, "small-api", "models:/team.small@prod", environment="prod", url="https://x.test"
    )
    svc.set_deployment(SYSTEM, "small-old", "models:/team.small/1", environment="staging")
    svc.retire_deployment(SYSTEM, "small-old")  # serves nothing now: not shown
    graph = svc.lineage_graph(SYSTEM, "team.base", 1, direction="downstream")
    served = {n.id: dict(n.attrs) for n in graph.nodes if n.id.startswith("deployment:")}
    assert served == {
        "deployment:small-api": {
            "name": "small-api",
            "environment": "prod",
            "url": "https://x.test",
        }
    }
    edges = {(e.source, e.target, e.kind) for e in graph.edges}
    assert ("models:/team.small/1", "deployment:small-api", "deployment") in edges


def test_unreadable_models_are_left_out_as_if_they_did_not_exist(svc: RegistryService) -> None:
    chain(svc)
    graph = svc.lineage_graph(READER, "team.small", 1, depth=5)
    assert not any("secret" in n.id for n in graph.nodes)
    assert not any("secret" in e.source or "secret" in e.target for e in graph.edges)
    assert "models:/team.base/1" in node_ids(graph)
    assert [i.uri for i in svc.list_inputs(READER, "team.small", 1)] == ["models:/team.tuned/1"]
    with pytest.raises(NotFound):
        svc.lineage_graph(READER, "secret.t", 1, direction="downstream")
    # secret.t's reader sees team.small's lineage only through what it may read
    spy = Actor("sam", user_id=3, grants=(Grant(Role.READ, pattern="secret.*"),))
    down = svc.lineage_graph(spy, "secret.t", 1, direction="downstream")
    assert node_ids(down) == {"models:/secret.t/1"} and not down.truncated


def test_soft_deleted_versions_stay_in_the_graph_marked_deleted(svc: RegistryService) -> None:
    chain(svc)
    svc.record_inputs(SYSTEM, "team.tuned", 1, [dataset(role="train")])
    svc.delete_alias(SYSTEM, "team.tuned", "champion")
    svc.delete_version(SYSTEM, "team.tuned", 1)
    graph = svc.lineage_graph(SYSTEM, "team.small", 1, depth=5)
    tuned = next(n for n in graph.nodes if n.id == "models:/team.tuned/1")
    assert tuned.attrs["deleted"] is True
    assert "models:/team.base/1" in node_ids(graph)  # walked through
    (listed, _) = svc.list_inputs(SYSTEM, "team.small", 1)
    assert listed.deleted is True
    uses = svc.dataset_users(SYSTEM, TRAIN).items
    assert [(u.name, u.version, u.deleted) for u in uses] == [
        ("team.base", 1, False),
        ("team.tuned", 1, True),
    ]


def test_dataset_users_finds_versions_of_readable_models_a_page_at_a_time(
    svc: RegistryService,
) -> None:
    for name in ("team.base", "team.tuned", "secret.t"):
        svc.record_inputs(SYSTEM, name, 1, [dataset(role="train")])
    svc.record_inputs(SYSTEM, "team.base", 2, [dataset(digest="v2"), dataset("s3://lake/other")])
    first = svc.dataset_users(SYSTEM, TRAIN, max_results=2)
    assert [(u.name, u.version) for u in first.items] == [("team.base", 1), ("team.tuned", 1)]
    assert first.next_page_token is not None
    rest = svc.dataset_users(SYSTEM, TRAIN, max_results=2, page_token=first.next_page_token)
    assert [(u.name, u.version, u.input.digest) for u in rest.items] == [
        ("secret.t", 1, None),
        ("team.base", 2, "v2"),
    ]
    assert rest.next_page_token is None
    seen = [(u.name, u.version) for u in svc.dataset_users(READER, TRAIN).items]
    assert seen == [("team.base", 1), ("team.tuned", 1), ("team.base", 2)]
    with pytest.raises(InvalidParameter, match="page_token"):
        svc.dataset_users(SYSTEM, "s3://lake/other", page_token=first.next_page_token)


def test_two_parents_recorded_at_once_cannot_close_a_cycle(
    postgres_url: str, reset_postgres: Callable[[str], None], tmp_path: Path
) -> None:
    """b derives from a, in a transaction still open, while a is said to derive from b:
    the second waits for the first (PostgreSQL; SQLite writers are serial) and then sees
    the cycle, instead of each passing its check on its own snapshot."""
    reset_postgres(postgres_url)
    svc = RegistryService(Database(postgres_url), LocalBlobStore(tmp_path / "blobs"))
    try:
        for name in ("a", "b"):
            svc.create_model(SYSTEM, name)
            svc.create_version(SYSTEM, name)
        b1 = svc.db.read(
            lambda s: s.execute(
                select(model_versions.c.id)
                .join(registered_models, registered_models.c.id == model_versions.c.model_id)
                .where(registered_models.c.name == "b")
            ).scalar_one()
        )
        entered, release = threading.Event(), threading.Event()

        def first(s: Any) -> None:
            record_in(s, SYSTEM, int(b1), [parent("models:/a/1")], svc.clock())
            entered.set()
            assert release.wait(60)

        outcome: dict[str, object] = {}

        def second() -> None:
            try:
                svc.record_inputs(SYSTEM, "a", 1, [parent("models:/b/1")])
                outcome["recorded"] = True
            except InvalidParameter as exc:
                outcome["refused"] = exc

        opened = threading.Thread(target=lambda: svc.db.write(first))
        opened.start()
        assert entered.wait(60)
        racer = threading.Thread(target=second)
        racer.start()
        waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        while racer.is_alive() and not svc.db.read(lambda s: s.execute(waiting).scalar()):
            racer.join(0.01)
        release.set()
        opened.join()
        racer.join()
        assert "cycle" in str(outcome.get("refused")), outcome
    finally:
        svc.db.dispose()


def test_a_version_holds_a_bounded_number_of_inputs(
    svc: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lineage_service, "MAX_VERSION_INPUTS", 2)
    svc.record_inputs(SYSTEM, "team.base", 1, [dataset("s3://a/1"), dataset("s3://a/2")])
    with pytest.raises(InvalidParameter, match="at most 2 lineage inputs"):
        svc.record_inputs(SYSTEM, "team.base", 1, [dataset("s3://a/3")])
    assert rows(svc, lineage_inputs) == 2
    svc.record_inputs(SYSTEM, "team.base", 1, [dataset("s3://a/1")])  # nothing new: fine
