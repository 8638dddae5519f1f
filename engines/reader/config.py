"""Configuration of a finding reader folder (config.json): what it reads, at what size, and how calibrated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ReaderConfig:
    findings: tuple[str, ...]
    size: int = 128  # side of the lung-field crop the network sees
    widths: tuple[int, ...] = (32, 64, 128)
    blocks: int = 1
    dropout: float = 0.2
    crop: str = "lung"  # "lung" (the lung-box model's box), "trim" (padding bars removed) or "none"
    crop_margin: float = 0.06  # of the box side, added around the lung box
    normalise: str = "none"  # per-image intensity normalisation of the CNN crop: "equalise" (histogram), "zscore", "none"
    # Per-finding Platt scaling (p = sigmoid(a * logit + b)) fitted on out-of-fold training predictions, never on
    # val: balanced sampling and positive weighting shift the raw logits, which a temperature alone cannot undo.
    calibration: dict[str, tuple[float, float]] = field(default_factory=dict)
    prevalence: dict[str, float] = field(default_factory=dict)  # training prevalence per finding
    # The linear readout over hand-engineered features (engines.reader.features), when the reader has one: its
    # FeatureSpec as a dict, and the normalisation of the crop it reads ("none": HOG and intensities read the
    # acquired contrast, which equalisation was measured to wash out).
    features: dict | None = None
    feature_normalise: str = "none"
    # How the components' scores combine: each is standardised per finding by its out-of-fold (mean, std) and the
    # weighted mean is Platt-calibrated (`calibration` above). Components: "cnn" (the networks), "linear".
    combine: dict[str, float] = field(default_factory=lambda: {"cnn": 1.0})
    component_norm: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    name: str = "reader"

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", tuple(self.findings))
        object.__setattr__(self, "widths", tuple(self.widths))
        if not self.findings:
            raise ValueError("a reader needs at least one finding")
        if self.size < 32 or self.size % 16:
            raise ValueError(f"reader size must be a multiple of 16 and >= 32, got {self.size}")
        if self.crop not in ("lung", "trim", "none"):
            raise ValueError(f"unknown reader crop {self.crop!r}; use lung, trim or none")
        if self.normalise not in ("equalise", "zscore", "none"):
            raise ValueError(f"unknown reader normalisation {self.normalise!r}; use equalise, zscore or none")
        object.__setattr__(self, "calibration", {k: (float(v[0]), float(v[1])) for k, v in self.calibration.items()})
        object.__setattr__(self, "component_norm", {c: {k: (float(v[0]), float(v[1])) for k, v in d.items()}
                                                    for c, d in self.component_norm.items()})
        unknown = set(self.combine) - {"cnn", "linear"}
        if unknown or not self.combine or any(w <= 0 for w in self.combine.values()):
            raise ValueError(f"reader combine must weigh 'cnn' and/or 'linear' with positive weights, got {self.combine}")
        if "linear" in self.combine and not self.features:
            raise ValueError("a reader that combines a linear component needs its feature spec (features)")
        if self.feature_normalise not in ("equalise", "zscore", "none"):
            raise ValueError(f"unknown feature normalisation {self.feature_normalise!r}")
        bad = [k for k, (a, _) in self.calibration.items() if not a > 0]
        if bad:
            raise ValueError(f"reader calibration slopes must be > 0 (bad: {bad})")

    def to_dict(self) -> dict:
        return asdict(self) | {"findings": list(self.findings), "widths": list(self.widths),
                               "calibration": {k: list(v) for k, v in self.calibration.items()},
                               "component_norm": {c: {k: list(v) for k, v in d.items()}
                                                  for c, d in self.component_norm.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> ReaderConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown reader config keys: {sorted(unknown)}")
        return cls(**d)
