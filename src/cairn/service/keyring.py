"""The server's secret keys, and the secrets they seal at rest (envelope encryption).

A secret the server must use again in the clear (a webhook's signing secret: it signs with
it) cannot be hashed like a token. It is stored sealed instead: AES-256-GCM under the first
of the server's keys, with a fresh 96-bit nonce, as ``v1:<key id>:<base64url(nonce +
ciphertext + tag)>``. The key id is a short fingerprint of the key (not of the secret), so
a value names the key that opens it; the row it belongs to is bound as associated data
(``context``), so a sealed value copied to another row does not open there.

The keys are ``CAIRN_SECRET_KEYS`` (base64url 32-byte keys separated by commas; the first
seals, every one opens: add a new first key, re-encrypt, drop the old one), or else the
data directory's ``secret.key``, made on first need: written to a temporary file (mode
0600), synced, then hard-linked into place, which fails if another process made it first;
the loser reads the winner's key. Key material is never logged, printed or put in a message.

``cryptography`` is imported only when a secret is sealed or opened, not by every worker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cairn.domain.webhooks import SEALED_PREFIX
from cairn.errors import CairnError, Conflict, DataCorrupted, InvalidParameter

if TYPE_CHECKING:
    from cairn.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]{43}=?")
_SEALED = re.compile(r"v1:([0-9a-f]{8}):([A-Za-z0-9_-]+)")
_HOW = (
    'make one with: python -c "import base64, os; '
    "print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('='))\""
)


@dataclass(frozen=True, slots=True)
class SecretKey:
    id: str  # 8 hex digits: a fingerprint of the key, safe to show
    material: bytes = field(repr=False)


def key_id(material: bytes) -> str:
    """The key's fingerprint: 32 bits of a domain-separated SHA-256 (it tells keys apart
    and says nothing useful about one)."""
    return hashlib.sha256(b"cairn secret key id\0" + material).hexdigest()[:8]


def new_key_text() -> str:
    """A new key, as ``CAIRN_SECRET_KEYS`` and the key file hold one."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def parse_keys(text: str, source: str) -> tuple[SecretKey, ...]:
    """The keys in ``text`` (separated by commas, spaces or newlines), first first.

    Raises ``InvalidParameter`` naming ``source`` and the key's position, never its text."""
    parts = [p for p in re.split(r"[\s,]+", text) if p]
    if not parts:
        raise InvalidParameter(f"{source} holds no key; {_HOW}")
    keys: list[SecretKey] = []
    for n, part in enumerate(parts, 1):
        material = _decode(part)
        if material is None:
            raise InvalidParameter(
                f"key {n} of {len(parts)} in {source} is not a base64url-encoded 32-byte "
                f"key (43 characters of A-Z a-z 0-9 - _); {_HOW}"
            )
        key = SecretKey(key_id(material), material)
        for other in keys:
            if other.id == key.id:
                same = "repeats" if other.material == material else "has the same id as"
                raise InvalidParameter(f"key {n} in {source} {same} an earlier key; drop it")
        keys.append(key)
    return tuple(keys)


def _decode(part: str) -> bytes | None:
    if not _KEY_TEXT.fullmatch(part):
        return None
    try:
        material = base64.urlsafe_b64decode(part.rstrip("=") + "=")
    except (binascii.Error, ValueError):
        return None
    return material if len(material) == KEY_BYTES else None


def is_sealed(stored: str) -> bool:
    """Whether a stored value is sealed (``v1:…``); anything else is a secret written in
    the clear before secrets were sealed, used as it is until it is sealed."""
    return _SEALED.fullmatch(stored) is not None


def sealed_with(stored: str) -> str | None:
    """The id of the key that sealed ``stored`` (None: it is in the clear)."""
    match = _SEALED.fullmatch(stored)
    return None if match is None else match.group(1)


