"""NIH, COVID-collection and MeSH label mappings."""

from __future__ import annotations

from engines.labeler import findings_from_mesh, findings_from_source_labels


def test_nih_labels_set_positives_and_covered_negatives() -> None:
    f = findings_from_source_labels(["Effusion", "Nodule"], "nih_talo")
    assert f["Pleural Effusion"] == 1 and f["Lung Lesion"] == 1
    assert f["Pneumothorax"] == 0 and f["Cardiomegaly"] == 0
    assert f["No Finding"] == 0
    assert "Fracture" not in f  # NIH has no fracture label: nothing is said


def test_nih_no_finding() -> None:
    f = findings_from_source_labels(["No Finding"], "nih_zech")
    assert f["No Finding"] == 1 and f["Pneumonia"] == 0


def test_covid_labels() -> None:
    f = findings_from_source_labels(["COVID-19"], "covid_ieee8023")
    assert f["Pneumonia"] == 1 and f["Lung Opacity"] == 1
    assert findings_from_source_labels(["Klebsiella"], "covid_ieee8023")["Consolidation"] == 1
    assert findings_from_source_labels(["No Finding"], "covid_ieee8023")["No Finding"] == 1
    cx = findings_from_source_labels(["COVID-19", 'no visible abnormality (README: "-" suffix)'], "covid_cxnet")
    assert cx["No Finding"] == 1 and cx["Pneumonia"] == 0
    assert findings_from_source_labels(["todo-unknown"], "figure1") == {}


def test_mesh_terms() -> None:
    got = findings_from_mesh(["Cardiomegaly/borderline", "Opacity/lung/base/left/mild", "Fractures, Bone/ribs"])
    assert got == {"Cardiomegaly", "Lung Opacity", "Fracture"}
    assert findings_from_mesh(["normal"]) == {"No Finding"}
    assert findings_from_mesh(["Calcified Granuloma/lung"]) == set()
