"""How ``test_crash_points.py`` crashes, fails and cuts the power of a use case.

``Steps`` hooks every way a change reaches the database (statements through SQLAlchemy
or ``prepared.driver_execute``, commits) or storage (the local blob store's ``os`` calls,
Cairn's own syncs of SQLite's write-ahead log, the S3 store's ``obstore`` requests) and,
just before the k-th, dies (``os._exit``), raises what a full disk or a failing S3
raises, or carries on. A ``Journal`` records every sync the child completes, from which
``lose_power`` works out what a power loss could take. A ``Registry`` is a database
(SQLite file or PostgreSQL rows) and a blob store (``Folder`` or ``Bucket``) that can be
saved and put back between runs. ``crash_everywhere`` and ``fail_everywhere`` run a use
case with each step in turn failing and check what must hold after it (``check``).
"""

from __future__ import annotations

import errno
import importlib
import itertools
import json
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import signal
import sqlite3
import stat
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import obstore
import obstore.exceptions
import psycopg
import pytest
from sqlalchemy import Connection, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from cairn import fileio
from cairn.domain.models import Actor, VersionStatus
from cairn.errors import CairnError, Conflict
from cairn.service.base import Limits
from cairn.service.registry import RegistryService
from cairn.store.blobs import layout, local, localfs, localio, s3
from cairn.store.blobs.base import BlobStore
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.blobs.s3 import S3BlobStore
from cairn.store.metadata import database, engines, one_trip, prepared, wal_sync
from cairn.store.metadata.clock import now_us
from cairn.store.metadata.database import Database
from cairn.store.metadata.schema import metadata

ACTOR = Actor("crash", is_admin=True)
CRASHED = 77  # the child's exit status when it died at the step asked
MAX_STEPS = 200
US = 1_000_000
# os functions of the local blob store that change the file system (``open`` when it
# creates or truncates): a crash can come before any of them
CHANGES = {
    *("write", "writev", "fsync", "fdatasync", "replace", "rename", "unlink", "rmdir", "mkdir"),
    "fchmod",
}
CREATES = os.O_CREAT | os.O_TRUNC
# the modules whose ``os`` a step comes before: the local blob store's, and the syncs of
# SQLite's write-ahead log that Cairn makes itself
FILE_MODULES = (local, localfs, localio, fileio, wal_sync)
SQL_MODULES = (prepared, one_trip, engines, database)


# -- the crash -----------------------------------------------------------------------------


