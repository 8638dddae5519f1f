"""Third-party vision-language model (transformers image-text-to-text directory) for drafts and questions.

Loads only from local disk (`local_files_only`): LLaVA-, Gemma3- or Qwen-VL-style models saved with
`save_pretrained`. Token confidences come from the generation scores, so the report editor can tint
uncertain words the same way as for the built-in engine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from engines.backends.base import CancelFn, EngineBackend, ProgressFn, check_images
from engines.backends.errors import BackendError
from engines.backends.fingerprint import weights_fingerprint
from engines.backends.memory import memory_report, resolve_device
from engines.backends.results import TextOutput, TokenUncertainty, mean_confidence, tokens_by_section
from engines.data.images import to_uint8
from engines.errors import JobCancelled

DRAFT_PROMPT = (
    "You are a radiologist. Write the report for this chest radiograph with two sections, "
    "'Findings:' and 'Impression:'."
)
ANSWER_PROMPT = "Answer the question about this chest radiograph briefly. Question: {question}"


class HfVlmBackend(EngineBackend):
    name = "hf-vlm"
    capabilities = frozenset({"draft", "answer"})

    def __init__(self, path: str | Path = "", device: str = "auto", max_new_tokens: int = 96,
                 answer_max_new_tokens: int = 16, multi_image: bool = True, draft_prompt: str = DRAFT_PROMPT,
                 answer_prompt: str = ANSWER_PROMPT, dtype: str = "auto") -> None:
        self.path = _check_model_dir(path)
        self.device = resolve_device(device)
        self.max_new_tokens = int(max_new_tokens)
        self.answer_max_new_tokens = int(answer_max_new_tokens)
        self.supports_multi_image = bool(multi_image)
        self.draft_prompt, self.answer_prompt = draft_prompt, answer_prompt
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(self.path, local_files_only=True)
        except ImportError as exc:  # e.g. Qwen2-VL's video processor needs torchvision
            raise BackendError(_missing_package(self.path, exc)) from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"{self.path} has no usable processor (tokenizer + image processor): {exc}") from exc
        if getattr(self.processor, "image_processor", None) is None:
            raise BackendError(f"{self.path} holds a text-only processor; the hf-vlm engine needs an image processor")
        torch_dtype = _torch_dtype(dtype, self.device)
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(self.path, local_files_only=True,
                                                                     dtype=torch_dtype)
        except ImportError as exc:
            raise BackendError(_missing_package(self.path, exc)) from exc
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise BackendError(f"{self.path} is not a transformers image-text-to-text model: {exc}") from exc
        self.model.to(self.device).eval()
        self.weights_hash = weights_fingerprint(self.path)

    def describe(self) -> dict[str, Any]:
        n_params = sum(p.numel() for p in self.model.parameters())
        return {"name": self.name, "device": self.device, "model": str(self.path),
                "model_type": self.model.config.model_type, "parameters": n_params,
                "weights_hash": self.weights_hash, "memory": memory_report(self.device),
                "capabilities": sorted(self.capabilities), "supports_multi_image": self.supports_multi_image}

    def draft(self, images: list[np.ndarray], *, steps: int | None = None, guidance: float | None = None,
              seed: int = 0, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> TextOutput:
        return self._generate(images, self.draft_prompt, steps or self.max_new_tokens, seed, progress, cancel, "report")

    def answer(self, images: list[np.ndarray], question: str, *, steps: int | None = None, seed: int = 0,
               progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> TextOutput:
        if not question or not question.strip():
            raise BackendError("the question is empty")
        prompt = self.answer_prompt.format(question=question.strip())
        return self._generate(images, prompt, steps or self.answer_max_new_tokens, seed, progress, cancel, "answer")

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]

    def _generate(self, images: list[np.ndarray], prompt: str, max_new: int, seed: int,
                  progress: ProgressFn | None, cancel: CancelFn | None, mode: str) -> TextOutput:
        import torch
        from PIL import Image
        from transformers import StoppingCriteria, StoppingCriteriaList

        start = time.perf_counter()
        arrays = check_images(images)
        used = list(range(len(arrays))) if self.supports_multi_image else [0]
        pil = [Image.fromarray(to_uint8(arrays[i])).convert("RGB") for i in used]
        inputs = self.processor(images=pil, text=self._prompt(prompt, len(pil)), return_tensors="pt").to(self.device)
        stopped = {"cancelled": False}

        class _Watch(StoppingCriteria):
            """Reports each generated token and stops generation when the user cancels."""

            def __init__(self, prompt_len: int) -> None:
                self.prompt_len = prompt_len

            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kw: Any) -> torch.Tensor:
                if progress is not None:
                    progress(int(input_ids.shape[1] - self.prompt_len), max_new)
                stop = bool(cancel is not None and cancel())
                stopped["cancelled"] = stopped["cancelled"] or stop
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

        torch.manual_seed(seed)
        prompt_len = int(inputs["input_ids"].shape[1])
        if progress is not None:
            progress(0, max_new)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new, do_sample=False, output_scores=True,
                                      return_dict_in_generate=True,
                                      stopping_criteria=StoppingCriteriaList([_Watch(prompt_len)]))
        if stopped["cancelled"]:
            raise JobCancelled("cancelled")
        new_ids = out.sequences[0, prompt_len:].tolist()
        probs = [torch.softmax(s[0].float(), dim=-1) for s in out.scores]
        text, spans = self._spans(new_ids, probs, cancel)
        if progress is not None:
            progress(max_new, max_new)
        elapsed = time.perf_counter() - start
        confs = [p[2] for p in spans]
        if mode == "answer":
            lead = len(text) - len(text.lstrip())
            text = text.strip()
            tokens = [TokenUncertainty(text[max(s - lead, 0):e - lead], c, h, "answer", max(s - lead, 0), e - lead, k)
                      for s, e, c, h, k in spans if e - lead > 0 and text[max(s - lead, 0):e - lead].strip()]
            return TextOutput(text=text, tokens=tokens, confidence=mean_confidence(confs), steps=len(new_ids),
                              seed=seed, elapsed_s=elapsed, images_used=used)
        findings, impression, tokens = tokens_by_section(text, spans)
        return TextOutput(text=text, findings=findings, impression=impression, tokens=tokens,
                          confidence=mean_confidence(confs), steps=len(new_ids), seed=seed, elapsed_s=elapsed,
                          images_used=used)

    def _prompt(self, text: str, n_images: int) -> str:
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
        messages = [{"role": "user", "content": content}]
        if getattr(self.processor, "chat_template", None):
            return self.processor.apply_chat_template(messages, add_generation_prompt=True)
        token = getattr(self.processor, "image_token", None) or "<image>"
        return token * n_images + "\n" + text + "\n"

    def _spans(self, ids: list[int], probs: list[Any], cancel: CancelFn | None = None
               ) -> tuple[str, list[tuple[int, int, float, float, int]]]:
        """Decode incrementally (a short window, as streaming detokenisers do) so each token gets its
        character span in the final text in linear time; long generations stay cancellable."""
        import torch

        tok = self.processor.tokenizer
        spans, text = [], ""
        for i, (tid, p) in enumerate(zip(ids, probs, strict=False)):
            if cancel is not None and i % 64 == 63 and cancel():
                raise JobCancelled("cancelled")
            lo = max(0, i - 6)
            before = tok.decode(ids[lo:i], skip_special_tokens=True)
            after = tok.decode(ids[lo:i + 1], skip_special_tokens=True)
            piece = after[len(before):] if after.startswith(before) else after
            if i == 0 or not text:
                piece = piece.lstrip()
            entropy = float(-(p * torch.log(p.clamp_min(1e-12))).sum())
            if piece:
                spans.append((len(text), len(text) + len(piece), float(p[tid]), entropy, i))
                text += piece
        return text, spans


def _torch_dtype(name: str, device: str) -> Any:
    """'auto': bfloat16 on CUDA (large VLMs fit and run faster), float32 on CPU; or an explicit name."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    value = getattr(torch, str(name), None)
    if not isinstance(value, torch.dtype):
        raise BackendError(f"unknown dtype '{name}': use auto, float32, float16 or bfloat16")
    return value


def _check_model_dir(path: str | Path) -> Path:
    if not str(path).strip():
        raise BackendError("the hf-vlm engine needs 'engine_model_path': a local transformers model directory")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise BackendError(f"model directory {p} does not exist")
    if not (p / "config.json").is_file():
        raise BackendError(f"{p} is not a transformers model directory (no config.json)")
    return p


def _missing_package(path: Path, exc: ImportError) -> str:
    """transformers raises ImportError naming what a model family needs (Qwen2-VL: torchvision)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    name = f" '{exc.name}'" if getattr(exc, "name", None) else ""
    return (f"the model in {path} needs a Python package{name} that this installation lacks ({first}); "
            "install it into RadStation's environment (e.g. pip install torchvision) or choose another model")
