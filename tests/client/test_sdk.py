"""The SDK end to end, over HTTP against the real app and in-process on a directory.

Each test runs four times: {http, local} x {SQLite, PostgreSQL}; the same calls must give
the same results and raise the same exceptions.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import cairn
from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.client.local import LocalClient
from cairn.domain.artifacts import Retention
from cairn.domain.models import Stage, VersionStatus
from cairn.errors import (
    AlreadyExists,
    Conflict,
    InvalidFilter,
    InvalidParameter,
    NotFound,
    Unavailable,
)


def test_full_round_trip(client: BaseClient) -> None:
    model = client.create_model("fraud", description="detects fraud", tags={"team": "risk"})
    assert model.name == "fraud"
    v1 = client.create_version("fraud", params={"lr": "0.1"}, metrics={"auc": 0.91})
    v2 = client.create_version("fraud", metrics={"auc": 0.95}, semver="1.1.0", run_id="r2")
    assert (v1.version, v2.version) == (1, 2)
    assert v2.status is VersionStatus.READY
    client.set_alias("fraud", "champion", 2)
    assert client.resolve("models:/fraud@champion").version == 2
    assert client.resolve("models:/fraud/latest").version == 2
    assert client.get_version("fraud", 1).params == {"lr": "0.1"}
    found = client.search_versions("name = 'fraud' AND metrics.auc > 0.93")
    assert [v.version for v in found.items] == [2]
    staged = client.transition_stage("fraud", 1, "staging")
    assert staged.stage is Stage.STAGING
    client.update_model("fraud", description="better")
    client.set_model_tag("fraud", "owner", "ana")
    got = client.get_model("fraud")
    assert got.description == "better"
    assert got.tags == {"team": "risk", "owner": "ana"}
    assert got.aliases == {"champion": 2}
    client.rename_model("fraud", "fraud-v2")
    assert client.resolve("models:/fraud-v2@champion").version == 2


def test_same_exceptions_both_modes(client: BaseClient) -> None:
    client.create_model("m")
    with pytest.raises(AlreadyExists):
        client.create_model("M")
    with pytest.raises(NotFound):
        client.get_model("ghost")
    with pytest.raises(NotFound):
        client.get_version("m", 1)
    with pytest.raises(InvalidParameter):
        client.create_model("bad/name")
    with pytest.raises(InvalidFilter) as info:  # over HTTP too, with its position
        client.search_versions("tags.team = ")
    assert info.value.position == 12
    assert info.value.message.endswith("(at position 12)")
    client.create_version("m")
    client.set_alias("m", "prod", 1)
    with pytest.raises(Conflict):
        client.set_alias("m", "prod", 1, expect=0)


def test_pagination_iterators(client: BaseClient) -> None:
    for i in range(5):
        client.create_model(f"p{i}")
        client.create_version(f"p{i}")
    assert [m.name for m in client.iter_models(max_results=2)] == [f"p{i}" for i in range(5)]
    versions = list(client.iter_versions("name LIKE 'p%'", max_results=2))
    assert sorted(v.name for v in versions) == [f"p{i}" for i in range(5)]


def test_delete_restore_and_history(client: BaseClient) -> None:
    client.create_model("m")
    client.create_version("m")
    client.create_version("m")
    client.set_alias("m", "prod", 1)
    client.set_alias("m", "prod", 2)
    t = client.alias_history("m", "prod")[1].at
    assert client.resolve("models:/m@prod", as_of=t).version == 1
    client.delete_version("m", 2)
    with pytest.raises(NotFound):
        client.resolve("models:/m@prod")
    assert client.restore_version("m", 2).version == 2
    client.delete_model("m")
    with pytest.raises(NotFound):
        client.get_model("m")
    assert client.restore_model("m").latest_version == 2
    assert client.alias_history("m")[0].to_version is None


def test_as_of_before_anything_existed(client: BaseClient) -> None:
    client.create_model("m")
    client.create_version("m")
    client.set_alias("m", "prod", 1)
    with pytest.raises(NotFound):
        client.resolve("models:/m@prod", as_of=datetime(2000, 1, 1, tzinfo=UTC))


def test_a_time_without_zone_is_utc_in_both_modes(
    client: BaseClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``as_of`` without a zone is UTC, as the API and the service take it: the HTTP SDK
    must not read it in the machine's local zone (here nine hours east of UTC)."""
    client.create_model("m")
    client.create_version("m")
    client.create_version("m")
    client.set_alias("m", "prod", 1)
    client.set_alias("m", "prod", 2)
    moved = client.alias_history("m", "prod")[0].at  # the move to 2
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        naive = moved.astimezone(UTC).replace(tzinfo=None)
        assert client.resolve("models:/m@prod", as_of=naive).version == 2
        before = naive - timedelta(microseconds=1)
        assert client.resolve("models:/m@prod", as_of=before).version == 1
    finally:
        monkeypatch.undo()
        time.tzset()


