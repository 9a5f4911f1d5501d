"""What every use case shares: the database, the blob store, the clock, the limits, and
the two things every use case does before and after its change: authorize and audit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cairn.domain import names
from cairn.domain.access import Actor, Role
from cairn.domain.uris import parse_version_number
from cairn.errors import Conflict, NotFound, PermissionDenied
from cairn.service.auth_cache import AuthCache
from cairn.service.keyring import Keyring
from cairn.store.blobs.base import BlobStore
from cairn.store.metadata import one_trip
from cairn.store.metadata.audit_store import AuditStore, new_event
from cairn.store.metadata.clock import now_us
from cairn.store.metadata.database import Database, Tx
from cairn.store.metadata.deployments_store import DeploymentStore
from cairn.store.metadata.models_store import ModelStore
from cairn.store.metadata.versions_store import VersionStore

PRESIGN_SECONDS = 3600  # how long a presigned object-store URL stays valid

T = TypeVar("T")


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
    keep_versions: int | None = None  # gc prunes every model to its newest N (prune_versions)
    keep_versions_days: float | None = None  # ...keeping those younger than this too
    webhook_delivery_retention_s: int | None = 30 * 86400  # finished deliveries older go
    feedback_retention_s: int | None = None  # feedback points measured longer ago go
    creator_role: str | None = "MANAGE"  # what creating a model grants its creator
    scan_policy: str = "quarantine"  # a version whose scan is not clean: label|quarantine|reject
    webhook_allow_private: bool = False  # webhooks may target loopback/private addresses


class ServiceBase:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        *,
        clock: Callable[[], int] = now_us,
        limits: Limits | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock
        self.limits = limits or Limits()
        # what seals webhook secrets at rest (``keyring.py``); a service built without one
        # refuses to store a secret rather than keep it under a key nobody has
        self.keyring = keyring or Keyring()
        self._auth_cache = AuthCache(db)

    def read_together(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, which calls reading use cases only, in one read transaction: what
        they read is one snapshot (SQLite), and it costs one transaction, not one each."""
        return self.db.read_together(fn)

    # -- authorization: the one place a use case asks "may this caller do this?" ----------

    @staticmethod
    def _model(
        s: Tx, actor: Actor, name: str, role: Role, action: str, *, lock: bool = False
    ) -> Any:
        """The live model ``name`` if the caller holds ``role`` on it.

        A caller who may not read the model gets the same answer whether it exists or not
        (not found), so names do not leak; one who may read it but not ``role`` is denied.
        """
        row = ModelStore(s).find_live(name, lock=lock)
        authorize(actor, row, role, action, no_such_model(name))
        return row

    def _version_row(
        self, actor: Actor, name: str, version: int | str, role: Role, action: str
    ) -> Any:
        names.validate_model_name(name)
        number = parse_version_number(version)
        return self.db.read(lambda s: self._row_in(s, actor, name, number, role, action))

    def _row_in(self, s: Tx, actor: Actor, name: str, number: int, role: Role, action: str) -> Any:
        """The version row, if ``actor`` holds ``role`` on its live model (``_model``)."""
        model = self._model(s, actor, name, role, action)
        return VersionStore(s).get(model.id, name, number)

    @staticmethod
    def _refuse_if_served(s: Tx, model: Any, number: int, doing: str) -> None:
        """Refuse (409) to ``doing`` a version a live deployment serves: the deployment would
        name a version nobody can pull again (a restart, a new replica). Moving the
        deployment to another version, or retiring it, lets go of it."""
        live = DeploymentStore(s).serving_now(model.id, number)
        if not live:
            return
        shown = ", ".join(f"{r.name!r} ({r.environment})" for r in live[:3])
        more = f" and {len(live) - 3} more" if len(live) > 3 else ""
        raise Conflict(
            f"version {number} of {model.name!r} is served by deployment {shown}{more}; "
            f"move the deployment to another version or retire it before you {doing} "
            "this one; nothing was changed"
        )

    @staticmethod
    def _require_create(actor: Actor, name: str, action: str) -> None:
        """Creating a name needs WRITE through a pattern grant that covers it."""
        if not actor.allows(Role.WRITE, None, names.name_key(name)):
            raise PermissionDenied(
                f"WRITE on {name!r} is required to {action.replace('_', ' ')}",
                denial={"action": action, "model": name},
            )

    @staticmethod
    def _require_admin(actor: Actor, action: str) -> None:
        if not actor.admin:
            raise PermissionDenied(
                f"the instance ADMIN role is required to {action.replace('_', ' ')}",
                denial={"action": action},
            )

    def _one_statement_for(self, actor: Actor, name: str) -> bool:
        """Whether a write to the model ``name`` may take the one-statement way
        (``store/metadata/one_trip.py``): the database takes it, and no row needs
        authorizing (the caller's grants give WRITE on the name whatever the model's id)."""
        return one_trip.available(self.db.dialect) and actor.allows(
            Role.WRITE, None, names.name_key(name)
        )

    # -- audit: appended in the caller's transaction, with the change it describes --------

    def _audit(self, s: Tx, actor: Actor, action: str, *, model: Any = None, **fields: Any) -> None:
        """Append ``action`` with ``fields`` (``audit_store.new_event``'s). ``model`` is the
        model row; a use case without one names it by ``model_name`` and ``model_id``."""
        if model is not None:
            fields.update(model_name=model.name, model_id=model.id)
        AuditStore(s).append(new_event(actor, action, at=self.clock(), **fields))


def no_such_model(name: str) -> str:
    return f"registered model {name!r} does not exist"


def authorize(actor: Actor, row: Any, role: Role, action: str, missing: str) -> None:
    """Refuse unless the caller holds ``role`` on the live model ``row`` (None: there is
    none). One who may not read it hears ``missing`` (not found) whether it exists or not."""
    if row is None or not actor.allows(Role.READ, row.id, row.name_key):
        raise NotFound(missing, denial=None if row is None else _denial(action, row))
    require(actor, role, row, action)


def require(actor: Actor, role: Role, row: Any, action: str) -> None:
    """Refuse unless the caller holds ``role`` on the model ``row``."""
    if not actor.allows(role, row.id, row.name_key):
        raise PermissionDenied(
            f"{role.name} on model {row.name!r} is required to {action.replace('_', ' ')}",
            denial=_denial(action, row),
        )


def _denial(action: str, row: Any) -> dict[str, Any]:
    return {"action": action, "model": row.name, "model_id": row.id}
