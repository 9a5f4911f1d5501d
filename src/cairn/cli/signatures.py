"""``cairn signers`` (whom the instance trusts) and ``cairn sign`` (bundles per version)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from cairn.cli.common import Json, Yes, client, confirm
from cairn.cli.output import DataTable, message, out, print_json, when
from cairn.domain.signatures import (
    signature_to_json,
    signer_to_json,
)
from cairn.errors import InvalidParameter

MAX_FILE_BYTES = 1 << 20

signers_app = typer.Typer(
    help="Trusted signers (instance admin): the keys and CAs whose model signatures verify.",
    no_args_is_help=True,
)
sign_app = typer.Typer(
    help="Model signatures: upload an OpenSSF model-signing bundle for a version, list verdicts.",
    no_args_is_help=True,
)


def _read(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidParameter(f"{what} {str(path)!r} is larger than {MAX_FILE_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidParameter(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None


def _text(path: Path, what: str) -> str:
    try:
        return _read(path, what).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter(f"{what} {str(path)!r} is not UTF-8 text (PEM)") from None


# -- cairn signers ---------------------------------------------------------------------------


@signers_app.command("add")
def add_signer(
    ctx: typer.Context,
    name: str,
    key: Annotated[
        Path | None, typer.Option("--key", help="An EC public key, PEM (P-256, P-384, P-521).")
    ] = None,
    certificate: Annotated[
        Path | None,
        typer.Option(
            "--certificate",
            help="CA certificate(s), PEM: leaf certificates they issue may sign models.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Trust a public key (--key) or a certificate authority (--certificate) as NAME."""
    if (key is None) == (certificate is None):
        raise InvalidParameter("give exactly one of --key PUB.pem or --certificate CA.pem")
    if key is not None:
        signer = client(ctx).add_signer(name, kind="key", material=_text(key, "key file"))
    else:
        assert certificate is not None
        pem = _text(certificate, "certificate file")
        signer = client(ctx).add_signer(name, kind="certificate", material=pem)
    if as_json:
        print_json(signer_to_json(signer))
    else:
        message(f"trusted {signer.kind.value} signer {signer.name!r} ({signer.fingerprint})")


@signers_app.command("list")
def list_signers(ctx: typer.Context, as_json: Json = False) -> None:
    """The trusted signers, by name."""
    signers = client(ctx).list_signers()
    if as_json:
        print_json([signer_to_json(s) for s in signers])
        return
    table = DataTable("name", "kind", "fingerprint", "created", "by")
    for s in signers:
        table.add_row(s.name, s.kind.value, s.fingerprint, when(s.created_at), s.created_by or "")
    out.print(table)


@signers_app.command("remove")
def remove_signer(ctx: typer.Context, name: str, yes: Yes = False) -> None:
    """Stop trusting NAME; signatures it verified no longer satisfy promotion gates."""
    confirm(f"Stop trusting signer {name!r}?", yes)
    removed = client(ctx).remove_signer(name)
    message(f"removed trusted signer {removed.name!r} ({removed.fingerprint})")


# -- cairn sign ------------------------------------------------------------------------------


@sign_app.command("verify")
def verify(
    ctx: typer.Context,
    model_uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION (or @ALIAS, /latest).")],
    bundle_file: Annotated[Path, typer.Argument(help="The bundle (model.sig) to upload.")],
    as_json: Json = False,
) -> None:
    """Upload a model-signing bundle for a version; print the verdict (exit 1 if not verified).

    The verdict is recorded either way. The bundle must sign per-file sha256 digests
    (model_signing's default) with a trusted key or a certificate from a trusted CA.
    """
    data = _read(bundle_file, "bundle file")
    sdk = client(ctx)
    version = sdk.resolve(model_uri)
    signature = sdk.add_signature(version.name, version.version, data)
    if as_json:
        print_json(signature_to_json(signature))
    elif signature.verified:
        out.print(
            Text.assemble(
                ("verified", "green"),
                f": models:/{signature.name}/{signature.version} signed by "
                f"{signature.signer} ({signature.identity}), {len(signature.digests)} files",
            ),
            highlight=False,
        )
    else:
        out.print(Text.assemble(("not verified", "red"), f": {signature.message}"), highlight=False)
    if not signature.verified:
        raise typer.Exit(1)


@sign_app.command("list")
def list_signatures(
    ctx: typer.Context,
    model_uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION (or @ALIAS, /latest).")],
    as_json: Json = False,
) -> None:
    """The signature bundles recorded for a version and their verdicts, oldest first."""
    sdk = client(ctx)
    version = sdk.resolve(model_uri)
    signatures = sdk.list_signatures(version.name, version.version)
    if as_json:
        print_json([signature_to_json(s) for s in signatures])
        return
    table = DataTable("id", "verified", "signer", "identity", "files", "created", "by", "message")
    for s in signatures:
        table.add_row(
            str(s.id),
            Text("yes", style="green") if s.verified else Text("no", style="red"),
            s.signer or "",
            s.identity or "",
            str(len(s.digests)),
            when(s.created_at),
            s.created_by or "",
            s.message,
        )
    out.print(table)
