"""`radstation-train`: build, train, export and ship the engine's model (no GUI, no network).

  radstation-train vq       --data DIR --out VQDIR [--minutes 20]
  radstation-train prepare  --data DIR --vq VQDIR --work WORK
  radstation-train model    --work WORK [--size small] [--minutes 60 | --max-steps N]   (also under torchrun)
  radstation-train export-onnx --model DIR [--out DIR]
  radstation-train draft    --model DIR --split val --out drafts.jsonl     (then radstation-eval score)
  radstation-train answer   --model DIR --questions qa_val.jsonl --out answers.jsonl  (radstation-eval vqa)
  radstation-train realism  --model DIR --out DIR   (finding classifier AUROC, Frechet distances)
  radstation-train reader   --out resources/weights/medim-small/reader   (CV on train folds, then the ensemble)
  radstation-train ship     --work WORK --out resources/weights/medim-small
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from engines.sampling.finding_states import STATE_RULES

SHIP_FILES = ("config.json", "model.safetensors", "vq.safetensors", "vq_config.json", "text_tokenizer.json",
              "vq_eval.json", "prepare.json", "train_image_ids.txt")


def _cmd_vq(a: argparse.Namespace) -> int:
    import torch

    from engines.tokenizers.vq import VQConfig
    from lab.training.vq_train import train_vq

    torch.set_num_threads(a.threads)
    res = train_vq(a.data, a.out, a.minutes, a.batch, a.lr, a.save_every_s, VQConfig(codebook_size=a.codebook_size),
                   max_steps=a.max_steps)
    print(json.dumps(res, indent=2))
    return 0


def _cmd_prepare(a: argparse.Namespace) -> int:
    from lab.training.prepare import prepare

    print(json.dumps(prepare(a.data, a.vq, a.work, a.text_len, a.vocab_size, a.variants, a.seed,
                             tuple(a.splits), a.limit, a.keep_tokenizers, a.augment), indent=2))
    return 0


def _cmd_model(a: argparse.Namespace) -> int:
    from lab.training.trainer import TrainConfig, train

    tc = TrainConfig(size=a.size, batch=a.batch, lr=a.lr, warmup=a.warmup, max_steps=a.max_steps, minutes=a.minutes,
                     save_every_s=a.save_every_s, seed=a.seed, device=a.device, threads=a.threads,
                     progress=not a.no_progress, qa_fraction=a.qa_fraction, answer_weight=a.answer_weight,
                     init_from=str(a.init) if a.init else None, preserve_init=a.preserve_init,
                     finding_weight=a.finding_weight, finding_condition=a.finding_condition,
                     new_lr_scale=a.new_lr_scale)
    if tc.max_steps is None and tc.minutes is None:
        raise SystemExit("give --minutes or --max-steps")
    print(json.dumps(train(a.work, tc)))
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    from engines.export.onnx_export import export_model_folder

    print(json.dumps(export_model_folder(a.model, a.out), indent=2))
    return 0


def _cmd_draft(a: argparse.Namespace) -> int:
    from lab.training.draft_split import draft_split

    print(json.dumps(draft_split(a.model, a.data, a.split, a.out, a.steps, a.guidance, a.temperature, a.seed,
                                 a.limit, a.device, consensus=a.consensus, select=a.select, condition=a.condition),
                     indent=2))
    return 0


def _cmd_answer(a: argparse.Namespace) -> int:
    from lab.training.answer_split import answer_split

    print(json.dumps(answer_split(a.model, a.data, a.questions, a.out, a.steps, a.guidance, a.seed, a.limit,
                                  device=a.device), indent=2))
    return 0


def _cmd_realism(a: argparse.Namespace) -> int:
    from lab.training.realism import evaluate_realism

    print(json.dumps(evaluate_realism(a.data, a.model, a.out, a.steps, a.guidance, a.limit,
                                      condition=a.condition_images, head_guidance=a.head_guidance), indent=2))
    return 0


def _cmd_reader(a: argparse.Namespace) -> int:
    from engines.labeler.findings import FINDINGS
    from engines.reader.config import ReaderConfig
    from lab.training.reader_fit import fit_reader
    from lab.training.reader_train import ReaderTrainConfig

    findings = tuple(a.findings.split(",")) if a.findings else _shipped_findings()
    bad = [f for f in findings if f not in FINDINGS]
    if bad:
        raise ValueError(f"unknown findings {bad}; choose from {list(FINDINGS)}")
    combine = {}
    for part in a.combine.split(","):
        name, _, weight = part.partition("=")
        combine[name.strip()] = float(weight or 1.0)
    cfg = ReaderConfig(findings=findings, size=a.size, widths=tuple(int(w) for w in a.widths.split(",")),
                       crop=a.crop, normalise=a.normalise, combine=combine,
                       features={"hog": [[a.size, 16]], "pixels": [32]} if "linear" in combine else None,
                       feature_normalise=a.feature_normalise)
    tcfg = ReaderTrainConfig(epochs=a.epochs, batch=a.batch, lr=a.lr, sampler=a.sampler, objective=a.objective,
                             adv_weight=a.adv_weight, seed=a.seed, threads=a.threads)
    summary = fit_reader(a.data, a.out, cfg, tcfg, folds=a.folds, members=a.members, linear_c=a.linear_c,
                         linear_pca=a.linear_pca, lungbox_epochs=a.lungbox_epochs,
                         resamples=a.resamples)
    print(json.dumps({k: v for k, v in summary.items() if k != "cv_tables"}, indent=2))
    return 0


def _shipped_findings() -> tuple[str, ...]:
    """The shipped backbone's findings: the reader must read every finding drafting is conditioned on."""
    from engines.default_weights import DEFAULT_WEIGHTS

    cfg = json.loads((DEFAULT_WEIGHTS / "config.json").read_text(encoding="utf-8"))
    return tuple(cfg["model"]["findings"])


