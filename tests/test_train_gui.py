"""The Retrain action in the app: the run goes on the model-executor thread, the dialog shows
epoch, batch, loss and the curve, cancel leaves nothing behind, the queue panel opens it."""
from __future__ import annotations

import os

import pytest

from radview import paths
from radview.models.manifest import manifest_from_dict, write_manifest
from radview.train import synthetic

pytest.importorskip("PySide6")


@pytest.fixture
def tiny(tmp_path, radview_home):
    root = tmp_path / "data"
    synthetic.stripes(root, n_h=10, n_v=10, n_checker=0, size=32)
    # min_test 2: the dialog and the executor are tested here; the promotion gate (30 locked test
    # items) in test_train_retrain.py
    recipe = {"batch_size": 4, "freeze_epochs": 1, "min_test": 2}
    write_manifest(manifest_from_dict(synthetic.tiny_manifest(training={"recipe": recipe})),
                   paths.user_models_dir() / "tiny")
    return root


@pytest.fixture
def executor(qtbot):
    from radview.gui.app import make_app
    from radview.gui.workers import ModelExecutor

    make_app()
    ex = ModelExecutor()
    with qtbot.waitSignal(ex.ready, timeout=120000):
        ex.start()
    yield ex
    ex.stop()


def test_retrain_runs_on_the_model_executor_and_reports(qtbot, tiny, executor):
    from radview.gui.retrain import RetrainController, RetrainDialog
    from radview.train.versions import list_versions

    c = RetrainController(executor)
    dlg = RetrainDialog(c, ["tiny"], "tiny", str(tiny))
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.epochs.setValue(2)
    labels = []
    c.progress.connect(lambda *_a: labels.append(dlg.step_label.text()))
    with qtbot.waitSignal(c.finished, timeout=120000) as blocker:
        assert dlg.start()
        assert not dlg.start_button.isEnabled() and dlg.cancel_button.isEnabled()
    res = blocker.args[0]
    assert isinstance(c.ran_on, int) and c.ran_on != os.getpid()  # its own process: never the app's threads
    assert res.promoted and [v.version for v in list_versions("tiny") if v.status == "current"] == [res.version]
    assert any(t.startswith("Epoch 3/3 · batch") for t in labels)
    assert len(dlg.curve.batch) >= 3 * 4 and len(dlg.curve.val) == 3
    assert dlg.bar.value() == dlg.bar.maximum()
    assert "promoted to current" in dlg.log.toPlainText()
    assert dlg.start_button.isEnabled() and not dlg.cancel_button.isEnabled()
    dlg.curve.repaint()  # paints with data


def test_cancel_in_the_dialog_leaves_no_version(qtbot, tiny, executor):
    from radview.gui.retrain import RetrainController, RetrainDialog
    from radview.train.versions import versions_root

    c = RetrainController(executor)
    dlg = RetrainDialog(c, ["tiny"], "tiny", str(tiny))
    qtbot.addWidget(dlg)
    dlg.epochs.setValue(50)

    def on_progress(_d, _t, _m, step):
        if step is not None and step.epoch == 2:
            dlg.cancel_button.click()

    c.progress.connect(on_progress)
    with qtbot.waitSignal(c.cancelled, timeout=120000):
        dlg.start()
    assert "Cancelled" in dlg.step_label.text() and not c.running
    root = versions_root("tiny")
    assert not root.exists() or not [p for p in os.listdir(root) if p not in ("splits.json", ".lock")]
    # the thread is free again: a new run starts and finishes
    c.progress.disconnect(on_progress)
    dlg.epochs.setValue(1)
    with qtbot.waitSignal(c.finished, timeout=120000):
        dlg.start()


def test_queue_panel_retrain_button_opens_the_dialog(qtbot, tiny, radview_home):
    from radview.gui.app import make_app
    from radview.gui.main_window import MainWindow
    from radview.gui.retrain import RetrainDialog, install

    make_app()
    w = MainWindow()
    qtbot.addWidget(w)
    try:
        controller = install(w)
        panel = w.extra_panels.get("queuepanel")
        if panel is None:
            pytest.skip("the queue panel is not in this build")
        panel.set_store(panel.store)  # enabled with a store
        panel.retrain.click()
        dlg = next(c for c in w.findChildren(RetrainDialog))
        assert dlg.isVisible() and dlg.c is controller
        controller.started.emit("tiny")  # what a started run does to the button
        assert not panel.retrain.isEnabled()
        controller.cancelled.emit()
        assert panel.retrain.isEnabled() == (panel.store is not None)
    finally:
        w.shutdown()


def test_a_request_dropped_by_a_new_folder_is_submitted_again(qtbot, tiny, executor):
    """Opening a folder bumps the executor's generation and clears its queue; the retrain run
    queued behind other work must still happen."""
    import time

    from radview.gui.retrain import RetrainController

    c = RetrainController(executor)
    executor.call("busy", lambda _b: time.sleep(0.5))
    with qtbot.waitSignal(c.finished, timeout=120000) as blocker:
        assert c.start("tiny", str(tiny), epochs=1, freeze_epochs=0)
        executor.next_generation()  # what a new folder or model does
        # the model thread stays free while the run trains in its own process
        with qtbot.waitSignal(executor.called, timeout=10000) as pong:
            executor.call("ping", lambda _b: "pong")
        assert pong.args[1:] == ["ping", "pong"] and c.running
    assert blocker.args[0].version == "1.0.0+r1"
