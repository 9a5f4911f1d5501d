"""A server killed while clients write loses nothing it acknowledged.

A real ``cairn server`` with two worker processes takes writes from five clients at once:
three create versions of one model (each with an ``Idempotency-Key`` and a tag naming
it), one moves an alias to versions already created, one creates versions with a file
and uploads its bytes. Mid-way the whole server is killed (SIGKILL to every process:
no shutdown, requests cut off in flight), then started again on the same database and
data folder, three times over. Then:

- every write the server answered is there: each acknowledged version with its tag,
  each acknowledged upload's version READY with its bytes;
- version numbers are 1..N with no gap and each is one create (no key twice);
- a create retried with its key after the restart gives the version it got before, if
  it got one, and never a second;
- the alias stands where the last acknowledged move put it, or where the move in flight
  at the kill did, and its history holds every acknowledged move in order;
- the audit chain is unbroken.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from conftest import ServerProcess

ROUNDS = 3
WRITE_S = 1.5  # how long the clients write before the kill


@dataclass
class Ledger:
    """What the clients sent and what the server answered."""

    versions: dict[str, int] = field(default_factory=dict)  # key -> version acknowledged
    unanswered: set[str] = field(default_factory=set)  # keys sent, answer lost in the kill
    moves: list[int] = field(default_factory=list)  # alias moves acknowledged, in order
    # alias moves whose answer the kill cut off, each with how many moves had been
    # acknowledged when it was sent
    moves_in_flight: list[tuple[int, int]] = field(default_factory=list)
    files: dict[int, bytes] = field(default_factory=dict)  # version of "files" -> bytes
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(url: str) -> httpx.Client:
    token = os.environ["CAIRN_TOKEN"]
    return httpx.Client(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def create_versions(url: str, ledger: Ledger, writer: str, stop: threading.Event) -> None:
    with client(url) as http:
        for n in range(10_000):
            if stop.is_set():
                return
            key = f"{writer}-{n}"
            try:
                answer = http.post(
                    "/models/m/versions",
                    json={"tags": {"key": key}},
                    headers={"Idempotency-Key": key},
                )
            except httpx.TransportError:
                ledger.unanswered.add(key)
                return
            assert answer.status_code == 201, answer.text
            with ledger.lock:
                ledger.versions[key] = answer.json()["version"]


def move_alias(url: str, ledger: Ledger, stop: threading.Event) -> None:
    rng = random.Random(len(ledger.moves))
    with client(url) as http:
        while not stop.is_set():
            with ledger.lock:
                known = sorted(ledger.versions.values())
            if not known:
                time.sleep(0.01)
                continue
            target = rng.choice(known)
            try:
                answer = http.put("/models/m/aliases/champion", json={"version": target})
            except httpx.TransportError:
                ledger.moves_in_flight.append((len(ledger.moves), target))
                return
            assert answer.status_code == 200, answer.text
            ledger.moves.append(target)


def upload_files(url: str, ledger: Ledger, stop: threading.Event) -> None:
    rng = random.Random(len(ledger.files))
    with client(url) as http:
        while not stop.is_set():
            data = rng.randbytes(rng.randrange(1, 256 << 10))
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            try:
                made = http.post(
                    "/models/files/versions",
                    json={"files": [{"path": "weights.bin", "size": len(data), "digest": digest}]},
                )
                assert made.status_code == 201, made.text
                version = made.json()["version"]
                sent = http.put(f"/models/files/versions/{version}/blobs/{digest}", content=data)
            except httpx.TransportError:
                return
            assert sent.status_code == 200, sent.text
            assert sent.json()["version_status"] == "READY"
            ledger.files[version] = data


def write_until_killed(server: ServerProcess, ledger: Ledger, round_: int) -> None:
    stop = threading.Event()
    threads = [
        threading.Thread(target=create_versions, args=(server.url, ledger, f"r{round_}w{w}", stop))
        for w in range(3)
    ]
    threads.append(threading.Thread(target=move_alias, args=(server.url, ledger, stop)))
    threads.append(threading.Thread(target=upload_files, args=(server.url, ledger, stop)))
    for thread in threads:
        thread.start()
    time.sleep(WRITE_S)
    server.stop(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()


def listing(http: httpx.Client, name: str) -> list[dict[str, Any]]:
    versions: list[dict[str, Any]] = []
    token = None
    while True:
        params = {"include_deleted": "true", "max_results": "1000", "files": "false"}
        page = http.get(
            f"/models/{name}/versions",
            params={**params, **({"page_token": token} if token else {})},
        )
        assert page.status_code == 200, page.text
        versions += page.json()["versions"]
        token = page.json().get("next_page_token")
        if not token:
            return versions


def test_a_killed_server_loses_nothing_it_acknowledged(
    db_url: str, tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    data = tmp_path / "data"
    server = server_process(data, db_url, workers=2)
    with client(server.url) as http:
        for name in ("m", "files"):
            assert http.post("/models", json={"name": name}).status_code == 201
    ledger = Ledger()
    for round_ in range(ROUNDS):
        write_until_killed(server, ledger, round_)
        server.start()
    assert len(ledger.versions) > 50 and ledger.moves and ledger.files  # the clients got going

    with client(server.url) as http:
        versions = listing(http, "m")
        numbers = sorted(v["version"] for v in versions)
        assert numbers == list(range(1, len(numbers) + 1))
        keys = [v["tags"]["key"] for v in versions]
        assert len(set(keys)) == len(keys)
        by_key = dict(zip(keys, (v["version"] for v in versions), strict=True))
        for key, number in ledger.versions.items():
            assert by_key[key] == number

        for key in sorted(ledger.unanswered) + sorted(ledger.versions)[:20]:
            again = http.post(
                "/models/m/versions", json={"tags": {"key": key}}, headers={"Idempotency-Key": key}
            )
            assert again.status_code == 201, again.text
            if key in by_key:
                assert again.json()["version"] == by_key[key]
        after = [v["tags"]["key"] for v in listing(http, "m")]
        assert len(set(after)) == len(after)

        champion = http.get("/models/m/aliases/champion").json()["version"]
        last = len(ledger.moves)  # the last acknowledged move, or one sent after it
        assert champion in ledger.moves[-1:] + [v for n, v in ledger.moves_in_flight if n == last]
        history = http.get("/models/m/aliases/champion/history").json()["events"]
        moved_to = [e["to_version"] for e in reversed(history)]
        acknowledged = [v for i, v in enumerate(ledger.moves) if i == 0 or v != ledger.moves[i - 1]]
        it = iter(moved_to)
        assert all(v in it for v in acknowledged)  # in order, the ones in flight maybe between

        for number, content in ledger.files.items():
            got = http.get(f"/models/files/versions/{number}/files/weights.bin")
            assert got.status_code == 200 and got.content == content
        audit = http.get("/audit/verify").json()
        assert audit["ok"], audit
