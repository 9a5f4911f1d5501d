"""obstore's exceptions → Cairn errors. Nothing above ``store/`` sees an obstore exception.

Absence becomes ``NotFound`` where the caller says what was absent; everything else
(network, credentials, throttling, a missing bucket) becomes ``Unavailable``, with the
details in the server log rather than in the message a client receives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import obstore.exceptions as obstore_exceptions

from cairn.errors import NotFound, Unavailable
from cairn.store.blobs.integrity import SourceFailed

log = logging.getLogger(__name__)


@contextmanager
def obstore_errors(not_found: str | None = None) -> Iterator[None]:
    """Translate obstore's exceptions; Cairn errors and the caller's own failures pass."""
    try:
        yield
    except SourceFailed as exc:
        raise exc.error from exc.error.__cause__
    except (FileNotFoundError, obstore_exceptions.NotFoundError) as exc:
        # obstore raises the builtin FileNotFoundError for a missing object
        if not_found is None:
            raise _unavailable(exc) from exc
        raise NotFound(not_found) from exc
    except (obstore_exceptions.BaseError, OSError) as exc:
        raise _unavailable(exc) from exc


def translated_stream(chunks: Iterable[bytes], not_found: str) -> Iterator[bytes]:
    """Iterate an obstore byte stream, translating errors raised mid-stream too."""
    with obstore_errors(not_found):
        yield from chunks


def _unavailable(exc: BaseException) -> Unavailable:
    log.warning("object store request failed: %s", exc)
    return Unavailable(
        f"the object store failed ({type(exc).__name__}); try again later, the server log "
        "has the details"
    )
