"""``server-info`` and the answer for every MLflow endpoint Cairn does not serve.

An unknown path under an MLflow prefix answers a JSON ``ENDPOINT_NOT_FOUND`` (404): MLflow's
client falls back from POST to GET ``get-latest-versions`` only on that code, and a user who
points MLflow's *tracking* URI at Cairn reads why their call failed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from cairn.api.deps import json
from cairn.api.errors import error_response

info_router = APIRouter(tags=["mlflow"])
unknown_router = APIRouter(include_in_schema=False)

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@info_router.get("/server-info")
def server_info() -> JSONResponse:
    """What MLflow's client probes before multipart transfers and workspace calls."""
    return json(
        {
            "workspaces_enabled": False,
            "multipart_uploads_enabled": False,
            "multipart_downloads_enabled": False,
        }
    )


@unknown_router.api_route("/{path:path}", methods=ALL_METHODS)
def unknown_endpoint(request: Request, path: str) -> JSONResponse:
    return error_response(
        404,
        "ENDPOINT_NOT_FOUND",
        f"{request.method} {request.url.path} is not an endpoint of Cairn's MLflow-compatible "
        "API, which serves MLflow's model registry (registered-models/*, model-versions/*) "
        "and read-only mlflow-artifacts for Cairn-owned versions; MLflow tracking (runs, "
        "experiments, logged models) stays on an MLflow tracking server",
    )
