"""Alias policies, promotion requests, approvals, and what a gate reads about a version.

Policies are few (an instance has tens, not thousands): they are read whole and matched in
Python with the same pattern rules as grants. Requests keep the checks of their last
evaluation as JSON. Nothing here commits or decides: the promotion service does.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from cairn.domain.access import ReadFilter, Role
from cairn.domain.promotion import (
    AliasPolicy,
    Approval,
    Check,
    Condition,
    PromotionRequest,
    PromotionStatus,
    check_from_json,
    check_to_json,
    condition_from_json,
    condition_to_json,
)
from cairn.errors import Conflict, InvalidParameter, NotFound
from cairn.store.metadata.clock import optional_datetime, to_datetime
from cairn.store.metadata.database import RetryTransaction
from cairn.store.metadata.prepared import Prepared
from cairn.store.metadata.schema import (
    alias_policies,
    approvals,
    model_versions,
    promotion_requests,
    registered_models,
    version_metrics,
    version_scans,
)
from cairn.store.metadata.search import readable_models

P = alias_policies
_POLICIES = Prepared(select(P).order_by(P.c.id))  # every alias move reads them: built once
R = promotion_requests
A = approvals
M = registered_models


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class PromotionStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    # -- policies ------------------------------------------------------------------------

    def policies(self) -> list[AliasPolicy]:
        return [_policy(r) for r in _POLICIES.all(self.s)]

    def get_policy(self, policy_id: int) -> AliasPolicy:
        row = self.s.execute(select(P).where(P.c.id == policy_id)).first()
        if row is None:
            raise NotFound(f"alias policy {policy_id} does not exist")
        return _policy(row)

    def find_policy(self, model_pattern: str, alias_pattern: str) -> AliasPolicy | None:
        row = self.s.execute(
            select(P).where(P.c.model_pattern == model_pattern, P.c.alias_pattern == alias_pattern)
        ).first()
        return None if row is None else _policy(row)

    def put_policy(
        self,
        model_pattern: str,
        alias_pattern: str,
        *,
        min_role: Role,
        approvals: int,
        conditions: Sequence[Condition],
        require_clean_scan: bool,
        require_signature: bool,
        require_compatible: bool = False,
        actor: str | None,
        now: int,
    ) -> int:
        """Create the policy of (model_pattern, alias_pattern) or replace its rules."""
        values = {
            "min_role": min_role.name,
            "approvals": approvals,
            "conditions": _dumps([condition_to_json(c) for c in conditions]),
            "require_clean_scan": require_clean_scan,
            "require_signature": require_signature,
            "require_compatible": require_compatible,
        }
        existing = self.find_policy(model_pattern, alias_pattern)
        if existing is not None:
            self.s.execute(update(P).where(P.c.id == existing.id).values(**values))
            return existing.id
        try:
            with self.s.begin_nested():
                return int(
                    self.s.execute(
                        insert(P)
                        .values(
                            model_pattern=model_pattern,
                            alias_pattern=alias_pattern,
                            created_at=now,
                            created_by=actor,
                            **values,
                        )
                        .returning(P.c.id)
                    ).scalar_one()
                )
        except IntegrityError:  # created meanwhile by another caller: run again, update it
            raise RetryTransaction() from None

    def delete_policy(self, policy_id: int) -> None:
        self.s.execute(delete(P).where(P.c.id == policy_id))

    # -- requests --------------------------------------------------------------------------

    def insert_request(
        self,
        model_id: int,
        version: int,
        alias: str,
        requester: str,
        *,
        status: PromotionStatus,
        comment: str,
        checks: Sequence[Check],
        now: int,
    ) -> int:
        return int(
            self.s.execute(
                insert(R)
                .values(
                    model_id=model_id,
                    version=version,
                    alias=alias,
                    requester=requester,
                    status=status.value,
                    comment=comment,
                    checks=_dumps([check_to_json(c) for c in checks]),
                    created_at=now,
                    decided_at=None if status is PromotionStatus.PENDING else now,
                )
                .returning(R.c.id)
            ).scalar_one()
        )

    def get_request_row(self, request_id: int, *, lock: bool = False) -> Row[Any]:
        """The request with its model's name and name key; NotFound if it does not exist."""
        query = (
            select(R, M.c.name.label("model_name"), M.c.name_key, M.c.deleted_at)
            .join(M, M.c.id == R.c.model_id)
            .where(R.c.id == request_id)
        )
        if lock:
            query = query.with_for_update(of=R)
        row = self.s.execute(query).first()
        if row is None:
            raise NotFound(f"promotion request {request_id} does not exist")
        return row

    def find_pending(self, model_id: int, version: int, alias_key: str) -> int | None:
        return self.s.execute(
            select(R.c.id)
            .where(
                R.c.model_id == model_id,
                func.lower(R.c.alias) == alias_key,
                R.c.version == version,
                R.c.status == PromotionStatus.PENDING.value,
            )
            .order_by(R.c.id)
            .limit(1)
            .with_for_update()
        ).scalar()

    def update_request(
        self,
        request_id: int,
        *,
        checks: Sequence[Check],
        status: PromotionStatus | None = None,
        now: int | None = None,
    ) -> None:
        values: dict[str, Any] = {"checks": _dumps([check_to_json(c) for c in checks])}
        if status is not None:
            values["status"] = status.value
            if status is not PromotionStatus.PENDING:
                values["decided_at"] = now
        self.s.execute(update(R).where(R.c.id == request_id).values(**values))

    def list_request_ids(
        self,
        *,
        readable: ReadFilter | None,
        status: PromotionStatus | None,
        model_id: int | None,
        limit: int,
        page_token: str | None,
    ) -> tuple[list[int], str | None]:
        """Ids of requests on live models the caller may read, newest first, one page."""
        query = (
            select(R.c.id)
            .join(M, M.c.id == R.c.model_id)
            .where(M.c.deleted_at.is_(None))
            .order_by(R.c.id.desc())
            .limit(limit + 1)
        )
        if readable is not None:
            query = query.where(readable_models(readable))
        if status is not None:
            query = query.where(R.c.status == status.value)
        if model_id is not None:
            query = query.where(R.c.model_id == model_id)
        if page_token:
            query = query.where(R.c.id < _decode_token(page_token))
        ids = [int(i) for i in self.s.execute(query).scalars()]
        if len(ids) > limit:
            return ids[:limit], _encode_token(ids[limit - 1])
        return ids, None

    def load_requests(self, request_ids: Sequence[int]) -> list[PromotionRequest]:
        """Domain values for ``request_ids``, in that order, with their approvals."""
        if not request_ids:
            return []
        rows = {
            int(r.id): r
            for r in self.s.execute(
                select(R, M.c.name.label("model_name"))
                .join(M, M.c.id == R.c.model_id)
                .where(R.c.id.in_(request_ids))
            )
        }
        decisions: dict[int, list[Approval]] = defaultdict(list)
        for a in self.s.execute(
            select(A).where(A.c.request_id.in_(request_ids)).order_by(A.c.at, A.c.id)
        ):
            decisions[int(a.request_id)].append(
                Approval(a.approver, a.decision, a.comment, to_datetime(a.at))
            )
        return [
            PromotionRequest(
                id=int(r.id),
                name=r.model_name,
                version=int(r.version),
                alias=r.alias,
                requester=r.requester,
                status=PromotionStatus(r.status),
                comment=r.comment,
                checks=tuple(check_from_json(c) for c in json.loads(r.checks)),
                approvals=tuple(decisions[int(r.id)]),
                created_at=to_datetime(r.created_at),
                decided_at=optional_datetime(r.decided_at),
            )
            for r in (rows.get(i) for i in request_ids)
            if r is not None
        ]

    # -- approvals -------------------------------------------------------------------------

    def decisions(self, request_id: int) -> list[Row[Any]]:
        return list(self.s.execute(select(A).where(A.c.request_id == request_id).order_by(A.c.id)))

    def add_decision(
        self, request_id: int, approver: str, decision: str, comment: str, now: int
    ) -> None:
        try:
            with self.s.begin_nested():
                self.s.execute(
                    insert(A).values(
                        request_id=request_id,
                        approver=approver,
                        decision=decision,
                        comment=comment,
                        at=now,
                    )
                )
        except IntegrityError:
            raise Conflict(
                f"{approver!r} has already decided on promotion request {request_id}"
            ) from None

    # -- what a gate reads about a version -------------------------------------------------

    def version_row(self, model_id: int, version: int) -> Row[Any] | None:
        return self.s.execute(
            select(model_versions).where(
                model_versions.c.model_id == model_id, model_versions.c.version == version
            )
        ).first()

    def metrics(self, version_id: int) -> dict[str, float]:
        return {
            str(k): float(v)
            for k, v in self.s.execute(
                select(version_metrics.c.key, version_metrics.c.value).where(
                    version_metrics.c.version_id == version_id
                )
            )
        }

    def scan(self, version_id: int) -> Row[Any] | None:
        """The version's scan verdict (status, quarantined), or None if never scanned."""
        return self.s.execute(
            select(version_scans).where(version_scans.c.version_id == version_id)
        ).first()


def _policy(row: Row[Any]) -> AliasPolicy:
    return AliasPolicy(
        id=int(row.id),
        model_pattern=row.model_pattern,
        alias_pattern=row.alias_pattern,
        min_role=Role.parse(row.min_role),
        approvals=int(row.approvals),
        conditions=tuple(condition_from_json(c) for c in json.loads(row.conditions)),
        require_clean_scan=bool(row.require_clean_scan),
        require_signature=bool(row.require_signature),
        created_at=to_datetime(row.created_at),
        created_by=row.created_by,
        require_compatible=bool(row.require_compatible),
    )


_TOKEN_PREFIX = "promotions:"  # noqa: S105 (a page cursor, not a secret)


def _encode_token(last_id: int) -> str:
    raw = f"{_TOKEN_PREFIX}{last_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> int:
    bad = InvalidParameter(
        "page_token is malformed; pass the next_page_token of the previous page unchanged"
    )
    if not isinstance(token, str) or len(token) > 64:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    if not raw.startswith(_TOKEN_PREFIX) or not raw[len(_TOKEN_PREFIX) :].isdigit():
        raise bad
    return int(raw[len(_TOKEN_PREFIX) :])
