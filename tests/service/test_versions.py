"""Model versions through the service, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import math
import os
import pickle
from dataclasses import replace

import pytest

from cairn.domain.digests import EMPTY_DIGEST
from cairn.domain.models import Actor, FileEntry, Page, Stage, VersionSpec, VersionStatus
from cairn.errors import Conflict, InvalidParameter, NotFound
from cairn.service.registry import RegistryService

ALICE = Actor("alice", is_admin=True)


@pytest.fixture
def model(service: RegistryService) -> str:
    service.create_model(ALICE, "fraud")
    return "fraud"


def test_create_version_with_metadata(service: RegistryService, model: str) -> None:
    spec = VersionSpec(
        description="first",
        tags={"team": "risk"},
        params={"lr": "0.1"},
        metrics={"auc": 0.93, "n": 10},
        semver="1.0.0",
        source="s3://bucket/elsewhere/model",
        run_id="abc123",
        run_link="https://tracking.example/runs/abc123",
    )
    v = service.create_version(ALICE, model, spec)
    assert (v.name, v.version, v.status, v.stage) == ("fraud", 1, VersionStatus.READY, Stage.NONE)
    assert v.params == {"lr": "0.1"}
    assert v.metrics == {"auc": 0.93, "n": 10.0}
    assert v.source == "s3://bucket/elsewhere/model"
    assert v.digest is not None and v.digest.startswith("sha256:")
    assert v.size == 0 and v.files == ()
    assert v.created_by == "alice"
    assert service.get_version(ALICE, model, "1") == v
    assert service.get_model(ALICE, model).latest_version == 1


def test_version_numbers_are_dense_and_never_reused(service: RegistryService, model: str) -> None:
    assert [service.create_version(ALICE, model).version for _ in range(3)] == [1, 2, 3]
    service.delete_version(ALICE, model, 3)
    assert service.create_version(ALICE, model).version == 4
    with pytest.raises(NotFound):
        service.get_version(ALICE, model, 3)


def test_version_of_missing_model(service: RegistryService) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        service.create_version(ALICE, "ghost")


@pytest.mark.parametrize(
    "spec",
    [
        VersionSpec(metrics={"auc": math.nan}),
        VersionSpec(metrics={"auc": math.inf}),
        VersionSpec(metrics={"auc": "high"}),  # type: ignore[dict-item]
        VersionSpec(params={"lr": 0.1}),  # type: ignore[dict-item]
        VersionSpec(semver="1.0"),
        VersionSpec(semver="1.0.0-" + "a" * 300),  # longer than the column
        VersionSpec(semver="1" * 5000 + ".0.0"),  # past int()'s digits
        VersionSpec(run_id="a\nb"),
        VersionSpec(params={"": "x"}),
        VersionSpec(tags={"k" * 251: "x"}),
    ],
)
def test_bad_version_input_changes_nothing(
    service: RegistryService, model: str, spec: VersionSpec
) -> None:
    with pytest.raises(InvalidParameter):
        service.create_version(ALICE, model, spec)
    assert service.create_version(ALICE, model).version == 1  # no number was consumed


def test_update_and_tags(service: RegistryService, model: str) -> None:
    service.create_version(ALICE, model)
    v = service.update_version(ALICE, model, 1, description="better", semver="1.2.3-rc.1")
    assert (v.description, v.semver) == ("better", "1.2.3-rc.1")
    assert service.set_version_tag(ALICE, model, 1, "k", "v").tags == {"k": "v"}
    assert service.delete_version_tag(ALICE, model, 1, "k").tags == {}
    with pytest.raises(NotFound):
        service.delete_version_tag(ALICE, model, 1, "k")


def test_stages_with_archive_existing(service: RegistryService, model: str) -> None:
    for _ in range(3):
        service.create_version(ALICE, model)
    service.transition_stage(ALICE, model, 1, "production")
    service.transition_stage(ALICE, model, 2, "STAGING")
    v3 = service.transition_stage(ALICE, model, 3, "Production", archive_existing_versions=True)
    assert v3.stage is Stage.PRODUCTION
    assert service.get_version(ALICE, model, 1).stage is Stage.ARCHIVED
    assert service.get_version(ALICE, model, 2).stage is Stage.STAGING
    with pytest.raises(InvalidParameter, match="not one of"):
        service.transition_stage(ALICE, model, 1, "Prod")
    with pytest.raises(InvalidParameter):
        service.transition_stage(ALICE, model, 1, "Archived", archive_existing_versions=True)


def test_delete_removes_aliases_and_restore_brings_version_back(
    service: RegistryService, model: str
) -> None:
    service.create_version(ALICE, model)
    service.set_alias(ALICE, model, "prod", 1)
    service.delete_version(ALICE, model, 1)
    assert service.get_model(ALICE, model).aliases == {}
    assert service.get_model(ALICE, model).latest_version is None
    with pytest.raises(NotFound):
        service.resolve(ALICE, "models:/fraud@prod")
    restored = service.restore_version(ALICE, model, 1)
    assert restored.deleted_at is None and restored.aliases == ()
    with pytest.raises(NotFound):
        service.restore_version(ALICE, model, 1)  # not deleted any more


def test_list_versions_newest_first_and_deleted_hidden(
    service: RegistryService, model: str
) -> None:
    for _ in range(5):
        service.create_version(ALICE, model)
    service.delete_version(ALICE, model, 2)
    page = service.list_versions(ALICE, model)
    assert [v.version for v in page.items] == [5, 4, 3, 1]
    page = service.list_versions(ALICE, model, include_deleted=True, order_by=["version ASC"])
    assert [v.version for v in page.items] == [1, 2, 3, 4, 5]


def test_latest_is_the_newest_ready_live_version(service: RegistryService, model: str) -> None:
    """``models:/NAME/latest``, a model's ``latest_version`` (alone and in a search's page)
    pass over deleted versions and versions whose files never came."""
    for _ in range(3):
        service.create_version(ALICE, model)
    weights = FileEntry("w", len(b"w"), "sha256:" + hashlib.sha256(b"w").hexdigest())
    pending = service.create_version(ALICE, model, VersionSpec(files=(weights,)))
    assert (pending.version, pending.status) == (4, VersionStatus.PENDING)
    service.delete_version(ALICE, model, 3)

    def latest() -> list[int | None]:
        (found,) = service.search_models(ALICE, f"name = '{model}'").items
        return [
            service.resolve(ALICE, f"models:/{model}/latest").version,
            service.get_model(ALICE, model).latest_version,
            found.latest_version,
        ]

    assert latest() == [2, 2, 2]
    for number in (2, 1):
        service.delete_version(ALICE, model, number)
    with pytest.raises(NotFound):
        service.resolve(ALICE, f"models:/{model}/latest")
    assert service.get_model(ALICE, model).latest_version is None


def test_resolve_uris(service: RegistryService, model: str) -> None:
    for _ in range(3):
        service.create_version(ALICE, model)
    service.set_alias(ALICE, model, "champion", 2)
    assert service.resolve(ALICE, "models:/fraud/3").version == 3
    assert service.resolve(ALICE, "models:/FRAUD@Champion").version == 2
    assert service.resolve(ALICE, "models:/fraud/latest").version == 3
    assert service.resolve(ALICE, "models:/fraud@latest").version == 3
    with pytest.raises(InvalidParameter):
        service.resolve(ALICE, "runs:/abc/model")
    with pytest.raises(NotFound):
        service.resolve(ALICE, "models:/fraud/9")


def test_idempotent_create_version(service: RegistryService, model: str) -> None:
    spec = VersionSpec(params={"lr": "0.1"})
    first = service.create_version(ALICE, model, spec, idempotency_key="req-1")
    again = service.create_version(ALICE, model, spec, idempotency_key="req-1")
    assert again.version == first.version == 1
    assert service.create_version(ALICE, model).version == 2
    with pytest.raises(Conflict):
        service.create_version(ALICE, model, VersionSpec(), idempotency_key="req-1")


def test_idempotent_create_version_ignores_the_order_of_keys(
    service: RegistryService, model: str
) -> None:
    """The same request with its tags, params or metrics in another order (a JSON object's
    members have none) is the same request: its retry returns the version."""
    spec = VersionSpec(tags={"a": "1", "b": "2"}, params={"x": "1", "y": "2"}, metrics={"m": 1})
    first = service.create_version(ALICE, model, spec, idempotency_key="req-1")
    turned = VersionSpec(tags={"b": "2", "a": "1"}, params={"y": "2", "x": "1"}, metrics={"m": 1})
    again = service.create_version(ALICE, model, turned, idempotency_key="req-1")
    assert again.version == first.version == 1
    with pytest.raises(Conflict):  # another value is another request
        service.create_version(
            ALICE, model, replace(turned, tags={"b": "2", "a": "2"}), idempotency_key="req-1"
        )


class _RunsTrue:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def test_idempotent_create_of_a_version_the_scan_policy_rejects(
    service: RegistryService, model: str
) -> None:
    """A create answered with a FAILED version (its stored bytes flagged, the policy
    rejects) is a create like any other: its retry with the key returns that version
    and creates no second one."""
    blob = pickle.dumps({"hook": _RunsTrue()})
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    spec = VersionSpec(files=(FileEntry("model.pkl", len(blob), digest),))
    service.create_version(ALICE, model, spec)
    service.put_blob(ALICE, model, 1, digest, [blob])  # stored now: later creates are READY
    service.set_scan_policy(ALICE, model, "reject")
    first = service.create_version(ALICE, model, spec, idempotency_key="req-1")
    assert (first.version, first.status) == (2, VersionStatus.FAILED)
    again = service.create_version(ALICE, model, spec, idempotency_key="req-1")
    assert (again.version, again.status) == (2, VersionStatus.FAILED)
    assert [v.version for v in service.list_versions(ALICE, model).items] == [2, 1]
    created = service.list_audit(ALICE, action="version.create").items
    assert [e.version for e in created] == [2, 1]  # the rejected one was created too


def test_empty_manifest_digest_is_stable(service: RegistryService, model: str) -> None:
    a = service.create_version(ALICE, model)
    b = service.create_version(ALICE, model)
    assert a.digest == b.digest != EMPTY_DIGEST


def test_versions_read_without_their_files(service: RegistryService, model: str) -> None:
    """``files=False`` (MLflow's API, whose answers show no files): every way of reading a
    version leaves its manifest out, and only that; by default the manifest is there."""
    blob = b"weights"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    files = tuple(FileEntry(f"shards/{i}.bin", len(blob), digest) for i in range(3))
    spec = VersionSpec(files=files, tags={"k": "v"}, params={"lr": "0.1"}, metrics={"auc": 0.9})
    service.create_version(ALICE, model, spec)
    service.put_blob(ALICE, model, 1, digest, [blob])
    service.set_alias(ALICE, model, "champion", 1)
    written = {
        "set tag": service.set_version_tag(ALICE, model, 1, "k", "v", files=False),
        "update": service.update_version(ALICE, model, 1, description="d", files=False),
        "stage": service.transition_stage(ALICE, model, 1, "Staging", files=False),
    }
    full = service.get_version(ALICE, model, 1)
    assert full.status is VersionStatus.READY and full.files == files
    for how, got in written.items():
        assert got.files == () and got.digest == full.digest and got.size == full.size, how
    brief = replace(full, files=())
    read = {
        "get": service.get_version(ALICE, model, 1, files=False),
        "by number": service.resolve(ALICE, f"models:/{model}/1", files=False),
        "by alias": service.resolve(ALICE, f"models:/{model}@champion", files=False),
        "latest": service.resolve(ALICE, f"models:/{model}@latest", files=False),
        "one model's search": service.search_versions(ALICE, f"name = '{model}'", files=False),
        "search": service.search_versions(ALICE, "tags.k = 'v'", files=False),
        "latest by stage": service.latest_versions_by_stage(ALICE, [model], files=False),
    }
    assert {how: _one(got) for how, got in read.items()} == dict.fromkeys(read, brief)
    assert _one(service.search_versions(ALICE, f"name = '{model}'")) == full
    assert _one(service.search_versions(ALICE, "tags.k = 'v'")) == full
    assert _one(service.latest_versions_by_stage(ALICE, [model])) == full


def _one(found: object) -> object:
    """The one version a read gave: itself, a page's, or MLflow's latest of one model."""
    if isinstance(found, Page):
        (version,) = found.items
        return version
    if isinstance(found, dict):
        ((version,),) = found.values()
        return version
    return found


def test_a_semver_number_past_the_index_width_is_found_by_its_ranges(
    service: RegistryService, model: str
) -> None:
    """``semver_key`` caps each number at ten digits; a range naming a larger one still
    finds the versions labelled with it."""
    for label in ("1.0.0", "10000000000.0.0", "20000000000.1.0"):
        service.create_version(ALICE, model, VersionSpec(semver=label))
    picked = {
        r: service.resolve(ALICE, f"models:/{model}@{r}").version
        for r in ("10000000000.0.0", "^10000000000", ">=10000000000.0.0", "*", "<2")
    }
    assert picked == {
        "10000000000.0.0": 2,
        "^10000000000": 2,
        ">=10000000000.0.0": 3,
        "*": 3,
        "<2": 1,
    }
