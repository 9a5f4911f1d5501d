"""What every use case shares: the database, the blob store, the clock and the limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cairn.store.blobs.base import BlobStore
from cairn.store.metadata.clock import now_us
from cairn.store.metadata.database import Database, Tx
from cairn.store.metadata.models_store import ModelStore


@dataclass(frozen=True, slots=True)
class Limits:
    """Defaults, ceilings and time limits (the server's settings set them)."""

    default_page: int = 100
    max_alias_history: int = 1000
    max_files: int = 10_000
    max_file_bytes: int = 1 << 40  # 1 TiB per file
    pending_timeout_s: int = 24 * 3600  # PENDING longer than this becomes FAILED
    gc_grace_s: int = 3600  # unreferenced blobs younger than this are kept
    purge_deleted_after_s: int | None = None  # soft-deleted versions purged after this


class ServiceBase:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        *,
        clock: Callable[[], int] = now_us,
        limits: Limits | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock
        self.limits = limits or Limits()

    @staticmethod
    def _live_model(s: Tx, name: str, *, lock: bool = False) -> Any:
        return ModelStore(s).get_live(name, lock=lock)
