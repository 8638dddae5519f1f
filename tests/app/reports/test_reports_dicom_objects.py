"""The objects that go with a signed report (report SR completed, KOS, AI results SR, GSPS, TID 1500):
built from the database, dciodvfy clean, sent through the outbox to a real Orthanc and read back."""

from __future__ import annotations

import io
import json

import pytest
from pydicom import dcmread
from PySide6.QtCore import Qt

from app.dicom_objects.ai_results import read_ai_results
from app.dicom_objects.key_objects import key_image_uids
from app.dicom_objects.report_objects import report_ai_sr, report_kos
from app.reports.document import build_document
from app.reports.export_sr import build_sr
from app.reports.outbox import available_documents
from tests.support.reports_testing import PASSWORD, STUDY_UID

WEIGHTS = "5e" * 32
PROVENANCE = {"engine": "medim-small", "weights_hash": WEIGHTS, "seed": 11, "model": "resources/weights/medim-small",
              "finding_probabilities": json.dumps({"Cardiomegaly": 0.83, "Pleural Effusion": 0.12})}


def _ai_signed(env, user, study_uid=STUDY_UID):
    v = env.service.open_or_create(study_uid, user)
    env.service.load_ai_draft(v.id, "The heart is enlarged. No pleural effusion.", "Cardiomegaly.", PROVENANCE, user)
    env.service.accept_ai(v.id, user)
    return env.service.sign(v.id, user, PASSWORD)


