"""Model signatures: the signers an instance trusts and the verdicts on uploaded bundles.

A *trusted signer* is an elliptic-curve public key or a CA certificate (chain) that an
administrator configured; a *version signature* is an OpenSSF model-signing bundle someone
uploaded for a version, with the verdict Cairn reached when it checked it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cairn.errors import InvalidParameter


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
