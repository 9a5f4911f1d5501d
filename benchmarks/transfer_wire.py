"""Moving bytes over HTTP for the transfer benchmark: curl (C client) and httpx (Python).

Both send one file per request, one request after the other on one keep-alive
connection, with ``Content-Length`` set and no ``Expect: 100-continue`` round trip.
Every function checks each response's status and byte count and raises on a mismatch
(a 401 from a server that wanted credentials is a failure, never a fast transfer).
Extra ``headers`` (Cairn's ``Authorization``) go with every request.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

CHUNK = 1 << 20
TIMEOUT_S = 600.0
_WRITE_OUT = r"%{http_code} %{size_upload} %{size_download}\n"


class TransferError(RuntimeError):
    pass


def curl_path() -> str:
    path = shutil.which("curl")
    if path is None:
        raise TransferError("curl is not installed (apt-get install curl)")
    return path


def _curl(
    args: list[str],
    expected: list[tuple[int, int]],
    upload: bool,
    headers: dict[str, str] | None = None,
) -> None:
    """Run one curl with several transfers; ``expected`` is (size, _) per transfer."""
    cmd = [curl_path(), "-sS", "--max-time", str(int(TIMEOUT_S)), "-H", "Expect:", "-w", _WRITE_OUT]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]  # every URL of this invocation
    done = subprocess.run(cmd + args, capture_output=True, text=True, timeout=TIMEOUT_S + 30)
    lines = done.stdout.strip().splitlines()[-len(expected) :] if expected else []
    if done.returncode != 0 or len(lines) != len(expected):
        raise TransferError(f"curl failed ({done.returncode}): {done.stderr.strip()[:500]}")
    for line, (size, _) in zip(lines, expected, strict=True):
        code, up, down = (int(float(x)) for x in line.split())
        moved = up if upload else down
        if not 200 <= code < 300 or moved != size:
            raise TransferError(f"curl transfer answered {code} after {moved} of {size} bytes")


def curl_put(pairs: list[tuple[Path, str]], headers: dict[str, str] | None = None) -> None:
    """PUT each file to its URL."""
    args: list[str] = []
    for path, url in pairs:
        args += ["-T", str(path), url, "-o", "/dev/null"]
    _curl(args, [(p.stat().st_size, 0) for p, _ in pairs], upload=True, headers=headers)


def curl_get(
    pairs: list[tuple[str, Path]], sizes: list[int], headers: dict[str, str] | None = None
) -> None:
    """GET each URL into its file."""
    args: list[str] = []
    for url, path in pairs:
        args += [url, "-o", str(path)]
    _curl(args, [(s, 0) for s in sizes], upload=False, headers=headers)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            yield chunk


def new_client(base_url: str, headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(TIMEOUT_S))


def httpx_put(client: httpx.Client, pairs: list[tuple[Path, str]]) -> None:
    """PUT each file, streamed from disk in 1 MiB chunks with Content-Length set."""
    for path, url in pairs:
        size = path.stat().st_size
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        response = client.put(url, content=_file_chunks(path), headers=headers)
        if not response.is_success:
            raise TransferError(f"PUT {url} answered {response.status_code}: {response.text[:300]}")


def httpx_get(client: httpx.Client, pairs: list[tuple[str, Path]], sizes: list[int]) -> None:
    """GET each URL, streaming the body into its file."""
    for (url, path), size in zip(pairs, sizes, strict=True):
        received = 0
        with client.stream("GET", url) as response, path.open("wb") as f:
            if not response.is_success:
                raise TransferError(f"GET {url} answered {response.status_code}")
            for chunk in response.iter_raw(CHUNK):
                f.write(chunk)
                received += len(chunk)
        if received != size:
            raise TransferError(f"GET {url} gave {received} of {size} bytes")
