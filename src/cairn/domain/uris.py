"""``models:/`` URIs: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME/latest``,
and ``models:/NAME@RANGE``: the newest READY version whose semver label is in a semver
range (``@^1.4``, ``@~2.0.1``, ``@1.x``, ``@>=1.2 <2``; ``@*``: the newest by semver). A
range starts with a digit or one of ``^ ~ > < = *``, an alias with a letter."""

from __future__ import annotations

from dataclasses import dataclass

from cairn.domain.names import validate_alias, validate_model_name
from cairn.domain.semver import SemverRange, parse_range
from cairn.errors import InvalidParameter

SCHEME = "models:/"


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A reference to one version: exactly one of ``version``, ``alias``, ``latest`` and
    ``semver`` (a range) is set."""

    name: str
    version: int | None = None
    alias: str | None = None
    latest: bool = False
    semver: SemverRange | None = None

    def __str__(self) -> str:
        if self.semver is not None:
            return f"{SCHEME}{self.name}@{self.semver.text}"
        if self.alias is not None:
            return f"{SCHEME}{self.name}@{self.alias}"
        if self.latest:
            return f"{SCHEME}{self.name}/latest"
        return f"{SCHEME}{self.name}/{self.version}"


MAX_VERSION = 2**31 - 1


def parse_version_number(value: object) -> int:
    """A version number from an int or a decimal string; positive."""
    if isinstance(value, bool):
        raise InvalidParameter(f"version {value!r} is not a positive integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise InvalidParameter(f"version {value!r} is not a positive integer")
    if number < 1 or number > MAX_VERSION:
        raise InvalidParameter(f"version {value!r} is out of range")
    return number


def parse_model_uri(uri: str) -> ModelRef:
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise InvalidParameter(
            f"{uri!r} is not a model URI; use models:/NAME/VERSION, models:/NAME@ALIAS, "
            "models:/NAME/latest or models:/NAME@SEMVER-RANGE"
        )
    rest = uri[len(SCHEME) :]
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        validate_model_name(name)
        if alias == "latest":
            return ModelRef(name, latest=True)
        if alias[:1].isdigit() or alias[:1] in ("^", "~", ">", "<", "=", "*"):
            return ModelRef(name, semver=parse_range(alias))
        return ModelRef(name, alias=validate_alias(alias))
    if "/" not in rest:
        raise InvalidParameter(f"{uri!r} names no version; add /VERSION, @ALIAS or /latest")
    name, version = rest.rsplit("/", 1)
    validate_model_name(name)
    if version == "latest":
        return ModelRef(name, latest=True)
    return ModelRef(name, version=parse_version_number(version))
