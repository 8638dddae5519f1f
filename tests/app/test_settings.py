"""Settings: defaults, round trip, env override, and a broken file that is reported, not lost."""

from __future__ import annotations

import pytest

from app.settings import DEFAULTS, Settings, SettingsError


def test_round_trip_and_defaults(tmp_path) -> None:
    path = tmp_path / "settings.json"
    s = Settings(path)
    assert s.get("engine") == DEFAULTS["engine"]
    s.set("engine", "hf-vlm")
    s.save()
    assert Settings(path).get("engine") == "hf-vlm"


def test_unsaveable_value_is_refused(tmp_path) -> None:
    with pytest.raises(TypeError):
        Settings(tmp_path / "s.json").set("engine", object())


def test_db_url_env_wins(tmp_path, monkeypatch) -> None:
    s = Settings(tmp_path / "s.json")
    s.set("db_url", "sqlite:///a.db")
    monkeypatch.setenv("RADSTATION_DB_URL", "sqlite:///b.db")
    assert s.db_url == "sqlite:///b.db"


def test_broken_file_gives_defaults_and_a_reason_and_is_kept(tmp_path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SettingsError):
        Settings(path)
    s, problem = Settings.load_or_defaults(path)
    assert "cannot read settings" in problem and s.get("engine") == DEFAULTS["engine"]
    assert path.read_text(encoding="utf-8") == "{not json"  # nothing the user wrote is lost
