"""How the transfer benchmark starts stock MLflow: at its best, as the issue asks."""

from __future__ import annotations

from pathlib import Path

import transfer_contenders as tc


def test_mlflow_runs_one_worker_without_an_access_log(tmp_path: Path) -> None:
    cmd = tc.Mlflow().command(tmp_path, 5000)
    assert cmd[cmd.index("--workers") + 1] == "1"
    assert cmd[cmd.index("--uvicorn-opts") + 1] == "--no-access-log"
    assert "--serve-artifacts" in cmd


def test_mlflow_runs_without_its_job_runner() -> None:
    assert tc.Mlflow.ENV["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_mlflow_rss_is_its_uvicorn_process_not_the_launcher(tmp_path: Path) -> None:
    launcher = [b"/venv/bin/python3", *(a.encode() for a in tc.Mlflow().command(tmp_path, 1))]
    uvicorn = [b"/venv/bin/python3", b"-m", b"uvicorn", b"--no-access-log", b"--port", b"1"]
    assert not tc.is_uvicorn(launcher)
    assert tc.is_uvicorn(uvicorn)
