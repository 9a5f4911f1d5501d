"""``open_blob_store(uri)``: the artifacts URI (``CAIRN_ARTIFACTS_URI``) → a ``BlobStore``.

* ``file:///abs/path`` or a plain path (relative paths are made absolute) → local disk.
* ``s3://bucket[/prefix]`` → S3 or any S3-compatible endpoint, configured by the standard
  variables ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
  ``AWS_ENDPOINT_URL`` and ``AWS_ALLOW_HTTP=true`` (for a plain-HTTP endpoint).
* ``gs://bucket[/prefix]`` (``GOOGLE_SERVICE_ACCOUNT`` …) and ``az://container[/prefix]``
  (``AZURE_STORAGE_ACCOUNT_NAME`` …) → the same object-store backend over obstore's
  ``GCSStore``/``AzureStore``, configured from their standard variables. These use only
  calls every obstore store supports, but unlike S3 they are not exercised by the tests.

The URI only chooses where the store's root is; blob keys inside it come from digests.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from cairn.errors import InvalidParameter
from cairn.store.blobs.base import BlobStore
from cairn.store.blobs.local import LocalBlobStore

_HINT = "use file:///absolute/path, a plain path, s3://bucket/prefix, gs://… or az://…"


def open_blob_store(uri: str) -> BlobStore:
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidParameter(f"artifacts URI {uri!r} is empty; {_HINT}")
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in uri):
        raise InvalidParameter(
            f"artifacts URI {uri!r} contains a control character or a backslash; {_HINT}"
        )
    if "://" not in uri:
        return LocalBlobStore(Path(uri).absolute())
    parts = urlsplit(uri)
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        raise InvalidParameter(f"artifacts URI {uri!r} has a query or fragment; {_HINT}")
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidParameter(f"artifacts URI {uri!r} names a remote host; {_HINT}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise InvalidParameter(f"artifacts URI {uri!r} is not an absolute path; {_HINT}")
        return LocalBlobStore(Path(path))
    if not parts.netloc:
        raise InvalidParameter(f"artifacts URI {uri!r} names no bucket; {_HINT}")
    if scheme in ("s3", "gs", "az"):
        if "//" in parts.path:  # obstore fails it as a generic store error
            raise InvalidParameter(
                f"artifacts URI {uri!r} has an empty segment ('//') in its prefix; {_HINT}"
            )
        from cairn.store.blobs.s3 import S3BlobStore  # obstore, only for an object store

        return S3BlobStore.from_uri(uri)
    raise InvalidParameter(f"artifacts URI {uri!r} has an unsupported scheme; {_HINT}")
