"""``cairn.Client(uri)``: the Python SDK.

``uri`` is an ``http(s)://`` Cairn server or a local data directory (used in-process,
no server needed). Both give the same methods and raise the same ``cairn.errors``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cairn.client.base import BaseClient
from cairn.client.http import HttpClient
from cairn.domain.tokens import ADMIN_TOKEN_FILE
from cairn.errors import InvalidParameter

DEFAULT_URI = "http://127.0.0.1:8080"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")  # RFC 3986's scheme, in any case

__all__ = ["BaseClient", "Client", "HttpClient"]


def Client(  # noqa: N802 (reads as a class to users)
    uri: str | os.PathLike[str] | None = None,
    *,
    token: str | None = None,
    **kwargs: Any,
) -> BaseClient:
    """Open a client on ``uri`` (default ``$CAIRN_URI`` or ``http://127.0.0.1:8080``)."""
    target = os.fspath(uri) if uri is not None else os.environ.get("CAIRN_URI", DEFAULT_URI)
    scheme = _SCHEME.match(target)
    kind = scheme.group(1).lower() if scheme else None
    if kind in ("http", "https"):
        token = token or os.environ.get("CAIRN_TOKEN") or local_admin_token(target)
        return HttpClient(target, token=token, **kwargs)
    if kind == "file":
        target = target[len("file://") :]
    elif kind is not None:  # ftp://, s3://, a misspelt htp://: not a folder to create
        raise InvalidParameter(
            f"{target!r} is neither a Cairn server (http://, https://) nor a data directory "
            "(a path, or file://PATH)"
        )
    from cairn.client.local import LocalClient  # lazy: pulls in the service layer

    return LocalClient(Path(target), **kwargs)


def local_admin_token(uri: str) -> str | None:
    """The admin token a server on this machine wrote to its data directory, if readable.

    Only for loopback servers: ``$CAIRN_DATA_DIR/admin.token``, else ``./cairn-data/admin.token``
    (the server's defaults), so a newcomer on the server's machine types no token.
    """
    if urlsplit(uri).hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    data_dir = Path(os.environ.get("CAIRN_DATA_DIR") or "./cairn-data")
    try:
        return (data_dir / ADMIN_TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None
