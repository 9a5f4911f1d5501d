"""The metadata schema: one definition for SQLite and PostgreSQL.

Times are integers: microseconds since the Unix epoch, UTC. They sort and compare the
same on both engines, and "as of" queries need no time-zone arithmetic.
Rows never leave ``store/``: queries turn them into domain values.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
    text,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

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
    Index("ix_model_tags_key_model_id", "key", "model_id"),
)

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
    Index("ix_model_versions_model_stage", "model_id", "stage"),
    Index("ix_model_versions_run_id", "run_id"),
    Index("ix_model_versions_created_at", "created_at", "id"),
    Index("ix_model_versions_updated_at", "updated_at", "id"),
    Index("ix_model_versions_digest", "digest"),
    Index("ix_model_versions_status_created", "status", "created_at"),
)

version_tags = Table(
    "version_tags",
    metadata,
    Column("version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_version_tags_key_version_id", "key", "version_id"),
)

version_params = Table(
    "version_params",
    metadata,
    Column("version_id", ID, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_version_params_key_version_id", "key", "version_id"),
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
