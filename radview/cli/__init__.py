"""radview's command line: `radview <command> ...`. Never imports Qt (except `gui`, lazily).

Each subcommand lives in its own module `radview/cli/<name>.py` exposing
`add_subparser(subparsers)`, which registers a parser whose `func(args) -> int` runs it.
Subcommand modules must be cheap to import: torch and heavy libraries are imported
inside `func`, never at module level.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from radview import __version__, torch_env

class CliError(Exception):
    """An error the user can act on: printed as one line, exit code 2."""


# Order here is the order in `radview --help`.
SUBCOMMANDS = (
    "scan",
    "render",
    "measure",
    "models",
    "predict",
    "review",
    "worklist",
    "import_labels",
    "export",
    "train",
    "lr_find",
    "pacs",
    "gui",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radview",
        description="Radiograph viewer with AI review, label correction and retraining.",
    )
    parser.add_argument("--version", action="version", version=f"radview {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"radview.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"radview.cli.{name}":
                continue  # not built yet
            raise
        module.add_subparser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    torch_env.lean_import()  # before any command imports torch: no unused GPU compiler (+100 MB)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `radview` alone or `radview PATH` opens the app.
    if not argv or (argv[0] not in parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
                    and not argv[0].startswith("-")):
        argv = ["gui", *argv]
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `radview scan ... | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0
    except CliError as exc:
        print(f"radview {args.command}: error: {exc}", file=sys.stderr)
        return 2
