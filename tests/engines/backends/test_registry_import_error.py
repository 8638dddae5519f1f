"""A backend whose library is not installed fails with a message naming the missing package."""

from __future__ import annotations

import pytest

from engines.backends import registry
from engines.backends.errors import BackendError


def test_missing_library_is_a_clear_backend_error(monkeypatch) -> None:
    monkeypatch.setitem(registry._FACTORIES, "needs-missing", registry._lazy("no_such_package_xyz.mod:Backend"))
    monkeypatch.setitem(registry._DESCRIPTIONS, "needs-missing", "test")
    with pytest.raises(BackendError, match="no_such_package_xyz"):
        registry.create_backend("needs-missing")
