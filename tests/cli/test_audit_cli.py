"""``cairn audit list|tail|verify`` end to end: against a live server and on a data directory."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time

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


# -- cairn audit tail ------------------------------------------------------------------------


def test_tail_prints_what_is_there_and_exits(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    start = json.loads(cairn(uri, "audit", "verify", "--json"))["head_seq"]  # a server's bootstrap
    cairn(uri, "models", "create", "fraud")
    cairn(uri, "versions", "create", "fraud")
    cairn(uri, "alias", "set", "fraud", "production", "1")
    cairn(uri, "models", "create", "churn")
    monkeypatch.setattr(audit_cli, "MAX_PAGE", 2)  # so that the command pages
    lines = cairn(uri, "audit", "tail", "--after", str(start), "--json").splitlines()
    events = [json.loads(line) for line in lines]  # one JSON object per line
    assert [(e["seq"], e["action"], e["model"]) for e in events] == [
        (start + 1, "model.create", "fraud"),
        (start + 2, "version.create", "fraud"),
        (start + 3, "alias.set", "fraud"),
        (start + 4, "model.create", "churn"),
    ]
    assert set(events[0]) == set(json.loads(cairn(uri, "audit", "list", "--json"))[0])
    everything = cairn(uri, "audit", "tail", "--json").splitlines()
    assert [json.loads(line)["seq"] for line in everything] == list(range(1, start + 5))
    picked = cairn(
        uri,
        "audit",
        "tail",
        "--since-seq",
        str(start),
        "--event",
        "alias.*",
        "--event",
        "version.create",
        "--json",
    ).splitlines()
    assert [json.loads(line)["action"] for line in picked] == ["version.create", "alias.set"]
    fraud = cairn(uri, "audit", "tail", "--model", "fraud", "--after", str(start + 1))
    rows = [line.split("  ") for line in fraud.splitlines()]
    assert [(r[0], r[3], r[4], r[5]) for r in rows] == [
        (str(start + 2), "version.create", "fraud v1", "-"),
        (str(start + 3), "alias.set", "fraud v1", "production"),
    ]
    assert rows[0][1][:4].isdigit() and rows[0][2]  # the time (UTC), the actor
    assert cairn(uri, "audit", "tail", "--after", str(start + 4)) == ""
    with pytest.raises(InvalidParameter, match="event filter"):
        runner.invoke(
            app, ["--uri", uri, "audit", "tail", "--event", "Alias"], catch_exceptions=False
        )


def _lines(proc: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """The lines ``proc`` prints, as they come, and the thread reading them."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def test_tail_follow_prints_events_as_they_land_until_ctrl_c(uri: str) -> None:
    cairn(uri, "models", "create", "fraud")
    start = json.loads(cairn(uri, "audit", "verify", "--json"))["head_seq"]
    command = ["--uri", uri, "audit", "tail", "--follow", "--after", str(start - 1)]
    with subprocess.Popen(
        [sys.executable, "-m", "cairn.cli", *command, "--event", "model.*", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        lines, reader = _lines(proc)
        try:
            first = json.loads(lines.get(timeout=60))  # what was there: printed, flushed
            assert (first["seq"], first["action"], first["model"]) == (
                start,
                "model.create",
                "fraud",
            )
            cairn(uri, "versions", "create", "fraud")  # not a model.* event
            cairn(uri, "models", "create", "churn")
            second = json.loads(lines.get(timeout=60))
            assert (second["seq"], second["model"]) == (start + 2, "churn")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0  # Ctrl-C is the way out, not a failure
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=10)
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_tail_follow_starts_at_the_end_unless_told(uri: str) -> None:
    """``cairn audit tail --follow`` is ``tail -f``: what is already in the log is not
    printed again (on a big log that would be all of it); only what comes next is."""
    cairn(uri, "models", "create", "fraud")
    command = ["--uri", uri, "audit", "tail", "--follow", "--event", "model.*", "--json"]
    with subprocess.Popen(
        [sys.executable, "-m", "cairn.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        lines, reader = _lines(proc)
        try:
            # the tail has started once a model made now reaches it; keep making them
            # until one does: each one is printed, and fraud (made before) never is
            made = []
            while lines.empty() and len(made) < 60:
                made.append(f"new-{len(made)}")
                cairn(uri, "models", "create", made[-1])
                time.sleep(0.5)
            first = json.loads(lines.get(timeout=60))
            assert first["model"] in made and first["model"] != "fraud"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=10)


def test_tail_follow_ends_quietly_when_its_reader_goes_away(uri: str) -> None:
    """``cairn audit tail --follow | head -n 1``: the next event finds the pipe closed,
    and the command ends with status 0 and no traceback."""
    cairn(uri, "models", "create", "fraud")
    command = ["--uri", uri, "audit", "tail", "--follow", "--after", "0", "--event", "model.*"]
    with subprocess.Popen(
        [sys.executable, "-m", "cairn.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert "model.create" in proc.stdout.readline()  # as head -n 1 reads it
            proc.stdout.close()
            cairn(uri, "models", "create", "churn")  # the next line has nowhere to go
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.stderr is not None
        assert proc.stderr.read() == ""
