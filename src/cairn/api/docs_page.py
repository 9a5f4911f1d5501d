"""``/docs``: the interactive API page, Swagger UI served by Cairn itself.

FastAPI's own page loads Swagger UI's script, style sheet and icon from a CDN: blank
where the server has no internet, and every visitor's browser tells a third party it
opened it. Here the files come from the ``fastapi-offline`` package (the Swagger UI
distribution, kept current), under ``/docs/``, and the page's start-up script is a file
too, so that the page's Content-Security-Policy allows nothing but this server:

- scripts and style sheets from ``'self'`` only, none inline;
- images from ``'self'`` and ``data:`` (Swagger UI's icons are ``data:`` URLs in its CSS);
- requests (the OpenAPI document, "Try it out") to ``'self'`` only;
- no frames, forms, plugins or ``<base>``.

The page and its files answer without credentials, like the OpenAPI document they show
(``auth.PUBLIC_PATHS``); "Authorize" takes a Cairn token (``bearer``), which Swagger UI
keeps in the page only (``persistAuthorization`` stays off). Cairn has no OAuth2 flow,
so FastAPI's ``/docs/oauth2-redirect`` page is not served.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

PAGE = "/docs"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# Swagger UI's start-up, a file of its own so that no inline script need be allowed. The
# OpenAPI document's URL comes from the page (it depends on the server's root path).
_START = b"""\
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
"""

_HTML = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
<link rel="icon" type="image/png" href="{root}/docs/favicon.png">
<link rel="stylesheet" href="{root}/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{root}{openapi_url}"></div>
<script src="{root}/docs/swagger-ui-bundle.js"></script>
<script src="{root}/docs/swagger-ui-start.js"></script>
</body>
</html>
"""


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _vendored(name: str) -> bytes:
    return files("fastapi_offline").joinpath("static", name).read_bytes()


_SOURCES = {
    "/docs/swagger-ui-bundle.js": ("text/javascript", _vendored),
    "/docs/swagger-ui.css": ("text/css", _vendored),
    "/docs/favicon.png": ("image/png", _vendored),
    "/docs/swagger-ui-start.js": ("text/javascript", lambda _name: _START),
}
# Every path this module serves, all without credentials (auth.PUBLIC_PATHS).
PATHS = (PAGE, *_SOURCES)


@cache
def _asset(path: str) -> Asset:
    """The file served at ``path``, read on first use (1.7 MB in all, kept for the
    process's life)."""
    media_type, read = _SOURCES[path]
    body = read(path.rsplit("/", 1)[1])
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def install(app: Starlette, *, title: str, openapi_url: str) -> None:
    """Serve the page and its files on ``app`` (GET and HEAD)."""

    async def page(request: Request) -> HTMLResponse:
        root = html.escape(request.scope.get("root_path", ""), quote=True)
        body = _HTML.format(
            title=html.escape(title), root=root, openapi_url=html.escape(openapi_url)
        )
        return HTMLResponse(body, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    app.add_route(PAGE, page, include_in_schema=False)
    for path in _SOURCES:
        app.add_route(path, _serve(path), include_in_schema=False)


def _serve(path: str) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of one file: revalidated on each use (``no-cache``), answered with a
    304 when the browser's copy is current."""

    async def serve(request: Request) -> Response:
        found = _asset(path)
        headers = {"ETag": found.etag, "Cache-Control": "no-cache"}
        tags = request.headers.get("if-none-match", "").split(",")
        held = {tag.strip().removeprefix("W/") for tag in tags}
        if found.etag in held or "*" in held:
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

    return serve
