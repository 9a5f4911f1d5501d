"""Trusted signers and the signature bundles recorded for versions.

``has_verified`` is the question a promotion gate asks: does this version carry a verified
signature whose signed digests are exactly the version's files, as they are now?
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, text

from cairn.domain.names import identity_key
from cairn.domain.signatures import VersionSignature, material_digest
from cairn.store.metadata.clock import to_datetime
from cairn.store.metadata.schema import trusted_signers, version_files, version_signatures

T = trusted_signers
S = version_signatures


class SignatureStore:
    def __init__(self, session: Connection) -> None:
        self.s = session

    # -- trusted signers ---------------------------------------------------------------
    def find_signer(self, name: str) -> Row[Any] | None:
        """The signer named exactly ``name``."""
        return self.s.execute(select(T).where(T.c.name == name)).first()

    def signers_named(self, name: str) -> list[Row[Any]]:
        """The signers whose name is ``name`` ignoring case (``names.identity_key``;
        signer names are ASCII, where it is SQL's ``lower``). One at most, but for a
        database an older Cairn let hold names that differ only by case."""
        key = identity_key(name)
        return list(self.s.execute(select(T).where(func.lower(T.c.name) == key).order_by(T.c.name)))

    def lock_signers(self) -> None:
        """Hold the signers still against another transaction's add or remove until this
        one ends, so that the check that no signer has a name (in any case) holds at
        its insert. SQLite's write transactions are serialised already."""
        if self.s.dialect.name == "postgresql":
            self.s.execute(text("LOCK TABLE trusted_signers IN SHARE ROW EXCLUSIVE MODE"))

    def list_signers(self) -> list[Row[Any]]:
        return list(self.s.execute(select(T).order_by(T.c.name)))

    def add_signer(
        self, name: str, kind: str, material: str, created_by: str | None, now: int
    ) -> None:
        self.s.execute(
            insert(T).values(
                name=name, kind=kind, material=material, created_at=now, created_by=created_by
            )
        )

    def delete_signer(self, name: str) -> bool:
        return self.s.execute(delete(T).where(T.c.name == name)).rowcount > 0

    # -- version signatures ------------------------------------------------------------
    def add(
        self,
        version_id: int,
        *,
        verified: bool,
        signer: str | None,
        signer_digest: str | None,
        identity: str | None,
        digests: Mapping[str, str],
        message: str,
        bundle: str,
        created_by: str | None,
        now: int,
    ) -> int:
        row = self.s.execute(
            insert(S)
            .values(
                version_id=version_id,
                verified=verified,
                signer=signer,
                signer_digest=signer_digest,
                identity=identity,
                digests=_dump(digests),
                message=message,
                bundle=bundle,
                created_at=now,
                created_by=created_by,
            )
            .returning(S.c.id)
        ).one()
        return int(row.id)

    def list_for_version(self, version_id: int, name: str, version: int) -> list[VersionSignature]:
        """The version's signatures, oldest first, as domain values (without the bundles)."""
        rows = self.s.execute(
            select(
                S.c.id,
                S.c.verified,
                S.c.signer,
                S.c.identity,
                S.c.digests,
                S.c.message,
                S.c.created_at,
                S.c.created_by,
            )
            .where(S.c.version_id == version_id)
            .order_by(S.c.id)
        )
        return [_signature(row, name, version) for row in rows]

    def find_bundle(self, signature_id: int) -> str | None:
        return self.s.execute(select(S.c.bundle).where(S.c.id == signature_id)).scalar()

    def has_verified(self, version_id: int) -> bool:
        """True when a verified signature's signed digests equal the version's files now.

        A verdict counts only while the signer that gave it is still trusted with the same
        material (key or CA chain) it was checked against: removing a signer withdraws its
        verdicts, and so does replacing it by another key under the same name, whatever the
        clocks of the hosts say or however the rekey interleaved with the verification.
        """
        rows = self.s.execute(
            select(S.c.digests, S.c.signer_digest, T.c.material)
            .join(T, func.lower(T.c.name) == func.lower(S.c.signer))  # a name in any case
            .where(S.c.version_id == version_id, S.c.verified.is_(True))
        )
        signed = [row.digests for row in rows if row.signer_digest == material_digest(row.material)]
        candidates = [json.loads(text) for text in signed]
        if not candidates:
            return False
        files = self.files_of(version_id)
        return bool(files) and any(candidate == files for candidate in candidates)

    def files_of(self, version_id: int) -> dict[str, str]:
        """A version's files as path -> ``sha256:<hex>``."""
        rows = self.s.execute(
            select(version_files.c.path, version_files.c.digest).where(
                version_files.c.version_id == version_id
            )
        )
        return {str(row.path): str(row.digest) for row in rows}


def _dump(digests: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(digests.items())), separators=(",", ":"))


def _signature(row: Any, name: str, version: int) -> VersionSignature:
    return VersionSignature(
        id=int(row.id),
        name=name,
        version=version,
        verified=bool(row.verified),
        signer=row.signer,
        identity=row.identity,
        digests=json.loads(row.digests),
        message=row.message,
        created_at=to_datetime(row.created_at),
        created_by=row.created_by,
    )
