"""`radview gui [PATH] [--screenshot FILE] [--model NAME]`: the desktop app (also `radview` alone
or `radview PATH`). Qt is imported only when the command runs."""
from __future__ import annotations

import os


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser("gui", help="open the desktop app (the default command)",
                              description="Open the desktop app on PATH (a folder or a file); "
                                          "without PATH, on the embedded sample studies.")
    p.add_argument("path", nargs="?", help="folder or image file to open")
    p.add_argument("--screenshot", metavar="FILE",
                   help="open, wait for the first study's inference, save a PNG of the window, exit")
    p.add_argument("--model", metavar="NAME", help="model to run (default: the saved or bundled one; '' for none)")
    p.add_argument("--timeout", type=float, default=300.0, help="screenshot mode: seconds to wait (default 300)")
    p.add_argument("--size", metavar="WxH", help="window size, e.g. 1440x900")
    p.set_defaults(func=run)


def run(args) -> int:
    from radview.cli import CliError

    if args.path is not None and not os.path.exists(args.path):
        raise CliError(f"{args.path}: no such file or folder")
    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            raise CliError(f"--size {args.size!r}: expected WxH, e.g. 1440x900") from None
    _check_display(args.screenshot is not None)
    from radview.gui.app import run as run_app

    return run_app(args.path, screenshot=args.screenshot, model=args.model, timeout=args.timeout, size=size)


# Qt's xcb plugin needs these beside libxcb itself; without them it aborts with "Could not load
# the Qt platform plugin xcb even though it was found".
_XCB_LIBS = {"xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1",
             "xkbcommon-x11": "libxkbcommon-x11-0"}


def _check_display(screenshot: bool) -> None:
    """Turn Qt's cryptic platform-plugin abort into a message that says what to do."""
    import sys

    from radview.cli import CliError

    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if screenshot:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
        return
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise CliError("no display: the window needs a desktop session (DISPLAY / WAYLAND_DISPLAY is not set). "
                       "Without a screen: `radview gui PATH --screenshot out.png`, or the headless commands "
                       "`radview scan|render|predict|review|export PATH`.")
    if os.environ.get("WAYLAND_DISPLAY"):
        return
    from ctypes.util import find_library

    missing = [pkg for lib, pkg in _XCB_LIBS.items() if find_library(lib) is None]
    if missing:
        raise CliError("Qt's X11 plugin needs system libraries that are not installed: "
                       f"{', '.join(missing)} (Debian/Ubuntu: sudo apt-get install {' '.join(missing)})")
