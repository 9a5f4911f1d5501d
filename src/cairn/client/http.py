"""The SDK over HTTP. Imports only ``domain``, ``errors`` and httpx.

Creates carry an ``Idempotency-Key`` the client makes up, so a create retried after a
dropped connection cannot make a second model or version. Idempotent calls (and creates,
thanks to the key) are retried on connection errors and 502/503/504 with backoff.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from cairn.client.base import BaseClient
from cairn.client.transfer import LocalFile, Progress, read_chunks
from cairn.domain.audit import (
    AuditEvent,
    AuditReport,
    audit_event_from_json,
    audit_report_from_json,
)
from cairn.domain.codec import (
    alias_event_from_json,
    format_time,
    model_from_json,
    version_from_json,
)
from cairn.domain.models import (
    AliasEvent,
    FileEntry,
    ModelVersion,
    Page,
    RegisteredModel,
    VersionSpec,
)
from cairn.domain.promotion import (
    AliasPolicy,
    Condition,
    PromotionRequest,
    condition_to_json,
    policy_from_json,
    request_from_json,
    validate_conditions,
)
from cairn.domain.scans import (
    ScanPolicy,
    ScanReport,
    scan_policy_from_json,
    scan_report_from_json,
)
from cairn.domain.signatures import (
    TrustedSigner,
    VersionSignature,
    signature_from_json,
    signer_from_json,
)
from cairn.domain.uris import parse_version_number
from cairn.errors import CairnError, Conflict, InvalidParameter, Unavailable, error_from_response

RETRY_STATUSES = {502, 503, 504}
MAX_ATTEMPTS = 5
RESUMABLE_ABOVE = 64 << 20  # bigger files go through resumable uploads


def _seg(value: object) -> str:
    return quote(str(value), safe="")


def _page_params(
    filter: str | None,
    order_by: Sequence[str] | None,
    max_results: int | None,
    page_token: str | None,
    include_deleted: bool,
) -> dict[str, Any]:
    """The query of every listing call (unset values are dropped by ``_request``)."""
    return {
        "filter": filter,
        "order_by": list(order_by) if order_by else None,
        "max_results": max_results,
        "page_token": page_token,
        "include_deleted": include_deleted,
    }


# in the data directory; written by the server on first start (a file name, not a secret)
ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105


class HttpClient(BaseClient):
    def __init__(
        self,
        uri: str,
        *,
        token: str | None = None,
        http_client: httpx.Client | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.uri = uri.rstrip("/")
        headers = {"User-Agent": "cairn-sdk"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if http_client is not None:
            self._http = http_client
            self._http.headers.update(headers)
            self._owns_http = False
        else:
            self._http = httpx.Client(base_url=self.uri, headers=headers, timeout=timeout)
            self._owns_http = True

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # -- transport ---------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: Callable[[], Iterable[bytes]] | None = None,
        attempts: int = MAX_ATTEMPTS,
    ) -> Any:
        """One API call, retried on transient failures; ``content`` makes a fresh body.

        ``attempts=1`` for calls a retry must not repeat (a second token nobody would see).
        """
        url = "/api/v1" + path
        query = {k: v for k, v in (params or {}).items() if v is not None and v is not False}
        delay = 0.1
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(
                    method,
                    url,
                    json=json,
                    params=query,
                    headers=headers,
                    content=None if content is None else content(),
                )
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise Unavailable(f"cannot reach Cairn at {self.uri}: {exc}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt == attempts:
                    return self._decode(response)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise Unavailable(f"cannot reach Cairn at {self.uri}")  # pragma: no cover

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return body
        if isinstance(body, dict) and "message" in body:
            raise error_from_response(
                response.status_code, body.get("error_code"), str(body["message"])
            )
        raise CairnError(f"HTTP {response.status_code} from server: {response.text[:200]}")

    @staticmethod
    def _key(idempotency_key: str | None) -> dict[str, str]:
        return {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}

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
        body = {"name": name, "description": description, "tags": dict(tags or {})}
        return model_from_json(
            self._request("POST", "/models", json=body, headers=self._key(idempotency_key))
        )

    def get_model(self, name: str) -> RegisteredModel:
        return model_from_json(self._request("GET", f"/models/{_seg(name)}"))

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
        return model_from_json(self._request("PATCH", f"/models/{_seg(name)}", json=body))

    def rename_model(self, name: str, new_name: str) -> RegisteredModel:
        body = {"new_name": new_name}
        return model_from_json(self._request("POST", f"/models/{_seg(name)}/rename", json=body))

    def set_model_tag(self, name: str, key: str, value: str) -> RegisteredModel:
        path = f"/models/{_seg(name)}/tags/{_seg(key)}"
        return model_from_json(self._request("PUT", path, json={"value": value}))

    def delete_model_tag(self, name: str, key: str) -> RegisteredModel:
        return model_from_json(self._request("DELETE", f"/models/{_seg(name)}/tags/{_seg(key)}"))

    def delete_model(self, name: str) -> None:
        self._request("DELETE", f"/models/{_seg(name)}")

    def restore_model(self, name: str) -> RegisteredModel:
        return model_from_json(self._request("POST", f"/models/{_seg(name)}/restore"))

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
    ) -> ModelVersion:
        spec = VersionSpec(
            description=description,
            tags=dict(tags or {}),
            params=dict(params or {}),
            metrics=dict(metrics or {}),
            semver=semver,
            source=source,
            run_id=run_id,
            run_link=run_link,
        )
        return self._create_with_manifest(name, spec, idempotency_key or str(uuid.uuid4()))[0]

    def get_version(self, name: str, version: int | str) -> ModelVersion:
        path = f"/models/{_seg(name)}/versions/{_seg(version)}"
        return version_from_json(self._request("GET", path))

    def resolve(self, uri: str, *, as_of: datetime | None = None) -> ModelVersion:
        params = {"uri": uri, "as_of": format_time(as_of)}
        return version_from_json(self._request("GET", "/resolve", params=params))

    def list_versions(
        self,
        name: str,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[ModelVersion]:
        params = _page_params(None, order_by, max_results, page_token, include_deleted)
        path = f"/models/{_seg(name)}/versions"
        return self._versions_page(self._request("GET", path, params=params))

    def search_versions(
        self,
        filter: str | None = None,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[ModelVersion]:
        params = _page_params(filter, order_by, max_results, page_token, include_deleted)
        return self._versions_page(self._request("GET", "/search/versions", params=params))

    def update_version(
        self,
        name: str,
        version: int | str,
        *,
        description: str | None = None,
        semver: str | None = None,
    ) -> ModelVersion:
        path = f"/models/{_seg(name)}/versions/{_seg(version)}"
        body = {"description": description, "semver": semver}
        return version_from_json(self._request("PATCH", path, json=body))

    def set_version_tag(self, name: str, version: int | str, key: str, value: str) -> ModelVersion:
        path = f"/models/{_seg(name)}/versions/{_seg(version)}/tags/{_seg(key)}"
        return version_from_json(self._request("PUT", path, json={"value": value}))

    def delete_version_tag(self, name: str, version: int | str, key: str) -> ModelVersion:
        path = f"/models/{_seg(name)}/versions/{_seg(version)}/tags/{_seg(key)}"
        return version_from_json(self._request("DELETE", path))

    def transition_stage(
        self,
        name: str,
        version: int | str,
        stage: str,
        *,
        archive_existing_versions: bool = False,
    ) -> ModelVersion:
        path = f"/models/{_seg(name)}/versions/{_seg(version)}/stage"
        body = {"stage": stage, "archive_existing_versions": archive_existing_versions}
        return version_from_json(self._request("POST", path, json=body))

    def delete_version(self, name: str, version: int | str) -> None:
        self._request("DELETE", f"/models/{_seg(name)}/versions/{_seg(version)}")

    def purge_version(self, name: str, version: int | str) -> None:
        path = f"/models/{_seg(name)}/versions/{_seg(version)}"
        self._request("DELETE", path, params={"purge": True})

    def restore_version(self, name: str, version: int | str) -> ModelVersion:
        path = f"/models/{_seg(name)}/versions/{_seg(version)}/restore"
        return version_from_json(self._request("POST", path))

    # -- identities --------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("GET", "/whoami")
        return answer

    def create_user(
        self, name: str, *, password: str | None = None, service: bool = False, admin: bool = False
    ) -> dict[str, Any]:
        body = {"name": name, "password": password, "service": service, "admin": admin}
        answer: dict[str, Any] = self._request("POST", "/users", json=body)
        return answer

    def list_users(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/users")["users"])

    def update_user(
        self,
        name: str,
        *,
        password: str | None = None,
        admin: bool | None = None,
        disabled: bool | None = None,
    ) -> dict[str, Any]:
        given = {"password": password, "admin": admin, "disabled": disabled}
        body = {k: v for k, v in given.items() if v is not None}
        answer: dict[str, Any] = self._request("PATCH", f"/users/{_seg(name)}", json=body)
        return answer

    def create_group(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("POST", "/groups", json={"name": name})
        return answer

    def delete_group(self, name: str) -> None:
        self._request("DELETE", f"/groups/{_seg(name)}")

    def add_member(self, group: str, user: str) -> None:
        self._request("PUT", f"/groups/{_seg(group)}/members/{_seg(user)}")

    def remove_member(self, group: str, user: str) -> None:
        self._request("DELETE", f"/groups/{_seg(group)}/members/{_seg(user)}")

    def list_groups(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/groups")["groups"])

    def grant(
        self, subject: str, role: str, *, model: str | None = None, pattern: str | None = None
    ) -> dict[str, Any]:
        body = {"subject": subject, "role": role, "model": model, "pattern": pattern}
        answer: dict[str, Any] = self._request("PUT", "/grants", json=body)
        return answer

    def revoke(self, subject: str, *, model: str | None = None, pattern: str | None = None) -> None:
        params = {"subject": subject, "model": model, "pattern": pattern}
        self._request("DELETE", "/grants", params=params)

    def list_grants(
        self, *, model: str | None = None, subject: str | None = None
    ) -> list[dict[str, Any]]:
        body = self._request("GET", "/grants", params={"model": model, "subject": subject})
        return list(body["grants"])

    def create_token(
        self,
        name: str = "",
        *,
        scope: str = "read",
        expires_days: int | None = 90,
        user: str | None = None,
    ) -> dict[str, Any]:
        body = {"name": name, "scope": scope, "expires_days": expires_days, "user": user}
        answer: dict[str, Any] = self._request("POST", "/tokens", json=body, attempts=1)
        return answer

    def list_tokens(self, *, all_users: bool = False) -> list[dict[str, Any]]:
        return list(self._request("GET", "/tokens", params={"all": all_users})["tokens"])

    def revoke_token(self, token_id: int) -> None:
        self._request("DELETE", f"/tokens/{_seg(token_id)}")

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
        path = f"/models/{_seg(name)}/versions"
        created = self._request("POST", path, json=body, headers=self._key(idempotency_key))
        return version_from_json(created), list(created["missing"])

    def _upload_blob(self, name: str, version: int, file: LocalFile, progress: Progress) -> None:
        entry = file.entry
        if entry.size <= RESUMABLE_ABOVE:
            path = f"/models/{_seg(name)}/versions/{version}/blobs/{entry.digest}"
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

    def _upload_resumable(
        self, name: str, version: int, file: LocalFile, progress: Progress
    ) -> None:
        """Send a large blob in streamed PATCHes; after a failure, ask the server how much it
        has and go on from there (a server restart included)."""
        entry = file.entry
        path = f"/models/{_seg(name)}/versions/{version}/uploads"
        ticket = self._request("POST", path, json={"digest": entry.digest})
        upload_id, offset = ticket["upload_id"], int(ticket["offset"])
        if ticket.get("parts"):
            self._send_parts(file, ticket["parts"], progress)
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
                    f"/uploads/{_seg(upload_id)}",
                    headers=headers,
                    content=functools.partial(body, start),
                )
                offset = settle(int(answer["offset"]))
            except (Conflict, Unavailable) as exc:  # cut off, or the offsets disagree
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    raise Unavailable(f"upload of {entry.path!r} keeps failing: {exc}") from exc
                time.sleep(0.2 * attempts)
                offset = settle(int(self._request("GET", f"/uploads/{_seg(upload_id)}")["offset"]))
        self._request("POST", f"/uploads/{_seg(upload_id)}/complete")

    def _send_parts(self, file: LocalFile, parts: list[dict[str, Any]], progress: Progress) -> None:
        """PUT parts straight to the object store through the presigned URLs."""
        with httpx.Client(timeout=None) as direct:  # noqa: S113 (large parts take long)
            for part in parts:
                offset, length = int(part["offset"]), int(part["length"])
                with file.source.open("rb") as f:
                    f.seek(offset)
                    data = f.read(length)
                response = direct.request(part.get("method", "PUT"), part["url"], content=data)
                if not response.is_success:
                    raise CairnError(
                        f"object store refused part at {offset}: HTTP {response.status_code}"
                    )
                progress.advance(length)

    def _fetch(self, name: str, version: int, path: str, start: int) -> Iterator[bytes]:
        url = f"/api/v1/models/{_seg(name)}/versions/{version}/files/{quote(path)}"
        headers = {"Range": f"bytes={start}-"} if start else {}
        with self._http.stream("GET", url, headers=headers) as response:
            if not response.is_success:
                response.read()
                self._decode(response)
            yield from response.iter_bytes()  # as received: the cache batches its writes

    def finalize_version(self, name: str, version: int | str) -> ModelVersion:
        path = f"/models/{_seg(name)}/versions/{_seg(version)}/finalize"
        return version_from_json(self._request("POST", path))

    def list_files(self, name: str, version: int | str) -> list[FileEntry]:
        body = self._request("GET", f"/models/{_seg(name)}/versions/{_seg(version)}/files")
        return [FileEntry(f["path"], int(f["size"]), f["digest"]) for f in body["files"]]

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
            "tags": dict(tags or {}),
            "created_at": format_time(created_at),
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
            "created_at": format_time(created_at),
            "created_by": created_by,
        }
        path = f"/import/models/{_seg(name)}/versions/{_seg(version)}"
        imported = self._request("PUT", path, json=body)
        return version_from_json(imported), list(imported["missing"])

    def reserve_versions(self, name: str, up_to: int) -> RegisteredModel:
        path = f"/import/models/{_seg(name)}/reserve"
        return model_from_json(self._request("POST", path, json={"up_to": up_to}))

    # -- aliases -----------------------------------------------------------------------
    def set_alias(
        self, name: str, alias: str, version: int | str, *, expect: int | None = None
    ) -> ModelVersion:
        path = f"/models/{_seg(name)}/aliases/{_seg(alias)}"
        body = {"version": parse_version_number(version), "expect": expect}
        return version_from_json(self._request("PUT", path, json=body))

    def delete_alias(self, name: str, alias: str) -> None:
        self._request("DELETE", f"/models/{_seg(name)}/aliases/{_seg(alias)}")

    def alias_history(
        self, name: str, alias: str | None = None, *, limit: int | None = None
    ) -> list[AliasEvent]:
        if alias is None:
            path = f"/models/{_seg(name)}/alias-history"
        else:
            path = f"/models/{_seg(name)}/aliases/{_seg(alias)}/history"
        body = self._request("GET", path, params={"limit": limit})
        return [alias_event_from_json(e) for e in body["events"]]

    def list_audit(
        self,
        *,
        model: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        alias: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        oldest_first: bool = False,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[AuditEvent]:
        params = {
            "model": model,
            "actor": actor,
            "action": action,
            "alias": alias,
            "outcome": outcome,
            "since": format_time(since),
            "until": format_time(until),
            "oldest_first": oldest_first,
            "max_results": max_results,
            "page_token": page_token,
        }
        body = self._request("GET", "/audit", params=params)
        events = [audit_event_from_json(e) for e in body["events"]]
        return Page(events, body.get("next_page_token"))

    def verify_audit(self) -> AuditReport:
        return audit_report_from_json(self._request("GET", "/audit/verify"))

    def add_signer(self, name: str, *, kind: str, material: str) -> TrustedSigner:
        body = {"name": name, "kind": kind, "material": material}
        return signer_from_json(self._request("POST", "/signers", json=body))

    def list_signers(self) -> list[TrustedSigner]:
        return [signer_from_json(s) for s in self._request("GET", "/signers")["signers"]]

    def remove_signer(self, name: str) -> None:
        self._request("DELETE", f"/signers/{_seg(name)}")

    def add_signature(
        self, name: str, version: int | str, bundle: str | bytes | Mapping[str, Any]
    ) -> VersionSignature:
        if isinstance(bundle, bytes):
            try:
                bundle = bundle.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidParameter("signature bundle is not UTF-8 JSON") from None
        body = {"bundle": bundle if isinstance(bundle, str) else dict(bundle)}
        path = f"/models/{_seg(name)}/versions/{_seg(str(version))}/signatures"
        return signature_from_json(self._request("POST", path, json=body))

    def list_signatures(self, name: str, version: int | str) -> list[VersionSignature]:
        path = f"/models/{_seg(name)}/versions/{_seg(str(version))}/signatures"
        return [signature_from_json(s) for s in self._request("GET", path)["signatures"]]

    # -- unsafe-file scanning -----------------------------------------------------------
    def get_scan_report(self, name: str, version: int | str) -> ScanReport:
        path = f"/models/{_seg(name)}/versions/{_seg(str(version))}/scan"
        return scan_report_from_json(self._request("GET", path))

    def rescan_version(self, name: str, version: int | str) -> ScanReport:
        path = f"/models/{_seg(name)}/versions/{_seg(str(version))}/scan"
        return scan_report_from_json(self._request("POST", path))

    def get_scan_policy(self, name: str) -> ScanPolicy:
        return scan_policy_from_json(self._request("GET", f"/models/{_seg(name)}/scan-policy"))

    def set_scan_policy(self, name: str, action: str | None) -> ScanPolicy:
        path = f"/models/{_seg(name)}/scan-policy"
        return scan_policy_from_json(self._request("PUT", path, json={"action": action}))

    # -- protected aliases -------------------------------------------------------------
    def set_policy(
        self,
        model_pattern: str,
        alias_pattern: str,
        *,
        min_role: str = "MANAGE",
        approvals: int = 0,
        conditions: Sequence[str | Condition] = (),
        require_clean_scan: bool = False,
        require_signature: bool = False,
    ) -> AliasPolicy:
        body = {
            "model_pattern": model_pattern,
            "alias_pattern": alias_pattern,
            "min_role": min_role,
            "approvals": approvals,
            "conditions": [condition_to_json(c) for c in validate_conditions(conditions)],
            "require_clean_scan": require_clean_scan,
            "require_signature": require_signature,
        }
        return policy_from_json(self._request("PUT", "/policies", json=body))

    def list_policies(self, *, model: str | None = None) -> list[AliasPolicy]:
        body = self._request("GET", "/policies", params={"model": model})
        return [policy_from_json(p) for p in body["policies"]]

    def delete_policy(self, policy_id: int) -> None:
        self._request("DELETE", f"/policies/{_seg(policy_id)}")

    def promote(
        self, name: str, version: int | str, alias: str, *, comment: str = ""
    ) -> PromotionRequest:
        body = {
            "model": name,
            "version": parse_version_number(version),
            "alias": alias,
            "comment": comment,
        }
        return request_from_json(self._request("POST", "/promotions", json=body))

    def list_promotions(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[PromotionRequest]:
        query = {
            "status": status,
            "model": model,
            "max_results": max_results,
            "page_token": page_token,
        }
        body = self._request("GET", "/promotions", params=query)
        promotions = [request_from_json(r) for r in body["promotions"]]
        return Page(promotions, body.get("next_page_token"))

    def get_promotion(self, request_id: int) -> PromotionRequest:
        return request_from_json(self._request("GET", f"/promotions/{_seg(request_id)}"))

    def approve_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest:
        return self._decide(request_id, "approve", comment)

    def reject_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest:
        return self._decide(request_id, "reject", comment)

    def cancel_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest:
        return self._decide(request_id, "cancel", comment)

    def _decide(self, request_id: int, decision: str, comment: str) -> PromotionRequest:
        path = f"/promotions/{_seg(request_id)}/{decision}"
        return request_from_json(self._request("POST", path, json={"comment": comment}))
