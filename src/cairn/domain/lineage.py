"""Lineage: what a model version came from, and what came from it.

Pure rules, no I/O. A lineage *input* is a fact attached to a model version (the child):

- ``dataset``: ``uri`` (required), optional ``name``, ``digest`` (``sha256:<hex>`` or any
  other opaque version string) and ``role`` (train, validation, test, eval, other);
- ``code``: a repository ``uri`` and the ``commit`` it was built from;
- ``model_version``: a parent version ``models:/NAME/VERSION`` (an alias or ``latest`` is
  resolved to its number when recorded) and the ``relation`` the child has to it.

The training run is the version's own ``run_id``; deployments are the aliases that point at
a version now. Both appear in a graph as nodes, but neither is an input: they are not stored
here twice.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from cairn.domain import names
from cairn.domain.codec import format_time, parse_time
from cairn.domain.digests import validate_digest
from cairn.domain.uris import ModelRef, parse_model_uri
from cairn.errors import InvalidParameter

MAX_URI = 2048
MAX_REF = 256  # a dataset's version string, a commit
MAX_INPUTS = 100  # inputs recorded in one call
MAX_VERSION_INPUTS = 1000  # inputs one version may hold
MAX_DEPTH = 10  # how far a graph query may go
DEFAULT_DEPTH = 3
MAX_NODES = 1000  # nodes a graph answer may hold
DEFAULT_NODES = 200

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S")
_COMMIT_RE = re.compile(r"[0-9a-f]{7,64}")


class InputKind(StrEnum):
    DATASET = "dataset"
    CODE = "code"
    MODEL_VERSION = "model_version"


ROLES = ("train", "validation", "test", "eval", "other")
RELATIONS = ("fine-tune", "quantize", "distil", "retrain", "merge", "convert", "other")


def _choice(kind: str, value: object, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise InvalidParameter(f"{kind} must be one of {', '.join(allowed)}; got {value!r}")
    return value.lower()


def parse_kind(value: object) -> InputKind:
    return InputKind(_choice("lineage input kind", value, [k.value for k in InputKind]))


def validate_uri(kind: str, value: object) -> str:
    """A URI with a scheme (``s3://…``, ``file:/…``, ``https://…``, ``hf://…``): at most
    2,048 characters, no spaces, no control or invisible characters."""
    if not isinstance(value, str) or not value:
        raise InvalidParameter(f"{kind} uri must be a non-empty string")
    if len(value) > MAX_URI:
        raise InvalidParameter(
            f"{kind} uri is {len(value)} characters long; the limit is {MAX_URI}"
        )
    bad = next((ch for ch in value if ch.isspace() or unicodedata.category(ch)[0] == "C"), None)
    if bad is not None:
        raise InvalidParameter(
            f"{kind} uri {value[:80]!r} contains U+{ord(bad):04X} (a space, control or "
            "invisible character); percent-encode it"
        )
    if not _SCHEME_RE.match(value):
        raise InvalidParameter(
            f"{kind} uri {value[:80]!r} has no scheme; write it as a URI such as "
            "s3://bucket/path, file:/path or https://host/path"
        )
    return value


def _opaque(kind: str, value: object) -> str:
    text = names.validate_text(kind, value, MAX_REF, allow_newlines=False)
    if not text or any(ch.isspace() for ch in text):
        raise InvalidParameter(f"{kind} {value!r} must be non-empty and hold no spaces")
    return text


def validate_dataset_digest(value: object) -> str:
    """``sha256:<64 lowercase hex>``, or another opaque version string (``v3``, an etag)."""
    if isinstance(value, str) and value.lower().startswith("sha256:"):
        return validate_digest(value)
    return _opaque("dataset digest", value)


def validate_commit(value: object) -> str:
    if not isinstance(value, str) or not _COMMIT_RE.fullmatch(value.lower()):
        raise InvalidParameter(
            f"commit {value!r} is not a git commit id (7 to 64 hexadecimal characters)"
        )
    return value.lower()


def parent_ref(value: object) -> ModelRef:
    """A parent version's URI: ``models:/NAME/VERSION``, ``@ALIAS`` or ``/latest``."""
    ref = parse_model_uri(value)  # type: ignore[arg-type]
    if ref.semver is not None:
        raise InvalidParameter(
            f"parent {value!r} names a semver range; name one version (models:/NAME/VERSION)"
        )
    return ref


@dataclass(frozen=True, slots=True)
class LineageInput:
    """One input of a version. ``id``, ``created_at`` and ``created_by`` are set once it is
    recorded; a ``model_version`` input's ``uri`` is then ``models:/NAME/VERSION`` and
    ``deleted`` tells whether that parent is soft-deleted."""

    kind: InputKind
    uri: str
    name: str | None = None
    digest: str | None = None
    role: str | None = None
    commit: str | None = None
    relation: str | None = None
    id: int | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    deleted: bool = False

    @property
    def ref(self) -> str | None:
        """What the store keeps beside the URI: a dataset's digest or a code commit."""
        return self.digest if self.kind is InputKind.DATASET else self.commit

    @property
    def qualifier(self) -> str | None:
        """A dataset's role or a parent's relation."""
        return self.role if self.kind is InputKind.DATASET else self.relation


def validate_input(
    kind: object,
    uri: object,
    *,
    name: object = None,
    digest: object = None,
    role: object = None,
    commit: object = None,
    relation: object = None,
) -> LineageInput:
    """The input, validated; a field that does not belong to its kind is refused."""
    k = parse_kind(kind)
    given = {"name": name, "digest": digest, "role": role, "commit": commit, "relation": relation}
    allowed = {
        InputKind.DATASET: {"name", "digest", "role"},
        InputKind.CODE: {"commit"},
        InputKind.MODEL_VERSION: {"relation"},
    }[k]
    extra = sorted(f for f, v in given.items() if v is not None and f not in allowed)
    if extra:
        raise InvalidParameter(
            f"a {k.value} input takes no {', '.join(extra)}; it takes uri"
            + "".join(f", {f}" for f in sorted(allowed))
        )
    if k is InputKind.DATASET:
        return LineageInput(
            k,
            validate_uri("dataset", uri),
            name=None if name is None else _opaque_name(name),
            digest=None if digest is None else validate_dataset_digest(digest),
            role=None if role is None else _choice("dataset role", role, ROLES),
        )
    if k is InputKind.CODE:
        if commit is None:
            raise InvalidParameter("a code input needs the commit it was built from")
        return LineageInput(k, validate_uri("code", uri), commit=validate_commit(commit))
    ref = parent_ref(uri)
    return LineageInput(k, str(ref), relation=_choice("relation", relation or "other", RELATIONS))


def dataset_input(
    uri: str, *, name: str | None = None, digest: str | None = None, role: str | None = None
) -> LineageInput:
    """A dataset input (the SDK's and CLI's way to write one)."""
    return validate_input(InputKind.DATASET, uri, name=name, digest=digest, role=role)


def code_input(uri: str, commit: str) -> LineageInput:
    return validate_input(InputKind.CODE, uri, commit=commit)


def parent_input(uri: str, relation: str = "other") -> LineageInput:
    """A parent version (``models:/NAME/VERSION``, ``@ALIAS`` or ``/latest``)."""
    return validate_input(InputKind.MODEL_VERSION, uri, relation=relation)


def _opaque_name(value: object) -> str:
    text = names.validate_text("dataset name", value, names.MAX_NAME_LENGTH, allow_newlines=False)
    if not text.strip():
        raise InvalidParameter("dataset name must not be blank")
    return text


def validate_inputs(items: Sequence[LineageInput]) -> tuple[LineageInput, ...]:
    if len(items) > MAX_INPUTS:
        raise InvalidParameter(
            f"at most {MAX_INPUTS} lineage inputs are recorded in one call; got {len(items)}"
        )
    return tuple(
        validate_input(
            i.kind,
            i.uri,
            name=i.name,
            digest=i.digest,
            role=i.role,
            commit=i.commit,
            relation=i.relation,
        )
        for i in items
    )


def validate_bounds(depth: object, max_nodes: object) -> tuple[int, int]:
    """A graph query's depth (1..10, default 3) and node limit (1..1000, default 200)."""
    d = DEFAULT_DEPTH if depth is None else depth
    n = DEFAULT_NODES if max_nodes is None else max_nodes
    for kind, value, top in (("depth", d, MAX_DEPTH), ("max_nodes", n, MAX_NODES)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise InvalidParameter(f"{kind} must be an integer from 1 to {top}; got {value!r}")
    return int(d), int(n)  # type: ignore[call-overload]


def validate_impact_bounds(depth: object, max_versions: object) -> tuple[int, int]:
    """An impact query's depth (1..10, default 1: the direct users only) and version limit
    (1..1000, default 200)."""
    d = 1 if depth is None else depth
    n = DEFAULT_NODES if max_versions is None else max_versions
    for kind, value, top in (("depth", d, MAX_DEPTH), ("max_versions", n, MAX_NODES)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise InvalidParameter(f"{kind} must be an integer from 1 to {top}; got {value!r}")
    return int(d), int(n)  # type: ignore[call-overload]


# -- graphs ---------------------------------------------------------------------------


class Direction(StrEnum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"  # upstream and downstream of the root at once

    @classmethod
    def parse(cls, value: object) -> Direction:
        return cls(_choice("direction", value, [d.value for d in cls]))


@dataclass(frozen=True, slots=True)
class Node:
    """A node: ``model_version`` (name, version, status, deleted), ``dataset`` (uri, name,
    digest), ``code`` (uri, commit), ``run`` (run_id, run_link) or ``deployment``: an
    alias pointing at the version (name, alias; id ``models:/NAME@ALIAS``) or a recorded
    deployment serving it (name, environment, url; id ``deployment:NAME``). ``id`` is what
    edges refer to."""

    id: str
    kind: str
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Edge:
    """``source`` went into ``target`` (data flows from source to target): a dataset, code,
    run or parent version into a version, a version into its deployment."""

    source: str
    target: str
    kind: str
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LineageGraph:
    root: str
    direction: Direction
    depth: int
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    truncated: bool = False


def version_node_id(name: str, version: int) -> str:
    return f"models:/{name}/{version}"


def input_node(i: LineageInput) -> Node:
    """The node an input stands for (a dataset is one node per uri and digest)."""
    if i.kind is InputKind.DATASET:
        at = f"@{i.digest}" if i.digest else ""
        attrs = {"uri": i.uri, "name": i.name, "digest": i.digest}
        return Node(f"dataset:{i.uri}{at}", "dataset", attrs)
    if i.kind is InputKind.CODE:
        return Node(f"code:{i.uri}@{i.commit}", "code", {"uri": i.uri, "commit": i.commit})
    raise InvalidParameter("a model_version input is a version node")  # pragma: no cover


# -- JSON (the API's shape, shared by server, client and CLI) -------------------------


def input_to_json(i: LineageInput) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": i.kind.value, "uri": i.uri}
    if i.kind is InputKind.DATASET:
        out.update(name=i.name, digest=i.digest, role=i.role)
    elif i.kind is InputKind.CODE:
        out.update(commit=i.commit)
    else:
        out.update(relation=i.relation)
    if i.id is not None:  # recorded: what the answers add
        out.update(id=i.id, created_at=format_time(i.created_at), created_by=i.created_by)
        if i.kind is InputKind.MODEL_VERSION:
            out.update(deleted=i.deleted)
    return out


def input_from_json(d: Mapping[str, Any]) -> LineageInput:
    """An input as sent (validated) or as answered (with its id and times)."""
    if not isinstance(d, Mapping) or "kind" not in d or "uri" not in d:
        raise InvalidParameter(f"a lineage input is an object with kind and uri; got {d!r}")
    made = validate_input(
        d["kind"],
        d["uri"],
        name=d.get("name"),
        digest=d.get("digest"),
        role=d.get("role"),
        commit=d.get("commit"),
        relation=d.get("relation"),
    )
    if d.get("id") is None:
        return made
    return LineageInput(
        made.kind,
        made.uri,
        made.name,
        made.digest,
        made.role,
        made.commit,
        made.relation,
        id=int(d["id"]),
        created_at=parse_time(d.get("created_at")),
        created_by=d.get("created_by"),
        deleted=bool(d.get("deleted", False)),
    )


def graph_to_json(g: LineageGraph) -> dict[str, Any]:
    return {
        "root": g.root,
        "direction": g.direction.value,
        "depth": g.depth,
        "truncated": g.truncated,
        "nodes": [{"id": n.id, "kind": n.kind, **n.attrs} for n in g.nodes],
        "edges": [
            {"source": e.source, "target": e.target, "kind": e.kind, **e.attrs} for e in g.edges
        ],
    }


def graph_from_json(d: Mapping[str, Any]) -> LineageGraph:
    def attrs(item: Mapping[str, Any], fixed: Sequence[str]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if k not in fixed}

    return LineageGraph(
        root=d["root"],
        direction=Direction.parse(d["direction"]),
        depth=int(d["depth"]),
        nodes=tuple(Node(n["id"], n["kind"], attrs(n, ("id", "kind"))) for n in d["nodes"]),
        edges=tuple(
            Edge(e["source"], e["target"], e["kind"], attrs(e, ("source", "target", "kind")))
            for e in d["edges"]
        ),
        truncated=bool(d["truncated"]),
    )


@dataclass(frozen=True, slots=True)
class DatasetUse:
    """A version that used a dataset (impact analysis): the input as recorded on it."""

    name: str
    version: int
    deleted: bool
    input: LineageInput


def use_to_json(u: DatasetUse) -> dict[str, Any]:
    return {
        "name": u.name,
        "version": u.version,
        "deleted": u.deleted,
        "input": input_to_json(u.input),
    }


def use_from_json(d: Mapping[str, Any]) -> DatasetUse:
    return DatasetUse(d["name"], int(d["version"]), bool(d["deleted"]), input_from_json(d["input"]))


# -- impact: what a dataset went into, transitively ---------------------------------------


@dataclass(frozen=True, slots=True)
class ImpactedVersion:
    """A version affected by a dataset: ``distance`` 1 used it directly (``inputs``: the
    dataset inputs naming it), ``distance`` n derives from such a version n - 1 parent →
    child edges away. ``path`` is the versions from the direct user to this one (one of
    the shortest ways) and ``relations`` the relation of each edge along it."""

    name: str
    version: int
    status: str
    deleted: bool
    distance: int
    path: tuple[str, ...]
    relations: tuple[str, ...] = ()
    inputs: tuple[LineageInput, ...] = ()

    @property
    def id(self) -> str:
        return version_node_id(self.name, self.version)


@dataclass(frozen=True, slots=True)
class Serving:
    """What serves an affected version now: an alias (``id`` ``models:/NAME@ALIAS``) or a
    recorded deployment (``id`` ``deployment:NAME``, with its environment and url)."""

    id: str
    version: str  # the models:/NAME/VERSION it serves
    kind: str  # alias or deployment
    name: str  # the alias, or the deployment's name
    environment: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class DatasetImpact:
    """The answer of an impact query (it does not repeat the URI asked about)."""

    depth: int
    versions: tuple[ImpactedVersion, ...]
    serving: tuple[Serving, ...]
    truncated: bool = False


def impact_to_json(i: DatasetImpact) -> dict[str, Any]:
    return {
        "depth": i.depth,
        "truncated": i.truncated,
        "versions": [
            {
                "id": v.id,
                "name": v.name,
                "version": v.version,
                "status": v.status,
                "deleted": v.deleted,
                "distance": v.distance,
                "path": list(v.path),
                "relations": list(v.relations),
                "inputs": [input_to_json(x) for x in v.inputs],
            }
            for v in i.versions
        ],
        "serving": [
            {
                "id": s.id,
                "version": s.version,
                "kind": s.kind,
                "name": s.name,
                "environment": s.environment,
                "url": s.url,
            }
            for s in i.serving
        ],
    }


def impact_from_json(d: Mapping[str, Any]) -> DatasetImpact:
    return DatasetImpact(
        depth=int(d["depth"]),
        versions=tuple(
            ImpactedVersion(
                v["name"],
                int(v["version"]),
                v["status"],
                bool(v["deleted"]),
                int(v["distance"]),
                tuple(v["path"]),
                tuple(v["relations"]),
                tuple(input_from_json(x) for x in v["inputs"]),
            )
            for v in d["versions"]
        ),
        serving=tuple(
            Serving(s["id"], s["version"], s["kind"], s["name"], s.get("environment"), s.get("url"))
            for s in d["serving"]
        ),
        truncated=bool(d["truncated"]),
    )
