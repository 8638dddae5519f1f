"""A real engine worker (tiny LLaVA built offline from configs) and a real study database for app.ai tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.ai.study_images import StudyImage
from tests.support.tiny_backends import build_tiny_llava


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="session")
def client(qapp, tiny_vlm_dir):
    """One worker for the whole directory (each start costs seconds): hf-vlm on the tiny LLaVA."""
    from app.ai.engine_client import EngineClient

    c = EngineClient("hf-vlm", {"path": str(tiny_vlm_dir), "device": "cpu", "threads": 1, "max_new_tokens": 6,
                                "answer_max_new_tokens": 4})
    yield c
    c.shutdown()


@pytest.fixture
def ai_db(tmp_path, monkeypatch):
    """A migrated SQLite database holding two studies (1.2.3.1 and 1.2.3.2)."""
    from app.db.database import Database
    from app.db.models import Patient, Study

    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    db = Database.open(f"sqlite:///{tmp_path / 'ai.db'}", store_dir=tmp_path / "store")
    with db.session() as s:
        p = Patient(patient_key="|P1", patient_id="P1", name="DOE^JANE")
        s.add_all([Study(study_uid="1.2.3.1", patient=p), Study(study_uid="1.2.3.2", patient=p)])
    yield db
    db.dispose()


@pytest.fixture
def study_images():
    """Makes a study's views: a lateral and a PA (lateral first, as a PACS may send them)."""
    return _study_images


def _study_images(seed: int = 0) -> list[StudyImage]:
    rng = np.random.default_rng(seed)
    return [StudyImage(rng.integers(0, 4095, (64, 56), dtype=np.uint16), "1.9.2", "DX", "LL", "LATERAL"),
            StudyImage(rng.integers(0, 4095, (64, 64), dtype=np.uint16), "1.9.1", "DX", "PA", "PA")]
