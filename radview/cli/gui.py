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
    from radview.gui.app import run as run_app

    return run_app(args.path, screenshot=args.screenshot, model=args.model, timeout=args.timeout, size=size)
