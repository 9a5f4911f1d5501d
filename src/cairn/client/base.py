"""The SDK's interface, shared by the HTTP client and the local (in-process) client.

Both raise the same ``cairn.errors`` exceptions. Pagination helpers live here once.
"""

from __future__ import annotations

import abc
import functools
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cairn.client import push_pull
from cairn.client.cache import BlobCache
from cairn.client.lineage_base import LineageMethods
from cairn.client.push_pull import TransferStats
from cairn.client.transfer import WORKERS, LocalFile, upload_plan
from cairn.domain.artifacts import FileLink, PruneReport, RetentionPolicy
from cairn.domain.audit import AuditEvent, AuditReport, EventPage
from cairn.domain.blob_batch import MAX_BATCH_BLOBS
from cairn.domain.deployments import (
    Deployment,
    DeploymentEvent,
    FeedbackPoint,
    FeedbackReceipt,
    FeedbackSummary,
)
from cairn.domain.diff import VersionDiff
from cairn.domain.lineage import LineageInput
from cairn.domain.models import (
    AliasEvent,
    FileEntry,
    ModelVersion,
    Page,
    RegisteredModel,
    VersionSpec,
)
from cairn.domain.names import validate_alias
from cairn.domain.paths import select_files
from cairn.domain.progress import NoProgress, Progress
from cairn.domain.promotion import AliasPolicy, Condition, PromotionRequest
from cairn.domain.scans import ScanPolicy, ScanReport
from cairn.domain.signatures import TrustedSigner, VersionSignature
from cairn.domain.uris import parse_model_uri
from cairn.errors import AlreadyExists, InvalidParameter, NotFound, Unavailable


