"""FindingReader: the engine's per-study reading of the chest, from pixels.

Two components read the lung-field crop (engines.reader.lungbox, engines.reader.preprocess), trained apart from the
diffusion backbone and against the image-source shortcut (issue 28): small CNNs (engines.reader.network) and a
linear readout over hand-engineered features (engines.reader.features). Their per-finding scores are standardised,
averaged and Platt-calibrated, all fitted on out-of-fold training predictions, never on val. The diffusion pipeline
is told this reading when it drafts, answers yes/no questions from it and ranks what-if variants by it.

A reader folder holds config.json (ReaderConfig), reader.safetensors (the CNN members, keys "member{i}."),
linear.safetensors (the linear readout) and lungbox.safetensors when the config crops to the lungs.
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
from engines.reader.features import (
    FeatureSpec,
    LinearReadout,
    contribution_map,
    feature_positions,
    image_features,
)
from engines.reader.lungbox import predict_lung_boxes
from engines.reader.network import LungBoxNet, ReaderNet
from engines.reader.preprocess import _as_u8, content_box, expand_box, normalise, square_crop

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "reader.safetensors"
LUNGBOX_FILE = "lungbox.safetensors"
LINEAR_FILE = "linear.safetensors"


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
                 path: Path | None = None, weights_hash: str = "", linear: LinearReadout | None = None) -> None:
        if "cnn" in config.combine and not members:
            raise ValueError("a reader that combines a CNN needs at least one network")
        if "linear" in config.combine and linear is None:
            raise ValueError("a reader that combines a linear readout needs it")
        if config.crop == "lung" and lungbox is None:
            raise ValueError("a reader that crops to the lungs needs the lung-box model")
        self.config = config
        self.members = [m.eval() for m in members]
        self.lungbox = lungbox.eval() if lungbox is not None else None
        self.linear = linear
        self.feature_spec = FeatureSpec.from_dict(config.features) if config.features else None
        if linear is not None:
            n = len(image_features(np.zeros((16, 16), np.uint8), self.feature_spec)) if self.feature_spec else -1
            if linear.weight.shape != (len(config.findings), n):
                raise ValueError(f"linear readout {linear.weight.shape} does not fit {len(config.findings)} findings "
                                 f"x {n} features")
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
        if not cfg_file.is_file():
            raise ReaderError(f"reader folder {path} lacks {cfg_file.name}")
        try:
            cfg = ReaderConfig.from_dict(json.loads(cfg_file.read_text(encoding="utf-8")))
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            raise ReaderError(f"{cfg_file}: {exc}") from exc
        needed = ([weights] if "cnn" in cfg.combine else []) + ([path / LINEAR_FILE] if "linear" in cfg.combine else [])
        for f in needed:
            if not f.is_file():
                raise ReaderError(f"reader folder {path} lacks {f.name}")
        state = load_file(str(weights)) if weights.is_file() else {}
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
        files = [cfg_file, *needed]
        linear = None
        if "linear" in cfg.combine:
            arrays = {k: v.numpy() for k, v in load_file(str(path / LINEAR_FILE)).items()}
            try:
                linear = LinearReadout(**arrays)
            except (TypeError, ValueError) as exc:
                raise ReaderError(f"{path / LINEAR_FILE}: {exc}") from exc
        lungbox = None
        if cfg.crop == "lung":
            lb_file = path / LUNGBOX_FILE
            if not lb_file.is_file():
                raise ReaderError(f"reader folder {path} lacks {LUNGBOX_FILE} (config crops to the lungs)")
            lungbox = LungBoxNet()
            lungbox.load_state_dict(load_file(str(lb_file)))
            files.append(lb_file)
        try:
            return cls(cfg, members, lungbox, path, _file_hash(files), linear)
        except ValueError as exc:
            raise ReaderError(f"reader folder {path}: {exc}") from exc

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        if self.members:
            state = {f"member{i}.{k}": v.contiguous() for i, m in enumerate(self.members)
                     for k, v in m.state_dict().items()}
            save_file(state, str(path / WEIGHTS_FILE))
        if self.linear is not None:
            save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.linear.to_arrays().items()},
                      str(path / LINEAR_FILE))
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
        """(raw crops (N, S, S) uint8, crop boxes): the lung-field framing of each image, before normalisation."""
        if not len(images):
            raise ValueError("no images to read")
        boxes = self.crop_boxes(images)
        crops = np.stack([square_crop(_as_u8(im), b, self.config.size) for im, b in zip(images, boxes, strict=True)])
        return crops, boxes

    # -- reading --------------------------------------------------------------------------------------
    @torch.no_grad()
    def cnn_scores(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean member logits (N, K), mean pooled features (N, D)) of raw crops."""
        x = net_input(np.stack([normalise(c, self.config.normalise) for c in crops]))
        logits, feats = [], []
        for m in self.members:
            f = m.features(x)
            feats.append(f)
            logits.append(m.head(f))
        return torch.stack(logits).mean(0).numpy(), torch.stack(feats).mean(0).numpy()

    def crop_features(self, crops: np.ndarray) -> np.ndarray:
        """(N, F) the linear readout's features of raw crops."""
        return np.stack([image_features(normalise(c, self.config.feature_normalise), self.feature_spec)
                         for c in crops])

    def _standardised(self, component: str, scores: np.ndarray) -> np.ndarray:
        norm = self.config.component_norm.get(component, {})
        ms = np.array([norm.get(f, (0.0, 1.0)) for f in self.findings], np.float64)
        return (np.asarray(scores, np.float64) - ms[:, 0]) / ms[:, 1]

    def scores_of_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(combined uncalibrated score (N, K), embedding (N, D)) of raw crops: the CNN's pooled features when it
        has CNN members, else the linear readout's features."""
        weights = self.config.combine
        total = np.zeros((len(crops), len(self.findings)))
        emb = None
        if "cnn" in weights:
            logits, emb = self.cnn_scores(crops)
            total += weights["cnn"] * self._standardised("cnn", logits)
        if "linear" in weights:
            feats = self.crop_features(crops)
            total += weights["linear"] * self._standardised("linear", self.linear.logits(feats))
            emb = feats if emb is None else emb
        return total / sum(weights.values()), np.asarray(emb, np.float32)

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities (N, K): each finding's logit through its fitted Platt scaling (identity when unfitted)."""
        ab = np.array([self.config.calibration.get(f, (1.0, 0.0)) for f in self.findings], np.float64)
        return 1.0 / (1.0 + np.exp(-(np.asarray(logits, np.float64) * ab[:, 0] + ab[:, 1])))

    def probabilities(self, images: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """Per image, {finding: calibrated probability}."""
        crops, _ = self.prepare(images)
        scores, _ = self.scores_of_crops(crops)
        return [dict(zip(self.findings, map(float, row), strict=True)) for row in self.calibrated(scores)]

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32: the representation the scope gate and similar-case search use."""
        crops, _ = self.prepare(images)
        return self.scores_of_crops(crops)[1]

    def cam(self, image: np.ndarray, finding: str) -> np.ndarray:
        """Where the reading of `finding` comes from, in the image's own pixel grid (>= 0, zero outside the region
        the reader reads): Grad-CAM of the CNN members (Selvaraju et al.) and the linear readout's positive
        per-feature terms summed where each feature lies, each scaled to [0, 1] and weighed as the scores are."""
        if finding not in self.findings:
            raise ValueError(f"the reader does not read {finding!r}; it reads {list(self.findings)}")
        j = self.findings.index(finding)
        crops, boxes = self.prepare([image])
        parts: list[tuple[float, np.ndarray]] = []
        if "cnn" in self.config.combine:
            x = net_input(np.stack([normalise(c, self.config.normalise) for c in crops]))
            maps = []
            for m in self.members:
                fmap = m.feature_map(x).detach().requires_grad_(True)
                logit = m.head(m.pool(fmap))[0, j]
                (grad,) = torch.autograd.grad(logit, fmap)
                w = grad.mean((2, 3), keepdim=True)
                maps.append(F.relu((w * fmap).sum(1))[0].detach())
            parts.append((self.config.combine["cnn"], torch.stack(maps).mean(0).numpy()))
        if "linear" in self.config.combine:
            feats = self.crop_features(crops)[0]
            contrib = self.linear.contributions(feats, j)
            grid = contribution_map(contrib, feature_positions(self.feature_spec), 16)
            parts.append((self.config.combine["linear"], np.maximum(grid, 0)))
        size = max(p.shape[0] for _, p in parts)
        total = np.zeros((size, size), np.float32)
        for w, p in parts:
            up = np.asarray(F.interpolate(torch.from_numpy(p.astype(np.float32))[None, None], size=(size, size),
                                          mode="bilinear", align_corners=False)[0, 0])
            total += w * up / (up.max() if up.max() > 0 else 1.0)
        return _paste(total, boxes[0], _as_u8(image).shape)


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
