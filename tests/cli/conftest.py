"""Fixtures of the CLI tests."""

from __future__ import annotations

import pytest

from cairn.settings import Settings


@pytest.fixture(params=["http", "local"])
def uri(request: pytest.FixtureRequest, settings: Settings) -> str:
    """The ``--uri`` a command gets: a live server, or the data directory in-process."""
    if request.param == "http":
        return str(request.getfixturevalue("live_server"))
    return str(settings.data_dir)
