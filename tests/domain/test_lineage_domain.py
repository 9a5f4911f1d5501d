"""Lineage's pure rules: inputs, graphs' JSON, OpenLineage names, cycle detection."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cairn.domain.lineage import (
    DatasetImpact,
    Direction,
    Edge,
    ImpactedVersion,
    LineageGraph,
    LineageInput,
    Node,
    Serving,
    code_input,
    dataset_input,
    graph_from_json,
    graph_to_json,
    impact_from_json,
    impact_to_json,
    input_from_json,
    input_to_json,
    parent_input,
)
from cairn.domain.models import FileEntry, VersionSpec
from cairn.domain.openlineage import (
    dataset_address,
    dataset_uri,
    parse_run_event,
    render_run_event,
)
from cairn.domain.validation import spec_fingerprint
from cairn.errors import InvalidParameter


def test_a_spec_without_lineage_keeps_the_fingerprint_it_had_before() -> None:
    """Idempotency keys stored before versions took lineage still match their retry
    (the value is what Cairn computed for this spec before the field existed)."""
    spec = VersionSpec(
        description="d",
        tags={"a": "b"},
        metrics={"auc": 0.9},
        files=(FileEntry("w.bin", 3, "sha256:" + "0" * 64),),
    )
    assert spec_fingerprint("m", spec) == (
        "cf97d337e43123d4cb99a1d4751480889e5e38fba9f1c003df8f35a987da52ef"
    )
    with_input = VersionSpec(lineage=(dataset_input("s3://b/x"),))
    assert spec_fingerprint("m", with_input) != spec_fingerprint("m", VersionSpec())


@pytest.mark.parametrize(
    ("namespace", "name", "uri"),
    [
        ("s3://lake", "cards/2026-11", "s3://lake/cards/2026-11"),
        ("postgres://db:5432", "risk.public.labels", "postgres://db:5432/risk.public.labels"),
        ("file", "/data/x.csv", "file:/data/x.csv"),
        ("bigquery", "project.dataset.table", "bigquery:project.dataset.table"),
    ],
)
def test_openlineage_names_and_uris_map_both_ways(namespace: str, name: str, uri: str) -> None:
    assert dataset_uri(namespace, name) == uri
    assert dataset_address(uri) == (namespace, name)


def test_inputs_round_trip_through_json() -> None:
    for made in (
        dataset_input("s3://b/x", name="cards", digest="v1", role="TRAIN"),
        parent_input("models:/m/3", "quantize"),
    ):
        assert input_from_json(input_to_json(made)) == made
    assert dataset_input("s3://b/x", role="TRAIN").role == "train"


def test_a_graph_round_trips_through_json() -> None:
    graph = LineageGraph(
        "models:/m/1",
        Direction.UPSTREAM,
        2,
        (Node("models:/m/1", "model_version", {"name": "m", "version": 1}),),
        (Edge("dataset:s3://b/x", "models:/m/1", "dataset", {"role": "train"}),),
        truncated=True,
    )
    assert graph_from_json(graph_to_json(graph)) == graph


def test_an_input_object_must_name_its_kind_and_uri() -> None:
    with pytest.raises(InvalidParameter, match="kind and uri"):
        input_from_json({"uri": "s3://b/x"})
    assert isinstance(parent_input("models:/m@prod"), LineageInput)


def test_an_impact_round_trips_through_json() -> None:
    used = dataset_input("s3://b/x", role="train")
    impact = DatasetImpact(
        2,
        (
            ImpactedVersion("m", 1, "READY", False, 1, ("models:/m/1",), (), (used,)),
            ImpactedVersion(
                "n", 3, "READY", True, 2, ("models:/m/1", "models:/n/3"), ("quantize",)
            ),
        ),
        (
            Serving("models:/n@prod", "models:/n/3", "alias", "prod"),
            Serving("deployment:api", "models:/n/3", "deployment", "api", "prod", "https://a"),
        ),
        truncated=True,
    )
    assert impact_from_json(impact_to_json(impact)) == impact
    assert impact_to_json(impact)["versions"][1]["id"] == "models:/n/3"


def test_every_code_input_is_exported_and_read_back() -> None:
    code = [
        code_input("https://g.example/a", "a" * 40),
        code_input("https://g.example/b", "b" * 7),
        code_input("https://g.example/a", "c" * 40),
    ]
    inputs = [code[0], dataset_input("s3://b/x", role="train"), *code[1:]]
    event = render_run_event(
        "m",
        1,
        created_at=datetime(2026, 11, 30, tzinfo=UTC),
        digest=None,
        run_id=None,
        run_link=None,
        inputs=inputs,
    )
    facets = event["job"]["facets"]
    assert facets["sourceCodeLocation"]["repoUrl"] == "https://g.example/a"
    assert [c["version"] for c in facets["cairn"]["sourceCodeLocations"]] == ["b" * 7, "c" * 40]
    back = parse_run_event(event).inputs
    assert [i for i in back if i.kind.value == "code"] == code
    assert sorted(map(repr, back)) == sorted(map(repr, inputs))
    one = render_run_event(
        "m",
        1,
        created_at=datetime(2026, 11, 30, tzinfo=UTC),
        digest=None,
        run_id=None,
        run_link=None,
        inputs=code[:1],
    )
    assert set(one["job"]["facets"]) == {"sourceCodeLocation"}
    bad = {**event, "job": {**event["job"], "facets": {"cairn": {"sourceCodeLocations": "x"}}}}
    with pytest.raises(InvalidParameter, match="sourceCodeLocations"):
        parse_run_event(bad)
