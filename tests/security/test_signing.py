"""Signature verification: OpenSSF model-signing bundles made in the test, checked offline.

Keys and certificates are generated here (EC P-256; a self-made CA and a code-signing leaf);
the model folder is signed with model-signing's own signing API (per-file sha256), the same
files are pushed as a version, and the bundle is uploaded. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import model_signing
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cairn.cli.main import app
from cairn.client.base import BaseClient
from cairn.domain.access import Actor, Grant, Role, Scope
from cairn.domain.models import SYSTEM, FileEntry, VersionSpec
from cairn.domain.signatures import SignerKind
from cairn.errors import Conflict, InvalidParameter, NotFound, PermissionDenied
from cairn.service import signing
from cairn.service.registry import RegistryService
from cairn.settings import Settings
from cairn.store.metadata.signatures_store import SignatureStore

FILES = {
    "model.safetensors": b"\x00weights" * 100,
    "config/params.json": b'{"layers": 2}',
    "README.md": b"# a model\n",
}
WRITER = Actor("writer", user_id=7, grants=(Grant(Role.WRITE, pattern="*"),))
READER = Actor("reader", user_id=8, grants=(Grant(Role.READ, pattern="*"),))


# -- key material, made here ---------------------------------------------------------------


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def write_private(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_text(private_pem(key))
    return path


def key_fingerprint(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cairn Tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, subject),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = dict(digital_signature=False, key_cert_sign=True, crl_sign=True)
    else:
        usage = dict(digital_signature=True, key_cert_sign=False, crl_sign=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    builder = builder.add_extension(
        x509.KeyUsage(
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
            **usage,
        ),
        critical=True,
    )
    return builder.sign(issuer_key, hashes.SHA256())


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Pki:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate


def make_pki(subject: str = "release-bot") -> Pki:
    ca_key, leaf_key = new_key(), new_key()
    ca = certificate("Cairn Test CA", ca_key, None, ca_key, ca=True)
    leaf = certificate(subject, leaf_key, ca, ca_key, ca=False)
    return Pki(ca_key, ca, leaf_key, leaf)


# -- signing with model-signing's API --------------------------------------------------------


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def per_file_sha256() -> Any:
    return model_signing.hashing.Config().use_file_serialization(hashing_algorithm="sha256")


def sign_with_key(tmp: Path, key: ec.EllipticCurvePrivateKey, files: dict[str, bytes]) -> bytes:
    model = write_tree(tmp / "model", files)
    bundle = tmp / "model.sig"
    model_signing.signing.Config().set_hashing_config(per_file_sha256()).use_elliptic_key_signer(
        private_key=write_private(key, tmp / "signing-key.pem")
    ).sign(model, bundle)
    return bundle.read_bytes()


def sign_with_certificate(tmp: Path, pki: Pki, files: dict[str, bytes]) -> bytes:
    model = write_tree(tmp / "model", files)
    (tmp / "leaf.pem").write_text(cert_pem(pki.leaf))
    (tmp / "ca.pem").write_text(cert_pem(pki.ca))
    bundle = tmp / "model.sig"
    model_signing.signing.Config().set_hashing_config(per_file_sha256()).use_certificate_signer(
        private_key=write_private(pki.leaf_key, tmp / "leaf-key.pem"),
        signing_certificate=tmp / "leaf.pem",
        certificate_chain=[tmp / "ca.pem"],
    ).sign(model, bundle)
    return bundle.read_bytes()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(service: RegistryService, name: str, files: dict[str, bytes]) -> int:
    spec = VersionSpec(files=tuple(FileEntry(p, len(b), digest(b)) for p, b in files.items()))
    version = service.create_version(SYSTEM, name, spec)
    for data in files.values():
        if digest(data) in service.missing_blobs(SYSTEM, name, version.version):
            service.put_blob(SYSTEM, name, version.version, digest(data), [data])
    return version.version


def version_id(service: RegistryService, name: str, version: int) -> int:
    def run(s: Any) -> int:
        from cairn.store.metadata.models_store import ModelStore
        from cairn.store.metadata.versions_store import VersionStore

        model = ModelStore(s).get_live(name)
        return int(VersionStore(s).get(model.id, name, version).id)

    return service.db.read(run)


def has_verified(service: RegistryService, name: str, version: int) -> bool:
    vid = version_id(service, name, version)
    return service.db.read(lambda s: SignatureStore(s).has_verified(vid))


@pytest.fixture
def model(service: RegistryService) -> int:
    service.create_model(SYSTEM, "fraud")
    return push(service, "fraud", FILES)


# -- the service -----------------------------------------------------------------------------


def test_key_signed_bundle_is_verified_with_identity_and_digests(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    key = new_key()
    service.add_signer(SYSTEM, "release", "key", public_pem(key))
    bundle = sign_with_key(tmp_path, key, FILES)
    assert not has_verified(service, "fraud", model)

    result = service.add_signature(WRITER, "fraud", model, bundle)

    assert result.verified, result.message
    assert result.signer == "release"
    assert result.identity == key_fingerprint(key)
    assert result.digests == {p: digest(b) for p, b in sorted(FILES.items())}
    assert result.message == "" and result.created_by == "writer"
    listed = service.list_signatures(READER, "fraud", model)
    assert [(s.id, s.verified, s.identity) for s in listed] == [
        (result.id, True, key_fingerprint(key))
    ]
    assert has_verified(service, "fraud", model)


def test_certificate_signed_bundle_is_verified_against_the_trusted_ca(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    pki = make_pki("release-bot")
    service.add_signer(SYSTEM, "corp-ca", SignerKind.CERTIFICATE, cert_pem(pki.ca))
    bundle = sign_with_certificate(tmp_path, pki, FILES)

    result = service.add_signature(WRITER, "fraud", model, bundle)

    assert result.verified, result.message
    assert result.signer == "corp-ca"
    assert result.identity is not None and "CN=release-bot" in result.identity
    assert has_verified(service, "fraud", model)


def test_certificate_from_another_ca_is_not_verified(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    trusted, rogue = make_pki(), make_pki("impostor")
    service.add_signer(SYSTEM, "corp-ca", "certificate", cert_pem(trusted.ca))
    bundle = sign_with_certificate(tmp_path, rogue, FILES)

    result = service.add_signature(WRITER, "fraud", model, bundle)

    assert not result.verified
    assert "corp-ca" in result.message and "certificate chain" in result.message
    assert result.identity is None and result.digests == {}
    assert not has_verified(service, "fraud", model)


def test_tampered_file_is_recorded_unverified_with_the_difference(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    key = new_key()
    service.add_signer(SYSTEM, "release", "key", public_pem(key))
    signed = dict(FILES, **{"model.safetensors": b"\x00weights" * 99 + b"\x00backdoor"})
    bundle = sign_with_key(tmp_path, key, signed)

    result = service.add_signature(WRITER, "fraud", model, bundle)

    assert not result.verified
    assert "different digest: model.safetensors" in result.message
    assert result.signer == "release" and result.identity == key_fingerprint(key)
    assert result.digests["model.safetensors"] == digest(signed["model.safetensors"])
    assert [s.verified for s in service.list_signatures(SYSTEM, "fraud", model)] == [False]
    assert not has_verified(service, "fraud", model)


def test_extra_and_missing_files_are_named(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    key = new_key()
    service.add_signer(SYSTEM, "release", "key", public_pem(key))
    signed = {p: b for p, b in FILES.items() if p != "README.md"}
    signed["extra.bin"] = b"not in the version"
    result = service.add_signature(WRITER, "fraud", model, sign_with_key(tmp_path, key, signed))
    assert not result.verified
    assert "not signed: README.md" in result.message
    assert "signed but not in the version: extra.bin" in result.message


def test_untrusted_key_is_not_verified(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    service.add_signer(SYSTEM, "release", "key", public_pem(new_key()))
    bundle = sign_with_key(tmp_path, new_key(), FILES)

    result = service.add_signature(WRITER, "fraud", model, bundle)

    assert not result.verified
    assert result.message.startswith("no trusted signer verified the bundle (release: ")
    assert result.signer is None and result.identity is None
    assert not has_verified(service, "fraud", model)


def test_no_trusted_signer_configured_is_said_plainly(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    result = service.add_signature(
        WRITER, "fraud", model, sign_with_key(tmp_path, new_key(), FILES)
    )
    assert not result.verified
    assert "no trusted key signer is configured" in result.message


def test_forged_statement_fails_the_signature_check(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    """Swap the signed statement for another one (digests of other bytes): the DSSE
    signature no longer matches, whatever the statement says."""
    key = new_key()
    service.add_signer(SYSTEM, "release", "key", public_pem(key))
    honest = json.loads(sign_with_key(tmp_path / "a", key, FILES))
    other = json.loads(sign_with_key(tmp_path / "b", new_key(), {"evil.bin": b"x"}))
    honest["dsseEnvelope"]["payload"] = other["dsseEnvelope"]["payload"]

    result = service.add_signature(WRITER, "fraud", model, json.dumps(honest))

    assert not result.verified
    assert "signature does not match" in result.message


def test_keyless_bundle_is_recorded_as_not_verifiable_offline(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    """A Sigstore keyless bundle carries one Fulcio certificate (and log entries)."""
    pki = make_pki()
    service.add_signer(SYSTEM, "corp-ca", "certificate", cert_pem(pki.ca))
    bundle = json.loads(sign_with_certificate(tmp_path, pki, FILES))
    chain = bundle["verificationMaterial"].pop("x509CertificateChain")
    bundle["verificationMaterial"]["certificate"] = chain["certificates"][0]

    result = service.add_signature(WRITER, "fraud", model, json.dumps(bundle))

    assert not result.verified and "keyless" in result.message
    assert not has_verified(service, "fraud", model)


def test_sharded_hashing_is_reported_unsupported(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    key = new_key()
    service.add_signer(SYSTEM, "release", "key", public_pem(key))
    model_dir = write_tree(tmp_path / "model", FILES)
    hashing = model_signing.hashing.Config().use_shard_serialization(
        hashing_algorithm="sha256", shard_size=64
    )
    model_signing.signing.Config().set_hashing_config(hashing).use_elliptic_key_signer(
        private_key=write_private(key, tmp_path / "k.pem")
    ).sign(model_dir, tmp_path / "model.sig")

    result = service.add_signature(WRITER, "fraud", model, (tmp_path / "model.sig").read_bytes())

    assert not result.verified
    assert result.message.startswith("unsupported hashing: the bundle signs method 'shards'")
    assert result.signer == "release"


@pytest.mark.parametrize(
    "bundle",
    [
        b"not json",
        b"[1, 2]",
        b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}',
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "verificationMaterial": {"publicKey": {"hint": "x"}},
                "messageSignature": {},
            }
        ).encode(),
        json.dumps(
            {
                "mediaType": "text/plain",
                "verificationMaterial": {"publicKey": {"hint": "x"}},
                "dsseEnvelope": {"payload": "", "payloadType": "x", "signatures": []},
            }
        ).encode(),
        b"\xff\xfe{}",
    ],
)
def test_malformed_bundle_is_refused_and_nothing_recorded(
    service: RegistryService, model: int, bundle: bytes
) -> None:
    service.add_signer(SYSTEM, "release", "key", public_pem(new_key()))
    with pytest.raises(InvalidParameter, match="bundle"):
        service.add_signature(WRITER, "fraud", model, bundle)
    assert service.list_signatures(SYSTEM, "fraud", model) == []


def test_text_that_is_not_unicode_is_refused_not_a_500(
    service: RegistryService, model: int, api: TestClient
) -> None:
    """Half a surrogate pair (JSON can carry one: "\\ud800") cannot be UTF-8 encoded: a
    bundle or signer material holding one is refused (400), not an internal error."""
    with pytest.raises(InvalidParameter, match="bundle"):
        service.add_signature(WRITER, "fraud", model, "{\ud800}")
    with pytest.raises(InvalidParameter, match="material"):
        service.add_signer(SYSTEM, "release", "key", "-----BEGIN PUBLIC KEY-----\ud800")
    headers = {"Content-Type": "application/json"}
    for url, body in (
        ("/api/v1/signers", '{"name": "x", "kind": "key", "material": "\\ud800"}'),
        ("/api/v1/models/fraud/versions/1/signatures", '{"bundle": "\\udc00{}"}'),
    ):
        answer = api.post(url, content=body, headers=headers)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert service.list_signatures(SYSTEM, "fraud", model) == []
    assert service.list_signers(SYSTEM) == []


def test_a_deeply_nested_bundle_is_refused_not_a_500(
    service: RegistryService, model: int, api: TestClient
) -> None:
    """Well under the size limit, a bundle of nested arrays or objects exhausts Python's
    recursion limit in ``json.loads``: refused as not a bundle (400), nothing recorded."""
    service.add_signer(SYSTEM, "release", "key", public_pem(new_key()))
    nested = '{"mediaType": "x", "verificationMaterial": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001
    for bundle in ("[" * 100_000 + "]" * 100_000, nested):
        with pytest.raises(InvalidParameter, match="nested"):
            service.add_signature(WRITER, "fraud", model, bundle)
    answer = api.post("/api/v1/models/fraud/versions/1/signatures", json={"bundle": nested})
    assert answer.status_code == 400, answer.text
    assert service.list_signatures(SYSTEM, "fraud", model) == []


def test_oversized_bundle_is_refused(service: RegistryService, model: int) -> None:
    with pytest.raises(InvalidParameter, match="larger than"):
        service.add_signature(WRITER, "fraud", model, b" " * (signing.MAX_BUNDLE_BYTES + 1))


def test_signing_needs_write_and_reading_needs_read(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    bundle = sign_with_key(tmp_path, new_key(), FILES)
    with pytest.raises(PermissionDenied):
        service.add_signature(READER, "fraud", model, bundle)
    stranger = Actor("stranger", user_id=9)
    with pytest.raises(NotFound):
        service.add_signature(stranger, "fraud", model, bundle)
    with pytest.raises(NotFound):  # authorization comes before looking at the bundle
        service.add_signature(stranger, "fraud", model, b"not json")
    with pytest.raises(NotFound):
        service.list_signatures(stranger, "fraud", model)
    assert service.list_signatures(SYSTEM, "fraud", model) == []


def test_only_ready_versions_can_be_signed(service: RegistryService, tmp_path: Path) -> None:
    service.create_model(SYSTEM, "m")
    spec = VersionSpec(files=(FileEntry("a", 1, digest(b"a")),))
    pending = service.create_version(SYSTEM, "m", spec)  # no bytes uploaded: PENDING
    with pytest.raises(InvalidParameter, match="PENDING"):
        service.add_signature(
            SYSTEM, "m", pending.version, sign_with_key(tmp_path, new_key(), {"a": b"a"})
        )


def test_non_admin_cannot_manage_signers(service: RegistryService) -> None:
    pem = public_pem(new_key())
    # an administrator whose token is only write-scoped does not hold the instance role
    admin_with_write_token = Actor("boss", is_admin=True, scope=Scope.WRITE)
    for actor in (WRITER, admin_with_write_token):
        with pytest.raises(PermissionDenied):
            service.add_signer(actor, "release", "key", pem)
        with pytest.raises(PermissionDenied):
            service.list_signers(actor)
    service.add_signer(SYSTEM, "release", "key", pem)
    with pytest.raises(PermissionDenied):
        service.remove_signer(WRITER, "release")
    assert [s.name for s in service.list_signers(SYSTEM)] == ["release"]


def test_signer_material_is_validated(service: RegistryService) -> None:
    key = new_key()
    with pytest.raises(InvalidParameter, match="private key"):
        service.add_signer(SYSTEM, "a", "key", private_pem(key))
    with pytest.raises(InvalidParameter, match="not a PEM public key"):
        service.add_signer(SYSTEM, "a", "key", "hello")
    with pytest.raises(InvalidParameter, match="curve"):
        service.add_signer(
            SYSTEM,
            "a",
            "key",
            ec.generate_private_key(ec.SECP256K1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
        )
    with pytest.raises(InvalidParameter, match="certificates"):
        service.add_signer(SYSTEM, "a", "certificate", public_pem(key))
    with pytest.raises(InvalidParameter, match="kind"):
        service.add_signer(SYSTEM, "a", "gpg", public_pem(key))
    with pytest.raises(InvalidParameter, match="signer name"):
        service.add_signer(SYSTEM, "../a", "key", public_pem(key))
    assert service.list_signers(SYSTEM) == []


def test_add_list_remove_signer(service: RegistryService) -> None:
    key, pki = new_key(), make_pki()
    added = service.add_signer(SYSTEM, "release", "key", public_pem(key))
    assert added.fingerprint == key_fingerprint(key) and added.kind is SignerKind.KEY
    service.add_signer(SYSTEM, "corp-ca", "certificate", cert_pem(pki.ca))
    with pytest.raises(Conflict):
        service.add_signer(SYSTEM, "release", "key", public_pem(new_key()))
    listed = service.list_signers(SYSTEM)
    assert [(s.name, s.kind) for s in listed] == [
        ("corp-ca", SignerKind.CERTIFICATE),
        ("release", SignerKind.KEY),
    ]
    assert listed[1].material == public_pem(key)
    service.remove_signer(SYSTEM, "release")
    assert [s.name for s in service.list_signers(SYSTEM)] == ["corp-ca"]
    with pytest.raises(NotFound):
        service.remove_signer(SYSTEM, "release")


def test_signer_names_that_differ_only_by_case_are_one_signer(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    """Signers are identities, named as users and groups are (``names.same_identity``):
    ``release`` is ``Release``. Two trusted signers told apart only by case would let an
    administrator who revokes a compromised ``Release`` by typing ``release`` remove the
    other one, leaving the compromised key trusted by every signature gate."""
    key = new_key()
    service.add_signer(SYSTEM, "Release", "key", public_pem(key))
    with pytest.raises(Conflict, match="'Release' already exists"):
        service.add_signer(SYSTEM, "release", "key", public_pem(new_key()))
    assert [s.name for s in service.list_signers(SYSTEM)] == ["Release"]
    assert service.add_signature(
        WRITER, "fraud", model, sign_with_key(tmp_path, key, FILES)
    ).verified
    service.remove_signer(SYSTEM, "RELEASE")  # the one there is, in any case
    assert service.list_signers(SYSTEM) == []
    events = service.list_audit(SYSTEM, action="signer.remove").items
    assert [e.target for e in events] == ["Release"]  # as it was named
    assert not has_verified(service, "fraud", model)
    # the same key trusted again, the name in another case: the same signer, its verdicts
    service.add_signer(SYSTEM, "release", "key", public_pem(key))
    assert has_verified(service, "fraud", model)


def test_signers_an_older_cairn_let_differ_by_case_are_removed_by_their_exact_name(
    service: RegistryService,
) -> None:
    """A database may already hold ``Release`` and ``release`` (older Cairns compared
    signer names by case): each is removed by its exact name, and a name that matches
    both only ignoring case is refused rather than guessed."""
    pem = public_pem(new_key())
    service.add_signer(SYSTEM, "Release", "key", pem)

    def older_cairn(s: Any) -> None:  # what an older Cairn's add_signer let through
        SignatureStore(s).add_signer("release", "key", pem, "system", 0)

    service.db.write(older_cairn)
    with pytest.raises(InvalidParameter, match="'Release' and 'release'"):
        service.remove_signer(SYSTEM, "RELEASE")
    with pytest.raises(Conflict):
        service.add_signer(SYSTEM, "RELEASE", "key", pem)
    service.remove_signer(SYSTEM, "release")
    assert [s.name for s in service.list_signers(SYSTEM)] == ["Release"]
    service.remove_signer(SYSTEM, "RELEASE")
    assert service.list_signers(SYSTEM) == []


def test_removing_the_signer_withdraws_its_verdicts_from_gates(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    key = new_key()
    service.add_signer(SYSTEM, "release", "key", public_pem(key))
    assert service.add_signature(
        WRITER, "fraud", model, sign_with_key(tmp_path, key, FILES)
    ).verified
    assert has_verified(service, "fraud", model)

    service.remove_signer(SYSTEM, "release")
    assert not has_verified(service, "fraud", model)
    # a new signer under the old name does not revive verdicts given by the old one
    service.add_signer(SYSTEM, "release", "key", public_pem(new_key()))
    assert not has_verified(service, "fraud", model)
    # trusting the very key that verified it again counts it again
    service.remove_signer(SYSTEM, "release")
    service.add_signer(SYSTEM, "release", "key", public_pem(key))
    assert has_verified(service, "fraud", model)
    # the record itself stays as it was
    assert [s.verified for s in service.list_signatures(SYSTEM, "fraud", model)] == [True]


def test_signer_changes_and_signatures_are_audited(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    key = new_key()
    service.add_signer(SYSTEM, "release", "key", public_pem(key))
    service.add_signature(WRITER, "fraud", model, sign_with_key(tmp_path, key, FILES))
    service.remove_signer(SYSTEM, "release")
    events = service.list_audit(SYSTEM, oldest_first=True).items
    actions = [(e.action, e.actor, e.target) for e in events if "sign" in e.action]
    assert actions == [
        ("signer.add", "system", "release"),
        ("signature.add", "writer", "release"),
        ("signer.remove", "system", "release"),
    ]
    signed = next(e for e in events if e.action == "signature.add")
    assert signed.model == "fraud" and signed.version == model
    assert signed.after["verified"] is True


def test_bundle_payload_names_the_files_as_cairn_does(tmp_path: Path) -> None:
    """The engine alone: the signed resource names are the version's relative paths."""
    key = new_key()
    bundle = sign_with_key(tmp_path, key, FILES)
    statement = json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))
    names = {r["name"] for r in statement["predicate"]["resources"]}
    assert names == set(FILES)
    verdict = signing.verify(
        bundle,
        [signing.Trusted("k", SignerKind.KEY, public_pem(key))],
        {p: digest(b) for p, b in FILES.items()},
    )
    assert verdict.verified


