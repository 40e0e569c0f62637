"""Dark theme (Fusion style, dark palette, resources/style/dark.qss) and the app's icons."""
from __future__ import annotations

from functools import lru_cache

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from radview import paths

ACCENT = QColor("#3d6d99")
WARN = QColor("#ffb454")
POSITIVE = QColor("#ff6b6b")
NEGATIVE = QColor("#6bcf8f")


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor("#181a1e"), QColor("#15171a"), QColor("#d7dae0")
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        p.setColor(group, QPalette.ColorRole.Window, window)
        p.setColor(group, QPalette.ColorRole.WindowText, text)
        p.setColor(group, QPalette.ColorRole.Base, base)
        p.setColor(group, QPalette.ColorRole.AlternateBase, QColor("#1c1f23"))
        p.setColor(group, QPalette.ColorRole.ToolTipBase, QColor("#1f2227"))
        p.setColor(group, QPalette.ColorRole.ToolTipText, text)
        p.setColor(group, QPalette.ColorRole.Text, text)
        p.setColor(group, QPalette.ColorRole.Button, QColor("#2a2f36"))
        p.setColor(group, QPalette.ColorRole.ButtonText, text)
        p.setColor(group, QPalette.ColorRole.Highlight, QColor("#27435f"))
        p.setColor(group, QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
        p.setColor(group, QPalette.ColorRole.Link, QColor("#8fb4d9"))
        p.setColor(group, QPalette.ColorRole.PlaceholderText, QColor("#6b737c"))
    disabled = QPalette.ColorGroup.Disabled
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        p.setColor(disabled, role, QColor("#5c636b"))
    return p


def apply_dark_theme(app: QApplication, palette: bool = True) -> None:
    """Fusion style + the dark palette, application-wide. No application style sheet: Qt's
    style-sheet style slows every paint (a study tree repaint went from ~7 to ~50 ms), so the
    sheet (resources/style/dark.qss) is set only on small chrome widgets: see style_chrome()."""
    app.setStyle("Fusion")
    if palette:
        apply_dark_palette(app)


def apply_dark_palette(app: QApplication) -> None:
    app.setPalette(dark_palette())


@lru_cache(maxsize=1)
def chrome_qss() -> str:
    qss = paths.resources_dir() / "style" / "dark.qss"
    return qss.read_text(encoding="utf-8") if qss.is_file() else ""


def style_chrome(*widgets) -> None:
    """The dark style sheet on chrome widgets (toolbar, menus, status bar, control panels)."""
    text = chrome_qss()
    for w in widgets:
        w.setStyleSheet(text)


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    """resources/icons/<name>.svg (an empty icon when absent)."""
    path = paths.resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()
