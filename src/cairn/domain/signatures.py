"""Model signatures: the signers an instance trusts and the verdicts on uploaded bundles.

A *trusted signer* is an elliptic-curve public key or a CA certificate (chain) that an
administrator configured; a *version signature* is an OpenSSF model-signing bundle someone
uploaded for a version, with the verdict Cairn reached when it checked it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from cairn.domain.codec import format_time, parse_time
from cairn.errors import InvalidParameter

_SIGNER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_signer_name(name: object) -> str:
    """Return ``name`` unchanged if it may name a trusted signer, else raise. Signers are
    identities, named as accounts are: two names that differ only by case are the same
    signer (``names.identity_key``; the service keeps one of them)."""
    if not isinstance(name, str) or not _SIGNER_NAME.fullmatch(name):
        raise InvalidParameter(
            f"signer name {name!r} must be 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


class SignerKind(StrEnum):
    KEY = "key"  # an elliptic-curve public key (PEM, SubjectPublicKeyInfo)
    CERTIFICATE = "certificate"  # one or more CA certificates (PEM) that anchor a chain

    @classmethod
    def parse(cls, value: object) -> SignerKind:
        try:
            return cls(str(value).lower())
        except ValueError:
            raise InvalidParameter(
                f"signer kind must be 'key' or 'certificate'; got {value!r}"
            ) from None


def material_digest(material: str) -> str:
    """``sha256:<hex>`` of a trusted signer's PEM material, as stored: which key (or CA
    chain) verified a signature, so that its verdict counts only while that same material
    is trusted, not merely a signer of the same name."""
    return "sha256:" + hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TrustedSigner:
    name: str
    kind: SignerKind
    material: str  # PEM
    fingerprint: str  # sha256:<hex> of the key's DER, or of the first certificate's DER
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class VersionSignature:
    id: int
    name: str  # the model
    version: int
    verified: bool
    signer: str | None  # the trusted signer that verified it
    identity: str | None  # key fingerprint or certificate subject
    digests: Mapping[str, str]  # path -> sha256:<hex>, as signed
    message: str  # why it is not verified (empty when it is)
    created_at: datetime
    created_by: str | None


# -- JSON, as the native API sends it (server, HTTP client and the CLI's --json) -------------


def signer_to_json(signer: TrustedSigner) -> dict[str, Any]:
    return {
        "name": signer.name,
        "kind": signer.kind.value,
        "fingerprint": signer.fingerprint,
        "material": signer.material,
        "created_at": format_time(signer.created_at),
        "created_by": signer.created_by,
    }


def signer_from_json(d: Mapping[str, Any]) -> TrustedSigner:
    return TrustedSigner(
        name=d["name"],
        kind=SignerKind(d["kind"]),
        material=d["material"],
        fingerprint=d["fingerprint"],
        created_at=_time(d["created_at"]),
        created_by=d.get("created_by"),
    )


def signature_to_json(signature: VersionSignature) -> dict[str, Any]:
    return {
        "id": signature.id,
        "name": signature.name,
        "version": signature.version,
        "verified": signature.verified,
        "signer": signature.signer,
        "identity": signature.identity,
        "digests": dict(signature.digests),
        "message": signature.message,
        "created_at": format_time(signature.created_at),
        "created_by": signature.created_by,
    }


def signature_from_json(d: Mapping[str, Any]) -> VersionSignature:
    return VersionSignature(
        id=int(d["id"]),
        name=d["name"],
        version=int(d["version"]),
        verified=bool(d["verified"]),
        signer=d.get("signer"),
        identity=d.get("identity"),
        digests=dict(d.get("digests") or {}),
        message=d.get("message") or "",
        created_at=_time(d["created_at"]),
        created_by=d.get("created_by"),
    )


def _time(value: str) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("a time is missing")
    return parsed
