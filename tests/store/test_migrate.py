"""Migrations on both engines: empty → head, idempotent, newer-than-code refused."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from cairn.domain.models import SYSTEM
from cairn.errors import SchemaMismatch
from cairn.service.registry import RegistryService
from cairn.settings import Settings
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.metadata import migrate
from cairn.store.metadata.database import Database
from cairn.store.metadata.schema import metadata


def test_database_is_at_head_and_upgrade_is_idempotent(db: Database) -> None:
    assert migrate.current_revision(db) == migrate.head_revision()
    migrate.upgrade(db)
    migrate.check_schema(db)


def test_head_names_the_newest_migration() -> None:
    """``migrate.HEAD``, which lets a start skip Alembic, is the migrations folder's head."""
    assert migrate._script().get_current_head() == migrate.HEAD


def test_the_migrations_build_what_schema_py_declares(db: Database) -> None:
    """Alembic's autogenerate finds nothing to add or drop between the migrated database
    and ``schema.py``: tables, columns, indexes and constraints agree. SQLite cannot
    reflect expression indexes (the tag and param value indexes), PostgreSQL compares
    them too; ``identity_changes`` is SQLite's own change counter (migration 0007)."""
    with db.engine.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*expression-based index")
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    sqlite_own = (
        [("remove_table", "identity_changes")] if db.engine.dialect.name == "sqlite" else []
    )
    assert [(d[0], d[1].name) if d[0] == "remove_table" else d for d in differences] == sqlite_own


def test_newer_database_is_refused(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaMismatch, match="newer Cairn"):
        migrate.upgrade(db)
    with pytest.raises(SchemaMismatch):
        migrate.check_schema(db)
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE alembic_version SET version_num = :v"), {"v": migrate.head_revision()}
        )


def test_another_applications_database_is_refused_as_not_cairns(db: Database) -> None:
    """An MLflow database (or any other Alembic-managed one) holds a revision such as
    ``dc11669786a5``: refused as not Cairn's, not taken for a newer Cairn's (upgrading
    Cairn would not help), and left as it was."""
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'dc11669786a5'"))
    try:
        for call in (migrate.upgrade, migrate.check_schema):
            with pytest.raises(SchemaMismatch) as refused:
                call(db)
            assert "newer Cairn" not in refused.value.message
            assert "not a Cairn database" in refused.value.message
            assert "dc11669786a5" in refused.value.message
        assert migrate.current_revision(db) == "dc11669786a5"
    finally:
        with db.engine.begin() as conn:
            conn.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": migrate.head_revision()}
            )


def test_unmigrated_database_refused_under_migrate_false_says_how(db: Database) -> None:
    """With CAIRN_MIGRATE=false a database with no Cairn schema is refused; the message
    names ``cairn db upgrade`` and does not send the operator back to the start that just
    refused it."""
    with db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE alembic_version RENAME TO alembic_version_aside"))
    try:
        with pytest.raises(SchemaMismatch) as refused:
            migrate.check_schema(db)
        assert "cairn db upgrade" in refused.value.message
        assert "CAIRN_MIGRATE" in refused.value.message
        assert "start the server" not in refused.value.message
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE alembic_version_aside RENAME TO alembic_version"))


def test_tables_without_a_cairn_revision_are_refused_not_migrated_over(db: Database) -> None:
    """A database that holds Cairn's tables but no revision (its ``alembic_version`` lost,
    or another application's tables of the same names: ``users``, ``groups``, ``tokens``)
    is refused with a clear message instead of failing midway on ``CREATE TABLE``."""
    with db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE alembic_version RENAME TO alembic_version_aside"))
    try:
        with pytest.raises(SchemaMismatch, match="no Cairn schema revision") as refused:
            migrate.upgrade(db)
        assert "alias_events" in refused.value.message
        assert migrate.current_revision(db) is None
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE alembic_version_aside RENAME TO alembic_version"))


def test_another_applications_sqlite_file_is_refused_and_left_alone(tmp_path: object) -> None:
    """A SQLite file of another application (tables, no ``alembic_version``) is not Cairn's:
    migrating it committed Cairn's first migrations into it, then failed on its ``users``
    table, leaving it half Cairn's. It is refused, and holds what it held."""
    import sqlite3
    from pathlib import Path

    path = Path(str(tmp_path)) / "app.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        raw.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        raw.execute("INSERT INTO users (email) VALUES ('a@example.com')")
    raw.close()
    db = Database(f"sqlite:///{path}")
    try:
        with pytest.raises(SchemaMismatch, match="not a Cairn database"):
            migrate.upgrade(db)
    finally:
        db.dispose()
    with sqlite3.connect(path) as raw:
        tables = raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        assert sorted(name for (name,) in tables) == ["notes", "users"]
    raw.close()


