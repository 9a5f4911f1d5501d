"""Configuration, read once at start-up from flags and ``CAIRN_*`` environment variables.

Nothing here runs at import time: ``Settings()`` is built by the CLI or by the caller of
``create_app``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# scheme://host[:port], nothing after: what a browser sends in its Origin header
_ORIGIN = re.compile(r"https?://(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(:\d{1,5})?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAIRN_", extra="ignore")

    data_dir: Path = Field(Path("./cairn-data"), description="Where SQLite and local blobs live.")
    backend_uri: str | None = Field(
        None, description="Metadata database URI; default sqlite:///<data-dir>/cairn.db."
    )
    artifacts_uri: str | None = Field(
        None, description="Blob store URI; default file://<data-dir>/artifacts."
    )
    host: str = Field("127.0.0.1", description="Address the server binds to.")
    port: int = Field(8080, ge=0, le=65535, description="Port the server listens on.")
    workers: int = Field(1, ge=1, le=64, description="Server worker processes.")
    max_request_bytes: int = Field(
        16 << 20, ge=1024, description="Largest JSON request body accepted (413 beyond)."
    )
    default_page_size: int = Field(100, ge=1, le=1000, description="Default max_results.")
    db_pool_size: int = Field(10, ge=1, le=200, description="PostgreSQL connections per process.")
    migrate: bool = Field(True, description="Migrate the database to this version on start.")
    max_file_bytes: int = Field(
        1 << 40, ge=1, description="Largest file in a version (413 beyond)."
    )
    max_files: int = Field(10_000, ge=1, description="Most files in one version.")
    pending_timeout_s: int = Field(
        24 * 3600, ge=60, description="A version PENDING longer than this becomes FAILED."
    )
    gc_grace_s: int = Field(3600, ge=0, description="Unreferenced blobs younger than this stay.")
    purge_deleted_after_days: float | None = Field(
        None, ge=0, description="Purge soft-deleted versions after this many days (gc does it)."
    )
    keep_versions: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="gc prunes every model to its newest N versions (soft deletes; those an "
        "alias, Staging/Production, a live deployment, a lineage child any of those holds or "
        "an upload holds stay); a model's own policy replaces it.",
    )
    keep_versions_days: float | None = Field(
        None,
        ge=0,
        le=36_500,
        description="With keep_versions: versions created within this many days stay too.",
    )
    webhook_delivery_retention_days: float = Field(
        30,
        ge=0,
        le=36_500,
        description="gc deletes finished (succeeded or failed) webhook deliveries older than "
        "this many days; pending ones always stay; 0 keeps them for ever.",
    )
    feedback_retention_days: float = Field(
        0,
        ge=0,
        le=36_500,
        description="gc deletes monitoring feedback points measured more than this many days "
        "ago; 0 keeps them for ever.",
    )
    # -- identities (docs/security.md) --
    bootstrap_token: SecretStr | None = Field(
        None,
        description="Token of the admin user created on first start (for automation); "
        "default: a new token written to <data-dir>/admin.token.",
    )
    creator_role: Literal["READ", "WRITE", "MANAGE", "NONE"] = Field(
        "MANAGE", description="Role the creator of a model gets on it (NONE: no grant)."
    )
    scan_policy: Literal["label", "quarantine", "reject"] = Field(
        "quarantine",
        description="What a version whose files the unsafe-file scan flags gets, unless its "
        "model sets its own policy: label, quarantine (downloads need an audited MANAGE "
        "override) or reject (the version fails).",
    )
    auth_failures_per_minute: int = Field(
        10, ge=1, description="Failed logins/tokens per client address or account before 429."
    )
    # -- webhooks (docs/webhooks.md) --
    webhooks: bool = Field(
        True, description="Run a webhook dispatcher in each server process (false: none)."
    )
    webhook_allow_private: bool = Field(
        False,
        description="Let webhooks reach loopback, private, link-local and other internal "
        "addresses (refused by default: SSRF).",
    )
    webhook_max_attempts: int = Field(
        8, ge=1, le=50, description="Attempts of one webhook delivery before it is failed."
    )
    webhook_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Seconds a webhook receiver has to answer one attempt."
    )
    # -- secrets at rest (docs/security.md#secrets-at-rest); checked by the service's
    # Keyring, whose messages never quote a key (pydantic's would) --
    secret_keys: SecretStr | None = Field(
        None,
        description="Keys that seal webhook secrets in the database: base64url 32-byte keys, "
        "comma-separated; the first seals, all open. Default: <data-dir>/secret.key, made on "
        "first need. Servers sharing a database must share these keys.",
    )
    # -- HTTP hardening (docs/security.md) --
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names served besides localhost, 127.0.0.1, ::1 and the bind host "
        "(comma-separated; '*.example.com' patterns; '*' turns the check off).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API cross-site "
        "(comma-separated, exact, e.g. https://ml.example.com); none by default.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks of the reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed (comma-separated, e.g. 127.0.0.1 or 10.0.0.0/8); "
        "none by default, so that no local process can pose as another client.",
    )

    @field_validator("allowed_hosts", "cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: list[str]) -> list[str]:
        origins = []
        for origin in value:
            normal = origin.strip().lower().removesuffix("/")
            if not _ORIGIN.fullmatch(normal):
                raise ValueError(
                    f"CORS origin {origin!r} is not an exact origin such as "
                    "https://ml.example.com or http://localhost:3000 (no wildcards, no path)"
                )
            origins.append(normal)
        return origins

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted proxy {entry!r} is not an IP address or network "
                    "(e.g. 127.0.0.1, 10.0.0.0/8)"
                ) from None
        return value

    def resolved_backend_uri(self) -> str:
        if self.backend_uri:
            return self.backend_uri
        return f"sqlite:///{(self.data_dir / 'cairn.db').resolve()}"

    def resolved_allowed_hosts(self) -> list[str]:
        """The Host header values the server answers: loopback names (a DNS-rebinding page
        never sends those), the bind host when it is a name or a specific address, and
        ``allowed_hosts``."""
        hosts = ["localhost", "127.0.0.1", "::1"]
        bind = self.host.strip("[]")
        try:
            wildcard = ipaddress.ip_address(bind).is_unspecified  # 0.0.0.0, ::
        except ValueError:
            wildcard = not bind
        if not wildcard:
            hosts.append(bind)
        return hosts + [h for h in self.allowed_hosts if h not in hosts]

    def resolved_artifacts_uri(self) -> str:
        if self.artifacts_uri:
            return self.artifacts_uri
        return f"file://{(self.data_dir / 'artifacts').resolve()}"


def misspelt_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``CAIRN_*`` variable that is no setting but looks like one
    (``CAIRN_WORKER``): ``Settings`` ignores it, which would leave the typo unnoticed.
    Variables of the CLI and SDK (``CAIRN_TOKEN``, ``CAIRN_URI``...) look like none."""
    settings = {name.upper(): f"CAIRN_{name.upper()}" for name in Settings.model_fields}
    warnings = []
    for key in environ:
        prefix, name = key[:6].upper(), key[6:].upper()  # names are case-insensitive
        if prefix != "CAIRN_" or name in settings:
            continue
        close = difflib.get_close_matches(name, settings, n=1, cutoff=0.8)
        if close:
            warnings.append(
                f"warning: {key} is not a setting and is ignored; did you mean "
                f"{settings[close[0]]}?"
            )
    return warnings
