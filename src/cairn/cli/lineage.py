"""``cairn lineage``: what a version came from and what came from it; OpenLineage in and out.

``LineageOptions`` (``--dataset``, ``--parent``, ``--relation``) are shared with ``cairn
versions create`` and ``cairn push``, which record them with the new version.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text
from rich.tree import Tree

from cairn.cli.common import AllPages, Json, MaxResults, PageToken, Yes, client, confirm, every_page
from cairn.cli.output import DataTable, message, out, print_json, stamp
from cairn.client.base import BaseClient
from cairn.domain.codec import format_time
from cairn.domain.lineage import (
    DEFAULT_DEPTH,
    DatasetImpact,
    Direction,
    LineageGraph,
    LineageInput,
    Node,
    code_input,
    dataset_input,
    graph_to_json,
    impact_to_json,
    input_to_json,
    parent_input,
    use_to_json,
)
from cairn.domain.uris import parse_model_uri
from cairn.errors import InvalidParameter

app = typer.Typer(
    help="Lineage: the datasets, code and parent versions a version came from, the versions "
    "and deployments that came from it; OpenLineage in and out.",
    no_args_is_help=True,
)

ModelUri = Annotated[
    str,
    typer.Argument(
        metavar="MODEL_URI", help="models:/NAME/VERSION (or @ALIAS, /latest: the version now)."
    ),
]
Datasets = Annotated[
    list[str] | None,
    typer.Option("--dataset", help="A dataset URI it was made from (s3://…, file:/…); repeatable."),
]
Parents = Annotated[
    list[str] | None,
    typer.Option("--parent", help="A version it derives from (models:/NAME/VERSION); repeatable."),
]
Relation = Annotated[
    str,
    typer.Option(
        help="How it derives from --parent: fine-tune, quantize, distil, retrain, merge, "
        "convert or other."
    ),
]


def lineage_options(
    datasets: Sequence[str] | None, parents: Sequence[str] | None, relation: str
) -> list[LineageInput]:
    """The inputs ``--dataset`` and ``--parent`` name (for create and push)."""
    return [dataset_input(u) for u in datasets or ()] + [
        parent_input(u, relation) for u in parents or ()
    ]


def _version(sdk: BaseClient, model_uri: str) -> tuple[str, int]:
    ref = parse_model_uri(model_uri)
    if ref.version is not None:
        return ref.name, ref.version
    return ref.name, sdk.resolve(model_uri).version


def _describe(i: LineageInput) -> str:
    if i.kind.value == "dataset":
        extra = [f"role={i.role}" if i.role else "", f"digest={i.digest}" if i.digest else ""]
        named = f" ({i.name})" if i.name else ""
        return " ".join([i.uri + named, *filter(None, extra)])
    if i.kind.value == "code":
        return f"{i.uri} @ {i.commit}"
    return f"{i.uri} ({i.relation}{', deleted' if i.deleted else ''})"


def _show_inputs(inputs: Sequence[LineageInput], as_json: bool) -> None:
    if as_json:
        print_json([input_to_json(i) for i in inputs])
        return
    table = DataTable("id", "kind", "input", "recorded")
    for i in inputs:
        when = stamp(format_time(i.created_at))
        table.add_row(str(i.id), i.kind.value, _describe(i), f"{when} by {i.created_by or '-'}")
    out.print(table)


@app.command("add")
def add(
    ctx: typer.Context,
    model_uri: ModelUri,
    dataset: Datasets = None,
    digest: Annotated[
        str | None, typer.Option(help="The datasets' version: sha256:<hex> or any version string.")
    ] = None,
    role: Annotated[
        str | None, typer.Option(help="The datasets' role: train, validation, test, eval, other.")
    ] = None,
    dataset_name: Annotated[str | None, typer.Option(help="A readable name for them.")] = None,
    code: Annotated[str | None, typer.Option(help="The code's repository URI.")] = None,
    commit: Annotated[str | None, typer.Option(help="The commit of --code.")] = None,
    parent: Parents = None,
    relation: Relation = "other",
    as_json: Json = False,
) -> None:
    """Record inputs of a version (WRITE on its model); ones recorded already are kept.

    --digest, --role and --dataset-name apply to every --dataset of the command.
    """
    inputs = [dataset_input(u, name=dataset_name, digest=digest, role=role) for u in dataset or ()]
    if (code is None) != (commit is None):
        raise InvalidParameter("--code and --commit go together: the repository and its commit")
    if code is not None and commit is not None:
        inputs.append(code_input(code, commit))
    inputs += [parent_input(u, relation) for u in parent or ()]
    if not inputs:
        raise InvalidParameter("name an input: --dataset, --code with --commit, or --parent")
    sdk = client(ctx)
    name, version = _version(sdk, model_uri)
    _show_inputs(sdk.add_lineage(name, version, inputs), as_json)


@app.command("inputs")
def inputs(ctx: typer.Context, model_uri: ModelUri, as_json: Json = False) -> None:
    """A version's inputs, with the ids `cairn lineage remove` takes."""
    sdk = client(ctx)
    _show_inputs(sdk.list_lineage(*_version(sdk, model_uri)), as_json)


