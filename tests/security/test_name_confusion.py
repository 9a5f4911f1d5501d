"""Name confusion: no two models may look alike, on SQLite and PostgreSQL.

A name that mixes scripts (a Cyrillic letter inside a Latin word) or hides an invisible
character is refused; names that differ only by case or Unicode normal form are one
model; and a name that is deleted and created again starts from nothing. Every check goes
through the native API and the MLflow-compatible one.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

MLFLOW = "/api/2.0/mlflow"

LOOKALIKES = {
    "cyrillic-a": "pаypal",  # U+0430
    "cyrillic-e": "modеl",  # U+0435
    "cyrillic-dze": "ѕcore",  # U+0455
    "greek-omicron": "fraud-detectοr",  # U+03BF
    "armenian-o": "rօot",  # U+0585
    "cherokee": "Ꭺlpha",  # U+13AA
}
INVISIBLES = {
    "zero-width-space": "fraud\u200b",
    "zero-width-non-joiner": "fr\u200caud",
    "zero-width-joiner": "fr\u200daud",
    "word-joiner": "fraud\u2060",
    "soft-hyphen": "fr\u00adaud",
    "byte-order-mark": "\ufefffraud",
    "left-to-right-mark": "fraud\u200e",
    "right-to-left-override": "fraud\u202ex",
    "arabic-letter-mark": "fraud\u061c",
    "mongolian-vowel-separator": "fraud\u180e",
    "no-break-space": "fraud\u00a0x",
    "ideographic-space": "fraud\u3000x",
    "hangul-filler": "fraud\u3164",
    "braille-blank": "fraud\u2800",
    "tab": "fraud\tx",
    "newline": "fraud\nx",
    "nul": "fraud\x00",
    "leading-space": " fraud",
    "trailing-space": "fraud ",
    "combining-mark-alone": "\u0301fraud",
}
# Default-ignorable characters that render as nothing after a letter.
IGNORABLES = {
    "combining-grapheme-joiner": "fraud\u034f",
    "variation-selector-16": "fraud\ufe0f",
    "variation-selector-1": "fraud\ufe00",
    "variation-selector-17": "fraud\U000e0100",
    "hangul-choseong-filler": "fraud\u115f",
    "hangul-jungseong-filler": "fraud\u1160",
}


def models(api: TestClient) -> list[str]:
    response = api.get("/api/v1/models", params={"max_results": 1000, "include_deleted": True})
    assert response.status_code == 200, response.text
    return sorted(m["name"] for m in response.json()["models"])


def error(response: Any) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error_code", "message"} and body["message"], body
    return response.status_code, body["error_code"]


def create_everywhere(api: TestClient, name: str) -> list[Any]:
    """Every way a name comes into being: native create and rename, MLflow create and
    rename (``existing`` is a model to rename)."""
    return [
        api.post("/api/v1/models", json={"name": name}),
        api.post(f"{MLFLOW}/registered-models/create", json={"name": name}),
        api.post("/api/v1/models/existing/rename", json={"new_name": name}),
        api.post(f"{MLFLOW}/registered-models/rename", json={"name": "existing", "new_name": name}),
        api.post("/api/v1/import/models", json={"name": name}),
    ]


@pytest.fixture
def existing(api: TestClient) -> list[str]:
    assert api.post("/api/v1/models", json={"name": "existing"}).status_code == 201
    return models(api)


def test_a_name_that_mixes_scripts_is_refused(api: TestClient, existing: list[str]) -> None:
    for kind, name in LOOKALIKES.items():
        assert any(c.isalpha() and not unicodedata.name(c).startswith("LATIN") for c in name)
        for response in create_everywhere(api, name):
            assert error(response) == (400, "INVALID_PARAMETER_VALUE"), (kind, response.url)
            assert "mixes scripts" in response.json()["message"], (kind, response.text)
    assert models(api) == existing


def test_a_lookalike_of_an_existing_model_cannot_be_created(api: TestClient) -> None:
    assert api.post("/api/v1/models", json={"name": "paypal"}).status_code == 201
    for name in ("pаypal", "pаypаl", "раураl"):  # one, two, all but one letter Cyrillic
        response = api.post("/api/v1/models", json={"name": name})
        assert error(response) == (400, "INVALID_PARAMETER_VALUE"), name
    assert models(api) == ["paypal"]


def test_a_name_in_one_other_script_is_a_name(api: TestClient) -> None:
    """Refusing look-alikes must not refuse other scripts written whole."""
    for name in ("модель", "μοντέλο", "模型-v2", "モデル.fraud", "모델_1", "café-déjà"):
        response = api.post("/api/v1/models", json={"name": name})
        assert response.status_code == 201, (name, response.text)
        assert api.get(f"/api/v1/models/{quote(name, safe='')}").json()["name"] == name


def test_a_name_with_an_invisible_character_is_refused(
    api: TestClient, existing: list[str]
) -> None:
    for kind, name in INVISIBLES.items():
        for response in create_everywhere(api, name):
            assert error(response) == (400, "INVALID_PARAMETER_VALUE"), (kind, response.url)
    assert models(api) == existing


def test_a_name_with_a_default_ignorable_character_is_refused(
    api: TestClient, existing: list[str]
) -> None:
    accepted = []
    for kind, name in IGNORABLES.items():
        response = api.post("/api/v1/models", json={"name": name})
        if response.status_code != 400:
            accepted.append(kind)
    assert not accepted
    assert models(api) == existing


@pytest.mark.parametrize(
    ("first", "variants"),
    [
        ("Fraud", ["fraud", "FRAUD", "fRaUd"]),
        ("Straße", ["STRASSE", "strasse", "straße", "STRAẞE"]),
        ("Café", ["café", "CAFÉ", "Cafe\u0301", "CAFE\u0301"]),  # NFC and NFD
        ("Ångström", ["A\u030angstro\u0308m", "\u212bngström"]),  # NFD; Angstrom sign
        ("Việt", ["Vie\u0323\u0302t", "VIE\u0323\u0302T"]),  # NFD: two marks on one letter
        ("Iı", ["ıi", "ii", "II"]),  # Turkish dotless i folds with I
    ],
)
def test_case_and_normal_form_variants_are_one_model(
    api: TestClient, first: str, variants: list[str]
) -> None:
    assert api.post("/api/v1/models", json={"name": first}).status_code == 201
    assert api.post("/api/v1/models", json={"name": "other"}).status_code == 201
    for name in variants:
        for response in (
            api.post("/api/v1/models", json={"name": name}),
            api.post(f"{MLFLOW}/registered-models/create", json={"name": name}),
            api.post("/api/v1/models/other/rename", json={"new_name": name}),
            api.post(
                f"{MLFLOW}/registered-models/rename", json={"name": "other", "new_name": name}
            ),
        ):
            assert response.status_code == 400, (name, response.request.url, response.text)
            assert error(response)[1] in ("RESOURCE_ALREADY_EXISTS", "INVALID_PARAMETER_VALUE")
        # Every spelling reaches the one model, over both APIs.
        got = api.get(f"/api/v1/models/{quote(name, safe='')}")
        assert got.status_code == 200 and got.json()["name"] == first, (name, got.text)
        got = api.get(f"{MLFLOW}/registered-models/get", params={"name": name})
        assert got.status_code == 200, (name, got.text)
        assert got.json()["registered_model"]["name"] == first
    assert models(api) == sorted([first, "other"])
    # A version created through a variant lands on the same model.
    created = api.post(f"/api/v1/models/{quote(variants[0], safe='')}/versions", json={})
    assert created.status_code == 201 and created.json()["name"] == first


def test_compatibility_characters_are_refused_not_folded(api: TestClient) -> None:
    """Full-width letters and ligatures would fold onto a plain name: refused outright."""
    assert api.post("/api/v1/models", json={"name": "file"}).status_code == 201
    for name in ("ﬁle", "ｆｉｌｅ", "ﬁ", "file²", "Ⅸ-model"):
        for response in create_everywhere(api, name):
            assert error(response) == (400, "INVALID_PARAMETER_VALUE"), (name, response.text)
    assert models(api) == ["file"]


def test_aliases_that_differ_only_by_case_are_one_alias(api: TestClient) -> None:
    api.post("/api/v1/models", json={"name": "m"})
    for _ in range(2):
        assert api.post("/api/v1/models/m/versions", json={}).status_code == 201
    assert api.put("/api/v1/models/m/aliases/prod", json={"version": 1}).status_code == 200
    assert api.put("/api/v1/models/m/aliases/PROD", json={"version": 2}).status_code == 200
    aliases = api.get("/api/v1/models/m").json()["aliases"]
    assert len(aliases) == 1 and list(aliases.values()) == [2], aliases
    assert api.get("/api/v1/models/m/aliases/Prod").json()["version"] == 2
    for alias in ("prоd", "pr\u200bod", "ｐｒｏｄ", "prod\u0301"):  # Cyrillic о, ZWSP, …
        response = api.put(f"/api/v1/models/m/aliases/{quote(alias, safe='')}", json={"version": 1})
        assert error(response) == (400, "INVALID_PARAMETER_VALUE"), alias
    assert len(api.get("/api/v1/models/m").json()["aliases"]) == 1


@pytest.mark.parametrize("how", ["native", "mlflow"])
def test_recreating_a_deleted_name_inherits_nothing(api: TestClient, how: str) -> None:
    api.post("/api/v1/models", json={"name": "Doomed", "tags": {"owner": "alice"}})
    for _ in range(3):
        assert api.post("/api/v1/models/Doomed/versions", json={}).status_code == 201
    assert api.put("/api/v1/models/Doomed/aliases/prod", json={"version": 3}).status_code == 200
    assert api.put("/api/v1/models/Doomed/aliases/prod", json={"version": 2}).status_code == 200
    if how == "native":
        assert api.delete("/api/v1/models/Doomed").status_code == 204
        again = api.post("/api/v1/models", json={"name": "DOOMED"})
        assert again.status_code == 201, again.text
    else:
        deleted = api.request(
            "DELETE", f"{MLFLOW}/registered-models/delete", json={"name": "Doomed"}
        )
        assert deleted.status_code == 200, deleted.text
        again = api.post(f"{MLFLOW}/registered-models/create", json={"name": "DOOMED"})
        assert again.status_code == 200, again.text
    model = api.get("/api/v1/models/doomed").json()
    assert model["name"] == "DOOMED"
    assert model["tags"] == {} and model["aliases"] == {} and model["latest_version"] is None
    assert api.get("/api/v1/models/doomed/versions").json()["versions"] == []
    assert error(api.get("/api/v1/models/doomed/versions/1")) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error(api.get("/api/v1/models/doomed/aliases/prod"))[0] == 404
    assert api.get("/api/v1/models/doomed/aliases/prod/history").json()["events"] == []
    assert api.get("/api/v1/models/doomed/alias-history").json()["events"] == []
    assert error(api.get("/api/v1/resolve", params={"uri": "models:/doomed@prod"}))[0] == 404
    mlflow_alias = api.get(
        f"{MLFLOW}/registered-models/alias", params={"name": "doomed", "alias": "prod"}
    )
    assert 400 <= mlflow_alias.status_code < 500
    # Numbers start again at 1 for the new model; the old versions stay out of reach.
    assert api.post("/api/v1/models/doomed/versions", json={}).json()["version"] == 1
    assert api.get("/api/v1/models/doomed").json()["aliases"] == {}
    search = api.get("/api/v1/search/versions", params={"filter": "alias = 'prod'"})
    assert search.status_code == 200 and search.json()["versions"] == []
