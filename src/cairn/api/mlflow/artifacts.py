"""The files of Cairn-owned versions, served the way MLflow's artifact proxy serves them.

A version pushed natively (``cairn push``) owns its files; ``get-download-uri`` answers for
it an ``http(s)://<host>/api/2.0/mlflow-artifacts/artifacts/cairn-models/<name>/<version>``
URI. MLflow's client reads such a URI with its HTTP artifact repository, whatever its
tracking URI is: a host-qualified ``mlflow-artifacts://`` URI would only work when the
tracking URI is itself an ``http(s)`` server, since the client borrows the scheme from it.
The two routes it uses are read-only: list one directory level of the manifest
(``GET …/artifacts?path=``) and stream one file (``GET …/artifacts/<path>``) through
``service.open_file``, which verifies whole files against their digest. Writes are refused.

Other versions answer their ``source`` verbatim, as MLflow does (``models:/m-…`` is resolved
by the client against its tracking server). A ``models:/NAME/VERSION`` source (what
``copy_model_version`` writes) is followed to the version it names, as MLflow resolves it to
that version's storage location.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from cairn.api.deps import Caller, Service, json
from cairn.api.downloads import DOWNLOAD_HEADERS
from cairn.api.errors import error_response
from cairn.api.lean import lean_router
from cairn.domain.models import Actor, ModelVersion
from cairn.domain.paths import validate_file_path
from cairn.domain.uris import parse_model_uri
from cairn.errors import InvalidParameter, NotFound
from cairn.service.registry import RegistryService

router = lean_router(tags=["mlflow"])

ROOT = "cairn-models"
ARTIFACTS_PATH = "/api/2.0/mlflow-artifacts/artifacts"
MAX_HOPS = 8  # models:/ sources followed before the last one is answered as it is
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def _base_url(request: Request) -> str:
    """The server as the client reached it; a malformed Host header is not echoed back."""
    host = request.headers.get("host", "")
    if not _HOST.fullmatch(host):
        server = request.scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    # the app's own root path (behind a proxy), not the one its MLflow mounts extended
    root = request.scope.get("app_root_path", request.scope.get("root_path", ""))
    return f"{request.url.scheme}://{host}{root}"


def files_uri(request: Request, version: ModelVersion) -> str:
    name = quote(version.name, safe="")
    return f"{_base_url(request)}{ARTIFACTS_PATH}/{ROOT}/{name}/{version.version}"


def download_uri(
    request: Request, service: RegistryService, actor: Actor, version: ModelVersion
) -> str:
    """Where MLflow's client finds the version's files (see the module docstring)."""
    current = version
    for _ in range(MAX_HOPS):
        if current.files:
            return files_uri(request, current)
        source = current.source or ""
        try:
            ref = parse_model_uri(source)
            current = service.resolve(actor, ref)
        except (InvalidParameter, NotFound):
            return source  # not a registry URI (or a dangling one): the client's to resolve
    # Answering the last models:/ URI would send the client round the same loop, forever.
    raise InvalidParameter(
        f"version {version.version} of {version.name!r} has no files, and its source leads "
        f"through more than {MAX_HOPS} models:/ URIs (a loop?); there is nothing to download"
    )


def _locate(path: str) -> tuple[str, str, str]:
    """``cairn-models/<name>/<version>[/<path>]`` → (name, version, path)."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or parts[0] != ROOT:
        raise NotFound(
            f"no artifact at {path!r}: Cairn serves MLflow artifacts only under "
            f"{ROOT}/<name>/<version>/, for versions pushed with `cairn push`"
        )
    # The client re-sends the name percent-encoded in ?path= (names never contain '%').
    return unquote(parts[1]), parts[2], parts[3].strip("/") if len(parts) == 4 else ""


@router.get("/mlflow-artifacts/artifacts")
def list_artifacts(service: Service, actor: Caller, path: str = "") -> JSONResponse:
    """One directory level of a version's manifest: ``{"files": [{path, is_dir, file_size}]}``."""
    name, version, folder = _locate(path)
    if folder:
        validate_file_path(folder)
    prefix = f"{folder}/" if folder else ""
    entries: dict[str, dict[str, Any]] = {}
    for entry in service.list_files(actor, name, version):
        if not entry.path.startswith(prefix):
            continue
        head, below, _ = entry.path[len(prefix) :].partition("/")
        if below:
            entries.setdefault(head, {"path": head, "is_dir": True})
        else:
            entries[head] = {"path": head, "is_dir": False, "file_size": entry.size}
    return json({"files": [entries[k] for k in sorted(entries)]} if entries else {})


@router.get("/mlflow-artifacts/artifacts/{path:path}", response_class=Response)
def download_artifact(path: str, service: Service, actor: Caller) -> Response:
    """One file's bytes, streamed and verified (a corrupt file ends the stream in error)."""
    name, version, file_path = _locate(path)
    opened = service.open_file(actor, name, version, file_path)
    return StreamingResponse(
        opened.chunks,
        media_type="application/octet-stream",
        headers={
            **DOWNLOAD_HEADERS,
            "Content-Length": str(opened.end - opened.start),
            "ETag": f'"{opened.entry.digest}"',
        },
    )


@router.api_route(
    "/mlflow-artifacts/{path:path}",
    methods=["PUT", "POST", "PATCH", "DELETE"],
    include_in_schema=False,
)
def refuse_artifact_writes(path: str) -> JSONResponse:
    response = error_response(
        405,
        "BAD_REQUEST",
        "Cairn serves MLflow artifacts read-only; upload a model's files with `cairn push` "
        "(or the native API), then register or load it through the MLflow client",
    )
    response.headers["Allow"] = "GET"
    return response