def test_empty_sqlite_database_is_created_on_first_use(tmp_path: object) -> None:
    from pathlib import Path

    from cairn.service.factory import build_service

    data = Path(str(tmp_path)) / "fresh"
    service: RegistryService = build_service(Settings(data_dir=data))
    assert migrate.current_revision(service.db) == migrate.head_revision()
    service.db.dispose()


def test_a_file_that_is_not_sqlite_is_refused_as_such_and_left_alone(tmp_path: object) -> None:
    """``CAIRN_BACKEND_URI`` naming a file that is not a SQLite database (a text file, a
    model's weights): refused as not a database, not as a passing outage to retry
    (TEMPORARILY_UNAVAILABLE) nor with advice about permissions; the file is untouched."""
    from pathlib import Path

    path = Path(str(tmp_path)) / "notes.db"
    path.write_text("these are my notes, not a database\n" * 10)
    before = path.read_bytes()
    db = Database(f"sqlite:///{path}")
    try:
        for call in (migrate.current_revision, migrate.upgrade, migrate.check_schema):
            with pytest.raises(SchemaMismatch, match="is not a SQLite database") as refused:
                call(db)
            assert str(path) in refused.value.message
            assert "may read and write" not in refused.value.message
    finally:
        db.dispose()
    assert path.read_bytes() == before


def test_sqlite_connections_sync_every_commit(tmp_path: object) -> None:
    """WAL with synchronous=FULL: an acknowledged write survives a power cut, not only a crash
    of the process (NORMAL would lose the last commits)."""
    from pathlib import Path

    from cairn.service.factory import build_service

    service: RegistryService = build_service(Settings(data_dir=Path(str(tmp_path)) / "d"))
    try:
        for engine in (service.db._writer, service.db._reader):
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
                assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY
    finally:
        service.db.dispose()


def test_semver_labels_written_before_0012_are_keyed_by_it(db: Database) -> None:
    """Migration 0012 adds ``semver_key`` and fills it for the labels already there."""
    from alembic import command

    with db.engine.connect() as conn:
        command.downgrade(migrate._config(conn), "0011_retention")
        conn.commit()
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO registered_models (name, name_key, description, last_version, "
                "created_at, updated_at) VALUES ('m', 'm', '', 3, 0, 0)"
            )
        )
        for number, label in ((1, "1.10.0"), (2, None), (3, "2.0.0-rc.1+b7")):
            conn.execute(
                text(
                    "INSERT INTO model_versions (model_id, version, status, semver, "
                    "created_at, updated_at) SELECT id, :n, 'READY', :label, 0, 0 "
                    "FROM registered_models WHERE name = 'm'"
                ),
                {"n": number, "label": label},
            )
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        keys = conn.execute(text("SELECT version, semver_key FROM model_versions ORDER BY version"))
        assert [tuple(r) for r in keys] == [
            (1, "0000000001.0000000010.0000000000"),
            (2, None),
            (3, "0000000002.0000000000.0000000000"),
        ]
    migrate.check_schema(db)


def test_0014_adds_blob_tombstones_and_its_downgrade_drops_them(db: Database) -> None:
    """Migration 0014 creates ``blob_tombstones``; down to 0013 and up again round-trips."""
    from alembic import command
    from sqlalchemy import inspect

    with db.engine.connect() as conn:
        command.downgrade(migrate._config(conn), "0013_require_compatible")
        conn.commit()
    assert "blob_tombstones" not in inspect(db.engine).get_table_names()
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()
    assert "blob_tombstones" in inspect(db.engine).get_table_names()
    migrate.check_schema(db)


