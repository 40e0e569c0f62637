"""`radview import-labels FILE [--format mura|rsna|coco|json|csv] [--root DIR]`: label files into
the label store under RADVIEW_HOME (as source labels; a radview JSON also brings its history)."""
from __future__ import annotations

import os

FORMATS = ("mura", "rsna", "coco", "json", "csv")


def add_subparser(sub) -> None:
    p = sub.add_parser("import-labels", help="import labels (MURA/RSNA CSV, COCO, radview JSON, "
                       "path,label CSV) into the label store")
    p.add_argument("file", help="the label file")
    p.add_argument("--format", choices=FORMATS, help="file format (default: guessed from the file)")
    p.add_argument("--root", help="image folder that relative paths / RSNA patientIds refer to")
    p.add_argument("--store", help="label store file (default: labels.sqlite under RADVIEW_HOME)")
    p.set_defaults(func=run)


def guess_format(path: str) -> str:
    """'json' for a radview export, 'coco' for other JSON; for CSV: rsna by its columns or
    name, mura by its name or a MURA study path in the first column, else 'csv'."""
    if path.lower().endswith(".json"):
        try:
            with open(path, encoding="utf-8") as fh:
                head = fh.read(4096)
        except OSError:
            return "json"
        return "json" if '"radview-labels"' in head else "coco"
    with open(path, encoding="utf-8-sig") as fh:
        first = fh.readline()
    cols = {c.strip().lower() for c in first.split(",")}
    if {"patientid", "x", "y", "width", "height", "target"} <= cols:
        return "rsna"
    from radview.io.labels import is_mura_csv, is_rsna_csv, mura_study_key

    if is_rsna_csv(path):
        return "rsna"
    if is_mura_csv(path) or mura_study_key(first.split(",")[0].strip()) is not None:
        return "mura"
    return "csv"


def run(args) -> int:
    from radview.cli import CliError
    from radview.export import import_labels
    from radview.io.labels import LabelFileError
    from radview.store import LabelStore, StoreError

    if not os.path.isfile(args.file):
        raise CliError(f"{args.file}: no such file")
    if args.root and not os.path.isdir(args.root):
        raise CliError(f"{args.root}: no such folder")
    try:
        fmt = args.format or guess_format(args.file)
        with LabelStore(args.store) as store:
            res = import_labels(store, args.file, fmt, root=args.root)
    except (StoreError, LabelFileError) as exc:
        raise CliError(str(exc)) from None
    except UnicodeDecodeError:
        raise CliError(f"{args.file}: not UTF-8 text") from None
    text = f"imported {res.labels} labels ({fmt})"
    if res.events:
        text += f" and {res.events} correction events"
    if res.matched is not None:
        text += f"; {res.matched} match items the store knows from scanned folders"
    print(text + f" into {store.path}")
    return 0
