"""The review panel, offscreen with real widgets: top-loss grid, clicks, filters, confusion
matrix cells, ROC, threshold slider, label updates and CAM thumbnails."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt

from radview.gui.widgets.confusion_view import ConfusionMatrixView
from radview.gui.widgets.review_panel import ReviewPanel
from radview.gui.widgets.roc_view import RocView
from radview.review import Interpretation, Truth, build_review
from radview.review.synthetic import synthetic_studies
from radview.types import ImageRef, Label, Prediction, StudyPrediction

SHOTS = Path("/tmp/radview-review-shots")


@pytest.fixture
def make_panel(qtbot):
    panels = []

    def make(**kw):
        kw.setdefault("n_resamples", 100)
        p = ReviewPanel(**kw)
        qtbot.addWidget(p)
        p.resize(1200, 800)
        p.show()
        panels.append(p)
        return p

    yield make
    for p in panels:
        p.shutdown()
        p.close()


def show(qtbot, panel, data):
    with qtbot.waitSignal(panel.summaryChanged, timeout=20000):
        panel.set_review(data)
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=20000)  # tiles are built in batches
    return panel.summary()


def synthetic(n=300, seed=1, **kw):
    preds, truths = synthetic_studies(n, seed=seed, **kw)
    return build_review(preds, truths), preds, truths


def test_top_loss_grid_metrics_and_click(qtbot, make_panel):
    data, _, _ = synthetic()
    panel = make_panel(load_images=False, top_k=9)
    panel.set_review(data)
    assert panel.summary() is None  # computed on the worker, not in set_review
    with qtbot.waitSignal(panel.tilesReady, timeout=20000):
        pass
    s = panel.summary()
    expected = Interpretation(data).top_losses(9)
    assert [t.key for t in panel.tiles()] == [t.study_key for t in expected]
    assert panel.table.rowCount() == 1 + 7 + 1  # all, 7 study types, images
    assert panel.table.item(0, 1).text() == "300"
    assert "[" in panel.table.item(0, 3).text()  # kappa with its CI
    assert np.array_equal(panel.confusion.matrix(), Interpretation(data).confusion_matrix())
    assert s.metrics.n == 300
    with qtbot.waitSignal(panel.studyActivated) as sig:
        qtbot.mouseClick(panel.tiles()[2], Qt.MouseButton.LeftButton)
    assert sig.args == [expected[2].study_key]


def test_confusion_cell_lists_its_studies(qtbot, make_panel):
    data, _, _ = synthetic()
    panel = make_panel(load_images=False)
    show(qtbot, panel, data)
    interp = Interpretation(data)
    cm = panel.confusion
    r = cm.cell_rect(0, 1)  # actual normal, predicted abnormal
    with qtbot.waitSignal(cm.cellClicked) as sig:
        qtbot.mouseClick(cm, Qt.MouseButton.LeftButton, pos=r.center().toPoint())
    assert sig.args == ["normal", "abnormal"]
    keys = [panel.cases.item(i).data(Qt.ItemDataRole.UserRole) for i in range(panel.cases.count())]
    assert keys == list(interp.cases("normal", "abnormal"))
    assert len(keys) == interp.confusion_matrix()[0, 1]
    with qtbot.waitSignal(panel.studyActivated) as sig:
        panel.cases.itemClicked.emit(panel.cases.item(0))
    assert sig.args == [keys[0]]


def test_filters_restrict_everything(qtbot, make_panel):
    data, _, truths = synthetic(corrected_fraction=0.2)
    panel = make_panel(load_images=False)
    show(qtbot, panel, data)
    with qtbot.waitSignal(panel.summaryChanged, timeout=20000):
        panel.type_box.setCurrentText("XR_HAND")
    n_hand = sum(1 for t in truths.values() if t.study_type == "XR_HAND")
    assert panel.summary().metrics.n == n_hand
    assert all(t.study_type == "XR_HAND" for t in panel.summary().top_losses)
    with qtbot.waitSignal(panel.summaryChanged, timeout=20000):
        panel.corrected_box.setCurrentIndex(1)  # corrected only
    n = sum(1 for t in truths.values() if t.study_type == "XR_HAND" and t.corrected)
    assert panel.summary().metrics.n == n
    assert all(t.corrected for t in panel.summary().top_losses)
    assert panel.reader_box.count() == 3  # (any), reader_a, reader_b
    with qtbot.waitSignal(panel.summaryChanged, timeout=20000):
        panel.type_box.setCurrentIndex(0)
        panel.corrected_box.setCurrentIndex(0)
        panel.actual_box.setCurrentText("abnormal")
    assert panel.summary().metrics.n == int((data.y_true == 1).sum())


def test_label_change_updates_the_review(qtbot, make_panel):
    data, _, _ = synthetic()
    panel = make_panel(load_images=False, top_k=5)
    s0 = show(qtbot, panel, data)
    worst = s0.top_losses[0]
    flipped = "normal" if worst.actual == "abnormal" else "abnormal"
    with qtbot.waitSignal(panel.summaryChanged, timeout=20000):
        assert panel.update_label(worst.study_key, Label(flipped), reader="dr_ana")
    s1 = panel.summary()
    assert worst.study_key not in [t.study_key for t in s1.top_losses]
    assert s1.metrics.accuracy > s0.metrics.accuracy
    assert s1.metrics.kappa > s0.metrics.kappa
    assert panel.reader_box.findText("dr_ana") > 0
    assert not panel.update_label("no/such/study", Label("normal"))
    assert not panel.update_label(worst.study_key, Label("elbow"))


def test_threshold_slider_and_site_threshold(qtbot, make_panel):
    from radview.review import thresholds

    data, _, _ = synthetic()
    panel = make_panel(load_images=False)
    s0 = show(qtbot, panel, data)
    assert panel.threshold_row.isVisible()
    # dragging shows live figures without recomputing
    panel.slider.setSliderDown(True)
    panel.slider.setValue(800)
    at = s0.sweep.at(0.8)
    assert f"{at['sensitivity']:.3f}" in panel.live_label.text()
    assert panel.roc.point() == pytest.approx((1 - at["specificity"], at["sensitivity"]))
    with qtbot.waitSignal(panel.summaryChanged, timeout=20000):
        panel.slider.setSliderDown(False)
        panel.slider.sliderReleased.emit()
    s1 = panel.summary()
    assert s1.threshold == pytest.approx(0.8) and s1.threshold_source == "unsaved"
    assert s1.metrics.sensitivity == pytest.approx(at["sensitivity"])
    assert s1.confusion_matrix[1, 1] == at["tp"]
    with qtbot.waitSignal(panel.thresholdSaved) as sig:
        panel.save_button.click()
    assert sig.args == ["synthetic", pytest.approx(0.8)]
    saved = thresholds.site_threshold("synthetic")
    assert saved.threshold == pytest.approx(0.8) and saved.source == "site"
    assert "(site)" in panel.threshold_label.text()
    with qtbot.waitSignal(panel.summaryChanged, timeout=20000):
        panel.best_button.click()
    assert panel.summary().threshold == pytest.approx(s0.sweep.best("youden"))
    # keyboard-style change (slider not held): applied after a short pause
    with qtbot.waitSignal(panel.summaryChanged, timeout=20000):
        panel.slider.setValue(300)
    assert panel.summary().threshold == pytest.approx(0.3)
    assert "(unsaved)" in panel.threshold_label.text()


def test_multiclass_has_no_threshold_row(qtbot, make_panel):
    data, _, _ = synthetic(classes=("a", "b", "c"), study_types=())
    panel = make_panel(load_images=False)
    s = show(qtbot, panel, data)
    assert not panel.threshold_row.isVisible()
    assert panel.confusion.matrix().shape == (3, 3)
    assert set(s.roc) == {"a", "b", "c"}
    assert not panel.type_box.isEnabled()


def test_set_predictions_builds_on_the_worker(qtbot, make_panel):
    _, preds, truths = synthetic(200)
    panel = make_panel(load_images=False)
    with qtbot.waitSignal(panel.summaryChanged, timeout=20000):
        panel.set_predictions(preds, truths, threshold=0.5)
    assert panel.data() is not None and len(panel.data()) == 200
    assert panel.type_box.count() == 8


def real_images(tmp_path, n=6):
    """n one-view studies on real PNG files, predicted with falling confidence."""
    preds, truths = [], {}
    cls = ("normal", "abnormal")
    rng = np.random.default_rng(0)
    for i in range(n):
        path = tmp_path / f"study{i}.png"
        img = (rng.random((96, 80)) * 60 + 60 + 20 * i).astype(np.uint8)
        img[20:60, 20:50] = 220
        Image.fromarray(img).save(path)
        p = 0.95 - 0.15 * i
        v = Prediction(ImageRef(str(path)), "m", "1", cls, (1 - p, p))
        preds.append(StudyPrediction(str(path), "m", "1", cls, (1 - p, p), None, (v,)))
        truths[str(path)] = Truth(Label("normal"), "XR_HAND")
    preds.append(StudyPrediction(str(tmp_path / "gone.png"), "m", "1", cls, (0.1, 0.9), None,
                                 (Prediction(ImageRef(str(tmp_path / "gone.png")), "m", "1", cls,
                                             (0.1, 0.9)),)))
    truths[str(tmp_path / "gone.png")] = Truth(Label("normal"), "XR_HAND")
    return build_review(preds, truths)


def test_thumbnails_load_off_thread_and_show_cams(qtbot, make_panel, tmp_path):
    data = real_images(tmp_path)
    panel = make_panel(top_k=7)
    wanted = []
    panel.camsWanted.connect(wanted.append)
    show(qtbot, panel, data)
    tiles = panel.tiles()
    assert len(tiles) == 7 and len(wanted) == 1 and len(wanted[0]) == 7
    first = tiles[0].refs[0]
    label = tiles[0].images[first]
    qtbot.waitUntil(lambda: label.pixmap() is not None and not label.pixmap().isNull(),
                    timeout=10000)
    gone = next(t for t in tiles if t.key.endswith("gone.png"))
    qtbot.waitUntil(lambda: gone.images[gone.refs[0]].text() == "unreadable", timeout=10000)
    assert "gone.png" in gone.images[gone.refs[0]].toolTip()
    gray = label.pixmap().toImage()
    c = gray.pixelColor(gray.width() // 2, gray.height() // 2)
    assert c.red() == c.green() == c.blue()  # no CAM yet: gray
    cam = np.zeros((96, 80), np.float32)
    cam[30:70, 25:55] = 1.0
    panel.set_cam(first, cam)
    col = label.pixmap().toImage()
    hot = col.pixelColor(int(col.width() * 40 / 80), int(col.height() * 50 / 96))
    assert hot.red() > hot.blue() + 40  # the hot spot is drawn red over the image
    qtbot.wait(100)
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert panel.grab().save(str(SHOTS / "review_panel_images.png"))


def test_screenshot_large_review(qtbot, make_panel):
    data, _, _ = synthetic(2000, seed=4, corrected_fraction=0.05)
    panel = make_panel(load_images=False, top_k=12)
    show(qtbot, panel, data)
    qtbot.mouseClick(panel.confusion, Qt.MouseButton.LeftButton,
                     pos=panel.confusion.cell_rect(1, 0).center().toPoint())
    qtbot.wait(100)  # let the new tiles lay themselves out before the picture
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "review_panel.png"
    assert panel.grab().save(str(path))
    with Image.open(path) as im:
        assert im.size[0] >= 1000 and np.unique(np.asarray(im.convert("L"))).size > 20


def test_confusion_and_roc_views_standalone(qtbot):
    cm = ConfusionMatrixView()
    qtbot.addWidget(cm)
    cm.resize(300, 260)
    cm.set_matrix(np.array([[5, 1, 0], [2, 7, 1], [0, 0, 4]]), ("a", "b", "c"))
    cm.show()
    hit = cm.cell_at(cm.cell_rect(2, 1).center())
    assert hit == (2, 1)
    assert cm.cell_at(QPoint(1, 1).toPointF()) is None
    with pytest.raises(ValueError):
        cm.set_matrix(np.zeros((2, 2)), ("a", "b", "c"))
    roc = RocView()
    qtbot.addWidget(roc)
    x = np.linspace(0, 1, 20000)
    roc.set_curves({"abnormal": (x, np.sqrt(x))}, {"abnormal": 0.66})
    assert roc._curves["abnormal"][0].size <= 400
    roc.set_point((0.2, float("nan")))
    assert roc.point() is None
    roc.resize(300, 300)
    img = roc.grab().toImage()
    assert img.width() == 300


def test_superseded_results_are_dropped(qtbot, make_panel):
    data, _, _ = synthetic(3000, seed=2)
    panel = make_panel(load_images=False, top_k=3, n_resamples=300)
    worst = Interpretation(data).top_losses(1)[0]
    flipped = "normal" if worst.actual == "abnormal" else "abnormal"
    panel.set_review(data)
    panel.update_label(worst.study_key, Label(flipped))  # while the first review runs
    qtbot.waitUntil(lambda: not panel.is_busy() and panel.summary() is not None, timeout=20000)
    s = panel.summary()
    assert worst.study_key not in [t.study_key for t in s.top_losses]
    expected = Interpretation(data.with_label(worst.study_key, Label(flipped)))
    assert np.array_equal(s.confusion_matrix, expected.confusion_matrix())
    assert [t.key for t in panel.tiles()] == [t.study_key for t in expected.top_losses(3)]


def test_label_change_during_a_build_is_kept(qtbot, make_panel):
    _, preds, truths = synthetic(2000, seed=5)
    panel = make_panel(load_images=False, top_k=3, n_resamples=200)
    worst = Interpretation(build_review(preds, truths)).top_losses(1)[0]
    flipped = "normal" if worst.actual == "abnormal" else "abnormal"
    panel.set_predictions(preds, truths)
    assert panel.update_label(worst.study_key, Label(flipped), reader="bo")
    qtbot.waitUntil(lambda: not panel.is_busy() and panel.summary() is not None, timeout=20000)
    assert worst.study_key not in [t.study_key for t in panel.summary().top_losses]
    assert panel.data().readers[panel.data().index(worst.study_key)] == "bo"


def test_busy_signal_brackets_each_review(qtbot, make_panel):
    data, _, _ = synthetic(500)
    panel = make_panel(load_images=False, top_k=4)
    states = []
    panel.busyChanged.connect(states.append)
    show(qtbot, panel, data)
    assert states == [True, False]
    with qtbot.waitSignal(panel.busyChanged, timeout=20000, check_params_cb=lambda b: not b):
        panel.top_spin.setValue(6)
    assert states == [True, False, True, False] and len(panel.tiles()) == 6