class Steps:
    """Counts the steps the main thread takes and, just before the k-th, dies (``fail``
    None: a crash) or raises what ``fail`` makes of the step's kind (``"sql"``, ``"fs"``).
    A crash counts only changes (see ``changes``); a failure, reads too."""

    def __init__(
        self,
        at: int | None,
        fail: Callable[[str], Exception] | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.at = at
        self.fail = fail
        self.journal = journal
        self.taken = 0

    def step(self, kind: str) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # the WAL checkpointer's, say: not the use case's
        self.taken += 1
        if self.taken == self.at:
            if self.fail is None:
                os._exit(CRASHED)
            raise self.fail(kind)

    def counts(self, sql: str) -> bool:
        verb = sql.lstrip()[:7].upper()
        return not verb.startswith("PRAGMA") and (self.fail is not None or changes(sql))

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Hook every way a statement reaches the database or a change the blob folder."""

        def statement(_conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
            if self.counts(sql):
                self.step("sql")

        def commit(_conn: Any) -> None:
            if self.fail is None:  # a failing commit is a failing statement's business
                self.step("sql")

        run = prepared.driver_execute

        def driver_execute(conn: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
            if self.counts(sql):
                try:
                    self.step("sql")
                except conn.dialect.loaded_dbapi.Error as exc:  # as the real one wraps it
                    raise DBAPIError.instance(
                        sql, args, exc, conn.dialect.loaded_dbapi.Error
                    ) from exc
            return run(conn, sql, *args, **kwargs)

        event.listen(Engine, "before_cursor_execute", statement)
        event.listen(Engine, "commit", commit)
        with pytest.MonkeyPatch.context() as patch:
            for module in SQL_MODULES:
                patch.setattr(module, "driver_execute", driver_execute)
            for module in FILE_MODULES:
                patch.setattr(module, "os", _Os(self))
            patch.setattr(s3, "obstore", _Obstore(self))
            try:
                yield
            finally:
                event.remove(Engine, "before_cursor_execute", statement)
                event.remove(Engine, "commit", commit)


def changes(sql: str) -> bool:
    """Whether a statement may change what is stored. A crash just before a read leaves
    what a crash before the next change leaves, so reads are not crash steps."""
    return not sql.lstrip()[:7].upper().startswith(("SELECT", "PRAGMA"))


class _Obstore:
    """``obstore`` as the S3 blob store sees it, with a step before each request."""

    def __init__(self, steps: Steps) -> None:
        self._steps = steps

    def __getattr__(self, name: str) -> Any:
        real = getattr(obstore, name)
        if not callable(real):
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self._steps.step("s3")
            return real(*args, **kwargs)

        return call


class _Os:
    """``os`` as the blob store sees it, with a step before each call that changes files."""

    def __init__(self, steps: Steps) -> None:
        self._steps = steps

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name == "open":
            return self._open
        if name not in CHANGES:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self._steps.step("fs")
            result = real(*args, **kwargs)
            if name in ("fsync", "fdatasync") and self._steps.journal is not None:
                self._steps.journal.synced(args[0])
            return result

        return call

    def _open(self, path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & CREATES:
            self._steps.step("fs")
        return os.open(path, flags, *args, **kwargs)


class Journal:
    """What the child has made durable, appended line by line (unbuffered, so a crash
    loses none of it) for the parent to work out what a power loss would keep: after
    each fsync, the synced file's inode and size, or the synced folder's names."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)

    def synced(self, fd: int) -> None:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            names = {n: os.stat(n, dir_fd=fd, follow_symlinks=False).st_ino for n in os.listdir(fd)}
            entry: dict[str, Any] = {"dir": os.readlink(f"/proc/self/fd/{fd}"), "names": names}
        else:
            entry = {"ino": st.st_ino, "size": st.st_size}
        os.write(self._fd, (json.dumps(entry) + "\n").encode())

    def baseline(self, *folders: Path) -> None:
        """Everything in ``folders`` (and below) as it is now counts as durable."""
        for folder in folders:
            for path in [folder, *folder.rglob("*")]:
                fd = os.open(path, os.O_RDONLY)
                try:
                    self.synced(fd)
                finally:
                    os.close(fd)


def lose_power(registry: Registry, journal: Path) -> None:
    """Leave of the registry's files what a power loss after the child's last step could
    leave: a file or folder whose name no folder sync covered is gone, and what was
    written to a file after its last sync is lost (the write-ahead log's unsynced
    commits with it). The shared-memory index goes too; SQLite rebuilds it."""
    sizes: dict[int, int] = {}
    names: dict[str, dict[str, int]] = {}
    for line in journal.read_text().splitlines():
        entry = json.loads(line)
        if "dir" in entry:
            names[entry["dir"]] = entry["names"]
        else:
            sizes[entry["ino"]] = entry["size"]

    def kept(path: Path) -> bool:
        while path != registry.tmp:
            if names.get(str(path.parent), {}).get(path.name) != path.lstat().st_ino:
                return False
            path = path.parent
        return True

    root = registry.blobs.root  # type: ignore[union-attr]
    everything = sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True)
    wal = registry.tmp / "cairn.db-wal"
    for path in [*everything, root, wal]:
        if not path.exists():
            continue
        if not kept(path):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        elif path.is_file() and path.stat().st_size > sizes.get(path.stat().st_ino, 0):
            os.truncate(path, sizes.get(path.stat().st_ino, 0))
    (registry.tmp / "cairn.db-shm").unlink(missing_ok=True)


# -- one registry, copied and restored per crash -------------------------------------------


Dump = tuple[dict[str, list[tuple[Any, ...]]], dict[str, tuple[int, bool]]]


class Folder:
    """A local blob store's folder, saved and put back by copying."""

    def __init__(self, tmp: Path) -> None:
        self.root, self._saved = tmp / "blobs", tmp / "saved-blobs"

    def store(self) -> BlobStore:
        return LocalBlobStore(self.root)

    def files(self) -> dict[str, int]:
        """Every file under the root, relative to it, with its size."""
        if not self.root.exists():
            return {}
        found = (p for p in self.root.rglob("*") if p.is_file())
        return {str(p.relative_to(self.root)): p.stat().st_size for p in found}

    def save(self) -> None:
        _copy_tree(self.root, self._saved)

    def restore(self) -> None:
        _copy_tree(self._saved, self.root)


