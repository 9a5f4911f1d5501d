"""Every pull of every transfer contender is checked byte for byte (sha256) against the
source data: a contender that delivers other bytes of the right size is a failed round,
reported, in no median, never a fast transfer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import transfer
import transfer_contenders as tc
import transfer_data as td
import transfer_report as tr

SHAPE = td.Shape("many", "2 x 4 KiB", 2, 4096)


class _Corrupting(tc.Contender):
    """Stores the files as given; its pull flips one byte of the first file (same size)."""

    key = "cairn-raw/curl"
    label = "Cairn, raw HTTP (curl)"
    fresh_per_round = False

    def __init__(self, corrupt: bool) -> None:
        super().__init__()
        self.corrupt = corrupt

    def push(self, ds: td.Dataset) -> tc.Timing:
        (self.workdir / "store").mkdir(parents=True, exist_ok=True)
        for f in ds.files:
            shutil.copyfile(f, self.workdir / "store" / f.name)
        return tc.Timing(1.0)

    def pull(self, ds: td.Dataset, out: Path) -> tc.Timing:
        out.mkdir(parents=True, exist_ok=True)
        for f in ds.files:
            shutil.copyfile(self.workdir / "store" / f.name, out / f.name)
        if self.corrupt:
            first = out / ds.files[0].name
            data = bytearray(first.read_bytes())
            data[100] ^= 0xFF
            first.write_bytes(bytes(data))
        return tc.Timing(1.0)


def _round(tmp_path: Path, corrupt: bool) -> transfer.Run:
    ds = td.ensure(SHAPE, tmp_path / "data")
    opts = transfer.parse_args(["--quick", "--no-write", "--hash-threads", "1"])
    run = transfer.Run()
    k = _Corrupting(corrupt)
    k.start(tmp_path / "k")
    transfer.run_round(k, ds, 0, tmp_path / "rounds", run, opts)
    return run


def test_content_mismatches_names_a_file_with_other_bytes(tmp_path: Path) -> None:
    ds = td.ensure(SHAPE, tmp_path / "data")
    out = tmp_path / "out"
    shutil.copytree(ds.root, out)
    assert td.content_mismatches(ds, out, 1) == []
    target = out / "shard-01.bin"
    target.write_bytes(b"\0" * 4096)  # right size, wrong bytes
    (out / "shard-00.bin").unlink()
    (out / "extra.bin").write_bytes(b"x")
    assert td.content_mismatches(ds, out, 1) == [
        "shard-00.bin missing",
        "extra.bin not in the data set",
        "shard-01.bin has other bytes (4096 B)",
    ]


def test_a_pull_of_other_bytes_fails_its_round(tmp_path: Path) -> None:
    run = _round(tmp_path, corrupt=True)
    assert [(s.direction, s.failed) for s in run.samples] == [("push", True), ("pull", True)]
    assert "shard-00.bin has other bytes" in run.samples[1].error
    assert tr.summarize(run.samples) == []  # in no median
    assert tr.clean_count(run.samples, "cairn-raw/curl", "many") == 0  # repeated if time allows
    verdicts = tr.verdicts([], [("many", SHAPE.label)], [], tr.failures(run.samples))
    assert [(v.target, v.ok) for v in verdicts] == [
        ("every pull delivers the pushed bytes, 2 x 4 KiB", False)
    ]
    assert "Failed round" in tr.failure_lines(tr.failures(run.samples))[0]


def test_a_faithful_pull_passes(tmp_path: Path) -> None:
    run = _round(tmp_path, corrupt=False)
    assert not any(s.failed for s in run.samples)
    (row,) = [r for r in tr.summarize(run.samples) if r.direction == "pull"]
    assert (row.runs, row.failed) == (1, 0)


@pytest.fixture(autouse=True)
def _no_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "settle", lambda: None)  # no machine-wide sync in a unit test
