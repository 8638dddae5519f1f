"""Holds a viewport's real decode job at a gate, so a test can tear the viewport down at a known moment
(while the decode runs, or after it finished but before the news reached the GUI thread)."""

from __future__ import annotations

import threading

import pytest

from viewer.widgets.viewport import Viewport


class DecodeGate:
    """Holds every Viewport decode job (`Viewport._prepare`) until `release` is set; `started` is set when
    one reached the gate. The decode itself is real."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        real = Viewport._prepare

        def gated(*args, **kwargs) -> None:  # noqa: ANN002, ANN003 - Viewport._prepare's arguments
            self.started.set()
            if not self.release.wait(30):
                raise TimeoutError("gate never released")
            real(*args, **kwargs)

        monkeypatch.setattr(Viewport, "_prepare", staticmethod(gated))