def field_map(kind: str, value: object) -> dict[Any, Any]:
    """``tags``, ``params`` or ``metrics`` (``kind``) as a dict, None as an empty one;
    anything but a mapping is refused in the service's words, not with ``dict()``'s
    ``TypeError``, and a list of pairs is refused in both modes alike."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        of = "numbers" if kind == "metrics" else "string values"
        raise InvalidParameter(f"{kind} must be an object of string keys to {of}")
    return dict(value)


# ``follow_events``: the first wait after a transient failure (it doubles from there)
FOLLOW_FIRST_BACKOFF_S = 0.5
MAX_FOLLOW_BACKOFF_S = 3600.0


class BaseClient(LineageMethods, abc.ABC):
    """Methods of ``cairn.Client``; parameter names match the API and the CLI."""

    # -- registered models -------------------------------------------------------------
    @abc.abstractmethod
    def create_model(
        self,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> RegisteredModel: ...

    @abc.abstractmethod
    def get_model(self, name: str) -> RegisteredModel: ...

    def ensure_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        """The model ``name``, registered first (with ``description`` and ``tags``) if it
        does not exist: "register if not exists" for pipelines that re-run. An existing
        model is returned as it is."""
        try:
            return self.create_model(name, description=description, tags=tags)
        except AlreadyExists as exists:
            try:
                return self.get_model(name)
            except NotFound:  # one we may not read, or deleted meanwhile
                raise exists from None

    @abc.abstractmethod
    def search_models(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[RegisteredModel]: ...

    @abc.abstractmethod
    def update_model(self, name: str, *, description: str | None = None) -> RegisteredModel: ...

    @abc.abstractmethod
    def rename_model(self, name: str, new_name: str) -> RegisteredModel: ...

    @abc.abstractmethod
    def set_model_tag(self, name: str, key: str, value: str) -> RegisteredModel: ...

    @abc.abstractmethod
    def delete_model_tag(self, name: str, key: str) -> RegisteredModel: ...

    @abc.abstractmethod
    def delete_model(self, name: str) -> None: ...

    @abc.abstractmethod
    def restore_model(self, name: str) -> RegisteredModel: ...

    # -- versions ----------------------------------------------------------------------
    @abc.abstractmethod
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
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def get_version(self, name: str, version: int | str) -> ModelVersion: ...

    @abc.abstractmethod
    def resolve(self, uri: str, *, as_of: datetime | None = None) -> ModelVersion: ...

    @abc.abstractmethod
    def diff_versions(
        self,
        old: str,
        new: str,
        *,
        old_as_of: datetime | None = None,
        tensors: bool = False,
        signature: bool = False,
    ) -> VersionDiff:
        """How the version the ``models:/`` URI ``new`` names differs from ``old``'s (of
        one model or two): record fields, metrics with deltas, params, tags, and files
        (changed, renamed, added, removed); ``old`` and ``new`` come without their
        manifests (``files`` empty, ``size`` and ``digest`` theirs). ``old_as_of``:
        resolve ``old``'s alias as of that time, to see what changed since. ``tensors``:
        also which tensors of their safetensors files changed (``VersionDiff.tensors``),
        matched by name;
        ``signature``: how the signatures of their MLflow ``MLmodel`` files differ, and
        which changes break a caller of ``old`` (``VersionDiff.signature``)."""

    @abc.abstractmethod
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
        """A page of the model's versions; ``files=False`` leaves their manifests out
        (``files`` empty; ``size`` and ``digest`` still theirs), as for ``search_versions``:
        a page of versions of thousands of files is then small."""

    @abc.abstractmethod
    def search_versions(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
        files: bool = True,
    ) -> Page[ModelVersion]: ...

    @abc.abstractmethod
    def update_version(
        self,
        name: str,
        version: int | str,
        *,
        description: str | None = None,
        semver: str | None = None,
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def set_version_tag(
        self, name: str, version: int | str, key: str, value: str
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def delete_version_tag(self, name: str, version: int | str, key: str) -> ModelVersion: ...

    @abc.abstractmethod
    def transition_stage(
        self,
        name: str,
        version: int | str,
        stage: str,
        *,
        archive_existing_versions: bool = False,
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def delete_version(self, name: str, version: int | str) -> None: ...

    @abc.abstractmethod
    def restore_version(self, name: str, version: int | str) -> ModelVersion: ...

    @abc.abstractmethod
    def purge_version(self, name: str, version: int | str) -> None:
        """Delete a version for good (no restore); gc may then reclaim its bytes. A version
        a live deployment serves is refused (``Conflict``)."""

    @abc.abstractmethod
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
        """Delete the model's versions older than its newest ``keep``, except those an
        alias, the ``Staging`` or ``Production`` stage, a live deployment or an upload in
        progress holds, the lineage parents (but through ``retrain``) of versions those
        hold, and those created within ``keep_days``: soft (restorable) or, with
        ``purge``, for good. A dry run unless ``dry_run`` is False: the report says what
        would go and how many bytes only those versions hold. ``filter`` (the search
        grammar): only the versions it matches may go, e.g. ``"tags.run = 'scratch'"``."""

    @abc.abstractmethod
    def get_retention(self, name: str) -> RetentionPolicy:
        """The model's own retention policy (``own`` None: none) and the one gc applies."""

    @abc.abstractmethod
    def set_retention(
        self, name: str, *, keep: int | None, keep_days: float | None = None
    ) -> RetentionPolicy:
        """Give the model its own retention policy (MANAGE): each ``gc`` keeps its newest
        ``keep`` versions (None: every one) and those created within ``keep_days``, and
        prunes the rest by the rule of ``prune_versions``."""

    @abc.abstractmethod
    def clear_retention(self, name: str) -> RetentionPolicy:
        """Return the model to the instance's retention policy (MANAGE)."""

    # -- aliases -----------------------------------------------------------------------
    @abc.abstractmethod
    def set_alias(
        self, name: str, alias: str, version: int | str, *, expect: int | None = None
    ) -> ModelVersion: ...

    @abc.abstractmethod
    def rollback_alias(
        self, name: str, alias: str, *, as_of: datetime | None = None
    ) -> ModelVersion:
        """Move ``alias`` back to the version it pointed at before its last move (a
        deleted alias is set again), or with ``as_of`` to the one it pointed at then; a
        move like ``set_alias`` (audited, in the history: a second rollback undoes the
        first). Over HTTP it is not retried: a retry of one that landed would undo it."""

    @abc.abstractmethod
    def delete_alias(self, name: str, alias: str) -> None: ...

    @abc.abstractmethod
    def alias_history(
        self, name: str, alias: str | None = None, *, limit: int | None = None
    ) -> list[AliasEvent]: ...

    # -- audit log ---------------------------------------------------------------------
    @abc.abstractmethod
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
        """Audit events, newest first (``alias``: who moved it, when, from what)."""

    @abc.abstractmethod
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
        """The audit log's events after the cursor ``after`` (an event's ``seq``; None or
        0: from the log's start; -1, ``FROM_END``: from its end, the events to come),
        oldest first, and ``next_after_seq``, the cursor to pass next. ``events``: names
        or families in the webhook grammar (``alias.*``); an event's name is its audit
        action. ``wait`` (up to 60 s): when there is no event yet, wait for one that
        long; the page may then be empty. Permissions as for ``list_audit``: the instance
        ADMIN sees every event, MANAGE on a ``model`` its."""

    def follow_events(
        self,
        *,
        after: int | None = None,
        model: str | None = None,
        events: Sequence[str] | str | None = None,
        outcome: str | None = None,
        wait: float = 30.0,
        max_backoff: float = 30.0,
        stop: threading.Event | None = None,
    ) -> Iterator[AuditEvent]:
        """Every event after ``after`` and then each new one as it lands, for ever, or
        until ``stop`` is set (``tail_events`` pages, each waiting up to ``wait`` seconds:
        set from another thread, ``stop`` ends the iteration within ``wait`` seconds even
        when no event comes, and at once during a back-off). A transient failure (the
        server unreachable or busy: ``Unavailable``) is retried from the last cursor after
        a back-off that doubles up to ``max_backoff`` seconds; any other error ends the
        iteration. To resume later, pass the ``seq`` of the last event handled."""
        if isinstance(max_backoff, bool) or not isinstance(max_backoff, int | float):
            raise InvalidParameter(f"max_backoff must be a number of seconds, not {max_backoff!r}")
        if not 0 < max_backoff <= MAX_FOLLOW_BACKOFF_S:
            raise InvalidParameter(
                f"max_backoff must be more than 0 and at most {MAX_FOLLOW_BACKOFF_S:g} seconds"
            )
        cursor = 0 if after is None else after
        first = min(FOLLOW_FIRST_BACKOFF_S, max_backoff)
        delay = first
        stop = stop or threading.Event()  # never set: for ever
        while not stop.is_set():
            try:
                page = self.tail_events(
                    after=cursor, model=model, events=events, outcome=outcome, wait=wait
                )
            except Unavailable:
                stop.wait(delay)
                delay = min(delay * 2, max_backoff)
                continue
            delay = first
            for event in page.events:
                cursor = event.seq  # a consumer that stops mid-page resumes after it
                yield event
            cursor = page.next_after_seq

    @abc.abstractmethod
    def verify_audit(self, *, anchor: tuple[int, str] | None = None) -> AuditReport:
        """Check the audit log's hash chain; ``ok`` false names the first bad event.
        ``anchor``: a head recorded earlier, ``(head_seq, head_hash)``, the chain must
        still pass through (the only way to find its newest events cut off)."""

    # -- signatures: trusted signers (instance ADMIN) and bundles per version ----------
    @abc.abstractmethod
    def add_signer(self, name: str, *, kind: str, material: str) -> TrustedSigner:
        """Trust an EC public key (``kind='key'``) or CA certificates (``'certificate'``)."""

    @abc.abstractmethod
    def list_signers(self) -> list[TrustedSigner]: ...

    @abc.abstractmethod
    def remove_signer(self, name: str) -> TrustedSigner:
        """Stop trusting ``name`` (in any case); returns the signer removed, as stored."""

    @abc.abstractmethod
    def add_signature(
        self, name: str, version: int | str, bundle: str | bytes | Mapping[str, Any]
    ) -> VersionSignature:
        """Upload an OpenSSF model-signing bundle; the answer is the recorded verdict."""

    @abc.abstractmethod
    def list_signatures(self, name: str, version: int | str) -> list[VersionSignature]: ...

    # -- unsafe-file scanning -----------------------------------------------------------
    @abc.abstractmethod
    def get_scan_report(self, name: str, version: int | str) -> ScanReport:
        """Per file: format, status and findings; for the version: verdict and policy."""

    @abc.abstractmethod
    def rescan_version(self, name: str, version: int | str) -> ScanReport:
        """Scan the version's files again and apply the model's policy (needs MANAGE)."""

    @abc.abstractmethod
    def get_scan_policy(self, name: str) -> ScanPolicy: ...

    @abc.abstractmethod
    def set_scan_policy(self, name: str, action: str | None) -> ScanPolicy:
        """``label``, ``quarantine`` or ``reject``; None: the instance default (MANAGE)."""

    # -- protected aliases: policies (instance ADMIN), promotions and approvals ---------
    @abc.abstractmethod
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
        """Protect aliases: create or replace the policy of (model_pattern, alias_pattern).

        ``conditions`` are metric conditions such as ``"auc>=0.9"``; ``require_compatible``:
        the new version's MLflow signature must break no caller of the alias's current
        version (as ``diff_versions(..., signature=True)`` tells)."""

    @abc.abstractmethod
    def list_policies(self, *, model: str | None = None) -> list[AliasPolicy]: ...

    @abc.abstractmethod
    def delete_policy(self, policy_id: int) -> None: ...

    @abc.abstractmethod
    def promote(
        self, name: str, version: int | str, alias: str, *, comment: str = ""
    ) -> PromotionRequest:
        """Ask to point ``alias`` at ``version``: ``applied`` at once, or ``pending``."""

    @abc.abstractmethod
    def list_promotions(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[PromotionRequest]: ...

    @abc.abstractmethod
    def get_promotion(self, request_id: int) -> PromotionRequest: ...

    @abc.abstractmethod
    def approve_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest: ...

    @abc.abstractmethod
    def reject_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest: ...

    @abc.abstractmethod
    def cancel_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest: ...

    # -- webhooks (docs/webhooks.md): JSON-shaped dicts, as the API returns them ---------
    @abc.abstractmethod
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
        """A new webhook; its ``secret`` is in this answer only."""

    @abc.abstractmethod
    def list_webhooks(self) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def get_webhook(self, name: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def update_webhook(
        self,
        name: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        scope: str | None = None,
        active: bool | None = None,
    ) -> dict[str, Any]:
        """Change what is given; ``active=False`` pauses, ``True`` resumes."""

    @abc.abstractmethod
    def delete_webhook(self, name: str) -> None: ...

    @abc.abstractmethod
    def rotate_webhook_secret(self, name: str, *, secret: str | None = None) -> dict[str, Any]:
        """A new signing secret, in this answer only."""

    @abc.abstractmethod
    def list_webhook_deliveries(
        self,
        name: str,
        *,
        status: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[dict[str, Any]]: ...

    @abc.abstractmethod
    def redeliver_webhook(self, name: str, delivery_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def ping_webhook(self, name: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def reencrypt_webhook_secrets(self) -> dict[str, Any]:
        """Seal every webhook secret with the server's current key (instance ADMIN): the
        counts ``webhooks``, ``encrypted``, ``reencrypted``, ``unchanged``, and ``key``."""

    # -- deployments (where versions run) and monitoring feedback ------------------------
    @abc.abstractmethod
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
        """Record that deployment ``name`` now serves ``model_uri`` (``models:/NAME/VERSION``,
        ``models:/NAME@ALIAS`` resolved now, or ``/latest``). A new deployment needs its
        ``environment``; ``expect``: the version it must serve now (0: new or retired)."""

    @abc.abstractmethod
    def get_deployment(self, name: str) -> Deployment: ...

    @abc.abstractmethod
    def list_deployments(
        self,
        *,
        model: str | None = None,
        version: int | str | None = None,
        environment: str | None = None,
        retired: bool = False,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[Deployment]: ...

    @abc.abstractmethod
    def retire_deployment(
        self, name: str, *, expect: int | None = None, reason: str = ""
    ) -> Deployment:
        """End the deployment: it serves nothing from now on; its history is kept."""

    @abc.abstractmethod
    def deployment_history(self, name: str, *, limit: int | None = None) -> list[DeploymentEvent]:
        """Every change of what ``name`` serves, newest first."""

    @abc.abstractmethod
    def deployment_at(self, name: str, at: datetime) -> DeploymentEvent:
        """The change in force at ``at``: what ``name`` served then."""

    @abc.abstractmethod
    def list_servings(
        self, name: str, version: int | str | None = None, *, limit: int | None = None
    ) -> list[DeploymentEvent]:
        """Where model ``name``'s versions (or ``version``) ran and when, newest first."""

    @abc.abstractmethod
    def push_feedback(
        self,
        name: str,
        points: Sequence[FeedbackPoint | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> FeedbackReceipt:
        """Post observations of deployment ``name``; each is linked to the version it
        served at the point's timestamp. Points are ``FeedbackPoint`` or
        ``{"key", "value", "timestamp"[, "labels"]}``."""

    @abc.abstractmethod
    def deployment_feedback(
        self,
        name: str,
        *,
        key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[FeedbackPoint]: ...

    @abc.abstractmethod
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
    ) -> Page[FeedbackPoint]: ...

    @abc.abstractmethod
    def feedback_summary(
        self,
        name: str,
        version: int | str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        deployment: str | None = None,
    ) -> list[FeedbackSummary]:
        """Per metric key: count, min, max, mean and last value of the version's points
        (only ``deployment``'s, if given: a deployment of this model)."""

    # -- identities: who am I, users, groups, grants, tokens ---------------------------
    # Plain JSON-shaped dicts, exactly as the API returns them (docs/api.md).
    @abc.abstractmethod
    def whoami(self) -> dict[str, Any]:
        """The caller: ``{"user", "is_admin", "scope", "grants"}``."""

    @abc.abstractmethod
    def create_user(
        self, name: str, *, password: str | None = None, service: bool = False, admin: bool = False
    ) -> dict[str, Any]:
        """A user (``password`` for the UI login) or a service account (tokens only); ADMIN."""

    @abc.abstractmethod
    def list_users(self) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def update_user(
        self,
        name: str,
        *,
        password: str | None = None,
        admin: bool | None = None,
        disabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change what is given (None: unchanged); disabling revokes the user's tokens."""

    @abc.abstractmethod
    def create_group(self, name: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def delete_group(self, name: str) -> None: ...

    @abc.abstractmethod
    def add_member(self, group: str, user: str) -> None: ...

    @abc.abstractmethod
    def remove_member(self, group: str, user: str) -> None: ...

    @abc.abstractmethod
    def list_groups(self) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def grant(
        self, subject: str, role: str, *, model: str | None = None, pattern: str | None = None
    ) -> dict[str, Any]:
        """Give ``subject`` (``user:NAME``, ``group:NAME`` or a bare user name) ``role``
        (READ, WRITE, MANAGE) on one ``model`` or a name ``pattern`` (``risk.*``, ``*``)."""

    @abc.abstractmethod
    def revoke(self, subject: str, *, model: str | None = None, pattern: str | None = None) -> None:
        """Take back what ``subject`` holds on ``model`` or ``pattern``."""

    @abc.abstractmethod
    def list_grants(
        self, *, model: str | None = None, subject: str | None = None
    ) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def create_token(
        self,
        name: str = "",
        *,
        scope: str = "read",
        expires_days: int | None = 90,
        user: str | None = None,
    ) -> dict[str, Any]:
        """A new API token; its secret is in ``["token"]`` of this answer only.

        ``expires_days`` None: never expires. ``user``: another account's (ADMIN)."""

    @abc.abstractmethod
    def list_tokens(self, *, all_users: bool = False) -> list[dict[str, Any]]:
        """Your tokens (``all_users``: everyone's, ADMIN); never the secrets."""

    @abc.abstractmethod
    def revoke_token(self, token_id: int) -> None: ...

    # -- files: primitives each mode implements ---------------------------------------
    @abc.abstractmethod
    def _create_with_manifest(
        self, name: str, spec: VersionSpec, idempotency_key: str
    ) -> tuple[ModelVersion, list[str]]:
        """Create a version with ``spec.files``; return it and the digests still needed."""

    @abc.abstractmethod
    def _upload_blob(self, name: str, version: int, file: LocalFile, progress: Progress) -> None:
        """Send one blob of the version's manifest (resuming where the server stopped)."""

    def _upload(
        self, name: str, version: int, files: Sequence[LocalFile], progress: Progress
    ) -> None:
        """Send blobs of the version's manifest, several requests at once: large files
        alone, small ones together (``upload_plan``)."""
        alone, batches = upload_plan(files)
        jobs = [functools.partial(self._upload_blob, name, version, f, progress) for f in alone]
        jobs += [functools.partial(self._upload_batch, name, version, b, progress) for b in batches]
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(lambda job: job(), jobs))

    @abc.abstractmethod
    def _upload_batch(
        self, name: str, version: int, files: Sequence[LocalFile], progress: Progress
    ) -> None:
        """Send several small blobs of the version's manifest at once."""

    # ``override``: a quarantined version's files anyway (MANAGE; each read audited)
    @abc.abstractmethod
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
        """Bytes of one file from ``start`` to its end; from ``direct`` (a link of
        ``_direct_urls``) where that answers."""

    def _direct_urls(
        self, name: str, version: int, entries: Sequence[FileEntry], *, override: bool = False
    ) -> dict[str, str]:
        """Links to download these files straight from the object store, by digest
        (none: every file comes through the server)."""
        return {}

    @abc.abstractmethod
    def _fetch_many(
        self, name: str, version: int, entries: Sequence[FileEntry], *, override: bool = False
    ) -> list[bytes]:
        """Several small files whole, in the order of ``entries``."""

    @abc.abstractmethod
    def finalize_version(self, name: str, version: int | str) -> ModelVersion: ...

    # -- importers: versions with their numbers and history ---------------------------
    @abc.abstractmethod
    def import_model(
        self,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
        created_by: str | None = None,
    ) -> RegisteredModel:
        """Create a model keeping its original creation time and creator."""

    @abc.abstractmethod
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
        """Create version ``version`` exactly (or get it back if it has the same content);
        return it and the digests still needed."""

    @abc.abstractmethod
    def reserve_versions(self, name: str, up_to: int) -> RegisteredModel:
        """Move the model's version counter up to ``up_to`` (numbers up to it are spent)."""

    @abc.abstractmethod
    def list_files(self, name: str, version: int | str) -> list[FileEntry]: ...

    def file_links(
        self,
        name: str,
        version: int | str,
        paths: Sequence[str] | None = None,
        *,
        override_quarantine: bool = False,
    ) -> list[FileLink]:
        """Presigned links that download files of a READY version straight from the object
        store, valid an hour (``url`` None: the store has none, as on local disk); every
        file when ``paths`` is None. Check what a link delivers against the file's digest:
        the server does not see those bytes. ``override_quarantine``: links to the files
        of a quarantined version anyway (MANAGE on the model; each one audited)."""
        wanted = [f.path for f in self.list_files(name, version)] if paths is None else paths
        links: list[FileLink] = []
        for at in range(0, len(wanted), MAX_BATCH_BLOBS):
            chunk = wanted[at : at + MAX_BATCH_BLOBS]
            links += self._links(name, version, chunk, override=override_quarantine)
        return links

    @abc.abstractmethod
    def _links(
        self, name: str, version: int | str, paths: Sequence[str], *, override: bool
    ) -> list[FileLink]:
        """``file_links`` for up to ``MAX_BATCH_BLOBS`` paths."""

    # -- files: push and pull ----------------------------------------------------------
    last_transfer: TransferStats | None = None

    def push(
        self,
        path: str | Path,
        *,
        name: str,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        semver: str | None = None,
        source: str | None = None,
        run_id: str | None = None,
        run_link: str | None = None,
        alias: str | None = None,
        progress: Progress | None = None,
        if_changed: bool = False,
        lineage: Sequence[LineageInput] = (),
    ) -> ModelVersion:
        """Upload a file or folder as the next version of ``name``; send only missing bytes.

        Files are hashed locally; the version is created with its manifest; the blobs the
        server lacks go up in parallel; the version is READY when this returns. Re-running
        an interrupted push resumes large files where the server stopped.

        ``if_changed``: when the latest READY version of ``name`` has exactly these files,
        return it and create nothing (a pipeline that re-runs on the same model registers
        it once; ``last_transfer.created`` says which happened). The metadata given here is
        then not applied; ``alias`` is, so that it points at these files either way.

        ``lineage``: inputs recorded with the new version (``cairn.domain.lineage``'s
        ``dataset_input``, ``code_input``, ``parent_input``; docs/lineage.md).
        """
        if alias is not None:  # checked first: a bad one must not leave a version behind
            validate_alias(alias)
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
        version, self.last_transfer = push_pull.push(
            self, Path(path), name, spec, progress or NoProgress(), if_changed=if_changed
        )
        if self.last_transfer.created:
            version = self.finalize_version(name, version.version)
        if alias is not None and alias not in version.aliases:
            version = self.set_alias(name, alias, version.version)
        return version

    def pull(
        self,
        uri: str,
        out_dir: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
        progress: Progress | None = None,
        override_quarantine: bool = False,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> Path:
        """Download a version's files into ``out_dir`` (default ``./NAME-vVERSION``).

        Every file is verified against its digest and kept in the local cache; files are
        placed atomically. On the cache's filesystem, a file no other folder has is
        hard-linked from the cache (one copy on disk); any other is copied. Returns the
        folder. A version quarantined by its scan is refused unless ``override_quarantine``
        is asked by someone with MANAGE on the model (every file read that way is audited).
        ``include``/``exclude``: only the files whose paths match (``*.json``,
        ``tokenizer/``; ``domain.paths.select_files``).
        """
        parse_model_uri(uri)
        version = self.resolve(uri)
        if include or exclude:
            chosen = select_files(version.files, include, exclude)
            version = replace(version, files=chosen, size=sum(f.size for f in chosen))
        out = Path(out_dir) if out_dir is not None else Path(f"{version.name}-v{version.version}")
        cache = BlobCache(Path(cache_dir) if cache_dir is not None else None)
        self.last_transfer = push_pull.pull(
            self, version, out, cache, progress or NoProgress(), override=override_quarantine
        )
        return out

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Release connections; the client is unusable afterwards."""

    def __enter__(self) -> BaseClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- pagination helpers ------------------------------------------------------------
    def iter_models(self, filter: str | None = None, **kwargs: object) -> Iterator[RegisteredModel]:
        token: str | None = None
        while True:
            page = self.search_models(filter, page_token=token, **kwargs)  # type: ignore[arg-type]
            yield from page.items
            if not page.next_page_token:
                return
            token = page.next_page_token

    def iter_versions(self, filter: str | None = None, **kwargs: object) -> Iterator[ModelVersion]:
        token: str | None = None
        while True:
            page = self.search_versions(filter, page_token=token, **kwargs)  # type: ignore[arg-type]
            yield from page.items
            if not page.next_page_token:
                return
            token = page.next_page_token
