"""The Similar studies panel driven like a user: a signed study is indexed, another study finds it (site cases
first, then development cases with their image files), shows its report, labels and both images side by side;
a broken index is a message, not a crash. The jobs run the real worker handlers on the shipped weights."""

from __future__ import annotations

import numpy as np
import pytest
import shiboken6
import torch
from PIL import Image
from PySide6.QtCore import Qt

from app.model_runner import InProcessRunner
from app.settings import Settings
from app.widgets.similar_panel import SimilarPanel
from engines.default_weights import DEFAULT_WEIGHTS
from engines.pipeline import MedimPipeline
from engines.similar import CaseIndex, CaseRecord
from viewer.widgets.background import pending_jobs

TIMEOUT = 60_000
torch.set_num_threads(1)


def _image(seed: int) -> np.ndarray:
    yy, xx = np.mgrid[0:128, 0:128]
    return (120 + 50 * np.sin(xx / (9.0 + seed)) * np.cos(yy / 13.0)).astype(np.uint8)


@pytest.fixture(scope="module")
def runner():
    pipe = MedimPipeline.from_pretrained(DEFAULT_WEIGHTS, device="cpu")
    return InProcessRunner(lambda: pipe)


@pytest.fixture()
def panel(qapp, qtbot, runner, tmp_path):
    settings = Settings(tmp_path / "settings.json")
    settings.set("similar_cases_dir", str(tmp_path / "site"))
    widget = SimilarPanel(runner, settings, lambda hit: _image(1) if hit["origin"] == "site" else
                          np.asarray(Image.open(hit["image_ref"])))
    qtbot.addWidget(widget, before_close_func=lambda v: v.shutdown())  # pytest-qt closes it before teardown
    widget.show()
    yield widget


def test_a_signed_study_is_found_from_a_similar_one(qtbot, panel, tmp_path):
    panel.set_study("1.2.3", [_image(0)])
    with qtbot.waitSignal(panel.searched, timeout=TIMEOUT) as sig:
        qtbot.mouseClick(panel.find_button, Qt.MouseButton.LeftButton)
    assert sig.args == [0] and "No indexed study" in panel.status.text()
    with qtbot.waitSignal(panel.indexed, timeout=TIMEOUT):
        panel.index_signed("1.2.4", [_image(1)], "Small right pleural effusion. Heart size is normal.",
                           "Small right pleural effusion.")
    with qtbot.waitSignal(panel.indexed, timeout=TIMEOUT):
        panel.index_signed("1.2.3", [_image(0)], "The lungs are clear.", "Normal chest.")  # the open study itself
    with qtbot.waitSignal(panel.searched, timeout=TIMEOUT) as sig:
        qtbot.mouseClick(panel.find_button, Qt.MouseButton.LeftButton)
    assert sig.args == [1]  # the open study is never its own similar case
    assert "this site" in panel.list.item(0).text() and "Pleural Effusion" in panel.list.item(0).text()
    assert "Small right pleural effusion" in panel.details.toPlainText()
    assert "Pleural Effusion present" in panel.details.toPlainText()
    assert not panel.query_view.pixmap().isNull() and not panel.case_view.pixmap().isNull()
    # amended and signed again: replaced, not duplicated
    with qtbot.waitSignal(panel.indexed, timeout=TIMEOUT):
        panel.index_signed("1.2.4", [_image(1)], "No pleural effusion.", "Normal chest.")
    assert len(CaseIndex.load(tmp_path / "site")) == 2


def test_development_cases_follow_the_site_ones_with_their_images(qtbot, panel, runner, tmp_path):
    pipe = runner._factory()
    dev = CaseIndex(pipe.embed([_image(0)]).shape[1])
    Image.fromarray(_image(2)).save(tmp_path / "dev.png")
    dev.add([CaseRecord("dev-1", "Cardiomegaly.", "Enlarged heart.", "dev", {}, str(tmp_path / "dev.png"), "dev-1")],
            pipe.embed([_image(2)]))
    dev.save(tmp_path / "dev")
    panel.settings.set("similar_dev_index", str(tmp_path / "dev"))
    site = CaseIndex(dev.dim)
    site.add([CaseRecord("1.9", "Heart size is normal.", "Normal.", "site")], pipe.embed([_image(1)]))
    site.save(tmp_path / "site")
    panel.set_study("1.2.5", [_image(0)])
    with qtbot.waitSignal(panel.searched, timeout=TIMEOUT) as sig:
        panel.find_similar()
    assert sig.args == [2]
    assert [h["origin"] for h in panel.hits] == ["site", "dev"]
    panel.list.setCurrentRow(1)
    assert "training data" in panel.list.item(1).text() and "Enlarged heart" in panel.details.toPlainText()
    assert not panel.case_view.pixmap().isNull()


