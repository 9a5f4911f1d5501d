"""The registry's values: frozen dataclasses that every layer passes around."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, TypeVar

# re-exported: callers import the caller type with the other values
from cairn.domain.access import SYSTEM as SYSTEM
from cairn.domain.access import Actor as Actor
from cairn.errors import InvalidParameter

if TYPE_CHECKING:
    from cairn.domain.lineage import LineageInput

T = TypeVar("T")


class VersionStatus(StrEnum):
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


class Stage(StrEnum):
    """MLflow-style stages, kept for compatibility. Input is case-insensitive."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"

    @classmethod
    def parse(cls, value: object) -> Stage:
        if isinstance(value, str):
            for stage in cls:
                if stage.value.lower() == value.strip().lower():
                    return stage
        allowed = ", ".join(repr(s.value) for s in cls)
        raise InvalidParameter(f"stage {value!r} is not one of {allowed} (any case)")


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A model. ``latest_version``: its highest READY live version (None if none).
    ``last_version``: its version counter, the highest number it ever handed out (0 if
    none), deleted and purged versions included; the next version is above it, as numbers
    are never reused."""

    name: str
    description: str
    tags: Mapping[str, str]
    aliases: Mapping[str, int]
    latest_version: int | None
    last_version: int
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: int
    status: VersionStatus
    description: str
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    aliases: tuple[str, ...]
    stage: Stage
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    status_message: str = ""
    semver: str | None = None
    source: str | None = None
    run_id: str | None = None
    run_link: str | None = None
    files: tuple[FileEntry, ...] = ()
    lineage: tuple[LineageInput, ...] = ()  # recorded with the version (domain/lineage.py)
    size: int = 0
    digest: str | None = None
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias: ``from_version`` None means created, ``to_version`` None deleted."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str | None = None


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """What a caller supplies to create a version (validated by the service)."""

    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    semver: str | None = None
    source: str | None = None
    run_id: str | None = None
    run_link: str | None = None
    files: tuple[FileEntry, ...] = ()
    lineage: tuple[LineageInput, ...] = ()  # recorded with the version (domain/lineage.py)
