"""The classic MLflow flows with a real scikit-learn model: log, register, promote, load.

Nothing is downloaded: the model is trained here on 30 rows of synthetic data.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

import cairn

REQUIREMENTS = ["scikit-learn"]  # stated, so MLflow does not infer them in a subprocess


@pytest.fixture(scope="module")
def trained() -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(30, 4))
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    return LogisticRegression().fit(features, labels), features


def predictions_match(uri: str, trained: tuple[LogisticRegression, np.ndarray]) -> bool:
    model, features = trained
    loaded = mlflow.pyfunc.load_model(uri)
    return bool(np.array_equal(loaded.predict(features), model.predict(features)))


@pytest.mark.filterwarnings("ignore:.*is deprecated since 2.9.0:FutureWarning")  # stages
def test_log_register_promote_and_load(
    registry: MlflowClient, trained: tuple[LogisticRegression, np.ndarray]
) -> None:
    model, _ = trained
    with mlflow.start_run() as run:
        logged = mlflow.sklearn.log_model(model, name="model", pip_requirements=REQUIREMENTS)
    registered = mlflow.register_model(f"runs:/{run.info.run_id}/model", "iris")
    assert (registered.version, registered.status) == ("1", "READY")
    assert registered.source == logged.model_uri  # MLflow 3: models:/m-…, stored verbatim
    assert str(registered.source).startswith("models:/m-")
    assert registered.run_id == run.info.run_id

    with pytest.warns(FutureWarning, match="transition_model_version_stage"):
        registry.transition_model_version_stage("iris", registered.version, "Staging")
    registry.set_registered_model_alias("iris", "champion", registered.version)

    for uri in ("models:/iris/Staging", "models:/iris/1", "models:/iris@champion"):
        assert predictions_match(uri, trained), uri
    assert predictions_match("models:/iris/latest", trained)

    again = mlflow.register_model(logged.model_uri, "iris")  # the model exists: version 2
    assert again.version == "2"
    assert registry.get_model_version_download_uri("iris", "2") == logged.model_uri


def test_native_push_loads_through_mlflow(
    registry: MlflowClient,
    live_server: str,
    tmp_path: Path,
    trained: tuple[LogisticRegression, np.ndarray],
) -> None:
    model, _ = trained
    path = tmp_path / "saved"
    mlflow.sklearn.save_model(model, path, pip_requirements=REQUIREMENTS)
    (path / "extra" / "nested").mkdir(parents=True)
    (path / "extra" / "nested" / "notes.txt").write_text("a file two folders down\n")
    name = "native fraud"  # a space: the artifact URI quotes it
    with cairn.Client(live_server) as client:
        client.create_model(name)
        pushed = client.push(path, name=name)
    assert pushed.version == 1 and pushed.files

    uri = registry.get_model_version_download_uri(name, "1")
    assert uri == (
        f"{live_server}/api/2.0/mlflow-artifacts/artifacts/cairn-models/native%20fraud/1"
    )
    assert predictions_match(f"models:/{name}/1", trained)
    assert predictions_match(f"models:/{name}/latest", trained)

    fetched = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=str(tmp_path)))
    assert (fetched / "extra" / "nested" / "notes.txt").read_text() == "a file two folders down\n"
    assert (fetched / "MLmodel").read_bytes() == (path / "MLmodel").read_bytes()

    registry.copy_model_version(f"models:/{name}/1", "copied")  # the copy reaches the files
    assert registry.get_model_version_download_uri("copied", "1") == uri
    assert predictions_match("models:/copied/1", trained)
