"""The finding reader's networks: a compact residual CNN over the lung field, and the lung-field box regressor.

Trained from scratch on 2.3k images on CPU, so small: three residual stages (ResNet basic blocks, as
torchvision's resnet18 but narrower and one block per stage) on a 128-pixel lung-field crop. The last stage keeps
an 8 x 8 map at 128 pixels so Grad-CAM has something to point with. A reader apart from the diffusion backbone reads pixels
rather than 16 x 16 VQ codes of a blurred tokenizer, which is where the backbone's head lost localised evidence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engines.reader.config import ReaderConfig


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a (projected) shortcut, as torchvision's BasicBlock."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.short is None else self.short(x)))


class ResidualEncoder(nn.Module):
    """1-channel image (B, 1, S, S) -> feature map (B, widths[-1], S / 2**(1 + len(widths)), ...): the stem and
    every stage halve the side, so no stage runs at full resolution (CPU training time)."""

    def __init__(self, widths: tuple[int, ...], blocks: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 5, 2, 2, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers: list[nn.Module] = []
        cin = widths[0]
        for w in widths:
            for b in range(blocks):
                layers.append(BasicBlock(cin, w, 2 if b == 0 else 1))
                cin = w
        self.stages = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class ReaderNet(nn.Module):
    """Multi-label finding logits from a normalised lung-field crop; `features` is the pooled embedding the
    scope gate and similar-case search use; `feature_map` is what Grad-CAM weights."""

    def __init__(self, cfg: ReaderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = ResidualEncoder(tuple(cfg.widths), cfg.blocks)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(self.encoder.out_channels, len(cfg.findings))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return fmap.mean((2, 3))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


class LungBoxNet(nn.Module):
    """Normalised (x0, y0, x1, y1) in [0, 1] of the box around both lung fields, from a 96-pixel thumbnail."""

    def __init__(self, widths: tuple[int, ...] = (12, 24, 48, 64)) -> None:
        super().__init__()
        self.encoder = ResidualEncoder(widths)
        self.head = nn.Linear(self.encoder.out_channels, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.encoder(x).mean((2, 3))))
