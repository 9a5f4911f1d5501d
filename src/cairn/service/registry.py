"""``RegistryService``: the one entry point the API, UI, MLflow layer and local client call.

Each public method is one transaction (``Database.write``/``read``); the use cases live
in ``models``, ``versions`` and ``aliases`` beside this module.
"""

from __future__ import annotations

from cairn.service.aliases import AliasesService
from cairn.service.models import ModelsService
from cairn.service.versions import VersionsService


class RegistryService(ModelsService, VersionsService, AliasesService):
    """Registered models, versions and aliases."""

    def ping(self) -> None:
        self.db.ping()
