"""``/api/v1/lineage`` over HTTP: recording and reading inputs, graphs, impact queries,
OpenLineage in and out, the error shape, and that a refused request changes nothing.
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cairn.domain.openlineage import SCHEMA_URL, parse_run_event

BASE = "/api/v1/lineage/models"
TRAIN = "s3://lake/cards/2026-11"
RUN = str(uuid.UUID(int=7))
COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    return str(body["message"])


@pytest.fixture
def world(api: TestClient) -> TestClient:
    """fraud v1 (the base), fraud-small v1 (from the API's version create, with lineage)."""
    ok(api.post("/api/v1/models", json={"name": "fraud"}), 201)
    ok(api.post("/api/v1/models", json={"name": "fraud-small"}), 201)
    ok(api.post("/api/v1/models/fraud/versions", json={}), 201)
    lineage = [
        {"kind": "dataset", "uri": TRAIN, "role": "train", "digest": "sha256:" + "b" * 64},
        {"kind": "model_version", "uri": "models:/fraud/1", "relation": "distil"},
    ]
    ok(api.post("/api/v1/models/fraud-small/versions", json={"lineage": lineage}), 201)
    return api


def test_a_version_created_with_lineage_has_its_inputs(world: TestClient) -> None:
    inputs = ok(world.get(f"{BASE}/fraud-small/versions/1/inputs"))["inputs"]
    assert [(i["kind"], i["uri"]) for i in inputs] == [
        ("dataset", TRAIN),
        ("model_version", "models:/fraud/1"),
    ]
    assert inputs[1]["relation"] == "distil" and inputs[1]["deleted"] is False
    audit = ok(world.get("/api/v1/audit", params={"model": "fraud-small"}))["events"]
    assert {"version.create", "lineage.record"} <= {e["action"] for e in audit}


def test_a_version_create_with_a_bad_input_creates_no_version(world: TestClient) -> None:
    body = {"lineage": [{"kind": "dataset", "uri": "not a uri"}]}
    error(world.post("/api/v1/models/fraud/versions", json=body), 400, "INVALID_PARAMETER_VALUE")
    body = {"lineage": [{"kind": "model_version", "uri": "models:/fraud/7"}]}
    error(world.post("/api/v1/models/fraud/versions", json=body), 404, "RESOURCE_DOES_NOT_EXIST")
    assert ok(world.get("/api/v1/models/fraud"))["latest_version"] == 1


def test_record_list_and_remove_over_http(world: TestClient) -> None:
    path = f"{BASE}/fraud/versions/1/inputs"
    code = {"kind": "code", "uri": "https://git.example/fraud.git", "commit": COMMIT}
    first = ok(world.post(path, json={"inputs": [code, {"kind": "dataset", "uri": TRAIN}]}))
    again = ok(world.post(path, json={"inputs": [code]}))
    assert first == again and len(first["inputs"]) == 2
    removed = ok(world.delete(f"{path}/{first['inputs'][0]['id']}"))
    assert removed["kind"] == "code"
    assert [i["kind"] for i in ok(world.get(path))["inputs"]] == ["dataset"]
    message = error(
        world.delete(f"{path}/{first['inputs'][0]['id']}"), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    assert "lineage input" in message


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"inputs": [{"kind": "dataset", "uri": "s3://a\u0000b"}]}, 400),
        ({"inputs": [{"kind": "dataset", "uri": TRAIN, "commit": COMMIT}]}, 400),
        ({"inputs": [{"kind": "model_version", "uri": "models:/fraud/1"}]}, 400),  # itself
        ({"inputs": [{"kind": "dataset", "uri": TRAIN, "colour": "red"}]}, 400),
        ({"inputs": [{"kind": "dataset", "uri": TRAIN}] * 101}, 400),
    ],
)
def test_bad_input_is_refused_in_the_error_shape_and_changes_nothing(
    world: TestClient, body: dict[str, Any], status: int
) -> None:
    path = f"{BASE}/fraud/versions/1/inputs"
    error(world.post(path, json=body), status, "INVALID_PARAMETER_VALUE")
    assert ok(world.get(path))["inputs"] == []


