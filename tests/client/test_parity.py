"""``cairn.Client(uri)`` keeps one promise: over HTTP and in-process on a directory, the
same call gives the same answer or raises the same ``cairn.errors`` exception (class,
``error_code`` and message).

Each scenario runs twice, on two fresh registries of the same database backend: once
through ``HttpClient`` against the real app, once through ``LocalClient``. What the two
return, or raise, is then compared, after what must differ is set aside: the caller
(the HTTP client is the ``admin`` user, the local one ``local:<login>``) and the clock.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cairn.app import create_app
from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.client.local import LocalClient
from cairn.errors import CairnError
from cairn.settings import Settings

ADMIN_TOKEN = "cairn-test-admin-token-0123456789abcdefghij"  # as in tests/conftest.py
ME = "<caller>"
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)")
Scenario = Callable[[BaseClient], Any]


@pytest.fixture
def registry(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    reset_postgres: Callable[[str], None],
) -> Callable[[str], Any]:
    """``registry(mode)``: a context giving the SDK of ``mode`` on a registry of its own."""

    @contextmanager
    def open_registry(mode: str) -> Iterator[BaseClient]:
        root = tmp_path / mode
        root.mkdir()
        if backend == "sqlite":
            shutil.copy(request.getfixturevalue("sqlite_template"), root / "cairn.db")
            url = f"sqlite:///{root / 'cairn.db'}"
        else:
            url = request.getfixturevalue("postgres_url")
            reset_postgres(url)
        settings = Settings(
            data_dir=root / "data",
            backend_uri=url,
            artifacts_uri=str(root / "blobs"),
            allowed_hosts=["testserver"],
            bootstrap_token=ADMIN_TOKEN,
        )
        if mode == "local":
            local = LocalClient(
                settings.data_dir, backend_uri=url, artifacts_uri=str(root / "blobs")
            )
            try:
                yield local
            finally:
                local.close()
            return
        app = create_app(settings)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with TestClient(app, raise_server_exceptions=False, headers=headers) as test_client:
            http = HttpClient("http://testserver", http_client=test_client)
            try:
                yield http
            finally:
                http.close()
        app.state.service.db.dispose()

    return open_registry


def _plain(value: Any, me: str) -> Any:
    """``value`` as plain data to compare: the caller's name as ``ME``, times as whether
    they carry a zone (both modes answer aware UTC times)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return (type(value).__name__, _plain(fields, me))
    if isinstance(value, enum.Enum):
        return (type(value).__name__, value.value)
    if isinstance(value, datetime):
        return ("datetime", value.utcoffset())
    if isinstance(value, dict):
        return {_plain(k, me): _plain(v, me) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, me) for v in value]
    if isinstance(value, str):
        if value == me:
            return ME
        if _TIMESTAMP.fullmatch(value):
            return "<time>"
        return _mine(value, me)
    return value


def _mine(text: str, me: str) -> str:
    """``text`` with the caller's name, as a word of its own, written ``ME``."""
    return re.sub(rf"(?<!\w){re.escape(me)}(?!\w)", ME, text)


def _outcome(client: BaseClient, scenario: Scenario) -> Any:
    me = "admin" if isinstance(client, HttpClient) else str(client.whoami()["user"])
    try:
        return ("returned", _plain(scenario(client), me))
    except CairnError as exc:
        return ("raised", type(exc).__name__, exc.error_code, _mine(exc.message, me))
    except Exception as exc:  # not a Cairn error: a leak in either mode
        return ("LEAKED", type(exc).__name__, str(exc))


def _run_both(registry: Callable[[str], Any], scenario: Scenario) -> tuple[Any, Any]:
    with registry("http") as http:
        over_http = _outcome(http, scenario)
    with registry("local") as local:
        in_process = _outcome(local, scenario)
    return over_http, in_process


# -- the scenarios: set up with good calls, end with the one under test -------------------


def _model(c: BaseClient, name: str = "m", versions: int = 1) -> None:
    c.create_model(name, description="d", tags={"team": "risk"})
    for _ in range(versions):
        c.create_version(name, metrics={"auc": 0.9}, params={"lr": "0.1"})


def _then(setup: Callable[[BaseClient], Any], call: Scenario) -> Scenario:
    def scenario(c: BaseClient) -> Any:
        setup(c)
        return call(c)

    return scenario


def _deleted(c: BaseClient) -> None:
    _model(c, versions=2)
    c.delete_model("m")


def _two(c: BaseClient) -> None:
    _model(c, versions=2)


def _deployed(c: BaseClient) -> None:
    """Model m with two versions; deployment d served version 1, then 2 (now)."""
    _two(c)
    c.set_deployment("d", "models:/m/1", environment="prod")
    c.set_deployment("d", "models:/m/2")


def _point(key: str, value: float) -> dict[str, Any]:
    return {"key": key, "value": value, "timestamp": datetime.now(UTC)}


def _folder() -> Path:
    """A small model folder: a config and two weight shards."""
    src = Path(tempfile.mkdtemp(prefix="parity-src-"))
    (src / "weights").mkdir()
    (src / "config.json").write_text('{"layers": 2}')
    for i in range(2):
        (src / "weights" / f"{i}.bin").write_bytes(bytes([i]) * 1000)
    return src


def _pushed(c: BaseClient) -> None:
    c.create_model("m")
    c.push(_folder(), name="m", alias="prod", metrics={"auc": 0.9})


def _pulled(c: BaseClient, uri: str, **options: Any) -> Any:
    out = Path(tempfile.mkdtemp(prefix="parity-out-")) / "out"
    folder = c.pull(uri, out, **options)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


