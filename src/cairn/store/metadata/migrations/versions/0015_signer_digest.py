"""Which signer material verified a signature; no stored character of a foreign token

Revision ID: 0015_signer_digest
Revises: 0014_blob_tombstones
Create Date: 2026-11-29 19:00:00

``version_signatures`` gains ``signer_digest``: the ``sha256:<hex>`` of the trusted signer's
PEM material (``domain/signatures.py``, ``material_digest``) that authenticated the bundle.
A verified signature counts for a promotion gate only while the signer trusted under its
name has that very material. Before, it counted while a signer of the same name had been
created no later than the signature: a rekey racing with a verification, or a host whose
clock is behind, let a verdict given by the old key count for the new one.

Existing signatures are attributed here. A key signer is the one that verified a
signature when the signature's ``identity`` (the key's fingerprint) is that key's; a
certificate signer, when it was created no later than the signature (the old rule, the
best evidence there is). Any other signature keeps no digest, and no gate counts it.

A ``CAIRN_BOOTSTRAP_TOKEN`` need not be a ``cairn_`` token; before listings hid it
(``domain/tokens.py``, ``display_prefix``), the first 14 characters of such a secret were
stored as its ``tokens.prefix``. They are replaced here by what is shown for it,
``(external)``, so that no part of the secret stays in the database.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op
from cryptography.hazmat.primitives import serialization

# frozen here: what domain/tokens.py calls PREFIX and EXTERNAL_PREFIX
_CAIRN_PREFIX = "cairn_"
_EXTERNAL = "(external)"

revision = "0015_signer_digest"
down_revision = "0014_blob_tombstones"
branch_labels = None
depends_on = None


def _material_digest(material: str) -> str:
    """Frozen here: what domain/signatures.py's ``material_digest`` computes today."""
    return "sha256:" + hashlib.sha256(material.encode()).hexdigest()


def _key_fingerprint(material: str) -> str | None:
    try:
        key = serialization.load_pem_public_key(material.encode())
    except ValueError:
        return None
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("version_signatures") as batch:
        batch.add_column(sa.Column("signer_digest", sa.String(length=71), nullable=True))
    conn = op.get_bind()
    signers = sa.table(
        "trusted_signers",
        sa.column("name", sa.String),
        sa.column("kind", sa.String),
        sa.column("material", sa.Text),
        sa.column("created_at", sa.BigInteger),
    )
    signatures = sa.table(
        "version_signatures",
        sa.column("id", sa.Integer),
        sa.column("signer", sa.String),
        sa.column("identity", sa.Text),
        sa.column("created_at", sa.BigInteger),
    )
    rows = conn.execute(
        sa.select(
            signatures.c.id,
            signatures.c.identity,
            signatures.c.created_at,
            signers.c.kind,
            signers.c.material,
            signers.c.created_at.label("trusted_at"),
        ).join(signers, signers.c.name == signatures.c.signer)
    ).all()
    fingerprints: dict[str, str | None] = {}
    attributed = []
    for row in rows:
        if row.kind == "key":
            if row.material not in fingerprints:
                fingerprints[row.material] = _key_fingerprint(row.material)
            same = row.identity is not None and row.identity == fingerprints[row.material]
        else:
            same = row.trusted_at <= row.created_at
        if same:
            attributed.append({"row": row.id, "digest": _material_digest(row.material)})
    if attributed:
        conn.execute(
            sa.text("UPDATE version_signatures SET signer_digest = :digest WHERE id = :row"),
            attributed,
        )
    conn.execute(
        sa.text("UPDATE tokens SET prefix = :shown WHERE substr(prefix, 1, :n) <> :cairn"),
        {"shown": _EXTERNAL, "n": len(_CAIRN_PREFIX), "cairn": _CAIRN_PREFIX},
    )


def downgrade() -> None:
    # the secret's characters are gone for good; '(external)' is what 0014's code shows too
    with op.batch_alter_table("version_signatures") as batch:
        batch.drop_column("signer_digest")
