"""What both importers (MLflow, and Cairn's own export directories) share.

* ``write_version``: the push machinery with a fixed version number: the version is
  created (or found again) with its manifest, the blobs the server lacks go up in
  parallel, and it is finalized. Re-running it resumes an interrupted upload.
* ``ensure_model``, ``sync_version``, ``sync_aliases``: bring metadata in line through
  the ordinary SDK calls, writing only what differs, so a re-run changes nothing.
* ``Reporter`` and ``ImportSummary``: what an import tells its caller as it goes and at
  the end. A problem with one version is recorded and the import goes on; errors that
  concern every call (the registry unreachable, the token refused) stop it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cairn.client.base import BaseClient
from cairn.client.transfer import LocalFile, scan
from cairn.domain.models import ModelVersion, VersionSpec, VersionStatus
from cairn.domain.names import validate_alias
from cairn.domain.progress import NoProgress, Progress
from cairn.errors import (
    AlreadyExists,
    CairnError,
    InvalidParameter,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

# Errors about the connection or the caller, not about one version: they end an import.
FATAL = (Unavailable, Unauthenticated, PermissionDenied)

IMPORTED = "imported"
SKIPPED = "skipped"
FAILED = "failed"
PLANNED = "planned"  # dry run: what would be imported
LEFT_OUT = "left out"  # a version of a model that is not imported (its problem is the model's)


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The outcome for one version (``version`` set), one model or one alias."""

    name: str
    version: int | None
    outcome: str
    message: str = ""
    bytes: int = 0
    alias: str | None = None

    @property
    def label(self) -> str:
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name if self.version is None else f"{self.name} v{self.version}"


@dataclass(slots=True)
class ImportSummary:
    dry_run: bool = False
    models: int = 0
    models_created: int = 0
    imported: int = 0
    skipped: int = 0
    failed: int = 0
    planned: int = 0
    left_out: int = 0  # versions of models that were not imported
    bytes: int = 0  # bytes sent to Cairn
    problems: list[ItemResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, result: ItemResult) -> None:
        if result.outcome == FAILED:
            self.problems.append(result)
        if result.version is None or result.alias is not None:
            return
        if result.outcome == IMPORTED:
            self.imported += 1
        elif result.outcome == SKIPPED:
            self.skipped += 1
        elif result.outcome == FAILED:
            self.failed += 1
        elif result.outcome == PLANNED:
            self.planned += 1
        elif result.outcome == LEFT_OUT:
            self.left_out += 1
        self.bytes += result.bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "models": self.models,
            "models_created": self.models_created,
            "versions": {
                "imported": self.imported,
                "skipped": self.skipped,
                "failed": self.failed,
                "planned": self.planned,
                "left_out": self.left_out,
            },
            "bytes": self.bytes,
            "problems": [
                {"name": p.name, "version": p.version, "alias": p.alias, "message": p.message}
                for p in self.problems
            ],
        }

    def describe(self) -> str:
        """One line that accounts for every version met (failed ones and those left out
        with their model said only when there are any in a dry run)."""
        left_out = f", {self.left_out} left out with their model" if self.left_out else ""
        if self.dry_run:
            failing = f", {self.failed} would fail" if self.failed else ""
            return (
                f"dry run: {self.models} model(s), {self.planned} version(s) would be "
                f"imported, {self.skipped} already there{failing}{left_out}; "
                f"{len(self.problems)} problem(s)"
            )
        return (
            f"{self.models} model(s) ({self.models_created} created); versions: "
            f"{self.imported} imported, {self.skipped} skipped, {self.failed} failed"
            f"{left_out}; {self.bytes} bytes sent; {len(self.problems)} problem(s)"
        )


class Reporter:
    """Told what an import does; the CLI draws it, the default ignores it."""

    progress: Progress = NoProgress()

    def listing(self, models: int, versions: int) -> None:
        """The source is being listed: ``models`` models and ``versions`` versions so far."""

    def expect(self, versions: int) -> None:
        """``versions`` more versions to go through (called before starting on them)."""

    def start(self, name: str, version: int, what: str) -> None:
        """Work on a version begins (``what``: downloading, uploading, …)."""

    def done(self, result: ItemResult) -> None:
        """A version, model or alias is finished with."""


def left_out(name: str, versions: Sequence[int], reason: str) -> list[ItemResult]:
    """A model that is not imported: its problem, saying how many versions go with it, and
    each of those versions, so that every version the source holds is accounted for."""
    if versions:
        reason += f"; its {len(versions)} version(s) left out"
    problem = ItemResult(name, None, FAILED, reason)
    return [problem] + [ItemResult(name, v, LEFT_OUT, "left out with its model") for v in versions]


def scan_tree(root: Path, progress: Progress) -> list[LocalFile]:
    """Like ``scan``, but a folder without files is a version without files."""
    if root.is_dir() and not any(p.is_file() for p in root.rglob("*")):
        return []
    return scan(root, progress)


def find_version(client: BaseClient, name: str, version: int) -> ModelVersion | None:
    try:
        return client.get_version(name, version)
    except NotFound:
        return None


