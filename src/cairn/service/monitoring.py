"""Reads that show a deployment at work: since when, and by whom, each deployment serves
what it serves, and one deployment's feedback on one version (summarised per key, and
the latest points of each key). The web UI's deployment pages are made of them, beside
the deployments use cases they extend; the same rules hold (READ on the deployment's
model; a deployment of a model the caller may not read does not exist for them)."""

from __future__ import annotations

from collections.abc import Sequence

from cairn.domain import names
from cairn.domain.access import Role
from cairn.domain.deployments import (
    DeploymentEvent,
    FeedbackPoint,
    FeedbackSummary,
    validate_deployment_name,
)
from cairn.domain.models import Actor
from cairn.domain.uris import parse_version_number
from cairn.domain.validation import MAX_PAGE
from cairn.errors import InvalidParameter
from cairn.service.deployments import DeploymentsService
from cairn.store.metadata.database import Tx
from cairn.store.metadata.deployments_store import DeploymentStore

MAX_RECENT = 500  # latest points per key that one read returns


class MonitoringService(DeploymentsService):
    def current_deployment_events(
        self, actor: Actor, deployments: Sequence[str]
    ) -> dict[str, DeploymentEvent]:
        """The event in force now of each of ``deployments`` (names, at most a page of
        them), by deployment name, in one query: the version it serves (or its
        retirement), since when and by whom. A name that is no deployment the caller may
        read is left out, as a list leaves it out."""
        if isinstance(deployments, str) or len(deployments) > MAX_PAGE:
            raise InvalidParameter(f"give a list of at most {MAX_PAGE} deployment names")
        keys = sorted({names.name_key(validate_deployment_name(d)) for d in deployments})
        if not keys:
            return {}
        events = self.db.read(lambda s: DeploymentStore(s).current_events(keys, actor.readable()))
        return {e.deployment: e for e in events}

    def deployment_feedback_summary(
        self, actor: Actor, name: str, version: int | str
    ) -> list[FeedbackSummary]:
        """Per metric key, the points deployment ``name`` posted while it served
        ``version`` (every time it served it): count, min, max, mean and the last value.
        ``feedback_summary`` is the same over every deployment of the version. A version
        deleted since is still summarised (its points stay): a version it never served,
        or that does not exist, has no points."""
        validate_deployment_name(name)
        number = parse_version_number(version)

        def run(s: Tx) -> list[FeedbackSummary]:
            row = self._deployment_row(s, actor, name, Role.READ, "deployment_feedback_summary")
            return DeploymentStore(s).summary(
                row.model_id, number, None, None, deployment_id=row.id
            )

        return self.db.read(run)

    def recent_deployment_feedback(
        self, actor: Actor, name: str, version: int | str, *, per_key: int = 50
    ) -> dict[str, list[FeedbackPoint]]:
        """The latest ``per_key`` points of each metric key that deployment ``name``
        posted while it served ``version``: by key, each list oldest first."""
        validate_deployment_name(name)
        number = parse_version_number(version)
        if isinstance(per_key, bool) or not isinstance(per_key, int):
            raise InvalidParameter(f"per_key must be an integer, not {per_key!r}")
        if not 1 <= per_key <= MAX_RECENT:
            raise InvalidParameter(f"per_key must be between 1 and {MAX_RECENT}")

        def run(s: Tx) -> dict[str, list[FeedbackPoint]]:
            row = self._deployment_row(s, actor, name, Role.READ, "recent_deployment_feedback")
            found: dict[str, list[FeedbackPoint]] = {}
            for point in DeploymentStore(s).recent_points(row.model_id, number, row.id, per_key):
                found.setdefault(point.key, []).append(point)
            return found

        return self.db.read(run)
