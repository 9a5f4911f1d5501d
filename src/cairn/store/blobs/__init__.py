"""Content-addressed blob storage: the ``BlobStore`` protocol, local and object-store backends."""

from cairn.store.blobs.base import BlobInfo, BlobStore, PresignedPart, UploadStatus
from cairn.store.blobs.factory import open_blob_store
from cairn.store.blobs.local import LocalBlobStore
from cairn.store.blobs.s3 import S3BlobStore

__all__ = [
    "BlobInfo",
    "BlobStore",
    "LocalBlobStore",
    "PresignedPart",
    "S3BlobStore",
    "UploadStatus",
    "open_blob_store",
]
