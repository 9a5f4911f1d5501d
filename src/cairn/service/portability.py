"""Use cases for importers: models and versions that arrive with their history.

``cairn import mlflow`` and ``cairn import DIR`` bring versions whose numbers were fixed
elsewhere. ``import_version`` creates version ``N`` exactly, never by MAX()+1: under the
model's row lock, a number above the counter is taken and the counter moves up to it; a
number at or below the counter is accepted only when that version exists with the same
content (an idempotent re-run) or is a FAILED version that never held its bytes (a retry).
A number that was used before and is gone (deleted, purged, or passed by an import of a
later number) is never reused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from cairn.domain import names
from cairn.domain.codec import validate_time
from cairn.domain.digests import manifest_digest
from cairn.domain.models import Actor, ModelVersion, RegisteredModel, Stage, VersionSpec
from cairn.domain.models import VersionStatus as Status
from cairn.domain.paths import validate_manifest
from cairn.domain.uris import parse_version_number
from cairn.domain.validation import clean_optional, clean_spec, clean_tags
from cairn.errors import Conflict, InvalidParameter, PayloadTooLarge
from cairn.service.scans import ScansService
from cairn.store.metadata.blob_index_store import BlobIndexStore
from cairn.store.metadata.clock import from_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.loaders import load_models, load_versions
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.versions_store import VersionStore

MAX_ACTOR_LENGTH = 256


def _clean_created_by(value: str | None) -> str | None:
    return clean_optional("created_by", value, MAX_ACTOR_LENGTH) or None


class PortabilityService(ScansService):
    def import_model(
        self,
        actor: Actor,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
        created_by: str | None = None,
    ) -> RegisteredModel:
        """Create a model keeping its original creation time and creator.

        ``AlreadyExists`` if a live model has the name: an importer then updates the
        existing one through the ordinary methods.
        """
        validate_time("created_at", created_at)
        names.validate_model_name(name)
        names.validate_text("description", description, names.MAX_DESCRIPTION_LENGTH)
        clean = clean_tags("tag", tags, names.MAX_TAG_VALUE_LENGTH)
        creator = _clean_created_by(created_by)
        self._require_admin(actor, "import_model")

        def run(s: Tx) -> RegisteredModel:
            now = self.clock()
            models = ModelStore(s)
            model_id = models.insert(name, description, creator or actor.name, now)
            models.set_tags(model_id, clean)
            if created_at is not None:
                models.update(model_id, now, created_at=from_datetime(created_at))
            after = {"description": description, "tags": clean, "created_by": creator}
            self._audit(s, actor, "import.model", model=models.get_by_id(model_id), after=after)
            return load_models(s, [model_id])[0]

        return self.db.write(run)

    def import_version(
        self,
        actor: Actor,
        name: str,
        version: int | str,
        spec: VersionSpec,
        *,
        stage: Stage | str = Stage.NONE,
        status: Status | str = Status.READY,
        status_message: str = "",
        created_at: datetime | None = None,
        created_by: str | None = None,
    ) -> ModelVersion:
        """Create version ``version`` of ``name`` exactly, or return it if it is already there.

        ``status`` READY: the version is READY at once when every blob of its manifest is
        stored, else PENDING until the missing blobs are uploaded (as for a push). FAILED:
        a record of a version whose bytes could not be brought over (``status_message``
        says why); a later import of the same number with READY replaces it.

        An existing version with the same manifest digest is returned unchanged; one with
        other content is a ``Conflict``, as is a number that was used before and is gone.
        """
        validate_time("created_at", created_at)
        names.validate_model_name(name)
        number = parse_version_number(version)
        target_stage = Stage.parse(stage)
        try:
            wanted = Status(str(status).upper())
        except ValueError:
            raise InvalidParameter(f"status {status!r} is not READY or FAILED") from None
        if wanted is Status.PENDING:
            raise InvalidParameter(
                "status must be READY (the version becomes READY once its files are stored) "
                "or FAILED"
            )
        message = names.validate_text("status_message", status_message, 2048)
        creator = _clean_created_by(created_by)
        spec = clean_spec(spec)
        files = validate_manifest(spec.files, self.limits.max_files)
        too_big = [f.path for f in files if f.size > self.limits.max_file_bytes]
        if too_big:
            raise PayloadTooLarge(
                f"file {too_big[0]!r} is larger than the limit of "
                f"{self.limits.max_file_bytes} bytes"
            )
        spec = replace(spec, files=files)
        digest = manifest_digest(files)
        self._require_admin(actor, "import_version")
        self._scan_stored(files)  # reads bytes: before the transaction that may make it READY

        def run(s: Tx) -> ModelVersion:
            now = self.clock()
            models = ModelStore(s)
            model = models.get_live(name, lock=True)  # the counter row: one importer at a time
            store = VersionStore(s)
            row = store.find(model.id, number)
            if row is not None:
                if row.deleted_at is not None:
                    raise Conflict(
                        f"version {number} of {name!r} exists and is deleted; restore it "
                        "(cairn versions restore) to import over it, or leave it"
                    )
                if row.status == Status.FAILED.value and wanted is Status.READY:
                    store.purge(row.id)  # it never held its bytes: this import retries it
                elif row.digest == digest:
                    return load_versions(s, [row.id])[0]
                else:
                    raise Conflict(
                        f"version {number} of {name!r} exists with other content "
                        f"({row.digest}, not {digest}); versions never change"
                    )
            elif number <= int(model.last_version):
                raise Conflict(
                    f"version number {number} of {name!r} was used before (deleted, purged, "
                    f"or passed: the model's counter is at {model.last_version}); Cairn never "
                    "reuses a version number"
                )
            else:
                models.update(model.id, now, last_version=number)
            if wanted is Status.FAILED:
                state = Status.FAILED
            else:
                present = BlobIndexStore(s).present(files, lock=True)
                complete = present >= {f.digest for f in files}
                state = Status.READY if complete else Status.PENDING
            version_id = store.insert(model.id, number, spec, state, creator or actor.name, now)
            if state is Status.READY:
                state = self._apply_scan_policy(s, version_id)
            values: dict[str, object] = {}
            if created_at is not None:
                values["created_at"] = from_datetime(created_at)
            if target_stage is not Stage.NONE:
                values["stage"] = target_stage.value
            if state is Status.FAILED:
                values["status_message"] = message
            if values:
                store.update(version_id, now, **values)
            after = {"status": state.value, "files": len(files), "digest": digest}
            self._audit(s, actor, "import.version", model=model, version=number, after=after)
            return load_versions(s, [version_id])[0]

        return self.db.write(run)

    def reserve_versions(self, actor: Actor, name: str, up_to: int) -> RegisteredModel:
        """Move the model's counter up to ``up_to`` (never down): numbers up to it are spent.

        A restore uses it so that numbers the source had used (deleted or purged versions)
        are not handed out again by the restored registry.
        """
        names.validate_model_name(name)
        if isinstance(up_to, bool) or not isinstance(up_to, int) or up_to < 0:
            raise InvalidParameter(f"up_to must be a non-negative integer, not {up_to!r}")
        if up_to > 2**31 - 1:
            raise InvalidParameter(f"up_to {up_to} is beyond the largest version number")
        self._require_admin(actor, "reserve_versions")

        def run(s: Tx) -> RegisteredModel:
            models = ModelStore(s)
            model = models.get_live(name, lock=True)
            if up_to > int(model.last_version):
                models.update(model.id, self.clock(), last_version=up_to)
                before, after = {"last_version": int(model.last_version)}, {"last_version": up_to}
                self._audit(s, actor, "import.reserve", model=model, before=before, after=after)
            return load_models(s, [model.id])[0]

        return self.db.write(run)
