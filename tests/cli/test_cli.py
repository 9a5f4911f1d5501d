"""The ``cairn`` command end to end: against a live server over HTTP, and on a directory."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save
from typer.testing import CliRunner

from cairn.cli.main import app

runner = CliRunner()


def cairn(uri: str, *args: str) -> str:
    result = runner.invoke(app, ["--uri", uri, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_tour(uri: str) -> None:
    cairn(uri, "models", "create", "fraud", "--tag", "team=risk", "--description", "Fraud")
    out = cairn(
        uri, "versions", "create", "fraud", "--param", "lr=0.1", "--metric", "auc=0.93", "--json"
    )
    assert json.loads(out)["version"] == 1
    cairn(uri, "versions", "create", "fraud", "--metric", "auc=0.97")
    cairn(uri, "alias", "set", "fraud", "production", "1")
    cairn(uri, "alias", "set", "fraud", "production", "2", "--expect", "1")
    got = json.loads(cairn(uri, "versions", "get", "models:/fraud@production", "--json"))
    assert got["version"] == 2 and got["aliases"] == ["production"]
    history = json.loads(cairn(uri, "alias", "history", "fraud", "production", "--json"))
    assert [(e["from_version"], e["to_version"]) for e in history] == [(1, 2), (None, 1)]
    listed = json.loads(cairn(uri, "models", "list", "--json"))
    assert [m["name"] for m in listed] == ["fraud"]
    found = json.loads(cairn(uri, "versions", "search", "metrics.auc >= 0.95", "--json"))
    assert [v["version"] for v in found] == [2]
    versions = json.loads(cairn(uri, "versions", "list", "fraud", "--json"))
    assert [v["version"] for v in versions] == [2, 1]
    cairn(uri, "versions", "stage", "models:/fraud/1", "Staging")
    cairn(uri, "versions", "delete", "models:/fraud/1", "--yes")
    cairn(uri, "versions", "restore", "models:/fraud/1")
    assert "fraud" in cairn(uri, "models", "get", "fraud")
    cairn(uri, "models", "delete", "fraud", "--yes")
    assert json.loads(cairn(uri, "models", "list", "--json")) == []


def test_json_matches_the_api(live_server: str) -> None:
    import httpx

    cairn(live_server, "models", "create", "m")
    cairn(live_server, "versions", "create", "m")
    printed = json.loads(cairn(live_server, "versions", "get", "models:/m/1", "--json"))
    served = httpx.get(
        f"{live_server}/api/v1/models/m/versions/1",
        headers={"Authorization": f"Bearer {os.environ['CAIRN_TOKEN']}"},
    ).json()
    assert printed == served


def test_errors_are_one_line_and_nonzero(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "--uri", str(tmp_path / "d"), "models", "get", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error (RESOURCE_DOES_NOT_EXIST): registered model 'nope' does not exist"
    ]


def test_bad_pairs_and_unreachable_server(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["--uri", str(tmp_path), "versions", "create", "m", "--metric", "auc=high"]
    )
    assert result.exit_code != 0
    proc = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "--uri", "http://127.0.0.1:9", "models", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "cannot reach Cairn" in proc.stderr


def test_delete_asks_without_yes(tmp_path: Path) -> None:
    uri = str(tmp_path / "d")
    cairn(uri, "models", "create", "m")
    result = runner.invoke(app, ["--uri", uri, "models", "delete", "m"], input="n\n")
    assert result.exit_code != 0
    assert json.loads(cairn(uri, "models", "get", "m", "--json"))["name"] == "m"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn.cli", *args], capture_output=True, text=True, check=False
    )


def test_usage_errors_exit_2_with_clicks_message(tmp_path: Path) -> None:
    proc = run_cli("--uri", str(tmp_path), "versions", "get")
    assert proc.returncode == 2
    assert "Missing argument" in proc.stderr


def test_verify_exits_1_when_bytes_are_corrupt(tmp_path: Path) -> None:
    data, src = tmp_path / "d", tmp_path / "w.bin"
    src.write_bytes(b"weights" * 100)
    assert run_cli("--uri", str(data), "--quiet", "push", str(src), "--model", "m").returncode == 0
    assert run_cli("--uri", str(data), "verify").returncode == 0
    [blob] = [p for p in (data / "artifacts").rglob("*") if p.is_file() and "sha256" in p.parts]
    blob.chmod(0o644)
    blob.write_bytes(b"X" * 700)
    recent = run_cli("--uri", str(data), "verify", "--older-than", "30", "--json")
    assert recent.returncode == 0  # verified a moment ago: not due, not read
    assert json.loads(recent.stdout)["checked"] == 0
    proc = run_cli("--uri", str(data), "verify", "--jobs", "3")
    assert proc.returncode == 1
    assert "CORRUPT" in proc.stderr and "m v1" in proc.stderr
    assert "verifying" in proc.stderr  # the progress bar, on stderr


@pytest.mark.parametrize("where", ["global", "command"])
def test_quiet_silences_push_and_pull_given_to_cairn_or_to_the_command(
    tmp_path: Path, where: str
) -> None:
    """`cairn push … --quiet` (as the issue writes it) and `cairn --quiet push …` alike
    leave stderr empty; without either, the progress and the summary go there."""
    data, src = str(tmp_path / "d"), tmp_path / "w.bin"
    src.write_bytes(b"weights" * 100)
    out = str(tmp_path / "out")

    def run(quiet: bool, *args: str) -> subprocess.CompletedProcess[str]:
        if not quiet:
            return run_cli("--uri", data, *args)
        if where == "global":
            return run_cli("--uri", data, "--quiet", *args)
        return run_cli("--uri", data, *args, "--quiet")

    loud = run(False, "push", str(src), "--model", "m")
    assert loud.returncode == 0 and "pushed m version 1" in loud.stderr
    pushed = run(True, "push", str(src), "--model", "m")
    assert pushed.returncode == 0 and pushed.stderr == ""
    assert "version      2" in pushed.stdout
    pulled = run(True, "pull", "models:/m/2", "-o", out, "--cache-dir", str(tmp_path / "c"))
    assert pulled.returncode == 0 and pulled.stderr == ""
    assert pulled.stdout.strip() == out
    assert Path(out, "w.bin").read_bytes() == src.read_bytes()


def test_push_then_pull_as_json(uri: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "w.bin").write_bytes(b"weights" * 1000)
    (src / "sub" / "c.json").write_bytes(b"{}")
    pushed = json.loads(cairn(uri, "push", str(src), "--model", "m", "--json"))
    assert pushed["version"] == 1 and pushed["status"] == "READY"
    cache, out = str(tmp_path / "cache"), tmp_path / "out"
    args = ("pull", "models:/m/latest", "-o", str(out), "--cache-dir", cache, "--json")
    first = json.loads(cairn(uri, *args))
    assert first == {
        "name": "m",
        "version": 1,
        "path": str(out.resolve()),
        "files": 2,
        "bytes": 7002,
        "downloaded_files": 2,
        "downloaded_bytes": 7002,
    }
    assert (out / "sub" / "c.json").read_bytes() == b"{}"
    again = json.loads(cairn(uri, *args))
    assert (again["downloaded_files"], again["downloaded_bytes"]) == (0, 0)


def test_push_and_pull_say_what_went_over_the_wire(tmp_path: Path) -> None:
    data, src, cache = tmp_path / "d", tmp_path / "src", tmp_path / "cache"
    src.mkdir()
    (src / "a.bin").write_bytes(b"a" * 10)
    (src / "b.bin").write_bytes(b"b" * 5)

    def said(*args: str) -> str:
        proc = run_cli("--uri", str(data), *args)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr.strip().splitlines()[-1]

    push = ("push", str(src), "--model", "m")
    assert said(*push) == "pushed m version 1: 2 file(s), 15 bytes; all sent"
    assert said(*push) == "pushed m version 2: 2 file(s), 15 bytes; none sent, all already stored"
    (src / "b.bin").write_bytes(b"c" * 7)
    assert said(*push).endswith(
        "2 file(s), 17 bytes; sent 1 file(s), 7 bytes, the rest already stored"
    )
    pull = ("pull", "--cache-dir", str(cache), "-o")
    out = tmp_path / "out"
    assert said(*pull, str(out), "models:/m/1") == f"2 file(s), 15 bytes in {out}; all downloaded"
    assert said(*pull, str(tmp_path / "o2"), "models:/m/1").endswith(
        "; none downloaded, all from the cache"
    )
    assert said(*pull, str(tmp_path / "o3"), "models:/m/3").endswith(
        "; downloaded 1 file(s), 7 bytes, the rest from the cache"
    )


def test_pulled_files_follow_the_umask(tmp_path: Path) -> None:
    data, src = tmp_path / "d", tmp_path / "w.bin"
    src.write_bytes(b"w")
    cairn(str(data), "push", str(src), "--model", "m")
    old = os.umask(0o022)
    try:
        cairn(
            str(data),
            "pull",
            "models:/m/1",
            "-o",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
        )
    finally:
        os.umask(old)
    assert (tmp_path / "out" / "w.bin").stat().st_mode & 0o777 == 0o644


def test_versions_files_lists_paths_sizes_and_digests(uri: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    files = {"w.bin": b"weights" * 1000, "sub/c.json": b"{}"}
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    cairn(uri, "push", str(src), "--model", "m")
    expected = [
        {"path": rel, "size": len(data), "digest": "sha256:" + hashlib.sha256(data).hexdigest()}
        for rel, data in sorted(files.items())
    ]
    assert json.loads(cairn(uri, "versions", "files", "models:/m/latest", "--json")) == expected
    linked = json.loads(cairn(uri, "versions", "files", "models:/m/1", "--links", "--json"))
    assert linked == [{**f, "url": None} for f in expected]  # local disk: no direct links
    result = runner.invoke(app, ["--uri", uri, "versions", "files", "models:/m/1", "--links"])
    assert result.exit_code == 0, result.output
    assert "w.bin" in result.stdout and "no direct links" in result.stderr


def test_prune_is_a_dry_run_until_yes(uri: str) -> None:
    cairn(uri, "models", "create", "m")
    for _ in range(6):
        cairn(uri, "versions", "create", "m")
    cairn(uri, "alias", "set", "m", "champion", "2")
    result = runner.invoke(app, ["--uri", uri, "versions", "prune", "m", "--keep", "2"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "would delete 3 version(s) of 'm': 1, 3-4",
        "kept though older (an alias, a stage, a deployment, a lineage child or an upload holds "
        "them): 2",
        "0 bytes are held by those versions alone (gc may reclaim them once they are purged)",
        "run again with --yes to delete them",
    ]
    listed = json.loads(cairn(uri, "versions", "list", "m", "--json"))
    assert len(listed) == 6
    done = json.loads(cairn(uri, "versions", "prune", "m", "--keep", "2", "--yes", "--json"))
    assert done == {
        "model": "m",
        "keep": 2,
        "keep_days": None,
        "filter": None,
        "dry_run": False,
        "purge": False,
        "pruned": [1, 3, 4],
        "protected": [2],
        "bytes": 0,
    }
    listed = json.loads(cairn(uri, "versions", "list", "m", "--json"))
    assert [v["version"] for v in listed] == [6, 5, 2]
    refused = runner.invoke(app, ["--uri", uri, "versions", "prune", "m", "--keep", "0"])
    assert refused.exit_code == 2 and "greater than or equal to 1" in refused.stderr
    cairn(uri, "versions", "tag", "models:/m/5", "run=scratch")
    scratch = runner.invoke(
        app,
        ["--uri", uri, "versions", "prune", "m", "--keep", "1", "--filter", "tags.run = 'scratch'"],
    )
    assert scratch.exit_code == 0, scratch.output
    assert scratch.stderr.splitlines()[0] == (
        "would delete 1 version(s) matching tags.run = 'scratch' of 'm': 5"
    )


def test_gc_prunes_with_keep_or_the_setting(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    cairn(data, "models", "create", "m")
    for _ in range(3):
        cairn(data, "versions", "create", "m")
    dry = json.loads(cairn(data, "gc", "--keep", "1", "--json"))
    assert dry["dry_run"] is True and dry["pruned_versions"] == [["m", 1], ["m", 2]]
    assert (dry["webhook_deliveries"], dry["feedback_points"]) == (0, 0)
    result = runner.invoke(app, ["--uri", data, "gc", "--keep-days", "3"])
    assert result.exit_code == 2 and "--keep-days goes with --keep" in result.stderr
    result = runner.invoke(app, ["--uri", data, "gc", "--yes"], env={"CAIRN_KEEP_VERSIONS": "2"})
    assert result.exit_code == 0, result.output
    assert "pruned (soft-deleted) 1 version(s) of 1 model(s)" in result.stderr
    listed = json.loads(cairn(data, "versions", "list", "m", "--json"))
    assert [v["version"] for v in listed] == [3, 2]


def test_diff_shows_what_changed_and_can_fail_on_it(uri: str, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "w.bin").write_bytes(b"first weights")
    (two / "w.bin").write_bytes(b"second weights")
    (two / "README.md").write_bytes(b"notes")
    cairn(uri, "models", "create", "m")
    cairn(uri, "--quiet", "push", str(one), "--model", "m", "--metric", "auc=0.5")
    cairn(uri, "--quiet", "push", str(two), "--model", "m", "--metric", "auc=0.75")
    shown = cairn(uri, "diff", "models:/m/1", "models:/m/2")
    assert shown.splitlines()[:2] == [
        "models:/m/1 -> models:/m/2",
        "files: 0 unchanged, 1 changed, 1 added; a pull of version 2 with version 1 cached "
        "downloads 19 bytes",
    ]
    assert "+0.25" in shown and "13 -> 14" in shown
    data = json.loads(cairn(uri, "diff", "models:/m/1", "models:/m/2", "--json"))
    assert [(f["kind"], f["path"]) for f in data["files"]] == [
        ("changed", "w.bin"),
        ("added", "README.md"),
    ]
    assert data["metrics"] == [
        {"key": "auc", "kind": "changed", "old": 0.5, "new": 0.75, "delta": 0.25}
    ]
    differs = runner.invoke(
        app, ["--uri", uri, "diff", "models:/m/1", "models:/m/2", "--exit-code"]
    )
    assert differs.exit_code == 1
    same = cairn(uri, "diff", "models:/m/2", "models:/m/latest", "--exit-code")
    assert "no differences (2 file(s), all the same)" in same


def test_diff_tensors_names_the_layers_a_fine_tune_changed(uri: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    embed, head = rng.standard_normal((32, 8)), rng.standard_normal((4, 8))
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    base.mkdir()
    tuned.mkdir()
    (base / "model.safetensors").write_bytes(save({"embed": embed, "head": head}))
    (tuned / "model-1.safetensors").write_bytes(save({"embed": embed}))
    (tuned / "model-2.safetensors").write_bytes(save({"head": head * 2}))
    cairn(uri, "models", "create", "m")
    cairn(uri, "--quiet", "push", str(base), "--model", "m")
    cairn(uri, "--quiet", "push", str(tuned), "--model", "m")

    shown = cairn(uri, "diff", "models:/m/1", "models:/m/2", "--tensors")
    assert (
        f"tensors: 1 unchanged ({embed.nbytes:,} bytes), 1 changed; "
        f"{head.nbytes:,} bytes new or changed"
    ) in shown
    assert re.search(r"head +changed +values +F64 \[4, 8\] +F64 \[4, 8\] +256", shown)
    data = json.loads(cairn(uri, "diff", "models:/m/1", "models:/m/2", "--tensors", "--json"))
    assert [(c["kind"], c["name"], c["what"]) for c in data["tensors"]["changes"]] == [
        ("changed", "head", ["values"])
    ]
    assert data["tensors"]["changes"][0]["new"]["path"] == "model-2.safetensors"
    plain = json.loads(cairn(uri, "diff", "models:/m/1", "models:/m/2", "--json"))
    assert plain["tensors"] is None


def test_push_if_changed_and_create_exist_ok_make_re_runs_idempotent(
    uri: str, tmp_path: Path
) -> None:
    cairn(uri, "models", "create", "m", "--tag", "team=risk")
    refused = runner.invoke(app, ["--uri", uri, "models", "create", "m"])
    assert refused.exit_code != 0
    shown = json.loads(cairn(uri, "models", "create", "m", "--exist-ok", "--json"))
    assert (shown["name"], shown["tags"]) == ("m", {"team": "risk"})
    folder = tmp_path / "model"  # not tmp_path: the registry's data folder is in it
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"weights")
    cairn(uri, "--quiet", "push", str(folder), "--model", "m")
    result = runner.invoke(
        app, ["--uri", uri, "push", str(folder), "--model", "m", "--if-changed", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "unchanged: m version 1 has the same 1 file(s); no version created" in result.stderr
    assert json.loads(result.stdout)["version"] == 1


def test_retention_shows_sets_and_drops_a_models_policy(uri: str) -> None:
    cairn(uri, "models", "create", "m")
    shown = cairn(uri, "versions", "retention", "m")
    assert "none: the instance's applies" in shown and "every version" in shown
    set_json = json.loads(
        cairn(uri, "versions", "retention", "m", "--keep", "2", "--keep-days", "7", "--json")
    )
    assert set_json == {
        "name": "m",
        "own": {"keep": 2, "keep_days": 7.0},
        "effective": {"keep": 2, "keep_days": 7.0},
    }
    assert "the newest 2 version(s) and any from the last 7 day(s)" in cairn(
        uri, "versions", "retention", "m"
    )
    assert json.loads(cairn(uri, "versions", "retention", "m", "--keep-all", "--json"))["own"] == {
        "keep": None,
        "keep_days": None,
    }
    assert (
        json.loads(cairn(uri, "versions", "retention", "m", "--inherit", "--json"))["own"] is None
    )
    for bad in (["--keep", "2", "--inherit"], ["--keep-days", "3"], ["--keep", "0"]):
        refused = runner.invoke(app, ["--uri", uri, "versions", "retention", "m", *bad])
        assert refused.exit_code == 2, refused.output


def test_alias_rollback_moves_back_and_says_where(uri: str) -> None:
    cairn(uri, "models", "create", "m")
    cairn(uri, "versions", "create", "m")
    cairn(uri, "versions", "create", "m")
    cairn(uri, "alias", "set", "m", "champion", "1")
    cairn(uri, "alias", "set", "m", "champion", "2")
    result = runner.invoke(app, ["--uri", uri, "alias", "rollback", "m", "champion", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == 1
    assert result.stderr.strip() == "@champion of 'm' now points at version 1"


def test_pull_with_include_and_exclude(uri: str, tmp_path: Path) -> None:
    src = tmp_path / "m"
    (src / "tokenizer").mkdir(parents=True)
    (src / "config.json").write_bytes(b"{}")
    (src / "tokenizer" / "vocab.txt").write_bytes(b"abc")
    (src / "weights.bin").write_bytes(b"w" * 1000)
    cairn(uri, "models", "create", "m")
    cairn(uri, "--quiet", "push", str(src), "--model", "m")
    out = tmp_path / "out"
    cache = str(tmp_path / "cache")
    pulled = cairn(
        uri, "--quiet", "pull", "models:/m/1", "-o", str(out), "--cache-dir", cache,
        "--exclude", "*.bin", "--json",
    )  # fmt: skip
    assert (json.loads(pulled)["files"], json.loads(pulled)["bytes"]) == (2, 5)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["config.json", "vocab.txt"]
    refused = runner.invoke(
        app, ["--uri", uri, "pull", "models:/m/1", "-o", str(tmp_path / "x"), "--include", "*.pt"]
    )
    assert refused.exit_code != 0 and "no file matches '*.pt'" in str(refused.exception)


def test_values_that_look_like_rich_markup_are_printed_as_they_are(uri: str) -> None:
    cairn(uri, "models", "create", "m")
    shown = cairn(uri, "versions", "create", "m", "--tag", "k=[/x] [bold]b")
    assert "k=[/x] [bold]b" in shown
    cairn(uri, "versions", "create", "m", "--tag", "k=[red]r")
    assert "[/x] [bold]b  [red]r" in cairn(uri, "diff", "models:/m/1", "models:/m/2")
    proc = run_cli("--uri", uri, "versions", "get", "models:/m/9")
    assert proc.returncode == 1 and "[/x]" not in proc.stderr  # and no traceback
    assert proc.stderr.startswith("error (RESOURCE_DOES_NOT_EXIST)")


def test_db_current_prints_json(tmp_path: Path) -> None:
    """A read command: ``--json`` gives the revisions alone on stdout."""
    where = ["--data-dir", str(tmp_path), "--backend-uri", f"sqlite:///{tmp_path / 'c.db'}"]
    result = runner.invoke(app, ["db", "current", *where, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    empty = json.loads(result.stdout)
    assert empty["revision"] is None and empty["head"]
    upgraded = runner.invoke(app, ["db", "upgrade", *where], catch_exceptions=False)
    assert upgraded.exit_code == 0, upgraded.output
    result = runner.invoke(app, ["db", "current", *where, "--json"], catch_exceptions=False)
    assert json.loads(result.stdout) == {"revision": empty["head"], "head": empty["head"]}


def test_db_commands_leave_another_applications_sqlite_file_as_it_was(tmp_path: Path) -> None:
    """`cairn db current` (a read) and `cairn db upgrade` (refused) pointed at an MLflow
    tracking database: it was switched to WAL for good, with Cairn's lock files left beside
    it. The folder now holds exactly what it held."""
    import sqlite3

    folder = tmp_path / "mlruns"
    folder.mkdir()
    path = folder / "mlflow.db"
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name TEXT)")
        raw.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        raw.execute("INSERT INTO alembic_version VALUES ('dc11669786a5')")
    raw.close()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    where = ["--data-dir", str(tmp_path / "data"), "--backend-uri", f"sqlite:///{path}"]
    shown = runner.invoke(app, ["db", "current", *where, "--json"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["revision"] == "dc11669786a5"
    refused = run_cli("db", "upgrade", *where)
    assert refused.returncode == 1 and "not a Cairn database" in refused.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_db_current_where_no_database_is_creates_nothing(tmp_path: Path, as_json: bool) -> None:
    """`cairn db current` on a path with no database made an empty one there (and its lock
    file). A read creates nothing: it says there is none (a null revision in --json), and
    `cairn db upgrade` still creates it."""
    data = tmp_path / "data"
    data.mkdir()
    for where in (
        ["--data-dir", str(data)],
        ["--data-dir", str(tmp_path / "none")],
        ["--backend-uri", f"sqlite:///{data / 'other.db'}"],
    ):
        proc = run_cli("db", "current", *where, *(["--json"] if as_json else []))
        assert proc.returncode == 0, proc.stderr
        assert "no metadata database at" in proc.stderr and "cairn db upgrade" in proc.stderr
        if as_json:
            assert json.loads(proc.stdout)["revision"] is None
        else:
            assert proc.stdout.startswith("(no database) (code: ")
        assert sorted(tmp_path.rglob("*")) == [data]
    upgraded = run_cli("db", "upgrade", "--data-dir", str(data))
    assert upgraded.returncode == 0, upgraded.stderr
    assert (data / "cairn.db").is_file()


def test_db_upgrade_of_a_database_elsewhere_makes_no_data_directory(tmp_path: Path) -> None:
    """`cairn db upgrade --backend-uri sqlite:///…` made an empty ./cairn-data (the default
    data directory) in the current folder though it only migrates a database elsewhere."""
    import cairn as cairn_package

    work = tmp_path / "work"
    work.mkdir()
    path = tmp_path / "registry.db"
    proc = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "db", "upgrade", "--backend-uri", f"sqlite:///{path}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=work,
        env={
            **{k: v for k, v in os.environ.items() if k != "CAIRN_DATA_DIR"},
            # this cairn, wherever the test runs from (the call runs in another folder)
            "PYTHONPATH": str(Path(cairn_package.__file__).parents[1]),
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert path.is_file()
    assert list(work.iterdir()) == []
