"""Feed an iterable to a consumer from another thread, through a small bounded queue.

obstore's synchronous ``put`` pulls a Python iterator from inside its own async
runtime; an iterator that itself makes a synchronous obstore call there panics with
"Cannot start a runtime from within a runtime". Copying object → object (staged parts
→ the final blob) therefore reads on a helper thread and hands chunks over through
``Pump``. Memory stays bounded by ``depth`` chunks.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Final, cast

_END: Final = object()
_POLL_SECONDS = 0.1


class Pump:
    """``with Pump(make_source) as chunks: consume(chunks)``.

    ``make_source`` is called on the helper thread. Its exceptions are re-raised in the
    consumer; leaving the ``with`` block stops the helper and waits for it.
    """

    def __init__(self, make_source: Callable[[], Iterable[bytes]], depth: int = 4) -> None:
        self._make_source = make_source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cairn-blob-pump", daemon=True)

    def __enter__(self) -> Iterator[bytes]:
        self._thread.start()
        return self._consume()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(_POLL_SECONDS)

    def _offer(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for chunk in self._make_source():
                if not self._offer(chunk):
                    return
            self._offer(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._offer(exc)

    def _consume(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(bytes, item)
