"""Use cases of unsafe-file scanning: scan blobs as they arrive, judge a version when it
becomes READY, apply the model's policy, report, re-scan, and guard downloads.

- A blob is scanned once per scanner (``blob_scans``), after its bytes are stored and
  before the transaction that may make a version READY; scanning reads bytes, so it never
  runs inside a transaction.
- When a version becomes READY its verdict (the worst of its files') is recorded in the
  same transaction, with what the policy did: ``label`` (nothing more), ``quarantine``
  (READY, but its files are refused unless someone with MANAGE overrides, audited) or
  ``reject`` (the version becomes FAILED, naming the files and imports found). The policy
  is the model's own (``model_settings``) or the instance's (``CAIRN_SCAN_POLICY``).
- A version that became READY without a recorded verdict (created READY from blobs
  already stored, or imported) is judged from its blobs' scans when it is read.

The registry never loads or unpickles a file: the engine (``scan_engine``) only parses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cairn.domain import names
from cairn.domain.access import SYSTEM, Actor, Role
from cairn.domain.digests import NO_FILES
from cairn.domain.models import FileEntry, VersionStatus
from cairn.domain.scans import (
    CLEAN,
    ERROR,
    FLAGGED,
    UNSCANNED,
    BlobScan,
    FileScan,
    ScanPolicy,
    ScanReport,
    parse_scan_action,
    worst_status,
)
from cairn.domain.uris import parse_version_number
from cairn.errors import InvalidParameter, PermissionDenied
from cairn.service.base import ServiceBase
from cairn.service.scan_engine import scan_blob, scanner_name
from cairn.store.metadata.blob_index_store import BlobIndexStore
from cairn.store.metadata.clock import to_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.scans_store import ScansStore, findings
from cairn.store.metadata.versions_store import VersionStore

_NOT_CLEAN = (FLAGGED, ERROR)


class ScansService(ServiceBase):
    # -- reading a version's scan -----------------------------------------------------------
    def get_scan_report(self, actor: Actor, name: str, version: int | str) -> ScanReport:
        """Per file: format, status and findings; for the version: verdict, policy, and
        whether it is quarantined."""
        names.validate_model_name(name)
        number = parse_version_number(version)

        def run(s: Tx) -> ScanReport:
            model = self._model(s, actor, name, Role.READ, "get_scan_report")
            row = VersionStore(s).get(model.id, name, number)
            return self._report(s, model, row)

        return self.db.read(run)

    # -- policy ---------------------------------------------------------------------------
    def get_scan_policy(self, actor: Actor, name: str) -> ScanPolicy:
        names.validate_model_name(name)

        def run(s: Tx) -> ScanPolicy:
            model = self._model(s, actor, name, Role.READ, "get_scan_policy")
            own = ScansStore(s).scan_action(model.id)
            return ScanPolicy(model.name, own, own or self._instance_policy())

        return self.db.read(run)

    def set_scan_policy(self, actor: Actor, name: str, action: str | None) -> ScanPolicy:
        """What to do with versions whose scan is not clean: ``label``, ``quarantine`` or
        ``reject``; None returns the model to the instance default. Applies to versions
        judged from now on (``rescan_version`` re-judges one)."""
        names.validate_model_name(name)
        wanted = None if action is None else parse_scan_action(action)

        def run(s: Tx) -> ScanPolicy:
            model = self._model(s, actor, name, Role.MANAGE, "set_scan_policy", lock=True)
            store = ScansStore(s)
            before = store.scan_action(model.id)
            if before != wanted:
                store.set_scan_action(model.id, wanted)
                self._audit(
                    s,
                    actor,
                    "scan.policy",
                    model=model,
                    before={"action": before},
                    after={"action": wanted},
                )
            return ScanPolicy(model.name, wanted, wanted or self._instance_policy())

        return self.db.write(run)

    # -- re-scanning ------------------------------------------------------------------------
    def rescan_version(self, actor: Actor, name: str, version: int | str) -> ScanReport:
        """Scan every file of a READY version again with the current scanner and apply the
        model's policy to the new verdict (which may quarantine, release or reject it)."""
        names.validate_model_name(name)
        number = parse_version_number(version)

        def target(s: Tx) -> Any:
            model = self._model(s, actor, name, Role.MANAGE, "rescan_version")
            return VersionStore(s).get(model.id, name, number)

        row = self.db.read(target)
        self._require_ready(name, row, "re-scanned")
        files = self.db.read(lambda s: ScansStore(s).files(row.id, scanner_name()))
        for digest, size in sorted({(str(f.digest), int(f.size)) for f in files}):
            self._scan_blob(digest, size, force=True)

        def run(s: Tx) -> ScanReport:
            model = self._model(s, actor, name, Role.MANAGE, "rescan_version", lock=True)
            current = VersionStore(s).get(model.id, name, number)
            self._require_ready(name, current, "re-scanned")
            before = ScansStore(s).find_version(current.id)
            after = self._judge(s, model, current, actor=actor)
            self._audit(
                s,
                actor,
                "scan.rerun",
                model=model,
                version=number,
                before=None if before is None else _verdict_json(before),
                after=after,
            )
            return self._report(s, model, VersionStore(s).get_by_id(current.id))

        return self.db.write(run)

    # -- downloads ----------------------------------------------------------------------------
    def check_download(
        self,
        actor: Actor,
        name: str,
        version: int | str,
        *,
        override_quarantine: bool = False,
        path: str | None = None,
        audit: bool = True,
    ) -> None:
        """Refuse the files of a quarantined version, unless ``override_quarantine`` is
        asked by someone with MANAGE on the model; each override is audited (unless no
        byte is about to flow: ``audit=False``, as for a HEAD)."""
        names.validate_model_name(name)
        number = parse_version_number(version)

        def state(s: Tx) -> str | None:
            model = self._model(s, actor, name, Role.READ, "download")
            return self._quarantine(s, model.id, VersionStore(s).get(model.id, name, number))

        reason = self.db.read(state)
        if reason is not None:
            self._pass_quarantine(
                actor, name, number, reason, override=override_quarantine, path=path, audit=audit
            )

    def _pass_quarantine(
        self,
        actor: Actor,
        name: str,
        number: int,
        reason: str,
        *,
        override: bool,
        path: str | None,
        audit: bool,
    ) -> None:
        """Let a read of a quarantined version through only as an override by someone with
        MANAGE, recorded in the audit log when bytes are about to flow."""
        if not override:
            raise PermissionDenied(
                f"version {number} of {name!r} is quarantined by its scan ({reason}); see "
                f"`cairn scan show models:/{name}/{number}`. Someone with MANAGE on the model "
                "can download it anyway with override_quarantine=true (audited)",
                denial={"action": "download", "model": name, "version": number},
            )

        def record(s: Tx) -> None:
            model = self._model(s, actor, name, Role.MANAGE, "override_quarantine")
            if audit:
                self._audit(
                    s,
                    actor,
                    "artifact.quarantine_override",
                    model=model,
                    version=number,
                    target=path,
                    after={"reason": reason},
                )

        (self.db.write if audit else self.db.read)(record)

    # -- hooks for the upload path (ArtifactsService) ------------------------------------------
    def _scan_blob(self, digest: str, size: int, *, force: bool = False) -> None:
        """Scan a stored blob unless the current scanner already has; outside transactions."""
        result = self._blob_scan(digest, size, force=force)
        if result is not None:
            now = self.clock()
            self.db.write(lambda s: ScansStore(s).record_blob(digest, result, now))

    def _blob_scan(self, digest: str, size: int, *, force: bool = False) -> BlobScan | None:
        """The current scanner's result for a stored blob, unless it has one already (None);
        reads the bytes, so outside transactions. The caller records it."""
        scanner = scanner_name()
        if not force and self.db.read(lambda s: ScansStore(s).find_blob(digest, scanner)):
            return None
        return self._scan_bytes(digest, size)

    def _blob_scans(self, blobs: Sequence[tuple[str, int]]) -> dict[str, BlobScan | None]:
        """``_blob_scan`` of each stored blob ``(digest, size)``, asking once which of them
        the current scanner has seen."""
        digests = [digest for digest, _ in blobs]
        seen = self.db.read(lambda s: ScansStore(s).scanned_blobs(digests, scanner_name()))
        return {
            digest: None if digest in seen else self._scan_bytes(digest, size)
            for digest, size in blobs
        }

    def _scan_bytes(self, digest: str, size: int) -> BlobScan:
        return scan_blob(lambda start, end: self.blobs.open(digest, start, end), size)

    def _scan_version_blobs(self, version_id: int) -> None:
        """Scan those of a version's stored blobs the current scanner has not seen, before
        a transaction that may make the version READY."""
        unscanned = self.db.read(lambda s: ScansStore(s).unscanned(version_id, scanner_name()))
        for digest, size in unscanned:
            self._scan_blob(digest, size)

    def _scan_stored(self, files: Sequence[FileEntry], actor: Actor | None = None) -> None:
        """Scan those of a manifest's blobs that are already stored (a version created READY
        at once), before the transaction that creates it.

        For ``actor``, only blobs they could read count as stored (as in that transaction):
        neither a scan nor a wrong declared size may tell them someone else holds the bytes.
        """
        if not files:
            return
        readable = None if actor is None else actor.readable()
        present, _ = self.db.read(lambda s: BlobIndexStore(s).present_for(files, readable))
        for f in {f.digest: f for f in files if f.digest in present}.values():
            self._scan_blob(f.digest, f.size)

    def _apply_scan_policy(
        self, s: Tx, version_id: int, model: Any = None, row: Any = None
    ) -> VersionStatus:
        """In the transaction that makes a version READY: record its verdict and apply the
        policy. The version's status afterwards: FAILED when the policy rejected it.
        ``model`` and ``row`` (its id, version, digest and status) are the version's model
        row and the version, when the caller has them at hand."""
        if row is None:
            row = VersionStore(s).get_by_id(version_id)
        if model is None:
            model = ModelStore(s).get_by_id(row.model_id)
        verdict = self._judge(s, model, row, actor=SYSTEM)
        if verdict["status"] in _NOT_CLEAN and verdict["action"] == "reject":
            return VersionStatus.FAILED
        return VersionStatus(row.status)

    def _file_less_verdict(self) -> tuple[str, str, str]:
        """What ``_judge`` records for a version without files (nothing to find, so clean):
        status, the instance's action (a model's own replaces it) and summary."""
        return CLEAN, self._instance_policy(), _summary([])

    # -- helpers -------------------------------------------------------------------------------
    def _instance_policy(self) -> str:
        return parse_scan_action(self.limits.scan_policy)

    def _policy(self, s: Tx, model_id: int) -> tuple[str, str]:
        """(action, source): the model's own policy, or the instance's."""
        own = ScansStore(s).scan_action(model_id)
        return (own, "model") if own else (self._instance_policy(), "instance")

    def _judge(self, s: Tx, model: Any, row: Any, *, actor: Actor) -> dict[str, Any]:
        """Record a READY version's verdict and apply the policy; the verdict as JSON."""
        # a version without files (a registered external source) has nothing to look up
        files = ScansStore(s).files(row.id, scanner_name()) if row.digest != NO_FILES else []
        status = worst_status([_file_status(f) for f in files])
        action, _source = self._policy(s, model.id)
        summary = _summary(files)
        bad = status in _NOT_CLEAN
        quarantined = bad and action == "quarantine"
        now = self.clock()
        ScansStore(s).record_version(
            row.id,
            status=status,
            action=action,
            quarantined=quarantined,
            summary=summary,
            now=now,
        )
        verdict = {
            "status": status,
            "action": action,
            "quarantined": quarantined,
            "summary": summary,
        }
        if bad and action == "reject":
            VersionStore(s).update(
                row.id,
                now,
                status=VersionStatus.FAILED.value,
                status_message=f"rejected by the scan policy: {summary}",
            )
        if bad and actor is SYSTEM:  # a verdict that changes what people may do: on record
            self._audit(s, actor, f"scan.{action}", model=model, version=row.version, after=verdict)
        return verdict

    def _quarantine(self, s: Tx, model_id: int, row: Any) -> str | None:
        """Why the version's files are refused (its scan summary), or None if they are not."""
        if row.status != VersionStatus.READY.value:
            return None  # open_file refuses versions that are not READY by itself
        verdict = ScansStore(s).find_version(row.id)
        if verdict is not None:
            return (str(verdict.summary) or str(verdict.status)) if verdict.quarantined else None
        # READY without a recorded verdict: judge it from its blobs' scans now
        files = ScansStore(s).files(row.id, scanner_name())
        status = worst_status([_file_status(f) for f in files])
        action, _ = self._policy(s, model_id)
        if status in _NOT_CLEAN and action in ("quarantine", "reject"):
            return _summary(files)
        return None

    def _report(self, s: Tx, model: Any, row: Any) -> ScanReport:
        files = ScansStore(s).files(row.id, scanner_name())
        verdict = ScansStore(s).find_version(row.id)
        policy, source = self._policy(s, model.id)
        status = worst_status([_file_status(f) for f in files])
        return ScanReport(
            name=model.name,
            version=int(row.version),
            status=str(verdict.status) if verdict is not None else status,
            action=str(verdict.action) if verdict is not None else None,
            quarantined=self._quarantine(s, model.id, row) is not None,
            policy=policy,
            policy_source=source,
            summary=str(verdict.summary) if verdict is not None else _summary(files),
            scanned_at=None if verdict is None else to_datetime(int(verdict.scanned_at)),
            files=tuple(
                FileScan(
                    path=str(f.path),
                    digest=str(f.digest),
                    size=int(f.size),
                    status=_file_status(f),
                    format=None if f.format is None else str(f.format),
                    findings=findings(f.findings),
                    scanner=None if f.status is None else scanner_name(),
                    scanned_at=None if f.scanned_at is None else to_datetime(int(f.scanned_at)),
                )
                for f in files
            ),
        )

    @staticmethod
    def _require_ready(name: str, row: Any, what: str) -> None:
        if row.status != VersionStatus.READY.value:
            raise InvalidParameter(
                f"version {row.version} of {name!r} is {row.status}; only READY versions are {what}"
            )


def _file_status(row: Any) -> str:
    return UNSCANNED if row.status is None else str(row.status)


def _verdict_json(row: Any) -> dict[str, Any]:
    return {
        "status": row.status,
        "action": row.action,
        "quarantined": bool(row.quarantined),
        "summary": row.summary,
    }


def _summary(files: Sequence[Any], limit: int = 2000) -> str:
    """One line naming each file that is not clean and what was found in it."""
    parts = []
    for f in files:
        status = _file_status(f)
        if status == CLEAN:
            continue
        if status == UNSCANNED:
            parts.append(f"{f.path}: not scanned yet")
            continue
        found = findings(f.findings)
        imports = sorted(
            {
                f"{x.module}.{x.name}" + (f" in {x.member}" if x.member else "")
                for x in found
                if x.kind == "dangerous_global"
            }
        )
        problems = [x.detail for x in found if x.kind in ("malformed", "unscannable")]
        detail = (
            f"dangerous imports {', '.join(imports)}"
            if imports
            else "; ".join(problems[:3]) or status
        )
        parts.append(f"{f.path} ({f.format}): {detail}")
    if not parts:
        return "no dangerous imports found" if files else "no files"
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"
