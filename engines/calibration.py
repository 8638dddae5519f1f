"""Per-finding probability calibration, applied at runtime (numpy only): a raw probability in, the
calibrated probability out, plus the band in which an answer is "uncertain" rather than yes or no.

Shipped next to the weights as `calibration.json`:

    {"format": "radstation-calibration", "method": "platt" | "temperature" | "isotonic" | "mixed",
     "findings": {"Cardiomegaly": {"method": "platt", "a": 0.8, "b": -0.4} | {"method": "temperature", "t": 1.6}
                  | {"method": "isotonic", "x": [...], "y": [...]} | {"method": "identity"}, ...},
     "uncertain_band": [0.35, 0.65], "no_odds_ratio": 2.0, "no_odds_ratios": {"Cardiomegaly": 0.5, ...},
     "prevalence": {"Cardiomegaly": 0.025, ...},
     "fitted_on": {...}, "selection": {...}}

`prevalence` is each finding's share positive in the labels the calibration was fitted on: the "no" rule and
the panels compare a calibrated probability with it, on the same scale (the reader's own training prevalence
counts only the images whose source labels the finding; calibrated probabilities count the others as absent).

`no_odds_ratios` are per-finding "no" rules chosen against a stated miss rate (`radstation-eval no-rule`,
lab.eval.no_rule: the share of positive train images answered a plain "no" stays under it); a finding without one
uses `no_odds_ratio`.

Fitted by `radstation-eval calibration` (lab.eval.calibration): per finding, the method and its parameters are
chosen by grouped cross-validation on out-of-fold train probabilities ("identity" where the reading is calibrated
already). Findings it does not list pass through unchanged, and the answer says the probability is uncalibrated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "radstation-calibration"
FILE_NAME = "calibration.json"
METHODS = ("identity", "platt", "temperature", "isotonic")
DEFAULT_BAND = (0.35, 0.65)
DEFAULT_NO_ODDS_RATIO = 2.0  # "no" needs the image to have raised the finding's odds less than this over prevalence


def _odds(p: float) -> float:
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return p / (1 - p)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


@dataclass
class FindingCalibration:
    """One finding's map from raw to calibrated probability."""

    method: str
    params: dict[str, Any]

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration method {self.method!r}; use one of {METHODS}")
        need = {"identity": (), "platt": ("a", "b"), "temperature": ("t",), "isotonic": ("x", "y")}[self.method]
        missing = [k for k in need if k not in self.params]
        if missing:
            raise ValueError(f"{self.method} calibration needs {', '.join(missing)}")
        if self.method == "temperature" and float(self.params["t"]) <= 0:
            raise ValueError("temperature must be > 0")
        if self.method == "isotonic" and len(self.params["x"]) != len(self.params["y"]):
            raise ValueError("isotonic calibration needs as many y as x knots")

    def __call__(self, p: np.ndarray | float) -> np.ndarray:
        p = np.asarray(p, np.float64)
        if self.method == "identity":  # chosen when no refit beat the reading as it is
            return p
        if self.method == "platt":
            return _sigmoid(float(self.params["a"]) * _logit(p) + float(self.params["b"]))
        if self.method == "temperature":
            return _sigmoid(_logit(p) / float(self.params["t"]))
        return np.interp(p, np.asarray(self.params["x"], np.float64), np.asarray(self.params["y"], np.float64))


