"""The artifact store against a model of itself: random sequences of pushes, uploads,
deletions, purges and garbage collections (hypothesis).

A rule-based state machine creates versions whose files come from a small pool of
contents (so that versions share blobs), uploads their blobs whole or resumably (begin
or resume, append in pieces, sometimes at the wrong offset or with wrong bytes,
complete, abort), soft-deletes, restores and purges versions, and collects garbage with
no grace period. An in-memory model predicts each outcome:

- a version is READY at once when every blob it lists is stored, else PENDING until the
  last one arrives (uploaded for it or for another version: every version waiting for a
  blob is checked when it comes);
- a blob sent to a version that is not PENDING is a conflict, one it does not list a 400;
- a resumed upload continues at its offset, an append elsewhere is a conflict, and
  completing early or with wrong bytes is a 400 (wrong bytes are thrown away); purging a
  version drops the uploads it began;
- gc reclaims exactly the blobs no version refers to any more (a soft-deleted or PENDING
  version still does).

After every step the store must agree: which blobs exist, what each PENDING version
misses, and every file of every live READY version reads back byte for byte; at the end
``verify`` finds nothing wrong. On SQLite and PostgreSQL, over the local blob store.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import machines
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from machines import run_machine

from cairn.domain.models import Actor, FileEntry, VersionSpec, VersionStatus
from cairn.errors import CairnError, Conflict, InvalidParameter, NotFound
from cairn.service.registry import RegistryService

ACTOR = Actor("machine", is_admin=True)
CONTENTS = 4  # distinct file contents per run; versions pick among them
FILES = st.dictionaries(
    st.sampled_from(["model.bin", "conf/a.json", "tokenizer/vocab.txt"]),
    st.integers(min_value=0, max_value=CONTENTS - 1),
    min_size=1,
    max_size=3,
)
CONTENT = st.integers(min_value=0, max_value=CONTENTS - 1)
_RUNS = itertools.count()


@dataclass
class Version:
    files: dict[str, int]  # path -> content index
    ready: bool
    deleted: bool = False
    purged: bool = False

    @property
    def live(self) -> bool:
        return not self.deleted and not self.purged


def spoil(chunk: bytes) -> bytes:
    """The same number of wrong bytes."""
    return bytes(b ^ 0xFF for b in chunk)


@dataclass
class Upload:
    """A resumable upload in progress: one per model and blob, whichever version began it."""

    upload_id: str
    version: int
    content: int
    offset: int = 0
    corrupt: bool = False  # wrong bytes were appended


class ArtifactMachine(RuleBasedStateMachine):
    def __init__(self, service: RegistryService) -> None:
        super().__init__()
        self.svc = service
        run = next(_RUNS)
        self.name = f"art{run}"
        self.contents = [f"run {run:09d} content {i} ".encode() * (i + 1) for i in range(CONTENTS)]
        self.digests = ["sha256:" + hashlib.sha256(c).hexdigest() for c in self.contents]
        self.versions: dict[int, Version] = {}
        self.stored: set[int] = set()  # content indexes whose blob the store holds
        self.uploads: dict[int, Upload] = {}  # content index -> its upload in progress

    def number(self, data: st.DataObject, which: Callable[[Version], bool]) -> int:
        """Mostly a version ``which`` picks, sometimes any number."""
        known = sorted(n for n, v in self.versions.items() if which(v))
        anything = st.integers(min_value=1, max_value=len(self.versions) + 1)
        return data.draw(st.sampled_from(known) | anything if known else anything)

    def referenced(self) -> set[int]:
        return {i for v in self.versions.values() if not v.purged for i in v.files.values()}

    @initialize()
    def start(self) -> None:
        self.svc.create_model(ACTOR, self.name)

    @rule(files=FILES)
    def create_version(self, files: dict[str, int]) -> None:
        entries = tuple(
            FileEntry(path, len(self.contents[i]), self.digests[i]) for path, i in files.items()
        )
        made = self.svc.create_version(ACTOR, self.name, VersionSpec(files=entries))
        number = len(self.versions) + 1
        assert made.version == number
        ready = set(files.values()) <= self.stored
        assert made.status is (VersionStatus.READY if ready else VersionStatus.PENDING)
        self.versions[number] = Version(dict(files), ready)

    def refusal(self, number: int, content: int) -> type[CairnError] | None:
        """Why a blob may not be sent for a version now, if it may not."""
        version = self.versions.get(number)
        if version is None or not version.live:
            return NotFound
        if version.ready:
            return Conflict
        if content not in version.files.values():
            return InvalidParameter
        return None

    def arrived(self, content: int) -> None:
        self.stored.add(content)
        for waiting in self.versions.values():  # soft-deleted ones too: not purged
            if not waiting.purged and set(waiting.files.values()) <= self.stored:
                waiting.ready = True

    @staticmethod
    def pending(version: Version) -> bool:
        return version.live and not version.ready

    @rule(data=st.data(), content=CONTENT)
    def upload(self, data: st.DataObject, content: int) -> None:
        number = self.number(data, self.pending)
        error = self.refusal(number, content)
        machines.expect(
            error,
            lambda: self.svc.put_blob(
                ACTOR, self.name, number, self.digests[content], [self.contents[content]]
            ),
        )
        if error is None:
            self.arrived(content)

    # -- resumable uploads --------------------------------------------------------------

    def listed(self, data: st.DataObject, number: int) -> int:
        """Mostly a blob the version lists, sometimes any."""
        version = self.versions.get(number)
        files = sorted(set(version.files.values())) if version else []
        return data.draw(st.sampled_from(files) | CONTENT if files else CONTENT)

    def in_progress(self, data: st.DataObject) -> Upload | None:
        if not self.uploads:
            return None
        return self.uploads[data.draw(st.sampled_from(sorted(self.uploads)))]

    def begin(self, data: st.DataObject) -> Upload | None:
        """Start an upload, or resume the one in progress for that blob; the upload, if
        the version may take that blob."""
        number = self.number(data, self.pending)
        content = self.listed(data, number)
        error = self.refusal(number, content)
        ticket = machines.expect(
            error, lambda: self.svc.begin_upload(ACTOR, self.name, number, self.digests[content])
        )
        if error is not None:
            return None
        current = self.uploads.get(content)
        if current is None:
            current = self.uploads[content] = Upload(ticket.upload_id, number, content)  # type: ignore[attr-defined]
        assert ticket.upload_id == current.upload_id  # type: ignore[attr-defined]
        assert ticket.offset == current.offset  # type: ignore[attr-defined]
        return current

    def complete(self, upload: Upload) -> None:
        whole = upload.offset == len(self.contents[upload.content])
        error = None if whole and not upload.corrupt else InvalidParameter
        machines.expect(error, lambda: self.svc.complete_upload(ACTOR, upload.upload_id))
        if whole:  # done, or its wrong bytes thrown away
            del self.uploads[upload.content]
        if error is None:
            self.arrived(upload.content)

    @rule(data=st.data())
    def begin_upload(self, data: st.DataObject) -> None:
        self.begin(data)

    @rule(
        data=st.data(),
        corrupt=st.sampled_from([False, False, True]),
        misplaced=st.sampled_from([False, False, True]),
    )
    def append(self, data: st.DataObject, corrupt: bool, misplaced: bool) -> None:
        upload = self.in_progress(data)
        if upload is None:
            return
        content = upload.content
        size = len(self.contents[content])
        if upload.offset == size:
            return
        rest = size - upload.offset
        n = data.draw(st.just(rest) | st.integers(min_value=1, max_value=rest))  # often the rest
        chunk = self.contents[content][upload.offset : upload.offset + n]
        if corrupt:
            chunk = spoil(chunk)
        at = upload.offset + 1 if misplaced else upload.offset
        offset = machines.expect(
            Conflict if misplaced else None,
            lambda: self.svc.append_upload(ACTOR, upload.upload_id, at, [chunk]),
        )
        if not misplaced:
            upload.offset += n
            upload.corrupt |= corrupt
            assert offset == upload.offset

    @rule(data=st.data())
    def complete_upload(self, data: st.DataObject) -> None:
        upload = self.in_progress(data)
        if upload is not None:
            self.complete(upload)

    @rule(data=st.data(), corrupt=st.booleans())
    def upload_in_pieces(self, data: st.DataObject, corrupt: bool) -> None:
        """A whole resumable upload in one step: begin, append the rest in up to three
        pieces (wrong bytes in one of them if ``corrupt``), complete."""
        upload = self.begin(data)
        if upload is None:
            return
        size = len(self.contents[upload.content])
        cuts = data.draw(st.lists(st.integers(upload.offset, size), max_size=2))
        bounds = sorted({upload.offset, *cuts, size})
        for start, end in itertools.pairwise(bounds):
            chunk = self.contents[upload.content][start:end]
            if corrupt and start == bounds[0]:
                chunk = spoil(chunk)
            self.svc.append_upload(ACTOR, upload.upload_id, start, [chunk])
        upload.offset = size
        upload.corrupt |= corrupt and len(bounds) > 1
        self.complete(upload)

    @rule(data=st.data())
    def abort_upload(self, data: st.DataObject) -> None:
        upload = self.in_progress(data)
        if upload is not None:
            del self.uploads[upload.content]
            self.svc.abort_upload(ACTOR, upload.upload_id)
            with pytest.raises(NotFound):
                self.svc.upload_status(ACTOR, upload.upload_id)

    @rule(data=st.data())
    def delete_version(self, data: st.DataObject) -> None:
        number = self.number(data, lambda v: v.live)
        version = self.versions.get(number)
        live = version is not None and version.live
        machines.expect(
            None if live else NotFound, lambda: self.svc.delete_version(ACTOR, self.name, number)
        )
        if live:
            assert version is not None
            version.deleted = True

    @rule(data=st.data())
    def restore_version(self, data: st.DataObject) -> None:
        number = self.number(data, lambda v: v.deleted and not v.purged)
        version = self.versions.get(number)
        deleted = version is not None and version.deleted and not version.purged
        machines.expect(
            None if deleted else NotFound,
            lambda: self.svc.restore_version(ACTOR, self.name, number),
        )
        if deleted:
            assert version is not None
            version.deleted = False

    @rule(data=st.data())
    def purge_version(self, data: st.DataObject) -> None:
        number = self.number(data, lambda v: v.deleted and not v.purged)
        version = self.versions.get(number)
        there = version is not None and not version.purged
        machines.expect(
            None if there else NotFound, lambda: self.svc.purge_version(ACTOR, self.name, number)
        )
        if there:
            assert version is not None
            version.purged = True
            # the uploads it began go with it
            self.uploads = {c: u for c, u in self.uploads.items() if u.version != number}

    @rule(dry_run=st.booleans())
    def gc(self, dry_run: bool) -> None:
        report = self.svc.gc(ACTOR, dry_run=dry_run, grace_s=0)
        mine = {self.digests.index(b.digest) for b in report.blobs if b.digest in self.digests}
        assert mine == self.stored - self.referenced()
        if not dry_run:
            self.stored -= mine

    @invariant()
    def store_matches_the_model(self) -> None:
        for i, digest in enumerate(self.digests):
            assert self.svc.blobs.exists(digest) == (i in self.stored), (i, self.stored)
        for number, version in self.versions.items():
            if not version.live:
                continue
            if not version.ready:
                missing = self.svc.missing_blobs(ACTOR, self.name, number)
                want = {self.digests[i] for i in version.files.values()} - {
                    self.digests[i] for i in self.stored
                }
                assert set(missing) == want
                continue
            for path, i in version.files.items():
                opened = self.svc.open_file(ACTOR, self.name, number, path)
                assert b"".join(opened.chunks) == self.contents[i]

    def teardown(self) -> None:
        report = self.svc.verify(ACTOR)
        assert not report.corrupt and not report.missing


def test_artifacts_behave_like_their_model(service: RegistryService) -> None:
    run_machine(lambda: ArtifactMachine(service), examples=150, steps=25)
