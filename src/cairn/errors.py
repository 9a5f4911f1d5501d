"""Cairn's one exception tree.

Every error a caller can see is one of these. Each class carries the MLflow-style
``error_code`` and the HTTP status it maps to; the HTTP client maps codes back to
the same classes, so local and remote callers catch the same exceptions::

    CairnError                      INTERNAL_ERROR            500
    ├── InvalidParameter            INVALID_PARAMETER_VALUE   400
    │   └── InvalidFilter           INVALID_PARAMETER_VALUE   400  (+ position)
    ├── AlreadyExists               RESOURCE_ALREADY_EXISTS   400  (as in MLflow)
    ├── NotFound                    RESOURCE_DOES_NOT_EXIST   404
    ├── Conflict                    RESOURCE_CONFLICT         409
    ├── PayloadTooLarge             REQUEST_LIMIT_EXCEEDED    413
    ├── Unauthenticated             UNAUTHENTICATED           401
    ├── PermissionDenied            PERMISSION_DENIED         403
    ├── UnsupportedMediaType        INVALID_PARAMETER_VALUE   415  (JSON endpoints, other bodies)
    ├── RateLimited                 REQUEST_LIMIT_EXCEEDED    429
    ├── SchemaMismatch              INVALID_STATE             500  (database newer than code)
    ├── DataCorrupted               DATA_LOSS                 500  (stored bytes fail their digest)
    └── Unavailable                 TEMPORARILY_UNAVAILABLE   503
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar


class CairnError(Exception):
    """Base of every Cairn error."""

    error_code: ClassVar[str] = "INTERNAL_ERROR"
    http_status: ClassVar[int] = 500
    # seconds the caller should wait before trying again; the API and the UI send it as
    # Retry-After (every 503 has one: ``Unavailable``)
    retry_after: int | None = None

    def __init__(self, message: str, *, denial: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # set when an authorization check refused the call: what the audit log records
        # (action, model, version); never sent to the caller
        self.denial = denial

    def to_dict(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}


class InvalidParameter(CairnError):
    error_code = "INVALID_PARAMETER_VALUE"
    http_status = 400


class InvalidFilter(InvalidParameter):
    """A search filter that does not parse; ``position`` is the 0-based offset."""

    def __init__(self, message: str, position: int | None = None) -> None:
        if position is not None:
            message = f"{message} (at position {position})"
        super().__init__(message)
        self.position = position


class AlreadyExists(CairnError):
    error_code = "RESOURCE_ALREADY_EXISTS"
    http_status = 400


class NotFound(CairnError):
    error_code = "RESOURCE_DOES_NOT_EXIST"
    http_status = 404


class Conflict(CairnError):
    error_code = "RESOURCE_CONFLICT"
    http_status = 409


class PayloadTooLarge(CairnError):
    error_code = "REQUEST_LIMIT_EXCEEDED"
    http_status = 413


class Unauthenticated(CairnError):
    error_code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(CairnError):
    error_code = "PERMISSION_DENIED"
    http_status = 403


class UnsupportedMediaType(CairnError):
    error_code = "INVALID_PARAMETER_VALUE"
    http_status = 415


class RateLimited(CairnError):
    error_code = "REQUEST_LIMIT_EXCEEDED"
    http_status = 429


class SchemaMismatch(CairnError):
    error_code = "INVALID_STATE"
    http_status = 500


class DataCorrupted(CairnError):
    error_code = "DATA_LOSS"
    http_status = 500


class Unavailable(CairnError):
    """Temporarily unavailable: try again after ``retry_after`` seconds. The usual cause (a
    database busy past the retries, a lost connection, a store that failed a request) is
    over in a moment, hence the default of 1 s; a read-only database names a longer wait."""

    error_code = "TEMPORARILY_UNAVAILABLE"
    http_status = 503

    def __init__(
        self,
        message: str,
        *,
        retry_after: int = 1,
        denial: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, denial=denial)
        self.retry_after = retry_after


_BY_STATUS_AND_CODE: dict[tuple[int, str], type[CairnError]] = {
    (cls.http_status, cls.error_code): cls
    for cls in (
        CairnError,
        InvalidParameter,
        AlreadyExists,
        NotFound,
        Conflict,
        PayloadTooLarge,
        Unauthenticated,
        PermissionDenied,
        UnsupportedMediaType,
        RateLimited,
        SchemaMismatch,
        DataCorrupted,
        Unavailable,
    )
}


# how ``InvalidFilter`` ends its message: the one trace of it an error body keeps
_AT_POSITION = re.compile(r"(?s)(.*) \(at position (\d+)\)")


def error_from_response(status: int, error_code: str | None, message: str) -> CairnError:
    """Rebuild the exception a server raised from its status and error body (a filter
    that does not parse: ``InvalidFilter`` with its ``position``, as raised locally)."""
    cls = _BY_STATUS_AND_CODE.get((status, error_code or ""))
    if cls is InvalidParameter and (at := _AT_POSITION.fullmatch(message)):
        return InvalidFilter(at.group(1), int(at.group(2)))
    if cls is None:
        for (s, _), candidate in _BY_STATUS_AND_CODE.items():
            if s == status:
                cls = candidate
                break
    if cls is None:
        cls = CairnError
    return cls(message)
