"""The MLflow-compatible API on the wire: shapes, errors, prefixes, artifacts, no 5xx."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cairn.app import create_app
from cairn.client.http import HttpClient
from cairn.domain.models import FileEntry, VersionSpec
from cairn.service.registry import RegistryService
from cairn.settings import Settings
from cairn.store.metadata.database import Database

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
SHA = "sha256:" + "ab" * 32


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error(response: Any) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"error_code", "message"}, body
    return response.status_code, body["error_code"], body["message"]


def test_proto_json_shapes(api: TestClient) -> None:
    now = int(time.time() * 1000)
    model = ok(api.post(f"{API}/registered-models/create", json={"name": "m"}))
    assert model == {
        "registered_model": {
            "name": "m",
            "creation_timestamp": model["registered_model"]["creation_timestamp"],
            "last_updated_timestamp": model["registered_model"]["last_updated_timestamp"],
            "description": "",  # empty lists are left out; description is always there
        }
    }
    assert abs(model["registered_model"]["creation_timestamp"] - now) < 60_000  # milliseconds
    tags = [{"key": "k", "value": "v"}]
    body = {"name": "m", "source": "s3://b/m", "run_id": "r", "tags": tags, "model_id": "m-1"}
    version = ok(api.post(f"{API}/model-versions/create", json=body))["model_version"]
    assert version == {
        "name": "m",
        "version": "1",
        "creation_timestamp": version["creation_timestamp"],
        "last_updated_timestamp": version["last_updated_timestamp"],
        "current_stage": "None",
        "description": "",
        "source": "s3://b/m",
        "run_id": "r",
        "status": "READY",
        "tags": tags,
        "run_link": "",
    }
    assert isinstance(version["creation_timestamp"], int)
    api.post(f"{API}/registered-models/alias", json={"name": "m", "alias": "prod", "version": "1"})
    got = ok(api.get(f"{API}/registered-models/get", params={"name": "m"}))["registered_model"]
    assert got["aliases"] == [{"alias": "prod", "version": "1"}]
    assert got["latest_versions"][0]["aliases"] == ["prod"]
    assert ok(api.get(f"{API}/registered-models/search", params={"filter": "name = 'x'"})) == {}
    assert ok(api.get(f"{API}/model-versions/search", params={"filter": "name = 'x'"})) == {}


def test_status_names(api: TestClient, db_url: str, blob_root: Path) -> None:
    """Cairn's PENDING (files not uploaded yet) is MLflow's PENDING_REGISTRATION."""
    api.post(f"{API}/registered-models/create", json={"name": "m"})
    db = Database(db_url)
    try:
        from cairn.domain.models import SYSTEM
        from cairn.store.blobs.local import LocalBlobStore

        service = RegistryService(db, LocalBlobStore(blob_root))
        spec = VersionSpec(files=(FileEntry("model.bin", 3, SHA),))
        service.create_version(SYSTEM, "m", spec)
    finally:
        db.dispose()
    version = ok(api.get(f"{API}/model-versions/get", params={"name": "m", "version": "1"}))
    assert version["model_version"]["status"] == "PENDING_REGISTRATION"
    assert "source" not in version["model_version"]


def test_get_reads_repeated_query_keys_and_post_reads_json(api: TestClient) -> None:
    api.post(f"{API}/registered-models/create", json={"name": "m"})
    for _ in range(3):
        api.post(f"{API}/model-versions/create", json={"name": "m", "source": "s"})
    for number, stage in (("1", "Staging"), ("2", "Production")):
        body = {"name": "m", "version": number, "stage": stage}
        ok(api.post(f"{API}/model-versions/transition-stage", json=body))
    query = "name=m&stages=staging&stages=Production"
    by_get = ok(api.get(f"{API}/registered-models/get-latest-versions?{query}"))
    by_post = ok(
        api.post(
            f"{API}/registered-models/get-latest-versions",
            json={"name": "m", "stages": ["staging", "Production"]},
        )
    )
    assert by_get == by_post
    assert [(v["version"], v["current_stage"]) for v in by_get["model_versions"]] == [
        ("1", "Staging"), ("2", "Production")
    ]  # fmt: skip
    assert ok(api.get("/ajax-api/2.0/mlflow/registered-models/get-latest-versions?" + query)) == (
        by_get
    )
    ordered = ok(
        api.get(f"{API}/model-versions/search?order_by=version_number+DESC&max_results=10000")
    )
    assert [v["version"] for v in ordered["model_versions"]] == ["3", "2", "1"]


ERRORS: list[tuple[str, str, dict[str, Any], int, str, str]] = [
    ("POST", "registered-models/create", {}, 400, "INVALID_PARAMETER_VALUE",
     "Missing value for required parameter 'name'"),
    ("POST", "registered-models/create", {"name": ""}, 400, "INVALID_PARAMETER_VALUE",
     "Missing value for required parameter 'name'"),
    ("POST", "registered-models/create", {"name": 5}, 400, "INVALID_PARAMETER_VALUE",
     "parameter 'name'"),
    ("POST", "registered-models/create", {"name": "m"}, 400, "RESOURCE_ALREADY_EXISTS", "m"),
    ("POST", "registered-models/create", {"name": "x", "tags": [{"key": 1}]}, 400,
     "INVALID_PARAMETER_VALUE", "tags"),
    ("GET", "registered-models/get", {"name": "nope"}, 404, "RESOURCE_DOES_NOT_EXIST", "nope"),
    ("GET", "registered-models/get", {}, 400, "INVALID_PARAMETER_VALUE", "'name'"),
    ("GET", "registered-models/alias", {"name": "m", "alias": "gone"}, 400,
     "INVALID_PARAMETER_VALUE", "Registered model alias gone not found"),
    ("GET", "registered-models/search", {"max_results": "0"}, 400,
     "INVALID_PARAMETER_VALUE", "max_results"),
    ("GET", "registered-models/search", {"max_results": "many"}, 400,
     "INVALID_PARAMETER_VALUE", "max_results"),
    ("GET", "registered-models/search", {"page_token": "garbage!"}, 400,
     "INVALID_PARAMETER_VALUE", "page_token"),
    ("GET", "registered-models/search", {"filter": "name = 'a' OR name = 'b'"}, 400,
     "INVALID_PARAMETER_VALUE", "Invalid clause(s) in filter string: OR"),
    ("GET", "model-versions/search", {"filter": "tags.x IS"}, 400,
     "INVALID_PARAMETER_VALUE", "NULL"),
    ("GET", "model-versions/search", {"order_by": "size DESC"}, 400,
     "INVALID_PARAMETER_VALUE", "order_by"),
    ("GET", "model-versions/get", {"name": "m", "version": "x"}, 400,
     "INVALID_PARAMETER_VALUE", "version"),
    ("GET", "model-versions/get", {"name": "m"}, 400, "INVALID_PARAMETER_VALUE",
     "'version'"),
    ("GET", "model-versions/get", {"name": "m", "version": "7"}, 404,
     "RESOURCE_DOES_NOT_EXIST", "7"),
    ("POST", "model-versions/create", {"name": "m"}, 400, "INVALID_PARAMETER_VALUE",
     "'source'"),
    ("POST", "model-versions/transition-stage",
     {"name": "m", "version": "1", "stage": "Live"}, 400, "INVALID_PARAMETER_VALUE", "Live"),
    ("POST", "model-versions/transition-stage",
     {"name": "m", "version": "1", "stage": "Staging", "archive_existing_versions": "y"},
     400, "INVALID_PARAMETER_VALUE", "archive_existing_versions"),
    ("POST", "registered-models/get", {"name": "m"}, 404, "ENDPOINT_NOT_FOUND", "not an"),
    ("GET", "experiments/get", {"experiment_id": "0"}, 404, "ENDPOINT_NOT_FOUND", "tracking"),
    ("GET", "webhooks", {}, 404, "ENDPOINT_NOT_FOUND", "webhooks"),
]  # fmt: skip


def test_errors(api: TestClient) -> None:
    """MLflow's error codes, statuses and messages (one app for the whole table)."""
    api.post(f"{API}/registered-models/create", json={"name": "m"})
    api.post(f"{API}/model-versions/create", json={"name": "m", "source": "s"})
    for method, path, payload, status, code, words in ERRORS:
        if method == "GET":
            response = api.get(f"{API}/{path}", params=payload)
        else:
            response = api.request(method, f"{API}/{path}", json=payload)
        got = error(response)
        assert got[:2] == (status, code), (method, path, payload, got)
        assert words in got[2], (method, path, payload, got)
    too_deep = b"[" * 10_000 + b"]" * 10_000  # deeper than the JSON decoder recurses
    for body in (b"{not json", b"[1, 2]", b'"name"', too_deep):
        response = api.post(
            f"{API}/registered-models/create",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert error(response)[:2] == (400, "INVALID_PARAMETER_VALUE"), body


ODD_VALUES: list[Any] = [None, "", 7, 2**70, True, ["a"], {"a": 1}, "\x00", "../x", "x" * 5000]
ENDPOINTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "registered-models/create"): ("name", "tags", "description"),
    ("POST", "registered-models/rename"): ("name", "new_name"),
    ("PATCH", "registered-models/update"): ("name", "description"),
    ("DELETE", "registered-models/delete"): ("name",),
    ("POST", "registered-models/get-latest-versions"): ("name", "stages"),
    ("POST", "registered-models/set-tag"): ("name", "key", "value"),
    ("DELETE", "registered-models/delete-tag"): ("name", "key"),
    ("POST", "registered-models/alias"): ("name", "alias", "version"),
    ("DELETE", "registered-models/alias"): ("name", "alias"),
    ("POST", "model-versions/create"): ("name", "source", "run_id", "run_link", "tags"),
    ("PATCH", "model-versions/update"): ("name", "version", "description"),
    ("POST", "model-versions/transition-stage"): ("version", "stage", "archive_existing_versions"),
    ("DELETE", "model-versions/delete"): ("name", "version"),
    ("POST", "model-versions/set-tag"): ("version", "key", "value"),
    ("DELETE", "model-versions/delete-tag"): ("version", "key"),
}
QUERIES = ["max_results=-5", "max_results=99999999999999999999", "filter=%00", "filter=name+%3D",
       "name=", "order_by=", "page_token=%ff", "version=1e3", "stages=Nope"]  # fmt: skip


