"""``cairn import mlflow`` against a real ``mlflow server`` filled by the stock client.

The server runs once for the module (it takes several seconds to start); each test
imports into a fresh Cairn: a data directory or a live server, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from cairn.client import Client
from cairn.client.base import BaseClient
from cairn.client.importing import ItemResult, Reporter
from cairn.client.mlflow_import import MlflowImporter
from cairn.client.mlflow_source import MlflowSource
from cairn.client.transfer import scan
from cairn.domain.models import VersionSpec, VersionStatus
from cairn.domain.progress import NoProgress
from cairn.errors import InvalidParameter, PermissionDenied, Unauthenticated, Unavailable

from .conftest import QUIET_MLFLOW, cairn, mlflow_process, mlflow_server, snapshot

pytestmark = [
    pytest.mark.xdist_group("mlflow-server"),  # one worker builds the module fixture
    # The stock client warns that stages are deprecated; we set them on purpose, to check
    # that they are carried over.
    pytest.mark.filterwarnings("ignore:.*transition_model_version_stage.*:FutureWarning"),
    # MLflow infers schemas for its own agent types when log_model first imports them.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]


@dataclass
class Expected:
    """What the MLflow registry holds, as its own client reports it."""

    url: str
    models: dict[str, Any] = field(default_factory=dict)
    files: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)  # path → digest
    local: dict[tuple[str, int], Path] = field(default_factory=dict)  # downloaded copies
    size: dict[tuple[str, int], int] = field(default_factory=dict)
    run_id: str = ""


def _tree_digests(root: Path) -> dict[str, str]:
    if root.is_file():
        return {root.name: "sha256:" + hashlib.sha256(root.read_bytes()).hexdigest()}
    return {
        p.relative_to(root).as_posix(): "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _populate(url: str, work: Path) -> Expected:
    import mlflow
    import mlflow.genai
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    client = MlflowClient(tracking_uri=url)
    expected = Expected(url)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)

    plain = work / "plain"
    (plain / "weights").mkdir(parents=True)
    (plain / "weights" / "w.bin").write_bytes(rng.bytes(50_000))
    (plain / "config.json").write_text('{"threshold": 0.7}')
    other = work / "other"
    other.mkdir()
    (other / "notes.md").write_text("# churn\n")
    lost = work / "lost"
    lost.mkdir()
    (lost / "gone.bin").write_bytes(b"soon gone")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            LogisticRegression().fit(x, y),
            name="model",
            registered_model_name="fraud-detector",
            pip_requirements=["scikit-learn"],
        )
        mlflow.log_artifacts(str(plain), "plain")
        mlflow.log_artifacts(str(other), "other")
        mlflow.log_artifacts(str(lost), "lost")
    run_id = run.info.run_id
    root = run.info.artifact_uri
    client.update_registered_model("fraud-detector", description="Card fraud scorer")
    client.set_registered_model_tag("fraud-detector", "team", "risk")
    client.update_model_version("fraud-detector", "1", description="logistic regression")
    client.set_model_version_tag("fraud-detector", "1", "algo", "logreg")
    client.create_model_version("fraud-detector", f"{root}/other", run_id)  # v2
    client.delete_model_version("fraud-detector", "2")  # a gap
    client.create_model_version(
        "fraud-detector",
        f"{root}/plain",
        run_id,
        tags={"kind": "plain"},
        description="plain folder",
    )  # v3
    client.transition_model_version_stage("fraud-detector", "3", "Production")
    client.transition_model_version_stage("fraud-detector", "1", "Archived")
    client.set_registered_model_alias("fraud-detector", "champion", "3")
    client.set_registered_model_alias("fraud-detector", "challenger", "1")

    client.create_registered_model("churn", tags={"team": "growth"})
    client.create_model_version("churn", f"{root}/other", run_id)
    client.transition_model_version_stage("churn", "1", "Staging")
    client.set_registered_model_alias("churn", "prod", "1")

    client.create_registered_model("orphan")
    client.create_model_version("orphan", f"{root}/lost", run_id)  # its files vanish
    client.create_model_version("orphan", f"{root}/other", run_id)

    mlflow.genai.register_prompt(name="greeting", template="Hello {{name}}")
    shutil.rmtree(work / "server" / "artifacts" / "0" / run_id / "artifacts" / "lost")

    expected.run_id = run_id
    for rm in client.search_registered_models():
        versions = {}
        for mv in client.search_model_versions(f"name='{rm.name}'"):
            number = int(mv.version)
            versions[number] = mv
            if rm.name == "orphan" and number == 1:
                continue
            dst = work / "expected" / rm.name / str(number)
            uri = client.get_model_version_download_uri(rm.name, mv.version)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(dst), tracking_uri=url
            )
            expected.files[(rm.name, number)] = _tree_digests(Path(local))
            expected.local[(rm.name, number)] = Path(local)
            expected.size[(rm.name, number)] = sum(
                p.stat().st_size for p in Path(local).rglob("*") if p.is_file()
            )
        expected.models[rm.name] = {"model": rm, "versions": versions}
    return expected


def _import_mlflow() -> None:
    for module in ("mlflow.genai", "mlflow.sklearn", "sklearn.linear_model"):
        importlib.import_module(module)


@pytest.fixture(scope="module")
def mlflow_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Expected]:
    work = tmp_path_factory.mktemp("mlflow")
    (work / "server").mkdir()
    with pytest.MonkeyPatch.context() as env:
        for key, value in QUIET_MLFLOW.items():
            env.setenv(key, value)
        # the client libraries load while the server boots
        with mlflow_server(work / "server", while_starting=_import_mlflow) as url:
            env.setenv("MLFLOW_TRACKING_URI", url)  # for mlflow.start_run and friends
            yield _populate(url, work)


def _ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def _check_matches_mlflow(sdk: BaseClient, expected: Expected) -> None:
    assert {m.name for m in sdk.iter_models()} == {"fraud-detector", "churn", "orphan"}
    for name, entry in expected.models.items():
        rm = entry["model"]
        model = sdk.get_model(name)
        assert model.description == (rm.description or "")
        assert dict(model.tags) == dict(rm.tags)
        assert dict(model.aliases) == {a: int(v) for a, v in rm.aliases.items()}
        assert _ms(model.created_at) == rm.creation_timestamp
        listed = sdk.list_versions(name, order_by=["version ASC"]).items
        assert [v.version for v in listed] == sorted(entry["versions"])
        for version in listed:
            mv = entry["versions"][version.version]
            assert version.description == (mv.description or "")
            assert dict(version.tags) == dict(mv.tags)
            assert version.stage.value == mv.current_stage
            assert version.source == mv.source
            assert version.run_id == mv.run_id
            assert version.run_link is None  # MLflow sends ""
            assert _ms(version.created_at) == mv.creation_timestamp
            named = {a for a, v in rm.aliases.items() if int(v) == version.version}
            assert set(version.aliases) == named
            if (name, version.version) in expected.files:
                assert version.status is VersionStatus.READY
                assert {f.path: f.digest for f in version.files} == expected.files[
                    (name, version.version)
                ]
            else:
                assert version.status is VersionStatus.FAILED
                assert "could not be downloaded" in version.status_message


def test_import_keeps_numbers_metadata_and_files(
    mlflow_registry: Expected, target: str, target_client: BaseClient
) -> None:
    url = mlflow_registry.url
    plan = cairn(target, "import", "mlflow", "--tracking-uri", url, "--dry-run")
    assert "fraud-detector v3: import" in plan.stdout
    assert "greeting" not in plan.stdout  # a prompt, not a model
    assert list(target_client.iter_models()) == []  # a dry run changes nothing

    first = cairn(target, "import", "mlflow", "--tracking-uri", url, "--json", code=1)
    summary = json.loads(first.stdout)
    assert summary["versions"] == {
        "imported": 4,
        "skipped": 0,
        "failed": 1,
        "planned": 0,
        "left_out": 0,
    }
    assert [(p["name"], p["version"]) for p in summary["problems"]] == [("orphan", 1)]
    assert "orphan v1" in first.stderr
    assert summary["bytes"] > 50_000
    _check_matches_mlflow(target_client, mlflow_registry)
    before = snapshot(target_client)
    history = target_client.alias_history("fraud-detector")

    again = cairn(target, "import", "mlflow", "--tracking-uri", url, "--json", code=1)
    summary = json.loads(again.stdout)
    assert summary["versions"] == {
        "imported": 0,
        "skipped": 4,
        "failed": 1,
        "planned": 0,
        "left_out": 0,
    }
    assert summary["bytes"] == 0
    assert snapshot(target_client) == before  # nothing duplicated, nothing changed
    assert target_client.alias_history("fraud-detector") == history
    plan = cairn(target, "import", "mlflow", "--tracking-uri", url, "--dry-run")
    assert "fraud-detector v3: skip: already in Cairn" in plan.stdout
    assert "orphan v1: import" in plan.stdout  # the FAILED record would be retried
    assert snapshot(target_client) == before

    created = target_client.create_version("fraud-detector")
    assert created.version == 4  # numbers go on after the imported ones


def test_an_interrupted_import_resumes(
    mlflow_registry: Expected, target: str, target_client: BaseClient
) -> None:
    # as if an import was killed after creating version 1 with its manifest and sending
    # one of its blobs
    files = scan(mlflow_registry.local[("fraud-detector", 1)])
    assert len(files) > 2
    target_client.import_model("fraud-detector")
    mv = mlflow_registry.models["fraud-detector"]["versions"][1]
    spec = VersionSpec(source=mv.source, run_id=mv.run_id, files=tuple(f.entry for f in files))
    version, missing = target_client._import_with_manifest("fraud-detector", 1, spec)
    assert version.status is VersionStatus.PENDING and len(missing) == len(files)
    sent_before = max(files, key=lambda f: f.entry.size)
    target_client._upload_blob("fraud-detector", 1, sent_before, NoProgress())

    url = mlflow_registry.url
    result = cairn(target, "import", "mlflow", "--tracking-uri", url, "-m", "fraud-detector")
    resumed = target_client.get_version("fraud-detector", 1)
    assert resumed.status is VersionStatus.READY
    assert resumed.stage.value == "Archived"  # metadata brought in line
    assert resumed.tags == {"algo": "logreg"}
    assert target_client.get_version("fraud-detector", 3).status is VersionStatus.READY
    rest = sum(f.entry.size for f in files) - sent_before.entry.size
    sent = rest + mlflow_registry.size[("fraud-detector", 3)]
    assert "2 imported" in result.stderr
    assert f"{sent} bytes sent" in result.stderr


def test_no_files_keeps_metadata_and_source(
    mlflow_registry: Expected, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CAIRN_BACKEND_URI", "CAIRN_ARTIFACTS_URI"):
        monkeypatch.delenv(name, raising=False)
    data = str(tmp_path / "cairn")
    url = mlflow_registry.url
    cairn(data, "import", "mlflow", "--tracking-uri", url, "--no-files", "-m", "fraud-detector")
    with Client(data) as sdk:
        version = sdk.get_version("fraud-detector", 3)
        assert version.status is VersionStatus.READY
        assert version.files == ()
        assert version.source == mlflow_registry.models["fraud-detector"]["versions"][3].source
        assert sdk.get_model("fraud-detector").aliases == {"champion": 3, "challenger": 1}


def test_files_after_a_no_files_import_say_what_to_do(
    mlflow_registry: Expected, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A version imported with --no-files is READY without files, and versions never
    # change: a later full import said only "exists with other content".
    for name in ("CAIRN_BACKEND_URI", "CAIRN_ARTIFACTS_URI"):
        monkeypatch.delenv(name, raising=False)
    data = str(tmp_path / "cairn")
    url = mlflow_registry.url
    only = ("--tracking-uri", url, "-m", "churn")
    cairn(data, "import", "mlflow", *only, "--no-files")
    plan = cairn(data, "import", "mlflow", *only, "--dry-run", code=1)
    assert "churn v1: FAILED: in Cairn without files" in plan.stdout  # MLflow has files
    full = cairn(data, "import", "mlflow", *only, "--json", code=1)
    [problem] = json.loads(full.stdout)["problems"]
    assert problem["version"] == 1
    assert "imported without files (--no-files)" in problem["message"]
    assert "cairn models delete churn" in problem["message"]

    downloaded = []

    class Counted(MlflowSource):  # it downloaded every file before refusing them
        def download(self, name: str, version: int, dst: Path) -> Path:
            downloaded.append((name, version))
            return super().download(name, version, dst)

    with Client(data) as sdk:
        summary = MlflowImporter(sdk, Counted(url)).run(["churn"]).to_json()
        assert summary["versions"]["failed"] == 1 and downloaded == []
        assert sdk.get_version("churn", 1).status is VersionStatus.READY  # left as it was
        sdk.delete_model("churn")  # what the message says to do
    cairn(data, "import", "mlflow", *only)
    with Client(data) as sdk:
        files = {f.path: f.digest for f in sdk.get_version("churn", 1).files}
    assert files == mlflow_registry.files[("churn", 1)]


def test_a_model_named_twice_is_imported_once(mlflow_registry: Expected, tmp_path: Path) -> None:
    # `-m churn -m churn` went through churn twice: 2 models, its version imported and
    # then counted again as skipped
    data = str(tmp_path / "cairn")
    args = ("--tracking-uri", mlflow_registry.url, "--no-files", "--json")
    result = cairn(data, "import", "mlflow", *args, "-m", "churn", "-m", "churn")
    summary = json.loads(result.stdout)
    assert summary["models"] == 1
    assert summary["versions"]["imported"] == 1 and summary["versions"]["skipped"] == 0


def test_unknown_model_is_reported(mlflow_registry: Expected, tmp_path: Path) -> None:
    data = str(tmp_path / "cairn")
    result = cairn(
        data, "import", "mlflow", "--tracking-uri", mlflow_registry.url, "-m", "nope", code=1
    )
    assert "nope" in result.stderr


class _FailsModelLookups(BaseHTTPRequestHandler):
    """Forwards every request to the MLflow server at the server's ``upstream``, except a
    model lookup (``registered-models/get``), which it answers 500 as a broken MLflow
    would."""

    def do_GET(self) -> None:
        if self.path.startswith("/api/2.0/mlflow/registered-models/get?"):
            body = b'{"error_code": "INTERNAL_ERROR", "message": "database is locked"}'
            status, kind = 500, "application/json"
        else:
            answer = httpx.get(self.server.upstream + self.path)  # type: ignore[attr-defined]
            body, status = answer.content, answer.status_code
            kind = answer.headers.get("content-type", "application/json")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_failed_model_lookup_is_not_said_to_be_not_found(
    mlflow_registry: Expected, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every error from MLflow's lookup of a -m NAME was reported as "not found in MLflow".
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the client retries 500s
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _FailsModelLookups)
    proxy.upstream = mlflow_registry.url  # type: ignore[attr-defined]
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    data = str(tmp_path / "cairn")
    try:
        broken = cairn(data, "import", "mlflow", "--tracking-uri", url, "-m", "churn", code=1)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert "not found" not in broken.stderr
    assert "churn: could not be read from MLflow" in " ".join(broken.stderr.split())
    assert "500" in broken.stderr
    url = mlflow_registry.url
    missing = cairn(data, "import", "mlflow", "--tracking-uri", url, "-m", "nope", code=1)
    assert "nope: not found in MLflow" in " ".join(missing.stderr.split())


# a local MLflow store (no server) uses a SQLAlchemy loader option 2.1 deprecates
@pytest.mark.filterwarnings("ignore:.*noload.*:sqlalchemy.exc.SADeprecationWarning")
def test_models_differing_only_in_case_are_not_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow names are case-sensitive, Cairn's are not: "Fraud" must not land in "fraud"
    from mlflow import MlflowClient

    for key, value in QUIET_MLFLOW.items():
        monkeypatch.setenv(key, value)
    for name in ("CAIRN_BACKEND_URI", "CAIRN_ARTIFACTS_URI"):
        monkeypatch.delenv(name, raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    source = MlflowClient(tracking_uri=uri)
    source.create_registered_model("fraud", description="lower")
    source.create_model_version("fraud", "s3://bucket/lower/1")
    source.create_registered_model("Fraud", description="upper")
    source.create_model_version("Fraud", "s3://bucket/upper/1")
    source.create_model_version("Fraud", "s3://bucket/upper/2")
    data = str(tmp_path / "cairn")

    for _ in range(2):  # and again: the second run changes nothing either
        result = cairn(data, "import", "mlflow", "--tracking-uri", uri, "--no-files", code=1)
        assert "differ" in result.stderr and "case" in result.stderr
        with Client(data) as sdk:
            models = list(sdk.iter_models())
            assert len(models) == 1
            model = models[0]
            mine = "lower" if model.name == "fraud" else "upper"
            assert model.description == mine
            versions = sdk.list_versions(model.name, order_by=["version ASC"]).items
            assert {v.source.split("/")[3] for v in versions if v.source} == {mine}


@pytest.fixture
def dropping_port() -> Iterator[tuple[str, list[int]]]:
    """A loopback port that accepts each connection and closes it at once: an MLflow that
    is not answering. Yields its URL and a list with one entry per connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    attempts: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed
            attempts.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", attempts
    listener.close()
    thread.join(timeout=5)


