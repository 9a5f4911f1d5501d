"""Checking an OpenSSF model-signing bundle against the signers an instance trusts.

No database and no network here: ``verify`` takes the bundle's bytes, the trusted signers
and the version's files (path → ``sha256:<hex>``, which Cairn verified when the bytes were
uploaded) and returns a ``Verdict``.

The cryptography stays in the ``model-signing`` library: its key and certificate verifiers
check the DSSE signature (and, for certificates, the chain up to a trusted CA, with
pyOpenSSL) and rebuild the signed manifest from the in-toto statement, including the check
that the statement's root digest covers every listed resource. What the library would do
next, re-hash a model directory on disk, Cairn does from the digests it already holds:
the signed set of (path, sha256) must equal the version's files exactly.

Only bundles that sign per-file SHA-256 digests can be compared that way; sharded manifests
and other hash algorithms are reported as unsupported rather than guessed at. Keyless
(Sigstore, Fulcio/Rekor) bundles need the network and are not accepted.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cairn.domain.signatures import SignerKind
from cairn.errors import InvalidParameter

MAX_BUNDLE_BYTES = 1 << 20  # a per-file manifest of ~10k files fits well inside this
MAX_MATERIAL_BYTES = 64 << 10
SUPPORTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")  # what model-signing accepts
_LISTED = 5  # paths named per kind of difference in a message


@dataclass(frozen=True, slots=True)
class Trusted:
    """A trusted signer as the engine needs it: its name, kind and PEM material."""

    name: str
    kind: SignerKind
    pem: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What checking one bundle established.

    ``signer``, ``identity`` and ``digests`` are set once a trusted signer authenticated
    the bundle, even when its files then differ from the version's (``verified`` is false
    and ``message`` says how).
    """

    verified: bool
    message: str = ""
    signer: str | None = None
    identity: str | None = None
    digests: Mapping[str, str] = field(default_factory=dict)


def utf8(what: str, text: str) -> bytes:
    """``text`` as UTF-8, or ``InvalidParameter``: a JSON string can carry half a surrogate
    pair (``\\ud800``), which is not a character and has no UTF-8."""
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise InvalidParameter(
            f"{what} contains U+{ord(text[exc.start]):04X}, half of a UTF-16 surrogate pair, "
            "which is not a character; send the text as UTF-8"
        ) from None


# -- trusted signer material ---------------------------------------------------------------


def normalize_material(kind: SignerKind, pem: str) -> tuple[str, str]:
    """Validate a signer's PEM; return it re-encoded canonically and its fingerprint.

    A key must be an elliptic-curve public key on a curve model-signing supports; a
    certificate signer is one or more PEM certificates (a CA, optionally with its
    intermediates). The fingerprint is ``sha256:<hex>`` over the DER of the key, or of the
    first certificate.
    """
    data = utf8("signer material", pem)
    if len(data) > MAX_MATERIAL_BYTES:
        raise InvalidParameter(f"signer material is larger than {MAX_MATERIAL_BYTES} bytes")
    if kind is SignerKind.KEY:
        key = _load_public_key(data)
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        canonical = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return canonical.decode(), _fingerprint(der)
    certificates = _load_certificates(data)
    canonical = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    return canonical.decode(), _fingerprint(
        certificates[0].public_bytes(serialization.Encoding.DER)
    )


