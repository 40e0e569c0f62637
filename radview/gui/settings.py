"""The app's settings (QSettings in an INI file under RADVIEW_HOME) and the shortcut table.

Every keyboard shortcut of the app is declared once in `SHORTCUTS`; the settings dialog remaps
them and the help overlay lists them from the same table.
"""
from __future__ import annotations

from PySide6.QtCore import QSettings

from radview import paths

# action id -> (default key sequence, menu text / description). Letters N, A and 1-9 are left
# free for the label panel (one key sets a label and moves on).
SHORTCUTS: dict[str, tuple[str, str]] = {
    "open_folder": ("Ctrl+O", "Open folder…"),
    "open_files": ("Ctrl+Shift+O", "Open files…"),
    "open_samples": ("Ctrl+Shift+S", "Open sample studies"),
    "quit": ("Ctrl+Q", "Quit"),
    "next_image": ("Right", "Next image"),
    "prev_image": ("Left", "Previous image"),
    "next_study": ("Down", "Next study"),
    "prev_study": ("Up", "Previous study"),
    "next_uncertain": ("Ctrl+Down", "Next unlabelled study the model is least sure of"),
    "fit": ("F", "Fit to window"),
    "one_to_one": ("Ctrl+0", "Actual size (1:1)"),
    "zoom_in": ("=", "Zoom in"),
    "zoom_out": ("-", "Zoom out"),
    "pan_mode": ("P", "Pan mode (or hold Space)"),
    "invert": ("I", "Invert"),
    "rotate_cw": ("R", "Rotate 90° clockwise"),
    "rotate_ccw": ("Shift+R", "Rotate 90° counter-clockwise"),
    "flip_h": ("H", "Flip horizontal"),
    "flip_v": ("V", "Flip vertical"),
    "reset_view": ("Home", "Reset view (window, zoom, rotation)"),
    "preset_default": ("F2", "Window: from the file"),
    "preset_auto": ("F3", "Window: auto"),
    "preset_full": ("F4", "Window: full range"),
    "preset_next": ("F5", "Window: next preset for this modality"),
    "preset_prev": ("F6", "Window: previous preset for this modality"),
    "preset_save": ("Ctrl+Shift+W", "Window: save the current one as a preset for this modality…"),
    "tool_box": ("D", "Tool: draw a box (left-drag; Shift+drag works with any tool)"),
    "tool_length": ("L", "Tool: measure a length (left-drag)"),
    "tool_angle": ("K", "Tool: measure an angle (drag one arm, click the end of the other)"),
    "tool_cobb": ("Shift+K", "Tool: Cobb angle (drag one line, then the other)"),
    "tool_rect": ("U", "Tool: rectangle ROI statistics (left-drag)"),
    "tool_ellipse": ("O", "Tool: ellipse ROI statistics (left-drag)"),
    "tool_calibrate": ("Shift+L", "Tool: calibrate (draw a line over an object of known size, type its mm)"),
    "measurements": ("Ctrl+M", "Measurements list"),
    "compare_prior": ("Ctrl+Shift+P", "Priors: current study left, the most recent prior right"),
    "prior_older": ("PgDown", "Priors: the next older prior on the right (starts the comparison)"),
    "prior_newer": ("PgUp", "Priors: the next newer prior on the right"),
    "link_views": ("Ctrl+L", "Priors: link W/L, zoom and pan of current and prior (off by default)"),
    "series_strip": ("Ctrl+Shift+T", "Series strip: the study's views as thumbnails (click or arrows: choose)"),
    "crosshair": ("Shift+X", "Synced crosshair across the views (hold Z: magnifier lens)"),
    "cine_play": ("X", "Cine: play / pause (multi-frame images)"),
    "cine_next": (".", "Cine: next frame"),
    "cine_prev": (",", "Cine: previous frame"),
    "grid_layout": ("G", "All views of the study / one at a time"),
    "accept_box": ("Return", "Accept the selected predicted box"),
    "delete_box": ("Delete", "Reject / delete the selected box"),
    "toggle_cam": ("C", "Show Grad-CAM heatmap"),
    "toggle_boxes": ("B", "Show predicted boxes"),
    "model_saw": ("M", "What the model saw"),
    "run_folder": ("Ctrl+R", "Run the model on the whole folder"),
    "cancel": ("Esc", "Cancel background work"),
    "tags": ("Ctrl+T", "DICOM tags"),
    "find": ("Ctrl+F", "Filter the study list"),
    "fullscreen": ("F11", "Full screen"),
    "settings": ("Ctrl+,", "Settings…"),
    "help": ("F1", "Keyboard and mouse help (also ?)"),
}

# Window presets come from radview.presets.presets_for(frame): by modality (CT windows only for
# CT), never a fixed table here. Extra keys of an action (F1 and "?" both open the help).
EXTRA_KEYS: dict[str, tuple[str, ...]] = {"help": ("?", "Shift+?")}  # "?" arrives with or without Shift
TOOLS = ("tool_box", "tool_length", "tool_angle", "tool_cobb", "tool_rect", "tool_ellipse", "tool_calibrate")

DEVICES = ("auto", "cpu", "cuda", "mps")
RECENT_MAX = 10


def settings_path() -> str:
    return str(paths.user_home() / "radview.ini")


def open_settings() -> QSettings:
    """The settings store: an INI file in the user's radview folder (RADVIEW_HOME relocates it)."""
    return QSettings(settings_path(), QSettings.Format.IniFormat)


def shortcut(action: str, settings: QSettings | None = None) -> str:
    s = settings or open_settings()
    default = SHORTCUTS[action][0]
    value = s.value(f"shortcuts/{action}", default)
    return str(value) if value is not None else default


def set_shortcut(action: str, keys: str, settings: QSettings | None = None) -> None:
    s = settings or open_settings()
    if keys == SHORTCUTS[action][0]:
        s.remove(f"shortcuts/{action}")
    else:
        s.setValue(f"shortcuts/{action}", keys)
    s.sync()


def recent_paths(settings: QSettings | None = None) -> list[str]:
    s = settings or open_settings()
    value = s.value("recent", [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in (value or []) if v]


def add_recent(path: str, settings: QSettings | None = None) -> list[str]:
    s = settings or open_settings()
    items = [p for p in recent_paths(s) if p != path]
    items.insert(0, path)
    items = items[:RECENT_MAX]
    s.setValue("recent", items)
    s.sync()
    return items


def get(key: str, default, settings: QSettings | None = None, type_=None):
    s = settings or open_settings()
    value = s.value(key, default)
    if type_ is bool and isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    if type_ is not None and value is not None:
        try:
            return type_(value)
        except (TypeError, ValueError):
            return default
    return value


def put(key: str, value, settings: QSettings | None = None) -> None:
    s = settings or open_settings()
    s.setValue(key, value)
    s.sync()