def test_graphs_and_their_bounds(world: TestClient) -> None:
    ok(world.put("/api/v1/models/fraud-small/aliases/prod", json={"version": 1}))
    up = ok(world.get(f"{BASE}/fraud-small/versions/1/graph", params={"depth": 2}))
    assert up["root"] == "models:/fraud-small/1" and up["direction"] == "upstream"
    assert {n["id"] for n in up["nodes"]} == {
        "models:/fraud-small/1",
        "models:/fraud/1",
        f"dataset:{TRAIN}@sha256:{'b' * 64}",
    }
    down = ok(world.get(f"{BASE}/fraud/versions/1/graph", params={"direction": "downstream"}))
    assert {(e["source"], e["target"], e["kind"]) for e in down["edges"]} == {
        ("models:/fraud/1", "models:/fraud-small/1", "model_version"),
        ("models:/fraud-small/1", "models:/fraud-small@prod", "deployment"),
    }
    for params in ({"depth": 0}, {"max_nodes": 1001}, {"direction": "sideways"}):
        error(
            world.get(f"{BASE}/fraud/versions/1/graph", params=params),
            400,
            "INVALID_PARAMETER_VALUE",
        )
    error(world.get(f"{BASE}/nope/versions/1/graph"), 404, "RESOURCE_DOES_NOT_EXIST")


def test_dataset_users(world: TestClient) -> None:
    page = ok(world.get("/api/v1/lineage/datasets", params={"uri": TRAIN}))
    assert [(u["name"], u["version"]) for u in page["versions"]] == [("fraud-small", 1)]
    assert page["next_page_token"] is None
    error(
        world.get("/api/v1/lineage/datasets", params={"uri": "x"}), 400, "INVALID_PARAMETER_VALUE"
    )


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventType": "COMPLETE",
        "eventTime": "2026-11-30T00:00:00.000Z",
        "run": {"runId": RUN},
        "job": {
            "namespace": "training",
            "name": "fraud.train",
            "facets": {
                "sourceCodeLocation": {
                    "_producer": "https://example.com/airflow",
                    "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/SourceCodeLocationJobFacet.json",
                    "type": "git",
                    "url": "https://git.example/fraud.git",
                    "version": COMMIT,
                }
            },
        },
        "inputs": [
            {
                "namespace": "s3://lake",
                "name": "cards/2026-11",
                "facets": {"version": {"datasetVersion": "v12"}},
            },
            {"namespace": "postgres://db:5432", "name": "risk.public.labels"},
        ],
        "outputs": [
            {"namespace": "cairn", "name": "models:/fraud/1"},
            {"namespace": "s3://lake", "name": "reports/fraud.html"},
        ],
        "producer": "https://example.com/airflow",
        "schemaURL": SCHEMA_URL,
    }
    base.update(changes)
    return base


def test_openlineage_in_then_out_round_trips(world: TestClient) -> None:
    answer = ok(world.post("/api/v1/lineage/openlineage", json=event()))
    assert answer["recorded"] == [{"name": "fraud", "version": 1, "run_id": RUN, "inputs_added": 3}]
    assert answer["ignored"] == [
        {
            "namespace": "s3://lake",
            "name": "reports/fraud.html",
            "reason": "not a Cairn model version",
        }
    ]
    assert ok(world.get("/api/v1/models/fraud/versions/1"))["run_id"] == RUN
    again = ok(world.post("/api/v1/lineage/openlineage", json=event()))
    assert again["recorded"][0]["inputs_added"] == 0  # idempotent
    out = ok(world.get(f"{BASE}/fraud/versions/1/openlineage"))
    plan = parse_run_event(out)  # what Cairn exports, Cairn's importer takes
    assert out["schemaURL"] == SCHEMA_URL and out["run"]["runId"] == RUN
    assert out["outputs"][0]["name"] == "models:/fraud/1"
    original = parse_run_event(event())
    assert sorted(map(repr, plan.inputs)) == sorted(map(repr, original.inputs))
    assert [str(t) for t in plan.targets] == ["models:/fraud/1"]
    assert {(d["namespace"], d["name"]) for d in out["inputs"]} == {
        ("s3://lake", "cards/2026-11"),
        ("postgres://db:5432", "risk.public.labels"),
    }


