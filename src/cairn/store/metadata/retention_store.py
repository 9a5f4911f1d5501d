"""Models' own retention policies (``model_settings.keep_versions``/``_days``).

``keep_versions`` NULL: the instance's policy applies; 0: every version stays; N: gc keeps
the newest N (and, with ``keep_versions_days``, any created within that many days)."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from cairn.store.metadata.prepared import Upsert
from cairn.store.metadata.schema import model_settings, registered_models

S = model_settings
M = registered_models
_SET = Upsert(S, ("model_id",), ("keep_versions", "keep_versions_days"))


class RetentionStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    def get(self, model_id: int) -> tuple[int, float | None] | None:
        """The model's own (keep, keep_days), or None: it has none of its own."""
        row = self.s.execute(
            select(S.c.keep_versions, S.c.keep_versions_days).where(
                S.c.model_id == model_id, S.c.keep_versions.is_not(None)
            )
        ).first()
        return None if row is None else (int(row.keep_versions), row.keep_versions_days)

    def set(self, model_id: int, keep: int, keep_days: float | None) -> None:
        _SET.run_many(
            self.s,
            [{"model_id": model_id, "keep_versions": keep, "keep_versions_days": keep_days}],
        )

    def clear(self, model_id: int) -> None:
        self.s.execute(
            update(S)
            .where(S.c.model_id == model_id)
            .values(keep_versions=None, keep_versions_days=None)
        )

    def all_live(self) -> list[tuple[str, int, float | None]]:
        """(name, keep, keep_days) of every live model with a policy of its own, by name."""
        rows = self.s.execute(
            select(M.c.name, S.c.keep_versions, S.c.keep_versions_days)
            .join(S, S.c.model_id == M.c.id)
            .where(M.c.deleted_at.is_(None), S.c.keep_versions.is_not(None))
            .order_by(M.c.name_key)
        )
        return [(r.name, int(r.keep_versions), r.keep_versions_days) for r in rows]
