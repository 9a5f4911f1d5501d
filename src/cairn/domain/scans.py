"""Values of unsafe-file scanning: what a scan found in one file, a version's verdict, and
their JSON.

A file is ``clean``, ``flagged`` (a dangerous import such as ``os.system`` was found in a
pickle stream) or ``error`` (it claims a format, by its bytes, that does not parse, or it
could not be inspected). A version's verdict is the worst of its files'. What happens to a
version that is not clean is the policy's ``action``: ``label`` (recorded, nothing else),
``quarantine`` (READY, but downloads need an audited override by someone with MANAGE) or
``reject`` (the version becomes FAILED).

Scanners are blocklists: ``clean`` means "nothing known to be dangerous was found", never
"safe to load".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cairn.domain.codec import format_time, parse_time
from cairn.errors import InvalidParameter

SCAN_ACTIONS = ("label", "quarantine", "reject")
CLEAN, FLAGGED, ERROR = "clean", "flagged", "error"
UNSCANNED = "unscanned"  # a file or version the current scanner has not looked at
_SEVERITY = {CLEAN: 0, UNSCANNED: 1, ERROR: 2, FLAGGED: 3}


def parse_scan_action(value: object) -> str:
    if isinstance(value, str) and value.lower() in SCAN_ACTIONS:
        return value.lower()
    raise InvalidParameter(f"scan action must be one of {', '.join(SCAN_ACTIONS)}; got {value!r}")


def worst_status(statuses: list[str]) -> str:
    """The verdict of several files: flagged > error > unscanned > clean (none: clean)."""
    return max(statuses, key=lambda s: _SEVERITY.get(s, 2), default=CLEAN)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a scan found.

    ``kind`` is ``dangerous_global`` (an import picklescan knows to be dangerous),
    ``suspicious_global`` (an import it does not know to be safe), ``malformed`` (bytes
    that do not parse as the format they claim), ``unscannable`` (content that could not
    be inspected) or ``note`` (anything worth knowing that changes no verdict).
    ``member`` names the file inside an archive (``archive/data.pkl``).
    """

    kind: str
    module: str | None = None
    name: str | None = None
    member: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BlobScan:
    """The result of scanning one blob's bytes."""

    format: str
    status: str
    findings: tuple[Finding, ...] = ()
    scanner: str = ""


@dataclass(frozen=True, slots=True)
class FileScan:
    path: str
    digest: str
    size: int
    status: str  # clean | flagged | error | unscanned
    format: str | None = None
    findings: tuple[Finding, ...] = ()
    scanner: str | None = None
    scanned_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScanReport:
    """A version's scan: the verdict, what the policy did, and every file's result.

    ``action`` is the policy that was applied to the verdict (None while no verdict is
    recorded); ``policy`` is the model's policy now and ``policy_source`` says whether it
    is the model's own (``model``) or the instance default (``instance``).
    """

    name: str
    version: int
    status: str
    action: str | None
    quarantined: bool
    policy: str
    policy_source: str
    summary: str
    scanned_at: datetime | None
    files: tuple[FileScan, ...]


@dataclass(frozen=True, slots=True)
class ScanPolicy:
    """A model's scan policy: its own ``action`` (None: the instance default applies) and
    the ``effective`` one."""

    name: str
    action: str | None
    effective: str


def scan_policy_to_json(p: ScanPolicy) -> dict[str, Any]:
    return {"name": p.name, "action": p.action, "effective": p.effective}


def scan_policy_from_json(d: dict[str, Any]) -> ScanPolicy:
    return ScanPolicy(name=d["name"], action=d.get("action"), effective=d["effective"])


def finding_to_json(f: Finding) -> dict[str, Any]:
    return {
        "kind": f.kind,
        "module": f.module,
        "name": f.name,
        "member": f.member,
        "detail": f.detail,
    }


def finding_from_json(d: dict[str, Any]) -> Finding:
    return Finding(
        kind=str(d["kind"]),
        module=d.get("module"),
        name=d.get("name"),
        member=d.get("member"),
        detail=str(d.get("detail") or ""),
    )


def scan_report_to_json(r: ScanReport) -> dict[str, Any]:
    return {
        "name": r.name,
        "version": r.version,
        "status": r.status,
        "action": r.action,
        "quarantined": r.quarantined,
        "policy": r.policy,
        "policy_source": r.policy_source,
        "summary": r.summary,
        "scanned_at": format_time(r.scanned_at),
        "files": [
            {
                "path": f.path,
                "digest": f.digest,
                "size": f.size,
                "status": f.status,
                "format": f.format,
                "findings": [finding_to_json(x) for x in f.findings],
                "scanner": f.scanner,
                "scanned_at": format_time(f.scanned_at),
            }
            for f in r.files
        ],
    }


def scan_report_from_json(d: dict[str, Any]) -> ScanReport:
    return ScanReport(
        name=d["name"],
        version=int(d["version"]),
        status=d["status"],
        action=d.get("action"),
        quarantined=bool(d["quarantined"]),
        policy=d["policy"],
        policy_source=d["policy_source"],
        summary=d.get("summary") or "",
        scanned_at=parse_time(d.get("scanned_at")),
        files=tuple(
            FileScan(
                path=f["path"],
                digest=f["digest"],
                size=int(f["size"]),
                status=f["status"],
                format=f.get("format"),
                findings=tuple(finding_from_json(x) for x in f.get("findings") or ()),
                scanner=f.get("scanner"),
                scanned_at=parse_time(f.get("scanned_at")),
            )
            for f in d["files"]
        ),
    )
