"""OpenLineage in and out: a RunEvent read into lineage inputs, a version written as one.

The convention (docs/lineage.md): a Cairn model version is the OpenLineage dataset named
``models:/NAME/VERSION`` (its namespace: ``cairn``, or the Cairn server's URL; only the
name is looked at). An event's outputs so named get the event's inputs and its run id;
other outputs are not Cairn's and are reported as ignored. A dataset's URI is its
namespace and name joined: ``s3://bucket`` + ``path/x`` is ``s3://bucket/path/x`` (a
namespace with ``://``), ``file`` + ``/data/x`` is ``file:/data/x`` (one without), and
back. A dataset's ``version`` facet (``datasetVersion``) is its digest, the job's
``sourceCodeLocation`` facet (``repoUrl`` or ``url``, and ``version``) its code; more code
inputs than one travel as ``sourceCodeLocations``, a list of the same shape, in the job's
``cairn`` facet. What
OpenLineage has no field for (a dataset's role, a parent's relation) travels in an input
facet named ``cairn``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cairn.domain.codec import format_time
from cairn.domain.digests import validate_digest
from cairn.domain.lineage import MAX_INPUTS, InputKind, LineageInput, validate_input
from cairn.domain.uris import SCHEME, ModelRef, parse_model_uri
from cairn.errors import CairnError, InvalidParameter

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = "https://pypi.org/project/cairn-registry/"
NAMESPACE = "cairn"
CAIRN_FACET_SCHEMA = "https://pypi.org/project/cairn-registry/#lineage-facet"
_VERSION_FACET = (
    "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json"
    "#/$defs/DatasetVersionDatasetFacet"
)
_CODE_FACET = (
    "https://openlineage.io/spec/facets/1-0-1/SourceCodeLocationJobFacet.json"
    "#/$defs/SourceCodeLocationJobFacet"
)
EVENT_TYPES = ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
MAX_OUTPUTS = 100


@dataclass(frozen=True, slots=True)
class Ignored:
    namespace: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunEventPlan:
    """What an event asks Cairn to record: ``inputs`` (and ``run_id``) on each of
    ``targets``; ``ignored`` outputs are not Cairn versions."""

    run_id: str
    event_type: str
    inputs: tuple[LineageInput, ...]
    targets: tuple[ModelRef, ...]
    ignored: tuple[Ignored, ...]


def _text(where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidParameter(f"OpenLineage event: {where} must be a non-empty string")
    return value


def _obj(where: str, value: object, *, optional: bool = False) -> Mapping[str, Any]:
    if value is None and optional:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidParameter(f"OpenLineage event: {where} must be an object")
    return value


def _list(where: str, value: object, limit: int) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidParameter(f"OpenLineage event: {where} must be an array")
    if len(value) > limit:
        raise InvalidParameter(f"OpenLineage event: {where} holds more than {limit} datasets")
    return value


def dataset_uri(namespace: str, name: str) -> str:
    if "://" in namespace:
        return f"{namespace.rstrip('/')}/{name.lstrip('/')}"
    return f"{namespace}:{name}"


def dataset_address(uri: str) -> tuple[str, str]:
    """A URI as an OpenLineage (namespace, name): the inverse of ``dataset_uri``."""
    scheme, sep, rest = uri.partition("://")
    if sep:
        authority, _, path = rest.partition("/")
        return f"{scheme}://{authority}", path
    scheme, _, rest = uri.partition(":")
    return scheme, rest


def _model_ref(name: str) -> ModelRef | str:
    """The numbered version an OpenLineage name names, or why it names none."""
    try:
        ref = parse_model_uri(name)
    except CairnError as exc:
        return str(exc)
    if ref.version is None:
        return "name a numbered version (models:/NAME/VERSION): an alias moves"
    return ref


def _cairn_facet(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return _obj(
        "inputFacets.cairn",
        _obj("inputFacets", d.get("inputFacets"), optional=True).get("cairn"),
        optional=True,
    )


def _input(d: Any) -> LineageInput:
    d = _obj("an input", d)
    namespace, name = (
        _text("input namespace", d.get("namespace")),
        _text("input name", d.get("name")),
    )
    extra = _cairn_facet(d)
    if name.startswith(SCHEME):
        return validate_input(InputKind.MODEL_VERSION, name, relation=extra.get("relation"))
    facets = _obj("input facets", d.get("facets"), optional=True)
    version = _obj("version facet", facets.get("version"), optional=True).get("datasetVersion")
    return validate_input(
        InputKind.DATASET,
        dataset_uri(namespace, name),
        name=extra.get("name"),
        digest=version,
        role=extra.get("role"),
    )


def _code(job: Mapping[str, Any]) -> list[LineageInput]:
    """The job's code: its ``sourceCodeLocation`` facet, then those listed in its ``cairn``
    facet's ``sourceCodeLocations`` (a job has one source code location; a version may
    have been built from several repositories)."""
    facets = _obj("job facets", job.get("facets"), optional=True)
    code = _obj("sourceCodeLocation", facets.get("sourceCodeLocation"), optional=True)
    more = _obj("job facets.cairn", facets.get("cairn"), optional=True)
    found = []
    for where, location in (
        ("sourceCodeLocation", code),
        *(
            (f"cairn.sourceCodeLocations[{n}]", item)
            for n, item in enumerate(
                _list("cairn.sourceCodeLocations", more.get("sourceCodeLocations"), MAX_INPUTS)
            )
        ),
    ):
        location = _obj(where, location)
        uri = location.get("repoUrl") or location.get("url")
        if not location or uri is None or location.get("version") is None:
            continue
        found.append(validate_input(InputKind.CODE, uri, commit=location.get("version")))
    return found


def parse_run_event(event: object) -> RunEventPlan:
    """Validate an OpenLineage RunEvent (spec 2-0-x) and read what Cairn records of it."""
    e = _obj("the event", event)
    for key in ("eventTime", "producer", "schemaURL"):
        _text(key, e.get(key))
    try:
        datetime.fromisoformat(str(e["eventTime"]).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(
            f"OpenLineage event: eventTime {e['eventTime']!r} is not an ISO 8601 time"
        ) from None
    event_type = e.get("eventType", "COMPLETE")
    if event_type not in EVENT_TYPES:
        raise InvalidParameter(
            f"OpenLineage event: eventType must be one of {', '.join(EVENT_TYPES)}"
        )
    run = _obj("run", e.get("run"))
    try:
        run_id = str(uuid.UUID(_text("run.runId", run.get("runId"))))
    except ValueError:
        raise InvalidParameter("OpenLineage event: run.runId must be a UUID") from None
    job = _obj("job", e.get("job"))
    _text("job.namespace", job.get("namespace"))
    _text("job.name", job.get("name"))
    inputs = [_input(d) for d in _list("inputs", e.get("inputs"), MAX_INPUTS)]
    inputs += _code(job)
    if len(inputs) > MAX_INPUTS:
        raise InvalidParameter(f"OpenLineage event: more than {MAX_INPUTS} inputs")
    targets: list[ModelRef] = []
    ignored: list[Ignored] = []
    for d in _list("outputs", e.get("outputs"), MAX_OUTPUTS):
        d = _obj("an output", d)
        namespace = _text("output namespace", d.get("namespace"))
        name = _text("output name", d.get("name"))
        if not name.startswith(SCHEME):
            ignored.append(Ignored(namespace, name, "not a Cairn model version"))
            continue
        if event_type in ("FAIL", "ABORT"):
            ignored.append(Ignored(namespace, name, f"the run ended with {event_type}"))
            continue
        found = _model_ref(name)
        if isinstance(found, str):
            ignored.append(Ignored(namespace, name, found))
        else:
            targets.append(found)
    return RunEventPlan(run_id, event_type, tuple(inputs), tuple(targets), tuple(ignored))


def same_run(a: str, b: str) -> bool:
    """Whether two run ids are the same run (an MLflow run id is a UUID without dashes)."""
    if a == b:
        return True
    try:
        return uuid.UUID(a) == uuid.UUID(b)
    except ValueError:
        return False


def _facet(schema: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": schema, **fields}


def _cairn(**fields: Any) -> dict[str, Any]:
    return _facet(CAIRN_FACET_SCHEMA, **{k: v for k, v in fields.items() if v is not None})


def render_run_event(
    name: str,
    version: int,
    *,
    created_at: datetime,
    digest: str | None,
    run_id: str | None,
    run_link: str | None,
    inputs: Sequence[LineageInput],
    namespace: str = NAMESPACE,
) -> dict[str, Any]:
    """A version as a COMPLETE RunEvent: its run, its inputs, itself as the output."""
    target = f"{SCHEME}{name}/{version}"
    try:
        run_uuid = str(uuid.UUID(run_id)) if run_id else None
    except ValueError:
        run_uuid = None
    run: dict[str, Any] = {"runId": run_uuid or str(uuid.uuid5(uuid.NAMESPACE_URL, target))}
    if (run_id is not None and run_uuid is None) or run_link is not None:
        run["facets"] = {"cairn": _cairn(runId=run_id, runLink=run_link)}
    datasets: list[dict[str, Any]] = []
    job: dict[str, Any] = {"namespace": namespace, "name": target}
    for i in inputs:
        if i.kind is InputKind.MODEL_VERSION:
            datasets.append(
                {
                    "namespace": namespace,
                    "name": i.uri,
                    "facets": {},
                    "inputFacets": {"cairn": _cairn(relation=i.relation)},
                }
            )
        elif i.kind is InputKind.CODE:
            location = {"type": "git", "url": i.uri, "repoUrl": i.uri, "version": i.commit}
            facets = job.setdefault("facets", {})
            if "sourceCodeLocation" not in facets:  # a job has one source code location
                facets["sourceCodeLocation"] = _facet(_CODE_FACET, **location)
            else:  # the others travel in Cairn's facet, in the same shape
                facets.setdefault("cairn", _cairn(sourceCodeLocations=[]))
                facets["cairn"]["sourceCodeLocations"].append(location)
        else:
            ns, dataset_name = dataset_address(i.uri)
            facets = (
                {}
                if i.digest is None
                else {"version": _facet(_VERSION_FACET, datasetVersion=i.digest)}
            )
            item: dict[str, Any] = {"namespace": ns, "name": dataset_name, "facets": facets}
            if i.role is not None or i.name is not None:
                item["inputFacets"] = {"cairn": _cairn(role=i.role, name=i.name)}
            datasets.append(item)
    output_facets = (
        {}
        if digest is None
        else {"version": _facet(_VERSION_FACET, datasetVersion=validate_digest(digest))}
    )
    return {
        "eventType": "COMPLETE",
        "eventTime": format_time(created_at),
        "run": run,
        "job": job,
        "inputs": datasets,
        "outputs": [{"namespace": namespace, "name": target, "facets": output_facets}],
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
    }


def ignored_to_json(i: Ignored) -> dict[str, str]:
    return {"namespace": i.namespace, "name": i.name, "reason": i.reason}
