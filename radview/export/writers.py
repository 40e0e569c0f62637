"""Label exports from the store's current labels (corrections win over source labels).

- MURA CSV: `study path,label` (no header; 1 = abnormal, 0 = normal), MURA studies only.
- RSNA CSV: `patientId,x,y,width,height,Target`; one row per box (Target 1), one row with an
  empty box for an image without boxes (Target 0, or 1 for a positive call without boxes).
- COCO JSON: images (file_name, width, height; radview adds 'label' and 'boxes_known'),
  annotations (bbox [x, y, w, h], category_id, area, iscrowd 0; 'score' for predicted boxes),
  categories (one per box label).
- JSON: everything: items, source labels, every correction event (the full history, undos
  included, with what training runs consumed them) and the current labels.

Files are written to `<out>.part` and renamed into place, so a failed export leaves no half file.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Callable

from radview.export.deid import METHOD, PROFILE, Deidentifier
from radview.io.labels import MURA_NEGATIVE, MURA_POSITIVE, RSNA_POSITIVE, mura_study_key
from radview.store import Correction, LabelStore
from radview.store.model import box_to_dict, utc_now

JSON_FORMAT = "radview-labels"
JSON_VERSION = 1


class ExportError(Exception):
    """An export that could not be written: names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"{self.path}: {reason}")


def write_atomic(out: str | os.PathLike, text: str) -> Path:
    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise ExportError(out, f"cannot write ({exc.strerror or exc})") from exc
    return out


class _Keys:
    """Item key -> exported key (identity, relative to root, or de-identified)."""

    def __init__(self, deid: Deidentifier | None, root: str | None) -> None:
        self.deid, self.root = deid, (os.path.normpath(root) if root else None)

    def __call__(self, key: str) -> str:
        if self.deid is not None:
            return self.deid.key(key, self.root)
        if self.root and (key == self.root or key.startswith(self.root + os.sep)):
            return os.path.relpath(key, self.root).replace(os.sep, "/")
        return key


def _common_root(keys: list[str]) -> str | None:
    paths = [k for k in keys if os.path.isabs(k)]
    if not paths:
        return None
    try:
        root = os.path.commonpath([os.path.dirname(p) for p in paths])
    except ValueError:
        return None
    return root if root not in ("", os.sep) else None


def export_mura(store: LabelStore, deid: Deidentifier | None = None,
                root: str | None = None) -> tuple[str, int, dict[str, int]]:
    """(text, rows, skipped reasons) of a MURA labels CSV of the current study labels."""
    skipped: dict[str, int] = {}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    n = 0
    keys = _Keys(deid, None)
    for key, label in sorted(store.labels("study").items()):
        if mura_study_key(key) is None:
            skipped["not a MURA study"] = skipped.get("not a MURA study", 0) + 1
            continue
        if label.value not in (MURA_POSITIVE, MURA_NEGATIVE):
            reason = f"label {label.value!r} is not {MURA_POSITIVE}/{MURA_NEGATIVE}"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        w.writerow([keys(key).rstrip("/") + "/", 1 if label.value == MURA_POSITIVE else 0])
        n += 1
    return buf.getvalue(), n, skipped


def _detection_items(store: LabelStore) -> list[tuple[str, Any]]:
    return sorted((k, s) for k, s in store.states("image").items()
                  if s.label is not None and (s.boxes_known or s.label.boxes))


def rsna_patient_id(key: str) -> str:
    """The RSNA patientId of an image key: the file name without suffix (challenge layout)."""
    key = key.split("#", 1)[0]
    return Path(key).stem if ("/" in key or "\\" in key or key.lower().endswith(".dcm")) else key


def export_rsna(store: LabelStore, deid: Deidentifier | None = None,
                root: str | None = None) -> tuple[str, int, dict[str, int]]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["patientId", "x", "y", "width", "height", "Target"])
    n = 0
    skipped: dict[str, int] = {}
    seen: dict[str, str] = {}
    for key, state in _detection_items(store):
        pid = rsna_patient_id(key)
        if pid in seen:
            reason = "two images share a patientId"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        seen[pid] = key
        out_pid = deid.part(pid) if deid is not None else pid
        boxes = state.label.boxes
        for b in boxes:
            w.writerow([out_pid, _num(b.x), _num(b.y), _num(b.width), _num(b.height), 1])
            n += 1
        if not boxes:
            w.writerow([out_pid, "", "", "", "", 1 if state.label.value == RSNA_POSITIVE else 0])
            n += 1
    return buf.getvalue(), n, skipped


