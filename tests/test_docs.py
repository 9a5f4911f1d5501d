"""The docs follow the code: a setting, an error code, a route or a CLI command that the
docs do not show is a failing test."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from cairn.api.errors import _HTTP_CODES
from cairn.app import create_app
from cairn.errors import CairnError
from cairn.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
API_DOC = ROOT / "docs" / "api.md"
CLI_DOC = ROOT / "docs" / "cli.md"
GENERATOR = ROOT / "scripts" / "gen_cli_docs.py"

# Status codes the HTTP exception handler gives to errors that are not CairnErrors.
HANDLER_STATUSES = {"ENDPOINT_NOT_FOUND": 404, "BAD_REQUEST": 415}


def _error_classes(cls: type[CairnError] = CairnError) -> Iterator[type[CairnError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _error_classes(sub)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _normalise(path: str) -> str:
    """``/models/{name}/files/{path:path}`` → ``/models/{}/files/{}``."""
    return re.sub(r"\{[^}]*\}", "{}", path)


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme(field: str) -> None:
    variable = f"CAIRN_{field.upper()}"
    assert variable in README.read_text(encoding="utf-8"), f"README.md does not mention {variable}"


@pytest.mark.parametrize(
    ("code", "status"),
    sorted(
        {(cls.error_code, cls.http_status) for cls in _error_classes()}
        | set(HANDLER_STATUSES.items())
    ),
)
def test_every_error_code_is_in_the_api_doc_with_its_status(code: str, status: int) -> None:
    lines = API_DOC.read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if line.startswith(f"| `{code}` |")]
    assert rows, f"docs/api.md has no row for error code {code}"
    assert any(re.search(rf"\b{status}\b", row) for row in rows), (
        f"docs/api.md names {code} but not with HTTP status {status}"
    )


def test_handler_codes_are_the_ones_listed_here() -> None:
    assert set(_HTTP_CODES.values()) - {"REQUEST_LIMIT_EXCEEDED"} == set(HANDLER_STATUSES)


def test_cli_doc_is_the_generated_help() -> None:
    expected = _generator().render()
    actual = CLI_DOC.read_text(encoding="utf-8")
    assert actual == expected, (
        "docs/cli.md is out of date: run .venv/bin/python scripts/gen_cli_docs.py > docs/cli.md"
    )


def test_every_api_route_is_in_the_api_doc(tmp_path: Path) -> None:
    """Routes as the app's OpenAPI document lists them (FastAPI nests included routers in
    ``app.routes``; the document is the public, flat view of the same routes)."""
    app = create_app(Settings(data_dir=tmp_path, backend_uri=None, artifacts_uri=None))
    try:
        paths = app.openapi()["paths"]
    finally:
        app.state.service.db.dispose()
    routes = {
        f"{method.upper()} {_normalise(path)}"
        for path, operations in paths.items()
        if path.startswith("/api/v1/") or path in ("/health", "/ready")
        for method in operations
    }
    assert len(routes) > 30, "the app's routes were not found"
    documented = _normalise(API_DOC.read_text(encoding="utf-8"))
    missing = sorted(r for r in routes if f"`{r}`" not in documented)
    assert not missing, f"docs/api.md does not document {missing}"


def test_openapi_document_is_where_the_api_doc_says(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, backend_uri=None, artifacts_uri=None))
    try:
        assert app.openapi_url == "/api/v1/openapi.json"
    finally:
        app.state.service.db.dispose()
    assert "/api/v1/openapi.json" in API_DOC.read_text(encoding="utf-8")
