"""The shared Orthanc fixture itself: it starts, stores, answers DIMSE and DICOMweb, and clears."""

from __future__ import annotations

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from tests.support.orthanc_fixture import make_study

pytestmark = pytest.mark.orthanc


def test_fixture_stores_echoes_and_clears(orthanc) -> None:
    orthanc.clear()
    study = make_study("FIX-1", n_instances=2)
    for ds in study:
        orthanc.upload(ds)
    assert orthanc.instance_count() == 2
    assert orthanc.study_uids() == [study[0].StudyInstanceUID]
    assert orthanc.rest("GET", "/dicom-web/studies")[0]["0020000D"]["Value"] == [study[0].StudyInstanceUID]

    ae = AE(ae_title=orthanc.client_aet)
    ae.add_requested_context(Verification)
    assoc = ae.associate(orthanc.host, orthanc.dicom_port, ae_title=orthanc.aet)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assoc.release()

    orthanc.clear()
    assert orthanc.instance_count() == 0
