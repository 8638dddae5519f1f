"""Prior-study prefetch: the patient's earlier studies of the same modality come into the database."""

from __future__ import annotations

import pytest

from app.importer import ImportService
from app.pacs.errors import PacsConfigError, PacsError
from app.pacs.nodes import NodeStore
from app.pacs.prefetch import (
    PrefetchJob,
    PrefetchPolicy,
    PrefetchSettings,
    find_priors,
    prefetch_on_open,
    prefetch_priors,
)
from app.pacs.sink import local_sop_uids
from app.settings import Settings
from tests.support.pacs_helpers import dimse_node, scp_config, web_node

pytestmark = pytest.mark.orthanc


def _open_current(database, catalog) -> str:
    """The reader opens the current CT: it is local (imported), its priors are only on the PACS."""
    service = ImportService(database)
    for ds in catalog.current_ct:
        assert service.import_dataset(ds).ok
    return catalog.current_ct[0].StudyInstanceUID


@pytest.mark.parametrize("method", ["c-get", "c-move", "wado-rs"])
def test_prefetch_fetches_the_same_modality_prior_only(orthanc, pacs_studies, database, method) -> None:
    current = _open_current(database, pacs_studies)
    node = web_node(orthanc) if method == "wado-rs" else dimse_node(orthanc, method)
    fetched = prefetch_priors(database, node, current, scp_config=scp_config(orthanc))
    prior = pacs_studies.prior_ct[0].StudyInstanceUID
    assert fetched == [prior]
    assert local_sop_uids(database, prior) == {ds.SOPInstanceUID for ds in pacs_studies.prior_ct}
    assert local_sop_uids(database, pacs_studies.mr[0].StudyInstanceUID) == set()  # other modality: left
    assert local_sop_uids(database, pacs_studies.other_cr[0].StudyInstanceUID) == set()  # other patient


def test_policy_and_job_callbacks(orthanc, pacs_studies, database) -> None:
    current = _open_current(database, pacs_studies)
    node = dimse_node(orthanc)
    any_modality = find_priors(database, node, current, PrefetchPolicy(max_priors=5, same_modality=False))
    assert [p.study_uid for p in any_modality] == [
        pacs_studies.prior_ct[0].StudyInstanceUID, pacs_studies.mr[0].StudyInstanceUID]  # newest first
    assert find_priors(database, node, current, PrefetchPolicy(max_priors=0)) == []
    found, progress = [], []
    job = PrefetchJob(database, node, current, on_priors_found=found.append, on_progress=progress.append)
    assert job.run() == [pacs_studies.prior_ct[0].StudyInstanceUID]
    assert len(found[0]) == 1 and progress[-1].state == "done" and job.results[0].imported == 3
    assert job.run() == [pacs_studies.prior_ct[0].StudyInstanceUID]  # second open: already local
    assert job.results[0].imported == 0


def test_prefetch_for_a_study_that_is_not_local_is_a_clear_error(orthanc, database) -> None:
    with pytest.raises(PacsError, match="not in the local database"):
        prefetch_priors(database, dimse_node(orthanc), "1.2.3.4")


def test_prefetch_on_open_follows_the_settings(orthanc, pacs_studies, database, tmp_path) -> None:
    current = _open_current(database, pacs_studies)
    settings = Settings(tmp_path / "settings.json")
    assert prefetch_on_open(database, current, settings) == []  # off by default
    with pytest.raises(PacsConfigError, match="no PACS node is chosen"):
        PrefetchSettings(enabled=True).to_settings(settings)
    NodeStore(settings).upsert(web_node(orthanc))
    PrefetchSettings(enabled=True, node="orthanc-web", max_priors=2).to_settings(settings)
    reloaded = Settings(tmp_path / "settings.json")
    assert PrefetchSettings.from_settings(reloaded).max_priors == 2
    assert prefetch_on_open(database, current, reloaded) == [pacs_studies.prior_ct[0].StudyInstanceUID]
