"""The registry workload: the same phases, in the same order, for Cairn's API and MLflow's.

Each phase is a fixed list of concrete HTTP requests (method, path with encoded query,
JSON body, expected status) plus how many concurrent clients replay it. Both servers get
requests of the same shape: the same model names, tags, sources, run ids, alias targets and
filters, only spelled in each API's dialect.

MLflow's model-version search cannot filter on metrics, so the filtered version search on
both sides is ``name = '<model>' AND tags.kind = '<kind>'``; versions carry no metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote, urlencode

RUN_ID = "0123456789abcdef0123456789abcdef"
TEAMS = ("risk", "fraud")
KINDS = ("candidate", "baseline")
ALIASES = ("champion", "challenger")


@dataclass(frozen=True)
class Req:
    """One HTTP request to replay; ``path`` already carries its percent-encoded query."""

    method: str
    path: str
    body: bytes
    expect: int


@dataclass(frozen=True)
class Phase:
    """A named list of requests replayed by ``concurrency`` closed-loop clients."""

    name: str
    concurrency: int
    requests: tuple[Req, ...]


@dataclass(frozen=True)
class Counts:
    """Sizes of the workload; ``FULL`` is the issue's, ``QUICK`` a smoke-test subset."""

    models: int
    versions: int
    aliases: int
    reads: int
    searches: int


Effect = tuple[str, int, str]  # ("model" | "version" | "alias" | "", model index, alias)
NO_EFFECT: Effect = ("", -1, "")
Built = list[tuple[Req, Effect]]

FULL = Counts(models=200, versions=2000, aliases=400, reads=2000, searches=200)
QUICK = Counts(models=20, versions=200, aliases=40, reads=200, searches=20)


class Api(Protocol):
    """Builds the requests of one server's dialect."""

    def create_model(self, name: str, team: str) -> Req: ...
    def create_version(self, name: str, kind: str, seq: int) -> Req: ...
    def set_alias(self, name: str, alias: str, version: int) -> Req: ...
    def get_alias(self, name: str, alias: str) -> Req: ...
    def search_versions(self, name: str, kind: str) -> Req: ...
    def search_models(self, prefix: str, team: str) -> Req: ...
    def probe(self) -> Req: ...


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _query(params: dict[str, str]) -> str:
    return urlencode(params, quote_via=quote, safe="")


def _source(name: str, seq: int) -> str:
    return f"s3://bench-artifacts/{name}/{seq}"


class CairnApi:
    """Cairn's native ``/api/v1`` dialect."""

    def create_model(self, name: str, team: str) -> Req:
        body = {"name": name, "description": "", "tags": {"team": team}}
        return Req("POST", "/api/v1/models", _json(body), 201)

    def create_version(self, name: str, kind: str, seq: int) -> Req:
        body = {
            "description": "",
            "tags": {"kind": kind, "seq": str(seq)},
            "source": _source(name, seq),
            "run_id": RUN_ID,
        }
        return Req("POST", f"/api/v1/models/{name}/versions", _json(body), 201)

    def set_alias(self, name: str, alias: str, version: int) -> Req:
        return Req(
            "PUT", f"/api/v1/models/{name}/aliases/{alias}", _json({"version": version}), 200
        )

    def get_alias(self, name: str, alias: str) -> Req:
        return Req("GET", f"/api/v1/models/{name}/aliases/{alias}", b"", 200)

    def search_versions(self, name: str, kind: str) -> Req:
        query = _query(
            {"filter": f"name = '{name}' AND tags.kind = '{kind}'", "max_results": "100"}
        )
        return Req("GET", f"/api/v1/search/versions?{query}", b"", 200)

    def search_models(self, prefix: str, team: str) -> Req:
        flt = f"name LIKE '{prefix}%' AND tags.team = '{team}'"
        return Req(
            "GET", f"/api/v1/models?{_query({'filter': flt, 'max_results': '100'})}", b"", 200
        )

    def probe(self) -> Req:
        return Req("GET", "/api/v1/models?max_results=1", b"", 200)


