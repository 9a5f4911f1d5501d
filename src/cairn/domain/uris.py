"""``models:/`` URIs: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME/latest``."""

from __future__ import annotations

from dataclasses import dataclass

from cairn.domain.names import validate_alias, validate_model_name
from cairn.errors import InvalidParameter

SCHEME = "models:/"


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A reference to one version: exactly one of ``version``, ``alias``, ``latest`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None
    latest: bool = False

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{SCHEME}{self.name}@{self.alias}"
        if self.latest:
            return f"{SCHEME}{self.name}/latest"
        return f"{SCHEME}{self.name}/{self.version}"


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
    if number < 1 or number > 2**31 - 1:
        raise InvalidParameter(f"version {value!r} is out of range")
    return number


def parse_model_uri(uri: str) -> ModelRef:
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise InvalidParameter(
            f"{uri!r} is not a model URI; use models:/NAME/VERSION, models:/NAME@ALIAS "
            "or models:/NAME/latest"
        )
    rest = uri[len(SCHEME) :]
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        validate_model_name(name)
        if alias == "latest":
            return ModelRef(name, latest=True)
        return ModelRef(name, alias=validate_alias(alias))
    if "/" not in rest:
        raise InvalidParameter(f"{uri!r} names no version; add /VERSION, @ALIAS or /latest")
    name, version = rest.rsplit("/", 1)
    validate_model_name(name)
    if version == "latest":
        return ModelRef(name, latest=True)
    return ModelRef(name, version=parse_version_number(version))
