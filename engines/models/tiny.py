"""A complete, randomly initialised tiny model folder: what `radstation selfcheck` drafts with when no
weights are installed, and what tests of anything that loads a checkpoint use.

It is product code on purpose, not a test fixture: the self-check of an installation (and of the frozen
bundle) without shipped weights must still start the worker, load torch and run a draft through it, and
this is that "no weights" configuration (the registered `tiny` size of engines.models.config). The
third-party backends' tiny models are test-only and live in tests/support/tiny_backends.py.

Real tokenizers (BPE trained on a few report sentences, a 32-px VQ) and a 2-layer backbone: every
code path of the pipeline runs, in milliseconds, without the shipped weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engines.models.backbone import MedimBackbone
from engines.models.checkpoint import save_backbone
from engines.models.config import preset
from engines.tokenizers.text import TextTokenizer
from engines.tokenizers.vq import VQVAE, VQConfig

TINY_SENTENCES = [
    "The heart is normal in size.", "The lungs are clear.", "No pleural effusion or pneumothorax.",
    "There is a right lower lobe opacity.", "Small left pleural effusion.", "Cardiomegaly is present.",
    "No acute cardiopulmonary abnormality.", "Mild pulmonary edema.", "Is there a pleural effusion?",
    "yes", "no", "left", "right", "Is the heart enlarged?", "Where is the opacity?",
]
TINY_VQ = VQConfig(image_size=32, channels=(8, 8, 8), codebook_size=16, code_dim=8, res_blocks=1)
TINY_TEXT_LEN = 16  # = preset("tiny").text_len


def tiny_tokenizer(vocab_size: int = 120) -> TextTokenizer:
    return TextTokenizer.train(TINY_SENTENCES * 3, vocab_size)


def make_tiny_checkpoint(directory: str | Path, seed: int = 0, size: str = "tiny", text_len: int | None = None,
                         findings: tuple[str, ...] = (), finding_condition: bool = False) -> Path:
    """Write config.json, model.safetensors, vq.*, text_tokenizer.json into `directory`; return it."""
    directory = Path(directory)
    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    vq = VQVAE(TINY_VQ)
    cfg = preset(size, text_vocab_size=tok.vocab_size, image_vocab_size=TINY_VQ.codebook_size,
                 text_mask_id=tok.mask_id, text_pad_id=tok.pad_id)
    if text_len is not None or cfg.image_grid != TINY_VQ.grid or findings:
        from dataclasses import replace

        cfg = replace(cfg, text_len=text_len or cfg.text_len, image_grid=TINY_VQ.grid, findings=findings,
                      finding_layer=min(cfg.finding_layer, cfg.n_layers), finding_condition=finding_condition)
    model = MedimBackbone(cfg)
    # AdaLN starts at zero (identity blocks); give it some weight so tests see a non-trivial network.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ada" in name or name.startswith("condition_"):
                p.normal_(0, 0.05)
    tok.save(directory)
    vq.save(directory)
    save_backbone(directory, model, {"schedule": "loglinear",
                                     "sampling": {"steps": 4, "guidance": 0.0, "temperature": 1.0},
                                     "training": {"note": "random tiny model for tests"}})
    return directory
