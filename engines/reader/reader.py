"""FindingReader: the engine's per-study reading of the chest, from pixels.

A small CNN (engines.reader.network) on the lung-field crop (engines.reader.lungbox, engines.reader.preprocess),
trained apart from the diffusion backbone and against the image-source shortcut (issue 28). Its probabilities are
calibrated per finding (Platt scaling) (fitted on out-of-fold training predictions, never on val). The diffusion
pipeline is told this reading when it drafts, answers yes/no questions from it and ranks what-if variants by it.

A reader folder holds config.json (ReaderConfig), reader.safetensors (one or more ensemble members, keys
"member{i}.") and lungbox.safetensors when the config crops to the lungs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engines.reader.config import ReaderConfig
from engines.reader.lungbox import predict_lung_boxes
from engines.reader.network import LungBoxNet, ReaderNet
from engines.reader.preprocess import _as_u8, content_box, expand_box, normalise, square_crop

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "reader.safetensors"
LUNGBOX_FILE = "lungbox.safetensors"


class ReaderError(RuntimeError):
    """A reader folder that cannot be loaded: missing or mismatched files."""


def _file_hash(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def net_input(crops: np.ndarray) -> torch.Tensor:
    """(N, S, S) uint8 reader crops -> the network's (N, 1, S, S) float input (the training normalisation)."""
    return (torch.from_numpy(np.ascontiguousarray(crops)).float().div(255)[:, None] - 0.5) / 0.25


