"""Read a radview TID 1500 SR (radview.export.dicom_sr) back into a label store: study and image
labels, boxes (with scores), and for corrections the reader, reason, note and model shown.

    res = import_sr(store, "study.sr.dcm")            # -> SrImport(labels, boxes, unmatched)

Images are matched by SOPInstanceUID against the DICOM images the store knows (its image items
whose files are readable), so the SR lands on the same keys after a rescan of the folder, a
retrieve from the PACS or on another machine. Values that equal the store's current ones are not
written again (importing twice changes nothing).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from radview.types import Box, Label

_SCHEME = "99RADVIEW"
_TEXT_NAMES = {"label-source": "source", "label-space": "space", "reader": "reader",
               "decided": "time", "model-output": "output", "box-count": "box_count",
               "level": "level", "121106": "comment", "111001": "model", "111003": "model_version",
               "112039": "tracking", "measurement": "measurement"}


class SrImportError(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


@dataclass
class Group:
    values: dict[str, str] = field(default_factory=dict)
    finding: str | None = None
    reason: str = ""
    sop: str = ""
    frame: int = 0
    region: list[float] | None = None
    score: float | None = None


@dataclass(frozen=True)
class SrImport:
    path: str
    study_uid: str
    labels: int = 0
    boxes: int = 0
    unmatched: tuple[str, ...] = ()     # SOPInstanceUIDs the store does not know
    measurements: tuple = ()            # (image key, radview.measure.Measurement) read back


def _concept(item) -> str:
    seq = item.get("ConceptNameCodeSequence")
    if not seq:
        return ""
    c = seq[0]
    return str(c.get("CodeValue") or c.get("LongCodeValue") or c.get("URNCodeValue") or "")


def _code_value(item) -> str:
    c = item.ConceptCodeSequence[0]
    return str(c.get("CodeValue") or c.get("LongCodeValue") or c.get("URNCodeValue") or "")


def _ref(item) -> tuple[str, int]:
    ref = item.ReferencedSOPSequence[0]
    frames = ref.get("ReferencedFrameNumber")
    frame = 0
    if frames not in (None, ""):
        frame = int(frames[0] if hasattr(frames, "__len__") and not isinstance(frames, str) else frames) - 1
    return str(ref.ReferencedSOPInstanceUID), frame


def _group(container) -> Group:
    g = Group()
    for it in container.get("ContentSequence", []):
        vt, cv = it.get("ValueType", ""), _concept(it)
        if vt == "TEXT" and cv in _TEXT_NAMES:
            g.values[_TEXT_NAMES[cv]] = str(it.TextValue)
        elif vt == "CODE" and cv == "121071":
            g.finding = _code_value(it)
        elif vt == "CODE" and cv == "reason":
            g.reason = _code_value(it)
        elif vt == "IMAGE":
            g.sop, g.frame = _ref(it)
        elif vt == "SCOORD" and cv == "111030":
            g.region = [float(v) for v in it.GraphicData]
            for sub in it.get("ContentSequence", []):
                if sub.get("ValueType") == "IMAGE":
                    g.sop, g.frame = _ref(sub)
        elif vt == "NUM" and cv == "score":
            g.score = float(it.MeasuredValueSequence[0].NumericValue)
        elif vt == "CONTAINER":  # nested (algorithm identification, etc.)
            sub = _group(it)
            g.values.update({k: v for k, v in sub.values.items() if k not in g.values})
    return g


def read_groups(ds) -> list[Group]:
    out = []

    def walk(items) -> None:
        for it in items:
            cv = _concept(it)
            if it.get("ValueType") == "CONTAINER" and cv == "125007":
                out.append(_group(it))
            elif it.get("ValueType") == "CONTAINER":
                walk(it.get("ContentSequence", []))
    walk(ds.get("ContentSequence", []))
    return out


def _box(g: Group) -> Box:
    xs, ys = g.region[0::2], g.region[1::2]
    x0, y0 = min(xs), min(ys)
    return Box(x0, y0, max(xs) - x0, max(ys) - y0, g.finding or "opacity", g.score)


def _output(text: str | None) -> Any:
    if not text:
        return None
    from radview.store.model import box_from_dict

    data = json.loads(text)
    return tuple(box_from_dict(d) for d in data) if isinstance(data, list) else data


def _sop_index(store, study_uid: str) -> tuple[dict[tuple[str, int], str], str | None]:
    """(SOPInstanceUID, frame) -> store image key for the study's images; and its study key."""
    from radview.export.dicom_sr import _header, _split

    index: dict[tuple[str, int], str] = {}
    study_key = None
    items = store.items("image")
    same = {k: v for k, v in items.items() if v.get("study_key") == study_uid}
    for key, item in (same or items).items():  # DICOM study keys are the UID: read only those
        path, frame = _split(key)
        if not os.path.isfile(path):
            continue
        ds = _header(path)
        if ds is None or str(ds.StudyInstanceUID) != study_uid:
            continue
        index[(str(ds.SOPInstanceUID), frame)] = key
        study_key = study_key or item.get("study_key")
    return index, study_key


