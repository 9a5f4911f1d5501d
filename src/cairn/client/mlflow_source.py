"""The MLflow side of ``cairn import mlflow``: the registry read through the stock
``mlflow`` client (an optional dependency, imported only when an import runs).

Before anything is listed, ``MlflowSource.check`` sends one unretried request to each
MLflow server and fails at once, clearly, on a dead server (the stock client retries for
minutes), a 401/403 or a URI that serves no registry; a ``sqlite:`` URI must name an
existing database (the stock client would create an empty one). Every model and version
is checked against Cairn's rules as it is listed, so a refusal is said before anything is
written.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cairn.domain.models import Stage, VersionSpec
from cairn.domain.names import (
    MAX_DESCRIPTION_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    validate_model_name,
    validate_text,
)
from cairn.domain.validation import clean_spec, clean_tags
from cairn.errors import InvalidParameter, PermissionDenied, Unauthenticated, Unavailable

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


def one_line(exc: Exception, limit: int = 400) -> str:
    """MLflow's errors run over several lines (one block per file): one line, bounded."""
    text = " ".join(str(exc).replace("#####", " ").split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _root_cause(exc: BaseException) -> str:
    """The innermost error behind ``exc`` ("[Errno 111] Connection refused"), one line."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return one_line(exc) if isinstance(exc, Exception) else type(exc).__name__


def _refused(spec: VersionSpec) -> str | None:
    """Why Cairn would refuse a version's metadata, or None."""
    try:
        clean_spec(spec)
    except InvalidParameter as exc:
        return f"not importable: {exc.message}"
    return None


def _lookup_failed(exc: Exception) -> str:
    """Why MLflow did not return a model asked for by name: not found (a prompt is not
    found either), or the error that kept it from answering."""
    if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
        return f"not found in MLflow: {one_line(exc)}"
    return f"could not be read from MLflow: {one_line(exc)}"


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

    def has_files(self, name: str, version: int) -> bool | None:
        """Whether MLflow holds any file for the version (one listing, nothing downloaded);
        None if it cannot say."""
        try:
            uri = self._client.get_model_version_download_uri(name, str(version))
            listed = self._mlflow.artifacts.list_artifacts(
                artifact_uri=uri, tracking_uri=self.tracking_uri
            )
        except Exception:  # the download, if tried, says why
            return None
        return bool(listed)

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
