"""The UI's route sweep, as tests/security/test_routes.py is the API's: every UI route of
the real app, found by enumerating ``app.routes``, is called without a session (a redirect
to sign in, except the few public ones) and by a signed-in user holding no grant (refused
alike whether the model exists or not: names do not leak through the pages either)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from cairn.ui.web import UiRoute

from .conftest import PASSWORD, V1, World, ok, sign_in

# every GET answers HEAD too (browsers and link checkers send it)
PUBLIC = {
    *((method, path) for path in ("/", "/login", "/static/{file}") for method in ("GET", "HEAD")),
    ("POST", "/login"),
}
PAGES = {
    (method, path)
    for path in (
        "/models",
        "/models/{name}",
        "/models/{name}/versions/{version}",
        "/models/{name}/aliases/{alias}",
        "/versions",
        "/deployments",
        "/deployments/{name}",
    )
    for method in ("GET", "HEAD")
}
FORMS = {("POST", "/logout")}
# pages that list what the caller may read: for a user without grants, nothing
LISTS = {"/models", "/versions", "/deployments"}


def ui_routes(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for rc in iter_route_contexts(app.routes):
        if isinstance(rc.original_route, UiRoute):
            found |= {(method, str(rc.path)) for method in rc.methods or ()}
    return found


def url(path: str, model: str) -> str:
    values = {"name": model, "version": "1", "alias": "champion", "file": "cairn.css"}
    for key, value in values.items():
        path = path.replace(f"{{{key}}}", quote(value, safe=""))
    return path


def test_every_ui_route_is_known(app: FastAPI) -> None:
    """A new page must be added here, deliberately, and so swept below."""
    assert ui_routes(app) == PUBLIC | PAGES | FORMS


def test_without_a_session_every_page_redirects_to_sign_in(
    app: FastAPI, visitor: TestClient, world: World
) -> None:
    for method, path in sorted(PAGES | FORMS):
        answer = visitor.request(method, url(path, world.model), data={"csrf_token": "x"})
        assert answer.status_code == 303, (method, path, answer.status_code, answer.text)
        assert answer.headers["location"].startswith("/login"), (method, path)
        if method in ("GET", "HEAD"):  # and back to the page after signing in
            assert answer.headers["location"].startswith("/login?next=%2F"), (method, path)
    for method, path in sorted(PUBLIC - {("POST", "/login")}):
        answer = visitor.request(method, url(path, world.model))
        assert answer.status_code in (200, 303), (method, path, answer.status_code)
        assert not answer.headers.get("location", "").startswith("/login"), (method, path)


def test_a_user_without_grants_is_refused_alike_for_real_and_ghost_models(
    api: TestClient, visitor: TestClient, world: World
) -> None:
    ok(api.post(f"{V1}/users", json={"name": "nobody", "password": PASSWORD}), 201)
    assert sign_in(visitor, "nobody").status_code == 303
    ghost = "vault.ghost"
    for method, path in sorted(PAGES):
        real: Any = visitor.request(method, url(path, world.model))
        missing: Any = visitor.request(method, url(path, ghost))
        if path in LISTS:
            assert real.status_code == 200, (path, real.text)
            assert world.model not in real.text and world.hidden not in real.text, path
            continue
        assert real.status_code == missing.status_code == 404, (path, real.status_code)
        swapped = missing.text.replace(ghost, world.model)
        assert real.text == swapped, path
