"""``cairn audit list|verify`` end to end: against a live server and on a data directory."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from cairn.cli import audit as audit_cli
from cairn.cli.main import app
from cairn.errors import InvalidParameter
from cairn.settings import Settings

runner = CliRunner()


def cairn(uri: str, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--uri", uri, *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout


def test_who_moved_production(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cairn(uri, "models", "create", "fraud")
    cairn(uri, "versions", "create", "fraud")
    cairn(uri, "versions", "create", "fraud")
    cairn(uri, "alias", "set", "fraud", "production", "1")
    cairn(uri, "alias", "set", "fraud", "production", "2")
    events = json.loads(
        cairn(uri, "audit", "list", "--model", "fraud", "--alias", "production", "--json")
    )
    assert [(e["action"], e["before"], e["after"]) for e in events] == [
        ("alias.set", 1, 2),
        ("alias.set", None, 1),
    ]
    assert all(e["at"].endswith("Z") and e["outcome"] == "ok" for e in events)
    monkeypatch.setattr(audit_cli, "out", Console(width=200))  # room for every column
    table = cairn(uri, "audit", "list", "--model", "fraud")
    assert "alias.set" in table and "1 → 2" in table and "version.create" in table
    head = json.loads(cairn(uri, "audit", "verify", "--json"))["head_seq"]  # a server's
    # bootstrap comes first: its admin user and token
    limited = json.loads(cairn(uri, "audit", "list", "--limit", "3", "--json"))
    assert [e["seq"] for e in limited] == [head, head - 1, head - 2]  # newest first, paged
    since = json.loads(
        cairn(uri, "audit", "list", "--since", limited[1]["at"], "--oldest-first", "--json")
    )
    assert [e["seq"] for e in since] == [head - 1, head]
    assert json.loads(cairn(uri, "audit", "list", "--since", "2999-01-01", "--json")) == []


def test_verify_exits_1_when_the_log_was_changed(uri: str, settings: Settings) -> None:
    base = json.loads(cairn(uri, "audit", "verify", "--json"))["events"]  # a server's bootstrap
    cairn(uri, "models", "create", "fraud")
    cairn(uri, "models", "create", "churn")
    assert f"intact: {base + 2} events" in cairn(uri, "audit", "verify")
    report = json.loads(cairn(uri, "audit", "verify", "--json"))
    assert (report["ok"], report["events"], report["head_seq"]) == (True, base + 2, base + 2)
    # the server's database, or the one the CLI opened in the data directory
    url = str(settings.backend_uri) if uri.startswith("http") else f"sqlite:///{uri}/cairn.db"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1"))
    engine.dispose()
    out = cairn(uri, "audit", "verify", code=1)
    assert "broken at event 1" in out
    report = json.loads(cairn(uri, "audit", "verify", "--json", code=1))
    assert (report["ok"], report["first_bad_seq"]) == (False, 1)


def test_bad_times_are_refused(tmp_path: object) -> None:
    with pytest.raises(InvalidParameter, match="--since"):
        runner.invoke(
            app,
            ["--uri", str(tmp_path), "audit", "list", "--since", "yesterday"],
            catch_exceptions=False,
        )


def test_verify_against_a_recorded_head_finds_a_cut_off_tail(uri: str, settings: Settings) -> None:
    cairn(uri, "models", "create", "fraud")
    printed = cairn(uri, "audit", "verify").split("head ")[1].strip()  # SEQ:HASH
    head, digest = printed.split(":")
    cairn(uri, "models", "create", "churn")
    assert "intact" in cairn(uri, "audit", "verify", "--anchor", printed)
    url = str(settings.backend_uri) if uri.startswith("http") else f"sqlite:///{uri}/cairn.db"
    engine = create_engine(url)
    with engine.begin() as conn:  # the newest events removed, the head set back to match
        conn.execute(text("DELETE FROM audit_events WHERE seq >= :s"), {"s": int(head)})
        last = conn.execute(text("SELECT max(seq) FROM audit_events")).scalar() or 0
        tip = conn.execute(text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": last})
        conn.execute(
            text("UPDATE audit_head SET seq = :s, hash = :h"),
            {"s": last, "h": tip.scalar() or "0" * 64},
        )
    engine.dispose()
    assert "intact" in cairn(uri, "audit", "verify")  # consistent without the recorded head
    out = cairn(uri, "audit", "verify", "--anchor", f"{head}:{digest}", code=1)
    assert f"broken at event {head}" in out and "recorded head" in out
    report = json.loads(cairn(uri, "audit", "verify", "--anchor", printed, "--json", code=1))
    assert (report["ok"], report["first_bad_seq"]) == (False, int(head))
    with pytest.raises(InvalidParameter, match="SEQ:HASH"):
        runner.invoke(
            app, ["--uri", uri, "audit", "verify", "--anchor", digest], catch_exceptions=False
        )
