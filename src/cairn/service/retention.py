"""Models' own retention policies: how many versions gc keeps of each.

A model's own policy (``set_retention``) takes the place of the instance's
(``CAIRN_KEEP_VERSIONS``/``CAIRN_KEEP_VERSIONS_DAYS``, or ``gc --keep`` for one run): keep
its newest N versions (and, with ``keep_days``, any created within that many days), or
every version (``keep=None``). ``clear_retention`` returns it to the instance's. gc then
prunes by the rule of ``prune_versions``: a version an alias, the ``Staging`` or
``Production`` stage or an unfinished upload holds always stays.
"""

from __future__ import annotations

from cairn.domain import names
from cairn.domain.access import Role
from cairn.domain.artifacts import Retention, RetentionPolicy
from cairn.domain.codec import require_int, require_number
from cairn.domain.models import Actor
from cairn.errors import InvalidParameter
from cairn.service.base import ServiceBase
from cairn.store.metadata.database import Tx
from cairn.store.metadata.retention_store import RetentionStore

MIN_KEEP, MAX_KEEP = 1, 1_000_000  # how many of the newest versions stay
MAX_KEEP_DAYS = 36_500  # ...and for how many days a version stays whatever its rank


def check_keep(keep: int | None, keep_days: float | None) -> None:
    """Refuse a ``keep`` or ``keep_days`` out of range, or days without a count."""
    if keep is not None and not MIN_KEEP <= require_int("keep", keep) <= MAX_KEEP:
        raise InvalidParameter(
            f"keep must be between {MIN_KEEP} and {MAX_KEEP}: the newest versions kept"
        )
    if keep_days is None:
        return
    if keep is None:
        raise InvalidParameter("keep_days goes with keep: how many versions stay")
    if not 0 <= require_number("keep_days", keep_days) <= MAX_KEEP_DAYS:
        raise InvalidParameter(
            f"keep_days must be between 0 and {MAX_KEEP_DAYS}: versions that young stay"
        )


def _stored(own: Retention | None) -> tuple[int, float | None] | None:
    """A policy as ``model_settings`` holds it: 0 for every version."""
    return None if own is None else (own.keep or 0, own.keep_days)


def _loaded(row: tuple[int, float | None] | None) -> Retention | None:
    return None if row is None else Retention(row[0] or None, row[1])


class RetentionService(ServiceBase):
    def _instance_retention(self) -> Retention:
        return Retention(self.limits.keep_versions, self.limits.keep_versions_days)

    def get_retention(self, actor: Actor, name: str) -> RetentionPolicy:
        names.validate_model_name(name)

        def run(s: Tx) -> RetentionPolicy:
            model = self._model(s, actor, name, Role.READ, "get_retention")
            return self._retention_policy(model.name, _loaded(RetentionStore(s).get(model.id)))

        return self.db.read(run)

    def set_retention(
        self, actor: Actor, name: str, *, keep: int | None, keep_days: float | None = None
    ) -> RetentionPolicy:
        """Give the model its own policy: keep its newest ``keep`` versions (None: every
        one), and those created within ``keep_days``. Needs MANAGE."""
        names.validate_model_name(name)
        check_keep(keep, keep_days)
        return self._change_retention(actor, name, Retention(keep, keep_days), "set_retention")

    def clear_retention(self, actor: Actor, name: str) -> RetentionPolicy:
        """Return the model to the instance's policy. Needs MANAGE."""
        names.validate_model_name(name)
        return self._change_retention(actor, name, None, "clear_retention")

    def _change_retention(
        self, actor: Actor, name: str, wanted: Retention | None, action: str
    ) -> RetentionPolicy:
        def run(s: Tx) -> RetentionPolicy:
            model = self._model(s, actor, name, Role.MANAGE, action, lock=True)
            store = RetentionStore(s)
            before = store.get(model.id)
            after = _stored(wanted)
            if before != after:
                if after is None:
                    store.clear(model.id)
                else:
                    store.set(model.id, *after)
                self._audit(
                    s,
                    actor,
                    "retention.policy",
                    model=model,
                    before=_audited(_loaded(before)),
                    after=_audited(wanted),
                )
            return self._retention_policy(model.name, wanted)

        return self.db.write(run)

    def _retention_policy(self, name: str, own: Retention | None) -> RetentionPolicy:
        return RetentionPolicy(name, own, own or self._instance_retention())


def _audited(own: Retention | None) -> dict[str, object] | None:
    return None if own is None else {"keep": own.keep, "keep_days": own.keep_days}
