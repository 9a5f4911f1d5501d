"""Use cases that change model versions: create, update, tags, stages, delete and restore
(reading them: ``version_reads``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace

from cairn.domain import names
from cairn.domain.access import Role
from cairn.domain.digests import NO_FILES, manifest_digest
from cairn.domain.lineage import input_to_json
from cairn.domain.models import Actor, ModelVersion, Stage, VersionSpec, VersionStatus
from cairn.domain.paths import validate_manifest
from cairn.domain.semver import validate_semver
from cairn.domain.uris import parse_version_number
from cairn.domain.validation import clean_spec, clean_tags, spec_fingerprint
from cairn.errors import InvalidParameter, NotFound, PayloadTooLarge
from cairn.service.base import authorize, no_such_model
from cairn.service.lineage import record_in
from cairn.service.scans import ScansService
from cairn.service.version_reads import VersionReadsService
from cairn.store.metadata import one_trip
from cairn.store.metadata.aliases_store import AliasStore
from cairn.store.metadata.audit_store import event_template, new_event
from cairn.store.metadata.blob_index_store import BlobIndexStore
from cairn.store.metadata.clock import to_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.idempotency_store import IdempotencyStore
from cairn.store.metadata.loaders import (
    load_versions,
)
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.versions_store import VersionStore


def _new_version(
    name: str, number: int, spec: VersionSpec, status: VersionStatus, actor: str, now: datetime
) -> ModelVersion:
    """The version just inserted, built from what was written (no read back)."""
    files = tuple(sorted(spec.files, key=lambda f: f.path))
    return ModelVersion(
        name=name,
        version=number,
        status=status,
        description=spec.description,
        tags=dict(sorted(spec.tags.items())),
        params=dict(sorted(spec.params.items())),
        metrics=dict(sorted(spec.metrics.items())),
        aliases=(),
        stage=Stage.NONE,
        created_at=now,
        updated_at=now,
        created_by=actor,
        semver=spec.semver,
        source=spec.source,
        run_id=spec.run_id,
        run_link=spec.run_link,
        files=files,
        size=sum(f.size for f in files),
        digest=manifest_digest(files),
    )


def _created(made: ModelVersion) -> dict[str, object]:
    """What the audit event of a version's creation records after it."""
    return {"status": made.status.value, "files": len(made.files), "digest": made.digest}


