"""Read report/answer JSONL files: one object per line with "id" and either "text" or
"findings"/"impression" (answers: "answer", optional "question", "kind")."""

from __future__ import annotations

import json
from pathlib import Path


class EvalInputError(ValueError):
    """An input file is missing, malformed or shares no ids with the other side."""


def report_text(obj: dict) -> str:
    if "text" in obj and obj["text"] is not None:
        return str(obj["text"]).strip()
    parts = [str(obj.get(k) or "").strip() for k in ("findings", "impression")]
    return " ".join(p for p in parts if p)


def read_jsonl(path: Path | str) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"{path}: file not found")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalInputError(f"{path}:{n}: not JSON ({exc.msg})") from exc
            if not isinstance(obj, dict) or "id" not in obj:
                raise EvalInputError(f"{path}:{n}: each line needs an object with an \"id\"")
            rows.append(obj)
    if not rows:
        raise EvalInputError(f"{path}: no records")
    return rows


def read_reports(path: Path | str) -> dict[str, str]:
    out: dict[str, str] = {}
    for obj in read_jsonl(path):
        out[str(obj["id"])] = report_text(obj)
    return out


def write_jsonl(path: Path | str, rows: list[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
