"""``cairn export DIR`` → ``cairn import DIR`` into an empty Cairn: the same registry.

The source is a data directory of its own (SQLite); the target is a data directory or a
live server, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.client.base import BaseClient
from cairn.client.local import LocalClient
from cairn.domain.models import FileEntry, VersionSpec, VersionStatus
from cairn.errors import InvalidParameter, NotFound

from .conftest import cairn, snapshot

pytestmark = pytest.mark.xdist_group("archive")  # one worker fills the source

V1 = {
    "model.bin": os.urandom(120_000),
    "config/params.json": b'{"lr": 0.1}',
    "empty.txt": b"",
    "données/modèle.txt": "ünïcödé".encode(),
}
V2 = {**V1, "model.bin": os.urandom(90_000), "extra/notes.md": b"# v2\n"}


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


class Source:
    """A populated Cairn in a data directory of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            "CAIRN_BACKEND_URI": f"sqlite:///{root / 'cairn.db'}",
            "CAIRN_ARTIFACTS_URI": f"file://{root / 'artifacts'}",
        }
        self.full = self.meta = root
        self.client = LocalClient(
            root,
            backend_uri=self.env["CAIRN_BACKEND_URI"],
            artifacts_uri=self.env["CAIRN_ARTIFACTS_URI"],
        )

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """The CLI on ``--uri ROOT`` opens this source (not the target of the test)."""
        with pytest.MonkeyPatch.context() as mp:
            for key, value in self.env.items():
                mp.setenv(key, value)
            yield

    def export(self, out: Path, *args: str, code: int = 0) -> str:
        with self.active():
            return cairn(str(self.root), "export", str(out), *args, code=code).stderr


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """Filled once: exports only read it."""
    work = tmp_path_factory.mktemp("archive")
    src = Source(work / "source")
    sdk = src.client
    sdk.create_model("fraud", description="Card fraud", tags={"team": "risk"})
    sdk.push(
        write_tree(work / "v1", V1),
        name="fraud",
        description="first",
        params={"lr": "0.1"},
        metrics={"auc": 0.91},
        tags={"data": "2024-q1"},
        semver="1.0.0",
        source="s3://bucket/run/1",
        run_id="run-1",
        run_link="https://ci/run/1",
        alias="champion",
    )
    sdk.push(write_tree(work / "v2", V2), name="fraud", alias="challenger")
    sdk.transition_stage("fraud", 2, "Production")
    sdk.push(write_tree(work / "v3", {"x": b"x"}), name="fraud")
    sdk.delete_version("fraud", 3)  # not exported, but its number stays spent
    sdk.create_model("empty", description="no versions yet")
    sdk.create_model("drafts")
    sdk.create_version("drafts", description="no files")
    manifest = (FileEntry("w.bin", 3, "sha256:" + "ab" * 32),)
    sdk._create_with_manifest("drafts", VersionSpec(files=manifest), "key-1")  # PENDING
    src.export(work / "full")
    src.export(work / "meta", "--metadata-only")
    src.full, src.meta = work / "full", work / "meta"
    yield src
    sdk.close()


