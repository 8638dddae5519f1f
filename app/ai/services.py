"""The AI parts the main window owns, built from Settings in one call and stopped in one call."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject

from app.ai.drafting import DraftService
from app.ai.engine_client import EngineClient
from app.ai.engine_settings import engine_from_settings
from app.ai.questions import QaService
from app.db.database import Database
from app.settings import Settings


@dataclass
class AiServices:
    client: EngineClient
    drafts: DraftService
    qa: QaService

    @classmethod
    def from_settings(cls, settings: Settings, db: Database | None, parent: QObject | None = None) -> AiServices:
        """Engine chosen by the 'engine' setting (diffusion, diffusion-onnx, hf-vlm, diffusers-t2i, ...)."""
        name, config = engine_from_settings(settings)
        client = EngineClient(name, config, parent)
        drafts = DraftService(client, db, parent, mode=str(settings.get("draft_mode", "") or "") or None)
        return cls(client, drafts, QaService(client, db, parent))

    def apply_settings(self, settings: Settings) -> None:
        """After the settings dialog: the next job runs on the newly chosen engine."""
        name, config = engine_from_settings(settings)
        if (name, config) != (self.client.backend, self.client.config):
            self.client.set_backend(name, config)
        self.drafts.mode = str(settings.get("draft_mode", "") or "") or None

    def shutdown(self) -> None:
        self.client.shutdown()
