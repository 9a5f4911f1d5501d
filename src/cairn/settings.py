"""Configuration, read once at start-up from flags and ``CAIRN_*`` environment variables.

Nothing here runs at import time: ``Settings()`` is built by the CLI or by the caller of
``create_app``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    def resolved_backend_uri(self) -> str:
        if self.backend_uri:
            return self.backend_uri
        return f"sqlite:///{(self.data_dir / 'cairn.db').resolve()}"

    def resolved_artifacts_uri(self) -> str:
        if self.artifacts_uri:
            return self.artifacts_uri
        return f"file://{(self.data_dir / 'artifacts').resolve()}"
