"""Both load generators (wrk with replay.lua, and the Python one) count the same things: the
latency percentiles are over the answers with the expected status only; wrong statuses and
requests that got no answer are errors, counted apart and in no percentile."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from regbench import load
from regbench.workload import Phase, Req


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/drop":  # no answer at all: the connection just closes
            self.close_connection = True
            return
        status = 200 if self.path == "/ok" else 500
        body = b"{}"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


PATHS = ["/ok", "/bad", "/ok", "/drop", "/ok", "/bad", "/ok"]
PHASE = Phase("mixed", 1, tuple(Req("GET", p, b"", 200) for p in PATHS))


def _check(outcome: load.Outcome) -> None:
    assert (outcome.sent, outcome.answered, outcome.bad_status) == (7, 6, 2)
    assert (outcome.good, outcome.errors) == (4, 3)
    assert len(outcome.latencies_us) == outcome.good  # failed requests are in no percentile


def test_python_engine_times_good_answers_only(port: int) -> None:
    _check(load.run_python(PHASE, port, close=False, cap_s=30.0))


@pytest.mark.skipif(not load.wrk_available(), reason="wrk is not installed")
def test_wrk_engine_times_good_answers_only(port: int, tmp_path: Path) -> None:
    _check(load.run_wrk(PHASE, port, close=False, cap_s=30.0, workdir=tmp_path))
