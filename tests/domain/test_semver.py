"""Semver ranges as npm writes them, and ``models:/NAME@RANGE`` URIs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.domain.semver import order_key, parse_range, sort_key, validate_semver
from cairn.domain.uris import parse_model_uri
from cairn.errors import InvalidParameter

CASES = {
    "^1.4.2": (["1.4.2", "1.9.0"], ["1.4.1", "2.0.0", "1.5.0-beta", "2.0.0-rc.1"]),
    "^0.4.2": (["0.4.2", "0.4.9"], ["0.5.0", "0.4.1"]),
    "^0.0.3": (["0.0.3"], ["0.0.4", "0.0.2"]),
    "^1.4": (["1.4.0", "1.99.0"], ["1.3.9", "2.0.0"]),
    "^0": (["0.0.0", "0.9.9"], ["1.0.0"]),
    "~1.4.2": (["1.4.2", "1.4.9"], ["1.5.0", "1.4.1"]),
    "~1": (["1.0.0", "1.9.0"], ["2.0.0"]),
    "1.4": (["1.4.0", "1.4.7"], ["1.5.0", "1.3.0"]),
    "1.x": (["1.0.0", "1.8.0"], ["2.0.0"]),
    "1.4.*": (["1.4.0", "1.4.8"], ["1.5.0"]),
    "1.4.2": (["1.4.2", "1.4.2+build.5"], ["1.4.3", "1.4.2-rc.1"]),
    "=1.4.2": (["1.4.2"], ["1.4.3"]),
    "*": (["0.0.1", "9.9.9"], ["1.0.0-rc.1"]),
    ">1.4": (["1.5.0"], ["1.4.9"]),
    ">1.4.2": (["1.4.3"], ["1.4.2"]),
    ">=1.4": (["1.4.0"], ["1.3.9"]),
    "<1.4": (["1.3.9"], ["1.4.0", "1.4.0-rc.1"]),
    "<=1.4": (["1.4.9"], ["1.5.0"]),
    ">= 1.2.0 <2": (["1.2.0", "1.99.0"], ["2.0.0", "1.1.0"]),
    "^1.0.0 || ^3": (["1.2.0", "3.1.0"], ["2.0.0"]),
    ">=2.0.0-rc.1": (["2.0.0-rc.1", "2.0.0-rc.2", "2.0.0", "3.0.0"], ["2.0.0-beta", "3.0.0-rc.1"]),
}


@pytest.mark.parametrize("text", list(CASES))
def test_a_range_holds_what_npm_says_it_holds(text: str) -> None:
    inside, outside = CASES[text]
    found = parse_range(text)
    assert [v for v in inside if not found.matches(v)] == []
    assert [v for v in outside if found.matches(v)] == []


@pytest.mark.parametrize(
    "text", ["1.x.2", "01.2", "^", "1.2.3.4", "abc", "1.x-rc.1", ">=1.2 foo", "1" * 300]
)
def test_a_malformed_range_is_refused(text: str) -> None:
    with pytest.raises(InvalidParameter, match="semver range"):
        parse_range(text)


def test_newest_is_by_precedence_not_by_text_and_skips_what_is_not_semver() -> None:
    labels = ["1.9.3", "1.10.0", "2.0.0-rc.1", "not a version", "1.10.0"]
    assert parse_range("*").newest(labels, str) == "1.10.0"
    assert parse_range("~1.9").newest(labels, str) == "1.9.3"
    assert parse_range("^3").newest(labels, str) is None


numbers = st.integers(min_value=0, max_value=30)
versions = st.tuples(numbers, numbers, numbers).map(lambda t: ".".join(map(str, t)))


@given(versions, versions)
def test_caret_and_tilde_agree_with_their_definitions(base: str, other: str) -> None:
    b, o = sort_key(base), sort_key(other)
    caret_level = next((i for i, n in enumerate(b[:3]) if n), 2) + 1
    assert parse_range("^" + base).matches(other) == (o >= b and o[:caret_level] == b[:caret_level])
    assert parse_range("~" + base).matches(other) == (o >= b and o[:2] == b[:2])
    assert parse_range(base).matches(other) == (base == other)
    assert parse_range(">=" + base).matches(other) == (o >= b)


def test_a_range_after_the_at_sign_is_a_semver_reference() -> None:
    ref = parse_model_uri("models:/fraud@^1.4")
    assert (ref.name, ref.alias, ref.semver is not None) == ("fraud", None, True)
    assert str(ref) == "models:/fraud@^1.4"
    assert parse_model_uri("models:/fraud@champion").alias == "champion"
    assert parse_model_uri("models:/fraud@>=1.2 <2").semver is not None
    with pytest.raises(InvalidParameter, match="semver range"):
        parse_model_uri("models:/fraud@1.x.2")


@pytest.mark.parametrize("text", ["1\u0661.0.0", "1.1\u0662.0", "1.0.0-rc.1\u0663"])
def test_digits_are_ascii_digits(text: str) -> None:
    """SemVer's digits are 0-9: '1\\u0661.0.0' is not version 11.0.0, nor a range of it."""
    with pytest.raises(InvalidParameter, match="semver"):
        validate_semver(text)
    with pytest.raises(InvalidParameter, match="semver range"):
        parse_range(text)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        (">=5.10000000001.9", "5.10000000005.0"),
        ("<=5.10000000001.0", "5.10000000000.7"),
        (">=5.9999999999.3", "5.10000000000.0"),
        ("^10000000000", "10000000000.2.0"),
    ],
)
def test_the_spans_of_a_range_hold_the_keys_of_its_labels_past_the_key_width(
    text: str, label: str
) -> None:
    """``semver_key`` caps each number at ten digits: the database's first cut must still
    take every label the range holds."""
    found = parse_range(text)
    assert found.matches(label)
    key = order_key(label)
    assert key is not None
    assert any(low <= key <= high for low, high in found.spans())
