from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """A random tiny engine (real tokenizers, 32-px VQ, 4x4 token grid) loaded like the shipped one."""
    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline

    d = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_engine"), text_len=48)
    return MedimPipeline.from_pretrained(d, "cpu")

