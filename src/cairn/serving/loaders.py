"""Safe model loaders: a file of a known, non-executable format becomes a ``Predictor``.

Pickles are never loaded: a pickle runs code of its author's choosing on load. A
scikit-learn model is read from ``skops`` (a zip of JSON plus numpy arrays), trusting only
the types ``skops.io.get_untrusted_types`` reports when all of them are scikit-learn's or
numpy's; an ONNX graph runs in onnxruntime on the CPU. The numeric libraries come with the
``serve`` extra and are imported when a model is loaded, not before.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn.errors import InvalidParameter

# extension → format; what a version may hold to be served
KNOWN_FORMATS = {".skops": "skops", ".onnx": "onnx"}
# extensions recognised as model files that are refused (named in the error)
UNSAFE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".ckpt"})
# the only prefixes of a type skops may be told to trust
TRUSTED_PREFIXES = ("sklearn.", "numpy.")
EXTRA_HINT = "install the serve extra: pip install 'cairn-registry[serve]'"


class MissingExtra(InvalidParameter):
    """A package of the ``serve`` extra is not installed."""


@dataclass(frozen=True, slots=True)
class Predictor:
    """A loaded model: ``predict(columns, rows)`` → one prediction per row.

    ``columns`` names the rows' fields when the request named them (else None); ``rows``
    is a list of rows, or for named tensor inputs a mapping name → array."""

    kind: str
    path: str
    predict: Callable[[list[str] | None, Any], list[Any]]


def need(module: str, package: str) -> Any:
    """Import ``module`` or say which package of the serve extra is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"serving needs the package {package!r}: {EXTRA_HINT}") from None


def find_model_file(folder: Path) -> tuple[str, Path]:
    """The one model file of a known format in ``folder`` (any depth), or a clear error
    naming what was found."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    known = [p for p in files if p.suffix.lower() in KNOWN_FORMATS]
    if len(known) == 1:
        return KNOWN_FORMATS[known[0].suffix.lower()], known[0]
    names = ", ".join(str(p.relative_to(folder)) for p in files) or "no files"
    if known:
        raise InvalidParameter(
            f"the version holds {len(known)} model files ({names}); "
            "serving needs exactly one .skops or .onnx file"
        )
    unsafe = [p for p in files if p.suffix.lower() in UNSAFE_SUFFIXES]
    if unsafe:
        raise InvalidParameter(
            f"refusing to serve {', '.join(p.name for p in unsafe)}: pickle-based files run "
            "code when loaded; save a scikit-learn model with skops (.skops) or export to "
            f"ONNX (.onnx). Found: {names}"
        )
    raise InvalidParameter(f"no .skops or .onnx model file in the version (found: {names})")


def load_model(folder: Path) -> Predictor:
    kind, path = find_model_file(folder)
    if kind == "skops":
        return load_skops(path)
    return load_onnx(path)


def load_skops(path: Path) -> Predictor:
    np = need("numpy", "numpy")
    need("sklearn", "scikit-learn")
    sio = need("skops.io", "skops")
    try:
        untrusted: list[str] = list(sio.get_untrusted_types(file=path))
    except Exception as exc:  # a corrupt archive: skops raises zip/JSON errors of many kinds
        raise InvalidParameter(f"{path.name} is not a readable skops file: {exc}") from None
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise InvalidParameter(
            f"refusing to load {path.name}: it holds types outside scikit-learn and numpy "
            f"({', '.join(sorted(refused))}); only those are trusted"
        )
    try:
        model = sio.load(path, trusted=untrusted)
    except Exception as exc:
        raise InvalidParameter(f"cannot load {path.name} with skops: {exc}") from None
    if not callable(getattr(model, "predict", None)):
        raise InvalidParameter(f"{path.name} holds a {type(model).__name__}, which cannot predict")
    names = getattr(model, "feature_names_in_", None)
    expected = None if names is None else [str(n) for n in names]
    pandas = None
    if expected is not None:  # a model fitted on a DataFrame warns on bare arrays
        try:
            pandas = importlib.import_module("pandas")
        except ImportError:
            pandas = None

    def predict(columns: list[str] | None, rows: Any) -> list[Any]:
        if not isinstance(rows, list):
            raise InvalidParameter("a scikit-learn model takes rows, not named tensors")
        if columns is not None and expected is not None and columns != expected:
            if sorted(columns) != sorted(expected):
                raise InvalidParameter(f"columns {columns} do not match the model's {expected}")
            order = [columns.index(c) for c in expected]
            rows = [[row[i] for i in order] for row in rows]
        x = _array(np, rows)
        if expected is not None and pandas is not None:  # fitted on a frame: give it one
            x = pandas.DataFrame(list(rows), columns=expected)
        try:
            return list(model.predict(x).tolist())
        except ValueError as exc:
            raise InvalidParameter(f"the model refused the input: {exc}") from None

    return Predictor("skops", path.name, predict)


def load_onnx(path: Path) -> Predictor:
    np = need("numpy", "numpy")
    ort = need("onnxruntime", "onnxruntime")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped failures
        raise InvalidParameter(f"cannot load {path.name} with onnxruntime: {exc}") from None
    inputs = session.get_inputs()
    output = session.get_outputs()[0].name

    def dtype(node: Any) -> Any:
        kind = str(node.type)  # "tensor(float)"
        inner = kind[kind.find("(") + 1 : kind.rfind(")")]
        return {"float": np.float32, "double": np.float64, "int64": np.int64}.get(inner, np.float32)

    def predict(columns: list[str] | None, rows: Any) -> list[Any]:
        if isinstance(rows, dict):
            wanted = {i.name for i in inputs}
            if set(rows) != wanted:
                raise InvalidParameter(
                    f"inputs {sorted(rows)} do not match the model's {sorted(wanted)}"
                )
            feed = {i.name: _array(np, rows[i.name], dtype(i)) for i in inputs}
        elif len(inputs) == 1:
            feed = {inputs[0].name: _array(np, rows, dtype(inputs[0]))}
        else:
            raise InvalidParameter(
                f"the model has {len(inputs)} inputs; send 'inputs' as an object of "
                f"{sorted(i.name for i in inputs)}"
            )
        try:
            result = session.run([output], feed)[0]
        except Exception as exc:  # onnxruntime's own error types (shape, type)
            raise InvalidParameter(f"the model refused the input: {exc}") from None
        return list(result.tolist())

    return Predictor("onnx", path.name, predict)


def _array(np: Any, rows: Sequence[Any], dtype: Any = float) -> Any:
    try:
        return np.asarray(rows, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidParameter(f"the input is not an array of numbers: {exc}") from None