def test_0017_queues_deliveries_from_the_audit_log_and_its_downgrade_drops_it(
    db: Database, tmp_path: object
) -> None:
    """Migration 0017's trigger queues a delivery for an audited change; down to 0016
    drops it with both tables (audited changes still work), and up again restores it."""
    from pathlib import Path

    from alembic import command
    from sqlalchemy import inspect

    from cairn.service.base import Limits
    from cairn.service.keyring import Keyring

    svc = RegistryService(
        db,
        LocalBlobStore(f"{tmp_path}/blobs"),
        limits=Limits(webhook_allow_private=True),
        keyring=Keyring(key_file=Path(f"{tmp_path}/secret.key")),
    )
    svc.create_webhook(SYSTEM, "hook", "http://127.0.0.1:9/")
    svc.create_model(SYSTEM, "queued")
    with db.engine.connect() as conn:
        command.downgrade(migrate._config(conn), "0016_lineage")
        conn.commit()
    assert {"webhooks", "webhook_deliveries"}.isdisjoint(inspect(db.engine).get_table_names())
    svc.create_model(SYSTEM, "unheard")  # the audit log takes events without the trigger
    migrate.upgrade(db)
    migrate.check_schema(db)
    svc.create_webhook(SYSTEM, "hook", "http://127.0.0.1:9/")
    svc.create_model(SYSTEM, "heard")
    with db.engine.connect() as conn:
        events = conn.execute(text("SELECT event FROM webhook_deliveries")).scalars().all()
    assert events == ["model.create"]  # 'heard': nothing queued while it was gone
    assert [d.payload["model"] for d in svc.list_webhook_deliveries(SYSTEM, "hook").items] == [
        "heard"
    ]


def test_0015_attributes_existing_signatures_to_the_material_that_verified_them(
    db: Database,
) -> None:
    """Migration 0015 adds ``signer_digest``: a key signer's signature is attributed when its
    identity is that key's fingerprint (not one the old key gave), a certificate signer's
    when the signer is no newer than it; nothing else is."""
    import hashlib

    from alembic import command
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from cairn.domain.signatures import material_digest
    from cairn.store.metadata.signatures_store import SignatureStore

    def key_pem_and_fingerprint() -> tuple[str, str]:
        public = ec.generate_private_key(ec.SECP256R1()).public_key()
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem, "sha256:" + hashlib.sha256(der).hexdigest()

    with db.engine.connect() as conn:
        command.downgrade(migrate._config(conn), "0014_blob_tombstones")
        conn.commit()
    new_pem, new_fingerprint = key_pem_and_fingerprint()
    _, old_fingerprint = key_pem_and_fingerprint()
    ca_pem = "-----BEGIN CERTIFICATE-----\nnot parsed by the migration\n-----END CERTIFICATE-----\n"
    files = '{"a":"sha256:' + "0" * 64 + '"}'
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO registered_models (name, name_key, description, last_version, "
                "created_at, updated_at) VALUES ('m', 'm', '', 1, 0, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO model_versions (model_id, version, status, created_at, updated_at) "
                "SELECT id, 1, 'READY', 0, 0 FROM registered_models WHERE name = 'm'"
            )
        )
        conn.execute(
            text(
                "INSERT INTO version_files (version_id, path, size, digest) "
                "SELECT id, 'a', 1, :d FROM model_versions"
            ),
            {"d": "sha256:" + "0" * 64},
        )
        conn.execute(
            text(
                "INSERT INTO trusted_signers (name, kind, material, created_at) VALUES "
                "('release', 'key', :key, 500), ('corp-ca', 'certificate', :ca, 500)"
            ),
            {"key": new_pem, "ca": ca_pem},
        )
        # (signer, identity, created_at): by the new key (before or after it was added: a
        # clock behind), by the old key after the new one was added, by the CA after and
        # before it was added, and one whose signer is gone
        for signer, identity, at in (
            ("release", new_fingerprint, 400),
            ("release", old_fingerprint, 900),
            ("corp-ca", "CN=bot", 900),
            ("corp-ca", "CN=bot", 100),
            ("gone", "CN=bot", 900),
        ):
            conn.execute(
                text(
                    "INSERT INTO version_signatures (version_id, verified, signer, identity, "
                    "digests, message, bundle, created_at) SELECT id, :t, :signer, :identity, "
                    ":files, '', '{}', :at FROM model_versions"
                ),
                {"t": True, "signer": signer, "identity": identity, "files": files, "at": at},
            )
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT signer_digest FROM version_signatures ORDER BY id"))
        assert [r[0] for r in rows] == [
            material_digest(new_pem),
            None,
            material_digest(ca_pem),
            None,
            None,
        ]
        version_id = conn.execute(text("SELECT id FROM model_versions")).scalar_one()
        assert SignatureStore(conn).has_verified(version_id)
    migrate.check_schema(db)


