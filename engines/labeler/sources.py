"""Map dataset labels (NIH ChestX-ray14, the COVID collections, MeSH) to the 14 CheXpert findings.

The mappings are conservative: a source label sets only what it says. NIH's 14 labels are exhaustive for
the findings they cover, so an NIH image also gets 0 for covered findings it does not list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from engines.labeler.findings import FINDINGS, PATHOLOGIES

NIH_TO_FINDINGS: Final[dict[str, tuple[str, ...]]] = {
    "Atelectasis": ("Atelectasis",),
    "Cardiomegaly": ("Cardiomegaly",),
    "Consolidation": ("Consolidation", "Lung Opacity"),
    "Edema": ("Edema", "Lung Opacity"),
    "Effusion": ("Pleural Effusion",),
    "Infiltration": ("Lung Opacity",),
    "Infiltrate": ("Lung Opacity",),
    "Mass": ("Lung Lesion",),
    "Nodule": ("Lung Lesion",),
    "Pleural_Thickening": ("Pleural Other",),
    "Pleural Thickening": ("Pleural Other",),
    "Pneumonia": ("Pneumonia", "Lung Opacity"),
    "Pneumothorax": ("Pneumothorax",),
    # Emphysema, Fibrosis and Hernia have no CheXpert counterpart.
    "Emphysema": (),
    "Fibrosis": (),
    "Hernia": (),
}

#: Findings an NIH label list speaks to (their absence in the list means negative).
NIH_COVERED: Final[frozenset[str]] = frozenset(f for fs in NIH_TO_FINDINGS.values() for f in fs)

# Infectious aetiologies: the image shows pneumonia (airspace opacity); lobar bacterial pathogens typically
# consolidate. ARDS is diffuse airspace opacity (non-cardiogenic oedema).
_INFECTION = ("Pneumonia", "Lung Opacity")
COVID_TO_FINDINGS: Final[dict[str, tuple[str, ...]]] = {
    "COVID-19": _INFECTION,
    "SARS": _INFECTION,
    "MERS": _INFECTION,
    "Influenza": _INFECTION,
    "Varicella": _INFECTION,
    "Pneumocystis": _INFECTION,
    "Pneumonia": _INFECTION,
    "Viral": _INFECTION,
    "Fungal": _INFECTION,
    "Bacterial": (*_INFECTION, "Consolidation"),
    "Klebsiella": (*_INFECTION, "Consolidation"),
    "Streptococcus": (*_INFECTION, "Consolidation"),
    "Legionella": (*_INFECTION, "Consolidation"),
    "E.Coli": (*_INFECTION, "Consolidation"),
    "Mycoplasma": _INFECTION,
    "Chlamydophila": _INFECTION,
    "Staphylococcus": (*_INFECTION, "Consolidation"),
    "Tuberculosis": _INFECTION,
    "ARDS": ("Lung Opacity", "Edema"),
}

_NORMAL_LABELS: Final[frozenset[str]] = frozenset(
    {"no finding", "no findings", "normal", "no_findings", 'no visible abnormality (readme: "-" suffix)'}
)

#: MeSH heading (the part before the first "/") -> finding, for the IU reports' manual tags.
MESH_TO_FINDINGS: Final[dict[str, tuple[str, ...]]] = {
    "normal": ("No Finding",),
    "Cardiomegaly": ("Cardiomegaly",),
    "Cardiac Shadow/enlarged": ("Cardiomegaly",),
    "Cardiac Shadow/borderline": ("Cardiomegaly",),
    "Mediastinum/prominent": ("Enlarged Cardiomediastinum",),
    "Mediastinum/enlarged": ("Enlarged Cardiomediastinum",),
    "Mediastinum/wide": ("Enlarged Cardiomediastinum",),
    "Opacity": ("Lung Opacity",),
    "Infiltrate": ("Lung Opacity",),
    "Airspace Disease": ("Lung Opacity",),
    "Density/lung": ("Lung Opacity",),
    # CheXpert counts parenchymal scarring and increased lung markings as Lung Opacity.
    "Cicatrix/lung": ("Lung Opacity",),
    "Markings/lung": ("Lung Opacity",),
    "Lung Diseases, Interstitial": ("Lung Opacity",),
    "Pulmonary Fibrosis": ("Lung Opacity",),
    "Nodule": ("Lung Lesion",),
    "Mass": ("Lung Lesion",),
    "Pulmonary Edema": ("Edema",),
    "Edema": ("Edema",),
    "Pulmonary Congestion": ("Edema",),
    "Consolidation": ("Consolidation",),
    "Pneumonia": ("Pneumonia",),
    "Pulmonary Atelectasis": ("Atelectasis",),
    "Atelectasis": ("Atelectasis",),
    "Pneumothorax": ("Pneumothorax",),
    "Hydropneumothorax": ("Pneumothorax", "Pleural Effusion"),
    "Pleural Effusion": ("Pleural Effusion",),
    "Thickening/pleura": ("Pleural Other",),
    "Fractures, Bone": ("Fracture",),
    "Catheters, Indwelling": ("Support Devices",),
    "Implanted Medical Device": ("Support Devices",),
    "Medical Device": ("Support Devices",),
    "Tube, Inserted": ("Support Devices",),
    "Pacemaker, Artificial": ("Support Devices",),
    "Stents": ("Support Devices",),
    "Surgical Instruments": ("Support Devices",),
}


def findings_from_mesh(terms: Iterable[str]) -> set[str]:
    """Findings tagged by a list of IU MeSH terms ("Cardiomegaly/borderline", "Opacity/lung/base/left")."""
    out: set[str] = set()
    for term in terms:
        parts = term.split("/")
        for key in ("/".join(parts[:2]), parts[0]):
            if key in MESH_TO_FINDINGS:
                out.update(MESH_TO_FINDINGS[key])
                break
    return out


def findings_from_source_labels(labels: Iterable[str], source: str) -> dict[str, int]:
    """CheXpert findings implied by a dataset's image-level labels.

    ``source`` selects the vocabulary: "nih*" (ChestX-ray14) or anything else (COVID collections, where the
    label is the diagnosis). Unknown labels are ignored (they say nothing about these findings)."""
    labels = [str(x).strip() for x in labels if str(x).strip()]
    out: dict[str, int] = {}
    normal = any(x.lower() in _NORMAL_LABELS for x in labels)
    nih = source.lower().startswith("nih")
    table = NIH_TO_FINDINGS if nih else COVID_TO_FINDINGS
    if normal and not nih and any(x.lower().startswith("no visible abnormality") for x in labels):
        # covid_cxnet "-" suffix: PCR-positive with a normal film; the image shows no finding.
        return {"No Finding": 1, **{p: 0 for p in PATHOLOGIES}}
    for label in labels:
        for finding in table.get(label, table.get(label.replace(" ", "_"), ())):
            out[finding] = 1
    if nih:
        for f in NIH_COVERED:
            out.setdefault(f, 0)
    positive = any(out.get(p) == 1 for p in PATHOLOGIES)
    if normal and not positive:
        out["No Finding"] = 1
        if not nih:
            for p in PATHOLOGIES:
                out.setdefault(p, 0)
    elif positive:
        out["No Finding"] = 0
    return {f: out[f] for f in FINDINGS if f in out}
