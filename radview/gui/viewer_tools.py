"""The main window's viewing tools (issue 14), mixed into MainWindow:

- window presets by modality (radview.presets.presets_for: the file's windows, its VOI LUT,
  auto, full range, CT windows only for CT, the user's presets per modality): F2 file, F3 auto,
  F4 full range, F5 / F6 next / previous preset, the W/L menu refilled for the active image,
  "save the current window as a preset";
- the help overlay (F1 or ?): every key, the label keys, the mouse gestures and tools;
- the measurement tools (radview.gui.measure_tools) and the measurements list: measurements are
  store annotations (store.add_measurement, undoable on the label panel's undo stack);
  the user calibration per image (draw a line over an object of known size, type its mm),
  kept in the store (a 'calibration' record per image key: it comes back in the next session,
  undoable like a measurement); drawn measurements are edited by dragging their handles
  (radview.gui.measure_edit: an appended, undoable edit event);
- the series strip (radview.gui.widgets.series_strip) of the study on screen, and the priors
  bar and linked views (radview.gui.priors_view).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QInputDialog, QMenu

from radview.gui import settings as cfg

MOUSE_HELP = [
    ("Right-drag", "Window / level"),
    ("Wheel", "Zoom around the cursor"),
    ("Middle-drag, Space+drag", "Pan"),
    ("Shift+left-drag", "Draw a box (any tool; the Box tool D without Shift)"),
    ("Drag a box / its corner", "Move / resize a box"),
    ("Length tool: drag", "Distance in mm (label names its basis: mm, mm (detector), mm (ERMF …), px)"),
    ("Angle tool: drag, then drag", "First arm to the vertex, then the second arm"),
    ("Cobb tool: drag, drag", "Two endplate lines"),
    ("ROI tools: drag", "Mean, SD, min, max, area (rectangle or ellipse)"),
    ("Calibrate tool: drag", "A line over an object of known size, then type its length in mm (kept per image)"),
    ("Drag a measurement's handle", "Edit it: line ends, angle vertex, ROI corners (live number; Ctrl+Z undoes)"),
    ("Hold Z", "Magnifier lens under the cursor (3x)"),
    ("Right-click a study (Studies)", "Open it as the prior beside the current study"),
    ("Series strip: click, ← / →", "Choose the view of the study (Home / End: first / last)"),
]
LAYOUT_VERSION = 1  # bump when the docks change so much that an old layout would not fit
PRESET_SOURCES = {"file": "from the file", "voi_lut": "file VOI LUT", "auto": "auto", "full": "full range",
                  "ct": "CT", "user": "yours"}


class _AfterShow(QObject):
    """Calls fn once, in the event loop turn after the window is first shown."""

    def __init__(self, window, fn):
        super().__init__(window)
        self.fn = fn
        window.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802
        if event.type() == QEvent.Type.Show:
            obj.removeEventFilter(self)
            QTimer.singleShot(0, self.fn)
        return False


class ViewerToolsMixin:
    """Needs the window's viewer, actions, docks, store, notify, extra_panels."""

    # ------------------------------------------------------------------ active learning
    def step_uncertain(self) -> None:
        """Go to the unlabelled study the model is least sure of (entropy of the heatmap model's
        study probabilities, radview.review.active), after the current one in that order."""
        import numpy as np

        from radview.review.active import next_study, order_studies

        studies = self.browser.model.studies
        preds = self.ai.study_preds
        keyed = [(s.key, preds[s.key]) for s in studies if s.key in preds and preds[s.key].probs]
        if not keyed:
            self.status_label.setText("No predictions yet: the next study follows the folder order")
            self.step_study(1)
            return
        classes = keyed[0][1].classes
        keyed = [(k, sp) for k, sp in keyed if sp.classes == classes]
        order = order_studies([k for k, _ in keyed], np.array([sp.probs for _, sp in keyed]),
                              "entropy", classes=classes)
        labelled = {s.key for s in studies if self.study_label(s)}
        current = self.viewer.study.key if self.viewer.study is not None else None
        key = next_study(order, labelled, current)
        if key is None:
            self.status_label.setText("Every study with a prediction has a label")
            return
        self.show_study(next(s for s in studies if s.key == key), 0)
        why = next(o.reason for o in order if o.key == key)
        self.status_label.setText(f"Least sure of this unlabelled study: {why}")

    # ------------------------------------------------------------------ set-up
    def _build_viewer_tools(self) -> None:
        from radview.gui.measure_edit import HandleEditor
        from radview.gui.widgets.measurement_list import MeasurementList
        from radview.gui.widgets.series_strip import SeriesStrip

        self.user_calibrations: dict[str, object] = {}  # image key -> Calibration (None: none), a cache
        self.handle_editor = HandleEditor(self)
        self.tool_handler = None
        self.tool = None
        self._preset_pos: dict[str, int] = {}
        label = self.extra_panels.get("labelpanel")
        stack = getattr(label, "undo_stack", None)
        self.measure_stack = stack if stack is not None else QUndoStack(self)
        self.measure_list = MeasurementList(self)
        self._dock("measurements", "Measurements", self.measure_list, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["tags"], self.docks["measurements"])
        self.docks["ai"].raise_()
        self.measure_list.deleteRequested.connect(self.delete_measurement)
        self.measure_list.exportRequested.connect(self.export_measurements)
        self.viewer.frameShown.connect(lambda _i, _f: self.refresh_measurements())
        self.state.events.study.connect(lambda _s: self.refresh_measurements())
        for canvas in self.viewer.canvases:
            self._tools_canvas(canvas)
        self.series = SeriesStrip(self.thumbnails, self)
        self._dock("series", "Series", self.series, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.series.viewChosen.connect(self.viewer.set_current)
        self.state.events.study.connect(self._series_study)
        self.state.events.view.connect(self.series.set_current)
        self._build_priors()
        from radview.gui.cine import CineController

        self.cine = CineController(self)
        self.viewer.frameShown.connect(self._hanging_annotations)
        self.state.events.study.connect(self._study_changed_for_priors)

    # ------------------------------------------------------------------ layout restore
    def save_layout(self) -> None:
        """Docks, toolbar and window geometry, restored at the next start (QMainWindow.saveState)."""
        if not self.built:
            return
        s = cfg.open_settings()
        s.setValue("layout/geometry", self.saveGeometry())
        s.setValue("layout/state", self.saveState(LAYOUT_VERSION))
        s.sync()

    def restore_layout(self) -> bool:
        from PySide6.QtCore import QByteArray

        s = cfg.open_settings()
        geo, state = s.value("layout/geometry"), s.value("layout/state")
        ok = False
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            ok = self.restoreGeometry(geo)
        if isinstance(state, QByteArray) and not state.isEmpty():
            ok = self.restoreState(state, LAYOUT_VERSION) and ok
            # Restored in build(), before the new docks and the viewer were ever laid out, the
            # sizes come out wrong (a 400 px browser at 700 px, the viewer squeezed to 100 px):
            # which docks show is right at once, the sizes are restored again in the event-loop
            # turn after the window is on screen (and laid out).
            again = (lambda: self.restoreState(state, LAYOUT_VERSION))
            if self.isVisible():
                QTimer.singleShot(0, again)
            else:
                self._restore_after_show = _AfterShow(self, again)
        return ok

    def _tools_canvas(self, canvas) -> None:
        canvas.tool_handler = getattr(self, "tool_handler", None)
        self.handle_editor.attach(canvas)
        if getattr(self, "linker", None) is not None:
            self.linker.attach(canvas)
        canvas.cursorMoved.connect(lambda x, y, c=canvas: self._cursor_moved(c, x, y))

    # ------------------------------------------------------------------ synced crosshair
    def set_crosshair(self, on: bool) -> None:
        self.crosshair_on = bool(on)
        if not on:
            for c in self.viewer.canvases:
                c.crosshair = None
                c.viewport().update()

    def _cursor_moved(self, source, fx: float, fy: float) -> None:
        """The crosshair follows the cursor on the other views (same place, as image fractions)."""
        if not getattr(self, "crosshair_on", False):
            return
        for _vi, c in self.viewer.visible_canvases():
            c.crosshair = None if c is source else (fx, fy)
            c.viewport().update()

    # ------------------------------------------------------------------ presets
    def presets(self, canvas=None) -> list:
        """The presets for the active image (or canvas), from radview.presets.presets_for."""
        from radview.presets import presets_for

        canvas = canvas or self.viewer.active_canvas()
        if canvas.frame is None:
            return []
        return presets_for(canvas.frame, on_error=lambda msg: self.notify(msg, where="presets"))

    def apply_preset(self, name: str) -> None:
        """name: 'auto', 'full' (a preset source) or a preset's name."""
        for i, p in enumerate(self.presets()):
            if p.source == name or p.name == name:
                self._apply(p, i)
                return
        self.status_label.setText(f"No window preset {name!r} for this image")

    def _apply(self, preset, index: int) -> None:
        canvas = self.viewer.active_canvas()
        self._preset_pos[canvas.frame.ref.key] = index
        self.viewer.apply_window(preset.window)  # None: the file's VOI LUT
        self.status_label.setText(f"Window: {preset.name} ({PRESET_SOURCES.get(preset.source, preset.source)})")

    def step_preset(self, delta: int) -> None:
        ps = self.presets()
        if not ps:
            return
        key = self.viewer.active_canvas().frame.ref.key
        pos = self._preset_pos.get(key)
        i = (0 if delta > 0 else len(ps) - 1) if pos is None else (pos + delta) % len(ps)
        self._apply(ps[i], i)

    def fill_preset_menu(self, menu: QMenu) -> None:
        menu.clear()
        a = self.actions
        for k in ("preset_default", "preset_auto", "preset_full", "preset_next", "preset_prev"):
            menu.addAction(a[k])
        if not self.built:
            return
        ps = self.presets()
        if ps:
            menu.addSeparator()
            mod = ps[0].modality
            for i, p in enumerate(ps):
                w = p.window
                text = p.name if w is None else f"{p.name}   W {w.width:g} / L {w.center:g}"
                act = menu.addAction(f"{text}   [{PRESET_SOURCES.get(p.source, p.source)}]")
                act.setObjectName(f"preset:{p.source}:{p.name}")
                act.triggered.connect(lambda _c=False, p=p, i=i: self._apply(p, i))
            menu.addSeparator()
            menu.addAction(a["preset_save"])
            users = [p for p in ps if p.source == "user"]
            if users:
                sub = menu.addMenu(f"Delete a {mod} preset")
                for p in users:
                    act = sub.addAction(p.name)
                    act.triggered.connect(lambda _c=False, p=p: self.delete_preset(p.modality, p.name))

    def save_preset(self, name: str) -> object | None:
        from radview.presets import PresetsError, modality_of, save_user_preset

        canvas = self.viewer.active_canvas()
        win = canvas.current_window()
        if canvas.frame is None or win is None:
            return None
        mod = modality_of(canvas.frame)
        try:
            p = save_user_preset(mod, name, win.center, win.width, win.function or "LINEAR")
        except (PresetsError, ValueError) as exc:
            self.notify(str(exc), where="presets")
            return None
        self.status_label.setText(f"Saved window preset {p.name!r} for {mod}")
        return p

    def save_preset_dialog(self) -> None:
        canvas = self.viewer.active_canvas()
        if canvas.frame is None:
            return
        name, ok = QInputDialog.getText(self, "Save window preset", "Name (saved for this modality):")
        if ok and name.strip():
            self.save_preset(name.strip())

    def delete_preset(self, modality: str, name: str) -> None:
        from radview.presets import PresetsError, delete_user_preset

        try:
            delete_user_preset(modality, name)
        except PresetsError as exc:
            self.notify(str(exc), where="presets")

    # ------------------------------------------------------------------ help
    def help_rows(self) -> list[tuple[str, str]]:
        rows = []
        for k, (_d, text) in cfg.SHORTCUTS.items():
            keys = ", ".join(s.toString() for s in self.actions[k].shortcuts()
                             if not s.isEmpty() and s.toString() != "Shift+?")
            if keys:
                rows.append((keys, text))
        label = self.extra_panels.get("labelpanel") if self.built else None
        for key, cls in (getattr(label, "keys", None) or {}).items():
            rows.append((key, f"Label: {cls} (and move on)"))
        return rows + [("", "Mouse and tools")] + MOUSE_HELP

    def show_help(self) -> None:
        self.help.show_shortcuts(self.help_rows())

    # ------------------------------------------------------------------ measurement tools
    def set_tool(self, kind: str | None, source: str | None = None) -> None:
        """kind: box, length, angle, cobb, rect, ellipse, calibrate, or None (no tool)."""
        from radview.gui.measure_tools import TITLES, ToolHandler

        for k in cfg.TOOLS:
            act = self.actions[k]
            on = kind is not None and k == f"tool_{kind}"
            if act.isChecked() != on:
                act.blockSignals(True)
                act.setChecked(on)
                act.blockSignals(False)
        if self.tool_handler is not None:
            self.tool_handler.reset()
        self.tool = kind
        self.tool_handler = None if kind is None else ToolHandler(kind, self._tool_finished, self.calibration_for)
        for c in self.viewer.canvases:
            c.tool_handler = self.tool_handler
            c.setCursor(Qt.CursorShape.CrossCursor) if kind else c.unsetCursor()
        if kind is not None:
            self.status_label.setText(f"{TITLES[kind]} tool: left-drag on the image (tool key again or Esc: off)")

    def canvas_key(self, canvas) -> str | None:
        st = self.viewer.study
        for vi, c in self.viewer.visible_canvases():
            if c is canvas and st is not None and vi < len(st.views):
                return st.views[vi].ref.key
        return canvas.frame.ref.key if canvas.frame is not None else None

    def _series_study(self, study) -> None:
        """The strip shows the study on screen; in a current|prior hanging each view says which."""
        tags = None
        p = getattr(self, "compare_prior_info", None)
        if study is not None and study.layout == "hanging" and p is not None:
            d = p.study.date
            prior = f"prior {d[:4]}-{d[4:6]}-{d[6:]}" if d else "prior"
            tags = ["current" if i % 2 == 0 else prior for i in range(len(study.views))]
        self.series.set_study(study, getattr(self.scan_result, "headers", None), self.state.view, tags)

    def toggle_series_strip(self) -> None:
        dock = self.docks["series"]
        dock.setVisible(not dock.isVisible())
        if dock.isVisible():
            dock.raise_()
            self.series.setFocus()

    def calibration_for(self, canvas):
        """The user's calibration of this image when there is one (the store's, read once per
        image), else the file's."""
        from radview.measure import calibration_from, calibration_of
        from radview.store import StoreError

        key = self.canvas_key(canvas)
        if key and key not in self.user_calibrations and self.store is not None:
            try:
                rec = self.store.calibrations([key]).get(key)
            except StoreError as exc:
                self.notify(exc, where="calibration")
                rec = None
            self.user_calibrations[key] = calibration_from(rec) if rec is not None else None
        cal = self.user_calibrations.get(key) if key else None
        return cal if cal is not None else calibration_of(canvas.frame)

    def _measures_changed(self, key: str) -> None:
        """After an add / delete / edit / undo: the image's calibration is read again (it may be
        the record that changed), the list and canvases redrawn."""
        if self.store is not None:
            self.user_calibrations.pop(key, None)
        self.refresh_measurements()

    def ask_known_length(self, measured: str) -> float | None:
        mm, ok = QInputDialog.getDouble(self, "Calibrate", f"The line measures {measured}.\n"
                                        "Its real length in mm:", 10.0, 0.001, 100000.0, 2)
        return mm if ok else None

    def _tool_finished(self, canvas, kind: str, points) -> None:
        from radview.gui.measure_tools import compute
        from radview.measure import calibration_of, calibration_record, length, user_calibration

        key = self.canvas_key(canvas)
        if canvas.frame is None or key is None:
            return
        if kind == "calibrate":
            base = calibration_of(canvas.frame)
            mm = self.ask_known_length(length(base, points[0], points[1]).text)
            if mm is None:
                return
            try:
                cal = user_calibration(points[0], points[1], mm, base=base)
            except ValueError as exc:
                self.notify(f"{key}: {exc}", where="calibration")
                return
            if self.store is None or not self.add_measurement(key, calibration_record(cal, points[0], points[1], mm)):
                self.notify(f"{key}: calibration kept for this session only", where="calibration")
            self.user_calibrations[key] = cal
            self.status_label.setText(f"Calibrated: {cal.label} ({cal.note or 'user calibration'})")
            return
        try:
            m = compute(kind, self.calibration_for(canvas), canvas.frame, points)
        except ValueError as exc:
            self.notify(f"{key}: {exc}", where="measurement")
            return
        self.add_measurement(key, m)

    def add_measurement(self, key: str, m) -> bool:
        """Record a measurement (or a calibration record) in the store, undoably; without a
        store it shows, unsaved. True when it was saved."""
        from radview.gui.measure_tools import MeasureCommand
        from radview.store import StoreError

        self.last_measurement = m
        if self.store is None:
            self._unsaved = getattr(self, "_unsaved", {})
            self._unsaved.setdefault(key, []).append(m)
            self.notify(f"{m.text}: not saved ({self.store_problem})", where="measurement")
            self.refresh_measurements()
            return False
        cmd = MeasureCommand(self.store, key, m, self._measures_changed,
                             on_error=lambda msg: self.notify(msg, where="measurement"))
        try:
            cmd.first_write()
        except (StoreError, ValueError) as exc:
            self.notify(f"{key}: measurement not saved: {exc}", where="measurement")
            return False
        self.measure_stack.push(cmd)  # redo() runs: the write is done, it only refreshes
        self.status_label.setText(f"{m.text}  ({m.basis})")
        return True

    def edit_measurement(self, key: str, add_id: int, old, new) -> bool:
        """A measurement's handles were dragged: the edit is appended to the store, undoably."""
        from radview.gui.measure_edit import EditCommand
        from radview.store import StoreError

        if self.store is None:
            return False
        cmd = EditCommand(self.store, key, add_id, old, new, self._measures_changed,
                          on_error=lambda msg: self.notify(msg, where="measurement"))
        try:
            cmd.first_write()
        except (StoreError, ValueError) as exc:
            self.notify(f"{key}: edit not saved: {exc}", where="measurement")
            self.refresh_measurements()  # the canvas shows the stored one again
            return False
        self.measure_stack.push(cmd)
        self.status_label.setText(f"Edited: {new.text}  ({new.basis})")
        return True

    def delete_measurement(self, key: str, add_id: int) -> None:
        from radview.gui.measure_tools import MeasureCommand
        from radview.store import StoreError

        if self.store is None:
            return
        entries = dict(self.store.measurement_entries(key)) | dict(self.store.calibration_entries(key))
        if add_id not in entries:
            return
        cmd = MeasureCommand(self.store, key, entries[add_id], self._measures_changed,
                             on_error=lambda msg: self.notify(msg, where="measurement"), add_id=add_id)
        try:
            cmd.first_write()
        except (StoreError, ValueError) as exc:
            self.notify(f"{key}: {exc}", where="measurement")
            return
        self.measure_stack.push(cmd)

    def measurements_shown(self) -> dict[str, list]:
        """{image key: [(add id or None, Measurement)]} of the study being viewed (its images'
        calibration records last)."""
        from radview.store import StoreError

        st = self.viewer.study
        if st is None:
            return {}
        keys = [v.ref.key for v in st.views]
        out: dict[str, list] = {k: [] for k in keys}
        if self.store is not None:
            try:
                for k in keys:
                    out[k] = list(self.store.measurement_entries(k)) + self.store.calibration_entries(k)[-1:]
            except StoreError as exc:
                self.notify(exc, where="measurements")
        for k, ms in getattr(self, "_unsaved", {}).items():
            if k in out:
                out[k] += [(None, m) for m in ms]
        return out

    def refresh_measurements(self) -> None:
        if not self.built or not hasattr(self, "measure_list"):
            return
        shown = self.measurements_shown()
        for vi, c in self.viewer.visible_canvases():
            key = self.viewer.study.views[vi].ref.key if self.viewer.study is not None else None
            c.measurements = [e for e in shown.get(key, []) if e[1].kind != "calibration"] if key else []
            c.viewport().update()
        self.measure_list.set_measurements(shown)

    def export_measurements(self, path: str) -> None:
        from radview.export.writers import write_measurements_json

        st = self.viewer.study
        try:
            n = write_measurements_json(self.store, path, keys=[v.ref.key for v in st.views] if st else None)
        except OSError as exc:
            self.notify(f"{path}: cannot write ({exc.strerror or exc})", where="export")
            return
        self.status_label.setText(f"{n} measurements written to {path}")
