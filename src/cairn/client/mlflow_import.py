"""``cairn import mlflow``: copy an MLflow Model Registry into Cairn, files included.

The stock ``mlflow`` client (read through ``mlflow_source.MlflowSource``) lists every
registered model (prompts left out) and every version, and downloads each version's
files from wherever its source points, on this machine. The
files are then pushed to Cairn content-addressed, under the version's MLflow number, with
its description, tags, stage, run id, run link, source (kept as text), creation time and
creator; then the model's aliases are set.

Re-running is safe and resumes: a version already in Cairn with the same source and run
is skipped without downloading; any other version is downloaded, and one already there
with the same manifest digest is kept as it is (a half-uploaded one is completed). A
version whose files cannot be downloaded is recorded in Cairn as FAILED, with the reason,
keeping its number; the next run retries it.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cairn.client.base import BaseClient
from cairn.client.importing import (
    FAILED,
    FATAL,
    IMPORTED,
    PLANNED,
    SKIPPED,
    ImportSummary,
    ItemResult,
    Reporter,
    ensure_model,
    find_version,
    left_out,
    record_failed,
    scan_tree,
    sync_aliases,
    sync_version,
    write_version,
)
from cairn.client.mlflow_source import MlflowModel, MlflowSource, MlflowVersion, one_line
from cairn.domain.models import ModelVersion, VersionStatus
from cairn.domain.names import name_key
from cairn.errors import CairnError, NotFound, Unavailable


def _files_refused(name: str) -> str:
    """Why the files of a version imported earlier with --no-files are not added."""
    return (
        "in Cairn without files: it was imported without files (--no-files), and Cairn "
        "versions never change, so its files in MLflow cannot be added. To "
        f"bring them, delete the model in Cairn (cairn models delete {shlex.quote(name)}; "
        "all its versions go) and run the import again: it is imported afresh"
    )


class MlflowImporter:
    def __init__(
        self,
        cairn: BaseClient,
        source: MlflowSource,
        *,
        files: bool = True,
        reporter: Reporter | None = None,
    ) -> None:
        self.cairn = cairn
        self.source = source
        self.files = files
        self.reporter = reporter or Reporter()
        self._claimed: dict[str, str] = {}  # name key -> the MLflow name that took it

    def run(self, names: Sequence[str] = (), *, dry_run: bool = False) -> ImportSummary:
        self.source.check()
        models = self._list(names)
        self.reporter.expect(sum(len(m.versions) for m in models))
        summary = ImportSummary(dry_run=dry_run)
        for model in models:
            summary.models += 1
            for result in self._model(model, summary, dry_run):
                summary.add(result)
                self.reporter.done(result)
        return summary

    def _list(self, names: Sequence[str]) -> list[MlflowModel]:
        """The models to import with their versions, reported as they are listed."""
        models: list[MlflowModel] = []
        versions = 0
        try:
            for model in self.source.models(names):
                models.append(model)
                versions += len(model.versions)
                self.reporter.listing(len(models), versions)
        except Exception as exc:  # MlflowException, requests' errors, …
            raise Unavailable(
                f"cannot list the MLflow registry at {self.source.registry_uri}: {one_line(exc)}"
            ) from exc
        return models

    def _model(
        self, model: MlflowModel, summary: ImportSummary, dry_run: bool
    ) -> Iterator[ItemResult]:
        numbers = [v.number for v in model.versions]
        if model.problem is not None:
            yield from left_out(model.name, numbers, model.problem)
            return
        try:
            other = self._case_twin(model.name)
        except FATAL:
            raise
        except CairnError as exc:
            yield from left_out(model.name, numbers, f"model not imported: {exc.message}")
            return
        if other is not None:
            reason = (
                f"model not imported: it differs only in case from {other!r}, which is the "
                "same model in Cairn (Cairn names ignore case; MLflow's do not)"
            )
            yield from left_out(model.name, numbers, reason)
            return
        try:
            created, changes = ensure_model(
                self.cairn,
                model.name,
                description=model.description,
                tags=model.tags,
                created_at=model.created_at,
                created_by=model.created_by,
                dry_run=dry_run,
            )
        except FATAL:
            raise
        except CairnError as exc:
            yield from left_out(model.name, numbers, f"model not imported: {exc.message}")
            return
        summary.models_created += created
        what = "create model" if created else ("update " + ", ".join(changes) if changes else "")
        if what:
            yield ItemResult(model.name, None, PLANNED if dry_run else IMPORTED, what)
        for version in model.versions:
            self.reporter.start(model.name, version.number, "checking")
            try:
                yield self._version(model.name, version, dry_run, exists=not created)
            except FATAL:
                raise
            except CairnError as exc:
                yield ItemResult(model.name, version.number, FAILED, exc.message)
        yield from sync_aliases(self.cairn, model.name, model.aliases, dry_run=dry_run)

    def _case_twin(self, name: str) -> str | None:
        """The model ``name`` would be merged into: another MLflow name met in this run, or
        a Cairn model, that differs from ``name`` only in case."""
        other = self._claimed.setdefault(name_key(name), name)
        if other != name:
            return other
        try:
            there = self.cairn.get_model(name).name
        except NotFound:
            return None
        return there if there != name else None

    def _version(self, name: str, mv: MlflowVersion, dry_run: bool, *, exists: bool) -> ItemResult:
        number = mv.number
        if mv.problem is not None:  # nothing to download, and no record it could have
            return ItemResult(name, number, FAILED, mv.problem)
        existing = find_version(self.cairn, name, number) if exists else None
        if existing is not None and self._same_origin(existing, mv):
            if dry_run:
                return ItemResult(name, number, SKIPPED, "already in Cairn")
            changes = sync_version(
                self.cairn, existing, description=mv.description, tags=mv.tags, stage=mv.stage
            )
            note = "already in Cairn" + (f"; updated {', '.join(changes)}" if changes else "")
            return ItemResult(name, number, SKIPPED, note)
        if self.files and existing is not None and self._imported_without_files(existing, mv):
            # refused before a byte is downloaded, if MLflow says it has files for it
            held = self.source.has_files(name, number)
            if held:
                return ItemResult(name, number, FAILED, _files_refused(name))
        if dry_run:
            where = "without files" if not self.files else f"files from {mv.source}"
            return ItemResult(name, number, PLANNED, f"import ({where})")
        if mv.status != "READY":
            reason = f"MLflow status is {mv.status}" + (
                f": {mv.status_message}" if mv.status_message else ""
            )
            return self._failed(name, mv, existing, reason)
        if not self.files:
            version, _ = write_version(
                self.cairn, name, number, mv.spec(), (), **self._provenance(mv)
            )
            return self._written(name, mv, existing, version, 0)
        with tempfile.TemporaryDirectory(prefix="cairn-mlflow-") as tmp:
            self.reporter.start(name, number, "downloading")
            try:
                local = self.source.download(name, number, Path(tmp))
            except Exception as exc:  # whatever the artifact repository raised
                self._stop_if_gone(name, number)
                reason = f"files could not be downloaded from {mv.source}: {one_line(exc)}"
                return self._failed(name, mv, existing, reason)
            self.reporter.start(name, number, "uploading")
            progress = self.reporter.progress
            try:
                files = scan_tree(local, progress)
                if files and existing is not None and self._imported_without_files(existing, mv):
                    return ItemResult(name, number, FAILED, _files_refused(name))
                spec = mv.spec(tuple(f.entry for f in files))
                version, sent = write_version(
                    self.cairn, name, number, spec, files, progress=progress, **self._provenance(mv)
                )
            except FATAL:
                raise
            except CairnError as exc:  # a file name Cairn refuses, other content, …
                return self._failed(name, mv, existing, f"not stored: {exc.message}")
        return self._written(name, mv, existing, version, sent)

    def _stop_if_gone(self, name: str, number: int) -> None:
        """End the import if MLflow itself stopped answering: recording each version left
        as FAILED would be wrong, and each would first sit through the client's retries."""
        gone = self.source.gone()
        if gone is not None:
            uri, why = gone
            raise Unavailable(
                f"MLflow at {uri} stopped answering ({why}) while {name} v{number} was "
                "being downloaded; nothing was recorded for it. Run the import again when "
                "MLflow is back: it resumes where it stopped"
            )

    def _written(
        self,
        name: str,
        mv: MlflowVersion,
        existing: ModelVersion | None,
        version: ModelVersion,
        sent: int,
    ) -> ItemResult:
        if existing is not None and existing.status is not VersionStatus.FAILED:
            changes = sync_version(
                self.cairn, version, description=mv.description, tags=mv.tags, stage=mv.stage
            )
            if existing.status is VersionStatus.READY:
                note = "same files already in Cairn"
                if changes:
                    note += f"; updated {', '.join(changes)}"
                return ItemResult(name, mv.number, SKIPPED, note, sent)
        if version.status is not VersionStatus.READY:
            return ItemResult(name, mv.number, FAILED, f"left {version.status.value}", sent)
        return ItemResult(name, mv.number, IMPORTED, f"{len(version.files)} file(s)", sent)

    def _failed(
        self, name: str, mv: MlflowVersion, existing: ModelVersion | None, reason: str
    ) -> ItemResult:
        """Report the version; record it as FAILED unless it is already there."""
        if existing is not None:
            return ItemResult(name, mv.number, FAILED, reason)
        return record_failed(self.cairn, name, mv.number, mv.spec(), reason, **self._provenance(mv))

    @staticmethod
    def _provenance(mv: MlflowVersion) -> dict[str, Any]:
        return {"stage": mv.stage, "created_at": mv.created_at, "created_by": mv.created_by}

    @staticmethod
    def _imported_without_files(existing: ModelVersion, mv: MlflowVersion) -> bool:
        """Imported before from this MLflow version, with --no-files."""
        return (
            existing.status is VersionStatus.READY
            and not existing.files
            and existing.source == mv.source
            and existing.run_id == mv.run_id
        )

    def _same_origin(self, existing: ModelVersion, mv: MlflowVersion) -> bool:
        """Imported before from this very MLflow version (its files are immutable)."""
        return (
            existing.status is VersionStatus.READY
            and existing.source == mv.source
            and existing.run_id == mv.run_id
            and (bool(existing.files) or not self.files)
        )