SCENARIOS: dict[str, Scenario] = {
    # registered models
    "create_model": lambda c: c.create_model("m", description="d", tags={"a": "1"}),
    "create_model twice": _then(_two, lambda c: c.create_model("M")),
    "create_model bad name": lambda c: c.create_model("bad/name"),
    "create_model empty name": lambda c: c.create_model(""),
    "create_model None name": lambda c: c.create_model(None),  # type: ignore[arg-type]
    "create_model int name": lambda c: c.create_model(5),  # type: ignore[arg-type]
    "create_model tags not str": lambda c: c.create_model("m", tags={"a": 1}),  # type: ignore[dict-item]
    "create_model description None": lambda c: c.create_model("m", description=None),  # type: ignore[arg-type]
    "get_model": _then(_two, lambda c: c.get_model("m")),
    "get_model unknown": lambda c: c.get_model("ghost"),
    "get_model deleted": _then(_deleted, lambda c: c.get_model("m")),
    "get_model empty": lambda c: c.get_model(""),
    "get_model None": lambda c: c.get_model(None),  # type: ignore[arg-type]
    "search_models": _then(_two, lambda c: c.search_models("name = 'm'")),
    "search_models bad filter": lambda c: c.search_models("name = "),
    "search_models unknown field": lambda c: c.search_models("colour = 'red'"),
    "search_models order": _then(_two, lambda c: c.search_models(order_by=["name DESC"])),
    "search_models bad order": lambda c: c.search_models(order_by=["colour"]),
    "search_models max_results 0": lambda c: c.search_models(max_results=0),
    "search_models max_results -1": lambda c: c.search_models(max_results=-1),
    "search_models max_results huge": lambda c: c.search_models(max_results=10**9),
    "search_models max_results str": lambda c: c.search_models(max_results="2"),  # type: ignore[arg-type]
    "search_models max_results bad str": lambda c: c.search_models(max_results="x"),  # type: ignore[arg-type]
    "search_models bad token": lambda c: c.search_models(page_token="nonsense"),
    "search_models empty filter": lambda c: c.search_models(""),
    "search_models deleted": _then(_deleted, lambda c: c.search_models(include_deleted=True)),
    "search_models paged": _then(
        lambda c: [c.create_model(f"p{i}") for i in range(3)],
        lambda c: c.search_models(max_results=2),
    ),
    "update_model": _then(_two, lambda c: c.update_model("m", description="new")),
    "update_model unknown": lambda c: c.update_model("ghost", description="x"),
    "update_model nothing": _then(_two, lambda c: c.update_model("m")),
    "rename_model": _then(_two, lambda c: c.rename_model("m", "n")),
    "rename_model to existing": _then(
        lambda c: (_two(c), c.create_model("n")), lambda c: c.rename_model("m", "n")
    ),
    "rename_model bad": _then(_two, lambda c: c.rename_model("m", "a/b")),
    "rename_model empty": _then(_two, lambda c: c.rename_model("m", "")),
    "rename_model same": _then(_two, lambda c: c.rename_model("m", "m")),
    "set_model_tag": _then(_two, lambda c: c.set_model_tag("m", "k", "v")),
    "set_model_tag empty key": _then(_two, lambda c: c.set_model_tag("m", "", "v")),
    "set_model_tag int value": _then(_two, lambda c: c.set_model_tag("m", "k", 5)),  # type: ignore[arg-type]
    "set_model_tag None value": _then(_two, lambda c: c.set_model_tag("m", "k", None)),  # type: ignore[arg-type]
    "set_model_tag deleted": _then(_deleted, lambda c: c.set_model_tag("m", "k", "v")),
    "set_model_tag slash key": _then(_two, lambda c: c.set_model_tag("m", "a/b", "v")),
    "delete_model_tag slash key": _then(
        lambda c: (_two(c), c.set_model_tag("m", "a/b", "v")),
        lambda c: c.delete_model_tag("m", "a/b"),
    ),
    "set_version_tag slash key": _then(_two, lambda c: c.set_version_tag("m", 1, "a/b", "v")),
    "get_model slash": lambda c: c.get_model("a/b"),
    "get_model slash versions": _then(_two, lambda c: c.get_model("m/versions")),
    "delete_model slash": _then(
        _two, lambda c: (c.delete_model("m/versions/1"), c.get_version("m", 1))
    ),
    "delete_model slash tag": _then(
        _two, lambda c: (c.delete_model("m/tags/team"), c.get_model("m"))
    ),
    "set_alias slash": _then(_two, lambda c: c.set_alias("m", "a/b", 1)),
    "delete_alias slash": _then(_two, lambda c: c.delete_alias("m", "a/b")),
    "update_user slash": lambda c: c.update_user("a/b", admin=True),
    "delete_group slash": lambda c: c.delete_group("a/b"),
    "add_member slash": _then(lambda c: c.create_group("g"), lambda c: c.add_member("g", "a/b")),
    "remove_signer slash": lambda c: c.remove_signer("a/b"),
    "get_model backslash": lambda c: c.get_model("a\\b"),
    "get_model question": lambda c: c.get_model("a?b"),
    "get_model hash": lambda c: c.get_model("a#b"),
    "delete_version_tag empty key": _then(_two, lambda c: c.delete_version_tag("m", 1, "")),
    "set_model_tag control key": _then(_two, lambda c: c.set_model_tag("m", "a\x01", "v")),
    "set_version_tag long key": _then(_two, lambda c: c.set_version_tag("m", 1, "k" * 300, "v")),
    "delete_model_tag unknown": _then(_two, lambda c: c.delete_model_tag("m", "nope")),
    "delete_model unknown": lambda c: c.delete_model("ghost"),
    "delete_model twice": _then(_deleted, lambda c: c.delete_model("m")),
    "restore_model": _then(_deleted, lambda c: c.restore_model("m")),
    "restore_model live": _then(_two, lambda c: c.restore_model("m")),
    "restore_model unknown": lambda c: c.restore_model("ghost"),
    "ensure_model": _then(_two, lambda c: c.ensure_model("m")),
    "ensure_model deleted": _then(_deleted, lambda c: c.ensure_model("m")),
    # versions
    "create_version": _then(
        lambda c: c.create_model("m"),
        lambda c: c.create_version("m", description="d", tags={"t": "1"}, semver="1.2.3"),
    ),
    "create_version unknown model": lambda c: c.create_version("ghost"),
    "create_version deleted model": _then(_deleted, lambda c: c.create_version("m")),
    "create_version bad semver": _then(_two, lambda c: c.create_version("m", semver="1.x")),
    "create_version metric str": _then(
        _two,
        lambda c: c.create_version("m", metrics={"auc": "high"}),  # type: ignore[dict-item]
    ),
    "create_version metric numeric str": _then(
        _two,
        lambda c: c.create_version("m", metrics={"auc": "0.5"}),  # type: ignore[dict-item]
    ),
    "create_version metric bool": _then(
        _two,
        lambda c: c.create_version("m", metrics={"auc": True}),
    ),
    "create_version param int": _then(
        _two,
        lambda c: c.create_version("m", params={"lr": 1}),  # type: ignore[dict-item]
    ),
    "create_version bad run_link": _then(
        _two, lambda c: c.create_version("m", run_link="javascript:alert(1)")
    ),
    "get_version": _then(_two, lambda c: c.get_version("m", 2)),
    "get_version str": _then(_two, lambda c: c.get_version("m", "2")),
    "get_version latest": _then(_two, lambda c: c.get_version("m", "latest")),
    "get_version unknown": _then(_two, lambda c: c.get_version("m", 9)),
    "get_version zero": _then(_two, lambda c: c.get_version("m", 0)),
    "get_version negative": _then(_two, lambda c: c.get_version("m", -1)),
    "get_version word": _then(_two, lambda c: c.get_version("m", "two")),
    "get_version empty": _then(_two, lambda c: c.get_version("m", "")),
    "get_version float": _then(_two, lambda c: c.get_version("m", 1.0)),  # type: ignore[arg-type]
    "get_version None": _then(_two, lambda c: c.get_version("m", None)),  # type: ignore[arg-type]
    "get_version bool": _then(_two, lambda c: c.get_version("m", True)),
    "get_version huge": _then(_two, lambda c: c.get_version("m", 2**70)),
    "delete_version zero": _then(_two, lambda c: c.delete_version("m", 0)),
    "set_version_tag negative": _then(_two, lambda c: c.set_version_tag("m", -3, "k", "v")),
    "get_scan_report word": _then(_two, lambda c: c.get_scan_report("m", "one")),
    "list_files empty": _then(_two, lambda c: c.list_files("m", "")),
    "get_version of deleted model": _then(_deleted, lambda c: c.get_version("m", 1)),
    "get_version deleted": _then(
        lambda c: (_two(c), c.delete_version("m", 2)), lambda c: c.get_version("m", 2)
    ),
    "resolve latest": _then(_two, lambda c: c.resolve("models:/m/latest")),
    "resolve number": _then(_two, lambda c: c.resolve("models:/m/1")),
    "resolve unknown alias": _then(_two, lambda c: c.resolve("models:/m@nope")),
    "resolve bad uri": lambda c: c.resolve("runs:/x"),
    "resolve empty": lambda c: c.resolve(""),
    "resolve stage": _then(
        lambda c: (_two(c), c.transition_stage("m", 1, "Production")),
        lambda c: c.resolve("models:/m/Production"),
    ),
    "resolve naive as_of": _then(
        _two, lambda c: c.resolve("models:/m/latest", as_of=datetime(2000, 1, 1))
    ),
    "resolve future as_of": _then(
        _two, lambda c: c.resolve("models:/m/1", as_of=datetime.now(UTC) + timedelta(days=1))
    ),
    "list_versions": _then(_two, lambda c: c.list_versions("m", order_by=["version DESC"])),
    "list_versions unknown": lambda c: c.list_versions("ghost"),
    "list_versions deleted model": _then(_deleted, lambda c: c.list_versions("m")),
    "list_versions paged": _then(_two, lambda c: c.list_versions("m", max_results=1)),
    "list_versions max_results 0": _then(_two, lambda c: c.list_versions("m", max_results=0)),
    "list_versions bad order": _then(_two, lambda c: c.list_versions("m", order_by=["x"])),
    "search_versions": _then(_two, lambda c: c.search_versions("metrics.auc > 0.5")),
    "search_versions bad": lambda c: c.search_versions("metrics.auc >"),
    "search_versions bad token": lambda c: c.search_versions(page_token="zzz"),
    "search_versions max_results huge": lambda c: c.search_versions(max_results=10**6),
    "search_versions order": _then(
        _two, lambda c: c.search_versions(order_by=["version ASC"], max_results=1)
    ),
    "update_version": _then(_two, lambda c: c.update_version("m", 1, semver="2.0.0")),
    "update_version bad semver": _then(_two, lambda c: c.update_version("m", 1, semver="x")),
    "update_version unknown": _then(_two, lambda c: c.update_version("m", 7, description="x")),
    "set_version_tag": _then(_two, lambda c: c.set_version_tag("m", 1, "k", "v")),
    "set_version_tag unknown version": _then(_two, lambda c: c.set_version_tag("m", 9, "k", "v")),
    "delete_version_tag unknown": _then(_two, lambda c: c.delete_version_tag("m", 1, "k")),
    "transition_stage": _then(_two, lambda c: c.transition_stage("m", 1, "staging")),
    "transition_stage archive": _then(
        lambda c: (_two(c), c.transition_stage("m", 1, "Production")),
        lambda c: c.transition_stage("m", 2, "Production", archive_existing_versions=True),
    ),
    "transition_stage bad": _then(_two, lambda c: c.transition_stage("m", 1, "Prod")),
    "transition_stage empty": _then(_two, lambda c: c.transition_stage("m", 1, "")),
    "delete_version unknown": _then(_two, lambda c: c.delete_version("m", 9)),
    "delete_version twice": _then(
        lambda c: (_two(c), c.delete_version("m", 1)), lambda c: c.delete_version("m", 1)
    ),
    "restore_version": _then(
        lambda c: (_two(c), c.delete_version("m", 1)), lambda c: c.restore_version("m", 1)
    ),
    "restore_version live": _then(_two, lambda c: c.restore_version("m", 1)),
    "purge_version": _then(
        _two, lambda c: (c.purge_version("m", 1), c.list_versions("m", include_deleted=True))
    ),
    "purge_version unknown": _then(_two, lambda c: c.purge_version("m", 9)),
    "prune_versions": _then(_two, lambda c: c.prune_versions("m", keep=1)),
    "prune_versions keep -1": _then(_two, lambda c: c.prune_versions("m", keep=-1)),
    "prune_versions keep str": _then(_two, lambda c: c.prune_versions("m", keep="x")),  # type: ignore[arg-type]
    "prune_versions bad filter": _then(_two, lambda c: c.prune_versions("m", keep=1, filter="x")),
    "prune_versions keep_days -1": _then(
        _two, lambda c: c.prune_versions("m", keep=1, keep_days=-1)
    ),
    "prune_versions unknown": lambda c: c.prune_versions("ghost", keep=1),
    "get_retention": _then(_two, lambda c: c.get_retention("m")),
    "set_retention": _then(_two, lambda c: c.set_retention("m", keep=3, keep_days=1.5)),
    "set_retention bad": _then(_two, lambda c: c.set_retention("m", keep=-3)),
    "set_retention none": _then(_two, lambda c: c.set_retention("m", keep=None)),
    "clear_retention": _then(_two, lambda c: c.clear_retention("m")),
    "clear_retention unknown": lambda c: c.clear_retention("ghost"),
    # aliases
    "set_alias": _then(_two, lambda c: c.set_alias("m", "prod", 1)),
    "set_alias str version": _then(_two, lambda c: c.set_alias("m", "prod", "1")),
    "set_alias latest": _then(_two, lambda c: c.set_alias("m", "prod", "latest")),
    "set_alias unknown version": _then(_two, lambda c: c.set_alias("m", "prod", 9)),
    "set_alias zero": _then(_two, lambda c: c.set_alias("m", "prod", 0)),
    "set_alias bad alias": _then(_two, lambda c: c.set_alias("m", "a/b", 1)),
    "set_alias number alias": _then(_two, lambda c: c.set_alias("m", "12", 1)),
    "set_alias latest alias": _then(_two, lambda c: c.set_alias("m", "latest", 1)),
    "set_alias empty alias": _then(_two, lambda c: c.set_alias("m", "", 1)),
    "set_alias expect wrong": _then(
        lambda c: (_two(c), c.set_alias("m", "prod", 1)),
        lambda c: c.set_alias("m", "prod", 2, expect=2),
    ),
    "set_alias expect unset": _then(
        lambda c: (_two(c), c.set_alias("m", "prod", 1)),
        lambda c: c.set_alias("m", "prod", 2, expect=0),
    ),
    "set_alias expect right": _then(
        lambda c: (_two(c), c.set_alias("m", "prod", 1)),
        lambda c: c.set_alias("m", "prod", 2, expect=1),
    ),
    "set_alias expect negative": _then(_two, lambda c: c.set_alias("m", "prod", 2, expect=-1)),
    "set_alias expect str": _then(_two, lambda c: c.set_alias("m", "prod", 2, expect="x")),  # type: ignore[arg-type]
    "set_alias deleted model": _then(_deleted, lambda c: c.set_alias("m", "prod", 1)),
    "set_alias deleted version": _then(
        lambda c: (_two(c), c.delete_version("m", 1)), lambda c: c.set_alias("m", "prod", 1)
    ),
    "rollback_alias": _then(
        lambda c: (_two(c), c.set_alias("m", "prod", 1), c.set_alias("m", "prod", 2)),
        lambda c: c.rollback_alias("m", "prod"),
    ),
    "rollback_alias never moved": _then(
        lambda c: (_two(c), c.set_alias("m", "prod", 1)), lambda c: c.rollback_alias("m", "prod")
    ),
    "rollback_alias unknown": _then(_two, lambda c: c.rollback_alias("m", "nope")),
    "delete_alias": _then(
        lambda c: (_two(c), c.set_alias("m", "prod", 1)), lambda c: c.delete_alias("m", "prod")
    ),
    "delete_alias unknown": _then(_two, lambda c: c.delete_alias("m", "nope")),
    "alias_history": _then(
        lambda c: (_two(c), c.set_alias("m", "prod", 1), c.set_alias("m", "prod", 2)),
        lambda c: c.alias_history("m"),
    ),
    "alias_history limit": _then(
        lambda c: (_two(c), c.set_alias("m", "prod", 1), c.set_alias("m", "prod", 2)),
        lambda c: c.alias_history("m", "prod", limit=1),
    ),
    "alias_history limit 0": _then(_two, lambda c: c.alias_history("m", limit=0)),
    "alias_history limit -1": _then(_two, lambda c: c.alias_history("m", limit=-1)),
    "alias_history unknown": lambda c: c.alias_history("ghost"),
    "alias_history unknown alias": _then(_two, lambda c: c.alias_history("m", "nope")),
    # audit
    "list_audit bad action": lambda c: c.list_audit(action="nope"),
    "list_audit bad outcome": lambda c: c.list_audit(outcome="nope"),
    "list_audit max_results 0": lambda c: c.list_audit(max_results=0),
    "list_audit bad token": lambda c: c.list_audit(page_token="zz"),
    "list_audit model": _then(_two, lambda c: len(c.list_audit(model="m").items)),
    "verify_audit": _then(_two, lambda c: c.verify_audit().ok),
    "tail_events model": _then(
        _two, lambda c: [(e.action, e.model) for e in c.tail_events(model="m").events]
    ),
    "tail_events filtered": _then(
        _two, lambda c: [e.action for e in c.tail_events(events=["version.*"]).events]
    ),
    "tail_events bad after": lambda c: c.tail_events(after=-2),
    "tail_events after str": lambda c: c.tail_events(after="3"),  # type: ignore[arg-type]
    "tail_events bad event": lambda c: c.tail_events(events=["Alias.Set"]),
    "tail_events events int": lambda c: c.tail_events(events=5),  # type: ignore[arg-type]
    "tail_events bad wait": lambda c: c.tail_events(wait=61),
    "tail_events bad outcome": lambda c: c.tail_events(outcome="nope"),
    "tail_events max_results 0": lambda c: c.tail_events(max_results=0),
    "tail_events no model": lambda c: c.tail_events(model="nope").events,
    # signatures and scans
    "list_signers": lambda c: c.list_signers(),
    "add_signer bad kind": lambda c: c.add_signer("s", kind="nope", material="x"),
    "add_signer bad key": lambda c: c.add_signer("s", kind="key", material="x"),
    "remove_signer unknown": lambda c: c.remove_signer("nope"),
    "add_signature garbage": _then(_two, lambda c: c.add_signature("m", 1, "garbage")),
    "add_signature bytes": _then(_two, lambda c: c.add_signature("m", 1, b"\xff")),
    "add_signature dict": _then(_two, lambda c: c.add_signature("m", 1, {"a": 1})),
    "list_signatures": _then(_two, lambda c: c.list_signatures("m", 1)),
    "list_signatures unknown": _then(_two, lambda c: c.list_signatures("m", 9)),
    "get_scan_report": _then(_two, lambda c: c.get_scan_report("m", 1)),
    "get_scan_report unknown": _then(_two, lambda c: c.get_scan_report("m", 9)),
    "rescan_version": _then(_two, lambda c: c.rescan_version("m", 1)),
    "get_scan_policy": _then(_two, lambda c: c.get_scan_policy("m")),
    "set_scan_policy": _then(_two, lambda c: c.set_scan_policy("m", "reject")),
    "set_scan_policy bad": _then(_two, lambda c: c.set_scan_policy("m", "nope")),
    "set_scan_policy none": _then(_two, lambda c: c.set_scan_policy("m", None)),
    # protected aliases and promotions
    "set_policy": lambda c: c.set_policy("m*", "prod", approvals=1, conditions=["auc>=0.5"]),
    "set_policy bad role": lambda c: c.set_policy("m", "prod", min_role="GOD"),
    "set_policy bad condition": lambda c: c.set_policy("m", "prod", conditions=["auc >> 1"]),
    "set_policy negative approvals": lambda c: c.set_policy("m", "prod", approvals=-1),
    "list_policies": _then(lambda c: c.set_policy("m", "prod"), lambda c: c.list_policies()),
    "delete_policy unknown": lambda c: c.delete_policy(99),
    "delete_policy str": lambda c: c.delete_policy("x"),  # type: ignore[arg-type]
    "promote applied": _then(_two, lambda c: c.promote("m", 1, "prod", comment="go")),
    "promote pending": _then(
        lambda c: (_two(c), c.set_policy("m", "prod", approvals=1)),
        lambda c: c.promote("m", 1, "prod"),
    ),
    "promote unknown version": _then(_two, lambda c: c.promote("m", 9, "prod")),
    "promote bad alias": _then(_two, lambda c: c.promote("m", 1, "a/b")),
    "promote latest": _then(_two, lambda c: c.promote("m", "latest", "prod")),
    "list_promotions": _then(
        lambda c: (_two(c), c.promote("m", 1, "prod")), lambda c: c.list_promotions()
    ),
    "list_promotions bad status": lambda c: c.list_promotions(status="nope"),
    "list_promotions max_results 0": lambda c: c.list_promotions(max_results=0),
    "list_promotions bad token": lambda c: c.list_promotions(page_token="zz"),
    "get_promotion unknown": lambda c: c.get_promotion(99),
    "approve_promotion own": _then(
        lambda c: (_two(c), c.set_policy("m", "prod", approvals=1), c.promote("m", 1, "prod")),
        lambda c: c.approve_promotion(1),
    ),
    "cancel_promotion": _then(
        lambda c: (_two(c), c.set_policy("m", "prod", approvals=1), c.promote("m", 1, "prod")),
        lambda c: c.cancel_promotion(1, comment="no"),
    ),
    "reject_promotion applied": _then(
        lambda c: (_two(c), c.promote("m", 1, "prod")), lambda c: c.reject_promotion(1)
    ),
    # identities
    "create_user": lambda c: c.create_user("ana", password="pa55word-long-enough"),
    "create_user bad name": lambda c: c.create_user("a b"),
    "create_user twice": _then(lambda c: c.create_user("ana"), lambda c: c.create_user("ana")),
    "create_user service with password": lambda c: c.create_user("svc", service=True, password="x"),
    "list_users": _then(
        lambda c: c.create_user("ana"),
        lambda c: [u for u in c.list_users() if u["name"] != "admin"],  # the caller over HTTP
    ),
    "update_user unknown": lambda c: c.update_user("ghost", admin=True),
    "update_user nothing": _then(lambda c: c.create_user("ana"), lambda c: c.update_user("ana")),
    "create_group": lambda c: c.create_group("g"),
    "create_group twice": _then(lambda c: c.create_group("g"), lambda c: c.create_group("g")),
    "delete_group unknown": lambda c: c.delete_group("g"),
    "add_member unknown": lambda c: c.add_member("g", "ana"),
    "add_member": _then(
        lambda c: (c.create_group("g"), c.create_user("ana")),
        lambda c: (c.add_member("g", "ana"), c.list_groups()),
    ),
    "remove_member not member": _then(
        lambda c: (c.create_group("g"), c.create_user("ana")),
        lambda c: c.remove_member("g", "ana"),
    ),
    "grant": _then(
        lambda c: (_two(c), c.create_user("ana")), lambda c: c.grant("ana", "READ", model="m")
    ),
    "grant bad role": _then(
        lambda c: (_two(c), c.create_user("ana")), lambda c: c.grant("ana", "GOD", model="m")
    ),
    "grant both": _then(
        lambda c: (_two(c), c.create_user("ana")),
        lambda c: c.grant("ana", "READ", model="m", pattern="*"),
    ),
    "grant neither": _then(lambda c: c.create_user("ana"), lambda c: c.grant("ana", "READ")),
    "grant unknown subject": _then(_two, lambda c: c.grant("ghost", "READ", model="m")),
    "revoke not granted": _then(
        lambda c: (_two(c), c.create_user("ana")), lambda c: c.revoke("ana", model="m")
    ),
    "list_grants": _then(
        lambda c: (_two(c), c.create_user("ana"), c.grant("ana", "READ", model="m")),
        lambda c: c.list_grants(model="m", subject="user:ana"),
    ),
    "create_token bad scope": lambda c: c.create_token("t", scope="god"),
    "create_token negative days": lambda c: c.create_token("t", expires_days=-1),
    "create_token unknown user": lambda c: c.create_token("t", user="ghost"),
    "revoke_token unknown": lambda c: c.revoke_token(99),
    "revoke_token str": lambda c: c.revoke_token("x"),  # type: ignore[arg-type]
    # files
    "list_files": _then(_two, lambda c: c.list_files("m", 1)),
    "list_files unknown": _then(_two, lambda c: c.list_files("m", 9)),
    "file_links": _then(_two, lambda c: c.file_links("m", 1)),
    "file_links unknown path": _then(_two, lambda c: c.file_links("m", 1, ["nope"])),
    "finalize_version ready": _then(_two, lambda c: c.finalize_version("m", 1)),
    "finalize_version unknown": _then(_two, lambda c: c.finalize_version("m", 9)),
    "pull unknown": lambda c: c.pull("models:/ghost/1"),
    "pull bad uri": lambda c: c.pull("nonsense"),
    "reserve_versions": _then(_two, lambda c: c.reserve_versions("m", 10)),
    "reserve_versions down": _then(_two, lambda c: c.reserve_versions("m", 1)),
    "reserve_versions negative": _then(_two, lambda c: c.reserve_versions("m", -1)),
    "import_model": lambda c: c.import_model(
        "m", created_at=datetime(2020, 1, 1, tzinfo=UTC), created_by="bob"
    ),
    "import_model naive": lambda c: c.import_model("m", created_at=datetime(2020, 1, 1)),
    "import_model future": lambda c: c.import_model(
        "m", created_at=datetime.now(UTC) + timedelta(days=3)
    ),
    "diff_versions": _then(_two, lambda c: c.diff_versions("models:/m/1", "models:/m/2")),
    "diff_versions unknown": _then(_two, lambda c: c.diff_versions("models:/m/1", "models:/m/9")),
    "diff_versions bad uri": lambda c: c.diff_versions("x", "y"),
    "whoami keys": lambda c: sorted(c.whoami()),
    # files
    "push": lambda c: (c.create_model("m"), c.push(_folder(), name="m", alias="prod"))[1],
    "push unknown model": lambda c: c.push(_folder(), name="ghost"),
    "push bad alias": _then(
        lambda c: c.create_model("m"), lambda c: c.push(_folder(), name="m", alias="1x")
    ),
    "push missing path": _then(
        lambda c: c.create_model("m"), lambda c: c.push("/nonexistent/x", name="m")
    ),
    "push if_changed": _then(_pushed, lambda c: c.push(_folder(), name="m", if_changed=True)),
    "push deleted model": _then(
        lambda c: (_pushed(c), c.delete_model("m")), lambda c: c.push(_folder(), name="m")
    ),
    "pull": _then(_pushed, lambda c: _pulled(c, "models:/m@prod")),
    "pull include": _then(_pushed, lambda c: _pulled(c, "models:/m/1", include=["weights/"])),
    "pull include nothing": _then(_pushed, lambda c: _pulled(c, "models:/m/1", include=["*.x"])),
    "pull deleted version": _then(
        lambda c: (_pushed(c), c.delete_version("m", 1)), lambda c: _pulled(c, "models:/m/1")
    ),
    "pull pending version": _then(
        lambda c: (c.create_model("m"), c.create_version("m")), lambda c: _pulled(c, "models:/m/1")
    ),
    "list_files pushed": _then(_pushed, lambda c: c.list_files("m", 1)),
    "file_links pushed": _then(_pushed, lambda c: c.file_links("m", 1, ["config.json"])),
    "file_links missing": _then(_pushed, lambda c: c.file_links("m", 1, ["nope.bin"])),
    "file_links bad path": _then(_pushed, lambda c: c.file_links("m", 1, ["../x"])),
    "get_scan_report pushed": _then(_pushed, lambda c: c.get_scan_report("m", 1)),
    "diff pushed": _then(
        lambda c: (_pushed(c), c.push(_folder(), name="m", tags={"x": "1"})),
        lambda c: c.diff_versions("models:/m/1", "models:/m/2", tensors=True, signature=True),
    ),
    "iter_versions": _then(
        lambda c: [_model(c, f"p{i}") for i in range(3)],
        lambda c: list(c.iter_versions("name LIKE 'p%'", max_results=2)),
    ),
    "iter_models deleted": _then(
        lambda c: ([_model(c, f"p{i}") for i in range(3)], c.delete_model("p1")),
        lambda c: list(c.iter_models(max_results=1, include_deleted=True)),
    ),
    # the model's events: a server's log also begins with its bootstrap (the admin user
    # and token), which a data directory opened in-process has none of
    "list_audit after push": _then(
        _pushed, lambda c: [(e.action, e.model, e.outcome) for e in c.list_audit(model="m").items]
    ),
    # a value of the wrong type where a number is due
    "alias_history limit str": _then(_two, lambda c: c.alias_history("m", limit="x")),  # type: ignore[arg-type]
    "list_audit max_results str": lambda c: c.list_audit(max_results="x"),  # type: ignore[arg-type]
    "list_promotions max_results str": lambda c: c.list_promotions(max_results="x"),  # type: ignore[arg-type]
    "get_promotion str": lambda c: c.get_promotion("x"),  # type: ignore[arg-type]
    "approve_promotion str": lambda c: c.approve_promotion("x"),  # type: ignore[arg-type]
    "reserve_versions str": _then(_two, lambda c: c.reserve_versions("m", "x")),  # type: ignore[arg-type]
    "set_retention keep str": _then(_two, lambda c: c.set_retention("m", keep="x")),  # type: ignore[arg-type]
    "set_retention keep_days str": _then(
        _two,
        lambda c: c.set_retention("m", keep=1, keep_days="x"),  # type: ignore[arg-type]
    ),
    "set_retention keep_days nan": _then(
        _two, lambda c: c.set_retention("m", keep=1, keep_days=float("nan"))
    ),
    "prune_versions keep_days str": _then(
        _two,
        lambda c: c.prune_versions("m", keep=1, keep_days="x"),  # type: ignore[arg-type]
    ),
    "create_token expires_days str": lambda c: c.create_token("t", expires_days="x"),  # type: ignore[arg-type]
    "set_policy approvals str": lambda c: c.set_policy("m", "prod", approvals="x"),  # type: ignore[arg-type]
    "set_alias expect float": _then(_two, lambda c: c.set_alias("m", "prod", 1, expect=0.5)),  # type: ignore[arg-type]
    "prune_versions keep float": _then(_two, lambda c: c.prune_versions("m", keep=1.5)),  # type: ignore[arg-type]
    "list_audit since str": lambda c: c.list_audit(since="yesterday"),  # type: ignore[arg-type]
    "resolve as_of str": _then(_two, lambda c: c.resolve("models:/m/1", as_of="x")),  # type: ignore[arg-type]
    "list_audit until int": lambda c: c.list_audit(until=0),  # type: ignore[arg-type]
    "rollback_alias as_of str": _then(
        lambda c: (_two(c), c.set_alias("m", "prod", 1)),
        lambda c: c.rollback_alias("m", "prod", as_of="2020-01-01T00:00:00Z"),  # type: ignore[arg-type]
    ),
    "diff_versions old_as_of str": _then(
        _two,
        lambda c: c.diff_versions("models:/m@p", "models:/m/2", old_as_of="x"),  # type: ignore[arg-type]
    ),
    "import_model created_at str": lambda c: c.import_model("m", created_at="2020-01-01"),  # type: ignore[arg-type]
    "list_versions max_results float": _then(
        _two,
        lambda c: c.list_versions("m", max_results=1.0),  # type: ignore[arg-type]
    ),
    "list_audit max_results numeric str": lambda c: c.list_audit(max_results="5"),  # type: ignore[arg-type]
    "alias_history limit numeric str": _then(_two, lambda c: c.alias_history("m", limit="1")),  # type: ignore[arg-type]
    "search_versions filter list": lambda c: c.search_versions(["name = 'm'"]),  # type: ignore[arg-type]
    "create_model tags int": lambda c: c.create_model("m", tags=5),  # type: ignore[arg-type]
    "create_version tags str": _then(_two, lambda c: c.create_version("m", tags="ab")),  # type: ignore[arg-type]
    "create_version params list": _then(
        _two,
        lambda c: c.create_version("m", params=[("lr", "1")]),  # type: ignore[arg-type]
    ),
    "create_version metrics int": _then(_two, lambda c: c.create_version("m", metrics=1)),  # type: ignore[arg-type]
    "import_model tags list": lambda c: c.import_model("m", tags=[("a", "b")]),  # type: ignore[arg-type]
    "push tags int": _then(
        lambda c: c.create_model("m"),
        lambda c: c.push(_folder(), name="m", tags=5),  # type: ignore[arg-type]
    ),
    "search_models order_by str": _then(_two, lambda c: c.search_models(order_by="name")),  # type: ignore[arg-type]
    "search_models filter int": lambda c: c.search_models(5),  # type: ignore[arg-type]
    "create_model tags list": lambda c: c.create_model("m", tags=[("a", "b")]),  # type: ignore[arg-type]
    # deployments and monitoring feedback
    "set_deployment": _then(
        _two, lambda c: c.set_deployment("d", "models:/m/1", environment="prod", url="https://x")
    ),
    "deployment lifecycle": _then(
        _deployed,
        lambda c: (
            c.retire_deployment("d", expect=2, reason="done"),
            c.deployment_history("d"),
            c.list_servings("m", 1),
            c.list_deployments(model="m", retired=True),
        ),
    ),
    "set_deployment expect mismatch": _then(
        _deployed, lambda c: c.set_deployment("d", "models:/m/1", expect=1)
    ),
    "set_deployment new without environment": _then(
        _two, lambda c: c.set_deployment("d", "models:/m/1")
    ),
    "set_deployment bad name": _then(
        _two, lambda c: c.set_deployment("a/b", "models:/m/1", environment="prod")
    ),
    "get_deployment missing": lambda c: c.get_deployment("ghost"),
    "deployment_at before": _then(
        _deployed, lambda c: c.deployment_at("d", datetime(2000, 1, 1, tzinfo=UTC))
    ),
    "push_feedback": _then(
        _deployed,
        lambda c: (
            c.push_feedback("d", [_point("auc", 0.5)], idempotency_key="k1"),
            c.push_feedback("d", [_point("auc", 0.5)], idempotency_key="k1").replayed,
            [(p.key, p.value, p.version) for p in c.version_feedback("m", 2).items],
            [(s.key, s.count, s.mean) for s in c.feedback_summary("m", 2)],
        ),
    ),
    "push_feedback nan": _then(
        _deployed, lambda c: c.push_feedback("d", [_point("auc", float("nan"))])
    ),
    "push_feedback too early": _then(
        _deployed,
        lambda c: c.push_feedback(
            "d", [{"key": "a", "value": 1, "timestamp": datetime(2000, 1, 1, tzinfo=UTC)}]
        ),
    ),
    "deployment_feedback bad token": _then(
        _deployed, lambda c: c.deployment_feedback("d", page_token="nope")
    ),
}


