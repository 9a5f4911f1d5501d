"""The ``cairn`` command as a user meets it: pagination, option values, narrow output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cairn.cli.main import app
from cairn.errors import InvalidParameter

runner = CliRunner()


def cairn(uri: str, *args: str) -> str:
    result = runner.invoke(app, ["--uri", uri, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (["models", "list"], "name"),
        (["versions", "list", "m"], "version"),
        (["versions", "search", "name = 'm'"], "version"),
    ],
)
def test_json_listings_page_with_the_next_page_token(
    uri: str, command: list[str], key: str
) -> None:
    """--json --max-results N says where the next page starts (on stderr, stdout staying the
    JSON alone), as the table does: following it reaches every item once."""
    for name in ("m", "n", "o"):
        cairn(uri, "models", "create", name)
    for _ in range(3):
        cairn(uri, "versions", "create", "m")
    seen: list[object] = []
    token: list[str] = []
    for _ in range(5):
        result = runner.invoke(
            app, ["--uri", uri, *command, "--max-results", "2", "--json", *token]
        )
        assert result.exit_code == 0, result.output
        seen += [item[key] for item in json.loads(result.stdout)]
        found = re.search(r"--page-token (\S+)", result.stderr)
        if found is None:
            break
        token = ["--page-token", found.group(1)]
    assert sorted(seen, key=str) == sorted({*seen}, key=str)
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (["models", "list"], "name"),
        (["versions", "list", "m"], "version"),
        (["versions", "search", "name = 'm'"], "version"),
        (["approvals", "list", "--status", "all"], "id"),
    ],
)
def test_all_follows_every_page(uri: str, command: list[str], key: str) -> None:
    """A listing showed one page and a token; ``--all`` walks the pages (of --max-results
    each) and prints every item once, as one table or one JSON array, with no token."""
    for name in ("m", "n", "o", "p", "q"):
        cairn(uri, "models", "create", name)
    for _ in range(5):
        cairn(uri, "versions", "create", "m")
    cairn(uri, "policies", "set", "--model", "m", "--alias", "*", "--approvals", "1")
    for number in range(1, 6):  # five pending requests for approval
        cairn(uri, "promote", f"models:/m/{number}", "--to", f"stage{number}")
    result = runner.invoke(app, ["--uri", uri, *command, "--max-results", "2", "--all", "--json"])
    assert result.exit_code == 0, result.output
    seen = [item[key] for item in json.loads(result.stdout)]
    assert len(seen) == 5
    assert len(set(seen)) == 5
    assert "--page-token" not in result.stderr
    table = runner.invoke(app, ["--uri", uri, *command, "--max-results", "2", "--all"])
    assert table.exit_code == 0, table.output
    assert "--page-token" not in table.stderr


@pytest.mark.parametrize(
    ("option", "values", "says"),
    [
        ("--metric", ["auc=0.9", "auc=0.8"], "metric 'auc' is given twice (auc=0.9, auc=0.8)"),
        ("--tag", ["team=risk", "team=ops"], "tag 'team' is given twice (team=risk, team=ops)"),
        ("--param", ["lr=0.1", "lr=0.2"], "param 'lr' is given twice (lr=0.1, lr=0.2)"),
        ("--metric", ["auc=nan"], "metric auc='nan': the value is not a finite number"),
        ("--metric", ["auc=inf"], "metric auc='inf': the value is not a finite number"),
    ],
)
def test_a_repeated_key_or_a_non_finite_metric_is_refused_naming_it(
    uri: str, option: str, values: list[str], says: str
) -> None:
    """A key given twice was silently the last value; nan or inf over HTTP was an error about
    'the request' and JSON. Both are refused before anything is sent, the same on either
    side, and nothing is created."""
    cairn(uri, "models", "create", "m")
    args = [part for value in values for part in (option, value)]
    result = runner.invoke(app, ["--uri", uri, "versions", "create", "m", *args])
    assert isinstance(result.exception, InvalidParameter)
    assert result.exception.message == says
    assert json.loads(cairn(uri, "versions", "list", "m", "--json")) == []


def _cells(table: str) -> list[str]:
    """The values of a one-row boxed table's body, each column's folded lines joined."""
    body = [line for line in table.splitlines() if line.startswith("│")]
    columns = zip(*(line.split("│")[1:-1] for line in body), strict=True)
    return ["".join(part.strip() for part in column) for column in columns]


def test_a_table_in_a_pipe_keeps_each_row_on_one_line(tmp_path: Path) -> None:
    """Piped (no terminal, no COLUMNS), a table was drawn 80 columns wide: a wide row folded
    its values onto several lines, mid-word (``fraud-detect`` / ``or``), and ``cairn
    versions list m | grep fraud-detector`` found nothing. In a pipe a table is as wide as
    its rows; in a terminal, or with COLUMNS set, it fits the width (the test below)."""
    uri = str(tmp_path / "d")
    name = "fraud-detector-for-card-payments-in-the-eu"
    cairn(uri, "models", "create", name, "--tag", "team=risk-and-compliance-engineering")
    cairn(uri, "versions", "create", name, "--metric", "auc=0.9412345", "--metric", "f1=0.8")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    for command, value in (
        (["versions", "list", name], "auc=0.9412345, f1=0.8"),
        (["models", "list"], "team=risk-and-compliance-engineering"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "cairn.cli", "--uri", uri, *command],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        rows = [line for line in proc.stdout.splitlines() if name in line]
        assert len(rows) == 1, proc.stdout
        assert value in rows[0]


@pytest.mark.parametrize("width", ["40", "80"])
def test_narrow_output_wraps_long_values_and_cuts_none(
    uri: str, tmp_path: Path, width: str
) -> None:
    """In a pipe or a terminal of 80 columns, a version's digest, its files' digests and
    paths, and a policy's alias were cut with '…' (a digest no one could check); a long
    value now folds onto the next lines."""
    src = tmp_path / "w"
    src.mkdir()
    (src / "a-rather-long-file-name-for-the-weights.safetensors").write_bytes(b"w" * 100)
    cairn(uri, "-q", "push", str(src), "--model", "fraud-detector-with-a-long-name")
    got = json.loads(
        cairn(uri, "versions", "get", "models:/fraud-detector-with-a-long-name/1", "--json")
    )
    [file] = got["files"]
    cairn(
        uri,
        "policies",
        "set",
        "--model",
        "fraud-*",
        "--alias",
        "production-eu-west",
        "--approvals",
        "1",
    )

    def run(*args: str) -> str:
        env = {**os.environ, "COLUMNS": width}
        proc = subprocess.run(
            [sys.executable, "-m", "cairn.cli", "--uri", uri, *args],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        assert "…" not in proc.stdout
        assert max(len(line) for line in proc.stdout.splitlines()) <= int(width)
        return proc.stdout

    shown = run("versions", "get", "models:/fraud-detector-with-a-long-name/1")
    assert got["digest"] in "".join(shown.split())
    files = run("versions", "files", "models:/fraud-detector-with-a-long-name/1")
    assert _cells(files) == [file["path"], "100", file["digest"]]
    listed = run("versions", "list", "fraud-detector-with-a-long-name")
    assert _cells(listed)[0] == "fraud-detector-with-a-long-name"
    assert "production-eu-west" in _cells(run("policies", "list"))


def test_alias_delete_asks_or_takes_yes(uri: str) -> None:
    """Deleting @production took effect at once, unlike every other destructive command."""
    cairn(uri, "models", "create", "m")
    cairn(uri, "versions", "create", "m")
    cairn(uri, "alias", "set", "m", "production", "1")
    refused = runner.invoke(app, ["--uri", uri, "alias", "delete", "m", "production"], input="n\n")
    assert refused.exit_code != 0
    assert "Delete alias @production of 'm' (version 1)?" in refused.stderr
    assert json.loads(cairn(uri, "models", "get", "m", "--json"))["aliases"] == {"production": 1}
    done = runner.invoke(app, ["--uri", uri, "alias", "delete", "m", "production", "--yes"])
    assert done.exit_code == 0, done.output
    assert json.loads(cairn(uri, "models", "get", "m", "--json"))["aliases"] == {}
    assert "deleted @production of 'm'" in done.stderr


def test_deletes_name_the_model_as_the_registry_spells_it(uri: str) -> None:
    """``fraud`` finds the model ``Fraud`` (names are matched without case); what the
    command asks and says names the model the registry holds, not what was typed."""
    cairn(uri, "models", "create", "Fraud")
    cairn(uri, "versions", "create", "Fraud")
    cairn(uri, "alias", "set", "Fraud", "production", "1")
    done = runner.invoke(app, ["--uri", uri, "alias", "delete", "fraud", "production", "--yes"])
    assert done.exit_code == 0, done.output
    assert "deleted @production of 'Fraud'" in done.stderr
    asked = runner.invoke(app, ["--uri", uri, "models", "delete", "FRAUD"], input="n\n")
    assert asked.exit_code != 0 and "Delete registered model 'Fraud'?" in asked.stderr
    done = runner.invoke(app, ["--uri", uri, "models", "delete", "FRAUD", "--yes"])
    assert done.exit_code == 0, done.output
    assert "deleted 'Fraud' (cairn models restore 'Fraud' brings it back)" in done.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["models", "list", "--max-results", "0"], "--max-results"),
        (["models", "list", "--max-results", "1001"], "--max-results"),
        (["versions", "list", "m", "--max-results=-1"], "--max-results"),
        (["versions", "search", "version = 1", "--max-results", "5000"], "--max-results"),
        (["approvals", "list", "--max-results", "0"], "--max-results"),
        (["alias", "history", "m", "--limit", "0"], "--limit"),
        (["alias", "set", "m", "champion", "1", "--expect=-5"], "--expect"),
    ],
)
def test_an_out_of_range_option_is_a_usage_error_naming_it(
    uri: str, args: list[str], option: str
) -> None:
    """These were API errors (exit 1) naming the API's field ('max_results', 'limit',
    'expect'), worded differently by a server and a data directory; now they are usage
    errors (exit 2) naming the option, like --keep and --limit of other commands."""
    cairn(uri, "models", "create", "m")
    result = runner.invoke(app, ["--uri", uri, *args])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.stderr


def test_declining_a_confirmation_exits_1_and_says_nothing_changed(tmp_path: Path) -> None:
    """Answering "no" exited 130, the code of a Ctrl-C, so a script could not tell a
    declined prompt from an interrupted one."""
    uri = str(tmp_path / "d")

    def delete(answer: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cairn.cli", "--uri", uri, "models", "delete", "m"],
            input=answer,
            capture_output=True,
            text=True,
            check=False,
        )

    cairn(uri, "models", "create", "m")
    declined = delete("n\n")
    assert declined.returncode == 1, declined.stderr
    assert "not confirmed; nothing was changed" in declined.stderr
    closed = delete("")  # no answer at all (stdin closed): Click aborts, as on Ctrl-C
    assert closed.returncode == 130, closed.stderr
    assert json.loads(cairn(uri, "models", "get", "m", "--json"))["name"] == "m"
