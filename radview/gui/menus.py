"""Actions, menus and toolbar of the main window, all built from the one shortcut table
(radview.gui.settings.SHORTCUTS), so every action has a remappable key and a menu entry."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QToolButton

from radview.gui import settings as cfg

TOOLBAR = ("open_folder", None, "fit", "one_to_one", "pan_mode", "invert", "rotate_cw", "flip_h",
           "flip_v", "reset_view", None, "grid_layout", None, *cfg.TOOLS, None, "toggle_cam", "toggle_boxes",
           "model_saw", None, "help")
CHECKABLE = {"pan_mode", "invert", "grid_layout", "toggle_cam", "toggle_boxes", "model_saw", "fullscreen",
             "compare_prior", "crosshair", "link_views", *cfg.TOOLS}


class MenusMixin:
    """Mixed into MainWindow: needs its handlers (choose_folder, step_image, viewer, ai_panel ...)."""

    def _build_actions(self) -> None:
        handlers = {
            "open_folder": self.choose_folder, "open_files": self.choose_files,
            "open_samples": self.open_samples, "quit": self.close,
            "next_image": lambda: self.step_image(1), "prev_image": lambda: self.step_image(-1),
            "next_study": lambda: self.step_study(1), "prev_study": lambda: self.step_study(-1),
            "next_uncertain": self.step_uncertain,
            "fit": lambda: self.viewer.active_canvas().fit(),
            "one_to_one": lambda: self.viewer.active_canvas().one_to_one(),
            "zoom_in": lambda: self.viewer.active_canvas().zoom_by(1.25),
            "zoom_out": lambda: self.viewer.active_canvas().zoom_by(0.8),
            "pan_mode": self._set_pan_mode,
            "invert": lambda on: self.viewer.set_invert(on),
            "rotate_cw": lambda: self.viewer.rotate(90),
            "rotate_ccw": lambda: self.viewer.rotate(-90),
            "flip_h": lambda: self.viewer.flip(True),
            "flip_v": lambda: self.viewer.flip(False),
            "reset_view": self._reset_view,
            "preset_default": lambda: self.viewer.apply_window(None),
            "preset_auto": lambda: self.apply_preset("auto"),
            "preset_full": lambda: self.apply_preset("full"),
            "preset_next": lambda: self.step_preset(1),
            "preset_prev": lambda: self.step_preset(-1),
            "preset_save": self.save_preset_dialog,
            **{k: (lambda on, k=k: self.set_tool(k[5:] if on else None, source=k)) for k in cfg.TOOLS},
            "compare_prior": lambda on: self.compare_prior(on),
            "prior_older": lambda: self.step_prior(1),
            "prior_newer": lambda: self.step_prior(-1),
            "link_views": lambda on: self.set_link_views(on),
            "series_strip": lambda: self.toggle_series_strip(),
            "crosshair": lambda on: self.set_crosshair(on),
            "cine_play": lambda: self.cine.toggle(),
            "cine_next": lambda: self.cine.step(1),
            "cine_prev": lambda: self.cine.step(-1),
            "measurements": lambda: (self.docks["measurements"].show(), self.docks["measurements"].raise_()),
            "grid_layout": lambda on: self.viewer.set_grid_mode(on),
            "accept_box": lambda: self.box_key(accept=True),
            "delete_box": lambda: self.box_key(accept=False),
            "toggle_cam": lambda on: self.ai_panel.cam_check.setChecked(on),
            "toggle_boxes": lambda on: self.ai_panel.boxes_check.setChecked(on),
            "model_saw": lambda on: self.ai_panel.saw_check.setChecked(on),
            "run_folder": lambda: self.ai.queue_folder(),
            "cancel": self.cancel_work,
            "tags": lambda: (self.docks["tags"].show(), self.docks["tags"].raise_()),
            "find": lambda: (self.docks["studies"].show(), self.browser.filter_edit.setFocus()),
            "fullscreen": lambda on: self.showFullScreen() if on else self.showNormal(),
            "settings": self.open_settings,
            "help": self.show_help,
        }
        for key, (_default, text) in cfg.SHORTCUTS.items():
            act = QAction(text, self)
            act.setObjectName(key)
            if key in CHECKABLE:
                act.setCheckable(True)
                act.toggled.connect(lambda on, f=handlers[key]: f(on) if self.built else None)
            else:
                act.triggered.connect(lambda _c=False, f=handlers[key]: f() if self.built else None)
            self.addAction(act)
            self.actions[key] = act
        self.apply_shortcuts()

    def apply_shortcuts(self) -> None:
        s = cfg.open_settings()
        for key, act in self.actions.items():
            keys = cfg.shortcut(key, s)
            extra = [QKeySequence(k) for k in cfg.EXTRA_KEYS.get(key, ()) if k != keys]
            act.setShortcuts([QKeySequence(keys), *extra] if keys else extra)
            act.setToolTip(f"{act.text()}  ({keys})" if keys else act.text())

    def _build_menus(self) -> None:
        a = self.actions
        mb = self.menuBar()
        file = mb.addMenu("&File")
        for k in ("open_folder", "open_files", "open_samples"):
            file.addAction(a[k])
        self.recent_menu = QMenu("Open &recent", self)
        file.addMenu(self.recent_menu)
        self._fill_recent()
        file.addSeparator()
        export = file.addAction("Export labels…")
        export.setObjectName("export_labels")
        export.triggered.connect(lambda: self.open_export() if self.built else None)
        self.export_action = export
        shot = file.addAction("Save screenshot…")
        shot.triggered.connect(self._save_screenshot_dialog)
        file.addAction(a["settings"])
        file.addSeparator()
        file.addAction(a["quit"])
        view = mb.addMenu("&View")
        for k in ("next_image", "prev_image", "next_study", "prev_study", "next_uncertain", None, "fit", "one_to_one", "zoom_in",
                  "zoom_out", "pan_mode", None, "invert", "rotate_cw", "rotate_ccw", "flip_h", "flip_v",
                  "reset_view", None, "grid_layout", "compare_prior", "prior_older", "prior_newer", "link_views",
                  "series_strip", "crosshair", "fullscreen"):
            view.addSeparator() if k is None else view.addAction(a[k])
        self.wl_menu = wl = view.addMenu("Window / level")  # refilled from presets_for(frame) when shown
        wl.aboutToShow.connect(lambda: self.fill_preset_menu(wl) if self.built else None)
        self.fill_preset_menu(wl)
        tools = mb.addMenu("&Tools")
        for k in (*cfg.TOOLS, None, "measurements", None, "cine_play", "cine_next", "cine_prev"):
            tools.addSeparator() if k is None else tools.addAction(a[k])
        view.addSeparator()
        self.panels_menu = view.addMenu("Panels")  # filled by _dock()
        view.addAction(a["tags"])
        view.addAction(a["find"])
        ai = mb.addMenu("&AI")
        for k in ("toggle_cam", "toggle_boxes", "model_saw", "accept_box", "delete_box", None, "run_folder",
                  "cancel"):
            ai.addSeparator() if k is None else ai.addAction(a[k])
        helpm = mb.addMenu("&Help")
        helpm.addAction(a["help"])
        self.toolbar = tb = self.addToolBar("Tools")
        tb.setObjectName("tools")
        tb.setMovable(False)
        tb.setIconSize(QSize(20, 20))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)  # icons arrive in build()
        for k in TOOLBAR:
            tb.addSeparator() if k is None else tb.addAction(a[k])
            if k == "invert":
                self.wl_button = wl_button = QToolButton(self)
                wl_button.setToolTip("Window / level presets (right-drag on the image to adjust)")
                wl_button.setMenu(wl)
                wl_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
                tb.addWidget(wl_button)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = cfg.recent_paths()
        for path in recent:
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _c=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(recent))

