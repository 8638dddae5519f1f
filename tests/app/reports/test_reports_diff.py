from app.reports.diff import diff_html, sections_diff_html


def test_diff_marks_insertions_and_deletions():
    html, st = diff_html("Small left effusion.", "Moderate left effusion & <b>.")
    assert "line-through" in html and ">Small<" in html and ">Moderate<" in html
    assert "&lt;b&gt;" in html  # escaped
    assert st.deleted_words == 1 and st.inserted_words == 2 and st.unchanged_words == 2


def test_no_change_is_reported_as_unchanged():
    html, st = sections_diff_html({"findings": "A b.", "impression": "C."}, {"findings": "A b.", "impression": "C."})
    assert not st.changed and "span" not in html
