"""``latest_versions_by_stage``: MLflow's ``latest_versions``, in a bounded number of queries.

Checked against a brute-force answer computed from ``search_versions``, with a scan large
enough to settle everything, and with scans that stop inside the first or second model
(forcing the per-stage lookups for the models from there on).
"""

from __future__ import annotations

from typing import Any

import pytest

from cairn.domain.models import SYSTEM, FileEntry, ModelVersion, Stage, VersionSpec
from cairn.domain.names import name_key
from cairn.errors import InvalidParameter
from cairn.service.registry import RegistryService

PENDING = VersionSpec(files=(FileEntry("w.bin", 1, "sha256:" + "cd" * 32),))


def build(service: RegistryService) -> list[str]:
    """Models with versions in every stage, deleted ones, PENDING ones and no versions."""
    plan: dict[str, list[str]] = {
        "alpha": ["Production", "Staging", "Production", "None", "Archived"],
        "Beta": ["None", "None", "Staging"],
        "gamma": [],
        "delta": ["Production", "Production"],
        "epsilon": ["Staging"],
    }
    for name, stages in plan.items():
        service.create_model(SYSTEM, name)
        for number, stage in enumerate(stages, start=1):
            service.create_version(SYSTEM, name)
            service.transition_stage(SYSTEM, name, number, stage)
    service.delete_version(SYSTEM, "alpha", 3)  # the newest Production of alpha: hidden
    service.create_version(SYSTEM, "delta", PENDING)  # not READY: never "latest"
    service.transition_stage(SYSTEM, "delta", 3, "Production")
    return list(plan)


def brute_force(
    service: RegistryService, names: list[str], stages: list[Stage]
) -> dict[str, list[tuple[str, int]]]:
    everything = service.search_versions(SYSTEM, "status = 'READY'", max_results=1000).items
    result: dict[str, list[tuple[str, int]]] = {}
    for name in names:
        mine = [v for v in everything if name_key(v.name) == name_key(name)]
        latest = []
        for stage in stages:
            numbers = [v.version for v in mine if v.stage is stage]
            if numbers:
                latest.append((stage.value, max(numbers)))
        if latest:
            result[name_key(name)] = latest
    return result


def shape(result: dict[str, list[ModelVersion]]) -> dict[str, list[tuple[str, int]]]:
    return {key: [(v.stage.value, v.version) for v in found] for key, found in result.items()}


def test_matches_brute_force(service: RegistryService) -> None:
    names = build(service)
    every = list(Stage)
    asked: list[Any] = [None, ["Production"], ["staging", "ARCHIVED", "Staging"]]
    for stages in asked:
        wanted = every if stages is None else list(dict.fromkeys(map(Stage.parse, stages)))
        got = service.latest_versions_by_stage(SYSTEM, [*names, "ghost"], stages)
        assert shape(got) == brute_force(service, names, wanted), stages
    assert shape(service.latest_versions_by_stage(SYSTEM, ["BETA"])) == {
        "beta": [("None", 2), ("Staging", 3)]
    }
    assert shape(service.latest_versions_by_stage(SYSTEM, ["alpha"])) == {
        "alpha": [("None", 4), ("Staging", 2), ("Production", 1), ("Archived", 5)]
    }
    assert service.latest_versions_by_stage(SYSTEM, []) == {}


def test_refuses_bad_input(service: RegistryService) -> None:
    with pytest.raises(InvalidParameter):
        service.latest_versions_by_stage(SYSTEM, ["a/b"])
    with pytest.raises(InvalidParameter):
        service.latest_versions_by_stage(SYSTEM, ["a"], ["Live"])


def test_a_long_list_of_names(service: RegistryService) -> None:
    """More names than ``prepared.LONG_LIST``: on PostgreSQL they go as one array."""
    names = [f"model-{i}" for i in range(14)]
    for i, name in enumerate(names):
        service.create_model(SYSTEM, name)
        for _ in range(1 + i % 3):
            service.create_version(SYSTEM, name)
        service.transition_stage(SYSTEM, name, 1, "Staging")
    got = service.latest_versions_by_stage(SYSTEM, names)
    assert shape(got) == brute_force(service, names, list(Stage))
    assert len(got) == len(names)
