"""``RegistryService``: the one entry point the API, UI, MLflow layer and local client call.

Each public method is one transaction (``Database.write``/``read``); the use cases live
in ``models``, ``versions`` (changes) and ``version_reads``, ``aliases``, ``artifacts``
(uploads), ``downloads``, ``maintenance`` and ``portability`` (importers) beside this module.
"""

from __future__ import annotations

from cairn.service.aliases import AliasesService
from cairn.service.artifacts import ArtifactsService
from cairn.service.audit import AuditService
from cairn.service.credentials import CredentialsService
from cairn.service.downloads import DownloadsService
from cairn.service.identity import IdentityService
from cairn.service.lineage import LineageService
from cairn.service.maintenance import MaintenanceService
from cairn.service.models import ModelsService
from cairn.service.monitoring import MonitoringService
from cairn.service.portability import PortabilityService
from cairn.service.promotion import PromotionService
from cairn.service.retention import RetentionService
from cairn.service.signatures import SignaturesService
from cairn.service.versions import VersionsService
from cairn.service.webhooks import WebhooksService


class RegistryService(
    ModelsService,
    VersionsService,
    AliasesService,
    ArtifactsService,
    DownloadsService,
    MaintenanceService,
    RetentionService,
    PortabilityService,
    PromotionService,
    LineageService,
    SignaturesService,
    AuditService,
    IdentityService,
    CredentialsService,
    WebhooksService,
    MonitoringService,
):
    """Registered models, versions, aliases, their files, and the upkeep of both stores."""

    def ping(self) -> None:
        self.db.ping()
        self.blobs.check()
