"""onnxruntime execution path for MedimPipeline (runtime="onnx", and "onnx-int8": drafting's forwards in int8).

Wraps the exported sessions in callables with the torch modules' signatures, so the sampler and the
jobs stay the same; graphs are exported on first use and reused while the weights hash matches. It is
given the pipeline's parts and hands back the callables; the pipeline installs them itself, so this
module never imports the pipeline (an import-linter contract keeps the two out of a cycle).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.export.onnx_export import (
    BACKBONE_ONNX,
    DECODER_ONNX,
    INT8_RECIPE,
    INT8_RELATIVE_TOLERANCE,
    INT8_ROWS_ONNX,
    OPSET,
    PARITY_FILE,
    ROWS_ONNX,
    _session,
    export_backbone,
    export_backbone_rows,
    export_vq_decoder,
    quantize_rows,
    rows_parity,
)
from engines.models.backbone import BackboneOutput

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "int8")  # of the drafting graph (onnx_runtime)


class OnnxBackbone:
    """Callable like MedimBackbone(text_ids, image_ids, t) -> BackboneOutput, run by onnxruntime: drafting's calls
    (heads="text" with text_rows) by the rows graph, every other by the full one."""

    def __init__(self, path: Path, config, rows_path: Path | None = None) -> None:
        self.session = _session(path)
        self.rows_session = _session(rows_path) if rows_path is not None else None
        self.config = config

    def __call__(self, text_ids: torch.Tensor, image_ids: torch.Tensor, t: torch.Tensor,
                 finding_states: torch.Tensor | None = None, heads: str = "both",
                 text_rows: torch.Tensor | None = None, **_: object) -> BackboneOutput:
        dev = text_ids.device
        feed = {"text_ids": text_ids.cpu().numpy().astype(np.int64),
                "image_ids": image_ids.cpu().numpy().astype(np.int64), "t": t.cpu().numpy().astype(np.float32)}
        if self.config.finding_condition:  # the graph always takes them; NaN = not told
            if finding_states is None:
                finding_states = torch.full((text_ids.shape[0], len(self.config.findings)), float("nan"))
            feed["finding_states"] = finding_states.cpu().numpy().astype(np.float32)
        elif finding_states is not None:
            raise ValueError("this model was not trained with finding conditioning")
        if heads == "text" and text_rows is not None and self.rows_session is not None:
            feed["text_rows"] = text_rows.cpu().numpy().astype(np.int64)
            return BackboneOutput(torch.from_numpy(self.rows_session.run(None, feed)[0]).to(dev), None)
        lt, li = self.session.run(None, feed)
        return BackboneOutput(torch.from_numpy(lt).to(dev), torch.from_numpy(li).to(dev))


class OnnxDecoder:
    def __init__(self, path: Path) -> None:
        self.session = _session(path)

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"codes": codes.cpu().numpy().astype(np.int64)})[0]
        return torch.from_numpy(out)


@dataclass
class OnnxRuntime:
    """The onnxruntime stand-ins for a pipeline's backbone and VQ decoder, and the export's parity figures."""

    backbone: OnnxBackbone
    decoder: OnnxDecoder
    parity: dict[str, Any]
    precision: str = "fp32"  # of the drafting graph that runs (int8 asked for but refused: fp32)
    precision_error: str = ""  # why the int8 drafting graph asked for is not the one running


def _default_dir(model_path: Path, weights_hash: str) -> Path:
    d = model_path / "onnx"
    if os.access(model_path, os.W_OK):
        return d
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "radstation" / "onnx"
    return cache / weights_hash[:16]


def _check_device(device: Any) -> None:
    """onnxruntime runs where the pipeline's device is: the CPU, or a CUDA GPU through onnxruntime-gpu. A GPU that
    onnxruntime cannot use is refused, so the pipeline keeps the backbone on it with torch instead of running it on
    the CPU."""
    import onnxruntime as ort

    kind = torch.device(device).type
    if kind == "cpu" or (kind == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()):
        return
    raise RuntimeError(f"this onnxruntime cannot run on {kind} (for CUDA install onnxruntime-gpu); "
                       "the backbone stays on it with torch")


def _write_parity(path: Path, parity: dict[str, Any]) -> None:
    tmp = path.with_name(f"{PARITY_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(parity, indent=2))
    os.replace(tmp, path)


def _quantizer_version() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}"


def _cpu_int8_dot() -> str:
    """'' where the CPU has the VNNI 8-bit dot products onnxruntime's int8 matrix products were measured with
    (AVX-512 VNNI; AVX-VNNI is the same at 256 bits), else why not: elsewhere MLAS multiplies 8-bit integers with
    AVX2 instructions that can saturate with full-range int8 weights, and nobody has measured it (numpy's runtime
    CPU feature detection, on every OS)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as features
    if features.get("AVX512VNNI") or features.get("AVXVNNI"):
        return ""
    return "this CPU has no VNNI 8-bit dot products (AVX-512 VNNI or AVX-VNNI), where int8 drafting was measured"


