"""``cairn webhooks`` end to end through the real CLI runner: against a live server and on
a data directory; a dispatcher delivers to a real receiver in between."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from cairn.cli.main import app
from cairn.domain.webhooks import verify_signature
from cairn.errors import InvalidParameter, NotFound
from cairn.service.keyring import Keyring
from cairn.service.webhook_delivery import Dispatcher
from cairn.settings import Settings
from cairn.store.metadata.clock import now_us
from cairn.store.metadata.database import Database

runner = CliRunner()


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CAIRN_WEBHOOK_ALLOW_PRIVATE", "true")  # local mode reads it too
    return settings.model_copy(update={"webhook_allow_private": True})


def cairn(uri: str, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--uri", uri, *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout


def test_webhooks_commands(uri: str, settings: Settings, receiver: Any) -> None:
    secret = cairn(
        uri,
        "-q",
        "webhooks",
        "create",
        "ci",
        "--url",
        receiver.url,
        "--scope",
        "risk.*",
        "--event",
        "alias.*",
        "--event",
        "model.create",
    ).strip()
    assert secret.startswith("whsec_")
    shown = json.loads(cairn(uri, "webhooks", "get", "ci", "--json"))
    assert shown["scope"] == "risk.*" and "secret" not in shown
    assert shown["events"] == ["alias.*", "model.create"]  # as given, for events to come
    listed = json.loads(cairn(uri, "webhooks", "list", "--json"))
    assert [w["name"] for w in listed] == ["ci"]
    assert secret not in cairn(uri, "webhooks", "list")

    cairn(uri, "models", "create", "risk.fraud")
    cairn(uri, "models", "create", "ops.x")  # out of scope
    ping = json.loads(cairn(uri, "webhooks", "ping", "ci", "--json"))
    assert ping["event"] == "ping" and ping["status"] == "pending"

    # the server's database, or the one local mode opens in the data directory
    where = settings if uri.startswith("http") else Settings(data_dir=settings.data_dir)
    db = Database(where.resolved_backend_uri())
    later = now_us() + 60 * 10**6  # what the commands queued is due
    keyring = Keyring.from_settings(where)  # the data directory's key file, as both use
    dispatcher = Dispatcher(db, keyring=keyring, allow_private=True, clock=lambda: later)
    try:
        assert dispatcher.run_once() == 2
    finally:
        dispatcher.stop()
        db.dispose()
    got = {h["Cairn-Event"]: (h, body) for h, body in receiver.received}
    assert sorted(got) == ["model.create", "ping"]
    headers, body = got["model.create"]
    assert json.loads(body)["model"] == "risk.fraud"
    assert verify_signature(secret, headers["Cairn-Signature"], body, now=later // 10**6)

    log = json.loads(cairn(uri, "webhooks", "deliveries", "ci", "--json"))
    assert [(d["event"], d["status"]) for d in log] == [
        ("ping", "succeeded"),
        ("model.create", "succeeded"),
    ]
    again = json.loads(cairn(uri, "webhooks", "redeliver", "ci", log[1]["id"], "--json"))
    assert again["redelivery_of"] == log[1]["id"] and again["payload"] == log[1]["payload"]
    # the table: its id column is never cut (pytest-xdist's workers print 80 columns wide,
    # too narrow for the other columns)
    table = cairn(uri, "webhooks", "deliveries", "ci", "--status", "succeeded")
    assert log[0]["id"] in table and log[1]["id"] in table

    paused = json.loads(cairn(uri, "webhooks", "update", "ci", "--pause", "--json"))
    assert paused["active"] is False
    rotated = cairn(uri, "-q", "webhooks", "rotate-secret", "ci").strip()
    assert rotated.startswith("whsec_") and rotated != secret
    cairn(uri, "webhooks", "delete", "ci", "--yes")
    assert json.loads(cairn(uri, "webhooks", "list", "--json")) == []
    gone = runner.invoke(app, ["--uri", uri, "webhooks", "get", "ci"])
    assert isinstance(gone.exception, NotFound) and "webhook 'ci'" in str(gone.exception)


def test_an_internal_url_is_refused_with_one_clear_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_WEBHOOK_ALLOW_PRIVATE", "false")
    args = ["webhooks", "create", "ci", "--url", "http://127.0.0.1/"]
    result = runner.invoke(app, ["--uri", str(settings.data_dir), *args])
    assert isinstance(result.exception, InvalidParameter)
    assert "loopback" in str(result.exception) and "CAIRN_WEBHOOK_ALLOW_PRIVATE" in str(
        result.exception
    )


def test_reencrypt_reports_counts(uri: str, settings: Settings) -> None:
    """``cairn webhooks reencrypt``: over HTTP the server's key, in local mode the data
    directory's (the same file here); idempotent."""
    cairn(uri, "-q", "webhooks", "create", "a", "--url", "http://127.0.0.1:9/")
    cairn(uri, "-q", "webhooks", "create", "b", "--url", "http://127.0.0.1:9/")
    report = json.loads(cairn(uri, "webhooks", "reencrypt", "--json"))
    key = Keyring.from_settings(settings).current().id
    assert report == {"webhooks": 2, "encrypted": 0, "reencrypted": 0, "unchanged": 2, "key": key}
    said = runner.invoke(app, ["--uri", uri, "webhooks", "reencrypt"], catch_exceptions=False)
    assert said.exit_code == 0 and said.stdout == ""
    assert f"2 webhook secret(s) under key {key}" in said.stderr
