"""``cairn serve`` in a process of its own against a live registry, over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serving.models import pickle_model, skops_model
from typer.testing import CliRunner

from cairn.cli.main import app
from cairn.client import Client
from cairn.errors import CairnError
from cairn.settings import Settings

ROWS = [[0, 1], [1, 0], [1, 1]]


class ServeProcess:
    def __init__(self, registry: str, token: str, tmp: Path, *args: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "serve.log"
        command = [sys.executable, "-m", "cairn.cli", "--uri", registry, "serve", *args]
        command += ["--port", str(self.port), "--cache-dir", str(tmp / "cache")]
        env = {**os.environ, "CAIRN_TOKEN": token}
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=10, **kwargs)

    def until(self, check: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.log.read_text(encoding="utf-8")
            try:
                if check():
                    return
            except httpx.TransportError:
                pass  # not listening yet
            assert time.monotonic() < deadline, self.log.read_text(encoding="utf-8")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(params=["http", "local"])
def uri(request: pytest.FixtureRequest, settings: Settings) -> str:
    """A live registry, or its data directory in-process."""
    if request.param == "http":
        return str(request.getfixturevalue("live_server"))
    return str(settings.data_dir)


@pytest.fixture
def token(settings: Settings) -> str:
    assert settings.bootstrap_token is not None
    return settings.bootstrap_token.get_secret_value()


@pytest.fixture
def sdk(live_server: str, token: str) -> Iterator[Any]:
    with Client(live_server, token=token) as client:
        yield client


def test_serve_follows_the_alias_and_records_the_deployment(
    live_server: str, token: str, sdk: Any, tmp_path: Path
) -> None:
    sdk.create_model("fraud")
    sdk.push(skops_model(tmp_path / "v1"), name="fraud", alias="production")
    sdk.push(skops_model(tmp_path / "v2", flipped=True), name="fraud")
    serve = ServeProcess(
        live_server, token, tmp_path, "models:/fraud@production", "--deployment", "fraud-prod",
        "--env", "prod",
    )  # fmt: skip
    try:
        serve.until(lambda: serve.get("/ping").status_code == 200)
        assert serve.get("/version").json()["uri"] == "models:/fraud/1"
        split = {"dataframe_split": {"columns": ["a", "b"], "data": ROWS}}
        records = {"dataframe_records": [{"a": a, "b": b} for a, b in ROWS]}
        for body in (split, records):
            assert serve.post("/invocations", json=body).json() == {"predictions": [0, 1, 1]}
        bad = serve.post("/invocations", json={"dataframe_split": {"data": "x"}})
        assert bad.status_code == 400, bad.text
        assert "non-empty list of rows" in bad.json()["message"]
        deployed = sdk.get_deployment("fraud-prod")
        assert (deployed.version, deployed.environment) == (1, "prod")
        assert deployed.url == serve.url

        sdk.set_alias("fraud", "production", 2)
        serve.until(lambda: serve.get("/version").json()["version"] == 2)
        assert serve.post("/invocations", json=split).json() == {"predictions": [1, 0, 0]}
        serve.until(lambda: sdk.get_deployment("fraud-prod").version == 2)
    finally:
        serve.stop()
    assert "now serving version 2" in serve.log.read_text(encoding="utf-8")


def test_serve_refuses_a_pickle(uri: str, token: str, tmp_path: Path) -> None:
    with Client(uri, token=token) as client:
        client.create_model("legacy")
        client.push(pickle_model(tmp_path / "v1"), name="legacy")
    result = CliRunner().invoke(
        app,
        [
            "--uri",
            uri,
            "--token",
            token,
            "serve",
            "models:/legacy/1",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
    )
    assert isinstance(result.exception, CairnError), result.output
    assert "refusing to serve model.pkl: pickle-based files run code" in result.exception.message
