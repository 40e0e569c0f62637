"""A blinded double read end to end through the GUI (issue 16), offscreen with real widgets, a
real (tiny) model and a real store: reader A and reader B read the same MURA study in the
worklist panel while the window hides the model (answer, CAM) and every label; B sees nothing
of A's read; the adjudicator sees both reads and the model and records the final label with a
reason. The store's contents are checked, and the review's truth is the final label."""
from __future__ import annotations

from PySide6.QtCore import Qt

P = "wrist-blind"


def _texts(panel) -> str:
    """Everything the worklist panel shows as text."""
    parts = [panel.progress_label.text(), panel.item_label.text(), panel.message.text()]
    parts += [panel.reads_list.item(i).text() for i in range(panel.reads_list.count())]
    t = panel.table
    parts += [t.item(r, c).text() for r in range(t.rowCount()) for c in range(t.columnCount())
              if t.item(r, c) is not None]
    return "\n".join(parts)


def _click_row(qtbot, panel, row: int) -> None:
    t = panel.table
    rect = t.visualItemRect(t.item(row, 0))
    qtbot.mouseClick(t.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(t.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _canvas_shows_nothing(w) -> None:
    for _vi, canvas in w.viewer.visible_canvases():
        assert not canvas.heat_item.isVisible(), "a CAM is on screen during a blinded read"
        assert canvas.annotations.get("top_right", []) == [], canvas.annotations.get("top_right")
        assert not any("label" in line for line in canvas.annotations.get("bottom_right", []))
        assert canvas.banner == ""
        assert not any(getattr(b, "predicted", False) for b in getattr(canvas, "box_items", []))


def _columns_hidden(w, names) -> bool:
    from radview.gui.widgets.study_browser import COLUMNS

    return all(w.browser.tree.isColumnHidden(COLUMNS.index(n)) for n in names)


def test_blinded_double_read_and_adjudication_through_the_gui(qtbot, make_window, open_and_wait,
                                                              tiny_model, mura_folder):
    from radview.review.collect import store_overrides
    from radview.review.data import truths_from_studies

    w = make_window(model=tiny_model)
    result = open_and_wait(w, mura_folder)
    study = next(s for s in result.studies if s.key.endswith("study1_positive"))
    other = next(s for s in result.studies if s.key != study.key)
    store = w.store
    # a lead sets the project up (what `radview worklist create/add/assign` does)
    store.set_reader("dana", "adjudicator")
    store.create_project(P, reads=2, blinded=True, hide_model=True, space="mura", reader="dana")
    store.add_to_project(P, [study.key, other.key])
    store.assign(P, ["alice", "bob"], keys=[study.key], reader="dana")
    # unblinded, the window shows the folder label and the model on this study
    w.show_study(study)
    qtbot.waitUntil(lambda: study.key in w.ai.study_preds, timeout=60000)
    canvas = w.viewer.active_canvas()
    qtbot.waitUntil(lambda: canvas.heat_item.isVisible(), timeout=60000)
    assert canvas.annotations["bottom_right"] == ["label: abnormal"]
    assert canvas.annotations["top_right"]
    panel = w.extra_panels["worklistpanel"]
    w.docks["worklistpanel"].show()
    w.docks["worklistpanel"].raise_()
    panel.reload_projects()
    panel.project_combo.setCurrentText(P)

    # ---------------------------------------------------------------- reader A (alice)
    panel.set_reader("alice")
    assert w.blinding is not None and not w.blinding.others and not w.blinding.model
    for key in ("ai", "labelpanel", "reviewpanel", "queuepanel"):
        assert not w.docks[key].isVisible(), key
        assert not w.docks[key].toggleViewAction().isEnabled(), key
    assert _columns_hidden(w, ("Label", "Corrected", "Prediction", "Prob.", "Domain"))
    assert not w.actions["toggle_cam"].isEnabled()
    _canvas_shows_nothing(w)
    assert panel.table.rowCount() == 1 and panel.progress_label.text().startswith("alice: 0/1 read")
    w.show_study(other)
    _click_row(qtbot, panel, 0)                          # opens the study of her worklist
    qtbot.waitUntil(lambda: w.viewer.study is not None and w.viewer.study.key == study.key)
    qtbot.waitUntil(lambda: w.viewer.active_canvas().frame is not None, timeout=10000)
    qtbot.wait(200)                                      # the model's answer arrives, unseen
    _canvas_shows_nothing(w)
    assert w.study_label(study) is None
    assert not panel.adj_box.isVisible()
    panel.read_combo.setCurrentText("abnormal")
    with qtbot.waitSignal(panel.recorded, timeout=5000):
        qtbot.mouseClick(panel.read_button, Qt.MouseButton.LeftButton)
    assert "alice: 1/1 read" in panel.progress_label.text()
    assert panel.table.item(0, 2).text() == "abnormal"

    # ---------------------------------------------------------------- reader B (bob)
    panel.set_reader("bob")
    assert w.blinding is not None and w.blinding.reader == "bob"
    panel.set_current(study.key)
    shown = _texts(panel)
    assert "alice" not in shown and "abnormal" not in shown.replace(panel.read_combo.currentText(), "")
    assert panel.table.item(0, 2).text() == ""           # his read is still to do
    assert store.reads(P, study.key, viewer="bob") == []
    _canvas_shows_nothing(w)
    assert not w.docks["labelpanel"].isVisible() and not w.docks["ai"].isVisible()
    panel.read_combo.setCurrentText("normal")
    with qtbot.waitSignal(panel.recorded, timeout=5000):
        qtbot.mouseClick(panel.read_button, Qt.MouseButton.LeftButton)
    assert "alice" not in _texts(panel)

    # ---------------------------------------------------------------- adjudicator (dana)
    panel.set_reader("dana")
    assert w.blinding is None
    assert w.docks["ai"].isVisible() and w.docks["ai"].toggleViewAction().isEnabled()
    assert not _columns_hidden(w, ("Label",)) and not _columns_hidden(w, ("Prediction",))
    assert panel.adj_box.isVisible()
    row = next(i for i in range(panel.table.rowCount()) if panel.table.item(i, 0).toolTip() == study.key)
    assert panel.table.item(row, 2).text() == "disputed"
    _click_row(qtbot, panel, row)
    reads = [panel.reads_list.item(i).text() for i in range(panel.reads_list.count())]
    assert reads == ["alice: abnormal", "bob: normal"]
    canvas = w.viewer.active_canvas()
    qtbot.waitUntil(lambda: canvas.heat_item.isVisible(), timeout=60000)   # she sees the model
    assert canvas.annotations["top_right"] and canvas.annotations["bottom_right"] == ["label: abnormal"]
    panel.final_combo.setCurrentText("normal")
    panel.reason_edit.setText("old healed fracture, no acute finding")
    with qtbot.waitSignal(panel.recorded, timeout=5000) as got:
        qtbot.mouseClick(panel.final_button, Qt.MouseButton.LeftButton)
    final = got.args[0]
    # the store: both reads kept, blinded; one final label by the adjudicator with her reason
    log = store.read_log(P)
    assert [(r.reader, r.value, r.role, r.model_shown, r.others_shown) for r in log] == [
        ("alice", "abnormal", "reader", False, False), ("bob", "normal", "reader", False, False)]
    [event] = [e for e in store.history(study.key, "study")]
    assert event.id == final.id
    assert (event.new_value, event.old_value, event.reader, event.role, event.project) == (
        "normal", "abnormal", "dana", "adjudicator", P)
    assert event.note == "old healed fracture, no acute finding"
    assert event.model == w.ai.study_preds[study.key].model
    assert store.item_status(P, study.key, viewer="dana").status == "final"
    # the window took the final label at once (the one store event) ...
    qtbot.waitUntil(lambda: canvas.annotations["bottom_right"] == ["label: normal"], timeout=5000)
    # ... and the review's truth is the final label, not the folder's nor a read
    overrides, corrected = store_overrides(store, result.studies)
    truths = truths_from_studies(result.studies, overrides, corrected)
    assert truths[study.key].label.value == "normal" and corrected[study.key] == "dana"
    assert [e.key for e in store.pending()] == [study.key]   # retraining gets the final label


def test_review_panel_agreement_tab_kappas_and_blinding(qtbot, tmp_path):
    """The review panel's Agreement tab on a real store: kappas equal scikit-learn's; a blinded
    reader is not shown the statistics of the reads."""
    import pytest

    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    from radview.gui.widgets.review_panel import ReviewPanel
    from radview.store import LabelStore

    store = LabelStore(tmp_path / "labels.sqlite", reader="dana")
    store.set_reader("dana", "admin")
    keys = [f"XR_WRIST/p{i}/s1" for i in range(12)]
    store.create_project(P, reads=2, space="mura")
    store.add_to_project(P, keys)
    store.assign(P, ["alice", "bob"])
    a = ["abnormal" if i % 3 == 0 else "normal" for i in range(12)]
    b = ["abnormal" if i % 4 == 0 else "normal" for i in range(12)]
    for k, va, vb in zip(keys, a, b):
        store.record_read(P, k, va, reader="alice")
        store.record_read(P, k, vb, reader="bob")
    for s in store.disputed(P):
        store.adjudicate(P, s.key, "abnormal", note="seen on the lateral")
    panel = ReviewPanel(load_images=False)
    qtbot.addWidget(panel)
    view = panel.agreement
    view.set_store(store)
    view.project_box.setCurrentText(P)
    with qtbot.waitSignal(view.computed, timeout=10000) as got:
        qtbot.mouseClick(view.refresh_button, Qt.MouseButton.LeftButton)
    t = got.args[0]
    rows = {view.table.item(i, 0).text(): view.table.item(i, 1).text()
            for i in range(view.table.rowCount())}
    want = sklearn_metrics.cohen_kappa_score(a, b)
    assert rows["alice vs bob (Cohen)"] == f"{want:.3f}"
    assert t.inter.pairs[("alice", "bob")].value == pytest.approx(want)
    final = [va if va == vb else "abnormal" for va, vb in zip(a, b)]
    assert t.vs_final["bob"].value == pytest.approx(sklearn_metrics.cohen_kappa_score(b, final))
    assert "alice vs final" in rows and "12 items" in view.status.text()
    store.reader = "alice"                                  # a blinded reader: nothing shown
    with qtbot.waitSignal(view.computed, timeout=5000) as got:
        view.refresh()
    assert got.args[0] is None and view.table.rowCount() == 0 and "blinded" in view.status.text()
    panel.shutdown()
    store.close()


def test_two_readers_correcting_at_once_in_two_label_panels_see_the_conflict(qtbot, tmp_path):
    """Two apps (two stores on one file), two readers, the same study on screen: both
    corrections are kept and the later one is marked as a conflict in the study's history."""
    from radview.gui.widgets.label_panel import LabelPanel
    from radview.store import LabelStore
    from radview.types import ImageRef, Label, Study, View

    study = Study("valid/XR_WRIST/patient1/study1_positive", study_type="XR_WRIST", layout="mura",
                  label=Label("abnormal", source="mura-folder"), views=(View(ImageRef("/m/i1.png")),))
    path = tmp_path / "labels.sqlite"
    a, b = LabelStore(path, reader="alice"), LabelStore(path, reader="bob")
    a.set_source_labels({study.key: study.label}, level="study")
    panels = []
    for store in (a, b):
        p = LabelPanel(store=store)
        qtbot.addWidget(p)
        p.follow_hub = False                         # two programs: no shared signal hub
        p.reader.setText(store.reader)
        p.set_study(study)
        panels.append(p)
    pa, pb = panels
    assert pa.apply_label("normal")                  # alice first ...
    assert pb.apply_label("abnormal")                # ... bob had not seen it
    first, second = a.history(study.key, "study")
    assert (first.reader, second.reader) == ("alice", "bob")
    assert first.conflict_with is None and second.conflict_with == first.id
    pb.refresh()
    assert f"⚠ conflict: had not seen #{first.id}" in pb.history.item(0).text()
    pa.refresh()
    assert pa.apply_label("normal")                  # alice saw bob's: no conflict this time
    assert a.history(study.key, "study")[-1].conflict_with is None
    a.close()
    b.close()


def test_worklist_panel_moves_on_to_the_next_unread_item(qtbot, tmp_path):
    from radview.gui.widgets.worklist_panel import WorklistPanel
    from radview.store import LabelStore

    store = LabelStore(tmp_path / "labels.sqlite", reader="dana")
    store.set_reader("dana", "admin")
    keys = [f"XR_HAND/p{i}/s1" for i in range(3)]
    store.create_project(P, reads=1, space="mura", blinded=False)
    store.add_to_project(P, keys)
    store.assign(P, ["erin"], mode="count", count=2)
    store.reader = "erin"
    panel = WorklistPanel(store=store, poll_ms=0)
    qtbot.addWidget(panel)
    panel.project_combo.setCurrentText(P)
    assert panel.policy is not None and not panel.policy.blinded   # an open project: no blinding
    assert panel.progress_label.text().startswith("erin: 0/2 read")
    panel.set_current(keys[0])
    panel.read_combo.setCurrentText("normal")
    with qtbot.waitSignal(panel.studyActivated, timeout=2000) as got:
        qtbot.mouseClick(panel.read_button, Qt.MouseButton.LeftButton)
    assert got.args == [keys[1]] and panel.current_key == keys[1]
    assert store.label(keys[0], "study").value == "normal"          # 1 read wanted: the final
    with qtbot.waitSignal(panel.studyActivated, timeout=2000) as got:
        qtbot.mouseClick(panel.claim_button, Qt.MouseButton.LeftButton)
    assert got.args == [keys[2]] and "erin: 1/3 read" in panel.progress_label.text()
    panel.release_current()
    assert [w.key for w in store.worklist(P)] == keys[:2]
    store.close()
