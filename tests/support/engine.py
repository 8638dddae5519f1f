"""Engine fixtures: a random tiny built-in engine loaded the way the shipped one is (milliseconds, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> MedimPipeline:
    path: Path = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_model"))
    return MedimPipeline.from_pretrained(path, device="cpu")