# The server checks a request's shape (types, ranges, choices) before the service sees it,
# in its own words: the same exception, with another message.
WORDED_BY_THE_SERVER = {
    "create_model None name",
    "create_model int name",
    "create_model tags not str",
    "create_model description None",
    "set_model_tag int value",
    "set_model_tag None value",
    "create_version metric str",
    "create_version metric numeric str",
    "create_version metric bool",
    "create_version param int",
    "prune_versions keep -1",
    "prune_versions keep_days -1",
    "set_retention bad",
    "set_alias expect negative",
    "set_scan_policy bad",
    "delete_policy str",
    "grant bad role",
    "create_token bad scope",
    "reserve_versions negative",
    "prune_versions keep str",
    "prune_versions keep float",
    "prune_versions keep_days str",
    "set_alias expect str",
    "set_alias expect float",
    "revoke_token str",
    "get_promotion str",
    "approve_promotion str",
    "reserve_versions str",
    "set_retention keep str",
    "set_retention keep_days str",
    "create_token expires_days str",
    "set_policy approvals str",
    "set_retention keep_days nan",  # the HTTP client's JSON encoder refuses it first
}

# Differences not resolved yet, by scenario and what differs: each must fail until it is.
KNOWN: dict[str, str] = {}

# Methods of one mode only, each for a reason its docstring gives (owner access to the
# data directory: gc and verify read and delete blobs directly).
LOCAL_ONLY = {"gc", "verify"}


