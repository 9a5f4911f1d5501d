"""The lineage graph both ways at once, and the transitive impact of a dataset: bounds,
permissions (a hidden version is neither reported nor walked through), deployments, and a
bounded number of queries. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from cairn.domain.access import SYSTEM, Actor, Grant, Role
from cairn.domain.lineage import Direction, LineageInput, validate_input
from cairn.domain.models import VersionSpec
from cairn.errors import InvalidParameter, NotFound
from cairn.service.registry import RegistryService

READER = Actor("rita", user_id=2, grants=(Grant(Role.READ, pattern="team.*"),))  # no secret.*
POISON = "s3://lake/poisoned/2026-11"
CLEAN = "s3://lake/clean"


def dataset(uri: str = POISON, **fields: Any) -> LineageInput:
    return validate_input("dataset", uri, **fields)


def parent(uri: str, relation: str = "fine-tune") -> LineageInput:
    return validate_input("model_version", uri, relation=relation)


@pytest.fixture
def svc(service: RegistryService) -> RegistryService:
    """team.base/1 (trained on POISON) → secret.mid/1 (fine-tune) → team.leaf/1 (distil);
    team.base/1 → team.tuned/1 (fine-tune) → team.small/1 (quantize); team.other/1 used
    POISON too (role eval) and CLEAN; team.tuned/1 → team.leaf/1 as well, one level
    deeper than through secret.mid."""
    for name in ("team.base", "secret.mid", "team.leaf", "team.tuned", "team.small", "team.other"):
        service.create_model(SYSTEM, name)
        service.create_version(SYSTEM, name, VersionSpec(run_id=f"run-{name}"))
    service.record_inputs(SYSTEM, "team.base", 1, [dataset(role="train")])
    service.record_inputs(
        SYSTEM, "team.other", 1, [dataset(role="eval"), dataset(CLEAN, role="train")]
    )
    service.record_inputs(SYSTEM, "secret.mid", 1, [parent("models:/team.base/1")])
    service.record_inputs(SYSTEM, "team.tuned", 1, [parent("models:/team.base/1")])
    service.record_inputs(SYSTEM, "team.small", 1, [parent("models:/team.tuned/1", "quantize")])
    service.record_inputs(SYSTEM, "team.leaf", 1, [parent("models:/secret.mid/1", "distil")])
    return service


@contextmanager
def counted(svc: RegistryService) -> Iterator[list[str]]:
    """The SELECT statements run inside the block."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append(statement)

    event.listen(svc.db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(svc.db.engine, "before_cursor_execute", count)


def ids(graph: Any) -> set[str]:
    return {n.id for n in graph.nodes}


# -- both directions -----------------------------------------------------------------------


def test_both_directions_walk_up_and_down_with_deployments_and_no_node_twice(
    svc: RegistryService,
) -> None:
    svc.set_alias(SYSTEM, "team.small", "prod", 1)
    svc.set_deployment(SYSTEM, "small-api", "models:/team.small@prod", environment="prod")
    svc.set_alias(SYSTEM, "team.tuned", "champion", 1)
    graph = svc.lineage_graph(SYSTEM, "team.tuned", 1, direction="both", depth=3)
    assert graph.direction is Direction.BOTH and not graph.truncated
    assert ids(graph) == {
        "models:/team.tuned/1",
        "run:run-team.tuned",
        "models:/team.tuned@champion",  # the root's own deployments, as downstream has them
        "models:/team.base/1",
        "run:run-team.base",
        f"dataset:{POISON}",
        "models:/team.small/1",
        "models:/team.small@prod",
        "deployment:small-api",
    }
    assert len(graph.nodes) == len(ids(graph))  # no node twice
    edges = [(e.source, e.target, e.kind) for e in graph.edges]
    assert len(edges) == len(set(edges))
    assert ("models:/team.base/1", "models:/team.tuned/1", "model_version") in edges
    assert ("models:/team.tuned/1", "models:/team.small/1", "model_version") in edges
    assert ("models:/team.small/1", "deployment:small-api", "deployment") in edges
    # siblings are neither upstream nor downstream of the root
    assert "models:/secret.mid/1" not in ids(graph)
    up = svc.lineage_graph(SYSTEM, "team.tuned", 1, direction="upstream", depth=3)
    down = svc.lineage_graph(SYSTEM, "team.tuned", 1, direction="downstream", depth=3)
    assert ids(graph) == ids(up) | ids(down)
    assert {(e.source, e.target) for e in graph.edges} == {
        (e.source, e.target) for e in (*up.edges, *down.edges)
    }


def test_both_directions_are_bounded_by_depth_and_nodes(svc: RegistryService) -> None:
    one = svc.lineage_graph(SYSTEM, "team.tuned", 1, direction="both", depth=1)
    assert {"models:/team.base/1", "models:/team.small/1"} <= ids(one)
    assert not one.truncated  # nothing lies beyond one level either way
    deep = svc.lineage_graph(SYSTEM, "secret.mid", 1, direction="both", depth=1)
    assert ids(deep) >= {"models:/team.base/1", "models:/team.leaf/1"}
    assert not deep.truncated
    # team.leaf/1 ← secret.mid/1 ← team.base/1: two levels up
    leaf = svc.lineage_graph(SYSTEM, "team.leaf", 1, direction="both", depth=1)
    assert "models:/secret.mid/1" in ids(leaf) and "models:/team.base/1" not in ids(leaf)
    assert leaf.truncated
    few = svc.lineage_graph(SYSTEM, "team.tuned", 1, direction="both", depth=5, max_nodes=3)
    assert len(few.nodes) == 3 and few.truncated
    assert all(e.source in ids(few) and e.target in ids(few) for e in few.edges)
    # the node limit leaves neither side out: a level of each in turn (upstream first
    # would fill it with team.base/1's dataset before team.small/1)
    two = svc.lineage_graph(SYSTEM, "team.tuned", 1, direction="both", depth=5, max_nodes=5)
    assert ids(two) == {
        "models:/team.tuned/1",
        "run:run-team.tuned",
        "models:/team.base/1",
        "run:run-team.base",
        "models:/team.small/1",
    }
    assert two.truncated
    for bad in ({"depth": 0}, {"depth": 11}, {"max_nodes": 1001}):
        with pytest.raises(InvalidParameter):
            svc.lineage_graph(SYSTEM, "team.tuned", 1, direction="both", **bad)


def test_both_directions_leave_out_hidden_models_and_do_not_walk_through_them(
    svc: RegistryService,
) -> None:
    seen = svc.lineage_graph(SYSTEM, "team.leaf", 1, direction="both", depth=5)
    assert {"models:/secret.mid/1", "models:/team.base/1"} <= ids(seen)
    hidden = svc.lineage_graph(READER, "team.leaf", 1, direction="both", depth=5)
    assert ids(hidden) == {"models:/team.leaf/1", "run:run-team.leaf"}
    assert not hidden.truncated
    base = svc.lineage_graph(READER, "team.base", 1, direction="both", depth=5)
    assert "models:/secret.mid/1" not in ids(base)
    assert "models:/team.leaf/1" not in ids(base)  # only reached through secret.mid
    assert "models:/team.small/1" in ids(base)
    assert not any("secret" in e.source or "secret" in e.target for e in base.edges)
    with pytest.raises(NotFound):
        svc.lineage_graph(READER, "secret.mid", 1, direction="both")


# -- transitive impact ------------------------------------------------------------------------


def test_depth_one_is_the_direct_users(svc: RegistryService) -> None:
    impact = svc.dataset_impact(SYSTEM, POISON)
    assert impact.depth == 1
    assert [(v.id, v.distance) for v in impact.versions] == [
        ("models:/team.base/1", 1),
        ("models:/team.other/1", 1),
    ]
    assert [(u.name, u.version) for u in svc.dataset_users(SYSTEM, POISON).items] == [
        (v.name, v.version) for v in impact.versions
    ]
    assert [i.role for i in impact.versions[1].inputs] == ["eval"]
    assert impact.truncated  # team.base/1 has children beyond depth 1
    assert not svc.dataset_impact(SYSTEM, CLEAN).truncated


def test_impact_follows_derived_versions_across_models_with_paths(svc: RegistryService) -> None:
    impact = svc.dataset_impact(SYSTEM, POISON, depth=3)
    found = {v.id: (v.distance, v.path, v.relations) for v in impact.versions}
    assert found == {
        "models:/team.base/1": (1, ("models:/team.base/1",), ()),
        "models:/team.other/1": (1, ("models:/team.other/1",), ()),
        "models:/secret.mid/1": (
            2,
            ("models:/team.base/1", "models:/secret.mid/1"),
            ("fine-tune",),
        ),
        "models:/team.tuned/1": (
            2,
            ("models:/team.base/1", "models:/team.tuned/1"),
            ("fine-tune",),
        ),
        "models:/team.small/1": (
            3,
            ("models:/team.base/1", "models:/team.tuned/1", "models:/team.small/1"),
            ("fine-tune", "quantize"),
        ),
        "models:/team.leaf/1": (
            3,
            ("models:/team.base/1", "models:/secret.mid/1", "models:/team.leaf/1"),
            ("fine-tune", "distil"),
        ),
    }
    assert len(impact.versions) == len(found)  # no version twice
    assert not impact.truncated
    two = svc.dataset_impact(SYSTEM, POISON, depth=2)
    assert max(v.distance for v in two.versions) == 2 and two.truncated


def test_a_hidden_version_is_not_reported_nor_walked_through(svc: RegistryService) -> None:
    impact = svc.dataset_impact(READER, POISON, depth=10)
    assert [v.id for v in impact.versions] == [
        "models:/team.base/1",
        "models:/team.other/1",
        "models:/team.tuned/1",
        "models:/team.small/1",
    ]  # team.leaf/1 is only reached through secret.mid/1
    assert not any("secret" in step for v in impact.versions for step in v.path)
    assert not impact.truncated
    # a second way round the hidden model makes the leaf affected, by that way
    svc.record_inputs(SYSTEM, "team.leaf", 1, [parent("models:/team.small/1", "merge")])
    again = svc.dataset_impact(READER, POISON, depth=10)
    leaf = next(v for v in again.versions if v.id == "models:/team.leaf/1")
    assert leaf.distance == 4 and leaf.relations == ("fine-tune", "quantize", "merge")
    # a direct user of a hidden model is not reported either
    svc.record_inputs(SYSTEM, "secret.mid", 1, [dataset()])
    assert "models:/secret.mid/1" not in {v.id for v in svc.dataset_impact(READER, POISON).versions}


def test_what_serves_an_affected_version_now_is_listed(svc: RegistryService) -> None:
    svc.set_alias(SYSTEM, "team.small", "prod", 1)
    svc.set_deployment(
        SYSTEM, "small-api", "models:/team.small@prod", environment="prod", url="https://x.test"
    )
    svc.set_deployment(SYSTEM, "leaf-api", "models:/team.leaf/1", environment="prod")
    svc.set_deployment(SYSTEM, "old-api", "models:/team.tuned/1", environment="staging")
    svc.retire_deployment(SYSTEM, "old-api")  # serves nothing now
    svc.set_alias(SYSTEM, "team.other", "candidate", 1)
    impact = svc.dataset_impact(SYSTEM, POISON, depth=3)
    assert [(s.version, s.kind, s.name, s.environment, s.url) for s in impact.serving] == [
        ("models:/team.other/1", "alias", "candidate", None, None),
        ("models:/team.leaf/1", "deployment", "leaf-api", "prod", None),
        ("models:/team.small/1", "alias", "prod", None, None),
        ("models:/team.small/1", "deployment", "small-api", "prod", "https://x.test"),
    ]  # in the order of the versions: by distance, then as walked
    assert {s.id for s in impact.serving} >= {"models:/team.small@prod", "deployment:small-api"}
    hidden = svc.dataset_impact(READER, POISON, depth=3)
    assert "deployment:leaf-api" not in {s.id for s in hidden.serving}
    shallow = svc.dataset_impact(SYSTEM, POISON, depth=1)
    assert [s.name for s in shallow.serving] == ["candidate"]


def test_impact_is_bounded_in_versions_and_in_queries(svc: RegistryService) -> None:
    capped = svc.dataset_impact(SYSTEM, POISON, depth=3, max_versions=3)
    assert len(capped.versions) == 3 and capped.truncated
    assert [v.distance for v in capped.versions] == [1, 1, 2]
    one = svc.dataset_impact(SYSTEM, POISON, max_versions=1)
    assert [v.id for v in one.versions] == ["models:/team.base/1"] and one.truncated
    # a wide level costs one query, not one per version
    for n in range(8):
        svc.create_model(SYSTEM, f"team.wide{n}")
        svc.create_version(SYSTEM, f"team.wide{n}", VersionSpec())
        svc.record_inputs(SYSTEM, f"team.wide{n}", 1, [parent("models:/team.small/1")])
    with counted(svc) as narrow:
        svc.dataset_impact(SYSTEM, CLEAN, depth=10)
    with counted(svc) as wide:
        impact = svc.dataset_impact(SYSTEM, POISON, depth=10)
    assert len(impact.versions) == 14
    # direct users, one per level (4 levels and the empty one after), aliases, deployments
    assert len(wide) <= len(narrow) + 4
    for bad in ({"depth": 0}, {"depth": 11}, {"max_versions": 0}, {"max_versions": 1001}):
        with pytest.raises(InvalidParameter):
            svc.dataset_impact(SYSTEM, POISON, **bad)
    with pytest.raises(InvalidParameter):
        svc.dataset_impact(SYSTEM, "not a uri")


def test_soft_deleted_versions_are_reported_marked_and_walked_through(
    svc: RegistryService,
) -> None:
    svc.delete_version(SYSTEM, "team.tuned", 1)
    impact = svc.dataset_impact(SYSTEM, POISON, depth=3)
    tuned = next(v for v in impact.versions if v.id == "models:/team.tuned/1")
    assert tuned.deleted
    assert "models:/team.small/1" in {v.id for v in impact.versions}
    svc.delete_model(SYSTEM, "team.other")  # a deleted model: as if it did not exist
    assert "models:/team.other/1" not in {v.id for v in svc.dataset_impact(SYSTEM, POISON).versions}
