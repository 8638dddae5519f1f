"""A model folder: everything inference needs, loadable offline.

config.json (model config, schedule, sampling defaults, training record), model.safetensors,
vq.safetensors + vq_config.json (image tokenizer), text_tokenizer.json (BPE).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from engines.models.backbone import MedimBackbone
from engines.models.config import MedimConfig
from engines.tokenizers.text import TOKENIZER_FILE, TextTokenizer
from engines.tokenizers.vq import VQVAE

FORMAT = "radstation-medim"
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


class CheckpointError(ValueError):
    """The folder is not a usable model checkpoint (missing, foreign or mismatched files)."""


def save_backbone(directory: str | Path, model: MedimBackbone, extra: dict | None = None) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT})
    tmp.replace(directory / WEIGHTS_FILE)  # atomic: a run killed mid-save leaves the previous weights
    cfg = {"format": FORMAT, "version": 1, "model": model.config.to_dict(), **(extra or {})}
    (directory / CONFIG_FILE).write_text(json.dumps(cfg, indent=2))


def read_config(directory: str | Path) -> dict:
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"model checkpoint folder {directory} does not exist")
    path = directory / CONFIG_FILE
    if not path.exists():
        raise CheckpointError(f"{directory} has no {CONFIG_FILE}: not a RadStation model folder")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if cfg.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} config (format={cfg.get('format')!r})")
    return cfg


def load_backbone(directory: str | Path, device: str | torch.device = "cpu") -> tuple[MedimBackbone, dict]:
    directory = Path(directory)
    cfg = read_config(directory)
    model_cfg = MedimConfig.from_dict(cfg["model"])
    wpath = directory / WEIGHTS_FILE
    if not wpath.exists():
        raise CheckpointError(f"{directory} has no {WEIGHTS_FILE}")
    model = MedimBackbone(model_cfg)
    state = load_file(str(wpath))
    expected = model.state_dict()
    bad = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    extra = [k for k in state if k not in expected]
    if bad or extra:
        detail = ", ".join(f"{k}: {tuple(state[k].shape) if k in state else 'missing'} vs {tuple(expected[k].shape)}"
                           for k in bad[:4])
        raise CheckpointError(f"{wpath} does not match its config ({cfg['model'].get('name')}): {detail}"
                              f"{' unexpected ' + ', '.join(extra[:4]) if extra else ''}")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), cfg


def load_tokenizers(directory: str | Path, model_cfg: MedimConfig, device: str | torch.device = "cpu"
                    ) -> tuple[TextTokenizer, VQVAE]:
    directory = Path(directory)
    if not (directory / TOKENIZER_FILE).exists():
        raise CheckpointError(f"{directory} has no {TOKENIZER_FILE}")
    tok = TextTokenizer.load(directory)
    vq = VQVAE.load(directory, device)
    if tok.vocab_size != model_cfg.text_vocab_size or tok.mask_id != model_cfg.text_mask_id:
        raise CheckpointError(f"text tokenizer ({tok.vocab_size} ids) does not match the model "
                              f"({model_cfg.text_vocab_size})")
    if vq.config.codebook_size != model_cfg.image_vocab_size or vq.config.grid != model_cfg.image_grid:
        raise CheckpointError(f"VQ tokenizer ({vq.config.codebook_size} codes, {vq.config.grid}x{vq.config.grid}) "
                              f"does not match the model ({model_cfg.image_vocab_size}, {model_cfg.image_grid})")
    return tok, vq


def weights_hash(directory: str | Path) -> str:
    h = hashlib.sha256()
    with open(Path(directory) / WEIGHTS_FILE, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
