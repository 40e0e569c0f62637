"""Label exports from the store's current labels (corrections win over source labels).

- MURA CSV: `study path,label` (no header; 1 = abnormal, 0 = normal), MURA studies only.
- RSNA CSV: `patientId,x,y,width,height,Target`; one row per box (Target 1), one row with an
  empty box for an image without boxes (Target 0, or 1 for a positive call without boxes).
- COCO JSON: images (file_name, width, height; radview adds 'label' and 'boxes_known'),
  annotations (bbox [x, y, w, h], category_id, area, iscrowd 0; 'score' for predicted boxes),
  categories (one per box label). width/height are the image's true size: from the scan, else
  read from the file's header (PNG, JPEG, DICOM); an image whose size cannot be learnt is
  skipped with the reason.
- Coordinates (RSNA CSV, COCO bbox) are rounded to 0.1 px, areas to 0.01 px^2.
- JSON: everything: items, source labels, every correction event (the full history, undos
  included, with what training runs consumed them) and the current labels.

Every writer exports what a `Selection` lets through: the labels of one label space
(radview.spaces) and/or the items under one folder (image paths under it; a study when one of
its images is). Writers are generators of Progress returning (text, rows, skipped) (`iter_*`);
the plain functions in WRITERS drain them.

Files are written to `<out>.part` and renamed into place, so a failed export leaves no half file.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generator, Iterable

from radview.export.deid import METHOD, PROFILE, Deidentifier
from radview.io.labels import MURA_NEGATIVE, MURA_POSITIVE, RSNA_POSITIVE, mura_study_key
from radview.store import Correction, LabelStore
from radview.store.model import box_to_dict, utc_now
from radview.types import Label, Progress

Result = tuple[str, int, dict[str, int]]
_EVERY = 200  # items between Progress reports


@dataclass(frozen=True)
class Selection:
    """What an export includes: labels of label space `space` (None: all) of items under
    `folder` (None: everywhere)."""

    space: str | None = None
    folder: str | None = None

    def bind(self, store: LabelStore) -> "_Bound":
        return _Bound(self, store)


class _Bound:
    def __init__(self, sel: Selection, store: LabelStore) -> None:
        self.space = sel.space
        self.folder = os.path.normpath(os.path.abspath(sel.folder)) if sel.folder else None
        self.images: dict[str, list[str]] = {}
        if self.folder is not None:
            for key, info in store.items("image").items():
                if info["study_key"]:
                    self.images.setdefault(info["study_key"], []).append(key)

    def _under(self, key: str) -> bool:
        path = key.split("#", 1)[0]
        return path == self.folder or path.startswith(self.folder.rstrip(os.sep) + os.sep)

    def ok(self, key: str, level: str, label) -> bool:
        if self.space is not None and (label is None or label.space != self.space):
            return False
        if self.folder is None:
            return True
        if level == "image" or os.path.isabs(key):
            return self._under(key)
        return any(self._under(k) for k in self.images.get(key, ()))


def _count(d: dict[str, int], reason: str) -> None:
    d[reason] = d.get(reason, 0) + 1


def _drain(gen: Generator[Progress, None, Result]) -> Result:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value

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


def iter_mura(store: LabelStore, deid: Deidentifier | None = None, root: str | None = None,
              sel: Selection = Selection()) -> Generator[Progress, None, Result]:
    """(text, rows, skipped reasons) of a MURA labels CSV of the current study labels."""
    skipped: dict[str, int] = {}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    n = 0
    keys = _Keys(deid, None)
    bound = sel.bind(store)
    labels = sorted(store.labels("study").items())
    yield Progress(0, len(labels), "MURA CSV")
    for i, (key, label) in enumerate(labels, 1):
        if i % _EVERY == 0:
            yield Progress(i, len(labels), "MURA CSV")
        if not bound.ok(key, "study", label):
            continue
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


def _detection_items(store: LabelStore, bound: "_Bound | None" = None) -> list[tuple[str, Any]]:
    return sorted((k, s) for k, s in store.states("image").items()
                  if s.label is not None and (s.boxes_known or s.label.boxes)
                  and (bound is None or bound.ok(k, "image", s.label)))


def rsna_patient_id(key: str) -> str:
    """The RSNA patientId of an image key: the file name without suffix (challenge layout)."""
    key = key.split("#", 1)[0]
    return Path(key).stem if ("/" in key or "\\" in key or key.lower().endswith(".dcm")) else key


def iter_rsna(store: LabelStore, deid: Deidentifier | None = None, root: str | None = None,
              sel: Selection = Selection()) -> Generator[Progress, None, Result]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["patientId", "x", "y", "width", "height", "Target"])
    n = 0
    skipped: dict[str, int] = {}
    seen: dict[str, str] = {}
    items = _detection_items(store, sel.bind(store))
    yield Progress(0, len(items), "RSNA CSV")
    for i, (key, state) in enumerate(items, 1):
        if i % _EVERY == 0:
            yield Progress(i, len(items), "RSNA CSV")
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


def image_size(path: str) -> tuple[int, int] | str:
    """(width, height) from a PNG/JPEG/TIFF header (Pillow, lazily) or a DICOM header, else the
    reason it is unknown."""
    path, _, _frame = path.partition("#")
    if not os.path.isfile(path):
        return "no such file"
    try:
        from PIL import Image, UnidentifiedImageError

        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except UnidentifiedImageError:
        pass
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                             specific_tags=["Rows", "Columns"])
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        if rows and cols:
            return cols, rows
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        return f"not an image Pillow or pydicom can read ({exc})"
    return "not an image Pillow or pydicom can read"


def iter_coco(store: LabelStore, deid: Deidentifier | None = None, root: str | None = None,
              sel: Selection = Selection()) -> Generator[Progress, None, Result]:
    items_meta = store.items("image")
    bound = sel.bind(store)
    states = [(k, s) for k, s in sorted(store.states("image").items())
              if s.label is not None and bound.ok(k, "image", s.label)]
    keys = _Keys(deid, root if root else (_common_root([k for k, _ in states]) if deid else None))
    names = sorted({b.label for _, s in states for b in s.label.boxes})
    cat_id = {name: i + 1 for i, name in enumerate(names)}
    images, annotations = [], []
    skipped: dict[str, int] = {}
    yield Progress(0, len(states), "COCO: image sizes")
    for n, (key, state) in enumerate(states, start=1):
        if n % _EVERY == 0:
            yield Progress(n, len(states), "COCO: image sizes")
        meta = items_meta.get(key, {})
        width, height = meta.get("width") or 0, meta.get("height") or 0
        if not (width and height):
            size = image_size(key)
            if isinstance(size, str):
                _count(skipped, f"image size unknown: {size}")
                continue
            width, height = size
        i = len(images) + 1
        img: dict[str, Any] = {"id": i, "file_name": keys(key), "width": int(width),
                               "height": int(height)}
        if state.label.value is not None:
            img["label"] = state.label.value
        img["boxes_known"] = bool(state.boxes_known or state.label.boxes)
        images.append(img)
        for b in state.label.boxes:
            x, y, w, h = (round(float(v), 1) for v in (b.x, b.y, b.width, b.height))
            ann = {"id": len(annotations) + 1, "image_id": i, "category_id": cat_id[b.label],
                   "bbox": [_coord(x), _coord(y), _coord(w), _coord(h)],
                   "area": _coord(round(w * h, 2)), "iscrowd": 0}
            if b.score is not None:
                ann["score"] = round(float(b.score), 4)
            annotations.append(ann)
    doc = {
        "info": {"description": "radview labels", "version": "1", "date_created": utc_now(),
                 **({"deidentified": PROFILE} if deid else {}),
                 **({"label_space": sel.space} if sel.space else {})},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": cat_id[n], "name": n, "supercategory": "finding"} for n in names],
    }
    return json.dumps(doc, indent=1), len(images), skipped


def _coord(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


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
        "consumed_by_run": e.consumed_by_run, "space": e.space,
        "role": e.role, "project": e.project,
        "conflict_with_uid": (by_id[e.conflict_with].uid
                              if e.conflict_with is not None and e.conflict_with in by_id else None),
    }


def iter_json(store: LabelStore, deid: Deidentifier | None = None, root: str | None = None,
              sel: Selection = Selection()) -> Generator[Progress, None, Result]:
    """The full export: items, source labels, the event history and the current labels (of
    the selection; undos of a selected event are kept with it)."""
    yield Progress(0, 3, "history")
    bound = sel.bind(store)
    full = store.history()
    by_id = {e.id: e for e in full}
    if sel.space is None and sel.folder is None:
        history = full
    else:
        def chosen(e: Correction) -> bool:
            root_e = e
            while root_e.inverse_of is not None and root_e.inverse_of in by_id:
                root_e = by_id[root_e.inverse_of]
            return bound.ok(root_e.key, root_e.level, Label(None, space=root_e.space))
        history = [e for e in full if chosen(e)]
    yield Progress(1, 3, "items and labels")
    if deid is not None and root is None:
        root = _common_root(list(store.items("image")) + list(store.states("image")))
    keys = _Keys(deid, root)
    items, sources, current = [], [], []
    for level in ("study", "image"):
        states = store.states(level)
        for key, info in sorted(store.items(level).items()):
            st = states.get(key)
            if not bound.ok(key, level, st.label if st is not None else None):
                continue
            meta = dict(info["meta"])
            row = {"level": level, "key": keys(key),
                   "study_key": keys(info["study_key"]) if info["study_key"] else None,
                   "patient": info["patient"], "study_type": info["study_type"],
                   "width": info["width"], "height": info["height"], "meta": meta}
            if deid is not None:
                row["patient"] = deid.meta({"patient": row["patient"]})["patient"]
                row["meta"] = deid.meta(meta)
            items.append(row)
        for key, state in sorted(states.items()):
            if not bound.ok(key, level, state.label):
                continue
            if state.source is not None:
                sources.append({"level": level, "key": keys(key), "value": state.source.value,
                                "boxes": ([box_to_dict(b) for b in state.source.boxes]
                                          if state.source_boxes_known else None),
                                "source": state.source.source,
                                "space": state.source.space})
            if state.label is not None:
                decided = by_id.get(state.last_event_id) if state.corrected else None
                who = decided.reader if decided is not None else ""
                current.append({"level": level, "key": keys(key), "value": state.label.value,
                                "boxes": [box_to_dict(b) for b in state.label.boxes],
                                "source": state.label.source, "corrected": state.corrected,
                                "excluded": state.excluded, "space": state.label.space,
                                # who decided the current label (a correction's reader), and
                                # their role; a reading project's final label names its project
                                "reader": (deid.reader(who) if deid and who else who),
                                "role": decided.role if decided is not None else "",
                                "project": decided.project if decided is not None else ""})
    projects = {p.name: p for p in store.projects()}
    doc: dict[str, Any] = {
        "format": JSON_FORMAT, "version": JSON_VERSION, "exported": utc_now(),
        "deidentification": ({"profile": PROFILE, "method": METHOD, "key_id": deid.key_id}
                             if deid else None),
        "items": items,
        "source_labels": sources,
        "corrections": [_event_record(e, by_id, keys, deid) for e in history],
        "labels": current,
        "measurements": measurement_records(store, keys, bound.folder),
        # blinded reads of reading projects (issue 16): every read is kept; the final label
        # of each item is among "corrections" (with its "project")
        "projects": [{"name": p.name, "level": p.level, "space": p.space, "reads": p.reads,
                      "blinded": p.blinded, "hide_model": p.hide_model} for p in projects.values()],
        "reads": [{"uid": r.uid, "project": r.project, "key": keys(r.key),
                   "reader": deid.reader(r.reader) if deid else r.reader, "role": r.role,
                   "value": r.value, "reason": r.reason, "note": "" if deid else r.note,
                   "model_shown": r.model_shown, "others_shown": r.others_shown, "time": r.time}
                  for r in store.read_log() if r.project in projects
                  and bound.ok(r.key, projects[r.project].level, Label(None, space=projects[r.project].space))],
    }
    yield Progress(3, 3, "done")
    return json.dumps(doc, indent=1), len(current), {}


def measurement_records(store: LabelStore, keys: Callable[[str], str] = str,
                        folder: str | None = None, only: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The store's live measurements (issue 14) as JSON records: {"key", "kind", "length" |
    "angle" | ROI stats, "unit", "basis", "label", "points"} (radview.measure.Measurement.to_dict)."""
    get = getattr(store, "measurements", None)
    if get is None:
        return []
    out = []
    for key, ms in sorted(get(only).items()):
        path = key.split("#", 1)[0]
        if folder is not None and not (path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)):
            continue
        out.extend({"key": keys(key), **m.to_dict()} for m in ms)
    return out


