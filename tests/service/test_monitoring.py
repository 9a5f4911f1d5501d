"""The reads that show deployments at work, through the service, on SQLite and PostgreSQL:
each deployment's event in force, one deployment's feedback per version, the latest points."""

from __future__ import annotations

import pytest
from tests.service.test_deployments import (  # the clock fixture, and who is who
    OUTSIDER,
    READER,
    WRITER,
    Clock,
    clock,
    points,
    t,
)

from cairn.domain.access import SYSTEM
from cairn.errors import InvalidParameter, NotFound
from cairn.service.registry import RegistryService

__all__ = ["clock"]  # a fixture, used by name


@pytest.fixture
def moved(service: RegistryService, clock: Clock) -> RegistryService:
    """``api`` served v1 from minute 0, v2 from minute 10; ``canary`` v2 from minute 5;
    ``gone`` v1 from minute 1, retired at minute 2; ``other`` serves other.model."""
    clock.at(0)
    service.set_deployment(WRITER, "api", "models:/risk.fraud/1", environment="prod")
    clock.at(1)
    service.set_deployment(WRITER, "gone", "models:/risk.fraud/1", environment="prod")
    clock.at(2)
    service.retire_deployment(WRITER, "gone")
    clock.at(5)
    service.set_deployment(WRITER, "canary", "models:/risk.fraud/2", environment="staging")
    clock.at(10)
    service.set_deployment(WRITER, "api", "models:/risk.fraud@production", reason="better")
    service.set_deployment(SYSTEM, "other", "models:/other.model/1", environment="prod")
    clock.at(30)
    service.push_feedback(
        WRITER,
        "api",
        points(("lat", 50, 1), ("lat", 54, 2), ("err", 0.1, 3))  # v1
        + points(("lat", 40, 11), ("lat", 42, 12), ("lat", 44, 13)),  # v2
    )
    service.push_feedback(WRITER, "canary", points(("lat", 1000, 6)))  # v2, elsewhere
    return service


def test_current_events_say_since_when_and_by_whom(moved: RegistryService) -> None:
    found = moved.current_deployment_events(READER, ["api", "API", "gone", "other", "nothing"])
    assert sorted(found) == ["api", "gone"]  # other: not readable; nothing: no such
    api = found["api"]
    assert (api.from_version, api.to_version, api.at, api.actor, api.reason) == (
        1,
        2,
        t(10),
        "wanda",
        "better",
    )
    assert api.until is None and api.alias == "production"
    gone = found["gone"]
    assert (gone.from_version, gone.to_version, gone.at) == (1, None, t(2))  # retired then
    assert moved.current_deployment_events(OUTSIDER, ["api", "gone"]) == {}
    assert sorted(moved.current_deployment_events(SYSTEM, ["api", "other"])) == ["api", "other"]
    assert moved.current_deployment_events(READER, []) == {}
    with pytest.raises(InvalidParameter):
        moved.current_deployment_events(READER, ["bad/name"])
    with pytest.raises(InvalidParameter, match="at most 1000"):
        moved.current_deployment_events(READER, [f"d{i}" for i in range(1001)])


def test_a_deployment_summary_counts_its_own_points_only(moved: RegistryService) -> None:
    two = {s.key: s for s in moved.deployment_feedback_summary(READER, "api", 2)}
    assert list(two) == ["lat"]  # canary's 1000 ms is not api's
    lat = two["lat"]
    assert (lat.count, lat.min, lat.max, lat.mean, lat.last, lat.last_at) == (
        3,
        40,
        44,
        42,
        44,
        t(13),
    )
    one = {s.key: (s.count, s.mean) for s in moved.deployment_feedback_summary(READER, "api", 1)}
    assert one == {"err": (1, 0.1), "lat": (2, 52)}
    # over every deployment, the version's own summary counts the canary too
    every = {s.key: s.count for s in moved.feedback_summary(READER, "risk.fraud", 2)}
    assert every == {"lat": 4}
    assert moved.deployment_feedback_summary(READER, "api", 3) == []  # never served there
    assert moved.deployment_feedback_summary(READER, "api", 99) == []  # no such version
    for name in ("other", "no-such"):
        with pytest.raises(NotFound, match=f"deployment '{name}' does not exist"):
            moved.deployment_feedback_summary(READER, name, 1)
    with pytest.raises(InvalidParameter):
        moved.deployment_feedback_summary(READER, "api", "abc")


def test_the_latest_points_of_each_key(moved: RegistryService) -> None:
    latest = moved.recent_deployment_feedback(READER, "api", 2, per_key=2)
    assert {k: [(p.value, p.at) for p in v] for k, v in latest.items()} == {
        "lat": [(42, t(12)), (44, t(13))]  # the latest two, oldest first
    }
    assert latest["lat"][0].deployment == "api" and latest["lat"][0].version == 2
    every = moved.recent_deployment_feedback(READER, "api", 1)
    assert {k: [p.value for p in v] for k, v in every.items()} == {"err": [0.1], "lat": [50, 54]}
    for bad in (0, 501, True, "2"):
        with pytest.raises(InvalidParameter, match="per_key"):
            moved.recent_deployment_feedback(READER, "api", 2, per_key=bad)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        moved.recent_deployment_feedback(OUTSIDER, "api", 2)
