"""The review panel's threshold row: a slider over [0, 1] with the live figures at the slider's
value, 'best (Youden)' and 'save as site threshold' buttons.

moved(t) while dragging (the panel answers from its threshold sweep in O(log n), no recompute);
applied(t) on release, or after a 300 ms pause for keyboard and wheel changes."""
from __future__ import annotations

from PySide6.QtCore import QTimer, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

STEPS = 1000


class ThresholdBar(QWidget):
    moved = Signal(float)
    applied = Signal(float)
    bestRequested = Signal()
    saveRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=STEPS)
        self.slider.setToolTip("decision threshold: positive if p > threshold")
        self.slider.valueChanged.connect(self._on_value)
        self.slider.sliderReleased.connect(lambda: self.applied.emit(self.value()))
        self.threshold_label = QLabel("")
        fm = self.threshold_label.fontMetrics()
        self.threshold_label.setMinimumWidth(fm.horizontalAdvance("threshold 0.000 (unsaved)") + 8)
        self.live_label = QLabel("")
        self.live_label.setMinimumWidth(fm.horizontalAdvance("sens 0.000 · spec 0.000 · kappa -0.000") + 8)
        self.best_button = QPushButton("best (Youden)")
        self.best_button.setToolTip("the threshold maximising sensitivity + specificity - 1 here")
        self.best_button.clicked.connect(self.bestRequested)
        self.save_button = QPushButton("save as site threshold")
        self.save_button.setToolTip("keep this threshold for this model at this site "
                                    "(shown as 'site'; the model's own stays in its manifest)")
        self.save_button.clicked.connect(self.saveRequested)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.threshold_label, self.slider, self.live_label, self.best_button,
                  self.save_button):
            lay.addWidget(w)
        lay.setStretch(1, 1)
        self._pause = QTimer(self, singleShot=True, interval=300)
        self._pause.timeout.connect(lambda: self.applied.emit(self.value()))

    def value(self) -> float:
        return self.slider.value() / STEPS

    def set_value(self, t: float) -> None:
        """Move the slider without signals."""
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(min(max(t, 0.0), 1.0) * STEPS)))
        self.slider.blockSignals(False)

    def show_figures(self, t: float, source: str, sens: str, spec: str, kappa: str) -> None:
        self.threshold_label.setText(f"threshold {t:.3f} ({source})")
        self.live_label.setText(f"sens {sens} · spec {spec} · kappa {kappa}")

    def _on_value(self, _value: int) -> None:
        self.moved.emit(self.value())
        if not self.slider.isSliderDown():  # keyboard, wheel or programmatic
            self._pause.start()
        else:
            self._pause.stop()
