"""The SDK in-process on a data directory: no server, same methods, same exceptions.

Imported only when ``cairn.Client`` is given a directory; it pulls in the service layer
(and so SQLAlchemy) lazily, keeping the HTTP client light.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cairn.client.base import BaseClient, field_map
from cairn.client.transfer import LocalFile, read_chunks
from cairn.domain.access import LOCAL_ACTOR_PREFIX
from cairn.domain.artifacts import (
    FileLink,
    GcReport,
    PruneReport,
    RetentionPolicy,
    VerifyReport,
)
from cairn.domain.audit import POLL_S, AuditEvent, AuditReport, EventPage, clean_wait
from cairn.domain.blob_batch import frames
from cairn.domain.deployments import (
    Deployment,
    DeploymentEvent,
    FeedbackPoint,
    FeedbackReceipt,
    FeedbackSummary,
)
from cairn.domain.diff import VersionDiff
from cairn.domain.lineage import DatasetImpact, DatasetUse, LineageGraph, LineageInput
from cairn.domain.models import (
    Actor,
    AliasEvent,
    FileEntry,
    ModelVersion,
    Page,
    RegisteredModel,
    VersionSpec,
    VersionStatus,
)
from cairn.domain.progress import Progress
from cairn.domain.promotion import AliasPolicy, Condition, PromotionRequest
from cairn.domain.scans import ScanPolicy, ScanReport
from cairn.domain.signatures import TrustedSigner, VersionSignature
from cairn.domain.webhooks import (
    Webhook,
    delivery_to_json,
    secrets_report_to_json,
    webhook_to_json,
)
from cairn.errors import PermissionDenied
from cairn.service.factory import build_service
from cairn.settings import Settings


def _local_actor() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "local"
    return Actor(LOCAL_ACTOR_PREFIX + user, is_admin=True)


class LocalClient(BaseClient):
    """Owner access to a data directory, as the user who can read its files."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        backend_uri: str | None = None,
        artifacts_uri: str | None = None,
    ) -> None:
        overrides: dict[str, Any] = {"data_dir": Path(data_dir)}
        if backend_uri is not None:  # else CAIRN_BACKEND_URI or the SQLite file in data_dir
            overrides["backend_uri"] = backend_uri
        if artifacts_uri is not None:  # else CAIRN_ARTIFACTS_URI or data_dir/artifacts
            overrides["artifacts_uri"] = artifacts_uri
        settings = Settings(**overrides)
        self._settings = settings
        self._service = build_service(settings)
        # a client dropped without ``close`` lets go of the database's descriptors, its
        # connections and its checkpoint thread when it is collected
        self._release = weakref.finalize(self, self._service.db.dispose)
        self._actor = _local_actor()
        self._owner: Actor | None = None  # the local actor as the ``admin`` user, for tokens

    def close(self) -> None:
        self._release()  # at most once

    def create_model(
        self,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> RegisteredModel:
        return self._service.create_model(
            self._actor, name, description=description, tags=tags, idempotency_key=idempotency_key
        )

    def get_model(self, name: str) -> RegisteredModel:
        return self._service.get_model(self._actor, name)

    def search_models(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[RegisteredModel]:
        return self._service.search_models(
            self._actor,
            filter,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
            include_deleted=include_deleted,
        )

    def update_model(self, name: str, *, description: str | None = None) -> RegisteredModel:
        return self._service.update_model(self._actor, name, description=description)

    def rename_model(self, name: str, new_name: str) -> RegisteredModel:
        return self._service.rename_model(self._actor, name, new_name)

    def set_model_tag(self, name: str, key: str, value: str) -> RegisteredModel:
        return self._service.set_model_tag(self._actor, name, key, value)

    def delete_model_tag(self, name: str, key: str) -> RegisteredModel:
        return self._service.delete_model_tag(self._actor, name, key)

    def delete_model(self, name: str) -> None:
        self._service.delete_model(self._actor, name)

    def restore_model(self, name: str) -> RegisteredModel:
        return self._service.restore_model(self._actor, name)

    def create_version(
        self,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        semver: str | None = None,
        source: str | None = None,
        run_id: str | None = None,
        run_link: str | None = None,
        idempotency_key: str | None = None,
        lineage: Sequence[LineageInput] = (),
    ) -> ModelVersion:
        spec = VersionSpec(
            description=description,
            tags=field_map("tags", tags),
            params=field_map("params", params),
            metrics=field_map("metrics", metrics),
            semver=semver,
            source=source,
            run_id=run_id,
            run_link=run_link,
            lineage=tuple(lineage),
        )
        return self._service.create_version(
            self._actor, name, spec, idempotency_key=idempotency_key
        )

    def get_version(self, name: str, version: int | str) -> ModelVersion:
        return self._service.get_version(self._actor, name, version)

    def resolve(self, uri: str, *, as_of: datetime | None = None) -> ModelVersion:
        return self._service.resolve(self._actor, uri, as_of=as_of)

    def diff_versions(
        self,
        old: str,
        new: str,
        *,
        old_as_of: datetime | None = None,
        tensors: bool = False,
        signature: bool = False,
    ) -> VersionDiff:
        return self._service.diff_versions(
            self._actor, old, new, old_as_of=old_as_of, tensors=tensors, signature=signature
        )

    def list_versions(
        self,
        name: str,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
        files: bool = True,
    ) -> Page[ModelVersion]:
        return self._service.list_versions(
            self._actor,
            name,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
            include_deleted=include_deleted,
            files=files,
        )

    def search_versions(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
        files: bool = True,
    ) -> Page[ModelVersion]:
        return self._service.search_versions(
            self._actor,
            filter,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
            include_deleted=include_deleted,
            files=files,
        )

    def update_version(
        self,
        name: str,
        version: int | str,
        *,
        description: str | None = None,
        semver: str | None = None,
    ) -> ModelVersion:
        return self._service.update_version(
            self._actor, name, version, description=description, semver=semver
        )

    def set_version_tag(self, name: str, version: int | str, key: str, value: str) -> ModelVersion:
        return self._service.set_version_tag(self._actor, name, version, key, value)

    def delete_version_tag(self, name: str, version: int | str, key: str) -> ModelVersion:
        return self._service.delete_version_tag(self._actor, name, version, key)

    def transition_stage(
        self,
        name: str,
        version: int | str,
        stage: str,
        *,
        archive_existing_versions: bool = False,
    ) -> ModelVersion:
        return self._service.transition_stage(
            self._actor, name, version, stage, archive_existing_versions=archive_existing_versions
        )

    def delete_version(self, name: str, version: int | str) -> None:
        self._service.delete_version(self._actor, name, version)

    def purge_version(self, name: str, version: int | str) -> None:
        self._service.purge_version(self._actor, name, version)

    def prune_versions(
        self,
        name: str,
        *,
        keep: int,
        keep_days: float | None = None,
        dry_run: bool = True,
        purge: bool = False,
        filter: str | None = None,
    ) -> PruneReport:
        return self._service.prune_versions(
            self._actor,
            name,
            keep=keep,
            keep_days=keep_days,
            dry_run=dry_run,
            purge=purge,
            filter=filter,
        )

    def get_retention(self, name: str) -> RetentionPolicy:
        return self._service.get_retention(self._actor, name)

    def set_retention(
        self, name: str, *, keep: int | None, keep_days: float | None = None
    ) -> RetentionPolicy:
        return self._service.set_retention(self._actor, name, keep=keep, keep_days=keep_days)

    def clear_retention(self, name: str) -> RetentionPolicy:
        return self._service.clear_retention(self._actor, name)

    def gc(
        self,
        *,
        dry_run: bool = True,
        grace_s: int | None = None,
        keep: int | None = None,
        keep_days: float | None = None,
    ) -> GcReport:
        """Apply the retention settings (or ``keep``/``keep_days``: ``prune_versions`` on
        every model), then reclaim unreferenced blobs (owner access to the data directory)."""
        return self._service.gc(
            self._actor, dry_run=dry_run, grace_s=grace_s, keep=keep, keep_days=keep_days
        )

    def verify(
        self,
        *,
        progress: Progress | None = None,
        jobs: int = 1,
        older_than_s: float | None = None,
    ) -> VerifyReport:
        """Re-hash every stored blob, ``jobs`` at a time (``progress``: the bytes read;
        ``older_than_s``: only blobs last verified longer ago than that, or never)."""
        return self._service.verify(
            self._actor, progress=progress, jobs=jobs, older_than_s=older_than_s
        )

    def restore_version(self, name: str, version: int | str) -> ModelVersion:
        return self._service.restore_version(self._actor, name, version)

    def set_alias(
        self, name: str, alias: str, version: int | str, *, expect: int | None = None
    ) -> ModelVersion:
        return self._service.set_alias(self._actor, name, alias, version, expect=expect)

    def rollback_alias(
        self, name: str, alias: str, *, as_of: datetime | None = None
    ) -> ModelVersion:
        return self._service.rollback_alias(self._actor, name, alias, as_of=as_of)

    def delete_alias(self, name: str, alias: str) -> None:
        self._service.delete_alias(self._actor, name, alias)

    def alias_history(
        self, name: str, alias: str | None = None, *, limit: int | None = None
    ) -> list[AliasEvent]:
        return self._service.alias_history(self._actor, name, alias, limit=limit)

    def list_audit(
        self,
        *,
        model: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        alias: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        oldest_first: bool = False,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[AuditEvent]:
        return self._service.list_audit(
            self._actor,
            model=model,
            actor_name=actor,
            action=action,
            alias=alias,
            outcome=outcome,
            since=since,
            until=until,
            oldest_first=oldest_first,
            max_results=max_results,
            page_token=page_token,
        )

    def tail_events(
        self,
        *,
        after: int | None = None,
        model: str | None = None,
        events: Sequence[str] | str | None = None,
        outcome: str | None = None,
        wait: float = 0.0,
        max_results: int | None = None,
    ) -> EventPage:
        # as the server waits (api/v1/audit.py): look again every POLL_S until an event
        # lands, written by this process or any other on the same database
        deadline = time.monotonic() + clean_wait(wait)
        cursor = 0 if after is None else after
        while True:
            page = self._service.tail_events(
                self._actor,
                after_seq=cursor,
                model=model,
                events=events,
                outcome=outcome,
                max_results=max_results,
            )
            left = deadline - time.monotonic()
            if page.events or left <= 0:
                return page
            cursor = page.next_after_seq
            time.sleep(min(POLL_S, left))

    def verify_audit(self, *, anchor: tuple[int, str] | None = None) -> AuditReport:
        return self._service.verify_audit(self._actor, anchor=anchor)

    def add_signer(self, name: str, *, kind: str, material: str) -> TrustedSigner:
        return self._service.add_signer(self._actor, name, kind, material)

    def list_signers(self) -> list[TrustedSigner]:
        return self._service.list_signers(self._actor)

    def remove_signer(self, name: str) -> TrustedSigner:
        return self._service.remove_signer(self._actor, name)

    def add_signature(
        self, name: str, version: int | str, bundle: str | bytes | Mapping[str, Any]
    ) -> VersionSignature:
        if not isinstance(bundle, str | bytes):
            bundle = json.dumps(dict(bundle), separators=(",", ":"))
        return self._service.add_signature(self._actor, name, version, bundle)

    def list_signatures(self, name: str, version: int | str) -> list[VersionSignature]:
        return self._service.list_signatures(self._actor, name, version)

    def get_scan_report(self, name: str, version: int | str) -> ScanReport:
        return self._service.get_scan_report(self._actor, name, version)

    def rescan_version(self, name: str, version: int | str) -> ScanReport:
        return self._service.rescan_version(self._actor, name, version)

    def get_scan_policy(self, name: str) -> ScanPolicy:
        return self._service.get_scan_policy(self._actor, name)

    def set_scan_policy(self, name: str, action: str | None) -> ScanPolicy:
        return self._service.set_scan_policy(self._actor, name, action)

    def set_policy(
        self,
        model_pattern: str,
        alias_pattern: str,
        *,
        min_role: str = "MANAGE",
        approvals: int = 0,
        conditions: Sequence[str | Condition] = (),
        require_clean_scan: bool = False,
        require_signature: bool = False,
        require_compatible: bool = False,
    ) -> AliasPolicy:
        return self._service.set_policy(
            self._actor,
            model_pattern,
            alias_pattern,
            min_role=min_role,
            approvals=approvals,
            conditions=conditions,
            require_clean_scan=require_clean_scan,
            require_signature=require_signature,
            require_compatible=require_compatible,
        )

    def list_policies(self, *, model: str | None = None) -> list[AliasPolicy]:
        return self._service.list_policies(self._actor, model=model)

    def delete_policy(self, policy_id: int) -> None:
        self._service.delete_policy(self._actor, policy_id)

    def promote(
        self, name: str, version: int | str, alias: str, *, comment: str = ""
    ) -> PromotionRequest:
        return self._service.promote(self._actor, name, version, alias, comment=comment)

    # -- lineage ------------------------------------------------------------------------
    def add_lineage(
        self, name: str, version: int | str, inputs: Sequence[LineageInput]
    ) -> list[LineageInput]:
        return self._service.record_inputs(self._actor, name, version, inputs)

    def list_lineage(self, name: str, version: int | str) -> list[LineageInput]:
        return self._service.list_inputs(self._actor, name, version)

    def remove_lineage(self, name: str, version: int | str, input_id: int) -> LineageInput:
        return self._service.remove_input(self._actor, name, version, input_id)

    def lineage_graph(
        self,
        name: str,
        version: int | str,
        *,
        direction: str = "upstream",
        depth: int | None = None,
        max_nodes: int | None = None,
    ) -> LineageGraph:
        return self._service.lineage_graph(
            self._actor, name, version, direction=direction, depth=depth, max_nodes=max_nodes
        )

    def dataset_users(
        self, uri: str, *, max_results: int | None = None, page_token: str | None = None
    ) -> Page[DatasetUse]:
        return self._service.dataset_users(
            self._actor, uri, max_results=max_results, page_token=page_token
        )

    def dataset_impact(
        self, uri: str, *, depth: int | None = None, max_versions: int | None = None
    ) -> DatasetImpact:
        return self._service.dataset_impact(
            self._actor, uri, depth=depth, max_versions=max_versions
        )

    def import_openlineage(self, event: Mapping[str, Any]) -> dict[str, Any]:
        # what the HTTP client sends is JSON: the local one takes the same values only
        return self._service.import_openlineage(self._actor, json.loads(json.dumps(event)))

    def export_openlineage(self, name: str, version: int | str) -> dict[str, Any]:
        return self._service.export_openlineage(self._actor, name, version)

    def list_promotions(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[PromotionRequest]:
        return self._service.list_requests(
            self._actor,
            status=status,
            model=model,
            max_results=max_results,
            page_token=page_token,
        )

    def get_promotion(self, request_id: int) -> PromotionRequest:
        return self._service.get_request(self._actor, request_id)

    def approve_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest:
        return self._service.approve(self._actor, request_id, comment=comment)

    def reject_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest:
        return self._service.reject(self._actor, request_id, comment=comment)

    def cancel_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest:
        return self._service.cancel(self._actor, request_id, comment=comment)

    # -- webhooks: queued here, delivered by a server on the same database ---------------
    def create_webhook(
        self,
        name: str,
        url: str,
        *,
        events: Sequence[str] = ("*",),
        scope: str = "*",
        secret: str | None = None,
        active: bool = True,
    ) -> dict[str, Any]:
        made = self._service.create_webhook(
            self._actor, name, url, events=events, scope=scope, secret=secret, active=active
        )
        return _with_secret(made)

    def list_webhooks(self) -> list[dict[str, Any]]:
        return [webhook_to_json(w) for w in self._service.list_webhooks(self._actor)]

    def get_webhook(self, name: str) -> dict[str, Any]:
        return webhook_to_json(self._service.get_webhook(self._actor, name))

    def update_webhook(
        self,
        name: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        scope: str | None = None,
        active: bool | None = None,
    ) -> dict[str, Any]:
        webhook = self._service.update_webhook(
            self._actor, name, url=url, events=events, scope=scope, active=active
        )
        return webhook_to_json(webhook)

    def delete_webhook(self, name: str) -> None:
        self._service.delete_webhook(self._actor, name)

    def rotate_webhook_secret(self, name: str, *, secret: str | None = None) -> dict[str, Any]:
        return _with_secret(self._service.rotate_webhook_secret(self._actor, name, secret=secret))

    def list_webhook_deliveries(
        self,
        name: str,
        *,
        status: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[dict[str, Any]]:
        page = self._service.list_webhook_deliveries(
            self._actor, name, status=status, max_results=max_results, page_token=page_token
        )
        return Page([delivery_to_json(d) for d in page.items], page.next_page_token)

    def redeliver_webhook(self, name: str, delivery_id: str) -> dict[str, Any]:
        return delivery_to_json(self._service.redeliver_webhook(self._actor, name, delivery_id))

    def ping_webhook(self, name: str) -> dict[str, Any]:
        return delivery_to_json(self._service.ping_webhook(self._actor, name))

    def reencrypt_webhook_secrets(self) -> dict[str, Any]:
        return secrets_report_to_json(self._service.reencrypt_webhook_secrets(self._actor))

    # -- identities ----------------------------------------------------------------------
    # -- deployments and monitoring feedback ------------------------------------------------
    def set_deployment(
        self,
        name: str,
        model_uri: str,
        *,
        environment: str | None = None,
        url: str | None = None,
        expect: int | None = None,
        reason: str = "",
    ) -> Deployment:
        return self._service.set_deployment(
            self._actor,
            name,
            model_uri,
            environment=environment,
            url=url,
            expect=expect,
            reason=reason,
        )

    def get_deployment(self, name: str) -> Deployment:
        return self._service.get_deployment(self._actor, name)

    def list_deployments(
        self,
        *,
        model: str | None = None,
        version: int | str | None = None,
        environment: str | None = None,
        retired: bool = False,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[Deployment]:
        return self._service.list_deployments(
            self._actor,
            model=model,
            version=version,
            environment=environment,
            retired=retired,
            max_results=max_results,
            page_token=page_token,
        )

    def retire_deployment(
        self, name: str, *, expect: int | None = None, reason: str = ""
    ) -> Deployment:
        return self._service.retire_deployment(self._actor, name, expect=expect, reason=reason)

    def deployment_history(self, name: str, *, limit: int | None = None) -> list[DeploymentEvent]:
        return self._service.deployment_history(self._actor, name, limit=limit)

    def deployment_at(self, name: str, at: datetime) -> DeploymentEvent:
        return self._service.deployment_at(self._actor, name, at)

    def list_servings(
        self, name: str, version: int | str | None = None, *, limit: int | None = None
    ) -> list[DeploymentEvent]:
        return self._service.list_servings(self._actor, name, version, limit=limit)

    def push_feedback(
        self,
        name: str,
        points: Sequence[FeedbackPoint | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> FeedbackReceipt:
        return self._service.push_feedback(
            self._actor, name, points, idempotency_key=idempotency_key
        )

    def deployment_feedback(
        self,
        name: str,
        *,
        key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[FeedbackPoint]:
        return self._service.deployment_feedback(
            self._actor,
            name,
            key=key,
            since=since,
            until=until,
            max_results=max_results,
            page_token=page_token,
        )

    def version_feedback(
        self,
        name: str,
        version: int | str,
        *,
        key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[FeedbackPoint]:
        return self._service.version_feedback(
            self._actor,
            name,
            version,
            key=key,
            since=since,
            until=until,
            max_results=max_results,
            page_token=page_token,
        )

    def feedback_summary(
        self,
        name: str,
        version: int | str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        deployment: str | None = None,
    ) -> list[FeedbackSummary]:
        return self._service.feedback_summary(
            self._actor, name, version, since=since, until=until, deployment=deployment
        )

    def _as_admin_user(self, *, bootstrap: bool) -> Actor:
        """The local actor holding the ``admin`` user's id: tokens belong to users.

        With ``bootstrap``, a registry without users first gets its ``admin`` the way a
        server's first start makes it (``CAIRN_BOOTSTRAP_TOKEN``, else a new token in
        ``<data-dir>/admin.token``), so ``cairn --uri DIR tokens create`` works anywhere, and
        users created locally before any server start do not leave the registry without one.
        """
        if self._owner is None:
            if bootstrap:
                from cairn.app import ensure_admin  # lazy: the web app is not needed otherwise

                ensure_admin(self._service, self._settings)
            from cairn.store.metadata.identity_store import IdentityStore

            row = self._service.db.read(lambda s: IdentityStore(s).find_user("admin"))
            if row is None or row.disabled_at is not None:
                return self._actor
            self._owner = dataclasses.replace(self._actor, user_id=int(row.id))
        return self._owner

    def whoami(self) -> dict[str, Any]:
        return self._service.whoami(self._actor)

    def create_user(
        self, name: str, *, password: str | None = None, service: bool = False, admin: bool = False
    ) -> dict[str, Any]:
        self._as_admin_user(bootstrap=True)  # ``admin`` first, as a server's first start would
        return self._service.create_user(
            self._actor, name, password=password, service=service, admin=admin
        )

    def list_users(self) -> list[dict[str, Any]]:
        return self._service.list_users(self._actor)

    def update_user(
        self,
        name: str,
        *,
        password: str | None = None,
        admin: bool | None = None,
        disabled: bool | None = None,
    ) -> dict[str, Any]:
        return self._service.update_user(
            self._actor, name, password=password, admin=admin, disabled=disabled
        )

    def create_group(self, name: str) -> dict[str, Any]:
        return self._service.create_group(self._actor, name)

    def delete_group(self, name: str) -> None:
        self._service.delete_group(self._actor, name)

    def add_member(self, group: str, user: str) -> None:
        self._service.set_membership(self._actor, group, user, member=True)

    def remove_member(self, group: str, user: str) -> None:
        self._service.set_membership(self._actor, group, user, member=False)

    def list_groups(self) -> list[dict[str, Any]]:
        return self._service.list_groups(self._actor)

    def grant(
        self, subject: str, role: str, *, model: str | None = None, pattern: str | None = None
    ) -> dict[str, Any]:
        return self._service.grant(self._actor, subject, role, model=model, pattern=pattern)

    def revoke(self, subject: str, *, model: str | None = None, pattern: str | None = None) -> None:
        self._service.revoke(self._actor, subject, model=model, pattern=pattern)

    def list_grants(
        self, *, model: str | None = None, subject: str | None = None
    ) -> list[dict[str, Any]]:
        return self._service.list_grants(self._actor, model=model, subject=subject)

    def create_token(
        self,
        name: str = "",
        *,
        scope: str = "read",
        expires_days: int | None = 90,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Locally, tokens are made as the ``admin`` user (for it, or for ``user``)."""
        owner = self._as_admin_user(bootstrap=True)
        if owner.user_id is None:
            raise PermissionDenied(
                "local tokens are made as the 'admin' user, and this registry has no enabled "
                "'admin' user"
            )
        return self._service.create_token(
            owner, name=name, scope=scope, expires_days=expires_days, user=user
        )

    def list_tokens(self, *, all_users: bool = False) -> list[dict[str, Any]]:
        return self._service.list_tokens(self._as_admin_user(bootstrap=False), all_users=all_users)

    def revoke_token(self, token_id: int) -> None:
        self._service.revoke_token(self._actor, token_id)

    def _create_with_manifest(
        self, name: str, spec: VersionSpec, idempotency_key: str
    ) -> tuple[ModelVersion, list[str]]:
        version = self._service.create_version(
            self._actor, name, spec, idempotency_key=idempotency_key
        )
        missing = self._service.missing_blobs(self._actor, name, version.version)
        return version, missing

    def _upload_blob(self, name: str, version: int, file: LocalFile, progress: Progress) -> None:
        chunks = read_chunks(file.source, 0, progress)
        self._service.put_blob(self._actor, name, version, file.entry.digest, chunks)

    def _upload_batch(
        self, name: str, version: int, files: Sequence[LocalFile], progress: Progress
    ) -> None:
        body = b"".join(frames([(f.entry.digest, f.source.read_bytes()) for f in files]))
        self._service.put_blobs(self._actor, name, version, body)
        progress.advance(sum(f.entry.size for f in files))

    def _fetch_many(
        self, name: str, version: int, entries: Sequence[FileEntry], *, override: bool = False
    ) -> list[bytes]:
        paths = [entry.path for entry in entries]
        read = self._service.read_files(
            self._actor, name, version, paths, override_quarantine=override
        )
        return [data for _, data in read]

    def _fetch(
        self,
        name: str,
        version: int,
        file: FileEntry,
        start: int,
        direct: str | None = None,
        *,
        override: bool = False,
    ) -> Iterator[bytes]:
        return self._service.open_file(
            self._actor, name, version, file.path, start=start, override_quarantine=override
        ).chunks

    def finalize_version(self, name: str, version: int | str) -> ModelVersion:
        return self._service.finalize_version(self._actor, name, version)

    def list_files(self, name: str, version: int | str) -> list[FileEntry]:
        return list(self._service.list_files(self._actor, name, version))

    def _links(
        self, name: str, version: int | str, paths: Sequence[str], *, override: bool
    ) -> list[FileLink]:
        return self._service.file_urls(
            self._actor, name, version, paths, override_quarantine=override
        )

    def import_model(
        self,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
        created_by: str | None = None,
    ) -> RegisteredModel:
        return self._service.import_model(
            self._actor,
            name,
            description=description,
            tags=tags,
            created_at=created_at,
            created_by=created_by,
        )

    def _import_with_manifest(
        self,
        name: str,
        version: int,
        spec: VersionSpec,
        *,
        stage: str = "None",
        status: str = "READY",
        status_message: str = "",
        created_at: datetime | None = None,
        created_by: str | None = None,
    ) -> tuple[ModelVersion, list[str]]:
        imported = self._service.import_version(
            self._actor,
            name,
            version,
            spec,
            stage=stage,
            status=status,
            status_message=status_message,
            created_at=created_at,
            created_by=created_by,
        )
        missing: list[str] = []
        if imported.status is VersionStatus.PENDING:
            missing = self._service.missing_blobs(self._actor, name, imported.version)
        return imported, missing

    def reserve_versions(self, name: str, up_to: int) -> RegisteredModel:
        return self._service.reserve_versions(self._actor, name, up_to)


def _with_secret(made: tuple[Webhook, str]) -> dict[str, Any]:
    webhook, secret = made
    return {**webhook_to_json(webhook), "secret": secret}
