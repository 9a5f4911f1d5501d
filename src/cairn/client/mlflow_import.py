"""``cairn import mlflow``: copy an MLflow Model Registry into Cairn, files included.

The stock ``mlflow`` client (an optional dependency, imported only here and only when an
import runs) lists every registered model (prompts left out) and every version, and
downloads each version's files from wherever its source points, on this machine. The
files are then pushed to Cairn content-addressed, under the version's MLflow number, with
its description, tags, stage, run id, run link, source (kept as text), creation time and
creator; then the model's aliases are set.

Re-running is safe and resumes: a version already in Cairn with the same source and run
is skipped without downloading; any other version is downloaded, and one already there
with the same manifest digest is kept as it is (a half-uploaded one is completed). A
version whose files cannot be downloaded is recorded in Cairn as FAILED, with the reason,
keeping its number; the next run retries it.
"""

from __future__ import annotations

import importlib
import shlex
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cairn.client.base import BaseClient
from cairn.client.importing import (
    FAILED,
    FATAL,
    IMPORTED,
    PLANNED,
    SKIPPED,
    ImportSummary,
    ItemResult,
    Reporter,
    ensure_model,
    find_version,
    left_out,
    record_failed,
    scan_tree,
    sync_aliases,
    sync_version,
    write_version,
)
from cairn.domain.models import ModelVersion, Stage, VersionSpec, VersionStatus
from cairn.domain.names import (
    MAX_DESCRIPTION_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    name_key,
    validate_model_name,
    validate_text,
)
from cairn.domain.validation import clean_spec, clean_tags
from cairn.errors import (
    CairnError,
    InvalidParameter,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

PROMPT_TAG = "mlflow.prompt.is_prompt"
PAGE = 1000
PROBE_TIMEOUT = 30  # seconds for the one request that checks whether MLflow answers


@dataclass(frozen=True, slots=True)
class MlflowVersion:
    number: int
    description: str
    tags: dict[str, str]
    stage: str
    status: str
    status_message: str
    source: str | None
    run_id: str | None
    run_link: str | None
    created_at: datetime | None
    created_by: str | None
    problem: str | None = None  # metadata Cairn refuses (a tag value over its bound, …)

    def spec(self, files: tuple[Any, ...] = ()) -> VersionSpec:
        return VersionSpec(
            description=self.description,
            tags=self.tags,
            source=self.source,
            run_id=self.run_id,
            run_link=self.run_link,
            files=files,
        )


@dataclass(frozen=True, slots=True)
class MlflowModel:
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    created_at: datetime | None
    created_by: str | None
    versions: tuple[MlflowVersion, ...]
    problem: str | None = None  # why it cannot be imported (e.g. its name)


def _time(ms: int | None) -> datetime | None:
    return None if not ms else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _text(value: str | None) -> str | None:
    return value or None


def _one_line(exc: Exception, limit: int = 400) -> str:
    """MLflow's errors run over several lines (one block per file): one line, bounded."""
    text = " ".join(str(exc).replace("#####", " ").split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _root_cause(exc: BaseException) -> str:
    """The innermost error behind ``exc`` ("[Errno 111] Connection refused"), one line."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return _one_line(exc) if isinstance(exc, Exception) else type(exc).__name__


def _refused(spec: VersionSpec) -> str | None:
    """Why Cairn would refuse a version's metadata, or None."""
    try:
        clean_spec(spec)
    except InvalidParameter as exc:
        return f"not importable: {exc.message}"
    return None


def _files_refused(name: str, count: int) -> str:
    """Why the files of a version imported earlier with --no-files are not added."""
    return (
        f"in Cairn without files: it was imported without files (--no-files), and Cairn "
        f"versions never change, so its {count} file(s) in MLflow cannot be added. To "
        f"bring them, delete the model in Cairn (cairn models delete {shlex.quote(name)}; "
        "all its versions go) and run the import again: it is imported afresh"
    )


def _lookup_failed(exc: Exception) -> str:
    """Why MLflow did not return a model asked for by name: not found (a prompt is not
    found either), or the error that kept it from answering."""
    if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
        return f"not found in MLflow: {_one_line(exc)}"
    return f"could not be read from MLflow: {_one_line(exc)}"


def _check_sqlite(uri: str) -> None:
    """A ``sqlite:`` store must exist: the MLflow client would create an empty one (and
    its folder) wherever a mistyped URI points, and the import would find nothing."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "sqlite":
        return
    database = parts.path[1:]  # SQLAlchemy's reading: sqlite:///rel.db, sqlite:////abs.db
    if database in ("", ":memory:") or Path(database).is_file():
        return
    raise InvalidParameter(
        f"no MLflow database at {database} (from {uri}); check the URI (the MLflow client "
        "would create an empty one there)"
    )


def _import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise InvalidParameter(
            "`cairn import mlflow` needs the MLflow client: pip install 'mlflow>=3'"
        ) from exc
    return mlflow


class MlflowSource:
    """The MLflow registry read through the stock client."""

    def __init__(self, tracking_uri: str, registry_uri: str | None = None) -> None:
        self._mlflow = _import_mlflow()
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        for uri in dict.fromkeys([self.tracking_uri, self.registry_uri]):
            _check_sqlite(uri)  # before the client, which creates a missing database
        self._client = self._mlflow.MlflowClient(
            tracking_uri=tracking_uri, registry_uri=self.registry_uri
        )

    def _servers(self) -> list[str]:
        """The MLflow servers this source talks to over HTTP (tracking, registry)."""
        uris = dict.fromkeys([self.tracking_uri, self.registry_uri])
        return [u for u in uris if urlsplit(u).scheme.lower() in ("http", "https")]

    def _probe(self, uri: str) -> Any:
        """One request to the server at ``uri``, not retried: its response (whatever its
        status), or the error that kept it from answering."""
        rest: Any = importlib.import_module("mlflow.utils.rest_utils")  # untyped
        credentials: Any = importlib.import_module("mlflow.utils.credentials")
        return rest.http_request(
            credentials.get_default_host_creds(uri),
            "/api/2.0/mlflow/registered-models/search",
            "GET",
            max_retries=0,
            backoff_factor=0,
            backoff_jitter=0,
            timeout=PROBE_TIMEOUT,
            raise_on_status=False,
            params={"max_results": 1},
        )

    def check(self) -> None:
        """Fail at once, clearly, if an MLflow server does not answer or refuses the caller
        (the MLflow client would retry a dead server for minutes before saying so)."""
        for uri in self._servers():
            try:
                status = int(self._probe(uri).status_code)
            except Exception as exc:  # requests' and MLflow's errors
                raise Unavailable(f"cannot reach MLflow at {uri}: {_root_cause(exc)}") from exc
            if status == 401:
                raise Unauthenticated(
                    f"MLflow at {uri} asks for credentials (401): set MLFLOW_TRACKING_USERNAME "
                    "and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
                )
            if status == 403:
                raise PermissionDenied(
                    f"MLflow at {uri} refuses these credentials access to its registry (403)"
                )
            if status == 404:
                raise InvalidParameter(
                    f"{uri} does not serve MLflow's registry API (404 for "
                    "/api/2.0/mlflow/registered-models/search): check the URI"
                )
            if status >= 500:
                raise Unavailable(f"MLflow at {uri} answers {status}: try again later")

    def gone(self) -> tuple[str, str] | None:
        """An MLflow server this source uses that no longer answers, and why; or None."""
        for uri in self._servers():
            try:
                status = int(self._probe(uri).status_code)
            except Exception as exc:
                return uri, _root_cause(exc)
            if status >= 500:
                return uri, f"it answers {status}"
        return None

    def models(self, names: Sequence[str] = ()) -> Iterator[MlflowModel]:
        """Every registered model (or the named ones), prompts left out, with versions."""
        for name, rm, problem in self._registered(names):
            if rm is None:
                yield MlflowModel(name, "", {}, {}, None, None, (), problem=problem)
                continue
            tags = dict(rm.tags or {})
            if str(tags.get(PROMPT_TAG, "")).lower() == "true":
                continue
            base: dict[str, Any] = {
                "name": name,
                "description": rm.description or "",
                "tags": tags,
                "aliases": {a: int(v) for a, v in (rm.aliases or {}).items()},
                "created_at": _time(rm.creation_timestamp),
                "created_by": _text(getattr(rm, "user_id", None)),
            }
            # listed even for a model Cairn refuses, so that its versions are accounted for
            versions = tuple(self._versions(name))
            yield MlflowModel(versions=versions, problem=self._model_refused(name, rm), **base)

    @staticmethod
    def _model_refused(name: str, rm: Any) -> str | None:
        """Why Cairn would refuse the model itself (said before anything is written)."""
        try:
            validate_model_name(name)
        except InvalidParameter as exc:
            return f"not a valid Cairn name: {exc}"
        try:
            validate_text("description", rm.description or "", MAX_DESCRIPTION_LENGTH)
            clean_tags("tag", dict(rm.tags or {}), MAX_TAG_VALUE_LENGTH)
        except InvalidParameter as exc:
            return f"model not imported: {exc.message}"
        return None

    def _registered(self, names: Sequence[str]) -> Iterator[tuple[str, Any, str | None]]:
        """(name, MLflow's registered model or None, why not)."""
        if names:
            for name in dict.fromkeys(names):  # a name given twice is imported once
                try:
                    yield name, self._client.get_registered_model(name), None
                except Exception as exc:  # MlflowException, requests' errors, …
                    yield name, None, _lookup_failed(exc)
            return
        token = None
        while True:
            page = self._client.search_registered_models(max_results=PAGE, page_token=token)
            for rm in page:
                yield rm.name, rm, None
            token = page.token
            if not token:
                return

    def _versions(self, name: str) -> list[MlflowVersion]:
        found: dict[int, MlflowVersion] = {}
        token = None
        escaped = name.replace("'", "''")
        while True:
            page = self._client.search_model_versions(
                f"name='{escaped}'", max_results=PAGE, page_token=token
            )
            for mv in page:
                number = int(mv.version)
                version = MlflowVersion(
                    number=number,
                    description=mv.description or "",
                    tags=dict(mv.tags or {}),
                    stage=Stage.parse(mv.current_stage or "None").value,
                    status=str(mv.status or "READY"),
                    status_message=mv.status_message or "",
                    source=_text(mv.source),
                    run_id=_text(mv.run_id),
                    run_link=_text(mv.run_link),
                    created_at=_time(mv.creation_timestamp),
                    created_by=_text(mv.user_id),
                )
                found[number] = replace(version, problem=_refused(version.spec()))
            token = page.token
            if not token:
                break
        return [found[n] for n in sorted(found)]

    def download(self, name: str, version: int, dst: Path) -> Path:
        """The version's files, downloaded under ``dst``; returns their folder (or file)."""
        uri = self._client.get_model_version_download_uri(name, str(version))
        local = self._mlflow.artifacts.download_artifacts(
            artifact_uri=uri,
            dst_path=str(dst),
            tracking_uri=self.tracking_uri,
            registry_uri=self.registry_uri,
        )
        return Path(local)


class MlflowImporter:
    def __init__(
        self,
        cairn: BaseClient,
        source: MlflowSource,
        *,
        files: bool = True,
        reporter: Reporter | None = None,
    ) -> None:
        self.cairn = cairn
        self.source = source
        self.files = files
        self.reporter = reporter or Reporter()
        self._claimed: dict[str, str] = {}  # name key -> the MLflow name that took it

    def run(self, names: Sequence[str] = (), *, dry_run: bool = False) -> ImportSummary:
        self.source.check()
        models = self._list(names)
        self.reporter.expect(sum(len(m.versions) for m in models))
        summary = ImportSummary(dry_run=dry_run)
        for model in models:
            summary.models += 1
            for result in self._model(model, summary, dry_run):
                summary.add(result)
                self.reporter.done(result)
        return summary

    def _list(self, names: Sequence[str]) -> list[MlflowModel]:
        """The models to import with their versions, reported as they are listed."""
        models: list[MlflowModel] = []
        versions = 0
        try:
            for model in self.source.models(names):
                models.append(model)
                versions += len(model.versions)
                self.reporter.listing(len(models), versions)
        except Exception as exc:  # MlflowException, requests' errors, …
            raise Unavailable(
                f"cannot list the MLflow registry at {self.source.registry_uri}: {_one_line(exc)}"
            ) from exc
        return models

    def _model(
        self, model: MlflowModel, summary: ImportSummary, dry_run: bool
    ) -> Iterator[ItemResult]:
        numbers = [v.number for v in model.versions]
        if model.problem is not None:
            yield from left_out(model.name, numbers, model.problem)
            return
        try:
            other = self._case_twin(model.name)
        except FATAL:
            raise
        except CairnError as exc:
            yield from left_out(model.name, numbers, f"model not imported: {exc.message}")
            return
        if other is not None:
            reason = (
                f"model not imported: it differs only in case from {other!r}, which is the "
                "same model in Cairn (Cairn names ignore case; MLflow's do not)"
            )
            yield from left_out(model.name, numbers, reason)
            return
        try:
            created, changes = ensure_model(
                self.cairn,
                model.name,
                description=model.description,
                tags=model.tags,
                created_at=model.created_at,
                created_by=model.created_by,
                dry_run=dry_run,
            )
        except FATAL:
            raise
        except CairnError as exc:
            yield from left_out(model.name, numbers, f"model not imported: {exc.message}")
            return
        summary.models_created += created
        what = "create model" if created else ("update " + ", ".join(changes) if changes else "")
        if what:
            yield ItemResult(model.name, None, PLANNED if dry_run else IMPORTED, what)
        for version in model.versions:
            self.reporter.start(model.name, version.number, "checking")
            try:
                yield self._version(model.name, version, dry_run, exists=not created)
            except FATAL:
                raise
            except CairnError as exc:
                yield ItemResult(model.name, version.number, FAILED, exc.message)
        yield from sync_aliases(self.cairn, model.name, model.aliases, dry_run=dry_run)

    def _case_twin(self, name: str) -> str | None:
        """The model ``name`` would be merged into: another MLflow name met in this run, or
        a Cairn model, that differs from ``name`` only in case."""
        other = self._claimed.setdefault(name_key(name), name)
        if other != name:
            return other
        try:
            there = self.cairn.get_model(name).name
        except NotFound:
            return None
        return there if there != name else None

    def _version(self, name: str, mv: MlflowVersion, dry_run: bool, *, exists: bool) -> ItemResult:
        number = mv.number
        if mv.problem is not None:  # nothing to download, and no record it could have
            return ItemResult(name, number, FAILED, mv.problem)
        existing = find_version(self.cairn, name, number) if exists else None
        if existing is not None and self._same_origin(existing, mv):
            if dry_run:
                return ItemResult(name, number, SKIPPED, "already in Cairn")
            changes = sync_version(
                self.cairn, existing, description=mv.description, tags=mv.tags, stage=mv.stage
            )
            note = "already in Cairn" + (f"; updated {', '.join(changes)}" if changes else "")
            return ItemResult(name, number, SKIPPED, note)
        if dry_run:
            where = "without files" if not self.files else f"files from {mv.source}"
            if existing is not None and self._imported_without_files(existing, mv):
                where += (  # only the download tells whether MLflow has files for it
                    "; it is in Cairn without files (imported with --no-files): if MLflow "
                    "has files for it, they cannot be added"
                )
            return ItemResult(name, number, PLANNED, f"import ({where})")
        if mv.status != "READY":
            reason = f"MLflow status is {mv.status}" + (
                f": {mv.status_message}" if mv.status_message else ""
            )
            return self._failed(name, mv, existing, reason)
        if not self.files:
            version, _ = write_version(
                self.cairn, name, number, mv.spec(), (), **self._provenance(mv)
            )
            return self._written(name, mv, existing, version, 0)
        with tempfile.TemporaryDirectory(prefix="cairn-mlflow-") as tmp:
            self.reporter.start(name, number, "downloading")
            try:
                local = self.source.download(name, number, Path(tmp))
            except Exception as exc:  # whatever the artifact repository raised
                self._stop_if_gone(name, number)
                reason = f"files could not be downloaded from {mv.source}: {_one_line(exc)}"
                return self._failed(name, mv, existing, reason)
            self.reporter.start(name, number, "uploading")
            progress = self.reporter.progress
            try:
                files = scan_tree(local, progress)
                if files and existing is not None and self._imported_without_files(existing, mv):
                    return ItemResult(name, number, FAILED, _files_refused(name, len(files)))
                spec = mv.spec(tuple(f.entry for f in files))
                version, sent = write_version(
                    self.cairn, name, number, spec, files, progress=progress, **self._provenance(mv)
                )
            except FATAL:
                raise
            except CairnError as exc:  # a file name Cairn refuses, other content, …
                return self._failed(name, mv, existing, f"not stored: {exc.message}")
        return self._written(name, mv, existing, version, sent)

    def _stop_if_gone(self, name: str, number: int) -> None:
        """End the import if MLflow itself stopped answering: recording each version left
        as FAILED would be wrong, and each would first sit through the client's retries."""
        gone = self.source.gone()
        if gone is not None:
            uri, why = gone
            raise Unavailable(
                f"MLflow at {uri} stopped answering ({why}) while {name} v{number} was "
                "being downloaded; nothing was recorded for it. Run the import again when "
                "MLflow is back: it resumes where it stopped"
            )

    def _written(
        self,
        name: str,
        mv: MlflowVersion,
        existing: ModelVersion | None,
        version: ModelVersion,
        sent: int,
    ) -> ItemResult:
        if existing is not None and existing.status is not VersionStatus.FAILED:
            changes = sync_version(
                self.cairn, version, description=mv.description, tags=mv.tags, stage=mv.stage
            )
            if existing.status is VersionStatus.READY:
                note = "same files already in Cairn"
                if changes:
                    note += f"; updated {', '.join(changes)}"
                return ItemResult(name, mv.number, SKIPPED, note, sent)
        if version.status is not VersionStatus.READY:
            return ItemResult(name, mv.number, FAILED, f"left {version.status.value}", sent)
        return ItemResult(name, mv.number, IMPORTED, f"{len(version.files)} file(s)", sent)

    def _failed(
        self, name: str, mv: MlflowVersion, existing: ModelVersion | None, reason: str
    ) -> ItemResult:
        """Report the version; record it as FAILED unless it is already there."""
        if existing is not None:
            return ItemResult(name, mv.number, FAILED, reason)
        return record_failed(self.cairn, name, mv.number, mv.spec(), reason, **self._provenance(mv))

    @staticmethod
    def _provenance(mv: MlflowVersion) -> dict[str, Any]:
        return {"stage": mv.stage, "created_at": mv.created_at, "created_by": mv.created_by}

    @staticmethod
    def _imported_without_files(existing: ModelVersion, mv: MlflowVersion) -> bool:
        """Imported before from this MLflow version, with --no-files."""
        return (
            existing.status is VersionStatus.READY
            and not existing.files
            and existing.source == mv.source
            and existing.run_id == mv.run_id
        )

    def _same_origin(self, existing: ModelVersion, mv: MlflowVersion) -> bool:
        """Imported before from this very MLflow version (its files are immutable)."""
        return (
            existing.status is VersionStatus.READY
            and existing.source == mv.source
            and existing.run_id == mv.run_id
            and (bool(existing.files) or not self.files)
        )
