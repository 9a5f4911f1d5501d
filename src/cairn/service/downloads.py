"""Use cases that read a version's bytes: list, stream, several small files at once, and
direct links from the object store.

Whole-file reads are verified as they go; the files of a version quarantined by its scan
are refused unless an override is asked by someone with MANAGE (audited).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cairn.domain import names
from cairn.domain.access import Role
from cairn.domain.artifacts import FileLink
from cairn.domain.blob_batch import BATCH_FILE_MAX, MAX_BATCH_BLOBS
from cairn.domain.models import Actor, FileEntry, VersionStatus
from cairn.domain.paths import validate_file_path
from cairn.domain.uris import parse_version_number
from cairn.errors import DataCorrupted, InvalidParameter, NotFound
from cairn.service.base import PRESIGN_SECONDS
from cairn.service.scans import ScansService
from cairn.store.metadata.blob_index_store import BlobIndexStore
from cairn.store.metadata.database import Tx
from cairn.store.metadata.loaders import load_versions


@dataclass(frozen=True, slots=True)
class OpenedFile:
    """A file of a version, ready to stream: ``chunks`` yields bytes ``[start, end)``."""

    entry: FileEntry
    start: int
    end: int
    chunks: Iterator[bytes]


class DownloadsService(ScansService):
    def list_files(self, actor: Actor, name: str, version: int | str) -> tuple[FileEntry, ...]:
        row = self._version_row(actor, name, version, Role.READ, "list_files")
        return self.db.read(lambda s: load_versions(s, [row.id])[0].files)

    def open_file(
        self,
        actor: Actor,
        name: str,
        version: int | str,
        path: str,
        *,
        start: int = 0,
        end: int | None = None,
        override_quarantine: bool = False,
    ) -> OpenedFile:
        """Stream a file of a READY version; a whole-file read is verified as it goes.

        ``end`` is exclusive. A full read hashes the bytes and holds the last chunk back
        until the digest matches: corrupt bytes end the stream with an error instead of
        completing it, and the blob is marked corrupt. The files of a version quarantined
        by its scan are refused unless ``override_quarantine`` is asked by someone with
        MANAGE; every read that passes that way is audited.
        """
        row, [(entry, file)], quarantined = self._locate(actor, name, version, [path])
        if quarantined is not None:  # bytes flow unless a range of none was asked for
            self._pass_quarantine(
                actor,
                name,
                row.version,
                quarantined,
                override=override_quarantine,
                path=path,
                audit=end is None or end > start,
            )
        self._check_intact(entry, file)
        size = entry.size
        stop = size if end is None else min(end, size)
        if start < 0 or start > stop:
            raise InvalidParameter(f"range {start}-{stop} is outside the file's {size} bytes")
        if start == 0 and stop == size:
            chunks = self._stored(entry)
        elif start == stop:  # no byte asked (a HEAD, a Range placed by size): no store I/O
            chunks = iter(())
        else:
            chunks = self._stored(entry, start, stop)
        return OpenedFile(entry, start, stop, chunks)

    def read_files(
        self,
        actor: Actor,
        name: str,
        version: int | str,
        paths: Sequence[str],
        *,
        override_quarantine: bool = False,
    ) -> list[tuple[FileEntry, bytes]]:
        """Several small files of a READY version at once, each whole and verified as
        ``open_file`` verifies it (small-file pulls: ``domain/blob_batch.py``): up to
        ``MAX_BATCH_BLOBS`` paths of at most ``BATCH_FILE_MAX`` bytes each."""
        if not paths or len(paths) > MAX_BATCH_BLOBS:
            raise InvalidParameter(f"ask for 1 to {MAX_BATCH_BLOBS} files at once")
        row, found, quarantined = self._locate(actor, name, version, paths)
        for entry, _ in found:
            if entry.size > BATCH_FILE_MAX:
                raise InvalidParameter(
                    f"{entry.path!r} is larger than {BATCH_FILE_MAX} bytes; download it alone"
                )
        self._pass_each(actor, name, row.version, found, quarantined, override_quarantine)
        read = []
        for entry, file in found:
            self._check_intact(entry, file)
            chunks = self._stored(entry)
            read.append((entry, b"".join(chunks)))
        return read

    def file_urls(
        self,
        actor: Actor,
        name: str,
        version: int | str,
        paths: Sequence[str],
        *,
        override_quarantine: bool = False,
    ) -> list[FileLink]:
        """Direct download links from the object store for files of a READY version, each
        valid ``PRESIGN_SECONDS``, with the digest the caller must check the bytes against
        (the server does not see them); ``None`` for each when the store has no links
        (local disk: download through the server). The same checks as a download come
        first, and an override of a quarantine is audited per file, when its link is
        given out."""
        if not paths or len(paths) > MAX_BATCH_BLOBS:
            raise InvalidParameter(f"ask for 1 to {MAX_BATCH_BLOBS} files at once")
        row, found, quarantined = self._locate(actor, name, version, paths)
        for entry, file in found:
            self._check_intact(entry, file)  # so the store need not be asked again below
        self._pass_each(actor, name, row.version, found, quarantined, override_quarantine)
        return [
            FileLink(e, self.blobs.presign_get(e.digest, PRESIGN_SECONDS, known=True))
            for e, _ in found
        ]

    # -- helpers -------------------------------------------------------------------------
    def _locate(
        self, actor: Actor, name: str, version: int | str, paths: Sequence[str]
    ) -> tuple[Any, list[tuple[FileEntry, Any]], str | None]:
        """A READY version the caller may read, each path's entry with the state of its
        bytes (``BlobIndexStore.files_with_blobs``), and the version's quarantine (None
        if it has none)."""
        for path in paths:
            validate_file_path(path)
        names.validate_model_name(name)
        number = parse_version_number(version)

        def locate(s: Tx) -> tuple[Any, list[tuple[FileEntry, Any]], str | None]:
            row = self._row_in(s, actor, name, number, Role.READ, "download")
            if row.status != VersionStatus.READY.value:
                raise InvalidParameter(
                    f"version {row.version} of {name!r} is {row.status}, not READY"
                )
            held = BlobIndexStore(s).files_with_blobs(row.id, paths)
            found = []
            for path in paths:
                if (file := held.get(path)) is None:
                    raise NotFound(f"version {row.version} of {name!r} has no file {path!r}")
                found.append((FileEntry(path, int(file.size), file.digest), file))
            return row, found, self._quarantine(s, row.model_id, row)

        return self.db.read(locate)

    @staticmethod
    def _check_intact(entry: FileEntry, file: Any) -> None:
        if not file.stored or file.corrupt_at is not None:
            raise _lost(entry)

    def _pass_each(
        self,
        actor: Actor,
        name: str,
        number: int,
        found: Sequence[tuple[FileEntry, Any]],
        quarantined: str | None,
        override: bool,
    ) -> None:
        """Several files of a quarantined version: refused, or each override audited."""
        if quarantined is None:
            return
        for entry, _ in found:
            self._pass_quarantine(
                actor, name, number, quarantined, override=override, path=entry.path, audit=True
            )

    def _stored(self, entry: FileEntry, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The file's bytes ``[start, stop)`` from the store, verified if that is all of
        them. Bytes the store no longer holds, which the index says it does, are
        ``DataCorrupted`` (not the store's ``NotFound``: the file exists, its bytes were
        lost), marked so."""
        stop = entry.size if stop is None else stop
        try:
            if start == 0 and stop == entry.size:
                chunks = self.blobs.open_verified(entry.digest)
            else:  # the range is within the file: one the store refuses ends past its bytes
                chunks = self.blobs.open(entry.digest, start, stop)
        except (NotFound, InvalidParameter) as exc:
            self._mark_corrupt(entry.digest)
            raise _lost(entry) from exc
        return self._verified(chunks, entry, stop - start)

    def _verified(self, chunks: Iterator[bytes], entry: FileEntry, length: int) -> Iterator[bytes]:
        """The store's stream of ``length`` bytes of the file, cut before any byte past
        that (whose digest would not match at the end: in an archive the excess would
        pass for the next member) and failed if it ends short; bytes found corrupt, or
        gone, are marked so in the index."""
        sent = 0
        try:
            for chunk in chunks:
                sent += len(chunk)
                if sent > length:
                    raise DataCorrupted(
                        f"stored bytes of {entry.digest} run past its {entry.size} bytes"
                    )
                yield chunk
            if sent < length:  # a whole read's digest check has found that already
                raise DataCorrupted(
                    f"stored bytes of {entry.digest} end short of its {entry.size} bytes"
                )
        except NotFound as exc:  # deleted between the open and the read
            self._mark_corrupt(entry.digest)
            raise _lost(entry) from exc
        except DataCorrupted:
            self._mark_corrupt(entry.digest)
            raise

    def _mark_corrupt(self, digest: str) -> None:
        now = self.clock()
        self.db.write(lambda s: BlobIndexStore(s).mark(digest, now, corrupt=True))


def _lost(entry: FileEntry) -> DataCorrupted:
    return DataCorrupted(
        f"the stored bytes of {entry.path!r} ({entry.digest}) are missing or corrupt; "
        "run `cairn verify` and re-push the file"
    )
