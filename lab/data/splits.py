"""Deterministic patient-level splits for layouts that bring none (same rule as the curated set)."""

from __future__ import annotations

import hashlib

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validate": "val",
                  "validation": "val", "dev": "val", "test": "test", "testing": "test"}


def normalise_split(name: str) -> str:
    """"validate"/"validation"/"dev" -> "val" etc.; ValueError on anything else."""
    key = str(name).strip().lower()
    if key not in _SPLIT_ALIASES:
        raise ValueError(f"unknown split name {name!r}")
    return _SPLIT_ALIASES[key]


def patient_split(patient_key: str, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> str:
    """train/val/test from sha1(patient_key) % 100, so one patient always lands in one split."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    bucket = int(hashlib.sha1(patient_key.encode("utf-8")).hexdigest(), 16) % 100
    train_end = round(fractions[0] * 100)
    val_end = train_end + round(fractions[1] * 100)
    return "train" if bucket < train_end else "val" if bucket < val_end else "test"
