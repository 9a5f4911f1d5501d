"""The deployment pages and the version page's monitoring, in-process, on SQLite and
PostgreSQL: what they show, markup shown as text, filters, empty states, and nothing of a
model the reader may not see."""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from cairn.domain.codec import format_time, parse_time
from cairn.ui.render import change, rfc3339, sparkline

from .conftest import PASSWORD, V1, XSS, World, ok
from .test_ui_pages import signed_in, text_of

HOSTILE_URL = 'https://fraud.example/predict?x="><script>alert(1)</script>'
V1_LATENCY = (50.0, 52.0, 54.0)  # mean 52
V2_LATENCY = (40.0, 41.0, 42.0, 43.0)  # mean 41.5: -20.2%


@dataclass(frozen=True)
class Deployed:
    name: str = "fraud-api"  # risk.fraud: v1, then v2; feedback on both
    staging: str = "fraud-staging"  # risk.fraud v2, in staging, no feedback
    hidden: str = "vault-api"  # vault.secret's: alice may not read it
    retired: str = "fraud-old"  # risk.fraud v1, retired


def at(base: str, ms: int) -> str:
    time_ = parse_time(base)
    assert time_ is not None
    return format_time(time_ + timedelta(milliseconds=ms))


def push(api: TestClient, name: str, points: list[dict[str, Any]]) -> Any:
    return ok(api.post(f"{V1}/deployments/{name}/feedback", json={"points": points}), 201)


@pytest.fixture
def deployed(api: TestClient, world: World) -> Deployed:
    """As the admin, over the API: ``fraud-api`` in prod served v1, then v2 (a markup
    reason, a markup URL); latency on both, an error rate on v1 only, a markup key with a
    markup label on v2. Beside it a staging deployment, a retired one, and one of the model
    alice may not read. Points are timed within each version's span (a short sleep makes
    room for them: a point may not be from the future)."""
    d = Deployed()
    ok(api.post(f"{V1}/models/{world.hidden}/versions", json={}), 201)
    ok(
        api.put(
            f"{V1}/deployments/{d.hidden}",
            json={"model_uri": f"models:/{world.hidden}/1", "environment": "prod"},
        )
    )
    body = {"model_uri": f"models:/{world.model}/1", "environment": "prod", "url": HOSTILE_URL}
    ok(api.put(f"{V1}/deployments/{d.name}", json={**body, "reason": "launch"}))
    time.sleep(0.05)
    moved = {"model_uri": f"models:/{world.model}@champion", "reason": XSS}
    ok(api.put(f"{V1}/deployments/{d.name}", json=moved))
    time.sleep(0.05)
    history = ok(api.get(f"{V1}/deployments/{d.name}/history"))["events"]
    v2_at, v1_at = history[0]["at"], history[1]["at"]
    points = [
        {"key": "latency_ms", "value": v, "timestamp": at(v1_at, i * 5)}
        for i, v in enumerate(V1_LATENCY)
    ]
    points.append({"key": "error_rate", "value": 0.01, "timestamp": at(v1_at, 1)})
    points += [
        {"key": "latency_ms", "value": v, "timestamp": at(v2_at, i * 5)}
        for i, v in enumerate(V2_LATENCY)
    ]
    points.append({"key": XSS, "value": 0.5, "timestamp": at(v2_at, 30), "labels": {"r": XSS}})
    receipt = push(api, d.name, points)
    assert receipt["versions"] == {"1": 4, "2": 5}, receipt
    staging = {"model_uri": f"models:/{world.model}/2", "environment": "staging"}
    ok(api.put(f"{V1}/deployments/{d.staging}", json=staging))
    old = {"model_uri": f"models:/{world.model}/1", "environment": "prod"}
    ok(api.put(f"{V1}/deployments/{d.retired}", json=old))
    ok(api.post(f"{V1}/deployments/{d.retired}/retire", json={"reason": "replaced"}))
    return d


