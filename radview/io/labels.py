"""Label sources: MURA CSVs, the RSNA pneumonia CSV (several boxes per image), class folders
(by path, in studies.py) and a generic path,label CSV.

Readers return plain dicts of radview.types.Label; they raise LabelFileError naming the file,
the line and the reason for a file that is not what it claims to be.

Every label carries its label space (radview.spaces): 'mura' (MURA CSVs and folders),
'rsna-pneumonia' (RSNA CSVs), 'csv:<file stem>' (a generic CSV, its values), 'folder:<name>'
(class folders; `assign_spaces` names them after the scan grouped the files).
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from dataclasses import replace

from radview import spaces
from radview.types import Box, Label, Study

MURA_STUDY_RE = re.compile(r"(XR_[A-Z]+)/(patient[^/]+)/(study\d+)_(positive|negative)/?$", re.IGNORECASE)
RSNA_LABEL_FILES = ("stage_2_train_labels.csv", "stage_1_train_labels.csv")
MURA_LABEL_SUFFIX = "_labeled_studies.csv"

RSNA_POSITIVE, RSNA_NEGATIVE = "pneumonia", "normal"
MURA_POSITIVE, MURA_NEGATIVE = "abnormal", "normal"


class LabelFileError(Exception):
    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _open_csv(path: str | os.PathLike):
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelFileError(path, "no such file") from None
    except PermissionError:
        raise LabelFileError(path, "permission denied") from None
    except OSError as exc:
        raise LabelFileError(path, f"cannot read ({exc.strerror or exc})") from None


def mura_study_key(path: str) -> str | None:
    """'XR_WRIST/patient11185/study1_positive' for any path inside or naming a MURA study folder."""
    p = path.replace("\\", "/").rstrip("/")
    m = MURA_STUDY_RE.search(p)
    if m:
        return f"{m.group(1).upper()}/{m.group(2)}/{m.group(3)}_{m.group(4).lower()}"
    parent = p.rsplit("/", 1)[0] if "/" in p else ""
    m = MURA_STUDY_RE.search(parent)
    if m:
        return f"{m.group(1).upper()}/{m.group(2)}/{m.group(3)}_{m.group(4).lower()}"
    return None


SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing", "holdout"}


def mura_split(path: str) -> str:
    """The split folder ('train', 'valid', ...) above a MURA study path, or ''."""
    parts = path.replace("\\", "/").rstrip("/").split("/")
    for part in reversed(parts[:-3]):
        if part.lower() in SPLIT_NAMES:
            return part.lower()
    return ""


def read_mura_csv(path: str | os.PathLike) -> dict[str, Label]:
    """MURA's `*_labeled_studies.csv` (no header: study folder path, 0|1) ->
    {'XR_WRIST/patient11185/study1_positive': Label('abnormal'|'normal')}."""
    out: dict[str, Label] = {}
    with _open_csv(path) as fh:
        for i, row in enumerate(csv.reader(fh), start=1):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise LabelFileError(path, f"line {i}: expected 'study path,label', got {row!r}")
            key = mura_study_key(row[0].strip())
            if key is None:
                if i == 1 and not row[1].strip().isdigit():
                    continue  # a header line
                raise LabelFileError(path, f"line {i}: {row[0]!r} is not a MURA study path (XR_*/patient*/study*_positive|negative)")
            val = row[1].strip()
            if val not in ("0", "1"):
                raise LabelFileError(path, f"line {i}: label must be 0 or 1, got {val!r}")
            out[key] = Label(MURA_POSITIVE if val == "1" else MURA_NEGATIVE, source="mura-csv",
                             space=spaces.MURA.name)
    return out


def read_rsna_csv(path: str | os.PathLike) -> dict[str, Label]:
    """RSNA `stage_2_train_labels.csv` (patientId,x,y,width,height,Target; one row per box,
    one row with empty box for negatives) -> {patientId: Label('pneumonia'|'normal', boxes)}."""
    boxes: dict[str, list[Box]] = {}
    target: dict[str, int] = {}
    with _open_csv(path) as fh:
        reader = csv.DictReader(fh)
        need = {"patientId", "x", "y", "width", "height", "Target"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise LabelFileError(path, f"not an RSNA labels CSV: needs columns {sorted(need)}, has {reader.fieldnames}")
        for i, row in enumerate(reader, start=2):
            pid = (row["patientId"] or "").strip()
            if not pid:
                raise LabelFileError(path, f"line {i}: empty patientId")
            try:
                t = int(float(row["Target"]))
            except ValueError:
                raise LabelFileError(path, f"line {i}: Target must be 0 or 1, got {row['Target']!r}") from None
            target[pid] = max(target.get(pid, 0), t)
            lst = boxes.setdefault(pid, [])
            if t == 1 and (row["x"] or "").strip():
                try:
                    x, y, w, h = (float(row[k]) for k in ("x", "y", "width", "height"))
                except ValueError:
                    raise LabelFileError(path, f"line {i}: box values must be numbers") from None
                lst.append(Box(x, y, w, h, "opacity"))
    return {
        pid: Label(RSNA_POSITIVE if target[pid] else RSNA_NEGATIVE, tuple(boxes[pid]), "rsna-csv",
                   spaces.RSNA.name)
        for pid in target
    }


_PATH_COLS = ("path", "file", "filename", "image", "image_path", "study", "study_path")
_LABEL_COLS = ("label", "class", "target", "y", "diagnosis")


def read_label_csv(path: str | os.PathLike, root: str | os.PathLike | None = None) -> dict[str, Label]:
    """A generic CSV of path,label (header optional; columns named path/file/image and
    label/class/target are found by name, else the first two columns). Relative paths are
    resolved against `root` when given and the file exists there, else against the CSV's folder.
    Returns {absolute normalised path: Label}; paths may name image files or study folders."""
    base_csv = Path(path).resolve().parent
    base_root = Path(root).resolve() if root is not None else None
    out: dict[str, Label] = {}
    with _open_csv(path) as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return out
    header = [c.strip().lower() for c in rows[0]]
    pcol = next((header.index(c) for c in _PATH_COLS if c in header), None)
    lcol = next((header.index(c) for c in _LABEL_COLS if c in header), None)
    start = 1
    if pcol is None or lcol is None:
        pcol, lcol, start = 0, 1, 0
        if rows and len(rows[0]) >= 2 and rows[0][0].strip().lower() in ("path", "file", "filename", "image"):
            start = 1
    for i, row in enumerate(rows[start:], start=start + 1):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) <= max(pcol, lcol):
            raise LabelFileError(path, f"line {i}: expected path and label columns, got {row!r}")
        p = row[pcol].strip()
        value = row[lcol].strip()
        if not p:
            raise LabelFileError(path, f"line {i}: empty path")
        out[resolve_label_path(p, base_root, base_csv)] = Label(value or None, source="csv")
    space = spaces.csv_space(Path(path).stem, (lab.value for lab in out.values()))
    return {k: replace(lab, space=space.name) for k, lab in out.items()}


def resolve_label_path(p: str, root: Path | None, csv_dir: Path) -> str:
    if os.path.isabs(p):
        return os.path.normpath(p)
    if root is not None:
        cand = root / p
        if cand.exists() or not (csv_dir / p).exists():
            return os.path.normpath(str(cand))
    return os.path.normpath(str(csv_dir / p))


def is_rsna_csv(path: str | os.PathLike) -> bool:
    return os.path.basename(os.fspath(path)).lower() in RSNA_LABEL_FILES


RSNA_COLUMNS = ("patientid", "x", "y", "width", "height", "target")


def is_rsna_labels_file(path: str | os.PathLike) -> bool:
    """An RSNA challenge labels file: by its official name, or a `labels.csv` / `*_labels.csv`
    whose header is patientId,x,y,width,height,Target (e.g. a resized copy of the challenge
    images with its boxes scaled to them). Reads at most the first line."""
    name = os.path.basename(os.fspath(path)).lower()
    if name in RSNA_LABEL_FILES:
        return True
    if name != "labels.csv" and not name.endswith("_labels.csv"):
        return False
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            first = fh.readline(4096)
    except OSError:
        return False
    return tuple(c.strip().lower() for c in first.split(",")) == RSNA_COLUMNS


def is_mura_csv(path: str | os.PathLike) -> bool:
    return os.path.basename(os.fspath(path)).lower().endswith(MURA_LABEL_SUFFIX)


def read_labels_any(path: str | os.PathLike, root: str | os.PathLike | None = None) -> tuple[str, dict[str, Label]]:
    """Read a label file of any known format, guessed from its name and header.
    Returns (format, labels) with format 'rsna' (keys patientId), 'mura' (keys
    XR_*/patient*/study*), or 'csv' (keys absolute paths)."""
    if is_rsna_csv(path):
        return "rsna", read_rsna_csv(path)
    if is_mura_csv(path):
        return "mura", read_mura_csv(path)
    with _open_csv(path) as fh:
        first = fh.readline()
    cols = {c.strip().lower() for c in first.split(",")}
    if {"patientid", "x", "y", "width", "height", "target"} <= cols:
        return "rsna", read_rsna_csv(path)
    if mura_study_key(first.split(",")[0].strip()) is not None:
        return "mura", read_mura_csv(path)
    return "csv", read_label_csv(path, root)


def class_space_name(path: str) -> str:
    """The folder naming the class-folder space of an image at `path`: the folder holding the
    class folders, or the one above it when that is a split folder (train/val/test)."""
    holder = os.path.dirname(os.path.dirname(os.path.normpath(path)))
    if os.path.basename(holder).lower() in SPLIT_NAMES:
        holder = os.path.dirname(holder)
    return os.path.basename(holder) or holder or "."


def _with_space(label: Label | None, name: str) -> Label | None:
    if label is None or label.space or not name:
        return label
    return replace(label, space=name)


def assign_spaces(studies: list[Study]) -> list[Study]:
    """Give every label of the scanned studies its label space and each study the space of its
    label (see the module doc). Class-folder spaces are registered with all the classes seen
    under the same folder (train and val together)."""
    classes: dict[str, set[str]] = {}
    for st in studies:
        for v in st.views:
            if v.label is not None and v.label.source == "class-folder" and v.label.value:
                classes.setdefault(class_space_name(v.ref.path), set()).add(v.label.value)
    folder = {n: spaces.class_folder_space(n, c).name for n, c in classes.items()}

    def name_of(label: Label | None, path: str) -> str:
        if label is None or label.space:
            return label.space if label is not None else ""
        if label.source.startswith("mura"):
            return spaces.MURA.name
        if label.source.startswith("rsna"):
            return spaces.RSNA.name
        if label.source == "class-folder":
            return folder.get(class_space_name(path), "")
        return ""

    out = []
    for st in studies:
        views = tuple(v if v.label is None else replace(v, label=_with_space(v.label, name_of(v.label, v.ref.path)))
                      for v in st.views)
        first = st.views[0].ref.path if st.views else st.key
        label = _with_space(st.label, name_of(st.label, first))
        space = label.space if label is not None else ""
        if not space:
            named = {v.label.space for v in views if v.label is not None and v.label.space}
            space = named.pop() if len(named) == 1 else ""
        out.append(replace(st, views=views, label=label, space=space))
    return out
