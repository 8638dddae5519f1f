"""GSPS and KOS objects written the way another vendor's viewer writes them (highdicom plus the attributes
it leaves to the caller), over images from widget_samples. A uniquely named module, importable from tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes


def foreign_gsps(images: Sequence[Dataset], *, window=(100.0, 600.0), rotation=90, flip=True,
                 area=((11, 21), (50, 60)), annotate: Dataset | None = None, label="OTHER VIEWER",
                 inverse=False, date="20240505") -> hd.pr.GrayscaleSoftcopyPresentationState:
    """A GSPS over `images`: a window, INVERSE/IDENTITY, rotation/flip, displayed area (1-based TLHC/BRHC as
    DICOM's pixel indices, given here in image space) and, on `annotate`, a circle, a filled polyline and two
    texts (one anchored in PIXEL units, one in a DISPLAY-unit bounding box) on a red layer."""
    target = annotate if annotate is not None else images[0]
    layer = hd.pr.GraphicLayer(layer_name="FINDINGS", order=1, description="other viewer",
                               display_color=hd.color.CIELabColor(53.2, 80.1, 67.2))  # sRGB red
    graphics = [
        hd.pr.GraphicObject(graphic_type="CIRCLE", graphic_data=np.array([[20.0, 20.0], [28.0, 20.0]]), units="PIXEL"),
        hd.pr.GraphicObject(graphic_type="POLYLINE", graphic_data=np.array([[35.0, 35.0], [45.0, 35.0], [45.0, 45.0],
                                                                            [35.0, 35.0]]),
                            units="PIXEL", is_filled=True),
    ]
    texts = [hd.pr.TextObject(text_value="nodule?", units="PIXEL", anchor_point=(28.0, 20.0), anchor_point_visible=True),
             hd.pr.TextObject(text_value="DISPLAY NOTE", units="DISPLAY", bounding_box=(0.05, 0.05, 0.6, 0.15))]
    annotation = hd.pr.GraphicAnnotation(referenced_images=[target], graphic_layer=layer, graphic_objects=graphics,
                                         text_objects=texts)
    voi = hd.pr.SoftcopyVOILUTTransformation(window_center=window[0], window_width=window[1],
                                             window_explanation="OTHER")
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=list(images), series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="Other Vendor", manufacturer_model_name="Viewer", software_versions="1",
        device_serial_number="1", content_label=label, content_creator_name="Smith^Ann",
        graphic_annotations=[annotation], graphic_layers=[layer], voi_lut_transformations=[voi],
        presentation_lut_transformation=hd.PresentationLUTTransformation(
            presentation_lut_shape="INVERSE" if inverse else "IDENTITY"))
    gsps.PresentationCreationDate = date
    if rotation or flip:
        gsps.ImageRotation = rotation
        gsps.ImageHorizontalFlip = "Y" if flip else "N"
    item = Dataset()
    item.DisplayedAreaTopLeftHandCorner = list(area[0])
    item.DisplayedAreaBottomRightHandCorner = list(area[1])
    item.PresentationSizeMode = "SCALE TO FIT"
    item.PresentationPixelAspectRatio = [1, 1]
    gsps.DisplayedAreaSelectionSequence = [item]
    return gsps


def foreign_kos(images: Sequence[Dataset], title=codes.DCM.OfInterest) -> hd.ko.KeyObjectSelectionDocument:
    content = hd.ko.KeyObjectSelection(
        document_title=title, referenced_objects=list(images),
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Smith^Ann")),
        description="see these")
    return hd.ko.KeyObjectSelectionDocument(
        evidence=list(images), content=content, series_instance_uid=hd.UID(), series_number=98,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Other Vendor")


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def read(path: Path) -> Dataset:
    """An image's header with the study attributes highdicom requires and widget_samples leaves out."""
    ds = pydicom.dcmread(path)
    for keyword, value in (("StudyID", "1"), ("StudyTime", "120000"), ("ReferringPhysicianName", ""),
                           ("PatientBirthDate", ""), ("PatientSex", "")):
        if keyword not in ds:
            setattr(ds, keyword, value)
    return ds
