"""`radstation engine draft FILE... | ask FILE QUESTION`: the engine's decisions from the command line, made
by the same code as the workstation's worker (engines.scope.guard.run_gated): the input gate, the question
scope and the calibrated reading.

Exit codes: 0 done; 3 an input out of scope or a question refused (nothing produced for it) unless
`--override` (then audited as `ai_scope_override`); 2 a file that cannot be read or an engine that cannot
load.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OUT_OF_SCOPE = 3


def register(actions: Any) -> None:
    d = actions.add_parser("draft", help="draft a report for each DICOM file (the input gate applies; exit 3 when "
                                         "one is out of scope)")
    d.add_argument("files", nargs="+", type=Path)
    d.add_argument("--override", action="store_true",
                   help="draft out-of-scope files too (recorded in the audit log)")
    _common(d)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--steps", type=int, default=None, help="unmasking steps (default: the model's)")
    d.set_defaults(func=_draft)
    a = actions.add_parser("ask", help="ask a yes/no question about one finding in a DICOM file (exit 3 when "
                                       "refused or out of scope)")
    a.add_argument("file", type=Path)
    a.add_argument("question")
    a.add_argument("--override", action="store_true", help="answer although the file is out of scope (audited)")
    _common(a)
    a.set_defaults(func=_ask)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", help="backend name (default: the 'engine' setting)")
    p.add_argument("--model", help="model directory (default: the 'engine_model_path' setting)")
    p.add_argument("--user", default="console", help="who is running it, for the audit log of an override")
    p.add_argument("--db", default=None, help="database URL for the audit log (default: the configured one)")
    p.add_argument("--json", action="store_true", help="print one JSON object per file instead of text")


def _backend(args: argparse.Namespace):
    from app.ai.engine_settings import engine_from_settings
    from app.settings import Settings
    from engines.backends import create_backend

    name, config = engine_from_settings(Settings())
    name = args.engine or name
    if args.model:
        config["path"] = args.model
    threads = config.pop("threads", None)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    return name, create_backend(name, **config)


def _images(path: Path) -> list[Any]:
    """The file's image(s) as the app reads them (StudyImage with its header); a non-DICOM raster has none."""
    from app.ai.study_images import StudyImage, load_study_images
    from engines.data.images import is_dicom, load_image_array
    from engines.data.sample import ImageDecodeError

    if not path.is_file():
        raise ValueError("file not found")
    if is_dicom(path):
        images = load_study_images([path])
        if not images:
            raise ValueError("no single-frame image could be decoded from this DICOM file")
        return images
    try:
        return [StudyImage(load_image_array(path), label=path.name)]
    except ImageDecodeError as exc:
        raise ValueError(str(exc)) from exc


def _audit(args: argparse.Namespace, path: Path, job: str, scope: dict[str, Any]) -> None:
    from app.ai.scope import overridden, record_override
    from app.commands.reports import _db

    if not overridden(scope):
        return
    db = _db(args)
    try:
        record_override(db, args.user, str(path), job, scope)
    finally:
        db.dispose()


def _reading_lines(reading: dict[str, Any]) -> list[str]:
    rows = sorted(reading.items(), key=lambda kv: -float(kv[1].get("probability", 0)))
    return [f"  {f}: {r['answer']} ({float(r['probability']):.0%}{'' if r.get('calibrated') else ', uncalibrated'}"
            + (f"; usual {float(r['prevalence']):.0%}" if r.get("prevalence") is not None else "") + ")"
            for f, r in rows]


