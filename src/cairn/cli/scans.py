"""``cairn scan``: what the unsafe-file scan found in a version, re-scanning, and policies."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from cairn.cli.common import Json, client
from cairn.cli.output import DataTable, message, out, print_json
from cairn.domain.scans import (
    SCAN_ACTIONS,
    ScanPolicy,
    ScanReport,
    scan_policy_to_json,
    scan_report_to_json,
)
from cairn.errors import InvalidParameter

app = typer.Typer(
    help="Unsafe-file scanning: findings per file, re-scans, and what a flagged version gets.",
    no_args_is_help=True,
)
ModelUri = Annotated[str, typer.Argument(help="models:/NAME/VERSION (or @ALIAS, /latest).")]
_STYLE = {"clean": "green", "flagged": "red", "error": "yellow", "unscanned": "dim"}


def _show(report: ScanReport, as_json: bool) -> None:
    if as_json:
        print_json(scan_report_to_json(report))
        return
    style = _STYLE.get(report.status, "")
    state = "quarantined" if report.quarantined else (report.action or "no verdict recorded")
    out.print(
        f"models:/{report.name}/{report.version}: [{style}]{report.status}[/{style}] "
        f"({state}; policy {report.policy}, from the {report.policy_source})",
        highlight=False,
    )
    if report.status != "clean":
        out.print(report.summary, highlight=False)
    table = DataTable("path", "format", "status", "findings")
    for f in report.files:
        found = [
            (f"{x.member}: " if x.member else "")
            + (f"{x.module}.{x.name}" if x.module else x.detail)
            + ("" if x.kind in ("dangerous_global", "suspicious_global") else f" ({x.kind})")
            for x in f.findings
            if x.kind != "suspicious_global" or f.status != "clean"
        ]
        suspicious = sum(1 for x in f.findings if x.kind == "suspicious_global")
        if f.status == "clean" and suspicious:
            found.append(f"{suspicious} import(s) not known to be safe (--json lists them)")
        status = Text(f.status, style=_STYLE.get(f.status, ""))
        table.add_row(f.path, f.format or "-", status, "\n".join(found))
    out.print(table)


def _policy(policy: ScanPolicy, as_json: bool) -> None:
    if as_json:
        print_json(scan_policy_to_json(policy))
    else:
        source = "its own" if policy.action else "the instance default"
        message(f"scan policy of {policy.name!r}: {policy.effective} ({source})")


@app.command("show")
def show(ctx: typer.Context, model_uri: ModelUri, as_json: Json = False) -> None:
    """Each file's format, status and findings (the imports found), and the version's verdict."""
    sdk = client(ctx)
    version = sdk.resolve(model_uri)
    _show(sdk.get_scan_report(version.name, version.version), as_json)


@app.command("rerun")
def rerun(ctx: typer.Context, model_uri: ModelUri, as_json: Json = False) -> None:
    """Scan a READY version's files again and apply the model's policy now (needs MANAGE).

    This is how a policy change reaches a version judged before it (quarantine or release).
    """
    sdk = client(ctx)
    version = sdk.resolve(model_uri)
    _show(sdk.rescan_version(version.name, version.version), as_json)


@app.command("policy")
def policy(
    ctx: typer.Context,
    name: str,
    action: Annotated[
        str | None,
        typer.Argument(
            help="label, quarantine, reject, or default (the instance's); omitted: show it."
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Show or set what a version of model NAME gets when its scan is not clean (needs MANAGE).

    label: recorded only. quarantine: READY, but downloads need an audited override by
    someone with MANAGE. reject: the version becomes FAILED.
    """
    sdk = client(ctx)
    if action is None:
        _policy(sdk.get_scan_policy(name), as_json)
        return
    if action.lower() not in (*SCAN_ACTIONS, "default"):
        raise InvalidParameter(
            f"scan action must be one of {', '.join(SCAN_ACTIONS)} or default; got {action!r}"
        )
    wanted = None if action.lower() == "default" else action.lower()
    _policy(sdk.set_scan_policy(name, wanted), as_json)
