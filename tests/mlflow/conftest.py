"""The stock MLflow client pointed at Cairn, running behind a real uvicorn on loopback.

``registry`` gives an ``MlflowClient`` whose registry URI is the live Cairn server (SQLite or
PostgreSQL metadata, through ``live_server``) and whose tracking URI is a local SQLite MLflow
store shared by the tests of one worker (MLflow migrates a new one in seconds). HTTP retries
are off and the timeout short, so a wrong 5xx fails at once instead of retrying for minutes.
MLflow's global URIs and environment are restored after each test.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

# MLflow starts its telemetry client when imported (before pytest sets PYTEST_CURRENT_TEST,
# which it would also honour): tests must not phone home.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils
from sqlalchemy.exc import SADeprecationWarning

# Two MLflow modules warn once, when imported, about MLflow's own code: its SQL tracking
# store configures a ``noload`` relationship (deprecated by SQLAlchemy 2.1), and its pyfunc
# response types carry an ``Any`` type hint. Imported here under targeted filters, so that
# every other warning still fails a test.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "The ``noload`` loader", SADeprecationWarning)
    warnings.filterwarnings("ignore", ".*Any type hint is inferred as AnyType", UserWarning)
    import mlflow.pyfunc.model
    import mlflow.store.tracking.sqlalchemy_store


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow-tracking') / 'mlflow.db'}"


@pytest.fixture
def registry(
    live_server: str, tracking_uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[MlflowClient]:
    """An ``MlflowClient`` on Cairn as its model registry."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(variable, raising=False)  # set_*_uri export them; this restores
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    monkeypatch.chdir(tmp_path)  # anything MLflow writes relative to the cwd lands here
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(live_server)
    try:
        yield MlflowClient()
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
