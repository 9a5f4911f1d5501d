"""What every use case shares: the database, the clock, and the context of one call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cairn.domain.models import Actor
from cairn.store.metadata.clock import now_us
from cairn.store.metadata.database import Database, Tx
from cairn.store.metadata.models_store import ModelStore


@dataclass(frozen=True, slots=True)
class Limits:
    """Defaults and ceilings for listing (the server's settings can lower them)."""

    default_page: int = 100
    max_alias_history: int = 1000


class ServiceBase:
    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], int] = now_us,
        limits: Limits | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.limits = limits or Limits()

    @staticmethod
    def _live_model(s: Tx, name: str, *, lock: bool = False) -> Any:
        return ModelStore(s).get_live(name, lock=lock)

    @staticmethod
    def _actor_name(actor: Actor) -> str:
        return actor.name
