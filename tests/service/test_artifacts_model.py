"""The artifact store against a model of itself: random sequences of pushes, uploads,
deletions, purges and garbage collections (hypothesis).

A rule-based state machine creates versions whose files come from a small pool of
contents (so that versions share blobs), uploads their blobs one at a time, soft-deletes,
restores and purges versions, and collects garbage with no grace period. An in-memory
model predicts each outcome: a version is READY at once when every blob it lists is
stored, else PENDING until the last one arrives (uploaded for it or for another version:
every version waiting for a blob is checked when it comes); an upload to a version that is not
PENDING is a conflict, of a blob it does not list a 400; gc reclaims exactly the blobs
no version refers to any more (a soft-deleted or PENDING version still does). After
every step the store must agree: which blobs exist, what each PENDING version misses,
and every file of every live READY version reads back byte for byte; at the end
``verify`` finds nothing wrong. On SQLite and PostgreSQL, over the local blob store.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

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
_RUNS = itertools.count()
EXPLORE = os.environ.get("CAIRN_MACHINE_EXAMPLES")  # a longer, random search
EXAMPLES = int(EXPLORE or "100")


@dataclass
class Version:
    files: dict[str, int]  # path -> content index
    ready: bool
    deleted: bool = False
    purged: bool = False


class ArtifactMachine(RuleBasedStateMachine):
    def __init__(self, service: RegistryService) -> None:
        super().__init__()
        self.svc = service
        run = next(_RUNS)
        self.name = f"art{run}"
        self.contents = [f"run {run} content {i} ".encode() * (i + 1) for i in range(CONTENTS)]
        self.digests = ["sha256:" + hashlib.sha256(c).hexdigest() for c in self.contents]
        self.versions: dict[int, Version] = {}
        self.stored: set[int] = set()  # content indexes whose blob the store holds

    def expect(self, error: type[CairnError] | None, call: Callable[[], object]) -> object:
        if error is None:
            return call()
        with pytest.raises(CairnError) as caught:
            call()
        assert type(caught.value) is error, caught.value
        return None

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

    @rule(data=st.data(), content=st.integers(min_value=0, max_value=CONTENTS - 1))
    def upload(self, data: st.DataObject, content: int) -> None:
        number = self.number(data, lambda v: not v.ready and not v.deleted and not v.purged)
        version = self.versions.get(number)
        if version is None or version.deleted or version.purged:
            error: type[CairnError] | None = NotFound
        elif version.ready:
            error = Conflict
        elif content not in version.files.values():
            error = InvalidParameter
        else:
            error = None
        self.expect(
            error,
            lambda: self.svc.put_blob(
                ACTOR, self.name, number, self.digests[content], [self.contents[content]]
            ),
        )
        if error is None:
            self.stored.add(content)
            for waiting in self.versions.values():  # soft-deleted ones too: not purged
                if not waiting.purged and set(waiting.files.values()) <= self.stored:
                    waiting.ready = True

    @rule(data=st.data())
    def delete_version(self, data: st.DataObject) -> None:
        number = self.number(data, lambda v: not v.deleted and not v.purged)
        version = self.versions.get(number)
        live = version is not None and not version.deleted and not version.purged
        self.expect(
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
        self.expect(
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
        self.expect(
            None if there else NotFound, lambda: self.svc.purge_version(ACTOR, self.name, number)
        )
        if there:
            assert version is not None
            version.purged = True

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
            if version.deleted or version.purged:
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
    run_state_machine_as_test(
        lambda: ArtifactMachine(service),  # type: ignore[arg-type]
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=25,
            deadline=None,
            database=None,
            derandomize=EXPLORE is None,  # the suite: the same sequences every run
            suppress_health_check=list(HealthCheck),
        ),
    )