def test_the_lists_name_scenarios() -> None:
    assert not (WORDED_BY_THE_SERVER | set(KNOWN)) - set(SCENARIOS)


def test_same_methods_with_the_same_signatures() -> None:
    """Every public method of one client is the other's, with the same parameters,
    kinds and defaults as ``BaseClient`` declares them."""

    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}

    assert public(HttpClient) == public(LocalClient) - LOCAL_ONLY
    for name in sorted(public(HttpClient)):
        http, local = (
            inspect.signature(getattr(HttpClient, name)),
            inspect.signature(getattr(LocalClient, name)),
        )
        assert str(http) == str(local), name
        if hasattr(BaseClient, name):
            assert str(inspect.signature(getattr(BaseClient, name))) == str(http), name


def _case(name: str) -> Any:
    if name in KNOWN:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN[name]))
    return name


@pytest.mark.parametrize("name", [_case(name) for name in SCENARIOS])
def test_same_outcome_both_modes(registry: Callable[[str], Any], name: str) -> None:
    over_http, in_process = _run_both(registry, SCENARIOS[name])
    assert over_http[0] != "LEAKED", over_http
    assert in_process[0] != "LEAKED", in_process
    if name in WORDED_BY_THE_SERVER:
        assert over_http[0] == in_process[0] == "raised", (over_http, in_process)
        over_http, in_process = over_http[:3], in_process[:3]
    assert over_http == in_process, f"\nHTTP : {over_http}\nLOCAL: {in_process}"
