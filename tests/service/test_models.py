"""Registered models through the service, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from cairn.domain.models import Actor
from cairn.errors import AlreadyExists, Conflict, InvalidParameter, NotFound
from cairn.service.registry import RegistryService

ALICE = Actor("alice", is_admin=True)


def test_create_and_get(service: RegistryService) -> None:
    created = service.create_model(
        ALICE, "risk.fraud-detector", description="# Fraud", tags={"team": "risk"}
    )
    assert created.name == "risk.fraud-detector"
    assert created.tags == {"team": "risk"}
    assert created.created_by == "alice"
    assert created.latest_version is None
    got = service.get_model(ALICE, "RISK.Fraud-Detector")  # same identity, any case
    assert got.name == "risk.fraud-detector"
    assert got.description == "# Fraud"


@pytest.mark.parametrize("twin", ["Fraud", "FRAUD", "ﬀraud"[0:0] + "fraud"])
def test_names_that_differ_only_by_case_are_the_same(service: RegistryService, twin: str) -> None:
    service.create_model(ALICE, "fraud")
    with pytest.raises(AlreadyExists):
        service.create_model(ALICE, twin)


def test_unicode_normal_forms_are_the_same_name(service: RegistryService) -> None:
    service.create_model(ALICE, "caf\u00e9")  # precomposed é
    with pytest.raises(AlreadyExists):
        service.create_model(ALICE, "cafe\u0301")  # e + combining acute


@pytest.mark.parametrize(
    "bad",
    [
        "a/b",
        "a:b",
        "a..b",
        " lead",
        "trail ",
        "two  spaces",
        "nul\x00",
        "zw\u200bsp",
        "",
        "x" * 257,
        "fr\u0430ud",
    ],  # the last mixes a Cyrillic а into Latin
)
def test_bad_names_are_refused_and_change_nothing(service: RegistryService, bad: str) -> None:
    with pytest.raises(InvalidParameter):
        service.create_model(ALICE, bad)
    assert service.search_models(ALICE).items == []


def test_update_rename_and_tags(service: RegistryService) -> None:
    service.create_model(ALICE, "m")
    service.update_model(ALICE, "m", description="new")
    service.set_model_tag(ALICE, "m", "team", "risk")
    service.set_model_tag(ALICE, "m", "team", "fraud")  # overwrite
    renamed = service.rename_model(ALICE, "m", "m2")
    assert renamed.name == "m2"
    assert renamed.description == "new"
    assert renamed.tags == {"team": "fraud"}
    with pytest.raises(NotFound):
        service.get_model(ALICE, "m")
    assert service.delete_model_tag(ALICE, "m2", "team").tags == {}
    with pytest.raises(NotFound):
        service.delete_model_tag(ALICE, "m2", "team")


def test_rename_onto_existing_name_is_refused(service: RegistryService) -> None:
    service.create_model(ALICE, "a")
    service.create_model(ALICE, "b")
    with pytest.raises(AlreadyExists):
        service.rename_model(ALICE, "a", "B")
    assert service.get_model(ALICE, "a").name == "a"


def test_rename_to_other_case_of_itself(service: RegistryService) -> None:
    service.create_model(ALICE, "model")
    assert service.rename_model(ALICE, "model", "Model").name == "Model"


def test_soft_delete_and_restore(service: RegistryService) -> None:
    service.create_model(ALICE, "m", tags={"k": "v"})
    service.create_version(ALICE, "m")
    service.delete_model(ALICE, "m")
    with pytest.raises(NotFound):
        service.get_model(ALICE, "m")
    assert service.search_models(ALICE).items == []
    assert [m.name for m in service.search_models(ALICE, include_deleted=True).items] == ["m"]
    restored = service.restore_model(ALICE, "m")
    assert restored.tags == {"k": "v"}
    assert restored.latest_version == 1


def test_recreating_a_deleted_name_starts_fresh_and_blocks_restore(
    service: RegistryService,
) -> None:
    service.create_model(ALICE, "m")
    service.create_version(ALICE, "m")
    service.set_alias(ALICE, "m", "prod", 1)
    service.delete_model(ALICE, "m")
    fresh = service.create_model(ALICE, "m")
    assert fresh.aliases == {}
    assert service.create_version(ALICE, "m").version == 1
    with pytest.raises(AlreadyExists):
        service.restore_model(ALICE, "m")


def test_restore_without_deleted_model(service: RegistryService) -> None:
    with pytest.raises(NotFound):
        service.restore_model(ALICE, "nothing")


def test_limits_on_descriptions_tags(service: RegistryService) -> None:
    with pytest.raises(InvalidParameter, match="limit"):
        service.create_model(ALICE, "m", description="x" * 70_000)
    with pytest.raises(InvalidParameter, match="limit"):
        service.create_model(ALICE, "m", tags={"k": "v" * 5001})
    with pytest.raises(InvalidParameter, match="limit"):
        service.create_model(ALICE, "m", tags={f"k{i}": "v" for i in range(201)})
    with pytest.raises(NotFound):
        service.get_model(ALICE, "m")


def test_idempotent_create_model(service: RegistryService) -> None:
    first = service.create_model(ALICE, "m", idempotency_key="k1")
    again = service.create_model(ALICE, "m", idempotency_key="k1")
    assert again == first
    with pytest.raises(Conflict, match="different request"):
        service.create_model(ALICE, "other", idempotency_key="k1")
    # the key belongs to its caller: another actor's same key is a separate request
    with pytest.raises(AlreadyExists):
        service.create_model(Actor("bob", is_admin=True), "m", idempotency_key="k1")


def test_list_is_paginated(service: RegistryService) -> None:
    for i in range(7):
        service.create_model(ALICE, f"m{i}")
    seen = []
    token = None
    while True:
        page = service.search_models(ALICE, max_results=3, page_token=token)
        seen += [m.name for m in page.items]
        if not page.next_page_token:
            break
        token = page.next_page_token
    assert seen == [f"m{i}" for i in range(7)]
    with pytest.raises(InvalidParameter):
        service.search_models(ALICE, max_results=100_000)


def test_a_search_page_holds_each_model_as_get_finds_it(service: RegistryService) -> None:
    """Tags, aliases and latest version of every model of a page (on PostgreSQL they come
    with the page's rows, on SQLite from a second statement) are those ``get_model`` finds."""
    service.create_model(ALICE, "b-plain")
    service.create_model(ALICE, "a-full", tags={"team": "risque—équipe ☃", "kind": "x"})
    service.create_model(ALICE, "c-versions", tags={"team": "risk"})
    for name in ("a-full", "a-full", "c-versions"):
        service.create_version(ALICE, name)
    for name, alias, number in [
        ("a-full", "zeta", 1),
        ("a-full", "Alpha", 2),
        ("c-versions", "prod", 1),
    ]:
        service.set_alias(ALICE, name, alias, number)
    page = service.search_models(ALICE, order_by=["name DESC"])
    names = ["c-versions", "b-plain", "a-full"]
    assert page.items == [service.get_model(ALICE, name) for name in names]
    assert page.items[2].aliases == {"Alpha": 2, "zeta": 1}
    assert [m.latest_version for m in page.items] == [1, None, 2]
    tagged = service.search_models(ALICE, "tags.team LIKE 'ris%'")
    assert [m.name for m in tagged.items] == ["a-full", "c-versions"]
