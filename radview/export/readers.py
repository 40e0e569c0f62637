"""Label imports into the store: MURA CSV, RSNA CSV, COCO JSON, radview JSON, generic CSV.

Imported labels become *source labels* (source 'import:<format>'), never corrections, so
they do not enter the retraining queue; a radview JSON export also brings back its history.
CSV files are parsed by radview.io.labels (the same readers the folder scan uses).

Keys: an imported name is matched to the items the store already knows (from scanned
folders) so labels land on the images the viewer shows:
- MURA 'MURA-v1.1/valid/XR_WRIST/patient1/study1_positive/' -> study key
  'valid/XR_WRIST/patient1/study1_positive' (the scan's key: split + MURA study);
- RSNA patientId -> root/<patientId>.dcm when root is given, else the known image whose file
  name is <patientId>.<ext>, else the bare patientId;
- COCO file_name -> root/file_name when relative and root is given, else a known image whose
  path ends with it, else file_name as written.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from radview.io import DICOM_SUFFIXES, RASTER_SUFFIXES
from radview.io.labels import (LabelFileError, mura_split, mura_study_key, read_label_csv, read_mura_csv,
                               read_rsna_csv)
from radview.store import LabelStore
from radview.store.model import box_from_dict
from radview.types import Label

_EXT = DICOM_SUFFIXES + RASTER_SUFFIXES  # an image file, not a study folder


class _Known:
    """The store's known item keys, indexed for matching imported names."""

    def __init__(self, store: LabelStore) -> None:
        images = set(store.items("image")) | set(store.states("image"))
        self.by_stem: dict[str, list[str]] = {}
        self.images = images
        for k in images:
            self.by_stem.setdefault(Path(k.split("#", 1)[0]).stem, []).append(k)
        self.studies = set(store.items("study")) | set(store.states("study"))
        self.mura: dict[str, list[str]] = {}
        for k in self.studies:
            m = mura_study_key(k)
            if m is not None:
                self.mura.setdefault(m, []).append(k)

    def image_by_stem(self, stem: str) -> str | None:
        found = self.by_stem.get(stem, [])
        return found[0] if len(found) == 1 else None

    def image_by_suffix(self, name: str) -> str | None:
        name = name.replace("\\", "/").lstrip("./")
        found = [k for k in self.by_stem.get(Path(name).stem, [])
                 if k.replace("\\", "/").endswith("/" + name) or k == name]
        return found[0] if len(found) == 1 else None


def import_mura(store: LabelStore, path: str, root: str | None = None) -> dict[str, int]:
    labels = read_mura_csv(path)
    splits: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for row in csv.reader(fh):
            if row and row[0].strip():
                m = mura_study_key(row[0].strip())
                if m is not None:
                    splits[m] = mura_split(row[0].strip())
    known = _Known(store)
    out: dict[str, Label] = {}
    matched = 0
    for m, label in labels.items():
        split = splits.get(m, "")
        candidate = f"{split}/{m}" if split else m
        have = known.mura.get(m, [])
        if candidate in known.studies:
            key = candidate
        elif len(have) == 1:
            key = have[0]
        else:
            key = candidate
        matched += key in known.studies
        out[key] = label
    store.set_source_labels(out, "study", source="import:mura")
    return {"labels": len(out), "matched": matched}


def import_rsna(store: LabelStore, path: str, root: str | None = None) -> dict[str, int]:
    labels = read_rsna_csv(path)
    known = _Known(store)
    out: dict[str, Label] = {}
    matched = 0
    for pid, label in labels.items():
        if root:
            key = os.path.normpath(os.path.join(os.path.abspath(root), pid + ".dcm"))
        else:
            key = known.image_by_stem(pid) or pid
        matched += key in known.images
        out[key] = label
    store.set_source_labels(out, "image", source="import:rsna", boxes_known=True)
    return {"labels": len(out), "matched": matched}


