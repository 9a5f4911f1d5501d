"""The server's secret keys and the secrets they seal (``service/keyring.py``): the format,
what binds a sealed value to its row, rotation, refusals that name no key material, and
the key file made once by processes that start together."""

from __future__ import annotations

import base64
import multiprocessing
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from cairn.errors import CairnError, Conflict, DataCorrupted, InvalidParameter
from cairn.service.factory import build_service
from cairn.service.keyring import (
    KEY_FILE,
    Keyring,
    create_key_file,
    is_sealed,
    key_id,
    new_key_text,
    parse_keys,
    sealed_with,
)
from cairn.settings import Settings

SECRET = "whsec_the-signing-secret-0123456789"


def _key(n: int) -> str:
    """A fixed test key (parameters must be the same in every xdist worker)."""
    return base64.urlsafe_b64encode(bytes([n]) * 32).decode().rstrip("=")


A, B = _key(1), _key(2)


def test_a_sealed_secret_opens_in_its_row_and_nowhere_else() -> None:
    ring = Keyring(A)
    sealed = ring.seal(SECRET, "webhook:1:ci")
    assert is_sealed(sealed) and sealed.startswith(f"v1:{ring.current().id}:")
    assert SECRET not in sealed
    assert ring.reveal(sealed, "webhook:1:ci", "it") == SECRET
    assert ring.seal(SECRET, "webhook:1:ci") != sealed  # a fresh nonce every time
    for context in ("webhook:2:ci", "webhook:1:cd"):  # moved to another row
        with pytest.raises(DataCorrupted, match="altered or copied from another row"):
            ring.reveal(sealed, context, "it")
    head, body = sealed.rsplit(":", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(DataCorrupted):
        ring.reveal(f"{head}:{flipped}", "webhook:1:ci", "it")
    with pytest.raises(DataCorrupted, match="not a sealed value"):
        ring.reveal(f"{head}:AAAA", "webhook:1:ci", "it")


def test_a_secret_in_the_clear_is_used_as_it_is() -> None:
    """Written before secrets were sealed: no key is needed to use it (nor loaded)."""
    ring = Keyring()  # no key at all
    assert not is_sealed(SECRET) and sealed_with(SECRET) is None
    assert ring.reveal(SECRET, "webhook:1:ci", "it") == SECRET
    assert ring.reveal("v1:not-sealed-after-all", "webhook:1:ci", "it") == "v1:not-sealed-after-all"
    with pytest.raises(CairnError, match="no secret key is configured"):
        ring.seal(SECRET, "webhook:1:ci")


def test_rotation_the_first_key_seals_every_key_opens() -> None:
    old = Keyring(A)
    sealed_a = old.seal(SECRET, "ctx")
    both = Keyring(f"{B}, {A}")
    assert [k.id for k in both.every_key()] == [
        key_id(base64.urlsafe_b64decode(B + "=")),
        old.current().id,
    ]
    assert both.reveal(sealed_a, "ctx", "it") == SECRET
    sealed_b = both.seal(SECRET, "ctx")
    assert sealed_with(sealed_b) == both.current().id != sealed_with(sealed_a)
    assert Keyring(B).reveal(sealed_b, "ctx", "it") == SECRET  # the old key dropped
    with pytest.raises(Conflict) as missing:
        Keyring(B).reveal(sealed_a, "ctx", "the signing secret of webhook 'ci'")
    message = missing.value.message
    assert f"sealed with secret key {old.current().id}" in message
    assert "webhook 'ci'" in message and "CAIRN_SECRET_KEYS" in message
    assert A not in message and B not in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "holds no key"),
        ("short", "key 1 of 1"),
        (base64.urlsafe_b64encode(bytes(range(16))).decode(), "key 1 of 1"),
        (base64.b64encode(b"\xfb" * 32).decode(), "key 1 of 1"),  # '+' and '/': not base64url
        (f"{A},{_key(3)[:-1]}", "key 2 of 2"),
        (f"{A},{A}", "repeats an earlier key"),
    ],
    ids=["empty", "short", "16-bytes", "not-url-safe", "second-short", "repeated"],
)
def test_malformed_keys_are_refused_without_quoting_them(text: str, says: str) -> None:
    with pytest.raises(InvalidParameter, match=says) as refused:
        Keyring(text)
    for part in text.split(","):
        if part:
            assert part not in refused.value.message


def test_keys_are_taken_padded_or_not_and_separated_by_commas_or_lines() -> None:
    padded = base64.urlsafe_b64encode(base64.urlsafe_b64decode(A + "=")).decode()
    assert padded.endswith("=")
    assert [k.id for k in parse_keys(f"{padded}\n{B}\n", "x")] == [
        k.id for k in parse_keys(f"{A},{B}", "x")
    ]
    assert "material" not in repr(parse_keys(A, "x"))
    made = {new_key_text() for _ in range(3)}
    assert len(made) == 3 and all(len(parse_keys(k, "x")) == 1 for k in made)
    assert A not in repr(Keyring(A)) and A not in repr(Keyring(A).every_key())


def test_a_bad_cairn_secret_keys_stops_the_server_with_a_message_naming_no_key(
    tmp_path: Path,
) -> None:
    half = _key(4)[:20]
    settings = Settings(data_dir=tmp_path, secret_keys=f"{A},{half}")
    with pytest.raises(InvalidParameter, match="key 2 of 2 in CAIRN_SECRET_KEYS") as refused:
        build_service(settings)
    assert half not in refused.value.message and A not in refused.value.message
    assert not (tmp_path / "cairn.db").exists()  # refused before the database was opened


def test_the_key_file_is_made_on_first_need_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    ring = Keyring(key_file=path)
    assert not path.exists()  # nothing made by building it
    first = ring.current()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring(key_file=path).current() == first  # the next process reads the same key
    assert os.listdir(tmp_path) == [KEY_FILE]  # no temporary file left
    (key,) = parse_keys(path.read_text(), "f")
    assert key == first


def test_a_key_file_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    ring = Keyring(key_file=tmp_path / "missing-folder" / KEY_FILE)
    with pytest.raises(CairnError, match=r"cannot be read or made.*CAIRN_SECRET_KEYS"):
        ring.current()
    bad = tmp_path / KEY_FILE
    bad.write_text("not a key\n")
    with pytest.raises(InvalidParameter, match=f"key 1 of 3 in the key file {bad}"):
        Keyring(key_file=bad).current()


def _make(path: str, start: Any, out: Any) -> None:
    start.wait()
    out.put(create_key_file(Path(path)).strip())


def test_processes_starting_together_end_with_one_key(tmp_path: Path) -> None:
    """Four processes (as the workers of one ``cairn server --workers 4``) make the key
    file at the same moment: all of them read one key, the one in the file."""
    ctx = multiprocessing.get_context("spawn")
    path = tmp_path / KEY_FILE
    n = 4
    start, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_make, args=(str(path), start, out)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [out.get(timeout=60) for _ in range(n)]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(set(got)) == 1
    assert path.read_text().strip() == got[0]
    assert os.listdir(tmp_path) == [KEY_FILE]


def test_threads_starting_together_end_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    n = 16
    start = threading.Barrier(n)
    got: list[str] = []

    def make() -> None:
        start.wait()
        got.append(create_key_file(path))

    threads = [threading.Thread(target=make) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == n and len(set(got)) == 1 and path.read_text() == got[0]
    assert os.listdir(tmp_path) == [KEY_FILE]
