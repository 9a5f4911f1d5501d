"""``cairn deployments`` and ``cairn feedback`` through the real CLI, over HTTP and on a data
directory, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from cairn.cli.main import app
from cairn.errors import CairnError

runner = CliRunner()


def cairn(uri: str, *args: str) -> Any:
    result = runner.invoke(app, ["--uri", uri, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result


def refused(uri: str, *args: str) -> str:
    """The Cairn error the command raised (``cairn.cli.main.main`` prints it in one line)."""
    result = runner.invoke(app, ["--uri", uri, *args])
    assert isinstance(result.exception, CairnError), result.output
    return result.exception.message


def test_deployments_and_feedback_end_to_end(uri: str, tmp_path: Path) -> None:
    cairn(uri, "models", "create", "fraud")
    for _ in range(2):
        cairn(uri, "versions", "create", "fraud")
    cairn(uri, "alias", "set", "fraud", "production", "2")
    made = cairn(
        uri, "deployments", "set", "api-prod", "models:/fraud/1", "--env", "prod",
        "--url", "https://fraud.example.com", "--reason", "launch", "--json",
    )  # fmt: skip
    assert (made["version"], made["environment"], made["alias"]) == (1, "prod", None)
    assert "serves version 1, not version 2" in refused(
        uri, "deployments", "set", "api-prod", "models:/fraud@production", "--expect", "2"
    )
    moved = cairn(
        uri, "deployments", "set", "api-prod", "models:/fraud@production", "--expect", "1",
        "--json",
    )  # fmt: skip
    assert (moved["version"], moved["alias"]) == (2, "production")
    history = cairn(uri, "deployments", "history", "api-prod", "--json")
    assert [(e["from_version"], e["to_version"]) for e in history] == [(1, 2), (None, 1)]
    table = cairn(uri, "deployments", "history", "api-prod").stdout
    assert "launch" in table and "@production" in table

    v1_at, v2_at = history[1]["at"], history[0]["at"]
    points = tmp_path / "points.csv"
    points.write_text(
        f"key,value,timestamp,region\nlatency_ms,10,{v1_at},eu\nlatency_ms,30,{v2_at},\n",
        encoding="utf-8",
    )
    receipt = cairn(uri, "feedback", "push", "api-prod", "--file", str(points), "--json")
    assert (receipt["accepted"], receipt["versions"]) == (2, {"1": 1, "2": 1})
    as_json = tmp_path / "points.json"
    as_json.write_text(
        json.dumps({"points": [{"key": "drift", "value": 0.5, "timestamp": v2_at}]}),
        encoding="utf-8",
    )
    cairn(uri, "feedback", "push", "api-prod", "-f", str(as_json), "--metric", "latency_ms=50")
    shown = cairn(uri, "feedback", "show", "api-prod", "--json")
    assert [(p["key"], p["version"]) for p in shown][:2] == [("latency_ms", 1), ("latency_ms", 2)]
    assert shown[0]["labels"] == {"region": "eu"} and len(shown) == 4
    of_v1 = cairn(uri, "feedback", "show", "models:/fraud/1", "--json")
    assert [p["value"] for p in of_v1] == [10.0]
    summary = cairn(uri, "feedback", "summary", "models:/fraud/2", "--json")
    assert [(s["key"], s["count"], s["min"], s["max"], s["last"]) for s in summary] == [
        ("drift", 1, 0.5, 0.5, 0.5),
        ("latency_ms", 2, 30.0, 50.0, 50.0),
    ]
    by_alias = cairn(
        uri, "feedback", "summary", "models:/fraud@production", "--deployment", "api-prod",
        "--json",
    )  # fmt: skip
    assert by_alias == summary  # @production is version 2, api-prod its only deployment

    at_v1 = cairn(uri, "deployments", "get", "api-prod", "--as-of", v1_at, "--json")
    assert [e["to_version"] for e in at_v1] == [1]
    ran = cairn(uri, "deployments", "where", "fraud", "1", "--json")
    assert [(e["deployment"], e["until"]) for e in ran] == [("api-prod", v2_at)]
    listed = cairn(uri, "deployments", "list", "--model", "fraud", "--json")
    assert [d["name"] for d in listed] == ["api-prod"]
    cairn(uri, "deployments", "retire", "api-prod", "--reason", "moved", "--yes")
    assert cairn(uri, "deployments", "list", "--json") == []
    retired = cairn(uri, "deployments", "list", "--retired", "--json")
    assert [d["version"] for d in retired] == [None]
    assert "already retired" in refused(uri, "deployments", "retire", "api-prod", "--yes")


def test_bad_input_is_one_clear_line(uri: str, tmp_path: Path) -> None:
    cairn(uri, "models", "create", "m")
    cairn(uri, "versions", "create", "m")
    assert "give its environment" in refused(uri, "deployments", "set", "d", "models:/m/1")
    cairn(uri, "deployments", "set", "d", "models:/m/1", "--env", "staging")
    assert "not a finite number" in refused(uri, "feedback", "push", "d", "--metric", "a=nan")
    assert "nothing to post" in refused(uri, "feedback", "push", "d")
    bad = tmp_path / "bad.csv"
    bad.write_text("key,value\nauc,1\n", encoding="utf-8")
    assert "no column timestamp" in refused(uri, "feedback", "push", "d", "--file", str(bad))
    late = tmp_path / "late.json"
    late.write_text('[{"key": "a", "value": 1, "timestamp": "yesterday"}]', encoding="utf-8")
    assert "not RFC 3339" in refused(uri, "feedback", "push", "d", "--file", str(late))
    words = tmp_path / "words.csv"
    words.write_text("key,value,timestamp\nauc,high,2026-01-01T00:00:00Z\n", encoding="utf-8")
    assert "line 2: value 'high'" in refused(uri, "feedback", "push", "d", "-f", str(words))
    assert "does not exist" in refused(uri, "deployments", "get", "ghost")
    shown = cairn(uri, "feedback", "show", "d", "--json")
    assert shown == []
