"""The AI engine inside the app: worker client (EngineClient), drafting, questions, image selection."""

from app.ai.drafting import DraftService
from app.ai.engine_client import EngineClient
from app.ai.engine_settings import engine_from_settings
from app.ai.question_scope import CANNOT_ANSWER, question_scope
from app.ai.questions import QaService
from app.ai.services import AiServices
from app.ai.status_text import format_status
from app.ai.study_images import StudyImage, describe_used, load_study_images, order_for_engine

__all__ = [
    "CANNOT_ANSWER",
    "AiServices",
    "DraftService",
    "EngineClient",
    "QaService",
    "StudyImage",
    "describe_used",
    "engine_from_settings",
    "format_status",
    "load_study_images",
    "order_for_engine",
    "question_scope",
]
