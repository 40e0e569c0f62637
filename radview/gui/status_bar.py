"""The main window's status bar: message, pixel and W/L readouts, the throttled progress bar with
its cancel button, and the unreadable-files button (a mixin of MainWindow)."""
from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QProgressBar, QToolButton


class StatusBarMixin:
    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("Ready")
        self.wl_label = QLabel("")
        self.pixel_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setFixedWidth(200)
        self.progress.setVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("✕")
        self.cancel_button.setToolTip("Cancel background work (Esc)")
        self.cancel_button.setVisible(False)
        self.errors_button = QToolButton()
        self.errors_button.setVisible(False)
        self.errors_button.clicked.connect(lambda: self.built and (self.docks["errors"].show(),
                                                                   self.docks["errors"].raise_()))
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.errors_button)
        sb.addPermanentWidget(self.pixel_label)
        sb.addPermanentWidget(self.wl_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)

    def _errors_changed(self, n: int) -> None:
        self.errors_button.setVisible(n > 0)
        self.errors_button.setText(f"⚠ {n} unreadable")
        self.docks["errors"].setWindowTitle(f"Errors ({n})")
        if n and not self.docks["errors"].isVisible():
            self.docks["errors"].show()

    def show_progress(self, done: int | None, total: int = 0, message: str = "") -> None:
        """Progress in the status bar; applied at most every 150 ms (QProgressBar.setValue
        repaints synchronously, and inference reports every image)."""
        self._progress_pending = (done, total, message)
        if not hasattr(self, "_progress_timer"):
            self._progress_timer = QTimer(self)
            self._progress_timer.setSingleShot(True)
            self._progress_timer.timeout.connect(self._apply_progress)
        if done is None or not self.progress.isVisible():
            self._apply_progress()
        elif not self._progress_timer.isActive():
            self._progress_timer.start(150)

    def _apply_progress(self) -> None:
        done, total, message = self._progress_pending
        bar = self.progress
        if done is None:
            self._progress_timer.stop()
            bar.setVisible(False)
            self.cancel_button.setVisible(False)
            return
        bar.setVisible(True)
        self.cancel_button.setVisible(True)
        bar.setUpdatesEnabled(False)  # setValue would repaint at once; let the event loop do it
        if total is None or total <= 0:
            bar.setRange(0, 0)
        else:
            bar.setRange(0, total)
            bar.setValue(min(done, total))
        bar.setFormat(message[:40] if message else "%v/%m")
        bar.setUpdatesEnabled(True)
