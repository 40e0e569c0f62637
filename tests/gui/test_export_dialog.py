"""File > Export in the window: format, label space and folder filters, progress, cancel; the
core's iter_export on a superqt worker, a real store file."""
from __future__ import annotations

import csv

from radview.types import Label


def test_export_dialog_writes_only_the_chosen_space(qtbot, make_window, open_and_wait, mura_folder, tmp_path):
    from radview.store import open_store

    w = make_window(start=False)
    result = open_and_wait(w, mura_folder)
    store = open_store()
    qtbot.waitUntil(lambda: len(store.labels("study")) == len(result.studies), timeout=10000)
    first = result.studies[0]
    flipped = "normal" if first.label.value == "abnormal" else "abnormal"
    store.set_label(first.key, flipped, level="study")
    # an item of another label space that must not appear in the MURA export
    store.set_source_labels({"/elsewhere/x.png": Label("chest", source="class-folder",
                                                       space="openi-chest-abdomen")}, "image")
    dlg = w.open_export(show=True)
    qtbot.addWidget(dlg)
    assert dlg.space_box.findData("mura") >= 0
    dlg.format_box.setCurrentText("mura")
    dlg.space_box.setCurrentIndex(dlg.space_box.findData("mura"))
    out = tmp_path / "out" / "mura.csv"
    dlg.out_edit.setText(str(out))
    with qtbot.waitSignal(dlg.exported, timeout=20000) as got:
        assert dlg.start()
    res = got.args[0]
    assert res.path == out and res.space == "mura" and res.rows == len(result.studies)
    rows = list(csv.reader(out.open()))
    assert len(rows) == len(result.studies)
    text = out.read_text()
    assert "/elsewhere/" not in text
    assert dlg.progress.value() == dlg.progress.maximum() == 1
    assert "Wrote" in dlg.message.text()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=5000)


def test_export_dialog_shows_a_failure(qtbot, make_window, tmp_path):
    w = make_window(start=False)
    dlg = w.open_export(show=True)
    qtbot.addWidget(dlg)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    dlg.format_box.setCurrentText("json")
    dlg.out_edit.setText(str(blocker / "sub" / "labels.json"))  # a file where a folder must be
    with qtbot.waitSignal(dlg.failed, timeout=20000) as got:
        assert dlg.start()
    assert isinstance(got.args[0], Exception)
    assert "Export failed" in dlg.message.text()
    assert any(where == "export" for where, _t in w.notifications)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=5000)
