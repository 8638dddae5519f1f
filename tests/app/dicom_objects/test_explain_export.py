"""The shown explanation map exported into the study: SEG + derived SC for a radiograph, stored as derived
objects that the report never takes as evidence or key images."""

from __future__ import annotations

import stat

import numpy as np
import pydicom
from sqlalchemy import select

from app.db.models import Instance, Series, Study
from app.demo_studies import demo_study_uids, ensure_demo_imported
from app.dicom_objects.classify import ACQUIRED, DERIVED, kind_of_file
from app.dicom_objects.explain_export import export_explanation
from explain.dicom_maps import MapSource


def test_map_objects_join_the_study_as_derived(db, tmp_path):
    ensure_demo_imported(db)
    study_uid = demo_study_uids()[0]
    with db.session() as s:
        path = s.scalar(select(Instance.file_path).join(Series).join(Study).where(Study.study_uid == study_uid))
    source = pydicom.dcmread(db.store_path(path))
    values = np.zeros((source.Rows, source.Columns), np.float32)
    values[60:120, 40:100] = 0.9
    written = export_explanation(db.store_path(path), values, MapSource("attention: cardiomegaly"), tmp_path / "out",
                                 database=db)
    assert [p.name.split("_")[0] for p in written] == ["SEG", "PMAP", "SC"]  # a radiograph: the SC as well
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o600}  # patient data: private to the exporter
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700
    with db.session() as s:
        rows = s.execute(select(Instance.sop_class_uid, Instance.file_path, Series.modality, Series.description)
                         .join(Series).join(Study).where(Study.study_uid == study_uid)).all()
    kinds = sorted(kind_of_file(db.store_path(p), c, m, d) for c, p, m, d in rows)
    assert kinds == [ACQUIRED, DERIVED, DERIVED, DERIVED]


def test_derived_series_are_listed_after_the_acquired_ones(db, tmp_path):
    from app.db.queries import study_ref

    ensure_demo_imported(db)
    study_uid = demo_study_uids()[0]
    with db.session() as s:
        path = s.scalar(select(Instance.file_path).join(Series).join(Study).where(Study.study_uid == study_uid))
    values = np.zeros((256, 256), np.float32)
    values[60:120, 40:100] = 0.9
    export_explanation(db.store_path(path), values, MapSource("attention"), tmp_path / "out", database=db)
    with db.session() as s:
        ref = study_ref(s, study_uid)
    assert [se.modality for se in ref.series][0] == "DX"
    assert all("AI EXPLANATION" in se.description.upper() or se.modality == "SEG" for se in ref.series[1:])
    assert len(ref.series) == 4
    assert ref.derived_series == tuple(se.series_uid for se in ref.series[1:])  # grouped apart in the strip
