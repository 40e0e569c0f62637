"""Folder -> patients / studies / views, with labels.

Each file is grouped by the first rule that fits it, so one folder may mix layouts:
- DICOM: by StudyInstanceUID (header-only reads), views ordered by series and instance;
  beside an RSNA `stage_2_train_labels.csv` the images are paired with their boxes ('rsna').
- MURA: `XR_WRIST/patient11185/study1_positive/image1.png` (study type, patient, study, label).
- class folders: `<split>/<class>/*.png` with split in train/val/valid/validation/test, or
  2-50 class folders directly under the scanned folder.
- flat: one study per file.
Labels also come from MURA's `*_labeled_studies.csv`, the RSNA CSV and a generic path,label CSV
found in the scanned folder (or its parent), or given explicitly (`labels=`).

`iter_scan` is a generator of Progress (the last one carries the ScanResult), so the GUI can
show progress and cancel; `scan` drains it. Bad files become ScanError records.
"""
from __future__ import annotations

import os
import stat as stat_mod
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from radview.io import DICOM_SUFFIXES, RASTER_SUFFIXES
from radview.io.errors import ImageError, printable_path
from radview.io.labels import (
    MURA_NEGATIVE,
    MURA_POSITIVE,
    SPLIT_NAMES,
    LabelFileError,
    is_mura_csv,
    is_rsna_csv,
    mura_split,
    mura_study_key,
    read_labels_any,
    read_mura_csv,
    read_rsna_csv,
)
from radview.types import ImageRef, Label, Progress, ScanError, ScanResult, Study, View

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_MAGICS = {".png": (_PNG_MAGIC,), ".jpg": (_JPEG_MAGIC,), ".jpeg": (_JPEG_MAGIC,),
           ".tif": (b"II*\x00", b"MM\x00*"), ".tiff": (b"II*\x00", b"MM\x00*"), ".bmp": (b"BM",)}
_PROGRESS_EVERY = 500


class _File:
    __slots__ = ("path", "size", "mtime_ns", "kind")

    def __init__(self, path: str, size: int, mtime_ns: int, kind: str):
        self.path, self.size, self.mtime_ns, self.kind = path, size, mtime_ns, kind


def _walk(root: str, errors: list[ScanError], csvs: list[str]) -> list[_File]:
    """Every candidate image under root (hidden entries skipped), iteratively with scandir."""
    files: list[_File] = []
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except PermissionError:
            errors.append(ScanError(printable_path(d), "folder not readable (permission denied)"))
            continue
        except OSError as exc:
            errors.append(ScanError(printable_path(d), f"folder not readable ({exc.strerror or exc})"))
            continue
        with it:
            for entry in it:
                name = entry.name
                if name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=True):
                        stack.append(entry.path)
                        continue
                except OSError:
                    continue
                low = name.lower()
                kind = None
                if low.endswith(RASTER_SUFFIXES):
                    kind = "raster"
                elif low.endswith(DICOM_SUFFIXES):
                    kind = "dicom"
                elif low.endswith(".csv"):
                    csvs.append(entry.path)
                    continue
                elif "." not in name:
                    kind = "maybe-dicom"
                if kind is None:
                    continue
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    errors.append(ScanError(printable_path(entry.path),
                                            "file name is not valid UTF-8: rename the file to open it"))
                    continue
                try:
                    st = entry.stat(follow_symlinks=True)
                except OSError as exc:
                    errors.append(ScanError(entry.path, f"cannot stat file ({exc.strerror or exc})"))
                    continue
                if not stat_mod.S_ISREG(st.st_mode):
                    continue
                files.append(_File(entry.path, st.st_size, st.st_mtime_ns, kind))
    return files


def _check_raster(path: str, size: int) -> str | None:
    """The reason a raster file cannot be an image, from its first bytes; None if it may be."""
    if size == 0:
        return "empty file (0 bytes)"
    low = path.lower()
    magics = next((m for suf, m in _MAGICS.items() if low.endswith(suf)), None)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    if magics and not any(head.startswith(m) for m in magics):
        ext = os.path.splitext(low)[1].lstrip(".").upper()
        return f"not a {ext} file (its first bytes are not a {ext} signature)"
    return None


def _find_label_files(root: str, csvs: list[str]) -> list[str]:
    """Label CSVs that apply: those found in the scan, plus well-known ones in the parent."""
    found = [c for c in csvs]
    parent = os.path.dirname(root.rstrip(os.sep)) if os.path.isdir(root) else os.path.dirname(root)
    for folder in {parent, os.path.dirname(parent)} if os.path.isfile(root) else {parent}:
        try:
            for name in os.listdir(folder):
                if is_rsna_csv(name) or is_mura_csv(name):
                    found.append(os.path.join(folder, name))
        except OSError:
            pass
    return sorted(set(found))


