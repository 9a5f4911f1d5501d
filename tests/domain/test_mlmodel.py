"""MLflow signatures: what an MLmodel's ``signature`` says, and which changes break callers."""

from __future__ import annotations

import json

import pytest

from cairn.domain.diff_codec import signature_diff_from_json, signature_diff_to_json
from cairn.domain.mlmodel import (
    Signature,
    SignatureField,
    diff_signatures,
    find_mlmodel,
    parse_signature,
)
from cairn.errors import InvalidParameter


def signature(inputs: list[dict], outputs: list[dict] | None = None, params=None) -> Signature:  # type: ignore[no-untyped-def]
    parsed = parse_signature(
        {
            "inputs": json.dumps(inputs),
            "outputs": json.dumps(outputs or [{"type": "long", "required": True}]),
            "params": None if params is None else json.dumps(params),
        }
    )
    assert parsed is not None
    return parsed


def col(name: str, kind: str = "double", required: bool = True) -> dict:  # type: ignore[type-arg]
    return {"type": kind, "name": name, "required": required}


def test_parses_what_mlflow_writes() -> None:
    # as in an MLmodel file written by mlflow 3.17 (a column, a tensor, a nested array)
    parsed = parse_signature(
        {
            "inputs": '[{"type": "double", "name": "age", "required": true}, '
            '{"name": "x", "type": "tensor", "tensor-spec": {"dtype": "float32", '
            '"shape": [-1, 4]}}, {"type": "array", "items": {"type": "string"}, '
            '"name": "tags", "required": false}]',
            "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]',
            "params": '[{"name": "threshold", "default": 0.5, "shape": null, "type": "double"}]',
        }
    )
    assert parsed == Signature(
        inputs=(
            SignatureField("age", "double"),
            SignatureField("x", "tensor float32 [-1, 4]"),
            SignatureField("tags", '{"items":{"type":"string"},"type":"array"}', False),
        ),
        outputs=(SignatureField("#0", "tensor int64 [-1]"),),
        params=(SignatureField("threshold", "double", True, "0.5"),),
    )
    assert parse_signature(None) is None
    assert parse_signature({"inputs": None, "outputs": None}) == Signature()


@pytest.mark.parametrize(
    "bad",
    [
        "not a mapping",
        {"inputs": "[not json"},
        {"inputs": '{"type": "double"}'},
        {"inputs": [{"type": "double"}]},  # a YAML list, not JSON text as MLflow writes
    ],
)
def test_a_malformed_signature_is_refused(bad: object) -> None:
    with pytest.raises(InvalidParameter, match="signature"):
        parse_signature(bad)


@pytest.mark.parametrize(
    ("old", "new", "kind", "breaking"),
    [
        # inputs: what a caller of the old one sends
        (signature([col("a")]), signature([col("a"), col("b")]), "added", True),
        (signature([col("a")]), signature([col("a"), col("b", required=False)]), "added", False),
        (signature([col("a"), col("b")]), signature([col("a")]), "removed", False),
        (signature([col("a")]), signature([col("a", "long")]), "changed", True),
        (signature([col("a", required=False)]), signature([col("a")]), "changed", True),
        (signature([col("a")]), signature([col("a", required=False)]), "changed", False),
        # outputs: what a caller of the old one reads
        (signature([], [col("p")]), signature([], [col("p"), col("q")]), "added", False),
        (signature([], [col("p"), col("q")]), signature([], [col("p")]), "removed", True),
        (signature([], [col("p", "long")]), signature([], [col("p", "double")]), "changed", True),
        # params: what a caller of the old one passes
        (
            signature([], params=[]),
            signature([], params=[{"name": "t", "type": "double", "default": 0.5}]),
            "added",
            False,
        ),
        (
            signature([], params=[{"name": "t", "type": "double", "default": 0.5}]),
            signature([], params=[]),
            "removed",
            True,
        ),
        (
            signature([], params=[{"name": "t", "type": "double", "default": 0.5}]),
            signature([], params=[{"name": "t", "type": "double", "default": 0.7}]),
            "changed",
            False,
        ),
    ],
)
def test_which_changes_break_a_caller_of_the_old_version(
    old: Signature, new: Signature, kind: str, breaking: bool
) -> None:
    d = diff_signatures(("MLmodel", old), ("MLmodel", new))
    assert [(c.kind, c.breaking) for c in d.changes] == [(kind, breaking)]
    assert d.breaking == int(breaking)
    assert signature_diff_from_json(signature_diff_to_json(d)) == d


def test_nothing_is_compared_unless_both_sides_have_one() -> None:
    one = signature([col("a")])
    assert diff_signatures(("MLmodel", one), ("MLmodel", one)).changes == ()
    only_new = diff_signatures(None, ("m/MLmodel", one), (("MLmodel", "not YAML"),))
    assert (only_new.old_path, only_new.new_path, only_new.changes) == (None, "m/MLmodel", ())
    assert signature_diff_from_json(signature_diff_to_json(only_new)) == only_new


def test_the_mlmodel_of_a_version_is_the_shallowest() -> None:
    assert find_mlmodel(["b/MLmodel", "MLmodel", "model.pkl"]) == "MLmodel"
    assert find_mlmodel(["z/MLmodel", "a/b/MLmodel", "MLmodel.txt"]) == "z/MLmodel"
    assert find_mlmodel(["model.pkl", "notMLmodel"]) is None
