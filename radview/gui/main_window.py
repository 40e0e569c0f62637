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
    QMainWindow,
    QWidget,
)

from radview import malloc, torch_env
from radview.gui import settings as cfg
from radview.gui.menus import MenusMixin
from radview.gui.panels import PanelsMixin
from radview.gui.theme import icon, style_chrome
from radview.gui.status_bar import StatusBarMixin
from radview.gui.viewer_tools import ViewerToolsMixin
from radview.gui.priors_view import PriorsMixin

if TYPE_CHECKING:
    from radview.gui.workers import ModelExecutor
    from radview.types import ScanResult, Study

ICONS = {"open_folder": "open", "fit": "fit", "one_to_one": "one", "pan_mode": "pan", "invert": "invert",
         "rotate_cw": "rotate", "flip_h": "flip_h", "flip_v": "flip_v", "reset_view": "reset",
         "grid_layout": "grid", "toggle_cam": "cam", "toggle_boxes": "boxes", "model_saw": "eye", "help": "help",
         **{k: k for k in cfg.TOOLS}}

class MainWindow(StatusBarMixin, MenusMixin, PanelsMixin, ViewerToolsMixin, PriorsMixin, QMainWindow):
    """scanFinished(ScanResult) after a folder is read; studyShown(Study)."""

    scanFinished = Signal(object)
    studyShown = Signal(object)

    def __init__(self, executor: ModelExecutor | None = None, deferred: bool = False):
        """deferred=True builds only the shell (menus, toolbar, docks, status bar: Qt alone) so
        that the window paints at once; build() adds the rest (numpy, superqt, the viewer)."""
        super().__init__()
        malloc.tune()  # few malloc arenas, big buffers mmapped: RSS stays flat while browsing
        torch_env.lean_import()  # before the executor imports torch: no unused GPU compiler
        self._shown_count = 0
        self.setWindowTitle("radview")
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self.docks: dict[str, QDockWidget] = {}
        self.setCentralWidget(QWidget())
        self.extra_panels: dict[str, QWidget] = {}
        self.scan_thread = None  # the scan's superqt GeneratorWorker
        self.scan_result: ScanResult | None = None
        self.root: str | None = None
        self.unknown_model = ""
        self.built = False
        self.notifications: list[tuple[str, str]] = []
        self.store = None
        self.store_problem = ""
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
        # the right column runs to the bottom: the series strip sits under the viewer, so the window's
        # minimum height is the tallest panel's, not panel + strip (a 768-px screen fits)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
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

        from radview.state import Overlays, ViewState

        self.thumbnails = ThumbnailCache(parent=self)
        self.frames = FrameStore(parent=self)
        self.state = ViewState(Overlays(
            show_cam=bool(cfg.get("overlay/cam", True, type_=bool)),
            opacity=float(cfg.get("overlay/opacity", 0.45, type_=float)),
            colormap=str(cfg.get("overlay/colormap", "jet"))))
        self.viewer = StudyViewer(self.frames, self, state=self.state)
        old = self.centralWidget()
        self.setCentralWidget(self.viewer)
        if old is not None:
            old.deleteLater()
        from radview.gui.panels import open_app_store

        self.store, self.store_problem = open_app_store()  # THE store of this window
        if self.store is None:
            self.notify(f"Labels cannot be saved: {self.store_problem}", where="label store")
        self.browser = StudyBrowser(self.thumbnails, self)
        self.ai_panel = AIPanel(self)
        self.tags = TagBrowser(self)
        self.errors = ErrorsPanel(self)
        self._dock("studies", "Studies", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("ai", "AI", self.ai_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("tags", "DICOM tags", self.tags, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["ai"], self.docks["tags"])
        self.docks["tags"].visibilityChanged.connect(lambda on: on and self._update_tags())
        self.docks["ai"].raise_()
        self._dock("errors", "Errors", self.errors, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.docks["errors"].hide()
        self._dock_extra_panels()
        self.resizeDocks([self.docks["studies"], self.docks["ai"]], [400, 290], Qt.Orientation.Horizontal)
        self.help = HelpOverlay(self)
        style_chrome(self.ai_panel)
        self.ai = AIController(self, self.executor)
        self.ai_panel.cam_check.setChecked(self.state.overlays.show_cam)  # one truth: the state
        self.actions["grid_layout"].setChecked(True)
        self.actions["toggle_cam"].setChecked(self.ai_panel.cam_check.isChecked())
        self.actions["toggle_boxes"].setChecked(True)
        self.built = True
        self._wire()
        self._wire_extra_panels()
        self._build_viewer_tools()
        self.restore_layout()  # docks and geometry as the user left them
        threading.Thread(target=warm_up_imports, name="radview-warm-up", daemon=True).start()

    # ------------------------------------------------------------------ notifications
    def notify(self, message, where: str = "") -> None:
        """The ONE sink for problems the user must see (worker exceptions arrive as objects):
        the status bar, the errors panel (with where it happened) and `self.notifications`."""
        if isinstance(message, BaseException):
            text = f"{type(message).__name__}: {message}" if str(message) else type(message).__name__
        else:
            text = str(message)
        self.notifications.append((where, text))
        self.status_label.setText(text if not where else f"{where}: {text}")
        errors = getattr(self, "errors", None)
        if errors is not None:
            errors.add_error(where or "radview", text)

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

    def _wire(self) -> None:
        self.browser.studyActivated.connect(lambda st: self.show_study(st, 0, from_browser=True))
        self.browser.viewActivated.connect(lambda st, i: self.show_study(st, i, from_browser=True))
        self.viewer.currentChanged.connect(self._view_changed)
        self.viewer.frameShown.connect(self._frame_shown)
        self.viewer.windowChanged.connect(self._window_changed)
        self.state.events.pixel.connect(self.pixel_label.setText)
        self.state.events.study.connect(self._state_study)
        self.state.events.geometry.connect(self._state_geometry)
        self.state.events.view.connect(lambda _i: self._state_geometry(self.state.view,
                                                                       self.state.geometry_of(self.state.view)))
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
        from superqt.utils import qthrottled

        self._threshold_throttled = qthrottled(ai.set_threshold, timeout=30, leading=True)
        p.thresholdChanged.connect(self._threshold_throttled)
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
            self.scan_thread.quit()  # the old scan stops at its next yield; its results are dropped
        from superqt.utils import create_worker

        from radview.io.studies import iter_scan

        t = create_worker(iter_scan, path, _start_thread=False, _ignore_errors=True)
        t.scan_payload = None

        def progress(p, t=t):
            if p.payload is not None:
                t.scan_payload = p.payload
            if t is self.scan_thread:
                self.show_progress(int(p.done), -1 if p.total is None else int(p.total), p.message)

        t.yielded.connect(progress)
        t.errored.connect(lambda exc, t=t: self._scan_failed(t, exc))
        t.finished.connect(lambda t=t: self._scan_done(t, t.scan_payload) if t.scan_payload is not None
                           and not t.abort_requested else None)
        self.scan_thread = t
        self.setWindowTitle(f"radview — {path}")
        self.status_label.setText(f"Scanning {path}…")
        t.start()

    def _scan_failed(self, t, exc) -> None:
        if t is self.scan_thread:
            self.scan_thread = None
            self.show_progress(None)
            self.notify(f"Cannot open: {exc}", where=self.root or "")

    def _scan_done(self, t, result: ScanResult) -> None:
        if t is not self.scan_thread:
            return
        self.scan_thread = None
        self.show_progress(None)
        self.scan_result = result
        self.state.set_folder(result.root)  # predictions, CAMs, labels of the last folder go
        self.frames.clear()
        self.thumbnails.clear()
        self.browser.set_studies(result.studies, getattr(result, "headers", None))
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
            self.load_labels(study)  # before the canvases draw: truth boxes, label overlay
            self.viewer.set_study(study, view)
        if not from_browser:
            self.browser.select(study.key, view if len(study.views) > 1 else None)
        self._update_tags()
        if not same:
            self.ai.study_shown(study)
            self.studyShown.emit(study)
            self._shown_count += 1
            if self._shown_count % 256 == 0:  # freed heap pages back to the OS, off this thread
                malloc.trim_in_background()
            nxt = self.browser.neighbour(study.key, 1)  # prefetch the next study's pixels
            if nxt is not None:
                for v in nxt.views[:4]:
                    self.frames.get(v.ref)
        else:
            self.ai.refresh()

    def step_study(self, step: int) -> None:
        current = self.viewer.study
        if current is not None and current.layout == "hanging":  # priors side by side: from the current
            current = getattr(self, "compare_base", None)
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
        label = self.study_label(st, view)
        canvas.annotations["bottom_right"] = [f"label: {label}"] if label else []
        if index == self.viewer.current:
            self._window_changed(canvas.current_window())
            self._update_tags()
        self.ai.refresh()

    def study_label(self, study: Study, view=None) -> str | None:
        """The label as it stands now (a correction or an undo shows at once)."""
        if not getattr(getattr(self, "blinding", None), "others", True):  # a blinded read (gui.blinding)
            return None
        if view is None and len(study.views) == 1:
            view = study.views[0]
        labels = self.state.labels
        candidates = [labels.get(view.ref.key) if view is not None else None,  # corrections first
                      labels.get(study.key), study.label, view.label if view is not None else None]
        for label in candidates:
            if label is not None and label.value:
                return label.value
        return None

    def _update_label_overlay(self) -> None:
        st = self.viewer.study
        if st is None:
            return
        for vi, canvas in self.viewer.visible_canvases():
            label = self.study_label(st, st.views[vi])
            canvas.annotations["bottom_right"] = [f"label: {label}"] if label else []
            canvas.viewport().update()
        sp = self.ai.study_preds.get(st.key)
        self.ai_panel.show_study(sp, self.study_label(st), self.ai.calibration_text(sp))

    # ------------------------------------------------------------------ tools (presets, help,
    # measurement tools: radview.gui.viewer_tools.ViewerToolsMixin)
    def _reset_view(self) -> None:
        self.viewer.reset_view()

    def _state_study(self, _study) -> None:
        """A new study: nothing of the previous image stays in the status bar."""
        self.wl_label.setText("")
        self.pixel_label.setText("")

    def _state_geometry(self, view: int, geo) -> None:
        """The Invert action shows the active view's state (reset with each study)."""
        if view == self.state.view:
            act = self.actions["invert"]
            if act.isChecked() != geo.invert:
                act.blockSignals(True)
                act.setChecked(geo.invert)
                act.blockSignals(False)

    def _set_pan_mode(self, on: bool) -> None:
        for c in self.viewer.canvases:
            c.pan_mode = on

    def _canvas_added(self, canvas) -> None:
        """A canvas made when a study needed more cells: same tools and wiring as the others."""
        canvas.pan_mode = self.actions["pan_mode"].isChecked()
        self._wire_canvas(canvas)
        self._tools_canvas(canvas)

    def _window_changed(self, window) -> None:
        if window is not None:
            self.wl_label.setText(f"W {window.width:.0f} / L {window.center:.0f}")

    def cancel_work(self) -> None:
        if self.help.isVisible():
            self.help.hide()
            return
        if getattr(self, "tool", None) is not None:  # Esc first puts the measurement tool down
            self.set_tool(None)
            return
        if self.scan_thread is not None:
            self.scan_thread.quit()
            self.scan_thread = None
            self.status_label.setText("Scan cancelled")
        self.ai.cancel()
        self.show_progress(None)

    def refresh_overlays(self) -> None:
        for _vi, c in self.viewer.visible_canvases():
            c.clear_overlays()
            c.annotations.pop("top_right", None)
        self.ai_panel.show_study(None)

    def open_settings(self) -> None:
        from radview.gui.settings_dialog import SettingsDialog

        device = str(cfg.get("device", "auto"))
        if SettingsDialog(self).exec():
            self.apply_shortcuts()
            if str(cfg.get("device", "auto")) != device and self.ai.model_name:
                self.ai.choose_model(self.ai.model_name)  # reload on the new device

    def open_export(self, show: bool = True):
        """File > Export: the dialog, preset to the open folder and the model's label space."""
        from radview.gui.export_dialog import ExportDialog
        from radview.spaces import spaces_in
        from radview.store import StoreError

        spaces = [sp.name for sp in spaces_in(self.scan_result)] if self.scan_result else []
        folders = [self.root] if self.root else []
        if self.store is not None:
            try:
                spaces += [sp.name for sp in self.store.spaces()]
                folders += self.store.folders()
            except StoreError as exc:
                self.notify(exc, where="label store")
        info = self.ai.model_info
        dlg = ExportDialog(self.store, self, spaces=spaces, folders=folders,
                           space=getattr(info, "space", None) or None, folder=self.root, notify=self.notify)
        self.export_dialog = dlg
        if show:
            dlg.show()
        return dlg

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
        if self.built and not getattr(self, "_layout_saved", False):
            self._layout_saved = True
            self.save_layout()
        if self.scan_thread is not None:
            self.scan_thread.quit()  # a daemon-less pool thread: it ends at its next yield
            self.scan_thread = None
        controller = getattr(self, "retrain_controller", None)
        if controller is not None:
            controller.shutdown(0.3)  # a training run ends with the app
        if self.executor is not None:
            self.executor.stop(300)  # a daemon thread: a batch in progress never holds the quit
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
