"""Name rules and canonicalisation, with property tests."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cairn.domain.names import (
    name_key,
    validate_alias,
    validate_model_name,
)
from cairn.domain.semver import sort_key as semver_sort_key
from cairn.domain.semver import validate_semver
from cairn.errors import InvalidParameter

SAFE = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), max_codepoint=0x24F)
    | st.sampled_from("._-"),
    min_size=1,
    max_size=40,
).filter(lambda s: ".." not in s and s != ".")


def _valid(name: str) -> bool:
    try:
        validate_model_name(name)
    except InvalidParameter:
        return False
    return True


@given(st.text(max_size=300))
def test_validation_never_fails_with_anything_but_invalid_parameter(name: str) -> None:
    if _valid(name):
        assert "/" not in name and ":" not in name and ".." not in name and name != "."
        assert name == name.strip() and 1 <= len(name) <= 256
        assert all(unicodedata.category(c)[0] != "C" for c in name)


@given(st.text(min_size=1, max_size=40))
@example("ı")  # dotless i: upper() is "I", which folds to "i"
@example("ß")
def test_case_variants_share_a_key(name: str) -> None:
    assert name_key(name) == name_key(name.upper()) == name_key(name.lower())


@given(st.text(min_size=1, max_size=40))
def test_normal_forms_share_a_key(name: str) -> None:
    nfc, nfd = unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)
    assert name_key(nfc) == name_key(nfd)


@given(st.text(max_size=40))
@example("Vie\u0323\u0302t")  # Việt decomposed: two marks on one letter
@example("U\u0308\u0304ber")  # Ǖber decomposed
def test_normal_forms_are_equally_valid(name: str) -> None:
    """Two spellings of one name in different normal forms are the same name, so one is
    valid exactly when the other is (macOS hands out decomposed file and folder names)."""
    nfc, nfd = unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)
    assert _valid(nfc) == _valid(nfd), (nfc, nfd)


@given(SAFE)
def test_key_is_idempotent(name: str) -> None:
    assert name_key(name_key(name)) == name_key(name)


@pytest.mark.parametrize(
    "name",
    ["fraud", "risk.fraud-detector", "Model_1", "modèle", "модель", "模型", "日本語モデル", "a b"],
)
def test_good_names(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a/b", "'/'"),
        ("a:b", "':'"),
        ("a..b", "'..'"),
        (".", "no URL could reach it"),  # /models/. is /models/ to a browser, curl, a proxy
        ("ｆｒａｕｄ", "compatibility"),
        ("fr\u0430ud", "mixes scripts"),
        ("a\u200bb", "invisible"),
        ("a\u00adb", "invisible"),
        ("a\tb", "invisible or control"),
        ("a*b", "'*'"),
    ],
)
def test_bad_names_say_why(name: str, why: str) -> None:
    with pytest.raises(InvalidParameter, match=why.replace("(", r"\(")):
        validate_model_name(name)


def test_aliases() -> None:
    assert validate_alias("champion") == "champion"
    for bad in ("latest", "LATEST", "v1", "V22", "_x", "1a", "a b", ""):
        with pytest.raises(InvalidParameter):
            validate_alias(bad)


def test_semver_precedence() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
        "2.0.0",
    ]
    assert sorted(ordered, key=semver_sort_key) == ordered
    for bad in ("1.0", "01.0.0", "1.0.0-", "v1.0.0"):
        with pytest.raises(InvalidParameter):
            validate_semver(bad)