def test_no_user_error_is_a_5xx(api: TestClient) -> None:
    """MLflow's client retries 5xx for minutes: every bad input must be a 4xx."""
    api.post(f"{API}/registered-models/create", json={"name": "m"})
    api.post(f"{API}/model-versions/create", json={"name": "m", "source": "s"})
    base = {"name": "m", "version": "1", "key": "k", "value": "v", "alias": "a",
            "stage": "Staging", "source": "s", "new_name": "n"}  # fmt: skip
    for (method, path), fields in ENDPOINTS.items():
        for field in fields:
            for odd in ODD_VALUES:
                response = api.request(method, f"{API}/{path}", json={**base, field: odd})
                assert response.status_code < 500, (path, field, odd, response.text)
    for query in QUERIES:
        for path in ("registered-models/search", "model-versions/search", "model-versions/get",
                     "registered-models/get-latest-versions"):  # fmt: skip
            response = api.get(f"{API}/{path}?name=m&version=1&{query}")
            assert response.status_code < 500, (path, query, response.text)


def test_ajax_prefix_is_the_same_api(api: TestClient) -> None:
    ok(api.post("/ajax-api/2.0/mlflow/registered-models/create", json={"name": "m"}))
    assert ok(api.get(f"{API}/registered-models/get", params={"name": "m"}))
    schema = api.get("/api/v1/openapi.json").json()["paths"]
    assert f"{API}/registered-models/get" in schema
    assert not any(path.startswith("/ajax-api") for path in schema)


