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
    normalise: str = "equalise"  # per-image intensity normalisation: "equalise" (histogram) or "zscore"
    # Per-finding Platt scaling (p = sigmoid(a * logit + b)) fitted on out-of-fold training predictions, never on
    # val: balanced sampling and positive weighting shift the raw logits, which a temperature alone cannot undo.
    calibration: dict[str, tuple[float, float]] = field(default_factory=dict)
    prevalence: dict[str, float] = field(default_factory=dict)  # training prevalence per finding
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
        if self.normalise not in ("equalise", "zscore"):
            raise ValueError(f"unknown reader normalisation {self.normalise!r}; use equalise or zscore")
        object.__setattr__(self, "calibration", {k: (float(v[0]), float(v[1])) for k, v in self.calibration.items()})
        bad = [k for k, (a, _) in self.calibration.items() if not a > 0]
        if bad:
            raise ValueError(f"reader calibration slopes must be > 0 (bad: {bad})")

    def to_dict(self) -> dict:
        return asdict(self) | {"findings": list(self.findings), "widths": list(self.widths),
                               "calibration": {k: list(v) for k, v in self.calibration.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> ReaderConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown reader config keys: {sorted(unknown)}")
        return cls(**d)
