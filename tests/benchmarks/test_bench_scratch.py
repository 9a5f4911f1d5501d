"""The scratch registries of search_scale.py and service_costs.py leave nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from service_costs import scratch_settings


def test_the_scratch_data_folder_is_removed_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("CAIRN_BOOTSTRAP_TOKEN", "x" * 40)  # scratch_settings sets its own
    with scratch_settings("sqlite", "bench_test") as settings:
        data_dir = Path(settings.data_dir)
        (data_dir / "registry.db").write_bytes(b"\0" * 4096)  # what a fill leaves there
    assert not data_dir.exists()


def test_it_is_removed_when_the_run_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("CAIRN_BOOTSTRAP_TOKEN", "x" * 40)
    with pytest.raises(KeyboardInterrupt), scratch_settings("sqlite", "bench_test") as settings:
        data_dir = Path(settings.data_dir)
        raise KeyboardInterrupt
    assert not data_dir.exists()
