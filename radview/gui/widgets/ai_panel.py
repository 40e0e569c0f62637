"""AI panel: a model per overlay ("Heatmap & call from", "Boxes from"), the model state, the
study-level call, the study's body part and where it was routed (with "Run on this study" for a
model its body part skipped), and the overlay layer controls (Grad-CAM opacity / colormap /
block, box score threshold, 'what the model saw')."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider

COLORMAPS = ("jet", "inferno", "viridis", "hot", "gray")  # radview.models.overlay.colormap_lut


class AIPanel(QWidget):
    modelChosen = Signal(str)
    importRequested = Signal(str)
    camToggled = Signal(bool)
    opacityChanged = Signal(float)
    colormapChanged = Signal(str)
    blockChanged = Signal(str)
    boxesToggled = Signal(bool)
    thresholdChanged = Signal(float)
    modelSawToggled = Signal(bool)
    runFolder = Signal()
    cancelRequested = Signal()
    boxModelChosen = Signal(str)
    runAnyway = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._models: dict[str, object] = {}
        # --- model
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("Model whose Grad-CAM heatmap and study call are shown (it runs on "
                                    "every study: you picked it)")
        self.model_state = QLabel("Loading models…")
        self.model_state.setObjectName("Muted")
        self.model_state.setWordWrap(True)
        self.import_button = QPushButton("Import weights…")
        self.import_button.setVisible(False)
        # --- study call
        card = QFrame()
        card.setObjectName("Card")
        self.call_label = QLabel("–")
        self.call_label.setObjectName("StudyCall")
        self.call_detail = QLabel("")
        self.call_detail.setObjectName("Muted")
        self.call_detail.setWordWrap(True)
        self.domain_label = QLabel("")
        self.domain_label.setObjectName("Warning")
        self.domain_label.setWordWrap(True)
        self.domain_label.setVisible(False)
        self.calibration_label = QLabel("")  # is the probability calibrated for this site?
        self.calibration_label.setObjectName("Muted")
        self.calibration_label.setWordWrap(True)
        cl = QVBoxLayout(card)
        cl.addWidget(QLabel("Study"))
        cl.addWidget(self.call_label)
        cl.addWidget(self.call_detail)
        cl.addWidget(self.calibration_label)
        cl.addWidget(self.domain_label)
        # --- layers
        self.cam_check = QCheckBox("Grad-CAM heatmap")
        self.cam_check.setChecked(True)
        self.opacity = QLabeledSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(COLORMAPS)
        self.block_combo = QComboBox()
        self.block_combo.setToolTip("Layer the Grad-CAM is taken from (default: the last conv block)")
        self.box_combo = QComboBox()
        self.box_combo.setToolTip("Model whose predicted boxes are drawn; it runs beside the heatmap model, "
                                  "only on studies of its body part (see Routing)")
        self.box_combo.addItem("(heatmap model's own)", "")
        # --- body part and routing of the visible study
        self.body_part_label = QLabel("")
        self.body_part_label.setObjectName("Muted")
        self.body_part_label.setWordWrap(True)
        self.route_label = QLabel("")
        self.route_label.setWordWrap(True)
        self.run_anyway_button = QPushButton("Run on this study")
        self.run_anyway_button.setToolTip("Run the model(s) routing skipped on this study although its body "
                                          "part is outside their domain (the gate still flags the answer)")
        self.run_anyway_button.setVisible(False)
        self._route_model = ""
        self.boxes_check = QCheckBox("Predicted boxes")
        self.boxes_check.setChecked(True)
        self.threshold = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.01)
        self.threshold.setValue(0.5)
        self.saw_check = QCheckBox("What the model saw")
        self.saw_check.setToolTip("Show the exact preprocessed model input with its CAM")
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.addRow(self.cam_check)
        form.addRow("Opacity", self.opacity)
        form.addRow("Colormap", self.cmap_combo)
        form.addRow("Block", self.block_combo)
        form.addRow(self.boxes_check)
        form.addRow("Boxes from", self.box_combo)
        form.addRow("Min score", self.threshold)
        form.addRow(self.saw_check)
        # --- run
        self.run_button = QPushButton("Run on folder")
        self.cancel_button = QPushButton("Cancel")
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addWidget(QLabel("Heatmap & call from"))
        lay.addWidget(self.model_combo)
        lay.addWidget(self.model_state)
        lay.addWidget(self.import_button)
        lay.addSpacing(6)
        lay.addWidget(card)
        lay.addWidget(self.body_part_label)
        lay.addWidget(self.route_label)
        lay.addWidget(self.run_anyway_button)
        lay.addSpacing(6)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addStretch(1)
        # --- wiring
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.import_button.clicked.connect(self._import)
        self.cam_check.toggled.connect(self.camToggled)
        self.opacity.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100.0))
        self.cmap_combo.currentTextChanged.connect(self.colormapChanged)
        self.block_combo.currentTextChanged.connect(self.blockChanged)
        self.boxes_check.toggled.connect(self.boxesToggled)
        self.threshold.valueChanged.connect(lambda v: self.thresholdChanged.emit(float(v)))
        self.saw_check.toggled.connect(self.modelSawToggled)
        self.run_button.clicked.connect(self.runFolder)
        self.box_combo.currentIndexChanged.connect(lambda _i: self.boxModelChosen.emit(self.current_box_model()))
        self.run_anyway_button.clicked.connect(lambda: self.runAnyway.emit(self._route_model))
        self.cancel_button.clicked.connect(self.cancelRequested)

    # ------------------------------------------------------------------ model list and state
    def set_models(self, infos, current: str | None) -> None:
        """infos: objects with .name, .available (bool), .reason (why not), .task."""
        self._models = {i.name: i for i in infos}
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItem("(no model)", "")
        for info in infos:
            text = info.name if info.available else f"{info.name}  (weights not installed)"
            self.model_combo.addItem(text, info.name)
        idx = self.model_combo.findData(current or "")
        self.model_combo.setCurrentIndex(max(idx, 0))
        self.model_combo.blockSignals(False)
        self.show_model_state(current)

    def current_model(self) -> str:
        return str(self.model_combo.currentData() or "")

    def set_box_models(self, infos, current: str | None) -> None:
        """The detection models for the boxes overlay (infos with .name); current selected."""
        self.box_combo.blockSignals(True)
        self.box_combo.clear()
        self.box_combo.addItem("(heatmap model's own)", "")
        for info in infos:
            self.box_combo.addItem(info.name, info.name)
        idx = self.box_combo.findData(current or "")
        self.box_combo.setCurrentIndex(max(idx, 0))
        self.box_combo.blockSignals(False)

    def current_box_model(self) -> str:
        return str(self.box_combo.currentData() or "")

    def show_routes(self, verdict, model: str, state: str, skipped: str, heatmap: str = "",
                    heatmap_skipped: str = "") -> None:
        """The visible study's body part (a routing.BodyPartVerdict or None) and what the boxes
        model did with it (state text); skipped: why it was not run ("" if it ran); heatmap /
        heatmap_skipped: the same for the heatmap model when routing skipped it (bodypart,
        issue 13). "Run on this study" asks for the skipped model(s)."""
        if verdict is None:
            self.body_part_label.setText("")
        else:
            p = f" (p={verdict.probability:.2f})" if verdict.probability is not None else ""
            self.body_part_label.setText(f"Body part: {verdict.part}{p} · {verdict.reason}")
        lines = [f"Heatmap · {heatmap}: not run: {heatmap_skipped}"] if heatmap and heatmap_skipped else []
        lines += [f"Boxes · {model}: {state}"] if model else []
        self.route_label.setText("\n".join(lines))
        warn = bool(skipped or (heatmap and heatmap_skipped))
        self.route_label.setObjectName("Warning" if warn else "")
        self.route_label.setStyleSheet("color: #ffb454;" if warn else "")
        self._route_model = (heatmap if heatmap and heatmap_skipped else model) if warn else ""
        self.run_anyway_button.setVisible(warn)

    def show_model_state(self, name: str | None, text: str | None = None) -> None:
        info = self._models.get(name or "")
        missing = info is not None and not info.available
        self.import_button.setVisible(missing)
        if text is not None:
            self.model_state.setText(text)
        elif info is None:
            self.model_state.setText("No model: the viewer only." if self._models else "No models found.")
        elif missing:
            self.model_state.setText(f"Weights not installed: {info.reason}")
        else:
            self.model_state.setText(getattr(info, "summary", "") or info.name)

    def set_blocks(self, blocks, default: str | None) -> None:
        self.block_combo.blockSignals(True)
        self.block_combo.clear()
        self.block_combo.addItems(list(blocks))
        if default:
            self.block_combo.setCurrentText(default)
        self.block_combo.blockSignals(False)

    def _model_changed(self, _i: int) -> None:
        name = self.current_model()
        self.show_model_state(name)
        self.modelChosen.emit(name)

    def _import(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Import model weights", "",
                                              "Weights (*.pt *.pth *.safetensors *.ts);;All files (*)")
        if path:
            self.importRequested.emit(path)

    # ------------------------------------------------------------------ study call
    def show_study(self, sp, label: str | None = None, calibration: str = "") -> None:
        """sp: a StudyPrediction or None. calibration: whether its probabilities are calibrated
        for this site (radview.review.calibration.calibration_status(...).text)."""
        self.calibration_label.setText(calibration if sp is not None else "")
        if sp is None:
            self.call_label.setText("–")
            self.call_label.setStyleSheet("")
            self.call_detail.setText("")
            self.domain_label.setVisible(False)
            return
        call = sp.predicted or "?"
        # the probability of the class called (the call follows the model's threshold, which
        # need not be 0.5: a detector called positive at 0.37 shows 0.37, not max(probs))
        if call in sp.classes and sp.probs:
            p = sp.probs[sp.classes.index(call)]
        else:
            p = max(sp.probs) if sp.probs else None
        self.call_label.setText(f"{call}  {p:.2f}" if p is not None else call)
        positive = call.lower() in ("abnormal", "positive", "pneumonia", "opacity")
        self.call_label.setStyleSheet(f"color: {'#ff6b6b' if positive else '#e8e8e8'};")
        probs = ", ".join(f"{c} {v:.2f}" for c, v in zip(sp.classes, sp.probs))
        views = len(sp.views)
        detail = f"{probs}\n{views} view(s) · {sp.model} {sp.model_version}"
        if label:
            verdict = "" if label not in sp.classes else ("  ✗ disagrees" if label != call else "  ✓ agrees")
            detail += f"\nlabel: {label}{verdict}"
        self.call_detail.setText(detail)
        self.domain_label.setVisible(not sp.in_domain)
        self.domain_label.setText(f"Out of domain: {sp.domain_reason}" if not sp.in_domain else "")
