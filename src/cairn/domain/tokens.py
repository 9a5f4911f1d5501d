"""API token format: ``cairn_`` + 32 random base62 characters + a 6-character checksum.

The checksum (CRC32 of the random part, base62) lets clients, secret scanners and the
server tell a mistyped or truncated token from a real one without a database lookup.
Only a SHA-256 of the whole token is ever stored; the first characters (``prefix``) are
what listings show.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import zlib

PREFIX = "cairn_"
_ALPHABET = string.digits + string.ascii_letters
_RANDOM_LENGTH = 32
_CHECKSUM_LENGTH = 6
TOKEN_LENGTH = len(PREFIX) + _RANDOM_LENGTH + _CHECKSUM_LENGTH
DISPLAY_LENGTH = len(PREFIX) + 8
MIN_FOREIGN_LENGTH = 32  # a CAIRN_BOOTSTRAP_TOKEN chosen by automation may use any format
MAX_TOKEN_LENGTH = 256
# where a server's first start leaves the bootstrap admin's token, in its data directory,
# for the CLI and SDK on the same machine (a file name, not a secret)
ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105
# the cookie that carries a login session (set by the API's login and the UI's sign-in)
SESSION_COOKIE = "cairn_session"
# the longest lifetime of an API token, in days (10 years)
MAX_TOKEN_DAYS = 3650
# what a secret not in the cairn_ format is listed as (none of its characters)
EXTERNAL_PREFIX = "(external)"


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM_LENGTH)


def new_token() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return PREFIX + body + _checksum(body)


def well_formed(token: str) -> bool:
    """A Cairn token with a valid checksum, or a long opaque secret set by automation."""
    if not token.isascii() or not token.isprintable() or len(token) > MAX_TOKEN_LENGTH:
        return False
    if not token.startswith(PREFIX):
        return len(token) >= MIN_FOREIGN_LENGTH and " " not in token
    body = token[len(PREFIX) : -_CHECKSUM_LENGTH]
    return (
        len(token) == TOKEN_LENGTH
        and all(c in _ALPHABET for c in body)
        and token[-_CHECKSUM_LENGTH:] == _checksum(body)
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    """What listings and the audit log show of a token: a ``cairn_`` token's first
    characters (the random part is long enough to spare them). A secret of another format
    (a CAIRN_BOOTSTRAP_TOKEN chosen by automation) may be a password or a short one: none
    of it is shown. Applied to a stored prefix, it gives the prefix to show for it."""
    return token[:DISPLAY_LENGTH] if token.startswith(PREFIX) else EXTERNAL_PREFIX