def _load_json(path: str):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise LabelFileError(path, f"cannot read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LabelFileError(path, f"not JSON ({exc})") from None


def import_coco(store: LabelStore, path: str, root: str | None = None) -> dict[str, int]:
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise LabelFileError(path, "not a COCO file: no 'images' list")
    cats = {c["id"]: str(c["name"]) for c in doc.get("categories", [])}
    boxes: dict[Any, list] = {}
    for a in doc.get("annotations", []):
        try:
            x, y, w, h = (float(v) for v in a["bbox"])
            name = cats[a["category_id"]]
        except (KeyError, TypeError, ValueError):
            raise LabelFileError(path, f"annotation {a.get('id')!r}: needs bbox [x,y,w,h] and a "
                                       "known category_id") from None
        boxes.setdefault(a["image_id"], []).append(
            box_from_dict({"x": x, "y": y, "width": w, "height": h, "label": name,
                           "score": a.get("score")}))
    known = _Known(store)
    with_boxes: dict[str, Label] = {}
    without: dict[str, Label] = {}
    matched = 0
    for img in doc["images"]:
        name = str(img.get("file_name", ""))
        if not name:
            raise LabelFileError(path, f"image {img.get('id')!r} has no file_name")
        if os.path.isabs(name):
            key = os.path.normpath(name)
        elif root:
            key = os.path.normpath(os.path.join(os.path.abspath(root), name))
        else:
            key = known.image_by_suffix(name) or name
        matched += key in known.images
        label = Label(img.get("label"), tuple(boxes.get(img["id"], ())), "import:coco",
                      str(doc.get("info", {}).get("label_space", "")))
        (with_boxes if img.get("boxes_known", True) or label.boxes else without)[key] = label
    store.set_source_labels(with_boxes, "image", source="import:coco", boxes_known=True)
    store.set_source_labels(without, "image", source="import:coco")
    return {"labels": len(with_boxes) + len(without), "matched": matched}


def import_json(store: LabelStore, path: str, root: str | None = None) -> dict[str, int]:
    from radview.export.writers import JSON_FORMAT, JSON_VERSION

    doc = _load_json(path)
    if not isinstance(doc, dict) or doc.get("format") != JSON_FORMAT:
        raise LabelFileError(path, f"not a radview JSON export (format != {JSON_FORMAT!r})")
    if int(doc.get("version", 0)) > JSON_VERSION:
        raise LabelFileError(path, f"made by a newer radview (version {doc.get('version')})")
    try:
        store.set_items([(i["level"], i["key"], i.get("study_key"), i.get("patient", ""),
                          i.get("study_type", ""), i.get("width"), i.get("height"),
                          json.dumps(i.get("meta", {}), sort_keys=True))
                         for i in doc.get("items", [])])
        groups: dict[tuple[str, bool], dict[str, Label]] = {}
        for s in doc.get("source_labels", []):
            known = s.get("boxes") is not None
            boxes = tuple(box_from_dict(b) for b in s.get("boxes") or ())
            groups.setdefault((s["level"], known), {})[s["key"]] = Label(s.get("value"), boxes,
                                                                         s.get("source", ""),
                                                                         s.get("space", ""))
        n_labels = 0
        for (level, known), labels in groups.items():
            n_labels += store.set_source_labels(labels, level, boxes_known=known)
        n_events = store.import_events(doc.get("corrections", []))
    except (KeyError, TypeError) as exc:
        raise LabelFileError(path, f"malformed radview JSON ({type(exc).__name__}: {exc})") from None
    return {"labels": n_labels, "events": n_events}


def import_csv(store: LabelStore, path: str, root: str | None = None,
               level: str = "auto") -> dict[str, int]:
    """Generic `path,label` CSV. level 'auto': MURA study folders -> study level, the rest
    image level; 'image' or 'study' forces one."""
    labels = read_label_csv(path, root)
    known = _Known(store)
    by_level: dict[str, dict[str, Label]] = {"image": {}, "study": {}}
    matched = 0
    for p, label in labels.items():
        lab = Label(label.value, label.boxes, "import:csv", label.space)
        m = mura_study_key(p) if level in ("auto", "study") else None
        if m is not None and not p.lower().endswith(_EXT):
            have = known.mura.get(m, [])
            split = mura_split(p)
            key = have[0] if len(have) == 1 else (f"{split}/{m}" if split else m)
            matched += key in known.studies
            by_level["study"][key] = lab
        else:
            matched += p in (known.studies if level == "study" else known.images)
            by_level["study" if level == "study" else "image"][p] = lab
    for lv, labs in by_level.items():
        if labs:
            store.set_source_labels(labs, lv, source="import:csv")
    return {"labels": len(labels), "matched": matched}


READERS = {"mura": import_mura, "rsna": import_rsna, "coco": import_coco, "json": import_json,
           "csv": import_csv}
