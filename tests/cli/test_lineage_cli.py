"""``cairn lineage`` end to end through the real CLI: against a live server and on a data
directory, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cairn.cli import lineage as lineage_cli
from cairn.cli.main import app
from cairn.errors import CairnError

runner = CliRunner()
TRAIN = "s3://lake/cards/2026-11"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cairn(uri: str, *args: str) -> str:
    result = runner.invoke(app, ["--uri", uri, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def refused(uri: str, *args: str) -> str:
    """The error a command stops with (``cairn``'s handler prints it as one line)."""
    result = runner.invoke(app, ["--uri", uri, *args])
    assert isinstance(result.exception, CairnError), result.output
    return f"{result.exception.error_code}: {result.exception.message}"


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lineage_cli, "out", Console(width=200))


def test_create_push_add_show_and_remove(uri: str, tmp_path: Path) -> None:
    cairn(uri, "models", "create", "base")
    cairn(uri, "versions", "create", "base", "--dataset", TRAIN)
    (tmp_path / "w.bin").write_bytes(b"weights")
    cairn(
        uri,
        "push",
        str(tmp_path / "w.bin"),
        "--model",
        "small",
        "--parent",
        "models:/base/1",
        "--relation",
        "distil",
        "-q",
    )
    cairn(uri, "alias", "set", "small", "prod", "1")
    cairn(uri, "deployments", "set", "small-api", "models:/small@prod", "--env", "prod")
    added = json.loads(
        cairn(
            uri,
            "lineage",
            "add",
            "models:/small@prod",
            "--code",
            "https://git.example/ml.git",
            "--commit",
            COMMIT,
            "--dataset",
            "s3://lake/eval",
            "--role",
            "eval",
            "--json",
        )
    )
    assert [(i["kind"], i["uri"]) for i in added] == [
        ("model_version", "models:/base/1"),
        ("dataset", "s3://lake/eval"),
        ("code", "https://git.example/ml.git"),
    ]
    tree = cairn(uri, "lineage", "show", "models:/small/1")
    assert "models:/base/1" in tree and f"dataset {TRAIN}" in tree and "(distil)" in tree
    assert "(eval)" in tree and f"code https://git.example/ml.git @ {COMMIT}" in tree
    down = cairn(uri, "lineage", "show", "models:/base/1", "--downstream")
    assert "models:/small/1" in down and "deployed as @prod" in down
    assert "served by small-api (prod)" in down
    graph = json.loads(cairn(uri, "lineage", "show", "models:/base/1", "--downstream", "--json"))
    assert graph["direction"] == "downstream" and graph["truncated"] is False
    assert "small" in cairn(uri, "lineage", "used-by", "s3://lake/eval")
    users = json.loads(cairn(uri, "lineage", "used-by", TRAIN, "--json"))
    assert [(u["name"], u["version"]) for u in users] == [("base", 1)]
    listed = cairn(uri, "lineage", "inputs", "models:/small/1")
    assert "https://git.example/ml.git" in listed
    code_id = str(added[2]["id"])
    cairn(uri, "lineage", "remove", "models:/small/1", code_id, "--yes")
    left = json.loads(cairn(uri, "lineage", "inputs", "models:/small/1", "--json"))
    assert [i["kind"] for i in left] == ["model_version", "dataset"]


def test_bad_options_are_refused_and_change_nothing(uri: str) -> None:
    cairn(uri, "models", "create", "base")
    said = refused(uri, "versions", "create", "base", "--dataset", "no-scheme")
    assert said.startswith("INVALID_PARAMETER_VALUE") and "no scheme" in said
    assert json.loads(cairn(uri, "models", "get", "base", "--json"))["latest_version"] is None
    cairn(uri, "versions", "create", "base")
    said = refused(uri, "lineage", "add", "models:/base/1", "--code", "https://g.example/r")
    assert "--commit" in said
    said = refused(uri, "lineage", "add", "models:/base/1", "--parent", "models:/base/1")
    assert "itself" in said
    assert json.loads(cairn(uri, "lineage", "inputs", "models:/base/1", "--json")) == []


