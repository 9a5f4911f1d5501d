"""``/api/v1/signers`` (trusted signers) and ``…/versions/{version}/signatures``."""

from __future__ import annotations

import json as jsonlib
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from cairn.api.deps import Caller, Service, json
from cairn.api.lean import lean_router
from cairn.api.v1.schemas import Strict
from cairn.domain.signatures import signature_to_json, signer_to_json

router = lean_router(tags=["signatures"])


class SignerCreate(Strict):
    name: str
    kind: str = Field(
        description="'key': an EC public key (PEM); 'certificate': CA certificate(s) (PEM)"
    )
    material: str = Field(description="The PEM text.")


class SignerOut(BaseModel):
    name: str
    kind: str
    fingerprint: str
    material: str
    created_at: datetime
    created_by: str | None


class SignerList(BaseModel):
    signers: list[SignerOut]


class SignatureCreate(Strict):
    bundle: dict[str, Any] | str = Field(
        description="An OpenSSF model-signing bundle (Sigstore bundle JSON), as an object "
        "or as the text of the .sig file."
    )


class SignatureOut(BaseModel):
    id: int
    name: str
    version: int
    verified: bool
    signer: str | None
    identity: str | None
    digests: dict[str, str]
    message: str
    created_at: datetime
    created_by: str | None


class SignatureList(BaseModel):
    signatures: list[SignatureOut]


@router.get("/signers", response_model=SignerList)
def list_signers(service: Service, actor: Caller) -> JSONResponse:
    return json({"signers": [signer_to_json(s) for s in service.list_signers(actor)]})


@router.post("/signers", status_code=201, response_model=SignerOut)
def add_signer(body: SignerCreate, service: Service, actor: Caller) -> JSONResponse:
    signer = service.add_signer(actor, body.name, body.kind, body.material)
    return json(signer_to_json(signer), 201)


@router.delete("/signers/{name}", response_model=SignerOut)
def remove_signer(name: str, service: Service, actor: Caller) -> JSONResponse:
    """Stop trusting the signer ``name`` (in any case); answers with the one removed, named
    as it was stored."""
    return json(signer_to_json(service.remove_signer(actor, name)))


@router.post(
    "/models/{name}/versions/{version}/signatures", status_code=201, response_model=SignatureOut
)
def add_signature(
    name: str, version: str, body: SignatureCreate, service: Service, actor: Caller
) -> JSONResponse:
    """Check a bundle and record the verdict (``verified`` true or false, with a message)."""
    bundle = body.bundle
    data = bundle if isinstance(bundle, str) else jsonlib.dumps(bundle, separators=(",", ":"))
    signature = service.add_signature(actor, name, version, data)
    return json(signature_to_json(signature), 201)


@router.get("/models/{name}/versions/{version}/signatures", response_model=SignatureList)
def list_signatures(name: str, version: str, service: Service, actor: Caller) -> JSONResponse:
    signatures = service.list_signatures(actor, name, version)
    return json({"signatures": [signature_to_json(s) for s in signatures]})
