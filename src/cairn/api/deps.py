"""Request-scoped dependencies shared by every router."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import JSONResponse

from cairn.domain.models import Actor
from cairn.service.registry import RegistryService

ANONYMOUS = Actor("anonymous", is_admin=True)  # interim: the next commit checks tokens


def get_service(request: Request) -> RegistryService:
    service: RegistryService = request.app.state.service
    return service


def get_actor(request: Request) -> Actor:
    """Who is calling. Until tokens are checked (security layer) every caller is anonymous."""
    actor: Actor = getattr(request.state, "actor", ANONYMOUS)
    return actor


Service = Annotated[RegistryService, Depends(get_service)]
Caller = Annotated[Actor, Depends(get_actor)]


def json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)
