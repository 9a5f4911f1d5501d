"""The registry against a model of itself: random sequences of writes (hypothesis).

A rule-based state machine drives ``RegistryService`` through creates, deletes,
restores and renames of models; creates, deletes, restores, tags, stage moves and
prunes of versions; and alias moves (with and without an expected current version),
rollbacks and deletions, on two names. A plain in-memory model predicts each outcome
(the result, or which error), and after every step the registry must agree with it:
version numbers dense and never reused, each alias on a live READY version and
resolving to it, ``latest`` the newest live READY version, listings, stages, prune
reports and tag searches as predicted, each alias's history move for move, and the
audit chain unbroken. On PostgreSQL, creates and alias moves take one-statement paths
(``store/metadata/one_trip.py``) beside the usual transactions, so the machine also
checks that both paths agree on every rule.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

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

from cairn.domain.models import Actor, FileEntry, Stage, VersionSpec, VersionStatus
from cairn.domain.uris import ModelRef
from cairn.errors import AlreadyExists, CairnError, Conflict, InvalidParameter, NotFound
from cairn.service.registry import RegistryService

ACTOR = Actor("machine", is_admin=True)
NAMES = st.sampled_from(["a", "a", "a", "b"])  # mostly the model the run starts with
ALIASES = st.sampled_from(["champion", "shadow"])
NUMBERS = st.integers(min_value=1, max_value=6)
STAGES = st.sampled_from([Stage.NONE, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED])
_RUNS = itertools.count()


@dataclass
class Version:
    ready: bool
    stage: Stage = Stage.NONE
    deleted: bool = False
    run: str | None = None  # tag "run"


@dataclass
class Model:
    versions: dict[int, Version] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    # every move of each alias, oldest first: (from version, to version), None = unset
    history: dict[str, list[tuple[int | None, int | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def move(self, alias: str, to: int | None) -> None:
        before = self.aliases.get(alias)
        if before == to:
            return
        self.history[alias].append((before, to))
        if to is None:
            del self.aliases[alias]
        else:
            self.aliases[alias] = to

    def live(self, number: int) -> Version | None:
        found = self.versions.get(number)
        return None if found is None or found.deleted else found


def is_live(version: Version) -> bool:
    return not version.deleted


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self, service: RegistryService) -> None:
        super().__init__()
        self.svc = service
        self.prefix = f"sm{next(_RUNS)}"
        self.live: dict[str, Model] = {}
        self.deleted: dict[str, list[Model]] = defaultdict(list)

    def full(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def number(
        self, data: st.DataObject, name: str, which: Callable[[Version], bool] = is_live
    ) -> int:
        """Mostly a version of the model that ``which`` picks, sometimes any number."""
        model = self.live.get(name)
        versions = model.versions.items() if model else ()
        known = sorted(n for n, v in versions if which(v))
        return data.draw(st.sampled_from(known) | NUMBERS if known else NUMBERS)

    @initialize()
    def start(self) -> None:
        self.svc.create_model(ACTOR, self.full("a"))
        self.live["a"] = Model()
        for pending in (False, False, True):
            self.create_version("a", pending)

    # -- models ---------------------------------------------------------------------

    @rule(name=NAMES)
    def create_model(self, name: str) -> None:
        error = AlreadyExists if name in self.live else None
        machines.expect(error, lambda: self.svc.create_model(ACTOR, self.full(name)))
        if error is None:
            self.live[name] = Model()

    @rule(name=NAMES)
    def delete_model(self, name: str) -> None:
        error = None if name in self.live else NotFound
        machines.expect(error, lambda: self.svc.delete_model(ACTOR, self.full(name)))
        if error is None:
            self.deleted[name].append(self.live.pop(name))

    @rule(name=NAMES)
    def restore_model(self, name: str) -> None:
        if not self.deleted[name]:
            error: type[CairnError] | None = NotFound
        else:
            error = AlreadyExists if name in self.live else None
        machines.expect(error, lambda: self.svc.restore_model(ACTOR, self.full(name)))
        if error is None:
            self.live[name] = self.deleted[name].pop()

    @rule(old=NAMES, new=NAMES)
    def rename_model(self, old: str, new: str) -> None:
        if old == new:
            return
        if old not in self.live:
            error: type[CairnError] | None = NotFound
        else:
            error = AlreadyExists if new in self.live else None
        machines.expect(error, lambda: self.svc.rename_model(ACTOR, self.full(old), self.full(new)))
        if error is None:
            self.live[new] = self.live.pop(old)

    # -- versions -------------------------------------------------------------------

    @rule(name=NAMES, pending=st.booleans())
    def create_version(self, name: str, pending: bool) -> None:
        files: tuple[FileEntry, ...] = ()
        if pending:  # a file whose bytes never come: the version waits for them
            digest = hashlib.sha256(f"{self.prefix}{name}{id(self)}".encode()).hexdigest()
            files = (FileEntry("w.bin", 10, f"sha256:{digest}"),)
        model = self.live.get(name)
        made = machines.expect(
            None if model else NotFound,
            lambda: self.svc.create_version(ACTOR, self.full(name), VersionSpec(files=files)),
        )
        if model is not None:
            number = max(model.versions, default=0) + 1
            assert made.version == number  # type: ignore[attr-defined]
            status = VersionStatus.PENDING if pending else VersionStatus.READY
            assert made.status is status  # type: ignore[attr-defined]
            model.versions[number] = Version(ready=not pending)

    @rule(name=NAMES, data=st.data())
    def delete_version(self, name: str, data: st.DataObject) -> None:
        number = self.number(data, name)
        model = self.live.get(name)
        found = model.live(number) if model else None
        machines.expect(
            None if found else NotFound,
            lambda: self.svc.delete_version(ACTOR, self.full(name), number),
        )
        if model is not None and found is not None:
            found.deleted = True
            for alias in [a for a, v in model.aliases.items() if v == number]:
                model.move(alias, None)

    @rule(name=NAMES, data=st.data())
    def restore_version(self, name: str, data: st.DataObject) -> None:
        number = self.number(data, name, lambda v: v.deleted)
        model = self.live.get(name)
        found = model.versions.get(number) if model else None
        restorable = found is not None and found.deleted
        machines.expect(
            None if restorable else NotFound,
            lambda: self.svc.restore_version(ACTOR, self.full(name), number),
        )
        if restorable:
            assert found is not None
            found.deleted = False  # its aliases stay gone

    @rule(name=NAMES, data=st.data(), stage=STAGES, archive=st.sampled_from([False, False, True]))
    def transition_stage(self, name: str, data: st.DataObject, stage: Stage, archive: bool) -> None:
        number = self.number(data, name)
        model = self.live.get(name)
        found = model.live(number) if model else None
        if archive and stage not in (Stage.STAGING, Stage.PRODUCTION):
            error: type[CairnError] | None = InvalidParameter
        else:
            error = None if found else NotFound
        machines.expect(
            error,
            lambda: self.svc.transition_stage(
                ACTOR, self.full(name), number, stage, archive_existing_versions=archive
            ),
        )
        if error is None:
            assert model is not None and found is not None
            if archive:
                for other in model.versions.values():
                    if other.stage is stage:
                        other.stage = Stage.ARCHIVED
            found.stage = stage

    @rule(name=NAMES, data=st.data(), value=st.sampled_from(["scratch", "keep"]))
    def tag_version(self, name: str, data: st.DataObject, value: str) -> None:
        number = self.number(data, name)
        model = self.live.get(name)
        found = model.live(number) if model else None
        machines.expect(
            None if found else NotFound,
            lambda: self.svc.set_version_tag(ACTOR, self.full(name), number, "run", value),
        )
        if found is not None:
            found.run = value

    @rule(
        name=NAMES,
        keep=st.integers(min_value=1, max_value=3),
        scratch_only=st.booleans(),
        dry_run=st.booleans(),
    )
    def prune(self, name: str, keep: int, scratch_only: bool, dry_run: bool) -> None:
        """Live versions older than the newest ``keep`` READY ones go, but for those an alias, the
        Staging or Production stage or a missing blob (PENDING) holds; with a filter, only
        the ones it matches are candidates."""
        model = self.live.get(name)
        report = machines.expect(
            None if model else NotFound,
            lambda: self.svc.prune_versions(
                ACTOR,
                self.full(name),
                keep=keep,
                dry_run=dry_run,
                filter="tags.run = 'scratch'" if scratch_only else None,
            ),
        )
        if model is None:
            return
        # the cut is the newest ``keep``-th READY version: an upload still under way is not
        # one of the newest kept (it would push out the newest usable one)
        ready = sorted(n for n in model.versions if model.live(n) and model.versions[n].ready)
        cut = ready[-keep] if len(ready) >= keep else 0
        live = sorted(n for n in model.versions if model.live(n) and n < cut)
        older = [n for n in live if not scratch_only or model.versions[n].run == "scratch"]
        held = {n for n in older if self.held(model, n)}
        assert report.pruned == tuple(n for n in older if n not in held)  # type: ignore[attr-defined]
        assert report.protected == tuple(n for n in older if n in held)  # type: ignore[attr-defined]
        if not dry_run:
            for number in report.pruned:  # type: ignore[attr-defined]
                model.versions[number].deleted = True

    @staticmethod
    def held(model: Model, number: int) -> bool:
        version = model.versions[number]
        return (
            number in model.aliases.values()
            or version.stage in (Stage.STAGING, Stage.PRODUCTION)
            or not version.ready
        )

    # -- aliases --------------------------------------------------------------------

    @rule(
        name=NAMES,
        alias=ALIASES,
        data=st.data(),
        expect=st.none() | st.integers(min_value=0, max_value=6),
    )
    def set_alias(self, name: str, alias: str, data: st.DataObject, expect: int | None) -> None:
        number = self.number(data, name, lambda v: v.ready and not v.deleted)
        model = self.live.get(name)
        found = model.live(number) if model else None
        if found is None:
            error: type[CairnError] | None = NotFound
        elif not found.ready:
            error = InvalidParameter
        elif expect is not None and expect != model.aliases.get(alias, 0):  # type: ignore[union-attr]
            error = Conflict
        else:
            error = None
        moved = machines.expect(
            error,
            lambda: self.svc.set_alias(ACTOR, self.full(name), alias, number, expect=expect),
        )
        if error is None:
            assert model is not None
            assert moved.version == number  # type: ignore[attr-defined]
            model.move(alias, number)

    @rule(name=NAMES, alias=ALIASES)
    def delete_alias(self, name: str, alias: str) -> None:
        model = self.live.get(name)
        there = model is not None and alias in model.aliases
        machines.expect(
            None if there else NotFound,
            lambda: self.svc.delete_alias(ACTOR, self.full(name), alias),
        )
        if there:
            assert model is not None
            model.move(alias, None)

    @rule(name=NAMES, alias=ALIASES)
    def rollback_alias(self, name: str, alias: str) -> None:
        """Back to the version before the alias's last move (``set_alias`` with the
        current version expected)."""
        model = self.live.get(name)
        moves = model.history.get(alias) if model else None
        target = moves[-1][0] if moves else None
        if not moves:
            error: type[CairnError] | None = NotFound
        elif target is None:
            error = InvalidParameter  # its last move created it
        else:
            error = None if model.live(target) else NotFound  # type: ignore[union-attr]
        moved = machines.expect(
            error, lambda: self.svc.rollback_alias(ACTOR, self.full(name), alias)
        )
        if error is None:
            assert model is not None and target is not None
            assert moved.version == target  # type: ignore[attr-defined]
            model.move(alias, target)

    # -- what must hold after every step --------------------------------------------

    @invariant()
    def registry_matches_the_model(self) -> None:
        for name in ("a", "b"):
            model = self.live.get(name)
            if model is None:
                with pytest.raises(NotFound):
                    self.svc.get_model(ACTOR, self.full(name))
                continue
            got = self.svc.get_model(ACTOR, self.full(name))
            assert got.aliases == model.aliases
            page = self.svc.list_versions(ACTOR, self.full(name), max_results=100, files=False)
            listed = {v.version: v for v in page.items}
            assert sorted(listed) == sorted(n for n in model.versions if model.live(n))
            for number, version in listed.items():
                want = model.versions[number]
                assert version.stage is want.stage, (number, version.stage, want.stage)
                ready = version.status is VersionStatus.READY
                assert ready == want.ready, (number, version.status)
                carried = sorted(a for a, n in model.aliases.items() if n == number)
                assert sorted(version.aliases) == carried
            for alias, number in model.aliases.items():
                resolved = self.svc.resolve(ACTOR, ModelRef(self.full(name), alias=alias))
                assert resolved.version == number
            scratch = f"name = '{self.full(name)}' AND tags.run = 'scratch'"
            found = self.svc.search_versions(ACTOR, scratch, max_results=100, files=False)
            tagged = [n for n, v in model.versions.items() if v.run == "scratch" and not v.deleted]
            assert sorted(v.version for v in found.items) == sorted(tagged)
            for alias, moves in model.history.items():
                events = self.svc.alias_history(ACTOR, self.full(name), alias)
                assert [(e.from_version, e.to_version) for e in reversed(events)] == moves
            servable = [n for n, v in model.versions.items() if v.ready and not v.deleted]
            latest = ModelRef(self.full(name), latest=True)
            if servable:
                assert self.svc.resolve(ACTOR, latest, files=False).version == max(servable)
            else:
                with pytest.raises(NotFound):
                    self.svc.resolve(ACTOR, latest, files=False)

    def teardown(self) -> None:
        report = self.svc.verify_audit(ACTOR)
        assert report.ok, report.reason


def test_registry_behaves_like_its_model(service: RegistryService) -> None:
    run_machine(lambda: RegistryMachine(service), examples=200, steps=30)
