"""What an MLflow model's signature says, and whether a new version's breaks callers of an
old one.

An MLflow model folder holds an ``MLmodel`` file whose ``signature`` gives ``inputs``,
``outputs`` and ``params``, each a JSON list of specs (a column with a ``type``, a
``name`` and ``required``; a tensor with ``tensor-spec``; arrays, objects and maps with
nested ``items``/``properties``/``values``). ``parse_signature`` reads that mapping (the
caller parses the YAML); ``diff_signatures`` compares two, field by field (by name, or by
position for unnamed ones), and marks what would break a caller written for the old one:
a new required input, an input that became required, a removed output, any change of
type or shape, a removed or retyped param.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cairn.errors import InvalidParameter

SECTIONS = ("inputs", "outputs", "params")
MLMODEL = "MLmodel"


@dataclass(frozen=True, slots=True)
class SignatureField:
    """One input, output or param: ``type`` is its spec as canonical text (``double``,
    ``tensor float32 [-1, 4]``, or the JSON of a nested type); ``default``: a param's."""

    name: str
    type: str
    required: bool = True
    default: str | None = None

    def describe(self) -> str:
        optional = "" if self.required else " (optional)"
        default = "" if self.default is None else f" = {self.default}"
        return f"{self.type}{optional}{default}"


@dataclass(frozen=True, slots=True)
class Signature:
    inputs: tuple[SignatureField, ...] = ()
    outputs: tuple[SignatureField, ...] = ()
    params: tuple[SignatureField, ...] = ()


@dataclass(frozen=True, slots=True)
class SignatureChange:
    section: str  # inputs, outputs or params
    name: str
    old: SignatureField | None
    new: SignatureField | None
    breaking: bool

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        return "removed" if self.new is None else "changed"


@dataclass(frozen=True, slots=True)
class SignatureDiff:
    """``old_path``/``new_path``: the MLmodel files whose signatures were compared (None:
    that side has none, and ``changes`` is empty); ``unreadable``: MLmodel files that could
    not be read, and why (that side then counts as having none)."""

    old_path: str | None
    new_path: str | None
    changes: tuple[SignatureChange, ...]
    unreadable: tuple[tuple[str, str], ...] = ()

    @property
    def breaking(self) -> int:
        return sum(c.breaking for c in self.changes)


def parse_signature(signature: object) -> Signature | None:
    """The ``signature`` mapping of an MLmodel file (its sections JSON text); None for
    none."""
    if signature is None:
        return None
    if not isinstance(signature, Mapping):
        raise InvalidParameter("signature is not a mapping")
    sections: dict[str, tuple[SignatureField, ...]] = {}
    for section in SECTIONS:
        raw = signature.get(section)
        if raw is not None and not isinstance(raw, str):  # MLflow writes JSON text
            raise InvalidParameter(f"signature {section} is not JSON text")
        try:
            specs = [] if raw is None else json.loads(raw)
        except ValueError as exc:
            raise InvalidParameter(f"signature {section} is not JSON: {exc}") from None
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
            raise InvalidParameter(f"signature {section} is not a list of specs")
        sections[section] = tuple(_field(section, i, s) for i, s in enumerate(specs))
    return Signature(**sections)


def _field(section: str, position: int, spec: dict[str, Any]) -> SignatureField:
    name = spec.get("name")
    label = str(name) if name is not None else f"#{position}"
    if "tensor-spec" in spec:
        tensor = spec["tensor-spec"] if isinstance(spec["tensor-spec"], dict) else {}
        kind = f"tensor {tensor.get('dtype')} {json.dumps(tensor.get('shape'))}"
    elif set(spec) - {"name", "required", "type", "default", "shape"}:  # nested
        rest = {k: v for k, v in spec.items() if k not in ("name", "required", "default")}
        kind = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    else:
        kind = str(spec.get("type"))
        if spec.get("shape") is not None:
            kind += f" {json.dumps(spec['shape'])}"
    default = None
    if section == "params" and "default" in spec:
        default = json.dumps(spec["default"])
    return SignatureField(label, kind, bool(spec.get("required", True)), default)


def diff_signatures(
    old: tuple[str, Signature] | None,
    new: tuple[str, Signature] | None,
    unreadable: tuple[tuple[str, str], ...] = (),
) -> SignatureDiff:
    """Compare two (MLmodel path, signature) pairs; a side without one: nothing to compare."""
    changes = () if old is None or new is None else _changes(old[1], new[1])
    return SignatureDiff(
        None if old is None else old[0], None if new is None else new[0], changes, unreadable
    )


def find_mlmodel(paths: Iterable[str]) -> str | None:
    """The version's MLmodel file: at its root, else the one shallowest (then first)."""
    found = sorted((p.count("/"), p) for p in paths if p.rsplit("/", 1)[-1] == MLMODEL)
    return found[0][1] if found else None


def _changes(old: Signature, new: Signature) -> tuple[SignatureChange, ...]:
    changes: list[SignatureChange] = []
    for section in SECTIONS:
        before = {f.name: f for f in getattr(old, section)}
        after = {f.name: f for f in getattr(new, section)}
        for name in [*before, *(n for n in after if n not in before)]:
            a, b = before.get(name), after.get(name)
            if a != b:
                changes.append(SignatureChange(section, name, a, b, _breaks(section, a, b)))
    return tuple(changes)


def _breaks(section: str, old: SignatureField | None, new: SignatureField | None) -> bool:
    """Whether a caller written for ``old`` fails, or misreads the answer, with ``new``."""
    if old is not None and new is not None and old.type != new.type:
        return True
    if section == "inputs":  # a caller does not send what it did not know of
        return new is not None and new.required and (old is None or not old.required)
    if section == "outputs":  # a caller reads what it knew of
        return new is None
    return new is None  # params: one the model no longer knows is ignored, silently
