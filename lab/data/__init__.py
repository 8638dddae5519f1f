"""Datasets for training and evaluation: readers of each layout, splits, and composed reports for images
without one (samples are engines.data.Sample)."""

from engines.data.sample import Box, ImageDecodeError, Sample
from lab.data.cxr import default_cxr_root, load_cxr
from lab.data.dataset import Dataset, EmptyDatasetError, Problem, SplitLeakError
from lab.data.iu import IUReport, load_iu_reports
from lab.data.paired import SentenceBank, compose_report, pair_reports

__all__ = [
    "Box",
    "Dataset",
    "EmptyDatasetError",
    "IUReport",
    "ImageDecodeError",
    "Problem",
    "Sample",
    "SentenceBank",
    "SplitLeakError",
    "compose_report",
    "default_cxr_root",
    "load_cxr",
    "load_iu_reports",
    "pair_reports",
]
