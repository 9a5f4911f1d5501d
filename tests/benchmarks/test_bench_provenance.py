"""What every benchmark section records about the code it measured (``regbench.provenance``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from regbench.provenance import commit_label


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "checkout"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "src.py").write_text("x = 1\n")
    (repo / "benchmarks" / "RESULTS.md").write_text("# Benchmark results\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return repo


def test_a_clean_checkout_is_its_short_commit(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    assert commit_label(repo) == _git(repo, "rev-parse", "--short", "HEAD")


def test_results_written_by_an_earlier_benchmark_do_not_make_it_dirty(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "benchmarks" / "RESULTS.md").write_text("# Benchmark results\n\nnew figures\n")
    assert not commit_label(repo).endswith("-dirty")


def test_a_changed_source_file_makes_it_dirty(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "src.py").write_text("x = 2\n")
    assert commit_label(repo) == _git(repo, "rev-parse", "--short", "HEAD") + "-dirty"


def test_outside_a_checkout_it_says_so(tmp_path: Path) -> None:
    assert commit_label(tmp_path) == "unknown (not a git checkout)"
