"""Values of the artifact side: upload tickets, receipts, maintenance reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn.domain.models import FileEntry, VersionStatus


@dataclass(frozen=True, slots=True)
class UploadPart:
    """Where a client may send bytes ``[offset, offset + length)`` directly (object stores):
    a ``method`` request to ``url`` carrying ``headers`` (Azure: the blob type it creates)."""

    offset: int
    length: int
    url: str
    method: str = "PUT"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class UploadTicket:
    """A resumable upload: send bytes from ``offset`` on, then complete it."""

    upload_id: str
    digest: str
    size: int
    offset: int
    parts: tuple[UploadPart, ...] | None = None


@dataclass(frozen=True, slots=True)
class FileLink:
    """A file of a version and a presigned link that downloads it straight from the object
    store (``None``: the store has none, e.g. local disk). Whoever fetches it checks the
    bytes against ``file.digest``: the server does not see them."""

    file: FileEntry
    url: str | None


@dataclass(frozen=True, slots=True)
class BlobReceipt:
    """The answer to a finished blob upload."""

    digest: str
    size: int
    stored: bool  # False: the bytes were already there and were not written again
    version_status: VersionStatus


@dataclass(frozen=True, slots=True)
class BlobUse:
    digest: str
    size: int
    versions: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class GcReport:
    dry_run: bool
    blobs: tuple[BlobUse, ...] = ()
    bytes: int = 0
    purged_versions: tuple[tuple[str, int], ...] = ()
    failed_versions: tuple[tuple[str, int], ...] = ()
    stale_uploads: int = 0
    pruned_versions: tuple[tuple[str, int], ...] = ()  # soft-deleted by keep_versions
    webhook_deliveries: int = 0  # finished ones past CAIRN_WEBHOOK_DELIVERY_RETENTION_DAYS
    feedback_points: int = 0  # measured before CAIRN_FEEDBACK_RETENTION_DAYS


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What pruning a model's old versions did, or would do (``dry_run``).

    ``pruned``: the versions deleted (soft, or for good with ``purge``); ``protected``: the
    older ones kept all the same (an alias, the ``Staging`` or ``Production`` stage, a live
    deployment, a lineage child one of those holds through a relation other than
    ``retrain``, an upload in progress, or created within ``keep_days``); ``bytes``: what
    the pruned versions alone hold, which gc may reclaim once they are purged."""

    model: str
    keep: int
    dry_run: bool
    purge: bool
    pruned: tuple[int, ...] = ()
    protected: tuple[int, ...] = ()
    bytes: int = 0
    keep_days: float | None = None
    filter: str | None = None  # only versions it matched were candidates


@dataclass(frozen=True, slots=True)
class Retention:
    """How many of a model's newest versions gc keeps (None: every version), and for how
    many days any version stays whatever its rank."""

    keep: int | None
    keep_days: float | None = None


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """A model's retention: its ``own`` (None: it has none, the instance's applies) and
    the one gc applies to it (``effective``)."""

    name: str
    own: Retention | None
    effective: Retention


MAX_VERIFY_JOBS = 64  # blobs `verify` re-hashes at once (threads: hashing releases the GIL)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checked: int
    bytes: int
    corrupt: tuple[BlobUse, ...] = field(default_factory=tuple)
    missing: tuple[BlobUse, ...] = field(default_factory=tuple)
