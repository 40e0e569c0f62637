"""`radview export --format mura|rsna|coco|json --out FILE [--space NAME] [--folder DIR]
[--deidentify] [--root DIR]`: the label store's current labels (corrections win) as a label
file; json carries the full history. --space keeps one label space (`radview export --list`
shows those in the store), --folder the items under one folder."""
from __future__ import annotations

import os

FORMATS = ("mura", "rsna", "coco", "json", "dicom-sr")  # dicom-sr: radview.export.dicom_sr


def add_subparser(sub) -> None:
    p = sub.add_parser("export", help="export corrected labels (MURA/RSNA CSV, COCO, full JSON)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--deidentify", action="store_true",
                   help="replace patient ids, UIDs, paths and reader names by consistent "
                        "pseudonyms (DICOM PS3.15 Basic Profile); drops free-text notes")
    p.add_argument("--root", help="write image paths relative to this folder (COCO file_name)")
    p.add_argument("--space", help="only labels of this label space (e.g. mura, rsna-pneumonia, "
                                   "folder:openi-chest-abdomen)")
    p.add_argument("--folder", help="only items under this folder")
    p.add_argument("--store", help="label store file (default: labels.sqlite under RADVIEW_HOME)")
    p.set_defaults(func=run)


def run(args) -> int:
    from radview.cli import CliError
    from radview.export import ExportError, export_labels
    from radview.store import LabelStore, StoreError

    from radview.store.backends import backend_of, store_target

    path = args.store or store_target()  # RADVIEW_STORE / settings may name PostgreSQL
    if backend_of(store_target(path)) == "sqlite" and not os.path.isfile(path):
        raise CliError(f"no label store at {path}: nothing to export (import or correct labels first)")
    if args.format == "dicom-sr":  # --out is a folder: one SR (+ GSPS) per labelled DICOM study
        from radview.export.dicom_sr import run_cli

        return run_cli(args, path)
    try:
        with LabelStore(path, readonly=True) as store:  # works on a read-only share too
            if args.space and args.space not in store.space_names():
                known = ", ".join(store.space_names()) or "none"
                raise CliError(f"no labels of label space {args.space!r} in {path} "
                               f"(spaces there: {known})")
            if args.folder and not os.path.isdir(args.folder):
                raise CliError(f"{args.folder}: no such folder")
            res = export_labels(store, args.format, args.out, deidentify=args.deidentify,
                                root=args.root, space=args.space, folder=args.folder)
    except (StoreError, ExportError) as exc:
        raise CliError(str(exc)) from None
    what = "rows" if args.format == "rsna" else "items"
    scope = "".join([f" of {res.space}" if res.space else "",
                     f" under {res.folder}" if res.folder else ""])
    print(f"wrote {res.rows} {what}{scope} to {res.path}"
          + (" (de-identified)" if res.deidentified else ""))
    for reason, n in sorted(res.skipped.items()):
        print(f"  skipped {n}: {reason}")
    return 0
