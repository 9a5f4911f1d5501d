"""One SQLite writer at a time, across threads and processes, handed over at once.

SQLite lets one writer in at a time; the others wait in its busy handler, whose back-off
sleeps (up to 100 ms each) made the tail of concurrent creates. Writers queue here
instead: on a thread lock, then on an ``flock`` of a file beside the database
(``<database>-writer.lock``) for other processes (server workers, the CLI), each handed
over as soon as the holder lets go. ``Database.write`` takes it around every SQLite write
transaction. The file is made on the first write, not when the database is opened: a
database only read (``cairn db current``), or refused (another application's), gets no file
beside it.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeGuard


def on_disk(database: str | None) -> TypeGuard[str]:
    """Whether a SQLite URL's database is a plain file path (not in memory, not a URI)."""
    return database not in (None, "", ":memory:") and not database.startswith("file:")


class Busy(Exception):
    """The lock did not come within the time asked (``WriterLock.within``)."""


class WriterLock:
    """One SQLite writer at a time across threads and processes, handed over at once."""

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._fd: int | None = None
        # the lock file, until it is opened (on the first write, under ``_threads``)
        self._path = f"{database}-writer.lock" if on_disk(database) else None

    def _open(self) -> None:
        """Open the lock file if it is not yet open (the caller holds ``_threads``)."""
        if self._fd is not None or self._path is None:
            return
        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:  # a read-only folder: other processes meet at BEGIN IMMEDIATE
            self._path = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            self._open()
        except BaseException:
            self._threads.release()
            raise
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # waits in the kernel, GIL released
            except BaseException:
                self._threads.release()
                raise

    @contextmanager
    def within(self, wait_s: float) -> Iterator[None]:
        """The lock if it comes within ``wait_s``; ``Busy`` (holding nothing) otherwise."""
        deadline = time.monotonic() + wait_s
        if not self._threads.acquire(timeout=wait_s):
            raise Busy
        try:
            self._open()
        except BaseException:
            self._threads.release()
            raise
        if self._fd is not None:
            try:
                _flock_before(self._fd, deadline)
            except BlockingIOError:
                self._threads.release()
                raise Busy from None
            except BaseException:
                self._threads.release()
                raise
        try:
            yield
        finally:
            self.__exit__()

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _flock_before(fd: int, deadline: float) -> None:
    """Take the exclusive ``flock`` on ``fd``, trying until ``deadline`` (monotonic) with
    short sleeps; ``BlockingIOError`` if it is still held elsewhere then."""
    pause = 50e-6
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 100e-6)
