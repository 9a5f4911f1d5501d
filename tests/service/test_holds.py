"""What holds a version against retention (``store/metadata/holds.py``): live deployments
and lineage, besides aliases and stages, through prune, gc's retention and purge, and
deleting by hand. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from sqlalchemy import update

from cairn.domain.access import SYSTEM
from cairn.domain.lineage import MAX_DEPTH, parent_input
from cairn.domain.models import FileEntry, VersionSpec
from cairn.errors import Conflict
from cairn.service.registry import RegistryService
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.schema import model_versions


def push(service: RegistryService, name: str, data: bytes) -> int:
    """A READY version of ``name`` holding one file of ``data``."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    spec = VersionSpec(files=(FileEntry("w.bin", len(data), digest),))
    number = service.create_version(SYSTEM, name, spec).version
    if service.missing_blobs(SYSTEM, name, number):
        service.put_blob(SYSTEM, name, number, digest, [data])
    return number


def models(service: RegistryService, **counts: int) -> None:
    """Models with that many READY versions each, every version's bytes its own."""
    for name, count in counts.items():
        service.create_model(SYSTEM, name)
        for n in range(count):
            push(service, name, f"{name} v{n + 1}".encode())


def derive(service: RegistryService, child: str, parent: str, relation: str) -> None:
    """Record ``parent`` (models:/NAME/VERSION) as a parent of ``child`` (NAME/VERSION)."""
    name, version = child.split("/")
    service.record_inputs(SYSTEM, name, int(version), [parent_input(parent, relation)])


def live(service: RegistryService, name: str) -> list[int]:
    return sorted(v.version for v in service.list_versions(SYSTEM, name, max_results=100).items)


def test_a_deployed_version_survives_prune_until_its_deployment_is_retired(
    service: RegistryService,
) -> None:
    models(service, m=5)
    service.set_deployment(SYSTEM, "m-prod", "models:/m/2", environment="prod")
    dry = service.prune_versions(SYSTEM, "m", keep=2)
    assert (dry.pruned, dry.protected) == ((1, 3), (2,))
    assert dry.bytes == len(b"m v1") + len(b"m v3")  # v2's bytes are not counted as freed
    done = service.prune_versions(SYSTEM, "m", keep=2, dry_run=False)
    assert (done.pruned, done.protected) == ((1, 3), (2,))
    assert live(service, "m") == [2, 4, 5]

    service.set_deployment(SYSTEM, "m-prod", "models:/m/5")  # moved on: 2 is free
    assert service.prune_versions(SYSTEM, "m", keep=2).pruned == (2,)
    service.set_deployment(SYSTEM, "m-prod", "models:/m/2", reason="rollback")
    service.retire_deployment(SYSTEM, "m-prod")  # retired: serves nothing
    done = service.prune_versions(SYSTEM, "m", keep=2, dry_run=False)
    assert (done.pruned, done.protected) == ((2,), ())
    assert live(service, "m") == [4, 5]


def test_a_fine_tune_parent_of_an_aliased_or_deployed_version_survives(
    service: RegistryService,
) -> None:
    """base 1-4; tuned 1 fine-tunes base 1 and carries @prod; tuned 2 quantizes base 2 and
    is deployed; tuned 3 fine-tunes base 3 and nothing holds it."""
    models(service, base=4, tuned=3)
    derive(service, "tuned/1", "models:/base/1", "fine-tune")
    derive(service, "tuned/2", "models:/base/2", "quantize")
    derive(service, "tuned/3", "models:/base/3", "fine-tune")
    service.set_alias(SYSTEM, "tuned", "prod", 1)
    service.set_deployment(SYSTEM, "tuned-edge", "models:/tuned/2", environment="edge")
    dry = service.prune_versions(SYSTEM, "base", keep=1)
    assert (dry.pruned, dry.protected) == ((3,), (1, 2))
    assert dry.bytes == len(b"base v3")
    service.prune_versions(SYSTEM, "base", keep=1, dry_run=False)
    assert live(service, "base") == [1, 2, 4]

    service.delete_alias(SYSTEM, "tuned", "prod")  # nothing holds tuned 1 now: base 1 goes
    assert service.prune_versions(SYSTEM, "base", keep=1).pruned == (1,)


def test_a_retrain_parent_is_not_held(service: RegistryService) -> None:
    """A retrain stands on its own: its predecessor goes, unless held through another
    relation too (here base 2 is also the parent a merge needs)."""
    models(service, base=4)
    derive(service, "base/2", "models:/base/1", "retrain")
    derive(service, "base/3", "models:/base/2", "retrain")
    derive(service, "base/4", "models:/base/3", "retrain")
    service.set_alias(SYSTEM, "base", "champion", 4)
    report = service.prune_versions(SYSTEM, "base", keep=1)
    assert (report.pruned, report.protected) == ((1, 2, 3), ())
    models(service, merged=1)
    derive(service, "merged/1", "models:/base/2", "merge")
    service.set_alias(SYSTEM, "merged", "prod", 1)
    report = service.prune_versions(SYSTEM, "base", keep=1)
    assert (report.pruned, report.protected) == ((1, 3), (2,))


