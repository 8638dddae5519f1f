"""The input gate's statistics, shipped next to the weights (`scope.json` + `scope.npz`), and the two
image scores computed from them.

- Out-of-distribution score: squared Mahalanobis distance of an image's embedding to the training set's
  frontal chest radiographs (shrunk covariance), divided by the dimension, so in-distribution images score
  about 1. The threshold is a high percentile of held-out (out-of-fold) training scores.
- Frontal-chest check: a logistic regression on the standardised embedding that tells frontal chest
  radiographs from lateral views and rotated, inverted or cropped radiographs; its probability must reach
  the threshold fitted the same way.

Fitted by `radstation-eval scope fit` (lab.eval.scope_fit); numpy only at runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "radstation-scope"
VERSION = 1
JSON_NAME, ARRAYS_NAME = "scope.json", "scope.npz"


class ScopeStatisticsError(ValueError):
    """The statistics files are missing, unreadable or do not fit the embedding."""


@dataclass
class ScopeStatistics:
    embedding: str
    mean: np.ndarray  # (D,)
    precision: np.ndarray  # (D, D): inverse of the shrunk covariance
    frontal_mean: np.ndarray  # (D,) standardisation of the frontal check's input
    frontal_scale: np.ndarray  # (D,)
    frontal_weights: np.ndarray  # (D,)
    frontal_bias: float
    ood_threshold: float
    frontal_threshold: float
    info: dict[str, Any] = field(default_factory=dict)  # what it was fitted on, how it measured

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    # -- scores ----------------------------------------------------------------------------------------
    def _check(self, emb: np.ndarray) -> np.ndarray:
        e = np.asarray(emb, np.float64)
        if e.ndim != 2 or e.shape[1] != self.dim:
            raise ScopeStatisticsError(f"embedding has shape {e.shape}; the statistics expect (N, {self.dim})")
        return e

    def ood_score(self, emb: np.ndarray) -> np.ndarray:
        """(N,) squared Mahalanobis distance / D: about 1 for training-like images, larger further out."""
        d = self._check(emb) - self.mean
        return np.einsum("nd,de,ne->n", d, self.precision, d) / self.dim

    def frontal_probability(self, emb: np.ndarray) -> np.ndarray:
        """(N,) probability that each image is a frontal chest radiograph (the check's logistic regression)."""
        z = (self._check(emb) - self.frontal_mean) / self.frontal_scale
        return 1.0 / (1.0 + np.exp(-(z @ self.frontal_weights + self.frontal_bias)))

    # -- files -----------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> tuple[Path, Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = folder / ARRAYS_NAME
        np.savez(arrays, mean=self.mean.astype(np.float32), precision=self.precision.astype(np.float32),
                 frontal_mean=self.frontal_mean.astype(np.float32),
                 frontal_scale=self.frontal_scale.astype(np.float32),
                 frontal_weights=self.frontal_weights.astype(np.float32))
        meta = {"format": FORMAT, "version": VERSION, "embedding": self.embedding, "dim": self.dim,
                "ood_threshold": float(self.ood_threshold), "frontal_threshold": float(self.frontal_threshold),
                "frontal_bias": float(self.frontal_bias), **self.info}
        path = folder / JSON_NAME
        path.write_text(json.dumps(meta, indent=2) + "\n")
        return path, arrays

    @classmethod
    def load(cls, folder: str | Path) -> ScopeStatistics:
        folder = Path(folder)
        path, arrays = folder / JSON_NAME, folder / ARRAYS_NAME
        if not path.is_file() or not arrays.is_file():
            raise ScopeStatisticsError(f"no input-gate statistics in {folder} ({JSON_NAME}, {ARRAYS_NAME}); "
                                       "fit them with `radstation-eval scope fit`")
        try:
            meta = json.loads(path.read_text())
            with np.load(arrays, allow_pickle=False) as z:
                a = {k: np.asarray(z[k], np.float64) for k in
                     ("mean", "precision", "frontal_mean", "frontal_scale", "frontal_weights")}
        except (OSError, ValueError, KeyError) as exc:
            raise ScopeStatisticsError(f"cannot read the input-gate statistics in {folder}: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise ScopeStatisticsError(f"{path} is not a {FORMAT} file")
        d = a["mean"].shape[0]
        if a["precision"].shape != (d, d) or any(a[k].shape != (d,) for k in
                                                  ("frontal_mean", "frontal_scale", "frontal_weights")):
            raise ScopeStatisticsError(f"{arrays}: arrays do not agree on the embedding size {d}")
        known = {"format", "version", "embedding", "dim", "ood_threshold", "frontal_threshold", "frontal_bias"}
        return cls(str(meta["embedding"]), a["mean"], a["precision"], a["frontal_mean"], a["frontal_scale"],
                   a["frontal_weights"], float(meta["frontal_bias"]), float(meta["ood_threshold"]),
                   float(meta["frontal_threshold"]), {k: v for k, v in meta.items() if k not in known})
