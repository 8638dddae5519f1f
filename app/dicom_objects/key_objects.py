"""Key images as a Key Object Selection Document (highdicom), the object every PACS marks key images by.

"For Report Attachment" for the images a signed report names, "Of Interest" for images a reader flags
while reading. The KOS may also list the report SR itself, so a PACS shows the report beside its images.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import UID

from app.dicom_objects.common import MANUFACTURER, ImageRef, copy_study_extras, person_name

SERIES_NUMBER = 922
TITLES = {"report": codes.DCM.ForReportAttachment, "interest": codes.DCM.OfInterest}
KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"


class KeyObjectError(ValueError):
    """No key image, or images of another study."""


# Storage classes of images that do not say "Image Storage" in their name
_OTHER_IMAGE_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.30"}  # SEG, Parametric Map


def is_image_class(sop_class_uid: str) -> bool:
    """Whether objects of this SOP class are images (referenced as IMAGE in a KOS, else COMPOSITE)."""
    return "Image Storage" in UID(sop_class_uid).name or sop_class_uid in _OTHER_IMAGE_CLASSES


def reference_dataset(identity: Dataset, ref: ImageRef) -> Dataset:
    """The study's identity plus one object's UIDs: what highdicom needs to reference it as evidence.

    highdicom writes an IMAGE item (what viewers mark as a key image) only for a dataset with Rows and Columns,
    else a COMPOSITE one: those two are set here by the SOP class, never inherited from the identity (the report
    SR must stay COMPOSITE); their values are not written anywhere."""
    ds = Dataset()
    for el in identity:
        if el.keyword not in ("Rows", "Columns"):
            ds.add(el)
    ds.StudyInstanceUID = ref.study_uid
    ds.SeriesInstanceUID = ref.series_uid
    ds.SOPClassUID = ref.sop_class_uid
    ds.SOPInstanceUID = ref.sop_instance_uid
    if is_image_class(ref.sop_class_uid):
        ds.Rows = ds.Columns = 0
    return ds


def build_kos(identity: Dataset, images: Sequence[ImageRef], *, series_uid: str, sop_uid: str, observer: str,
              purpose: str = "report", description: str = "", institution: str = "",
              instance_number: int = 1) -> hd.ko.KeyObjectSelectionDocument:
    """A KOS over `images` of the study in `identity` (patient/study header, e.g. common.header_of)."""
    if purpose not in TITLES:
        raise KeyObjectError(f"purpose must be one of {sorted(TITLES)}")
    if not images:
        raise KeyObjectError("no key image selected")
    study = str(identity.StudyInstanceUID)
    foreign = [r.sop_instance_uid for r in images if r.study_uid != study]
    if foreign:
        raise KeyObjectError(f"key images of another study: {', '.join(foreign)}")
    refs = [reference_dataset(identity, r) for r in dict.fromkeys(images)]
    content = hd.ko.KeyObjectSelection(
        document_title=TITLES[purpose],
        referenced_objects=refs,
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=person_name(observer))),
        description=description[:1024] or None,
    )
    kos = hd.ko.KeyObjectSelectionDocument(
        evidence=refs, content=content, series_instance_uid=series_uid, series_number=SERIES_NUMBER,
        sop_instance_uid=sop_uid, instance_number=instance_number, manufacturer=MANUFACTURER,
        institution_name=institution or None)
    kos.SeriesDescription = "Key images"
    copy_study_extras(kos, identity)
    return kos


def key_image_uids(ds: Dataset) -> tuple[str, list[str]]:
    """(title meaning, referenced SOP Instance UIDs) of any KOS, as another system wrote it."""
    if str(ds.get("SOPClassUID", "")) != KOS_SOP_CLASS:
        raise ValueError("not a Key Object Selection Document")
    title = ds.ConceptNameCodeSequence[0].CodeMeaning if ds.get("ConceptNameCodeSequence") else ""
    uids = []
    for item in ds.get("ContentSequence", []):
        for ref in item.get("ReferencedSOPSequence", []):
            uids.append(str(ref.ReferencedSOPInstanceUID))
    return str(title), uids
