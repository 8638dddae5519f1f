"""Fixtures of the sentence-drafting tests: the shipped pipeline (one per test module, as each module
sets similar-case indexes and settings on it) and a synthetic radiograph-like image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.default_weights import DEFAULT_WEIGHTS
from engines.pipeline import MedimPipeline

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pipe() -> MedimPipeline:
    return MedimPipeline.from_pretrained(DEFAULT_WEIGHTS, device="cpu")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    yy, xx = np.mgrid[0:256, 0:256]
    return (128 + 60 * np.sin(xx / 17.0) * np.cos(yy / 23.0)).astype(np.uint8)

