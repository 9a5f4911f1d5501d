"""Use cases on model signatures: the trusted signers, and bundles recorded for versions.

An instance administrator decides whom to trust (an elliptic-curve public key, or a CA
whose certificates sign models). Anyone who may write a model can then upload an OpenSSF
model-signing bundle for one of its READY versions; Cairn checks it offline against the
trusted signers and the digests it already holds for the version's files, and records the
verdict, verified or not. Promotion gates ask ``SignatureStore.has_verified``.
"""

from __future__ import annotations

from typing import Any

from cairn.domain import names
from cairn.domain.access import Role
from cairn.domain.models import Actor, VersionStatus
from cairn.domain.signatures import (
    SignerKind,
    TrustedSigner,
    VersionSignature,
    material_digest,
    validate_signer_name,
)
from cairn.domain.uris import parse_version_number
from cairn.errors import Conflict, InvalidParameter, NotFound
from cairn.service.base import ServiceBase
from cairn.store.metadata.clock import to_datetime
from cairn.store.metadata.database import Tx
from cairn.store.metadata.signatures_store import SignatureStore
from cairn.store.metadata.versions_store import VersionStore


class SignaturesService(ServiceBase):
    # -- trusted signers (instance ADMIN) ----------------------------------------------

    def add_signer(
        self, actor: Actor, name: str, kind: SignerKind | str, material: str
    ) -> TrustedSigner:
        """Trust a public key or a CA certificate (chain) under ``name``."""
        from cairn.service import signing  # cryptography: loaded when first needed

        validate_signer_name(name)
        kind = SignerKind.parse(kind)
        if not isinstance(material, str):
            raise InvalidParameter("signer material must be PEM text")
        pem, fingerprint = signing.normalize_material(kind, material)

        def run(s: Tx) -> TrustedSigner:
            self._require_admin(actor, "add_signer")
            store = SignatureStore(s)
            store.lock_signers()
            taken = store.signers_named(name)
            if taken:
                raise Conflict(
                    f"a trusted signer named {taken[0].name!r} already exists (signer names "
                    "are the same in any case); remove it first to trust another key under "
                    "this name"
                )
            now = self.clock()
            store.add_signer(name, kind.value, pem, actor.name, now)
            self._audit(
                s,
                actor,
                "signer.add",
                target=name,
                after={"kind": kind.value, "fingerprint": fingerprint},
            )
            return TrustedSigner(
                name=name,
                kind=kind,
                material=pem,
                fingerprint=fingerprint,
                created_at=to_datetime(now),
                created_by=actor.name,
            )

        return self.db.write(run)

    def list_signers(self, actor: Actor) -> list[TrustedSigner]:
        def run(s: Tx) -> list[TrustedSigner]:
            self._require_admin(actor, "list_signers")
            return [_trusted_signer(row) for row in SignatureStore(s).list_signers()]

        return self.db.read(run)

    def remove_signer(self, actor: Actor, name: str) -> TrustedSigner:
        """Stop trusting ``name`` (in any case); returns the signer removed, named as it
        was stored. Recorded verdicts stay, but gates no longer count them, nor once
        another key is trusted under the same name (``has_verified``)."""
        validate_signer_name(name)

        def run(s: Tx) -> TrustedSigner:
            self._require_admin(actor, "remove_signer")
            store = SignatureStore(s)
            store.lock_signers()
            row = _one_signer(store, name)
            store.delete_signer(row.name)
            signer = _trusted_signer(row)
            self._audit(
                s,
                actor,
                "signer.remove",
                target=row.name,
                before={"kind": signer.kind.value, "fingerprint": signer.fingerprint},
            )
            return signer

        return self.db.write(run)

    # -- signatures of a version ---------------------------------------------------------

    def add_signature(
        self, actor: Actor, name: str, version: int | str, bundle: bytes | str
    ) -> VersionSignature:
        """Check a model-signing bundle for a READY version and record the verdict.

        A bundle that is not a Sigstore bundle at all is refused (``InvalidParameter``) and
        nothing is recorded; any other bundle is recorded, verified or with the reason it
        is not.
        """
        from cairn.service import signing  # cryptography: loaded when first needed

        names.validate_model_name(name)
        number = parse_version_number(version)
        data = (
            signing.utf8("signature bundle", bundle) if isinstance(bundle, str) else bytes(bundle)
        )
        if len(data) > signing.MAX_BUNDLE_BYTES:
            raise InvalidParameter(
                f"signature bundle is larger than {signing.MAX_BUNDLE_BYTES} bytes"
            )
        signing.load_library()  # its ~1 s first import stays outside the transaction

        def run(s: Tx) -> VersionSignature:
            model = self._model(s, actor, name, Role.WRITE, "add_signature")
            row = VersionStore(s).get(model.id, name, number)
            if row.status != VersionStatus.READY.value:
                raise InvalidParameter(
                    f"version {number} of {name!r} is {row.status}; only READY versions "
                    "can be signed"
                )
            store = SignatureStore(s)
            rows = store.list_signers()
            trusted = [signing.Trusted(r.name, SignerKind.parse(r.kind), r.material) for r in rows]
            # a bundle that is not one raises InvalidParameter here: nothing is recorded
            verdict = signing.verify(data, trusted, store.files_of(row.id))
            # which material authenticated it: a rekey racing with this transaction (or a
            # clock behind ours) must not let the new key inherit this verdict
            materials = {r.name: r.material for r in rows}
            signer_digest = (
                material_digest(materials[verdict.signer]) if verdict.signer is not None else None
            )
            now = self.clock()
            signature_id = store.add(
                row.id,
                verified=verdict.verified,
                signer=verdict.signer,
                signer_digest=signer_digest,
                identity=verdict.identity,
                digests=verdict.digests,
                message=verdict.message,
                bundle=data.decode("utf-8"),  # verify accepted it as UTF-8 JSON
                created_by=actor.name,
                now=now,
            )
            self._audit(
                s,
                actor,
                "signature.add",
                model=model,
                version=number,
                target=verdict.signer,
                after={
                    "id": signature_id,
                    "verified": verdict.verified,
                    "identity": verdict.identity,
                    "message": verdict.message,
                },
            )
            return VersionSignature(
                id=signature_id,
                name=model.name,
                version=number,
                verified=verdict.verified,
                signer=verdict.signer,
                identity=verdict.identity,
                digests=dict(sorted(verdict.digests.items())),
                message=verdict.message,
                created_at=to_datetime(now),
                created_by=actor.name,
            )

        return self.db.write(run)

    def list_signatures(
        self, actor: Actor, name: str, version: int | str
    ) -> list[VersionSignature]:
        """The signatures recorded for a version, oldest first."""
        names.validate_model_name(name)
        number = parse_version_number(version)

        def run(s: Tx) -> list[VersionSignature]:
            model = self._model(s, actor, name, Role.READ, "list_signatures")
            row = VersionStore(s).get(model.id, name, number)
            return SignatureStore(s).list_for_version(row.id, model.name, number)

        return self.db.read(run)


def _one_signer(store: SignatureStore, name: str) -> Any:
    """The trusted signer ``name`` names: the one so named in any case. Where an older
    Cairn let several differ only by case, the one named exactly so; a name matching
    several only ignoring case is refused rather than guessed."""
    rows = store.signers_named(name)
    exact = [row for row in rows if row.name == name]
    if exact:
        return exact[0]
    if not rows:
        raise NotFound(f"trusted signer {name!r} does not exist")
    if len(rows) > 1:
        found = " and ".join(repr(row.name) for row in rows)
        raise InvalidParameter(
            f"signer name {name!r} matches the trusted signers {found}, which differ only by "
            "case (an older Cairn let them both in); name one exactly as it is listed"
        )
    return rows[0]


def _trusted_signer(row: Any) -> TrustedSigner:
    from cairn.service import signing  # cryptography: loaded when first needed

    kind = SignerKind.parse(row.kind)
    return TrustedSigner(
        name=row.name,
        kind=kind,
        material=row.material,
        fingerprint=signing.normalize_material(kind, row.material)[1],
        created_at=to_datetime(row.created_at),
        created_by=row.created_by,
    )
