"""Build a ready ``RegistryService`` from settings: open, migrate (or check), wire up."""

from __future__ import annotations

from cairn.errors import InvalidParameter
from cairn.service.base import Limits
from cairn.service.keyring import Keyring
from cairn.service.registry import RegistryService
from cairn.settings import Settings
from cairn.store.blobs.factory import open_blob_store
from cairn.store.metadata import migrate
from cairn.store.metadata.database import Database


def build_service(settings: Settings) -> RegistryService:
    """The service over the configured database, migrated first (or checked, if told not to)."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameter(
            f"data directory {settings.data_dir} cannot be used: {exc.strerror}; give a "
            "directory this user can create, or one that exists and is writable"
        ) from exc
    keyring = Keyring.from_settings(settings)  # a malformed CAIRN_SECRET_KEYS stops here
    db = Database(settings.resolved_backend_uri(), pool_size=settings.db_pool_size)
    if settings.migrate:
        migrate.upgrade(db)
    else:
        migrate.check_schema(db)
    blobs = open_blob_store(settings.resolved_artifacts_uri())
    limits = Limits(
        default_page=settings.default_page_size,
        max_files=settings.max_files,
        max_file_bytes=settings.max_file_bytes,
        scan_policy=settings.scan_policy,
        pending_timeout_s=settings.pending_timeout_s,
        gc_grace_s=settings.gc_grace_s,
        purge_deleted_after_s=None
        if settings.purge_deleted_after_days is None
        else int(settings.purge_deleted_after_days * 86400),
        creator_role=None if settings.creator_role == "NONE" else settings.creator_role,
        keep_versions=settings.keep_versions,
        keep_versions_days=settings.keep_versions_days,
        webhook_delivery_retention_s=_seconds(settings.webhook_delivery_retention_days),
        feedback_retention_s=_seconds(settings.feedback_retention_days),
        webhook_allow_private=settings.webhook_allow_private,
    )
    return RegistryService(db, blobs, limits=limits, keyring=keyring)


def _seconds(days: float) -> int | None:
    """A retention in days as seconds (at least one); 0 days: None, kept for ever."""
    return None if days == 0 else max(1, int(days * 86400))
