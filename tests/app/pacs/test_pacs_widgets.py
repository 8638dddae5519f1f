"""The PACS node dialog and query panel, offscreen with pytest-qt, against the real Orthanc."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QItemSelectionModel

from app.pacs.nodes import NodeStore, PacsNode
from app.pacs.sink import local_sop_uids
from app.settings import Settings
from app.widgets.pacs_nodes import PacsNodesDialog
from app.widgets.pacs_query import PacsQueryPanel
from tests.support.pacs_helpers import dimse_node, scp_config

pytestmark = pytest.mark.orthanc


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    return Settings(tmp_path / "settings.json")


def test_node_dialog_validates_tests_and_saves(qtbot, orthanc, settings) -> None:
    dialog = PacsNodesDialog(settings)
    qtbot.addWidget(dialog)
    dialog.confirm_unsaved = lambda _name: "discard"
    dialog.new_node()
    dialog.name.setText("Orthanc")
    dialog.host.setText("127.0.0.1")
    dialog.port.setValue(orthanc.dicom_port)
    dialog.calling_ae.setText(orthanc.client_aet)
    assert dialog.save_node() is False  # called AE title missing
    assert "called AE title is empty" in dialog.status.text()
    assert dialog.name.text() == "Orthanc" and dialog.host.text() == "127.0.0.1"  # nothing typed is lost
    assert NodeStore(settings).load() == []

    dialog.ae_title.setText("WRONG_AE")
    with qtbot.waitSignal(dialog.testFinished, timeout=15000) as failed:
        dialog.test_button.click()
    assert failed.args[0] is False and "Called AE title not recognised" in dialog.status.text()

    dialog.ae_title.setText(orthanc.aet)
    with qtbot.waitSignal(dialog.testFinished, timeout=15000) as ok:
        dialog.test_button.click()
    assert ok.args[0] is True and "C-ECHO" in dialog.status.text()
    assert dialog.save_node() is True
    saved = NodeStore(Settings(settings.path)).get("orthanc")
    assert (saved.ae_title, saved.port) == (orthanc.aet, orthanc.dicom_port)

    dialog.new_node()
    dialog.name.setText("Web")
    dialog.protocol.setCurrentIndex(1)
    dialog.url.setText(orthanc.dicomweb_url)
    with qtbot.waitSignal(dialog.testFinished, timeout=15000) as web_ok:
        dialog.test_button.click()
    assert web_ok.args[0] is True and "QIDO-RS" in dialog.status.text()
    assert dialog.save_node() and [n.name for n in NodeStore(Settings(settings.path)).load()] == ["Orthanc", "Web"]

    dialog.scp_accepted.setText("CT1, bad\\ae")
    assert dialog.save_scp() is False and "accepted calling AE" in dialog.status.text()


def test_node_dialog_keeps_unsaved_edits_and_asks_before_closing(qtbot, settings) -> None:
    store = NodeStore(settings)
    store.upsert(PacsNode("A", ae_title="PACSA", host="a.local", port=104))
    store.upsert(PacsNode("B", ae_title="PACSB", host="b.local", port=104))
    dialog = PacsNodesDialog(settings)
    qtbot.addWidget(dialog)
    asked: list[str] = []
    dialog.node_list.setCurrentRow(0)
    dialog.host.setText("a-new.local")  # typed, not saved
    dialog.node_list.setCurrentRow(1)
    assert dialog.host.text() == "b.local"
    dialog.node_list.setCurrentRow(0)
    assert dialog.host.text() == "a-new.local" and "Unsaved changes restored" in dialog.status.text()

    dialog.confirm_unsaved = lambda name: asked.append(name) or "cancel"
    dialog.reject()
    assert asked == ["A"] and dialog.result() == 0 and dialog.host.text() == "a-new.local"
    dialog.confirm_unsaved = lambda name: asked.append(name) or "save"
    dialog.reject()
    assert NodeStore(Settings(settings.path)).get("A").host == "a-new.local"
    assert not dialog.is_dirty()


def _panel(qtbot, orthanc, settings, database) -> PacsQueryPanel:
    NodeStore(settings).upsert(dimse_node(orthanc, "c-move"))
    panel = PacsQueryPanel(database, settings, scp_config=scp_config(orthanc))
    qtbot.addWidget(panel)
    return panel


def test_query_panel_searches_lists_series_and_retrieves(qtbot, orthanc, pacs_studies, settings, database) -> None:
    panel = _panel(qtbot, orthanc, settings, database)
    panel.date_from.setText("2024-99-01")
    with qtbot.waitSignal(panel.searchFinished, timeout=5000) as bad:
        panel.search_button.click()
    assert bad.args == [-1] and "not a real date" in panel.status.text()
    assert panel.date_from.text() == "2024-99-01"

    panel.date_from.clear()
    panel.patient_id.setText("PAT-A")
    panel.modality.setEditText("CT")
    with qtbot.waitSignal(panel.searchFinished, timeout=15000) as found:
        panel.search_button.click()
    assert found.args == [2] and panel.studies.rowCount() == 2
    assert {panel.studies.index(r, 0).data() for r in range(2)} == {"DOE JANE"}

    current_row = next(r for r in range(2) if panel.studies.rows[r].accession == "ACC-CUR")
    panel.study_view.setCurrentIndex(panel.studies.index(current_row, 0))
    qtbot.waitUntil(lambda: panel.series.rowCount() == 2, timeout=15000)

    selection = panel.study_view.selectionModel()
    selection.clearSelection()
    for r in range(2):
        selection.select(panel.studies.index(r, 0),
                         QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
    with qtbot.waitSignal(panel.retrievalFinished, timeout=30000) as done:
        panel.retrieve_button.click()
    assert [r.state for r in done.args[0]] == ["done", "done"]
    for study in (pacs_studies.prior_ct, pacs_studies.current_ct):
        uid = study[0].StudyInstanceUID
        assert local_sop_uids(database, uid) == {ds.SOPInstanceUID for ds in study}
        state, message = panel.progress_state(uid)
        assert state == "done" and "retrieved" in message
    assert "2 done" in panel.status.text() and panel.retrieve_button.isEnabled()


def test_cancel_stops_the_queue_and_keeps_what_arrived(qtbot, orthanc, pacs_studies, settings, database) -> None:
    panel = _panel(qtbot, orthanc, settings, database)
    panel.patient_name.setText("*")
    with qtbot.waitSignal(panel.searchFinished, timeout=15000):
        panel.search_button.click()
    studies = sorted(panel.studies.rows, key=lambda s: s.study_uid)
    assert len(studies) >= 4

    def cancel_on_first_progress(progress) -> None:
        if progress.state == "running":
            panel.cancel_button.click()

    panel.retrievalProgress.connect(cancel_on_first_progress)
    with qtbot.waitSignal(panel.retrievalFinished, timeout=30000) as done:
        panel.retrieve(studies)
    states = [r.state for r in done.args[0]]
    assert states[-1] == "cancelled" and set(states) <= {"done", "cancelled"}
    assert "cancelled" in panel.status.text()
    assert not panel.cancel_button.isEnabled() and panel.retrieve_button.isEnabled()