# -- the SDK (HTTP against the real app, and local), the REST API and the CLI ----------------


def test_sdk_signers_and_signatures(client: BaseClient, tmp_path: Path) -> None:
    key = new_key()
    signer = client.add_signer("release", kind="key", material=public_pem(key))
    assert signer.fingerprint == key_fingerprint(key)
    assert [s.name for s in client.list_signers()] == ["release"]
    client.create_model("fraud")
    client.push(write_tree(tmp_path / "files", FILES), name="fraud")

    good = client.add_signature("fraud", 1, sign_with_key(tmp_path / "good", key, FILES))
    as_object = json.loads(sign_with_key(tmp_path / "other", new_key(), FILES))
    bad = client.add_signature("fraud", "1", as_object)

    assert good.verified and good.identity == key_fingerprint(key)
    assert good.digests == {p: digest(b) for p, b in sorted(FILES.items())}
    assert not bad.verified and bad.message.startswith("no trusted signer verified")
    listed = client.list_signatures("fraud", 1)
    assert [(s.id, s.verified) for s in listed] == [(good.id, True), (bad.id, False)]
    with pytest.raises(InvalidParameter, match="not JSON"):
        client.add_signature("fraud", 1, "{oops")
    assert len(client.list_signatures("fraud", 1)) == 2
    with pytest.raises(NotFound):
        client.list_signatures("fraud", 2)
    removed = client.remove_signer("RELEASE")  # the one there is, named as it is stored
    assert (removed.name, removed.fingerprint) == ("release", key_fingerprint(key))
    assert client.list_signers() == []
    with pytest.raises(NotFound):
        client.remove_signer("release")


