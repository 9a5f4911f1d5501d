"""How the API spells a time: RFC 3339, UTC, microseconds, ``Z``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.codec import format_time, parse_time

aware = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)


@given(aware, offsets)
def test_a_time_is_spelled_in_utc_with_microseconds_and_z(value: datetime, tz: timezone) -> None:
    for spelled in (value, value.astimezone(tz)):
        text = format_time(spelled)
        assert text is not None
        assert text == value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        assert parse_time(text) == value


def test_no_time_is_null() -> None:
    assert format_time(None) is None


def test_a_time_without_zone_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the service and the API take it, whatever the machine's local zone."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert format_time(datetime(2026, 1, 2, 3, 4, 5, 6)) == "2026-01-02T03:04:05.000006Z"
    finally:
        monkeypatch.undo()
        time.tzset()
