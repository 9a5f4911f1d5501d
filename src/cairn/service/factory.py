"""Build a ready ``RegistryService`` from settings: open, migrate (or check), wire up."""

from __future__ import annotations

from cairn.service.base import Limits
from cairn.service.registry import RegistryService
from cairn.settings import Settings
from cairn.store.metadata import migrate
from cairn.store.metadata.database import Database


def build_service(settings: Settings) -> RegistryService:
    """The service over the configured database, migrated first (or checked, if told not to)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_backend_uri(), pool_size=settings.db_pool_size)
    if settings.migrate:
        migrate.upgrade(db)
    else:
        migrate.check_schema(db)
    return RegistryService(db, limits=Limits(default_page=settings.default_page_size))
