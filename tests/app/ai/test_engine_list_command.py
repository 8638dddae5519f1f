"""`radstation engine list`: what is installed, for a person and (with --json) for a settings dialog or a script."""

from __future__ import annotations

import json

from app.cli import main


def test_engine_list_names_every_engine_and_its_options(capsys) -> None:
    assert main(["engine", "list"]) == 0
    out = capsys.readouterr().out
    assert "ray-serve" in out and "[server]" in out and "engine_options: url, timeout_s" in out
    assert main(["engine", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    by_name = {e["name"]: e for e in listed["engines"]}
    assert {"diffusion", "openai-compatible", "ray-serve"} <= set(by_name)
    assert by_name["ray-serve"]["remote"] and "url" in by_name["ray-serve"]["options"]
    assert by_name["diffusion"]["source"] == "built-in" and not by_name["diffusion"]["plugin"]
    assert listed["problems"] == []
