"""Tiny random-weight third-party model directories, built once per session from configs (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_backends import build_tiny_llava, build_tiny_sd


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))
