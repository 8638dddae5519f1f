"""Every test of the lab (training, evaluation, data preparation) carries the `research` marker, so a
developer's loop on the product can leave them out: `python -m pytest -m "not slow and not research"`."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.research)
