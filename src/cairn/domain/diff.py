"""What changed between two model versions: their record, metrics, params, tags and files.

``diff_versions(old, new)`` is pure: it compares two ``ModelVersion`` values (each with its
manifest), of one model or of two (a fine-tune against its base). Files are matched by
path; a file that left one path and appears at another with the same digest is a rename,
not a removal and an addition. ``transfer_bytes`` is what a pull of ``new`` downloads when
``old`` is in the cache already: the bytes of its distinct digests that ``old`` lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from cairn.domain.mlmodel import SignatureDiff
from cairn.domain.models import FileEntry, ModelVersion
from cairn.domain.tensors import TensorDiff

#: The version record's own fields a diff compares (besides tags, params and metrics).
FIELDS = ("status", "stage", "semver", "description", "source", "run_id", "run_link", "aliases")


class Kind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    RENAMED = "renamed"  # files only: the same content at another path


@dataclass(frozen=True, slots=True)
class ValueChange:
    """A field, tag, param or metric whose value differs; None where it is absent."""

    key: str
    old: str | float | None
    new: str | float | None

    @property
    def kind(self) -> Kind:
        if self.old is None:
            return Kind.ADDED
        return Kind.REMOVED if self.new is None else Kind.CHANGED

    @property
    def delta(self) -> float | None:
        """``new - old`` for a metric present on both sides."""
        if isinstance(self.old, str) or isinstance(self.new, str):
            return None
        if self.old is None or self.new is None:
            return None
        return self.new - self.old


@dataclass(frozen=True, slots=True)
class FileChange:
    """A file of one side only (``old`` or ``new`` None), of both with other content, or
    the same content at another path (``old.path`` is where it was)."""

    kind: Kind
    path: str
    old: FileEntry | None
    new: FileEntry | None


@dataclass(frozen=True, slots=True)
class VersionDiff:
    old: ModelVersion
    new: ModelVersion
    fields: tuple[ValueChange, ...]
    metrics: tuple[ValueChange, ...]
    params: tuple[ValueChange, ...]
    tags: tuple[ValueChange, ...]
    files: tuple[FileChange, ...]
    unchanged_files: int
    transfer_bytes: int
    tensors: TensorDiff | None = None  # when asked for: by tensor, across safetensors files
    signature: SignatureDiff | None = None  # when asked for: of their MLmodel files

    @property
    def identical(self) -> bool:
        """No difference in anything compared (the names and numbers aside)."""
        return not (self.fields or self.metrics or self.params or self.tags or self.files)


def _field(v: ModelVersion, name: str) -> str | None:
    value = getattr(v, name)
    if name == "aliases":
        return " ".join(f"@{a}" for a in sorted(value)) or None
    if value is None or value == "":
        return None
    return str(value)


def _changes(
    old: Mapping[str, str] | Mapping[str, float], new: Mapping[str, str] | Mapping[str, float]
) -> tuple[ValueChange, ...]:
    keys = sorted(old.keys() | new.keys())
    return tuple(ValueChange(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k))


def _file_changes(
    old: tuple[FileEntry, ...], new: tuple[FileEntry, ...]
) -> tuple[int, tuple[FileChange, ...]]:
    before = {f.path: f for f in old}
    after = {f.path: f for f in new}
    changes: list[FileChange] = []
    unchanged = 0
    for path in sorted(before.keys() & after.keys()):
        a, b = before[path], after[path]
        if a.digest == b.digest:
            unchanged += 1
        else:
            changes.append(FileChange(Kind.CHANGED, path, a, b))
    removed = [before[p] for p in sorted(before.keys() - after.keys())]
    added = [after[p] for p in sorted(after.keys() - before.keys())]
    gone_by_digest: dict[str, list[FileEntry]] = {}
    for f in removed:
        gone_by_digest.setdefault(f.digest, []).append(f)
    for f in added:
        moved_from = gone_by_digest.get(f.digest)
        if moved_from:  # the same content left another path: a rename
            source = moved_from.pop(0)
            changes.append(FileChange(Kind.RENAMED, f.path, source, f))
        else:
            changes.append(FileChange(Kind.ADDED, f.path, None, f))
    renamed = {c.old.path for c in changes if c.kind is Kind.RENAMED and c.old is not None}
    changes += [FileChange(Kind.REMOVED, f.path, f, None) for f in removed if f.path not in renamed]
    order = {Kind.CHANGED: 0, Kind.RENAMED: 1, Kind.ADDED: 2, Kind.REMOVED: 3}
    changes.sort(key=lambda c: (order[c.kind], c.path))
    return unchanged, tuple(changes)


def diff_versions(old: ModelVersion, new: ModelVersion) -> VersionDiff:
    """How ``new`` differs from ``old`` (both read with their manifests)."""
    fields = tuple(
        ValueChange(name, a, b)
        for name in FIELDS
        if (a := _field(old, name)) != (b := _field(new, name))
    )
    unchanged, files = _file_changes(old.files, new.files)
    held = {f.digest for f in old.files}
    needed = {f.digest: f.size for f in new.files if f.digest not in held}
    return VersionDiff(
        old=old,
        new=new,
        fields=fields,
        metrics=_changes(old.metrics, new.metrics),
        params=_changes(old.params, new.params),
        tags=_changes(old.tags, new.tags),
        files=files,
        unchanged_files=unchanged,
        transfer_bytes=sum(needed.values()),
    )