def test_0015_drops_the_stored_characters_of_a_bootstrap_token_in_another_format(
    db: Database,
) -> None:
    """A CAIRN_BOOTSTRAP_TOKEN not in the cairn_ format had its first 14 characters stored
    as its prefix, a part of the secret; migration 0015 stores '(external)' instead."""
    from alembic import command

    from cairn.domain.tokens import EXTERNAL_PREFIX

    with db.engine.connect() as conn:
        command.downgrade(migrate._config(conn), "0014_blob_tombstones")
        conn.commit()
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (name, name_key, kind, is_admin, created_at) "
                "VALUES ('admin', 'admin', 'user', :t, 0)"
            ),
            {"t": True},
        )
        for n, prefix in enumerate(("correct-horse-", "cairn_AbCdEfGh", EXTERNAL_PREFIX)):
            conn.execute(
                text(
                    "INSERT INTO tokens (user_id, kind, name, prefix, secret_hash, scope, "
                    "created_at) SELECT id, 'api', 'bootstrap', :prefix, :hash, 'admin', 0 "
                    "FROM users"
                ),
                {"prefix": prefix, "hash": str(n) * 64},
            )
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT prefix FROM tokens ORDER BY id"))
        assert [r[0] for r in rows] == [EXTERNAL_PREFIX, "cairn_AbCdEfGh", EXTERNAL_PREFIX]


