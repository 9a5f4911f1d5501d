"""Request-scoped dependencies shared by every router."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import JSONResponse

from cairn.api.auth import authenticate
from cairn.api.responses import FastJSONResponse
from cairn.domain.models import Actor
from cairn.service.registry import RegistryService

ANONYMOUS = Actor("anonymous")  # what the audit log names a caller who gave no credentials


async def get_service(request: Request) -> RegistryService:
    service: RegistryService = request.app.state.service
    return service


Service = Annotated[RegistryService, Depends(get_service)]
Caller = Annotated[Actor, Depends(authenticate)]  # the same dependency the routers require


def json(data: Any, status: int = 200) -> JSONResponse:
    return FastJSONResponse(data, status_code=status)
