"""``cairn import DIR``: bring a ``cairn export`` folder into a registry.

Each model is created (or brought in line), then each version: one already there with
the same manifest digest is skipped; otherwise every blob of its manifest is re-hashed
from the folder first, and a version with a missing or corrupt blob is recorded as FAILED
(never READY) and reported, its number held for a later retry. The rest goes up through
``write_version`` with its original number. Then the aliases are set and the version
counter moved up to the source's, so numbers the source had spent stay spent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cairn.client.archive import ExportedModel, blob_path, read_export
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
    sync_aliases,
    sync_version,
    write_version,
)
from cairn.client.transfer import LocalFile, sha256_file
from cairn.domain.models import ModelVersion, VersionSpec, VersionStatus
from cairn.errors import CairnError

WAITING = "PENDING"  # a version left waiting for bytes the export does not hold


class ArchiveImporter:
    def __init__(self, client: BaseClient, folder: str | Path, reporter: Reporter | None = None):
        self.client = client
        self.root = Path(folder).expanduser()
        self.reporter = reporter or Reporter()
        self.metadata_only = False
        self._verified: dict[str, str | None] = {}  # digest → problem (None: good)

    def run(self, *, dry_run: bool = False) -> ImportSummary:
        header, models = read_export(self.root)
        self.metadata_only = bool(header.get("metadata_only"))
        self.reporter.expect(sum(len(m.versions) for m in models))
        summary = ImportSummary(dry_run=dry_run)
        for exported in models:
            summary.models += 1
            for result in self._model(exported, summary, dry_run):
                summary.add(result)
                self.reporter.done(result)
        return summary

    def _model(
        self, exported: ExportedModel, summary: ImportSummary, dry_run: bool
    ) -> Iterator[ItemResult]:
        model = exported.model
        try:
            created, changes = ensure_model(
                self.client,
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
            numbers = [v.version for v in exported.versions]
            yield from left_out(model.name, numbers, f"model not imported: {exc.message}")
            return
        summary.models_created += created
        what = "create model" if created else ("update " + ", ".join(changes) if changes else "")
        if what:
            yield ItemResult(model.name, None, PLANNED if dry_run else IMPORTED, what)
        waiting: set[int] = set()  # PENDING: their bytes are not in a metadata-only export
        for version in exported.versions:
            self.reporter.start(model.name, version.version, "checking")
            try:
                result = self._version(version, dry_run, exists=not created)
            except FATAL:
                raise
            except CairnError as exc:
                result = ItemResult(model.name, version.version, FAILED, exc.message)
            if result.outcome != FAILED and result.message.startswith(WAITING):
                waiting.add(version.version)
            yield result
        yield from sync_aliases(
            self.client, model.name, model.aliases, dry_run=dry_run, waiting=waiting
        )
        if not dry_run:
            try:
                self.client.reserve_versions(model.name, exported.version_counter)
            except FATAL:
                raise
            except CairnError as exc:
                reason = f"version counter not moved to {exported.version_counter}: {exc.message}"
                yield ItemResult(model.name, None, FAILED, reason)

    def _version(self, v: ModelVersion, dry_run: bool, *, exists: bool) -> ItemResult:
        existing = find_version(self.client, v.name, v.version) if exists else None
        if existing is not None and existing.digest == v.digest and existing.status is v.status:
            if existing.status is VersionStatus.PENDING:
                return ItemResult(v.name, v.version, SKIPPED, f"{WAITING} (already there)")
            if not dry_run:
                sync_version(
                    self.client,
                    existing,
                    description=v.description,
                    tags=v.tags,
                    stage=v.stage.value,
                    semver=v.semver,
                )
            return ItemResult(v.name, v.version, SKIPPED, "already there")
        spec = VersionSpec(
            description=v.description,
            tags=v.tags,
            params=v.params,
            metrics=v.metrics,
            semver=v.semver,
            source=v.source,
            run_id=v.run_id,
            run_link=v.run_link,
            files=v.files,
        )
        provenance: dict[str, Any] = {
            "stage": v.stage.value,
            "created_at": v.created_at,
            "created_by": v.created_by,
        }
        files = []
        if v.status is VersionStatus.READY:
            for entry in v.files:
                problem, path = self._check_blob(entry.digest, entry.size)
                if problem is not None:
                    reason = f"file {entry.path!r}: {problem}"
                    if dry_run:
                        return ItemResult(v.name, v.version, FAILED, reason)
                    if existing is not None:
                        return ItemResult(v.name, v.version, FAILED, reason)
                    return record_failed(self.client, v.name, v.version, spec, reason, **provenance)
                if path is not None:
                    files.append(LocalFile(entry, path))
        if dry_run:
            return ItemResult(v.name, v.version, PLANNED, f"import {len(v.files)} file(s)")
        self.reporter.start(v.name, v.version, "uploading")
        version, sent = write_version(
            self.client,
            v.name,
            v.version,
            spec,
            files,
            status="FAILED" if v.status is VersionStatus.FAILED else "READY",
            status_message=v.status_message,
            progress=self.reporter.progress,
            **provenance,
        )
        if version.status is VersionStatus.PENDING:
            note = f"{WAITING}: {len(self._still_missing(v, files))} blob(s) not in this export"
            return ItemResult(v.name, v.version, IMPORTED, note, sent)
        if version.status is not v.status:
            note = f"imported {version.status.value}, was {v.status.value}"
            return ItemResult(v.name, v.version, IMPORTED, note, sent)
        return ItemResult(v.name, v.version, IMPORTED, f"{len(v.files)} file(s)", sent)

    @staticmethod
    def _still_missing(v: ModelVersion, files: Sequence[LocalFile]) -> set[str]:
        return {f.digest for f in v.files} - {f.entry.digest for f in files}

    def _check_blob(self, digest: str, size: int) -> tuple[str | None, Path | None]:
        """Re-hash a blob of the export once: (problem, path); no path when it is absent
        from a metadata-only export."""
        path = blob_path(self.root, digest)
        if digest not in self._verified:
            if path.is_symlink() or (
                path.exists() and not path.resolve().is_relative_to(self.root.resolve())
            ):
                link = f"blob {digest} in the export is a link; an export holds plain files"
                self._verified[digest] = link
                return link, None
            if not path.is_file():
                problem = (
                    None if self.metadata_only else f"blob {digest} is missing from the export"
                )
            elif path.stat().st_size != size:
                problem = f"blob {digest} in the export is {path.stat().st_size} bytes, not {size}"
            else:
                actual = sha256_file(path)
                problem = (
                    None
                    if actual == digest
                    else (f"blob {digest} in the export is corrupt (its bytes hash to {actual})")
                )
            self._verified[digest] = problem
        return self._verified[digest], path if path.is_file() else None
