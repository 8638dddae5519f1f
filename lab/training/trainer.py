"""Joint masked-diffusion training: single process, or one process per device under `torchrun` (DDP).

The work folder holds the tokenizers and corpus.pt (from `radstation-train prepare`); training writes
model.safetensors + config.json there every `save_every_s` (atomically), trainer_state.pt for resuming
and metrics.jsonl. Only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from engines.device import resolve_device
from engines.models.backbone import MedimBackbone
from engines.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_backbone, read_config, save_backbone
from engines.models.config import MedimConfig, preset
from engines.tokenizers.text import TextTokenizer
from engines.tokenizers.vq import VQVAE
from lab.training.corpus import Corpus
from lab.training.finding_targets import condition_states, finding_loss
from lab.training.loss import diffusion_loss
from lab.training.masking import TASK_ANSWER, TASK_NAMES, noise_batch, sample_tasks
from lab.training.schedule import get_schedule

STATE_FILE, METRICS_FILE, CORPUS_FILE = "trainer_state.pt", "metrics.jsonl", "corpus.pt"


@dataclass
class TrainConfig:
    size: str = "small"
    batch: int = 16  # per process
    lr: float = 6e-4
    warmup: int = 50
    weight_decay: float = 0.01
    max_steps: int | None = None
    minutes: float | None = None
    save_every_s: float = 300
    task_probs: tuple[float, float, float] = (0.5, 0.3, 0.2)  # text-only, image-only, both
    qa_fraction: float = 0.15
    answer_weight: float = 1.0  # loss weight of answer words in question/answer rows (lab.training.loss)
    init_from: str | None = None  # model folder whose backbone weights start a fresh run (fine-tuning)
    preserve_init: bool = False  # report rows learn init_from's predictions (distillation), not the data:
    #                              fine-tune answers while drafts and images stay as they were
    finding_weight: float = 0.0  # > 0: train the backbone's auxiliary finding head on the corpus labels
    finding_condition: float = 0.0  # > 0: share of report rows told their image's labels (finding-conditioned
    #                                 drafting and synthesis; lab.training.finding_targets.condition_states)
    new_lr_scale: float = 10.0  # fine-tuning: learning-rate multiplier of the parameters the init model lacks
    #                             (a new finding head, the finding conditioning), which start from zero
    cond_drop: float = 0.1
    text_weight: float = 1.0
    image_weight: float = 0.6
    schedule: str = "loglinear"
    decay: str = "cosine"  # learning-rate decay: cosine | constant
    min_lr_ratio: float = 0.1
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # None: adapt to the machine's load (1 thread when oversubscribed)
    progress: bool = True


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def model_config_for(work: Path, size: str) -> MedimConfig:
    tok = TextTokenizer.load(work)
    vq = VQVAE.load(work)
    return preset(size, text_vocab_size=tok.vocab_size, image_vocab_size=vq.config.codebook_size,
                  text_mask_id=tok.mask_id, text_pad_id=tok.pad_id) if size in ("tiny", "small", "base") \
        else MedimConfig.from_dict(json.loads(size))


def _draw_batch(corpus: Corpus, n: int, qa_fraction: float, g: torch.Generator) -> torch.Tensor:
    qa_rows = torch.nonzero(corpus.is_qa).flatten()
    rep_rows = torch.nonzero(~corpus.is_qa).flatten()
    use_qa = (torch.rand(n, generator=g) < qa_fraction) & (len(qa_rows) > 0)
    rep = rep_rows[torch.randint(0, len(rep_rows), (n,), generator=g)]
    if len(qa_rows) == 0:
        return rep
    qa = qa_rows[torch.randint(0, len(qa_rows), (n,), generator=g)]
    return torch.where(use_qa, qa, rep)


def train(work: str | Path, tc: TrainConfig) -> dict:
    """Train (or resume) the backbone in `work`; returns the last metrics record."""
    work = Path(work)
    world, rank, local = _dist_info()
    if tc.threads:
        torch.set_num_threads(tc.threads)
    if world > 1:
        backend = "nccl" if torch.cuda.is_available() and tc.device != "cpu" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend)
        device = torch.device(f"cuda:{local}") if backend == "nccl" else torch.device("cpu")
    else:
        device = resolve_device(tc.device)
    corpus = Corpus.load(work / CORPUS_FILE)
    cfg = model_config_for(work, tc.size)
    init = load_backbone(tc.init_from)[0] if tc.init_from else None
    if tc.finding_weight > 0:
        if corpus.labels is None:
            raise ValueError(f"{work / CORPUS_FILE} has no finding labels; rebuild it with `radstation-train prepare`")
        cfg = replace(cfg, findings=tuple(corpus.label_names))
    elif init is not None:  # a fine-tune without the finding loss keeps the head it was given
        cfg = replace(cfg, findings=init.config.findings, finding_layer=init.config.finding_layer)
    if tc.finding_condition > 0 or (init is not None and init.config.finding_condition):
        if corpus.labels is None or tuple(corpus.label_names) != cfg.findings:
            raise ValueError("finding conditioning needs corpus labels for the model's findings "
                             f"({list(cfg.findings)}); train the finding head on this corpus (--finding-weight)")
        cfg = replace(cfg, finding_condition=True)
    corpus.check(cfg.text_len, cfg.image_len, cfg.text_vocab_size, cfg.image_vocab_size)
    schedule = get_schedule(tc.schedule)

    torch.manual_seed(tc.seed)
    step, elapsed_before = 0, 0.0
    state_path = work / STATE_FILE
    if (work / WEIGHTS_FILE).exists() and state_path.exists():
        saved = read_config(work)
        if MedimConfig.from_dict(saved["model"]) != cfg:
            raise ValueError(f"{work} holds a checkpoint of another config ({saved['model'].get('name')}); "
                             "use a fresh work folder or the same --size")
        model, _ = load_backbone(work)
        state = torch.load(str(state_path), weights_only=False)
        step, elapsed_before = state["step"], state.get("elapsed_s", 0.0)
    elif init is not None:
        if replace(init.config, findings=cfg.findings, finding_layer=cfg.finding_layer,
                   finding_condition=cfg.finding_condition) != cfg:
            raise ValueError(f"{tc.init_from} holds a model of another config ({init.config.name}) than "
                             f"{work}'s tokenizers and --size give; fine-tune with the same tokenizers and size")
        model, state = MedimBackbone(cfg), None
        own = init.state_dict()
        if init.config.findings != cfg.findings:  # a new finding head (and conditioning) starts fresh
            own = {k: v for k, v in own.items() if not k.startswith(("finding_head.", "condition_"))}
        missing, unexpected = model.load_state_dict(own, strict=False)
        if unexpected or any(not k.startswith(("finding_head.", "condition_")) for k in missing):
            raise ValueError(f"{tc.init_from}: weights do not fit the model ({(missing + unexpected)[:4]})")
    else:
        model, state = MedimBackbone(cfg), None
    teacher = None
    if tc.preserve_init:
        if not tc.init_from:
            raise ValueError("preserve_init needs init_from: the model whose behaviour is preserved")
        teacher = init  # `model` got a copy of its weights; init itself stays as loaded
        teacher.to(device).eval().requires_grad_(False)
    model.to(device).train()
    fresh = set() if init is None else set(dict(model.named_parameters())) - set(dict(init.named_parameters()))
    if init is not None and init.config.findings != cfg.findings:  # a replaced head starts fresh too
        fresh |= {n for n, _ in model.named_parameters() if n.startswith("finding_head.")}
    groups = [{"params": [p for n, p in model.named_parameters() if n not in fresh], "lr_scale": 1.0}]
    if fresh:  # zero-initialised layers move at Adam's ~lr per step; at the fine-tuning lr they barely start
        groups.append({"params": [p for n, p in model.named_parameters() if n in fresh], "lr_scale": tc.new_lr_scale})
    opt = torch.optim.AdamW(groups, lr=tc.lr, betas=(0.9, 0.98), weight_decay=tc.weight_decay)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
    g = torch.Generator().manual_seed(tc.seed * 1000 + rank + 7919 * step)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None,
                                                find_unused_parameters=bool(cfg.findings)) \
        if world > 1 else model
    run_start_elapsed = elapsed_before

    def lr_factor() -> float:
        """Linear warm-up, then cosine decay to min_lr_ratio over the run's horizon (steps or minutes, so a
        time-boxed run still ends at a low learning rate; a resumed run decays over what is left)."""
        warm = min(1.0, (step + 1) / max(1, tc.warmup))
        if tc.decay != "cosine":
            return warm
        if tc.max_steps is not None:
            frac = step / max(1, tc.max_steps)
        elif tc.minutes is not None:
            done = elapsed_before + time.monotonic() - t0
            frac = (done - run_start_elapsed) / max(1.0, tc.minutes * 60)
        else:
            frac = 0.0
        frac = min(max(frac, 0.0), 1.0)
        return warm * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))

    log = (work / METRICS_FILE).open("a") if rank == 0 else None
    t0 = last_save = time.monotonic()
    bar = tqdm(total=tc.max_steps, initial=step, desc=f"train[{cfg.name}]", disable=not tc.progress or rank != 0)
    record: dict = {}
    running: dict[str, float] = {}
    seen: dict[str, int] = {}

    def save() -> None:
        if rank != 0:
            return
        prior = {} if corpus.labels is None or not cfg.findings else \
            dict(zip(corpus.label_names, map(float, corpus.labels.mean(0)), strict=True))
        extra = {"schedule": tc.schedule, "sampling": {"steps": 32, "guidance": 1.0, "temperature": 1.0},
                 **({"finding_prior": {f: prior[f] for f in cfg.findings if f in prior}} if prior else {}),
                 "training": asdict(tc) | {"steps": step, "elapsed_s": elapsed_before + time.monotonic() - t0,
                                           "world_size": world, "corpus_rows": len(corpus),
                                           "corpus_images": int(corpus.images.shape[0])}}
        save_backbone(work, model, extra)
        torch.save({"step": step, "optimizer": opt.state_dict(),
                    "elapsed_s": elapsed_before + time.monotonic() - t0}, str(state_path) + ".tmp")
        os.replace(str(state_path) + ".tmp", state_path)

    def should_stop() -> bool:
        done = (tc.max_steps is not None and step >= tc.max_steps) or \
               (tc.minutes is not None and time.monotonic() - t0 >= tc.minutes * 60)
        if world > 1:  # every rank stops on the same step
            flag = torch.tensor([1.0 if done else 0.0], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            done = bool(flag.item() > 0)
        return done

    adaptive = tc.threads is None and device.type == "cpu" and world == 1 and hasattr(os, "getloadavg")
    while not should_stop():
        if adaptive and step % 25 == 0:
            # On a shared CPU two intra-op threads that cannot both run spin against each other (measured
            # 2x slower than one thread at load 9 on 2 cores); use both cores only when they are free.
            torch.set_num_threads(2 if os.getloadavg()[0] < (os.cpu_count() or 1) + 0.5 else 1)
        rows = _draw_batch(corpus, tc.batch, tc.qa_fraction, g)
        text = corpus.text[rows].to(device)
        image = corpus.image_rows(corpus.image_index[rows], g).to(device)
        tasks = sample_tasks(len(rows), corpus.is_qa[rows], tc.task_probs, g).to(device)
        nb = noise_batch(text, image, corpus.prefix_len[rows].to(device), tasks, cfg, schedule, g, tc.cond_drop)
        states = None
        told = torch.zeros(len(rows), dtype=torch.bool, device=device)
        if cfg.finding_condition:
            states = condition_states(corpus.labels[corpus.image_index[rows]], tasks.cpu() != TASK_ANSWER,
                                      tc.finding_condition, g).to(device)
            told = ~torch.isnan(states).all(1)
        out = ddp(nb.text_in, nb.image_in, nb.t, finding_states=states) if states is not None \
            else ddp(nb.text_in, nb.image_in, nb.t)
        soft = None
        if teacher is not None:
            with torch.no_grad():
                ref = teacher(nb.text_in, nb.image_in, nb.t)
            soft = (ref.text_logits, ref.image_logits)
        losses = diffusion_loss(out.text_logits, out.image_logits, text, image, nb, schedule,
                                tc.text_weight, tc.image_weight, pad_id=cfg.text_pad_id,
                                answer_rows=tasks == TASK_ANSWER, answer_weight=tc.answer_weight,
                                teacher=soft, soft_rows=(tasks != TASK_ANSWER) & ~told)
        # Rows told their labels learn the data (the unconditioned teacher knows nothing of them); the head learns
        # only on rows not told, or it would read the labels back from the conditioning.
        if tc.finding_weight > 0:
            seen_image = (nb.image_in != cfg.image_mask_id).all(1) & ~told
            fl = finding_loss(out.finding_logits, corpus.labels[corpus.image_index[rows]].to(device), seen_image)
            if fl is not None:
                losses["finding_bce"] = fl
                losses["loss"] = losses["loss"] + tc.finding_weight * fl
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = tc.lr * lr_factor() * group.get("lr_scale", 1.0)
        opt.step()
        step += 1
        for k, v in losses.items():  # a batch without answer rows has no answer_ce: mean over those that do
            running[k] = running.get(k, 0.0) + float(v.detach())
            seen[k] = seen.get(k, 0) + 1
        bar.update(1)
        if step % 10 == 0 or step == 1:
            record = {"step": step, "elapsed_s": round(elapsed_before + time.monotonic() - t0, 1),
                      **{k: round(v / seen[k], 4) for k, v in running.items()}, "grad_norm": round(float(gn), 3),
                      "lr": opt.param_groups[0]["lr"],
                      "tasks": {TASK_NAMES[i]: int((tasks == i).sum()) for i in range(4)}}
            running, seen = {}, {}
            bar.set_postfix(loss=record["loss"], text_ce=record["text_ce"], image_ce=record["image_ce"])
            if log:
                log.write(json.dumps(record) + "\n")
                log.flush()
        if time.monotonic() - last_save > tc.save_every_s:
            save()
            last_save = time.monotonic()
    save()
    bar.close()
    if log:
        log.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return record


__all__ = ["TrainConfig", "train", "CONFIG_FILE"]
