"""Summaries and the Markdown section of the transfer benchmark.

The section sits between markers in ``benchmarks/RESULTS.md`` so a re-run replaces only
it; other benchmarks own the rest of the file.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from regbench.report import splice as splice_section
from transfer_procs import DISTURBED_CPUS

BEGIN = "<!-- transfer:begin (written by benchmarks/transfer.py) -->"
END = "<!-- transfer:end -->"
LOOPBACK = "http-ref/curl"
MLFLOW = "mlflow/curl"
CAIRN_PREFIX = "cairn"
TARGET_LOOPBACK = 0.90
TARGET_MLFLOW = 3.0
TARGET_RSS_MB = 150.0
TARGET_REPUSH_FRACTION = 0.01


@dataclass
class Sample:
    """One timed transfer."""

    contender: str
    label: str
    dataset: str
    direction: str  # push | pull
    rep: int
    seconds: float
    nbytes: int
    hash_s: float = 0.0
    rss_idle_mb: float | None = None
    rss_peak_mb: float | None = None
    server_cpu_s: float | None = None
    foreign_cpus: float = 0.0  # CPUs the rest of the machine used meanwhile (averaged)
    note: str = ""
    error: str = ""  # why the round failed (e.g. the pull delivered other bytes), if it did

    @property
    def disturbed(self) -> bool:
        return self.foreign_cpus > DISTURBED_CPUS

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass
class Row:
    """The median of a (data set, direction, contender) cell."""

    contender: str
    label: str
    dataset: str
    direction: str
    seconds: float
    nbytes: int
    runs: int  # correct runs (those that delivered the source bytes)
    disturbed: int  # runs during which other processes were busy (left out of the median)
    hash_s: float
    rss_idle_mb: float | None
    rss_peak_mb: float | None
    server_cpu_s: float | None
    failed: int = 0  # runs that delivered wrong bytes (in no figure of the row)

    @property
    def mbps(self) -> float:
        return self.nbytes / self.seconds / 1e6

    @property
    def only_disturbed(self) -> bool:
        """Its median comes from disturbed runs (there was no undisturbed one)."""
        return self.disturbed == self.runs

    @property
    def upload_mbps(self) -> float | None:
        """Push rate without the hashing phase (only when there was one)."""
        if self.hash_s <= 0 or self.seconds <= self.hash_s:
            return None
        return self.nbytes / (self.seconds - self.hash_s) / 1e6


@dataclass
class Repush:
    """An unchanged re-push: bytes on the wire and time, against hashing the files."""

    contender: str
    total_bytes: int
    sent_bytes: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    hash_seconds: list[float] = field(default_factory=list)
    threads: int = 1
    disturbed: int = 0  # iterations during which other processes were busy

    @property
    def fraction(self) -> float:
        return max(self.sent_bytes, default=0) / self.total_bytes

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def hash_median_s(self) -> float:
        return statistics.median(self.hash_seconds)


def summarize(samples: list[Sample]) -> list[Row]:
    """One row per cell, from its correct runs only: a run that delivered wrong bytes is in
    no median (it is counted in ``failed``; a cell with no correct run has no row)."""
    cells: dict[tuple[str, str, str], list[Sample]] = {}
    failures: dict[tuple[str, str, str], int] = {}
    for s in samples:
        key = (s.dataset, s.direction, s.contender)
        if s.failed:
            failures[key] = failures.get(key, 0) + 1
        else:
            cells.setdefault(key, []).append(s)
    rows = []
    for (dataset, direction, contender), every in cells.items():
        clean = [s for s in every if not s.disturbed]
        group = clean or every  # the median of undisturbed runs, if there are any
        peaks = [s.rss_peak_mb for s in every if s.rss_peak_mb is not None]  # all runs
        idles = [s.rss_idle_mb for s in group if s.rss_idle_mb is not None]
        cpus = [s.server_cpu_s for s in group if s.server_cpu_s is not None]
        rows.append(
            Row(
                contender=contender,
                label=every[0].label,
                dataset=dataset,
                direction=direction,
                seconds=statistics.median(s.seconds for s in group),
                nbytes=every[0].nbytes,
                runs=len(every),
                disturbed=len(every) - len(clean),
                hash_s=statistics.median(s.hash_s for s in group),
                rss_idle_mb=statistics.median(idles) if idles else None,
                rss_peak_mb=max(peaks) if peaks else None,
                server_cpu_s=statistics.median(cpus) if cpus else None,
                failed=failures.get((dataset, direction, contender), 0),
            )
        )
    return rows


def failures(samples: list[Sample]) -> list[Sample]:
    """The failed pulls (one per failed round), in the order they ran."""
    return [s for s in samples if s.failed and s.direction == "pull"]


def clean_count(samples: list[Sample], contender: str, dataset: str) -> int:
    """Undisturbed, correct push+pull pairs of one contender on one data set."""
    clean = [
        s
        for s in samples
        if (s.contender, s.dataset) == (contender, dataset) and not (s.disturbed or s.failed)
    ]
    pulls = {s.rep for s in clean if s.direction == "pull"}
    return sum(1 for s in clean if s.direction == "push" and s.rep in pulls)


def find(rows: list[Row], dataset: str, direction: str, contender: str) -> Row | None:
    for row in rows:
        if (row.dataset, row.direction, row.contender) == (dataset, direction, contender):
            return row
    return None


def _ratio(row: Row, ref: Row | None) -> float | None:
    return None if ref is None else row.mbps / ref.mbps


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _fmt_rss(row: Row) -> str:
    if row.rss_peak_mb is None:
        return "-"
    return f"{row.rss_idle_mb or 0:.0f} → {row.rss_peak_mb:.0f}"


def _fmt_cpu(row: Row) -> str:
    return "-" if row.server_cpu_s is None else f"{row.server_cpu_s:.2f}"


def results_table(rows: list[Row], datasets: list[tuple[str, str]], order: list[str]) -> str:
    lines = [
        "| data | direction | contender | runs | s (median) | MB/s | x loopback HTTP "
        "| x MLflow | server CPU s | server RSS MB (idle → peak) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in datasets:
        for direction in ("push", "pull"):
            loop = find(rows, key, direction, LOOPBACK)
            mlflow = find(rows, key, direction, MLFLOW)
            for contender in order:
                row = find(rows, key, direction, contender)
                if row is None:
                    continue
                speed = f"{row.mbps:.0f}"
                if row.upload_mbps is not None:
                    speed += f" ({row.upload_mbps:.0f} w/o hashing)"
                runs = f"{row.runs}" + (f" ({row.disturbed} disturbed)" if row.disturbed else "")
                if row.failed:
                    runs += f" + {row.failed} failed"
                lines.append(
                    f"| {label} | {direction} | {row.label} | {runs} | {row.seconds:.2f} "
                    f"| {speed} | {_fmt_ratio(_ratio(row, loop))} "
                    f"| {_fmt_ratio(_ratio(row, mlflow))} | {_fmt_cpu(row)} | {_fmt_rss(row)} |"
                )
    return "\n".join(lines)


@dataclass
class Verdict:
    target: str
    contender: str
    measured: str
    ok: bool


def verdicts(
    rows: list[Row],
    datasets: list[tuple[str, str]],
    repushes: list[Repush],
    failed: Iterable[Sample] = (),
) -> list[Verdict]:
    out: list[Verdict] = []
    failed = list(failed)
    cairn = sorted({r.contender for r in [*rows, *failed] if r.contender.startswith(CAIRN_PREFIX)})
    for contender in cairn:
        for key, label in datasets:
            wrong = [s for s in failed if (s.contender, s.dataset) == (contender, key)]
            if wrong:
                out.append(
                    Verdict(
                        f"every pull delivers the pushed bytes, {label}",
                        wrong[0].label,
                        f"{len(wrong)} round(s) failed: {wrong[0].error}",
                        False,
                    )
                )
            for direction in ("push", "pull"):
                row = find(rows, key, direction, contender)
                if row is None:
                    continue
                out += _rate_verdicts(rows, row, label, direction)
                if row.rss_peak_mb is not None:
                    out.append(
                        Verdict(
                            f"server RSS ≤ {TARGET_RSS_MB:.0f} MB, {label} {direction}",
                            row.label,
                            f"{row.rss_peak_mb:.0f} MB",
                            row.rss_peak_mb <= TARGET_RSS_MB,
                        )
                    )
    for r in repushes:
        out.append(
            Verdict(
                f"re-push sends ≤ {TARGET_REPUSH_FRACTION:.0%} of the bytes",
                r.contender,
                f"{max(r.sent_bytes, default=0):,} B = {r.fraction:.4%}",
                r.fraction <= TARGET_REPUSH_FRACTION,
            )
        )
        out.append(
            Verdict(
                "re-push time ≤ hashing the files",
                r.contender,
                f"{r.median_s:.2f} s vs {r.hash_median_s:.2f} s "
                f"({r.median_s / r.hash_median_s:.2f}x)",
                r.median_s <= r.hash_median_s,
            )
        )
    return out


def _rate_verdicts(rows: list[Row], row: Row, label: str, direction: str) -> list[Verdict]:
    out = []
    refs = ((LOOPBACK, TARGET_LOOPBACK, "loopback HTTP"), (MLFLOW, TARGET_MLFLOW, "MLflow"))
    for ref_key, goal, name in refs:
        ref = find(rows, row.dataset, direction, ref_key)
        ratio = _ratio(row, ref)
        if ratio is None or ref is None:
            continue
        measured = f"{row.mbps:.0f} vs {ref.mbps:.0f} MB/s = {ratio:.2f}x"
        if row.upload_mbps is not None and name == "loopback HTTP":
            measured += f" (w/o hashing {row.upload_mbps / ref.mbps:.2f}x)"
        ok = ratio >= goal
        if ref.only_disturbed and not row.only_disturbed:  # other load slowed the reference
            measured += f"; every {name} run disturbed, not judged"
            ok = False
        elif row.only_disturbed and not ref.only_disturbed:
            measured += "; every Cairn run disturbed"
        out.append(Verdict(f"≥ {goal:g}x {name}, {label} {direction}", row.label, measured, ok))
    return out


def verdict_table(items: Iterable[Verdict]) -> str:
    lines = ["| target | contender | measured | met? |", "|---|---|---|---|"]
    for v in items:
        lines.append(
            f"| {v.target} | {v.contender} | {v.measured} | {'yes' if v.ok else '**no**'} |"
        )
    return "\n".join(lines)


def repush_lines(repushes: list[Repush]) -> list[str]:
    lines = []
    for r in repushes:
        lines.append(
            f"- **Re-push ({r.contender})** of the unchanged {r.total_bytes / 1e6:.0f} MB model "
            f"(median of {len(r.seconds)}): sent {max(r.sent_bytes, default=0):,} bytes "
            f"client → server ({r.fraction:.4%} of the data) in {r.median_s:.2f} s; "
            f"sha256 of the same files on {r.threads} threads takes {r.hash_median_s:.2f} s "
            f"(re-push / hash = {r.median_s / r.hash_median_s:.2f}x)"
            + (f"; {r.disturbed} iteration(s) disturbed by other load." if r.disturbed else ".")
        )
    return lines


def failure_lines(failed: Iterable[Sample]) -> list[str]:
    return [
        f"- **Failed round**: {s.label}, {s.dataset}, repetition {s.rep + 1}: {s.error}; "
        "its push and pull are in no figure above."
        for s in failed
    ]


# --- RESULTS.md --------------------------------------------------------------------------


def splice(path: Path, section: str) -> None:
    """Replace this benchmark's block in ``path`` (or append it), keeping everything else."""
    splice_section(path, section, BEGIN, END)
