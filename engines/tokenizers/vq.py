"""Compact VQ-VAE image tokenizer: a 256x256 radiograph <-> a grid of discrete codes.

Own module rather than diffusers' VQModel because it has to train on 2 CPU cores in minutes: a thin
stride-2 conv stack (no attention, no GAN) with an EMA codebook and dead-code restarts keeps every
code in use, which matters more for the diffusion model than sharpness.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn


@dataclass(frozen=True)
class VQConfig:
    image_size: int = 256
    channels: tuple[int, ...] = (32, 64, 96, 128)  # one stride-2 stage each -> downsample 2**len
    codebook_size: int = 512
    code_dim: int = 32
    res_blocks: int = 1
    commitment: float = 0.25
    ema_decay: float = 0.95

    @property
    def grid(self) -> int:
        return self.image_size // (2 ** len(self.channels))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VQConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown VQ config keys: {sorted(unknown)}")
        d = dict(d)
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return cls(**d)


class _Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
                                   nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


@dataclass
class VQOutput:
    recon: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    perplexity: torch.Tensor = field(default_factory=lambda: torch.tensor(0.0))


class VQVAE(nn.Module):
    """Images in [-1, 1], shape (B, 1, S, S) -> codes (B, g, g) -> images."""

    def __init__(self, config: VQConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        enc: list[nn.Module] = []
        cin = 1
        for c in ch:
            enc += [nn.Conv2d(cin, c, 4, stride=2, padding=1), nn.SiLU()]
            cin = c
        enc += [_Res(cin) for _ in range(config.res_blocks)]
        enc += [nn.GroupNorm(8, cin), nn.SiLU(), nn.Conv2d(cin, config.code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(config.code_dim, ch[-1], 3, padding=1)]
        dec += [_Res(ch[-1]) for _ in range(config.res_blocks)]
        rev = list(reversed(ch))
        for i, c in enumerate(rev):
            cout = rev[i + 1] if i + 1 < len(rev) else 16
            dec += [nn.SiLU(), nn.ConvTranspose2d(c, cout, 4, stride=2, padding=1)]
        dec += [nn.SiLU(), nn.Conv2d(16, 1, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("codebook", torch.randn(config.codebook_size, config.code_dim) * 0.1)
        self.register_buffer("ema_count", torch.ones(config.codebook_size))
        self.register_buffer("ema_sum", self.codebook.clone())

    # -- quantisation ---------------------------------------------------------------------------------
    def _nearest(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)[None]
        return d.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codebook[codes].permute(0, 3, 1, 2).contiguous()

    def _check_images(self, x: torch.Tensor) -> None:
        s = self.config.image_size
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(f"VQ expects images of shape (B, 1, {s}, {s}), got {tuple(x.shape)}")

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check_images(x)
        return self._nearest(self.encoder(x))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decode_codes(codes)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        g = self.config.grid
        if codes.ndim != 3 or codes.shape[1:] != (g, g):
            raise ValueError(f"VQ expects a code grid of shape (B, {g}, {g}), got {tuple(codes.shape)}")
        if int(codes.min()) < 0 or int(codes.max()) >= self.config.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.config.codebook_size})")
        return self.decoder(self.lookup(codes)).clamp(-1, 1)

    def forward(self, x: torch.Tensor) -> VQOutput:
        self._check_images(x)
        z = self.encoder(x)
        codes = self._nearest(z.detach())
        q = self.lookup(codes)
        if self.training:
            self._ema_update(z.detach(), codes)
        commit = F.mse_loss(z, q.detach())
        zq = z + (q - z).detach()
        recon = self.decoder(zq)
        counts = torch.bincount(codes.flatten(), minlength=self.config.codebook_size).float()
        p = counts / counts.sum()
        perplexity = torch.exp(-(p * (p + 1e-10).log()).sum())
        return VQOutput(recon, codes, commit * self.config.commitment, perplexity)

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        k, dim = self.config.codebook_size, self.config.code_dim
        flat = z.permute(0, 2, 3, 1).reshape(-1, dim)
        onehot = F.one_hot(codes.flatten(), k).type_as(flat)
        decay = self.config.ema_decay
        self.ema_count.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
        self.ema_sum.mul_(decay).add_(onehot.t() @ flat, alpha=1 - decay)
        n = self.ema_count.sum()
        count = (self.ema_count + 1e-5) / (n + k * 1e-5) * n
        self.codebook.copy_(self.ema_sum / count[:, None])
        # Dead codes (rarely chosen) restart at random encoder outputs so the whole codebook stays in use.
        dead = self.ema_count < 0.03
        if dead.any():
            idx = torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)
            self.codebook[dead] = flat[idx]
            self.ema_sum[dead] = flat[idx]
            self.ema_count[dead] = 1.0

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / "vq.safetensors"))
        (directory / "vq_config.json").write_text(json.dumps(self.config.to_dict(), indent=2))

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> VQVAE:
        directory = Path(directory)
        cfg_path, w_path = directory / "vq_config.json", directory / "vq.safetensors"
        if not cfg_path.exists() or not w_path.exists():
            raise FileNotFoundError(f"no VQ tokenizer in {directory} (need vq_config.json and vq.safetensors)")
        model = cls(VQConfig.from_dict(json.loads(cfg_path.read_text())))
        state = load_file(str(w_path), device=str(device))
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"VQ weights in {directory} do not match vq_config.json: {exc}") from exc
        return model.to(device).eval()
