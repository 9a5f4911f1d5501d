"""RESULTS.md's generated sections are replaced in place; nothing else is ever touched."""

from __future__ import annotations

from pathlib import Path

import pytest
import transfer_attribution as ta
import transfer_report as tr
from regbench.report import splice

B, E = "<!-- x:begin (written by x.py) -->", "<!-- x:end -->"
HAND = "## Reading these runs (hand-written)\n\nNever to be clobbered.\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "RESULTS.md"
    path.write_text(text)
    return path


def test_the_section_is_replaced_and_the_hand_written_text_kept(tmp_path: Path) -> None:
    path = _write(tmp_path, f"# Benchmark results\n\n{B}\nold\n{E}\n\n{HAND}")
    splice(path, "new", B, E)
    assert path.read_text() == f"# Benchmark results\n\n{B}\nnew\n{E}\n\n{HAND}"


def test_a_missing_section_is_appended(tmp_path: Path) -> None:
    path = _write(tmp_path, f"# Benchmark results\n\n{HAND}")
    splice(path, "new", B, E)
    assert path.read_text() == f"# Benchmark results\n\n{HAND}\n{B}\nnew\n{E}\n"


@pytest.mark.parametrize(
    "broken",
    [
        f"{B}\nold\n\n{HAND}",  # its end marker lost
        f"{E}\n{HAND}\n{B}\nold\n",  # the end marker only before the begin
        f"{B}\nold\n{E}\n{HAND}\n{B}\nolder\n{E}\n",  # the section twice
    ],
)
def test_broken_markers_leave_the_file_alone(tmp_path: Path, broken: str) -> None:
    path = _write(tmp_path, broken)
    with pytest.raises(ValueError, match="markers"):
        splice(path, "new", B, E)
    assert path.read_text() == broken


def test_a_section_whose_end_marker_was_lost_never_swallows_what_follows(tmp_path: Path) -> None:
    """Appending a second section there would have the next run replace everything from
    the first begin marker to the second one's end, the hand-written text included."""
    path = _write(tmp_path, f"{B}\nold\n\n{HAND}")
    with pytest.raises(ValueError):
        splice(path, "new", B, E)
    assert HAND in path.read_text()


def test_transfer_and_attribution_sections_use_the_same_splice(tmp_path: Path) -> None:
    path = _write(tmp_path, f"# Benchmark results\n\n{tr.BEGIN}\nold\n{tr.END}\n\n{HAND}")
    ta.splice_after_transfer(path, "attribution")
    tr.splice(path, "transfer")
    assert path.read_text() == (
        f"# Benchmark results\n\n{tr.BEGIN}\ntransfer\n{tr.END}\n\n"
        f"{ta.BEGIN}\nattribution\n{ta.END}\n\n{HAND}"
    )
    path.write_text(f"{tr.BEGIN}\nold\n\n{HAND}")  # transfer's end marker lost
    with pytest.raises(ValueError):
        tr.splice(path, "transfer")
