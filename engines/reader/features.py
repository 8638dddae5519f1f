"""The reader's hand-engineered image features and the linear model over them.

On 2.3k training images a heavily regularised linear model over HOG (gradient orientation histograms: edges of the
heart, diaphragm, vessels, rib crossings) and coarse intensities reads findings within the NIH images as well as the
CNN does, and the two err differently, so the reader averages both (cross-validated on the training folds; see the
reader's training.json). The model is stored as one effective weight vector per finding over the raw features
(standardisation and PCA folded in), so a finding's logit splits exactly into per-feature terms - and, since every
feature sits at a place in the image, into a map.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class FeatureSpec:
    hog: tuple[tuple[int, int], ...] = ((128, 16),)  # (image side, HOG cell side) per HOG scale
    pixels: tuple[int, ...] = (32,)  # sides of box-downsampled intensity thumbnails
    orientations: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "hog", tuple(tuple(int(v) for v in h) for h in self.hog))
        object.__setattr__(self, "pixels", tuple(int(p) for p in self.pixels))
        for side, cell in self.hog:
            if side % cell or side // cell < 2:
                raise ValueError(f"HOG scale ({side}, {cell}): the side must be a multiple of the cell, >= 2 cells")

    def to_dict(self) -> dict:
        return {"hog": [list(h) for h in self.hog], "pixels": list(self.pixels), "orientations": self.orientations}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def image_features(u8: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """float32 feature vector of a square uint8 image (the reader's framing of it)."""
    from skimage.feature import hog

    im = Image.fromarray(u8)
    out = []
    for side, cell in spec.hog:
        a = np.asarray(im.resize((side, side), Image.BILINEAR), np.float32) / 255.0
        out.append(hog(a, orientations=spec.orientations, pixels_per_cell=(cell, cell), cells_per_block=(2, 2),
                       feature_vector=True))
    for side in spec.pixels:
        out.append(np.asarray(im.resize((side, side), Image.BOX), np.float32).ravel() / 255.0)
    return np.concatenate(out).astype(np.float32)


def feature_positions(spec: FeatureSpec) -> np.ndarray:
    """(F, 2) centre (x, y) in [0, 1] of the image region each feature describes, in image_features' order."""
    pos = []
    for side, cell in spec.hog:
        n = side // cell - 1  # blocks per side (2 x 2 cells, stride one cell)
        per_block = 4 * spec.orientations
        for by in range(n):
            for bx in range(n):
                c = ((bx + 1) * cell / side, (by + 1) * cell / side)
                pos += [c] * per_block
    for side in spec.pixels:
        for y in range(side):
            for x in range(side):
                pos.append(((x + 0.5) / side, (y + 0.5) / side))
    return np.asarray(pos, np.float32)


@dataclass
class LinearReadout:
    """logit_k = features . weight[k] + bias[k]; `mean` is the training mean of the features (the reference a
    feature's contribution is measured from)."""

    weight: np.ndarray  # (K, F)
    bias: np.ndarray  # (K,)
    mean: np.ndarray  # (F,)

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, np.float32)
        self.bias = np.asarray(self.bias, np.float32)
        self.mean = np.asarray(self.mean, np.float32)
        if self.weight.ndim != 2 or self.bias.shape != (self.weight.shape[0],) or \
                self.mean.shape != (self.weight.shape[1],):
            raise ValueError(f"linear readout arrays do not fit: weight {self.weight.shape}, bias {self.bias.shape}, "
                             f"mean {self.mean.shape}")

    def logits(self, feats: np.ndarray) -> np.ndarray:
        return np.asarray(feats, np.float32) @ self.weight.T + self.bias

    def contributions(self, feats: np.ndarray, k: int) -> np.ndarray:
        """(F,) each feature's share of finding k's logit, relative to the training mean image."""
        return (np.asarray(feats, np.float32) - self.mean) * self.weight[k]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias, "mean": self.mean}


def contribution_map(contrib: np.ndarray, positions: np.ndarray, grid: int = 16) -> np.ndarray:
    """(grid, grid): per-feature contributions summed into the cell of the image they describe."""
    ix = np.clip((positions[:, 0] * grid).astype(int), 0, grid - 1)
    iy = np.clip((positions[:, 1] * grid).astype(int), 0, grid - 1)
    out = np.zeros((grid, grid), np.float64)
    np.add.at(out, (iy, ix), contrib)
    return out.astype(np.float32)


def spec_dict(spec: FeatureSpec) -> dict:
    return asdict(spec)
