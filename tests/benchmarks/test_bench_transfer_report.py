"""The transfer benchmark's summaries and target verdicts (``transfer_report``)."""

from __future__ import annotations

import transfer_report as tr

DATASETS = [("single", "1 x 1 GiB"), ("many", "20 x 50 MB")]


def _sample(
    contender: str, dataset: str, direction: str, seconds: float, **kw: object
) -> tr.Sample:
    return tr.Sample(
        contender=contender,
        label=contender,
        dataset=dataset,
        direction=direction,
        rep=0,
        seconds=seconds,
        nbytes=1_000_000_000,
        **kw,  # type: ignore[arg-type]
    )


def test_server_rss_is_judged_on_every_data_set() -> None:
    samples = [
        _sample("cairn-sdk", "single", "push", 3.0, rss_idle_mb=114.0, rss_peak_mb=129.0),
        _sample("cairn-sdk", "many", "push", 3.0, rss_idle_mb=114.0, rss_peak_mb=170.0),
    ]
    rss = [v for v in tr.verdicts(tr.summarize(samples), DATASETS, []) if "RSS" in v.target]
    assert [(v.target, v.ok) for v in rss] == [
        ("server RSS ≤ 150 MB, 1 x 1 GiB push", True),
        ("server RSS ≤ 150 MB, 20 x 50 MB push", False),
    ]
