"""Serving by alias, in-process: the SDK (over HTTP and on a directory) on SQLite and
PostgreSQL; a move of the alias swaps the model, a failed load or a deletion does not."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.serving.models import onnx_model, pickle_model, skops_model

from cairn.client.base import BaseClient
from cairn.errors import InvalidParameter
from cairn.serving.app import ModelHolder, Served, _finite, create_serving_app
from cairn.serving.follow import Serving
from cairn.serving.loaders import load_model

JSON = {"Content-Type": "application/json"}


def until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``check`` (a generous bound: a move is seen within one poll of the log)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the bound"
        time.sleep(0.1)


@pytest.fixture
def serving_of(client: BaseClient, tmp_path: Path) -> Iterator[Callable[..., Serving]]:
    made: list[Serving] = []

    def start(uri: str, **options: object) -> Serving:
        serving = Serving(client, uri, cache_dir=tmp_path / "cache", wait=1.0, **options)  # type: ignore[arg-type]
        made.append(serving)
        serving.start()
        serving.follow_in_background()
        return serving

    yield start
    for serving in made:
        serving.stop()


def test_alias_moves_swap_the_model(
    client: BaseClient, tmp_path: Path, serving_of: Callable[..., Serving]
) -> None:
    client.create_model("adder")
    client.push(onnx_model(tmp_path / "v1"), name="adder", alias="production")
    client.push(onnx_model(tmp_path / "v2", bias=(10.0, 20.0)), name="adder")
    client.push(pickle_model(tmp_path / "v3"), name="adder")
    serving = serving_of(
        "models:/adder@production", deployment="adder-prod", environment="prod",
        url="http://127.0.0.1:1",
    )  # fmt: skip
    web = TestClient(create_serving_app(serving.holder))
    body = {"inputs": [[1, 1]]}
    assert web.get("/version").json()["version"] == 1
    assert web.post("/invocations", json=body).json() == {"predictions": [[2.0, 3.0]]}
    assert client.get_deployment("adder-prod").version == 1

    client.set_alias("adder", "production", 2)
    until(lambda: web.get("/version").json()["version"] == 2)
    assert web.post("/invocations", json=body).json() == {"predictions": [[11.0, 21.0]]}
    until(lambda: client.get_deployment("adder-prod").version == 2)
    history = client.deployment_history("adder-prod")
    assert [(e.from_version, e.to_version) for e in history] == [(1, 2), (None, 1)]

    # a version that does not load (a pickle) leaves version 2 serving
    client.set_alias("adder", "production", 3)
    until(lambda: serving.cursor >= _last_seq(client, "adder"))
    assert web.get("/version").json()["version"] == 2
    # so does a deleted alias; another alias's moves are not ours
    client.delete_alias("adder", "production")
    client.set_alias("adder", "canary", 1)
    until(lambda: serving.cursor >= _last_seq(client, "adder"))
    assert web.get("/version").json() | {"loaded_at": None} == {
        "model": "adder", "version": 2, "alias": "production", "uri": "models:/adder/2",
        "file": "model.onnx", "format": "onnx", "loaded_at": None,
    }  # fmt: skip
    # and the alias set again is followed again
    client.set_alias("adder", "production", 1)
    until(lambda: web.get("/version").json()["version"] == 1)


def _last_seq(client: BaseClient, name: str) -> int:
    return max(e.seq for e in client.tail_events(after=0, model=name, events=["alias.*"]).events)


def test_a_version_is_served_as_resolved_at_start(
    client: BaseClient, tmp_path: Path, serving_of: Callable[..., Serving]
) -> None:
    client.create_model("clf")
    client.push(skops_model(tmp_path / "v1"), name="clf", alias="production")
    serving = serving_of("models:/clf/latest")
    assert serving.alias is None and serving._thread is None  # nothing to follow
    client.push(skops_model(tmp_path / "v2", flipped=True), name="clf")
    web = TestClient(create_serving_app(serving.holder))
    answer = web.post("/invocations", json={"instances": [[0, 1], [1, 0]]})
    assert answer.json() == {"predictions": [0, 1]}
    assert web.get("/version").json()["version"] == 1


def test_an_unservable_version_fails_the_start(
    client: BaseClient, tmp_path: Path, serving_of: Callable[..., Serving]
) -> None:
    client.create_model("legacy")
    client.push(pickle_model(tmp_path / "v1"), name="legacy")
    with pytest.raises(InvalidParameter, match=r"refusing to serve model\.pkl"):
        serving_of("models:/legacy/1")


def test_the_app_before_a_model_and_its_bounds() -> None:
    holder = ModelHolder()
    web = TestClient(create_serving_app(holder, max_body=100))
    assert web.get("/ping").status_code == 503
    assert web.get("/version").json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert web.post("/invocations", json={"inputs": [[1]]}).status_code == 503


def test_bad_requests_are_400_and_big_ones_413(tmp_path: Path) -> None:
    holder = ModelHolder()
    holder.swap(Served("adder", 1, None, load_model(onnx_model(tmp_path)), datetime.now(UTC)))
    web = TestClient(create_serving_app(holder, max_body=100))
    assert web.get("/ping").json() == {"status": "ok"}
    answer = web.post("/invocations", content=b"{not json", headers=JSON)
    assert answer.status_code == 400 and "not JSON" in answer.json()["message"]
    answer = web.post("/invocations", content=b"a,b\n1,2", headers={"Content-Type": "text/csv"})
    assert answer.status_code == 400 and "application/json" in answer.json()["message"]
    answer = web.post("/invocations", json={"inputs": [["a", "b"]]})
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    answer = web.post("/invocations", json={"inputs": [[0.5] * 40]})
    assert answer.status_code == 413 and "at most 100" in answer.json()["message"]
    # a body without a declared length is counted as it arrives
    chunks = iter([b'{"inputs": [', b"[1, 2], " * 20, b"[1, 2]]}"])
    answer = web.post("/invocations", content=chunks, headers=JSON)
    assert answer.status_code == 413 and "over 100" in answer.json()["message"]
    answer = web.post("/invocations", content=b'{"inputs": [[NaN, 1]]}', headers=JSON)
    assert answer.status_code == 400 and "NaN is not a JSON number" in answer.json()["message"]
    # and predictions JSON cannot carry (NaN, infinities) go out as null
    assert _finite([[math.nan, 1.0], [math.inf, 2]]) == [[None, 1.0], [None, 2]]
    assert web.post("/invocations", json={"inputs": [[1, 2]]}).json() == {
        "predictions": [[2.0, 4.0]]
    }
