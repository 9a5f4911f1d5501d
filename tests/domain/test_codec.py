"""How the API spells a time: RFC 3339, UTC, microseconds, ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

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
