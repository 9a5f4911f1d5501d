"""The safe loaders and MLflow's scoring protocol, on real skops and ONNX files."""

from __future__ import annotations

import operator
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from tests.serving.models import X, onnx_model, pickle_model, skops_model

from cairn.errors import InvalidParameter
from cairn.serving.loaders import MissingExtra, find_model_file, load_model, need
from cairn.serving.protocol import parse_invocation


def test_skops_model_predicts(tmp_path: Path) -> None:
    predictor = load_model(skops_model(tmp_path / "m"))
    assert predictor.kind == "skops"
    assert predictor.predict(None, [[0, 1], [1, 0]]) == [0, 1]


def test_onnx_model_predicts_rows_and_named_inputs(tmp_path: Path) -> None:
    predictor = load_model(onnx_model(tmp_path / "m"))
    assert predictor.kind == "onnx"
    assert predictor.predict(None, [[1, 1]]) == [[2.0, 3.0]]
    assert predictor.predict(None, {"x": [[0, 0]]}) == [[1.0, 2.0]]
    with pytest.raises(InvalidParameter, match=r"inputs \['y'\] do not match"):
        predictor.predict(None, {"y": [[0, 0]]})
    with pytest.raises(InvalidParameter, match="refused the input"):
        predictor.predict(None, [[1, 2, 3]])


def test_a_pickle_is_refused_and_never_loaded(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match=r"refusing to serve model\.pkl: pickle"):
        load_model(pickle_model(tmp_path / "m"))


def test_exactly_one_model_file(tmp_path: Path) -> None:
    folder = onnx_model(skops_model(tmp_path / "m"))
    with pytest.raises(InvalidParameter, match=r"2 model files \(model\.onnx, model\.skops\)"):
        find_model_file(folder)
    empty = tmp_path / "e"
    empty.mkdir()
    (empty / "README.md").write_text("hi", encoding="utf-8")
    with pytest.raises(InvalidParameter, match=r"no \.skops or \.onnx model file.*README\.md"):
        find_model_file(empty)


def test_skops_types_outside_sklearn_and_numpy_are_refused(tmp_path: Path) -> None:
    # a FunctionTransformer keeps a function: skops reports it as an untrusted type
    model = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression())
    model.fit(np.asarray(X), [int(row[0]) for row in X])
    sio.dump(model, tmp_path / "model.skops")
    with pytest.raises(
        InvalidParameter, match=r"outside scikit-learn and numpy \(_operator\.neg\)"
    ):
        load_model(tmp_path)


@pytest.mark.parametrize(
    ("body", "columns", "rows"),
    [
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}, ["a", "b"], [[1, 2]]),
        ({"dataframe_records": [{"a": 1, "b": 2}]}, ["a", "b"], [[1, 2]]),
        ({"instances": [[1, 2]]}, None, [[1, 2]]),
        ({"instances": [{"b": 2, "a": 1}]}, ["b", "a"], [[2, 1]]),
        ({"inputs": [[1, 2]], "params": {}}, None, [[1, 2]]),
        ({"inputs": {"x": [[1, 2]]}}, None, {"x": [[1, 2]]}),
    ],
)
def test_scoring_protocol(body: object, columns: object, rows: object) -> None:
    assert parse_invocation(body) == (columns, rows)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({}, "got none"),
        ({"instances": [[1]], "inputs": [[1]]}, "got instances, inputs"),
        ({"rows": [[1]]}, "unknown field"),
        ({"instances": []}, "non-empty list"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, "row 0 has 2 values"),
        ({"dataframe_records": [{"a": 1}, {"b": 1}]}, "record 1 has fields"),
    ],
)
def test_bad_bodies(body: object, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        parse_invocation(body)


def test_a_missing_package_names_the_extra() -> None:
    with pytest.raises(MissingExtra, match=r"'onnxruntime'.*pip install 'cairn-registry\[serve\]'"):
        need("cairn_no_such_module", "onnxruntime")


def test_a_model_fitted_on_a_frame_gets_its_columns_in_its_order(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["amount", "age"])
    model = LogisticRegression(C=100.0).fit(frame, [int(row[1]) for row in X])
    sio.dump(model, tmp_path / "model.skops")
    predictor = load_model(tmp_path)
    # no "X does not have valid feature names" warning (warnings are errors here)
    assert predictor.predict(["age", "amount"], [[1, 0], [0, 1]]) == [1, 0]
    assert predictor.predict(None, [[0, 1], [1, 0]]) == [1, 0]
    with pytest.raises(InvalidParameter, match=r"columns \['age', 'size'\] do not match"):
        predictor.predict(["age", "size"], [[1, 0]])