def export_coco(store: LabelStore, deid: Deidentifier | None = None,
                root: str | None = None) -> tuple[str, int, dict[str, int]]:
    items_meta = store.items("image")
    states = [(k, s) for k, s in sorted(store.states("image").items()) if s.label is not None]
    keys = _Keys(deid, root if root else (_common_root([k for k, _ in states]) if deid else None))
    names = sorted({b.label for _, s in states for b in s.label.boxes})
    cat_id = {name: i + 1 for i, name in enumerate(names)}
    images, annotations = [], []
    for i, (key, state) in enumerate(states, start=1):
        meta = items_meta.get(key, {})
        img: dict[str, Any] = {"id": i, "file_name": keys(key), "width": meta.get("width") or 0,
                               "height": meta.get("height") or 0}
        if state.label.value is not None:
            img["label"] = state.label.value
        img["boxes_known"] = bool(state.boxes_known or state.label.boxes)
        images.append(img)
        for b in state.label.boxes:
            ann = {"id": len(annotations) + 1, "image_id": i, "category_id": cat_id[b.label],
                   "bbox": [b.x, b.y, b.width, b.height], "area": b.width * b.height,
                   "iscrowd": 0}
            if b.score is not None:
                ann["score"] = b.score
            annotations.append(ann)
    doc = {
        "info": {"description": "radview labels", "version": "1", "date_created": utc_now(),
                 **({"deidentified": PROFILE} if deid else {})},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": cat_id[n], "name": n, "supercategory": "finding"} for n in names],
    }
    return json.dumps(doc, indent=1), len(images), {}


def _event_record(e: Correction, by_id: dict[int, Correction], keys: Callable[[str], str],
                  deid: Deidentifier | None) -> dict[str, Any]:
    def value(v: Any) -> Any:
        if isinstance(v, tuple):
            return [box_to_dict(b) for b in v]
        return v
    return {
        "uid": e.uid, "id": e.id, "key": keys(e.key), "level": e.level, "kind": e.kind,
        "old_value": value(e.old_value), "new_value": value(e.new_value),
        "model_output": value(e.model_output),
        "reader": deid.reader(e.reader) if deid else e.reader, "time": e.time,
        "reason": e.reason, "note": "" if deid else e.note,  # free text may name anyone
        "model": e.model, "model_version": e.model_version,
        "exclude_from_training": e.exclude_from_training,
        "inverse_of_uid": by_id[e.inverse_of].uid if e.inverse_of is not None else None,
        "consumed_by_run": e.consumed_by_run,
    }


def export_json(store: LabelStore, deid: Deidentifier | None = None,
                root: str | None = None) -> tuple[str, int, dict[str, int]]:
    """The full export: items, source labels, the event history and the current labels."""
    history = store.history()
    by_id = {e.id: e for e in history}
    if deid is not None and root is None:
        root = _common_root(list(store.items("image")) + list(store.states("image")))
    keys = _Keys(deid, root)
    items, sources, current = [], [], []
    for level in ("study", "image"):
        for key, info in sorted(store.items(level).items()):
            meta = dict(info["meta"])
            row = {"level": level, "key": keys(key),
                   "study_key": keys(info["study_key"]) if info["study_key"] else None,
                   "patient": info["patient"], "study_type": info["study_type"],
                   "width": info["width"], "height": info["height"], "meta": meta}
            if deid is not None:
                row["patient"] = deid.meta({"patient": row["patient"]})["patient"]
                row["meta"] = deid.meta(meta)
            items.append(row)
        for key, state in sorted(store.states(level).items()):
            if state.source is not None:
                sources.append({"level": level, "key": keys(key), "value": state.source.value,
                                "boxes": ([box_to_dict(b) for b in state.source.boxes]
                                          if state.source_boxes_known else None),
                                "source": state.source.source})
            if state.label is not None:
                current.append({"level": level, "key": keys(key), "value": state.label.value,
                                "boxes": [box_to_dict(b) for b in state.label.boxes],
                                "source": state.label.source, "corrected": state.corrected,
                                "excluded": state.excluded})
    doc: dict[str, Any] = {
        "format": JSON_FORMAT, "version": JSON_VERSION, "exported": utc_now(),
        "deidentification": ({"profile": PROFILE, "method": METHOD, "key_id": deid.key_id}
                             if deid else None),
        "items": items,
        "source_labels": sources,
        "corrections": [_event_record(e, by_id, keys, deid) for e in history],
        "labels": current,
    }
    return json.dumps(doc, indent=1), len(current), {}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


WRITERS = {"mura": export_mura, "rsna": export_rsna, "coco": export_coco, "json": export_json}
