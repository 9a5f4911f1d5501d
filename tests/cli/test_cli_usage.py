"""The ``cairn`` command as a user meets it: pagination, option values, narrow output."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from cairn.cli.main import app
from cairn.settings import Settings

runner = CliRunner()


@pytest.fixture(params=["http", "local"])
def uri(request: pytest.FixtureRequest, settings: Settings) -> str:
    if request.param == "http":
        return str(request.getfixturevalue("live_server"))
    return str(settings.data_dir)


def cairn(uri: str, *args: str) -> str:
    result = runner.invoke(app, ["--uri", uri, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (["models", "list"], "name"),
        (["versions", "list", "m"], "version"),
        (["versions", "search", "name = 'm'"], "version"),
    ],
)
def test_json_listings_page_with_the_next_page_token(
    uri: str, command: list[str], key: str
) -> None:
    """--json --max-results N says where the next page starts (on stderr, stdout staying the
    JSON alone), as the table does: following it reaches every item once."""
    for name in ("m", "n", "o"):
        cairn(uri, "models", "create", name)
    for _ in range(3):
        cairn(uri, "versions", "create", "m")
    seen: list[object] = []
    token: list[str] = []
    for _ in range(5):
        result = runner.invoke(
            app, ["--uri", uri, *command, "--max-results", "2", "--json", *token]
        )
        assert result.exit_code == 0, result.output
        seen += [item[key] for item in json.loads(result.stdout)]
        found = re.search(r"--page-token (\S+)", result.stderr)
        if found is None:
            break
        token = ["--page-token", found.group(1)]
    assert sorted(seen, key=str) == sorted({*seen}, key=str)
    assert len(seen) == 3
