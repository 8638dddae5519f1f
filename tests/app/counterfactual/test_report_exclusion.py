"""What-if images never become report evidence unless the reader attaches one as a key image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from app.counterfactual import CounterfactualInfo, store_counterfactuals
from app.db.database import Database
from app.importer import ImportService
from app.reports.document import build_document
from app.reports.keys import create_self_signed, default_p12_path
from app.reports.service import ReportService
from app.reports.users import UserService

DEMO_NODULE = Path(__file__).resolve().parents[3] / "resources/demo/PT000002/ST000000/SE000000/IM000000"


def test_synthetic_series_is_excluded_from_evidence_unless_attached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    db = Database.open()
    source = pydicom.dcmread(DEMO_NODULE)
    assert ImportService(db).import_dataset(source).ok
    info = CounterfactualInfo("remove Lung Lesion", "The lungs are clear.", seed=1, model="tiny")
    stored = store_counterfactuals(db, source, [np.full((64, 64), 90, np.uint8)], [info])
    users = UserService(db)
    users.add_user("rad", "correct horse battery", "radiologist")
    create_self_signed("Dr Rad", "correct horse battery", default_p12_path("rad"))
    user = users.authenticate("rad", "correct horse battery")
    service = ReportService(db, users)
    version = service.open_or_create(str(source.StudyInstanceUID), user)

    plain = build_document(service, version.id)
    uids = {e.sop_instance_uid for e in plain.evidence} | {k.sop_instance_uid for k in plain.key_images}
    assert uids == {str(source.SOPInstanceUID)}  # the acquired image only

    attached = build_document(service, version.id, key_images=[stored.sop_instance_uids[0]])
    assert [k.sop_instance_uid for k in attached.key_images] == [stored.sop_instance_uids[0]]
    assert stored.sop_instance_uids[0] in {e.sop_instance_uid for e in attached.evidence}
    db.dispose()
