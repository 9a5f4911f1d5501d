"""Files of a version: upload (whole or resumable), finalize, list, download, archive."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import Header, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from cairn.api.deps import Caller, Service, json
from cairn.api.downloads import (
    DOWNLOAD_HEADERS,
    attachment,
    download_headers,
    etag,
    names_etag,
    not_modified,
    parse_range,
)
from cairn.api.lean import lean_router
from cairn.api.streaming import run_with_body
from cairn.api.v1.archive import TarPlan
from cairn.api.v1.schemas import (
    BlobBatchOut,
    BlobReceiptOut,
    FileList,
    FilesRead,
    FileUrls,
    UploadBegin,
    UploadTicketOut,
    VersionOut,
)
from cairn.domain.artifacts import BlobReceipt, UploadTicket
from cairn.domain.blob_batch import MEDIA_TYPE, frames
from cairn.domain.codec import file_to_json, link_to_json, version_to_json
from cairn.domain.models import Actor, VersionStatus
from cairn.errors import InvalidParameter
from cairn.service.base import PRESIGN_SECONDS
from cairn.service.downloads import OpenedFile
from cairn.service.registry import RegistryService

router = lean_router(tags=["artifacts"])
VERSION = "/models/{name}/versions/{version}"
INLINE_BYTES = 256 << 10  # a download this small is read whole in the route, not streamed


def receipt_json(receipt: BlobReceipt) -> dict[str, object]:
    return {
        "digest": receipt.digest,
        "size": receipt.size,
        "stored": receipt.stored,
        "version_status": receipt.version_status.value,
    }


def ticket_json(ticket: UploadTicket) -> dict[str, object]:
    parts = None
    if ticket.parts is not None:
        parts = [
            {
                "offset": p.offset,
                "length": p.length,
                "url": p.url,
                "method": p.method,
                "headers": dict(p.headers),
            }
            for p in ticket.parts
        ]
    return {
        "upload_id": ticket.upload_id,
        "digest": ticket.digest,
        "size": ticket.size,
        "offset": ticket.offset,
        "parts": parts,
    }


@router.get(VERSION + "/missing", response_model=list[str])
def missing_blobs(name: str, version: str, service: Service, actor: Caller) -> JSONResponse:
    """Digests the server still needs before the version can become READY."""
    return json(service.missing_blobs(actor, name, version))


@router.put(VERSION + "/blobs/{digest}", response_model=BlobReceiptOut)
async def put_blob(
    name: str,
    version: str,
    digest: str,
    request: Request,
    service: Service,
    actor: Caller,
) -> JSONResponse:
    """Upload one whole blob of the manifest; the body is verified against the digest."""
    receipt = await run_with_body(
        request, lambda chunks: service.put_blob(actor, name, version, digest, chunks)
    )
    return json(receipt_json(receipt))


@router.post(
    VERSION + "/blobs",
    response_model=BlobBatchOut,
    openapi_extra={
        "requestBody": {"required": True, "content": {MEDIA_TYPE: {"schema": {"type": "string"}}}}
    },
)
async def put_blobs(
    name: str, version: str, request: Request, service: Service, actor: Caller
) -> JSONResponse:
    """Upload several small blobs of the manifest in one request. The body is a sequence of
    frames, each ``sha256:<hex> <size>\\n`` and then exactly ``size`` bytes (at most 1,000
    frames, and no more bytes than the server's request limit). Every blob is checked
    against the manifest's size and its digest before any is stored: a bad one stores none.
    """
    body = await request.body()
    receipts = await anyio.to_thread.run_sync(lambda: service.put_blobs(actor, name, version, body))
    return json({"blobs": [receipt_json(r) for r in receipts]})


@router.post(VERSION + "/uploads", status_code=201, response_model=UploadTicketOut)
def begin_upload(
    name: str, version: str, body: UploadBegin, service: Service, actor: Caller
) -> JSONResponse:
    """Start, or resume, a resumable upload of one blob: answers the offset to send from."""
    return json(ticket_json(service.begin_upload(actor, name, version, body.digest)), 201)


@router.get("/uploads/{upload_id}", response_model=UploadTicketOut)
def upload_status(upload_id: str, service: Service, actor: Caller) -> JSONResponse:
    return json(ticket_json(service.upload_status(actor, upload_id)))


@router.patch("/uploads/{upload_id}", response_model=UploadTicketOut)
async def append_upload(
    upload_id: str,
    request: Request,
    service: Service,
    actor: Caller,
    upload_offset: Annotated[int, Header(alias="Upload-Offset", ge=0)],
) -> JSONResponse:
    """Append the body at ``Upload-Offset`` (which must equal the bytes staged so far)."""
    offset = await run_with_body(
        request, lambda chunks: service.append_upload(actor, upload_id, upload_offset, chunks)
    )
    return json({"upload_id": upload_id, "offset": offset})


@router.post("/uploads/{upload_id}/complete", response_model=BlobReceiptOut)
def complete_upload(upload_id: str, service: Service, actor: Caller) -> JSONResponse:
    return json(receipt_json(service.complete_upload(actor, upload_id)))


@router.delete("/uploads/{upload_id}", status_code=204)
def abort_upload(upload_id: str, service: Service, actor: Caller) -> Response:
    service.abort_upload(actor, upload_id)
    return Response(status_code=204)


@router.post(VERSION + "/finalize", response_model=VersionOut)
def finalize_version(name: str, version: str, service: Service, actor: Caller) -> JSONResponse:
    """Make the version READY once every blob is there (uploads do it by themselves too)."""
    return json(version_to_json(service.finalize_version(actor, name, version)))


@router.get(VERSION + "/files", response_model=FileList)
def list_files(name: str, version: str, service: Service, actor: Caller) -> JSONResponse:
    files = service.list_files(actor, name, version)
    return json({"files": [file_to_json(f) for f in files]})


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_BYTES = {"application/octet-stream": _BINARY}


_FILE_PATH = VERSION + "/files/{path:path}"


@router.get(
    _FILE_PATH,
    response_class=Response,
    responses={
        200: {"description": "The whole file, verified", "content": _BYTES},
        206: {"description": "The bytes the Range asked for", "content": _BYTES},
        304: {"description": "`If-None-Match` names this file's ETag (its digest)"},
        416: {"description": "The Range starts past the end (`Content-Range: bytes */SIZE`)"},
    },
)
def download_file(
    name: str,
    version: str,
    path: str,
    service: Service,
    actor: Caller,
    range: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
    if_range: Annotated[str | None, Header()] = None,
    override_quarantine: bool = False,
) -> Response:
    """Download one file; supports a single ``Range: bytes=a-b``. Whole files are verified.

    The ETag is the file's digest, so it never changes: ``If-None-Match`` with it answers
    304 without a body, and a ``Range`` with an ``If-Range`` other than it (a date, or
    another ETag) gets the whole file (RFC 9110). A version quarantined by its scan is
    refused (403) unless ``override_quarantine=true`` is sent by someone with MANAGE on
    the model; the override is audited. Without a ``Range`` or a condition the file is
    opened once; with one, its size is read first to place it. Up to ``INLINE_BYTES``
    are read (and verified) here, in the route's worker thread, and sent as one body:
    streamed, each chunk would cost a hop to a worker thread, which made a 10 kB
    download take three times as long as reading it."""

    def open_range(start: int, end: int | None) -> OpenedFile:
        override = override_quarantine
        return service.open_file(
            actor, name, version, path, start=start, end=end, override_quarantine=override
        )

    if range is None and if_none_match is None:
        opened = open_range(0, None)
        entry, start, end, partial = opened.entry, 0, opened.entry.size, False
    else:
        entry = open_range(0, 0).entry
        if names_etag(if_none_match, entry.digest):
            return not_modified(entry.digest)
        if if_range is not None and if_range.strip() != etag(entry.digest):
            range = None
        start, end, partial = parse_range(range, entry.size)
        if start >= end and partial:  # no byte of the file asked for (an empty file has none)
            return Response(
                status_code=416,
                headers={"Content-Range": f"bytes */{entry.size}", **DOWNLOAD_HEADERS},
            )
        opened = open_range(start, end)
    headers = download_headers(entry, path, end - start)
    if partial:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{entry.size}"
    status, media = 206 if partial else 200, "application/octet-stream"
    if end - start <= INLINE_BYTES:
        body = b"".join(opened.chunks)
        return Response(body, status_code=status, media_type=media, headers=headers)
    return StreamingResponse(opened.chunks, status_code=status, media_type=media, headers=headers)


@router.head(
    _FILE_PATH,
    response_class=Response,
    responses={
        200: {"description": "The headers a GET would answer with, without the bytes"},
        304: {"description": "`If-None-Match` names this file's ETag (its digest)"},
    },
)
def file_headers(
    name: str,
    version: str,
    path: str,
    service: Service,
    actor: Caller,
    if_none_match: Annotated[str | None, Header()] = None,
    override_quarantine: bool = False,
) -> Response:
    """What a download of the file would answer, without the bytes: its size
    (``Content-Length``), digest (``ETag``, ``Repr-Digest``) and name. Checked as a
    download is (permission, quarantine); no byte is read, so nothing is verified."""
    entry = service.open_file(
        actor, name, version, path, start=0, end=0, override_quarantine=override_quarantine
    ).entry
    if names_etag(if_none_match, entry.digest):
        return not_modified(entry.digest)
    headers = download_headers(entry, path, entry.size)
    return Response(status_code=200, media_type="application/octet-stream", headers=headers)


@router.post(
    VERSION + "/files",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}}, "description": "the files, framed"}},
)
def read_files(
    name: str,
    version: str,
    body: FilesRead,
    service: Service,
    actor: Caller,
    override_quarantine: bool = False,
) -> Response:
    """Download several small files (up to 1 MiB each) in one answer: frames of
    ``sha256:<hex> <size>\\n`` and the bytes, in the order of ``paths``, each verified
    against its digest on the server (the client checks again)."""
    read = service.read_files(
        actor, name, version, body.paths, override_quarantine=override_quarantine
    )
    content = b"".join(frames([(entry.digest, data) for entry, data in read]))
    headers = {**DOWNLOAD_HEADERS, "Content-Disposition": attachment(f"{name}-v{version}.blobs")}
    return Response(content, media_type=MEDIA_TYPE, headers=headers)


@router.post(VERSION + "/urls", response_model=FileUrls)
def file_urls(
    name: str,
    version: str,
    body: FilesRead,
    service: Service,
    actor: Caller,
    override_quarantine: bool = False,
) -> JSONResponse:
    """Direct download links from the object store (S3, GCS, Azure) for up to 1,000 files,
    each valid ``expires_in`` seconds, so the bytes need not pass through this server;
    ``url`` is null for every file when the store has no such links (local disk). The
    server does not see those bytes: check each against its ``digest``."""
    listed = service.file_urls(
        actor, name, version, body.paths, override_quarantine=override_quarantine
    )
    files = [link_to_json(link) for link in listed]
    return json({"expires_in": PRESIGN_SECONDS, "files": files})


@router.get(
    VERSION + "/archive",
    response_class=Response,
    responses={
        200: {
            "description": "Every file of the version in one tar stream",
            "content": {"application/x-tar": _BINARY},
        }
    },
)
def download_archive(
    name: str, version: str, service: Service, actor: Caller, override_quarantine: bool = False
) -> Response:
    """The whole version as one streamed, uncompressed tar archive (a quarantined version
    only with ``override_quarantine=true`` and MANAGE, audited)."""
    plan, headers = _archive(service, actor, name, version, override_quarantine, audit=True)

    def opener(path: str) -> object:
        return service.open_file(
            actor, name, version, path, override_quarantine=override_quarantine
        ).chunks

    return StreamingResponse(
        plan.stream(opener),  # type: ignore[arg-type]
        media_type="application/x-tar",
        headers=headers,
    )


@router.head(
    VERSION + "/archive",
    response_class=Response,
    responses={200: {"description": "The headers the archive would come with, its length"}},
)
def archive_headers(
    name: str, version: str, service: Service, actor: Caller, override_quarantine: bool = False
) -> Response:
    """What a download of the archive would answer, without the bytes: its length and
    name, after the same checks (no byte is read, so a quarantine override through it is
    not audited as a read)."""
    _, headers = _archive(service, actor, name, version, override_quarantine, audit=False)
    return Response(status_code=200, media_type="application/x-tar", headers=headers)


def _archive(
    service: RegistryService,
    actor: Actor,
    name: str,
    version: str,
    override_quarantine: bool,
    *,
    audit: bool,
) -> tuple[TarPlan, dict[str, str]]:
    """The checks of an archive download, its members and its headers."""
    target = service.get_version(actor, name, version)
    if target.status is not VersionStatus.READY:
        raise InvalidParameter(
            f"version {target.version} of {target.name!r} is {target.status.value}, not READY"
        )
    # refused here, before the response starts, not half-way through the stream
    service.check_download(
        actor, name, version, override_quarantine=override_quarantine, audit=audit
    )
    plan = TarPlan.of(service.list_files(actor, name, version), target.created_at.timestamp())
    headers = {
        **DOWNLOAD_HEADERS,
        "Content-Disposition": attachment(f"{target.name}-v{target.version}.tar"),
        "Content-Length": str(plan.length),
    }
    return plan, headers