@dataclass
class Calibration:
    """All findings' calibrations and the uncertain band; `Calibration.identity()` when none is shipped."""

    findings: dict[str, FindingCalibration] = field(default_factory=dict)
    band: tuple[float, float] = DEFAULT_BAND
    info: dict[str, Any] = field(default_factory=dict)
    no_odds_ratio: float = DEFAULT_NO_ODDS_RATIO
    prevalence: dict[str, float] = field(default_factory=dict)
    no_odds_ratios: dict[str, float] = field(default_factory=dict)  # per finding; others use no_odds_ratio

    def __post_init__(self) -> None:
        lo, hi = float(self.band[0]), float(self.band[1])
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"uncertain band must satisfy 0 <= low <= high <= 1, got {self.band}")
        self.band = (lo, hi)
        if float(self.no_odds_ratio) < 1:
            raise ValueError(f"no_odds_ratio must be >= 1, got {self.no_odds_ratio}")
        bad_ratio = [k for k, v in self.no_odds_ratios.items() if not float(v) > 0]
        if bad_ratio:
            raise ValueError(f"per-finding no_odds_ratios must be > 0 (bad: {bad_ratio})")
        self.no_odds_ratios = {k: float(v) for k, v in self.no_odds_ratios.items()}
        bad = [k for k, v in self.prevalence.items() if not 0 < float(v) < 1]
        if bad:
            raise ValueError(f"prevalence must be between 0 and 1 (bad: {bad})")
        self.prevalence = {k: float(v) for k, v in self.prevalence.items()}

    @classmethod
    def identity(cls) -> Calibration:
        return cls()

    def is_calibrated(self, finding: str) -> bool:
        return finding in self.findings

    def prior(self, finding: str, fallback: float | None = None) -> float | None:
        """The finding's prevalence on the scale of the calibrated probability (`fallback`, e.g. the reader's
        training prevalence, when the file has none)."""
        return self.prevalence.get(finding, fallback)

    def apply(self, probs: Mapping[str, float]) -> dict[str, float]:
        """Calibrated probabilities of a finding -> raw probability dict (unknown findings unchanged)."""
        return {k: float(self.findings[k](v)) if k in self.findings else float(v) for k, v in probs.items()}

    def no_ratio(self, finding: str | None) -> float:
        """The "no" rule's odds ratio for `finding` (its own when chosen against a miss rate, else the global one)."""
        return self.no_odds_ratios.get(finding, self.no_odds_ratio) if finding is not None else self.no_odds_ratio

    def answer(self, p: float, prevalence: float | None = None, finding: str | None = None) -> str:
        """'yes', 'no' or 'uncertain' for a calibrated probability. With the finding's `prevalence`, a low
        probability is still 'uncertain' unless the image left the finding's odds below `no_ratio(finding)` times
        its prevalence: for a rare finding "no (15%)" would hide that the engine saw something. A ratio below 1
        (chosen per finding so that few positives are answered "no") needs the image to have lowered the odds."""
        lo, hi = self.band
        if p >= hi:
            return "yes"
        if p <= lo and (prevalence is None or _odds(p) < self.no_ratio(finding) * _odds(prevalence)):
            return "no"
        return "uncertain"

    # -- files -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        methods = {c.method for c in self.findings.values()}
        return {"format": FORMAT, "method": methods.pop() if len(methods) == 1 else "mixed",
                "findings": {k: {"method": c.method, **c.params} for k, c in self.findings.items()},
                "uncertain_band": list(self.band), "no_odds_ratio": float(self.no_odds_ratio),
                **({"prevalence": dict(self.prevalence)} if self.prevalence else {}),
                **({"no_odds_ratios": dict(self.no_odds_ratios)} if self.no_odds_ratios else {}), **self.info}

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / FILE_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        default = str(data.get("method", ""))
        findings = {}
        for name, spec in dict(data.get("findings") or {}).items():
            spec = dict(spec)
            method = str(spec.pop("method", default))
            findings[name] = FindingCalibration(method, spec)
        band = tuple(data.get("uncertain_band") or DEFAULT_BAND)
        info = {k: v for k, v in data.items()
                if k not in ("format", "method", "findings", "uncertain_band", "no_odds_ratio", "prevalence",
                             "no_odds_ratios")}
        return cls(findings, (float(band[0]), float(band[1])), info,
                   float(data.get("no_odds_ratio", DEFAULT_NO_ODDS_RATIO)), dict(data.get("prevalence") or {}),
                   dict(data.get("no_odds_ratios") or {}))

    @classmethod
    def load(cls, folder: str | Path | None) -> Calibration:
        """The calibration shipped in `folder`, identity when there is none; a broken file is a ValueError."""
        if folder is None:
            return cls.identity()
        path = Path(folder) / FILE_NAME
        if not path.is_file():
            return cls.identity()
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"cannot read the calibration {path}: {exc}") from exc


def entropy(p: float) -> float:
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return float(-(p * math.log(p) + (1 - p) * math.log(1 - p)))
