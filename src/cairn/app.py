"""``create_app(settings)``: builds the database, the service and the web application."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from cairn import __version__
from cairn.api import docs_page, mlflow, openapi
from cairn.api.auth import AUTHENTICATED, RateLimiter
from cairn.api.errors import cairn_error_response, http_error_response, install_error_handlers
from cairn.api.fastlane import FastLane
from cairn.api.middleware import install_hardening
from cairn.api.offload import InFlight
from cairn.api.v1 import (
    aliases,
    artifacts,
    audit,
    deployments,
    identity,
    lineage,
    models,
    portability,
    promotions,
    scans,
    signatures,
    versions,
    webhooks,
)
from cairn.domain.access import SYSTEM
from cairn.domain.tokens import ADMIN_TOKEN_FILE
from cairn.errors import AlreadyExists, CairnError
from cairn.service.factory import build_service
from cairn.service.registry import RegistryService
from cairn.service.webhook_delivery import Dispatcher
from cairn.settings import Settings
from cairn.ui import router as ui_router
from cairn.ui.web import not_found_page, wants_page

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    service = build_service(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.db.compile_statements()  # not on the first request of each kind
        # What start-up built (routes, schemas, compiled statements) lives as long as the
        # process: keep it out of the collector's full passes, which otherwise walk it all
        # and pause the worker for tens to hundreds of milliseconds under load.
        gc.collect()
        gc.freeze()
        dispatcher = webhook_dispatcher(service, settings)
        yield
        if dispatcher is not None:
            dispatcher.stop()
        service.db.dispose()

    app = FastAPI(
        title="Cairn",
        version=__version__,
        summary="A model registry: versioned, verified, auditable models.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served by docs_page, without a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    app.state.limiter = RateLimiter(settings.auth_failures_per_minute, 60.0)
    ensure_admin(service, settings)
    seal_secrets_in_the_clear(service)
    install_error_handlers(app)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: StarletteHTTPException) -> Response:
        """No route: a page for a browser outside the APIs, Cairn's JSON error otherwise."""
        if wants_page(request):
            return await run_in_threadpool(not_found_page, request)
        return await http_error_response(request, exc)

    # Probes first: routes are matched in order, and probes come often.
    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"])
    def ready() -> JSONResponse:
        """Ready: the metadata database and the blob store answer and take writes."""
        try:
            service.ping()
        except CairnError as exc:
            return cairn_error_response(exc, 503)
        return JSONResponse({"status": "ready"})

    # Every router but login's requires a caller (tests/security/test_routes.py sweeps them).
    # Routers are tried in order, each one skipped costing some 8 µs here: the busiest
    # first (get by alias and the searches, then creates, then transfers).
    routers = (
        aliases.router,
        versions.router,
        models.router,
        artifacts.router,
        portability.router,
        identity.router,
        audit.router,
        signatures.router,
        promotions.router,
        scans.router,
        webhooks.router,
        lineage.router,
        deployments.router,
    )
    for router in routers:
        app.include_router(router, prefix="/api/v1", dependencies=AUTHENTICATED)
    app.include_router(identity.public, prefix="/api/v1")
    docs_page.install(app, title=f"{app.title} API", openapi_url=app.openapi_url or "")
    # /api/2.0/mlflow, /ajax-api/2.0/mlflow, mlflow-artifacts, /api/3.0/mlflow: matched
    # first, by prefix (api/mlflow/__init__.py)
    app.router.routes[:0] = mlflow.mounts(AUTHENTICATED)
    # the web UI at /: its own sign-in (a redirect, not a 401), after every API route
    app.include_router(ui_router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    # innermost: plan routes skip FastAPI's routing (api/fastlane.py)
    app.add_middleware(FastLane, routers=[*mlflow.routed(), *(("/api/v1", r) for r in routers)])
    install_hardening(
        app,
        max_request_bytes=settings.max_request_bytes,
        allowed_hosts=settings.resolved_allowed_hosts(),
        cors_origins=settings.cors_origins,
    )
    app.add_middleware(InFlight)  # outermost: counts every request (api/offload.py)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The document of the app's routes and of the MLflow routes its mounts serve."""
    if app.openapi_schema is None:
        app.openapi_schema = openapi.build(
            app.title, app.version, app.summary or "", [*app.routes, *mlflow.documented.routes]
        )
    return app.openapi_schema


def ensure_admin(service: RegistryService, settings: Settings) -> Path | None:
    """First start on an empty registry: create ``admin`` and hand its token over.

    The token is ``CAIRN_BOOTSTRAP_TOKEN`` when set; otherwise a new one, written to
    ``<data-dir>/admin.token`` (mode 0600), which local CLI and SDK calls pick up.
    """
    given = settings.bootstrap_token.get_secret_value() if settings.bootstrap_token else None
    try:
        token = service.bootstrap(given)
    except AlreadyExists:  # another worker bootstrapped at the same moment
        return None
    if token is None or given is not None:
        return None
    path = settings.data_dir / ADMIN_TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{ADMIN_TOKEN_FILE}.{os.getpid()}")
    tmp.unlink(missing_ok=True)  # a stale file would keep its own, maybe looser, mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def seal_secrets_in_the_clear(service: RegistryService) -> int:
    """Seal the webhook secrets a Cairn before sealing stored in the clear; how many (one
    read when there are none, and no key loaded). Every worker runs it at start; the first
    does the work. A failure (no usable key) leaves those secrets working as they are."""
    try:
        return service.seal_webhook_secrets_in_the_clear(SYSTEM)
    except CairnError as exc:
        log.warning("webhook secrets stored in the clear were not sealed: %s", exc.message)
        return 0


def webhook_dispatcher(service: RegistryService, settings: Settings) -> Dispatcher | None:
    """This process's webhook dispatcher, started (None when ``CAIRN_WEBHOOKS=false``)."""
    if not settings.webhooks:
        return None
    dispatcher = Dispatcher(
        service.db,
        keyring=service.keyring,
        allow_private=settings.webhook_allow_private,
        max_attempts=settings.webhook_max_attempts,
        timeout_s=settings.webhook_timeout_s,
    )
    dispatcher.start()
    return dispatcher


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings come from ``CAIRN_*`` variables."""
    return create_app(Settings())


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How ``cairn server`` runs uvicorn, besides where it listens."""
    return {
        "log_level": "warning",
        "access_log": False,
        "timeout_keep_alive": 30,
        # X-Forwarded-For/-Proto only from the proxies named: uvicorn's own default believes
        # them from 127.0.0.1, i.e. from any local process (rate limits and the audit log
        # key on the client's address)
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies) or None,
    }


# What ``cairn server`` execs into once it has checked the settings and migrated: a fresh
# interpreter holding only uvicorn and the app, not the command line's libraries or the
# migration's. ``-P``: no current folder on the import path (a ``cairn.py`` there would
# be imported in Cairn's place).
SERVE_COMMAND = ("-P", "-c", "from cairn.app import serve; serve()")


def serve() -> None:
    """Run uvicorn on the app with the settings ``cairn server`` left in ``CAIRN_*``."""
    import uvicorn

    settings = Settings()
    uvicorn.run(
        "cairn.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        **uvicorn_options(settings),
    )