def _cmd_ship(a: argparse.Namespace) -> int:
    from engines.models.checkpoint import load_backbone

    load_backbone(a.work)  # refuse to ship something that does not load
    a.out.mkdir(parents=True, exist_ok=True)
    for name in SHIP_FILES:
        if (a.work / name).exists():
            shutil.copy2(a.work / name, a.out / name)
    cfg = json.loads((a.out / "config.json").read_text())
    for key in ("steps", "guidance", "temperature", "text_block", "consensus", "select",
                "image_order_temperature", "condition", "condition_images", "whatif_head_guidance",
                "whatif_head_region", "synthesis_head_guidance"):  # sampling defaults chosen on val
        if getattr(a, key) is not None:
            cfg.setdefault("sampling", {})[key] = getattr(a, key)
    (a.out / "config.json").write_text(json.dumps(cfg, indent=2))
    print(f"shipped {a.work} -> {a.out}")
    return 0


def _yes_no(v: str) -> bool:
    if v not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"expected yes or no, got {v!r}")
    return v == "yes"


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="radstation-train", description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="train_command", required=True)

    v = sub.add_parser("vq", help="train the VQ image tokenizer on the train-split images")
    v.add_argument("--data", type=Path, required=True)
    v.add_argument("--out", type=Path, required=True)
    v.add_argument("--minutes", type=float, default=20)
    v.add_argument("--max-steps", type=int)
    v.add_argument("--batch", type=int, default=16)
    v.add_argument("--lr", type=float, default=1e-3)
    v.add_argument("--save-every-s", type=float, default=180)
    v.add_argument("--codebook-size", type=int, default=512)
    v.add_argument("--threads", type=int, default=2)
    v.set_defaults(func=_cmd_vq)

    pr = sub.add_parser("prepare", help="text BPE + paired reports + QA + VQ codes -> WORK/corpus.pt")
    pr.add_argument("--data", type=Path, required=True)
    pr.add_argument("--vq", type=Path, required=True)
    pr.add_argument("--work", type=Path, required=True)
    pr.add_argument("--text-len", type=int, default=128)
    pr.add_argument("--vocab-size", type=int, default=2000)
    pr.add_argument("--variants", type=int, default=3)
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--splits", nargs="+", default=["train"])
    pr.add_argument("--limit", type=int)
    pr.add_argument("--keep-tokenizers", action="store_true", help="reuse WORK's tokenizers, rebuild the corpus")
    pr.add_argument("--augment", type=int, default=0,
                    help="jittered token views per image (rotation/shift/scale/exposure; never a flip)")
    pr.set_defaults(func=_cmd_prepare)

    m = sub.add_parser("model", help="train/resume the diffusion backbone in WORK (torchrun-ready)")
    m.add_argument("--work", type=Path, required=True)
    m.add_argument("--size", default="small", help="tiny | small | base")
    m.add_argument("--batch", type=int, default=16)
    m.add_argument("--lr", type=float, default=6e-4)
    m.add_argument("--warmup", type=int, default=50)
    m.add_argument("--minutes", type=float)
    m.add_argument("--max-steps", type=int)
    m.add_argument("--save-every-s", type=float, default=300)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--device", default="auto")
    m.add_argument("--threads", type=int)
    m.add_argument("--qa-fraction", type=float, default=0.15,
                   help="share of batch rows that are question/answer pairs (the rest are reports)")
    m.add_argument("--answer-weight", type=float, default=1.0,
                   help="loss weight of the answer words of question/answer rows (they are 1-3 of ~128 tokens)")
    m.add_argument("--init", type=Path, help="start from this model folder's weights (a fresh fine-tuning run)")
    m.add_argument("--preserve-init", action="store_true",
                   help="with --init: report/image rows learn the init model's predictions (distillation), so "
                        "fine-tuning answers keeps drafts and images as they were")
    m.add_argument("--finding-weight", type=float, default=0.0,
                   help="> 0: add an auxiliary finding head on the image-token states, trained on the corpus "
                        "labels with this loss weight (a direct image->finding signal)")
    m.add_argument("--finding-condition", type=float, default=0.0,
                   help="> 0: this share of report rows is told its image's finding labels through the AdaLN "
                        "conditioning, so drafting can follow the finding head and synthesis the report's findings")
    m.add_argument("--new-lr-scale", type=float, default=10.0,
                   help="with --init: learning-rate multiplier of the layers the init model lacks (they start at 0)")
    m.add_argument("--no-progress", action="store_true")
    m.set_defaults(func=_cmd_model)

    e = sub.add_parser("export-onnx", help="export backbone + VQ decoder to ONNX and check parity")
    e.add_argument("--model", type=Path, required=True)
    e.add_argument("--out", type=Path)
    e.set_defaults(func=_cmd_export)

    d = sub.add_parser("draft", help="draft a report per image of a split -> JSONL for radstation-eval")
    d.add_argument("--model", type=Path, required=True)
    d.add_argument("--data", type=Path)
    d.add_argument("--split", default="val")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--steps", type=int)
    d.add_argument("--guidance", type=float)
    d.add_argument("--temperature", type=float)
    d.add_argument("--consensus", type=int, help="drafts sampled per image; one is kept by --select")
    d.add_argument("--select", choices=("consensus", "verified", "verified-prior"),
                   help="keep the draft the others agree with most, or the one the finding head finds most likely")
    d.add_argument("--condition", choices=STATE_RULES,
                   help="tell a finding-conditioned model what the finding head read (head-prior) or nothing")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--limit", type=int)
    d.add_argument("--device", default="auto")
    d.set_defaults(func=_cmd_draft)

    q = sub.add_parser("answer", help="answer a radstation-eval qa-references file -> JSONL for radstation-eval vqa")
    q.add_argument("--model", type=Path, required=True)
    q.add_argument("--data", type=Path)
    q.add_argument("--questions", type=Path, required=True)
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--steps", type=int, default=4)
    q.add_argument("--guidance", type=float)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--limit", type=int)
    q.add_argument("--device", default="auto")
    q.set_defaults(func=_cmd_answer)

    r = sub.add_parser("realism", help="finding classifier (val AUROC) + Frechet distances of report->image")
    r.add_argument("--data", type=Path)
    r.add_argument("--model", type=Path, help="model folder; without it only the real-vs-real reference")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--steps", type=int)
    r.add_argument("--guidance", type=float)
    r.add_argument("--limit", type=int)
    r.add_argument("--head-guidance", type=float,
                   help="steer synthesis with the finding head towards each report's findings, in nats (0 = off; "
                        "default: the model's synthesis_head_guidance)")
    r.add_argument("--condition-images", type=_yes_no, metavar="yes|no",
                   help="tell a finding-conditioned model each report's findings (default: its sampling config)")
    r.set_defaults(func=_cmd_realism)

    rd = sub.add_parser("reader", help="train the finding reader (lung boxes, CV on train folds, calibration, "
                                       "ensemble) into a reader folder")
    rd.add_argument("--data", type=Path, default=None, help="curated data folder (default: the shared one)")
    rd.add_argument("--out", type=Path, required=True, help="reader folder, e.g. <model folder>/reader")
    rd.add_argument("--findings", default="", help="comma-separated (default: the shipped backbone's findings)")
    rd.add_argument("--size", type=int, default=128)
    rd.add_argument("--widths", default="32,64,128")
    rd.add_argument("--crop", choices=("lung", "trim", "none"), default="lung")
    rd.add_argument("--normalise", choices=("equalise", "zscore", "none"), default="none",
                    help="intensity normalisation of the CNN's crop (CV on train folds: none 0.669, equalise 0.653)")
    rd.add_argument("--epochs", type=int, default=20)
    rd.add_argument("--batch", type=int, default=32)
    rd.add_argument("--lr", type=float, default=2e-3)
    rd.add_argument("--sampler", choices=("plain", "balanced"), default="balanced")
    rd.add_argument("--objective", choices=("bce", "grl", "dro"), default="bce")
    rd.add_argument("--adv-weight", type=float, default=0.3)
    rd.add_argument("--combine", default="cnn=1,linear=2",
                    help="components and their weights: cnn (the networks) and/or linear (HOG + intensities)")
    rd.add_argument("--feature-normalise", choices=("equalise", "zscore", "none"), default="none",
                    help="intensity normalisation of the crop the linear readout reads")
    rd.add_argument("--linear-c", type=float, default=3e-4, help="inverse L2 strength of the linear readout")
    rd.add_argument("--linear-pca", type=int, default=128)
    rd.add_argument("--lungbox-epochs", type=int, default=60)
    rd.add_argument("--resamples", type=int, default=500, help="bootstrap resamples of the CV tables")
    rd.add_argument("--folds", type=int, default=3)
    rd.add_argument("--members", type=int, default=3, help="CNN ensemble members trained on all of train")
    rd.add_argument("--seed", type=int, default=0)
    rd.add_argument("--threads", type=int, default=1)
    rd.set_defaults(func=_cmd_reader)

    s = sub.add_parser("ship", help="copy the inference files of WORK into a model folder")
    s.add_argument("--work", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--steps", type=int, help="default sampling steps written into the shipped config")
    s.add_argument("--guidance", type=float)
    s.add_argument("--temperature", type=float)
    s.add_argument("--text-block", type=int, help="semi-autoregressive text block (0 = off)")
    s.add_argument("--consensus", type=int, help="drafts sampled per report, one kept by --select (1 = off)")
    s.add_argument("--select", choices=("consensus", "verified", "verified-prior"),
                   help="how one of the --consensus drafts is kept (verified: by the model's finding head; "
                        "verified-prior: the head against the findings' training prevalence)")
    s.add_argument("--image-order-temperature", type=float,
                   help="MaskGIT randomised commit order for image tokens (0 = pure confidence order)")
    s.add_argument("--condition", choices=STATE_RULES,
                   help="drafting of a finding-conditioned model: told the head's reading (head-prior) or not")
    s.add_argument("--condition-images", type=_yes_no, metavar="yes|no", help="synthesis/inpainting told the report's findings (conditioned models)")
    s.add_argument("--whatif-head-guidance", type=float,
                   help="what-if inpainting steered by the finding head, in nats (0 = off; needs a head)")
    s.add_argument("--whatif-head-region", type=float,
                   help="weight in [0, 1] of the finding head's potential in choosing the what-if region (0 = off)")
    s.add_argument("--synthesis-head-guidance", type=float,
                   help="report-to-image synthesis steered by the finding head, in nats (0 = off; needs a head)")
    s.set_defaults(func=_cmd_ship)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as exc:
        print(f"radstation-train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
