"""``select_files``: which files of a version a partial pull takes."""

from __future__ import annotations

import pytest

from cairn.domain.models import FileEntry
from cairn.domain.paths import select_files
from cairn.errors import InvalidParameter

FILES = tuple(
    FileEntry(p, 1, "sha256:" + "0" * 64)
    for p in (
        "config.json",
        "model-00001.bin",
        "model-00002.bin",
        "tokenizer/tokenizer.json",
        "tokenizer/vocab.txt",
        "README.md",
    )
)


def paths(include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> list[str]:
    return [f.path for f in select_files(FILES, include, exclude)]


def test_no_pattern_takes_everything() -> None:
    assert paths() == [f.path for f in FILES]


def test_star_crosses_folders_and_a_trailing_slash_is_a_folder() -> None:
    assert paths(("*.json",)) == ["config.json", "tokenizer/tokenizer.json"]
    assert paths(("tokenizer/",)) == ["tokenizer/tokenizer.json", "tokenizer/vocab.txt"]
    assert paths(("model-0000?.bin", "README.md")) == [
        "model-00001.bin",
        "model-00002.bin",
        "README.md",
    ]


def test_exclude_wins_over_include() -> None:
    assert paths(exclude=("model-*",)) == [
        "config.json",
        "tokenizer/tokenizer.json",
        "tokenizer/vocab.txt",
        "README.md",
    ]
    assert paths(("tokenizer/",), ("*.txt",)) == ["tokenizer/tokenizer.json"]


def test_an_include_that_selects_nothing_is_refused() -> None:
    with pytest.raises(InvalidParameter, match=r"no file matches '\*.safetensors'"):
        select_files(FILES, ["*.safetensors"])
    with pytest.raises(InvalidParameter, match="once '\\*' is left out"):
        select_files(FILES, ["*.md"], ["*"])
    with pytest.raises(InvalidParameter, match="non-empty"):
        select_files(FILES, [""])
    assert select_files(FILES, (), ["*"]) == ()  # only an exclude: nothing is asked for