def test_round_trip_into_an_empty_cairn(
    source: Source, tmp_path: Path, target: str, target_client: BaseClient
) -> None:
    out = source.full
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".full.")]  # no temp
    lines = (out / "cairn-export.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["format_version"] == 1
    assert json.loads(lines[-1])["type"] == "end"
    blobs = {p.name for p in (out / "blobs" / "sha256").rglob("*") if p.is_file()}
    assert len(blobs) == 6  # V1's four files, V2's two new ones; shared bytes once

    imported = json.loads(cairn(target, "import", str(out), "--json").stdout)
    assert imported["versions"]["imported"] == 4 and imported["problems"] == []
    expected = snapshot(source.client)
    assert snapshot(target_client) == expected
    assert target_client.get_version("drafts", 2).status is VersionStatus.PENDING

    history = target_client.alias_history("fraud")
    again = json.loads(cairn(target, "import", str(out), "--json").stdout)
    assert again["versions"] == {
        "imported": 0,
        "skipped": 4,
        "failed": 0,
        "planned": 0,
        "left_out": 0,
    }
    assert again["bytes"] == 0
    assert snapshot(target_client) == expected
    assert target_client.alias_history("fraud") == history

    assert target_client.create_version("fraud").version == 4  # 3 was used in the source
    pulled = target_client.pull("models:/fraud@challenger", tmp_path / "pulled")
    assert (pulled / "extra" / "notes.md").read_bytes() == b"# v2\n"


def purged_source(root: Path) -> Source:
    """A model with versions 1 and 2, and 2 purged: its counter is above every version."""
    src = Source(root)
    src.client.create_model("m")
    src.client.create_version("m")
    src.client.create_version("m")
    src.client.purge_version("m", 2)
    return src


def test_a_purged_number_stays_spent_after_a_restore(
    tmp_path: Path, target: str, target_client: BaseClient
) -> None:
    src = purged_source(tmp_path / "purged")
    src.export(tmp_path / "out")
    cairn(target, "import", str(tmp_path / "out"))
    assert target_client.create_version("m").version == 3  # as the source's next would be

    assert src.client.get_model("m").last_version == 2
    src.client.close()
    text = (tmp_path / "out" / "cairn-export.jsonl").read_text(encoding="utf-8")
    model = next(r for r in map(json.loads, text.splitlines()) if r["type"] == "model")
    assert model["version_counter"] == 2 and model["model"]["last_version"] == 2
    restored = target_client.get_model("m")
    assert (restored.latest_version, restored.last_version) == (3, 3)


def test_an_export_older_than_last_version_still_imports(
    tmp_path: Path, target: str, target_client: BaseClient
) -> None:
    """Exports written before models carried ``last_version``: the counter they hold is
    honoured."""
    src = purged_source(tmp_path / "purged")
    src.client.create_version("m")  # 3
    src.client.delete_version("m", 3)  # soft-deleted: counted by the old exporter too
    src.export(tmp_path / "out")
    src.client.close()
    path = tmp_path / "out" / "cairn-export.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for record in records:
        if record["type"] == "model":
            del record["model"]["last_version"]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    cairn(target, "import", str(tmp_path / "out"))
    assert target_client.get_model("m").last_version == 3
    assert target_client.create_version("m").version == 4


def test_dry_run_changes_nothing(source: Source, tmp_path: Path) -> None:
    target = str(tmp_path / "target")
    plan = cairn(target, "import", str(source.full), "--dry-run").stdout
    assert "fraud v2: import 5 file(s)" in plan
    assert "fraud@champion: set to v1" in plan
    assert json.loads(cairn(target, "models", "list", "--json").stdout) == []


def test_a_dry_run_with_json_prints_only_json(source: Source, tmp_path: Path) -> None:
    """--json makes stdout one JSON document; the plan's lines go to stderr."""
    target = str(tmp_path / "target")
    result = cairn(target, "import", str(source.full), "--dry-run", "--json")
    summary = json.loads(result.stdout)
    assert summary["dry_run"] is True and summary["versions"]["planned"] == 4
    assert "fraud v2: import 5 file(s)" in result.stderr


def test_metadata_only_round_trip(source: Source, target: str, target_client: BaseClient) -> None:
    meta, full = source.meta, source.full
    assert not (meta / "blobs").exists()

    cairn(target, "import", str(meta))
    expected = snapshot(source.client)
    got = snapshot(target_client)
    for name, model in got.items():
        for number, version in model["versions"].items():
            want = expected[name]["versions"][number]
            assert version["digest"] == want["digest"]
            assert version["files"] == want["files"]
            if version["files"]:  # the bytes are not in the export: they wait
                assert version["status"] == "PENDING"
            version["status"] = want["status"]
        model["latest_version"] = expected[name]["latest_version"]
        model["aliases"] = expected[name]["aliases"]
        for number, version in model["versions"].items():
            version["aliases"] = expected[name]["versions"][number]["aliases"]
    assert got == expected

    cairn(target, "import", str(full))  # the full export completes them
    assert snapshot(target_client) == expected


def test_a_corrupt_blob_fails_loudly_and_makes_nothing_ready(
    source: Source, tmp_path: Path, target: str, target_client: BaseClient
) -> None:
    out = tmp_path / "export"
    shutil.copytree(source.full, out)
    digest = next(f.digest for f in source.client.get_version("fraud", 2).files if f.size == 90_000)
    blob = out / "blobs" / "sha256" / digest[7:9] / digest[7:]
    good = blob.read_bytes()
    blob.write_bytes(bytes([good[0] ^ 1]) + good[1:])

    result = cairn(target, "import", str(out), code=1)
    assert f"blob {digest} in the export is corrupt" in result.stderr
    assert "fraud v2" in result.stderr
    broken = target_client.get_version("fraud", 2)
    assert broken.status is VersionStatus.FAILED
    assert "corrupt" in broken.status_message
    assert target_client.get_version("fraud", 1).status is VersionStatus.READY
    assert target_client.get_model("fraud").aliases == {"champion": 1}  # not on a FAILED one

    blob.write_bytes(good)  # repaired: the next run retries the version
    cairn(target, "import", str(out))
    assert snapshot(target_client) == snapshot(source.client)


def test_export_writes_a_new_folder_or_nothing(source: Source, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(InvalidParameter, match="exists"):
        source.export(tmp_path / "taken")
    with pytest.raises(NotFound, match="'nope' does not exist"):
        source.export(tmp_path / "partial", "--model", "fraud", "--model", "nope")
    assert not (tmp_path / "partial").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial.")]
    source.export(tmp_path / "one", "--model", "fraud")
    text = (tmp_path / "one" / "cairn-export.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["model"]["name"] for r in records if r["type"] == "model"] == ["fraud"]


def test_a_folder_that_is_not_an_export_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    with pytest.raises(InvalidParameter, match="not a Cairn export"):
        cairn(str(tmp_path / "target"), "import", str(tmp_path / "junk"))
    (tmp_path / "junk" / "cairn-export.jsonl").write_text('{"type": "header"}\n')
    with pytest.raises(InvalidParameter, match="header"):
        cairn(str(tmp_path / "target"), "import", str(tmp_path / "junk"))


def test_a_file_that_cannot_be_read_is_reported_and_the_rest_exported(tmp_path: Path) -> None:
    src = Source(tmp_path / "small")
    src.client.create_model("m")
    v1 = src.client.push(write_tree(tmp_path / "f", {"a": b"aaaa", "b": b"bbbb"}), name="m")
    bad = next(f for f in v1.files if f.path == "a").digest
    stored = src.root / "artifacts" / "blobs" / "sha256" / bad[7:9] / bad[7:]
    stored.write_bytes(b"zzzz")  # rotted on disk
    out = tmp_path / "out"
    with src.active():
        result = cairn(str(src.root), "export", str(out), "--json", code=1)
    summary = json.loads(result.stdout)
    assert summary["blobs"] == 1
    assert [(p["name"], p["version"]) for p in summary["problems"]] == [("m", 1)]
    assert "'a' not exported" in summary["problems"][0]["message"]
    assert (out / "cairn-export.jsonl").is_file()  # the rest is there, complete
    src.client.close()


def test_a_model_left_out_accounts_for_its_versions(
    source: Source, tmp_path: Path, target: str
) -> None:
    """A model the target refuses (here: a name edited into one Cairn refuses) was one
    problem line, and its versions were never reported: the bar ended short and the
    summary did not add up to the export's versions."""
    export = tmp_path / "edited"
    shutil.copytree(source.full, export)
    records = export / "cairn-export.jsonl"
    records.write_text(records.read_text().replace('"name": "fraud"', '"name": "fr/aud"'))
    result = cairn(target, "import", str(export), "--json", code=1)
    summary = json.loads(result.stdout)
    assert summary["versions"]["left_out"] == 2  # fraud's v1 and v2
    assert sum(summary["versions"].values()) == 4  # every exported version, once
    [problem] = [p for p in summary["problems"] if p["name"] == "fr/aud"]
    assert problem["message"].endswith("its 2 version(s) left out")