def plain(markup: str) -> str:
    """The text a reader sees: no tags, entities decoded, white space collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def row(markup: str, key: str) -> str:
    """The plain text of the first table row whose first cell is ``key``."""
    return plain(markup.split(f'<td class="mono">{key}</td>', 1)[1].split("</tr>", 1)[0])


def rows(page: Any) -> list[str]:
    """The deployments a list page links to, in order."""
    return re.findall(r'<td><a href="/deployments/[^"]*">([^<]*)</a></td>', page.text)


# -- the list --------------------------------------------------------------------------------


def test_the_list_shows_what_each_deployment_serves_since_when_and_by_whom(
    visitor: TestClient, world: World, deployed: Deployed
) -> None:
    signed_in(visitor, world.reader)
    page = visitor.get("/deployments")
    assert page.status_code == 200
    # alice reads risk.fraud only: vault.secret's deployment is not listed; retired are hidden
    assert rows(page) == [deployed.name, deployed.staging]
    assert deployed.hidden not in page.text and world.hidden not in page.text
    assert deployed.retired not in page.text
    text = text_of(page)
    assert f'href="/deployments/{deployed.name}"' in page.text
    assert f'href="/models/{world.model}/versions/2"' in page.text  # what it serves
    assert "@champion" in text  # the alias it was given through
    history = ok(visitor.get(f"{V1}/deployments/{deployed.name}/history"))["events"]
    since = parse_time(history[0]["at"])
    assert f'<time datetime="{rfc3339(since)}">' in page.text  # since it serves v2
    assert "<td>admin</td>" in page.text  # by whom (the bootstrap administrator)
    # a URL with markup: text, and an escaped link, never markup
    assert "<script>alert(1)</script>" not in page.text
    assert HOSTILE_URL in text
    assert f'href="{escape(HOSTILE_URL)}"' in page.text


def test_the_list_filters_by_environment_and_model_and_shows_retired_when_asked(
    visitor: TestClient, api: TestClient, world: World, deployed: Deployed
) -> None:
    signed_in(visitor, world.admin)
    assert rows(visitor.get("/deployments")) == [deployed.name, deployed.staging, deployed.hidden]
    staging = visitor.get("/deployments", params={"environment": "staging"})
    assert rows(staging) == [deployed.staging]
    assert 'value="staging"' in staging.text  # kept in the form
    model = visitor.get("/deployments", params={"model": world.model})
    assert rows(model) == [deployed.name, deployed.staging]
    assert 'href="/deployments?model=risk.fraud"' in visitor.get(f"/models/{world.model}").text
    everything = visitor.get("/deployments", params={"model": world.model, "retired": "1"})
    assert rows(everything) == [deployed.name, deployed.retired, deployed.staging]
    assert "RETIRED" in everything.text and " checked" in everything.text
    none = visitor.get("/deployments", params={"environment": "qa"})
    assert none.status_code == 200 and "No deployments match" in none.text
    assert 'href="/deployments">Show every deployment' in none.text
    bad = visitor.get("/deployments", params={"environment": "not valid!"})
    assert bad.status_code == 400 and "environment" in text_of(bad)
    assert 'role="alert"' in bad.text and 'value="not valid!"' in bad.text
    for i in range(52):  # a second page keeps the filters
        ok(
            api.put(
                f"{V1}/deployments/bulk-{i:02d}",
                json={"model_uri": f"models:/{world.model}/1", "environment": "bulk"},
            )
        )
    first = visitor.get("/deployments", params={"environment": "bulk"})
    assert len(rows(first)) == 50
    next_link = first.text.split('rel="next" href="')[1].split('"')[0]
    assert "environment=bulk" in next_link
    second = visitor.get(html.unescape(next_link))
    assert rows(second) == ["bulk-50", "bulk-51"]


def test_a_reader_cannot_filter_by_a_model_they_may_not_read(
    visitor: TestClient, world: World, deployed: Deployed
) -> None:
    signed_in(visitor, world.reader)
    hidden = visitor.get("/deployments", params={"model": world.hidden})
    ghost = visitor.get("/deployments", params={"model": "vault.ghost"})
    assert hidden.status_code == ghost.status_code == 404
    assert hidden.text.replace(world.hidden, "vault.ghost") == ghost.text
    assert deployed.hidden not in hidden.text


def test_an_empty_list_says_what_to_do(visitor: TestClient, api: TestClient) -> None:
    ok(api.post(f"{V1}/users", json={"name": "eve", "password": PASSWORD}), 201)
    signed_in(visitor, "eve")
    empty = text_of(visitor.get("/deployments"))
    assert "No deployments that you may read" in empty
    assert "cairn deployments set" in empty and "cairn grants set user:eve" in empty
    assert 'href="/deployments">Deployments</a>' in visitor.get("/models").text  # navigation


# -- a deployment ----------------------------------------------------------------------------


def test_the_deployment_page_shows_its_state_history_and_feedback(
    visitor: TestClient, world: World, deployed: Deployed
) -> None:
    signed_in(visitor, world.reader)
    page = visitor.get(f"/deployments/{deployed.name}")
    assert page.status_code == 200, page.text
    assert f"<h1>{deployed.name} " in page.text
    assert f'href="/models/{world.model}/versions/2">v2</a> through' in page.text
    assert f'href="/models/{world.model}/aliases/champion"' in page.text
    assert f'href="{escape(HOSTILE_URL)}"' in page.text
    # the history, newest first, with who and why; the reason is text
    history = page.text.split("<h2>History</h2>", 1)[1]
    assert history.index("moved") < history.index("set to")
    assert "launch" in history and str(escape(XSS)) in history
    assert XSS not in page.text and "<script>alert(1)</script>" not in page.text
    # the monitoring table: v2 now beside v1 before, per key
    monitoring = page.text.split("<h2>Monitoring</h2>", 1)[1].split("<h2>History</h2>", 1)[0]
    assert "now: v2" in plain(monitoring) and "before: v1" in plain(monitoring)
    # count, mean, min – max, last on v2; the same on v1; the mean's change
    assert row(monitoring, "latency_ms") == "4 41.5 40 – 43 43 3 52 50 – 54 54 -20.2%"
    assert row(monitoring, "error_rate") == "no points 1 0.01 0.01 – 0.01 0.01"  # v1 only
    # a sparkline of the latest points of v2, drawn on the server
    assert '<svg class="spark"' in page.text
    assert f'points="{sparkline(V2_LATENCY)}"' in page.text
    # the latest points, with their labels; a markup key and label are text
    assert str(escape(XSS)) in page.text.split("Latest points", 1)[1]
    assert "<th></th>" not in page.text


def test_a_deployment_without_feedback_and_a_retired_one(
    visitor: TestClient, api: TestClient, world: World, deployed: Deployed
) -> None:
    signed_in(visitor, world.reader)
    staging = visitor.get(f"/deployments/{deployed.staging}")
    assert staging.status_code == 200
    text = text_of(staging)
    assert "No feedback on v2 from this deployment yet" in text
    assert f"cairn feedback push {deployed.staging} --metric KEY=VALUE" in text
    assert "set to v2" in plain(staging.text)
    retired = visitor.get(f"/deployments/{deployed.retired}")
    assert retired.status_code == 200
    text = plain(retired.text)
    assert "serves RETIRED nothing since 20" in text, text
    assert "retired (was v1 )" in text and "replaced" in text
    assert "No feedback on v1, the last version it served, from this deployment." in text
    # feedback from while it served: the last version it served, alone
    served = ok(api.get(f"{V1}/deployments/{deployed.retired}/history"))["events"][1]["at"]
    push(api, deployed.retired, [{"key": "latency_ms", "value": 7, "timestamp": served}])
    again = visitor.get(f"/deployments/{deployed.retired}").text
    assert "last served: v1" in plain(again) and '<th rowspan="2">change</th>' not in again
    assert row(again, "latency_ms") == "1 7 7 – 7 7"
    assert '<svg class="spark"' not in again


def test_a_deployment_of_an_unreadable_model_is_not_found(
    visitor: TestClient, world: World, deployed: Deployed
) -> None:
    signed_in(visitor, world.reader)
    hidden = visitor.get(f"/deployments/{deployed.hidden}")
    ghost = visitor.get("/deployments/no-such-api")
    assert hidden.status_code == ghost.status_code == 404
    assert hidden.text.replace(deployed.hidden, "no-such-api") == ghost.text
    assert "<h1>Not found</h1>" in hidden.text and world.hidden not in hidden.text
    assert visitor.get("/deployments/bad%3Aname").status_code == 400
    signed_in(visitor, world.admin)  # the administrator reads it
    assert visitor.get(f"/deployments/{deployed.hidden}").status_code == 200


# -- the version page ------------------------------------------------------------------------


def test_the_version_page_summarises_its_feedback(
    visitor: TestClient, api: TestClient, world: World, deployed: Deployed
) -> None:
    signed_in(visitor, world.reader)
    two = visitor.get(f"/models/{world.model}/versions/2")
    assert two.status_code == 200
    monitoring = two.text.split("<h2>Monitoring</h2>", 1)[1].split("</section>", 1)[0]
    # count, mean, min, max, last, and when the last was measured
    assert row(monitoring, "latency_ms").startswith("4 41.5 40 43 43 20")
    assert str(escape(XSS)) in monitoring and XSS not in two.text
    assert "error_rate" not in monitoring  # v1's
    # the deployments serving it are links to their pages
    assert f'href="/deployments/{deployed.name}"' in two.text
    one = visitor.get(f"/models/{world.model}/versions/1").text
    assert row(one, "latency_ms").startswith("3 52 50 54 54 20")
    assert row(one, "error_rate").startswith("1 0.01 0.01 0.01 0.01 20")
    ok(api.post(f"{V1}/models/{world.model}/versions", json={}), 201)
    three = text_of(visitor.get(f"/models/{world.model}/versions/3"))
    assert "No monitoring feedback for this version" in three
    assert "cairn feedback push NAME --metric KEY=VALUE" in three


# -- the helpers -----------------------------------------------------------------------------


def test_sparkline_and_change() -> None:
    assert sparkline([]) == sparkline([1.0]) == ""
    assert sparkline([1.0, 1.0]) == "0.0,12.0 120.0,12.0"  # flat: in the middle
    assert sparkline([0.0, 10.0, 5.0]) == "0.0,22.0 60.0,2.0 120.0,12.0"  # highest on top
    assert change(52.0, 41.5) == "-20.2%"
    assert change(0.0, 0.002) == "+0.002"
    assert change(3.0, 3.0) == "±0"
