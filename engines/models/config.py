"""Backbone configuration: sizes of the joint [text | image] sequence and of the transformer."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MedimConfig:
    """One model over text tokens (ids < text_vocab_size) and image codes (ids < image_vocab_size).

    `text_mask_id`/`text_pad_id` index the text vocabulary; the image [MASK] is the extra id
    `image_vocab_size` of the image segment.
    """

    text_vocab_size: int
    image_vocab_size: int
    text_mask_id: int = 1
    text_pad_id: int = 0
    text_len: int = 128
    image_grid: int = 16
    d_model: int = 256
    n_layers: int = 5
    n_heads: int = 4
    mlp_ratio: float = 4.0
    time_dim: int = 128
    name: str = "custom"
    # Auxiliary finding head (empty: none). Mean-pooled image-token states after block `finding_layer` predict
    # these findings during training, a direct image->finding signal the diffusion objective lacks (the token
    # probe reads val AUROC 0.72 from the same tokens; the engine's answers ranked findings at 0.40-0.62).
    # Placed mid-network so the later blocks can carry what it learns to the text positions.
    findings: tuple[str, ...] = ()
    finding_layer: int = 2
    # Finding-conditioned generation (PromptMRG's diagnosis-driven prompts, DiT's class-conditional AdaLN): a
    # present/absent vector over `findings` is added to the timestep conditioning of every block, so drafting can
    # be told what the finding head read and synthesis what the report says. Unknown findings add nothing.
    finding_condition: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", tuple(self.findings))  # JSON gives a list
        if self.findings and not 1 <= self.finding_layer <= self.n_layers:
            raise ValueError(f"finding_layer must be in 1..{self.n_layers}, got {self.finding_layer}")
        if self.finding_condition and not self.findings:
            raise ValueError("finding_condition needs a list of findings")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        for k in ("text_vocab_size", "image_vocab_size", "text_len", "image_grid", "n_layers"):
            if getattr(self, k) <= 0:
                raise ValueError(f"{k} must be positive")
        if not (0 <= self.text_mask_id < self.text_vocab_size and 0 <= self.text_pad_id < self.text_vocab_size):
            raise ValueError("text_mask_id / text_pad_id must be text vocabulary ids")

    @property
    def image_len(self) -> int:
        return self.image_grid * self.image_grid

    @property
    def image_mask_id(self) -> int:
        return self.image_vocab_size

    @property
    def seq_len(self) -> int:
        return self.text_len + self.image_len

    def to_dict(self) -> dict:
        """JSON-ready: `findings` as a list, as config.json holds it."""
        return asdict(self) | {"findings": list(self.findings)}

    @classmethod
    def from_dict(cls, d: dict) -> MedimConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)


# Named sizes: `small` trains on 2 CPU cores in about an hour; `base` is meant for a GPU.
PRESETS: dict[str, dict] = {
    "tiny": dict(text_len=16, image_grid=4, d_model=32, n_layers=2, n_heads=2, time_dim=16),
    "small": dict(text_len=128, image_grid=16, d_model=160, n_layers=4, n_heads=4, time_dim=128),
    "base": dict(text_len=256, image_grid=32, d_model=768, n_layers=12, n_heads=12, time_dim=256),
}


def preset(name: str, **vocab: int) -> MedimConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model size {name!r}; choose one of {sorted(PRESETS)}")
    return MedimConfig(name=name, **PRESETS[name], **vocab)
