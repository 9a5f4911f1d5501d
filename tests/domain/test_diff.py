"""``diff_versions``: what changed between two versions, and its JSON form."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.diff import FileChange, Kind, ValueChange, diff_versions
from cairn.domain.diff_codec import diff_from_json, diff_to_json
from cairn.domain.models import FileEntry, ModelVersion, Stage, VersionStatus

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def digest(content: str) -> str:
    return "sha256:" + content.encode().hex().ljust(64, "0")[:64]


def entry(path: str, content: str) -> FileEntry:
    return FileEntry(path, len(content), digest(content))


def version(number: int, files: tuple[FileEntry, ...] = (), **fields: object) -> ModelVersion:
    base = ModelVersion(
        name="fraud",
        version=number,
        status=VersionStatus.READY,
        description="",
        tags={},
        params={},
        metrics={},
        aliases=(),
        stage=Stage.NONE,
        created_at=NOW,
        updated_at=NOW,
        created_by="ana",
        files=files,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_a_version_against_itself_is_identical() -> None:
    v = version(1, (entry("w.bin", "abc"),), metrics={"auc": 0.9}, tags={"k": "v"})
    d = diff_versions(v, v)
    assert d.identical and d.unchanged_files == 1 and d.transfer_bytes == 0


def test_record_metrics_params_and_tags() -> None:
    old = version(1, metrics={"auc": 0.9, "loss": 0.3}, params={"lr": "0.1"}, tags={"team": "risk"})
    new = version(
        2,
        metrics={"auc": 0.95, "f1": 0.7},
        params={"lr": "0.05"},
        tags={"team": "risk"},
        stage=Stage.PRODUCTION,
        aliases=("production", "champion"),
        semver="1.1.0",
    )
    d = diff_versions(old, new)
    assert d.fields == (
        ValueChange("stage", "None", "Production"),
        ValueChange("semver", None, "1.1.0"),
        ValueChange("aliases", None, "@champion @production"),
    )
    assert [(c.key, c.kind, c.delta) for c in d.metrics] == [
        ("auc", Kind.CHANGED, 0.95 - 0.9),
        ("f1", Kind.ADDED, None),
        ("loss", Kind.REMOVED, None),
    ]
    assert d.params == (ValueChange("lr", "0.1", "0.05"),)
    assert d.tags == () and not d.identical


def test_files_changed_renamed_added_removed() -> None:
    old = version(
        1,
        (
            entry("w.bin", "weights-1"),
            entry("cfg.json", "{}"),
            entry("tok.txt", "tokens"),
            entry("notes.md", "old notes"),
        ),
    )
    new = version(
        2,
        (
            entry("w.bin", "weights-22"),
            entry("cfg.json", "{}"),
            entry("tokenizer/tok.txt", "tokens"),
            entry("extra.md", "new"),
        ),
    )
    d = diff_versions(old, new)
    assert d.files == (
        FileChange(
            Kind.CHANGED, "w.bin", entry("w.bin", "weights-1"), entry("w.bin", "weights-22")
        ),
        FileChange(
            Kind.RENAMED,
            "tokenizer/tok.txt",
            entry("tok.txt", "tokens"),
            entry("tokenizer/tok.txt", "tokens"),
        ),
        FileChange(Kind.ADDED, "extra.md", None, entry("extra.md", "new")),
        FileChange(Kind.REMOVED, "notes.md", entry("notes.md", "old notes"), None),
    )
    assert d.unchanged_files == 1
    assert d.transfer_bytes == len("weights-22") + len("new")  # the rename costs nothing


def test_content_held_twice_is_downloaded_once() -> None:
    old = version(1)
    new = version(2, (entry("a.bin", "same"), entry("b.bin", "same")))
    assert diff_versions(old, new).transfer_bytes == 4


paths = st.sampled_from(["a", "b", "c/d", "c/e", "f.bin"])
contents = st.sampled_from(["", "x", "yy", "zzz"])
manifests = st.dictionaries(paths, contents, max_size=5).map(
    lambda m: tuple(entry(p, c) for p, c in sorted(m.items()))
)


@given(manifests, manifests)
def test_the_file_changes_turn_the_old_manifest_into_the_new(
    before: tuple[FileEntry, ...], after: tuple[FileEntry, ...]
) -> None:
    d = diff_versions(version(1, before), version(2, after))
    files = {f.path: f for f in before}
    for c in d.files:
        if c.old is not None:
            files.pop(c.old.path, None)
    for c in d.files:
        if c.new is not None:
            files[c.new.path] = c.new
    assert sorted(files.values(), key=lambda f: f.path) == list(after)
    assert d.unchanged_files + sum(c.new is not None for c in d.files) == len(after)
    held = {f.digest for f in before}
    assert d.transfer_bytes == sum(
        {f.digest: f.size for f in after if f.digest not in held}.values()
    )


def test_json_round_trip_keeps_everything_but_the_manifests() -> None:
    old = version(1, (entry("w.bin", "a"),), metrics={"auc": 0.5}, params={"p": "1"})
    new = version(2, (entry("w.bin", "b"), entry("x", "c")), metrics={"auc": 0.75}, tags={"t": "v"})
    d = diff_versions(old, new)
    data = diff_to_json(d)
    assert data["old"]["files"] is None and data["metrics"][0]["delta"] == 0.25
    assert data["files"][0] == {
        "kind": "changed",
        "path": "w.bin",
        "old": {"path": "w.bin", "size": 1, "digest": digest("a")},
        "new": {"path": "w.bin", "size": 1, "digest": digest("b")},
    }
    back = diff_from_json(data)
    assert back == replace(d, old=replace(old, files=()), new=replace(new, files=()))
