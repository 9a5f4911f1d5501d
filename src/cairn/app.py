"""``create_app(settings)``: builds the database, the service and the web application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import JSONResponse

from cairn import __version__
from cairn.api.errors import error_response, install_error_handlers
from cairn.api.middleware import install_hardening
from cairn.api.mlflow import router as mlflow_router
from cairn.api.v1 import aliases, artifacts, models, versions
from cairn.api.v1 import portability as portability_api
from cairn.errors import CairnError
from cairn.service.factory import build_service
from cairn.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    service = build_service(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.db.dispose()

    app = FastAPI(
        title="Cairn",
        version=__version__,
        summary="A model registry: versioned, verified, auditable models.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    install_error_handlers(app)
    for router in (models.router, versions.router, aliases.router, artifacts.router):
        app.include_router(router, prefix="/api/v1")
    app.include_router(mlflow_router)  # /api/2.0/mlflow, /ajax-api/2.0/mlflow, mlflow-artifacts
    app.include_router(portability_api.router, prefix="/api/v1")

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"])
    def ready() -> JSONResponse:
        """Ready: the metadata database answers."""
        try:
            service.ping()
        except CairnError as exc:
            return error_response(503, exc.error_code, exc.message)
        return JSONResponse({"status": "ready"})

    install_hardening(
        app,
        max_request_bytes=settings.max_request_bytes,
        allowed_hosts=settings.resolved_allowed_hosts(),
        cors_origins=settings.cors_origins,
    )
    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings come from ``CAIRN_*`` variables."""
    return create_app(Settings())
