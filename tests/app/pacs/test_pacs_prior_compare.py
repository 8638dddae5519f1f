"""Side-by-side prior comparison: linked scrolling (model and widget) and prefetch into the view."""

from __future__ import annotations

import pytest

from app.importer import ImportService
from app.pacs.nodes import NodeStore
from app.pacs.prefetch import PrefetchSettings
from app.settings import Settings
from app.widgets.prior_compare import (
    PriorCompareView,
    PriorPrefetchController,
    ScrollLink,
    load_study_refs,
)
from tests.support.orthanc_fixture import make_study
from tests.support.pacs_helpers import dimse_node


def test_scroll_link_maps_proportionally_around_the_anchor() -> None:
    link = ScrollLink(source_count=10, target_count=5)
    assert [link.target_for(i) for i in (0, 9, 5)] == [0, 4, 2]
    link.anchor(0, 1)  # the reader lined slice 0 up with the prior's slice 1
    assert link.target_for(4) == 3 and link.target_for(9) == 4  # clipped to the prior's last slice
    assert ScrollLink(3, 1).target_for(2) == 0


def _local(database, datasets) -> str:
    service = ImportService(database)
    for ds in datasets:
        assert service.import_dataset(ds).ok
    return datasets[0].StudyInstanceUID


def test_compare_view_scrolls_together_and_respects_manual_alignment(qtbot, database) -> None:
    current_uid = _local(database, make_study("P1", study_date="20240101", n_instances=10, seed=5))
    prior_uid = _local(database, make_study("P1", study_date="20230101", n_instances=5, seed=6))
    current, prior = load_study_refs(database, [current_uid, prior_uid])
    view = PriorCompareView()
    qtbot.addWidget(view)
    view.resize(800, 400)
    view.set_current(current)
    view.set_priors([prior])
    assert view.prior() is prior and view.prior_view.state.slice_count == 5
    assert view.prior_combo.currentText().startswith("2023-01-01")

    view.current_view.go_to(9)
    assert view.prior_view.state.slice_index == 4
    view.current_view.go_to(0)
    assert view.prior_view.state.slice_index == 0
    view.prior_view.go_to(1)  # the reader aligns the prior by hand
    view.current_view.go_to(4)
    assert view.prior_view.state.slice_index == 3
    view.link_box.setChecked(False)
    view.current_view.go_to(8)
    assert view.prior_view.state.slice_index == 3 and not view.is_linked()
    assert view.prior_view.current_image() is not None and view.prior_view.message() == ""


@pytest.mark.orthanc
def test_prefetch_controller_brings_the_prior_into_the_view(qtbot, orthanc, pacs_studies, database, tmp_path) -> None:
    current_uid = _local(database, pacs_studies.current_ct)
    view = PriorCompareView()
    qtbot.addWidget(view)
    view.set_current(load_study_refs(database, [current_uid])[0])
    settings = Settings(tmp_path / "settings.json")
    assert PriorPrefetchController.from_settings(database, settings) is None  # prefetch is off by default
    NodeStore(settings).upsert(dimse_node(orthanc))
    PrefetchSettings(enabled=True, node="orthanc").to_settings(settings)
    controller = PriorPrefetchController.from_settings(database, settings)
    assert controller is not None
    controller.priorsReady.connect(view.set_priors)
    found: list = []
    controller.priorsFound.connect(found.append)
    with qtbot.waitSignal(controller.priorsReady, timeout=20000) as blocker:
        controller.start(current_uid)
    ready = blocker.args[0]
    assert [s.accession for s in found[0]] == ["ACC-PRIOR"]
    assert [s.study_uid for s in ready] == [pacs_studies.prior_ct[0].StudyInstanceUID]
    assert view.prior() is not None and view.prior().study_uid == pacs_studies.prior_ct[0].StudyInstanceUID
    assert not controller.is_running()
