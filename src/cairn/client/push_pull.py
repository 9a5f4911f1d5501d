"""Push and pull: what both clients do with their file primitives.

``BaseClient.push`` and ``BaseClient.pull`` are the SDK's entry points; the steps between
(hash, create with the manifest, upload what the server lacks; resolve, fetch what the
cache lacks, verify, place atomically) are written once here, over the primitives each
mode implements (``_create_with_manifest``, ``_upload``, ``_fetch``, ``_fetch_many``,
``_direct_urls``).
"""

from __future__ import annotations

import functools
import os
import threading
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cairn.client.cache import BlobCache, Placement, checked_chunks
from cairn.client.transfer import WORKERS, batch_plan, scan
from cairn.domain.digests import manifest_digest
from cairn.domain.models import FileEntry, ModelVersion, VersionSpec
from cairn.domain.progress import Progress
from cairn.errors import NotFound

if TYPE_CHECKING:
    from cairn.client.base import BaseClient


class _Stopped(Exception):
    """A download ended because its pull is ending (an error elsewhere, or Ctrl-C)."""


@dataclass(frozen=True, slots=True)
class TransferStats:
    """What the last push or pull moved: files and bytes sent or fetched, and reused; and
    which version it was."""

    files: int
    bytes: int
    transferred_files: int
    transferred_bytes: int
    name: str = ""
    version: int = 0
    created: bool = True  # False: a push ``if_changed`` found the files of the latest version


def push(
    client: BaseClient,
    path: Path,
    name: str,
    spec: VersionSpec,
    progress: Progress,
    *,
    if_changed: bool = False,
) -> tuple[ModelVersion, TransferStats]:
    """Hash the files under ``path``, create the version of ``name`` described by ``spec``
    with their manifest, send the blobs the server lacks; the version as created (not yet
    finalized) and what went over the wire. With ``if_changed``, when the model's latest
    READY version has exactly these files (paths, sizes, digests), that one instead, and
    nothing is created or sent."""
    files = scan(path, progress)
    spec = replace(spec, files=tuple(f.entry for f in files))
    if if_changed and (same := _latest_with(client, name, manifest_digest(spec.files))):
        total = sum(f.entry.size for f in files)
        return same, TransferStats(len(files), total, 0, 0, same.name, same.version, False)
    version, missing = client._create_with_manifest(name, spec, str(uuid.uuid4()))
    wanted = set(missing)
    todo = [f for f in {f.entry.digest: f for f in files}.values() if f.entry.digest in wanted]
    progress.begin("uploading", sum(f.entry.size for f in todo))
    client._upload(name, version.version, todo, progress)
    progress.end()
    stats = TransferStats(
        files=len(files),
        bytes=sum(f.entry.size for f in files),
        transferred_files=len(todo),
        transferred_bytes=sum(f.entry.size for f in todo),
        name=version.name,
        version=version.version,
    )
    return version, stats


def _latest_with(client: BaseClient, name: str, digest: str) -> ModelVersion | None:
    try:
        latest = client.resolve(f"models:/{name}/latest")
    except NotFound:  # no such model (yet), or no READY version
        return None
    return latest if latest.digest == digest else None


def pull(
    client: BaseClient,
    version: ModelVersion,
    out: Path,
    cache: BlobCache,
    progress: Progress,
    *,
    override: bool,
) -> TransferStats:
    """Place the files of ``version`` in ``out``: from the cache where it has them, else
    downloaded (several at once, small ones together) into the cache and verified there;
    every file placed atomically, or none."""
    unique = list({f.digest: f for f in version.files}.values())
    present = {f.digest for f in unique if cache.has(f)}
    missing = [f for f in unique if f.digest not in present]
    placements: dict[str, list[Placement]] = defaultdict(list)
    for entry in version.files:  # every path is checked before anything moves
        placements[entry.digest].append(Placement(out, entry.path))
    out.mkdir(parents=True, exist_ok=True)
    cache.root.mkdir(parents=True, exist_ok=True)
    share = os.stat(out).st_dev == os.stat(cache.root).st_dev
    touched: list[Path] = []  # cached blobs a link was tried for: stamped again
    stop = threading.Event()  # the pull is ending: downloads under way stop at a chunk
    progress.begin("downloading", sum(f.size for f in unique))

    def unless_stopped(_: bytes) -> None:
        """Downloads stop at a chunk once the pull ends early (what came stays in the
        cache's partial file, for the next pull to resume)."""
        if stop.is_set():
            raise _Stopped

    def fill(entry: FileEntry, received: bytes | None = None) -> None:
        mine = placements[entry.digest]
        cached = cache.fill(
            entry,
            lambda start: (
                checked_chunks(
                    client._fetch(
                        version.name,
                        version.version,
                        entry,
                        start,
                        urls.get(entry.digest),
                        override=override,
                    ),
                    unless_stopped,
                )
                if received is None
                else iter((received[start:],))
            ),
            progress,
            () if share else mine,  # elsewhere: written as it arrives, not copied after
            checked=entry.digest in present,
        )
        if share:
            mine[0].link_from(cached)  # copied below if it could not be linked
            touched.append(cached)
        for placement in mine:
            if not placement.written:
                placement.copy_from(cached)

    def fill_batch(entries: list[FileEntry]) -> None:
        """Small files fetched together, then cached (and verified) one by one."""
        received = client._fetch_many(version.name, version.version, entries, override=override)
        for entry, content in zip(entries, received, strict=True):
            fill(entry, content)

    alone, batches = batch_plan(missing, lambda entry: entry)
    urls = (
        client._direct_urls(version.name, version.version, alone, override=override)
        if alone
        else {}
    )
    jobs = [functools.partial(fill, e) for e in unique if e.digest in present]
    jobs += [functools.partial(fill, e) for e in alone]
    jobs += [functools.partial(fill_batch, b) for b in batches]
    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            try:
                list(pool.map(lambda job: job(), jobs))
            except BaseException:  # a failed file, or Ctrl-C: the others need not finish
                stop.set()
                raise
        progress.end()
        for group in placements.values():
            for placement in group:
                placement.commit()
        for cached in touched:  # a link made, undone or placed changes the ctime
            cache.restamp(cached)
    finally:
        for group in placements.values():
            for placement in group:
                placement.abort()
    return TransferStats(
        files=len(version.files),
        bytes=version.size,
        transferred_files=len(missing),
        transferred_bytes=sum(f.size for f in missing),
        name=version.name,
        version=version.version,
    )