def test_api_answers_201_with_the_verdict_and_400_for_a_malformed_bundle(
    api: TestClient, tmp_path: Path
) -> None:
    pki = make_pki()
    r = api.post(
        "/api/v1/signers",
        json={"name": "corp-ca", "kind": "certificate", "material": cert_pem(pki.ca)},
    )
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "certificate" and r.json()["fingerprint"].startswith("sha256:")
    assert api.post("/api/v1/models", json={"name": "fraud"}).status_code == 201
    created = api.post(
        "/api/v1/models/fraud/versions",
        json={
            "files": [{"path": p, "size": len(b), "digest": digest(b)} for p, b in FILES.items()]
        },
    ).json()
    by_digest = {digest(b): b for b in FILES.values()}
    for d in created["missing"]:
        assert api.put(
            f"/api/v1/models/fraud/versions/1/blobs/{d}", content=by_digest[d]
        ).is_success
    url = "/api/v1/models/fraud/versions/1/signatures"

    signed = api.post(
        url, json={"bundle": sign_with_certificate(tmp_path / "a", pki, FILES).decode()}
    )
    assert signed.status_code == 201, signed.text
    body = signed.json()
    assert body["verified"] is True and body["signer"] == "corp-ca"
    assert "CN=release-bot" in body["identity"]

    tampered = dict(FILES, **{"README.md": b"changed"})
    bundle = json.loads(sign_with_certificate(tmp_path / "b", pki, tampered))
    unverified = api.post(url, json={"bundle": bundle})
    assert unverified.status_code == 201
    assert unverified.json()["verified"] is False
    assert "different digest: README.md" in unverified.json()["message"]

    for bad in ({"bundle": "not json"}, {"bundle": {"mediaType": "x"}}, {"bundle": 3}):
        refused = api.post(url, json=bad)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    extra = api.post(url, json={"bundle": bundle, "verified": True})
    assert extra.status_code == 400 and "verified" in extra.json()["message"]
    huge = api.post(url, json={"bundle": " " * (signing.MAX_BUNDLE_BYTES + 1)})
    assert huge.status_code in (400, 413)

    listed = api.get(url)
    assert listed.status_code == 200
    assert [s["verified"] for s in listed.json()["signatures"]] == [True, False]
    assert "bundle" not in listed.json()["signatures"][0]
    gone = api.delete("/api/v1/signers/CORP-CA")
    assert gone.status_code == 200, gone.text
    assert gone.json()["name"] == "corp-ca" and gone.json()["kind"] == "certificate"
    assert api.get("/api/v1/signers").json() == {"signers": []}
    assert api.delete("/api/v1/signers/corp-ca").status_code == 404