def test_server_info(api: TestClient) -> None:
    info = ok(api.get("/api/3.0/mlflow/server-info"))
    assert info["multipart_downloads_enabled"] is False
    assert info["workspaces_enabled"] is False


def test_artifacts_of_a_pushed_version(api: TestClient, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub" / "deep").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (folder / "sub" / "deep" / "x.txt").write_text("x")
    sdk = HttpClient("http://testserver", http_client=api)
    sdk.create_model("my model")
    sdk.push(folder, name="my model")
    api.post(f"{API}/model-versions/create", json={"name": "my model", "source": "s3://b"})

    params = {"name": "my model", "version": "1"}
    uri = ok(api.get(f"{API}/model-versions/get-download-uri", params=params))["artifact_uri"]
    root = "cairn-models/my%20model/1"
    assert uri == f"http://testserver{ARTIFACTS}/{root}"
    params["version"] = "2"  # no files of its own: its source, verbatim
    assert ok(api.get(f"{API}/model-versions/get-download-uri", params=params)) == {
        "artifact_uri": "s3://b"
    }

    listed = ok(api.get(ARTIFACTS, params={"path": root}))  # how MLflow's client sends it
    assert listed == {
        "files": [
            {"path": "MLmodel", "is_dir": False, "file_size": 12},
            {"path": "sub", "is_dir": True},
        ]
    }
    assert ok(api.get(ARTIFACTS, params={"path": f"{root}/sub/"})) == {
        "files": [
            {"path": "deep", "is_dir": True},
            {"path": "weights.bin", "is_dir": False, "file_size": 2000},
        ]
    }
    assert ok(api.get(ARTIFACTS, params={"path": f"{root}/MLmodel"})) == {}  # a file, not a dir
    assert ok(api.get(ARTIFACTS, params={"path": f"{root}/nothing"})) == {}

    response = api.get(f"{ARTIFACTS}/cairn-models/my model/1/sub/weights.bin")
    assert response.status_code == 200
    assert response.content == b"\x00\x01" * 1000
    assert response.headers["content-length"] == "2000"

    assert error(api.get(f"{ARTIFACTS}/{root}/sub"))[:2] == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error(api.get(f"{ARTIFACTS}/{root}/%2e%2e/1/MLmodel"))[:2] == (
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert error(api.get(f"{ARTIFACTS}/0/abc/artifacts/model"))[:2] == (
        404, "RESOURCE_DOES_NOT_EXIST"
    )  # fmt: skip
    assert error(api.get(ARTIFACTS, params={"path": "mlruns/0"}))[0] == 404
    assert error(api.get(f"{ARTIFACTS}/cairn-models/ghost/1/MLmodel"))[0] == 404


def test_artifacts_are_read_only(api: TestClient) -> None:
    for method, path in [
        ("PUT", "artifacts/cairn-models/m/1/MLmodel"),
        ("DELETE", "artifacts/cairn-models/m/1/MLmodel"),
        ("POST", "mpu/create/cairn-models/m/1/MLmodel"),
        ("POST", "mpu/complete/x"),
    ]:
        response = api.request(method, f"/api/2.0/mlflow-artifacts/{path}", content=b"bytes")
        status, _code, message = error(response)
        assert status == 405 and "read-only" in message, (method, path)
        assert response.headers["allow"] == "GET"
    assert error(api.get("/api/2.0/mlflow-artifacts/presigned/x"))[:2] == (
        404, "ENDPOINT_NOT_FOUND"
    )  # fmt: skip


def test_a_malformed_host_header_is_not_echoed(
    settings: Settings, tmp_path: Path, admin_headers: dict[str, str]
) -> None:
    """The Host allow-list refuses such a header (tests/security); with the check turned
    off, the download URI still never carries it."""
    app = create_app(settings.model_copy(update={"allowed_hosts": ["*"]}))
    with TestClient(app, headers=admin_headers) as api:
        (tmp_path / "f").write_text("x")
        sdk = HttpClient("http://testserver", http_client=api)
        sdk.create_model("m")
        sdk.push(tmp_path / "f", name="m")
        response = api.get(
            f"{API}/model-versions/get-download-uri",
            params={"name": "m", "version": "1"},
            headers={"host": "evil.example/@x"},
        )
    app.state.service.db.dispose()
    uri = ok(response)["artifact_uri"]
    assert "evil" not in uri and uri.endswith(f"{ARTIFACTS}/cairn-models/m/1")


def test_a_loop_of_models_sources_is_a_400(api: TestClient) -> None:
    """v1 → models:/m/2 → models:/m/1 → …: answering any of them would loop the client."""
    api.post(f"{API}/registered-models/create", json={"name": "m"})
    for source in ("models:/m/2", "models:/m/1", "models:/m@self"):
        ok(api.post(f"{API}/model-versions/create", json={"name": "m", "source": source}))
    ok(
        api.post(
            f"{API}/registered-models/alias", json={"name": "m", "alias": "self", "version": "3"}
        )
    )
    for number in ("1", "3"):
        response = api.get(
            f"{API}/model-versions/get-download-uri", params={"name": "m", "version": number}
        )
        status, code, message = error(response)
        assert (status, code) == (400, "INVALID_PARAMETER_VALUE") and "loop" in message
