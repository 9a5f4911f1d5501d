"""The SDK over HTTP. Imports only ``domain``, ``errors`` and httpx.

Creates carry an ``Idempotency-Key`` the client makes up, so a create retried after a
dropped connection cannot make a second model or version. Idempotent calls (and creates,
thanks to the key) are retried on connection errors and 429/502/503/504, after the wait the
server's ``Retry-After`` asks for, within a budget; any other call only when it never ran
(``http_transport``).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Generator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from cairn.client.base import BaseClient, field_map
from cairn.client.direct_parts import send_parts
from cairn.client.http_deployments import DeploymentCalls
from cairn.client.http_governance import GovernanceCalls
from cairn.client.http_lineage import LineageCalls
from cairn.client.http_transport import (
    MAX_ATTEMPTS,
    alias_seg,
    model_seg,
    seg,
    tag_seg,
    version_seg,
    whole,
)
from cairn.client.http_webhooks import WebhookCalls
from cairn.client.ranged import RANGED_ABOVE, link_streams, ranged_get
from cairn.client.transfer import LocalFile, read_chunks
from cairn.domain.artifacts import FileLink, PruneReport, RetentionPolicy
from cairn.domain.blob_batch import MEDIA_TYPE, frames, parse_frames
from cairn.domain.codec import (
    alias_event_from_json,
    file_from_json,
    format_time,
    link_from_json,
    model_from_json,
    prune_from_json,
    retention_from_json,
    validate_time,
    version_from_json,
)
from cairn.domain.diff import VersionDiff
from cairn.domain.diff_codec import diff_from_json
from cairn.domain.lineage import LineageInput, input_to_json, validate_inputs
from cairn.domain.models import (
    AliasEvent,
    FileEntry,
    ModelVersion,
    Page,
    RegisteredModel,
    VersionSpec,
)
from cairn.domain.progress import Progress
from cairn.domain.uris import parse_version_number
from cairn.errors import (
    Conflict,
    DataCorrupted,
    InvalidFilter,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)

RESUMABLE_ABOVE = 64 << 20  # bigger files go through resumable uploads
COMPLETE_MIN_RATE = 20e6  # bytes/s: the slowest a server may verify an upload at ``complete``


def filter_text(filter: object) -> str | None:
    """A search filter for the query: a str, refused otherwise as the service refuses it
    (``5`` would arrive as the filter ``"5"``)."""
    if filter is not None and not isinstance(filter, str):
        raise InvalidFilter("filter must be a string")
    return filter


def _page_params(
    filter: str | None,
    order_by: Sequence[str] | None,
    max_results: int | None,
    page_token: str | None,
    include_deleted: bool,
    files: bool = True,
) -> dict[str, Any]:
    """The query of every listing call (unset values are dropped by ``_request``)."""
    return {
        "filter": filter_text(filter),
        "order_by": list(order_by) if order_by else None,
        "max_results": whole("max_results", max_results),
        "page_token": page_token,
        "include_deleted": include_deleted,
        "files": None if files else "false",  # sent only when the manifests are left out
    }


class HttpClient(GovernanceCalls, WebhookCalls, LineageCalls, DeploymentCalls, BaseClient):
    """The SDK over HTTP: models, versions, aliases and their files; the identity,
    audit and governance calls come from ``GovernanceCalls``, the webhook calls from
    ``WebhookCalls``, lineage from ``LineageCalls``, deployments and feedback from
    ``DeploymentCalls``."""

    def _models_page(self, body: Any) -> Page[RegisteredModel]:
        return Page([model_from_json(m) for m in body["models"]], body.get("next_page_token"))

    def _versions_page(self, body: Any) -> Page[ModelVersion]:
        return Page([version_from_json(v) for v in body["versions"]], body.get("next_page_token"))

    # -- registered models -------------------------------------------------------------
    def create_model(
        self,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> RegisteredModel:
        body = {"name": name, "description": description, "tags": field_map("tags", tags)}
        return model_from_json(
            self._request("POST", "/models", json=body, headers=self._key(idempotency_key))
        )

    def get_model(self, name: str) -> RegisteredModel:
        return model_from_json(self._request("GET", f"/models/{model_seg(name)}"))

    def search_models(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[RegisteredModel]:
        params = _page_params(filter, order_by, max_results, page_token, include_deleted)
        return self._models_page(self._request("GET", "/models", params=params))

    def update_model(self, name: str, *, description: str | None = None) -> RegisteredModel:
        body = {"description": description}
        path = f"/models/{model_seg(name)}"
        return model_from_json(self._request("PATCH", path, json=body, idempotent=True))

    def rename_model(self, name: str, new_name: str) -> RegisteredModel:
        body = {"new_name": new_name}
        return model_from_json(
            self._request("POST", f"/models/{model_seg(name)}/rename", json=body)
        )

    def set_model_tag(self, name: str, key: str, value: str) -> RegisteredModel:
        path = f"/models/{model_seg(name)}/tags/{tag_seg(key)}"
        return model_from_json(self._request("PUT", path, json={"value": value}))

    def delete_model_tag(self, name: str, key: str) -> RegisteredModel:
        return model_from_json(
            self._request("DELETE", f"/models/{model_seg(name)}/tags/{tag_seg(key)}")
        )

    def delete_model(self, name: str) -> None:
        self._request("DELETE", f"/models/{model_seg(name)}")

    def restore_model(self, name: str) -> RegisteredModel:
        return model_from_json(self._request("POST", f"/models/{model_seg(name)}/restore"))

    # -- versions ----------------------------------------------------------------------
    def create_version(
        self,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        semver: str | None = None,
        source: str | None = None,
        run_id: str | None = None,
        run_link: str | None = None,
        idempotency_key: str | None = None,
        lineage: Sequence[LineageInput] = (),
    ) -> ModelVersion:
        spec = VersionSpec(
            description=description,
            tags=field_map("tags", tags),
            params=field_map("params", params),
            metrics=field_map("metrics", metrics),
            semver=semver,
            source=source,
            run_id=run_id,
            run_link=run_link,
            lineage=tuple(lineage),
        )
        return self._create_with_manifest(name, spec, idempotency_key or str(uuid.uuid4()))[0]

    def get_version(self, name: str, version: int | str) -> ModelVersion:
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}"
        return version_from_json(self._request("GET", path))

    def resolve(self, uri: str, *, as_of: datetime | None = None) -> ModelVersion:
        params = {"uri": uri, "as_of": format_time(validate_time("as_of", as_of))}
        return version_from_json(self._request("GET", "/resolve", params=params))

    def diff_versions(
        self,
        old: str,
        new: str,
        *,
        old_as_of: datetime | None = None,
        tensors: bool = False,
        signature: bool = False,
    ) -> VersionDiff:
        params = {
            "old": old,
            "new": new,
            "old_as_of": format_time(validate_time("old_as_of", old_as_of)),
        }
        params.update(
            {k: "true" for k, on in (("tensors", tensors), ("signature", signature)) if on}
        )
        return diff_from_json(self._request("GET", "/diff", params=params))

    def list_versions(
        self,
        name: str,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
        files: bool = True,
    ) -> Page[ModelVersion]:
        params = _page_params(None, order_by, max_results, page_token, include_deleted, files)
        path = f"/models/{model_seg(name)}/versions"
        return self._versions_page(self._request("GET", path, params=params))

    def search_versions(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
        files: bool = True,
    ) -> Page[ModelVersion]:
        params = _page_params(filter, order_by, max_results, page_token, include_deleted, files)
        return self._versions_page(self._request("GET", "/search/versions", params=params))

    def update_version(
        self,
        name: str,
        version: int | str,
        *,
        description: str | None = None,
        semver: str | None = None,
    ) -> ModelVersion:
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}"
        body = {"description": description, "semver": semver}
        return version_from_json(self._request("PATCH", path, json=body, idempotent=True))

    def set_version_tag(self, name: str, version: int | str, key: str, value: str) -> ModelVersion:
        tag = tag_seg(key)
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/tags/{tag}"
        return version_from_json(self._request("PUT", path, json={"value": value}))

    def delete_version_tag(self, name: str, version: int | str, key: str) -> ModelVersion:
        tag = tag_seg(key)
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/tags/{tag}"
        return version_from_json(self._request("DELETE", path))

    def transition_stage(
        self,
        name: str,
        version: int | str,
        stage: str,
        *,
        archive_existing_versions: bool = False,
    ) -> ModelVersion:
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/stage"
        body = {"stage": stage, "archive_existing_versions": archive_existing_versions}
        return version_from_json(self._request("POST", path, json=body))

    def delete_version(self, name: str, version: int | str) -> None:
        self._request("DELETE", f"/models/{model_seg(name)}/versions/{version_seg(version)}")

    def purge_version(self, name: str, version: int | str) -> None:
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}"
        self._request("DELETE", path, params={"purge": True})

    def prune_versions(
        self,
        name: str,
        *,
        keep: int,
        keep_days: float | None = None,
        dry_run: bool = True,
        purge: bool = False,
        filter: str | None = None,
    ) -> PruneReport:
        body = {
            "keep": keep,
            "keep_days": keep_days,
            "dry_run": dry_run,
            "purge": purge,
            "filter": filter,
        }
        return prune_from_json(self._request("POST", f"/models/{model_seg(name)}/prune", json=body))

    def get_retention(self, name: str) -> RetentionPolicy:
        return retention_from_json(self._request("GET", f"/models/{model_seg(name)}/retention"))

    def set_retention(
        self, name: str, *, keep: int | None, keep_days: float | None = None
    ) -> RetentionPolicy:
        body = {"keep": keep, "keep_days": keep_days}
        path = f"/models/{model_seg(name)}/retention"
        return retention_from_json(self._request("PUT", path, json=body))

    def clear_retention(self, name: str) -> RetentionPolicy:
        return retention_from_json(self._request("DELETE", f"/models/{model_seg(name)}/retention"))

    def restore_version(self, name: str, version: int | str) -> ModelVersion:
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/restore"
        return version_from_json(self._request("POST", path))

    # -- files -------------------------------------------------------------------------
    def _create_with_manifest(
        self, name: str, spec: VersionSpec, idempotency_key: str
    ) -> tuple[ModelVersion, list[str]]:
        body = {
            "description": spec.description,
            "tags": dict(spec.tags),
            "params": dict(spec.params),
            "metrics": dict(spec.metrics),
            "semver": spec.semver,
            "source": spec.source,
            "run_id": spec.run_id,
            "run_link": spec.run_link,
            "files": [{"path": f.path, "size": f.size, "digest": f.digest} for f in spec.files],
        }
        if spec.lineage:  # sent only when given: a server without lineage takes the rest
            body["lineage"] = [input_to_json(i) for i in validate_inputs(spec.lineage)]
        path = f"/models/{model_seg(name)}/versions"
        created = self._request("POST", path, json=body, headers=self._key(idempotency_key))
        return version_from_json(created), list(created["missing"])

    def _upload_blob(self, name: str, version: int, file: LocalFile, progress: Progress) -> None:
        entry = file.entry
        if entry.size <= RESUMABLE_ABOVE:
            path = f"/models/{model_seg(name)}/versions/{version}/blobs/{entry.digest}"
            sent = [0]

            def body() -> Iterator[bytes]:
                progress.advance(-sent[0])  # a retry starts again from zero
                sent[0] = 0
                for chunk in read_chunks(file.source):
                    sent[0] += len(chunk)
                    progress.advance(len(chunk))
                    yield chunk

            headers = {
                "Content-Length": str(entry.size),
                "Content-Type": "application/octet-stream",
            }
            self._request("PUT", path, headers=headers, content=body)
            return
        self._upload_resumable(name, version, file, progress)

    def _upload_batch(
        self, name: str, version: int, files: Sequence[LocalFile], progress: Progress
    ) -> None:
        """One request for several small blobs; one by one if this server's request limit
        is below the batch (413)."""
        body = b"".join(frames([(f.entry.digest, f.source.read_bytes()) for f in files]))
        headers = {"Content-Length": str(len(body)), "Content-Type": MEDIA_TYPE}
        path = f"/models/{model_seg(name)}/versions/{version}/blobs"
        try:
            # bytes checked against their digests: a second sending stores nothing more
            self._request("POST", path, headers=headers, content=lambda: [body], idempotent=True)
        except PayloadTooLarge:
            for f in files:
                self._upload_blob(name, version, f, progress)
            return
        progress.advance(sum(f.entry.size for f in files))

    def _upload_resumable(
        self, name: str, version: int, file: LocalFile, progress: Progress
    ) -> None:
        """Send a large blob in streamed PATCHes; after a failure, ask the server how much it
        has and go on from there (a server restart included)."""
        entry = file.entry
        path = f"/models/{model_seg(name)}/versions/{version}/uploads"
        # an upload of that blob: a second asking finds the same one or opens another
        ticket = self._request("POST", path, json={"digest": entry.digest}, idempotent=True)
        upload_id, offset = ticket["upload_id"], int(ticket["offset"])
        if ticket.get("parts"):
            send_parts(
                self._bucket(),
                file.source,
                ticket["parts"],
                progress,
                lambda: (
                    self._request("POST", path, json={"digest": entry.digest}, idempotent=True)[
                        "parts"
                    ]
                    or []
                ),
            )
        counted = [offset]  # what the progress bar has been told
        progress.advance(offset)

        def body(start: int) -> Iterator[bytes]:
            for chunk in read_chunks(file.source, start):
                counted[0] += len(chunk)
                progress.advance(len(chunk))
                yield chunk

        def settle(server_offset: int) -> int:
            progress.advance(server_offset - counted[0])
            counted[0] = server_offset
            return server_offset

        attempts = 0
        while offset < entry.size and not ticket.get("parts"):
            start = offset
            headers = {
                "Upload-Offset": str(start),
                "Content-Length": str(entry.size - start),
                "Content-Type": "application/octet-stream",
            }
            try:
                answer = self._request(
                    "PATCH",
                    f"/uploads/{seg(upload_id)}",
                    headers=headers,
                    content=functools.partial(body, start),
                    idempotent=True,  # at Upload-Offset: a second sending is refused (409)
                )
                offset = settle(int(answer["offset"]))
            except (Conflict, Unavailable) as exc:  # cut off, or the offsets disagree
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    raise Unavailable(f"upload of {entry.path!r} keeps failing: {exc}") from exc
                time.sleep(0.2 * attempts)
                offset = settle(int(self._request("GET", f"/uploads/{seg(upload_id)}")["offset"]))
        self._complete(name, version, upload_id, entry)

    def _complete(self, name: str, version: int, upload_id: str, entry: FileEntry) -> None:
        """Complete an upload. The server reads every byte before it answers (minutes for
        tens of GB on an object store), so the answer is awaited as long as reading at
        ``COMPLETE_MIN_RATE`` would take. An upload found gone was completed by an earlier
        attempt whose answer was lost, or by another push of the same file to this model
        (they share it): fine if the version no longer lacks the blob."""
        wait = httpx.Timeout(self._timeout, read=max(self._timeout, entry.size / COMPLETE_MIN_RATE))
        try:
            path = f"/uploads/{seg(upload_id)}/complete"  # a second: 404, handled below
            self._request("POST", path, timeout=wait, idempotent=True)
        except NotFound:
            missing = self._request("GET", f"/models/{model_seg(name)}/versions/{version}/missing")
            if entry.digest in missing:
                raise

    def _fetch_many(
        self, name: str, version: int, entries: Sequence[FileEntry], *, override: bool = False
    ) -> list[bytes]:
        """One request for several small files; the frames must answer the paths asked
        for, in order (each file is verified again as it goes into the cache)."""
        url = f"/api/v1/models/{model_seg(name)}/versions/{version}/files"
        paths = [e.path for e in entries]
        with self._reaching():
            response = self._http.post(url, json={"paths": paths}, params=_overriding(override))
        if not response.is_success:
            self._decode(response)
        received = parse_frames(response.content)
        if [digest for digest, _ in received] != [e.digest for e in entries]:
            raise DataCorrupted("the server answered other files than the ones asked for")
        return [content for _, content in received]

    def _direct_urls(
        self, name: str, version: int, entries: Sequence[FileEntry], *, override: bool = False
    ) -> dict[str, str]:
        paths = [e.path for e in entries]
        links = self.file_links(name, version, paths, override_quarantine=override)
        return {link.file.digest: link.url for link in links if link.url}

    def _links(
        self, name: str, version: int | str, paths: Sequence[str], *, override: bool
    ) -> list[FileLink]:
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/urls"
        answer = self._request(  # a read: links to the files
            "POST", path, json={"paths": list(paths)}, params=_overriding(override), idempotent=True
        )
        return [link_from_json(f) for f in answer["files"]]

    def _fetch(
        self,
        name: str,
        version: int,
        file: FileEntry,
        start: int,
        direct: str | None = None,
        *,
        override: bool = False,
    ) -> Iterator[bytes]:
        """From the object store when given a link (the cache checks the digest, as it
        does any download); from the server when there is none, or for whatever the link
        did not deliver (expired, refused, cut off)."""
        if direct is not None:
            came = yield from self._fetch_direct(direct, start, file.size)
            if came is None:
                return  # the link delivered it all
            start += came
        url = f"/api/v1/models/{model_seg(name)}/versions/{version}/files/{quote(file.path)}"
        headers = {"Range": f"bytes={start}-"} if start else {}
        params = _overriding(override)
        with (
            self._reaching(),
            self._http.stream("GET", url, headers=headers, params=params) as response,
        ):
            if not response.is_success:
                response.read()
                self._decode(response)
            yield from response.iter_bytes()  # as received: the cache batches its writes

    def _fetch_direct(self, url: str, start: int, size: int) -> Generator[bytes, None, int | None]:
        """Bytes from ``start`` through a presigned link, several ranges at once for a
        large rest: None once it delivered all of them, else how many came before it
        failed. No Cairn credentials go with it."""
        if size - start > RANGED_ABOVE and (streams := link_streams()) > 1:
            came = yield from ranged_get(self._bucket(), url, start, size, streams)
            return None if start + came == size else came
        came = 0
        headers = {"Range": f"bytes={start}-"} if start else {}
        try:
            with self._bucket().stream("GET", url, headers=headers) as response:
                if response.status_code != (206 if start else 200):
                    return 0
                for chunk in response.iter_bytes():
                    came += len(chunk)
                    yield chunk
        except httpx.HTTPError:  # a short body included: the server sends the rest
            return came
        return None

    def finalize_version(self, name: str, version: int | str) -> ModelVersion:
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/finalize"
        # a READY version stays as it is: the second finalize answers as the first
        return version_from_json(self._request("POST", path, idempotent=True))

    def list_files(self, name: str, version: int | str) -> list[FileEntry]:
        body = self._request(
            "GET", f"/models/{model_seg(name)}/versions/{version_seg(version)}/files"
        )
        return [file_from_json(f) for f in body["files"]]

    # -- importers ---------------------------------------------------------------------
    def import_model(
        self,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
        created_by: str | None = None,
    ) -> RegisteredModel:
        body = {
            "name": name,
            "description": description,
            "tags": field_map("tags", tags),
            "created_at": format_time(validate_time("created_at", created_at)),
            "created_by": created_by,
        }
        return model_from_json(self._request("POST", "/import/models", json=body))

    def _import_with_manifest(
        self,
        name: str,
        version: int,
        spec: VersionSpec,
        *,
        stage: str = "None",
        status: str = "READY",
        status_message: str = "",
        created_at: datetime | None = None,
        created_by: str | None = None,
    ) -> tuple[ModelVersion, list[str]]:
        body = {
            "description": spec.description,
            "tags": dict(spec.tags),
            "params": dict(spec.params),
            "metrics": dict(spec.metrics),
            "semver": spec.semver,
            "source": spec.source,
            "run_id": spec.run_id,
            "run_link": spec.run_link,
            "files": [{"path": f.path, "size": f.size, "digest": f.digest} for f in spec.files],
            "stage": stage,
            "status": status,
            "status_message": status_message,
            "created_at": format_time(validate_time("created_at", created_at)),
            "created_by": created_by,
        }
        path = f"/import/models/{model_seg(name)}/versions/{version_seg(version)}"
        imported = self._request("PUT", path, json=body)
        return version_from_json(imported), list(imported["missing"])

    def reserve_versions(self, name: str, up_to: int) -> RegisteredModel:
        path = f"/import/models/{model_seg(name)}/reserve"
        body = {"up_to": up_to}  # numbers up to a bound: the second reserves nothing more
        return model_from_json(self._request("POST", path, json=body, idempotent=True))

    # -- aliases -----------------------------------------------------------------------
    def set_alias(
        self, name: str, alias: str, version: int | str, *, expect: int | None = None
    ) -> ModelVersion:
        path = f"/models/{model_seg(name)}/aliases/{alias_seg(alias)}"
        body = {"version": parse_version_number(version), "expect": expect}
        return version_from_json(self._request("PUT", path, json=body))

    def rollback_alias(
        self, name: str, alias: str, *, as_of: datetime | None = None
    ) -> ModelVersion:
        path = f"/models/{model_seg(name)}/aliases/{alias_seg(alias)}/rollback"
        params = {"as_of": format_time(validate_time("as_of", as_of))}
        return version_from_json(self._request("POST", path, params=params))

    def delete_alias(self, name: str, alias: str) -> None:
        self._request("DELETE", f"/models/{model_seg(name)}/aliases/{alias_seg(alias)}")

    def alias_history(
        self, name: str, alias: str | None = None, *, limit: int | None = None
    ) -> list[AliasEvent]:
        if alias is None:
            path = f"/models/{model_seg(name)}/alias-history"
        else:
            path = f"/models/{model_seg(name)}/aliases/{alias_seg(alias)}/history"
        body = self._request("GET", path, params={"limit": whole("limit", limit)})
        return [alias_event_from_json(e) for e in body["events"]]


def _overriding(override: bool) -> dict[str, str]:
    """The query that asks for a quarantined version's files anyway."""
    return {"override_quarantine": "true"} if override else {}
