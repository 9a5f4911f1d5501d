"""Model versions, aliases, stages and copies through the stock MLflow client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

LOGGED = "models:/m-0123456789abcdef0123456789abcdef"  # an MLflow 3 logged-model source


def code_of(call: Callable[[], Any]) -> str:
    with pytest.raises(MlflowException) as info:
        call()
    return str(info.value.error_code)


def numbers(versions: Any) -> list[tuple[str, str]]:
    return [(v.name, v.version) for v in versions]


def test_version_lifecycle(registry: MlflowClient) -> None:
    registry.create_registered_model("iris")
    first = registry.create_model_version(
        "iris", LOGGED, run_id="r1", tags={"k": "v"}, description="logged model"
    )
    assert (first.name, first.version, first.status, first.current_stage) == (
        "iris", "1", "READY", "None"
    )  # fmt: skip
    assert (first.source, first.run_id, first.tags, first.description) == (
        LOGGED, "r1", {"k": "v"}, "logged model"
    )  # fmt: skip
    second = registry.create_model_version("iris", "s3://bucket/iris/2")
    assert (second.version, second.run_id, second.tags, second.description) == ("2", None, {}, "")

    assert registry.update_model_version("iris", "2", description="better").description == "better"
    registry.set_model_version_tag("iris", "2", "x", "y")
    registry.set_model_version_tag("iris", 2, "empty", "")
    assert registry.get_model_version("iris", "2").tags == {"x": "y", "empty": ""}
    registry.delete_model_version_tag("iris", "2", "x")
    registry.delete_model_version_tag("iris", "2", "absent")  # as in MLflow: no error
    assert registry.get_model_version("iris", "2").tags == {"empty": ""}
    assert registry.get_model_version_download_uri("iris", "2") == "s3://bucket/iris/2"
    assert registry.get_model_version_download_uri("iris", "1") == LOGGED  # the client's to resolve

    registry.delete_model_version("iris", "1")
    assert code_of(lambda: registry.get_model_version("iris", "1")) == "RESOURCE_DOES_NOT_EXIST"
    assert code_of(lambda: registry.delete_model_version("iris", "1")) == "RESOURCE_DOES_NOT_EXIST"
    assert registry.create_model_version("iris", "s3://bucket/iris/3").version == "3"  # not reused

    assert code_of(lambda: registry.get_model_version("iris", "9")) == "RESOURCE_DOES_NOT_EXIST"
    assert code_of(lambda: registry.get_model_version("iris", "x")) == "INVALID_PARAMETER_VALUE"
    assert code_of(lambda: registry.create_model_version("nope", "s3://b")) == (
        "RESOURCE_DOES_NOT_EXIST"
    )
    assert code_of(lambda: registry.set_model_version_tag("iris", "9", "k", "v")) == (
        "RESOURCE_DOES_NOT_EXIST"
    )


def test_search_versions(registry: MlflowClient) -> None:
    for name in ("a", "b"):
        registry.create_registered_model(name)
    for run_id, source in [("r1", "s3://a/1"), ("r2", "s3://a/2"), ("r1", "runs:/r1/model")]:
        registry.create_model_version("a", source, run_id=run_id, tags={"run": run_id})
    registry.create_model_version("b", LOGGED, run_id="r3")
    a1, a2, a3, b1 = ("a", "1"), ("a", "2"), ("a", "3"), ("b", "1")

    assert numbers(registry.search_model_versions()) == [b1, a3, a2, a1]  # last updated first
    registry.update_model_version("a", "1", description="touched")
    assert numbers(registry.search_model_versions()) == [a1, b1, a3, a2]
    cases = {
        "name = 'a'": [a1, a3, a2],
        "name='b'": [b1],
        "run_id = 'r1'": [a1, a3],
        "run_id IN ('r2', 'r3')": [b1, a2],
        "source_path = 's3://a/2'": [a2],
        "source_path LIKE 'models:/m-%'": [b1],
        "name = 'a' AND version_number >= 2": [a3, a2],
        "version_number < 2": [a1, b1],
        "tags.run = 'r1' AND source_path != 's3://a/1'": [a3],
        "tags.run != 'r1'": [a2],  # as MLflow: b1, without a run tag, is not a match
        "tag.`mlflow.prompt.is_prompt` != 'true'": [a1, b1, a3, a2],
    }
    for filter_string, expected in cases.items():
        assert numbers(registry.search_model_versions(filter_string)) == expected, filter_string

    ordered = registry.search_model_versions("name = 'a'", order_by=["version_number ASC"])
    assert numbers(ordered) == [a1, a2, a3]
    newest = registry.search_model_versions(order_by=["creation_timestamp DESC"])
    assert numbers(newest) == [b1, a3, a2, a1]

    by_name = ["name ASC", "version_number DESC"]
    first = registry.search_model_versions(max_results=3, order_by=by_name)
    assert numbers(first) == [a3, a2, a1] and first.token
    rest = registry.search_model_versions(max_results=3, order_by=by_name, page_token=first.token)
    assert numbers(rest) == [b1] and not rest.token
    assert code_of(lambda: registry.search_model_versions("name = 'a' OR name = 'b'")) == (
        "INVALID_PARAMETER_VALUE"
    )


def test_aliases(registry: MlflowClient) -> None:
    registry.create_registered_model("m")
    for _ in range(3):
        registry.create_model_version("m", "s3://bucket/m")
    registry.set_registered_model_alias("m", "champion", "2")
    registry.set_registered_model_alias("m", "challenger", 3)

    champion = registry.get_model_version_by_alias("m", "champion")
    assert (champion.version, champion.aliases) == ("2", ["champion"])
    assert registry.get_registered_model("m").aliases == {"champion": "2", "challenger": "3"}
    assert registry.get_model_version("m", "3").aliases == ["challenger"]
    assert registry.get_model_version_by_alias("m", "latest").version == "3"

    with pytest.raises(MlflowException) as info:
        registry.get_model_version_by_alias("m", "nope")
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"  # MLflow: 400, not 404
    assert "Registered model alias nope not found" in info.value.message
    assert code_of(lambda: registry.get_model_version_by_alias("ghost", "champion")) == (
        "RESOURCE_DOES_NOT_EXIST"
    )
    assert code_of(lambda: registry.set_registered_model_alias("m", "x", "9")) == (
        "RESOURCE_DOES_NOT_EXIST"
    )

    registry.set_registered_model_alias("m", "champion", "3")  # moves
    assert registry.get_model_version_by_alias("m", "champion").version == "3"
    registry.delete_registered_model_alias("m", "challenger")
    registry.delete_registered_model_alias("m", "challenger")  # as in MLflow: no error
    registry.delete_model_version("m", "3")  # deleting a version drops its aliases
    assert registry.get_registered_model("m").aliases == {}
    assert code_of(lambda: registry.get_model_version_by_alias("m", "champion")) == (
        "INVALID_PARAMETER_VALUE"
    )


@pytest.mark.filterwarnings("ignore:.*is deprecated since 2.9.0:FutureWarning")  # stages
def test_stages_and_latest_versions(registry: MlflowClient) -> None:
    registry.create_registered_model("m")
    for _ in range(4):
        registry.create_model_version("m", "s3://bucket/m")
    with pytest.warns(FutureWarning, match="transition_model_version_stage"):
        moved = registry.transition_model_version_stage("m", "1", "production")
    assert moved.current_stage == "Production"  # case-insensitive in, canonical out
    registry.transition_model_version_stage("m", "2", "Staging")
    registry.transition_model_version_stage("m", "3", "Production", archive_existing_versions=True)
    stages = {v.version: v.current_stage for v in registry.search_model_versions("name = 'm'")}
    assert stages == {"1": "Archived", "2": "Staging", "3": "Production", "4": "None"}

    def latest(**kwargs: Any) -> dict[str, str]:
        return {v.current_stage: v.version for v in registry.get_latest_versions("m", **kwargs)}

    with pytest.warns(FutureWarning, match="get_latest_versions"):
        assert latest(stages=["Production"]) == {"Production": "3"}
    assert latest() == {"None": "4", "Staging": "2", "Production": "3", "Archived": "1"}
    assert latest(stages=["staging", "ARCHIVED"]) == {"Staging": "2", "Archived": "1"}
    model = registry.get_registered_model("m")
    assert {v.current_stage: v.version for v in model.latest_versions} == latest()
    (found,) = registry.search_registered_models("name = 'm'")
    assert {v.current_stage: v.version for v in found.latest_versions} == latest()

    assert code_of(lambda: registry.transition_model_version_stage("m", "1", "Live")) == (
        "INVALID_PARAMETER_VALUE"
    )
    assert (
        code_of(
            lambda: registry.transition_model_version_stage(
                "m", "1", "Archived", archive_existing_versions=True
            )
        )
        == "INVALID_PARAMETER_VALUE"
    )
    assert code_of(lambda: registry.get_latest_versions("ghost")) == "RESOURCE_DOES_NOT_EXIST"


def test_copy_model_version_follows_the_source(registry: MlflowClient) -> None:
    registry.create_registered_model("src")
    registry.create_model_version("src", "s3://bucket/model", run_id="r1", tags={"k": "v"})
    copy = registry.copy_model_version("models:/src/1", "dst")  # creates "dst"
    assert (copy.name, copy.version, copy.source, copy.run_id, copy.tags) == (
        "dst", "1", "models:/src/1", "r1", {"k": "v"}
    )  # fmt: skip
    # As MLflow resolves a models:/ source to its storage location:
    assert registry.get_model_version_download_uri("dst", "1") == "s3://bucket/model"
    again = registry.copy_model_version("models:/dst/1", "dst")  # exists: a new version
    assert again.version == "2"
    assert registry.get_model_version_download_uri("dst", "2") == "s3://bucket/model"