def iter_scan(
    path: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    use_index: bool = True,
) -> Iterator[Progress]:
    """Scan a folder or one file. Yields Progress; the last one's payload is the ScanResult."""
    root = os.path.abspath(os.fspath(path))
    errors: list[ScanError] = []
    csvs: list[str] = []
    if os.path.isdir(root):
        yield Progress(0, None, f"listing {printable_path(root)}")
        files = _walk(root, errors, csvs)
    elif os.path.exists(root):
        st = os.stat(root)
        low = root.lower()
        kind = "raster" if low.endswith(RASTER_SUFFIXES) else "dicom" if low.endswith(DICOM_SUFFIXES) else "maybe-dicom"
        files = [_File(root, st.st_size, st.st_mtime_ns, kind)]
    else:
        raise FileNotFoundError(f"{printable_path(root)}: no such file or folder")
    files.sort(key=lambda f: f.path)

    # ---- the index cache
    index = None
    cached: dict = {}
    if use_index:
        from radview.paths import index_db_path
        from radview.store.index import IndexUnavailable, ScanIndex

        try:
            index = ScanIndex(index_db_path())
            cached = index.load_prefix(root)
        except IndexUnavailable as exc:
            errors.append(ScanError(str(index_db_path()), str(exc)))
            index = None
        except OSError as exc:
            errors.append(ScanError("RADVIEW_HOME", f"user data folder unusable ({exc}); scanning without the index"))
            index = None
    from radview.store.index import IndexEntry

    total = len(files)
    fresh: list[tuple[str, IndexEntry]] = []
    headers: dict[str, dict] = {}
    good: list[_File] = []
    n_read = 0
    for i, f in enumerate(files):
        if i % _PROGRESS_EVERY == 0:
            yield Progress(i, total, f"reading headers ({i}/{total})")
        entry = cached.get(f.path)
        if entry is None or entry.size != f.size or entry.mtime_ns != f.mtime_ns:
            n_read += 1
            entry = _read_entry(f)
            fresh.append((f.path, entry))
        if entry.kind == "skip":
            continue
        if entry.error:
            errors.append(ScanError(f.path, entry.error))
            continue
        f.kind = entry.kind
        if entry.header is not None:
            headers[f.path] = entry.header
        good.append(f)
    if index is not None:
        try:
            index.put_many(fresh)
            present = {f.path for f in files}
            gone = [p for p in cached if p not in present]
            if gone:
                index.conn.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in gone])
                index.conn.commit()
        except Exception as exc:  # noqa: BLE001 - a cache failure never fails the scan
            errors.append(ScanError(index.path, f"scan index not updated ({exc})"))
        finally:
            index.close()
    yield Progress(total, total, "grouping studies")

    label_files = _find_label_files(root, csvs)
    explicit = os.path.abspath(os.fspath(labels)) if labels is not None else None
    if explicit is not None:
        label_files.append(explicit)
    studies = _group(root, good, headers, label_files, errors, explicit)
    errors.sort(key=lambda e: e.path)
    result = ScanResult(root=printable_path(root), studies=tuple(studies), errors=tuple(errors),
                        n_files=total, n_read=n_read)
    yield Progress(total, total, f"{len(studies)} studies, {len(errors)} errors", result)


def scan(path: str | os.PathLike, labels: str | os.PathLike | None = None, use_index: bool = True) -> ScanResult:
    """Studies under a folder (or one file); see iter_scan."""
    result = None
    for p in iter_scan(path, labels=labels, use_index=use_index):
        if p.payload is not None:
            result = p.payload
    assert result is not None
    return result


def _read_entry(f: _File):
    from radview.store.index import IndexEntry

    if f.kind == "raster":
        reason = _check_raster(f.path, f.size)
        return IndexEntry(f.size, f.mtime_ns, "raster", None, reason)
    from radview.io.dicom import is_dicom_file, read_header

    if f.kind == "maybe-dicom" and not is_dicom_file(f.path):
        return IndexEntry(f.size, f.mtime_ns, "skip", None, None)
    if os.path.basename(f.path).upper().startswith("DICOMDIR"):
        return IndexEntry(f.size, f.mtime_ns, "skip", None, None)  # a media index, not an image
    try:
        header = read_header(f.path)
    except ImageError as exc:
        return IndexEntry(f.size, f.mtime_ns, "dicom", None, exc.reason)
    except Exception as exc:  # noqa: BLE001 - one bad file never stops a scan
        return IndexEntry(f.size, f.mtime_ns, "dicom", None, f"unreadable ({type(exc).__name__}: {exc})")
    return IndexEntry(f.size, f.mtime_ns, "dicom", header, None)


# --------------------------------------------------------------------------- grouping


def _class_root_dirs(root: str, good: list[_File]) -> set[str]:
    """Folders directly under root that look like class folders (2..50 of them, each holding
    images directly, and every raster under root sitting directly in one of them)."""
    rasters = [f for f in good if f.kind == "raster"]
    if not rasters:
        return set()
    parents = {os.path.dirname(f.path) for f in rasters}
    if any(os.path.dirname(p) != root for p in parents):
        return set()
    if 2 <= len(parents) <= 50:
        return parents
    return set()


