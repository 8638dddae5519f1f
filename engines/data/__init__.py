"""Datasets for the engine: samples (image + ids + split + labels + boxes + report), readers and pairing."""

from engines.data.cxr import default_cxr_root, load_cxr
from engines.data.dataset import Dataset, EmptyDatasetError, Problem, SplitLeakError
from engines.data.iu import IUReport, load_iu_reports
from engines.data.paired import SentenceBank, compose_report, pair_reports
from engines.data.sample import Box, ImageDecodeError, Sample

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
