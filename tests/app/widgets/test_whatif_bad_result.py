"""A what-if result the app cannot read (a real worker running the real what-if job, whose answer carries a
field this version's result types do not know, as a worker of another version would send) is shown in the
what-if view as a plain error naming the field: no traceback, the edited report kept, the view usable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.model_runner import ClientRunner
from app.widgets.whatif_view import WhatIfView
from engines.models.tiny import make_tiny_checkpoint
from engines.worker.client import WorkerClient
from tests.support.skewed_whatif import UNKNOWN_FIELD

REPORT = "FINDINGS: Small left pleural effusion. Heart size normal. IMPRESSION: Effusion."
IMG = (np.random.default_rng(2).random((40, 48)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory):
    tiny = make_tiny_checkpoint(tmp_path_factory.mktemp("skewed-whatif"), text_len=48)
    client = WorkerClient("diffusion", {"path": str(tiny), "device": "cpu", "threads": 1},
                          jobs=("tests.support.skewed_whatif",))
    yield ClientRunner(client)
    client.close()


def test_a_whatif_result_that_cannot_be_read_is_a_plain_error_in_the_view(qtbot, runner: ClientRunner,
                                                                           tmp_path: Path) -> None:
    view = WhatIfView(runner)
    qtbot.addWidget(view)
    view.set_case(IMG, REPORT)
    view.instruction.setText("remove the effusion")
    edited = None
    with qtbot.waitSignal(view.failed, timeout=120_000) as sig:
        assert view.start()
        edited = view.report_edit.toPlainText()
    message = sig.args[0]
    assert "could not be read" in message and UNKNOWN_FIELD in message and "Traceback" not in message
    assert view.status.text() == f"What-if failed: {message}"
    qtbot.waitUntil(lambda: not view.is_running(), timeout=10_000)
    assert view.report_edit.toPlainText() == edited  # what the user asked for is kept, to run again
    assert view.run_button.isEnabled()
    view.shutdown()
