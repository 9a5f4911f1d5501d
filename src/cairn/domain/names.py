"""Names: registered models, aliases, tag/param/metric keys, users and groups.

Pure rules, no I/O. A model name is case-preserving for display, but its identity is
``name_key(name)``: NFKC-normalised and case-folded (see there). Names that mix scripts (a Cyrillic
``а`` inside a Latin word) are refused, so no two models can look alike.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from confusable_homoglyphs import categories as _categories

from cairn.errors import InvalidParameter

MAX_NAME_LENGTH = 256
MAX_ALIAS_LENGTH = 255
MAX_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 5000
MAX_PARAM_VALUE_LENGTH = 6000
MAX_DESCRIPTION_LENGTH = 65536
MAX_SOURCE_LENGTH = 2048
MAX_RUN_ID_LENGTH = 256
MAX_ENTRIES = 200  # tags, params or metrics in one request

_PUNCT = frozenset("._-")
# Plain ASCII letters, digits, '.', '_', '-' and spaces: one script, no invisible,
# compatibility or control character, so only the structural rules remain to check.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._ -]+")
# Script mixes that are normal writing (UTS #39 "highly restrictive"); any other mix is refused.
_SCRIPT_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
ALIAS_PATTERN = r"[A-Za-z][A-Za-z0-9_-]*"
_ALIAS_RE = re.compile(ALIAS_PATTERN)
_RESERVED_ALIAS_RE = re.compile(r"(latest|v\d+)", re.IGNORECASE)

# Unicode's Default_Ignorable_Code_Point ranges: characters that render as nothing (some are
# letters or combining marks, so the category checks below would let them through).
_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def _ignorable(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _IGNORABLE)


def _describe(ch: str) -> str:
    return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')})"


def validate_model_name(name: object) -> str:
    """Return ``name`` unchanged if it is a valid registered model name, else raise."""
    if not isinstance(name, str):
        raise InvalidParameter("model name must be a string")
    if not name:
        raise InvalidParameter("model name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidParameter(
            f"model name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    if name != name.strip():
        raise InvalidParameter(f"model name {name!r} has leading or trailing white space")
    if ".." in name:
        raise InvalidParameter(f"model name {name!r} contains '..'")
    if name == ".":  # a URL's "this folder": browsers, curl and proxies drop the segment
        raise InvalidParameter(
            "model name '.' is refused: no URL could reach it (/models/. is /models/)"
        )
    if "  " in name:
        raise InvalidParameter(f"model name {name!r} contains two spaces in a row")
    if _PLAIN_NAME.fullmatch(name):
        return name
    # The characters of the composed form: a name is one name in every normal form, so a
    # decomposed spelling (macOS gives out decomposed names) passes exactly when it does.
    composed = unicodedata.normalize("NFC", name)
    for i, ch in enumerate(composed):
        if ch in "/:":
            raise InvalidParameter(
                f"model name {name!r} contains {ch!r}, which would break models:/ URIs; "
                "use letters, digits, '.', '_', '-' and single spaces"
            )
        if _ignorable(ch):
            raise InvalidParameter(
                f"model name {name!r} contains the invisible character {_describe(ch)}"
            )
        if ch == " " or ch in _PUNCT or ch.isalnum():
            continue
        category = unicodedata.category(ch)
        if category in ("Mn", "Mc") and i > 0 and composed[i - 1].isalpha():
            continue  # a combining mark on a letter (a decomposed é)
        if category[0] in "CZ":
            raise InvalidParameter(
                f"model name {name!r} contains the invisible or control character {_describe(ch)}"
            )
        raise InvalidParameter(
            f"model name {name!r} contains {ch!r}; use letters, digits, '.', '_', '-' "
            "and single spaces"
        )
    if unicodedata.normalize("NFKC", name) != composed:
        raise InvalidParameter(
            f"model name {name!r} contains compatibility characters (such as full-width "
            "letters or ligatures); write it with plain characters"
        )
    scripts = _categories.unique_aliases(name) - {"COMMON", "INHERITED"}
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _SCRIPT_MIXES):
        raise InvalidParameter(
            f"model name {name!r} mixes scripts ({', '.join(sorted(scripts))}); "
            "a name must be written in one script so it cannot imitate another"
        )
    return name


@functools.lru_cache(maxsize=4096)
def name_key(name: str) -> str:
    """The identity of a name: two names with the same key are the same model.

    NFKC, then upper-cased before case folding so that case pairs that fold apart
    (Turkish dotless ``ı`` and ``I``) still meet, then NFKC again so the key is stable.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).upper().casefold())


# Users, service accounts and groups: plain ASCII, compared case-insensitively.
_IDENTITY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


def is_identity_name(name: object) -> bool:
    """Whether ``name`` can be a user's or a group's name (none other is ever stored, so
    looking one up needs no query: a NUL or half a surrogate pair could not even be sent)."""
    return isinstance(name, str) and _IDENTITY_RE.fullmatch(name) is not None


def identity_key(name: str) -> str:
    """The identity of a user's or group's name: two names with the same key are the same
    account (``alice`` and ``ALICE``). The store looks accounts up by it."""
    return name.casefold()


def same_identity(a: str, b: str) -> bool:
    return identity_key(a) == identity_key(b)


def validate_identity(kind: str, name: object) -> str:
    if not is_identity_name(name):
        raise InvalidParameter(
            f"{kind} name must be 1-128 characters of letters, digits, '.', '_', '@', '-', "
            f"starting with a letter or digit; got {name!r}"
        )
    assert isinstance(name, str)
    return name


def validate_alias(alias: object) -> str:
    if not isinstance(alias, str) or not alias:
        raise InvalidParameter("alias must be a non-empty string")
    if len(alias) > MAX_ALIAS_LENGTH:
        raise InvalidParameter(f"alias is {len(alias)} characters long; the limit is 255")
    if not _ALIAS_RE.fullmatch(alias):
        raise InvalidParameter(
            f"alias {alias!r} is not valid; use letters, digits, '_' and '-', "
            "starting with a letter"
        )
    if _RESERVED_ALIAS_RE.fullmatch(alias):
        raise InvalidParameter(
            f"alias {alias!r} is reserved ('latest' and 'v<digits>' name versions)"
        )
    return alias


def alias_key(alias: str) -> str:
    return alias.lower()


def validate_key(kind: str, key: object) -> str:
    """Validate a tag, param or metric key (``kind`` names which, for messages)."""
    if not isinstance(key, str) or not key:
        raise InvalidParameter(f"{kind} key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidParameter(
            f"{kind} key {key[:40]!r}… is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}"
        )
    for ch in key:
        if unicodedata.category(ch)[0] == "C":
            raise InvalidParameter(f"{kind} key {key!r} contains the character {_describe(ch)}")
    return key


# JSON's \ud800-\udfff escapes decode to lone surrogates: not characters, and no database
# driver can encode them as UTF-8
_SURROGATE = re.compile("[\ud800-\udfff]")


def validate_text(kind: str, value: object, limit: int, *, allow_newlines: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidParameter(f"{kind} must be a string")
    if len(value) > limit:
        raise InvalidParameter(f"{kind} is {len(value)} characters long; the limit is {limit}")
    if "\x00" in value:
        raise InvalidParameter(f"{kind} contains a NUL character")
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        raise InvalidParameter(
            f"{kind} contains U+{ord(surrogate.group()):04X}, half of a UTF-16 surrogate pair, "
            "which is not a character; send the text as UTF-8"
        )
    if not allow_newlines and any(unicodedata.category(ch)[0] == "C" for ch in value):
        raise InvalidParameter(f"{kind} contains a control character")
    return value
