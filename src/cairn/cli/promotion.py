"""``cairn promote``, ``cairn approvals`` and ``cairn policies``: protected aliases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from cairn.cli.common import AllPages, Json, MaxResults, PageToken, Yes, client, confirm, every_page
from cairn.cli.output import DataTable, message, out, print_json, record_table, when
from cairn.domain.promotion import (
    AliasPolicy,
    PromotionRequest,
    PromotionStatus,
    describe_failures,
    parse_condition,
    policy_to_json,
    request_to_json,
)
from cairn.domain.uris import parse_model_uri

approvals_app = typer.Typer(
    help="Promotion requests waiting for approval: list, approve, reject, cancel.",
    no_args_is_help=True,
)
policies_app = typer.Typer(
    help="Protected aliases (instance admin): what moving an alias needs.",
    no_args_is_help=True,
)

Comment = Annotated[str, typer.Option("--comment", "-m", help="Why (kept with the decision).")]


def show_request(request: PromotionRequest, as_json: bool) -> None:
    if as_json:
        print_json(request_to_json(request))
        return
    table = record_table()
    table.add_row("request", str(request.id))
    table.add_row("promotion", f"{request.name} version {request.version} -> @{request.alias}")
    table.add_row("status", request.status.value)
    table.add_row("requested", f"{when(request.created_at)} by {request.requester}")
    if request.comment:
        table.add_row("comment", request.comment)
    for c in request.checks:
        table.add_row(f"check {c.check}", f"{'pass' if c.passed else 'FAIL'}: {c.detail}")
    for a in request.approvals:
        note = f" ({a.comment})" if a.comment else ""
        table.add_row(a.decision, f"{a.approver} at {a.at:%Y-%m-%d %H:%M:%S}{note}")
    out.print(table)


def _report(request: PromotionRequest) -> None:
    """One line on stderr: what happened to the alias."""
    where = f"@{request.alias} of {request.name!r}"
    if request.status is PromotionStatus.APPLIED:
        message(f"applied: {where} now points at version {request.version}")
    elif request.status is PromotionStatus.PENDING:
        failing = describe_failures(request.checks)
        message(f"pending: request {request.id} to move {where}; waiting on {failing}")
    else:
        message(f"{request.status.value}: request {request.id} to move {where}")


def promote(
    ctx: typer.Context,
    model_uri: Annotated[
        str,
        typer.Argument(
            metavar="MODEL_URI",
            help="models:/NAME/VERSION (or models:/NAME@ALIAS: the version it names now).",
        ),
    ],
    to: Annotated[str, typer.Option("--to", help="The alias to move, e.g. production.")],
    comment: Comment = "",
    as_json: Json = False,
) -> None:
    """Move an alias through its promotion gate: at once, or as a request for approval.

    The alias moves only when every check of its policies passes (role, metric conditions,
    clean scan, verified signature) and the approvals it needs are in.
    """
    ref = parse_model_uri(model_uri)
    sdk = client(ctx)
    version = ref.version if ref.version is not None else sdk.resolve(model_uri).version
    request = sdk.promote(ref.name, version, to, comment=comment)
    show_request(request, as_json)
    _report(request)


# -- cairn approvals -----------------------------------------------------------------------


@approvals_app.command("list")
def list_requests(
    ctx: typer.Context,
    status: Annotated[
        str, typer.Option(help="pending, applied, rejected, cancelled, or all.")
    ] = "pending",
    model: Annotated[str | None, typer.Option(help="Only requests on this model.")] = None,
    max_results: MaxResults = None,
    page_token: PageToken = None,
    all_pages: AllPages = False,
    as_json: Json = False,
) -> None:
    """Promotion requests on models you can read, newest first."""
    sdk = client(ctx)
    page = every_page(
        lambda token: sdk.list_promotions(
            status=None if status == "all" else status,
            model=model,
            max_results=max_results,
            page_token=token,
        ),
        page_token,
        all_pages,
    )
    if as_json:
        print_json([request_to_json(r) for r in page.items])
    else:
        table = DataTable(
            "id", "model", "version", "alias", "status", "requester", "requested", "checks"
        )
        for r in page.items:
            failing = [c.check for c in r.checks if not c.passed]
            checks = "all pass" if not failing else "waiting: " + ", ".join(failing)
            table.add_row(
                str(r.id),
                r.name,
                str(r.version),
                f"@{r.alias}",
                r.status.value,
                r.requester,
                when(r.created_at),
                checks,
            )
        out.print(table)
    if page.next_page_token:
        message(f"more results: --page-token {page.next_page_token}")


@approvals_app.command("show")
def show(ctx: typer.Context, request_id: int, as_json: Json = False) -> None:
    """One request with every check and decision."""
    show_request(client(ctx).get_promotion(request_id), as_json)


@approvals_app.command("approve")
def approve(
    ctx: typer.Context, request_id: int, comment: Comment = "", as_json: Json = False
) -> None:
    """Approve a request (not your own); the alias moves once every check passes."""
    request = client(ctx).approve_promotion(request_id, comment=comment)
    show_request(request, as_json)
    _report(request)


@approvals_app.command("reject")
def reject(
    ctx: typer.Context, request_id: int, comment: Comment = "", as_json: Json = False
) -> None:
    """Reject a request: it is closed and the alias stays where it is."""
    request = client(ctx).reject_promotion(request_id, comment=comment)
    show_request(request, as_json)
    _report(request)


@approvals_app.command("cancel")
def cancel(
    ctx: typer.Context, request_id: int, comment: Comment = "", as_json: Json = False
) -> None:
    """Withdraw your own pending request."""
    request = client(ctx).cancel_promotion(request_id, comment=comment)
    show_request(request, as_json)
    _report(request)


# -- cairn policies ------------------------------------------------------------------------


def _show_policies(policies: Sequence[AliasPolicy], as_json: bool) -> None:
    if as_json:
        print_json([policy_to_json(p) for p in policies])
        return
    table = DataTable(
        "id", "models", "aliases", "role", "approvals", "metrics", "scan", "signed", "compatible"
    )
    for p in policies:
        table.add_row(
            str(p.id),
            p.model_pattern,
            p.alias_pattern,
            p.min_role.name,
            str(p.approvals),
            ", ".join(c.text for c in p.conditions),
            "clean" if p.require_clean_scan else "-",
            "verified" if p.require_signature else "-",
            "required" if p.require_compatible else "-",
        )
    out.print(table)


@policies_app.command("set")
def set_policy(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Option(help="Models: '*', a prefix such as 'risk.*', or a model name.")
    ],
    alias: Annotated[
        str, typer.Option(help="Aliases: '*', a prefix such as 'prod*', or an alias.")
    ],
    min_role: Annotated[str, typer.Option(help="Role needed to move: WRITE or MANAGE.")] = "MANAGE",
    approvals: Annotated[
        int, typer.Option(help="Approvals needed from people other than the requester.")
    ] = 0,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            help="A metric condition, e.g. 'auc>=0.9' (repeatable; >=, >, <=, <, ==, !=)."
        ),
    ] = None,
    require_clean_scan: Annotated[
        bool, typer.Option("--require-clean-scan", help="The version's scan must be clean.")
    ] = False,
    require_signature: Annotated[
        bool,
        typer.Option("--require-signature", help="A verified signature must cover its files."),
    ] = False,
    require_compatible: Annotated[
        bool,
        typer.Option(
            "--require-compatible",
            help="Its MLflow signature must break no caller of the version the alias points "
            "at (see `cairn diff --signature`).",
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Protect aliases: create the policy of (--model, --alias), or replace its rules."""
    conditions = [parse_condition(m) for m in metric or []]
    policy = client(ctx).set_policy(
        model,
        alias,
        min_role=min_role,
        approvals=approvals,
        conditions=conditions,
        require_clean_scan=require_clean_scan,
        require_signature=require_signature,
        require_compatible=require_compatible,
    )
    _show_policies([policy], as_json)


@policies_app.command("list")
def list_policies(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Option(help="Only the policies that apply to this model.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Every policy (instance admin), or those that apply to --model."""
    _show_policies(client(ctx).list_policies(model=model), as_json)


@policies_app.command("delete")
def delete_policy(ctx: typer.Context, policy_id: int, yes: Yes = False) -> None:
    """Remove a policy: the aliases it protected are no longer gated by it."""
    confirm(f"delete alias policy {policy_id}?", yes)
    client(ctx).delete_policy(policy_id)
    message(f"deleted alias policy {policy_id}")
