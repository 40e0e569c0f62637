"""`radview export --format mura|rsna|coco|json --out FILE [--deidentify] [--root DIR]`: the
label store's current labels (corrections win) as a label file; json carries the full history."""
from __future__ import annotations

import os

FORMATS = ("mura", "rsna", "coco", "json")


def add_subparser(sub) -> None:
    p = sub.add_parser("export", help="export corrected labels (MURA/RSNA CSV, COCO, full JSON)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--deidentify", action="store_true",
                   help="replace patient ids, UIDs, paths and reader names by consistent "
                        "pseudonyms (DICOM PS3.15 Basic Profile); drops free-text notes")
    p.add_argument("--root", help="write image paths relative to this folder (COCO file_name)")
    p.add_argument("--store", help="label store file (default: labels.sqlite under RADVIEW_HOME)")
    p.set_defaults(func=run)


def run(args) -> int:
    from radview.cli import CliError
    from radview.export import ExportError, export_labels
    from radview.paths import store_db_path
    from radview.store import LabelStore, StoreError

    path = args.store or store_db_path()
    if not os.path.isfile(path):
        raise CliError(f"no label store at {path}: nothing to export (import or correct labels first)")
    try:
        with LabelStore(path, readonly=True) as store:  # works on a read-only share too
            res = export_labels(store, args.format, args.out, deidentify=args.deidentify,
                                root=args.root)
    except (StoreError, ExportError) as exc:
        raise CliError(str(exc)) from None
    what = "rows" if args.format == "rsna" else "items"
    print(f"wrote {res.rows} {what} to {res.path}" + (" (de-identified)" if res.deidentified else ""))
    for reason, n in sorted(res.skipped.items()):
        print(f"  skipped {n}: {reason}")
    return 0