def test_dot_and_empty_names_are_one_path_segment(client: BaseClient) -> None:
    """A key (or name) ``.`` or ``..`` names itself over HTTP as it does locally, never a
    URL's dot-segment: ``DELETE …/models/m/tags/..`` must not become ``DELETE …/models/m``
    (the model gone); an empty one is refused, not sent as the collection's URL."""
    client.create_model("m")
    client.create_version("m")
    for key in (".", ".."):
        assert client.set_model_tag("m", key, "v").tags[key] == "v"
        assert client.set_version_tag("m", 1, key, "v").tags[key] == "v"
    for key in (".", ".."):
        assert key not in client.delete_model_tag("m", key).tags
        assert key not in client.delete_version_tag("m", 1, key).tags
        with pytest.raises(NotFound):
            client.delete_model_tag("m", key)
        with pytest.raises(NotFound):
            client.delete_version_tag("m", 1, key)
    assert [v.version for v in client.list_versions("m").items] == [1]
    assert client.get_model("m").latest_version == 1
    with pytest.raises(InvalidParameter):
        client.get_model("")
    with pytest.raises(InvalidParameter):
        client.delete_model_tag("m", "")


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_metric_that_is_not_finite_is_refused_alike(client: BaseClient, number: float) -> None:
    """Not a number JSON can carry: over HTTP as locally, ``InvalidParameter`` (a Cairn
    error, not the encoder's ``ValueError``), and nothing is created."""
    client.create_model("m")
    with pytest.raises(InvalidParameter):
        client.create_version("m", metrics={"auc": number})
    assert client.get_model("m").latest_version is None


def test_client_factory_picks_the_mode(tmp_path: Path) -> None:
    remote = cairn.Client("http://127.0.0.1:9")
    assert isinstance(remote, HttpClient)
    remote.close()
    local = cairn.Client(tmp_path / "data")
    assert isinstance(local, LocalClient)
    assert local.search_models().items == []
    local.close()
    assert (tmp_path / "data" / "cairn.db").exists()


def test_listings_can_leave_the_manifests_out(client: BaseClient, tmp_path: Path) -> None:
    """``files=False`` (a listing of versions of many files): ``files`` comes back empty,
    ``size`` and ``digest`` still the version's; by default the manifest is there."""
    src = tmp_path / "src"
    (src / "shards").mkdir(parents=True)
    for i in range(3):
        (src / "shards" / f"{i}.bin").write_bytes(bytes([i]) * 100)
    client.create_model("m")
    pushed = client.push(src, name="m")
    assert len(pushed.files) == 3
    for listing in (
        lambda files: client.list_versions("m", files=files),
        lambda files: client.search_versions("name = 'm'", files=files),
        lambda files: client.search_versions("tags.nothing != 'x' OR version = 1", files=files),
    ):
        (full,) = listing(True).items
        (brief,) = listing(False).items
        assert full.files == pushed.files
        assert brief.files == () and (brief.size, brief.digest) == (full.size, full.digest)
        assert brief == replace(full, files=())


def test_prune_versions_both_modes(client: BaseClient) -> None:
    client.create_model("m")
    for _ in range(4):
        client.create_version("m")
    client.transition_stage("m", 1, "Staging")
    dry = client.prune_versions("m", keep=2)
    assert (dry.model, dry.dry_run, dry.pruned, dry.protected) == ("m", True, (2,), (1,))
    young = client.prune_versions("m", keep=2, keep_days=1)  # all four were made just now
    assert (young.keep_days, young.pruned, young.protected) == (1, (), (1, 2))
    done = client.prune_versions("m", keep=2, dry_run=False, purge=True)
    assert (done.dry_run, done.purge, done.pruned) == (False, True, (2,))
    with pytest.raises(NotFound):
        client.restore_version("m", 2)  # purged: nothing to restore
    with pytest.raises(InvalidParameter):
        client.prune_versions("m", keep=0)
    client.set_version_tag("m", 3, "run", "scratch")
    matched = client.prune_versions("m", keep=1, filter="tags.run = 'scratch'")
    assert (matched.filter, matched.pruned) == ("tags.run = 'scratch'", (3,))
    with pytest.raises(InvalidParameter, match="position"):
        client.prune_versions("m", keep=1, filter="tags.run ==")


