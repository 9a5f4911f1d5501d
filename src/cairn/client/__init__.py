"""``cairn.Client(uri)``: the Python SDK.

``uri`` is an ``http(s)://`` Cairn server or a local data directory (used in-process,
no server needed). Both give the same methods and raise the same ``cairn.errors``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cairn.client.base import BaseClient
from cairn.client.http import HttpClient

DEFAULT_URI = "http://127.0.0.1:8080"

__all__ = ["BaseClient", "Client", "HttpClient"]


def Client(  # noqa: N802 (reads as a class to users)
    uri: str | os.PathLike[str] | None = None,
    *,
    token: str | None = None,
    **kwargs: Any,
) -> BaseClient:
    """Open a client on ``uri`` (default ``$CAIRN_URI`` or ``http://127.0.0.1:8080``)."""
    target = os.fspath(uri) if uri is not None else os.environ.get("CAIRN_URI", DEFAULT_URI)
    if target.startswith(("http://", "https://")):
        return HttpClient(target, token=token or os.environ.get("CAIRN_TOKEN"), **kwargs)
    if target.startswith("file://"):
        target = target[len("file://") :]
    from cairn.client.local import LocalClient  # lazy: pulls in the service layer

    return LocalClient(Path(target), **kwargs)