@pytest.fixture(params=["http", "local"])
def uri(request: pytest.FixtureRequest, settings: Settings) -> str:
    if request.param == "http":
        return str(request.getfixturevalue("live_server"))
    return str(settings.data_dir)


def cairn(uri: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["--uri", uri, *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout


def test_cli_signers_and_sign(uri: str, tmp_path: Path) -> None:
    key = new_key()
    (tmp_path / "pub.pem").write_text(public_pem(key))
    cairn(uri, "signers", "add", "release", "--key", str(tmp_path / "pub.pem"))
    listed = json.loads(cairn(uri, "signers", "list", "--json"))
    assert [(s["name"], s["fingerprint"]) for s in listed] == [("release", key_fingerprint(key))]
    cairn(uri, "models", "create", "fraud")
    cairn(uri, "push", str(write_tree(tmp_path / "files", FILES)), "--model", "fraud")
    (tmp_path / "good.sig").write_bytes(sign_with_key(tmp_path / "g", key, FILES))
    (tmp_path / "bad.sig").write_bytes(sign_with_key(tmp_path / "b", new_key(), FILES))

    assert "verified" in cairn(uri, "sign", "verify", "models:/fraud/1", str(tmp_path / "good.sig"))
    refused = cairn(uri, "sign", "verify", "models:/fraud/1", str(tmp_path / "bad.sig"), code=1)
    assert "not verified" in refused
    verdicts = json.loads(cairn(uri, "sign", "list", "models:/fraud/latest", "--json"))
    assert [v["verified"] for v in verdicts] == [True, False]
    assert "release" in cairn(uri, "sign", "list", "models:/fraud/1")

    cairn(uri, "signers", "remove", "release", "--yes")
    assert json.loads(cairn(uri, "signers", "list", "--json")) == []
    both = CliRunner().invoke(app, ["--uri", uri, "signers", "add", "x"])
    assert both.exit_code != 0


def test_removing_a_signer_names_the_one_removed_as_it_is_stored(uri: str, tmp_path: Path) -> None:
    """Signer names are the same in any case: ``remove release`` removes ``Release``, and
    says so, through the SDK and the CLI, local or over HTTP (an administrator revoking a
    key must see which signer went, not the name they typed)."""
    (tmp_path / "pub.pem").write_text(public_pem(new_key()))
    cairn(uri, "signers", "add", "Release", "--key", str(tmp_path / "pub.pem"))
    result = CliRunner().invoke(app, ["--uri", uri, "signers", "remove", "release", "--yes"])
    assert result.exit_code == 0, result.output
    said = result.stderr
    assert "'Release'" in said and "'release'" not in said, said
    assert json.loads(cairn(uri, "signers", "list", "--json")) == []


def test_a_verdict_given_by_an_old_key_does_not_count_for_a_new_key_of_the_same_name(
    service: RegistryService, model: int, tmp_path: Path
) -> None:
    """The signer 'release' is rekeyed (removed, then added with a new key) on a host whose
    clock is behind the one that recorded a signature made with the old key, or while that
    signature's transaction was still verifying against the old key: the verdict's time is
    then later than the new signer's. The old key's verdict must not count for the new key."""
    old = new_key()
    service.add_signer(SYSTEM, "release", "key", public_pem(old))
    service.clock = lambda: 2_000_000_000_000_000  # this host's clock is ahead
    assert service.add_signature(
        WRITER, "fraud", model, sign_with_key(tmp_path, old, FILES)
    ).verified
    service.remove_signer(SYSTEM, "release")
    service.clock = lambda: 1_900_000_000_000_000  # the rekeying host's is behind
    service.add_signer(SYSTEM, "release", "key", public_pem(new_key()))

    assert not has_verified(service, "fraud", model)


# PostgreSQL only: on SQLite the writer holds the database lock while it verifies, so no
# rekey can come in between
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_verdict_made_with_the_old_key_while_it_is_replaced_does_not_count(
    service: RegistryService, model: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race itself, driven by hand: ``add_signature`` reads the trusted signers (the old
    key), and before it records its verdict the signer is rekeyed; the verdict is stamped
    after the new signer row was created."""
    old = new_key()
    service.add_signer(SYSTEM, "release", "key", public_pem(old))
    bundle = sign_with_key(tmp_path, old, FILES)
    real_verify = signing.verify

    def verify_then_rekey(*args: Any) -> signing.Verdict:
        verdict = real_verify(*args)  # with the old key, read by add_signature's transaction
        service.remove_signer(SYSTEM, "release")  # two other transactions, committed now
        service.add_signer(SYSTEM, "release", "key", public_pem(new_key()))
        return verdict

    monkeypatch.setattr(signing, "verify", verify_then_rekey)
    assert service.add_signature(WRITER, "fraud", model, bundle).verified

    assert not has_verified(service, "fraud", model)