def test_a_migration_that_rebuilds_a_table_keeps_the_rows_that_reference_it(
    db: Database,
) -> None:
    """On SQLite a batch operation that cannot ALTER in place rebuilds the table (copy,
    DROP, rename); with foreign keys on, the DROP cascaded to every row referencing it.
    0012's downgrade rebuilds ``model_versions``: a version's tags, params, metrics and
    files stay, and foreign keys are on again for the connection afterwards."""
    from alembic import command

    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO registered_models (name, name_key, created_at, updated_at) "
                "VALUES ('m', 'm', 0, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO model_versions (model_id, version, status, created_at, updated_at) "
                "SELECT id, 1, 'READY', 0, 0 FROM registered_models"
            )
        )
        for table, value in (
            ("version_tags", "'v'"),
            ("version_params", "'p'"),
            ("version_metrics", "0.5"),
        ):
            conn.execute(
                text(
                    f"INSERT INTO {table} (version_id, key, value) "
                    f"SELECT id, 'k', {value} FROM model_versions"
                )
            )
        conn.execute(
            text(
                "INSERT INTO version_files (version_id, path, size, digest) "
                "SELECT id, 'model.pkl', 1, 'sha256:' || 'ab' FROM model_versions"
            )
        )
    with db.engine.connect() as conn:
        command.downgrade(migrate._config(conn), "0011_retention")
        conn.commit()
        if db.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        for table in ("version_tags", "version_params", "version_metrics", "version_files"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1, table
    migrate.check_schema(db)


def _migration(name: str) -> object:
    """A migration file's module, loaded by path (its name starts with a digit)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"_migration_{name}", migrate._MIGRATIONS / "versions" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migrations_import_no_code_of_cairns_that_may_change() -> None:
    """A migration writes what it wrote the day it was made: it copies the logic it needs
    (0012 its ``order_key``, 0015 its ``material_digest``) instead of importing live code,
    whose later change would silently change what an old migration writes."""
    import ast

    for path in sorted((migrate._MIGRATIONS / "versions").glob("[0-9]*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not [n for n in names if n == "cairn" or n.startswith("cairn.")], path.name


def test_0012_s_frozen_order_key_is_today_s() -> None:
    """0012 keys labels with its own copy of ``order_key``: while the two are meant to
    agree, they do (a change to the live one must decide whether a new migration re-keys)."""
    from cairn.domain.semver import order_key

    frozen = _migration("0012_semver_key")._order_key  # type: ignore[attr-defined]
    labels = [
        None,
        "",
        "0.0.0",
        "1.10.0",
        "1.9.3",
        "2.0.0-rc.1+b7",
        "1.0.0+build.5",
        "1.0.0-alpha.beta.1",
        "10.20.30",
        "9999999999.0.1",
        "12345678901.2.3",
        "1.2.99999999999",
        "01.2.3",
        "1.2",
        "v1.2.3",
        "1.2.3-",
        "1.2.3-01",
        "1.2.3-x.7.z.92",
        "1.2.3\n",
        "1.2.\u0661",
        "not a version",
    ]
    for label in labels:
        assert frozen(label) == order_key(label), label


def test_0015_s_frozen_material_digest_is_today_s() -> None:
    from cairn.domain.signatures import material_digest

    frozen = _migration("0015_signer_digest")._material_digest  # type: ignore[attr-defined]
    for material in ("", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "é"):
        assert frozen(material) == material_digest(material)


def _folder(path: object) -> dict[str, bytes]:
    """Every file of a folder by name, with its bytes."""
    from pathlib import Path

    return {p.name: p.read_bytes() for p in sorted(Path(str(path)).iterdir())}


def _foreign_sqlite(path: object, revision: str | None) -> None:
    """A SQLite file of another application, in its own (rollback) journal mode: tables,
    and an ``alembic_version`` row if ``revision``."""
    import sqlite3

    raw = sqlite3.connect(str(path))
    with raw:
        raw.execute("CREATE TABLE experiments (id INTEGER PRIMARY KEY, name TEXT)")
        raw.execute("INSERT INTO experiments (name) VALUES ('Default')")
        if revision is not None:
            raw.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
            raw.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    raw.close()


@pytest.mark.parametrize(
    "revision", [None, "dc11669786a5", "9999_from_the_future"], ids=["none", "mlflow", "newer"]
)
def test_a_refused_sqlite_file_is_left_byte_for_byte_with_no_file_beside_it(
    tmp_path: object, revision: str | None
) -> None:
    """Opening another application's SQLite file (or a newer Cairn's) to refuse it switched
    it to WAL for good and left ``-writer.lock`` and ``.migrate.lock`` files beside it, even
    for a look at its revision. It is read read-only before anything writes: refused, and the
    folder holds exactly what it held, the file in its own journal mode."""
    import sqlite3
    from pathlib import Path

    folder = Path(str(tmp_path)) / "other"
    folder.mkdir()
    path = folder / "app.db"
    _foreign_sqlite(path, revision)
    before = _folder(folder)
    db = Database(f"sqlite:///{path}")
    try:
        assert migrate.current_revision(db) == revision
        for call in (migrate.upgrade, migrate.check_schema):
            with pytest.raises(SchemaMismatch):
                call(db)
    finally:
        db.dispose()
    assert _folder(folder) == before
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    raw.close()


def test_a_start_under_migrate_false_where_no_database_is_creates_none(tmp_path: object) -> None:
    """With CAIRN_MIGRATE=false a start is refused where there is no database; it made an
    empty SQLite file there first (then refused it as unmigrated)."""
    from pathlib import Path

    from cairn.service.factory import build_service

    data = Path(str(tmp_path)) / "data"
    with pytest.raises(SchemaMismatch, match="cairn db upgrade"):
        build_service(Settings(data_dir=data, migrate=False))
    assert list(data.iterdir()) == []


def _hot_journal(path: object) -> None:
    """A SQLite file of another application left by a writer that crashed mid-transaction:
    its rollback journal is hot, so even a read must first roll it back (a write)."""
    import shutil
    import sqlite3
    from pathlib import Path

    scratch = Path(str(path)).with_name("scratch.db")
    raw = sqlite3.connect(scratch, isolation_level=None)
    raw.execute("PRAGMA cache_size=5")  # the change spills into the file before COMMIT
    raw.execute("CREATE TABLE experiments (id INTEGER PRIMARY KEY, blob BLOB)")
    raw.execute(
        "INSERT INTO experiments (blob) SELECT randomblob(500) FROM (WITH RECURSIVE "
        "r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 2000) SELECT i FROM r)"
    )
    raw.execute("BEGIN")
    raw.execute("UPDATE experiments SET blob = randomblob(500)")
    shutil.copyfile(scratch, str(path))  # the crash: the file and its journal, as they are
    shutil.copyfile(f"{scratch}-journal", f"{path}-journal")
    raw.execute("ROLLBACK")
    raw.close()
    scratch.unlink()


def _log_without_its_index(path: object) -> None:
    """A SQLite file of another application in WAL mode, its log not yet checkpointed and
    no ``-shm`` index beside it (copied, or restored from a backup): reading it in place
    makes that index file."""
    import shutil
    import sqlite3
    from pathlib import Path

    scratch = Path(str(path)).with_name("scratch.db")
    raw = sqlite3.connect(scratch, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA wal_autocheckpoint=0")
    raw.execute("CREATE TABLE experiments (id INTEGER PRIMARY KEY, name TEXT)")
    raw.execute("INSERT INTO experiments (name) VALUES ('Default')")
    shutil.copyfile(scratch, str(path))
    shutil.copyfile(f"{scratch}-wal", f"{path}-wal")
    raw.close()
    scratch.unlink()


@pytest.mark.parametrize("make", [_hot_journal, _log_without_its_index], ids=["hot", "wal"])
def test_a_sqlite_file_that_cannot_be_read_in_place_is_refused_untouched(
    tmp_path: object, make: Callable[[object], None]
) -> None:
    """Where the read-only look at a file cannot read it in place without writing (a hot
    journal to roll back, a log whose index must be made), it fell back to Cairn's own
    connection, which rolled the journal back (or made the index) and switched the file
    to WAL before refusing it. The look now reads a copy of it elsewhere: refused, and
    the folder holds exactly what it held."""
    import sqlite3
    from pathlib import Path

    folder = Path(str(tmp_path)) / "other"
    folder.mkdir()
    path = folder / "app.db"
    make(path)
    before = _folder(folder)
    if make is _hot_journal:  # what made the look give up in place
        raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        with pytest.raises(sqlite3.DatabaseError):
            raw.execute("SELECT count(*) FROM sqlite_master").fetchone()
        raw.close()
        assert _folder(folder) == before
    db = Database(f"sqlite:///{path}")
    try:
        assert migrate.current_revision(db) is None
        for call in (migrate.upgrade, migrate.check_schema):
            with pytest.raises(SchemaMismatch):
                call(db)
    finally:
        db.dispose()
    assert _folder(folder) == before


def test_a_damaged_sqlite_file_is_refused_untouched(tmp_path: object) -> None:
    """A file whose schema page is damaged cannot be looked at at all: it is refused with
    SQLite's reason, and never opened by Cairn's own connection (which would have
    switched it to WAL first)."""
    import sqlite3
    from pathlib import Path

    from cairn.errors import Unavailable

    folder = Path(str(tmp_path)) / "other"
    folder.mkdir()
    path = folder / "app.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE experiments (id INTEGER PRIMARY KEY, name TEXT)")
    raw.commit()
    raw.close()
    damaged = bytearray(path.read_bytes())
    damaged[100] = 0xFF  # the schema table's page header
    path.write_bytes(bytes(damaged))
    before = _folder(folder)
    db = Database(f"sqlite:///{path}")
    try:
        for call in (migrate.current_revision, migrate.upgrade, migrate.check_schema):
            with pytest.raises(Unavailable, match="malformed"):
                call(db)
    finally:
        db.dispose()
    assert _folder(folder) == before


def test_a_cairn_database_restored_without_its_log_index_is_read_and_used(
    tmp_path: object, sqlite_template: object
) -> None:
    """Cairn's own database copied with its not yet checkpointed log but not its ``-shm``
    (a backup taken while the server ran) is read through a copy, found at HEAD, and
    used: what the log holds is there."""
    import shutil
    from pathlib import Path

    live = Path(str(tmp_path)) / "live"
    live.mkdir()
    shutil.copyfile(str(sqlite_template), live / "cairn.db")
    db = Database(f"sqlite:///{live / 'cairn.db'}")
    RegistryService(db, LocalBlobStore(live / "blobs")).create_model(SYSTEM, "kept-in-the-log")
    restored = Path(str(tmp_path)) / "restored"
    restored.mkdir()
    shutil.copyfile(live / "cairn.db", restored / "cairn.db")
    shutil.copyfile(live / "cairn.db-wal", restored / "cairn.db-wal")
    db.dispose()
    before = _folder(restored)
    again = Database(f"sqlite:///{restored / 'cairn.db'}")
    try:
        assert migrate.current_revision(again) == migrate.HEAD
        assert _folder(restored) == before  # the look made nothing beside it
        migrate.upgrade(again)
        service = RegistryService(again, LocalBlobStore(restored / "blobs"))
        assert service.get_model(SYSTEM, "kept-in-the-log").name == "kept-in-the-log"
    finally:
        again.dispose()


def test_0016_adds_lineage_inputs_and_its_downgrade_drops_them(db: Database) -> None:
    """Migration 0016 creates ``lineage_inputs``; down to 0015 and up again round-trips."""
    from alembic import command
    from sqlalchemy import inspect

    with db.engine.connect() as conn:
        command.downgrade(migrate._config(conn), "0015_signer_digest")
        conn.commit()
    assert "lineage_inputs" not in inspect(db.engine).get_table_names()
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()
    indexes = {i["name"] for i in inspect(db.engine).get_indexes("lineage_inputs")}
    assert {"ix_lineage_inputs_uri_key_id", "ix_lineage_inputs_parent_version_id"} <= indexes
    migrate.check_schema(db)
