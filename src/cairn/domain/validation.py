"""Input rules the service applies before touching storage: every value bounded and typed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping

from cairn.domain import names
from cairn.domain.lineage import validate_inputs
from cairn.domain.models import VersionSpec
from cairn.domain.semver import validate_semver
from cairn.errors import InvalidParameter

MAX_PAGE = 1000


def clean_tags(kind: str, tags: Mapping[str, object] | None, limit: int) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidParameter(f"{kind}s must be an object of string keys to string values")
    if len(tags) > names.MAX_ENTRIES:
        raise InvalidParameter(f"{len(tags)} {kind}s given; the limit is {names.MAX_ENTRIES}")
    cleaned = {}
    for key, value in tags.items():
        names.validate_key(kind, key)
        cleaned[key] = names.validate_text(f"{kind} {key!r}", value, limit)
    return cleaned


def clean_metrics(metrics: Mapping[str, object] | None) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidParameter("metrics must be an object of string keys to numbers")
    if len(metrics) > names.MAX_ENTRIES:
        raise InvalidParameter(f"{len(metrics)} metrics given; the limit is {names.MAX_ENTRIES}")
    cleaned = {}
    for key, value in metrics.items():
        names.validate_key("metric", key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidParameter(f"metric {key!r} must be a number, not {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise InvalidParameter(f"metric {key!r} must be a finite number, not {value!r}")
        cleaned[key] = number
    return cleaned


def clean_optional(kind: str, value: object, limit: int) -> str | None:
    if value is None:
        return None
    return names.validate_text(kind, value, limit, allow_newlines=False)


def clean_spec(spec: VersionSpec) -> VersionSpec:
    return VersionSpec(
        description=names.validate_text(
            "description", spec.description, names.MAX_DESCRIPTION_LENGTH
        ),
        tags=clean_tags("tag", spec.tags, names.MAX_TAG_VALUE_LENGTH),
        params=clean_tags("param", spec.params, names.MAX_PARAM_VALUE_LENGTH),
        metrics=clean_metrics(spec.metrics),
        semver=None if spec.semver is None else validate_semver(spec.semver),
        source=clean_optional("source", spec.source, names.MAX_SOURCE_LENGTH),
        run_id=clean_optional("run_id", spec.run_id, names.MAX_RUN_ID_LENGTH),
        run_link=clean_optional("run_link", spec.run_link, names.MAX_SOURCE_LENGTH),
        files=spec.files,
        lineage=validate_inputs(spec.lineage),
    )


def clean_page_size(max_results: object, default: int) -> int:
    if max_results is None:
        return default
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise InvalidParameter(f"max_results must be an integer, not {max_results!r}")
    if not 1 <= max_results <= MAX_PAGE:
        raise InvalidParameter(f"max_results must be between 1 and {MAX_PAGE}, not {max_results}")
    return max_results


def fingerprint(*parts: object) -> str:
    """A stable digest of a request's inputs, for idempotency-key reuse checks. Mappings
    are compared without their order, dataclasses (a ``VersionSpec``) field by field."""
    blob = json.dumps(parts, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def spec_fingerprint(name: str, spec: VersionSpec) -> str:
    """``fingerprint(name, spec)``, where a spec without lineage inputs has the fingerprint
    it had before versions took any: a key stored by an older Cairn still matches."""
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    if not spec.lineage:
        del fields["lineage"]
    return fingerprint(name, fields)


def _plain(value: object) -> object:
    """What ``json`` cannot write itself: a dataclass as its fields (whose mappings it then
    writes with sorted keys; ``repr`` would keep their order), anything else as ``repr``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return repr(value)
