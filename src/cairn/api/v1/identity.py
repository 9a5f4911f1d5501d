"""``/api/v1/login|logout|whoami``, ``/users``, ``/groups``, ``/grants``, ``/tokens``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.responses import JSONResponse, Response

from cairn.api.auth import SESSION_COOKIE, RateLimiter
from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.offload import brief

public = APIRouter(tags=["identity"])  # login only: the one route without a caller
router = lean_router(tags=["identity"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(_Body):
    user: str = Field(max_length=128)
    password: str = Field(max_length=1024)


class UserCreate(_Body):
    name: str
    password: str | None = None
    service: bool = False
    admin: bool = False


class UserUpdate(_Body):
    password: str | None = None
    admin: bool | None = None
    disabled: bool | None = None


class GroupCreate(_Body):
    name: str


class GrantSet(_Body):
    subject: str = Field(description="user:NAME or group:NAME")
    role: Literal["READ", "WRITE", "MANAGE", "read", "write", "manage"]
    model: str | None = None
    pattern: str | None = Field(None, description="'*', a prefix such as 'risk.*', or a name")


class TokenCreate(_Body):
    name: str = ""
    scope: Literal["read", "write", "admin"] = "read"
    expires_days: StrictInt | None = Field(90, description="null: never expires")
    user: str | None = Field(None, description="another account's token (ADMIN only)")


# What the routes answer (documented for the OpenAPI document; the service builds the JSON).


class LoginOut(BaseModel):
    user: str
    csrf_token: str = Field(description="Send as X-CSRF-Token on unsafe requests.")
    expires_in: int = Field(description="Seconds the session cookie lives.")


class WhoamiGrant(BaseModel):
    role: str
    model_id: int | None
    model: str | None
    pattern: str | None


class WhoamiOut(BaseModel):
    user: str
    is_admin: bool
    scope: str = Field(description="The token's scope: read, write or admin.")
    grants: list[WhoamiGrant]


class UserOut(BaseModel):
    name: str
    kind: str = Field(description="`user` or `service`")
    is_admin: bool
    has_password: bool
    created_at: datetime
    created_by: str | None
    disabled: bool
    groups: list[str]


class UserList(BaseModel):
    users: list[UserOut]


class GroupOut(BaseModel):
    name: str
    members: list[str]


class GroupList(BaseModel):
    groups: list[GroupOut]


class GrantOut(BaseModel):
    subject: str = Field(description="user:NAME or group:NAME")
    model: str | None
    pattern: str | None
    role: str | None
    created_at: datetime | None = Field(None, description="In listings.")
    created_by: str | None = Field(None, description="In listings.")


class GrantList(BaseModel):
    grants: list[GrantOut]


class TokenOut(BaseModel):
    id: int
    user: str
    name: str
    prefix: str = Field(
        description="The secret's first characters, to recognise it by ('(external)' for a "
        "bootstrap token not in the cairn_ format)."
    )
    scope: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class TokenCreated(TokenOut):
    token: str = Field(description="The secret; shown in this response only.")


class TokenList(BaseModel):
    tokens: list[TokenOut]


@public.post("/login", response_model=LoginOut)
def login(body: Login, request: Request, service: Service) -> JSONResponse:
    """Password login (for the UI): sets an HttpOnly session cookie and returns its CSRF
    token, which unsafe requests made with the cookie must send as ``X-CSRF-Token``."""
    limiter: RateLimiter = request.app.state.limiter
    client = request.client.host if request.client else "unknown"
    keys = (f"ip:{client}", f"user:{body.user.casefold()}")
    with limiter.guard(*keys, denial={"action": "login"}):
        session = service.login(
            body.user,
            body.password,
            request_id=request.headers.get("x-request-id", "")[:64] or uuid.uuid4().hex,
            client=client,
        )
    response = json({k: session[k] for k in ("user", "csrf_token", "expires_in")}, status=200)
    response.set_cookie(
        SESSION_COOKIE,
        session["session"],
        max_age=session["expires_in"],
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout", status_code=204)
def logout(request: Request, service: Service, actor: Caller) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        service.logout(actor, cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/whoami", response_model=WhoamiOut)
async def whoami(service: Service, actor: Caller) -> JSONResponse:
    return json(await brief(service, lambda: service.whoami(actor)))


@router.get("/users", response_model=UserList)
def list_users(service: Service, actor: Caller) -> JSONResponse:
    return json({"users": service.list_users(actor)})


@router.post("/users", status_code=201, response_model=UserOut)
def create_user(body: UserCreate, service: Service, actor: Caller) -> JSONResponse:
    user = service.create_user(
        actor, body.name, password=body.password, service=body.service, admin=body.admin
    )
    return json(user, status=201)


@router.patch("/users/{name}", response_model=UserOut)
def update_user(name: str, body: UserUpdate, service: Service, actor: Caller) -> JSONResponse:
    user = service.update_user(
        actor, name, password=body.password, admin=body.admin, disabled=body.disabled
    )
    return json(user)


@router.get("/groups", response_model=GroupList)
def list_groups(service: Service, actor: Caller) -> JSONResponse:
    return json({"groups": service.list_groups(actor)})


@router.post("/groups", status_code=201, response_model=GroupOut)
def create_group(body: GroupCreate, service: Service, actor: Caller) -> JSONResponse:
    return json(service.create_group(actor, body.name), status=201)


@router.delete("/groups/{name}", status_code=204)
def delete_group(name: str, service: Service, actor: Caller) -> Response:
    service.delete_group(actor, name)
    return Response(status_code=204)


@router.put("/groups/{name}/members/{user}", status_code=204)
def add_member(name: str, user: str, service: Service, actor: Caller) -> Response:
    service.set_membership(actor, name, user, member=True)
    return Response(status_code=204)


@router.delete("/groups/{name}/members/{user}", status_code=204)
def remove_member(name: str, user: str, service: Service, actor: Caller) -> Response:
    service.set_membership(actor, name, user, member=False)
    return Response(status_code=204)


@router.get("/grants", response_model=GrantList)
def list_grants(
    service: Service, actor: Caller, model: str | None = None, subject: str | None = None
) -> JSONResponse:
    return json({"grants": service.list_grants(actor, model=model, subject=subject)})


@router.put("/grants", response_model=GrantOut)
def set_grant(body: GrantSet, service: Service, actor: Caller) -> JSONResponse:
    grant = service.grant(actor, body.subject, body.role, model=body.model, pattern=body.pattern)
    return json(grant)


@router.delete("/grants", status_code=204)
def revoke_grant(
    subject: str,
    service: Service,
    actor: Caller,
    model: str | None = None,
    pattern: str | None = None,
) -> Response:
    service.revoke(actor, subject, model=model, pattern=pattern)
    return Response(status_code=204)


@router.get("/tokens", response_model=TokenList)
def list_tokens(service: Service, actor: Caller, all: bool = False) -> JSONResponse:
    return json({"tokens": service.list_tokens(actor, all_users=all)})


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, service: Service, actor: Caller) -> JSONResponse:
    """A new token; its secret is in this response only."""
    token = service.create_token(
        actor, name=body.name, scope=body.scope, expires_days=body.expires_days, user=body.user
    )
    return json(token, status=201)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: int, service: Service, actor: Caller) -> Response:
    service.revoke_token(actor, token_id)
    return Response(status_code=204)
