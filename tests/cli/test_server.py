"""``cairn server`` as a process: what it refuses before any worker starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_allowed_host_is_refused_before_the_workers_start(
    tmp_path: Path, workers: int
) -> None:
    """One clear line and exit 1; not a traceback per worker, restarted forever."""
    env = {**os.environ, "CAIRN_ALLOWED_HOSTS": "registry.example.com,not a host"}
    command = [sys.executable, "-m", "cairn.cli", "server", "--port", "0"]
    command += ["--data-dir", str(tmp_path / "data"), "--workers", str(workers)]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the server kept running:\n{out.decode()[-2000:]}")
    text = out.decode()
    assert proc.returncode == 1, text
    assert "allowed host 'not a host' is not a host name or IP address" in text
    assert "Traceback" not in text


def test_a_misspelt_setting_is_named_not_silently_ignored(tmp_path: Path) -> None:
    env = {**os.environ, "CAIRN_WORKER": "4", "cairn_allowed_host": "ml.example.com"}
    command = [sys.executable, "-m", "cairn.cli", "server", "--port", "0"]
    command += ["--data-dir", str(tmp_path / "data")]
    lines = []
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    ) as proc:
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:  # up to the line that says it starts serving
                lines.append(raw.decode())
                if lines[-1].startswith("Cairn on "):
                    break
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "".join(lines)
    assert "CAIRN_WORKER is not a setting" in text and "CAIRN_WORKERS" in text, text
    assert "cairn_allowed_host is not a setting" in text and "CAIRN_ALLOWED_HOSTS" in text, text


@pytest.mark.parametrize("command", [["db", "current"], ["db", "upgrade"]])
def test_a_backend_uri_of_another_scheme_is_a_bad_value_not_an_internal_error(
    tmp_path: Path, command: list[str]
) -> None:
    """It said 'error (INTERNAL_ERROR): …', as for a bug in Cairn; it is the user's value."""
    proc = subprocess.run(
        [sys.executable, "-m", "cairn.cli", *command, "--backend-uri", "mysql://db/cairn"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error (INVALID_PARAMETER_VALUE): backend URI scheme 'mysql' is not supported; "
        "use sqlite:///PATH or postgresql://USER@HOST/DB"
    )
