"""Evaluation: corpus language metrics, clinical efficacy from the labeler, hallucination, VQA, baselines."""

from lab.eval.clinical import CONVENTION, clinical_efficacy, clinical_efficacy_from_labels
from lab.eval.nlg import corpus_nlg_scores, ptb_tokenize, simple_tokenize
from lab.eval.reports import evaluate_reports, markdown_table
from lab.eval.vqa import normalize_answer, token_f1, vqa_scores

__all__ = [
    "CONVENTION",
    "clinical_efficacy",
    "clinical_efficacy_from_labels",
    "corpus_nlg_scores",
    "evaluate_reports",
    "markdown_table",
    "normalize_answer",
    "ptb_tokenize",
    "simple_tokenize",
    "token_f1",
    "vqa_scores",
]
