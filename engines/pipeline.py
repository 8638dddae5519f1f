"""MedimPipeline: the engine's public face - load a model folder once, run the four jobs on arrays.

Every job is one call of `engines.sampling.unmask` with a different pattern of given and masked
tokens (draft: image given, text masked; synthesise: text given, image masked; joint: both masked but
the prompt; answer: image + question given, answer masked; inpaint: report + image outside the token
mask given). Deterministic under `seed`; `progress(step, steps)` is called after every step and
`cancel()` before every step (JobCancelled). Inputs are validated up front.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engines.data.images import to_uint8
from engines.device import resolve_device
from engines.diffusion.layout import prompt_row, qa_row, report_row, split_report
from engines.errors import JobCancelled
from engines.models.backbone import MedimBackbone
from engines.models.checkpoint import load_backbone, load_tokenizers, weights_hash
from engines.models.config import MedimConfig
from engines.reader import FindingReader
from engines.sampling.finding_states import (
    STATE_RULES,
    present_push,
    state_row,
    states_from_head,
    states_from_report,
)
from engines.sampling.head_guidance import head_guidance_bias, head_signs, head_token_potential
from engines.sampling.results import AttentionMaps, ImageResult, TextResult, TokenInfo
from engines.sampling.unmask import SamplingOptions, UnmaskResult, unmask
from engines.tokenizers.text import ANSWER, FINDINGS, IMG, IMPRESSION, QUESTION, SEP, UNK, TextTokenizer
from engines.tokenizers.vq import VQVAE

log = logging.getLogger(__name__)
# How the backbone runs (from_pretrained); "onnx-int8" is "onnx" drafting with int8 matrix products
# (engines.export.onnx_export.quantize_rows, docs/engine_speed.md fourth round).
RUNTIMES = ("torch", "onnx", "compiled", "onnx-int8")

__all__ = ["MedimPipeline", "TextResult", "ImageResult", "TokenInfo", "AttentionMaps",
           "prepare_image"]

Progress = Callable[[int, int], None] | None
READER_DIR = "reader"  # the finding reader's subfolder of a model folder
_CODE_CACHE = 16  # images whose VQ codes are remembered
Cancel = Callable[[], bool] | None
_IMPRESSION_SPLIT = re.compile(r"\bimpression\s*:", re.IGNORECASE)
_FINDINGS_LABEL = re.compile(r"^\s*findings\s*:\s*", re.IGNORECASE)
DRAFT_MODES = ("sentences", "free")


def prepare_image(image: np.ndarray, size: int) -> np.ndarray:
    """Any 2D array as the viewer decodes it -> uint8 (size, size): uint8 kept as is, floats in [0, 1]
    times 255, anything else min-max scaled to 0..255;
    zero-padded to a centred square (as the training images were), resized."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    arr = image
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"image must be a 2D (grayscale) array, got shape {image.shape}")
    if arr.size == 0 or min(arr.shape) < 2:
        raise ValueError(f"image is empty (shape {image.shape})")
    u8 = to_uint8(arr)  # display-normalised [0, 1] (Sample.load_image, the viewer) keeps its contrast
    h, w = u8.shape
    side = max(h, w)
    sq = np.zeros((side, side), np.uint8)
    sq[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = u8
    if side != size:
        sq = np.array(Image.fromarray(sq).resize((size, size), Image.LANCZOS))
    return sq


def _split_report_text(report: str) -> tuple[str, str]:
    if not isinstance(report, str) or not report.strip():
        raise ValueError("report text is empty")
    parts = _IMPRESSION_SPLIT.split(report, maxsplit=1)
    findings = _FINDINGS_LABEL.sub("", parts[0]).strip()
    impression = parts[1].strip() if len(parts) > 1 else ""
    return findings, impression


class MedimPipeline:
    def __init__(self, model: MedimBackbone, vq: VQVAE, tokenizer: TextTokenizer, config: dict, device: torch.device,
                 path: Path, runtime: str = "torch", reader: FindingReader | None = None) -> None:
        self.model, self.vq, self.tokenizer = model, vq, tokenizer
        # The per-study reading (drafting is told it, yes/no answers and what-if ranking come from it): the finding
        # reader when the folder ships one (engines.reader, issue 28), else the backbone's auxiliary head.
        self.reader = reader
        if reader is not None:
            missing = [f for f in model.config.findings if f not in reader.findings]
            if missing:
                raise ValueError(f"the finding reader does not read {missing}, which the model is conditioned on")
        self.config = config
        self.model_config: MedimConfig = model.config
        self.device = device
        self.path = path
        self.runtime = runtime
        self.runtime_error = ""  # why the asked-for runtime is not the one running ("torch", or onnx-int8 -> "onnx")
        self.weights_hash = weights_hash(path)
        self._code_cache: dict[tuple, list[int]] = {}
        self._net: Callable = model  # swapped for an onnxruntime session or a compiled forward by from_pretrained
        self._decode: Callable[[torch.Tensor], torch.Tensor] = vq.decode
        sampling = config.get("sampling", {})
        self.default_steps = int(sampling.get("steps", 32))
        self.default_guidance = float(sampling.get("guidance", 0.0))
        self.default_temperature = float(sampling.get("temperature", 1.0))
        self.text_block = int(sampling.get("text_block", 0))
        self.default_consensus = int(sampling.get("consensus", 1))  # drafts sampled per report (consensus.py)
        self.default_select = str(sampling.get("select", "consensus"))  # how one of them is kept
        # Training prevalence per finding, the "usual" a reading is compared with: the reader's own (counted over the
        # images whose source speaks to the finding, as its calibration is) when it reads, else the backbone's.
        self.finding_prior: dict[str, float] = dict(config.get("finding_prior") or {})
        if reader is not None:
            self.finding_prior.update(reader.config.prevalence)
        if self.default_select.startswith("verified") and not model.config.findings:
            raise ValueError(f"sampling select {self.default_select!r} needs a model with a finding head")
        self.image_order_temperature = float(sampling.get("image_order_temperature", 0.0))
        # Finding-conditioned models (engines.sampling.finding_states): drafts told what the head read, images
        # told what their report says.
        self.default_condition = str(sampling.get("condition", "none"))
        if self.default_condition not in STATE_RULES:
            raise ValueError(f"unknown sampling condition {self.default_condition!r}; choose one of {STATE_RULES}")
        self.condition_images = bool(sampling.get("condition_images", False))
        # What-if inpainting and synthesis steered by the finding head (engines.sampling.head_guidance); 0 = off.
        self.default_head_guidance = self._head_guidance_setting(sampling, "whatif_head_guidance")
        self.default_synthesis_head_guidance = self._head_guidance_setting(sampling, "synthesis_head_guidance")
        # What-if region: weight of the finding head's potential next to attention and likelihood (0 = not used).
        self.default_head_region = self._head_guidance_setting(sampling, "whatif_head_region")
        if self.default_head_region > 1:
            raise ValueError(f"sampling whatif_head_region must be in [0, 1], got {self.default_head_region}")
        if (self.default_condition != "none" or self.condition_images) and not model.config.finding_condition:
            raise ValueError("sampling condition/condition_images need a model trained with finding conditioning")
        # Sentence-level drafting (engines.sentences): the default where the weights ship a sentence bank.
        from engines.sentences.bank import BANK_FILE
        from engines.sentences.decode import DecodeSettings

        self.bank_path = path / BANK_FILE
        self.default_draft_mode = str(sampling.get("draft_mode", "sentences" if self.bank_path.is_file() else "free"))
        if self.default_draft_mode not in DRAFT_MODES:
            raise ValueError(f"unknown sampling draft_mode {self.default_draft_mode!r}; choose one of {DRAFT_MODES}")
        self.decode_settings = DecodeSettings.from_config(config.get("sentence_decoding"))
        self._decoder = None
        self.case_index = None  # similar cases (engines.similar.CaseIndex) that sentence drafts may draw on

    def _head_guidance_setting(self, sampling: dict, key: str) -> float:
        value = float(sampling.get(key, 0.0))
        if value < 0:
            raise ValueError(f"sampling {key} must be >= 0, got {value}")
        if value and not self.model_config.findings:
            raise ValueError(f"sampling {key} needs a model with a finding head")
        return value

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto", runtime: str = "torch",
                        onnx_dir: str | Path | None = None) -> MedimPipeline:
        """Load a model folder (config.json, model.safetensors, vq.*, text_tokenizer.json).

        runtime="onnx" runs the backbone and VQ decoder through onnxruntime (exported on first use into
        `onnx_dir`, default `<path>/onnx` or a per-user cache when that is read-only); "onnx-int8" the same with
        drafting's forwards in int8 (quantised on first use beside them; where that fails or misses its parity
        tolerance, `runtime` is "onnx" and `runtime_error` says why); runtime="compiled" runs the
        backbone's inference forwards through torch.compile, compiled in the background
        (engines.models.compiled). Where onnxruntime is missing or the export fails, the pipeline runs torch
        (`runtime` says which runs, `runtime_error` why) and logs it."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"model folder {path} does not exist")
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
        dev = resolve_device(device)
        model, cfg = load_backbone(path, dev)
        tok, vq = load_tokenizers(path, model.config, dev)
        reader = FindingReader.from_pretrained(path / READER_DIR) if (path / READER_DIR).is_dir() else None
        pipe = cls(model, vq, tok, cfg, dev, path, runtime, reader)
        if runtime in ("onnx", "onnx-int8"):
            try:
                from engines.export.runtime import onnx_runtime

                ort = onnx_runtime(model, vq, path, pipe.weights_hash, dev, onnx_dir,
                                   precision="int8" if runtime == "onnx-int8" else "fp32")
            except Exception as exc:  # noqa: BLE001 - onnxruntime missing or the export failed: torch still drafts
                pipe.runtime, pipe.runtime_error = "torch", f"{type(exc).__name__}: {exc}".splitlines()[0]
                model.to(dev)
                vq.to(dev)
                log.warning("engine backend %r unavailable (%s): running the torch backbone", runtime,
                            pipe.runtime_error)
            else:
                pipe._net, pipe._decode, pipe.onnx_parity = ort.backbone, ort.decoder, ort.parity
                if runtime == "onnx-int8" and ort.precision != "int8":  # drafts with the float32 graph (logged)
                    pipe.runtime, pipe.runtime_error = "onnx", ort.precision_error
        elif runtime == "compiled":
            from engines.models.compiled import CompiledBackbone

            pipe._net = CompiledBackbone(model)
            pipe._warm_draft_shapes()
        return pipe

    def close(self) -> None:
        """Stop background work the backbone's runtime started (the compiled runtime's compile thread)."""
        stop = getattr(self._net, "close", None)
        if callable(stop):
            stop()

    def _warm_draft_shapes(self) -> None:
        """Ask the compiled backbone for the shape classes drafts call it with (a sentence slot: one row; a free
        draft: several candidates), so the first draft after start-up already finds them compiled."""
        cfg = self.model_config
        told = cfg.finding_condition and self.default_condition != "none"
        for batch in (1, 2):
            text = torch.full((batch, cfg.text_len), cfg.text_mask_id, dtype=torch.long, device=self.device)
            image = torch.zeros((batch, cfg.image_len), dtype=torch.long, device=self.device)
            kw = {"finding_states": torch.zeros((batch, len(cfg.findings)), device=self.device)} if told else {}
            self._net.warm(text, image, torch.ones(batch, device=self.device), heads="text",
                           text_rows=torch.arange(min(32, cfg.text_len), device=self.device), **kw)

    # -- tokens <-> images ----------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.vq.config.image_size

    @property
    def grid(self) -> int:
        return self.model_config.image_grid

    def encode_image(self, image: np.ndarray) -> np.ndarray:
        """VQ token grid (g, g) int64 of a 2D image."""
        u8 = prepare_image(image, self.image_size)
        x = torch.from_numpy(u8.copy()).float().div(127.5).sub(1.0)[None, None].to(self.device)
        return self.vq.encode(x)[0].cpu().numpy().astype(np.int64)

    def decode_tokens(self, grid: np.ndarray) -> np.ndarray:
        """uint8 image (S, S) of a token grid (g, g)."""
        g = np.asarray(grid)
        if g.shape != (self.grid, self.grid):
            raise ValueError(f"token grid must have shape ({self.grid}, {self.grid}), got {g.shape}")
        if not np.issubdtype(g.dtype, np.integer):
            raise ValueError("token grid must hold integers")
        codes = torch.from_numpy(g.astype(np.int64))[None].to(self.device)
        with torch.no_grad():
            x = self._decode(codes)
        return ((x[0, 0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()

    # -- helpers --------------------------------------------------------------------------------------
    def _opts(self, steps: int | None, guidance: float | None, temperature: float | None,
              pool: bool = False) -> SamplingOptions:
        s = self.default_steps if steps is None else int(steps)
        if s < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        return SamplingOptions(steps=s, guidance=self.default_guidance if guidance is None else float(guidance),
                               temperature=self.default_temperature if temperature is None else float(temperature),
                               pool_text=pool, text_block=self.text_block,
                               image_order_temperature=self.image_order_temperature)

    def _tensor(self, rows: list[list[int]]) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.long, device=self.device)

    def _text_mask_row(self, row: list[int], fixed: int) -> list[int]:
        return row[:fixed] + [self.model_config.text_mask_id] * (self.model_config.text_len - fixed)

    def _banned(self, *names: str) -> list[int]:
        return [self.tokenizer.ids[n] for n in names]

    def _run(self, text: torch.Tensor, image: torch.Tensor, opts: SamplingOptions, seed: int,
             uncond: tuple[torch.Tensor, torch.Tensor] | None, banned: list[int], progress: Progress,
             cancel: Cancel, states: dict[str, float] | None = None,
             uncond_states: dict[str, float] | None = None,
             image_bias: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> UnmaskResult:
        g = torch.Generator().manual_seed(int(seed))

        def rows(st: dict[str, float] | None) -> torch.Tensor | None:
            if st is None:
                return None
            return torch.tensor([state_row(st, self.model_config.findings)] * text.shape[0], dtype=torch.float32,
                                device=self.device)

        return unmask(self._net, text, image, opts=opts, generator=g, uncond=uncond, text_banned=banned,
                      progress=progress, cancel=cancel, finding_states=rows(states),
                      uncond_finding_states=rows(uncond_states), image_bias=image_bias)

    def _require_conditioning(self) -> None:
        if not self.model_config.finding_condition:
            raise ValueError("this model was not trained with finding conditioning")

    def condition_rule(self, condition: str | None) -> str:
        """The drafting condition rule to use (default: the sampling config's), checked against the model."""
        rule = self.default_condition if condition is None else condition
        if rule not in STATE_RULES:
            raise ValueError(f"unknown condition {rule!r}; choose one of {STATE_RULES}")
        if rule != "none":
            self._require_conditioning()
        return rule

    def _report_states(self, report: str, condition: bool | None) -> dict[str, float] | None:
        """What an image job is told: the report's findings, when the model and `condition` (default: the
        sampling config's condition_images) say so."""
        use = self.condition_images if condition is None else bool(condition)
        if not use:
            return None
        self._require_conditioning()
        return states_from_report(report, self.model_config.findings)

    def _text_tokens(self, res: UnmaskResult, row: int, start: int, stop: int, text: str,
                     offset: int) -> list[TokenInfo]:
        ids = res.text[row, start:stop].tolist()
        _, spans = self.tokenizer.decode_spans(ids)
        out = []
        for j, sp in enumerate(spans):
            pos = start + j
            if sp.token_id in self.tokenizer.special_ids or int(res.text_step[row, pos]) < 0:
                continue
            out.append(TokenInfo(sp.text, sp.token_id, float(res.text_confidence[row, pos]),
                                 float(res.text_entropy[row, pos]), int(res.text_step[row, pos]),
                                 sp.char_start + offset, sp.char_end + offset))
        return out

    def _image_result(self, res: UnmaskResult, opts: SamplingOptions, seed: int, t0: float) -> ImageResult:
        g = self.grid
        grid = res.image[0].reshape(g, g).cpu().numpy().astype(np.int64)
        conf = res.image_confidence[0].reshape(g, g).numpy()
        ent = res.image_entropy[0].reshape(g, g).numpy()
        given = res.image_step[0].reshape(g, g).numpy() < 0
        conf = np.where(given, 1.0, conf).astype(np.float32)
        ent = np.where(given, 0.0, ent).astype(np.float32)
        return ImageResult(self.decode_tokens(grid), grid, conf, ent, opts.steps, seed, time.perf_counter() - t0)

    def _report_result(self, res: UnmaskResult, opts: SamplingOptions, seed: int, t0: float,
                       row: int = 0) -> TextResult:
        tok = self.tokenizer
        ids = res.text[row].tolist()
        f_ids, i_ids = split_report(tok, ids)
        findings, impression = tok.decode(f_ids).strip(), tok.decode(i_ids).strip()
        # Char offsets: walk the row once, placing findings then impression into `text`.
        text = findings + ("\n\n" + impression if impression else "")
        tokens: list[TokenInfo] = []
        try:
            imp_pos = ids.index(tok.ids[IMPRESSION])
        except ValueError:
            imp_pos = len(ids)
        end = next((k for k, v in enumerate(ids) if v in (tok.ids[SEP], tok.pad_id)), len(ids))
        tokens += self._text_tokens(res, row, 0, min(imp_pos, end), text, 0)
        if imp_pos < end:
            tokens += self._text_tokens(res, row, imp_pos + 1, end, text, len(findings) + 2)
        return TextResult(text, findings, impression, tokens, opts.steps, seed, time.perf_counter() - t0)

    def _report_ids(self, report: str) -> list[int]:
        findings, impression = _split_report_text(report)
        return report_row(self.tokenizer, findings, impression, self.model_config.text_len).ids

    def image_codes(self, image: np.ndarray) -> list[int]:
        """The image's flattened VQ codes (g * g), from the cache when it was encoded lately."""
        return self._codes(image)

    def _codes(self, image: np.ndarray) -> list[int]:
        """The image's VQ codes, remembered for the last few images: questions, explanations and evaluations ask
        about one image many times, and encoding is most of a closed answer's cost."""
        arr = np.ascontiguousarray(image)
        key = (arr.shape, arr.dtype.str, hashlib.blake2b(arr.tobytes(), digest_size=16).digest())
        hit = self._code_cache.get(key)
        if hit is None:
            hit = self.encode_image(image).reshape(-1).tolist()
            self._code_cache[key] = hit
            while len(self._code_cache) > _CODE_CACHE:
                self._code_cache.pop(next(iter(self._code_cache)))
        return list(hit)

    # -- jobs -----------------------------------------------------------------------------------------
    def draft_report(self, images: list[np.ndarray], *, steps: int | None = None, guidance: float | None = None,
                     seed: int = 0, progress: Progress = None, cancel: Cancel = None,
                     temperature: float | None = None, consensus: int | None = None,
                     select: str | None = None, condition: str | None = None, mode: str | None = None,
                     section_order: Sequence[str] | None = None, settings: object | None = None) -> TextResult:
        """Report for one study; several views share one text (their evidence is averaged each step).
        `mode` "sentences" (default where the weights ship a sentence bank) writes it from real report
        sentences chosen by the engine (draft_sentences; `section_order` and `settings` go there); "free"
        unmasks it token by token as below.
        `consensus` K > 1 samples K drafts (seeds seed..seed+K-1) and keeps one by `select`: "consensus" (the
        one whose findings agree most with the others), "verified" (the one the finding head supports most)
        or "verified-prior" (the same against the findings' training prevalence; engines.sampling.consensus).
        `condition` "head-prior" tells a finding-conditioned model what the finding head read
        (engines.sampling.finding_states); the result's finding_states says what it was told.
        Defaults from the model's sampling config."""
        if isinstance(images, np.ndarray):
            images = [images]
        if not images:
            raise ValueError("draft_report needs at least one image")
        use = self.default_draft_mode if mode is None else mode
        if use not in DRAFT_MODES:
            raise ValueError(f"unknown draft mode {use!r}; choose one of {DRAFT_MODES}")
        if use == "sentences":
            return self.draft_sentences(images, seed=seed, progress=progress, cancel=cancel, condition=condition,
                                        section_order=section_order, settings=settings)
        k = self.default_consensus if consensus is None else int(consensus)
        if k < 1:
            raise ValueError(f"consensus must be >= 1 draft, got {consensus}")
        t0 = time.perf_counter()
        cfg = self.model_config
        codes = [self._codes(im) for im in images]
        mode = self.default_select if select is None else select
        rule = self.condition_rule(condition)
        probs = None
        if rule != "none" or (k > 1 and mode.startswith("verified")):
            # the views' reading, averaged as their evidence is when drafting
            per_view = self.finding_probabilities(images) if self.reader is not None \
                else self.finding_probabilities_of_codes(codes)
            probs = {f: float(np.mean([p[f] for p in per_view])) for f in per_view[0]}
        states = states_from_head(probs, self.finding_prior, cfg.findings) if rule == "head-prior" else None
        row = self._text_mask_row([self.tokenizer.ids[FINDINGS]], 1)
        banned = self._banned(UNK, QUESTION, ANSWER, IMG, FINDINGS)
        if len(images) == 1:  # one view: the K drafts are K rows of one batch
            opts = self._opts(steps, guidance, temperature, pool=False)
            image, text = self._tensor(codes * k), self._tensor([row] * k)
            res = self._run(text, image, opts, seed, (text, torch.full_like(image, cfg.image_mask_id)), banned,
                            progress, cancel, states)
            drafts = [self._report_result(res, opts, seed, t0, r) for r in range(k)]
        else:  # several views pool their evidence into one text per run
            opts = self._opts(steps, guidance, temperature, pool=True)
            image, text = self._tensor(codes), self._tensor([row] * len(images))
            drafts = []
            for j in range(k):
                step_progress = None if progress is None else (
                    lambda d, n, j=j: progress(j * n + d, k * n))
                res = self._run(text, image, opts, seed + j, (text, torch.full_like(image, cfg.image_mask_id)),
                                banned, step_progress, cancel, states)
                drafts.append(self._report_result(res, opts, seed + j, t0))
        for d in drafts:
            d.finding_states = states
            d.finding_probabilities = probs
        if k == 1:
            return drafts[0]
        from engines.sampling.consensus import select_draft

        best, agreement = select_draft([d.text for d in drafts],
                                       [float(np.mean([t.confidence for t in d.tokens])) if d.tokens else 0.0
                                        for d in drafts], mode=mode, finding_probs=probs,
                                       finding_prior=self.finding_prior)
        chosen = drafts[best]
        chosen.elapsed_s = time.perf_counter() - t0
        chosen.consensus = (k, agreement)
        return chosen

    @property
    def sentence_decoder(self):
        """The candidate bank (sentence_bank.json beside the weights) with its token ids, loaded once."""
        if self._decoder is None:
            from engines.sentences.bank import CandidateBank
            from engines.sentences.decode import SentenceDecoder

            if not self.bank_path.is_file():
                raise ValueError(f"sentence drafting needs {self.bank_path} (build it with "
                                 "python -m lab.build.sentence_bank authored); use draft mode 'free' without it")
            self._decoder = SentenceDecoder(CandidateBank.load(self.bank_path), self.tokenizer.encode)
        return self._decoder

    def draft_reports(self, images: list[np.ndarray], *, steps: int | None = None, guidance: float | None = None,
                      temperature: float | None = None, seed: int = 0, consensus: int | None = None,
                      select: str | None = None, condition: str | None = None) -> list[tuple[str, str]]:
        """(findings, impression) per image, each image its own study, all drafted in one batch (one forward
        per step for all of them): the free-text drafting of `draft_report` for a whole split, which the lab's
        evaluation runs so its figures measure this path. With `consensus` K > 1 each image gets K rows and one
        is kept by `select`; `condition` tells a conditioned model the head's reading (as draft_report)."""
        from engines.sampling.consensus import select_draft

        cfg = self.model_config
        k = self.default_consensus if consensus is None else int(consensus)
        mode = self.default_select if select is None else select
        rule = self.condition_rule(condition)
        opts = self._opts(steps, guidance, temperature, pool=False)
        codes = [self._codes(im) for im in images]
        probs = self.finding_probabilities_of_codes(codes) if rule != "none" or (mode.startswith("verified") and k > 1) \
            else [None] * len(images)
        told = None
        if rule == "head-prior":
            told = torch.tensor([state_row(states_from_head(p, self.finding_prior, cfg.findings), cfg.findings)
                                 for p in probs for _ in range(k)], dtype=torch.float32, device=self.device)
        image = self._tensor([c for c in codes for _ in range(k)])
        row = self._text_mask_row([self.tokenizer.ids[FINDINGS]], 1)
        text = self._tensor([row] * image.shape[0])
        uncond = (text, torch.full_like(image, cfg.image_mask_id))
        res = unmask(self._net, text, image, opts=opts, generator=torch.Generator().manual_seed(seed), uncond=uncond,
                     text_banned=self._banned(UNK, QUESTION, ANSWER, IMG, FINDINGS), finding_states=told)
        drafts = []
        for r, ids in enumerate(res.text.tolist()):
            f, i = split_report(self.tokenizer, ids)
            conf = res.text_confidence[r]
            drafts.append((self.tokenizer.decode(f).strip(), self.tokenizer.decode(i).strip(),
                           float(conf[~conf.isnan()].mean()) if (~conf.isnan()).any() else 0.0))
        out = []
        for j in range(len(images)):
            group = drafts[j * k:(j + 1) * k]
            if k == 1:  # nothing to choose between (as draft_report)
                out.append(group[0][:2])
                continue
            best, _ = select_draft([" ".join(x for x in d[:2] if x) for d in group], [d[2] for d in group],
                                   mode=mode, finding_probs=probs[j], finding_prior=self.finding_prior)
            out.append(group[best][:2])
        return out

    def draft_sentences(self, images: list[np.ndarray], *, seed: int = 0, progress: Progress = None,
                        cancel: Cancel = None, condition: str | None = None,
                        section_order: Sequence[str] | None = None, settings: object | None = None,
                        reader: Mapping[str, float] | None = None,
                        case_query: np.ndarray | None = None) -> TextResult:
        """A draft made of real report sentences (engines.sentences.decode): the study is read by
        `finding_probabilities` (and similar cases in `case_index`, when set), then each sentence slot is filled
        with the candidate this engine scores best given the image and the sentences already committed.
        `reader` and `case_query` replace the finding reader's probabilities and the case embedding (evaluation from
        cached features; study_reading). Deterministic
        (`seed` is recorded, not used)."""
        from dataclasses import asdict

        from engines.sentences.decode import DecodeSettings
        from engines.sentences.scorer import EngineScorer
        from engines.sentences.sections import DEFAULT_ORDER, check_order

        if isinstance(images, np.ndarray):
            images = [images]
        if not images:
            raise ValueError("draft_report needs at least one image")
        s = self.decode_settings if settings is None else settings
        if not isinstance(s, DecodeSettings):
            raise TypeError("settings must be engines.sentences.decode.DecodeSettings")
        order = DEFAULT_ORDER if section_order is None else check_order(tuple(section_order))
        t0 = time.perf_counter()
        decoder = self.sentence_decoder
        codes = [self._codes(im) for im in images]
        reading, cases = self.study_reading(images, s, reader=reader, case_query=case_query)
        rule = self.condition_rule(condition)
        told = None
        if rule != "none":
            findings = self.model_config.findings
            told_states = {f: float(reading.states.get(f, 0) == 1) for f in findings if f != "No Finding"}
            if "No Finding" in findings:
                told_states["No Finding"] = float(not any(told_states.values()))
            told = {f: told_states[f] for f in findings}
        cfg = self.model_config
        total = 12

        def before(done: int) -> None:
            if cancel is not None and cancel():
                raise JobCancelled("generation cancelled")
            if progress is not None:
                progress(min(done, total - 1), total)

        scorer = EngineScorer(self._net, cfg.text_len, cfg.text_mask_id, cfg.image_mask_id, codes, self.device,
                              None if told is None else state_row(told, cfg.findings), pmi=s.pmi != 0,
                              before_forward=before)
        draft = decoder.decode(scorer, reading, s, findings_id=self.tokenizer.ids[FINDINGS],
                               impression_id=self.tokenizer.ids[IMPRESSION], order=order, case_sentences=cases)
        if progress is not None:
            progress(total, total)
        # One uncertainty span per sentence the reading judged (the editor tints the unsure ones).
        tokens = [TokenInfo(ch.text, -1, ch.confidence, -math.log(max(ch.confidence, 1e-9)), i, ch.char_start,
                            ch.char_end) for i, ch in enumerate(draft.sentences) if ch.confidence is not None]
        res = TextResult(draft.text, draft.findings, draft.impression, tokens, scorer.forwards, seed,
                         time.perf_counter() - t0, finding_states=told, mode="sentences",
                         sentences=[asdict(ch) for ch in draft.sentences],
                         reading={"probabilities": reading.probabilities, "thresholds": reading.thresholds,
                                  "states": reading.states, "cases": list(cases or {})})
        return res

    def study_reading(self, images: list[np.ndarray], settings: object, *, reader: Mapping[str, float] | None = None,
                      case_query: np.ndarray | None = None):
        """(StudyReading, {case id: its sentences} or None): what a sentence draft of these images will state
        (engines.sentences.study). `reader` replaces `finding_probabilities`, `case_query` the case embedding
        (evaluation from cached features)."""
        from engines.sentences.study import read_study
        from engines.similar.embeddings import index_name

        s = settings
        if reader is None:
            per_view = self.finding_probabilities(images)
            reader = {f: float(np.mean([p[f] for p in per_view])) for f in per_view[0]}
        cases = None
        case_labels = None
        index = self.case_index
        indexed = len(index) if index is not None else 0  # one count: a department index answers it by a query
        if (indexed and (s.case_weight > 0 or s.case_bonus > 0)
                and index.embedder == index_name(s.case_embedding)):  # another embedding's index cannot answer
            query = self.embed(images, s.case_embedding).mean(0) if case_query is None else case_query
            hits = index.search(query, s.cases)
            # a vote of fewer cases than the settings were chosen for, or from an index too small for its nearest
            # cases to be similar to this image (DecodeSettings.min_index_cases), reads the reader alone
            if len(hits) >= s.cases and indexed >= s.min_index_cases:
                case_labels = index.label_share(hits)
            cases = {h.case_id: h.sentences() for h in hits}
        scale, normal_scale = s.thresholds(case_labels is not None)
        reading = read_study(reader, self.finding_prior, case_labels=case_labels,
                             case_weight=s.case_weight if case_labels is not None else 0.0,
                             scale=scale, normal_scale=normal_scale, uncertain_band=s.uncertain_band)
        if getattr(s, "answer_rule", False):
            self._drop_what_answers_deny(reading, reader)
        return reading, cases

    def answer_calibration(self):
        """The calibration yes/no answers use (engines.reading.effective_calibration of the shipped file)."""
        if getattr(self, "_answer_calibration", None) is None:
            from engines.calibration import Calibration
            from engines.reading import effective_calibration

            self._answer_calibration = effective_calibration(self, Calibration.load(self.path))[0]
        return self._answer_calibration

    def _drop_what_answers_deny(self, reading: object, reader: Mapping[str, float]) -> None:
        """A finding the draft would state present (or uncertain) but the yes/no answer calls absent is made
        absent: a draft saying "There is pneumothorax." beside an answer "no (5%)" is two readings of one image.
        Similar cases may raise a finding's combined probability, never above the image's own answer. The rule is
        the calibration's global odds ratio, the one the drafting settings were tuned with: a finding's own "no"
        rule (chosen against a miss rate, lab.eval.no_rule) answers "uncertain" more often, and the panel says
        when a draft states what the reading holds uncertain rather than changing what the draft states."""
        cal = self.answer_calibration()
        shown = cal.apply({f: float(p) for f, p in reader.items()})
        for f, state in list(reading.states.items()):
            if state != 0 and f in shown and cal.answer(shown[f], cal.prior(f, self.finding_prior.get(f))) == "no":
                reading.states[f] = 0

    def embed(self, images: list[np.ndarray], kind: str = "image-tokens") -> np.ndarray:
        """(N, D) float32 unit-norm image embeddings for similar-case search (engines.similar.embeddings):
        "image-tokens", `image_embedding` (the reader's pooled features when the folder ships a reader, else the
        backbone's mean image-token state after the finding layer), normalised; or "pixels32"."""
        from engines.similar.embeddings import index_name, pixels32

        index_name(kind)
        if isinstance(images, np.ndarray):
            images = [images]
        if kind == "pixels32":
            return np.stack([pixels32(prepare_image(im, self.image_size)) for im in images]).astype(np.float32)
        v = np.asarray(self.image_embedding(list(images)), dtype=np.float32)
        n = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.where(n > 0, n, 1.0)

    def answer(self, image: np.ndarray, question: str, *, steps: int | None = None, guidance: float | None = None,
               seed: int = 0, progress: Progress = None, cancel: Cancel = None,
               temperature: float | None = None) -> TextResult:
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question is empty")
        t0 = time.perf_counter()
        opts = self._opts(steps, guidance, temperature)
        cfg = self.model_config
        r = qa_row(self.tokenizer, question.strip(), None, cfg.text_len)
        text = self._tensor([self._text_mask_row(r.ids, r.prefix_len)])
        image = self._tensor([self._codes(image)])
        uncond = (text, torch.full_like(image, cfg.image_mask_id))
        res = self._run(text, image, opts, seed, uncond,
                        self._banned(UNK, QUESTION, ANSWER, IMG, FINDINGS, IMPRESSION), progress, cancel)
        ids = res.text[0].tolist()
        end = next((k for k in range(r.prefix_len, len(ids)) if ids[k] in (self.tokenizer.ids[SEP],
                                                                            self.tokenizer.pad_id)), len(ids))
        answer = self.tokenizer.decode(ids[r.prefix_len:end]).strip()
        tokens = self._text_tokens(res, 0, r.prefix_len, end, answer, 0)
        return TextResult(answer, "", "", tokens, opts.steps, seed, time.perf_counter() - t0)

    def synthesise(self, report: str, *, steps: int | None = None, guidance: float | None = None, seed: int = 0,
                   progress: Progress = None, cancel: Cancel = None, temperature: float | None = None,
                   condition: bool | None = None, head_guidance: float | None = None) -> ImageResult:
        """Image for `report`; `condition` tells a finding-conditioned model the report's findings too;
        `head_guidance` (default: the sampling config's synthesis_head_guidance) steers the tokens with the finding
        head towards the findings the report states (engines.sampling.head_guidance)."""
        t0 = time.perf_counter()
        opts = self._opts(steps, guidance, temperature)
        cfg = self.model_config
        text = self._tensor([self._report_ids(report)])
        image = torch.full((1, cfg.image_len), cfg.image_mask_id, dtype=torch.long, device=self.device)
        uncond = (torch.full_like(text, cfg.text_mask_id), image)
        res = self._run(text, image, opts, seed, uncond, [], progress, cancel, self._report_states(report, condition),
                        image_bias=self.synthesis_bias([report], head_guidance))
        return self._image_result(res, opts, seed, t0)

    @torch.no_grad()
    def image_token_entropy(self, report: str, tokens: np.ndarray, masked: np.ndarray, *,
                            guidance: float | None = None, condition: bool | None = None) -> np.ndarray:
        """(N, g, g) entropy (nats) of the image tokens under `report`, one row per mask in `masked` (N, g, g) bool:
        masked positions are predicted from the report and the unmasked `tokens` (g, g), with the sampler's
        guidance; NaN where not masked. One batched forward pass: the sampler's entropy at commit time depends on
        the order it unmasked in, this does not (explain.uncertainty averages it over random masks)."""
        from engines.sampling.unmask import _guided_logp

        cfg = self.model_config
        m = torch.as_tensor(np.asarray(masked, bool).reshape(-1, cfg.image_len), device=self.device)
        n = m.shape[0]
        codes = torch.as_tensor(np.asarray(tokens, np.int64).reshape(1, cfg.image_len), device=self.device)
        image = torch.where(m, torch.full_like(codes, cfg.image_mask_id), codes.expand(n, -1))
        text = self._tensor([self._report_ids(report)] * n)
        t = m.float().mean(1).clamp(1e-3, 1.0)  # the masked share, as the sampler tells the model (text is given)
        states = self._report_states(report, condition)
        rows = None if states is None else torch.tensor([state_row(states, cfg.findings)] * n, dtype=torch.float32,
                                                        device=self.device)
        opts = self._opts(None, guidance, None)
        _, lpi = _guided_logp(self._net, text, image, t, (torch.full_like(text, cfg.text_mask_id), image),
                              opts.guidance, rows, None, heads="image")
        ent = -(lpi.exp() * lpi).sum(-1).float()
        ent = torch.where(m, ent, torch.full_like(ent, float("nan")))
        return ent.reshape(n, self.grid, self.grid).cpu().numpy().astype(np.float32)

    def joint(self, prompt: str, *, steps: int | None = None, guidance: float | None = None, seed: int = 0,
              progress: Progress = None, cancel: Cancel = None,
              temperature: float | None = None) -> tuple[ImageResult, TextResult]:
        """Image and report together; the prompt opens the findings and the model continues it."""
        prompt = prompt if isinstance(prompt, str) else ""
        t0 = time.perf_counter()
        opts = self._opts(steps, guidance, temperature)
        cfg = self.model_config
        r = prompt_row(self.tokenizer, prompt.strip(), cfg.text_len)
        text = self._tensor([self._text_mask_row(r.ids, r.prefix_len)])
        image = torch.full((1, cfg.image_len), cfg.image_mask_id, dtype=torch.long, device=self.device)
        res = self._run(text, image, opts, seed, None, self._banned(UNK, QUESTION, ANSWER, IMG, FINDINGS),
                        progress, cancel)
        return self._image_result(res, opts, seed, t0), self._report_result(res, opts, seed, t0)

    def inpaint(self, image: np.ndarray, token_mask: np.ndarray, report: str, *, steps: int | None = None,
                guidance: float | None = None, seed: int = 0, progress: Progress = None, cancel: Cancel = None,
                temperature: float | None = None, condition: bool | None = None,
                contrast_report: str | None = None, head_push: dict[str, float] | None = None,
                head_guidance: float = 0.0) -> ImageResult:
        """Resample the image tokens where `token_mask` (g, g) is True under `report`; all others are kept.
        `condition` tells a finding-conditioned model the report's findings too; `contrast_report` (a what-if's
        current report) is then what the guidance's unconditional pass is told, so guidance pushes from its
        findings towards the report's. `head_push` ({finding: +1 up / -1 down}) with `head_guidance` > 0 also
        steers the tokens with the finding head (engines.sampling.head_guidance)."""
        m = np.asarray(token_mask)
        if m.shape != (self.grid, self.grid):
            raise ValueError(f"token_mask must have the token grid shape ({self.grid}, {self.grid}), got {m.shape}")
        m = m.astype(bool)
        t0 = time.perf_counter()
        opts = self._opts(steps, guidance, temperature)
        cfg = self.model_config
        text = self._tensor([self._report_ids(report)])
        codes = self._tensor([self._codes(image)])
        mt = torch.from_numpy(m.reshape(1, -1)).to(self.device)
        image_in = torch.where(mt, torch.full_like(codes, cfg.image_mask_id), codes)
        uncond = (torch.full_like(text, cfg.text_mask_id), image_in)
        states = self._report_states(report, condition)
        against = self._report_states(contrast_report, condition) if states is not None and contrast_report \
            else None
        res = self._run(text, image_in, opts, seed, uncond, [], progress, cancel, states, against,
                        self._head_bias([head_push or {}], head_guidance))
        return self._image_result(res, opts, seed, t0)

    def _head_bias(self, pushes: Sequence[Mapping[str, float]], scale: float
                   ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """The sampler's image bias for finding-head guidance, one push ({finding: +1 up / -1 down}) per row, or
        None when nothing is pushed."""
        if scale < 0:
            raise ValueError(f"head_guidance must be >= 0, got {scale}")
        if not any(pushes) or scale == 0:
            return None
        model = self._torch_model()
        signs = torch.stack([head_signs(model, p) for p in pushes])
        return lambda image, logp: head_guidance_bias(model, image, logp, signs, scale)

    def synthesis_bias(self, reports: Sequence[str], head_guidance: float | None = None
                       ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """Head guidance of synthesis rows towards the findings each report states present; `head_guidance`
        defaults to the sampling config's synthesis_head_guidance. None when off or the model has no head."""
        scale = self.default_synthesis_head_guidance if head_guidance is None else float(head_guidance)
        findings = self.model_config.findings
        pushes = [present_push(states_from_report(r, findings)) if scale and findings else {} for r in reports]
        return self._head_bias(pushes, scale)

    def head_potential(self, image: np.ndarray, push: Mapping[str, float]) -> np.ndarray:
        """(g, g) >= 0: how far, to first order, resampling each token could move the finding head the way
        `push` ({finding: +1 up / -1 down}) asks (engines.sampling.head_guidance.head_token_potential)."""
        model = self._torch_model()
        signs = head_signs(model, push)
        codes = self._tensor([self._codes(image)])
        pot = head_token_potential(model, codes, signs)
        return pot.reshape(self.grid, self.grid).cpu().numpy().astype(np.float32)

    @property
    def reading_source(self) -> str:
        """Which component reads the findings: "reader" (engines.reader), "head" (the backbone's) or "none"."""
        if self.reader is not None:
            return "reader"
        return "head" if self.model_config.findings else "none"

    @property
    def reading_findings(self) -> tuple[str, ...]:
        """The findings the reading covers."""
        return self.reader.findings if self.reader is not None else self.model_config.findings

    def finding_probabilities(self, images: list[np.ndarray]) -> list[dict[str, float]]:
        """Per image, the engine's reading: {finding: probability} from the finding reader (calibrated) when the
        folder ships one, else from the backbone's finding head with the report fully masked at t = 1. Empty dicts
        when the weights have neither."""
        if self.reader is not None:
            return self.reader.probabilities(images)
        if not self.model_config.findings:
            return [{} for _ in images]
        return self.finding_probabilities_of_codes([self._codes(im) for im in images])

    def image_embedding(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, D) float32 image representation for scope gating and similar-case search: the reader's pooled
        features when it is shipped, else the backbone's mean image-token state after the finding layer."""
        if self.reader is not None:
            return self.reader.embed(images)
        cfg = self.model_config
        codes = self._tensor([self._codes(im) for im in images])
        text = torch.full((len(images), cfg.text_len), cfg.text_mask_id, dtype=torch.long, device=self.device)
        model = self._torch_model()
        with torch.no_grad():
            x, c = model._inputs(text, codes, torch.ones(len(images), device=self.device), None, None)
            for blk in model.blocks[: max(1, cfg.finding_layer)]:
                x, _ = blk(x, c, False)
        return x[:, cfg.text_len:].mean(1).float().cpu().numpy()

    def finding_probabilities_of_codes(self, codes: list[list[int]]) -> list[dict[str, float]]:
        """finding_probabilities for images already VQ-encoded (drafting has their codes)."""
        cfg = self.model_config
        if not cfg.findings:
            return [{} for _ in codes]
        text = torch.full((len(codes), cfg.text_len), cfg.text_mask_id, dtype=torch.long, device=self.device)
        with torch.no_grad():  # only the blocks the head reads (the same values as the full forward's)
            logits = self._torch_model().finding_logits(text, self._tensor(codes),
                                                        torch.ones(len(codes), device=self.device))
        p = torch.sigmoid(logits.float()).cpu().numpy()
        return [dict(zip(cfg.findings, map(float, row), strict=True)) for row in p]

    # -- explain hooks --------------------------------------------------------------------------------
    def _torch_model(self) -> MedimBackbone:
        return self.model

    def forward_with_attentions(self, image: np.ndarray, report: str) -> AttentionMaps:
        """Attention between the report's tokens and the image's tokens, per layer and head, with both
        given clean (t = 0): where each word looks in the image and vice versa."""
        cfg = self.model_config
        ids = self._report_ids(report)
        text = self._tensor([ids])
        image_t = self._tensor([self._codes(image)])
        with torch.no_grad():
            out = self.model(text, image_t, torch.zeros(1, device=self.device), output_attentions=True)
        att = torch.stack(out.attentions)[:, 0].float().cpu().numpy()  # (layers, heads, L, L)
        n = next((k for k, v in enumerate(ids) if v == self.tokenizer.pad_id), len(ids))
        lt = cfg.text_len
        return AttentionMaps(att[:, :, :n, lt:], att[:, :, lt:, :n],
                             [self.tokenizer.tk.id_to_token(i) or "" for i in ids[:n]], ids[:n], self.grid)

    def image_embeddings(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Image-token embeddings (1, g*g, d), a leaf tensor requiring grad: the input for Captum."""
        codes = image if isinstance(image, torch.Tensor) else self._tensor([self._codes(image)])
        return self.model.embed_image(codes.reshape(1, -1)).detach().requires_grad_(True)

    def report_log_likelihood(self, image: np.ndarray | None, report: str, *,
                              image_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Differentiable log p(report | image): every report token is masked (t = 1) and the log
        probabilities of the true tokens (section markers and [SEP] included, padding excluded) are
        summed - the one-step term of the diffusion ELBO. Pass `image_embeds` (from image_embeddings,
        possibly batched (B, g*g, d)) to attribute onto image tokens; returns shape (B,)."""
        cfg = self.model_config
        ids = torch.tensor(self._report_ids(report), dtype=torch.long, device=self.device)
        if image_embeds is None:
            if image is None:
                raise ValueError("give an image or image_embeds")
            image_embeds = self.model.embed_image(self._tensor([self._codes(image)]))
        b = image_embeds.shape[0]
        free = ids != cfg.text_pad_id
        free[0] = False  # [FINDINGS] is always given
        text_in = torch.where(free, torch.full_like(ids, cfg.text_mask_id), ids)[None].expand(b, -1)
        out = self.model(text_in, None, torch.ones(b, device=self.device), image_embeds=image_embeds, heads="text")
        logp = torch.log_softmax(out.text_logits.float(), -1)
        tok_lp = logp.gather(-1, ids[None, :, None].expand(b, -1, 1))[..., 0]
        return (tok_lp * free[None].float()).sum(-1)

    def image_token_log_likelihood(self, image: np.ndarray, report: str, *, mask_ratio: float = 0.5,
                                   draws: int = 4, seed: int = 0) -> np.ndarray:
        """(g, g) mean log p(true code | report, the other unmasked codes) over `draws` random maskings:
        compare it between two reports to find where an edit moves the image (counterfactuals)."""
        cfg = self.model_config
        text = self._tensor([self._report_ids(report)])
        codes = self._tensor([self._codes(image)])
        g = torch.Generator().manual_seed(seed)
        total = torch.zeros(cfg.image_len)
        count = torch.zeros(cfg.image_len)
        with torch.no_grad():
            for _ in range(draws):
                m = (torch.rand(cfg.image_len, generator=g) < mask_ratio).to(self.device)
                img_in = torch.where(m[None], torch.full_like(codes, cfg.image_mask_id), codes)
                t = torch.full((1,), float(m.float().mean().clamp(1e-3, 1)), device=self.device)
                out = self._net(text, img_in, t, heads="image")
                lp = torch.log_softmax(out.image_logits.float(), -1)[0].gather(-1, codes[0, :, None])[:, 0].cpu()
                total += torch.where(m.cpu(), lp, torch.zeros_like(lp))
                count += m.cpu().float()
        return (total / count.clamp_min(1)).reshape(self.grid, self.grid).numpy()
