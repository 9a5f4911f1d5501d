"""``cairn export DIR`` and ``cairn import DIR``: Cairn's own data as a self-describing folder.

For backups and restores, and for promoting models from one Cairn to another::

    DIR/cairn-export.jsonl            one JSON object per line:
        {"type": "header", "format": "cairn-export", "format_version": 1,
         "exported_at": …, "cairn_version": …, "metadata_only": false}
        {"type": "model", "model": {…as the API returns it…}, "version_counter": N}
                                       N: the model's counter (its ``last_version``), the
                                       highest number it ever handed out
        {"type": "version", "version": {…as the API returns it, files included…}}
        …                              each model followed by its versions, oldest first
        {"type": "end", "models": M, "versions": V, "blobs": B, "bytes": S}
    DIR/blobs/sha256/ab/<64 hex>      every file of every READY version, once per digest
                                      (left out with --metadata-only)

The folder is written under a temporary name beside DIR and renamed into place when
complete, so DIR either does not exist or holds a whole export. An import checks the
format, re-hashes every blob before sending it, and keeps each version's number and
manifest digest; importing the same folder again changes nothing. Current aliases are
kept; alias history and soft-deleted versions are not exported (the counter is, so a
restored registry hands out neither their numbers nor those of purged versions again).
An export written before models carried ``last_version`` (its counter then counted only
the versions still there, deleted ones included) imports as it always did.

This module writes and reads the format; ``archive_import`` brings a folder in.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cairn import __version__
from cairn.client.base import BaseClient
from cairn.client.cache import BlobCache
from cairn.client.importing import (
    FAILED,
    FATAL,
    IMPORTED,
    ItemResult,
    Reporter,
)
from cairn.domain.codec import (
    format_time,
    model_from_json,
    model_to_json,
    version_from_json,
    version_to_json,
)
from cairn.domain.models import FileEntry, ModelVersion, RegisteredModel, VersionStatus
from cairn.errors import CairnError, InvalidParameter

FORMAT = "cairn-export"
FORMAT_VERSION = 1
MANIFEST = "cairn-export.jsonl"
PAGE = 1000


@dataclass(slots=True)
class ExportSummary:
    models: int = 0
    versions: int = 0
    blobs: int = 0
    bytes: int = 0
    problems: list[ItemResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "versions": self.versions,
            "blobs": self.blobs,
            "bytes": self.bytes,
            "problems": [
                {"name": p.name, "version": p.version, "message": p.message} for p in self.problems
            ],
        }

    def describe(self) -> str:
        return (
            f"{self.models} model(s), {self.versions} version(s), {self.blobs} blob(s), "
            f"{self.bytes} bytes; {len(self.problems)} problem(s)"
        )


@dataclass(frozen=True, slots=True)
class ExportedModel:
    model: RegisteredModel
    version_counter: int
    versions: tuple[ModelVersion, ...]


def blob_path(root: Path, digest: str) -> Path:
    return BlobCache(root, stamps=False).path(digest)


# -- export ----------------------------------------------------------------------------


def _all_versions(client: BaseClient, name: str) -> list[ModelVersion]:
    versions: list[ModelVersion] = []
    token: str | None = None
    while True:
        page = client.list_versions(
            name, order_by=["version ASC"], max_results=PAGE, page_token=token, include_deleted=True
        )
        versions.extend(page.items)
        token = page.next_page_token
        if not token:
            return versions


def _models(client: BaseClient, names: Sequence[str]) -> Iterator[RegisteredModel]:
    if names:
        for name in names:
            yield client.get_model(name)
    else:
        yield from client.iter_models(max_results=PAGE)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def export_registry(
    client: BaseClient,
    out: str | Path,
    *,
    names: Sequence[str] = (),
    metadata_only: bool = False,
    reporter: Reporter | None = None,
) -> ExportSummary:
    """Write the models (all, or ``names``) with their versions and files to ``out``."""
    reporter = reporter or Reporter()
    target = Path(out).expanduser()
    if target.exists():
        raise InvalidParameter(f"{target} exists; an export writes a new folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    summary = ExportSummary()
    try:
        blobs = BlobCache(tmp, stamps=False)  # an export holds blobs only
        with (tmp / MANIFEST).open("w", encoding="utf-8") as manifest:

            def write(record: dict[str, Any]) -> None:
                manifest.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")

            write(
                {
                    "type": "header",
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "exported_at": format_time(datetime.now(UTC)),
                    "cairn_version": __version__,
                    "metadata_only": metadata_only,
                }
            )
            for model in _models(client, names):
                every = _all_versions(client, model.name)
                live = [v for v in every if v.deleted_at is None]
                # the model's counter, not its highest surviving version: a purged
                # version is in no listing, yet its number is spent (a server older than
                # the field reports 0: the versions listed are then the best known)
                counter = max(model.last_version, max((v.version for v in every), default=0))
                write({"type": "model", "model": model_to_json(model), "version_counter": counter})
                summary.models += 1
                reporter.expect(len(live))
                for version in live:
                    write({"type": "version", "version": version_to_json(version)})
                    summary.versions += 1
                    result = ItemResult(version.name, version.version, IMPORTED)
                    if not metadata_only and version.status is VersionStatus.READY:
                        reporter.start(version.name, version.version, "downloading")
                        problems = _export_files(client, version, blobs, summary, reporter)
                        if problems:
                            message = "; ".join(problems)
                            result = ItemResult(version.name, version.version, FAILED, message)
                            summary.problems.append(result)
                    reporter.done(result)
            write(
                {
                    "type": "end",
                    "models": summary.models,
                    "versions": summary.versions,
                    "blobs": summary.blobs,
                    "bytes": summary.bytes,
                }
            )
            manifest.flush()
            os.fsync(manifest.fileno())
        for folder in [p for p in tmp.rglob("*") if p.is_dir()]:
            _fsync(folder)
        tmp.chmod(0o755)  # mkdtemp makes it 0700
        if target.exists():
            raise InvalidParameter(f"{target} appeared while exporting; nothing was replaced")
        os.rename(tmp, target)
        _fsync(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _export_files(
    client: BaseClient,
    version: ModelVersion,
    blobs: BlobCache,
    summary: ExportSummary,
    reporter: Reporter,
) -> list[str]:
    """Download the version's blobs that the export lacks, verified, fsynced; return
    what went wrong (the version's other files are still exported)."""
    todo = [f for f in {f.digest: f for f in version.files}.values() if not blobs.has(f)]
    problems = []
    try:  # on an object store the bytes come straight from the bucket
        links = client._direct_urls(version.name, version.version, todo) if todo else {}
    except FATAL:
        raise
    except CairnError:  # a file no link covers (corrupt, say) reports its own problem below
        links = {}
    reporter.progress.begin("exporting", sum(f.size for f in todo))
    for entry in todo:

        def fetch(
            start: int, file: FileEntry = entry, link: str | None = links.get(entry.digest)
        ) -> Iterator[bytes]:
            return client._fetch(version.name, version.version, file, start, link)

        try:
            stored = blobs.fill(entry, fetch, reporter.progress)
        except FATAL:
            raise
        except CairnError as exc:
            problems.append(f"{entry.path!r} not exported: {exc.message}")
            continue
        _fsync(stored)
        summary.blobs += 1
        summary.bytes += entry.size
    reporter.progress.end()
    return problems


# -- reading ---------------------------------------------------------------------------


def read_export(folder: str | Path) -> tuple[dict[str, Any], list[ExportedModel]]:
    """The header and the models of an export folder, checked for format and completeness."""
    root = Path(folder).expanduser()
    path = root / MANIFEST
    if not path.is_file():
        raise InvalidParameter(f"{root} is not a Cairn export: {MANIFEST} is missing")
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        records = [json.loads(line) for line in lines if line.strip()]
    except ValueError as exc:
        raise InvalidParameter(f"{path} is not valid JSON lines: {exc}") from None
    if not records or records[0].get("type") != "header" or records[0].get("format") != FORMAT:
        raise InvalidParameter(f"{path} does not start with a {FORMAT} header")
    header = records[0]
    if header.get("format_version") != FORMAT_VERSION:
        raise InvalidParameter(
            f"{path} has format version {header.get('format_version')!r}; this Cairn reads "
            f"version {FORMAT_VERSION} (a newer Cairn wrote it?)"
        )
    end = records[-1]
    models: list[ExportedModel] = []
    current: dict[str, Any] | None = None
    versions: list[ModelVersion] = []

    def close() -> None:
        if current is not None:
            counter = int(current["version_counter"])
            # an older export's model lacks last_version: its counter stands for it
            model = model_from_json({"last_version": counter, **current["model"]})
            models.append(ExportedModel(model, counter, tuple(versions)))

    try:
        for record in records[1:-1]:
            kind = record.get("type")
            if kind == "model":
                close()
                current, versions = record, []
            elif kind == "version" and current is not None:
                version = version_from_json(record["version"])
                if version.name != current["model"]["name"]:
                    raise InvalidParameter(
                        f"{path}: a version of {version.name!r} is outside its model"
                    )
                versions.append(version)
            else:
                raise InvalidParameter(f"{path}: unexpected record {str(record)[:80]}")
        close()
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidParameter(f"{path}: a record lacks or garbles a field ({exc!r})") from None
    count = sum(len(m.versions) for m in models)
    if end.get("type") != "end" or (end.get("models"), end.get("versions")) != (
        len(models),
        count,
    ):
        raise InvalidParameter(f"{path} is incomplete: its end record is missing or disagrees")
    return header, models
