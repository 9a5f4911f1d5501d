"""A change to one user's own grants announces that user alone

Revision ID: 0006_grant_notify_user
Revises: 0005_identity_notify
Create Date: 2026-11-27 01:10:00

Every model's creation gives its creator a grant; announced as a change to ``grants`` it
made every server process forget every token it remembered. Row by row, a grant whose
subject is a user (inserted, changed, deleted) now sends ``user:<id>`` on
``cairn_identity``, which moves only that user's mark (``identity_watch.py``); a group's
grant, a change of a grant's subject and a ``TRUNCATE`` still concern everyone.
"""

from __future__ import annotations

from alembic import op

revision = "0006_grant_notify_user"
down_revision = "0005_identity_notify"
branch_labels = None
depends_on = None

TRIGGER = "cairn_identity_changed"
FUNCTION = "cairn_grant_changed"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            g grants;
        BEGIN
            IF TG_OP = 'DELETE' THEN g := OLD; ELSE g := NEW; END IF;
            IF g.subject_kind = 'user' AND (TG_OP <> 'UPDATE' OR
                    (OLD.subject_kind = 'user' AND OLD.subject_id = NEW.subject_id)) THEN
                PERFORM pg_notify('cairn_identity', 'user:' || g.subject_id);
            ELSE
                PERFORM pg_notify('cairn_identity', 'grants');
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(f"DROP TRIGGER {TRIGGER} ON grants")
    op.execute(
        f"CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON grants "
        f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
    )
    op.execute(
        f"CREATE TRIGGER {TRIGGER}_truncate AFTER TRUNCATE ON grants "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {TRIGGER}()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP TRIGGER {TRIGGER}_truncate ON grants")
    op.execute(f"DROP TRIGGER {TRIGGER} ON grants")
    op.execute(
        f"CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grants "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {TRIGGER}()"
    )
    op.execute(f"DROP FUNCTION {FUNCTION}()")
