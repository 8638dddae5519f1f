"""Consistency, fluency (near-real share, leave-one-out perplexity) and bootstrap intervals of the drafting
evaluation, on texts whose answers are known."""

from __future__ import annotations

import numpy as np

from lab.eval.consistency import contradictions, inconsistency_flags
from lab.eval.draft_bootstrap import bootstrap, clinical_point, label_matrix, paired_difference
from lab.eval.fluency import SentenceCorpus, fluency

CORPUS = ["The heart is normal in size. The lungs are clear. No pleural effusion or pneumothorax.",
          "Heart size is normal. There is a small right pleural effusion. No pneumothorax.",
          "The lungs are clear. No acute bony abnormality."] * 3


def test_contradictions_are_found_and_consistent_reports_pass():
    bad = "There is no pleural effusion. Small left pleural effusion. Heart size is normal."
    assert [c[0] for c in contradictions(bad)] == ["Pleural Effusion"]
    assert inconsistency_flags([bad, CORPUS[0]]) == [True, False]


def test_fluency_counts_near_real_sentences_and_scores_perplexity_leave_one_out():
    corpus = SentenceCorpus.from_reports(CORPUS)
    assert corpus.near_real("the lungs are clear")
    assert corpus.near_real("The lungs are clear!!")  # punctuation and case do not count
    assert corpus.near_real("Heart size is norma.")  # within ratio 0.9
    assert not corpus.near_real("heart size and. of vascular congestion edema.")
    salad = corpus.perplexity("is pneumothorax the no clear")
    assert corpus.perplexity("The lungs are clear.") < salad
    f = fluency(["The lungs are clear. Heart size and. of vascular.", "No pneumothorax."], corpus)
    assert f["sentences"] == 4 and f["near_real_share"] == 0.5  # "heart size and." / "of vascular." are two


def test_bootstrap_intervals_cover_the_point_and_pair_systems():
    ref = label_matrix([{"Pleural Effusion": 1}, {"No Finding": 1}, {"Cardiomegaly": 1}, {"No Finding": 1}] * 10)
    good = ref.copy()
    bad = label_matrix([{"Pleural Effusion": 1}] * 40)
    p, ci, reps_good = bootstrap(lambda i: clinical_point(good, ref, i), 40, reps=200)
    assert p["micro"] == 1.0 and p["halluc"] == 0.0 and ci["micro"] == (1.0, 1.0)
    pb, cib, reps_bad = bootstrap(lambda i: clinical_point(bad, ref, i), 40, reps=200)
    assert pb["halluc"] == 1.0 and cib["micro"][0] <= pb["micro"] <= cib["micro"][1]
    diff = paired_difference(reps_good, reps_bad)
    assert diff["micro"][0] > 0 and diff["halluc"][1] < 0
    assert np.isnan(clinical_point(good, ref, np.array([0, 2]))["halluc"])  # no normal study in the sample