def test_the_version_counter_outlives_a_purge_both_modes(client: BaseClient) -> None:
    """``last_version`` is the model's counter, not its highest surviving version."""
    made = client.create_model("m")
    assert (made.latest_version, made.last_version) == (None, 0)
    assert client.get_model("m").last_version == 0
    client.create_version("m")
    client.create_version("m")
    client.purge_version("m", 2)
    got = client.get_model("m")
    assert (got.latest_version, got.last_version) == (1, 2)
    listed = client.search_models("name = 'm'").items
    assert [(m.latest_version, m.last_version) for m in listed] == [(1, 2)]
    assert client.update_model("m", description="d").last_version == 2
    assert client.create_version("m").version == 3
    assert client.get_model("m").last_version == 3


def test_diff_versions_both_modes(client: BaseClient, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    (one / "sub").mkdir(parents=True)
    (two / "sub").mkdir(parents=True)
    (one / "w.bin").write_bytes(b"weights, first")
    (two / "w.bin").write_bytes(b"weights, second")
    for folder in (one, two):
        (folder / "sub" / "cfg.json").write_bytes(b"{}")
    (one / "tok.txt").write_bytes(b"tokens")
    (two / "tokenizer.txt").write_bytes(b"tokens")
    client.create_model("m")
    client.push(one, name="m", metrics={"auc": 0.5}, params={"lr": "0.1"}, alias="prod")
    before_move = datetime.now(UTC)
    client.push(two, name="m", metrics={"auc": 0.75}, params={"lr": "0.1"}, alias="prod")

    d = client.diff_versions("models:/m/1", "models:/m@prod")
    assert (d.old.version, d.new.version, d.identical) == (1, 2, False)
    assert [(c.key, c.old, c.new) for c in d.fields] == [("aliases", None, "@prod")]
    assert [(c.key, c.delta) for c in d.metrics] == [("auc", 0.25)] and d.params == ()
    assert [(c.kind.value, c.path) for c in d.files] == [
        ("changed", "w.bin"),
        ("renamed", "tokenizer.txt"),
    ]
    assert (d.unchanged_files, d.transfer_bytes) == (1, len(b"weights, second"))
    # what @prod pointed at before the second push, against what it points at now
    since = client.diff_versions("models:/m@prod", "models:/m@prod", old_as_of=before_move)
    assert (since.old.version, since.new.version) == (1, 2)
    assert client.diff_versions("models:/m/2", "models:/m@latest").identical
    with pytest.raises(NotFound):
        client.diff_versions("models:/m/1", "models:/m/3")
    with pytest.raises(InvalidParameter):
        client.diff_versions("m/1", "models:/m/2")
    with pytest.raises(InvalidParameter):  # as_of names a time, which only an alias has
        client.diff_versions("models:/m/1", "models:/m/2", old_as_of=before_move)


def test_a_pipeline_that_re_runs_registers_once_both_modes(
    client: BaseClient, tmp_path: Path
) -> None:
    model = client.ensure_model("m", description="first", tags={"team": "risk"})
    again = client.ensure_model("m", description="ignored")
    assert (
        (again.description, again.tags)
        == ("first", {"team": "risk"})
        == (
            model.description,
            model.tags,
        )
    )
    folder = tmp_path / "model"  # not tmp_path: the registry's data folder is in it
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"weights")
    first = client.push(folder, name="m", if_changed=True)  # nothing to compare with
    assert first.version == 1 and client.last_transfer is not None
    assert client.last_transfer.created
    same = client.push(folder, name="m", if_changed=True, metrics={"auc": 0.9}, alias="prod")
    assert (same.version, same.aliases, same.metrics) == (1, ("prod",), {})
    assert not client.last_transfer.created and client.last_transfer.transferred_bytes == 0
    assert client.push(folder, name="m").version == 2  # without it: a version each time
    (folder / "w.bin").write_bytes(b"new weights")
    changed = client.push(folder, name="m", if_changed=True, alias="prod")
    assert (changed.version, changed.aliases) == (3, ("prod",))
    assert client.last_transfer.created
    assert [v.version for v in client.list_versions("m").items] == [3, 2, 1]


