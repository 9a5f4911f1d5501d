"""The SDK's identity, audit and governance calls over HTTP (users, groups, grants,
tokens; the audit log; trusted signers and signatures; unsafe-file scans; protected
aliases and promotions): a part of ``HttpClient``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from cairn.client.http_transport import HttpTransport, model_seg, seg, version_seg, whole
from cairn.domain.audit import (
    AuditEvent,
    AuditReport,
    EventPage,
    audit_event_from_json,
    audit_report_from_json,
    clean_after_seq,
    clean_event_filter,
    clean_wait,
    event_page_from_json,
)
from cairn.domain.codec import format_time, validate_time
from cairn.domain.models import Page
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
    validate_signer_name,
)
from cairn.domain.uris import parse_version_number
from cairn.errors import InvalidParameter, NotFound


class GovernanceCalls(HttpTransport):
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
        answer: dict[str, Any] = self._request("PATCH", f"/users/{_named('user', name)}", json=body)
        return answer

    def create_group(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("POST", "/groups", json={"name": name})
        return answer

    def delete_group(self, name: str) -> None:
        self._request("DELETE", f"/groups/{_named('group', name)}")

    def add_member(self, group: str, user: str) -> None:
        self._request("PUT", f"/groups/{_named('group', group)}/members/{_named('user', user)}")

    def remove_member(self, group: str, user: str) -> None:
        self._request("DELETE", f"/groups/{_named('group', group)}/members/{_named('user', user)}")

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
        answer: dict[str, Any] = self._request("POST", "/tokens", json=body)
        return answer

    def list_tokens(self, *, all_users: bool = False) -> list[dict[str, Any]]:
        return list(self._request("GET", "/tokens", params={"all": all_users})["tokens"])

    def revoke_token(self, token_id: int) -> None:
        self._request("DELETE", f"/tokens/{seg(token_id)}")

    # -- audit -------------------------------------------------------------------------
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
            "since": format_time(validate_time("since", since)),
            "until": format_time(validate_time("until", until)),
            "oldest_first": oldest_first,
            "max_results": whole("max_results", max_results),
            "page_token": page_token,
        }
        body = self._request("GET", "/audit", params=params)
        events = [audit_event_from_json(e) for e in body["events"]]
        return Page(events, body.get("next_page_token"))

    def tail_events(
        self,
        *,
        after: int | None = None,
        model: str | None = None,
        events: Sequence[str] | str | None = None,
        outcome: str | None = None,
        wait: float = 0.0,
        max_results: int | None = None,
    ) -> EventPage:
        seconds = clean_wait(wait)
        selected = clean_event_filter(events)  # as the service checks it, in its words
        params = {
            "after_seq": clean_after_seq(0 if after is None else after) or None,
            "model": model,
            "event": None if selected is None else list(selected),
            "outcome": outcome,
            "wait": seconds or None,
            "max_results": whole("max_results", max_results),
        }
        # the server may hold the answer ``wait`` seconds before it starts it
        timeout = httpx.Timeout(self._timeout, read=self._timeout + seconds)
        body = self._request("GET", "/audit/tail", params=params, timeout=timeout)
        return event_page_from_json(body)

    def verify_audit(self, *, anchor: tuple[int, str] | None = None) -> AuditReport:
        params = None if anchor is None else {"anchor": f"{anchor[0]}:{anchor[1]}"}
        return audit_report_from_json(self._request("GET", "/audit/verify", params=params))

    def add_signer(self, name: str, *, kind: str, material: str) -> TrustedSigner:
        body = {"name": name, "kind": kind, "material": material}
        return signer_from_json(self._request("POST", "/signers", json=body))

    def list_signers(self) -> list[TrustedSigner]:
        return [signer_from_json(s) for s in self._request("GET", "/signers")["signers"]]

    def remove_signer(self, name: str) -> TrustedSigner:
        path = f"/signers/{seg(validate_signer_name(name))}"
        return signer_from_json(self._request("DELETE", path))

    def add_signature(
        self, name: str, version: int | str, bundle: str | bytes | Mapping[str, Any]
    ) -> VersionSignature:
        if isinstance(bundle, bytes):
            try:
                bundle = bundle.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidParameter("signature bundle is not UTF-8 JSON") from None
        body = {"bundle": bundle if isinstance(bundle, str) else dict(bundle)}
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/signatures"
        return signature_from_json(self._request("POST", path, json=body))

    def list_signatures(self, name: str, version: int | str) -> list[VersionSignature]:
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/signatures"
        return [signature_from_json(s) for s in self._request("GET", path)["signatures"]]

    # -- unsafe-file scanning -----------------------------------------------------------
    def get_scan_report(self, name: str, version: int | str) -> ScanReport:
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/scan"
        return scan_report_from_json(self._request("GET", path))

    def rescan_version(self, name: str, version: int | str) -> ScanReport:
        path = f"/models/{model_seg(name)}/versions/{version_seg(version)}/scan"
        return scan_report_from_json(self._request("POST", path, idempotent=True))  # scans again

    def get_scan_policy(self, name: str) -> ScanPolicy:
        return scan_policy_from_json(self._request("GET", f"/models/{model_seg(name)}/scan-policy"))

    def set_scan_policy(self, name: str, action: str | None) -> ScanPolicy:
        path = f"/models/{model_seg(name)}/scan-policy"
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
        require_compatible: bool = False,
    ) -> AliasPolicy:
        body = {
            "model_pattern": model_pattern,
            "alias_pattern": alias_pattern,
            "min_role": min_role,
            "approvals": approvals,
            "conditions": [condition_to_json(c) for c in validate_conditions(conditions)],
            "require_clean_scan": require_clean_scan,
            "require_signature": require_signature,
            "require_compatible": require_compatible,
        }
        return policy_from_json(self._request("PUT", "/policies", json=body))

    def list_policies(self, *, model: str | None = None) -> list[AliasPolicy]:
        body = self._request("GET", "/policies", params={"model": model})
        return [policy_from_json(p) for p in body["policies"]]

    def delete_policy(self, policy_id: int) -> None:
        self._request("DELETE", f"/policies/{seg(policy_id)}")

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
            "max_results": whole("max_results", max_results),
            "page_token": page_token,
        }
        body = self._request("GET", "/promotions", params=query)
        promotions = [request_from_json(r) for r in body["promotions"]]
        return Page(promotions, body.get("next_page_token"))

    def get_promotion(self, request_id: int) -> PromotionRequest:
        return request_from_json(self._request("GET", f"/promotions/{seg(request_id)}"))

    def approve_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest:
        return self._decide(request_id, "approve", comment)

    def reject_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest:
        return self._decide(request_id, "reject", comment)

    def cancel_promotion(self, request_id: int, *, comment: str = "") -> PromotionRequest:
        return self._decide(request_id, "cancel", comment)

    def _decide(self, request_id: int, decision: str, comment: str) -> PromotionRequest:
        path = f"/promotions/{seg(request_id)}/{decision}"
        return request_from_json(self._request("POST", path, json={"comment": comment}))


def _named(kind: str, name: str) -> str:
    """A user's or group's name as its path segment. No such name holds a ``/``, which
    no URL segment can carry: the one that does is not found, as the service says."""
    if "/" in str(name):
        raise NotFound(f"{kind} {name!r} does not exist")
    return seg(name)
