"""The what-if image the radiologist sees: the acquired image plus the change the model made.

The model works on 16 x 16 VQ tokens and its decoder gives back a blurred image (val SSIM 0.72 against
the original), so a decoded counterfactual shown as it is looks unlike the acquired image everywhere, not
only where the report changed. Instead the model's change (its decoded resample minus its decoding of the
original's own tokens) is added to the original, with weight 1 on the resampled region falling to 0
over a feather outside it, where the decoder spreads a changed token into its neighbours. Beyond the
feather the what-if is the acquired image pixel for pixel; inside, the acquired texture (ribs, vessels,
noise) stays under the change, and the difference from the original is exactly the (feathered) change.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def edit_weight(region: np.ndarray, feather: float) -> np.ndarray:
    """float32 map in [0, 1]: 1 on the pixel region, a raised cosine down to 0 at `feather` pixels
    outside it (a hard edge when feather is 0)."""
    r = np.asarray(region, bool)
    if r.ndim != 2 or not r.any():
        raise ValueError("the region must be a non-empty 2D pixel mask")
    if feather < 0:
        raise ValueError(f"feather must be >= 0 pixels, got {feather}")
    if feather == 0:
        return r.astype(np.float32)
    distance = ndimage.distance_transform_edt(~r)
    ramp = 0.5 * (1.0 + np.cos(np.pi * np.clip(distance / feather, 0.0, 1.0)))
    return np.where(r, 1.0, ramp).astype(np.float32)


def transfer_edit(original: np.ndarray, reconstruction: np.ndarray, decoded: np.ndarray,
                  weight: np.ndarray) -> np.ndarray:
    """uint8 original + weight * (decoded - reconstruction), clipped to 0..255."""
    o, r, d, w = (np.asarray(x, np.float32) for x in (original, reconstruction, decoded, weight))
    if not o.shape == r.shape == d.shape == w.shape or o.ndim != 2:
        raise ValueError(f"original {o.shape}, reconstruction {r.shape}, decoded {d.shape} and weight {w.shape} "
                         "must be equal 2D shapes")
    return np.clip(o + w * (d - r), 0, 255).round().astype(np.uint8)
