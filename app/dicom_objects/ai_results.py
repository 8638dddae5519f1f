"""The AI engine's findings as an SR per IHE AI Results (AIR): TID 1500, algorithm identified.

One measurement group (TID 1501) per finding: the finding as the group's Finding, its state (present,
absent or uncertain) as a qualitative evaluation, the reader's probability where the engine gave one, the
algorithm (name, version, weights SHA-256 and seed: TID 4019 Algorithm Identification) and the images it
read. The observer is the device (the engine), never the radiologist: this object is not the signed report
and says so in its title, series description and completion/verification flags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from app.dicom_objects.common import MANUFACTURER, copy_study_extras, stable_uid
from app.dicom_objects.measurement_report import measurement_report_content

SERIES_NUMBER = 923
LOCAL_SCHEME = "99RADSTATION"
STATES = {"present": codes.SCT.Present, "absent": codes.SCT.Absent, "uncertain": codes.SCT.Indeterminate}
PRESENCE = hd.sr.CodedConcept("PRESENCE", LOCAL_SCHEME, "Presence of finding")
# Findings with a code pydicom's dictionary vouches for; the rest are named in the local scheme.
FINDING_CODES = {
    "Cardiomegaly": codes.SCT.Cardiomegaly,
    "Pleural Effusion": codes.SCT.PleuralEffusion,
    "Pneumothorax": codes.SCT.Pneumothorax,
    "Edema": codes.SCT.PulmonaryEdema,
    "Lung Opacity": codes.DCM.Opacity,
    "No Finding": codes.SCT.Normal,
}


def finding_code(name: str) -> hd.sr.CodedConcept:
    code = FINDING_CODES.get(name)
    if code is not None:
        return hd.sr.CodedConcept(code.value, code.scheme_designator, code.meaning)
    value = "".join(w[:4].upper() for w in name.split())[:16] or "FINDING"
    return hd.sr.CodedConcept(value, LOCAL_SCHEME, name[:64])


@dataclass(frozen=True)
class AiFinding:
    name: str
    state: str  # present | absent | uncertain
    probability: float | None = None


@dataclass(frozen=True)
class AiProvenance:
    """What identifies the algorithm run: enough to reproduce or trace it."""

    engine: str
    version: str = ""
    weights_sha256: str = ""
    seed: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)

    def algorithm(self) -> hd.sr.AlgorithmIdentification:
        params = [f"weights_sha256={self.weights_sha256}" if self.weights_sha256 else "weights_sha256=unknown"]
        if self.seed:
            params.append(f"seed={self.seed}")
        params += [f"{k}={v}" for k, v in sorted(self.parameters.items())][:8]
        return hd.sr.AlgorithmIdentification(name=self.engine[:64] or "unknown engine",
                                             version=(self.version or self.weights_sha256[:16] or "unknown")[:64],
                                             parameters=params, manufacturer=MANUFACTURER)


def _group(f: AiFinding, prov: AiProvenance, images: Sequence[Dataset]) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    if f.state not in STATES:
        raise ValueError(f"finding state must be one of {sorted(STATES)}, got {f.state!r}")
    measurements = None
    if f.probability is not None:
        if not 0.0 <= float(f.probability) <= 1.0:
            raise ValueError(f"{f.name}: probability {f.probability} is outside [0, 1]")
        measurements = [hd.sr.Measurement(name=codes.DCM.Probability, value=round(float(f.probability), 4),
                                          unit=codes.UCUM.NoUnits, algorithm_id=prov.algorithm())]
    sources = [hd.sr.SourceImageForMeasurementGroup(referenced_sop_class_uid=ds.SOPClassUID,
                                                    referenced_sop_instance_uid=ds.SOPInstanceUID)
               for ds in images] or None
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=stable_uid("ai-finding", prov.weights_sha256, f.name,
                                                                    *[str(d.SOPInstanceUID) for d in images]),
                                                      identifier=f"AI {f.name}"[:64]),
        finding_type=finding_code(f.name),
        algorithm_id=prov.algorithm(),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=PRESENCE, value=STATES[f.state])],
        measurements=measurements,
        source_images=sources,
    )


def build_ai_results_sr(identity: Dataset, findings: Sequence[AiFinding], provenance: AiProvenance,
                        images: Sequence[Dataset], *, series_uid: str, sop_uid: str,
                        procedure: hd.sr.CodedConcept | None = None, institution: str = "",
                        instance_number: int = 1) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 SR of the engine's findings on `images` (headers of the images it read)."""
    if not findings:
        raise ValueError("the engine gave no finding to record")
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=stable_uid("ai-device", provenance.engine, provenance.weights_sha256),
            name=provenance.engine[:64] or "AI engine", manufacturer_name=MANUFACTURER,
            model_name=(provenance.version or provenance.weights_sha256[:16] or "unknown")[:64]))
    report = measurement_report_content(
        hd.sr.ObservationContext(observer_device_context=device),
        procedure or hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging study"),
        [_group(f, provenance, images) for f in findings], list(images))
    evidence = list(images) or [identity]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report, series_instance_uid=series_uid, series_number=SERIES_NUMBER,
        sop_instance_uid=sop_uid, instance_number=instance_number, manufacturer=MANUFACTURER,
        institution_name=institution or None, is_complete=True, is_final=False, is_verified=False,
        record_evidence=bool(images))
    sr.SeriesDescription = "AI RESULTS (not the signed report)"
    local = Dataset()
    local.CodingSchemeDesignator = LOCAL_SCHEME
    local.CodingSchemeName = "RadStation local codes"
    local.CodingSchemeResponsibleOrganization = "RadStation"
    sr.CodingSchemeIdentificationSequence = [local]
    copy_study_extras(sr, identity)
    return sr


def read_ai_results(ds: Dataset) -> tuple[list[AiFinding], dict[str, str]]:
    """Findings and algorithm identification back out of an AI results SR (this one's or alike)."""
    from app.dicom_objects.measurement_report import read_sr

    content = read_sr(ds).content
    out, algorithm = [], {}
    by_value = {c.value: k for k, c in STATES.items()}
    for group in content.get_image_measurement_groups():
        evals = group.get_qualitative_evaluations()
        state = by_value.get(evals[0].value.value, "uncertain") if evals else "uncertain"
        probs = [float(m.value) for m in group.get_measurements(name=codes.DCM.Probability)]
        tracking = str(group.tracking_identifier or "")
        name = tracking[3:] if tracking.startswith("AI ") else (
            group.finding_type.meaning if group.finding_type is not None else tracking)
        out.append(AiFinding(name, state, probs[0] if probs else None))
        for item in group[0].ContentSequence:
            meaning = item.ConceptNameCodeSequence[0].CodeMeaning
            if meaning in ("Algorithm Name", "Algorithm Version"):
                algorithm.setdefault(meaning, str(item.TextValue))
            elif meaning == "Algorithm Parameters" and "=" in str(item.TextValue):
                key, _, value = str(item.TextValue).partition("=")
                algorithm.setdefault(key, value)
    return out, algorithm
