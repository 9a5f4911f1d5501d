"""Registered models through the stock MLflow client, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


def code_of(call: Callable[[], Any]) -> str:
    with pytest.raises(MlflowException) as info:
        call()
    return str(info.value.error_code)


def test_create_get_update_tag_rename_delete(registry: MlflowClient) -> None:
    before = int(time.time() * 1000)
    created = registry.create_registered_model(
        "fraud", tags={"team": "risk"}, description="first cut"
    )
    assert (created.name, created.description, created.tags) == (
        "fraud",
        "first cut",
        {"team": "risk"},
    )
    assert before - 5000 <= created.creation_timestamp <= int(time.time() * 1000) + 5000
    assert code_of(lambda: registry.create_registered_model("fraud")) == "RESOURCE_ALREADY_EXISTS"
    assert code_of(lambda: registry.create_registered_model("a/b")) == "INVALID_PARAMETER_VALUE"

    got = registry.get_registered_model("fraud")
    assert (got.name, got.description, got.tags, got.latest_versions) == (
        "fraud", "first cut", {"team": "risk"}, []
    )  # fmt: skip
    assert registry.get_registered_model("FRAUD").name == "fraud"  # one name, any case

    updated = registry.update_registered_model("fraud", description="second cut")
    assert updated.description == "second cut"
    assert updated.last_updated_timestamp >= created.last_updated_timestamp

    registry.set_registered_model_tag("fraud", "stage", "beta")
    registry.delete_registered_model_tag("fraud", "team")
    registry.delete_registered_model_tag("fraud", "absent")  # as in MLflow: no error
    assert registry.get_registered_model("fraud").tags == {"stage": "beta"}

    registry.rename_registered_model("fraud", "fraud-v2")  # MLflow's client returns None
    assert registry.get_registered_model("fraud-v2").tags == {"stage": "beta"}
    assert code_of(lambda: registry.get_registered_model("fraud")) == "RESOURCE_DOES_NOT_EXIST"
    registry.create_model_version("fraud-v2", "s3://bucket/fraud")

    registry.delete_registered_model("fraud-v2")
    assert code_of(lambda: registry.get_registered_model("fraud-v2")) == "RESOURCE_DOES_NOT_EXIST"
    assert code_of(lambda: registry.delete_registered_model("fraud-v2")) == (
        "RESOURCE_DOES_NOT_EXIST"
    )
    assert code_of(lambda: registry.update_registered_model("nope", "x")) == (
        "RESOURCE_DOES_NOT_EXIST"
    )
    registry.create_registered_model("fraud-v2")  # the name is free again; numbering restarts
    assert registry.create_model_version("fraud-v2", "s3://bucket/fraud").version == "1"


def names(models: Any) -> list[str]:
    return [m.name for m in models]


def test_search_filters_order_and_pages(registry: MlflowClient, live_server: str) -> None:
    for name, tags in [
        ("alpha", {"team": "risk"}),
        ("beta", {"team": "ml"}),
        ("gamma", {"team": "risk", "tier gold": "yes"}),
        ("delta", {}),
    ]:
        registry.create_registered_model(name, tags=tags)
    prompt = [{"key": "mlflow.prompt.is_prompt", "value": "true"}]  # the client refuses this
    created = httpx.post(
        f"{live_server}/api/2.0/mlflow/registered-models/create",
        json={"name": "my-prompt", "tags": prompt},
        headers={"Authorization": f"Bearer {os.environ['CAIRN_TOKEN']}"},
    )
    assert created.status_code == 200, created.text

    # The client appends `tag.`mlflow.prompt.is_prompt` != 'true'`: prompts never show.
    assert names(registry.search_registered_models()) == ["alpha", "beta", "delta", "gamma"]
    cases = {
        "tags.team = 'risk'": ["alpha", "gamma"],
        "tag.`team` != 'risk'": ["beta"],  # as MLflow: delta has no team tag at all
        "tags.`tier gold` = 'yes'": ["gamma"],
        "name LIKE 'g%'": ["gamma"],
        "name ILIKE 'AL%'": ["alpha"],
        "name IN ('beta', 'delta', 'nope')": ["beta", "delta"],
        "name != 'alpha' AND tags.team LIKE 'ri%'": ["gamma"],
        "attribute.name = 'beta'": ["beta"],
    }
    for filter_string, expected in cases.items():
        assert names(registry.search_registered_models(filter_string)) == expected, filter_string

    assert names(registry.search_registered_models(order_by=["name DESC"])) == [
        "gamma", "delta", "beta", "alpha"
    ]  # fmt: skip
    newest_first = registry.search_registered_models(order_by=["creation_timestamp DESC"])
    assert names(newest_first) == ["delta", "gamma", "beta", "alpha"]

    seen: list[str] = []
    token = None
    for _ in range(5):
        page = registry.search_registered_models(max_results=2, page_token=token)
        assert len(page) <= 2
        seen += names(page)
        token = page.token
        if not token:
            break
    assert seen == ["alpha", "beta", "delta", "gamma"]

    with pytest.raises(MlflowException) as info:
        registry.search_registered_models("name = 'alpha' OR name = 'beta'")
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "Invalid clause(s) in filter string: OR" in info.value.message
    assert code_of(lambda: registry.search_registered_models("version_number = 1")) == (
        "INVALID_PARAMETER_VALUE"
    )
    assert code_of(lambda: registry.search_registered_models(order_by=["tags.x"])) == (
        "INVALID_PARAMETER_VALUE"
    )


def test_search_ordered_by_timestamp(registry: MlflowClient) -> None:
    """``timestamp`` is the key MLflow recommends (and its UI sends) for the last update."""
    for name in ("alpha", "beta", "gamma"):
        registry.create_registered_model(name)
        time.sleep(0.01)  # millisecond timestamps: no two alike
    registry.update_registered_model("alpha", description="touched last")
    assert names(registry.search_registered_models(order_by=["timestamp DESC"])) == [
        "alpha", "gamma", "beta"
    ]  # fmt: skip
    assert names(registry.search_registered_models(order_by=["timestamp"])) == [
        "beta", "gamma", "alpha"
    ]  # fmt: skip
    assert names(registry.search_registered_models(order_by=["last_updated_timestamp DESC"])) == [
        "alpha", "gamma", "beta"
    ]  # fmt: skip
