"""The SDK's lineage methods: over HTTP against the real app and in-process on a directory,
on SQLite and PostgreSQL; the same calls give the same values and the same errors."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from cairn.client.base import BaseClient
from cairn.domain.lineage import Direction, InputKind, code_input, dataset_input, parent_input
from cairn.domain.openlineage import parse_run_event
from cairn.errors import Conflict, InvalidParameter, NotFound

TRAIN = "gs://bucket/train.parquet"
COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def test_lineage_through_the_sdk(client: BaseClient, tmp_path: Path) -> None:
    client.create_model("base")
    base = client.create_version("base", lineage=[dataset_input(TRAIN, role="train")])
    (tmp_path / "w.bin").write_bytes(b"quantized weights")
    client.create_model("base-int8")
    small = client.push(
        tmp_path / "w.bin",
        name="base-int8",
        lineage=[parent_input("models:/base/latest", "quantize")],
    )
    assert small.version == 1
    added = client.add_lineage("base", base.version, [code_input("https://g.example/r", COMMIT)])
    assert [i.kind for i in added] == [InputKind.DATASET, InputKind.CODE]
    assert client.list_lineage("base", 1) == added
    (parent,) = client.list_lineage("base-int8", 1)
    assert parent.uri == "models:/base/1" and parent.relation == "quantize"
    graph = client.lineage_graph("base", 1, direction="downstream", depth=2)
    assert graph.direction is Direction.DOWNSTREAM
    assert {n.id for n in graph.nodes} == {"models:/base/1", "models:/base-int8/1"}
    up = client.lineage_graph("base-int8", 1)
    assert f"dataset:{TRAIN}" in {n.id for n in up.nodes}
    uses = client.dataset_users(TRAIN)
    assert [(u.name, u.version, u.input.role) for u in uses.items] == [("base", 1, "train")]
    assert added[1].id is not None
    assert client.remove_lineage("base", 1, added[1].id) == added[1]
    with pytest.raises(NotFound):
        client.remove_lineage("base", 1, added[1].id)
    with pytest.raises(InvalidParameter, match="cycle"):
        client.add_lineage("base", 1, [parent_input("models:/base-int8/1")])
    with pytest.raises(Conflict):
        client.add_lineage("base-int8", 1, [parent_input("models:/base/1", "distil")])
    with pytest.raises(InvalidParameter, match="depth"):
        client.lineage_graph("base", 1, depth=99)


def test_openlineage_through_the_sdk(client: BaseClient) -> None:
    client.create_model("m")
    client.create_version("m", run_id=uuid.UUID(int=5).hex)  # an MLflow-style run id
    event = {
        "eventTime": "2026-11-30T00:00:00Z",
        "run": {"runId": str(uuid.UUID(int=5))},
        "job": {"namespace": "ci", "name": "train"},
        "inputs": [{"namespace": "file", "name": "/data/x.csv"}],
        "outputs": [{"namespace": "http://cairn.internal:8080", "name": "models:/m/1"}],
        "producer": "https://example.com/ci",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }
    answer = client.import_openlineage(event)
    assert answer["recorded"][0]["run_id"] == uuid.UUID(int=5).hex  # the same run: kept
    (only,) = client.list_lineage("m", 1)
    assert only.uri == "file:/data/x.csv"
    out = client.export_openlineage("m", 1)
    assert out["run"]["runId"] == str(uuid.UUID(int=5))
    assert out["inputs"][0]["namespace"] == "file" and out["inputs"][0]["name"] == "/data/x.csv"
    assert parse_run_event(out).inputs == parse_run_event(event).inputs


def test_both_ways_and_impact_through_the_sdk(client: BaseClient) -> None:
    client.create_model("base")
    client.create_version("base", lineage=[dataset_input(TRAIN, role="train")])
    client.create_model("tuned")
    client.create_version("tuned", lineage=[parent_input("models:/base/1", "fine-tune")])
    client.create_model("small")
    client.create_version("small", lineage=[parent_input("models:/tuned/1", "distil")])
    client.set_alias("small", "prod", 1)
    graph = client.lineage_graph("tuned", 1, direction="both", depth=1)
    assert graph.direction is Direction.BOTH and not graph.truncated
    assert {n.id for n in graph.nodes} == {
        "models:/tuned/1",
        "models:/base/1",
        "models:/small/1",
        "models:/small@prod",
    }
    direct = client.dataset_impact(TRAIN)
    assert [(v.id, v.distance) for v in direct.versions] == [("models:/base/1", 1)]
    assert direct.truncated and direct.serving == ()
    impact = client.dataset_impact(TRAIN, depth=3, max_versions=10)
    assert [(v.id, v.distance, v.relations) for v in impact.versions] == [
        ("models:/base/1", 1, ()),
        ("models:/tuned/1", 2, ("fine-tune",)),
        ("models:/small/1", 3, ("fine-tune", "distil")),
    ]
    assert impact.versions[0].inputs[0].role == "train"
    assert [(s.id, s.version, s.kind) for s in impact.serving] == [
        ("models:/small@prod", "models:/small/1", "alias")
    ]
    assert not impact.truncated
    with pytest.raises(InvalidParameter, match="depth"):
        client.dataset_impact(TRAIN, depth=11)
    with pytest.raises(InvalidParameter, match="max_versions"):
        client.dataset_impact(TRAIN, max_versions=0)
    with pytest.raises(InvalidParameter, match="direction"):
        client.lineage_graph("tuned", 1, direction="sideways")
