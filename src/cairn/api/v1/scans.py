"""Unsafe-file scanning: a version's scan report, re-scanning it, and a model's scan policy.

``GET …/versions/{version}/scan`` (READ), ``POST …/versions/{version}/scan`` (MANAGE,
re-scan and re-apply the policy), ``GET|PUT /models/{name}/scan-policy`` (READ | MANAGE).
Downloads of a quarantined version are refused by the file routes themselves
(``?override_quarantine=true`` with MANAGE, audited).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.v1.schemas import Strict
from cairn.domain.scans import scan_policy_to_json, scan_report_to_json

router = lean_router(tags=["scans"])
VERSION = "/models/{name}/versions/{version}"


class ScanPolicyIn(Strict):
    action: Literal["label", "quarantine", "reject"] | None = Field(
        description="What a version whose scan is not clean gets; null: the instance default."
    )


class ScanPolicyOut(BaseModel):
    name: str
    action: str | None = Field(description="The model's own policy; null: instance default.")
    effective: str


class FindingOut(BaseModel):
    kind: str = Field(
        description="dangerous_global, suspicious_global, malformed, unscannable or note."
    )
    module: str | None
    name: str | None
    member: str | None = Field(description="The file inside an archive, if any.")
    detail: str


class FileScanOut(BaseModel):
    path: str
    digest: str
    size: int
    status: str = Field(description="clean, flagged, error or unscanned.")
    format: str | None = Field(description="What the bytes are, e.g. pickle, torch, safetensors.")
    findings: list[FindingOut]
    scanner: str | None
    scanned_at: datetime | None


class ScanReportOut(BaseModel):
    name: str
    version: int
    status: str = Field(description="The worst of the files': clean, flagged, error, unscanned.")
    action: str | None = Field(description="The policy applied to the verdict, if recorded.")
    quarantined: bool
    policy: str
    policy_source: str = Field(description="model or instance.")
    summary: str
    scanned_at: datetime | None
    files: list[FileScanOut]


@router.get(VERSION + "/scan", response_model=ScanReportOut)
def get_scan_report(name: str, version: str, service: Service, actor: Caller) -> JSONResponse:
    """Per-file format, status and findings (the imports found), and the version's verdict."""
    return json(scan_report_to_json(service.get_scan_report(actor, name, version)))


@router.post(VERSION + "/scan", response_model=ScanReportOut)
def rescan_version(name: str, version: str, service: Service, actor: Caller) -> JSONResponse:
    """Scan the version's files again and apply the model's policy to the new verdict."""
    return json(scan_report_to_json(service.rescan_version(actor, name, version)))


@router.get("/models/{name}/scan-policy", response_model=ScanPolicyOut)
def get_scan_policy(name: str, service: Service, actor: Caller) -> JSONResponse:
    return json(scan_policy_to_json(service.get_scan_policy(actor, name)))


@router.put("/models/{name}/scan-policy", response_model=ScanPolicyOut)
def set_scan_policy(name: str, body: ScanPolicyIn, service: Service, actor: Caller) -> JSONResponse:
    """Set the model's scan policy: label, quarantine or reject (null: instance default)."""
    return json(scan_policy_to_json(service.set_scan_policy(actor, name, body.action)))
