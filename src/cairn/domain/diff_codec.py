"""Version diffs (``domain/diff.py``, with the tensor and signature diffs they carry) to
and from the native API's JSON; the other values' codec is ``codec.py``."""

from __future__ import annotations

from typing import Any

from cairn.domain.codec import (
    file_from_json,
    file_to_json,
    optional_number,
    version_from_json,
    version_to_json,
)
from cairn.domain.diff import FileChange, Kind, ValueChange, VersionDiff
from cairn.domain.mlmodel import SignatureChange, SignatureDiff, SignatureField
from cairn.domain.tensors import Tensor, TensorChange, TensorDiff, TensorKind


def _change_to_json(c: ValueChange) -> dict[str, Any]:
    return {"key": c.key, "kind": c.kind.value, "old": c.old, "new": c.new}


def _metric_to_json(c: ValueChange) -> dict[str, Any]:
    return {**_change_to_json(c), "delta": c.delta}


def _change_from_json(d: dict[str, Any]) -> ValueChange:
    return ValueChange(d["key"], d["old"], d["new"])


def _metric_from_json(d: dict[str, Any]) -> ValueChange:
    return ValueChange(d["key"], optional_number(d["old"]), optional_number(d["new"]))


def _file_change_to_json(c: FileChange) -> dict[str, Any]:
    return {
        "kind": c.kind.value,
        "path": c.path,
        "old": None if c.old is None else file_to_json(c.old),
        "new": None if c.new is None else file_to_json(c.new),
    }


def _file_change_from_json(d: dict[str, Any]) -> FileChange:
    return FileChange(
        Kind(d["kind"]),
        d["path"],
        None if d["old"] is None else file_from_json(d["old"]),
        None if d["new"] is None else file_from_json(d["new"]),
    )


def _tensor_to_json(t: Tensor | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "name": t.name,
        "dtype": t.dtype,
        "shape": list(t.shape),
        "size": t.size,
        "path": t.path,
        "digest": t.digest,
        "begin": t.begin,
        "end": t.end,
    }


def _tensor_from_json(d: dict[str, Any] | None) -> Tensor | None:
    if d is None:
        return None
    shape = tuple(int(n) for n in d["shape"])
    return Tensor(d["name"], d["dtype"], shape, d["path"], d["digest"], d["begin"], d["end"])


def _unreadable_to_json(files: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"path": path, "reason": why} for path, why in files]


def _unreadable_from_json(files: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((f["path"], f["reason"]) for f in files)


def tensor_diff_to_json(t: TensorDiff) -> dict[str, Any]:
    return {
        "changes": [
            {
                "kind": c.kind.value,
                "name": c.name,
                "what": list(c.what),
                "old": _tensor_to_json(c.old),
                "new": _tensor_to_json(c.new),
            }
            for c in t.changes
        ],
        "unchanged": t.unchanged,
        "unchanged_bytes": t.unchanged_bytes,
        "changed_bytes": t.changed_bytes,
        "unreadable": _unreadable_to_json(t.unreadable),
    }


def tensor_diff_from_json(d: dict[str, Any]) -> TensorDiff:
    changes = tuple(
        TensorChange(
            TensorKind(c["kind"]),
            c["name"],
            _tensor_from_json(c["old"]),
            _tensor_from_json(c["new"]),
            tuple(c["what"]),
        )
        for c in d["changes"]
    )
    unreadable = _unreadable_from_json(d["unreadable"])
    return TensorDiff(changes, int(d["unchanged"]), int(d["unchanged_bytes"]), unreadable)


def _field_to_json(f: SignatureField | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"name": f.name, "type": f.type, "required": f.required, "default": f.default}


def _field_from_json(d: dict[str, Any] | None) -> SignatureField | None:
    if d is None:
        return None
    return SignatureField(d["name"], d["type"], bool(d["required"]), d["default"])


def signature_diff_to_json(s: SignatureDiff) -> dict[str, Any]:
    return {
        "old_path": s.old_path,
        "new_path": s.new_path,
        "breaking": s.breaking,
        "changes": [
            {
                "section": c.section,
                "name": c.name,
                "kind": c.kind,
                "breaking": c.breaking,
                "old": _field_to_json(c.old),
                "new": _field_to_json(c.new),
            }
            for c in s.changes
        ],
        "unreadable": _unreadable_to_json(s.unreadable),
    }


def signature_diff_from_json(d: dict[str, Any]) -> SignatureDiff:
    changes = tuple(
        SignatureChange(
            c["section"],
            c["name"],
            _field_from_json(c["old"]),
            _field_from_json(c["new"]),
            bool(c["breaking"]),
        )
        for c in d["changes"]
    )
    unreadable = _unreadable_from_json(d["unreadable"])
    return SignatureDiff(d["old_path"], d["new_path"], changes, unreadable)


def diff_to_json(r: VersionDiff) -> dict[str, Any]:
    """The two versions without their manifests (the file changes say what differs)."""
    return {
        "old": version_to_json(r.old, files=False),
        "new": version_to_json(r.new, files=False),
        "identical": r.identical,
        "fields": [_change_to_json(c) for c in r.fields],
        "metrics": [_metric_to_json(c) for c in r.metrics],
        "params": [_change_to_json(c) for c in r.params],
        "tags": [_change_to_json(c) for c in r.tags],
        "files": [_file_change_to_json(c) for c in r.files],
        "unchanged_files": r.unchanged_files,
        "transfer_bytes": r.transfer_bytes,
        "tensors": None if r.tensors is None else tensor_diff_to_json(r.tensors),
        "signature": None if r.signature is None else signature_diff_to_json(r.signature),
    }


def diff_from_json(d: dict[str, Any]) -> VersionDiff:
    return VersionDiff(
        old=version_from_json(d["old"]),
        new=version_from_json(d["new"]),
        fields=tuple(_change_from_json(c) for c in d["fields"]),
        metrics=tuple(_metric_from_json(c) for c in d["metrics"]),
        params=tuple(_change_from_json(c) for c in d["params"]),
        tags=tuple(_change_from_json(c) for c in d["tags"]),
        files=tuple(_file_change_from_json(c) for c in d["files"]),
        unchanged_files=int(d["unchanged_files"]),
        transfer_bytes=int(d["transfer_bytes"]),
        tensors=None if d.get("tensors") is None else tensor_diff_from_json(d["tensors"]),
        signature=None if d.get("signature") is None else signature_diff_from_json(d["signature"]),
    )
