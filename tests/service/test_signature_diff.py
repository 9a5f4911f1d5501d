"""Signatures of real MLflow models (saved by ``mlflow.sklearn``) compared through the
service, on SQLite and PostgreSQL, and through the CLI in both modes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cairn.cli.main import app
from cairn.domain.models import Actor, FileEntry, VersionSpec
from cairn.service.registry import RegistryService
from cairn.settings import Settings

ADMIN = Actor("admin", is_admin=True)
# saving a model, MLflow looks at its predict function's type hints and warns
pytestmark = pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Version 1 takes age and income; version 2 also needs tenure, answers doubles and
    has no threshold param."""
    import mlflow.sklearn
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("mlflow-models")
    model = LogisticRegression().fit(np.array([[30.0, 1], [60.0, 4]]), np.array([0, 1]))
    inputs = [ColSpec("double", "age"), ColSpec("long", "income")]
    one = ModelSignature(
        inputs=Schema(inputs),
        outputs=Schema([TensorSpec(np.dtype("int64"), (-1,))]),
        params=ParamSchema([ParamSpec("threshold", "double", 0.5)]),
    )
    two = ModelSignature(
        inputs=Schema([*inputs, ColSpec("double", "tenure")]),
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1,))]),
    )
    for name, signature in (("v1", one), ("v2", two)):
        mlflow.sklearn.save_model(model, root / name, signature=signature)
    return {"v1": root / "v1", "v2": root / "v2"}


def push(service: RegistryService, name: str, folder: Path) -> None:
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }

    def entry(path: str, data: bytes) -> FileEntry:
        return FileEntry(path, len(data), "sha256:" + hashlib.sha256(data).hexdigest())

    spec = VersionSpec(files=tuple(entry(p, b) for p, b in files.items()))
    version = service.create_version(ADMIN, name, spec).version
    for f in spec.files:
        if f.digest in service.missing_blobs(ADMIN, name, version):
            service.put_blob(ADMIN, name, version, f.digest, [files[f.path]])


def test_breaking_changes_of_a_real_mlflow_signature(
    service: RegistryService, models: dict[str, Path]
) -> None:
    service.create_model(ADMIN, "churn")
    push(service, "churn", models["v1"])
    push(service, "churn", models["v2"])
    d = service.diff_versions(ADMIN, "models:/churn/1", "models:/churn/2", signature=True)
    s = d.signature
    assert s is not None and (s.old_path, s.new_path, s.unreadable) == ("MLmodel", "MLmodel", ())
    assert [(c.section, c.name, c.kind, c.breaking) for c in s.changes] == [
        ("inputs", "tenure", "added", True),
        ("outputs", "#0", "changed", True),
        ("params", "threshold", "removed", True),
    ]
    out = s.changes[1]
    assert out.old is not None and out.old.type == "tensor int64 [-1]"
    assert out.new is not None and out.new.type == "tensor float64 [-1]"
    # the other way round, only the removed input is harmless
    back = service.diff_versions(ADMIN, "models:/churn/2", "models:/churn/1", signature=True)
    assert back.signature is not None
    assert [(c.name, c.kind, c.breaking) for c in back.signature.changes] == [
        ("tenure", "removed", False),
        ("#0", "changed", True),
        ("threshold", "added", False),
    ]
    assert service.diff_versions(ADMIN, "models:/churn/1", "models:/churn/2").signature is None


def test_a_version_without_one_or_with_a_broken_one(
    service: RegistryService, models: dict[str, Path], tmp_path: Path
) -> None:
    service.create_model(ADMIN, "m")
    push(service, "m", models["v1"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("signature: [unclosed")
    push(service, "m", broken)
    d = service.diff_versions(ADMIN, "models:/m/1", "models:/m/2", signature=True)
    assert d.signature is not None
    assert (d.signature.old_path, d.signature.new_path, d.signature.changes) == (
        "MLmodel",
        None,
        (),
    )
    [(path, why)] = d.signature.unreadable
    assert path == "MLmodel" and why.startswith("not YAML:")


@pytest.mark.parametrize("mode", ["http", "local"])
def test_the_cli_marks_breaking_changes(
    mode: str, settings: Settings, models: dict[str, Path], request: pytest.FixtureRequest
) -> None:
    uri = str(request.getfixturevalue("live_server")) if mode == "http" else str(settings.data_dir)
    runner = CliRunner()

    def cairn(*args: str) -> str:
        result = runner.invoke(app, ["--uri", uri, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    cairn("--quiet", "push", str(models["v1"]), "--model", "churn")
    cairn("--quiet", "push", str(models["v2"]), "--model", "churn")
    shown = cairn("diff", "models:/churn/1", "models:/churn/2", "--signature")
    assert "signature: 3 change(s), 3 breaking for callers of OLD (MLmodel -> MLmodel)" in shown
    assert "tenure" in shown and "tensor int64 [-1]" in shown
    data = json.loads(cairn("diff", "models:/churn/1", "models:/churn/2", "--signature", "--json"))
    assert data["signature"]["breaking"] == 3
    assert data["signature"]["changes"][0] == {
        "section": "inputs",
        "name": "tenure",
        "kind": "added",
        "breaking": True,
        "old": None,
        "new": {"name": "tenure", "type": "double", "required": True, "default": None},
    }
