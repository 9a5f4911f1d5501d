"""Reading model versions: one by number or ``models:/`` URI, a model's list, searches,
and MLflow's latest version per stage. Every read can leave the versions' files out
(``files=False``) for callers that do not show them (MLflow's API)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from cairn.domain import names
from cairn.domain.access import Role
from cairn.domain.codec import validate_time
from cairn.domain.diff import VersionDiff, diff_versions
from cairn.domain.filters import names_one_model, parse_filter, parse_order_by
from cairn.domain.models import Actor, ModelVersion, Page, Stage
from cairn.domain.semver import SemverRange
from cairn.domain.uris import ModelRef, parse_model_uri, parse_version_number
from cairn.domain.validation import clean_page_size
from cairn.errors import InvalidFilter, InvalidParameter, NotFound
from cairn.service.base import ServiceBase
from cairn.service.signature_diff import signature_diff
from cairn.service.tensor_diff import tensor_diff
from cairn.store.metadata.aliases_store import AliasStore
from cairn.store.metadata.clock import from_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.loaders import (
    load_aliased_version,
    load_numbered_version,
    load_versions,
    versions_from_rows,
)
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.search import VERSION_ORDER_FIELDS, search_versions_page
from cairn.store.metadata.versions_store import VersionStore


class VersionReadsService(ServiceBase):
    def get_version(
        self, actor: Actor, name: str, version: int | str, *, files: bool = True
    ) -> ModelVersion:
        """The version; ``files=False`` leaves its manifest out (``files`` empty, ``size``
        and ``digest`` still its own), as every method here with that flag: for callers
        that do not show it (MLflow's API), to whom a version of many files then costs no
        more than one of none."""
        names.validate_model_name(name)
        number = parse_version_number(version)

        def run(s: Tx) -> ModelVersion:
            hit = load_numbered_version(s, name, number, files=files)
            if (found := self._readable(actor, name, hit)) is not None:
                return found  # else the way that says what is wrong
            model = self._model(s, actor, name, Role.READ, "get_version")
            return self._load(s, model.id, name, number, files=files)

        return self.db.read(run)

    def resolve(
        self,
        actor: Actor,
        ref: ModelRef | str,
        *,
        as_of: datetime | None = None,
        files: bool = True,
    ) -> ModelVersion:
        """The version a ``models:/`` URI names; aliases may be resolved as of a past time."""
        validate_time("as_of", as_of)
        ref = _ref(ref, as_of)
        return self.db.read(lambda s: self._resolve(s, actor, ref, as_of, files))

    def diff_versions(
        self,
        actor: Actor,
        old: ModelRef | str,
        new: ModelRef | str,
        *,
        old_as_of: datetime | None = None,
        tensors: bool = False,
        signature: bool = False,
    ) -> VersionDiff:
        """How the version ``new`` names differs from the one ``old`` names (``old_as_of``:
        where ``old``'s alias pointed then), both read in one snapshot. ``tensors``: and
        which tensors of their safetensors files changed; ``signature``: and how the
        signatures of their MLmodel files differ. Both read the blob store after the
        snapshot (a version's files never change)."""
        validate_time("old_as_of", old_as_of)
        before, after = _ref(old, old_as_of), _ref(new, None)

        def run(s: Tx) -> VersionDiff:
            return diff_versions(
                self._resolve(s, actor, before, old_as_of, True),
                self._resolve(s, actor, after, None, True),
            )

        found = self.db.read(run)
        files = (self.blobs, found.old.files, found.new.files)
        if tensors:
            found = replace(found, tensors=tensor_diff(*files))
        if signature:
            found = replace(found, signature=signature_diff(*files))
        # both versions without their manifests, as the API answers them (the changes
        # are in ``files``): the local SDK returns what the HTTP one does
        return replace(found, old=replace(found.old, files=()), new=replace(found.new, files=()))

    def _resolve(
        self, s: Tx, actor: Actor, ref: ModelRef, as_of: datetime | None, files: bool
    ) -> ModelVersion:
        # the hot paths: the version in one statement (two on SQLite), then the caller's
        # READ on its model; anything else (no such model, alias or version, no READ)
        # takes the way below, which says what
        hit = None
        if ref.alias is not None and as_of is None:
            hit = load_aliased_version(s, ref.name, ref.alias, files=files)
        elif ref.version is not None:
            hit = load_numbered_version(s, ref.name, ref.version, files=files)
        if made := self._readable(actor, ref.name, hit):
            return made
        model = self._model(s, actor, ref.name, Role.READ, "resolve")
        if ref.version is not None:
            return self._load(s, model.id, ref.name, ref.version, files=files)
        if ref.latest:
            number = VersionStore(s).latest_ready(model.id)
            if number is None:
                raise NotFound(f"registered model {ref.name!r} has no READY version")
            return self._load(s, model.id, ref.name, number, files=files)
        if ref.semver is not None:
            number = _highest_in_range(VersionStore(s), model.id, ref.semver)
            if number is None:
                raise NotFound(
                    f"registered model {ref.name!r} has no READY version whose semver is in "
                    f"{ref.semver.text!r}"
                )
            return self._load(s, model.id, ref.name, number, files=files)
        assert ref.alias is not None
        aliases = AliasStore(s)
        if as_of is None:
            row = aliases.find(model.id, ref.alias)
            found = None if row is None else int(row.version)
        else:
            event = aliases.as_of(model.id, ref.alias, from_datetime(as_of))
            found = None if event is None else event.to_version
        if found is None:
            when = "" if as_of is None else f" at {as_of.isoformat()}"
            raise NotFound(f"registered model {ref.name!r} has no alias {ref.alias!r}{when}")
        deleted = as_of is not None
        return self._load(s, model.id, ref.name, int(found), allow_deleted=deleted, files=files)

    def list_versions(
        self,
        actor: Actor,
        name: str,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
        files: bool = True,
    ) -> Page[ModelVersion]:
        names.validate_model_name(name)
        order = parse_order_by(list(order_by or ["version DESC"]), VERSION_ORDER_FIELDS)
        size = clean_page_size(max_results, self.limits.default_page)

        def run(s: Tx) -> Page[ModelVersion]:
            model = self._model(s, actor, name, Role.READ, "list_versions")
            return _page(
                s,
                files,
                expr=None,
                order_by=order,
                max_results=size,
                page_token=page_token,
                model_id=model.id,
                include_deleted=include_deleted,
            )

        return self.db.read(run)

    def searches_one_model(self, filter: str | None) -> bool:
        """Whether a version search with this filter keeps to one model (``name = '…'`` at
        its top level), so that its cost is bounded by that model's versions. A malformed
        filter says False: the search itself reports it."""
        try:
            return names_one_model(parse_filter(filter or "", "versions"))
        except InvalidFilter:
            return False

    def search_versions(
        self,
        actor: Actor,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
        files: bool = True,
    ) -> Page[ModelVersion]:
        expr = parse_filter(filter or "", "versions")
        order = parse_order_by(list(order_by or []), VERSION_ORDER_FIELDS)
        size = clean_page_size(max_results, self.limits.default_page)

        def run(s: Tx) -> Page[ModelVersion]:
            return _page(
                s,
                files,
                expr=expr,
                order_by=order,
                max_results=size,
                page_token=page_token,
                include_deleted=include_deleted,
                readable=actor.readable(),
            )

        return self.db.read(run)

    def latest_versions_by_stage(
        self,
        actor: Actor,
        model_names: Sequence[str],
        stages: Sequence[str | Stage] | None = None,
        *,
        files: bool = True,
    ) -> dict[str, list[ModelVersion]]:
        """The newest READY version in each stage (all stages, or ``stages``) of each model.

        MLflow's ``latest_versions``. Keyed by ``names.name_key`` of the model name, each list
        in Stage order; models that do not exist or have no such version are left out. Two
        queries whatever the number of models (one on PostgreSQL): the newest rows per
        (model, stage), then their children.
        """
        for name in model_names:
            names.validate_model_name(name)
        wanted = tuple(Stage) if not stages else tuple(dict.fromkeys(map(Stage.parse, stages)))
        keys = sorted({names.name_key(name) for name in model_names})
        if not keys:
            return {}

        def run(s: Tx) -> dict[str, list[ModelVersion]]:
            readable = keys
            if actor.readable() is not None:  # leave out what the caller may not read
                readable = [
                    key
                    for model_id, key in ModelStore(s).live_ids(keys)
                    if actor.allows(Role.READ, model_id, key)
                ]
            stages = [st.value for st in wanted]
            rows = VersionStore(s).latest_ready_by_stage(readable, stages, files=files)
            latest = versions_from_rows(s, rows, files=files)
            found = {(names.name_key(v.name), v.stage): v for v in latest}
            result: dict[str, list[ModelVersion]] = {}
            for key in keys:
                latest = [found[(key, stage)] for stage in wanted if (key, stage) in found]
                if latest:
                    result[key] = latest
            return result

        return self.db.read(run)

    @staticmethod
    def _readable(
        actor: Actor, name: str, found: tuple[int, ModelVersion] | None
    ) -> ModelVersion | None:
        """A version loaded with its model's id, if ``actor`` may read that model."""
        if found is not None and actor.allows(Role.READ, found[0], names.name_key(name)):
            return found[1]
        return None

    @staticmethod
    def _load(
        s: Tx,
        model_id: int,
        name: str,
        number: int,
        *,
        allow_deleted: bool = False,
        files: bool = True,
    ) -> ModelVersion:
        row = VersionStore(s).find(model_id, number)
        if row is None or (row.deleted_at is not None and not allow_deleted):
            raise NotFound(f"version {number} of model {name!r} does not exist")
        return load_versions(s, [row.id], files=files)[0]


def _page(s: Tx, files: bool, **query: Any) -> Page[ModelVersion]:
    """One page of ``search_versions_page(**query)`` as versions, with their files if
    ``files`` (the rows and the values that read them must agree on it)."""
    rows, token = search_versions_page(s, files=files, **query)
    return Page(versions_from_rows(s, rows, files=files), token)


def _ref(ref: ModelRef | str, as_of: datetime | None) -> ModelRef:
    parsed = parse_model_uri(ref) if isinstance(ref, str) else ref
    if as_of is not None and parsed.alias is None:
        raise InvalidParameter("as_of applies only to aliases (models:/NAME@ALIAS)")
    return parsed


SEMVER_BATCH = 16


def _highest_in_range(versions: VersionStore, model_id: int, wanted: SemverRange) -> int | None:
    """The number of the version with the highest semver label in ``wanted``: down the
    ``semver_key`` index from the top of each span, a batch at a time, each batch ending
    on whole ``major.minor.patch`` groups (which of a group's prereleases and builds is
    highest, and which of them the range takes, only the labels tell)."""
    found: list[tuple[str, int]] = []  # (label, number): the best of each span
    for low, high in wanted.spans():
        below: str | None = None
        while True:
            rows = versions.semver_candidates(model_id, low, high, below=below, limit=SEMVER_BATCH)
            if not rows:
                break
            last = rows[-1].semver_key
            if len(rows) == SEMVER_BATCH:  # the last group may go on: read all of it
                rows = [r for r in rows if r.semver_key != last]
                rows += versions.semver_candidates(model_id, last, last, limit=None)
            best = wanted.newest(rows, lambda r: r.semver)
            if best is not None:
                found.append((best.semver, int(best.version)))
                break
            below = last
    top = wanted.newest(found, lambda f: f[0])
    return None if top is None else top[1]
