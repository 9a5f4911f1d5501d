"""Unsafe-file scanning through the service and the API, on SQLite and PostgreSQL.

Versions are pushed with malicious pickles built here (unpickling one would create a
marker file: it must never appear). The policy decides: quarantine (the default: READY,
downloads refused unless someone with MANAGE overrides, audited), reject (FAILED, with a
message naming the files and imports) or label (downloadable, marked flagged).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from cairn.cli.main import app as cli
from cairn.domain.access import SYSTEM, Actor, Grant, Role
from cairn.domain.models import FileEntry, VersionSpec, VersionStatus
from cairn.errors import InvalidParameter, NotFound, PermissionDenied
from cairn.service.registry import RegistryService
from cairn.service.scan_engine import scanner_name
from cairn.settings import Settings
from cairn.store.metadata.blob_index_store import BlobIndexStore
from cairn.store.metadata.schema import audit_events, blob_scans

MANAGER = Actor("mallory-the-manager", user_id=1, grants=(Grant(Role.MANAGE, pattern="*"),))
WRITER = Actor("wanda", user_id=2, grants=(Grant(Role.WRITE, pattern="*"),))
READER = Actor("rita", user_id=3, grants=(Grant(Role.READ, pattern="*"),))
OUTSIDER = Actor("otto", user_id=4, grants=(Grant(Role.MANAGE, pattern="other"),))


class RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a payload ran: nothing may unpickle an uploaded file"


@pytest.fixture
def evil(marker: Path) -> bytes:
    return pickle.dumps({"weights": [0.1, 0.2], "hook": RunsCommand(f"touch {marker}")})


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def safetensors_file() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    return struct.pack("<Q", len(header)) + header + bytes(8)


SYSTEM_IMPORT = f"{os.system.__module__}.system"  # posix.system on Linux


@pytest.fixture
def svc(service: RegistryService) -> RegistryService:
    service.create_model(MANAGER, "fraud")
    return service


def push(svc: RegistryService, files: dict[str, bytes], name: str = "fraud") -> int:
    spec = VersionSpec(files=tuple(FileEntry(p, len(b), digest(b)) for p, b in files.items()))
    version = svc.create_version(WRITER, name, spec).version
    for data in {digest(b): b for b in files.values()}.values():
        if digest(data) in svc.missing_blobs(WRITER, name, version):
            svc.put_blob(WRITER, name, version, digest(data), [data])
    return version


def read_all(svc: RegistryService, actor: Actor, version: int, path: str, **kw: Any) -> bytes:
    return b"".join(svc.open_file(actor, "fraud", version, path, **kw).chunks)


def audited(svc: RegistryService, action: str) -> list[Any]:
    return svc.db.read(
        lambda s: list(s.execute(select(audit_events).where(audit_events.c.action == action)))
    )


# -- the default policy: quarantine --------------------------------------------------------


def test_malicious_pickle_quarantines_the_version(svc: RegistryService, evil: bytes) -> None:
    version = push(svc, {"model.pkl": evil, "README.md": b"# fraud model\n"})
    assert svc.get_version(READER, "fraud", version).status is VersionStatus.READY
    report = svc.get_scan_report(READER, "fraud", version)
    assert (report.status, report.action, report.quarantined) == ("flagged", "quarantine", True)
    assert (report.policy, report.policy_source) == ("quarantine", "instance")
    assert "model.pkl" in report.summary and SYSTEM_IMPORT in report.summary
    files = {f.path: f for f in report.files}
    assert (files["model.pkl"].format, files["model.pkl"].status) == ("pickle", "flagged")
    found = {(x.kind, f"{x.module}.{x.name}") for x in files["model.pkl"].findings}
    assert ("dangerous_global", SYSTEM_IMPORT) in found
    assert (files["README.md"].format, files["README.md"].status) == ("other", "clean")
    assert files["model.pkl"].scanner == scanner_name()


def test_quarantined_files_need_an_audited_manage_override(
    svc: RegistryService, evil: bytes
) -> None:
    version = push(svc, {"model.pkl": evil, "README.md": b"# readme\n"})
    for actor in (READER, WRITER, MANAGER):
        with pytest.raises(PermissionDenied, match=r"quarantined.*override_quarantine=true"):
            svc.open_file(actor, "fraud", version, "README.md")  # every file of the version
    with pytest.raises(PermissionDenied, match="MANAGE"):
        svc.open_file(WRITER, "fraud", version, "model.pkl", override_quarantine=True)
    with pytest.raises(NotFound):
        svc.open_file(OUTSIDER, "fraud", version, "model.pkl", override_quarantine=True)
    assert audited(svc, "artifact.quarantine_override") == []
    assert read_all(svc, MANAGER, version, "model.pkl", override_quarantine=True) == evil
    (event,) = audited(svc, "artifact.quarantine_override")
    assert (event.actor, event.model, event.version, event.target) == (
        MANAGER.name,
        "fraud",
        version,
        "model.pkl",
    )
    with pytest.raises(PermissionDenied):
        svc.file_urls(READER, "fraud", version, ["model.pkl"])
    # local disk has no links, but an override is audited when they are asked for
    [link] = svc.file_urls(MANAGER, "fraud", version, ["model.pkl"], override_quarantine=True)
    assert (link.file.path, link.url) == ("model.pkl", None)
    assert len(audited(svc, "artifact.quarantine_override")) == 2
    with pytest.raises(PermissionDenied):
        svc.check_download(READER, "fraud", version)


def test_a_version_made_ready_from_stored_blobs_is_judged_by_their_scans(
    svc: RegistryService, evil: bytes
) -> None:
    first = push(svc, {"model.pkl": evil})
    spec = VersionSpec(files=(FileEntry("copy.pkl", len(evil), digest(evil)),))
    second = svc.create_version(WRITER, "fraud", spec)
    assert second.status is VersionStatus.READY  # dedup: no bytes travelled
    with pytest.raises(PermissionDenied, match="quarantined"):
        svc.open_file(READER, "fraud", second.version, "copy.pkl")
    report = svc.get_scan_report(READER, "fraud", second.version)
    # judged when it was created READY: the verdict and the policy's action are recorded
    assert (report.status, report.quarantined, report.action) == ("flagged", True, "quarantine")
    assert first != second.version


@pytest.mark.parametrize("race", [False, True])
def test_a_blob_the_scanner_has_not_seen_is_scanned_before_the_version_is_ready(
    svc: RegistryService, evil: bytes, monkeypatch: pytest.MonkeyPatch, race: bool
) -> None:
    """The stored pickle's scan is lost (as when the scanner is upgraded meanwhile); the
    upload that completes the version scans it before the version becomes READY. With
    ``race``, that upload believed another file was still missing (a concurrent last
    upload) and skipped the scan: the version is not promoted unscanned, it is scanned,
    then promoted."""
    push(svc, {"stored.pkl": evil})
    clean = b"clean bytes"
    files = (
        FileEntry("stored.pkl", len(evil), digest(evil)),
        FileEntry("new.bin", 11, digest(clean)),
    )
    version = svc.create_version(WRITER, "fraud", VersionSpec(files=files)).version
    svc.db.write(
        lambda s: s.execute(blob_scans.delete().where(blob_scans.c.digest == digest(evil)))
    )
    if race:
        real = BlobIndexStore.any_missing

        def believes_another_is_missing(self: Any, version_id: int, **kw: Any) -> bool:
            return True if kw.get("other_than") else real(self, version_id, **kw)

        monkeypatch.setattr(BlobIndexStore, "any_missing", believes_another_is_missing)
    receipt = svc.put_blob(WRITER, "fraud", version, digest(clean), [clean])
    assert receipt.version_status is VersionStatus.READY
    report = svc.get_scan_report(READER, "fraud", version)
    assert (report.status, report.quarantined) == ("flagged", True)


def test_resumable_upload_is_scanned_too(svc: RegistryService, evil: bytes) -> None:
    spec = VersionSpec(files=(FileEntry("model.pt", len(evil), digest(evil)),))
    version = svc.create_version(WRITER, "fraud", spec).version
    ticket = svc.begin_upload(WRITER, "fraud", version, digest(evil))
    svc.append_upload(WRITER, ticket.upload_id, 0, [evil[:10]])
    svc.append_upload(WRITER, ticket.upload_id, 10, [evil[10:]])
    receipt = svc.complete_upload(WRITER, ticket.upload_id)
    assert receipt.version_status is VersionStatus.READY
    assert svc.get_scan_report(READER, "fraud", version).quarantined


# -- reject and label ----------------------------------------------------------------------


def test_reject_policy_fails_the_version_naming_files_and_imports(
    svc: RegistryService, evil: bytes
) -> None:
    policy = svc.set_scan_policy(MANAGER, "fraud", "reject")
    assert (policy.action, policy.effective) == ("reject", "reject")
    version = push(svc, {"model.pkl": evil, "conf.json": b"{}"})
    failed = svc.get_version(READER, "fraud", version)
    assert failed.status is VersionStatus.FAILED
    assert "rejected by the scan policy" in failed.status_message
    assert "model.pkl" in failed.status_message and SYSTEM_IMPORT in failed.status_message
    with pytest.raises(InvalidParameter, match="FAILED"):
        svc.open_file(MANAGER, "fraud", version, "conf.json", override_quarantine=True)
    (event,) = audited(svc, "scan.reject")
    assert (event.actor, event.version) == ("system", version)


def test_label_policy_keeps_the_version_downloadable(svc: RegistryService, evil: bytes) -> None:
    svc.set_scan_policy(MANAGER, "fraud", "label")
    version = push(svc, {"model.pkl": evil})
    report = svc.get_scan_report(READER, "fraud", version)
    assert (report.status, report.action, report.quarantined) == ("flagged", "label", False)
    assert read_all(svc, READER, version, "model.pkl") == evil
    assert audited(svc, "artifact.quarantine_override") == []


def test_instance_default_policy_comes_from_the_settings(svc: RegistryService, evil: bytes) -> None:
    svc.limits = replace(svc.limits, scan_policy="reject")
    version = push(svc, {"model.pkl": evil})
    assert svc.get_version(READER, "fraud", version).status is VersionStatus.FAILED
    assert svc.get_scan_policy(READER, "fraud").effective == "reject"


def test_clean_version_is_clean(svc: RegistryService) -> None:
    version = push(svc, {"model.safetensors": safetensors_file(), "config.json": b"{}"})
    report = svc.get_scan_report(READER, "fraud", version)
    assert (report.status, report.quarantined, report.action) == ("clean", False, "quarantine")
    assert {f.path: f.format for f in report.files} == {
        "config.json": "other",
        "model.safetensors": "safetensors",
    }
    assert read_all(svc, READER, version, "config.json") == b"{}"


def test_formats_come_from_the_bytes_not_the_names(svc: RegistryService, evil: bytes) -> None:
    svc.set_scan_policy(MANAGER, "fraud", "label")
    version = push(svc, {"model.safetensors": evil, "weights.pkl": safetensors_file()})
    files = {f.path: f for f in svc.get_scan_report(READER, "fraud", version).files}
    assert (files["model.safetensors"].format, files["model.safetensors"].status) == (
        "pickle",
        "flagged",
    )
    assert (files["weights.pkl"].format, files["weights.pkl"].status) == ("safetensors", "clean")


def test_malformed_safetensors_is_an_error_and_quarantined(svc: RegistryService) -> None:
    broken = struct.pack("<Q", 1 << 20) + b'{"w": {}}'
    version = push(svc, {"model.safetensors": broken})
    report = svc.get_scan_report(READER, "fraud", version)
    assert (report.status, report.quarantined) == ("error", True)
    assert "runs past the end" in report.summary


# -- policy and re-scan management ----------------------------------------------------------


def test_policy_needs_manage_and_null_returns_to_the_default(svc: RegistryService) -> None:
    with pytest.raises(PermissionDenied):
        svc.set_scan_policy(WRITER, "fraud", "label")
    with pytest.raises(NotFound):
        svc.set_scan_policy(OUTSIDER, "fraud", "label")
    with pytest.raises(InvalidParameter, match="label, quarantine, reject"):
        svc.set_scan_policy(MANAGER, "fraud", "ignore")
    svc.set_scan_policy(MANAGER, "fraud", "LABEL")
    assert svc.get_scan_policy(READER, "fraud").action == "label"
    back = svc.set_scan_policy(MANAGER, "fraud", None)
    assert (back.action, back.effective) == (None, "quarantine")
    events = audited(svc, "scan.policy")
    assert [(json.loads(e.before), json.loads(e.after)) for e in events] == [
        ({"action": None}, {"action": "label"}),
        ({"action": "label"}, {"action": None}),
    ]


def test_rescan_applies_the_current_policy(svc: RegistryService, evil: bytes) -> None:
    svc.set_scan_policy(MANAGER, "fraud", "label")
    version = push(svc, {"model.pkl": evil})
    svc.set_scan_policy(MANAGER, "fraud", "quarantine")  # applies to versions judged from now
    assert not svc.get_scan_report(READER, "fraud", version).quarantined
    with pytest.raises(PermissionDenied):
        svc.rescan_version(WRITER, "fraud", version)
    report = svc.rescan_version(MANAGER, "fraud", version)
    assert (report.status, report.action, report.quarantined) == ("flagged", "quarantine", True)
    (event,) = audited(svc, "scan.rerun")
    assert json.loads(event.before)["quarantined"] is False
    assert json.loads(event.after)["quarantined"] is True
    svc.set_scan_policy(MANAGER, "fraud", "label")
    assert not svc.rescan_version(MANAGER, "fraud", version).quarantined  # released


def test_identical_bytes_are_scanned_once(svc: RegistryService, evil: bytes) -> None:
    svc.create_model(MANAGER, "other-model")
    push(svc, {"a.pkl": evil})
    push(svc, {"b.pkl": evil}, name="other-model")
    rows = svc.db.read(
        lambda s: list(s.execute(select(blob_scans).where(blob_scans.c.digest == digest(evil))))
    )
    assert [(r.scanner, r.status, r.format) for r in rows] == [
        (scanner_name(), "flagged", "pickle")
    ]


def test_pickle_inside_an_archive_is_found(svc: RegistryService, marker: Path) -> None:
    buffer = io.BytesIO()
    payload = pickle.dumps(RunsCommand(f"touch {marker}"), protocol=2)
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("ckpt/data.pkl")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    version = push(svc, {"checkpoint.tar.gz": buffer.getvalue()})
    (file,) = svc.get_scan_report(READER, "fraud", version).files
    assert (file.format, file.status) == ("gzip+tar", "flagged")
    assert {x.member for x in file.findings if x.kind == "dangerous_global"} == {"ckpt/data.pkl"}


# -- over HTTP -----------------------------------------------------------------------------


def api_push(api: TestClient, files: dict[str, bytes], name: str = "m") -> int:
    if api.get(f"/api/v1/models/{name}").status_code == 404:
        assert api.post("/api/v1/models", json={"name": name}).status_code == 201
    manifest = [{"path": p, "size": len(b), "digest": digest(b)} for p, b in files.items()]
    created = api.post(f"/api/v1/models/{name}/versions", json={"files": manifest})
    assert created.status_code == 201, created.text
    by_digest = {digest(b): b for b in files.values()}
    version = created.json()["version"]
    for d in created.json()["missing"]:
        r = api.put(f"/api/v1/models/{name}/versions/{version}/blobs/{d}", content=by_digest[d])
        assert r.status_code == 200, r.text
    return int(version)


def test_api_quarantine_report_override_and_rescan(api: TestClient, evil: bytes) -> None:
    version = api_push(api, {"model.pkl": evil, "README.md": b"hi"})
    base = f"/api/v1/models/m/versions/{version}"
    report = api.get(f"{base}/scan")
    assert report.status_code == 200, report.text
    body = report.json()
    assert (body["status"], body["quarantined"], body["action"]) == ("flagged", True, "quarantine")
    (pkl,) = [f for f in body["files"] if f["path"] == "model.pkl"]
    assert {
        "kind": "dangerous_global",
        "module": os.system.__module__,
        "name": "system",
    }.items() <= (pkl["findings"][0].items())
    refused = api.get(f"{base}/files/model.pkl")
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "PERMISSION_DENIED"
    assert "override_quarantine=true" in refused.json()["message"]
    assert api.get(f"{base}/archive").status_code == 403
    assert api.head(f"{base}/files/model.pkl").status_code == 403  # nor its headers
    assert api.head(f"{base}/archive").status_code == 403
    overriding = {"override_quarantine": "true"}
    assert api.head(f"{base}/archive", params=overriding).status_code == 200
    assert api.head(f"{base}/files/model.pkl", params=overriding).status_code == 200
    etag = {"If-None-Match": "*"}  # nor a 304 that says it is there
    assert api.get(f"{base}/files/model.pkl", headers=etag).status_code == 403
    both = {"paths": ["README.md", "model.pkl"]}
    assert api.post(f"{base}/files", json=both).status_code == 403
    batch = api.post(f"{base}/files", json=both, params={"override_quarantine": "true"})
    assert batch.status_code == 200 and evil in batch.content
    allowed = api.get(f"{base}/files/model.pkl", params={"override_quarantine": "true"})
    assert allowed.status_code == 200 and allowed.content == evil
    assert api.get(f"{base}/archive", params={"override_quarantine": "true"}).status_code == 200
    events = api.get("/api/v1/audit", params={"action": "artifact.quarantine_override"})
    if events.status_code == 200:  # the audit route (another part of the API) is there
        assert any(e["target"] == "model.pkl" for e in events.json()["events"])
        # the HEADs above read no byte and left no event: only the batch (two files), the
        # file, the archive (itself, then each file) were audited
        targets = [e["target"] for e in sorted(events.json()["events"], key=lambda e: e["seq"])]
        assert targets == ["README.md", "model.pkl", "model.pkl", None, "README.md", "model.pkl"]
    rescanned = api.post(f"{base}/scan")
    assert rescanned.status_code == 200 and rescanned.json()["quarantined"] is True


def test_api_mlflow_download_refuses_quarantined_files(api: TestClient, evil: bytes) -> None:
    version = api_push(api, {"model.pkl": evil})
    r = api.get(f"/api/2.0/mlflow-artifacts/artifacts/cairn-models/m/{version}/model.pkl")
    assert r.status_code == 403, r.text
    assert "quarantined" in r.json()["message"]


def test_api_policy_routes(api: TestClient, evil: bytes) -> None:
    assert api.post("/api/v1/models", json={"name": "m"}).status_code == 201
    r = api.put("/api/v1/models/m/scan-policy", json={"action": "reject"})
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "m", "action": "reject", "effective": "reject"}
    assert api.get("/api/v1/models/m/scan-policy").json()["action"] == "reject"
    bad = api.put("/api/v1/models/m/scan-policy", json={"action": "ignore"})
    assert bad.status_code == 400 or bad.status_code == 422
    version = api_push(api, {"model.pkl": evil})
    got = api.get(f"/api/v1/models/m/versions/{version}").json()
    assert got["status"] == "FAILED"
    reset = api.put("/api/v1/models/m/scan-policy", json={"action": None})
    assert reset.json() == {"name": "m", "action": None, "effective": "quarantine"}
    clean = api_push(api, {"weights.safetensors": safetensors_file()})
    report = api.get(f"/api/v1/models/m/versions/{clean}/scan").json()
    assert (report["status"], report["quarantined"]) == ("clean", False)
    assert (
        api.get(f"/api/v1/models/m/versions/{clean}/files/weights.safetensors").status_code == 200
    )


def test_system_actor_is_not_exempt(svc: RegistryService, evil: bytes) -> None:
    version = push(svc, {"model.pkl": evil})
    with pytest.raises(PermissionDenied, match="quarantined"):
        svc.open_file(SYSTEM, "fraud", version, "model.pkl")


# -- the CLI, over HTTP and on a local data directory -----------------------------------


@pytest.fixture(params=["http", "local"])
def uri(request: pytest.FixtureRequest, settings: Settings) -> str:
    if request.param == "http":
        return str(request.getfixturevalue("live_server"))
    return str(settings.data_dir)


def cairn(uri: str, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["--uri", uri, *args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def test_cli_show_policy_rerun_and_pull(uri: str, evil: bytes, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(evil)
    (folder / "README.md").write_text("# fraud\n")
    cairn(uri, "--quiet", "push", str(folder), "--model", "fraud")
    report = json.loads(cairn(uri, "scan", "show", "models:/fraud/1", "--json").stdout)
    assert (report["status"], report["quarantined"]) == ("flagged", True)
    shown = cairn(uri, "scan", "show", "models:/fraud@latest").stdout
    assert "flagged" in shown and "quarantined" in shown and SYSTEM_IMPORT in shown
    refused = cairn(uri, "--quiet", "pull", "models:/fraud/1", "-o", str(tmp_path / "out"), code=1)
    assert isinstance(refused.exception, PermissionDenied)
    assert "quarantined" in str(refused.exception)
    anyway = tmp_path / "anyway"
    cache = ("--cache-dir", str(tmp_path / "cache"))  # empty: every file is read
    cairn(
        uri,
        "--quiet",
        "pull",
        "models:/fraud/1",
        "-o",
        str(anyway),
        *cache,
        "--override-quarantine",
    )
    assert (anyway / "model.pkl").read_bytes() == evil
    files = ("versions", "files", "models:/fraud/1", "--links", "--json")
    assert isinstance(cairn(uri, *files, code=1).exception, PermissionDenied)
    linked = json.loads(cairn(uri, *files, "--override-quarantine").stdout)
    assert [f["url"] for f in linked] == [None, None]  # local disk: no links, but audited
    overrides = cairn(uri, "audit", "list", "--action", "artifact.quarantine_override", "--json")
    targets = sorted(e["target"] for e in json.loads(overrides.stdout))
    assert targets == ["README.md", "README.md", "model.pkl", "model.pkl"]
    assert "label" in cairn(uri, "scan", "policy", "fraud", "label").output
    assert json.loads(cairn(uri, "scan", "policy", "fraud", "--json").stdout)["action"] == "label"
    rerun = json.loads(cairn(uri, "scan", "rerun", "models:/fraud/1", "--json").stdout)
    assert (rerun["status"], rerun["quarantined"], rerun["action"]) == ("flagged", False, "label")
    cairn(uri, "--quiet", "pull", "models:/fraud/1", "-o", str(tmp_path / "out"))
    assert (tmp_path / "out" / "model.pkl").read_bytes() == evil
    back = json.loads(cairn(uri, "scan", "policy", "fraud", "default", "--json").stdout)
    assert (back["action"], back["effective"]) == (None, "quarantine")
    bad = cairn(uri, "scan", "policy", "fraud", "ignore", code=1)
    assert isinstance(bad.exception, InvalidParameter)
