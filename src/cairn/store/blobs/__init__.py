"""Content-addressed blob storage: the ``BlobStore`` protocol, local and object-store backends.

The object-store backend (``cairn.store.blobs.s3.S3BlobStore``) is not imported here: a
registry on local disk never loads obstore (``open_blob_store`` imports it for s3/gs/az).
"""

from cairn.store.blobs.base import BlobInfo, BlobStore, UploadStatus
from cairn.store.blobs.factory import open_blob_store
from cairn.store.blobs.local import LocalBlobStore

__all__ = [
    "BlobInfo",
    "BlobStore",
    "LocalBlobStore",
    "UploadStatus",
    "open_blob_store",
]
