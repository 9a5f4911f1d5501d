"""Which tensors changed between two model versions, by name, across their safetensors files.

A version's tensors are those of all its ``.safetensors`` files (the shards of one model
name each tensor once), so a fine-tune compares with its base however either is sharded.
``diff_tensors(old, new, same_values)`` is pure: a tensor of both sides whose dtype and
shape agree is unchanged when it sits at the same place of the same blob, and otherwise
as ``same_values`` says (the caller reads the bytes; None: not compared).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

SUFFIX = ".safetensors"


class TensorKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"  # dtype, shape or values differ
    UNCOMPARED = "not compared"  # dtype and shape agree; the values were not read


@dataclass(frozen=True, slots=True)
class Tensor:
    """One tensor: where its bytes are (``begin``/``end``: offsets in the file ``path``,
    whose content is the blob ``digest``)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    path: str
    digest: str
    begin: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True, slots=True)
class TensorChange:
    kind: TensorKind
    name: str
    old: Tensor | None
    new: Tensor | None
    what: tuple[str, ...] = ()  # of a change: "dtype", "shape", "values"


@dataclass(frozen=True, slots=True)
class TensorDiff:
    """``unchanged``/``unchanged_bytes``: tensors whose values are known to be the same
    (and their bytes on the new side); ``unreadable``: safetensors files whose header could
    not be read, with why, their tensors left out."""

    changes: tuple[TensorChange, ...]
    unchanged: int
    unchanged_bytes: int
    unreadable: tuple[tuple[str, str], ...] = ()

    @property
    def changed_bytes(self) -> int:
        """The bytes of the new side's tensors that are new or known to differ."""
        return sum(
            c.new.size
            for c in self.changes
            if c.new is not None and c.kind is not TensorKind.UNCOMPARED
        )


_ORDER = {
    TensorKind.CHANGED: 0,
    TensorKind.ADDED: 1,
    TensorKind.REMOVED: 2,
    TensorKind.UNCOMPARED: 3,
}


def is_safetensors(path: str) -> bool:
    return path.lower().endswith(SUFFIX)


def diff_tensors(
    old: Mapping[str, Tensor],
    new: Mapping[str, Tensor],
    same_values: Callable[[Tensor, Tensor], bool | None],
    unreadable: tuple[tuple[str, str], ...] = (),
) -> TensorDiff:
    """How the tensors ``new`` names differ from ``old``'s; ``same_values`` is asked only
    for tensors of both sides with one dtype and shape at different places."""
    changes: list[TensorChange] = []
    unchanged = unchanged_bytes = 0
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if a is None or b is None:
            kind = TensorKind.ADDED if a is None else TensorKind.REMOVED
            changes.append(TensorChange(kind, name, a, b))
            continue
        what = tuple(
            field for field in ("dtype", "shape") if getattr(a, field) != getattr(b, field)
        )
        if what:
            changes.append(TensorChange(TensorKind.CHANGED, name, a, b, what))
            continue
        same = (a.digest, a.begin) == (b.digest, b.begin) or same_values(a, b)
        if same:
            unchanged += 1
            unchanged_bytes += b.size
        elif same is None:
            changes.append(TensorChange(TensorKind.UNCOMPARED, name, a, b))
        else:
            changes.append(TensorChange(TensorKind.CHANGED, name, a, b, ("values",)))
    changes.sort(key=lambda c: (_ORDER[c.kind], c.name))
    return TensorDiff(tuple(changes), unchanged, unchanged_bytes, unreadable)
