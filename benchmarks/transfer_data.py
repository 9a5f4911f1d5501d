"""Test data for the transfer benchmark: random (incompressible) files, generated once.

A data set is a directory of files; a ``.complete`` marker records its shape so a later
run reuses it (and regenerates it if the shape changed). Files are hashed (sha256) at the
start of every run: that reads them, so every contender starts with them hot in the page
cache, and gives the digests every pulled copy is checked against.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1 << 30
MIB = 1 << 20
MB = 1_000_000
_GEN_CHUNK = 16 * MIB


@dataclass(frozen=True)
class Shape:
    key: str  # short id, e.g. "single" or "many"
    label: str  # for tables, e.g. "1 x 1 GiB"
    count: int
    size: int  # bytes per file

    @property
    def total(self) -> int:
        return self.count * self.size

    def names(self) -> list[str]:
        if self.count == 1:
            return ["model.bin"]
        return [f"shard-{i:02d}.bin" for i in range(self.count)]


FULL_SHAPES = (
    Shape("single", "1 x 1 GiB", 1, GIB),
    Shape("many", "20 x 50 MB", 20, 50 * MB),
)
QUICK_SHAPES = (
    Shape("single", "1 x 256 MiB", 1, 256 * MIB),
    Shape("many", "5 x 50 MB", 5, 50 * MB),
)


@dataclass(frozen=True)
class Dataset:
    shape: Shape
    root: Path
    # file name -> "sha256:…" of the source files, what every pull must deliver
    digests: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return self.shape.key

    @property
    def label(self) -> str:
        return self.shape.label

    @property
    def total(self) -> int:
        return self.shape.total

    @property
    def files(self) -> list[Path]:
        return [self.root / name for name in self.shape.names()]


def ensure(shape: Shape, parent: Path) -> Dataset:
    """The data set for ``shape`` under ``parent``, generated if missing or different."""
    root = parent / f"{shape.key}-{shape.count}x{shape.size}"
    marker = parent / f"{root.name}.complete"  # beside the directory: pushes take it whole
    expected = json.dumps({"count": shape.count, "size": shape.size})
    if not (marker.exists() and marker.read_text() == expected):
        marker.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        for name in shape.names():
            _random_file(root / name, shape.size)
        marker.write_text(expected)
    files = [root / name for name in shape.names()]
    digests = sha256_files(files, os.cpu_count() or 1)  # reads them: hot in the page cache
    return Dataset(shape, root, {path.name: digest for path, digest in digests.items()})


def _random_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        remaining = size
        while remaining:
            n = min(_GEN_CHUNK, remaining)
            f.write(os.urandom(n))
            remaining -= n
        f.flush()
        os.fsync(f.fileno())


def sha256_file(path: Path, chunk: int = MIB) -> str:
    hasher = hashlib.sha256()
    with path.open("rb", buffering=0) as f:
        buffer = memoryview(bytearray(chunk))
        while got := f.readinto(buffer):
            hasher.update(buffer[:got])
    return "sha256:" + hasher.hexdigest()


def sha256_files(paths: list[Path], threads: int) -> dict[Path, str]:
    """Digests of ``paths`` on a pool of ``threads`` (hashlib releases the GIL)."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return dict(zip(paths, pool.map(sha256_file, paths), strict=True))


def content_mismatches(ds: Dataset, out: Path, threads: int) -> list[str]:
    """How the files pulled into ``out`` differ from ``ds``'s source files (sha256 of
    each); empty when they are the same names with the same bytes."""
    got = {p.relative_to(out).as_posix(): p for p in tree_files(out)} if out.is_dir() else {}
    problems = [f"{name} missing" for name in sorted(ds.digests.keys() - got.keys())]
    problems += [f"{name} not in the data set" for name in sorted(got.keys() - ds.digests.keys())]
    common = sorted(got.keys() & ds.digests.keys())
    digests = sha256_files([got[name] for name in common], threads)
    for name in common:
        if digests[got[name]] != ds.digests[name]:
            problems.append(f"{name} has other bytes ({got[name].stat().st_size} B)")
    return problems


def fsync_paths(paths: list[Path]) -> None:
    """fsync each file (what was written is durable before the clock stops)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def tree_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())