def ensure_model(
    client: BaseClient,
    name: str,
    *,
    description: str,
    tags: Mapping[str, str],
    created_at: datetime | None,
    created_by: str | None,
    dry_run: bool = False,
) -> tuple[bool, list[str]]:
    """Create the model, or bring its description and tags in line.

    Returns whether it was (or, in a dry run, would be) created, and what changed. Tags
    the model has beyond ``tags`` are left alone.
    """
    try:
        model = client.get_model(name)
    except NotFound:
        if not dry_run:
            try:
                client.import_model(
                    name,
                    description=description,
                    tags=tags,
                    created_at=created_at,
                    created_by=created_by,
                )
            except AlreadyExists:  # created meanwhile: fall through to an update
                return ensure_model(
                    client,
                    name,
                    description=description,
                    tags=tags,
                    created_at=created_at,
                    created_by=created_by,
                )
        return True, []
    changes = []
    if model.description != description:
        changes.append("description")
        if not dry_run:
            client.update_model(name, description=description)
    for key, value in tags.items():
        if model.tags.get(key) != value:
            changes.append(f"tag {key}")
            if not dry_run:
                client.set_model_tag(name, key, value)
    return False, changes


def sync_version(
    client: BaseClient,
    version: ModelVersion,
    *,
    description: str,
    tags: Mapping[str, str],
    stage: str,
    semver: str | None = None,
) -> list[str]:
    """Bring an existing version's description, tags, stage (and semver, when one is
    given) in line; say what changed."""
    changes = []
    if version.description != description:
        changes.append("description")
        client.update_version(version.name, version.version, description=description)
    if semver is not None and version.semver != semver:
        changes.append("semver")
        client.update_version(version.name, version.version, semver=semver)
    for key, value in tags.items():
        if version.tags.get(key) != value:
            changes.append(f"tag {key}")
            client.set_version_tag(version.name, version.version, key, value)
    if version.stage.value.lower() != stage.lower():
        changes.append("stage")
        client.transition_stage(version.name, version.version, stage)
    return changes


def write_version(
    client: BaseClient,
    name: str,
    number: int,
    spec: VersionSpec,
    files: Sequence[LocalFile],
    *,
    stage: str = "None",
    status: str = "READY",
    status_message: str = "",
    created_at: datetime | None = None,
    created_by: str | None = None,
    progress: Progress | None = None,
) -> tuple[ModelVersion, int]:
    """Create version ``number`` with ``files`` (or find it again) and send what is missing.

    The version is READY on return when every blob it needs was among ``files``; blobs
    nobody has (a metadata-only import) leave it PENDING. Returns the version and the
    bytes sent.
    """
    progress = progress or NoProgress()
    version, missing = client._import_with_manifest(
        name,
        number,
        spec,
        stage=stage,
        status=status,
        status_message=status_message,
        created_at=created_at,
        created_by=created_by,
    )
    wanted = set(missing)
    by_digest = {f.entry.digest: f for f in files}
    todo = [f for digest, f in by_digest.items() if digest in wanted]
    sent = sum(f.entry.size for f in todo)
    if todo:
        progress.begin("uploading", sent)
        client._upload(name, number, todo, progress)
        progress.end()
    if version.status is VersionStatus.PENDING and wanted <= set(by_digest):
        version = client.finalize_version(name, number)
    return version, sent


def record_failed(
    client: BaseClient,
    name: str,
    number: int,
    spec: VersionSpec,
    reason: str,
    *,
    stage: str = "None",
    created_at: datetime | None = None,
    created_by: str | None = None,
) -> ItemResult:
    """Report a version that could not be imported, and record it in the registry as
    FAILED with the reason (if it is not there yet): the number stays held for it, and the
    next import of it replaces the record."""
    try:
        client._import_with_manifest(
            name,
            number,
            spec,
            stage=stage,
            status="FAILED",
            status_message=reason[:2000],
            created_at=created_at,
            created_by=created_by,
        )
    except FATAL:
        raise
    except CairnError as exc:
        reason += f" (and it could not be recorded as FAILED: {exc.message})"
    return ItemResult(name, number, FAILED, reason)


def sync_aliases(
    client: BaseClient,
    name: str,
    aliases: Mapping[str, int],
    *,
    dry_run: bool = False,
    waiting: Collection[int] = (),
) -> list[ItemResult]:
    """Point each alias at its version where it points elsewhere (or nowhere).

    Aliases the model has beyond ``aliases`` are left alone. An alias whose version is
    in ``waiting`` (PENDING on purpose: its bytes are yet to come) is skipped; one whose
    version is otherwise not READY here is reported as a failure.
    """
    try:
        current = dict(client.get_model(name).aliases)
    except NotFound:
        current = {}
    results = []
    for alias, version in sorted(aliases.items()):
        if current.get(alias) == version:
            continue
        if dry_run:
            try:
                validate_alias(alias)
            except InvalidParameter as exc:
                results.append(ItemResult(name, version, FAILED, exc.message, alias=alias))
            else:
                note = f"set to v{version}"
                results.append(ItemResult(name, version, PLANNED, note, alias=alias))
            continue
        if version in waiting:
            note = f"not set: v{version} waits for its files"
            results.append(ItemResult(name, version, SKIPPED, note, alias=alias))
            continue
        try:
            client.set_alias(name, alias, version)
        except FATAL:
            raise
        except CairnError as exc:
            results.append(ItemResult(name, version, FAILED, exc.message, alias=alias))
        else:
            results.append(ItemResult(name, version, IMPORTED, f"set to v{version}", alias=alias))
    return results