def test_openlineage_import_then_export(uri: str, tmp_path: Path) -> None:
    cairn(uri, "models", "create", "fraud")
    cairn(uri, "versions", "create", "fraud")
    run = str(uuid.uuid4())
    event = {
        "eventType": "COMPLETE",
        "eventTime": "2026-11-30T00:00:00Z",
        "run": {"runId": run},
        "job": {"namespace": "airflow", "name": "train_fraud"},
        "inputs": [{"namespace": "s3://lake", "name": "cards/2026-11"}],
        "outputs": [
            {"namespace": "cairn", "name": "models:/fraud/1"},
            {"namespace": "s3://lake", "name": "report.html"},
        ],
        "producer": "https://example.com/airflow",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }
    source = tmp_path / "event.json"
    source.write_text(json.dumps(event))
    result = runner.invoke(app, ["--uri", uri, "lineage", "import-openlineage", str(source)])
    assert result.exit_code == 0, result.output
    assert "recorded fraud version 1: 1 new input(s)" in result.stderr
    assert "ignored s3://lake report.html" in result.stderr
    target = tmp_path / "out.json"
    cairn(uri, "lineage", "export", "models:/fraud/1", "-o", str(target))
    exported = json.loads(target.read_text())
    assert exported["run"]["runId"] == run
    assert exported["inputs"] == [{"namespace": "s3://lake", "name": "cards/2026-11", "facets": {}}]
    assert json.loads(cairn(uri, "lineage", "export", "models:/fraud/1")) == exported
    # the exported event imports again: nothing new
    again = json.loads(cairn(uri, "lineage", "import-openlineage", str(target), "--json"))
    assert again == [
        {
            "recorded": [{"name": "fraud", "version": 1, "run_id": run, "inputs_added": 0}],
            "ignored": [],
        }
    ]


def test_show_both_ways_and_transitive_used_by(uri: str) -> None:
    cairn(uri, "models", "create", "base")
    cairn(uri, "versions", "create", "base", "--dataset", TRAIN)
    cairn(uri, "models", "create", "tuned")
    cairn(
        uri, "versions", "create", "tuned", "--parent", "models:/base/1", "--relation", "fine-tune"
    )
    cairn(uri, "models", "create", "small")
    cairn(uri, "versions", "create", "small", "--parent", "models:/tuned/1", "--relation", "distil")
    cairn(uri, "deployments", "set", "small-api", "models:/small/1", "--env", "prod")
    tree = cairn(uri, "lineage", "show", "models:/tuned/1", "--direction", "both")
    assert "came from" in tree and "went into" in tree
    assert tree.index("came from") < tree.index("models:/base/1") < tree.index("went into")
    assert tree.index("went into") < tree.index("models:/small/1")
    assert "served by small-api (prod)" in tree
    graph = json.loads(
        cairn(uri, "lineage", "show", "models:/tuned/1", "--direction", "both", "--json")
    )
    assert graph["direction"] == "both"
    assert {n["id"] for n in graph["nodes"]} >= {"models:/base/1", "models:/small/1"}
    down = json.loads(
        cairn(uri, "lineage", "show", "models:/tuned/1", "--direction", "downstream", "--json")
    )
    assert "models:/base/1" not in {n["id"] for n in down["nodes"]}
    said = refused(uri, "lineage", "show", "models:/tuned/1", "--downstream", "--direction", "both")
    assert "disagree" in said
    assert "direction" in refused(uri, "lineage", "show", "models:/tuned/1", "--direction", "up")
    # without --depth: today's listing; with it, transitive, and what serves
    users = json.loads(cairn(uri, "lineage", "used-by", TRAIN, "--json"))
    assert [(u["name"], u["version"]) for u in users] == [("base", 1)]
    impact = json.loads(cairn(uri, "lineage", "used-by", TRAIN, "--depth", "3", "--json"))
    assert [(v["id"], v["distance"]) for v in impact["versions"]] == [
        ("models:/base/1", 1),
        ("models:/tuned/1", 2),
        ("models:/small/1", 3),
    ]
    assert [s["id"] for s in impact["serving"]] == ["deployment:small-api"]
    table = cairn(uri, "lineage", "used-by", TRAIN, "--depth", "3")
    assert "models:/base/1 -fine-tune-> models:/tuned/1 -distil-> models:/small/1" in table
    assert "small-api" in table
    result = runner.invoke(app, ["--uri", uri, "lineage", "used-by", TRAIN, "--depth", "1"])
    assert result.exit_code == 0 and "truncated" in result.stderr
    assert "nothing serves" in result.stderr
    said = refused(uri, "lineage", "used-by", TRAIN, "--depth", "2", "--all")
    assert "--depth" in said
