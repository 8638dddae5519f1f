"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from lab.eval import (
    clinical_efficacy,
    clinical_efficacy_from_labels,
    corpus_nlg_scores,
    evaluate_reports,
    simple_tokenize,
    token_f1,
    vqa_scores,
)
from lab.eval.nlg import java_available, ptb_tokenize


def test_bleu_hand_computed_single_pair() -> None:
    # hyp "mild cardiomegaly no effusion" vs ref "mild cardiomegaly small effusion":
    # unigrams 3/4, bigrams 1/3 ("mild cardiomegaly"), equal lengths -> BP 1.
    s = corpus_nlg_scores(["Mild cardiomegaly, no effusion."], ["Mild cardiomegaly, small effusion."],
                          tokenizer="simple", meteor=False)
    assert s["BLEU-1"] == pytest.approx(0.75, abs=1e-6)
    assert s["BLEU-2"] == pytest.approx(math.sqrt(0.75 * 1 / 3), abs=1e-6)
    # ROUGE-L: LCS "mild cardiomegaly effusion" = 3, P = R = 3/4 -> F = 0.75 for any beta.
    assert s["ROUGE-L"] == pytest.approx(0.75, abs=1e-6)
    assert s["tokenizer"] == "simple" and s["METEOR"] is None


def test_bleu_is_corpus_level_not_mean_of_sentences() -> None:
    gen = ["heart is normal size", "mild cardiomegaly no effusion"]
    ref = ["heart is normal size", "mild cardiomegaly small effusion"]
    s = corpus_nlg_scores(gen, ref, tokenizer="simple", meteor=False)
    # pooled: unigrams (4+3)/8, bigrams (3+1)/6 -> sqrt(7/8 * 4/6) = 0.7638 (sentence mean would be 0.75)
    assert s["BLEU-2"] == pytest.approx(math.sqrt(7 / 8 * 4 / 6), abs=1e-6)


def test_bleu_brevity_penalty() -> None:
    s = corpus_nlg_scores(["the heart is normal"], ["the heart is normal in size"], tokenizer="simple", meteor=False)
    bp = math.exp(1 - 6 / 4)
    for n in (1, 2, 3, 4):
        assert s[f"BLEU-{n}"] == pytest.approx(bp, abs=1e-5)


def test_simple_tokenizer() -> None:
    assert simple_tokenize("Heart size is NORMAL. No effusion, x-ray 2.") == "heart size is normal no effusion x-ray 2"


def test_clinical_efficacy_hand_counts() -> None:
    gen = [{"Cardiomegaly": 1}, {"Cardiomegaly": 1, "Edema": 1}, {"No Finding": 1}, {"Pleural Effusion": -1}]
    ref = [{"Cardiomegaly": 1}, {"Cardiomegaly": 0}, {"Edema": 1}, {"Pleural Effusion": 1}]
    c = clinical_efficacy_from_labels(gen, ref)
    card = c["per_finding"]["Cardiomegaly"]
    assert (card["precision"], card["recall"], card["support"]) == (0.5, 1.0, 1)
    assert card["f1"] == pytest.approx(2 / 3)
    assert c["per_finding"]["Edema"]["f1"] == 0.0  # predicted in the wrong study, missed in the right one
    assert c["per_finding"]["Pleural Effusion"]["recall"] == 0.0  # uncertain is not present
    # micro: TP = 1 (card) ; FP = card 1 + edema 1 + No Finding 1 ; FN = edema 1 + effusion 1
    assert c["micro"]["precision"] == pytest.approx(1 / 4) and c["micro"]["recall"] == pytest.approx(1 / 3)
    # macro over findings with reference positives: Cardiomegaly, Edema, Pleural Effusion
    assert c["macro_over"] == ["Cardiomegaly", "Edema", "Pleural Effusion"]
    assert c["macro"]["f1"] == pytest.approx((2 / 3) / 3)


def test_hallucination_rate() -> None:
    refs = ["Lungs are clear. Heart size is normal.", "No acute disease.", "Mild cardiomegaly.", "Normal chest."]
    gens = ["Small right pleural effusion.", "No pneumothorax.", "Normal heart.", "Possible pneumonia."]
    c = clinical_efficacy(gens, refs)
    # 3 reference-normal studies; only the first generated report asserts a pathology (uncertain is not asserting)
    assert c["reference_normal_studies"] == 3
    assert c["hallucination_rate"] == pytest.approx(1 / 3)


def test_vqa_scores() -> None:
    assert token_f1("left lower lobe", "the left lobe") == pytest.approx(0.8)
    assert token_f1("", "") == 1.0 and token_f1("right", "left") == 0.0
    r = vqa_scores(["Yes", "no", "left lower lobe", "right"], ["yes.", "yes", "left lobe", "right"],
                   ["closed", "closed", "open", "open"])
    assert r["closed_accuracy"] == 0.5 and r["open_token_f1"] == pytest.approx(0.9)
    with pytest.raises(ValueError):
        vqa_scores(["a"], ["b"], ["weird"])


def test_evaluate_reports_errors() -> None:
    with pytest.raises(ValueError):
        evaluate_reports(["a"], ["a", "b"], nlg=False)
    with pytest.raises(ValueError):
        evaluate_reports([], [], nlg=False)


@pytest.mark.skipif(not java_available(), reason="java is needed for PTB and METEOR")
def test_java_tools_offline() -> None:
    """The one test that starts Java: PTB tokenizer and METEOR 1.5, in a private temp folder."""
    # Same output as pycocoevalcap's PTBTokenizer (which lower-cases brackets to -lrb-/-rrb- and keeps them).
    assert ptb_tokenize(["Heart size is normal.", "No effusion, (small) pneumothorax."]) == [
        "heart size is normal", "no effusion -lrb- small -rrb- pneumothorax"]
    s = corpus_nlg_scores(
        ["the heart size is normal and the lungs are clear", "mild cardiomegaly"],
        ["the heart size is normal and the lungs are clear", "large left pleural effusion with atelectasis"],
    )
    # one identical pair and one unrelated pair: METEOR lands well inside (0, 1)
    assert s["tokenizer"] == "ptb" and 0.3 < s["METEOR"] < 0.9