def _int8_rows(model: torch.nn.Module, out: Path, parity: dict[str, Any], device: Any) -> tuple[Path | None, str]:
    """The int8 drafting graph (quantised on first use, again when the weights, the opset, the quantiser or the
    recipe change) if it passes parity with torch, else (None, why). Its record in parity.json ("rows_int8") keeps
    the figures and the verdict, so a graph that failed is not quantised again at every start."""
    if torch.device(device).type != "cpu":
        return None, f"int8 drafting runs on the CPU only, not {torch.device(device).type}"
    if why := _cpu_int8_dot():
        return None, why
    made_by = {"weights_sha256": parity.get("weights_sha256"), "opset": OPSET, "quantizer": _quantizer_version(),
               "recipe": INT8_RECIPE}
    rec = parity.get("rows_int8") or {}
    path = out / INT8_ROWS_ONNX
    if any(rec.get(k) != v for k, v in made_by.items()) or not path.exists():
        try:
            nodes = quantize_rows(out / ROWS_ONNX, path)
            check = rows_parity(model, path)
        finally:
            model.to(device)
        bound = INT8_RELATIVE_TOLERANCE * check["max_abs_logit"]
        rec = {**made_by, "quantized_matmuls": nodes, **check, "tolerance": bound,
               "ok": bool(check["max_abs_diff"] <= bound)}
        parity["rows_int8"] = rec
        _write_parity(out / PARITY_FILE, parity)
    if not rec.get("ok"):
        return None, (f"int8 drafting graph failed parity with torch (max logit diff {rec.get('max_abs_diff'):.3g} > "
                      f"tolerance {rec.get('tolerance'):.3g})")
    return path, ""


def onnx_runtime(model: torch.nn.Module, vq: Any, model_path: Path, weights_hash: str, device: Any,
                 onnx_dir: str | Path | None = None, precision: str = "fp32") -> OnnxRuntime:
    """Export the backbone and decoder if needed (or if the weights or the graphs' opsets changed) and open them in
    onnxruntime.

    `model`/`vq` are moved back to `device` after an export; `onnx_dir` defaults to `<model_path>/onnx`, or
    a per-user cache named by the weights hash when the model folder is read-only. precision="int8" drafts with the
    int8 copy of the drafting graph (`_int8_rows`); where quantising fails or its parity does not hold, it drafts
    with the float32 graph and says why (`precision_error`, and a log line) instead of failing."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    _check_device(device)
    out = Path(onnx_dir) if onnx_dir is not None else _default_dir(Path(model_path), weights_hash)
    out.mkdir(parents=True, exist_ok=True)
    parity_path = out / PARITY_FILE
    try:
        parity = json.loads(parity_path.read_text()) if parity_path.exists() else {}
    except (OSError, ValueError):  # unreadable or half written by another worker: export again
        parity = {}
    made_by = {"weights_sha256": weights_hash, "opset": OPSET}
    if any(parity.get(k) != v for k, v in made_by.items()) or not all(
            (out / f).exists() for f in (BACKBONE_ONNX, ROWS_ONNX, DECODER_ONNX)):
        parity = {"backbone_max_abs_diff": export_backbone(model, out / BACKBONE_ONNX),
                  "backbone_rows_max_abs_diff": export_backbone_rows(model, out / ROWS_ONNX),
                  "vq_decoder_max_abs_diff": export_vq_decoder(vq, out / DECODER_ONNX),
                  **made_by}
        model.to(device)
        vq.to(device)
        _write_parity(parity_path, parity)
    rows, why = out / ROWS_ONNX, ""
    if precision == "int8":
        try:
            int8, why = _int8_rows(model, out, parity, device)
        except Exception as exc:  # noqa: BLE001 - no quantiser, or it failed: the float32 graph still drafts
            int8, why = None, f"int8 quantisation failed: {type(exc).__name__}: {exc}".splitlines()[0]
        if int8 is not None:
            try:
                backbone = OnnxBackbone(out / BACKBONE_ONNX, model.config, int8)
            except Exception as exc:  # noqa: BLE001 - a damaged file: quantised again at the next start
                parity.pop("rows_int8", None)
                _write_parity(parity_path, parity)
                why = f"cannot open the int8 drafting graph: {type(exc).__name__}: {exc}".splitlines()[0]
            else:
                return OnnxRuntime(backbone, OnnxDecoder(out / DECODER_ONNX), parity, "int8", "")
        log.warning("engine backend 'onnx-int8' unavailable (%s): drafting with the float32 onnx graph", why)
    return OnnxRuntime(OnnxBackbone(out / BACKBONE_ONNX, model.config, rows), OnnxDecoder(out / DECODER_ONNX),
                       parity, "fp32", why)