def test_a_parent_goes_out_as_a_cairn_input_with_its_relation(world: TestClient) -> None:
    out = ok(world.get(f"{BASE}/fraud-small/versions/1/openlineage"))
    parents = [d for d in out["inputs"] if d["name"].startswith("models:/")]
    assert parents == [
        {
            "namespace": "cairn",
            "name": "models:/fraud/1",
            "facets": {},
            "inputFacets": {"cairn": {**parents[0]["inputFacets"]["cairn"], "relation": "distil"}},
        }
    ]
    assert parse_run_event(out).inputs[-1].relation == "distil"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"run": {"runId": "not-a-uuid"}}, 400, "INVALID_PARAMETER_VALUE"),
        ({"eventTime": "yesterday"}, 400, "INVALID_PARAMETER_VALUE"),
        ({"producer": None}, 400, "INVALID_PARAMETER_VALUE"),
        ({"eventType": "EXPLODED"}, 400, "INVALID_PARAMETER_VALUE"),
        (
            {"outputs": [{"namespace": "cairn", "name": "models:/ghost/1"}]},
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            {
                "outputs": [
                    {"namespace": "cairn", "name": "models:/fraud/1"},
                    {"namespace": "cairn", "name": "models:/fraud/9"},
                ]
            },
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
    ],
)
def test_a_refused_event_records_nothing(
    world: TestClient, change: dict[str, Any], status: int, code: str
) -> None:
    error(world.post("/api/v1/lineage/openlineage", json=event(**change)), status, code)
    assert ok(world.get(f"{BASE}/fraud/versions/1/inputs"))["inputs"] == []
    assert ok(world.get("/api/v1/models/fraud/versions/1"))["run_id"] is None


def test_an_event_of_another_run_is_a_conflict(world: TestClient) -> None:
    ok(world.post("/api/v1/lineage/openlineage", json=event()))
    other = copy.deepcopy(event(run={"runId": str(uuid.UUID(int=8))}))
    message = error(world.post("/api/v1/lineage/openlineage", json=other), 409, "RESOURCE_CONFLICT")
    assert "nothing was recorded" in message


def test_failed_runs_and_aliases_are_ignored(world: TestClient) -> None:
    failed = ok(world.post("/api/v1/lineage/openlineage", json=event(eventType="FAIL")))
    assert failed["recorded"] == [] and "FAIL" in failed["ignored"][0]["reason"]
    aliased = event(outputs=[{"namespace": "cairn", "name": "models:/fraud@prod"}])
    answer = ok(world.post("/api/v1/lineage/openlineage", json=aliased))
    assert answer["recorded"] == [] and "numbered version" in answer["ignored"][0]["reason"]


def test_a_graph_both_ways(world: TestClient) -> None:
    ok(world.post("/api/v1/models", json={"name": "fraud-int8"}), 201)
    lineage = [{"kind": "model_version", "uri": "models:/fraud-small/1", "relation": "quantize"}]
    ok(world.post("/api/v1/models/fraud-int8/versions", json={"lineage": lineage}), 201)
    ok(world.put("/api/v1/models/fraud-int8/aliases/prod", json={"version": 1}))
    path = f"{BASE}/fraud-small/versions/1/graph"
    both = ok(world.get(path, params={"direction": "both"}))
    assert both["direction"] == "both" and both["truncated"] is False
    assert {n["id"] for n in both["nodes"]} == {
        "models:/fraud-small/1",
        "models:/fraud/1",
        f"dataset:{TRAIN}@sha256:{'b' * 64}",
        "models:/fraud-int8/1",
        "models:/fraud-int8@prod",
    }
    assert ("models:/fraud-small/1", "models:/fraud-int8/1") in {
        (e["source"], e["target"]) for e in both["edges"]
    }
    few = ok(world.get(path, params={"direction": "both", "max_nodes": 2}))
    assert len(few["nodes"]) == 2 and few["truncated"] is True
    error(
        world.get(path, params={"direction": "both", "depth": 11}), 400, "INVALID_PARAMETER_VALUE"
    )


