"""Cairn: a model registry.

``cairn.Client(uri)`` talks to a server (``http(s)://…``) or works in-process on a data
directory, with the same methods and the same exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from cairn.client import Client


def __getattr__(name: str) -> Any:
    if name == "Client":
        from cairn.client import Client

        return Client
    raise AttributeError(name)