def _signed_in_the_editor(qtbot, env, user, study_uid):
    """As the radiologist signs: the AI draft loaded into the editor, accepted with its button, the template's
    fields filled with their defaults, Sign clicked and the dialog answered (password typed, Enter)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.widgets.report_editor import ReportEditor

    ed = ReportEditor(env.db, study_uid, lambda: user, service=env.service, autosave_ms=100)
    qtbot.addWidget(ed)
    ed.resize(1100, 700)
    ed.show()
    ed.load_ai_draft("The heart is enlarged. No pleural effusion.", "Cardiomegaly.", PROVENANCE)
    qtbot.mouseClick(ed.accept_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(ed.defaults_button, Qt.MouseButton.LeftButton)
    assert ed.sign_button.isEnabled(), ed.sign_button.toolTip()

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(20, answer)
            return
        QTest.keyClicks(dialog.focusWidget() or dialog, PASSWORD)
        QTest.keyClick(dialog.focusWidget() or dialog, Qt.Key.Key_Return)

    QTimer.singleShot(20, answer)
    with qtbot.waitSignal(ed.signed, timeout=60000):
        qtbot.mouseClick(ed.sign_button, Qt.MouseButton.LeftButton)
    v = env.service.version(ed.version.id)
    assert v.status == "final"
    return v


def _save(ds, path):
    ds.save_as(path, enforce_file_format=True)
    return path


def test_report_sr_names_study_request_procedure_and_related_objects(env, radiologist, tmp_path):
    from tests.support.dicom_tools import dciodvfy_errors, dsrdump

    v = _ai_signed(env, radiologist)
    doc = build_document(env.service, v.id)
    path = _save(build_sr(doc), tmp_path / "sr.dcm")
    assert not dciodvfy_errors(path)
    ds = dcmread(path)
    assert ds.StudyDescription == "CHEST PA AND LATERAL" and ds.StudyID == "ACC123"
    request = ds.ReferencedRequestSequence[0]
    assert request.AccessionNumber == "ACC123" and request.StudyInstanceUID == STUDY_UID
    assert request.RequestedProcedureCodeSequence[0].CodeValue == "36643-5"  # chest X-ray template (LOINC)
    assert ds.PerformedProcedureCodeSequence[0].CodeValue == "36643-5"
    pertinent = {r.ReferencedSOPInstanceUID for s in ds.PertinentOtherEvidenceSequence
                 for se in s.ReferencedSeriesSequence for r in se.ReferencedSOPSequence}
    assert pertinent == {doc.uid("kos"), doc.uid("ai-sr")}
    dump = dsrdump(path)
    assert '"Procedure reported")=(36643-5,LN' in dump and dump.count("COMPOSITE") == 2

    kos = report_kos(doc, "Dr Rad")
    kos_path = _save(kos, tmp_path / "kos.dcm")
    assert not dciodvfy_errors(kos_path)
    title, uids = key_image_uids(dcmread(kos_path))
    assert title == "For Report Attachment" and doc.uid("sr") in uids
    assert set(uids) - {doc.uid("sr")} == {k.sop_instance_uid for k in doc.key_images}
    assert kos.SOPInstanceUID == doc.uid("kos")

    ai = report_ai_sr(env.db, doc)
    ai_path = _save(ai, tmp_path / "ai.dcm")
    assert not dciodvfy_errors(ai_path) and ai.SOPInstanceUID == doc.uid("ai-sr")
    findings, algorithm = read_ai_results(dcmread(ai_path))
    states = {f.name: (f.state, f.probability) for f in findings}
    assert states["Cardiomegaly"] == ("present", 0.83) and states["Pleural Effusion"] == ("absent", 0.12)
    assert algorithm["weights_sha256"] == WEIGHTS and algorithm["Algorithm Name"] == "medim-small"


def test_report_without_ai_has_no_ai_sr_and_no_reference_to_one(env, radiologist):
    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Normal."}, radiologist)
    v = env.service.sign(v.id, radiologist, PASSWORD)
    doc = build_document(env.service, v.id)
    assert report_ai_sr(env.db, doc) is None
    assert "ai-sr" not in available_documents(env.service, v.id)
    sr = build_sr(doc)
    pertinent = {r.ReferencedSOPInstanceUID for s in sr.PertinentOtherEvidenceSequence
                 for se in s.ReferencedSeriesSequence for r in se.ReferencedSOPSequence}
    assert pertinent == {doc.uid("kos")}


@pytest.mark.orthanc
def test_every_object_goes_through_orthanc_and_another_database_reads_it_back(env, radiologist, orthanc, tmp_path,
                                                                            qtbot):
    """Sign in the editor -> outbox -> Orthanc (C-STORE) -> retrieved into another database: the report and its objects
    arrive intact, DCMTK renders the image through the GSPS, the retrieved report sets the study's status
    there and shows read-only as a prior (SR text and PDF pages), and nothing derived counts as evidence."""
    from sqlalchemy import select

    from app.db.database import Database
    from app.db.measurement_store import DbMeasurementStore
    from app.db.models import Instance, Series, Study
    from app.demo_studies import demo_study_uids, ensure_demo_imported
    from app.dicom_objects.classify import kind_of_file
    from app.dicom_objects.measurement_report import parse_measurement_report
    from app.pacs.nodes import PacsNode
    from app.pacs.retrieve import RetrieveService
    from app.priors.documents import study_documents, sync_report_status
    from app.reports.export_sr import sr_content, verify_sr
    from app.reports.outbox import Outbox
    from app.widgets.prior_reports import PriorReportsPanel
    from tests.support.dicom_tools import dciodvfy_errors, dcmp2pgm, dsrdump
    from viewer.measure.shapes import Arrow, Distance, EllipseROI

    orthanc.clear()
    ensure_demo_imported(env.db)
    study_uid = demo_study_uids()[0]
    with env.db.session() as s:
        image_uid, image_file = s.execute(
            select(Instance.sop_instance_uid, Instance.file_path).join(Series, Series.id == Instance.series_db_id)
            .join(Study, Study.id == Series.study_db_id).where(Study.study_uid == study_uid)).first()
    orthanc.upload(env.db.store_path(image_file))  # the PACS holds the study's image
    DbMeasurementStore(env.db).save(image_uid, [Distance(p0=(40, 60), p1=(200, 60), label="heart").to_dict(),
                                                EllipseROI(p0=(60, 80), p1=(120, 160)).to_dict(),
                                                Arrow(tip=(128, 128), tail=(180, 200), label="look here").to_dict()])
    from app.db.interest_store import DbInterestStore
    from viewer.presentation.interest import interest_ref

    DbInterestStore(env.db).set(interest_ref(dcmread(env.db.store_path(image_file), stop_before_pixels=True)), True)
    v = _signed_in_the_editor(qtbot, env, radiologist, study_uid)
    documents = available_documents(env.service, v.id)
    assert documents == ("sr", "pdf", "kos", "ai-sr", "gsps", "measurements", "interest-kos")

    node = PacsNode(name="pacs", protocol="dimse", ae_title=orthanc.aet, host="127.0.0.1", port=orthanc.dicom_port,
                    calling_ae=orthanc.client_aet, timeout=30)
    box = Outbox(env.service, nodes=lambda _n: node)
    box.enqueue(v.id, "pacs", radiologist, documents=documents)
    assert box.process_due() == len(documents)
    rows = {r.document: r for r in box.items()}
    assert {r.state for r in rows.values()} == {"sent"}

    fetched = {}
    for name, row in rows.items():
        hits = orthanc.rest("POST", "/tools/lookup", row.sop_instance_uid)
        fetched[name] = _save(dcmread(io.BytesIO(orthanc.rest("GET", f"/instances/{hits[0]['ID']}/file"))),
                              tmp_path / f"{name}.dcm")
        assert not dciodvfy_errors(fetched[name]), name
    sr = dcmread(fetched["sr"])
    assert verify_sr(sr).ok and sr_content(sr).get("impression") == "Cardiomegaly."
    assert "Length" in dsrdump(fetched["measurements"])
    assert key_image_uids(dcmread(fetched["interest-kos"])) == ("Of Interest", [image_uid])
    heart = [r for r in parse_measurement_report(dcmread(fetched["measurements"])) if r["tracking_id"] == "heart"]
    assert heart[0]["unit"] == "mm" and heart[0]["value"] > 100
    image_path = env.db.store_path(image_file)
    assert dcmp2pgm(image_path, fetched["gsps"], tmp_path / "through_gsps.pgm").shape == (256, 256)
    texts = [t.UnformattedTextValue for t in dcmread(fetched["gsps"]).GraphicAnnotationSequence[0].TextObjectSequence]
    assert "look here" in texts  # the arrow's label went out with the measurements

    other = Database.open(f"sqlite:///{tmp_path / 'other.db'}", store_dir=tmp_path / "other-store")
    try:
        result, = RetrieveService(other, node).retrieve_studies([study_uid])
        assert result.state in ("done", "complete", "ok", "retrieved"), result.message
        with other.session() as s:
            got = {r[0] for r in s.execute(select(Instance.sop_class_uid).join(Series).join(Study)
                                           .where(Study.study_uid == study_uid))}
        assert {"1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.59", "1.2.840.10008.5.1.4.1.1.11.1",
                "1.2.840.10008.5.1.4.1.1.104.1"} <= got
        with other.session() as s:
            assert s.scalar(select(Study.report_status).where(Study.study_uid == study_uid)) == "none"
            kinds = {uid: kind_of_file(other.store_path(path), cls, mod, desc) for uid, cls, path, mod, desc in s.execute(
                select(Instance.sop_instance_uid, Instance.sop_class_uid, Instance.file_path, Series.modality,
                       Series.description).join(Series).join(Study).where(Study.study_uid == study_uid))}
        assert [u for u, k in kinds.items() if k == "acquired"] == [image_uid]
        assert sync_report_status(other, study_uid) == "final"
        with pytest.MonkeyPatch.context() as mp:  # in sync now: read only (it runs on the GUI thread after a
            # retrieve and must not wait for an import's write lock)
            mp.setattr(other, "run_write", lambda *_a, **_k: pytest.fail("a write transaction although in sync"))
            assert sync_report_status(other, study_uid) == "final"
        docs = study_documents(other, study_uid)
        reports = [d for d in docs if d.is_report]
        assert {d.kind for d in reports} == {"sr", "pdf"} and all(d.status == "final" for d in reports)
        sr_doc = next(d for d in reports if d.kind == "sr")
        assert "Cardiomegaly." in sr_doc.text and "The heart is enlarged." in sr_doc.text
        assert sorted(d.role for d in docs if not d.is_report) == ["ai-results", "measurements"]

        panel = PriorReportsPanel()
        qtbot.addWidget(panel)
        panel.set_documents(docs)
        assert panel.text.isReadOnly()
        for row, d in enumerate(panel.documents):
            panel.list.setCurrentRow(row)
            if d.kind == "pdf":
                panel.wait_idle()
                qtbot.waitUntil(lambda: panel.shown_page_count() >= 1, timeout=30000)
            elif d.is_report:
                assert "Cardiomegaly." in panel.text.toPlainText()
    finally:
        other.dispose()
        orthanc.clear()  # the report's UIDs derive from (study, report, version): leave no SR for later tests


def test_arrows_and_notes_alone_go_out_as_a_gsps_without_a_tid1500(env, radiologist):
    from sqlalchemy import select

    from app.db.measurement_store import DbMeasurementStore
    from app.db.models import Instance, Series, Study
    from app.demo_studies import demo_study_uids, ensure_demo_imported
    from app.dicom_objects.report_objects import report_gsps, report_measurements
    from viewer.measure.shapes import Arrow, Note

    ensure_demo_imported(env.db)
    study_uid = demo_study_uids()[0]
    with env.db.session() as s:
        image_uid = s.scalar(select(Instance.sop_instance_uid).join(Series, Series.id == Instance.series_db_id)
                             .join(Study, Study.id == Series.study_db_id).where(Study.study_uid == study_uid))
    DbMeasurementStore(env.db).save(image_uid, [Arrow(tip=(50, 60), tail=(90, 120), label="nodule").to_dict(),
                                                Note(anchor=(10, 200), label="compare with prior").to_dict()])
    v = env.service.open_or_create(study_uid, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Nodule."}, radiologist)
    v = env.service.sign(v.id, radiologist, PASSWORD)
    documents = available_documents(env.service, v.id)
    assert "gsps" in documents and "measurements" not in documents
    doc = build_document(env.service, v.id)
    assert report_measurements(env.db, doc, "Dr Rad") is None
    ann = report_gsps(env.db, doc, "Dr Rad").GraphicAnnotationSequence[0]
    assert [t.UnformattedTextValue for t in ann.TextObjectSequence] == ["nodule", "compare with prior"]
    assert [g.GraphicType for g in ann.GraphicObjectSequence] == ["POLYLINE", "POLYLINE"]


def test_k_in_the_viewer_flags_an_image_that_goes_out_as_an_of_interest_kos(env, radiologist, qtbot, tmp_path):
    """The reader presses K on the image (the flag lands in the database); the signed report then offers a KOS
    titled (113000, DCM, "Of Interest") over exactly that image: dciodvfy-clean, read back by pydicom, by
    highdicom and by RadStation's own KOS reader (which marks it on the image in another workstation)."""
    from app.db.interest_store import DbInterestStore
    from app.db.queries import study_ref
    from app.demo_studies import demo_study_uids, ensure_demo_imported
    from app.dicom_objects.report_objects import interest_kos
    from tests.support.dicom_tools import dciodvfy_errors
    from viewer.presentation.key_images import KeySelection
    from viewer.widgets.workspace import ViewerWorkspace

    ensure_demo_imported(env.db)
    study_uid = demo_study_uids()[0]
    with env.db.session() as s:
        ref = study_ref(s, study_uid)
    ws = ViewerWorkspace(interest_store=DbInterestStore(env.db))
    qtbot.addWidget(ws)
    ws.resize(900, 600)
    ws.show()
    ws.open_study(ref)
    qtbot.waitUntil(lambda: ws.thumbnails.icons_ready() and ws.study_objects_ready() and ws.interest_ready(),
                    timeout=20000)
    vp = ws.active_viewport()
    vp.setFocus()
    qtbot.keyClick(vp, Qt.Key.Key_K)
    image = vp.current_image()
    assert vp.is_of_interest() and DbInterestStore(env.db).load(study_uid)[0].sop_instance_uid == \
        image.sop_instance_uid
    qtbot.waitUntil(lambda: not vp.is_loading(), timeout=10000)

    v = env.service.open_or_create(study_uid, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Normal."}, radiologist)
    v = env.service.sign(v.id, radiologist, PASSWORD)
    assert "interest-kos" in available_documents(env.service, v.id)
    doc = build_document(env.service, v.id)
    path = _save(interest_kos(env.db, doc, "Dr Rad"), tmp_path / "interest.dcm")
    assert not dciodvfy_errors(path)
    ds = dcmread(path)
    title = ds.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning) == ("113000", "DCM", "Of Interest")
    assert key_image_uids(ds) == ("Of Interest", [image.sop_instance_uid])
    assert ds.SOPInstanceUID == doc.uid("interest-kos") and ds.SOPInstanceUID != doc.uid("kos")
    import highdicom as hd

    kos = hd.ko.KeyObjectSelectionDocument.from_dataset(ds)
    assert kos.resolve_reference(image.sop_instance_uid)[2] == image.sop_instance_uid
    sel = KeySelection.from_dataset(ds)
    assert sel.title == "Of Interest" and sel.images == {image.sop_instance_uid: image.dataset.SeriesInstanceUID}


def test_every_object_of_a_report_carries_the_same_patient_and_study_attributes(env, radiologist, tmp_path):
    """One helper sets them (app.reports.identity_attributes): the encapsulated PDF had left Study ID empty and the
    issuer out while the KOS gave the accession, so a PACS listed one study's report objects under two Study IDs."""
    from app.reports.export_encapsulated import build_encapsulated_pdf

    doc = build_document(env.service, _ai_signed(env, radiologist).id)
    objects = {"sr": build_sr(doc), "pdf": build_encapsulated_pdf(doc, b"%PDF-1.4\n%%EOF\n"),
               "kos": report_kos(doc, "Dr Rad"), "ai": report_ai_sr(env.db, doc)}
    keys = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "AccessionNumber",
            "StudyID", "StudyDate", "StudyTime")
    seen = {name: tuple(str(dcmread(_save(ds, tmp_path / f"{name}.dcm")).get(k, "")) for k in keys)
            for name, ds in objects.items()}
    assert len(set(seen.values())) == 1, seen
    assert dict(zip(keys, seen["pdf"], strict=True))["StudyID"] == "ACC123"
