"""`radview gui` without a screen says what to do instead of Qt's platform-plugin abort."""
from __future__ import annotations

import sys

import pytest

from radview.cli import main


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland check is Linux-only")
def test_no_display_is_a_clear_error(monkeypatch, capsys):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert main(["gui"]) == 2
    err = capsys.readouterr().err
    assert "no display" in err and "--screenshot" in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland check is Linux-only")
def test_screenshot_without_display_goes_offscreen(monkeypatch):
    import os

    from radview.cli.gui import _check_display

    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    _check_display(screenshot=True)
    assert os.environ["QT_QPA_PLATFORM"] == "offscreen"
