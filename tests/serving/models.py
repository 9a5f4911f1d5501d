"""Tiny real models for the serving tests: a skops LogisticRegression and an ONNX Add."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import onnx
import skops.io as sio
from onnx import TensorProto, helper
from sklearn.linear_model import LogisticRegression

# the label is the first feature (or its opposite, for a second version)
X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 5


def skops_model(folder: Path, *, flipped: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    y = [int(row[0]) ^ int(flipped) for row in X]
    model = LogisticRegression(C=100.0).fit(np.asarray(X), y)
    sio.dump(model, folder / "model.skops")
    return folder


def onnx_model(folder: Path, *, bias: tuple[float, float] = (1.0, 2.0)) -> Path:
    """``y = x + bias`` on float32 rows of two values."""
    folder.mkdir(parents=True, exist_ok=True)
    node = helper.make_node("Add", ["x", "bias"], ["y"])
    graph = helper.make_graph(
        [node],
        "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor("bias", TensorProto.FLOAT, [2], list(bias))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what every onnxruntime of the serve extra's range reads
    onnx.checker.check_model(model)
    onnx.save(model, folder / "model.onnx")
    return folder


def pickle_model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}))
    return folder