class MlflowApi:
    """MLflow's REST dialect under ``/api/2.0/mlflow``."""

    prefix = "/api/2.0/mlflow"

    def create_model(self, name: str, team: str) -> Req:
        body = {"name": name, "description": "", "tags": [{"key": "team", "value": team}]}
        return Req("POST", f"{self.prefix}/registered-models/create", _json(body), 200)

    def create_version(self, name: str, kind: str, seq: int) -> Req:
        body = {
            "name": name,
            "description": "",
            "tags": [{"key": "kind", "value": kind}, {"key": "seq", "value": str(seq)}],
            "source": _source(name, seq),
            "run_id": RUN_ID,
        }
        return Req("POST", f"{self.prefix}/model-versions/create", _json(body), 200)

    def set_alias(self, name: str, alias: str, version: int) -> Req:
        body = {"name": name, "alias": alias, "version": str(version)}
        return Req("POST", f"{self.prefix}/registered-models/alias", _json(body), 200)

    def get_alias(self, name: str, alias: str) -> Req:
        query = _query({"name": name, "alias": alias})
        return Req("GET", f"{self.prefix}/registered-models/alias?{query}", b"", 200)

    def search_versions(self, name: str, kind: str) -> Req:
        query = _query(
            {"filter": f"name = '{name}' AND tags.kind = '{kind}'", "max_results": "100"}
        )
        return Req("GET", f"{self.prefix}/model-versions/search?{query}", b"", 200)

    def search_models(self, prefix: str, team: str) -> Req:
        flt = f"name LIKE '{prefix}%' AND tags.team = '{team}'"
        query = _query({"filter": flt, "max_results": "100"})
        return Req("GET", f"{self.prefix}/registered-models/search?{query}", b"", 200)

    def probe(self) -> Req:
        return Req("GET", f"{self.prefix}/registered-models/search?max_results=1", b"", 200)


def model_name(i: int) -> str:
    return f"bench-{i}"


@dataclass
class State:
    """What the server holds so far, as far as the harness knows from what it sent.

    Phases are built from this, so a phase stopped by its time cap (a slow server) leaves
    the next phases aimed only at objects that exist: they then run on a smaller data set,
    which can only flatter that server, never fail it.
    """

    models: list[int] = field(default_factory=list)
    versions: dict[int, int] = field(default_factory=dict)
    aliases: list[tuple[int, str]] = field(default_factory=list)
    next_seq: int = 0

    def apply(self, effects: Iterable[Effect]) -> None:
        for kind, model, alias in effects:
            if kind == "model":
                self.models.append(model)
                self.versions.setdefault(model, 0)
            elif kind == "version":
                self.versions[model] = self.versions.get(model, 0) + 1
            elif kind == "alias" and (model, alias) not in self.aliases:
                self.aliases.append((model, alias))


def _models(api: Api, counts: Counts, _: State) -> Built:
    return [
        (api.create_model(model_name(i), TEAMS[i % 2]), ("model", i, ""))
        for i in range(counts.models)
    ]


