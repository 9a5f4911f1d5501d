"""``diff_tensors``: which tensors changed, matched by name, and its JSON form."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.diff_codec import tensor_diff_from_json, tensor_diff_to_json
from cairn.domain.tensors import Tensor, TensorKind, diff_tensors, is_safetensors

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def t(name: str, begin: int, size: int = 8, *, digest: str = A, **kw: object) -> Tensor:
    fields: dict[str, object] = {"dtype": "F32", "shape": (size // 4,), "path": "m.safetensors"}
    fields.update(kw)
    return Tensor(name, digest=digest, begin=begin, end=begin + size, **fields)  # type: ignore[arg-type]


def never(a: Tensor, b: Tensor) -> bool:
    raise AssertionError(f"{a.name} needed no read")


def test_same_place_of_the_same_blob_is_unchanged_without_reading() -> None:
    same = {"w": t("w", 100), "b": t("b", 108)}
    d = diff_tensors(same, dict(same), never)
    assert (d.changes, d.unchanged, d.unchanged_bytes, d.changed_bytes) == ((), 2, 16, 0)


def test_every_kind_of_change_in_its_order() -> None:
    old = {
        "kept": t("kept", 100),
        "moved": t("moved", 108),
        "edited": t("edited", 116),
        "wider": t("wider", 124),
        "cast": t("cast", 132),
        "gone": t("gone", 140),
        "big": t("big", 148),
    }
    new = {
        "kept": t("kept", 100),
        "moved": t("moved", 500, digest=B),  # the same bytes, resharded
        "edited": t("edited", 508, digest=B),
        "wider": t("wider", 516, 16, digest=B),
        "cast": t("cast", 532, dtype="BF16", shape=(4,), digest=B),
        "big": t("big", 540, digest=B),
        "lora_A": t("lora_A", 548, digest=B),
    }
    asked: list[str] = []

    def same(a: Tensor, b: Tensor) -> bool | None:
        asked.append(a.name)
        return {"moved": True, "edited": False}.get(a.name)  # "big": over the budget

    d = diff_tensors(old, new, same)
    assert sorted(asked) == ["big", "edited", "moved"]  # dtype or shape differs: no read
    assert [(c.kind, c.name, c.what) for c in d.changes] == [
        (TensorKind.CHANGED, "cast", ("dtype", "shape")),
        (TensorKind.CHANGED, "edited", ("values",)),
        (TensorKind.CHANGED, "wider", ("shape",)),
        (TensorKind.ADDED, "lora_A", ()),
        (TensorKind.REMOVED, "gone", ()),
        (TensorKind.UNCOMPARED, "big", ()),
    ]
    assert (d.unchanged, d.unchanged_bytes) == (2, 16)
    assert d.changed_bytes == 8 + 8 + 16 + 8  # cast, edited, wider, lora_A: new sides
    assert tensor_diff_from_json(tensor_diff_to_json(d)) == d


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers(0, 1 << 20), max_size=12))
def test_a_version_against_itself_is_unchanged(offsets: dict[str, int]) -> None:
    tensors = {name: t(name, begin) for name, begin in offsets.items()}
    d = diff_tensors(tensors, tensors, never)
    assert d.changes == () and d.unchanged == len(tensors)


def test_which_files_are_safetensors() -> None:
    assert is_safetensors("model-00001-of-00002.safetensors")
    assert is_safetensors("sub/ADAPTER.SafeTensors")
    assert not is_safetensors("model.safetensors.index.json")
