"""Label export and import, and de-identification (no Qt, no torch).

    from radview.export import export_labels, import_labels
    res = export_labels(store, "rsna", "out.csv", deidentify=True)   # -> ExportResult
    res = import_labels(store, "stage_2_train_labels.csv", "rsna", root="images/")  # -> ImportResult
    for prog in iter_export(store, "coco", "out.json", space="rsna-pneumonia", folder="/data"):
        ...                                   # Progress; the last one's payload: ExportResult

Formats: 'mura' (CSV), 'rsna' (CSV), 'coco' (JSON), 'json' (radview's full export with the
event history); imports also take 'csv' (generic path,label). See writers.py / readers.py.
De-identification: radview.export.deid.Deidentifier (PS3.15 Basic Profile, keyed hash).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from radview.export.deid import Deidentifier
from radview.export.readers import READERS
from radview.export.writers import (ITER_WRITERS, WRITERS, ExportError, Selection, selected_values,
                                    write_atomic)
from radview.io.labels import LabelFileError
from radview.store import LabelStore
from radview.types import Progress

EXPORT_FORMATS = tuple(WRITERS)
IMPORT_FORMATS = tuple(READERS)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    rows: int                      # items (mura, coco, json) or CSV rows (rsna)
    deidentified: bool = False
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    space: str | None = None       # the label space exported (None: all)
    folder: str | None = None      # the folder exported (None: everywhere)


@dataclass(frozen=True)
class ImportResult:
    path: Path
    format: str
    labels: int                    # source labels written
    events: int = 0                # correction events appended (json)
    matched: int | None = None     # labels that landed on items the store already knew


def iter_export(store: LabelStore, fmt: str, out: str | os.PathLike, *,
                space: str | None = None, folder: str | os.PathLike | None = None,
                deidentify: bool = False, root: str | os.PathLike | None = None,
                deidentifier: Deidentifier | None = None) -> Iterator[Progress]:
    """Write the store's current labels (corrections win) as fmt to out, yielding Progress
    (the GUI's export dialog runs it in a worker and may stop between yields: nothing is
    written then); the last Progress carries the ExportResult as payload. space: only labels
    of that label space; folder: only items under that folder. deidentify replaces identifiers
    consistently (the installation's key unless a deidentifier is given); root makes image
    paths relative (COCO file_name)."""
    if fmt not in WRITERS:
        raise ValueError(f"export format must be one of {EXPORT_FORMATS}, not {fmt!r}")
    sel = Selection(space or None, os.fspath(folder) if folder else None)
    deid = None
    if deidentify:
        deid = deidentifier or Deidentifier.for_home()
        deid.keep_names(set(selected_values(store, sel)))  # class-name folders are labels
    gen = ITER_WRITERS[fmt](store, deid, os.fspath(root) if root else None, sel)
    while True:
        try:
            yield next(gen)
        except StopIteration as stop:
            text, rows, skipped = stop.value
            break
    path = write_atomic(out, text)
    res = ExportResult(path, fmt, rows, deid is not None, skipped, sel.space, sel.folder)
    yield Progress(rows, rows, f"wrote {rows} to {path}", res)


def export_labels(store: LabelStore, fmt: str, out: str | os.PathLike, *,
                  deidentify: bool = False, root: str | os.PathLike | None = None,
                  deidentifier: Deidentifier | None = None, space: str | None = None,
                  folder: str | os.PathLike | None = None) -> ExportResult:
    """iter_export drained: returns the ExportResult."""
    last = None
    for last in iter_export(store, fmt, out, space=space, folder=folder, deidentify=deidentify,
                            root=root, deidentifier=deidentifier):
        pass
    return last.payload


def import_labels(store: LabelStore, path: str | os.PathLike, fmt: str, *,
                  root: str | os.PathLike | None = None) -> ImportResult:
    """Read a label file into the store as source labels ('json' also appends its history).
    Raises LabelFileError (naming the file, line and reason) for a malformed file."""
    if fmt not in READERS:
        raise ValueError(f"import format must be one of {IMPORT_FORMATS}, not {fmt!r}")
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise LabelFileError(p, "no such file")
    counts = READERS[fmt](store, p, os.fspath(root) if root else None)
    return ImportResult(Path(p), fmt, counts.get("labels", 0), counts.get("events", 0),
                        counts.get("matched"))


__all__ = ["export_labels", "iter_export", "Selection", "import_labels", "ExportResult", "ImportResult", "ExportError",
           "LabelFileError", "Deidentifier", "EXPORT_FORMATS", "IMPORT_FORMATS", "write_atomic"]