def create_key_file(path: Path) -> str:
    """The key file's text, the file made first if there is none (mode 0600).

    Safe between processes starting together: each writes its own temporary file and
    links it to ``path``; a link never replaces a file, so the first one stays and the
    others read it. Nobody ever sees a half-written key file."""
    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, (new_key_text() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: its key is the key
        else:
            _sync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text()


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Keyring:
    """The keys secrets are sealed with: given (``CAIRN_SECRET_KEYS``, parsed now) or the
    key file (read, or made, on first need). Thread-safe."""

    def __init__(self, keys: str | None = None, *, key_file: Path | None = None) -> None:
        self._given = None if keys is None else parse_keys(keys, "CAIRN_SECRET_KEYS")
        self._key_file = key_file
        self._keys: tuple[SecretKey, ...] | None = self._given
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        given = settings.secret_keys
        if given is not None:
            return cls(given.get_secret_value())
        return cls(key_file=settings.data_dir.resolve() / KEY_FILE)

    def __repr__(self) -> str:
        where = "CAIRN_SECRET_KEYS" if self._given is not None else str(self._key_file)
        return f"Keyring({where})"

    @property
    def source(self) -> str:
        """Where the keys come from, for messages."""
        if self._given is not None:
            return "CAIRN_SECRET_KEYS"
        return f"the key file {self._key_file}" if self._key_file else "no key"

    def every_key(self) -> tuple[SecretKey, ...]:
        """Every key, the sealing one first (the key file read or made now, once)."""
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    self._keys = self._load()
        return self._keys

    def current(self) -> SecretKey:
        return self.every_key()[0]

    def _load(self) -> tuple[SecretKey, ...]:
        path = self._key_file
        if path is None:
            raise CairnError(
                "no secret key is configured to seal secrets with: set CAIRN_SECRET_KEYS "
                "or give the server a data directory (docs/security.md#secrets-at-rest)"
            )
        try:
            text = create_key_file(path)
            mode = path.stat().st_mode
        except OSError as exc:
            raise CairnError(
                f"the secret key file {path} cannot be read or made: {exc.strerror}; make "
                "the data directory writable, or set CAIRN_SECRET_KEYS"
            ) from None
        if mode & 0o077:
            log.warning(
                "secret key file %s is readable by other users (mode %o): chmod 600 it",
                path,
                mode & 0o777,
            )
        return parse_keys(text, f"the key file {path}")

    # -- sealing -------------------------------------------------------------------------

    def seal(self, secret: str, context: str) -> str:
        """``secret`` sealed under the first key, bound to ``context`` (the row's identity)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self.current()
        nonce = secrets.token_bytes(NONCE_BYTES)
        header = f"{SEALED_PREFIX}{key.id}"
        box = AESGCM(key.material).encrypt(nonce, secret.encode(), _aad(header, context))
        return f"{header}:{base64.urlsafe_b64encode(nonce + box).decode().rstrip('=')}"

    def reveal(self, stored: str, context: str, what: str) -> str:
        """The secret ``stored`` holds: opened if it is sealed, as it is if it is in the
        clear (written before secrets were sealed).

        Raises ``Conflict`` when the key that sealed it is not one of these keys, and
        ``DataCorrupted`` when it does not open (altered, or copied from another row);
        ``what`` names the secret in those messages."""
        match = _SEALED.fullmatch(stored)
        if match is None:
            return stored
        kid, body = match.groups()
        key = next((k for k in self.every_key() if k.id == kid), None)
        if key is None:
            held = ", ".join(k.id for k in self.every_key())
            raise Conflict(
                f"{what} is sealed with secret key {kid}, which this server does not hold "
                f"(its keys, from {self.source}: {held}); add that key to CAIRN_SECRET_KEYS "
                "(docs/security.md#secrets-at-rest)"
            )
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise DataCorrupted(f"{what} is damaged (not a sealed value); rotate it")
        try:
            plain = AESGCM(key.material).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(f"{SEALED_PREFIX}{kid}", context)
            )
        except InvalidTag:
            raise DataCorrupted(
                f"{what} does not open with secret key {kid}: it was altered or copied from "
                "another row; rotate it"
            ) from None
        return plain.decode()


def _aad(header: str, context: str) -> bytes:
    """What is authenticated with the ciphertext: the format, the key id and the row."""
    return f"cairn sealed secret\0{header}\0{context}".encode()