class Bucket:
    """An S3 blob store (moto on loopback), saved and put back object by object."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket
        self._saved: dict[str, tuple[str, bytes]] = {}  # key -> (ETag, bytes)

    def store(self) -> BlobStore:
        return self.store_of(self.bucket)

    @staticmethod
    def store_of(bucket: str) -> BlobStore:
        return S3BlobStore.from_uri(f"s3://{bucket}/reg")

    def _objects(self) -> dict[str, dict[str, Any]]:
        listed = self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {o["Key"].removeprefix("reg/"): o for o in listed}

    def files(self) -> dict[str, int]:
        """Every object under the store's prefix with its size, and every multipart
        upload left open (as ``(multipart) KEY``)."""
        open_ = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        found = {key: o["Size"] for key, o in self._objects().items()}
        return found | {f"(multipart) {u['Key']}": 0 for u in open_}

    def save(self) -> None:
        self._saved = {
            key: (
                o["ETag"],
                self.client.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read(),
            )
            for key, o in self._objects().items()
        }

    def restore(self) -> None:
        """Abort open multipart uploads, delete what is new, put back what changed."""
        for upload in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []):
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        now = self._objects()
        for key in set(now) - set(self._saved):
            self.client.delete_object(Bucket=self.bucket, Key=f"reg/{key}")
        for key, (etag, data) in self._saved.items():
            if key not in now or now[key]["ETag"] != etag:
                self.client.put_object(Bucket=self.bucket, Key=f"reg/{key}", Body=data)


@dataclass
class Registry:
    """A registry's database and blob store, which can be saved and put back as saved."""

    tmp: Path
    url: str
    blobs: Folder | Bucket
    _engine: Engine
    _saved: Dump | None = None

    def service(
        self, *, clock: Callable[[], int] | None = None, sweep: bool = False
    ) -> RegistryService:
        limits = Limits(gc_grace_s=0, pending_timeout_s=0) if sweep else Limits()
        options: dict[str, Any] = {"limits": limits}
        if clock is not None:
            options["clock"] = clock
        return RegistryService(Database(self.url), self.blobs.store(), **options)

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, in a stable order."""
        with self._engine.connect() as conn:
            return {
                t.name: sorted(
                    map(tuple, conn.exec_driver_sql(f"SELECT * FROM {t.name}")), key=repr
                )
                for t in metadata.sorted_tables
            }

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def settle(self) -> None:
        """Wait until PostgreSQL has ended the sessions of a killed child: until then the
        advisory lock a crashed gc or prune took is still held, and the next run of the
        use case (the caller trying again) would be refused as if another were running.
        The server sees the socket close at once, but on a loaded machine its backend
        can take seconds to be scheduled and exit."""
        if self.dialect != "postgresql":
            return
        held = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        deadline = time.monotonic() + 60
        with self._engine.connect() as conn:
            while conn.exec_driver_sql(held).scalar_one():
                assert time.monotonic() < deadline, "a killed child's lock outlived it"
                time.sleep(0.05)
                conn.rollback()  # a fresh snapshot of pg_locks each time

    def reset_sequences(self) -> None:
        """Put PostgreSQL's sequences back as saved (a rolled-back insert keeps the
        number it took)."""
        if self._saved is not None:
            with self._engine.begin() as conn:
                _set_sequences(conn, self._saved[1])

    def save(self) -> None:
        self.blobs.save()
        if self.dialect == "sqlite":
            _copy_sqlite(self.tmp / "cairn.db", self.tmp / "saved.db")
        else:
            self._saved = _dump(self._engine)

    def restore(self) -> None:
        self.blobs.restore()
        if self.dialect == "sqlite":
            _copy_sqlite(self.tmp / "saved.db", self.tmp / "cairn.db")
        else:
            assert self._saved is not None
            _load(self._engine, self._saved)


def _copy_tree(source: Path, to: Path) -> None:
    shutil.rmtree(to, ignore_errors=True)
    if source.exists():
        shutil.copytree(source, to)


def _copy_sqlite(db: Path, to: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        target = Path(f"{to}{suffix}")
        target.unlink(missing_ok=True)
        if Path(f"{db}{suffix}").exists():
            shutil.copy(f"{db}{suffix}", target)


def _dump(engine: Engine) -> Dump:
    """A PostgreSQL database's rows and sequences (far quicker to put back than a copy of
    the database made with CREATE DATABASE ... TEMPLATE, whose DROP waits on a checkpoint)."""
    with engine.connect() as conn:
        rows = {
            t.name: list(map(tuple, conn.exec_driver_sql(f"SELECT * FROM {t.name}")))
            for t in metadata.sorted_tables
        }
        names = (
            conn.exec_driver_sql(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
            )
            .scalars()
            .all()
        )
        sequences = {
            n: tuple(conn.exec_driver_sql(f'SELECT last_value, is_called FROM "{n}"').one())
            for n in names
        }
    return rows, sequences  # type: ignore[return-value]


def _load(engine: Engine, dump: Dump) -> None:
    """Put back a ``_dump`` (DELETE, not TRUNCATE: on tables this small it is ten times
    quicker, as TRUNCATE makes new files)."""
    rows, sequences = dump
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.exec_driver_sql(f"DELETE FROM {table.name}")
        for table in metadata.sorted_tables:
            if rows[table.name]:
                marks = ", ".join(["%s"] * len(rows[table.name][0]))
                conn.exec_driver_sql(f"INSERT INTO {table.name} VALUES ({marks})", rows[table.name])
        _set_sequences(conn, sequences)


def _set_sequences(conn: Connection, sequences: dict[str, tuple[int, bool]]) -> None:
    for name, (value, called) in sequences.items():
        conn.exec_driver_sql("SELECT setval(%s, %s, %s)", (name, value, called))


# -- the run -------------------------------------------------------------------------------


def setup_clock() -> Callable[[], int]:
    start = itertools.count(now_us() - 3600 * US, 1000)
    return lambda: next(start)


def use_case_clock() -> Callable[[], int]:
    """The same times in every run of a use case, after those of its set-up."""
    start = itertools.count(now_us() - 1800 * US, 1000)
    return lambda: next(start)


def child(
    registry: Registry,
    op: Callable[[RegistryService], object],
    crash_at: int | None,
    journal: Path | None = None,
    *,
    case: str | None = None,
) -> int:
    """Run ``op`` in a child process that dies before step ``crash_at`` (None: never),
    keeping a ``Journal`` of its syncs at ``journal`` if given; its exit status: 0
    finished, CRASHED, or 1 when ``op`` raised (its traceback printed).

    On local disk the child is forked from this process. On S3 it cannot be: a fork
    after obstore's runtime has started here hangs in the child's first request. There
    the child comes from a fork server that never touched obstore, and finds ``op`` by
    its use case's name (``case``) in ``test_crash_points.CASES``."""
    if isinstance(registry.blobs, Bucket):
        assert case is not None and journal is None, "S3: crashes by use case name only"
        aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        _start_fork_server()
        spawned = _FORK_SERVER.Process(
            target=_s3_child, args=(registry.url, registry.blobs.bucket, aws, case, crash_at)
        )
        spawned.start()
        spawned.join(90)
        assert spawned.exitcode is not None, f"the child of {case!r} is stuck"
        return spawned.exitcode
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)

        def run() -> None:
            svc = registry.service(clock=use_case_clock())
            synced = None
            if journal is not None:
                synced = Journal(journal)
                synced.baseline(registry.tmp, registry.blobs.root)  # type: ignore[union-attr]
            with Steps(crash_at, journal=synced).installed():
                op(svc)

        _exit_after(run)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


