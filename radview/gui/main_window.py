"""The main window: menus and toolbar from the one shortcut table, docks (studies, AI, DICOM
tags, errors, and the label / queue / review panels when they exist), the viewer in the centre,
a status bar with the W/L readout, pixel value, progress and cancel."""
from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QToolButton,
    QWidget,
)

from radview.gui import settings as cfg
from radview.gui.menus import MenusMixin
from radview.gui.panels import PanelsMixin
from radview.gui.theme import icon, style_chrome

if TYPE_CHECKING:
    from radview.gui.workers import GeneratorThread, ModelExecutor
    from radview.types import ScanResult, Study

ICONS = {"open_folder": "open", "fit": "fit", "one_to_one": "one", "pan_mode": "pan", "invert": "invert",
         "rotate_cw": "rotate", "flip_h": "flip_h", "flip_v": "flip_v", "reset_view": "reset",
         "grid_layout": "grid", "toggle_cam": "cam", "toggle_boxes": "boxes", "model_saw": "eye", "help": "help"}

class MainWindow(MenusMixin, PanelsMixin, QMainWindow):
    """scanFinished(ScanResult) after a folder is read; studyShown(Study)."""

    scanFinished = Signal(object)
    studyShown = Signal(object)

    def __init__(self, executor: ModelExecutor | None = None, deferred: bool = False):
        """deferred=True builds only the shell (menus, toolbar, docks, status bar: Qt alone) so
        that the window paints at once; build() adds the rest (numpy, superqt, the viewer)."""
        super().__init__()
        self.setWindowTitle("radview")
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self.docks: dict[str, QDockWidget] = {}
        self.setCentralWidget(QWidget())
        self.extra_panels: dict[str, QWidget] = {}
        self.scan_thread: GeneratorThread | None = None
        self.scan_result: ScanResult | None = None
        self.root: str | None = None
        self.unknown_model = ""
        self.built = False
        self._build_status_bar()
        self.actions: dict[str, QAction] = {}
        self._build_actions()
        self._build_menus()
        self.executor = executor
        style_chrome(self.menuBar(), self.statusBar(), self.toolbar)
        if not deferred:
            self.build()

    def build(self) -> None:
        """Create the viewer, browser and panels (safe to call twice)."""
        if self.built:
            return
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        for key, act in self.actions.items():  # icons load now (SVG rendering is not free)
            if key in ICONS:
                act.setIcon(icon(ICONS[key]))
        self.wl_button.setIcon(icon("wl"))
        from radview.gui.workers import ModelExecutor, warm_up_imports

        if self.executor is None:
            self.executor = ModelExecutor(parent=self)
        from radview.gui.ai_controller import AIController
        from radview.gui.viewer import FrameStore, StudyViewer
        from radview.gui.widgets.ai_panel import AIPanel
        from radview.gui.widgets.errors_panel import ErrorsPanel
        from radview.gui.widgets.help_overlay import HelpOverlay
        from radview.gui.widgets.study_browser import StudyBrowser
        from radview.gui.widgets.tag_browser import TagBrowser
        from radview.gui.widgets.thumbnails import ThumbnailCache

        self.thumbnails = ThumbnailCache(parent=self)
        self.frames = FrameStore(parent=self)
        self.viewer = StudyViewer(self.frames, self)
        old = self.centralWidget()
        self.setCentralWidget(self.viewer)
        if old is not None:
            old.deleteLater()
        self.browser = StudyBrowser(self.thumbnails, self)
        self.ai_panel = AIPanel(self)
        self.tags = TagBrowser(self)
        self.errors = ErrorsPanel(self)
        self._dock("studies", "Studies", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("ai", "AI", self.ai_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("tags", "DICOM tags", self.tags, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["ai"], self.docks["tags"])
        self.docks["ai"].raise_()
        self._dock("errors", "Errors", self.errors, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.docks["errors"].hide()
        self._dock_extra_panels()
        self.resizeDocks([self.docks["studies"], self.docks["ai"]], [400, 290], Qt.Orientation.Horizontal)
        self.help = HelpOverlay(self)
        style_chrome(self.ai_panel)
        self.ai = AIController(self, self.executor)
        self.actions["grid_layout"].setChecked(True)
        self.actions["toggle_cam"].setChecked(self.ai_panel.cam_check.isChecked())
        self.actions["toggle_boxes"].setChecked(True)
        self.built = True
        self._wire()
        self._wire_extra_panels()
        threading.Thread(target=warm_up_imports, name="radview-warm-up", daemon=True).start()

    # ------------------------------------------------------------------ construction
    def _dock(self, key: str, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{key}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        self.docks[key] = dock
        self.panels_menu.addAction(dock.toggleViewAction())
        return dock

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

    def _wire(self) -> None:
        self.browser.studyActivated.connect(lambda st: self.show_study(st, 0, from_browser=True))
        self.browser.viewActivated.connect(lambda st, i: self.show_study(st, i, from_browser=True))
        self.viewer.currentChanged.connect(self._view_changed)
        self.viewer.frameShown.connect(self._frame_shown)
        self.viewer.windowChanged.connect(self._window_changed)
        self.viewer.pixelInfo.connect(self.pixel_label.setText)
        self.errors.countChanged.connect(self._errors_changed)
        self.cancel_button.clicked.connect(self.cancel_work)
        p, ai = self.ai_panel, self.ai
        p.modelChosen.connect(ai.choose_model)
        p.importRequested.connect(lambda path: ai.import_weights(p.current_model(), path))
        p.camToggled.connect(ai.set_show_cam)
        p.camToggled.connect(self.actions["toggle_cam"].setChecked)
        p.opacityChanged.connect(ai.set_opacity)
        p.colormapChanged.connect(ai.set_colormap)
        p.blockChanged.connect(ai.set_block)
        p.boxesToggled.connect(ai.set_show_boxes)
        p.boxesToggled.connect(self.actions["toggle_boxes"].setChecked)
        p.thresholdChanged.connect(ai.set_threshold)
        p.modelSawToggled.connect(ai.set_model_saw)
        p.modelSawToggled.connect(self.actions["model_saw"].setChecked)
        p.runFolder.connect(ai.queue_folder)
        p.cancelRequested.connect(self.cancel_work)
        p.opacity.setValue(int(round(ai.opacity * 100)))
        idx = p.cmap_combo.findText(ai.colormap)
        if idx >= 0:
            p.cmap_combo.setCurrentIndex(idx)
        ai.modelsListed.connect(self._models_listed)
        ai.status.connect(self.status_label.setText)

    # ------------------------------------------------------------------ start-up
    def start_background(self, model: str | None = None) -> None:
        """Start the model executor (torch is imported there, after the window is shown)."""
        self._requested_model = model
        if not self.executor.isRunning():
            self.executor.start(self.executor.Priority.LowPriority)

    def _models_listed(self, infos) -> None:
        requested = getattr(self, "_requested_model", None)
        name = requested if requested is not None else self.ai.default_model()
        self._requested_model = None
        if name and name not in {m.name for m in infos}:
            self.status_label.setText(f"unknown model {name!r}")
            self.unknown_model = name
            name = ""
        self.ai_panel.set_models(infos, name)
        if name != self.ai.model_name or self.ai.model_info is None:
            self.ai.choose_model(name)

    # ------------------------------------------------------------------ opening
    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open folder", self.root or os.path.expanduser("~"))
        if path:
            self.open_path(path)

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open files", self.root or os.path.expanduser("~"),
                                                "Images (*.dcm *.dicom *.png *.jpg *.jpeg *.tif *.tiff);;All files (*)")
        if files:
            self.open_path(files[0] if len(files) == 1 else os.path.commonpath(files))

    def open_samples(self) -> None:
        from radview.io.samples import sample_folder

        self.open_path(str(sample_folder()))

    def open_path(self, path: str) -> None:
        """Scan a folder or file in the background; the browser fills when it is done."""
        path = os.path.abspath(path)
        self.root = path
        cfg.add_recent(path)
        self._fill_recent()
        if self.scan_thread is not None:
            self.scan_thread.cancel()
        from radview.gui.workers import GeneratorThread
        from radview.io.studies import iter_scan

        t = GeneratorThread(lambda: iter_scan(path), self)
        t.progress.connect(lambda d, n, m: self.show_progress(d, n, m) if t is self.scan_thread else None)
        t.result.connect(lambda r: self._scan_done(t, r))
        t.failed.connect(lambda msg: self._scan_failed(t, msg))
        t.finished.connect(t.deleteLater)
        self.scan_thread = t
        self.setWindowTitle(f"radview — {path}")
        self.status_label.setText(f"Scanning {path}…")
        t.start()

    def _scan_failed(self, t, message: str) -> None:
        if t is self.scan_thread:
            self.scan_thread = None
            self.show_progress(None)
            self.status_label.setText(f"Cannot open: {message}")
            self.errors.add_error(self.root or "", message)

    def _scan_done(self, t, result: ScanResult) -> None:
        if t is not self.scan_thread:
            return
        self.scan_thread = None
        self.show_progress(None)
        self.scan_result = result
        self.frames.clear()
        self.thumbnails.clear()
        self.browser.set_studies(result.studies)
        self.errors.set_errors(result.errors)
        n_views = sum(len(s.views) for s in result.studies)
        self.status_label.setText(f"{len(result.studies)} studies, {n_views} images"
                                  + (f", {len(result.errors)} unreadable" if result.errors else ""))
        first = self.browser.neighbour(None, 1)
        self.show_study(first, 0)
        self.ai.folder_opened()
        self.scanFinished.emit(result)

    def dragEnterEvent(self, event):  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_path(paths[0] if len(paths) == 1 else os.path.commonpath(paths))

    # ------------------------------------------------------------------ navigation
    def show_study(self, study: Study | None, view: int = 0, from_browser: bool = False) -> None:
        if study is None:
            self.viewer.set_study(None)
            return
        same = self.viewer.study is not None and self.viewer.study.key == study.key
        if same:
            self.viewer.set_current(view)
        else:
            self.viewer.set_study(study, view)
        if not from_browser:
            self.browser.select(study.key, view if len(study.views) > 1 else None)
        self._update_tags()
        if not same:
            self.ai.study_shown(study)
            self.studyShown.emit(study)
            nxt = self.browser.neighbour(study.key, 1)  # prefetch the next study's pixels
            if nxt is not None:
                for v in nxt.views[:4]:
                    self.frames.get(v.ref)
        else:
            self.ai.refresh()

    def step_study(self, step: int) -> None:
        current = self.viewer.study
        target = self.browser.neighbour(current.key if current else None, step)
        if target is not None:
            self.show_study(target, 0 if step > 0 else max(0, len(target.views) - 1))

    def step_image(self, step: int) -> None:
        if self.viewer.step(step):
            return
        self.step_study(step)

    def _view_changed(self, index: int) -> None:
        st = self.viewer.study
        if st is not None:
            self.browser.select(st.key, index if len(st.views) > 1 else None)
        self._update_tags()
        self.ai.refresh()

    def _update_tags(self) -> None:
        st = self.viewer.study
        if st is None or not st.views:
            self.tags.show_file(None)
            return
        ref = st.views[self.viewer.current].ref
        frame = self.frames.get(ref, load=False)
        if self.docks["tags"].isVisible() or not self.tags.path:
            self.tags.show_file(ref.path, frame.meta if frame is not None else None)

    def _frame_shown(self, index: int, frame) -> None:
        st = self.viewer.study
        canvas = self.viewer.canvas_of(index)
        if st is None or canvas is None:
            return
        view = st.views[index]
        h, w = frame.shape
        canvas.annotations["top_left"] = [x for x in (
            st.patient or "", (st.study_type or view.body_part or st.layout).upper(),
            os.path.basename(view.ref.path), f"{view.modality or frame.meta.get('Modality', '')} {w}×{h}".strip(),
            f"image {index + 1}/{len(st.views)}") if x]
        label = self.study_label(st)
        canvas.annotations["bottom_right"] = [f"label: {label}"] if label else []
        if index == self.viewer.current:
            self._window_changed(canvas.current_window())
            self._update_tags()
        self.ai.refresh()

    def study_label(self, study: Study) -> str | None:
        if study.label is not None and study.label.value:
            return study.label.value
        return None

    # ------------------------------------------------------------------ tools
    def apply_preset(self, name: str) -> None:
        canvas = self.viewer.active_canvas()
        if canvas.frame is None:
            return
        if name == "auto":
            from radview.io.display import auto_window_of

            self.viewer.apply_window(auto_window_of(canvas.frame))
        else:
            from radview.types import Window

            c, w = cfg.PRESETS[name]
            self.viewer.apply_window(Window(c, w, "LINEAR", name))

    def _reset_view(self) -> None:
        self.actions["invert"].setChecked(False)
        self.viewer.active_canvas().reset_view()

    def _set_pan_mode(self, on: bool) -> None:
        for c in self.viewer.canvases:
            c.pan_mode = on

    def _window_changed(self, window) -> None:
        if window is not None:
            self.wl_label.setText(f"W {window.width:.0f} / L {window.center:.0f}")

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

    def cancel_work(self) -> None:
        if self.help.isVisible():
            self.help.hide()
            return
        if self.scan_thread is not None:
            self.scan_thread.cancel()
            self.scan_thread = None
            self.status_label.setText("Scan cancelled")
        self.ai.cancel()
        self.show_progress(None)

    def refresh_overlays(self) -> None:
        for _vi, c in self.viewer.visible_canvases():
            c.clear_overlays()
            c.annotations.pop("top_right", None)
        self.ai_panel.show_study(None)

    def show_help(self) -> None:
        rows = [(self.actions[k].shortcut().toString(), text) for k, (_d, text) in cfg.SHORTCUTS.items()
                if not self.actions[k].shortcut().isEmpty()]
        self.help.show_shortcuts(rows)

    def open_settings(self) -> None:
        from radview.gui.settings_dialog import SettingsDialog

        device = str(cfg.get("device", "auto"))
        if SettingsDialog(self).exec():
            self.apply_shortcuts()
            if str(cfg.get("device", "auto")) != device and self.ai.model_name:
                self.ai.choose_model(self.ai.model_name)  # reload on the new device

    def _save_screenshot_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "radview.png", "PNG (*.png)")
        if path:
            self.grab().save(path)

    def is_settled(self) -> bool:
        """The folder is read, the visible images are shown, and the model's answers (and
        heatmaps) for the visible study are in, or there is no model to wait for."""
        if self.scan_thread is not None or self.scan_result is None:
            return False
        for _vi, c in self.viewer.visible_canvases():
            if c.frame is None and c.message.startswith("Loading"):
                return False
        ai = self.ai
        if not ai.models_ready:
            return False
        study = self.viewer.study
        if not ai.model_name or study is None or not study.views:
            return True
        info = next((m for m in ai.models if m.name == ai.model_name), None)
        if info is not None and not info.available:
            return True
        if ai.model_info is None:
            return ai.load_failed
        return study.key in ai.study_preds and ai.cams_complete()

    # ------------------------------------------------------------------ shutdown
    def closeEvent(self, event):  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop every background thread (called on close; safe twice)."""
        if self.scan_thread is not None:
            self.scan_thread.cancel()
            self.scan_thread.wait(5000)
            self.scan_thread = None
        if self.executor is not None:
            self.executor.stop()
        if self.built:
            self.thumbnails.stop()
            self.frames.stop()
            for panel in self.extra_panels.values():
                stop = getattr(panel, "shutdown", None)
                if stop is not None:
                    try:
                        stop()
                    except Exception:  # noqa: BLE001
                        pass
        QTimer.singleShot(0, lambda: None)
