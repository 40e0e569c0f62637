"""The "Retrain" action: a controller that runs radview.train.run.retrain (what `radview train`
runs) in a separate process, and a small non-modal dialog (model, data folder, epochs; progress
bar with epoch, batch and loss; a loss curve; cancel; rollback).

    controller = RetrainController(window.executor, parent=window)
    controller.start("region", "/data/openi", epochs=4)   # -> finished(TrainResult) | failed(str) | cancelled()
    install(window)   # the queue panel's Retrain button opens the dialog; a promoted version is reloaded

The training process (radview.gui.retrain_child, spawned: no Qt, no fork of a threaded app)
sends its progress back over a queue; a relay thread turns it into queued signals. The app's
model thread stays free, so inference and Grad-CAM go on while it trains. Cancel stops the run
between batches (the generator is closed: nothing is written); `shutdown()` (on quit) cancels it
and ends the process within a fraction of a second.
"""
from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, QPointF, Qt, Signal, Slot
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import (QComboBox, QDialog, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)


class RetrainController(QObject):
    """started(model), progress(done, total, message, step-or-None), epochEnded(EpochEnd),
    finished(TrainResult), failed(message), cancelled(), rolledBack(model, version)."""

    started = Signal(str)
    progress = Signal(int, int, str, object)
    epochEnded = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    rolledBack = Signal(str, str)
    _relay = Signal(int, str, object)  # (run number, kind, payload) from the relay thread

    def __init__(self, executor: Any, parent: QObject | None = None):
        super().__init__(parent)
        self.executor = executor
        self._relay.connect(self._on_relay, Qt.ConnectionType.QueuedConnection)
        self._run_no = 0
        self._process = None
        self._cancel = None
        self.running = False
        self.model = ""
        self.result: Any = None
        self.ran_on: Any = None  # the pid of the process the last run went on (never the app's)

    # ------------------------------------------------------------------ GUI side
    def start(self, model: str, data: str | None, **settings: Any) -> bool:
        """Start a retraining run in its own process; False if one is already running."""
        if self.running:
            return False
        import multiprocessing

        from radview.gui import retrain_child

        ctx = multiprocessing.get_context("spawn")
        self.running, self.model, self.result = True, model, None
        self._run_no += 1
        queue, cancel = ctx.Queue(), ctx.Event()
        proc = ctx.Process(target=retrain_child.run, args=(model, data, dict(settings), queue, cancel),
                           name=f"radview-retrain-{model}", daemon=True)
        proc.start()
        self._process, self._cancel = proc, cancel
        self.ran_on = proc.pid
        threading.Thread(target=self._pump, args=(self._run_no, proc, queue), name="radview-retrain-relay",
                         daemon=True).start()
        self.started.emit(model)
        return True

    def _pump(self, run_no: int, proc, queue) -> None:
        """Relay thread: the child's messages -> queued signals, until it ends."""
        import queue as queue_mod

        while True:
            try:
                kind, payload = queue.get(timeout=0.2)
            except queue_mod.Empty:
                if not proc.is_alive():
                    try:  # a last message may still be in the pipe
                        kind, payload = queue.get(timeout=0.2)
                    except queue_mod.Empty:
                        code = proc.exitcode
                        self._emit(run_no, "cancelled" if self._cancel is not None and self._cancel.is_set()
                                   else "failed", f"the training process ended (exit code {code})")
                        return
                else:
                    continue
            except (EOFError, OSError):
                return
            self._emit(run_no, kind, payload)
            if kind in ("finished", "failed", "cancelled"):
                proc.join(2.0)
                return

    def _emit(self, run_no: int, kind: str, payload: Any) -> None:
        try:
            self._relay.emit(run_no, kind, payload)
        except RuntimeError:  # the controller is gone (the window closed)
            pass

    def cancel(self) -> None:
        if self.running and self._cancel is not None:
            self._cancel.set()  # the child stops at its next batch; "cancelled" follows

    def shutdown(self, timeout: float = 0.5) -> None:
        """End the training process (the app quits): cancel, then terminate, then kill."""
        proc = self._process
        if proc is None:
            return
        if self._cancel is not None:
            self._cancel.set()
        proc.join(timeout / 2)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout / 2)
        if proc.is_alive():
            proc.kill()
            proc.join(0.2)
        self._process = None
        self.running = False

    def rollback(self, model: str) -> None:
        """One-step rollback (a small job on the model thread, which reloads models)."""
        def job(_backend: Any) -> None:
            from radview.train.versions import VersionError, rollback

            try:
                self._relay.emit(self._run_no, "rolledback", (model, rollback(model)))
            except (VersionError, OSError) as exc:
                self._relay.emit(self._run_no, "failed", str(exc))
        self.executor.call(("retrain-rollback", model), job)

    @Slot(int, str, object)
    def _on_relay(self, run_no: int, kind: str, payload: Any) -> None:
        if run_no != self._run_no:
            return  # a message of an earlier run
        if kind == "started":
            self.ran_on = payload
        elif kind == "progress":
            if self.running:
                self.progress.emit(*payload)
        elif kind == "epoch":
            self.epochEnded.emit(payload)
        elif kind == "rolledback":
            self.rolledBack.emit(*payload)
        elif kind in ("finished", "failed", "cancelled"):
            if kind == "failed" and not self.running:
                self.failed.emit(str(payload))
                return
            self._finish(kind, payload)

    def _finish(self, kind: str, payload: Any) -> None:
        if not self.running:
            return
        self.running = False
        self._process = None
        if kind == "finished":
            self.result = payload
            self.finished.emit(payload)
        elif kind == "failed":
            self.failed.emit(str(payload))
        else:
            self.cancelled.emit()


