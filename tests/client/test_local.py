"""The SDK in-process on a data directory (``client/local.py``): what it holds of the
operating system, and what it says about a directory it cannot use."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import pytest

import cairn
from cairn.client.local import LocalClient
from cairn.errors import CairnError


def _held_below(folder: Path) -> list[str]:
    """This process's open descriptors of files below ``folder``."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # (the descriptor listdir itself used)
            continue
        if target.startswith(f"{folder}/"):
            held.append(target)
    return held


def _checkpoint_threads() -> int:
    return sum(t.name == "cairn-sqlite-checkpoint" for t in threading.enumerate())


def test_a_client_dropped_without_close_lets_go_of_its_files_and_thread(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with LocalClient(data) as first:
        first.create_model("m")
    gc.collect()
    files, threads = _held_below(data), _checkpoint_threads()
    for _ in range(5):
        client = cairn.Client(str(data))
        client.create_version("m")  # a write: the log, its sync and its checkpoint thread
        del client
        gc.collect()
    assert _held_below(data) == files
    assert _checkpoint_threads() == threads


@pytest.mark.parametrize("where", ["a file", "below a file", "no database file"])
def test_a_directory_that_cannot_be_used_is_a_clear_error(tmp_path: Path, where: str) -> None:
    """(A folder that does not let this user create files fails as a database that
    cannot be opened does; running as root, the test stands one in for it.)"""
    (tmp_path / "file").write_text("not a folder")
    data = {
        "a file": tmp_path / "file",
        "below a file": tmp_path / "file" / "data",
        "no database file": tmp_path / "data",
    }[where]
    if where == "no database file":
        (data / "cairn.db").mkdir(parents=True)  # where the database file would go
    with pytest.raises(CairnError) as caught:
        cairn.Client(str(data))
    assert str(data) in caught.value.message


@pytest.mark.parametrize("uri", ["ftp://host/x", "s3://bucket/prefix", "htp://127.0.0.1:8080"])
def test_a_uri_of_another_scheme_is_refused_not_made_a_data_directory(
    uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ftp://…`` or a misspelt ``htp://…`` became a local data directory named ``ftp:``
    (created in the working directory), and every command "worked" on it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CairnError) as refused:
        cairn.Client(uri)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert refused.value.message == (
        f"{uri!r} is neither a Cairn server (http://, https://) nor a data directory "
        "(a path, or file://PATH)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_uri_scheme_is_read_in_any_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(
        tmp_path
    )  # were the scheme misread, the directory lands here, not in the tree
    with cairn.Client("HTTP://127.0.0.1:9", token="t") as remote:
        assert type(remote).__name__ == "HttpClient"
    with cairn.Client(f"FILE://{tmp_path / 'd'}") as local:
        local.create_model("m")
    assert (tmp_path / "d" / "cairn.db").exists()