def _exit_after(run: Callable[[], None]) -> None:  # pragma: no cover (the child)
    """The child's end: exit 0 once ``run`` returned, 1 if it raised (traceback printed);
    a crash step exits with CRASHED before. A child stuck on a lock a thread of the
    parent held dies within a minute."""
    status = 1
    try:
        signal.alarm(60)
        run()
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(status)


_FORK_SERVER = multiprocessing.get_context("forkserver")
# imported once, by the fork server: a child starts with Cairn and the use cases loaded
_FORK_SERVER.set_forkserver_preload(["crash_harness", "test_crash_points"])


def _start_fork_server() -> None:
    """Start the fork server (once) with this folder on its path: Python 3.11's fork
    server imports the modules to preload before it takes the caller's ``sys.path``, and
    quietly skips those it cannot find; each child then imported them itself, half a
    second each."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), saved]))
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def _s3_child(
    url: str, bucket: str, aws: dict[str, str], case: str, crash_at: int | None
) -> None:  # pragma: no cover (the child)
    def run() -> None:
        os.environ.update(aws)  # the moto server's endpoint and credentials
        op = importlib.import_module("test_crash_points").CASES[case][1]
        svc = RegistryService(Database(url), Bucket.store_of(bucket), clock=use_case_clock())
        with Steps(crash_at).installed():
            op(svc)

    _exit_after(run)


def masked(rows: dict[str, list[tuple[Any, ...]]], varying: dict[str, set[int]]) -> dict[str, Any]:
    """``rows`` without the columns that differ from one clean run to another (random ids
    and secrets)."""
    return {
        table: sorted(
            (
                tuple("*" if i in varying.get(table, ()) else v for i, v in enumerate(row))
                for row in got
            ),
            key=repr,
        )
        for table, got in rows.items()
    }


def varying_columns(
    a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]]
) -> dict[str, set[int]]:
    """Per table, the columns whose values differ between two clean runs."""
    varying: dict[str, set[int]] = {}
    for table, rows in a.items():
        if rows == b[table]:
            continue
        assert len(rows) == len(b[table]), f"{table}: two clean runs left different row counts"
        width = len(rows[0])
        varying[table] = {
            i
            for i in range(width)
            if sorted(map(repr, (r[i] for r in rows)))
            != sorted(map(repr, (r[i] for r in b[table])))
        }
    return varying


def check(registry: Registry, *, sweep: bool = True) -> None:
    """What must hold after any crash or failure: every blob the database counts is
    there and hashes right, so is every file of every READY version, and the audit chain
    is unbroken. With ``sweep``, then: after gc with no grace (the caller gave up), no
    tombstone is left and the blob folder holds exactly the blobs the database counts."""
    svc = registry.service(sweep=True)
    try:
        report = svc.verify(ACTOR)
        assert not report.corrupt and not report.missing, report
        page_token = None
        while True:
            page = svc.search_versions(
                ACTOR, None, max_results=100, page_token=page_token, include_deleted=True
            )
            for version in page.items:
                if version.status is VersionStatus.READY:
                    for f in version.files:
                        assert svc.blobs.exists(f.digest), (version.name, version.version, f)
            page_token = page.next_page_token
            if not page_token:
                break
        audit = svc.verify_audit(ACTOR)
        assert audit.ok, audit
        if not sweep:
            return
        for _ in range(100):
            try:
                svc.gc(ACTOR, dry_run=False)
                break
            except Conflict:  # a crashed gc's lock, until PostgreSQL sees its session end
                time.sleep(0.05)
        else:
            raise AssertionError("a crashed gc's lock outlived it")
    finally:
        svc.db.dispose()
    rows = registry.rows()
    assert rows["blob_tombstones"] == []  # gc finished what a crashed gc left half done
    counted = {layout.blob_key(digest) for digest, *_ in rows["blobs"]}
    assert set(registry.blobs.files()) == counted


class Checked:
    """Runs ``check`` on the registry's state unless that state was checked already:
    many steps leave the same one behind (every failed read, every crash before the
    first change), and checking it again finds nothing new."""

    def __init__(self, registry: Registry, varying: dict[str, set[int]]) -> None:
        self.registry, self.varying = registry, varying
        self.seen: set[str] = set()

    def __call__(self) -> None:
        files = sorted(self.registry.blobs.files().items())
        state = repr((masked(self.registry.rows(), self.varying), files))
        if state not in self.seen:
            self.seen.add(state)
            check(self.registry)


def prepare(
    registry: Registry,
    setup: Callable[[RegistryService], object],
    op: Callable[[RegistryService], object],
    *,
    fork: bool = True,
    case: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, set[int]]]:
    """Set up and save the registry; the rows before and after a clean run of ``op`` (in
    a child, or with ``fork`` False in this process), both without the columns that
    differ from one clean run to another (random ids, secrets)."""
    svc = registry.service(clock=setup_clock())
    setup(svc)
    svc.db.dispose()
    registry.save()
    before = registry.rows()
    runs = []
    for _ in range(2):
        if fork:
            assert child(registry, op, None, case=case) == 0, "the use case fails on its own"
        else:
            clean = registry.service(clock=use_case_clock())
            try:
                op(clean)
            finally:
                clean.db.dispose()
        runs.append(registry.rows())
        registry.restore()
    varying = varying_columns(*runs)
    return [masked(before, varying), masked(runs[0], varying)], varying


def crash_everywhere(
    registry: Registry,
    setup: Callable[[RegistryService], object],
    op: Callable[[RegistryService], object],
    *,
    whole: bool = True,
    power: bool = False,
    case: str | None = None,
) -> int:
    """Set up, then crash ``op`` at each of its steps in turn (see ``test_crash_points.py``),
    with ``power`` a power loss (``lose_power``); how many steps it took. A use case that
    finished was acknowledged: after a power loss too, all of it must be there. On S3
    the child finds ``op`` by its use case's name, ``case`` (``child``)."""
    expected, varying = prepare(registry, setup, op, case=case)
    checked = Checked(registry, varying)
    journal = registry.tmp / "journal" if power else None

    def crash(k: int | None) -> int:
        registry.restore()
        status = child(registry, op, k, journal, case=case)
        registry.settle()
        if journal is not None:
            lose_power(registry, journal)
        return status

    for k in range(1, MAX_STEPS):
        status = crash(k)
        if status == 0:
            assert not whole or masked(registry.rows(), varying) == expected[1]
            return k - 1
        assert status == CRASHED, f"the use case failed after a crash at step {k}"
        now = masked(registry.rows(), varying)
        if whole:
            assert now in expected, f"crash at step {k}: the database is neither before nor after"
        checked()
        if now == expected[0]:  # not applied: the caller tries again, and it works
            assert crash(k) == CRASHED
            again = registry.service()
            try:
                op(again)
            finally:
                again.db.dispose()
            check(registry, sweep=False)
    raise AssertionError(f"still going after {MAX_STEPS} steps")


