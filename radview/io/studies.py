"""Folder -> patients / studies / views, with labels.

Each file is grouped by the first rule that fits it, so one folder may mix layouts:
- DICOM: by StudyInstanceUID (header-only reads), views ordered by series and instance.
  Any file whose name does not say what it is (IM0001, 1.3.12.2.1107.5.2...., image.v2) is
  sniffed: a DICOM file is a DICOM file whatever its name.
- RSNA: under (beside or above) an RSNA labels CSV (`stage_2_train_labels.csv`, or a
  `labels.csv` / `*_labels.csv` with the challenge's header), images named by patientId (DICOM,
  or PNG/JPEG copies) are paired with their boxes ('rsna'); the nearest CSV applies.
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

import gc
import os
import re
import stat as stat_mod
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from radview.io import DICOM_SUFFIXES, RASTER_SUFFIXES
from radview.io.errors import ImageError, ScanCancelled, printable_path
from radview.io.index import IndexEntry, IndexUnavailable, ScanIndex
from radview.io.labels import (
    MURA_NEGATIVE,
    MURA_POSITIVE,
    SPLIT_NAMES,
    LabelFileError,
    assign_spaces,
    is_mura_csv,
    is_rsna_csv,
    is_rsna_labels_file,
    mura_split,
    mura_study_key,
    read_labels_any,
    read_mura_csv,
    read_rsna_csv,
)
from radview.io.sniff import NOT_IMAGE_SUFFIXES, check_raster, read_head, sniff_dicom
from radview.types import ImageRef, Label, Progress, ScanError, ScanResult, Study, View

_PROGRESS_EVERY = 500
_WALK_PROGRESS_DIRS = 200  # listing: a Progress (and a cancel check) every N folders


@contextmanager
def _gc_paused():
    """The cyclic garbage collector off for a bulk step of the scan (never across a yield): the
    scan allocates ~10 objects per file and no cycles, and the collector's passes over the
    growing heap cost a third of a warm 40,000-file scan. Reference counting still frees."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _File:
    __slots__ = ("path", "size", "mtime_ns", "kind")

    def __init__(self, path: str, size: int, mtime_ns: int, kind: str):
        self.path, self.size, self.mtime_ns, self.kind = path, size, mtime_ns, kind


def _iter_walk(root: str, errors: list[ScanError], csvs: list[str], files: list[_File],
               cancel: Callable[[], bool] | None = None) -> Iterator[Progress]:
    """Every candidate image under root (hidden entries skipped), iteratively with scandir,
    appended to `files`; yields Progress while listing, so the caller can stop between folders
    (closing the generator) or pass `cancel` (checked between folders: raises ScanCancelled).

    A folder reached twice (a symlink loop back to an ancestor, or two links to one folder) is
    listed once: folders are identified by (device, inode) of what they resolve to."""
    seen: dict[tuple[int, int], str] = {}
    try:
        st = os.stat(root)
        seen[(st.st_dev, st.st_ino)] = root
    except OSError:
        pass
    stack = [root]
    links: list[tuple[str, str]] = []  # (symlinked folder, the folder holding the link): listed last,
    n_dirs = 0                          # so a folder is listed under its real path when the scan has it
    while stack or links:
        if not stack:
            link, holder = links.pop()
            try:
                st = os.stat(link)
            except OSError:
                continue
            first = seen.get((st.st_dev, st.st_ino))
            if first is not None:
                target = os.path.realpath(link)
                loop = (os.path.realpath(holder) + os.sep).startswith(target + os.sep)
                what = "a symbolic link loop back to" if loop else "a symbolic link to"
                errors.append(ScanError(printable_path(link), f"skipped: {what} {printable_path(first)}, "
                                                              "which this scan lists already"))
                continue
            seen[(st.st_dev, st.st_ino)] = link
            stack.append(link)
        d = stack.pop()
        n_dirs += 1
        if n_dirs % _WALK_PROGRESS_DIRS == 0:
            if cancel is not None and cancel():
                raise ScanCancelled(f"scan of {printable_path(root)} cancelled")
            yield Progress(len(files), None, f"listing {printable_path(root)} ({len(files)} files so far)")
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
                        if entry.is_symlink():
                            links.append((entry.path, d))
                            continue
                        st = entry.stat(follow_symlinks=False)
                        ident = (st.st_dev, st.st_ino)
                        if ident not in seen:  # (a bind mount can show a folder twice)
                            seen[ident] = entry.path
                            stack.append(entry.path)
                        continue
                except OSError:
                    continue
                low = name.lower()
                if low.endswith(RASTER_SUFFIXES):
                    kind = "raster"
                elif low.endswith(DICOM_SUFFIXES):
                    kind = "dicom"
                elif low.endswith(".csv"):
                    csvs.append(entry.path)
                    continue
                else:
                    dot = low.rfind(".")
                    if dot > 0 and low[dot:] in NOT_IMAGE_SUFFIXES:
                        continue
                    kind = "maybe-dicom"  # PACS names: IM0001, 1.3.12.2.1107.5.2..., image.v2: sniffed
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