def test_dataset_impact(world: TestClient) -> None:
    ok(world.post("/api/v1/models", json={"name": "fraud-int8"}), 201)
    lineage = [{"kind": "model_version", "uri": "models:/fraud-small/1", "relation": "quantize"}]
    ok(world.post("/api/v1/models/fraud-int8/versions", json={"lineage": lineage}), 201)
    ok(
        world.put(
            "/api/v1/deployments/int8-api",
            json={"model_uri": "models:/fraud-int8/1", "environment": "prod"},
        )
    )
    direct = ok(world.get("/api/v1/lineage/impact", params={"uri": TRAIN}))
    assert [(v["id"], v["distance"]) for v in direct["versions"]] == [("models:/fraud-small/1", 1)]
    assert direct["versions"][0]["inputs"][0]["role"] == "train"
    assert direct["truncated"] is True and direct["serving"] == []
    deep = ok(world.get("/api/v1/lineage/impact", params={"uri": TRAIN, "depth": 3}))
    assert deep["truncated"] is False and deep["depth"] == 3
    int8 = deep["versions"][1]
    assert int8 == {
        "id": "models:/fraud-int8/1",
        "name": "fraud-int8",
        "version": 1,
        "status": int8["status"],
        "deleted": False,
        "distance": 2,
        "path": ["models:/fraud-small/1", "models:/fraud-int8/1"],
        "relations": ["quantize"],
        "inputs": [],
    }
    assert deep["serving"] == [
        {
            "id": "deployment:int8-api",
            "version": "models:/fraud-int8/1",
            "kind": "deployment",
            "name": "int8-api",
            "environment": "prod",
            "url": None,
        }
    ]
    for params in ({"depth": 0}, {"depth": 11}, {"max_versions": 0}, {"uri": "x"}):
        error(
            world.get("/api/v1/lineage/impact", params={"uri": TRAIN, **params}),
            400,
            "INVALID_PARAMETER_VALUE",
        )


def test_every_code_input_goes_out_and_comes_back(world: TestClient) -> None:
    other = "fedcba9876543210fedcba9876543210fedcba98"
    inputs = [
        {"kind": "code", "uri": "https://git.example/fraud.git", "commit": COMMIT},
        {"kind": "dataset", "uri": TRAIN, "role": "train"},
        {"kind": "code", "uri": "https://git.example/features.git", "commit": other},
        {"kind": "code", "uri": "https://git.example/fraud.git", "commit": other},
    ]
    ok(world.post(f"{BASE}/fraud/versions/1/inputs", json={"inputs": inputs}))
    out = ok(world.get(f"{BASE}/fraud/versions/1/openlineage"))
    facets = out["job"]["facets"]
    assert facets["sourceCodeLocation"]["repoUrl"] == "https://git.example/fraud.git"
    assert facets["sourceCodeLocation"]["version"] == COMMIT
    assert [(c["repoUrl"], c["version"]) for c in facets["cairn"]["sourceCodeLocations"]] == [
        ("https://git.example/features.git", other),
        ("https://git.example/fraud.git", other),
    ]
    code = [(i.uri, i.commit) for i in parse_run_event(out).inputs if i.kind.value == "code"]
    assert code == [(i["uri"], i["commit"]) for i in inputs if i["kind"] == "code"]
    # imported onto another version, it gives back the same inputs, and exports the same
    ok(world.post("/api/v1/models", json={"name": "copy"}), 201)
    ok(world.post("/api/v1/models/copy/versions", json={}), 201)
    moved = copy.deepcopy(out)
    moved["outputs"] = [{"namespace": "cairn", "name": "models:/copy/1"}]
    assert ok(world.post("/api/v1/lineage/openlineage", json=moved))["recorded"][0][
        "inputs_added"
    ] == len(inputs)

    def facts(name: str) -> list[tuple[Any, ...]]:
        got = ok(world.get(f"{BASE}/{name}/versions/1/inputs"))["inputs"]
        return sorted((i["kind"], i["uri"], i.get("commit"), i.get("role")) for i in got)

    assert facts("copy") == facts("fraud")
    back = ok(world.get(f"{BASE}/copy/versions/1/openlineage"))
    assert back["job"]["facets"] == out["job"]["facets"]
    assert back["inputs"] == out["inputs"]
    # one code input: the standard facet only, as before
    single = ok(world.get(f"{BASE}/fraud-small/versions/1/openlineage"))
    assert "facets" not in single["job"]