class FindingReader:
    def __init__(self, config: ReaderConfig, members: list[ReaderNet], lungbox: LungBoxNet | None,
                 path: Path | None = None, weights_hash: str = "") -> None:
        if not members:
            raise ValueError("a reader needs at least one network")
        if config.crop == "lung" and lungbox is None:
            raise ValueError("a reader that crops to the lungs needs the lung-box model")
        self.config = config
        self.members = [m.eval() for m in members]
        self.lungbox = lungbox.eval() if lungbox is not None else None
        self.path = path
        self.weights_hash = weights_hash

    @property
    def findings(self) -> tuple[str, ...]:
        return self.config.findings

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path) -> FindingReader:
        from safetensors.torch import load_file

        path = Path(path)
        cfg_file, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
        for f in (cfg_file, weights):
            if not f.is_file():
                raise ReaderError(f"reader folder {path} lacks {f.name}")
        try:
            cfg = ReaderConfig.from_dict(json.loads(cfg_file.read_text(encoding="utf-8")))
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            raise ReaderError(f"{cfg_file}: {exc}") from exc
        state = load_file(str(weights))
        n = 1 + max((int(k.split(".", 1)[0][len("member"):]) for k in state), default=-1)
        members = []
        for i in range(n):
            net = ReaderNet(cfg)
            sub = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f"member{i}.")}
            try:
                net.load_state_dict(sub)
            except RuntimeError as exc:
                raise ReaderError(f"{weights}: member {i} does not match config.json ({exc})") from exc
            members.append(net)
        files = [cfg_file, weights]
        lungbox = None
        if cfg.crop == "lung":
            lb_file = path / LUNGBOX_FILE
            if not lb_file.is_file():
                raise ReaderError(f"reader folder {path} lacks {LUNGBOX_FILE} (config crops to the lungs)")
            lungbox = LungBoxNet()
            lungbox.load_state_dict(load_file(str(lb_file)))
            files.append(lb_file)
        return cls(cfg, members, lungbox, path, _file_hash(files))

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        state = {f"member{i}.{k}": v.contiguous() for i, m in enumerate(self.members) for k, v in m.state_dict().items()}
        save_file(state, str(path / WEIGHTS_FILE))
        if self.lungbox is not None:
            save_file({k: v.contiguous() for k, v in self.lungbox.state_dict().items()}, str(path / LUNGBOX_FILE))

    # -- what the network sees -----------------------------------------------------------------------
    def crop_boxes(self, images: Sequence[np.ndarray]) -> list[tuple[float, float, float, float]]:
        """The region of each image the reader reads (x0, y0, x1, y1 in the image's pixels)."""
        u8s = [_as_u8(im) for im in images]
        cfg = self.config
        if cfg.crop == "none":
            return [(0.0, 0.0, float(u.shape[1]), float(u.shape[0])) for u in u8s]
        if cfg.crop == "trim":
            return [tuple(map(float, content_box(u))) for u in u8s]
        boxes = predict_lung_boxes(self.lungbox, u8s)
        return [expand_box(tuple(map(float, b)), cfg.crop_margin, u.shape[1], u.shape[0])
                for b, u in zip(boxes, u8s, strict=True)]

    def prepare(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
        """(crops (N, S, S) uint8, crop boxes): the network's inputs and where they came from."""
        if not len(images):
            raise ValueError("no images to read")
        boxes = self.crop_boxes(images)
        crops = np.stack([normalise(square_crop(_as_u8(im), b, self.config.size), self.config.normalise)
                          for im, b in zip(images, boxes, strict=True)])
        return crops, boxes

    # -- reading --------------------------------------------------------------------------------------
    @torch.no_grad()
    def logits_of_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean member logits (N, K), mean pooled features (N, D)) of prepared crops, uncalibrated."""
        x = net_input(crops)
        logits, feats = [], []
        for m in self.members:
            f = m.features(x)
            feats.append(f)
            logits.append(m.head(f))
        return torch.stack(logits).mean(0).numpy(), torch.stack(feats).mean(0).numpy()

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities (N, K): each finding's logit through its fitted Platt scaling (identity when unfitted)."""
        ab = np.array([self.config.calibration.get(f, (1.0, 0.0)) for f in self.findings], np.float64)
        return 1.0 / (1.0 + np.exp(-(np.asarray(logits, np.float64) * ab[:, 0] + ab[:, 1])))

    def probabilities(self, images: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """Per image, {finding: calibrated probability}."""
        crops, _ = self.prepare(images)
        logits, _ = self.logits_of_crops(crops)
        return [dict(zip(self.findings, map(float, row), strict=True)) for row in self.calibrated(logits)]

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32 pooled features: the representation the scope gate and similar-case search use."""
        crops, _ = self.prepare(images)
        return self.logits_of_crops(crops)[1].astype(np.float32)

    def cam(self, image: np.ndarray, finding: str) -> np.ndarray:
        """Grad-CAM of `finding` (Selvaraju et al.), averaged over members, in the image's own pixel grid: >= 0,
        zero outside the region the reader reads."""
        if finding not in self.findings:
            raise ValueError(f"the reader does not read {finding!r}; it reads {list(self.findings)}")
        j = self.findings.index(finding)
        crops, boxes = self.prepare([image])
        x = net_input(crops)
        maps = []
        for m in self.members:
            fmap = m.feature_map(x).detach().requires_grad_(True)
            logit = m.head(m.pool(fmap))[0, j]
            (grad,) = torch.autograd.grad(logit, fmap)
            w = grad.mean((2, 3), keepdim=True)
            maps.append(F.relu((w * fmap).sum(1))[0].detach())
        cam = torch.stack(maps).mean(0).numpy().astype(np.float32)
        return _paste(cam, boxes[0], _as_u8(image).shape)


def _paste(cam: np.ndarray, box: tuple[float, float, float, float], shape: tuple[int, int]) -> np.ndarray:
    """A map over the square crop around `box` resampled onto the full image grid (zero outside it)."""
    from PIL import Image

    h, w = shape
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 8.0)
    left, top = (x0 + x1) / 2 - side / 2, (y0 + y1) / 2 - side / 2
    # output pixel (u, v) reads the crop at ((u - left) / side * g, (v - top) / side * g)
    g = cam.shape[0]
    a = g / side
    im = Image.fromarray(cam.astype(np.float32), mode="F")
    out = im.transform((w, h), Image.AFFINE, (a, 0, -left * a, 0, a, -top * a), resample=Image.BILINEAR)
    arr = np.asarray(out, dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (xx >= left) & (xx < left + side) & (yy >= top) & (yy < top + side)
    return np.where(inside, np.maximum(arr, 0), 0).astype(np.float32)
