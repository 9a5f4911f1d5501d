"""Request and response shapes of the native API (``/api/v1``).

Requests forbid unknown fields: a client cannot set what the API does not name.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from cairn.domain.blob_batch import MAX_BATCH_BLOBS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelCreate(Strict):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class ModelUpdate(Strict):
    description: str | None = None


class ModelRename(Strict):
    new_name: str


class TagValue(Strict):
    value: str


class PruneIn(Strict):
    keep: int = Field(ge=1, le=1_000_000, description="How many of the newest versions stay.")
    keep_days: float | None = Field(
        None, ge=0, le=36_500, description="Versions created within this many days stay too."
    )
    dry_run: bool = Field(True, description="Only say what would be deleted.")
    purge: bool = Field(False, description="Delete for good (no restore) so gc can reclaim bytes.")
    filter: str | None = Field(
        None,
        description="Only versions this filter matches are candidates ([grammar](search.md)), "
        "e.g. `tags.run = 'scratch'`.",
    )


class PruneOut(BaseModel):
    model: str
    keep: int
    keep_days: float | None
    filter: str | None
    dry_run: bool
    purge: bool
    pruned: list[int]
    protected: list[int]
    bytes: int


class RetentionIn(Strict):
    keep: int | None = Field(
        ge=1, le=1_000_000, description="How many of the newest versions gc keeps; null: all."
    )
    keep_days: float | None = Field(
        None,
        ge=0,
        le=36_500,
        description="With keep: versions created within this many days stay too.",
    )


class RetentionOut(BaseModel):
    class Policy(BaseModel):
        keep: int | None = Field(description="Newest versions kept; null: every version.")
        keep_days: float | None

    name: str
    own: Policy | None = Field(description="The model's own policy; null: the instance's applies.")
    effective: Policy = Field(description="What gc applies to this model.")


class FileIn(Strict):
    path: str
    size: int = Field(ge=0)
    digest: str


class LineageInputIn(Strict):
    kind: str = Field(description="dataset, code or model_version.")
    uri: str = Field(
        description="A dataset or repository URI with a scheme; for model_version, the parent "
        "models:/NAME/VERSION (an alias or latest is recorded as the version it names)."
    )
    name: str | None = Field(None, description="dataset: a readable name.")
    digest: str | None = Field(None, description="dataset: sha256:<hex> or a version string.")
    role: str | None = Field(None, description="dataset: train, validation, test, eval, other.")
    commit: str | None = Field(None, description="code: the git commit (required).")
    relation: str | None = Field(
        None,
        description="model_version: fine-tune, quantize, distil, retrain, merge, convert, other.",
    )


class VersionCreate(Strict):
    description: str = ""
    files: list[FileIn] = Field(
        default_factory=list, description="The manifest: path, size, digest."
    )
    tags: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    # strict: a metric is a JSON number, never true or "0.9" (the service refuses them)
    metrics: dict[str, StrictFloat] = Field(default_factory=dict)
    semver: str | None = None
    source: str | None = None
    run_id: str | None = None
    run_link: str | None = None
    lineage: list[LineageInputIn] = Field(
        default_factory=list, description="Inputs recorded with the version (docs/lineage.md)."
    )


class VersionUpdate(Strict):
    description: str | None = None
    semver: str | None = None


class StageTransition(Strict):
    stage: str
    archive_existing_versions: bool = False


class AliasSet(Strict):
    # strict: whole JSON numbers, never true, 1.0 or "1" (the service refuses them)
    version: StrictInt = Field(ge=1)
    expect: StrictInt | None = Field(
        None, ge=0, description="Version the alias must point at now; 0: it must not exist."
    )


class FileOut(BaseModel):
    path: str
    size: int
    digest: str


class ModelOut(BaseModel):
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    latest_version: int | None = Field(
        description="The highest READY, non-deleted version; null if none."
    )
    last_version: int = Field(
        description=(
            "The model's version counter: the highest number ever allocated (0 if none), "
            "deleted and purged versions included. Numbers are never reused: the next "
            "version is above it."
        )
    )
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    deleted_at: datetime | None = None


class VersionOut(BaseModel):
    name: str
    version: int
    status: str
    status_message: str
    description: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    aliases: list[str]
    stage: str
    semver: str | None
    source: str | None
    run_id: str | None
    run_link: str | None
    files: list[FileOut] | None = Field(
        description="The manifest; null when the request asked for none (`files=false`)."
    )
    size: int
    digest: str | None
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    deleted_at: datetime | None = None


class ValueChangeOut(BaseModel):
    key: str
    kind: str = Field(description="`added`, `removed` or `changed`")
    old: str | float | None
    new: str | float | None


class MetricChangeOut(ValueChangeOut):
    delta: float | None = Field(description="`new - old` when both are present")


class FileChangeOut(BaseModel):
    kind: str = Field(description="`changed`, `renamed`, `added` or `removed`")
    path: str
    old: FileOut | None
    new: FileOut | None


class TensorOut(BaseModel):
    name: str = Field(description="As the file's header names it")
    dtype: str
    shape: list[int]
    size: int = Field(description="Bytes")
    path: str = Field(description="The safetensors file that holds it")
    digest: str = Field(description="That file's digest")
    begin: int = Field(description="Offset of its first byte in the file")
    end: int = Field(description="Offset past its last byte")


class TensorChangeOut(BaseModel):
    kind: str = Field(description="`changed`, `added`, `removed` or `not compared`")
    name: str = Field(
        description="The tensor's name (`path:name` where two files of one version name it)"
    )
    what: list[str] = Field(description="Of a change: `dtype`, `shape` or `values`")
    old: TensorOut | None
    new: TensorOut | None


class UnreadableOut(BaseModel):
    path: str
    reason: str


class TensorDiffOut(BaseModel):
    changes: list[TensorChangeOut] = Field(
        description="`not compared`: dtype and shape agree, values not read (over the limit "
        "of bytes one diff reads)"
    )
    unchanged: int = Field(description="Tensors whose values are the same")
    unchanged_bytes: int
    changed_bytes: int = Field(description="Bytes of `new`'s tensors that are new or differ")
    unreadable: list[UnreadableOut] = Field(
        description="Safetensors files whose header could not be read; their tensors are left out"
    )


class SignatureFieldOut(BaseModel):
    name: str = Field(description="Its name, or `#N` (its position) when it has none")
    type: str = Field(
        description="`double`, `tensor float32 [-1, 4]`, or the JSON of a nested type"
    )
    required: bool
    default: str | None = Field(description="A param's default, as JSON")


class SignatureChangeOut(BaseModel):
    section: str = Field(description="`inputs`, `outputs` or `params`")
    name: str
    kind: str = Field(description="`added`, `removed` or `changed`")
    breaking: bool = Field(description="Whether a caller written for `old` would break")
    old: SignatureFieldOut | None
    new: SignatureFieldOut | None


class SignatureDiffOut(BaseModel):
    old_path: str | None = Field(description="`old`'s MLmodel file; null: it has no signature")
    new_path: str | None = Field(description="`new`'s MLmodel file; null: it has no signature")
    breaking: int = Field(description="How many changes break a caller of `old`")
    changes: list[SignatureChangeOut]
    unreadable: list[UnreadableOut]


class DiffOut(BaseModel):
    old: VersionOut = Field(description="The first version, without its manifest")
    new: VersionOut = Field(description="The second version, without its manifest")
    identical: bool
    fields: list[ValueChangeOut]
    metrics: list[MetricChangeOut]
    params: list[ValueChangeOut]
    tags: list[ValueChangeOut]
    files: list[FileChangeOut]
    unchanged_files: int
    transfer_bytes: int = Field(
        description="What a pull of `new` downloads with `old` in the cache: the bytes of "
        "its distinct digests that `old` lacks"
    )
    tensors: TensorDiffOut | None = Field(
        None,
        description="With `tensors=true`: the tensors of both versions' safetensors files, "
        "matched by name across files",
    )
    signature: SignatureDiffOut | None = Field(
        None,
        description="With `signature=true`: how the signatures in their MLflow `MLmodel` "
        "files differ",
    )


class ModelPage(BaseModel):
    models: list[ModelOut]
    next_page_token: str | None = None


class VersionPage(BaseModel):
    versions: list[VersionOut]
    next_page_token: str | None = None


class AliasEventOut(BaseModel):
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str | None
    at: datetime


class AliasHistory(BaseModel):
    events: list[AliasEventOut]


class ErrorOut(BaseModel):
    error_code: str
    message: str


class VersionCreated(VersionOut):
    missing: list[str] = Field(description="Digests to upload before the version is READY.")


class UploadBegin(Strict):
    digest: str


class UploadPartOut(BaseModel):
    offset: int
    length: int
    url: str
    method: str
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers the request must carry (Azure: x-ms-blob-type)"
    )


class UploadTicketOut(BaseModel):
    upload_id: str
    digest: str
    size: int
    offset: int
    parts: list[UploadPartOut] | None = None


class BlobReceiptOut(BaseModel):
    digest: str
    size: int
    stored: bool
    version_status: str


class FilesRead(Strict):
    paths: list[str] = Field(min_length=1, max_length=MAX_BATCH_BLOBS)


class FileUrlOut(FileOut):
    url: str | None  # None: the store has no direct links; download through the server


class FileUrls(BaseModel):
    expires_in: int  # seconds each url stays valid
    files: list[FileUrlOut]


class BlobBatchOut(BaseModel):
    blobs: list[BlobReceiptOut]


class FileList(BaseModel):
    files: list[FileOut]
