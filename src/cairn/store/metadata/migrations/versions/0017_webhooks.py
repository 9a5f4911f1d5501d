"""Webhooks, their outbox, and the trigger that fills it from the audit log

Revision ID: 0017_webhooks
Revises: 0016_lineage
Create Date: 2026-11-30 00:30:00

``webhooks`` holds where events go (url, signing secret, event filter, model scope) and
``webhook_deliveries`` is the outbox the dispatchers work through. Every audited change
already appends its event to ``audit_events`` in its own transaction, whichever way it is
written (``AuditStore.append`` or one of ``one_trip.py``'s single statements), so a
trigger on that table is the one place that sees them all: for an event that succeeded
and names a model, it inserts one pending delivery per active webhook whose event filter
holds the action and whose scope covers the model's name key. A rolled-back change rolls
its deliveries back with it; a committed one has them. With no webhook the trigger reads
an empty table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_webhooks"
down_revision = "0016_lineage"
branch_labels = None
depends_on = None

TRIGGER = "cairn_webhook_enqueue"
# the deliveries of one audit event ``NEW`` (frozen here; {uid} is the dialect's random id)
_SELECT = """
    INSERT INTO webhook_deliveries
        (uid, webhook_id, event, event_seq, status, attempts, next_attempt_at, created_at)
    SELECT {uid}, w.id, NEW.action, NEW.seq, 'pending', 0, NEW.at, NEW.at
    FROM webhooks w JOIN registered_models m ON m.id = NEW.model_id
    WHERE w.active
      AND {contains}
      AND CASE WHEN w.scope_exact THEN m.name_key = w.scope_key
               ELSE substr(m.name_key, 1, length(w.scope_key)) = w.scope_key END;
"""
# The audit actions a webhook may carry (frozen: a later event type re-creates the trigger
# in its own migration); ``domain/webhooks.py`` keeps the same list as ``EVENTS``.
DELIVERABLE = (
    "model.create",
    "model.update",
    "model.rename",
    "model.delete",
    "model.restore",
    "model.tag.set",
    "model.tag.delete",
    "version.create",
    "version.update",
    "version.finalize",
    "version.expire",
    "version.stage",
    "version.tag.set",
    "version.tag.delete",
    "version.delete",
    "version.restore",
    "version.purge",
    "alias.set",
    "alias.delete",
    "promotion.request",
    "promotion.approve",
    "promotion.reject",
    "promotion.cancel",
    "promotion.apply",
    "signature.add",
    "scan.rerun",
    "scan.policy",
    "artifact.quarantine_override",
    "retention.policy",
    "import.model",
    "import.version",
    "lineage.record",
    "lineage.remove",
    "lineage.openlineage",
    "deployment.set",
    "deployment.retire",
)
_WHEN = (
    "NEW.outcome = 'ok' AND NEW.model_id IS NOT NULL AND NEW.action IN ("
    + ", ".join(f"'{a}'" for a in DELIVERABLE)
    + ")"
)
# A webhook's ``events`` is ``,pattern,…,``: ``*``, an action, or a family ``a.*`` /
# ``a.b.*``; {first} and {second} are the action's first one and two dotted parts.
# {find} is the dialect's substring search (strpos, instr).
_SELECTS = """(
        {find}(w.events, ',*,') > 0
        OR {find}(w.events, ',' || NEW.action || ',') > 0
        OR {find}(w.events, ',' || {first} || '.*,') > 0
        OR {find}(w.events, ',' || {second} || '.*,') > 0
    )"""


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret", sa.String(length=256), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(length=1024), nullable=False),
        sa.Column("scope_key", sa.String(length=1024), nullable=False),
        sa.Column("scope_exact", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
        sa.UniqueConstraint("name", name=op.f("uq_webhooks_name")),
    )
    op.create_index("ix_webhooks_active", "webhooks", ["active"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column(
            "webhook_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        sa.Column("redelivery_of", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_webhook_deliveries_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("uid", name=op.f("uq_webhook_deliveries_uid")),
    )
    op.create_index(
        "ix_webhook_deliveries_status_next_attempt_at",
        "webhook_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        "ix_webhook_deliveries_webhook_id_id", "webhook_deliveries", ["webhook_id", "id"]
    )
    if op.get_bind().dialect.name == "postgresql":
        body = _SELECT.format(
            uid="replace(gen_random_uuid()::text, '-', '')",
            contains=_SELECTS.format(
                find="strpos",
                first="split_part(NEW.action, '.', 1)",
                second="split_part(NEW.action, '.', 1) || '.' || split_part(NEW.action, '.', 2)",
            ),
        )
        op.execute(
            f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN {body} RETURN NULL; END\n$$"
        )
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER INSERT ON audit_events FOR EACH ROW "
            f"WHEN ({_WHEN}) EXECUTE FUNCTION {TRIGGER}()"
        )
    else:
        body = _SELECT.format(
            uid="lower(hex(randomblob(16)))",
            contains=_SELECTS.format(
                find="instr",
                first="substr(NEW.action, 1, instr(NEW.action, '.') - 1)",
                # the action up to its second dot (its first part again if it has one)
                second="substr(NEW.action, 1, instr(NEW.action, '.') "
                "+ instr(substr(NEW.action, instr(NEW.action, '.') + 1), '.') - 1)",
            ),
        )
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER INSERT ON audit_events WHEN {_WHEN} BEGIN {body} END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TRIGGER} ON audit_events")
        op.execute(f"DROP FUNCTION {TRIGGER}()")
    else:
        op.execute(f"DROP TRIGGER {TRIGGER}")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