def _group(root: str, good: list[_File], headers: dict[str, dict], label_files: list[str],
           errors: list[ScanError], explicit: str | None = None) -> list[Study]:
    mura_labels: dict[str, Label] = {}
    rsna_labels: dict[str, Label] = {}
    path_labels: dict[str, Label] = {}
    for lf in label_files:
        try:
            if is_rsna_csv(lf):
                rsna_labels.update(read_rsna_csv(lf))
            elif is_mura_csv(lf):
                mura_labels.update(read_mura_csv(lf))
            else:
                fmt, got = read_labels_any(lf, root if os.path.isdir(root) else os.path.dirname(root))
                {"rsna": rsna_labels, "mura": mura_labels, "csv": path_labels}[fmt].update(got)
        except LabelFileError as exc:
            # A CSV found in the folder may be anything; report only the ones that claim to be labels.
            if lf == explicit or os.path.basename(lf).lower() == "labels.csv" or is_rsna_csv(lf) or is_mura_csv(lf):
                errors.append(ScanError(exc.path, exc.reason))
        except UnicodeDecodeError:
            errors.append(ScanError(lf, "label CSV is not UTF-8 text"))
    class_dirs = _class_root_dirs(root, good) if os.path.isdir(root) else set()

    dicom_groups: dict[str, list[View]] = defaultdict(list)
    dicom_info: dict[str, dict] = {}
    mura_groups: dict[str, list[View]] = defaultdict(list)
    mura_info: dict[str, tuple[str, str, str]] = {}
    singles: list[Study] = []

    dir_kind: dict[str, tuple] = {}  # parent folder -> how its raster files group (computed once)
    for f in good:
        p = f.path
        plabel = path_labels.get(os.path.normpath(p)) if path_labels else None
        if f.kind == "dicom":
            h = headers.get(p, {})
            pid_stem = Path(p).stem
            rsna = rsna_labels.get(pid_stem) or rsna_labels.get(str(h.get("PatientID", "")))
            label = plabel or rsna
            view = View(
                ref=ImageRef(p), label=label, modality=str(h.get("Modality", "")),
                body_part=str(h.get("BodyPartExamined", "")), rows=int(h.get("Rows", 0) or 0),
                columns=int(h.get("Columns", 0) or 0), series_uid=str(h.get("SeriesInstanceUID", "")),
                instance=_int(h.get("InstanceNumber")),
            )
            uid = str(h.get("StudyInstanceUID") or "") or p
            dicom_groups[uid].append(view)
            info = dicom_info.setdefault(uid, {"patient": str(h.get("PatientID", "")),
                                               "body": str(h.get("BodyPartExamined", "")),
                                               "desc": str(h.get("StudyDescription", "")),
                                               "rsna": False, "label": None})
            if rsna is not None:
                info["rsna"] = True
                info["label"] = rsna
            if plabel is not None:
                info["label"] = plabel
            continue
        parent = os.path.dirname(p)
        kind = dir_kind.get(parent)
        if kind is None:
            mkey = mura_study_key(parent.replace(os.sep, "/") + "/")
            if mkey is not None:
                kind = ("mura", mkey)
                mura_info[mkey] = (*mkey.split("/")[:2], parent)
            else:
                grand = os.path.basename(os.path.dirname(parent)).lower()
                if grand in SPLIT_NAMES or parent in class_dirs:
                    kind = ("class", os.path.basename(parent), grand if grand in SPLIT_NAMES else "")
                else:
                    kind = ("flat",)
            dir_kind[parent] = kind
        if kind[0] == "mura":
            mura_groups[kind[1]].append(View(ref=ImageRef(p), label=plabel))
            continue
        if kind[0] == "class":
            cls, split = kind[1], kind[2]
            label = plabel or Label(cls, source="class-folder")
            singles.append(Study(key=p, patient="", study_type="", split=split, label=label,
                                 views=(View(ref=ImageRef(p), label=label),), layout="class"))
            continue
        singles.append(Study(key=p, label=plabel, views=(View(ref=ImageRef(p), label=plabel),), layout="flat"))

    studies: list[Study] = []
    for uid, views in dicom_groups.items():
        info = dicom_info[uid]
        views.sort(key=lambda v: (v.series_uid, v.instance, v.ref.path))
        label = info["label"]
        layout = "rsna" if info["rsna"] else "dicom"
        if label is None and views and all(v.label is not None for v in views):
            label = views[0].label
        studies.append(Study(key=uid, patient=info["patient"], study_type=info["body"], label=label,
                             views=tuple(views), layout=layout, description=info["desc"]))
    for mkey, views in mura_groups.items():
        stype, patient, folder = mura_info[mkey]
        views.sort(key=lambda v: (len(v.ref.path), v.ref.path))  # image2 before image10
        label = (path_labels.get(os.path.normpath(folder)) if path_labels else None) or mura_labels.get(mkey)
        if label is None:
            label = Label(MURA_POSITIVE if mkey.endswith("_positive") else MURA_NEGATIVE, source="mura-folder")
        split = mura_split(folder)
        studies.append(Study(key=mkey if not split else f"{split}/{mkey}", patient=patient, study_type=stype,
                             split=split, label=label, views=tuple(views), layout="mura"))
    studies.extend(singles)
    studies.sort(key=lambda s: (s.layout, s.patient, s.key))
    return studies


def _int(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0
