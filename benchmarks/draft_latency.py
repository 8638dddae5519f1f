"""Time from clicking "Draft report" to the drafted text on screen, through the real app path:
AiPanel button -> EngineClient -> worker process -> backend -> draftReady -> text set in a visible
text editor and painted. Prints a table (cold = first draft incl. worker start and model load; warm =
median of the following drafts).

    QT_QPA_PLATFORM=offscreen python benchmarks/draft_latency.py --engine diffusion --threads 2 --repeats 5

Defaults: the built-in engine with its shipped weights on CPU, 2 threads, the first val image of
../shared/data/cxr (a synthetic image when the data is absent). --device cuda for a GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _image(data: Path | None) -> tuple[np.ndarray, str]:
    try:
        from lab.data.cxr import load_cxr

        ds = load_cxr(data, splits=("val",), limit=1)
        s = ds.samples[0] if hasattr(ds, "samples") else list(ds)[0]
        return s.load_image(), f"val image {s.image_id}"
    except Exception as exc:  # noqa: BLE001 - no data here: time the same path on a synthetic image
        print(f"(no real image: {exc}; using a synthetic 256x256 image)", file=sys.stderr)
        return np.random.default_rng(0).random((256, 256)).astype(np.float32), "synthetic 256x256"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engine", default="diffusion")
    p.add_argument("--model", default="", help="model folder (default: the engine's default weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--repeats", type=int, default=5, help="warm drafts after the first")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args(argv)

    from PySide6.QtCore import QElapsedTimer, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QPlainTextEdit, QSplitter

    from app.ai.drafting import DraftService
    from app.ai.engine_client import EngineClient
    from app.ai.study_images import StudyImage
    from app.widgets.ai_panel import AiPanel

    app = QApplication.instance() or QApplication(sys.argv)
    config = {"device": args.device, "threads": args.threads, **({"path": args.model} if args.model else {})}
    client = EngineClient(args.engine, config)
    drafts = DraftService(client, steps=args.steps)
    panel = AiPanel(client, drafts)
    editor = QPlainTextEdit()  # stands in for the report editor pane: the time is to text painted on screen
    window = QSplitter()
    window.addWidget(panel)
    window.addWidget(editor)
    window.resize(1000, 600)
    window.show()
    pixels, image_desc = _image(args.data)
    panel.set_study("1.2.826.0.1.3680043.10.1", [StudyImage(pixels, "1.2.3", "DX", "PA", "PA")])

    timer = QElapsedTimer()
    state: dict = {}

    def on_draft(uid: str, draft: dict) -> None:
        editor.setPlainText(f"FINDINGS: {draft['findings']}\n\nIMPRESSION: {draft['impression']}")
        editor.repaint()  # painted, not just queued
        state["ms"] = timer.elapsed()
        state["draft"] = draft

    def on_fail(uid: str, message: str) -> None:
        state["error"] = message

    panel.draftReady.connect(on_draft)
    drafts.draftFailed.connect(on_fail)
    times: list[float] = []
    for _ in range(1 + args.repeats):
        state.clear()
        timer.start()
        QTest.mouseClick(panel.draft_button, Qt.MouseButton.LeftButton)
        deadline = time.monotonic() + args.timeout
        while "ms" not in state and "error" not in state and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.001)
        if "error" in state or "ms" not in state:
            print(f"draft failed: {state.get('error', 'timed out')}", file=sys.stderr)
            client.shutdown()
            return 1
        times.append(state["ms"] / 1000.0)
    st = client.last_status
    client.shutdown()
    warm = times[1:]
    prov = state["draft"]["provenance"]
    rows = [("engine", args.engine), ("model", str(st.get("model", ""))), ("weights", str(prov.get("weights_hash", ""))[:16]),
            ("device", f"{st.get('device', args.device)} ({platform.processor() or platform.machine()})"),
            ("threads", str(args.threads)), ("steps", str(prov.get("steps"))), ("image", f"{image_desc} {pixels.shape}"),
            ("worker RSS", f"{(st.get('memory') or {}).get('rss_mb', '?')} MiB"),
            ("cold (start + load + draft)", f"{times[0]:.2f} s"),
            (f"warm median of {len(warm)}", f"{statistics.median(warm):.3f} s" if warm else "n/a"),
            ("warm min / max", f"{min(warm):.3f} / {max(warm):.3f} s" if warm else "n/a")]
    width = max(len(k) for k, _ in rows)
    print("\nDraft button -> text on screen\n")
    print(f"| {'what':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k:<{width}} | {v} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
