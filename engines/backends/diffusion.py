"""The built-in MeDiM-style discrete-diffusion engine (engines.pipeline.MedimPipeline) as a backend.

`runtime="onnx"` (registered as "diffusion-onnx") runs the exported backbone/decoder through onnxruntime;
everything else (tokenizers, sampling loop, uncertainty per token) is the same code path.
"""

from __future__ import annotations

import inspect
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from engines.backends.base import CancelFn, EngineBackend, ProgressFn, check_images
from engines.backends.errors import BackendError
from engines.backends.memory import memory_report
from engines.backends.results import ImageOutput, TextOutput, TokenUncertainty, mean_confidence
from engines.calibration import Calibration, entropy
from engines.default_weights import DEFAULT_WEIGHTS
from engines.qa.question_finding import question_finding
from engines.qa.scope import QuestionScope, question_scope
from engines.reading import (
    disagreements,
    effective_calibration,
    read_images,
    reading_findings,
    uncertain_statements,
)


class MedimBackend(EngineBackend):
    name = "diffusion"
    runtime = "torch"

    def __init__(self, path: str | Path = "", device: str = "auto", steps: int | None = None,
                 guidance: float | None = None, closed_questions: bool = True, cases_dir: str | Path = "",
                 cases_url: str = "", dev_cases_dir: str | Path = "", backend: str = "") -> None:
        """`backend` how the backbone runs: torch, onnx, onnx-int8 or compiled (engines.pipeline.RUNTIMES); empty: this
        class's runtime."""
        self.closed_questions = bool(closed_questions)
        self.path = Path(path).expanduser() if str(path).strip() else DEFAULT_WEIGHTS
        if not self.path.is_dir():
            raise BackendError(f"engine weights folder {self.path} does not exist; reinstall or set 'engine_model_path'")
        try:
            from engines.pipeline import MedimPipeline
        except ImportError as exc:
            raise BackendError(f"the built-in diffusion engine is not available in this build: {exc}") from exc
        kwargs: dict[str, Any] = {"device": device}
        params = inspect.signature(MedimPipeline.from_pretrained).parameters
        runtime = str(backend or self.runtime)
        if runtime != "torch":
            if "runtime" not in params:
                raise BackendError(f"this build of the diffusion engine has no '{runtime}' backend")
            kwargs["runtime"] = runtime
        try:
            self.pipe = MedimPipeline.from_pretrained(self.path, **kwargs)
        except ImportError as exc:
            raise BackendError(f"the '{self.name}' runtime is not available in this build: {exc}") from exc
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise BackendError(f"cannot load engine weights from {self.path}: {exc}") from exc
        self.steps, self.guidance = steps, guidance
        self.runtime = str(getattr(self.pipe, "runtime", runtime))  # the one running (torch when onnx is missing)
        self.device = str(getattr(self.pipe, "device", device))
        self.weights_hash = str(getattr(self.pipe, "weights_hash", ""))
        caps = {"draft", "answer", "synthesise", "inpaint"}
        if hasattr(self.pipe, "forward_with_attentions"):
            caps.add("explain")
        self.capabilities = frozenset(caps)
        self.supports_multi_image = bool(getattr(self.pipe, "supports_multi_image", True))
        # The site's similar cases (engines.similar), which sentence drafts may draw on; reloaded when it changes.
        self.cases_dir = Path(cases_dir).expanduser() if str(cases_dir).strip() else None
        self.cases_url = str(cases_url or "").strip()  # the department's index in PostgreSQL, instead of the folder
        self.cases_error = ""
        # The development index of curated training cases (setting similar_dev_index): drafts vote with it while
        # the site's own index holds fewer cases than the vote needs (sentence_decoding.cases).
        self.dev_cases_dir = Path(dev_cases_dir).expanduser() if str(dev_cases_dir).strip() else None
        self._dev_index: Any = None
        self._site_index: Any = None
        self._cases_stamp: tuple | None = None
        try:  # per-finding calibration shipped next to the weights (engines.calibration); identity when none
            self.calibration = Calibration.load(self.path)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc

    def _refresh_cases(self) -> None:
        """The index sentence drafts vote with: the site's when it holds at least the vote's `cases` studies of
        the drafts' embedding and `min_index_cases` in all, else the development index when there is one (else the
        site's, whose sentences are offered while the reader reads alone, or none)."""
        if not hasattr(self.pipe, "case_index"):
            return
        self._refresh_site_cases()
        settings = getattr(self.pipe, "decode_settings", None)
        need = max(int(getattr(settings, "cases", 1) or 1), int(getattr(settings, "min_index_cases", 0) or 0))
        site = self.pipe.case_index
        try:
            if site is not None and site is not self._dev_index and len(site) >= need:
                return
        except OSError as exc:  # the department's database went away: vote without it
            self.pipe.case_index = None
            self.cases_error = f"similar cases not used: {exc}"
        dev = self._development_index()
        if dev is not None and len(dev) >= need:
            self.pipe.case_index = dev

    def _development_index(self) -> Any:
        """The development index folder's index of the drafts' embedding (`DIR`, or `DIR/<embedding>` as
        lab.build.case_index writes it), loaded once; None when there is none."""
        from engines.similar.embeddings import index_name
        from engines.similar.index import CASES, VECTORS, CaseIndex

        if self.dev_cases_dir is None:
            return None
        kind = getattr(getattr(self.pipe, "decode_settings", None), "case_embedding", "image-tokens")
        if self._dev_index is None or self._dev_index.embedder != index_name(kind):
            folder = self.dev_cases_dir if kind == "image-tokens" else self.dev_cases_dir / kind
            if not ((folder / VECTORS).is_file() and (folder / CASES).is_file()):
                return None
            try:
                self._dev_index = CaseIndex.load(folder)
            except (OSError, ValueError) as exc:  # a broken development index must not stop drafting
                self.cases_error = f"development cases not used: {exc}"
                self.dev_cases_dir = None
                return None
        return self._dev_index

    def _refresh_site_cases(self) -> None:
        from engines.similar.index import CASES, VECTORS, CaseIndex

        if self.cases_dir is None and not self.cases_url:
            return
        kind = getattr(getattr(self.pipe, "decode_settings", None), "case_embedding", "image-tokens")
        if self.cases_url:  # a live database index: nothing to reload, only to open once
            from engines.similar.embeddings import index_name
            from engines.similar.pg_index import shared_index

            try:
                self.pipe.case_index = shared_index(self.cases_url, index_name(kind))
                self.cases_error = ""
            except LookupError:  # nothing indexed with this embedding yet
                self.pipe.case_index = None
            except (OSError, ValueError, RuntimeError) as exc:  # pgvector missing, database down: draft without
                self.pipe.case_index = None
                self.cases_error = f"similar cases not used: {exc}"
            return
        folder = self.cases_dir if kind == "image-tokens" else self.cases_dir / kind  # as index_case writes them
        files = [folder / VECTORS, folder / CASES]
        stamp = tuple(f.stat().st_mtime_ns if f.is_file() else 0 for f in files)
        if stamp == self._cases_stamp:
            if self.pipe.case_index is self._dev_index and self._dev_index is not None:
                self.pipe.case_index = self._site_index  # the site's, as loaded (the caller picks again)
            return
        self._cases_stamp = stamp
        self._site_index = None
        if not all(stamp):
            self.pipe.case_index = None
            return
        try:
            self.pipe.case_index = self._site_index = CaseIndex.load(folder)
            self.cases_error = ""
        except (OSError, ValueError) as exc:  # a broken index must not stop drafting: draft without it
            self.pipe.case_index = None
            self.cases_error = f"similar cases not used: {exc}"

    @property
    def findings(self) -> tuple[str, ...]:
        return reading_findings(self.pipe)

    def question_scope(self, question: str) -> QuestionScope:
        """With a finding head, only yes/no questions about one of its findings (engines.qa.scope)."""
        return question_scope(question, self.findings or None)

    def reading(self, images: list[np.ndarray]) -> dict[str, dict[str, Any]]:
        """The engine's reading of a study (engines.reading.read_images) with the shipped calibration."""
        with _as_backend_error():
            return read_images(self.pipe, check_images(images), self.calibration)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "runtime": self.runtime, "device": self.device, "model": str(self.path),
                "weights_hash": self.weights_hash, "memory": memory_report(self.device),
                "capabilities": sorted(self.capabilities), "supports_multi_image": self.supports_multi_image,
                "runtime_error": str(getattr(self.pipe, "runtime_error", "") or "")}  # why the asked-for one is not

    def draft(self, images: list[np.ndarray], *, steps: int | None = None, guidance: float | None = None,
              seed: int = 0, progress: ProgressFn | None = None, cancel: CancelFn | None = None,
              mode: str | None = None, section_order: list[str] | None = None) -> TextOutput:
        """`mode` "sentences" (the weights' default) or "free"; `section_order` the template's findings
        sections (engines.sentences.sections)."""
        arrays = check_images(images)
        used = list(range(len(arrays))) if self.supports_multi_image else [0]
        self._refresh_cases()
        kw = _kw(steps=steps or self.steps, guidance=self.guidance if guidance is None else guidance, seed=seed,
                 progress=progress, cancel=cancel, mode=mode, section_order=section_order)
        try:
            with _as_backend_error():
                res = self.pipe.draft_report([arrays[i] for i in used], **kw)
        except OSError as exc:  # the department's similar-case database went away mid-draft: draft without it
            if not self.cases_url or self.pipe.case_index is None:
                raise
            self.pipe.case_index = None
            self.cases_error = f"similar cases not used: {exc}"
            with _as_backend_error():
                res = self.pipe.draft_report([arrays[i] for i in used], **kw)
        out = _text_output(res, used)
        if self.cases_error:
            out.extra["cases_error"] = self.cases_error
        if self.findings:  # one reading: the head's calibrated probabilities next to what the draft states
            reading = self.reading([arrays[i] for i in used])
            out.extra["reading"] = reading
            out.extra["calibration_band"] = list(self.calibration.band)
            out.extra["disagreements"] = [d.to_dict() for d in disagreements(reading, out.text)]
            out.extra["stated_uncertain"] = [u.to_dict() for u in uncertain_statements(reading, out.text)]
        return out

    def answer(self, images: list[np.ndarray], question: str, *, steps: int | None = None, seed: int = 0,
               progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> TextOutput:
        """Yes/no questions are scored (closed_answer: one forward pass, a calibrated yes-vs-no confidence);
        other questions are answered by iterative unmasking of the answer segment."""
        if not question or not question.strip():
            raise BackendError("the question is empty")
        arrays = check_images(images)
        asked = self.question_scope(question).finding if self.findings else None
        if asked is not None:  # a question about one finding of the head: its calibrated reading answers it
            return self._head_answer(arrays[0], asked, time.perf_counter(), progress)
        if self.closed_questions and is_yes_no_question(question):
            return self.closed_answer(arrays[0], question, ("yes", "no"), progress=progress)
        with _as_backend_error():
            res = self.pipe.answer(arrays[0], question.strip(), **_kw(steps=steps or self.steps, seed=seed,
                                                                      progress=progress, cancel=cancel))
        tokens = [TokenUncertainty(t.text, float(t.confidence), float(t.entropy), "answer", int(t.char_start),
                                   int(t.char_end), int(t.step)) for t in res.tokens]
        return TextOutput(text=res.text.strip(), tokens=tokens, confidence=mean_confidence([t.confidence for t in tokens]),
                          steps=int(res.steps), seed=int(res.seed), elapsed_s=float(res.elapsed_s), images_used=[0])

    def closed_answer(self, image: np.ndarray, question: str, candidates: tuple[str, ...],
                      progress: ProgressFn | None = None) -> TextOutput:
        """Pick the candidate answer the model finds most likely: the answer segment is fully masked (t = 1)
        and each candidate's tokens (with the closing [SEP]) are scored in one forward pass, as the
        one-step term of the diffusion ELBO. Confidence is the candidates' renormalised probability."""
        import torch

        from engines.diffusion.layout import qa_row

        t0 = time.perf_counter()
        pipe, cfg = self.pipe, self.pipe.model_config
        if progress is not None:
            progress(0, 1)
        finding = question_finding(question, pipe.reading_findings) if set(candidates) == {"yes", "no"} else None
        if finding is not None:
            return self._head_answer(image, finding, t0, progress)
        with _as_backend_error():
            rows = [qa_row(pipe.tokenizer, question.strip(), c, cfg.text_len) for c in candidates]
            prefix = rows[0].prefix_len
            masked = rows[0].ids[:prefix] + [cfg.text_mask_id] * (cfg.text_len - prefix)
            codes = [pipe.image_codes(image)]  # cached: several questions about one image encode it once
        text = torch.tensor([masked], dtype=torch.long, device=pipe.device)
        img = torch.as_tensor(codes, dtype=torch.long, device=pipe.device)
        with torch.no_grad():
            logits = pipe.model(text, img, torch.ones(1, device=pipe.device), heads="text").text_logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        scores = []
        for row in rows:
            end = row.ids.index(pipe.tokenizer.pad_id) if pipe.tokenizer.pad_id in row.ids else len(row.ids)
            pos = torch.arange(prefix, end, device=logp.device)
            scores.append(float(logp[pos, torch.tensor(row.ids[prefix:end], device=logp.device)].sum()))
        probs = torch.softmax(torch.tensor(scores), dim=0)
        best = int(probs.argmax())
        if progress is not None:
            progress(1, 1)
        answer = candidates[best]
        conf = float(probs[best])
        entropy = float(-(probs * probs.clamp_min(1e-12).log()).sum())
        return TextOutput(text=answer, tokens=[TokenUncertainty(answer, conf, entropy, "answer", 0, len(answer), 0)],
                          confidence=conf, steps=1, seed=0, elapsed_s=time.perf_counter() - t0, images_used=[0],
                          extra={"mode": "closed", "scores": dict(zip(candidates, scores, strict=True))})

    def _head_answer(self, image: np.ndarray, finding: str, t0: float, progress: ProgressFn | None) -> TextOutput:
        """Yes / no / uncertain from the engine's reading (the finding reader when shipped, else the backbone's
        finding head; the answer segment's own yes/no ranks findings at 0.27-0.74 AUROC on val:
        lab.eval.vqa_backends), on its calibrated probability: inside the calibration's uncertain band the
        answer is "uncertain", not a forced yes or no. `confidence` is the probability of the answer given (of
        "yes" for uncertain)."""
        with _as_backend_error():
            raw = float(self.pipe.finding_probabilities([image])[0][finding])
        if progress is not None:
            progress(1, 1)
        cal, pre_calibrated = effective_calibration(self.pipe, self.calibration)
        p = min(max(float(cal.apply({finding: raw})[finding]), 1e-6), 1 - 1e-6)
        prior = cal.prior(finding, (getattr(self.pipe, "finding_prior", {}) or {}).get(finding))
        answer = cal.answer(p, prior, finding)
        conf = 1 - p if answer == "no" else p
        return TextOutput(text=answer, tokens=[TokenUncertainty(answer, conf, entropy(p), "answer", 0, len(answer), 0)],
                          confidence=conf, steps=1, seed=0, elapsed_s=time.perf_counter() - t0, images_used=[0],
                          extra={"mode": f"finding {getattr(self.pipe, 'reading_source', 'head')}", "finding": finding,
                                 "probability": p, "raw_probability": raw,
                                 "calibrated": pre_calibrated or cal.is_calibrated(finding),
                                 "prevalence": None if prior is None else float(prior),
                                 "uncertain_band": list(self.calibration.band),
                                 "scores": {"yes": math.log(p), "no": math.log(1 - p)}})

    def synthesise(self, report: str, *, steps: int | None = None, guidance: float | None = None, seed: int = 0,
                   progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> ImageOutput:
        if not report or not report.strip():
            raise BackendError("the report to synthesise from is empty")
        with _as_backend_error():
            res = self.pipe.synthesise(report, **_kw(steps=steps or self.steps,
                                                 guidance=self.guidance if guidance is None else guidance,
                                                         seed=seed, progress=progress, cancel=cancel))
        return _image_output(res, seed)

    def inpaint(self, image: np.ndarray, token_mask: np.ndarray, report: str, *, steps: int | None = None,
                guidance: float | None = None, seed: int = 0, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> ImageOutput:
        with _as_backend_error():
            res = self.pipe.inpaint(check_images([image])[0], np.asarray(token_mask, dtype=bool), report,
                                    **_kw(steps=steps or self.steps, guidance=self.guidance if guidance is None else guidance,
                                          seed=seed, progress=progress, cancel=cancel))
        return _image_output(res, seed)

    def explain(self, images: list[np.ndarray], text: str, *, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> dict[str, np.ndarray]:
        """Attention from the text's tokens to the image's tokens (mean over layers, heads and words), 0..1."""
        if "explain" not in self.capabilities:
            raise self._unsupported("explain")
        with _as_backend_error():
            att = self.pipe.forward_with_attentions(check_images(images)[0], text)
        grid = int(att.grid)
        amap = np.asarray(att.text_to_image, dtype=np.float32).mean(axis=(0, 1, 2)).reshape(grid, grid)
        span = float(amap.max() - amap.min())
        return {"attention": (amap - amap.min()) / span if span > 0 else np.zeros_like(amap)}

    def close(self) -> None:
        if self.pipe is not None:
            self.pipe.close()  # the compiled runtime's compile thread
        self.pipe = None


_YES_NO = re.compile(r"^\s*(is|are|does|do|did|can|could|has|have|was|were|will|would|should)\b", re.IGNORECASE)
_OPEN = re.compile(r"\b(what|where|which|how|why|who|when)\b|\bor\b", re.IGNORECASE)
_PARENTHESES = re.compile(r"\([^()]*\)")


def is_yes_no_question(question: str) -> bool:
    """'Is there an effusion?' and 'Is there a lung lesion (nodule or mass)?' yes; 'Is it left or right?' and
    'Where is it?' no. An "or" inside parentheses glosses a term rather than offering a choice."""
    return bool(_YES_NO.search(question)) and not _OPEN.search(_PARENTHESES.sub(" ", question))


class MedimOnnxBackend(MedimBackend):
    name = "diffusion-onnx"
    runtime = "onnx"


@contextmanager
def _as_backend_error() -> Iterator[None]:
    """The engine validates inputs with ValueError/TypeError; the UI shows those messages as they are."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise BackendError(str(exc)) from exc


def _kw(**values: Any) -> dict[str, Any]:
    """Drop None so the pipeline's own defaults apply."""
    return {k: v for k, v in values.items() if v is not None}


def _text_output(res: Any, used: list[int]) -> TextOutput:
    """Map the engine's TextResult (offsets into `text`) onto section-relative token spans."""
    text, findings, impression = res.text, (res.findings_text or "").strip(), (res.impression_text or "").strip()
    f_off = text.find(findings) if findings else -1
    i_off = text.find(impression, max(f_off, 0) + len(findings)) if impression else -1
    tokens: list[TokenUncertainty] = []
    for t in res.tokens:
        for section, body, off in (("findings", findings, f_off), ("impression", impression, i_off)):
            if off < 0:
                continue
            s, e = max(int(t.char_start) - off, 0), min(int(t.char_end) - off, len(body))
            if e > s and body[s:e].strip():
                tokens.append(TokenUncertainty(body[s:e], float(t.confidence), float(t.entropy), section, s, e,
                                               int(t.step)))
                break
    consensus = getattr(res, "consensus", None)
    extra = {"consensus_drafts": int(consensus[0]), "consensus_agreement": float(consensus[1])} if consensus else {}
    states = getattr(res, "finding_states", None)
    if states:  # a finding-conditioned draft: what it was told the image shows
        extra["told_findings"] = [f for f, v in states.items() if v == 1.0]
    extra["draft_mode"] = str(getattr(res, "mode", "free"))
    if getattr(res, "sentences", None) is not None:  # sentence drafts: each sentence, its confidence, provenance
        extra["sentences"] = list(res.sentences)
        extra["reading"] = dict(res.reading or {})
    probs = getattr(res, "finding_probabilities", None)
    if probs:  # the reader's probabilities (recorded in the AI results SR)
        extra["finding_probabilities"] = {f: round(float(p), 4) for f, p in probs.items()}
    return TextOutput(text=text, findings=findings, impression=impression, tokens=tokens,
                      confidence=mean_confidence([t.confidence for t in tokens]), steps=int(res.steps),
                      seed=int(res.seed), elapsed_s=float(res.elapsed_s), images_used=used, extra=extra)


def _image_output(res: Any, seed: int) -> ImageOutput:
    maps = {k: np.asarray(getattr(res, k)) for k in ("token_grid", "token_confidence", "token_entropy")
            if getattr(res, k, None) is not None}
    return ImageOutput(image=np.asarray(res.image, dtype=np.uint8), steps=int(getattr(res, "steps", 0)),
                       seed=int(getattr(res, "seed", seed)), elapsed_s=float(getattr(res, "elapsed_s", 0.0)), maps=maps)
