from __future__ import annotations

import pytest

from cairn.domain.uris import ModelRef, parse_model_uri, parse_version_number
from cairn.errors import InvalidParameter


@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        ("models:/fraud/3", ModelRef("fraud", version=3)),
        ("models:/fraud@champion", ModelRef("fraud", alias="champion")),
        ("models:/fraud/latest", ModelRef("fraud", latest=True)),
        ("models:/fraud@latest", ModelRef("fraud", latest=True)),
        ("models:/risk.fraud v2/1", ModelRef("risk.fraud v2", version=1)),
    ],
)
def test_parse(uri: str, ref: ModelRef) -> None:
    assert parse_model_uri(uri) == ref
    assert parse_model_uri(str(ref)) == ref


@pytest.mark.parametrize(
    "uri",
    [
        "runs:/x/model",
        "models:/fraud",
        "models:/fraud/0",
        "models:/fraud/-1",
        "models:/a/b/1",
        "models:/fraud@v2",
        "models:/fraud/abc",
        "models://fraud/1",
        "models:/fraud/１",
    ],
)
def test_refused(uri: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_model_uri(uri)


def test_version_numbers() -> None:
    assert parse_version_number("12") == 12
    for bad in (True, 0, "0x1", " 1", "1.0", 2**31):
        with pytest.raises(InvalidParameter):
            parse_version_number(bad)
