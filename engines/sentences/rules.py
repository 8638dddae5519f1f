"""Which real report sentences may describe a single image, and the findings a normal chest report states.

Shared by the product's sentence bank (engines.sentences.bank) and the lab's composed training reports
(lab.data.paired) so that drafting and training agree on both.
"""

from __future__ import annotations

import re

#: Findings a normal chest report states explicitly when absent (the usual "no X, no Y" checklist).
CHECKLIST: tuple[tuple[str, ...], ...] = (
    ("Cardiomegaly", "Enlarged Cardiomediastinum"),
    ("Lung Opacity", "Consolidation", "Pneumonia", "Lung Lesion", "Atelectasis"),
    ("Edema",),
    ("Pleural Effusion", "Pneumothorax"),
)
# Sentences that need a prior study or an unseen context do not fit a single composed image.
UNFIT = re.compile(
    r"XXXX|compar|prior|previous|unchanged|stable|again|interval|redemonstrat|since|new\b|improv|worse|"
    r"increas|decreas|resolv|persist|follow|recommend|clinical|correlat|CT\b|dictat|discuss|called|"
    r"\b\d{1,2}[/:]\d|\bdr\b|patient|history|lateral view|not well seen|limited|change|remainder|another|\bother\b|"
    r"\balso\b|otherwise|additional|laryn|\bthe\s+lungs\s+focal",
    re.I,
)
