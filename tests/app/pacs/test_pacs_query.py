"""C-ECHO / QIDO ping and searches against the real Orthanc, by DIMSE and by DICOMweb."""

from __future__ import annotations

import pytest

from app.pacs.clients import check_node, client_for
from app.pacs.query import QueryFilter
from tests.support.pacs_helpers import dimse_node, web_node

pytestmark = pytest.mark.orthanc


@pytest.fixture(params=["dimse", "dicomweb"])
def node(request, orthanc):
    return dimse_node(orthanc) if request.param == "dimse" else web_node(orthanc)


def test_test_button_succeeds(node) -> None:
    message = check_node(node)
    assert "succeeded" in message and node.name in message


def _uids(results) -> set[str]:
    return {r.study_uid for r in results}


def test_study_searches(node, pacs_studies) -> None:
    client = client_for(node)
    prior, cur, mr, cr = (s[0].StudyInstanceUID for s in (
        pacs_studies.prior_ct, pacs_studies.current_ct, pacs_studies.mr, pacs_studies.other_cr))
    assert _uids(client.find_studies(QueryFilter(patient_id="PAT-A"))) == {prior, cur, mr}
    by_name = client.find_studies(QueryFilter(patient_name="DOE"))  # prefix match through a wildcard
    assert _uids(by_name) == {prior, cur, mr}
    assert by_name[0].patient_name == "DOE^JANE"
    assert _uids(client.find_studies(QueryFilter(patient_id="PAT-A", modality="CT"))) == {prior, cur}
    assert _uids(client.find_studies(QueryFilter(date_from="2024-01-01", date_to="2024-12-31"))) >= {cur, cr}
    assert prior not in _uids(client.find_studies(QueryFilter(date_from="20240101")))
    assert _uids(client.find_studies(QueryFilter(accession="ACC-B"))) == {cr}
    assert _uids(client.find_studies(QueryFilter(patient_id="PAT-A", study_description="FOLLOW"))) == {cur}
    assert client.find_studies(QueryFilter(patient_id="NOBODY")) == []
    current = next(r for r in client.find_studies(QueryFilter(accession="ACC-CUR")))
    assert (current.study_date, current.modalities, current.series_count, current.instance_count) == (
        "20240415", "CT", 2, 6)


def test_series_and_instance_listing(node, pacs_studies) -> None:
    client = client_for(node)
    study_uid = pacs_studies.current_ct[0].StudyInstanceUID
    series = client.find_series(study_uid)
    assert [s.number for s in series] == [1, 2]
    assert {s.series_uid for s in series} == {ds.SeriesInstanceUID for ds in pacs_studies.current_ct}
    assert all(s.modality == "CT" and s.instance_count == 3 for s in series)
    instances = client.find_instances(study_uid)
    assert {i.sop_uid for i in instances} == {ds.SOPInstanceUID for ds in pacs_studies.current_ct}