def test_a_chain_across_models_holds_every_link(service: RegistryService) -> None:
    """base 1 <- fine-tune adapter 1 <- quantize small 1 (deployed). Nothing holds base 1
    or adapter 1 directly; the deployment at the chain's end holds both, and gc's
    whole-instance retention keeps them too; a retrain further up does not."""
    models(service, base=3, adapter=2, small=2)
    derive(service, "base/2", "models:/base/1", "retrain")  # base 2 is no link of the chain
    derive(service, "adapter/1", "models:/base/2", "fine-tune")
    derive(service, "small/1", "models:/adapter/1", "quantize")
    service.set_deployment(SYSTEM, "small-edge", "models:/small/1", environment="edge")
    assert service.prune_versions(SYSTEM, "adapter", keep=1).protected == (1,)
    assert service.prune_versions(SYSTEM, "small", keep=1).protected == (1,)
    base = service.prune_versions(SYSTEM, "base", keep=1)
    assert (base.pruned, base.protected) == ((1,), (2,))

    service.limits = replace(service.limits, keep_versions=1)
    dry = service.gc(SYSTEM, grace_s=0)
    assert dry.pruned_versions == (("base", 1),)
    done = service.gc(SYSTEM, dry_run=False, grace_s=0)
    assert done.pruned_versions == (("base", 1),)
    assert (live(service, "base"), live(service, "adapter"), live(service, "small")) == (
        [2, 3],
        [1, 2],
        [1, 2],
    )
    # a soft-deleted link still joins the chain: it could be restored
    service.delete_version(SYSTEM, "adapter", 1)
    assert service.prune_versions(SYSTEM, "base", keep=1).protected == (2,)
    service.retire_deployment(SYSTEM, "small-edge")
    assert service.gc(SYSTEM, grace_s=0).pruned_versions == (("base", 2), ("small", 1))


def test_the_walk_stops_at_the_lineage_depth(service: RegistryService) -> None:
    """Versions 1..12 of one model, each a fine-tune of the one before; the newest carries
    an alias. Its ancestors up to MAX_DEPTH (10) edges away are held; version 1, eleven
    away, is not."""
    count = MAX_DEPTH + 2
    models(service, deep=count)
    for n in range(2, count + 1):
        derive(service, f"deep/{n}", f"models:/deep/{n - 1}", "fine-tune")
    service.set_alias(SYSTEM, "deep", "prod", count)
    report = service.prune_versions(SYSTEM, "deep", keep=1)
    assert (report.pruned, report.protected) == ((1,), tuple(range(2, count)))


def test_a_stage_holds_the_parents_of_a_live_version_only(service: RegistryService) -> None:
    models(service, base=3, tuned=2)
    derive(service, "tuned/1", "models:/base/1", "distil")
    service.transition_stage(SYSTEM, "tuned", 1, "Production")
    assert service.prune_versions(SYSTEM, "base", keep=1).protected == (1,)
    service.delete_version(SYSTEM, "tuned", 1)  # a deleted version in Production holds nothing
    assert service.prune_versions(SYSTEM, "base", keep=1).pruned == (1, 2)


def test_a_version_a_live_deployment_serves_cannot_be_deleted_or_purged(
    service: RegistryService,
) -> None:
    models(service, m=2)
    service.set_alias(SYSTEM, "m", "prod", 1)
    service.set_deployment(SYSTEM, "m-prod", "models:/m/1", environment="prod")
    service.set_deployment(SYSTEM, "m-canary", "models:/m/1", environment="canary")
    for attempt in (service.delete_version, service.purge_version):
        with pytest.raises(
            Conflict, match="served by deployment 'm-canary' \\(canary\\), 'm-prod'"
        ):
            attempt(SYSTEM, "m", 1)
    assert live(service, "m") == [1, 2]  # nothing changed: the alias and the audit log too
    assert service.get_model(SYSTEM, "m").aliases == {"prod": 1}
    actions = [e.action for e in service.list_audit(SYSTEM, model="m", max_results=100).items]
    assert "version.delete" not in actions and "version.purge" not in actions

    service.set_deployment(SYSTEM, "m-prod", "models:/m/2")
    service.retire_deployment(SYSTEM, "m-canary")
    service.delete_version(SYSTEM, "m", 1)  # nothing serves it now
    assert live(service, "m") == [2]
    with pytest.raises(Conflict, match="'m-prod' \\(prod\\)"):
        service.purge_version(SYSTEM, "m", 2)


def test_gc_does_not_purge_a_deleted_version_something_still_holds(
    service: RegistryService,
) -> None:
    """CAIRN_PURGE_DELETED_AFTER_DAYS purges soft-deleted versions, but not the parent an
    aliased fine-tune needs, nor one a deployment still serves (a row older than the
    refusal to delete such a version); once nothing holds them, they go."""
    models(service, base=3, tuned=1)
    derive(service, "tuned/1", "models:/base/1", "fine-tune")
    service.set_alias(SYSTEM, "tuned", "prod", 1)
    service.set_deployment(SYSTEM, "base-prod", "models:/base/2", environment="prod")
    for number in (1, 3):
        service.delete_version(SYSTEM, "base", number)
    service.db.write(  # deleted under a deployment, as before deleting one was refused
        lambda s: s.execute(
            update(model_versions)
            .where(model_versions.c.version == 2, model_versions.c.deleted_at.is_(None))
            .where(model_versions.c.model_id.in_([_model_id(service, "base")]))
            .values(deleted_at=service.clock())
        )
    )
    service.limits = replace(service.limits, purge_deleted_after_s=0)
    first = service.gc(SYSTEM, dry_run=False, grace_s=0)
    assert (first.purged_versions, first.bytes) == ((("base", 3),), len(b"base v3"))
    service.delete_alias(SYSTEM, "tuned", "prod")
    service.retire_deployment(SYSTEM, "base-prod")
    done = service.gc(SYSTEM, dry_run=False, grace_s=0)
    assert sorted(done.purged_versions) == [("base", 1), ("base", 2)]
    assert done.bytes == len(b"base v1") + len(b"base v2")


def _model_id(service: RegistryService, name: str) -> int:
    return int(service.db.read(lambda s: ModelStore(s).find_live(name)).id)
