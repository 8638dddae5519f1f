"""Measurements as an SR Imaging Measurement Report (TID 1500), built with highdicom.

Arrows and text notes measure nothing and are left out here: the GSPS carries them onto the image.

Distances and angles: a measurement group (TID 1501) whose Length / Angle is inferred from the SCOORD
polyline drawn on the image. Rectangles and ellipses: a planar ROI group (TID 1410) with the region and
its area, mean, standard deviation, minimum and maximum (modality units: Hounsfield units on CT).
Units are UCUM. A length the header cannot calibrate is reported in pixels and says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from app.dicom_objects.annotations import AnnotatedImage
from app.dicom_objects.common import MANUFACTURER, copy_study_extras, header_of, person_name
from app.dicom_objects.presentation_state import graphic_of
from viewer.measure import Measurement, MeasurementResult, is_annotation
from viewer.measure.shapes import Angle, Distance

SERIES_NUMBER = 921
PIXELS = hd.sr.CodedConcept("{pixels}", "UCUM", "pixels")
SQUARE_PIXELS = hd.sr.CodedConcept("{pixels2}", "UCUM", "square pixels")
IMAGE_INTENSITY = hd.sr.CodedConcept("IMGINT", "99RADSTATION", "Image intensity")
# Default procedure when the caller names none: a diagnostic imaging study (LOINC).
DEFAULT_PROCEDURE = hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging study")


class MeasurementReportError(ValueError):
    """Nothing to report, or images of different studies."""


def _source(item: AnnotatedImage, m: Measurement) -> hd.sr.SourceImageForRegion:
    ds = item.dataset
    frames = [m.frame + 1] if item.n_frames > 1 else None
    return hd.sr.SourceImageForRegion(referenced_sop_class_uid=ds.SOPClassUID,
                                      referenced_sop_instance_uid=ds.SOPInstanceUID,
                                      referenced_frame_numbers=frames)


def _value_quantity(item: AnnotatedImage, result: MeasurementResult) -> tuple[hd.sr.CodedConcept, hd.sr.CodedConcept]:
    modality = str(item.dataset.get("Modality", ""))
    if result.value_unit == "HU":
        return hd.sr.CodedConcept(*_code(codes.DCM.AttenuationCoefficient)), hd.sr.CodedConcept(
            *_code(codes.UCUM.HounsfieldUnit))
    name = codes.DCM.MRSignalIntensity if modality == "MR" else IMAGE_INTENSITY
    return hd.sr.CodedConcept(*_code(name)), hd.sr.CodedConcept(*_code(codes.UCUM.NoUnits))


def _code(code) -> tuple[str, str, str]:
    return code.value, code.scheme_designator, code.meaning


def _linear_group(item: AnnotatedImage, m: Distance | Angle, result: MeasurementResult, n: int,
                  ) -> hd.sr.MeasurementsAndQualitativeEvaluations | None:
    gtype, pts = graphic_of(m)
    coords = hd.sr.CoordinatesForMeasurement(graphic_type=gtype, graphic_data=pts.astype(float),
                                             source_image=_source(item, m))
    if isinstance(m, Distance):
        if result.length is None:
            return None
        unit = codes.UCUM.Millimeter if result.calibrated else PIXELS
        meas = hd.sr.Measurement(name=codes.SCT.Length, value=round(float(result.length), 3), unit=unit,
                                 referenced_coordinates=[coords])
        label = m.label or f"Distance {n}"
    else:
        if result.angle_deg is None:
            return None
        meas = hd.sr.Measurement(name=codes.SCT.Angle, value=round(float(result.angle_deg), 3),
                                 unit=codes.UCUM.Degree, referenced_coordinates=[coords])
        label = m.label or f"Angle {n}"
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label[:64]),
        measurements=[meas])


def _roi_group(item: AnnotatedImage, m: Measurement, result: MeasurementResult, n: int,
               ) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    gtype, pts = graphic_of(m)
    region = hd.sr.ImageRegion(graphic_type=gtype, graphic_data=pts.astype(float), source_image=_source(item, m))
    measurements = []
    if result.area is not None:
        unit = codes.UCUM.SquareMillimeter if result.calibrated else SQUARE_PIXELS
        measurements.append(hd.sr.Measurement(name=codes.SCT.Area, value=round(float(result.area), 3), unit=unit))
    if result.n_pixels:
        name, unit = _value_quantity(item, result)
        for derivation, value in ((codes.SCT.Mean, result.mean), (codes.DCM.StandardDeviation, result.sd),
                                  (codes.SCT.Minimum, result.min), (codes.SCT.Maximum, result.max)):
            if value is not None:
                measurements.append(hd.sr.Measurement(name=name, value=round(float(value), 3), unit=unit,
                                                      derivation=derivation))
    label = m.label or f"{'Ellipse' if gtype == 'ELLIPSE' else 'Rectangle'} ROI {n}"
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label[:64]),
        referenced_region=region, measurements=measurements or None)


def measurement_groups(items: Sequence[AnnotatedImage]) -> list:
    """One TID 1501/1410 group per shape, in drawing order."""
    groups = []
    n = 0
    for item in items:
        for m, result in zip(item.measurements, item.results(), strict=True):
            if is_annotation(m):
                continue
            n += 1
            if isinstance(m, Distance | Angle):
                group = _linear_group(item, m, result, n)
            else:
                group = _roi_group(item, m, result, n)
            if group is not None:
                groups.append(group)
    return groups


def measurement_report_content(context: hd.sr.ObservationContext, procedure: hd.sr.CodedConcept, groups: list,
                               images: list) -> hd.sr.MeasurementReport:
    """TID 1500 with an image library describing `images`; without the library when an image lacks what
    highdicom's TID 1602 descriptors need (e.g. a DX without Imager Pixel Spacing): the groups still
    reference the images by UID."""
    kwargs = dict(observation_context=context, procedure_reported=procedure, imaging_measurements=groups,
                  title=codes.DCM.ImagingMeasurementReport)
    try:
        return hd.sr.MeasurementReport(**kwargs, referenced_images=images or None)
    except (AttributeError, ValueError, TypeError):
        return hd.sr.MeasurementReport(**kwargs)


def build_measurement_report(items: Sequence[AnnotatedImage], *, series_uid: str, sop_uid: str, observer: str,
                             procedure: hd.sr.CodedConcept | None = None, institution: str = "",
                             instance_number: int = 1) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 Measurement Report over the measurements of `items` (one study)."""
    items = [i for i in items if any(not is_annotation(m) for m in i.measurements)]
    if not items:
        raise MeasurementReportError("there are no measurements to report (arrows and notes go in the GSPS)")
    if len({str(i.dataset.StudyInstanceUID) for i in items}) > 1:
        raise MeasurementReportError("a measurement report covers images of one study only")
    groups = measurement_groups(items)
    if not groups:
        raise MeasurementReportError("none of the shapes has a value to report (e.g. zero-length arms)")
    context = hd.sr.ObservationContext(observer_person_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=person_name(observer))))
    seen: dict[str, object] = {}
    for i in items:
        seen.setdefault(i.sop_instance_uid, i.dataset)
    report = measurement_report_content(context, procedure or DEFAULT_PROCEDURE, groups, list(seen.values()))
    sr = hd.sr.Comprehensive3DSR(
        evidence=[header_of(ds) for ds in seen.values()],
        content=report,
        series_instance_uid=series_uid,
        series_number=SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        institution_name=institution or None,
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    sr.SeriesDescription = "Measurements (TID 1500)"
    local = Dataset()
    local.CodingSchemeDesignator = IMAGE_INTENSITY.scheme_designator
    local.CodingSchemeName = "RadStation local codes"
    local.CodingSchemeResponsibleOrganization = "RadStation"
    sr.CodingSchemeIdentificationSequence = [local]
    copy_study_extras(sr, items[0].dataset)
    return sr


def read_sr(ds) -> hd.sr.ComprehensiveSR | hd.sr.Comprehensive3DSR | hd.sr.EnhancedSR:
    """highdicom's SR object for a pydicom dataset of any of the three SR classes it reads."""
    if hasattr(ds, "content"):
        return ds
    uid = str(ds.SOPClassUID)
    for cls, klass in ((hd.sr.Comprehensive3DSR, "1.2.840.10008.5.1.4.1.1.88.34"),
                       (hd.sr.ComprehensiveSR, "1.2.840.10008.5.1.4.1.1.88.33"),
                       (hd.sr.EnhancedSR, "1.2.840.10008.5.1.4.1.1.88.22")):
        if uid == klass:
            return cls.from_dataset(ds, copy=True)
    raise ValueError(f"not a Comprehensive/3D/Enhanced SR (SOP Class {uid})")


def parse_measurement_report(ds) -> list[dict]:
    """The measurements of any TID 1500 report as plain rows (name, value, unit, derivation, tracking id),
    read back with highdicom: what a PACS or another workstation would see."""
    content = read_sr(ds).content
    groups = list(content.get_image_measurement_groups()) + list(content.get_planar_roi_measurement_groups())
    return [_row(group, meas) for group in groups for meas in group.get_measurements()]


def _row(group, meas) -> dict:
    derivation = meas.derivation
    return {
        "tracking_id": group.tracking_identifier,
        "name": meas.name.meaning,
        "value": float(meas.value),
        "unit": meas.unit.value,
        "derivation": derivation.meaning if derivation is not None else "",
    }