def write_measurements_json(store: LabelStore, out: str | os.PathLike, keys: Iterable[str] | None = None) -> int:
    """Write the measurements (of these image keys, or all) to a JSON file; returns how many."""
    records = measurement_records(store, only=keys) if store is not None else []
    write_atomic(out, json.dumps({"format": "radview-measurements", "version": 1, "exported": utc_now(),
                                  "measurements": records}, indent=1))
    return len(records)


def _num(x: float) -> str:
    """A coordinate for a CSV: rounded to 0.1 px, integers without a decimal point."""
    v = round(float(x), 1)
    return str(int(v)) if v.is_integer() else repr(v)


ITER_WRITERS = {"mura": iter_mura, "rsna": iter_rsna, "coco": iter_coco, "json": iter_json}


def _plain(it: Callable[..., Generator[Progress, None, Result]]) -> Callable[..., Result]:
    def run(store: LabelStore, deid: Deidentifier | None = None, root: str | None = None,
            sel: Selection = Selection()) -> Result:
        return _drain(it(store, deid, root, sel))
    run.__name__ = it.__name__.replace("iter_", "export_")
    run.__doc__ = it.__doc__
    return run


export_mura, export_rsna, export_coco, export_json = (_plain(ITER_WRITERS[f])
                                                      for f in ("mura", "rsna", "coco", "json"))
WRITERS = {"mura": export_mura, "rsna": export_rsna, "coco": export_coco, "json": export_json}


def selected_values(store: LabelStore, sel: Selection) -> Iterable[str]:
    """Label values of the selection (class names de-identification must keep)."""
    bound = sel.bind(store)
    for level in ("study", "image"):
        for key, lab in store.labels(level).items():
            if lab.value and bound.ok(key, level, lab):
                yield lab.value