def _versions(api: Api, counts: Counts, state: State) -> Built:
    """Versions round-robin over the models; ``kind`` alternates per pass over the models."""
    models = state.models
    built: Built = []
    for j in range(counts.versions if models else 0):
        seq = state.next_seq + j
        model = models[seq % len(models)]
        kind = KINDS[(seq // len(models)) % 2]
        built.append((api.create_version(model_name(model), kind, seq), ("version", model, "")))
    state.next_seq += counts.versions
    return built


def _aliases(api: Api, counts: Counts, state: State) -> Built:
    """``champion`` -> version 1 and ``challenger`` -> version 2 of each model, in turn."""
    eligible = [m for m in state.models if state.versions.get(m, 0) >= len(ALIASES)]
    built: Built = []
    for i in range(counts.aliases if eligible else 0):
        model, turn = eligible[i % len(eligible)], (i // len(eligible)) % len(ALIASES)
        req = api.set_alias(model_name(model), ALIASES[turn], 1 + turn)
        built.append((req, ("alias", model, ALIASES[turn])))
    return built


def _reads(api: Api, counts: Counts, state: State) -> Built:
    pairs = state.aliases
    return [
        (api.get_alias(model_name(pairs[i % len(pairs)][0]), pairs[i % len(pairs)][1]), NO_EFFECT)
        for i in range(counts.reads if pairs else 0)
    ]


def _version_searches(api: Api, counts: Counts, state: State) -> Built:
    models = state.models
    return [
        (api.search_versions(model_name(models[i % len(models)]), KINDS[i % 2]), NO_EFFECT)
        for i in range(counts.searches if models else 0)
    ]


def _model_searches(api: Api, counts: Counts, _: State) -> Built:
    return [
        (api.search_models(f"bench-{1 + i % 9}", TEAMS[(i // 9) % 2]), NO_EFFECT)
        for i in range(counts.searches)
    ]


@dataclass(frozen=True)
class PhaseSpec:
    """A phase to be built against the current :class:`State`."""

    name: str
    concurrency: int
    build: Callable[[Api, Counts, State], Built]

    def make(self, api: Api, counts: Counts, state: State) -> tuple[Phase, list[Effect]]:
        built = self.build(api, counts, state)
        reqs = tuple(req for req, _ in built)
        phase = Phase(self.name, max(1, min(self.concurrency, len(reqs))), reqs)
        return phase, [effect for _, effect in built]


def phase_specs(threads: int = 8) -> list[PhaseSpec]:
    """All phases in run order; later phases use the objects earlier ones created."""
    return [
        PhaseSpec("create models", 1, _models),
        PhaseSpec("create versions, 1 client", 1, _versions),
        PhaseSpec(f"create versions, {threads} clients", threads, _versions),
        PhaseSpec("set aliases", 1, _aliases),
        PhaseSpec("get by alias, 1 client", 1, _reads),
        PhaseSpec(f"get by alias, {threads} clients", threads, _reads),
        PhaseSpec("search versions (filtered)", 1, _version_searches),
        PhaseSpec("search models (filtered)", 1, _model_searches),
    ]


def sent_effects(phase: Phase, effects: list[Effect], sent_per_client: list[int]) -> list[Effect]:
    """Effects of the requests each client actually sent (each sends a prefix of its share)."""
    clients = phase.concurrency
    indices = range(len(phase.requests))
    done: list[Effect] = []
    for k, sent in enumerate(sent_per_client):
        done += [effects[i] for i in indices[k::clients][:sent]]
    return done


def slices(phase: Phase, effects: list[Effect], count: int) -> list[tuple[Phase, list[Effect]]]:
    """``phase`` (with its requests' effects) cut into at most ``count`` consecutive parts
    of whole rounds of its clients, so that each client sends the same requests in the same
    order as it would in the whole phase."""
    clients = phase.concurrency
    step = clients * max(1, -(-len(phase.requests) // (clients * count)))
    return [
        (
            Phase(
                phase.name,
                max(1, min(clients, len(phase.requests[i : i + step]))),
                phase.requests[i : i + step],
            ),
            effects[i : i + step],
        )
        for i in range(0, len(phase.requests), step)
    ]


def planned_phases(api: Api, counts: Counts) -> list[Phase]:
    """Every phase as built when every earlier request succeeds (for ceilings and set-ups)."""
    state, phases = State(), []
    for spec in phase_specs():
        phase, effects = spec.make(api, counts, state)
        state.apply(effects)
        phases.append(phase)
    return phases


def as_ceiling(phase: Phase, min_requests: int = 2000) -> Phase:
    """The same phase aimed at the trivial endpoint, which answers 200 to everything.

    Short phases are repeated up to ``min_requests`` so the ceiling is not a few milliseconds
    of noise.
    """
    reqs = tuple(Req(r.method, r.path, r.body, 200) for r in phase.requests)
    repeat = max(1, -(-min_requests // len(reqs)))
    return Phase(phase.name, phase.concurrency, reqs * repeat)