def test_retention_policy_both_modes(client: BaseClient) -> None:
    client.create_model("m")
    assert client.get_retention("m").own is None
    policy = client.set_retention("m", keep=3, keep_days=7)
    assert (policy.name, policy.own, policy.effective) == (
        "m",
        Retention(3, 7.0),
        Retention(3, 7.0),
    )
    assert client.set_retention("m", keep=None).own == Retention(None)
    assert client.get_retention("m").effective == Retention(None)
    assert client.clear_retention("m").own is None
    with pytest.raises(InvalidParameter):
        client.set_retention("m", keep=0)
    with pytest.raises(NotFound):
        client.get_retention("ghost")


def test_resolve_a_semver_range_both_modes(client: BaseClient) -> None:
    client.create_model("m")
    for label in ("1.2.0", "1.9.3", "1.10.0", "2.0.0-rc.1", "0.9.0"):
        client.create_version("m", semver=label)
    client.create_version("m")  # no label: in no range
    picked = {
        r: client.resolve(f"models:/m@{r}").version
        for r in ("^1.4", "*", "~1.9", ">=2.0.0-rc.0", "^0", ">=1.2 <1.5")
    }
    assert picked == {"^1.4": 3, "*": 3, "~1.9": 2, ">=2.0.0-rc.0": 4, "^0": 5, ">=1.2 <1.5": 1}
    client.delete_version("m", 3)
    assert client.resolve("models:/m@^1").version == 2  # 1.10.0 is deleted: 1.9.3 next
    client.update_version("m", 1, semver="1.11.0")  # relabelled: ordered by its new label
    assert client.resolve("models:/m@^1").version == 1
    for _ in range(40):  # more than a batch of one major.minor.patch: builds tie, the
        client.create_version("m", semver="7.0.0+b")  # newest number wins
    client.create_version("m", semver="7.0.0-rc.1")
    assert client.resolve("models:/m@^7").version == 46
    assert client.resolve("models:/m@>=7.0.0-rc.0 <7.0.0").version == 47
    with pytest.raises(NotFound, match="no READY version whose semver is in"):
        client.resolve("models:/m@^3")
    with pytest.raises(InvalidParameter, match="semver range"):
        client.resolve("models:/m@1.x.2")


def test_rollback_alias_both_modes(client: BaseClient) -> None:
    client.create_model("m")
    for _ in range(3):
        client.create_version("m")
    client.set_alias("m", "champion", 1)
    with pytest.raises(InvalidParameter, match="no earlier version to roll back to"):
        client.rollback_alias("m", "champion")  # created by its only move
    client.set_alias("m", "champion", 2)
    between = datetime.now(UTC)
    client.set_alias("m", "champion", 3)
    assert client.rollback_alias("m", "champion").version == 2
    assert client.rollback_alias("m", "champion").version == 3  # a rollback is a move
    assert client.rollback_alias("m", "champion", as_of=between).version == 2
    events = client.alias_history("m", "champion")
    assert [(e.from_version, e.to_version) for e in events[:3]] == [(3, 2), (2, 3), (3, 2)]
    client.delete_alias("m", "champion")
    assert client.rollback_alias("m", "champion").version == 2  # set again
    with pytest.raises(NotFound):
        client.rollback_alias("m", "challenger")
    with pytest.raises(NotFound):
        client.rollback_alias("m", "champion", as_of=datetime(2001, 1, 1, tzinfo=UTC))


class _FilesUnreachable(httpx.BaseTransport):
    """The server for every call but file downloads, whose connection fails."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if "/files" in request.url.path and request.url.path.endswith(("/files", ".bin")):
            raise httpx.ConnectError("connection refused", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("size", [10, 3 << 20])  # in a batch of small files; alone
def test_a_download_that_cannot_connect_is_unavailable_not_httpx(
    live_server: str, admin_headers: dict[str, str], tmp_path: Path, size: int
) -> None:
    """A pull whose file requests fail to connect raises ``Unavailable``, the error every
    other call gives for an unreachable server, never httpx's own exception."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        (src / f"{i}.bin").write_bytes(bytes([i]) * size)
    with cairn.Client(live_server) as client:
        client.create_model("m")
        client.push(src, name="m")
    broken = httpx.Client(
        base_url=live_server, headers=admin_headers, transport=_FilesUnreachable()
    )
    client = HttpClient(live_server, http_client=broken)
    try:
        with pytest.raises(Unavailable, match="cannot reach Cairn"):
            client.pull("models:/m/1", tmp_path / "out", cache_dir=tmp_path / "cache")
    finally:
        client.close()
        broken.close()
