"""The SDK's interface, shared by the HTTP client and the local (in-process) client.

Both raise the same ``cairn.errors`` exceptions. Pagination helpers live here once.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

from cairn.domain.models import AliasEvent, ModelVersion, Page, RegisteredModel


class BaseClient(abc.ABC):
    """Methods of ``cairn.Client``; parameter names match the API and the CLI."""

    # -- registered models -------------------------------------------------------------
    @abc.abstractmethod
    def create_model(
        self,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> RegisteredModel: ...

    @abc.abstractmethod
    def get_model(self, name: str) -> RegisteredModel: ...

    @abc.abstractmethod
    def search_models(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[RegisteredModel]: ...

    @abc.abstractmethod
    def update_model(self, name: str, *, description: str | None = None) -> RegisteredModel: ...

    @abc.abstractmethod
    def rename_model(self, name: str, new_name: str) -> RegisteredModel: ...

    @abc.abstractmethod
    def set_model_tag(self, name: str, key: str, value: str) -> RegisteredModel: ...

    @abc.abstractmethod
    def delete_model_tag(self, name: str, key: str) -> RegisteredModel: ...

    @abc.abstractmethod
    def delete_model(self, name: str) -> None: ...

    @abc.abstractmethod
    def restore_model(self, name: str) -> RegisteredModel: ...

    # -- versions ----------------------------------------------------------------------
    @abc.abstractmethod
    def create_version(
        self,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        semver: str | None = None,
        source: str | None = None,
        run_id: str | None = None,
        run_link: str | None = None,
        idempotency_key: str | None = None,
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def get_version(self, name: str, version: int | str) -> ModelVersion: ...

    @abc.abstractmethod
    def resolve(self, uri: str, *, as_of: datetime | None = None) -> ModelVersion: ...

    @abc.abstractmethod
    def list_versions(
        self,
        name: str,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[ModelVersion]: ...

    @abc.abstractmethod
    def search_versions(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[ModelVersion]: ...

    @abc.abstractmethod
    def update_version(
        self,
        name: str,
        version: int | str,
        *,
        description: str | None = None,
        semver: str | None = None,
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def set_version_tag(
        self, name: str, version: int | str, key: str, value: str
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def delete_version_tag(self, name: str, version: int | str, key: str) -> ModelVersion: ...

    @abc.abstractmethod
    def transition_stage(
        self,
        name: str,
        version: int | str,
        stage: str,
        *,
        archive_existing_versions: bool = False,
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def delete_version(self, name: str, version: int | str) -> None: ...

    @abc.abstractmethod
    def restore_version(self, name: str, version: int | str) -> ModelVersion: ...

    # -- aliases -----------------------------------------------------------------------
    @abc.abstractmethod
    def set_alias(
        self, name: str, alias: str, version: int | str, *, expect: int | None = None
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def delete_alias(self, name: str, alias: str) -> None: ...

    @abc.abstractmethod
    def alias_history(
        self, name: str, alias: str | None = None, *, limit: int | None = None
    ) -> list[AliasEvent]: ...

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections; the client is unusable afterwards."""

    def __enter__(self) -> BaseClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- pagination helpers ------------------------------------------------------------
    def iter_models(self, filter: str | None = None, **kwargs: object) -> Iterator[RegisteredModel]:
        token: str | None = None
        while True:
            page = self.search_models(filter, page_token=token, **kwargs)  # type: ignore[arg-type]
            yield from page.items
            if not page.next_page_token:
                return
            token = page.next_page_token

    def iter_versions(self, filter: str | None = None, **kwargs: object) -> Iterator[ModelVersion]:
        token: str | None = None
        while True:
            page = self.search_versions(filter, page_token=token, **kwargs)  # type: ignore[arg-type]
            yield from page.items
            if not page.next_page_token:
                return
            token = page.next_page_token
