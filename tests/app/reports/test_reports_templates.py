"""Templates chosen by the exam, site and personal templates, fields, macros, one name/date format (Qt-free)."""

from __future__ import annotations

import json
import re

import pytest

from app.formatting import format_date, format_datetime, person_name
from app.reports.fields import describe_unfilled, fields_in, fill_defaults, next_field, unfilled
from app.reports.macros import Macro, MacroLibrary, word_before
from app.reports.templates import ExamInfo, ReportTemplate, TemplateError, TemplateLibrary, guess_exam_type


@pytest.fixture
def library(tmp_path) -> TemplateLibrary:
    return TemplateLibrary(site_dir=tmp_path / "site", personal_root=tmp_path / "personal")


@pytest.mark.parametrize(("exam", "expected"), [
    (ExamInfo(("MR",), (), "MRI BRAIN WITHOUT CONTRAST"), "mr_brain"),
    (ExamInfo(("MR",), ("KNEE",), "MR KNEE LEFT"), "mr_generic"),
    (ExamInfo(("CR",), (), "CHEST PA AND LATERAL"), "chest_xray"),
    (ExamInfo(("DX",), ("CHEST",), ""), "chest_xray"),
    (ExamInfo(("CT",), (), "CT HEAD WO"), "ct_head"),
    (ExamInfo(("CT",), (), "CT ABDOMEN PELVIS W"), "ct_abdomen_pelvis"),
    (ExamInfo(("CT",), (), ""), "ct_generic"),
    (ExamInfo(("US",), (), "US ABDOMEN"), "generic"),
    (ExamInfo(("CR",), ("KNEE",), "KNEE 2 VIEWS"), "xr_generic"),
])
def test_the_exam_chooses_the_template(library, exam, expected):
    assert library.choose(exam).exam_type == expected


def test_a_brain_mr_never_gets_the_chest_template(library):
    ranked = [t.exam_type for t, _ in library.ranked(ExamInfo(("MR",), ("BRAIN",), "MRI BRAIN"))]
    assert "chest_xray" not in ranked and "ct_chest" not in ranked
    assert guess_exam_type("MR", "MRI BRAIN") == "mr_brain"


def test_personal_beats_site_beats_builtin_and_broken_files_are_reported(library):
    base = library.find("chest_xray")
    site = library.save(ReportTemplate("site_chest", "Site chest", "CR", {}, base.content, base.match), "site")
    assert library.choose(ExamInfo(("CR",), (), "CHEST PA")).key == site.key
    mine = library.save(ReportTemplate("my_chest", "My chest", "CR", {}, base.content, base.match), "personal", "rad")
    assert library.choose(ExamInfo(("CR",), (), "CHEST PA"), "rad").key == mine.key
    assert library.choose(ExamInfo(("CR",), (), "CHEST PA"), "other").key == site.key  # personal is personal
    (library.site_dir / "broken.json").write_text("{not json")
    assert library.choose(ExamInfo(("CR",), (), "CHEST PA")).key == site.key  # reporting goes on
    assert any("broken.json" in p for p in library.problems)
    with pytest.raises(TemplateError):
        library.save(ReportTemplate("Bad Id", "x", "", {}, base.content), "personal", "rad")
    with pytest.raises(TemplateError):
        library.save(base, "builtin")
    library.delete(mine)
    assert library.choose(ExamInfo(("CR",), (), "CHEST PA"), "rad").key == site.key


def test_builtin_templates_are_valid_and_their_normal_text_is_in_fields():
    lib = TemplateLibrary()
    templates = lib.templates()
    assert not lib.problems and {t.exam_type for t in templates} >= {"chest_xray", "ct_chest", "mr_brain", "generic"}
    chest = lib.find("chest_xray")
    # no pre-filled "normal" sentence can be signed unread: every finding is a field to choose
    assert unfilled(chest.content.to_dict())["findings"]
    outside_fields = re.sub(r"\[[^\]]*\]", "", chest.content.get("findings") + chest.content.get("impression"))
    assert "normal" not in outside_fields.lower() and "clear" not in outside_fields.lower()


def test_fields_parse_navigate_and_fill():
    text = "Heart: [normal size|enlarged]. Nodule [size] mm. Lungs: [clear|...]."
    found = fields_in(text)
    assert [f.choices for f in found] == [("normal size", "enlarged"), (), ("clear", "...")]
    assert found[1].label == "size" and found[0].default == "normal size"
    assert next_field(text, 0).body == "normal size|enlarged"
    assert next_field(text, found[0].end).body == "size"
    assert next_field(text, len(text)).body == "normal size|enlarged"  # wraps round
    assert next_field(text, len(text), backwards=True).body == "clear|..."
    assert fill_defaults(text) == "Heart: normal size. Nodule [size] mm. Lungs: clear."
    assert "3 template fields" in describe_unfilled({"findings": text})
    assert describe_unfilled({"findings": "All chosen."}) == ""


def test_macros_personal_over_site_over_builtin(library):
    macros = MacroLibrary(library)
    assert macros.macros()["noeff"].text == "No pleural effusion."
    macros.save_scope([Macro("noeff", "No effusion (site wording).")], "site")
    macros.save_scope([Macro("noeff", "Mine.")], "personal", "rad")
    assert macros.macros()["noeff"].text == "No effusion (site wording)."
    assert macros.macros("rad")["noeff"].text == "Mine."
    assert [m.name for m in macros.for_exam(("CT",))].count("nodule") == 1
    assert "ngt" not in [m.name for m in macros.for_exam(("CT",))]  # radiograph-only macro
    with pytest.raises(TemplateError):
        macros.save_scope([Macro("a b", "x")], "personal", "rad")
    with pytest.raises(TemplateError):
        macros.save_scope([Macro("x", "1"), Macro("X", "2")], "personal", "rad")
    (library.site_dir / "macros.json").write_text(json.dumps({"macros": [{"name": ""}]}))
    assert "noeff" in macros.macros() and macros.problems
    assert word_before("Findings: noeff", 15) == (10, "noeff")


def test_one_name_and_date_format():
    assert person_name("DOE^JANE^B") == "DOE, JANE B"
    assert person_name("DOE") == "DOE" and person_name("") == ""
    assert format_date("20261120") == "20 Nov 2026" == format_date("2026-11-20")
    assert format_date("garbage") == "garbage" and format_date(None) == ""
    assert re.fullmatch(r"\d\d \w{3} 2026 \d\d:\d\d", format_datetime("2026-11-20T10:15:00+00:00"))


def test_an_unfilled_builtin_template_states_no_finding():
    """The editor labels the text with its unfilled [fields] blanked: a heading left empty ("Lines and tubes:")
    states nothing, so an untouched chest template lists no finding present (it said Support Devices)."""
    from app.reports.fields import blank_fields
    from engines.labeler import label_report

    lib = TemplateLibrary()
    for key in ("chest_xray", "ct_chest", "mr_brain", "generic"):
        c = lib.find(key).content
        text = blank_fields(c.get("findings")) + "\n" + blank_fields(c.get("impression"))
        stated = {f: v for f, v in label_report(text).findings.items() if f != "No Finding"}
        assert not stated, (key, stated)