class LossCurve(QWidget):
    """Training loss per batch (smoothed line) and validation loss per epoch (dots)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(320, 140)
        self.batch: list[float] = []
        self.val: list[tuple[int, float]] = []  # (batch count at epoch end, loss)

    def clear(self) -> None:
        self.batch.clear()
        self.val.clear()
        self.update()

    def add_batch(self, loss: float) -> None:
        self.batch.append(float(loss))
        self.update()

    def add_val(self, loss: float | None) -> None:
        if loss is not None:
            self.val.append((len(self.batch), float(loss)))
            self.update()

    def smoothed(self, beta: float = 0.9) -> list[float]:
        out, avg = [], 0.0
        for i, v in enumerate(self.batch, start=1):
            avg = beta * avg + (1 - beta) * v
            out.append(avg / (1 - beta ** i))
        return out

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = self.rect().adjusted(8, 8, -8, -8)
        p.fillRect(self.rect(), self.palette().base())
        values = self.batch + [v for _i, v in self.val]
        if len(self.batch) < 2 or not values:
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "loss curve")
            return
        lo, hi = min(values), max(values)
        span = (hi - lo) or 1.0
        n = max(2, len(self.batch))

        def pt(i: float, v: float) -> QPointF:
            return QPointF(r.left() + r.width() * i / (n - 1), r.bottom() - r.height() * (v - lo) / span)

        p.setPen(QPen(QColor(150, 150, 150, 110), 1))
        p.drawPolyline(QPolygonF([pt(i, v) for i, v in enumerate(self.batch)]))
        p.setPen(QPen(QColor(40, 120, 220), 2))
        p.drawPolyline(QPolygonF([pt(i, v) for i, v in enumerate(self.smoothed())]))
        p.setPen(QPen(QColor(230, 120, 20), 2))
        p.setBrush(QColor(230, 120, 20))
        for i, v in self.val:
            p.drawEllipse(pt(max(0, i - 1), v), 3.5, 3.5)
        p.setPen(self.palette().text().color())
        p.drawText(r, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight,
                   f"train (blue) · valid (orange)   {hi:.3f}")
        p.drawText(r, Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignRight, f"{lo:.3f}")


class RetrainDialog(QDialog):
    """Model, data folder and epochs; Start; progress (epoch, batch, loss) and the loss curve;
    Cancel while running; Roll back (one step) afterwards. Non-modal: the app stays usable."""

    def __init__(self, controller: RetrainController, models: list[str] | None = None, model: str = "",
                 data: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Retrain model")
        self.setModal(False)
        self.c = controller
        self.model_combo = QComboBox()
        self.model_combo.addItems(models or ([model] if model else []))
        if model:
            i = self.model_combo.findText(model)
            self.model_combo.setCurrentIndex(max(0, i))
        self.data_edit = QLineEdit(data)
        self.data_edit.setPlaceholderText("labelled data folder (default: the model's own training data)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.data_edit, 1)
        row.addWidget(browse)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 200)
        self.epochs.setValue(4)
        form = QFormLayout()
        form.addRow("Model", self.model_combo)
        form.addRow("Data", row)
        form.addRow("Epochs", self.epochs)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.step_label = QLabel("Not started")
        self.curve = LossCurve()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self.rollback_button = QPushButton("Roll back one version")
        self.close_button = QPushButton("Close")
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.c.cancel)
        self.rollback_button.clicked.connect(lambda: self.c.rollback(self.model_combo.currentText()))
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.rollback_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.bar)
        lay.addWidget(self.step_label)
        lay.addWidget(self.curve, 1)
        lay.addWidget(self.log, 1)
        lay.addLayout(buttons)
        c = self.c
        c.started.connect(self._started)
        c.progress.connect(self._progress)
        c.epochEnded.connect(self._epoch)
        c.finished.connect(self._finished)
        c.failed.connect(self._failed)
        c.cancelled.connect(self._cancelled)
        c.rolledBack.connect(self._rolled_back)
        self._set_running(c.running)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Labelled data folder", self.data_edit.text())
        if d:
            self.data_edit.setText(d)

    def _set_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)
        self.rollback_button.setEnabled(not on)
        for w in (self.model_combo, self.data_edit, self.epochs):
            w.setEnabled(not on)

    def settings(self) -> dict[str, Any]:
        return {"epochs": self.epochs.value()}

    def start(self) -> bool:
        model = self.model_combo.currentText().strip()
        if not model:
            self.log.appendPlainText("Choose a model first.")
            return False
        self.curve.clear()
        return self.c.start(model, self.data_edit.text().strip() or None, **self.settings())

    @Slot(str)
    def _started(self, model: str) -> None:
        self._set_running(True)
        self.bar.setRange(0, 0)
        self.step_label.setText(f"Retraining {model}: waiting for the model thread…")
        self.log.appendPlainText(f"Retraining {model}…")

    @Slot(int, int, str, object)
    def _progress(self, done: int, total: int, message: str, step: Any) -> None:
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
        else:
            self.bar.setRange(0, 0)
        if step is not None:
            self.step_label.setText(f"Epoch {step.epoch}/{step.epochs} · batch {step.batch}/{step.batches} · "
                                    f"loss {step.loss:.4f}")
            self.curve.add_batch(step.loss)
        else:
            self.step_label.setText(message)

    @Slot(object)
    def _epoch(self, end: Any) -> None:
        self.curve.add_val(end.val_loss)
        val = f"{end.val_loss:.4f}" if end.val_loss is not None else "n/a"
        self.log.appendPlainText(f"epoch {end.epoch}/{end.epochs} ({end.phase}): train loss {end.train_loss:.4f}, "
                                 f"valid loss {val}" + (" ← best" if end.best else "")
                                 + (" (early stop)" if end.stop else ""))

    @Slot(object)
    def _finished(self, res: Any) -> None:
        self._set_running(False)
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        verdict = "promoted to current" if res.promoted else "kept as a candidate"
        self.step_label.setText(f"{res.model} {res.version}: {verdict}")
        self.log.appendPlainText(f"{res.model} {res.version}: {verdict}. {res.reason}")
        new, old = res.metrics.get(res.metric), res.parent_metrics.get(res.metric)
        self.log.appendPlainText(f"{res.metric} on the locked test split: {new} (was {old} with "
                                 f"{res.parent_version}); {len(res.consumed)} queued corrections consumed")

    @Slot(str)
    def _failed(self, message: str) -> None:
        self._set_running(self.c.running)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.step_label.setText("Failed")
        self.log.appendPlainText(f"Failed: {message}")

    @Slot()
    def _cancelled(self) -> None:
        self._set_running(False)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.step_label.setText("Cancelled: no version was written")
        self.log.appendPlainText("Cancelled: no version was written.")

    @Slot(str, str)
    def _rolled_back(self, model: str, version: str) -> None:
        self.log.appendPlainText(f"{model}: rolled back; current version is now {version}")


def install(window: Any) -> RetrainController:
    """Wire the Retrain action into a MainWindow: the queue panel's Retrain button opens the dialog
    (defaults: the current model, the opened folder); while a run is going the button is
    disabled; a promoted version (or a rollback) of the current model is loaded at once.
    Idempotent: a window that has its controller already gets the same one back."""
    existing = getattr(window, "retrain_controller", None)
    if existing is not None:
        return existing
    controller = RetrainController(window.executor, parent=window)
    window.retrain_controller = controller
    if hasattr(window, "destroyed"):
        window.destroyed.connect(lambda *_: controller.shutdown())
    panel = getattr(window, "extra_panels", {}).get("queuepanel")
    state: dict[str, Any] = {"dialog": None}

    def open_dialog() -> RetrainDialog:
        dlg = state["dialog"]
        if dlg is None:
            ai = getattr(window, "ai", None)
            names = [m.name for m in getattr(ai, "models", [])]
            dlg = RetrainDialog(controller, names, getattr(ai, "model_name", "") or "",
                                getattr(window, "root", None) or "", parent=window)
            state["dialog"] = dlg
        dlg.show()
        dlg.raise_()
        return dlg

    def reload_if_current(model: str) -> None:
        ai = getattr(window, "ai", None)
        if ai is not None and getattr(ai, "model_name", "") == model:
            ai.choose_model(model)

    controller.finished.connect(lambda res: res.promoted and reload_if_current(res.model))
    controller.rolledBack.connect(lambda model, _v: reload_if_current(model))
    if panel is not None:
        panel.retrainRequested.connect(open_dialog)
        controller.started.connect(lambda _m: panel.set_retrain_enabled(False))
        for sig in (controller.finished, controller.failed, controller.cancelled):
            sig.connect(lambda *_a: panel.set_retrain_enabled(True))
    window.open_retrain_dialog = open_dialog
    return controller
