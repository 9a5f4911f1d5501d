"""What a long piece of work (a transfer, a scrub) reports as it goes: the CLI draws it as
a Rich bar, the SDK ignores it unless given one. Implementations must be thread-safe:
work done several at a time reports from several threads."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def begin(self, description: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def end(self) -> None: ...


class NoProgress:
    def begin(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def end(self) -> None:
        pass