@app.command("remove")
def remove(
    ctx: typer.Context,
    model_uri: ModelUri,
    input_id: Annotated[int, typer.Argument(help="The input's id (cairn lineage inputs).")],
    yes: Yes = False,
) -> None:
    """Remove one input of a version (WRITE on its model; audited)."""
    sdk = client(ctx)
    name, version = _version(sdk, model_uri)
    confirm(f"Remove lineage input {input_id} of {name} version {version}?", yes)
    gone = sdk.remove_lineage(name, version, input_id)
    message(f"removed {gone.kind.value} input {_describe(gone)}")


def _label(node: Node, via: dict[str, Any] | None) -> Text:
    """One node of the tree: versions and deployments in bold (as plain text: a URI may
    hold what Rich would read as markup)."""
    a = node.attrs
    label = Text(overflow="fold")
    if node.kind == "model_version":
        label.append(node.id, style="bold")
        label.append(f" {a.get('status')}" + (" (deleted)" if a.get("deleted") else ""))
    elif node.kind == "dataset":
        label.append(f"dataset {a['uri']}" + (f" @ {a['digest']}" if a.get("digest") else ""))
    elif node.kind == "code":
        label.append(f"code {a['uri']} @ {a['commit']}")
    elif node.kind == "run":
        label.append(f"run {a['run_id']}" + (f" ({a['run_link']})" if a.get("run_link") else ""))
    elif "alias" in a:
        label.append("deployed as ")
        label.append(f"@{a['alias']}", style="bold")
    else:  # a recorded deployment
        label.append("served by ")
        label.append(str(a["name"]), style="bold")
        label.append(f" ({a['environment']})" + (f" {a['url']}" if a.get("url") else ""))
    qualifier = (via or {}).get("relation") or (via or {}).get("role")
    if qualifier:
        label.append(f" ({qualifier})", style="dim")
    return label


def render_tree(graph: LineageGraph) -> Tree:
    """The graph as a tree from its root: upstream, each node's inputs below it;
    downstream, what came from it; both, the two under the root, each under its heading.
    A node met again is named, not repeated."""
    nodes = {n.id: n for n in graph.nodes}
    inputs: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    outputs: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for e in graph.edges:
        inputs.setdefault(e.target, []).append((e.source, dict(e.attrs)))
        outputs.setdefault(e.source, []).append((e.target, dict(e.attrs)))
    tree = Tree(_label(nodes[graph.root], None))
    shown = {graph.root}
    if graph.direction is Direction.BOTH:
        # no cycles: what the root came from and what came from it are apart
        if inputs.get(graph.root):
            _grow(tree.add(Text("came from", style="italic")), graph.root, inputs, nodes, shown)
        if outputs.get(graph.root):
            _grow(tree.add(Text("went into", style="italic")), graph.root, outputs, nodes, shown)
    else:
        below = inputs if graph.direction is Direction.UPSTREAM else outputs
        _grow(tree, graph.root, below, nodes, shown)
    return tree


def _grow(
    tree: Tree,
    root: str,
    below: Mapping[str, list[tuple[str, dict[str, Any]]]],
    nodes: Mapping[str, Node],
    shown: set[str],
) -> None:
    """Add what lies ``below`` ``root`` to ``tree``, breadth-first."""
    todo = [(tree, root)]
    while todo:
        branch, node_id = todo.pop(0)
        for child, via in below.get(node_id, []):
            if child in shown:
                branch.add(Text(f"{child} (shown above)", style="dim", overflow="fold"))
                continue
            shown.add(child)
            todo.append((branch.add(_label(nodes[child], via)), child))


@app.command("show")
def show(
    ctx: typer.Context,
    model_uri: ModelUri,
    downstream: Annotated[
        bool,
        typer.Option(
            "--downstream/--upstream",
            help="What came from the version (derived versions, deployments), or what it "
            "came from (the default).",
        ),
    ] = False,
    direction: Annotated[
        str | None,
        typer.Option(
            help="upstream, downstream or both (what it came from and what came from it); "
            "--downstream is --direction downstream."
        ),
    ] = None,
    depth: Annotated[
        int, typer.Option(min=1, max=10, help="Levels of versions to follow (1-10).")
    ] = DEFAULT_DEPTH,
    max_nodes: Annotated[int, typer.Option(min=1, max=1000, help="Nodes at most.")] = 200,
    as_json: Json = False,
) -> None:
    """A version's lineage as a tree (models you cannot read are left out)."""
    if direction is None:
        direction = "downstream" if downstream else "upstream"
    elif downstream and Direction.parse(direction) is not Direction.DOWNSTREAM:
        raise InvalidParameter(f"--downstream and --direction {direction} disagree: give one")
    sdk = client(ctx)
    name, version = _version(sdk, model_uri)
    graph = sdk.lineage_graph(name, version, direction=direction, depth=depth, max_nodes=max_nodes)
    if as_json:
        print_json(graph_to_json(graph))
    else:
        out.print(render_tree(graph), soft_wrap=False)  # long URIs fold, not cut
    if graph.truncated:
        message("truncated: there is more beyond --depth or --max-nodes")