def import_sr(store, path: str | os.PathLike) -> SrImport:
    import pydicom
    from pydicom.errors import InvalidDicomError

    p = os.fspath(path)
    try:
        ds = pydicom.dcmread(p)
    except (OSError, InvalidDicomError, ValueError) as exc:
        raise SrImportError(p, f"not a readable DICOM file ({exc})") from None
    if str(ds.get("Modality", "")) != "SR" or "ContentSequence" not in ds:
        raise SrImportError(p, "not a DICOM SR (Modality is not SR or no content)")
    study_uid = str(ds.StudyInstanceUID)
    groups = read_groups(ds)
    if not groups:
        raise SrImportError(p, "no measurement groups (not a TID 1500 measurement report)")
    index, study_key = _sop_index(store, study_uid)
    study_key = study_key or study_uid
    unmatched: list[str] = []
    labels = boxes_n = 0
    box_lists: dict[str, list[tuple[str, Box, Group]]] = {}
    image_groups: dict[str, Group] = {}
    study_group = None
    measured: list = []
    for g in groups:
        level = g.values.get("level") or ("box" if g.region else ("image" if g.sop else "study"))
        if level == "study":
            study_group = g
            continue
        key = index.get((g.sop, g.frame))
        if key is None:
            unmatched.append(g.sop)
            continue
        if level == "measurement" and "measurement" in g.values:
            from radview.export.sr_measurements import measurement_from_json

            measured.append((key, measurement_from_json(g.values["measurement"])))
        elif level == "box" and g.region:
            box_lists.setdefault(key, []).append((g.values.get("tracking", ""), _box(g), g))
        else:
            image_groups[key] = g
    if study_group is not None:
        labels += _write_label(store, study_key, "study", study_group)
    for key, g in image_groups.items():
        labels += _write_label(store, key, "image", g)
        if "box_count" in g.values:
            items = box_lists.get(key, [])
            boxes = tuple(b for _, b, _ in sorted(items, key=lambda t: _order(t[0])))
            decision = items[0][2] if items else g
            boxes_n += _write_boxes(store, key, boxes, decision)
    _write_measurements(store, measured)
    return SrImport(p, study_uid, labels, boxes_n, tuple(dict.fromkeys(unmatched)), tuple(measured))


def _write_measurements(store, measured: list) -> None:
    """Into the store's measurement annotations when it keeps them (issue 14's store API)."""
    add = getattr(store, "add_measurement", None)
    if add is None or not measured:
        return
    have = {k: [m.to_dict() for m in v] for k, v in (getattr(store, "measurements")() or {}).items()} \
        if hasattr(store, "measurements") else {}
    for key, m in measured:
        if m.to_dict() not in have.get(key, []):
            add(key, m)


def _order(tracking: str) -> tuple:
    parts = tracking.split()
    try:
        return (int(parts[-1]),)
    except (ValueError, IndexError):
        return (0,)


def _write_label(store, key: str, level: str, g: Group) -> int:
    if g.finding is None:
        return 0
    current = store.label(key, level)
    if current is not None and current.value == g.finding:
        return 0
    v = g.values
    if g.reason:
        store.set_label(key, g.finding, level=level, reason=g.reason, note=v.get("comment", ""),
                        model=v.get("model", ""), model_version=_version(v),
                        model_output=_output(v.get("output")), reader=v.get("reader") or None)
    else:
        keep = current.boxes if current is not None else ()
        store.set_source_labels({key: Label(g.finding, keep, "import:dicom-sr")}, level,
                                boxes_known=bool(keep) if level == "image" else None)
    return 1


def _version(values: dict[str, str]) -> str:
    v = values.get("model_version", "")
    return "" if v == "unknown" and not values.get("model") else v


def _write_boxes(store, key: str, boxes: tuple[Box, ...], g: Group) -> int:
    current = store.label(key, "image")
    state = store.state(key, "image")
    if current is not None and state.boxes_known and tuple(current.boxes) == boxes:
        return 0
    v = g.values
    if g.reason:
        store.set_boxes(key, boxes, reason=g.reason, note=v.get("comment", ""),
                        model=v.get("model", ""), model_version=_version(v),
                        model_output=_output(v.get("output")), reader=v.get("reader") or None)
    else:
        value = current.value if current is not None else None
        store.set_source_labels({key: Label(value, boxes, "import:dicom-sr")}, "image",
                                boxes_known=True)
    return len(boxes)


def radview_srs(folder: str | os.PathLike) -> list[str]:
    """The SR files radview wrote (Manufacturer 'radview', TID 1500) in a folder (e.g. a cached
    study), sorted by name."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    out = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file() or entry.name.startswith("."):
            continue
        try:
            ds = pydicom.dcmread(entry.path, stop_before_pixels=True,
                                 specific_tags=["Modality", "Manufacturer"])
        except (OSError, InvalidDicomError, ValueError):
            continue
        if str(ds.get("Modality", "")) == "SR" and str(ds.get("Manufacturer", "")) == "radview":
            out.append(entry.path)
    return out


def import_study_reads(store, folder: str | os.PathLike) -> list[SrImport]:
    """Record a retrieved study folder's images in the store (a scan) and import the reads radview
    sent back earlier (its SRs there), so labels and boxes reappear on those images."""
    from radview.io.studies import scan

    srs = radview_srs(folder)
    if not srs:
        return []
    store.record_scan(scan(os.fspath(folder)))
    return [import_sr(store, p) for p in srs]
