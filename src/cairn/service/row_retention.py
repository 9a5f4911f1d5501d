"""gc's retention of the tables that only grow: finished webhook deliveries and monitoring
feedback points, each older than its setting (``CAIRN_WEBHOOK_DELIVERY_RETENTION_DAYS``,
default 30; ``CAIRN_FEEDBACK_RETENTION_DAYS``, default 0: for ever).

Rows go in batches of ``BATCH``, each in a transaction of its own, so that a gc with
millions of rows to delete never holds SQLite's one writer for more than a few
milliseconds at a time (uploads and dispatchers take their turns between batches). Each
batch follows an index in order and stops after ``BATCH`` rows, so its cost does not grow
with what is left. A pending delivery is never deleted, however old: it is still to be
sent. A dry run counts, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from cairn.store.metadata.database import Database, Tx
from cairn.store.metadata.deployments_store import DeploymentStore
from cairn.store.metadata.webhooks_store import FINISHED, WebhookStore

US = 1_000_000
BATCH = 1000  # rows deleted per transaction
_IDS = 1000  # deployment ids counted per query


def expire_deliveries(db: Database, now: int, keep_s: int | None, *, dry_run: bool) -> int:
    """Finished deliveries that finished more than ``keep_s`` seconds before ``now``
    (None: none): how many were deleted, or would be."""
    if keep_s is None:
        return 0
    cut = now - keep_s * US
    if dry_run:
        return db.read(lambda s: WebhookStore(s).count_finished_before(cut))
    return sum(_in_batches(db, partial(_delete_deliveries, status, cut)) for status in FINISHED)


def expire_feedback(db: Database, now: int, keep_s: int | None, *, dry_run: bool) -> int:
    """Feedback points measured more than ``keep_s`` seconds before ``now`` (None: none):
    how many were deleted, or would be."""
    if keep_s is None:
        return 0
    cut = now - keep_s * US
    ids = db.read(lambda s: DeploymentStore(s).with_points_before(cut))
    if dry_run:
        return db.read(partial(_count_points, ids, cut))
    return sum(
        _in_batches(db, partial(_delete_points, deployment_id, cut)) for deployment_id in ids
    )


def _delete_deliveries(status: str, cut: int, s: Tx) -> int:
    return WebhookStore(s).delete_finished_before(status, cut, BATCH)


def _count_points(ids: list[int], cut: int, s: Tx) -> int:
    store = DeploymentStore(s)
    return sum(
        store.count_points_before(ids[at : at + _IDS], cut) for at in range(0, len(ids), _IDS)
    )


def _delete_points(deployment_id: int, cut: int, s: Tx) -> int:
    return DeploymentStore(s).delete_points_before(deployment_id, cut, BATCH)


def _in_batches(db: Database, batch: Callable[[Tx], int]) -> int:
    """Run ``batch`` in write transactions until one deletes fewer than ``BATCH`` rows."""
    total = 0
    while True:
        done = db.write(batch)
        total += done
        if done < BATCH:
            return total
