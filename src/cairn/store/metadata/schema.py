"""The metadata schema: one definition for SQLite and PostgreSQL.

Times are integers: microseconds since the Unix epoch, UTC. They sort and compare the
same on both engines, and "as of" queries need no time-zone arithmetic.
Rows never leave ``store/``: queries turn them into domain values.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    literal_column,
    text,
    true,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# characters of a tag or param value in its (value prefix, key) index: whole values (up to
# 5,000 characters) would not fit a PostgreSQL index entry
VALUE_PREFIX = 100


def value_prefix(value: Any) -> Any:
    """``substr(value, 1, VALUE_PREFIX)``, its numbers written into the SQL: a query must
    spell the indexed expression exactly (bound numbers would not match it)."""
    return func.substr(value, literal_column("1"), literal_column(str(VALUE_PREFIX)), type_=Text)


def value_rest(value: Any) -> Any:
    """What follows ``value_prefix(value)``: ``''`` for a short value."""
    return func.substr(value, literal_column(str(VALUE_PREFIX + 1)), type_=Text)


ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    # byte order on PostgreSQL whatever the server's locale, as on SQLite (and LIKE 'p%' uses it)
    Column(
        "name_key",
        String(1024).with_variant(String(1024, collation="C"), "postgresql"),
        nullable=False,
    ),
    Column("description", Text, nullable=False, server_default=""),
    Column("last_version", Integer, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("created_by", String(256)),
    Column("deleted_at", BigInteger),
    # One live model per name key; deleted models keep their rows (restore) without blocking.
    Index(
        "uq_registered_models_live_name_key",
        "name_key",
        unique=True,
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
    Index("ix_registered_models_name_key_deleted", "name_key", "deleted_at"),
    Index("ix_registered_models_created_at", "created_at", "id"),
    Index("ix_registered_models_updated_at", "updated_at", "id"),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column(
        "model_id", ID, ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_model_tags_value_key", value_prefix(text("value")), "key"),
)

# The conditions of model_versions' partial indexes, which a query states as written here
# for the planners to prove it may use them (a bound value would not prove ``PENDING``).
PENDING_ROWS = text("status = 'PENDING'")
LABELLED_ROWS = text("semver_key IS NOT NULL")
DELETED_ROWS = text("deleted_at IS NOT NULL")

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("model_id", ID, ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_message", Text, nullable=False, server_default=""),
    Column("stage", String(16), nullable=False, server_default="None"),
    Column("description", Text, nullable=False, server_default=""),
    Column("semver", String(256)),
    Column("semver_key", String(32)),  # major.minor.patch, fixed width: domain/semver.py
    Column("source", Text),
    Column("run_id", String(256)),
    Column("run_link", Text),
    Column("digest", String(71)),
    Column("size", BigInteger, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("created_by", String(256)),
    Column("deleted_at", BigInteger),
    UniqueConstraint("model_id", "version"),
    Index("ix_model_versions_model_status_version", "model_id", "status", "version"),
    Index("ix_model_versions_model_stage_version", "model_id", "stage", "version"),
    Index("ix_model_versions_run_id", "run_id"),
    Index("ix_model_versions_created_at", "created_at", "id"),
    Index("ix_model_versions_updated_at", "updated_at", "id"),
    # the highest semver label in a range (models:/NAME@^1.4), by index, in the order
    # the query reads (no sort, whatever the plan's estimate): a version without a label
    # writes no entry (migration 0012)
    Index(
        "ix_model_versions_semver",
        "model_id",
        "semver_key",
        "version",
        sqlite_where=LABELLED_ROWS,
        postgresql_where=LABELLED_ROWS,
    ),
    # the sweep of stale uploads and the purge of old deletions, over the few rows they
    # concern: a version created READY and live writes neither (migration 0010)
    Index(
        "ix_model_versions_pending",
        "created_at",
        sqlite_where=PENDING_ROWS,
        postgresql_where=PENDING_ROWS,
    ),
    Index(
        "ix_model_versions_deleted",
        "deleted_at",
        sqlite_where=DELETED_ROWS,
        postgresql_where=DELETED_ROWS,
    ),
)

version_tags = Table(
    "version_tags",
    metadata,
    Column("version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_version_tags_value_key", value_prefix(text("value")), "key"),
)

version_params = Table(
    "version_params",
    metadata,
    Column("version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_version_params_value_key", value_prefix(text("value")), "key"),
)

version_metrics = Table(
    "version_metrics",
    metadata,
    Column("version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=False),
    Index("ix_version_metrics_key_value", "key", "value"),
)

version_files = Table(
    "version_files",
    metadata,
    Column("version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("digest", String(71), nullable=False),
    Index("ix_version_files_digest", "digest"),
)

aliases = Table(
    "aliases",
    metadata,
    Column(
        "model_id", ID, ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("alias_key", String(255), primary_key=True),
    Column("alias", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_aliases_model_version", "model_id", "version"),
    Index("ix_aliases_alias_key", "alias_key"),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("model_id", ID, ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False),
    Column("alias_key", String(255), nullable=False),
    Column("alias", String(255), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(256)),
    Column("at", BigInteger, nullable=False),
    Index("ix_alias_events_model_alias_at", "model_id", "alias_key", "at", "id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("actor", String(256), primary_key=True),
    Column("operation", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("model_id", ID, nullable=False),
    Column("version", Integer),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),
)


# -- artifacts (migration 0002) --------------------------------------------------------

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(71), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("verified_at", BigInteger),
    Column("corrupt_at", BigInteger),  # set when a re-hash no longer matches
    Index("ix_blobs_created_at", "created_at"),
)

# gc deletes a blob's row and writes its tombstone in one transaction, then deletes the
# bytes, then the tombstone (migration 0014). While it stands, no upload may record the
# digest (``BlobIndexStore.record``); one a crash left behind, the next gc finishes.
blob_tombstones = Table(
    "blob_tombstones",
    metadata,
    Column("digest", String(71), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

uploads = Table(
    "uploads",
    metadata,
    Column("upload_id", String(64), primary_key=True),
    Column("version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(71), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("version_id", "digest"),
    Index("ix_uploads_digest", "digest"),
    Index("ix_uploads_created_at", "created_at"),
)


# -- security and governance (migration 0003) ------------------------------------------
# Names of people are plain strings in history tables (alias_events.actor, audit_events.actor)
# so that history survives the deletion of an account.

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("name_key", String(256), nullable=False, unique=True),  # casefolded identity
    Column("kind", String(16), nullable=False),  # user | service
    Column("password_hash", Text),  # argon2id; NULL: cannot log in with a password
    Column("is_admin", Boolean, nullable=False, server_default=false()),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256)),
    Column("disabled_at", BigInteger),
)

groups = Table(
    "groups",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("name_key", String(256), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256)),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", ID, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_group_members_user_id", "user_id"),
)

# A grant gives a role (READ < WRITE < MANAGE) on one model (by id: a re-created name does
# not inherit it) or on a name pattern over name keys ('*', 'risk.*', or an exact key).
grants = Table(
    "grants",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("subject_kind", String(8), nullable=False),  # user | group
    Column("subject_id", ID, nullable=False),
    Column("model_id", ID, ForeignKey("registered_models.id", ondelete="CASCADE")),
    Column("pattern", String(1024)),
    Column("role", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256)),
    Index(
        "uq_grants_subject_model",
        "subject_kind",
        "subject_id",
        "model_id",
        unique=True,
        sqlite_where=text("model_id IS NOT NULL"),
        postgresql_where=text("model_id IS NOT NULL"),
    ),
    Index(
        "uq_grants_subject_pattern",
        "subject_kind",
        "subject_id",
        "pattern",
        unique=True,
        sqlite_where=text("pattern IS NOT NULL"),
        postgresql_where=text("pattern IS NOT NULL"),
    ),
    Index("ix_grants_model_id", "model_id"),
)

# API tokens and UI login sessions. Only a SHA-256 of the secret is kept; the prefix is
# what listings show.
tokens = Table(
    "tokens",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False),  # api | session
    Column("name", String(256), nullable=False, server_default=""),
    Column("prefix", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("scope", String(8), nullable=False),  # read | write | admin
    Column("csrf_hash", String(64)),  # sessions only
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("last_used_at", BigInteger),
    Column("revoked_at", BigInteger),
    Index("ix_tokens_user_id", "user_id"),
)

# Content-addressed dedup must not leak other people's content: when a new version's manifest
# names bytes that are stored but not reachable from any version its creator may read, the
# creator must upload them anyway (proving they hold them). One row per digest still owed.
blob_claims = Table(
    "blob_claims",
    metadata,
    Column("version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(71), primary_key=True),
)

# Append-only, hash-chained: hash = sha256(prev_hash + canonical JSON of the event).
# audit_head holds the chain's tip; appending locks it, so the chain never forks.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),  # ok | denied
    Column("model", String(256)),
    Column("model_id", ID),
    Column("version", Integer),
    Column("target", String(1024)),
    Column("before", Text),
    Column("after", Text),
    Column("request_id", String(64)),
    Column("client", String(256)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_model_id_seq", "model_id", "seq"),
    Index("ix_audit_events_at", "at"),
    Index("ix_audit_events_actor_seq", "actor", "seq"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Scan results are a property of the bytes: one row per blob digest and scanner version.
blob_scans = Table(
    "blob_scans",
    metadata,
    Column("digest", String(71), primary_key=True),
    Column("scanner", String(64), primary_key=True),
    Column("format", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # clean | flagged | error
    Column("findings", Text, nullable=False, server_default="[]"),
    Column("scanned_at", BigInteger, nullable=False),
)

# The verdict for a version as a whole, and what the policy did with it.
version_scans = Table(
    "version_scans",
    metadata,
    Column("version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("status", String(16), nullable=False),  # clean | flagged | error
    Column("action", String(16), nullable=False),  # label | quarantine | reject
    Column("quarantined", Boolean, nullable=False, server_default=false()),
    Column("summary", Text, nullable=False, server_default=""),
    Column("scanned_at", BigInteger, nullable=False),
)

model_settings = Table(
    "model_settings",
    metadata,
    Column(
        "model_id", ID, ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("scan_action", String(16)),  # NULL: the instance's policy
    # retention (gc prunes to the newest N): NULL the instance's policy, 0 keep every version
    Column("keep_versions", Integer),
    Column("keep_versions_days", Float),
)

trusted_signers = Table(
    "trusted_signers",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # key | certificate
    Column("material", Text, nullable=False),  # PEM
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256)),
)

version_signatures = Table(
    "version_signatures",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
    Column("verified", Boolean, nullable=False),
    Column("signer", String(256)),  # the trusted signer that verified it
    # material_digest of that signer's PEM when it verified: the verdict counts only while
    # the signer trusted under that name has this very material (not one added since)
    Column("signer_digest", String(71)),
    Column("identity", Text),  # key fingerprint or certificate subject
    Column("digests", Text, nullable=False, server_default="{}"),  # path -> sha256 signed
    Column("message", Text, nullable=False, server_default=""),
    Column("bundle", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256)),
    Index("ix_version_signatures_version_id", "version_id"),
)

# Promotion gates: what moving an alias needs, per model pattern and alias pattern.
alias_policies = Table(
    "alias_policies",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("model_pattern", String(1024), nullable=False),
    Column("alias_pattern", String(255), nullable=False),
    Column("min_role", String(8), nullable=False, server_default="MANAGE"),
    Column("approvals", Integer, nullable=False, server_default="0"),
    Column("conditions", Text, nullable=False, server_default="[]"),  # [{metric, op, value}]
    Column("require_clean_scan", Boolean, nullable=False, server_default=false()),
    Column("require_signature", Boolean, nullable=False, server_default=false()),
    Column("require_compatible", Boolean, nullable=False, server_default=false()),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256)),
    UniqueConstraint("model_pattern", "alias_pattern"),
)

promotion_requests = Table(
    "promotion_requests",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("model_id", ID, ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("alias", String(255), nullable=False),
    Column("requester", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # pending | applied | rejected | cancelled
    Column("comment", Text, nullable=False, server_default=""),
    Column("checks", Text, nullable=False, server_default="[]"),  # last evaluation
    Column("created_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger),
    Index("ix_promotion_requests_status_created", "status", "created_at"),
    Index("ix_promotion_requests_model_id", "model_id", "alias"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column(
        "request_id", ID, ForeignKey("promotion_requests.id", ondelete="CASCADE"), nullable=False
    ),
    Column("approver", String(256), nullable=False),
    Column("decision", String(8), nullable=False),  # approve | reject
    Column("comment", Text, nullable=False, server_default=""),
    Column("at", BigInteger, nullable=False),
    UniqueConstraint("request_id", "approver"),
)

# Lineage: the inputs of a version (its child end). A dataset or code input is a URI with a
# ref (a dataset's digest or version string, a commit) and a qualifier (a dataset's role);
# a parent version is a row of its own (the qualifier is the relation). ``input_key`` is
# the sha256 of the input's identity, so that recording it again finds it; ``uri_key`` the
# sha256 of the URI, so that "which versions used this dataset" is an index lookup however
# long the URI is.
lineage_inputs = Table(
    "lineage_inputs",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # dataset | code | model_version
    Column("input_key", String(64), nullable=False),
    Column("uri", Text),  # NULL for a parent version
    Column("uri_key", String(64)),
    Column("name", String(256)),
    Column("ref", String(256)),
    Column("qualifier", String(16)),
    Column(
        "parent_version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=True
    ),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256)),
    UniqueConstraint("version_id", "input_key"),
    Index("ix_lineage_inputs_uri_key_id", "uri_key", "id"),
    Index("ix_lineage_inputs_parent_version_id", "parent_version_id"),
)

# Webhooks: where the audited changes to the models of a scope are POSTed (migration 0017).
# ``events`` is ``,action,action,`` and ``scope_key`` a name-key prefix ('' for '*') or,
# with ``scope_exact``, one name key: a trigger on ``audit_events`` matches them in SQL.
# ``secret`` is sealed by the service (``v1:<key id>:...``, migration 0019 made it TEXT).
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("url", String(2048), nullable=False),
    Column("secret", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("scope", String(1024), nullable=False),
    Column("scope_key", String(1024), nullable=False),
    Column("scope_exact", Boolean, nullable=False, server_default=false()),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256)),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_webhooks_active", "active"),
)

# The outbox: one row per (webhook, event), written by that trigger in the transaction of
# the change; the dispatchers claim due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
# ``next_attempt_at`` of a pending row is when it is due; of a finished one (succeeded or
# failed), when it finished: gc deletes those past their retention through the
# (status, next_attempt_at) index.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("uid", String(36), nullable=False, unique=True),  # Cairn-Delivery
    Column("webhook_id", ID, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(64), nullable=False),
    Column("event_seq", BigInteger),  # the audit event (None: a ping)
    Column("payload", Text),  # JSON; filled from the audit event when first claimed
    Column("status", String(16), nullable=False),  # pending | succeeded | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("claimed_until", BigInteger),
    Column("last_status", Integer),
    Column("last_error", String(512)),
    Column("redelivery_of", String(36)),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger),
    Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
)

# -- deployments and monitoring feedback (migration 0018) -------------------------------

# Where versions run: one row per named target, the version of one model it serves now.
deployments = Table(
    "deployments",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("name_key", String(256), nullable=False, unique=True),
    Column("environment", String(64), nullable=False),
    Column("url", String(2048)),
    Column("model_id", ID, ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer),  # NULL: retired
    Column("alias", String(255)),  # the alias the version was given through
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("created_by", String(256)),
    Column("retired_at", BigInteger),
    Index("ix_deployments_model_id_version", "model_id", "version"),
)

# Every change of what a deployment serves; in force from ``at`` until ``until``.
deployment_events = Table(
    "deployment_events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("deployment_id", ID, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False),
    Column("model_id", ID, ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),  # NULL: retired
    Column("alias", String(255)),
    Column("actor", String(256)),
    Column("reason", Text, nullable=False, server_default=""),
    Column("at", BigInteger, nullable=False),
    Column("until", BigInteger),  # the next event's ``at``; NULL: in force
    Index("ix_deployment_events_deployment_id_at", "deployment_id", "at", "id"),
    Index("ix_deployment_events_model_id_to_version_at", "model_id", "to_version", "at"),
)

# Monitoring feedback, each point linked to the version its deployment served at ``at``.
feedback_points = Table(
    "feedback_points",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("deployment_id", ID, ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False),
    Column("model_id", ID, ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("labels", Text),  # JSON object, NULL when empty
    Index("ix_feedback_points_deployment_id_at", "deployment_id", "at", "id"),
    Index("ix_feedback_points_model_id_version_key_at", "model_id", "version", "key", "at"),
)
