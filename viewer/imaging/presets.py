"""Window presets that fit the modality: HU presets for CT, histogram-based ones for everything else.

The HU presets (lung, bone, brain...) mean nothing on a radiograph or an MR, whose values have no fixed
scale: pressing 2 on a chest radiograph used to give a white image. Keys 2-9 now pick from the table for
the image's modality; a key with no preset says so instead of changing the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.imaging.window import PRESET_KEYS, PRESETS, WindowLevel

HU_MODALITIES = ("CT",)


@dataclass(frozen=True)
class PercentilePreset:
    """A window spanning two percentiles of the frame's values (modality units)."""

    name: str
    low: float
    high: float

    def window(self, values: np.ndarray) -> WindowLevel:
        step = max(1, int(np.sqrt(values.size / 250_000)))
        sample = values[::step, ::step] if values.ndim == 2 else values.ravel()[::step]
        finite = sample[np.isfinite(sample)]
        if finite.size == 0:
            return WindowLevel(0.5, 1.0, self.name)
        lo, hi = np.percentile(finite, [self.low, self.high])
        width = max(float(hi - lo), 1.0)
        return WindowLevel(float(lo + hi) / 2.0, width, self.name)


# Radiographs, MR, US, NM...: contrast presets from the image's own histogram.
RELATIVE_PRESETS: dict[int, PercentilePreset] = {
    2: PercentilePreset("full range", 0.0, 100.0),
    3: PercentilePreset("soft contrast", 1.0, 99.0),
    4: PercentilePreset("high contrast", 10.0, 90.0),
    5: PercentilePreset("very high contrast", 25.0, 75.0),
}


def preset_table(modality: str) -> dict[int, str]:
    """Key -> preset name for this modality (key 1, the header window, is always there)."""
    if modality.upper() in HU_MODALITIES:
        return dict(PRESET_KEYS)
    return {k: p.name for k, p in RELATIVE_PRESETS.items()}


def preset_window(modality: str, key: int, values_of_frame) -> WindowLevel | None:
    """The window for `key` on an image of `modality` (None: no preset on that key). `values_of_frame()`
    returns the frame in modality units; it is only called for histogram presets."""
    if modality.upper() in HU_MODALITIES:
        name = PRESET_KEYS.get(key)
        return PRESETS[name] if name else None
    preset = RELATIVE_PRESETS.get(key)
    return preset.window(np.asarray(values_of_frame(), dtype=np.float32)) if preset else None