class VersionsService(VersionReadsService, ScansService):
    def create_version(
        self,
        actor: Actor,
        name: str,
        spec: VersionSpec | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> ModelVersion:
        """Allocate the next number and store the version, in one transaction."""
        names.validate_model_name(name)
        spec = clean_spec(spec or VersionSpec())
        files = validate_manifest(spec.files, self.limits.max_files)
        too_big = [f.path for f in files if f.size > self.limits.max_file_bytes]
        if too_big:
            raise PayloadTooLarge(
                f"file {too_big[0]!r} is larger than the limit of "
                f"{self.limits.max_file_bytes} bytes"
            )
        spec = replace(spec, files=files)
        # reads bytes: before the transaction that may make it READY
        self._scan_stored(files, actor)

        if (
            idempotency_key is None
            and not spec.files
            and not spec.lineage
            and self._one_statement_for(actor, name)
        ):
            made = self.db.write_statement(
                lambda s: self._create_in_one_statement(s, actor, name, spec, self.clock())
            )
            if made is not None:
                return made

        def run(s: Tx) -> ModelVersion:
            now = self.clock()
            claim = None
            if idempotency_key is not None:
                claim = IdempotencyStore(s).claim(
                    idempotency_key, actor.name, "create_version", spec_fingerprint(name, spec), now
                )
                if claim.replay_model_id is not None and claim.replay_version is not None:
                    # the same request again: authorized as it would be now, so that a
                    # caller who lost the model learns nothing of what it holds since
                    made_in = ModelStore(s).get_by_id(claim.replay_model_id)
                    live = made_in if made_in.deleted_at is None else None
                    authorize(actor, live, Role.WRITE, "create_version", no_such_model(name))
                    return self._load(s, claim.replay_model_id, name, claim.replay_version)
            model = ModelStore(s).allocate_version(name, now)
            authorize(actor, model, Role.WRITE, "create_version", no_such_model(name))
            number = int(model.last_version)
            digests = {f.digest for f in spec.files}
            index = BlobIndexStore(s)
            # stored bytes count only if the caller could read them anyway: otherwise the
            # answer would tell them someone else holds that content (they upload it instead)
            present, owed = index.present_for(spec.files, actor.readable(), lock=True)
            status = VersionStatus.READY if present >= digests else VersionStatus.PENDING
            version_id = VersionStore(s).insert(model.id, number, spec, status, actor.name, now)
            index.add_claims(version_id, owed)
            recorded = record_in(s, actor, version_id, spec.lineage, now)
            made = _new_version(model.name, number, spec, status, actor.name, to_datetime(now))
            written = SimpleNamespace(
                id=version_id, version=number, digest=made.digest, status=status.value
            )
            if status is VersionStatus.READY and (
                self._apply_scan_policy(s, version_id, model, written) is not VersionStatus.READY
            ):  # the scan verdict, and the policy: a rejected version comes back FAILED,
                # created all the same (its key recorded, its creation audited)
                made = load_versions(s, [version_id])[0]
            if claim is not None:
                IdempotencyStore(s).record(claim, model.id, number)
            after = _created(made)
            self._audit(s, actor, "version.create", model=model, version=number, after=after)
            if recorded:
                lineage = [input_to_json(i) for i in recorded]
                self._audit(s, actor, "lineage.record", model=model, version=number, after=lineage)
            return made

        return self.db.write(run)

    def _create_in_one_statement(
        self, s: Tx, actor: Actor, name: str, spec: VersionSpec, now: int
    ) -> ModelVersion | None:
        """``create_version``'s rows for a version without files (READY at once) by a
        caller whose grants cover the name whatever the model's id, in one statement
        (``one_trip.py``, PostgreSQL); None when it cannot, having done nothing."""
        made = _new_version(name, 0, spec, VersionStatus.READY, actor.name, to_datetime(now))
        event = new_event(actor, "version.create", at=now, model_name=name, after=_created(made))
        template = event_template(event, ("model_id", "seq", "version"))
        if template is None:
            return None
        created = one_trip.create_version(
            s,
            name,
            spec,
            status=made.status.value,
            stage=made.stage.value,
            digest=NO_FILES,
            created_by=actor.name,
            now=now,
            verdict=self._file_less_verdict(),
            audit=template,
        )
        return None if created is None else replace(made, version=created[1])

    def update_version(
        self,
        actor: Actor,
        name: str,
        version: int | str,
        *,
        description: str | None = None,
        semver: str | None = None,
        files: bool = True,
    ) -> ModelVersion:
        names.validate_model_name(name)
        number = parse_version_number(version)
        values: dict[str, object] = {}
        if description is not None:
            values["description"] = names.validate_text(
                "description", description, names.MAX_DESCRIPTION_LENGTH
            )
        if semver is not None:
            values["semver"] = validate_semver(semver)

        def run(s: Tx) -> ModelVersion:
            model = self._model(s, actor, name, Role.WRITE, "update_version")
            row = VersionStore(s).get(model.id, name, number)
            VersionStore(s).update(row.id, self.clock(), **values)
            before = {k: getattr(row, k) for k in values}
            self._audit(
                s, actor, "version.update", model=model, version=number, before=before, after=values
            )
            return self._load(s, model.id, name, number, files=files)

        return self.db.write(run)

    def set_version_tag(
        self,
        actor: Actor,
        name: str,
        version: int | str,
        key: str,
        value: str,
        *,
        files: bool = True,
    ) -> ModelVersion:
        names.validate_model_name(name)
        number = parse_version_number(version)
        clean = clean_tags("tag", {key: value}, names.MAX_TAG_VALUE_LENGTH)

        def run(s: Tx) -> ModelVersion:
            model = self._model(s, actor, name, Role.WRITE, "set_version_tag")
            store = VersionStore(s)
            row = store.get(model.id, name, number)
            store.set_tags(row.id, clean)
            store.update(row.id, self.clock())
            self._audit(
                s, actor, "version.tag.set", model=model, version=number, target=key, after=value
            )
            return self._load(s, model.id, name, number, files=files)

        return self.db.write(run)

    def delete_version_tag(
        self, actor: Actor, name: str, version: int | str, key: str, *, files: bool = True
    ) -> ModelVersion:
        names.validate_model_name(name)
        number = parse_version_number(version)
        names.validate_key("tag", key)

        def run(s: Tx) -> ModelVersion:
            model = self._model(s, actor, name, Role.WRITE, "delete_version_tag")
            store = VersionStore(s)
            row = store.get(model.id, name, number)
            if not store.delete_tag(row.id, key):
                raise NotFound(f"version {number} of {name!r} has no tag {key!r}")
            store.update(row.id, self.clock())
            self._audit(s, actor, "version.tag.delete", model=model, version=number, target=key)
            return self._load(s, model.id, name, number, files=files)

        return self.db.write(run)

    def transition_stage(
        self,
        actor: Actor,
        name: str,
        version: int | str,
        stage: str | Stage,
        *,
        archive_existing_versions: bool = False,
        files: bool = True,
    ) -> ModelVersion:
        """MLflow-style stage move; optionally archive the others in the target stage."""
        names.validate_model_name(name)
        number = parse_version_number(version)
        target = Stage.parse(stage)
        if archive_existing_versions and target not in (Stage.STAGING, Stage.PRODUCTION):
            raise InvalidParameter(
                "archive_existing_versions applies only when moving to Staging or Production"
            )

        def run(s: Tx) -> ModelVersion:
            model = self._model(s, actor, name, Role.WRITE, "transition_stage", lock=True)
            store = VersionStore(s)
            row = store.get(model.id, name, number)
            now = self.clock()
            store.update(row.id, now, stage=target.value)
            if archive_existing_versions:
                store.archive_stage(model.id, target, number, now)
            ModelStore(s).update(model.id, now)
            after = {"stage": target.value, "archive_existing_versions": archive_existing_versions}
            before = {"stage": row.stage}
            self._audit(
                s, actor, "version.stage", model=model, version=number, before=before, after=after
            )
            return self._load(s, model.id, name, number, files=files)

        return self.db.write(run)

    def delete_version(self, actor: Actor, name: str, version: int | str) -> None:
        """Soft delete: hidden, its aliases removed (with history); the number is never reused.
        A version a live deployment serves is refused (``Conflict``): move or retire the
        deployment first."""
        names.validate_model_name(name)
        number = parse_version_number(version)

        def run(s: Tx) -> None:
            model = self._model(s, actor, name, Role.MANAGE, "delete_version", lock=True)
            row = VersionStore(s).get(model.id, name, number)
            self._refuse_if_served(s, model, number, "delete")
            now = self.clock()
            aliases = AliasStore(s)
            removed = aliases.for_version(model.id, number)
            aliases.delete_for_version(model.id, number, actor.name, now)
            VersionStore(s).update(row.id, now, deleted_at=now)
            self._audit(s, actor, "version.delete", model=model, version=number)
            for alias in removed:  # each alias it carried is gone: say so where aliases look
                self._audit(
                    s,
                    actor,
                    "alias.delete",
                    model=model,
                    version=number,
                    target=alias,
                    before=number,
                )

        self.db.write(run)

    def restore_version(self, actor: Actor, name: str, version: int | str) -> ModelVersion:
        names.validate_model_name(name)
        number = parse_version_number(version)

        def run(s: Tx) -> ModelVersion:
            model = self._model(s, actor, name, Role.MANAGE, "restore_version", lock=True)
            row = VersionStore(s).get(model.id, name, number, deleted=True)
            VersionStore(s).update(row.id, self.clock(), deleted_at=None)
            self._audit(s, actor, "version.restore", model=model, version=number)
            return self._load(s, model.id, name, number)

        return self.db.write(run)
