"""Train the VQ image tokenizer on the train-split radiographs, time-boxed and checkpointed.

`python -m lab.training.vq_train --data ../shared/data/cxr --out runs/vq --minutes 20`
Writes vq.safetensors + vq_config.json every few minutes (an interrupted run still leaves a usable
tokenizer) and a JSONL metrics log; at the end measures PSNR/SSIM on val into vq_eval.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engines.tokenizers.vq import VQVAE, VQConfig
from lab.training.images import from_model_range, load_image_tensor, to_model_range


@torch.no_grad()
def evaluate_vq(model: VQVAE, images: torch.Tensor, batch: int = 32) -> dict:
    """PSNR (dB) and SSIM of round-tripped uint8 images, plus codebook usage."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    model.eval()
    psnr, ssim, used = [], [], set()
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        codes = model.encode(to_model_range(x))
        used.update(codes.unique().tolist())
        rec = from_model_range(model.decode(codes)).numpy()
        for a, b in zip(x.numpy()[:, 0], rec[:, 0], strict=True):
            psnr.append(peak_signal_noise_ratio(a, b, data_range=255))
            ssim.append(structural_similarity(a, b, data_range=255))
    return {"psnr_db": float(np.mean(psnr)), "ssim": float(np.mean(ssim)), "n": len(images),
            "codes_used": len(used), "codebook_size": model.config.codebook_size}


def train_vq(data: Path, out: Path, minutes: float, batch: int, lr: float, save_every_s: float,
             config: VQConfig, seed: int = 0, max_steps: int | None = None) -> dict:
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    train, _ = load_image_tensor(data, ("train",), config.image_size)
    model = VQVAE(config)
    if (out / "vq.safetensors").exists():
        model = VQVAE.load(out)
        print(f"resumed from {out}")
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    log = (out / "vq_metrics.jsonl").open("a")
    t0 = last_save = time.monotonic()
    step = 0
    bar = tqdm(desc="vq", unit="step")
    while time.monotonic() - t0 < minutes * 60 and (max_steps is None or step < max_steps):
        idx = torch.randint(0, len(train), (batch,))
        x = to_model_range(train[idx])
        o = model(x)
        rec = F.l1_loss(o.recon, x) + F.mse_loss(o.recon, x)
        loss = rec + o.commit_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(rec=f"{rec.item():.4f}", ppl=f"{o.perplexity.item():.0f}")
        if step % 10 == 0:
            log.write(json.dumps({"step": step, "t": time.monotonic() - t0, "rec": rec.item(),
                                  "commit": o.commit_loss.item(), "perplexity": o.perplexity.item()}) + "\n")
            log.flush()
        if time.monotonic() - last_save > save_every_s:
            model.save(out)
            last_save = time.monotonic()
    bar.close()
    model.save(out)
    val, _ = load_image_tensor(data, ("val",), config.image_size)
    result = evaluate_vq(VQVAE.load(out), val) | {"train_steps": step, "train_minutes": (time.monotonic() - t0) / 60,
                                                  "train_images": len(train), "batch": batch}
    (out / "vq_eval.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--save-every-s", type=float, default=180)
    p.add_argument("--codebook-size", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    res = train_vq(a.data, a.out, a.minutes, a.batch, a.lr, a.save_every_s, VQConfig(codebook_size=a.codebook_size))
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
