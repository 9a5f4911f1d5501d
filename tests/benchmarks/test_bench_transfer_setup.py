"""transfer.py checks its tools before it spends minutes on data and on other contenders."""

from __future__ import annotations

import shutil

import pytest
import transfer


def test_a_missing_curl_stops_the_run_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    opts = transfer.parse_args(["--quick", "--no-write", "--only", "cp,http-ref/curl"])
    with pytest.raises(SystemExit, match="curl"):
        transfer.build_contenders(opts, transfer.Run())


def test_without_curl_contenders_curl_is_not_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    opts = transfer.parse_args(["--quick", "--no-write", "--only", "cp,http-ref/httpx"])
    keys = [k.key for k in transfer.build_contenders(opts, transfer.Run())]
    assert keys == ["cp", "http-ref/httpx"]
