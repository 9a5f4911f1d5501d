"""``/api/v1/lineage``: a version's inputs, its graph both ways, the versions that used a
dataset, and OpenLineage in and out (docs/lineage.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.v1.schemas import LineageInputIn, Strict
from cairn.domain.lineage import (
    graph_to_json,
    impact_to_json,
    input_from_json,
    input_to_json,
    use_to_json,
)

router = lean_router(tags=["lineage"])
VERSION = "/lineage/models/{name}/versions/{version}"


class InputsIn(Strict):
    inputs: list[LineageInputIn] = Field(description="Inputs to record (at most 100).")


class InputOut(BaseModel):
    id: int
    kind: str
    uri: str
    name: str | None = None
    digest: str | None = None
    role: str | None = None
    commit: str | None = None
    relation: str | None = None
    deleted: bool | None = Field(None, description="model_version: the parent is soft-deleted.")
    created_at: str
    created_by: str | None


class InputList(BaseModel):
    inputs: list[InputOut]


class GraphOut(BaseModel):
    root: str
    direction: str
    depth: int
    truncated: bool = Field(description="Nodes were left out: the node limit or the depth.")
    nodes: list[dict[str, Any]] = Field(
        description="id, kind (model_version, dataset, code, run, deployment) and its fields."
    )
    edges: list[dict[str, Any]] = Field(description="source, target, kind and its fields.")


class DatasetUseOut(BaseModel):
    name: str
    version: int
    deleted: bool
    input: InputOut


class DatasetUsePage(BaseModel):
    versions: list[DatasetUseOut]
    next_page_token: str | None


class ImpactedVersionOut(BaseModel):
    id: str
    name: str
    version: int
    status: str
    deleted: bool
    distance: int = Field(description="1: used the dataset; n: derives from such a version.")
    path: list[str] = Field(description="The versions from the direct user to this one.")
    relations: list[str] = Field(description="The relation of each edge along the path.")
    inputs: list[InputOut] = Field(description="Distance 1: the inputs naming the dataset.")


class ServingOut(BaseModel):
    id: str
    version: str = Field(description="The models:/NAME/VERSION it serves.")
    kind: str = Field(description="alias or deployment.")
    name: str
    environment: str | None
    url: str | None


class DatasetImpactOut(BaseModel):
    depth: int
    truncated: bool = Field(description="Versions were left out: max_versions or the depth.")
    versions: list[ImpactedVersionOut]
    serving: list[ServingOut]


class IgnoredOut(BaseModel):
    namespace: str
    name: str
    reason: str


class RecordedOut(BaseModel):
    name: str
    version: int
    run_id: str
    inputs_added: int


class OpenLineageImported(BaseModel):
    recorded: list[RecordedOut]
    ignored: list[IgnoredOut]


def _inputs(found: list[Any]) -> JSONResponse:
    return json({"inputs": [input_to_json(i) for i in found]})


@router.get(VERSION + "/inputs", response_model=InputList)
def list_lineage_inputs(name: str, version: str, service: Service, actor: Caller) -> JSONResponse:
    """The version's inputs (READ); parents the caller may not read are left out."""
    return _inputs(service.list_inputs(actor, name, version))


@router.post(VERSION + "/inputs", response_model=InputList)
def record_lineage_inputs(
    name: str, version: str, body: InputsIn, service: Service, actor: Caller
) -> JSONResponse:
    """Record inputs (WRITE; READ on a parent's model); ones already recorded are kept as
    they are. Answers every input of the version."""
    inputs = [input_from_json(i.model_dump(exclude_none=True)) for i in body.inputs]
    return _inputs(service.record_inputs(actor, name, version, inputs))


@router.delete(VERSION + "/inputs/{input_id}", response_model=InputOut)
def remove_lineage_input(
    name: str, version: str, input_id: int, service: Service, actor: Caller
) -> JSONResponse:
    """Remove one input (WRITE); answers what it was."""
    return json(input_to_json(service.remove_input(actor, name, version, input_id)))


@router.get(VERSION + "/graph", response_model=GraphOut)
def lineage_graph(
    name: str,
    version: str,
    service: Service,
    actor: Caller,
    direction: str = "upstream",
    depth: int | None = None,
    max_nodes: int | None = None,
) -> JSONResponse:
    """The graph ``upstream`` (what the version came from), ``downstream`` (what came
    from it, and its deployments) or ``both``, ``depth`` 1-10 (3), ``max_nodes`` 1-1000
    (200)."""
    graph = service.lineage_graph(
        actor, name, version, direction=direction, depth=depth, max_nodes=max_nodes
    )
    return json(graph_to_json(graph))


@router.get(VERSION + "/openlineage")
def export_openlineage(name: str, version: str, service: Service, actor: Caller) -> JSONResponse:
    """The version as an OpenLineage RunEvent (COMPLETE): its inputs, itself the output."""
    return json(service.export_openlineage(actor, name, version))


@router.get("/lineage/datasets", response_model=DatasetUsePage)
def list_dataset_users(
    uri: str,
    service: Service,
    actor: Caller,
    max_results: int | None = None,
    page_token: str | None = None,
) -> JSONResponse:
    """The versions that used the dataset ``uri`` (of models the caller may read)."""
    page = service.dataset_users(actor, uri, max_results=max_results, page_token=page_token)
    return json(
        {
            "versions": [use_to_json(u) for u in page.items],
            "next_page_token": page.next_page_token,
        }
    )


@router.get("/lineage/impact", response_model=DatasetImpactOut)
def dataset_impact(
    uri: str,
    service: Service,
    actor: Caller,
    depth: int | None = None,
    max_versions: int | None = None,
) -> JSONResponse:
    """The versions affected by the dataset ``uri``, transitively: those that used it,
    those derived from them (``depth`` 1-10, 1: the direct users only), and what serves
    any of them now; of models the caller may read. ``max_versions`` 1-1000 (200)."""
    impact = service.dataset_impact(actor, uri, depth=depth, max_versions=max_versions)
    return json(impact_to_json(impact))


@router.post("/lineage/openlineage", response_model=OpenLineageImported)
def import_openlineage(body: dict[str, Any], service: Service, actor: Caller) -> JSONResponse:
    """Record an OpenLineage RunEvent: each output named ``models:/NAME/VERSION`` gets the
    event's inputs and run id (WRITE on its model); other outputs are listed as ignored."""
    return json(service.import_openlineage(actor, body))
