"""The OpenAPI document (``/api/v1/openapi.json``, rendered at ``/docs``).

FastAPI's generated document would promise two things Cairn does not do: a ``422`` with
FastAPI's validation body on every operation (Cairn answers ``400`` with its own error
body, ``api/errors.py``), and no authentication at all. ``build`` generates the document
and corrects it: each operation lists the errors it can answer, all in the one
``Error`` shape, and each operation that needs a caller says how to be one (a bearer
token, or HTTP Basic with the token as password for MLflow clients), so that ``/docs``
offers "Authorize" and client generators see the real contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

from cairn.api.auth import PUBLIC_PATHS
from cairn.domain.names import ALIAS_PATTERN, MAX_ALIAS_LENGTH
from cairn.domain.uris import MAX_VERSION

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {
        "error_code": {
            "type": "string",
            "description": "MLflow's error code, e.g. INVALID_PARAMETER_VALUE, "
            "RESOURCE_DOES_NOT_EXIST, RESOURCE_CONFLICT, PERMISSION_DENIED.",
        },
        "message": {"type": "string", "description": "What went wrong, for a person."},
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A Cairn token (`cairn tokens create`, or the admin token).",
    },
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "Any user name and a Cairn token as the password "
        "(MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD).",
    },
}

_ERRORS = {
    "400": "Invalid request: a malformed body or filter, an unknown field, a bad name or value.",
    "401": "No valid credentials (`WWW-Authenticate: Bearer`).",
    "403": "The caller's role does not allow this, or the version is quarantined.",
    "404": "No such model, version, alias or resource.",
    "409": "A conflict with the current state (an alias moved meanwhile, a version not READY).",
    "413": "The request body is larger than the server accepts.",
    "415": "The body is not of the media type this operation reads.",
    "429": "Too many failed authentications from this address (`Retry-After`).",
    "500": "`DATA_LOSS`: the file's stored bytes are missing or no longer match its digest.",
    "503": "`TEMPORARILY_UNAVAILABLE`: the metadata database (or the blob store) stayed busy, "
    "cannot be reached or takes no writes (read-only); send the request again after "
    "`Retry-After` seconds.",
}
_RETRY_AFTER = {
    "description": "Seconds to wait before sending the request again.",
    "schema": {"type": "integer", "minimum": 1},
}
# the statuses whose answers always carry a Retry-After (``api/errors.py``)
_HEADERS: dict[str, dict[str, Any]] = {
    "429": {"Retry-After": _RETRY_AFTER},
    "503": {"Retry-After": _RETRY_AFTER},
}
_PROBES = ("/health", "/ready")
# The operations that read a file's stored bytes, or check them first (DownloadsService):
# an archive's members are read once its answer has started, so it is cut short instead.
_FILE_READS = {
    ("get", "/api/v1/models/{name}/versions/{version}/files/{path}"),
    ("head", "/api/v1/models/{name}/versions/{version}/files/{path}"),
    ("post", "/api/v1/models/{name}/versions/{version}/files"),
    ("post", "/api/v1/models/{name}/versions/{version}/urls"),
    ("get", "/api/2.0/mlflow-artifacts/artifacts/{path}"),
}
# Path parameters the routes take as text, to word their own errors, documented as what
# they accept (domain/uris.py, domain/names.py).
_PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "version": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
    "alias": {"type": "string", "pattern": f"^{ALIAS_PATTERN}$", "maxLength": MAX_ALIAS_LENGTH},
}
_BODYLESS = {"get", "head", "delete"}


def build(title: str, version: str, summary: str, routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The corrected document of ``routes``: the operations on ``PUBLIC_PATHS`` take no
    caller, every other one needs one."""
    document = get_openapi(title=title, version=version, summary=summary, routes=list(routes))
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            _correct(path, method, operation)
    return document


def _correct(path: str, method: str, operation: dict[str, Any]) -> None:
    """Says who may call ``operation``, what it accepts and which errors it answers."""
    caller = path not in PUBLIC_PATHS
    if caller:
        operation["security"] = [{"bearer": []}, {"basic": []}]
    for parameter in operation.get("parameters", ()):
        if parameter["in"] == "path" and parameter["name"] in _PATH_PARAMETERS:
            label = parameter["schema"].get("title")
            parameter["schema"] = {"title": label, **_PATH_PARAMETERS[parameter["name"]]}
    responses = operation["responses"]
    responses.pop("422", None)
    for status in _statuses(path, method, caller):
        responses.setdefault(status, _error(status))


def _statuses(path: str, method: str, caller: bool) -> list[str]:
    if path in _PROBES:
        return ["503"] if path == "/ready" else []
    statuses = ["400", "404", "503"]  # every operation reads the database
    if (method, path) in _FILE_READS:
        statuses.append("500")
    if caller:
        statuses += ["401", "403", "429"]
    else:  # logging in
        statuses += ["401", "429"]
    if method not in _BODYLESS:
        statuses += ["409", "413", "415"]
    return sorted(statuses)


def _error(status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _ERRORS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response
