"""The SDK's lineage calls over HTTP: a part of ``HttpClient``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cairn.client.http_transport import HttpTransport, model_seg, seg, version_seg, whole
from cairn.domain.codec import require_int
from cairn.domain.lineage import (
    DatasetImpact,
    DatasetUse,
    Direction,
    LineageGraph,
    LineageInput,
    graph_from_json,
    impact_from_json,
    input_from_json,
    input_to_json,
    use_from_json,
    validate_inputs,
    validate_uri,
)
from cairn.domain.models import Page


def _version_path(name: str, version: int | str) -> str:
    return f"/lineage/models/{model_seg(name)}/versions/{version_seg(version)}"


class LineageCalls(HttpTransport):
    def add_lineage(
        self, name: str, version: int | str, inputs: Sequence[LineageInput]
    ) -> list[LineageInput]:
        body = {"inputs": [input_to_json(i) for i in validate_inputs(inputs)]}
        answer = self._request("POST", _version_path(name, version) + "/inputs", json=body)
        return [input_from_json(i) for i in answer["inputs"]]

    def list_lineage(self, name: str, version: int | str) -> list[LineageInput]:
        answer = self._request("GET", _version_path(name, version) + "/inputs")
        return [input_from_json(i) for i in answer["inputs"]]

    def remove_lineage(self, name: str, version: int | str, input_id: int) -> LineageInput:
        path = _version_path(name, version) + f"/inputs/{seg(require_int('input_id', input_id))}"
        return input_from_json(self._request("DELETE", path))

    def lineage_graph(
        self,
        name: str,
        version: int | str,
        *,
        direction: str = "upstream",
        depth: int | None = None,
        max_nodes: int | None = None,
    ) -> LineageGraph:
        query = {
            "direction": Direction.parse(direction).value,
            "depth": whole("depth", depth),
            "max_nodes": whole("max_nodes", max_nodes),
        }
        path = _version_path(name, version) + "/graph"
        return graph_from_json(self._request("GET", path, params=query))

    def dataset_users(
        self, uri: str, *, max_results: int | None = None, page_token: str | None = None
    ) -> Page[DatasetUse]:
        query = {
            "uri": validate_uri("dataset", uri),
            "max_results": whole("max_results", max_results),
            "page_token": page_token,
        }
        body = self._request("GET", "/lineage/datasets", params=query)
        return Page([use_from_json(u) for u in body["versions"]], body.get("next_page_token"))

    def dataset_impact(
        self, uri: str, *, depth: int | None = None, max_versions: int | None = None
    ) -> DatasetImpact:
        query = {
            "uri": validate_uri("dataset", uri),
            "depth": whole("depth", depth),
            "max_versions": whole("max_versions", max_versions),
        }
        return impact_from_json(self._request("GET", "/lineage/impact", params=query))

    def import_openlineage(self, event: Mapping[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("POST", "/lineage/openlineage", json=dict(event))
        return answer

    def export_openlineage(self, name: str, version: int | str) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("GET", _version_path(name, version) + "/openlineage")
        return answer