def _load_public_key(data: bytes) -> ec.EllipticCurvePublicKey:
    if b"PRIVATE KEY" in data:
        raise InvalidParameter(
            "signer material is a private key; give the PEM public key "
            "(openssl ec -in key.pem -pubout)"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise InvalidParameter(
            "signer material is not a PEM public key ('-----BEGIN PUBLIC KEY-----')"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidParameter(
            f"signer key is {type(key).__name__.removeprefix('_')}; model-signing verifies "
            f"elliptic-curve keys ({', '.join(SUPPORTED_CURVES)})"
        )
    if key.curve.name not in SUPPORTED_CURVES:
        raise InvalidParameter(
            f"signer key uses curve {key.curve.name}; use one of {', '.join(SUPPORTED_CURVES)}"
        )
    return key


def _load_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InvalidParameter(
            "signer material is not PEM certificates ('-----BEGIN CERTIFICATE-----')"
        ) from None
    if not certificates:
        raise InvalidParameter("signer material holds no certificate")
    return certificates


def _fingerprint(der: bytes) -> str:
    return "sha256:" + hashlib.sha256(der).hexdigest()


# -- bundles -------------------------------------------------------------------------------


def parse_bundle(data: bytes) -> dict[str, Any]:
    """The bundle as JSON, or ``InvalidParameter`` when it is not one at all.

    Checks only the shape: a JSON object with a media type, verification material and a
    DSSE envelope. Whether it verifies is ``verify``'s question.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        raise InvalidParameter(f"signature bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        bundle = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidParameter("signature bundle is not UTF-8 JSON") from None
    except ValueError:
        raise InvalidParameter("signature bundle is not JSON") from None
    except RecursionError:  # well under the size limit, '[' * 100_000 gets here
        raise InvalidParameter(
            "signature bundle is not a Sigstore bundle: its JSON is nested too deeply"
        ) from None
    if not isinstance(bundle, dict):
        raise InvalidParameter("signature bundle must be a JSON object (a Sigstore bundle)")
    missing = [k for k in ("mediaType", "verificationMaterial") if k not in bundle]
    if missing or not isinstance(bundle.get("verificationMaterial"), dict):
        raise InvalidParameter(
            "signature bundle is not a Sigstore bundle: it needs 'mediaType', "
            "'verificationMaterial' and 'dsseEnvelope'"
        )
    if not isinstance(bundle.get("dsseEnvelope"), dict):
        raise InvalidParameter(
            "signature bundle carries no DSSE envelope; an OpenSSF model-signing bundle "
            "signs an in-toto statement in 'dsseEnvelope'"
        )
    return bundle


def load_library() -> None:
    """Import model-signing now (it takes about a second the first time)."""
    import model_signing._signing.sign_certificate
    import model_signing._signing.sign_ec_key  # noqa: F401


def verify(data: bytes, trusted: Sequence[Trusted], files: Mapping[str, str]) -> Verdict:
    """Check a model-signing bundle against ``trusted`` signers and a version's ``files``.

    Raises ``InvalidParameter`` when ``data`` is not a Sigstore bundle; every other failure
    is a ``Verdict`` with ``verified=False`` and a message saying why.
    """
    parsed = parse_bundle(data)
    from model_signing._signing import sign_sigstore_pb  # heavy import (~1 s): only here

    with tempfile.TemporaryDirectory(prefix="cairn-signature-") as tmp:
        workdir = Path(tmp)
        bundle_path = workdir / "bundle.sig"
        bundle_path.write_bytes(data)
        try:
            signature = sign_sigstore_pb.Signature.read(bundle_path)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidParameter(
                f"signature bundle is not a valid Sigstore bundle: {_first_line(exc)}"
            ) from None
        kind = _bundle_kind(parsed["verificationMaterial"])
        if kind is None:
            return Verdict(
                verified=False,
                message=(
                    "the bundle is signed keyless (Sigstore certificate and transparency "
                    "log), which needs the network; Cairn verifies key- and "
                    "certificate-based model-signing bundles offline"
                ),
            )
        candidates = [t for t in trusted if t.kind is kind]
        if not candidates:
            return Verdict(
                verified=False,
                message=f"the bundle is {kind.value}-signed and no trusted {kind.value} "
                "signer is configured (cairn signers add)",
            )
        failures: list[str] = []
        for index, signer in enumerate(candidates):
            try:
                manifest, identity = _authenticate(signature, signer, workdir / f"{index}.pem")
            except Exception as exc:  # any failure of a check means "not this signer"
                failures.append(f"{signer.name}: {_explain(exc)}")
                continue
            return _compare(signer.name, identity, manifest, files)
        return Verdict(
            verified=False,
            message="no trusted signer verified the bundle (" + "; ".join(failures) + ")",
        )


def _bundle_kind(material: Mapping[str, Any]) -> SignerKind | None:
    if material.get("publicKey") is not None:
        return SignerKind.KEY
    if material.get("x509CertificateChain") is not None:
        return SignerKind.CERTIFICATE
    return None


def _authenticate(signature: Any, signer: Trusted, pem_path: Path) -> tuple[Any, str]:
    """The signed manifest and the signer's identity, or an exception from the library."""
    from model_signing._signing import sign_certificate, sign_ec_key

    pem_path.write_text(signer.pem)
    if signer.kind is SignerKind.KEY:
        manifest = sign_ec_key.Verifier(pem_path).verify(signature)
        key = serialization.load_pem_public_key(signer.pem.encode())
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return manifest, _fingerprint(der)
    manifest = sign_certificate.Verifier([pem_path]).verify(signature)
    chain = signature.bundle.verification_material.x509_certificate_chain
    leaf = x509.load_der_x509_certificate(chain.certificates[0].raw_bytes)
    return manifest, leaf.subject.rfc4514_string()


def _explain(exc: Exception) -> str:
    if isinstance(exc, InvalidSignature):
        return "the signature does not match the signed statement"
    name = type(exc).__name__
    if name == "X509StoreContextError":
        return f"the certificate chain does not lead to this signer ({_first_line(exc)})"
    if isinstance(exc, ValueError):
        return _first_line(exc) or name
    return f"{name}: {_first_line(exc)}" if str(exc) else name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def _compare(signer: str, identity: str, manifest: Any, files: Mapping[str, str]) -> Verdict:
    """Compare the authenticated manifest with the version's files, path by path."""
    serialization_type: Mapping[str, Any] = manifest.serialization_type
    method = serialization_type.get("method")
    hash_type = serialization_type.get("hash_type")
    descriptors = list(manifest.resource_descriptors())
    algorithms = {d.digest.algorithm for d in descriptors}
    if method != "files" or hash_type != "sha256" or algorithms - {"sha256"}:
        how = f"method {method!r}, hash {hash_type!r}"
        if method == "shards":
            how += f", shard size {serialization_type.get('shard_size')}"
        return Verdict(
            verified=False,
            signer=signer,
            identity=identity,
            message=(
                f"unsupported hashing: the bundle signs {how}; Cairn compares per-file "
                "sha256 digests (sign with hashing_algorithm='sha256' and file serialization)"
            ),
        )
    signed = {str(d.identifier): "sha256:" + d.digest.digest_hex for d in descriptors}
    if not signed:
        return Verdict(
            verified=False, signer=signer, identity=identity, message="the bundle signs no files"
        )
    differences = _differences(signed, files)
    if differences:
        return Verdict(
            verified=False,
            signer=signer,
            identity=identity,
            digests=signed,
            message="the signed files differ from the version's files: " + differences,
        )
    return Verdict(verified=True, signer=signer, identity=identity, digests=signed)


def _differences(signed: Mapping[str, str], files: Mapping[str, str]) -> str:
    unsigned = sorted(set(files) - set(signed))
    absent = sorted(set(signed) - set(files))
    changed = sorted(p for p in set(signed) & set(files) if signed[p] != files[p])
    parts = []
    if unsigned:
        parts.append("not signed: " + _listing(unsigned))
    if absent:
        parts.append("signed but not in the version: " + _listing(absent))
    if changed:
        parts.append("different digest: " + _listing(changed))
    return "; ".join(parts)


def _listing(paths: Iterable[str]) -> str:
    paths = list(paths)
    shown = ", ".join(paths[:_LISTED])
    return shown if len(paths) <= _LISTED else f"{shown} and {len(paths) - _LISTED} more"
