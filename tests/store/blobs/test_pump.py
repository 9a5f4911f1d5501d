from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cairn.store.blobs.pump import Pump


def test_passes_every_chunk_in_order() -> None:
    chunks = [bytes([i]) * 10 for i in range(50)]
    with Pump(lambda: iter(chunks), depth=2) as received:
        assert list(received) == chunks


def test_source_errors_reach_the_consumer() -> None:
    def source() -> Iterator[bytes]:
        yield b"a"
        raise ValueError("disk on fire")

    with Pump(source) as received, pytest.raises(ValueError, match="disk on fire"):
        list(received)


def test_reads_on_another_thread() -> None:
    seen: list[threading.Thread] = []

    def source() -> Iterator[bytes]:
        seen.append(threading.current_thread())
        yield b"x"

    with Pump(source) as received:
        list(received)
    assert seen and seen[0] is not threading.current_thread()


def test_leaving_early_stops_an_endless_source() -> None:
    stopped = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * 1024
        finally:
            stopped.set()

    pump = Pump(endless, depth=2)
    with pump as received:
        assert next(iter(received)) == b"x" * 1024
    assert stopped.wait(5)
