"""``/api/v1/policies`` (protected aliases) and ``/api/v1/promotions`` (requests, approvals)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.v1.schemas import Strict
from cairn.domain.promotion import DEFAULT_MIN_ROLE, policy_to_json, request_to_json

router = lean_router(tags=["promotions"])


class ConditionIn(Strict):
    metric: str
    op: str = Field(description="One of >=, >, <=, <, ==, !=.")
    value: float


class PolicyPut(Strict):
    model_pattern: str = Field(description="'*', a prefix such as 'risk.*', or a model name.")
    alias_pattern: str = Field(description="'*', a prefix such as 'prod*', or an alias.")
    min_role: str = Field(DEFAULT_MIN_ROLE.name, description="WRITE or MANAGE.")
    approvals: int = Field(0, description="Approvals needed from people other than the requester.")
    conditions: list[ConditionIn] = Field(default_factory=list)
    require_clean_scan: bool = False
    require_signature: bool = False
    require_compatible: bool = Field(
        False,
        description="The new version's MLflow signature must break no caller of the version "
        "the alias points at (`GET /api/v1/diff?signature=true` says what breaks).",
    )


class ConditionOut(BaseModel):
    metric: str
    op: str
    value: float


class PolicyOut(BaseModel):
    id: int
    model_pattern: str
    alias_pattern: str
    min_role: str
    approvals: int
    conditions: list[ConditionOut]
    require_clean_scan: bool
    require_signature: bool
    require_compatible: bool
    created_at: datetime
    created_by: str | None


class PolicyList(BaseModel):
    policies: list[PolicyOut]


class PromotionCreate(Strict):
    model: str
    version: int = Field(ge=1)
    alias: str
    comment: str = ""


class Decision(Strict):
    comment: str = ""


def _comment(body: Decision | None) -> str:
    return "" if body is None else body.comment


class CheckOut(BaseModel):
    check: str
    passed: bool
    detail: str


class ApprovalOut(BaseModel):
    approver: str
    decision: str
    comment: str
    at: datetime


class PromotionOut(BaseModel):
    id: int
    name: str
    version: int
    alias: str
    requester: str
    status: str = Field(description="pending, applied, rejected or cancelled.")
    comment: str
    checks: list[CheckOut]
    approvals: list[ApprovalOut]
    created_at: datetime
    decided_at: datetime | None


class PromotionPage(BaseModel):
    promotions: list[PromotionOut]
    next_page_token: str | None


# -- policies ----------------------------------------------------------------------------


@router.get("/policies", response_model=PolicyList)
def list_policies(service: Service, actor: Caller, model: str | None = None) -> JSONResponse:
    """Every policy (instance ADMIN), or the policies that apply to ``model``."""
    policies = service.list_policies(actor, model=model)
    return json({"policies": [policy_to_json(p) for p in policies]})


@router.put("/policies", response_model=PolicyOut)
def put_policy(body: PolicyPut, service: Service, actor: Caller) -> JSONResponse:
    """Create the policy of (model_pattern, alias_pattern), or replace its rules."""
    policy = service.set_policy(
        actor,
        body.model_pattern,
        body.alias_pattern,
        min_role=body.min_role,
        approvals=body.approvals,
        conditions=[c.model_dump() for c in body.conditions],
        require_clean_scan=body.require_clean_scan,
        require_signature=body.require_signature,
        require_compatible=body.require_compatible,
    )
    return json(policy_to_json(policy))


@router.delete("/policies/{policy_id}", status_code=204)
def delete_policy(policy_id: int, service: Service, actor: Caller) -> Response:
    service.delete_policy(actor, policy_id)
    return Response(status_code=204)


# -- promotions --------------------------------------------------------------------------


@router.post("/promotions", status_code=201, response_model=PromotionOut)
def promote(body: PromotionCreate, service: Service, actor: Caller) -> JSONResponse:
    """Ask to point ``alias`` at ``version``: ``applied`` when the gate let it move now,
    ``pending`` when approvals are needed; a failing check is 409 and records nothing."""
    request = service.promote(actor, body.model, body.version, body.alias, comment=body.comment)
    return json(request_to_json(request), 201)


@router.get("/promotions", response_model=PromotionPage)
def list_promotions(
    service: Service,
    actor: Caller,
    status: str | None = None,
    model: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> JSONResponse:
    page = service.list_requests(
        actor, status=status, model=model, max_results=max_results, page_token=page_token
    )
    return json(
        {
            "promotions": [request_to_json(r) for r in page.items],
            "next_page_token": page.next_page_token,
        }
    )


@router.get("/promotions/{request_id}", response_model=PromotionOut)
def get_promotion(request_id: int, service: Service, actor: Caller) -> JSONResponse:
    return json(request_to_json(service.get_request(actor, request_id)))


@router.post("/promotions/{request_id}/approve", response_model=PromotionOut)
def approve(
    request_id: int, service: Service, actor: Caller, body: Decision | None = None
) -> JSONResponse:
    """Approve; the alias moves when the approvals are in and every check passes now."""
    return json(request_to_json(service.approve(actor, request_id, comment=_comment(body))))


@router.post("/promotions/{request_id}/reject", response_model=PromotionOut)
def reject(
    request_id: int, service: Service, actor: Caller, body: Decision | None = None
) -> JSONResponse:
    return json(request_to_json(service.reject(actor, request_id, comment=_comment(body))))


@router.post("/promotions/{request_id}/cancel", response_model=PromotionOut)
def cancel(
    request_id: int, service: Service, actor: Caller, body: Decision | None = None
) -> JSONResponse:
    return json(request_to_json(service.cancel(actor, request_id, comment=_comment(body))))