def test_a_broken_index_is_a_message(qtbot, panel, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "vectors.faiss").write_bytes(b"not an index")
    (tmp_path / "site" / "cases.sqlite").write_bytes(b"not a database")
    panel.set_study("1.2.6", [_image(0)])
    with qtbot.waitSignal(panel.searched, timeout=TIMEOUT) as sig:
        panel.find_similar()
    assert sig.args == [0] and "site index not used" in panel.status.text()


def test_two_workstations_share_the_departments_postgres_index(qapp, qtbot, runner, tmp_path, postgres):
    """The study database is PostgreSQL: a study signed on one workstation is found from the other at once, no
    index folder is written, and a wrong backend setting is a message."""
    url = postgres.new_database()
    panels = []
    for name in ("ws1", "ws2"):
        settings = Settings(tmp_path / name / "settings.json")
        settings.set("db_url", url)
        settings.set("similar_cases_dir", str(tmp_path / name / "site"))
        widget = SimilarPanel(runner, settings, lambda hit: _image(1))
        qtbot.addWidget(widget)
        widget.show()
        panels.append(widget)
    ws1, ws2 = panels
    try:
        with qtbot.waitSignal(ws1.indexed, timeout=TIMEOUT):
            ws1.index_signed("1.3.1", [_image(1)], "Moderate cardiomegaly.", "Cardiomegaly.")
        ws2.set_study("1.3.2", [_image(0)])
        with qtbot.waitSignal(ws2.searched, timeout=TIMEOUT) as sig:
            qtbot.mouseClick(ws2.find_button, Qt.MouseButton.LeftButton)
        assert sig.args == [1] and "Cardiomegaly" in ws2.list.item(0).text()
        assert "Moderate cardiomegaly" in ws2.details.toPlainText()
        assert not (tmp_path / "ws1" / "site").exists() and not (tmp_path / "ws2" / "site").exists()
        ws2.settings.set("similar_backend", "vectors-please")
        qtbot.waitUntil(ws2.find_button.isEnabled, timeout=TIMEOUT)
        qtbot.mouseClick(ws2.find_button, Qt.MouseButton.LeftButton)
        assert "not searched" in ws2.status.text() and "similar_backend" in ws2.status.text()
    finally:
        for w in panels:
            w.shutdown()
        # finished jobs are deleted later: let that happen while the panels (their parents) still exist
        qtbot.waitUntil(lambda: not any(w.busy() for w in panels), timeout=TIMEOUT)
        qtbot.wait(50)


def _orphan_panel(runner, tmp_path) -> SimilarPanel:
    settings = Settings(tmp_path / "settings.json")
    settings.set("similar_cases_dir", str(tmp_path / "site"))
    widget = SimilarPanel(runner, settings, lambda hit: _image(1))
    widget.set_study("1.4.1", [_image(0)])
    return widget


def test_panel_destroyed_while_its_search_runs(qtbot, runner, tmp_path):
    """Closing the window mid-search: the search runs to its end in the background and reports nowhere (the
    panel's QThread job used to be destroyed with the panel while running)."""
    widget = _orphan_panel(runner, tmp_path)
    qtbot.mouseClick(widget.find_button, Qt.MouseButton.LeftButton)
    assert widget.busy()
    shiboken6.delete(widget)
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=TIMEOUT)


def test_panel_destroyed_with_a_finished_search_not_yet_delivered(qtbot, runner, tmp_path):
    """The hazard of full runs: the search has finished, its result waits for the GUI thread, and the panel is
    destroyed first."""
    widget = _orphan_panel(runner, tmp_path)
    qtbot.mouseClick(widget.find_button, Qt.MouseButton.LeftButton)
    search = widget._search
    assert search is not None
    search.join(TIMEOUT / 1000)
    assert search.running()  # finished, not delivered: no event was processed since
    shiboken6.delete(widget)
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=TIMEOUT)
    assert not search.running()
