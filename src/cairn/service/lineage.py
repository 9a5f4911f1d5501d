"""Lineage: record and remove the inputs of a version, walk the graph both ways, find the
versions that used a dataset, and read and write OpenLineage events.

Authorization: recording or removing needs WRITE on the child's model, and a parent
version needs READ on its model (one cannot claim descent from what one cannot see).
Reading needs READ on the version's model; in a graph, a version of a model the caller
may not read is left out with its edges and is not walked through, exactly as if it did
not exist (a deleted model is treated so too). A soft-deleted version stays, marked
``deleted``. Each walk is bounded by a depth and a node count (``truncated`` says
something was left out).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from cairn.domain import names
from cairn.domain.access import Actor, Role
from cairn.domain.lineage import (
    MAX_VERSION_INPUTS,
    DatasetImpact,
    DatasetUse,
    Direction,
    Edge,
    ImpactedVersion,
    InputKind,
    LineageGraph,
    LineageInput,
    Node,
    Serving,
    input_node,
    input_to_json,
    parent_ref,
    validate_bounds,
    validate_impact_bounds,
    validate_inputs,
    validate_uri,
    version_node_id,
)
from cairn.domain.models import Page
from cairn.domain.openlineage import (
    RunEventPlan,
    ignored_to_json,
    parse_run_event,
    render_run_event,
    same_run,
)
from cairn.domain.uris import ModelRef, parse_version_number
from cairn.domain.validation import clean_page_size
from cairn.errors import Conflict, InvalidParameter, NotFound
from cairn.service.base import ServiceBase
from cairn.store.metadata.aliases_store import AliasStore
from cairn.store.metadata.clock import to_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.lineage_store import LineageStore, input_key, to_input
from cairn.store.metadata.versions_store import VersionStore


class LineageService(ServiceBase):
    # -- recording --------------------------------------------------------------------

    def record_inputs(
        self, actor: Actor, name: str, version: int | str, inputs: Sequence[LineageInput]
    ) -> list[LineageInput]:
        """Record ``inputs`` of the version (those already recorded are left as they are);
        returns every input of the version now."""
        names.validate_model_name(name)
        number = parse_version_number(version)
        clean = validate_inputs(inputs)

        def run(s: Tx) -> list[LineageInput]:
            model = self._model(s, actor, name, Role.WRITE, "lineage.record")
            row = VersionStore(s).get(model.id, model.name, number)
            added = record_in(s, actor, int(row.id), clean, self.clock())
            if added:
                self._audit(
                    s,
                    actor,
                    "lineage.record",
                    model=model,
                    version=number,
                    after=[input_to_json(i) for i in added],
                )
            return self._inputs_in(s, actor, row.id)

        return self.db.write(run)

    def remove_input(
        self, actor: Actor, name: str, version: int | str, input_id: int
    ) -> LineageInput:
        """Remove one input of the version (WRITE on its model); returns what it was."""
        names.validate_model_name(name)
        number = parse_version_number(version)
        if (
            isinstance(input_id, bool)
            or not isinstance(input_id, int)
            or not 0 < input_id < 1 << 63
        ):
            raise InvalidParameter(
                f"lineage input id {input_id!r} is not a positive 64-bit integer"
            )

        def run(s: Tx) -> LineageInput:
            model = self._model(s, actor, name, Role.WRITE, "lineage.remove")
            row = VersionStore(s).get(model.id, model.name, number)
            store = LineageStore(s)
            store.get(row.id, input_id)
            # a parent of a model the caller may not read is not theirs to learn of: as
            # if it did not exist (the answer would name it)
            gone = next((i for i in self._inputs_in(s, actor, row.id) if i.id == input_id), None)
            if gone is None:
                raise NotFound(f"lineage input {input_id} of this version does not exist")
            store.delete(input_id)
            before = input_to_json(gone)
            self._audit(s, actor, "lineage.remove", model=model, version=number, before=before)
            return gone

        return self.db.write(run)

    # -- reading ---------------------------------------------------------------------------

    def list_inputs(self, actor: Actor, name: str, version: int | str) -> list[LineageInput]:
        """The version's inputs; parents of models the caller may not read are left out."""
        names.validate_model_name(name)
        number = parse_version_number(version)

        def run(s: Tx) -> list[LineageInput]:
            model = self._model(s, actor, name, Role.READ, "lineage.read")
            row = VersionStore(s).get(model.id, model.name, number)
            return self._inputs_in(s, actor, row.id)

        return self.db.read(run)

    def _inputs_in(self, s: Tx, actor: Actor | None, version_id: int) -> list[LineageInput]:
        """(``actor`` None: every input, for the audit record of a removal.)"""
        out = []
        for r in LineageStore(s).inputs_of([version_id]):
            if r.kind != InputKind.MODEL_VERSION.value:
                out.append(to_input(r))
            elif actor is None or _visible(actor, r.p_model_id, r.p_name_key, r.p_model_deleted_at):
                uri = version_node_id(r.p_name, r.p_version)
                out.append(to_input(r, parent_uri=uri, deleted=r.p_deleted_at is not None))
        return out

    def lineage_graph(
        self,
        actor: Actor,
        name: str,
        version: int | str,
        *,
        direction: Direction | str = Direction.UPSTREAM,
        depth: int | None = None,
        max_nodes: int | None = None,
    ) -> LineageGraph:
        """The graph around a version: ``upstream`` (its datasets, code, run and parent
        versions, theirs, …), ``downstream`` (versions derived from it, theirs, …, and
        the aliases and deployments serving each) or ``both``, ``depth`` levels of
        versions away."""
        names.validate_model_name(name)
        number = parse_version_number(version)
        way = Direction.parse(direction)
        levels, limit = validate_bounds(depth, max_nodes)

        def run(s: Tx) -> LineageGraph:
            model = self._model(s, actor, name, Role.READ, "lineage.read")
            row = VersionStore(s).get(model.id, model.name, number)
            walk = _Walk(LineageStore(s), actor, limit)
            root = walk.version(walk.store.versions([row.id])[int(row.id)])
            if way is Direction.UPSTREAM:
                walk.upstream(int(row.id), levels)
            elif way is Direction.DOWNSTREAM:
                walk.downstream(int(row.id), levels)
            else:
                walk.both(int(row.id), levels)
            return LineageGraph(
                root, way, levels, tuple(walk.nodes.values()), tuple(walk.edges), walk.truncated
            )

        return self.db.read(run)

    def dataset_users(
        self,
        actor: Actor,
        uri: str,
        *,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[DatasetUse]:
        """The versions that used the dataset ``uri`` (of models the caller may read)."""
        validate_uri("dataset", uri)
        size = clean_page_size(max_results, self.limits.default_page)

        def run(s: Tx) -> Page[DatasetUse]:
            rows, token = LineageStore(s).users_of(uri, actor.readable(), size, page_token)
            uses = [
                DatasetUse(r.model, int(r.version), r.version_deleted_at is not None, to_input(r))
                for r in rows
            ]
            return Page(uses, token)

        return self.db.read(run)

    def dataset_impact(
        self,
        actor: Actor,
        uri: str,
        *,
        depth: int | None = None,
        max_versions: int | None = None,
    ) -> DatasetImpact:
        """The versions affected by the dataset ``uri``: those that used it (distance 1),
        the versions derived from them (parent → child, ``depth`` levels in all), and the
        aliases and deployments serving any of them now. Versions of models the caller may
        not read are left out and not walked through; at most ``max_versions`` versions
        (``truncated`` says more were left out). One query per level."""
        validate_uri("dataset", uri)
        levels, limit = validate_impact_bounds(depth, max_versions)

        def run(s: Tx) -> DatasetImpact:
            store = LineageStore(s)
            found: dict[int, ImpactedVersion] = {}
            served: dict[int, tuple[int, int, str]] = {}  # version id → model id, number, name
            rows: dict[int, Any] = {}
            uses: dict[int, list[LineageInput]] = {}
            truncated = False
            for r in store.direct_users(uri, actor.readable(), limit):
                if int(r.vid) not in uses and len(uses) >= limit:
                    truncated = True  # the (limit + 1)th version: there are more
                    continue
                uses.setdefault(int(r.vid), []).append(to_input(r))
                rows[int(r.vid)] = r
            for vid, used in uses.items():
                r = rows[vid]
                node = version_node_id(r.model, int(r.version))
                found[vid] = _impacted(r, r.model, 1, (node,), (), tuple(used))
                served[vid] = (int(r.model_id), int(r.version), r.model)
            frontier = list(found)
            for distance in range(2, levels + 2):
                if not frontier:
                    break
                derived = store.children_of(frontier, limit + 1)
                truncated |= len(derived) > limit
                children = [
                    c
                    for c in derived
                    if int(c.vid) not in found
                    and _visible(actor, c.model_id, c.name_key, c.model_deleted_at)
                ]
                if distance > levels:  # the level beyond: only whether versions lie past it
                    truncated |= bool(children)
                    break
                following = []
                for c in children:
                    vid = int(c.vid)
                    if vid in found:  # two parents at the same level: the first path
                        continue
                    if len(found) >= limit:
                        truncated = True
                        break
                    via = found[int(c.parent_version_id)]
                    path = (*via.path, version_node_id(c.name, int(c.version)))
                    relations = (*via.relations, c.qualifier)
                    found[vid] = _impacted(c, c.name, distance, path, relations, ())
                    served[vid] = (int(c.model_id), int(c.version), c.name)
                    following.append(vid)
                frontier = following
            serving = _serving(store, [served[vid] for vid in found])
            return DatasetImpact(levels, tuple(found.values()), serving, truncated)

        return self.db.read(run)

    # -- OpenLineage --------------------------------------------------------------------------

    def import_openlineage(self, actor: Actor, event: Mapping[str, Any]) -> dict[str, Any]:
        """Record an OpenLineage RunEvent: each output naming a Cairn version gets the
        event's inputs and its run id. All or nothing: a refused output changes nothing."""
        plan = parse_run_event(event)
        return self.db.write(lambda s: self._import_in(s, actor, plan))

    def _import_in(self, s: Tx, actor: Actor, plan: RunEventPlan) -> dict[str, Any]:
        recorded = []
        for ref in plan.targets:
            assert ref.version is not None
            model = self._model(s, actor, ref.name, Role.WRITE, "lineage.record")
            versions = VersionStore(s)
            row = versions.get(model.id, model.name, ref.version)
            if row.run_id is not None and not same_run(row.run_id, plan.run_id):
                raise Conflict(
                    f"version {ref.version} of {model.name!r} was made by run {row.run_id!r}, "
                    f"not {plan.run_id!r}; nothing was recorded"
                )
            run_set = row.run_id is None
            if run_set:
                versions.update(row.id, self.clock(), run_id=plan.run_id)
            added = record_in(s, actor, int(row.id), plan.inputs, self.clock())
            self._audit(
                s,
                actor,
                "lineage.openlineage",
                model=model,
                version=ref.version,
                after={"run_id": plan.run_id, "inputs": [input_to_json(i) for i in added]},
            )
            recorded.append(
                {
                    "name": model.name,
                    "version": ref.version,
                    "run_id": plan.run_id if run_set else row.run_id,
                    "inputs_added": len(added),
                }
            )
        return {"recorded": recorded, "ignored": [ignored_to_json(i) for i in plan.ignored]}

    def export_openlineage(self, actor: Actor, name: str, version: int | str) -> dict[str, Any]:
        """The version as an OpenLineage RunEvent (its inputs, itself as the output)."""
        names.validate_model_name(name)
        number = parse_version_number(version)

        def run(s: Tx) -> dict[str, Any]:
            model = self._model(s, actor, name, Role.READ, "lineage.read")
            row = VersionStore(s).get(model.id, model.name, number)
            return render_run_event(
                model.name,
                number,
                created_at=to_datetime(row.created_at),
                digest=row.digest,
                run_id=row.run_id,
                run_link=row.run_link,
                inputs=self._inputs_in(s, actor, row.id),
            )

        return self.db.read(run)


def record_in(
    s: Tx, actor: Actor, version_id: int, inputs: Sequence[LineageInput], now: int
) -> list[LineageInput]:
    """Insert the inputs the version lacks, in the caller's transaction (the version's
    WRITE already checked); returns those inserted, parents by number. Also used when a
    version is created with its inputs."""
    store = LineageStore(s)
    if any(i.kind is InputKind.MODEL_VERSION for i in inputs):
        store.lock_parents()  # before the cycle checks read the edges
    added: list[LineageInput] = []
    for i in inputs:
        parent_id = None
        if i.kind is InputKind.MODEL_VERSION:
            parent_id, uri = _parent(s, actor, i.uri)
            if parent_id == version_id:
                raise InvalidParameter(f"a version cannot derive from itself ({uri})")
            i = LineageInput(i.kind, uri, relation=i.relation)
        key = input_key(i, parent_id)
        found = store.find(version_id, key)
        if found is not None:
            if parent_id is not None and found.qualifier != i.relation:
                raise Conflict(
                    f"{i.uri} is recorded as a parent with relation {found.qualifier!r}, "
                    f"not {i.relation!r}; remove that input first to change it"
                )
            continue
        if parent_id is not None and store.descends_from(parent_id, version_id):
            raise InvalidParameter(
                f"{i.uri} derives from this version already; recording it as a parent "
                "would make a cycle"
            )
        store.insert(version_id, i, key, parent_id, actor.name, now)
        added.append(i)
    if added and store.count(version_id) > MAX_VERSION_INPUTS:
        raise InvalidParameter(
            f"a version holds at most {MAX_VERSION_INPUTS} lineage inputs; remove some first"
        )
    return added


def _parent(s: Tx, actor: Actor, uri: str) -> tuple[int, str]:
    """The parent version's id and its ``models:/NAME/VERSION`` (READ on its model)."""
    ref = parent_ref(uri)
    model = ServiceBase._model(s, actor, ref.name, Role.READ, "lineage.record")
    number = _number(s, model, ref)
    row = VersionStore(s).get(model.id, model.name, number)
    return int(row.id), version_node_id(model.name, number)


def _visible(actor: Actor, model_id: Any, name_key: Any, model_deleted_at: Any) -> bool:
    return (
        model_id is not None
        and model_deleted_at is None
        and actor.allows(Role.READ, int(model_id), str(name_key))
    )


def _number(s: Tx, model: Any, ref: ModelRef) -> int:
    if ref.version is not None:
        return ref.version
    if ref.latest:
        found = VersionStore(s).latest_ready(model.id)
        if found is None:
            raise NotFound(f"registered model {model.name!r} has no READY version")
        return found
    assert ref.alias is not None
    row = AliasStore(s).find(model.id, ref.alias)
    if row is None:
        raise NotFound(f"registered model {model.name!r} has no alias {ref.alias!r}")
    return int(row.version)


def _impacted(
    r: Any,
    name: str,
    distance: int,
    path: tuple[str, ...],
    relations: tuple[str, ...],
    inputs: tuple[LineageInput, ...],
) -> ImpactedVersion:
    deleted = r.deleted_at is not None
    return ImpactedVersion(
        name, int(r.version), str(r.status), deleted, distance, path, relations, inputs
    )


def _serving(store: LineageStore, versions: Sequence[tuple[int, int, str]]) -> tuple[Serving, ...]:
    """The aliases pointing at these versions (model id, number, model name) now and the
    deployments serving them: two queries, whatever their number; in the versions' order."""
    pairs = [(model_id, number) for model_id, number, _ in versions]
    aliased = store.aliases_of(pairs)
    deployed = store.deployments_of(pairs)
    out: list[Serving] = []
    for model_id, number, name in versions:
        pair, version = (model_id, number), version_node_id(name, number)
        for alias in aliased.get(pair, ()):
            out.append(Serving(f"models:/{name}@{alias}", version, "alias", alias))
        for d in deployed.get(pair, ()):
            node = f"deployment:{d.name}"
            out.append(Serving(node, version, "deployment", d.name, d.environment, d.url))
    return tuple(out)


class _Walk:
    """A breadth-first walk, a level of versions at a time, that stops adding nodes at
    ``limit`` (and says so)."""

    def __init__(self, store: LineageStore, actor: Actor, limit: int) -> None:
        self.store, self.actor, self.limit = store, actor, limit
        self.nodes: dict[str, Node] = {}
        self.edges: list[Edge] = []
        self.truncated = False

    def _add(self, node: Node) -> bool:
        """Add ``node``; False when it is not there and there is no room for it."""
        if node.id in self.nodes:
            return True
        if len(self.nodes) >= self.limit:
            self.truncated = True
            return False
        self.nodes[node.id] = node
        return True

    def _link(self, source: str, target: str, kind: str, **attrs: Any) -> None:
        if source in self.nodes and target in self.nodes:
            self.edges.append(Edge(source, target, kind, {k: v for k, v in attrs.items()}))

    def version(self, r: Any, *, name: str | None = None, prefix: str = "") -> str:
        """Add a version node (its run too, upstream) from a row of ``VERSION_COLUMNS``
        (or ``p_``-prefixed columns); returns its id."""

        def get(col: str) -> Any:
            return getattr(r, prefix + col)

        node_id = version_node_id(name or get("name"), int(get("version")))
        attrs = {
            "name": name or get("name"),
            "version": int(get("version")),
            "status": get("status"),
            "deleted": get("deleted_at") is not None,
        }
        self._add(Node(node_id, "model_version", attrs))
        return node_id

    def _run(self, version_id: str, run_id: Any, run_link: Any) -> None:
        if run_id is not None and version_id in self.nodes:
            run = f"run:{run_id}"
            if self._add(Node(run, "run", {"run_id": run_id, "run_link": run_link})):
                self._link(run, version_id, "run")

    def upstream(self, root: int, depth: int) -> None:
        for _ in self.upstream_levels(root, depth):
            pass

    def downstream(self, root: int, depth: int) -> None:
        for _ in self.downstream_levels(root, depth):
            pass

    def both(self, root: int, depth: int) -> None:
        """Upstream and downstream at once, a level of each in turn, so the node limit
        leaves neither side out (the root is in both; no node is added twice)."""
        walks = [self.upstream_levels(root, depth), self.downstream_levels(root, depth)]
        while walks:
            for walk in list(walks):
                if next(walk, StopIteration) is StopIteration:
                    walks.remove(walk)

    def upstream_levels(self, root: int, depth: int) -> Iterator[int]:
        """The upstream walk, yielding after each level."""
        info = self.store.versions([root])[root]
        ids = {root: version_node_id(info.name, int(info.version))}
        self._run(ids[root], info.run_id, info.run_link)
        for level in range(depth + 1):
            rows = self.store.inputs_of(list(ids))
            if level == depth:  # the level beyond: only whether versions lie past it
                self.truncated |= any(
                    r.parent_version_id is not None
                    for r in rows
                    if _visible(self.actor, r.p_model_id, r.p_name_key, r.p_model_deleted_at)
                )
                return
            following: dict[int, str] = {}
            for r in rows:
                child = ids[int(r.version_id)]
                if r.kind != InputKind.MODEL_VERSION.value:
                    node = input_node(to_input(r))
                    if self._add(node):
                        extra = {"role": r.qualifier} if r.kind == "dataset" else {}
                        self._link(node.id, child, r.kind, **extra)
                    continue
                if not _visible(self.actor, r.p_model_id, r.p_name_key, r.p_model_deleted_at):
                    continue
                known = version_node_id(r.p_name, r.p_version) in self.nodes
                parent = self.version(r, prefix="p_")
                self._link(parent, child, "model_version", relation=r.qualifier)
                if parent in self.nodes and not known:
                    self._run(parent, r.p_run_id, r.p_run_link)
                    following[int(r.parent_version_id)] = parent
            ids = following
            if not ids:
                return
            yield level

    def downstream_levels(self, root: int, depth: int) -> Iterator[int]:
        """The downstream walk, yielding after each level."""
        rows = self.store.versions([root])
        ids = {root: version_node_id(rows[root].name, int(rows[root].version))}
        self._deployments({root: rows[root]}, ids)
        for level in range(depth + 1):
            children = self.store.children_of(list(ids), self.limit + 1)
            self.truncated |= len(children) > self.limit
            visible = [
                c
                for c in children
                if _visible(self.actor, c.model_id, c.name_key, c.model_deleted_at)
            ]
            if level == depth:
                self.truncated |= bool(visible)
                return
            following: dict[int, str] = {}
            found: dict[int, Any] = {}
            for c in visible:
                known = version_node_id(c.name, int(c.version)) in self.nodes
                child = self.version(c)
                self._link(
                    ids[int(c.parent_version_id)], child, "model_version", relation=c.qualifier
                )
                if child in self.nodes and not known:
                    following[int(c.vid)] = child
                    found[int(c.vid)] = c
            self._deployments(found, following)
            ids = following
            if not ids:
                return
            yield level

    def _deployments(self, rows: Mapping[int, Any], ids: Mapping[int, str]) -> None:
        pairs = {(int(r.model_id), int(r.version)): vid for vid, r in rows.items()}
        for pair, names_ in self.store.aliases_of(list(pairs)).items():
            r = rows[pairs[pair]]
            for alias in names_:
                node = Node(
                    f"models:/{r.name}@{alias}", "deployment", {"name": r.name, "alias": alias}
                )
                if self._add(node):
                    self._link(ids[pairs[pair]], node.id, "deployment")
        # the recorded deployments serving it (docs/deployments.md): where it runs
        for pair, served in self.store.deployments_of(list(pairs)).items():
            for d in served:
                attrs = {"name": d.name, "environment": d.environment, "url": d.url}
                node = Node(f"deployment:{d.name}", "deployment", attrs)
                if self._add(node):
                    self._link(ids[pairs[pair]], node.id, "deployment")