def test_an_mlflow_that_does_not_answer_is_reported_at_once(
    dropping_port: tuple[str, list[int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The MLflow client retries a connection that fails 7 times, backing off for about
    # four minutes in all, before it gives up: the import must not sit through that
    # silently. (Back-off off here, so that the retrying shows as attempts, not time.)
    for key, value in QUIET_MLFLOW.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    url, attempts = dropping_port
    data = str(tmp_path / "cairn")
    with pytest.raises(Unavailable, match=f"cannot reach MLflow at {url}"):
        cairn(data, "import", "mlflow", "--tracking-uri", url, "--dry-run")
    assert len(attempts) == 1


class _Answers(BaseHTTPRequestHandler):
    """Answers every request with the status in the server's ``status`` attribute."""

    def do_GET(self) -> None:
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"You are not authenticated.")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [
        (401, Unauthenticated, "asks for credentials (401): set MLFLOW_TRACKING_USERNAME"),
        (403, PermissionDenied, "refuses these credentials"),
        (404, InvalidParameter, "does not serve MLflow's registry API"),
    ],
)
def test_an_mlflow_that_refuses_or_is_not_mlflow_is_said_plainly(
    status: int, error: type[Exception], says: str, tmp_path: Path
) -> None:
    # not "temporarily unavailable": credentials are missing, or the URI is wrong
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    server.status = status  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(error, match=re.escape(says)):
            cairn(str(tmp_path / "cairn"), "import", "mlflow", "--tracking-uri", url)
    finally:
        server.shutdown()
        server.server_close()


class _StopsMlflow(Reporter):
    """Stops the MLflow server once version ``after`` is imported."""

    def __init__(self, stop: Callable[[], None], after: int) -> None:
        self.stop = stop
        self.after = after

    def done(self, result: ItemResult) -> None:
        if result.version == self.after and result.alias is None:
            self.stop()


@pytest.mark.parametrize("target", ["local"], indirect=True)
def test_an_mlflow_that_stops_midway_ends_the_import(
    target_client: BaseClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without its server, every version left would be recorded as FAILED (each after the
    # client's minutes of retries): the import stops instead, and the next run resumes.
    from mlflow import MlflowClient

    for key, value in QUIET_MLFLOW.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the old code fails fast
    files = tmp_path / "files"
    files.mkdir()
    (files / "w.bin").write_bytes(b"weights")
    (tmp_path / "server").mkdir()
    with mlflow_process(tmp_path / "server") as (url, stop):
        source = MlflowClient(tracking_uri=url)
        run_id = source.create_run("0").info.run_id
        source.log_artifacts(run_id, str(files), "model")
        root = source.get_run(run_id).info.artifact_uri
        source.create_registered_model("m")
        for _ in range(3):
            source.create_model_version("m", f"{root}/model", run_id)
        importer = MlflowImporter(target_client, MlflowSource(url), reporter=_StopsMlflow(stop, 1))
        with pytest.raises(Unavailable, match=f"MLflow at {url} stopped answering") as info:
            importer.run()
    assert "m v2" in info.value.message and "Run the import again" in info.value.message
    versions = target_client.list_versions("m").items
    assert [(v.version, v.status) for v in versions] == [(1, VersionStatus.READY)]


# a local MLflow store (no server) uses a SQLAlchemy loader option 2.1 deprecates
@pytest.mark.filterwarnings("ignore:.*noload.*:sqlalchemy.exc.SADeprecationWarning")
@pytest.mark.parametrize("target", ["local"], indirect=True)
def test_what_cairn_refuses_is_planned_as_a_problem_and_never_downloaded(
    target: str, target_client: BaseClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow takes tag values up to 100,000 characters and any alias; Cairn's bounds are
    # tighter. The dry run must show what the real run will refuse, and the real run must
    # not download files it cannot store.
    from mlflow import MlflowClient

    for key, value in QUIET_MLFLOW.items():
        monkeypatch.setenv(key, value)
    files = tmp_path / "files"
    files.mkdir()
    (files / "w.bin").write_bytes(b"weights")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    source = MlflowClient(tracking_uri=uri)
    source.create_registered_model("tagged", tags={"big": "x" * 6000})
    source.create_model_version("tagged", str(files))
    source.create_registered_model("ok")
    source.create_model_version("ok", str(files), tags={"big": "y" * 6000})
    source.create_model_version("ok", str(files))
    source.set_registered_model_alias("ok", "1st", "2")
    downloads: list[int] = []
    download = MlflowSource.download

    def counted(self: MlflowSource, name: str, version: int, dst: Path) -> Path:
        downloads.append(version)
        return download(self, name, version, dst)

    monkeypatch.setattr(MlflowSource, "download", counted)

    def problems(result: Any) -> list[tuple[str, int | None, str | None, str]]:
        found = json.loads(result.stdout)["problems"]
        return [(p["name"], p["version"], p["alias"], p["message"]) for p in found]

    plan = cairn(target, "import", "mlflow", "--tracking-uri", uri, "--dry-run", "--json", code=1)
    real = cairn(target, "import", "mlflow", "--tracking-uri", uri, "--json", code=1)
    assert problems(plan) == problems(real)
    assert [p[:3] for p in problems(real)] == [
        ("ok", 1, None),
        ("ok", 2, "1st"),
        ("tagged", None, None),
    ]
    assert "tag 'big' is 6000 characters long; the limit is 5000" in problems(real)[0][3]
    assert "could not be recorded" not in problems(real)[0][3]
    assert downloads == [2]  # v1 of ok is refused before its files are fetched
    assert [v.version for v in target_client.list_versions("ok").items] == [2]


@pytest.mark.filterwarnings("ignore:.*noload.*:sqlalchemy.exc.SADeprecationWarning")
def test_a_mistyped_sqlite_store_is_not_created(tmp_path: Path) -> None:
    # the MLflow client creates (and migrates) a database wherever a sqlite URI points:
    # a typo made an empty MLflow store, and an import of it found nothing, successfully
    missing = tmp_path / "typo" / "mlflow.db"
    with pytest.raises(InvalidParameter, match=f"no MLflow database at {missing}"):
        cairn(str(tmp_path / "cairn"), "import", "mlflow", "--tracking-uri", f"sqlite:///{missing}")
    assert not (tmp_path / "typo").exists()


class _Recorder(Reporter):
    """Keeps what an import tells its reporter, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def listing(self, models: int, versions: int) -> None:
        self.events.append(("listing", (models, versions)))

    def expect(self, versions: int) -> None:
        self.events.append(("expect", versions))

    def done(self, result: ItemResult) -> None:
        if result.version is not None and result.alias is None:
            self.events.append(("version", result))

    def expected(self) -> int:
        return sum(n for kind, n in self.events if kind == "expect")

    def versions(self) -> list[ItemResult]:
        return [r for kind, r in self.events if kind == "version"]


# a local MLflow store (no server) uses a SQLAlchemy loader option 2.1 deprecates
@pytest.mark.filterwarnings("ignore:.*noload.*:sqlalchemy.exc.SADeprecationWarning")
@pytest.mark.parametrize("target", ["local"], indirect=True)
def test_versions_of_a_model_left_out_are_counted(
    target: str, target_client: BaseClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A model Cairn refuses (its name, its metadata, a case twin) took its versions out of
    # the counts: the bar ended short of its total and the summary did not add up to what
    # MLflow holds.
    from mlflow import MlflowClient

    for key, value in QUIET_MLFLOW.items():
        monkeypatch.setenv(key, value)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    source = MlflowClient(tracking_uri=uri)
    source.create_registered_model("Ok")
    source.create_model_version("Ok", "s3://bucket/upper/1")
    source.create_registered_model("ok")  # the case twin of "Ok", listed after it
    for n in (1, 2):
        source.create_model_version("ok", f"s3://bucket/lower/{n}")
    source.create_registered_model("a..b")  # not a valid Cairn name
    for n in (1, 2):
        source.create_model_version("a..b", f"s3://bucket/ab/{n}")
    source.create_registered_model("tagged", tags={"big": "x" * 6000})  # over Cairn's bound
    source.create_model_version("tagged", "s3://bucket/tagged/1")
    held = 6  # versions MLflow holds

    plan = cairn(
        target, "import", "mlflow", "--tracking-uri", uri, "--no-files", "--dry-run", code=1
    )
    assert "1 version(s) would be imported" in plan.stderr
    assert "5 left out with their model" in plan.stderr
    assert "ok: FAILED: model not imported: it differs only in case" in plan.stdout
    assert "ok v1" not in plan.stdout  # the model's line says how many go with it

    reporter = _Recorder()
    importer = MlflowImporter(target_client, MlflowSource(uri), files=False, reporter=reporter)
    summary = importer.run().to_json()
    assert summary["versions"] == {
        "imported": 1,
        "skipped": 0,
        "failed": 0,
        "planned": 0,
        "left_out": 5,
    }
    assert reporter.expected() == held == len(reporter.versions())  # the bar ends full
    problems = {p["name"]: p["message"] for p in summary["problems"]}
    assert set(problems) == {"ok", "a..b", "tagged"}
    assert problems["ok"].endswith("its 2 version(s) left out")
    assert problems["tagged"].endswith("its 1 version(s) left out")

    again = cairn(target, "import", "mlflow", "--tracking-uri", uri, "--no-files", code=1)
    assert "0 imported, 1 skipped, 0 failed, 5 left out with their model" in again.stderr


@pytest.mark.parametrize("target", ["local"], indirect=True)
def test_listing_the_registry_is_reported_as_it_goes(
    mlflow_registry: Expected, target_client: BaseClient
) -> None:
    # The whole registry is listed before the first version is worked on: on a large one
    # the user saw an empty bar for minutes.
    reporter = _Recorder()
    importer = MlflowImporter(target_client, MlflowSource(mlflow_registry.url), reporter=reporter)
    importer.run(dry_run=True)
    kinds = [kind for kind, _ in reporter.events]
    first_expect = kinds.index("expect")
    listed = [n for kind, n in reporter.events[:first_expect] if kind == "listing"]
    assert listed == [(1, 1), (2, 3), (3, 5)]  # churn, fraud-detector, orphan; no prompt
    assert "listing" not in kinds[first_expect:]


@pytest.mark.parametrize("flags", [(), ("--dry-run",), ("--quiet",)])
def test_the_cli_shows_listing_on_stderr_unless_quiet(
    mlflow_registry: Expected,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: tuple[str, ...],
) -> None:
    from rich.console import Console

    from cairn.cli import portability

    terminal = io.StringIO()  # what a terminal would show on stderr
    console = Console(file=terminal, force_terminal=True, width=120)
    monkeypatch.setattr(portability, "err", console)
    data = str(tmp_path / "cairn")
    args = ("--tracking-uri", mlflow_registry.url, "-m", "churn", "--no-files", "--json")
    result = cairn(data, "import", "mlflow", *args, *flags)
    json.loads(result.stdout)  # stdout is the summary alone
    shown = terminal.getvalue()
    if "--quiet" in flags:
        assert shown == ""
    else:
        assert "listing: 1 models, 1 versions" in shown
