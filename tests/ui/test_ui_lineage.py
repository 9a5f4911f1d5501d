"""The version page's lineage section: inputs and derived versions as links, escaped, and
nothing of a model the reader may not see. SQLite and PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .conftest import V1, World, ok
from .test_ui_pages import signed_in, text_of

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MARKUP_URI = "s3://lake/<b>cards</b>"


def test_the_version_page_shows_its_lineage(
    api: TestClient, visitor: TestClient, world: World
) -> None:
    ok(api.post(f"{V1}/models/{world.hidden}/versions", json={}), 201)
    inputs = [
        {"kind": "dataset", "uri": MARKUP_URI, "role": "train", "digest": "v12"},
        {"kind": "code", "uri": "https://git.example/fraud.git", "commit": COMMIT},
        {"kind": "model_version", "uri": f"models:/{world.model}/1", "relation": "fine-tune"},
        {"kind": "model_version", "uri": f"models:/{world.hidden}/1", "relation": "distil"},
    ]
    ok(api.post(f"{V1}/lineage/models/{world.model}/versions/2/inputs", json={"inputs": inputs}))
    signed_in(visitor, world.reader)
    two = visitor.get(f"/models/{world.model}/versions/2")
    assert two.status_code == 200
    text = text_of(two)
    for shown in ("Lineage", "dataset (train)", MARKUP_URI, "v12", COMMIT, "fine-tune of"):
        assert shown in text, shown
    assert "<b>cards</b>" not in two.text  # escaped
    assert 'href="https://git.example/fraud.git"' in two.text
    assert f'href="/models/{world.model}/versions/1"' in two.text
    assert world.hidden not in two.text and "distil" not in text  # alice may not read it
    one = visitor.get(f"/models/{world.model}/versions/1")
    assert "Derived versions" in text_of(one)
    assert f'href="/models/{world.model}/versions/2"' in one.text
    assert "No recorded inputs." in text_of(one)


def test_the_version_page_names_the_deployments_serving_it(
    api: TestClient, visitor: TestClient, world: World
) -> None:
    body = {
        "model_uri": f"models:/{world.model}/1",
        "environment": "prod",
        "url": "https://x.test/a",
    }
    ok(api.put(f"{V1}/deployments/fraud-api", json=body))
    signed_in(visitor, world.reader)
    page = visitor.get(f"/models/{world.model}/versions/1")
    assert "Served by" in text_of(page) and "fraud-api" in text_of(page)
    assert 'href="https://x.test/a"' in page.text
