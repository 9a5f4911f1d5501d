"""The MLflow-compatible REST API: a second adapter over the same ``RegistryService``.

Routes live under ``/api/2.0/mlflow`` and, identically, ``/ajax-api/2.0/mlflow`` (what
MLflow's UI calls); the read-only artifact routes under ``/api/2.0/mlflow-artifacts``;
``server-info`` under ``/api/3.0/mlflow``. Webhooks are not served here.

``mounts()`` is how the app serves them: one Starlette ``Mount`` per prefix, placed before
every other route, so that a request is matched against the routes of its own API only.
(FastAPI matches included routers one route at a time, every router in turn: an MLflow
request used to be tried against each native route first, about a third of the CPU a
cheap MLflow call took.) ``documented`` holds the same routes under their full paths, for
the OpenAPI document only (a ``Mount`` is not in it). In both, the catch-all
``ENDPOINT_NOT_FOUND`` routes come last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from starlette.routing import Mount

from cairn.api.mlflow import artifacts, routes_models, routes_server, routes_versions

__all__ = ["documented", "mounts", "routed"]

ROOTS = ("/api", "/ajax-api")


# Under ``<root>/2.0``, before the catch-alls, in the order they are matched.
_V2_PARTS = (
    ("/mlflow", routes_models.router),
    ("/mlflow", routes_versions.router),
    ("", artifacts.router),
)


def _v2(dependencies: Sequence[Any]) -> APIRouter:
    """Everything under ``<root>/2.0``: the registry, the artifact routes, the catch-alls."""
    router = APIRouter(dependencies=list(dependencies))
    for prefix, part in _V2_PARTS:
        router.include_router(part, prefix=prefix)
    for prefix in ("/mlflow", "/mlflow-artifacts"):
        router.include_router(routes_server.unknown_router, prefix=prefix)
    return router


def _v3(dependencies: Sequence[Any]) -> APIRouter:
    """Everything under ``<root>/3.0/mlflow``."""
    router = APIRouter(dependencies=list(dependencies))
    router.include_router(routes_server.info_router)
    router.include_router(routes_server.unknown_router)
    return router


def mounts(dependencies: Sequence[Any]) -> list[Mount]:
    v2, v3 = _v2(dependencies), _v3(dependencies)
    found = []
    for root in ROOTS:
        found += [Mount(f"{root}/2.0", app=v2), Mount(f"{root}/3.0/mlflow", app=v3)]
    return found


def routed() -> list[tuple[str, APIRouter]]:
    """The routers the mounts serve ahead of their catch-alls, each with its full path
    prefix, in the order they are matched (for ``api/fastlane.py``)."""
    return [(f"{root}/2.0{prefix}", part) for root in ROOTS for prefix, part in _V2_PARTS]


def _documented() -> APIRouter:
    """The served routers again, under their full paths (the catch-alls are left out of
    the schema by their own router)."""
    router = APIRouter()
    for root, public in zip(ROOTS, (True, False), strict=True):
        router.include_router(_v2(()), prefix=f"{root}/2.0", include_in_schema=public)
        router.include_router(_v3(()), prefix=f"{root}/3.0/mlflow", include_in_schema=public)
    return router


documented = _documented()
