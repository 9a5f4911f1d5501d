"""The docs follow the code: a setting, an error code, a route or a CLI command that the
docs do not show is a failing test."""

from __future__ import annotations

import importlib.util
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import typer.core
import typer.main

from cairn.api.errors import _HTTP_CODES
from cairn.app import create_app
from cairn.cli.main import app as cli_app
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


# -- every `cairn …` command the docs show is one the CLI accepts -----------------------------

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_SHELL = {"console", "sh", "shell", "bash"}


def _documented_commands() -> Iterator[tuple[str, str]]:
    """(where, command line) for each ``cairn`` call in a shell block of README and docs/:
    a ``$ `` line of a console block (continued by a trailing backslash), or any line of an
    sh block; inside pipes, ``$(…)``, ``&&`` and after ``VAR=``."""
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for fence in _FENCE.finditer(doc.read_text()):
            if fence.group(1) not in _SHELL:
                continue
            prompt = fence.group(1) == "console"
            lines = iter(fence.group(2).splitlines())
            for line in lines:
                if prompt and not line.startswith("$ "):
                    continue
                while line.endswith("\\"):
                    line = line[:-1] + next(lines, "")
                lexer = shlex.shlex(line.removeprefix("$ "), posix=True, punctuation_chars=True)
                lexer.whitespace_split = True
                words: list[str] = []
                for word in [*lexer, ";"]:  # split at | && ; ( ) and $(
                    if word.strip("|&;()"):
                        words.append(word)
                        continue
                    while words and re.fullmatch(r"\w+=.*", words[0]):
                        words = words[1:]
                    if words[:1] == ["cairn"]:
                        yield doc.name, shlex.join(words)
                    words = []


def _parse(args: list[str]) -> None:
    """Parse like ``cairn ARGS`` down to the last sub-command, running nothing: Click's
    usage error (a missing argument, an unknown option or command) propagates."""
    command = typer.main.get_command(cli_app)
    ctx = command.make_context("cairn", args)
    while isinstance(command, typer.core.TyperGroup):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, sub, rest = command.resolve_command(ctx, rest)
        assert name is not None and sub is not None
        command, ctx = sub, sub.make_context(name, rest, parent=ctx)


@pytest.mark.parametrize(("doc", "line"), sorted(set(_documented_commands())))
def test_documented_commands_parse(doc: str, line: str) -> None:
    _parse(shlex.split(line)[1:])


_SPAN = re.compile(r"`(cairn [^`]+)`")


def _mentioned_commands() -> Iterator[tuple[str, str]]:
    """(where, text) for each ```cairn …``` code span in the prose of README and docs/ but
    the generated CLI page: often a reference (``cairn pull --include PATTERN``), not a
    whole command."""
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        if doc != CLI_DOC:
            prose = _FENCE.sub("", doc.read_text())
            yield from ((doc.name, span) for span in _SPAN.findall(prose))


def _check_reference(args: list[str]) -> None:
    """The sub-commands named exist and so does every ``--option`` (on the command or a
    parent); arguments and values may be placeholders."""
    command = typer.main.get_command(cli_app)
    chain = [command]
    words = iter(args)
    for word in words:
        if word.startswith("-"):
            name = word.split("=")[0].strip("[]")
            known = [p for c in chain for p in c.params if name in (*p.opts, *p.secondary_opts)]
            assert known, f"no option {name} on `{' '.join(c.name or '' for c in chain)}`"
            if not getattr(known[0], "is_flag", False) and "=" not in word:
                next(words, None)  # its value
        elif isinstance(command, typer.core.TyperGroup):  # Click's UsageError if none
            ctx = command.make_context(command.name or "cairn", [], resilient_parsing=True)
            _, found, _ = command.resolve_command(ctx, [word])
            assert found is not None
            command = found
            chain.append(command)


@pytest.mark.parametrize(("doc", "span"), sorted(set(_mentioned_commands())))
def test_mentioned_commands_exist(doc: str, span: str) -> None:
    _check_reference(shlex.split(span.replace("…", ""))[1:])  # `cairn --uri ./dir …`


def test_documented_commands_are_found() -> None:
    found = {line for _, line in _documented_commands()}
    assert len(found) > 60
    assert len(set(_mentioned_commands())) > 70
    assert "cairn --uri ./cairn-data gc" in found  # a console line
    assert any(line.endswith("--require-compatible") for line in found)  # a continued line
    assert any(line.startswith("cairn -q tokens create") for line in found)  # in TOKEN=$(…)


def test_every_route_the_api_doc_names_is_served(tmp_path: Path) -> None:
    """The other way round: each ``METHOD /path`` docs/api.md names is a route of the app,
    spelt as the OpenAPI document spells it (its parameter names too); a concrete path
    (an example) must match one. ``/docs`` and the document itself are served outside it."""
    app = create_app(Settings(data_dir=tmp_path, backend_uri=None, artifacts_uri=None))
    try:
        paths = app.openapi()["paths"]
    finally:
        app.state.service.db.dispose()
    served = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    served |= {("GET", "/docs"), ("GET", "/api/v1/openapi.json")}
    patterns = [
        (method, re.compile(re.sub(r"\\\{[^}]*\\\}", "[^/]+(/[^/]+)*", re.escape(path))))
        for method, path in served
    ]
    named = re.findall(
        r"`(GET|HEAD|POST|PUT|PATCH|DELETE) (/[^`?\s]*)", API_DOC.read_text(encoding="utf-8")
    )
    assert len(named) > 30, "the doc's routes were not found"
    wrong = sorted(
        f"{method} {path}"
        for method, path in set(named)
        if (
            (method, path) not in served
            if "{" in path
            else not any(m == method and p.fullmatch(path) for m, p in patterns)
        )
    )
    assert not wrong, f"docs/api.md names routes the app does not serve: {wrong}"
