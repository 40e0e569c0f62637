"""`radview scan PATH [--json] [--labels CSV]`: studies, views, labels and failed files."""
from __future__ import annotations

import json
import os
import sys


def add_subparser(sub) -> None:
    p = sub.add_parser("scan", help="list the studies, views, labels and unreadable files under a folder")
    p.add_argument("path", help="a folder or one image file")
    p.add_argument("--labels", help="a label file (MURA CSV, RSNA CSV, or path,label CSV)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-index", action="store_true", help="do not use or update the scan index cache")
    p.set_defaults(func=run)


def result_dict(result) -> dict:
    from radview.io.errors import printable_path

    def label(lab):
        if lab is None:
            return None
        d = {"value": lab.value, "source": lab.source}
        if lab.boxes:
            d["boxes"] = [{"x": b.x, "y": b.y, "width": b.width, "height": b.height, "label": b.label} for b in lab.boxes]
        return d

    return {
        "root": result.root,
        "n_files": result.n_files,
        "n_studies": len(result.studies),
        "n_views": sum(len(s.views) for s in result.studies),
        "studies": [
            {
                "key": printable_path(s.key), "layout": s.layout, "patient": s.patient, "study_type": s.study_type,
                "split": s.split, "label": label(s.label),
                "views": [{"path": printable_path(v.ref.path), "frame": v.ref.frame, "modality": v.modality,
                           "body_part": v.body_part, "label": label(v.label)} for v in s.views],
            }
            for s in result.studies
        ],
        "errors": [{"path": e.path, "reason": e.reason} for e in result.errors],
    }


def run(args) -> int:
    from radview.cli import CliError
    from radview.io import scan

    if not os.path.exists(args.path):
        raise CliError(f"{args.path}: no such file or folder")
    if args.labels and not os.path.isfile(args.labels):
        raise CliError(f"{args.labels}: no such label file")
    result = scan(args.path, labels=args.labels, use_index=not args.no_index)
    if args.json:
        json.dump(result_dict(result), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    from collections import Counter

    n_views = sum(len(s.views) for s in result.studies)
    print(f"{result.root}: {len(result.studies)} studies, {n_views} views, {result.n_files} files, "
          f"{len(result.errors)} failed")
    layouts = Counter(s.layout for s in result.studies)
    print("layouts: " + ", ".join(f"{k} {v}" for k, v in sorted(layouts.items())))
    labels = Counter((s.label.value if s.label else "(none)") for s in result.studies)
    print("labels:  " + ", ".join(f"{k} {v}" for k, v in sorted(labels.items(), key=lambda kv: str(kv[0]))))
    n_boxes = sum(len(s.label.boxes) for s in result.studies if s.label)
    if n_boxes:
        print(f"boxes:   {n_boxes}")
    for s in result.studies:
        lab = s.label.value if s.label else "-"
        extra = f" {len(s.label.boxes)} box(es)" if s.label and s.label.boxes else ""
        print(f"  [{s.layout}] {s.key}  type={s.study_type or '-'} split={s.split or '-'} label={lab}{extra} views={len(s.views)}")
    if result.errors:
        print("failed files:")
        for e in result.errors:
            print(f"  {e.path}: {e.reason}")
    return 0
