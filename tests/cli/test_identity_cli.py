"""``cairn whoami|tokens|users|groups|grants`` against a live server and on a data directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cairn.cli.main import app
from cairn.cli.tokens import parse_expires
from cairn.errors import CairnError, InvalidParameter

runner = CliRunner()
LIST = ("users", "list")
PASSWORD = "correct horse battery"


def run(uri: str, *args: str, stdin: str | None = None, pre: tuple[str, ...] = ()) -> Result:
    return runner.invoke(app, [*pre, "--uri", uri, *args], input=stdin)


def ok(uri: str, *args: str, stdin: str | None = None, pre: tuple[str, ...] = ()) -> Result:
    result = run(uri, *args, stdin=stdin, pre=pre)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def fails(uri: str, *args: str, stdin: str | None = None) -> CairnError:
    """The Cairn error a command ends with (``cairn`` prints it as one line, exit 1)."""
    result = run(uri, *args, stdin=stdin)
    assert result.exit_code != 0
    assert isinstance(result.exception, CairnError), result.output
    return result.exception


def as_json(uri: str, *args: str) -> object:
    return json.loads(ok(uri, *args, "--json").stdout)


def test_parse_expires() -> None:
    assert parse_expires("30d") == 30
    assert parse_expires("4w") == 28
    assert parse_expires("12h") == 1  # whole days: hours round up
    assert parse_expires("25H") == 2
    assert parse_expires(" never ") is None
    for bad in ("30", "0d", "-1d", "1.5d", "30m", "d", ""):
        with pytest.raises(InvalidParameter):
            parse_expires(bad)
    assert parse_expires("3650d") == 3650 and parse_expires("87600h") == 3650
    for too_long in ("3651d", "522w", "87601h"):  # said in terms of the option, not the API
        with pytest.raises(InvalidParameter, match=r"--expires .* at most 3650d \(10 years\)"):
            parse_expires(too_long)


def test_whoami(uri: str) -> None:
    me = as_json(uri, "whoami")
    assert isinstance(me, dict)
    assert me["is_admin"] is True and me["scope"] == "admin"
    assert me["user"] == "admin" if uri.startswith("http") else me["user"].startswith("local:")
    assert "instance admin" in ok(uri, "whoami").stdout


def test_tokens(uri: str) -> None:
    made = ok(uri, "tokens", "create", "--name", "ci", "--scope", "read", "--expires", "12h")
    secret = made.stdout.strip()
    assert made.stdout == secret + "\n" and secret.startswith("cairn_")  # only the secret
    assert "shown only once" in made.stderr
    assert "12h rounded up to 1 day" in made.stderr
    assert secret not in made.stderr

    quiet = ok(uri, "tokens", "create", "--name", "quiet", pre=("--quiet",))
    assert quiet.stdout.strip().startswith("cairn_") and quiet.stderr == ""
    hushed = ok(uri, "tokens", "create", "--name", "hushed", "-q")  # the command's own
    assert hushed.stdout.strip().startswith("cairn_") and hushed.stderr == ""

    full = as_json(uri, "tokens", "create", "--name", "forever", "--expires", "never")
    assert isinstance(full, dict)
    assert full["token"].startswith("cairn_") and full["expires_at"] is None
    assert (full["user"], full["scope"]) == ("admin", "read")

    listed = as_json(uri, "tokens", "list")
    assert isinstance(listed, list)
    by_name = {t["name"]: t for t in listed}
    assert {"ci", "quiet", "forever"} <= set(by_name)
    assert all("token" not in t for t in listed)
    ci = by_name["ci"]
    assert secret.startswith(ci["prefix"]) and ci["scope"] == "read" and not ci["revoked"]
    table = ok(uri, "tokens", "list", "--all").stdout
    assert ci["prefix"] in table and by_name["forever"]["prefix"] in table

    if uri.startswith("http"):  # the new token works, with its scope
        me = json.loads(ok(uri, "--token", secret, "whoami", "--json").stdout)
        assert (me["user"], me["scope"]) == ("admin", "read")

    ok(uri, "tokens", "revoke", str(ci["id"]), "--yes")
    after = {t["id"]: t for t in as_json(uri, "tokens", "list")}  # type: ignore[union-attr]
    assert after[ci["id"]]["revoked"] is True
    if uri.startswith("http"):
        assert "revoked" in str(fails(uri, "--token", secret, "whoami"))
    too_long = str(fails(uri, "tokens", "create", "--expires", "3651d"))
    assert "--expires" in too_long and "expires_days" not in too_long
    assert "scope" in str(fails(uri, "tokens", "create", "--scope", "root"))


def test_users_groups_grants(uri: str) -> None:
    created = ok(uri, "users", "create", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert "created user 'alice'" in created.stderr
    assert PASSWORD not in created.output
    ok(uri, "users", "create", "deploy-bot", "--service")
    assert "12 to 1024" in str(
        fails(uri, "users", "create", "bob", "--password-stdin", stdin="short\n")
    )
    assert "empty" in str(fails(uri, "users", "create", "bob", "--password-stdin", stdin=""))
    users = {u["name"]: u for u in as_json(uri, "users", "list")}  # type: ignore[union-attr]
    assert users["alice"]["has_password"] is True and users["alice"]["kind"] == "user"
    assert users["deploy-bot"]["kind"] == "service" and not users["deploy-bot"]["has_password"]
    assert "deploy-bot" in ok(uri, "users", "list").stdout

    updated = json.loads(ok(uri, "users", "set", "alice", "--admin", "--disable", "--json").stdout)
    assert updated["is_admin"] is True and updated["disabled"] is True
    updated = json.loads(
        ok(uri, "users", "set", "alice", "--no-admin", "--enable", "--json").stdout
    )
    assert updated["is_admin"] is False and updated["disabled"] is False
    ok(uri, "users", "set", "alice", "--password-stdin", stdin="another long password\n")
    assert "nothing to change" in str(fails(uri, "users", "set", "alice"))

    ok(uri, "groups", "create", "risk-team")
    ok(uri, "groups", "add", "risk-team", "alice")
    assert as_json(uri, "groups", "list") == [{"name": "risk-team", "members": ["alice"]}]

    ok(uri, "models", "create", "risk.fraud")
    set_ = ok(uri, "grants", "set", "group:risk-team", "read", "--pattern", "risk.*")
    assert "granted READ on pattern 'risk.*' to group:risk-team" in set_.stderr
    ok(uri, "grants", "set", "alice", "MANAGE", "--model", "risk.fraud")
    held = as_json(uri, "grants", "list", "--subject", "user:alice")
    assert [(g["model"], g["role"]) for g in held] == [("risk.fraud", "MANAGE")]  # type: ignore[index,union-attr]
    on_model = as_json(uri, "grants", "list", "--model", "risk.fraud")
    assert ("user:alice", "MANAGE") in [(g["subject"], g["role"]) for g in on_model]  # type: ignore[index,union-attr]
    listed = ok(uri, "grants", "list").stdout
    assert "group:risk-team" in listed and "risk.*" in listed
    assert "exactly one" in str(fails(uri, "grants", "set", "alice", "READ"))
    assert "role" in str(fails(uri, "grants", "set", "alice", "OWNER", "--pattern", "*"))

    ok(uri, "grants", "revoke", "group:risk-team", "--pattern", "risk.*")
    ok(uri, "grants", "revoke", "alice", "--model", "risk.fraud")
    assert as_json(uri, "grants", "list", "--subject", "user:alice") == []
    assert as_json(uri, "grants", "list", "--subject", "group:risk-team") == []
    assert "no grant" in str(fails(uri, "grants", "revoke", "alice", "--model", "risk.fraud"))

    ok(uri, "groups", "remove", "risk-team", "alice")
    ok(uri, "groups", "delete", "risk-team", "--yes")
    assert as_json(uri, "groups", "list") == []


def test_token_for_another_user_and_errors_on_one_line(live_server: str) -> None:
    ok(live_server, "users", "create", "carol")
    ok(live_server, "grants", "set", "carol", "READ", "--pattern", "*")
    made = as_json(live_server, "tokens", "create", "--user", "carol", "--scope", "write")
    assert isinstance(made, dict) and made["user"] == "carol"
    me = json.loads(ok(live_server, "--token", made["token"], "whoami", "--json").stdout)
    assert me["user"] == "carol" and me["grants"] == [
        {"role": "READ", "model_id": None, "model": None, "pattern": "*"}
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "--uri", live_server, "--token", made["token"], *LIST],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error (PERMISSION_DENIED):")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_password_prompt(tmp_path: Path) -> None:
    uri = str(tmp_path / "data")
    typed = f"{PASSWORD}\n{PASSWORD}\n"
    made = ok(uri, "users", "create", "dave", "--password-prompt", "--json", stdin=typed)
    assert json.loads(made.stdout)["has_password"] is True
    assert PASSWORD not in made.output  # hidden input is not echoed
    mismatch = run(uri, "users", "create", "erin", "--password-prompt", stdin="a\nb\n")
    assert mismatch.exit_code != 0
    both = fails(uri, "users", "create", "erin", "--password-stdin", "--password-prompt")
    assert "not both" in str(both)
    assert [u["name"] for u in as_json(uri, "users", "list")] == ["admin", "dave"]  # type: ignore[index,union-attr]