def disk_full(dialect: str) -> Callable[[str], Exception]:
    """What a full disk raises: from the database's driver, or from the file system."""

    def make(kind: str) -> Exception:
        if kind == "fs":
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if kind == "s3":  # what obstore raises when S3 answers 503 SlowDown to the end
            return obstore.exceptions.GenericError("injected: 503 Slow Down")
        if dialect == "sqlite":
            return sqlite3.OperationalError("database or disk is full")
        return psycopg.errors.DiskFull("could not extend file: No space left on device")

    return make


def fail_everywhere(
    registry: Registry,
    setup: Callable[[RegistryService], object],
    op: Callable[[RegistryService], object],
    *,
    whole: bool = True,
) -> int:
    """Set up, then fail each step of ``op`` in turn, reads included, as a full disk
    would: the caller gets a Cairn error, the registry is as before (or, for a use case
    of several transactions, consistent), and the same service, its caches and
    connections as the failure left them, then does the use case exactly as a clean run
    does; how many steps it took."""
    expected, varying = prepare(registry, setup, op, fork=False)
    fail = disk_full(registry.dialect)
    checked = Checked(registry, varying)
    for k in range(1, MAX_STEPS):
        registry.restore()
        svc = registry.service(clock=use_case_clock())
        try:
            with Steps(k, fail).installed():
                try:
                    op(svc)
                except CairnError:  # what reaches the caller: a clear error, not a 500
                    failed = True
                else:
                    failed = False
            if not failed:
                assert not whole or masked(registry.rows(), varying) == expected[1]
                return k - 1
            now = masked(registry.rows(), varying)
            if whole:
                assert now in expected, f"failure at step {k}: neither before nor after"
            if now == expected[0]:
                registry.reset_sequences()  # numbers a failed PostgreSQL insert took
                svc.clock = use_case_clock()
                op(svc)
                if whole:
                    assert masked(registry.rows(), varying) == expected[1], f"step {k}"
        finally:
            svc.db.dispose()
        checked()
    raise AssertionError(f"still going after {MAX_STEPS} steps")
