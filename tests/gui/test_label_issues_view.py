"""The "Likely label errors" widget, offscreen: the ranked list from a real label-issue run,
sorting, show-all, and the signal that opens a study (double-click and Return)."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from radview.gui.widgets.label_issues_view import COLUMNS, LabelIssuesView
from radview.review.label_issues import find_label_issues, issues_to_dict


@pytest.fixture
def report():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    x = rng.normal(size=(2, 40))[y] * 1.2 + rng.normal(size=(60, 40))
    given = [("normal", "pneumonia")[v] for v in y]
    for i in (3, 10, 17, 24):
        given[i] = "pneumonia" if given[i] == "normal" else "normal"
    return find_label_issues(x, np.arange(60), given, [f"/data/s{i:02d}" for i in range(60)],
                             paths=[f"/data/s{i:02d}/img.png" for i in range(60)])


@pytest.fixture
def view(qtbot):
    w = LabelIssuesView()
    qtbot.addWidget(w)
    w.resize(700, 300)
    w.show()
    return w


def cell(w, row, col):
    return w.proxy.index(row, col).data()


def test_shows_the_ranked_flagged_list(view, report):
    view.set_report(report)
    assert view.row_count() == len(report.issues) >= 3
    assert [view.proxy.headerData(c, Qt.Orientation.Horizontal) for c in range(6)] == list(COLUMNS)
    first = report.issues[0]
    assert view.key_at(0) == first.key
    assert cell(view, 0, 1) == "img.png"
    assert (cell(view, 0, 2), cell(view, 0, 3)) == (first.given, first.suggested)
    assert float(cell(view, 0, 4)) == pytest.approx(first.score, abs=1e-3)
    assert "trained without this study" in cell(view, 0, 5)
    assert "flagged" in view.summary.text() and "60" in view.summary.text()
    view.show_all.setChecked(True)
    assert view.row_count() == 60
    view.show_all.setChecked(False)
    assert view.row_count() == len(report.issues)


def test_sorting_by_score_and_given(view, report):
    view.set_report(report)
    view.table.sortByColumn(4, Qt.SortOrder.AscendingOrder)
    scores = [float(cell(view, r, 4)) for r in range(view.row_count())]
    assert scores == sorted(scores)
    view.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    assert view.key_at(0) == report.issues[0].key


def test_double_click_and_return_open_the_study(view, report, qtbot):
    view.set_report(report)
    key = view.key_at(1)
    rect = view.table.visualRect(view.proxy.index(1, 2))
    qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(view.studyRequested, timeout=2000) as sig:
        qtbot.mouseDClick(view.table.viewport(), Qt.MouseButton.LeftButton,
                          pos=rect.center())
    assert sig.args == [key]
    assert view.select_key(view.key_at(0))
    view.table.setCurrentIndex(view.proxy.index(0, 0))
    view.table.setFocus()
    with qtbot.waitSignal(view.studyRequested, timeout=2000) as sig:
        qtbot.keyClick(view.table, Qt.Key.Key_Return)
    assert sig.args == [view.key_at(0)]
    assert view.current_key() == view.key_at(0)


def test_accepts_the_cli_json_and_clears(view, report):
    d = issues_to_dict(report)
    d = {"label_issues": d["label_issues"], "label_spaces": [{"n_studies": 60}]}
    view.set_report(d)
    assert view.row_count() == len(report.issues)
    assert view.summary.text().startswith(f"{len(report.issues)} of 60")
    view.clear()
    assert view.row_count() == 0 and view.current_key() is None
    assert not view.select_key("nope")
