"""Lineage's pure rules: inputs, graphs' JSON, OpenLineage names, cycle detection."""

from __future__ import annotations

import pytest

from cairn.domain.lineage import (
    Direction,
    Edge,
    LineageGraph,
    LineageInput,
    Node,
    dataset_input,
    graph_from_json,
    graph_to_json,
    has_cycle,
    input_from_json,
    input_to_json,
    parent_input,
)
from cairn.domain.models import FileEntry, VersionSpec
from cairn.domain.openlineage import dataset_address, dataset_uri
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


def test_a_cycle_is_found_through_any_number_of_parents() -> None:
    parents = {2: {1}, 3: {2}, 4: {3, 9}}
    assert has_cycle(parents, child=1, parent=4)  # 1 <- 2 <- 3 <- 4, and 1 -> 4 closes it
    assert not has_cycle(parents, child=5, parent=4)
    assert has_cycle({}, child=7, parent=7)


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
