"""Traversal through every parameter that names a path, on SQLite and PostgreSQL.

Each hostile path comes in every disguise peers were bypassed with: plain ``../``,
percent-encoded, double-encoded, backslashes, absolute POSIX and Windows paths, NUL, and
Unicode look-alikes of ``.`` and ``/``. Each must get a clear 4xx in the one error shape;
a canary file beside the server's data must never be served, nothing may appear outside
the server's own folders, and the registry must be as it was.

The places: the manifest of a new version (create and import), the native download
route, the MLflow-compatible artifact routes (path segments and ``?path=``), model names
and aliases in URLs, a ``cairn export`` folder being imported (hostile records, digests
and symlinks), and a server answering a pull with a hostile manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from cairn.client.archive import export_registry
from cairn.client.archive_import import ArchiveImporter
from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.client.local import LocalClient
from cairn.errors import CairnError
from cairn.settings import Settings

CANARY = b"CANARY-7c1e0f: this file sits beside the data directory and must never be served\n"
CANARY_SHA = hashlib.sha256(CANARY).hexdigest()
DATA = b"the only file of m v1\n"
DATA_DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


# Hostile paths as a client sends them in JSON: the text is the path itself.
PATHS = {
    "plain": "../../canary.txt",
    "plain-inner": "a/../../../canary.txt",
    "dotdot": "..",
    "dot": "./a.txt",
    "empty-segment": "a//b",
    "encoded": "%2e%2e%2f%2e%2e%2fcanary.txt",
    "double-encoded": "%252e%252e%252f%252e%252e%252fcanary.txt",
    "backslash": "..\\..\\canary.txt",
    "absolute": "/etc/passwd",
    "windows-drive": "C:\\x",
    "windows-drive-slash": "C:/x",
    "unc": "\\\\host\\share\\x",
    "nul": "a.txt\x00.png",
    "nul-encoded": "a.txt%00",
}
# Unicode look-alikes of '.' and '/': NFKC turns the first two into '../'; Windows'
# best-fit code-page mapping turns fullwidth and division slashes into '/'.
LOOKALIKES = {
    "fullwidth": "．．／．．／canary.txt",
    "one-dot-leader": "\u2024\u2024/\u2024\u2024/canary.txt",
    "division-slash": "..\u2215..\u2215canary.txt",
}
# The same attacks as they travel in a URL path: raw text, one or two rounds of
# percent-encoding, and UTF-8 percent-encoding for the look-alikes (as browsers send them).
URL_PATHS = {
    "plain": "../../canary.txt",
    "plain-inner": "a.txt/../../../canary.txt",
    "encoded": "%2e%2e%2f%2e%2e%2fcanary.txt",
    "encoded-dots": "%2e%2e/%2e%2e/canary.txt",
    "double-encoded": "%252e%252e%252f%252e%252e%252fcanary.txt",
    "backslash": "..\\..\\canary.txt",
    "backslash-encoded": "..%5c..%5ccanary.txt",
    "absolute": "/etc/passwd",
    "absolute-encoded": "%2fetc%2fpasswd",
    "windows-drive": "C:%5cx",
    "nul": "a.txt%00",
    "nul-inner": "a.txt%00.png",
    **{name: quote(value) for name, value in LOOKALIKES.items()},
}


# -- helpers ---------------------------------------------------------------------------

TEST_FOLDERS = ("export", "pulled", "out")  # what the tests themselves write under tmp_path


def assert_refused(status: int, body: bytes) -> dict[str, Any]:
    """A clear 4xx in the one error shape, and no canary or system file in it."""
    assert 400 <= status < 500, (status, body[:300])
    assert CANARY not in body and b"CANARY-7c1e0f" not in body
    assert b"root:" not in body  # /etc/passwd
    error: dict[str, Any] = json.loads(body)
    assert set(error) == {"error_code", "message"} and error["message"], error
    return error


def snapshot(api: TestClient) -> Any:
    """Every model and version the registry shows, deleted ones included."""
    models = api.get("/api/v1/models", params={"max_results": 1000, "include_deleted": True})
    assert models.status_code == 200, models.text
    state = {"models": models.json()["models"]}
    for model in state["models"]:
        name = quote(model["name"], safe="")
        versions = api.get(
            f"/api/v1/models/{name}/versions",
            params={"max_results": 1000, "include_deleted": True},
        )
        assert versions.status_code == 200, versions.text
        state[model["name"]] = versions.json()["versions"]
    return state


def outside(tmp_path: Path, *own: str) -> dict[str, bytes]:
    """Every file under ``tmp_path`` but the server's own (data dir, blobs, SQLite file)
    and the folders ``own`` that the test expects to change."""
    skip = {"data", "blobs", *own}
    found = {}
    for path in sorted(tmp_path.rglob("*")):
        rel = path.relative_to(tmp_path)
        if rel.parts[0] in skip or rel.parts[0].startswith("cairn."):  # SQLite and its lock
            continue
        if path.is_symlink():
            found[str(rel)] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            found[str(rel)] = path.read_bytes()
        else:
            found[str(rel) + "/"] = b""
    return found


@pytest.fixture
def auth(request: pytest.FixtureRequest) -> dict[str, str]:
    """Credentials for raw HTTP requests (the admin's, once authentication is on)."""
    try:
        return dict(request.getfixturevalue("admin_headers"))
    except pytest.FixtureLookupError:
        return {}


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A file beside the data directory and the blobs: the thing traversal would reach."""
    path = tmp_path / "canary.txt"
    path.write_bytes(CANARY)
    return path


@pytest.fixture
def registry(api: TestClient, canary: Path, tmp_path: Path) -> Iterator[Any]:
    """Model ``m`` with READY version 1 holding ``a.txt``; yields the registry's state,
    and checks afterwards that nothing outside the server's folders changed."""
    assert api.post("/api/v1/models", json={"name": "m"}).status_code == 201
    created = api.post(
        "/api/v1/models/m/versions",
        json={"files": [{"path": "a.txt", "size": len(DATA), "digest": DATA_DIGEST}]},
    )
    assert created.status_code == 201, created.text
    put = api.put(
        f"/api/v1/models/m/versions/1/blobs/{DATA_DIGEST}",
        content=DATA,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 200, put.text
    assert api.get("/api/v1/models/m/versions/1").json()["status"] == "READY"
    before = outside(tmp_path, *TEST_FOLDERS)
    yield snapshot(api)
    assert outside(tmp_path, *TEST_FOLDERS) == before
    assert canary.read_bytes() == CANARY


def raw_request(
    base: str, method: str, target: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, bytes]:
    """Send ``target`` exactly as written (httpx would normalise ``..`` away)."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- the manifest of a new version -----------------------------------------------------


def _refuse_manifests(api: TestClient, route: str, paths: dict[str, str]) -> None:
    for kind, path in paths.items():
        for files in (
            [{"path": path, "size": len(CANARY), "digest": "sha256:" + CANARY_SHA}],
            [  # beside a good file: the whole manifest is refused
                {"path": "ok.txt", "size": len(DATA), "digest": DATA_DIGEST},
                {"path": path, "size": len(DATA), "digest": DATA_DIGEST},
            ],
        ):
            if route == "create":
                response = api.post("/api/v1/models/m/versions", json={"files": files})
            else:
                response = api.put("/api/v1/import/models/m/versions/7", json={"files": files})
            assert response.status_code == 400, (kind, response.text)
            error = assert_refused(response.status_code, response.content)
            assert error["error_code"] == "INVALID_PARAMETER_VALUE", kind


@pytest.mark.parametrize("route", ["create", "import"])
def test_a_manifest_path_that_escapes_is_refused(
    api: TestClient, registry: Any, route: str
) -> None:
    _refuse_manifests(api, route, PATHS)
    assert snapshot(api) == registry


@pytest.mark.parametrize("route", ["create", "import"])
def test_a_manifest_path_with_lookalikes_of_dots_and_slashes_is_refused(
    api: TestClient, registry: Any, route: str
) -> None:
    _refuse_manifests(api, route, LOOKALIKES)
    assert snapshot(api) == registry


# -- downloads --------------------------------------------------------------------------


def test_a_download_path_that_escapes_is_refused(
    api: TestClient, registry: Any, live_server: str, auth: dict[str, str]
) -> None:
    """Over real HTTP, each target sent byte for byte as written."""
    for prefix in (
        "/api/v1/models/m/versions/1/files/",
        "/api/2.0/mlflow-artifacts/artifacts/cairn-models/m/1/",
        "/ajax-api/2.0/mlflow-artifacts/artifacts/cairn-models/m/1/",
    ):
        assert raw_request(live_server, "GET", prefix + "a.txt", auth) == (200, DATA)
        for kind, path in URL_PATHS.items():
            status, body = raw_request(live_server, "GET", prefix + path, auth)
            assert 400 <= status < 500, (prefix, kind, status)
            assert_refused(status, body)
    assert snapshot(api) == registry


def test_an_artifact_uri_that_escapes_through_name_or_version_is_refused(
    api: TestClient, registry: Any, live_server: str, auth: dict[str, str]
) -> None:
    root = "/api/2.0/mlflow-artifacts/artifacts/cairn-models"
    for kind, path in URL_PATHS.items():
        for target in (f"{root}/{path}/1/a.txt", f"{root}/m/{path}/a.txt"):
            status, body = raw_request(live_server, "GET", target, auth)
            assert 400 <= status < 500, (target, kind, status)
            assert_refused(status, body)
    assert snapshot(api) == registry


def test_an_artifact_listing_outside_the_tree_is_refused(api: TestClient, registry: Any) -> None:
    """``?path=`` as the MLflow client sends it: a whole value, or a model's name."""
    for kind, path in {**PATHS, **LOOKALIKES}.items():
        for value in (path, f"cairn-models/{path}", f"cairn-models/{path}/1"):
            for prefix in ("/api", "/ajax-api"):
                response = api.get(
                    f"{prefix}/2.0/mlflow-artifacts/artifacts", params={"path": value}
                )
                assert 400 <= response.status_code < 500, (kind, value, response.text)
                assert_refused(response.status_code, response.content)
    assert snapshot(api) == registry


def test_an_artifact_listing_of_a_hostile_folder_is_a_400(api: TestClient, registry: Any) -> None:
    for kind, folder in PATHS.items():
        if kind == "absolute":  # its '/' is the one after the version: a folder of m v1
            continue
        response = api.get(
            "/api/2.0/mlflow-artifacts/artifacts", params={"path": f"cairn-models/m/1/{folder}"}
        )
        assert response.status_code == 400, (kind, response.text)
        assert_refused(response.status_code, response.content)


def test_the_version_archive_holds_only_safe_regular_files(
    api: TestClient, registry: Any, tmp_path: Path
) -> None:
    response = api.get("/api/v1/models/m/versions/1/archive")
    assert response.status_code == 200
    with tarfile.open(fileobj=BytesIO(response.content)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["a.txt"]
        assert all(m.isreg() and not m.name.startswith("/") for m in members)
        tar.extractall(tmp_path / "out", filter="data")  # refuses links and escapes
    assert (tmp_path / "out" / "a.txt").read_bytes() == DATA
    shutil.rmtree(tmp_path / "out")


# -- names and aliases in URLs ------------------------------------------------------------

NAME_ROUTES = [
    ("GET", "/api/v1/models/{}"),
    ("DELETE", "/api/v1/models/{}"),
    ("GET", "/api/v1/models/{}/versions"),
    ("GET", "/api/v1/models/m/versions/{}"),
    ("DELETE", "/api/v1/models/m/versions/{}"),
    ("GET", "/api/v1/models/m/aliases/{}"),
    ("DELETE", "/api/v1/models/m/aliases/{}"),
    ("GET", "/api/v1/models/m/aliases/{}/history"),
    ("GET", "/api/v1/models/{}/versions/1/files/a.txt"),
]


def test_a_name_version_or_alias_that_escapes_is_refused(
    api: TestClient, registry: Any, live_server: str, auth: dict[str, str]
) -> None:
    for method, template in NAME_ROUTES:
        for kind, path in URL_PATHS.items():
            status, body = raw_request(live_server, method, template.format(path), auth)
            assert 400 <= status < 500, (method, template, kind, status)
            assert_refused(status, body)
    assert snapshot(api) == registry


def test_a_name_or_alias_that_escapes_is_refused_in_bodies_and_queries(
    api: TestClient, registry: Any
) -> None:
    mlflow = "/api/2.0/mlflow"
    for kind, path in {**PATHS, **LOOKALIKES}.items():
        calls = [
            api.post("/api/v1/models", json={"name": path}),
            api.post("/api/v1/models/m/rename", json={"new_name": path}),
            api.put(f"/api/v1/models/m/aliases/{quote(path, safe='')}", json={"version": 1}),
            api.get("/api/v1/resolve", params={"uri": f"models:/{path}/1"}),
            api.get("/api/v1/resolve", params={"uri": f"models:/m@{path}"}),
            api.post(f"{mlflow}/registered-models/create", json={"name": path}),
            api.get(f"{mlflow}/registered-models/get", params={"name": path}),
            api.request("DELETE", f"{mlflow}/registered-models/delete", json={"name": path}),
            api.post(f"{mlflow}/registered-models/rename", json={"name": "m", "new_name": path}),
            api.post(
                f"{mlflow}/registered-models/alias",
                json={"name": "m", "alias": path, "version": "1"},
            ),
            api.get(
                f"{mlflow}/model-versions/get-download-uri", params={"name": path, "version": "1"}
            ),
        ]
        for response in calls:
            assert 400 <= response.status_code < 500, (kind, response.request.url, response.text)
            assert_refused(response.status_code, response.content)
    assert snapshot(api) == registry


# -- importing a cairn export folder ------------------------------------------------------


@pytest.fixture(params=["http", "local"])
def client(
    request: pytest.FixtureRequest, api: TestClient, settings: Settings
) -> Iterator[BaseClient]:
    """The SDK over HTTP, or in-process on the same database and blob store."""
    if request.param == "http":
        sdk: BaseClient = HttpClient("http://testserver", http_client=api)
    else:
        sdk = LocalClient(
            settings.data_dir,
            backend_uri=settings.backend_uri,
            artifacts_uri=settings.artifacts_uri,
        )
    yield sdk
    sdk.close()


def _export_of_m(client: BaseClient, api: TestClient, folder: Path) -> list[dict[str, Any]]:
    """``cairn export`` of model m (renamed to ``n`` so the import creates a new model)."""
    export_registry(client, folder, names=["m"])
    manifest = folder / "cairn-export.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    for record in records:
        for key in ("model", "version"):
            if key in record:
                record[key]["name"] = "n"
    return records


def _write(folder: Path, records: list[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (folder / "cairn-export.jsonl").write_text(lines)


def _version_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    version: dict[str, Any] = next(r["version"] for r in records if r.get("type") == "version")
    return version


def _imported(api: TestClient) -> list[dict[str, Any]]:
    response = api.get("/api/v1/models/n/versions", params={"include_deleted": True})
    if response.status_code == 404:
        return []
    versions: list[dict[str, Any]] = response.json()["versions"]
    return versions


def _revealed(text: str) -> bool:
    """Whether ``text`` tells anything about the canary: its size or its digest."""
    return f"{len(CANARY)} bytes" in text or CANARY_SHA in text


@pytest.mark.parametrize(
    "path",
    [
        *(PATHS[k] for k in ("plain", "backslash", "absolute", "windows-drive", "nul")),
        LOOKALIKES["fullwidth"],
    ],
)
def test_importing_an_export_with_a_hostile_file_path_imports_nothing_ready(
    client: BaseClient, api: TestClient, registry: Any, tmp_path: Path, path: str
) -> None:
    folder = tmp_path / "export"
    records = _export_of_m(client, api, folder)
    _version_record(records)["files"][0]["path"] = path
    _write(folder, records)
    before = outside(tmp_path)
    summary = ArchiveImporter(client, folder).run()
    assert summary.failed == 1 and summary.imported == 0
    assert not [v for v in _imported(api) if v["status"] == "READY"]
    assert outside(tmp_path) == before
    assert snapshot(api)["m"] == registry["m"]


def test_importing_an_export_whose_digest_escapes_reads_nothing_outside_it(
    client: BaseClient, api: TestClient, registry: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    records = _export_of_m(client, api, folder)
    entry = _version_record(records)["files"][0]
    # <export>/blobs/sha256/<hex[:2]>/<hex> with hex '../../canary.txt' is tmp_path/canary.txt
    entry["digest"] = "sha256:../../canary.txt"
    _write(folder, records)
    summary = ArchiveImporter(client, folder).run()
    assert summary.failed == 1
    for problem in summary.to_json()["problems"]:
        assert not _revealed(problem["message"]), problem
        assert "digest" in problem["message"]
    assert not [v for v in _imported(api) if v["status"] == "READY"]


@pytest.mark.parametrize("digest_matches", [True, False])
def test_importing_an_export_whose_blob_links_outside_it_is_refused(
    client: BaseClient,
    api: TestClient,
    registry: Any,
    tmp_path: Path,
    canary: Path,
    digest_matches: bool,
) -> None:
    folder = tmp_path / "export"
    records = _export_of_m(client, api, folder)
    entry = _version_record(records)["files"][0]
    blob = folder / "blobs" / "sha256" / DATA_DIGEST[7:9] / DATA_DIGEST[7:]
    blob.unlink()
    if digest_matches:  # the attacker knows the canary's digest
        entry["digest"], entry["size"] = "sha256:" + CANARY_SHA, len(CANARY)
        blob = folder / "blobs" / "sha256" / CANARY_SHA[:2] / CANARY_SHA
        blob.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(canary, blob)
    _write(folder, records)
    summary = ArchiveImporter(client, folder).run()
    assert summary.imported == 0 and summary.failed == 1
    for problem in summary.to_json()["problems"]:
        # (the canary's digest is the export's own claim when it matches)
        assert digest_matches or not _revealed(problem["message"]), problem
    for version in _imported(api):
        assert version["status"] != "READY"
        assert digest_matches or not _revealed(version["status_message"]), version
        assert f"{len(CANARY)} bytes" not in version["status_message"]


# -- a server answering a pull with a hostile manifest ------------------------------------


def _hostile_server(version: dict[str, Any], body: bytes) -> httpx.Client:
    """A fake server (an httpx transport, no socket) that serves ``version`` and ``body``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/resolve" or request.url.path.endswith("/versions/1"):
            return httpx.Response(200, json=version)
        if "/files/" in request.url.path:
            return httpx.Response(200, content=body)
        return httpx.Response(404, json={"error_code": "ENDPOINT_NOT_FOUND", "message": "no"})

    return httpx.Client(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(handle))


def test_a_pull_never_writes_outside_its_folder(
    api: TestClient, registry: Any, tmp_path: Path
) -> None:
    before = outside(tmp_path, "pulled")
    for kind, path in {**PATHS, **LOOKALIKES}.items():
        version = api.get("/api/v1/models/m/versions/1").json()
        version["files"][0]["path"] = path
        out, cache = tmp_path / "pulled" / kind, tmp_path / "pulled" / "cache"
        sdk = HttpClient("http://127.0.0.1:9", http_client=_hostile_server(version, DATA))
        if kind in PATHS:
            with pytest.raises(CairnError):
                sdk.pull("models:/m/1", out, cache_dir=cache)
        else:  # a look-alike taken as an opaque name stays inside ``out``
            with contextlib.suppress(CairnError):
                sdk.pull("models:/m/1", out, cache_dir=cache)
    assert outside(tmp_path, "pulled") == before
    for written in (tmp_path / "pulled").rglob("*"):
        assert written.resolve().is_relative_to((tmp_path / "pulled").resolve())


def test_a_pull_with_a_hostile_digest_touches_nothing_outside_the_cache(
    api: TestClient, registry: Any, tmp_path: Path, canary: Path
) -> None:
    version = api.get("/api/v1/models/m/versions/1").json()
    cache = tmp_path / "pulled" / "cache"
    (cache / "blobs" / "sha256").mkdir(parents=True)  # a cache in use
    # <cache>/blobs/sha256/<hex[:2]>/<hex> with hex '../../../canary.txt' is tmp_path/canary.txt
    # (the cache is tmp_path/pulled/cache): a cache that trusts it hands the canary over as
    # the file, its size matching.
    version["files"][0].update(digest="sha256:../../../canary.txt", size=len(CANARY))
    sdk = HttpClient("http://127.0.0.1:9", http_client=_hostile_server(version, DATA))
    with pytest.raises(CairnError):
        sdk.pull("models:/m/1", tmp_path / "pulled" / "out", cache_dir=cache)
    pulled = [p.read_bytes() for p in (tmp_path / "pulled").rglob("*") if p.is_file()]
    assert CANARY not in pulled
