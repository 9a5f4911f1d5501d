"""The MLflow-compatible REST API: a second adapter over the same ``RegistryService``.

Routes live under ``/api/2.0/mlflow`` and, identically, ``/ajax-api/2.0/mlflow`` (what
MLflow's UI calls); the read-only artifact routes under ``/api/2.0/mlflow-artifacts``;
``server-info`` under ``/api/3.0/mlflow``. Webhooks are not served here. ``router`` holds
them all, the catch-all ``ENDPOINT_NOT_FOUND`` routes last.
"""

from __future__ import annotations

from fastapi import APIRouter

from cairn.api.mlflow import artifacts, routes_models, routes_server, routes_versions

__all__ = ["router"]

router = APIRouter()
for _root, _public in (("/api", True), ("/ajax-api", False)):
    for _part in (routes_models.router, routes_versions.router):
        router.include_router(_part, prefix=f"{_root}/2.0/mlflow", include_in_schema=_public)
    router.include_router(artifacts.router, prefix=f"{_root}/2.0", include_in_schema=_public)
    router.include_router(
        routes_server.info_router, prefix=f"{_root}/3.0/mlflow", include_in_schema=_public
    )
for _root in ("/api", "/ajax-api"):
    for _prefix in ("/2.0/mlflow", "/2.0/mlflow-artifacts", "/3.0/mlflow"):
        router.include_router(routes_server.unknown_router, prefix=f"{_root}{_prefix}")