@app.command("used-by")
def used_by(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(help="The dataset URI, exactly as recorded.")],
    depth: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=10,
            help="Also the versions derived from its users, this many levels in all (1: the "
            "users only), and what serves any of them now; without it, the users a page at "
            "a time.",
        ),
    ] = None,
    max_versions: Annotated[
        int | None, typer.Option(min=1, max=1000, help="With --depth: versions at most (200).")
    ] = None,
    max_results: MaxResults = None,
    page_token: PageToken = None,
    all_pages: AllPages = False,
    as_json: Json = False,
) -> None:
    """The versions that used a dataset (impact analysis), of models you can read; with
    --depth, transitively, and the aliases and deployments serving them."""
    sdk = client(ctx)
    if depth is not None or max_versions is not None:
        if max_results is not None or page_token is not None or all_pages:
            raise InvalidParameter(
                "--depth answers at most --max-versions versions at once: it takes no "
                "--max-results, --page-token or --all"
            )
        _show_impact(sdk.dataset_impact(uri, depth=depth, max_versions=max_versions), as_json)
        return
    page = every_page(
        lambda token: sdk.dataset_users(uri, max_results=max_results, page_token=token),
        page_token,
        all_pages,
    )
    if as_json:
        print_json([use_to_json(u) for u in page.items])
    else:
        table = DataTable("model", "version", "role", "digest", "recorded")
        for u in page.items:
            table.add_row(
                u.name,
                f"{u.version}{' (deleted)' if u.deleted else ''}",
                u.input.role or "-",
                u.input.digest or "-",
                stamp(format_time(u.input.created_at)),
            )
        out.print(table)
    if page.next_page_token:
        message(f"more results: --page-token {page.next_page_token}")


def _show_impact(impact: DatasetImpact, as_json: bool) -> None:
    if as_json:
        print_json(impact_to_json(impact))
    else:
        table = DataTable("version", "distance", "how")
        for v in impact.versions:
            if v.distance == 1:
                roles = sorted({i.role for i in v.inputs if i.role})
                how = "used it" + (f" ({', '.join(roles)})" if roles else "")
            else:
                steps = [v.path[0]] + [
                    f"-{rel}-> {step}" for rel, step in zip(v.relations, v.path[1:], strict=True)
                ]
                how = " ".join(steps)
            table.add_row(v.id + (" (deleted)" if v.deleted else ""), str(v.distance), how)
        out.print(table)
        serving = DataTable("serves", "by", "environment", "url")
        for s in impact.serving:
            by = f"@{s.name}" if s.kind == "alias" else s.name
            serving.add_row(s.version, by, s.environment or "-", s.url or "-")
        if impact.serving:
            out.print(serving)
        else:
            message("nothing serves an affected version now")
    if impact.truncated:
        message("truncated: there are more versions beyond --depth or --max-versions")


def _events(path: str) -> list[Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidParameter(f"{path} is not JSON: {exc}") from None
    return data if isinstance(data, list) else [data]


@app.command("import-openlineage")
def import_openlineage(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="A RunEvent (or a JSON array of them); - for stdin.")],
    as_json: Json = False,
) -> None:
    """Record OpenLineage RunEvents: outputs named models:/NAME/VERSION get the inputs."""
    sdk = client(ctx)
    answers = [sdk.import_openlineage(event) for event in _events(file)]
    if as_json:
        print_json(answers)
        return
    for answer in answers:
        for r in answer["recorded"]:
            message(
                f"recorded {r['name']} version {r['version']}: {r['inputs_added']} new "
                f"input(s), run {r['run_id']}"
            )
        for i in answer["ignored"]:
            message(f"ignored {i['namespace']} {i['name']}: {i['reason']}")


@app.command("export")
def export(
    ctx: typer.Context,
    model_uri: ModelUri,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """A version's lineage as an OpenLineage RunEvent (JSON), for Marquez, DataHub and co."""
    sdk = client(ctx)
    event = sdk.export_openlineage(*_version(sdk, model_uri))
    if output is None:
        print_json(event)
    else:
        output.write_text(json.dumps(event, indent=2) + "\n", encoding="utf-8")
        message(f"wrote {output}")