def _find_label_files(root: str, csvs: list[str]) -> list[str]:
    """Label CSVs that apply: those found in the scan, plus well-known ones in the parent."""
    found = [c for c in csvs]
    parent = os.path.dirname(root.rstrip(os.sep)) if os.path.isdir(root) else os.path.dirname(root)
    for folder in {parent, os.path.dirname(parent)} if os.path.isfile(root) else {parent}:
        try:
            for name in os.listdir(folder):
                if is_rsna_csv(name) or is_mura_csv(name) or is_rsna_labels_file(os.path.join(folder, name)):
                    found.append(os.path.join(folder, name))
        except OSError:
            pass
    return sorted(set(found))


def iter_scan(
    path: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    use_index: bool = True,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[Progress]:
    """Scan a folder or one file. Yields Progress; the last one's payload is the ScanResult.

    Stop it by closing the generator (a GUI worker's quit) or with `cancel`, a callable checked
    between folders and between files: when it returns True the scan raises ScanCancelled.
    What was read before the stop is kept in the index."""
    root = os.path.abspath(os.fspath(path))
    errors: list[ScanError] = []
    csvs: list[str] = []
    files: list[_File] = []
    if os.path.isdir(root):
        yield Progress(0, None, f"listing {printable_path(root)}")
        walker = _iter_walk(root, errors, csvs, files, cancel)
        while True:
            with _gc_paused():
                step = next(walker, None)
            if step is None:
                break
            yield step
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

        try:
            index = ScanIndex(index_db_path())
            with _gc_paused():
                cached = index.load_prefix(root)
        except IndexUnavailable as exc:
            errors.append(ScanError(str(index_db_path()), str(exc)))
            index = None
        except OSError as exc:
            errors.append(ScanError("RADVIEW_HOME", f"user data folder unusable ({exc}); scanning without the index"))
            index = None

    total = len(files)
    fresh: list[tuple[str, IndexEntry]] = []
    headers: dict[str, dict] = {}
    good: list[_File] = []
    n_read = 0
    complete = False
    try:
        for start in range(0, total, _PROGRESS_EVERY):
            if cancel is not None and cancel():
                raise ScanCancelled(f"scan of {printable_path(root)} cancelled")
            yield Progress(start, total, f"reading headers ({start}/{total})")
            with _gc_paused():
                for f in files[start:start + _PROGRESS_EVERY]:
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
        complete = True
    finally:
        if index is not None:
            try:
                index.put_many(fresh)
                if complete:
                    present = {f.path for f in files}
                    index.forget([p for p in cached if p not in present])
            except IndexUnavailable as exc:  # a cache failure never fails the scan
                errors.append(ScanError(index.path, f"scan index not updated ({exc})"))
            finally:
                index.close()
    yield Progress(total, total, "grouping studies")

    label_files = _find_label_files(root, csvs)
    explicit = os.path.abspath(os.fspath(labels)) if labels is not None else None
    if explicit is not None:
        label_files.append(explicit)
    with _gc_paused():
        studies = _group(root, good, headers, label_files, errors, explicit)
    errors.sort(key=lambda e: e.path)
    result = ScanResult(root=printable_path(root), studies=tuple(studies), errors=tuple(errors),
                        n_files=total, n_read=n_read, headers=headers)
    yield Progress(total, total, f"{len(studies)} studies, {len(errors)} errors", result)


def scan(path: str | os.PathLike, labels: str | os.PathLike | None = None, use_index: bool = True,
         cancel: Callable[[], bool] | None = None) -> ScanResult:
    """Studies under a folder (or one file); see iter_scan (raises ScanCancelled on cancel)."""
    result = None
    for p in iter_scan(path, labels=labels, use_index=use_index, cancel=cancel):
        if p.payload is not None:
            result = p.payload
    assert result is not None
    return result


def _read_entry(f: _File) -> IndexEntry:
    if f.kind == "raster":
        reason = check_raster(f.path, f.size)
        if reason != "dicom":
            return IndexEntry(f.size, f.mtime_ns, "raster", None, reason)
        # a DICOM file named .png/.jpg: read as what it is
    elif f.kind == "maybe-dicom":
        # a name that does not say (IM0001, 1.3.12.2.1107.5.2...., image.v2): the content does
        try:
            head = read_head(f.path)
        except OSError:
            return IndexEntry(f.size, f.mtime_ns, "skip", None, None)
        if sniff_dicom(head, f.size) is None:
            return IndexEntry(f.size, f.mtime_ns, "skip", None, None)
    from radview.io.dicom import read_header

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


_ID_LIKE = re.compile(r"^(?:\d{4,}|[0-9a-f]{8,}(?:-[0-9a-f]{4,})*|(?:patient|study|series|case|subject)[\w.-]*)$",
                      re.IGNORECASE)


def _class_root_dirs(root: str, good: list[_File]) -> set[str]:
    """Folders that look like class folders. Under the scanned folder: 2..50 folders holding
    images directly, every raster under root sitting directly in one of them. Deeper, in a folder
    that mixes layouts (`mixed/classes/{abd,chest}/*.png` beside MURA studies and DICOMs): a
    folder holding no images itself whose 2..50 sub-folders each hold images directly and nothing
    deeper, none named like an identifier (patient00012, a UID or hash: those are groupings,
    not classes)."""
    rasters = [f for f in good if f.kind == "raster"]
    if not rasters:
        return set()
    parents = {os.path.dirname(f.path) for f in rasters}
    if all(os.path.dirname(p) == root for p in parents):
        return parents if 2 <= len(parents) <= 50 else set()
    holders = {os.path.dirname(f.path) for f in good}  # folders holding any readable file
    by_grand: dict[str, set[str]] = defaultdict(set)
    for p in parents:
        if p != root:
            by_grand[os.path.dirname(p)].add(p)
    found: set[str] = set()
    for grand, dirs in by_grand.items():
        if grand in holders or not 2 <= len(dirs) <= 50:
            continue
        if any(_ID_LIKE.match(os.path.basename(d)) for d in dirs):
            continue
        if any(os.path.dirname(h) in dirs for h in holders):  # files below a class folder: not classes
            continue
        found |= dirs
    return found


def _group(root: str, good: list[_File], headers: dict[str, dict], label_files: list[str],
           errors: list[ScanError], explicit: str | None = None) -> list[Study]:
    mura_labels: dict[str, Label] = {}
    # RSNA boxes are in the pixels of the images they were drawn on (1024 px DICOMs, a 512 px
    # JPEG copy...): each RSNA CSV applies to the images in its folder and below, the nearest
    # one winning; an explicit `labels=` CSV applies everywhere (key '').
    rsna_scoped: dict[str, dict[str, Label]] = {}
    path_labels: dict[str, Label] = {}
    for lf in label_files:
        scope = "" if lf == explicit else os.path.dirname(lf)
        try:
            if is_rsna_csv(lf):
                rsna_scoped.setdefault(scope, {}).update(read_rsna_csv(lf))
            elif is_mura_csv(lf):
                mura_labels.update(read_mura_csv(lf))
            else:
                fmt, got = read_labels_any(lf, root if os.path.isdir(root) else os.path.dirname(root))
                if fmt == "rsna":
                    rsna_scoped.setdefault(scope, {}).update(got)
                else:
                    {"mura": mura_labels, "csv": path_labels}[fmt].update(got)
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
    dir_rsna: dict[str, dict[str, Label] | None] = {}  # parent folder -> the RSNA labels that apply

    def rsna_for(folder: str) -> dict[str, Label] | None:
        if folder not in dir_rsna:
            got = rsna_scoped.get("")
            d = folder
            while got is None:
                got = rsna_scoped.get(d)
                up = os.path.dirname(d)
                if up == d:
                    break
                d = up
            dir_rsna[folder] = got
        return dir_rsna[folder]

    for f in good:
        p = f.path
        plabel = path_labels.get(os.path.normpath(p)) if path_labels else None
        rsna_labels = rsna_for(os.path.dirname(p)) if rsna_scoped else None
        if f.kind == "dicom":
            h = headers.get(p, {})
            pid_stem = Path(p).stem
            rsna = (rsna_labels.get(pid_stem) or rsna_labels.get(str(h.get("PatientID", "")))) if rsna_labels else None
            label = plabel or rsna
            view = View(
                ref=ImageRef(p), label=label, modality=str(h.get("Modality", "")),
                body_part=str(h.get("BodyPartExamined", "")), rows=int(h.get("Rows", 0) or 0),
                columns=int(h.get("Columns", 0) or 0), series_uid=str(h.get("SeriesInstanceUID", "")),
                uid=str(h.get("SOPInstanceUID", "")),
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
        rsna = rsna_labels.get(Path(p).stem) if rsna_labels else None
        if rsna is not None:  # an RSNA image saved as PNG/JPEG: <patientId>.jpg, boxes in its pixels
            label = plabel or rsna
            singles.append(Study(key=p, patient=Path(p).stem, label=label,
                                 views=(View(ref=ImageRef(p), label=label),), layout="rsna"))
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
    return assign_spaces(studies)  # label spaces (radview.spaces), owned by io/labels.py


def _int(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0
