"""MLflow's search dialect → Cairn's grammar (pure functions: no database)."""

from __future__ import annotations

import pytest

from cairn.api.mlflow.filters import translate_filter, translate_order_by
from cairn.api.mlflow.params import Params, page_size
from cairn.domain.filters import parse_filter
from cairn.errors import InvalidParameter


@pytest.mark.parametrize(
    ("mlflow", "cairn"),
    [
        ("name = 'iris'", "name = 'iris'"),
        ('name = "iris"', "name = 'iris'"),
        ("attribute.name != 'iris'", "name != 'iris'"),
        ("name LIKE 'ir%' AND name ILIKE '%IS'", "name LIKE 'ir%' AND name ILIKE '%IS'"),
        ("name IN ('a', \"b\")", "name IN ('a', 'b')"),
        ("name NOT IN ('a')", "name NOT IN ('a')"),
        ("run_id = 'r1'", "run_id = 'r1'"),
        ("run_id IN ('r1','r2')", "run_id IN ('r1', 'r2')"),
        ("source_path = 's3://b/k'", "source = 's3://b/k'"),
        ("source_path LIKE 'models:/m-%'", "source LIKE 'models:/m-%'"),
        ("version_number = 3", "version = 3"),
        ("version_number >= '2'", "version >= 2"),
        ("version_number <> 2", "version != 2"),
        ("tags.team = 'risk'", "tags.team = 'risk'"),
        # MLflow's tag != matches only what has the tag; its prompt tag is the exception
        ("tag.team != 'risk'", "tags.team LIKE '%' AND tags.team != 'risk'"),
        (
            "name = 'a' AND tags.`a b` != ''",
            "name = 'a' AND tags.`a b` LIKE '%' AND tags.`a b` != ''",
        ),
        ("tags.`mlflow.prompt.is_prompt` != 'true'", "tags.mlflow.prompt.is_prompt != 'true'"),
        ("tags.\"a key\" = 'v'", "tags.`a key` = 'v'"),
        ("tags.`it's` = 'it''s'", "tags.`it's` = 'it''s'"),
        ("tags.k IS NULL", "NOT tags.k LIKE '%'"),
        ("tags.k IS NOT NULL", "tags.k LIKE '%'"),
        ("name='a' and tags.k='v'", "name = 'a' AND tags.k = 'v'"),
        ("  ", None),
    ],
)
def test_translation(mlflow: str, cairn: str | None) -> None:
    assert translate_filter(mlflow, "versions") == cairn
    if cairn is not None:
        assert parse_filter(cairn, "versions") is not None  # Cairn's parser takes the result


@pytest.mark.parametrize(
    ("text", "target", "words"),
    [
        ("name = 'a' OR name = 'b'", "models", "Invalid clause(s) in filter string: OR"),
        ("(name = 'a')", "models", "Invalid clause(s) in filter string: ("),
        ("NOT name = 'a'", "models", "Invalid clause(s)"),
        ("name = 'a' AND", "models", "Invalid clause(s) in filter string: end"),
        ("version_number = 1", "models", "Invalid attribute key 'version_number'"),
        ("run_id = 'r'", "models", "Invalid attribute key 'run_id'"),
        ("metrics.auc > 1", "versions", "Invalid entity type 'metrics'"),
        ("stage = 'None'", "versions", "Invalid attribute key 'stage'"),
        ("name = iris", "versions", "Expected a quoted string value"),
        ("tags.k = 1", "versions", "Expected a quoted string value"),
        ("tags.k IN ('a')", "versions", "Invalid comparator 'IN'"),
        ("name < 'a'", "versions", "Invalid comparator '<'"),
        ("version_number = 'x'", "versions", "whole numbers"),
        ("version_number LIKE '1%'", "versions", "Invalid comparator 'LIKE'"),
        ("name IN 'a'", "versions", "parenthesised list"),
        ("name IN ('a' 'b')", "versions", "',' or ')'"),
        ("tags.k IS 'x'", "versions", "NULL"),
        ("name = 'a' ; DROP TABLE x", "versions", "Invalid clause(s)"),
        ("name @ 'a'", "versions", "Invalid clause(s) in filter string: @"),
        ("name 'a'", "versions", "Invalid comparison for 'name'"),
    ],
)
def test_refusals(text: str, target: str, words: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        translate_filter(text, target)  # type: ignore[arg-type]
    assert words in info.value.message


def test_order_by() -> None:
    assert translate_order_by([], "models") == ["name ASC"]
    assert translate_order_by([], "versions") == ["updated_at DESC", "name ASC", "version DESC"]
    assert translate_order_by(["creation_timestamp DESC"], "models") == [
        "created_at DESC",
        "name ASC",
    ]
    assert translate_order_by(["version_number", "name desc"], "versions") == [
        "version ASC",
        "name DESC",
    ]
    assert translate_order_by(["attribute.last_updated_timestamp"], "versions") == [
        "updated_at ASC",
        "name ASC",
        "version DESC",
    ]
    for bad in (["version_number"], ["tags.x"], ["name UP"], ["name ASC extra"], [""]):
        with pytest.raises(InvalidParameter):
            translate_order_by(bad, "models")


def test_max_results_is_clamped_never_refused_when_large() -> None:
    assert page_size(Params({}), 100) == 100
    assert page_size(Params({"max_results": 10_000}), 100) == 1000
    assert page_size(Params({"max_results": ["200000"]}, from_query=True), 100) == 1000
    assert page_size(Params({"max_results": "7"}), 100) == 7
    for bad in (0, -1, "x", True, 1.5):
        with pytest.raises(InvalidParameter):
            page_size(Params({"max_results": bad}), 100)
