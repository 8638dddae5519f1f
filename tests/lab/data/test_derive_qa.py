"""Rule-derived VQA pairs: presence, normality, location from boxes and real text, split follows image."""

from __future__ import annotations

from engines.data.sample import Box, Sample
from lab.data.qa import box_zone, derive_qa, derive_qa_by_split


def _qa(sample: Sample) -> dict[tuple[str, str], str]:
    return {(q.qtype, q.finding): q.answer for q in derive_qa(sample)}


def test_box_zone_uses_patient_side() -> None:
    assert box_zone(20, 200, 40, 40) == ("right", "lower")  # image left = patient's right
    assert box_zone(180, 10, 40, 40) == ("left", "upper")


def test_presence_normal_and_box_location() -> None:
    box = Box("Nodule", "Lung Lesion", 170, 100, 20, 20)
    s = Sample("a", "p", "s", "val", "nih_talo", findings={"Lung Lesion": 1, "Pneumothorax": 0, "No Finding": 0},
               boxes=[box, Box("Right Lung", None, 0, 0, 128, 256, kind="anatomy")])
    qa = _qa(s)
    assert qa[("normal", "")] == "no"
    assert qa[("abnormalities", "")] == "lung lesion"
    assert qa[("presence", "Lung Lesion")] == "yes" and qa[("presence", "Pneumothorax")] == "no"
    assert qa[("laterality", "Lung Lesion")] == "left" and qa[("location", "Lung Lesion")] == "left middle zone"
    assert all(q.split == "val" and q.image_id == "a" for q in derive_qa(s))
    kinds = {q.qtype: q.kind for q in derive_qa(s)}
    assert kinds["presence"] == "closed" and kinds["location"] == "open"


def test_real_report_gives_location_and_severity() -> None:
    s = Sample("b", "p", "s", "train", "iu", findings={"Pleural Effusion": 1, "Cardiomegaly": 1},
               report_findings="Moderate cardiomegaly. Small right pleural effusion at the base.",
               report_impression="Cardiomegaly and small effusion.", report_is_real=True)
    qa = _qa(s)
    assert qa[("laterality", "Pleural Effusion")] == "right"
    assert qa[("location", "Pleural Effusion")] == "right lower zone"
    assert qa[("severity", "Pleural Effusion")] == "mild" and qa[("severity", "Cardiomegaly")] == "moderate"
    assert ("laterality", "Cardiomegaly") not in qa  # the heart has no side


def test_composed_report_words_are_not_used_for_location() -> None:
    s = Sample("c", "p", "s", "train", "nih_talo", findings={"Pneumonia": 1},
               report_findings="Right lower lobe pneumonia.", report_impression="Pneumonia.", report_is_real=False)
    qa = _qa(s)
    assert ("laterality", "Pneumonia") not in qa and qa[("presence", "Pneumonia")] == "yes"


def test_normal_study_and_uncertain_findings() -> None:
    s = Sample("d", "p", "s", "test", "x", findings={"No Finding": 1, "Edema": -1})
    qa = _qa(s)
    assert qa[("normal", "")] == "yes" and qa[("abnormalities", "")] == "none"
    assert ("presence", "Edema") not in qa  # uncertain labels make no question


def test_split_follows_image_split() -> None:
    samples = [Sample(f"i{k}", f"p{k}", "s", sp, "x", findings={"No Finding": 1}) for k, sp in enumerate(["train", "val", "val"])]
    by = derive_qa_by_split(samples)
    assert {q.image_id for q in by["val"]} == {"i1", "i2"} and {q.image_id for q in by["train"]} == {"i0"}
