"""The lineage methods of ``cairn.Client`` (both modes): a part of ``BaseClient``.

Inputs are ``LineageInput`` values; build them with ``cairn.domain.lineage``'s
``dataset_input``, ``code_input`` and ``parent_input``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from cairn.domain.lineage import DatasetImpact, DatasetUse, LineageGraph, LineageInput
from cairn.domain.models import Page


class LineageMethods(abc.ABC):
    @abc.abstractmethod
    def add_lineage(
        self, name: str, version: int | str, inputs: Sequence[LineageInput]
    ) -> list[LineageInput]:
        """Record inputs of the version (ones already recorded are kept); returns every
        input of the version."""

    @abc.abstractmethod
    def list_lineage(self, name: str, version: int | str) -> list[LineageInput]: ...

    @abc.abstractmethod
    def remove_lineage(self, name: str, version: int | str, input_id: int) -> LineageInput:
        """Remove one input (by its ``id``); returns what it was."""

    @abc.abstractmethod
    def lineage_graph(
        self,
        name: str,
        version: int | str,
        *,
        direction: str = "upstream",
        depth: int | None = None,
        max_nodes: int | None = None,
    ) -> LineageGraph:
        """``upstream`` (datasets, code, run, parent versions), ``downstream`` (derived
        versions and their deployments) or ``both``, ``depth`` levels of versions away."""

    @abc.abstractmethod
    def dataset_users(
        self, uri: str, *, max_results: int | None = None, page_token: str | None = None
    ) -> Page[DatasetUse]:
        """The versions that used the dataset ``uri``."""

    @abc.abstractmethod
    def dataset_impact(
        self, uri: str, *, depth: int | None = None, max_versions: int | None = None
    ) -> DatasetImpact:
        """The versions affected by the dataset ``uri``: its users, the versions derived
        from them ``depth`` levels down (1: the users only), and what serves any now."""

    @abc.abstractmethod
    def import_openlineage(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Record an OpenLineage RunEvent: ``{"recorded": [...], "ignored": [...]}``."""

    @abc.abstractmethod
    def export_openlineage(self, name: str, version: int | str) -> dict[str, Any]:
        """The version as an OpenLineage RunEvent."""
