from __future__ import annotations

import numpy as np

from engines.counterfactual.priors import finding_prior


def test_effusion_lives_at_the_bases_and_side_words_narrow_it() -> None:
    p = finding_prior(["Pleural Effusion"], [], 16)
    assert p[13, 3] > 0.5 and p[13, 12] > 0.5 and p[2, 8] < 0.1 and p[8, 8] < 0.1
    right = finding_prior(["Pleural Effusion"], ["Small right pleural effusion."], 16)
    assert right[13, 3] > 0.5 and right[13, 12] < 0.1  # patient's right = image left


def test_zone_words_and_unknown_findings() -> None:
    upper = finding_prior(["Lung Lesion"], ["There is a right upper lobe nodule."], 16)
    assert upper[5, 4] > 0.5 and upper[12, 4] < 0.1 and upper[5, 12] < 0.1
    everywhere = finding_prior(["Made Up"], [], 8)  # unknown: lung fields
    assert everywhere.max() > 0.5
    heart = finding_prior(["Cardiomegaly"], [], 16)
    assert heart[10, 8] > 0.5 and heart[2, 2] < 0.1
    assert np.all((heart >= 0) & (heart <= 1))
