"""A benchmark stopped with SIGTERM unwinds, so its servers and databases are cleaned up."""

from __future__ import annotations

import os
import signal

import pytest
from regbench.servers import exit_on_sigterm


def test_sigterm_unwinds_through_finally_blocks() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    cleaned = False
    try:
        exit_on_sigterm()
        with pytest.raises(SystemExit) as stopped:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            finally:
                cleaned = True
        assert stopped.value.code == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert cleaned