def _draft(args: argparse.Namespace) -> int:
    from app.ai.scope import gate_params
    from engines.backends import BackendError
    from engines.backends.results import OutOfScope
    from engines.scope.guard import run_gated
    from engines.worker.requests import DraftRequest, RequestError

    try:
        name, backend = _backend(args)
    except BackendError as exc:
        print(f"engine is not usable: {exc}", file=sys.stderr)
        return 2
    code = 0
    for path in args.files:
        try:
            images = _images(path)
        except ValueError as exc:
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            code = max(code, 2)
            continue
        try:
            request = DraftRequest(images=tuple(im.pixels for im in images), seed=args.seed, steps=args.steps,
                                   **gate_params(images, args.override))
            result = run_gated(backend, request)
        except (BackendError, RequestError) as exc:
            print(f"{path}: not drafted: {exc}", file=sys.stderr)
            code = max(code, 2)
            continue
        scope = result.scope.to_dict() if result.scope is not None else {}
        if isinstance(result, OutOfScope):
            code = max(code, EXIT_OUT_OF_SCOPE)
            print(json.dumps({"file": str(path), "out_of_scope": True, "scope": scope}) if args.json
                  else f"{path}: out of scope: {scope.get('reason', '')}")
            continue
        _audit(args, path, "draft", scope)
        draft = result.to_json()  # the CLI's edge: what it prints
        extra = draft.get("extra") or {}
        if args.json:
            print(json.dumps({"file": str(path), "engine": name, "text": draft.get("text", ""),
                              "findings": draft.get("findings", ""), "impression": draft.get("impression", ""),
                              "scope": scope, "reading": extra.get("reading"),
                              "disagreements": extra.get("disagreements"),
                              "stated_uncertain": extra.get("stated_uncertain")}, default=str))
            continue
        lines = [f"{path}: {scope.get('summary', '')}",
                 f"FINDINGS: {draft.get('findings', '')}", f"IMPRESSION: {draft.get('impression', '')}"]
        if extra.get("reading"):
            lines += ["Engine's reading (calibrated probability):"] + _reading_lines(extra["reading"])
        lines += [f"Disagreement: {d['sentence']}" for d in extra.get("disagreements") or []]
        lines += [f"Stated although the reading is uncertain: {u['sentence']}"
                  for u in extra.get("stated_uncertain") or []]
        print("\n".join(lines))
    return code


def _ask(args: argparse.Namespace) -> int:
    from app.ai.scope import gate_params
    from engines.backends import BackendError
    from engines.backends.results import OutOfScope, Refused
    from engines.scope.guard import run_gated
    from engines.worker.requests import AnswerRequest, RequestError

    try:
        images = _images(args.file)
    except ValueError as exc:
        print(f"{args.file}: cannot read: {exc}", file=sys.stderr)
        return 2
    try:
        _name, backend = _backend(args)
        request = AnswerRequest(images=tuple(im.pixels for im in images), question=args.question,
                                **gate_params(images, args.override))
        typed = run_gated(backend, request)
    except (BackendError, RequestError) as exc:
        print(f"not answered: {exc}", file=sys.stderr)
        return 2
    result = typed.to_json()  # the CLI's edge: what it prints
    scope = result.get("scope") or {}
    if args.json:
        print(json.dumps({"file": str(args.file), "question": args.question, **{
            k: result.get(k) for k in ("kind", "text", "confidence", "reason", "can_answer", "extra")},
            "scope": scope}, default=str))
    if isinstance(typed, Refused):
        if not args.json:
            print(f"refused: {typed.reason}. {typed.can_answer}".strip())
        return EXIT_OUT_OF_SCOPE
    if isinstance(typed, OutOfScope):
        if not args.json:
            print(f"out of scope: {scope.get('reason', '')}")
        return EXIT_OUT_OF_SCOPE
    _audit(args, args.file, "answer", scope)
    if not args.json:
        extra = result.get("extra") or {}
        answer = str(result.get("text", "")).strip()
        if "probability" in extra:
            cal = "calibrated" if extra.get("calibrated") else "uncalibrated"
            prev = extra.get("prevalence")
            usual = f"; usual {float(prev):.0%}" if prev is not None else ""
            print(f"{answer} (probability of {str(extra.get('finding', '')).lower()} {float(extra['probability']):.0%}, "
                  f"{cal}{usual})")
        else:
            print(f"{answer} (confidence {float(result.get('confidence') or 0):.0%})")
        if scope.get("summary") and (scope.get("override") or not scope.get("in_scope", True)):
            print(scope["summary"])
    return 0
