"""The local cache of retrieved studies: `<user data>/pacs-cache/<StudyInstanceUID>/` holds one
file per instance (`<SOPInstanceUID>.dcm`), so a cached study opens like any folder
(radview.io.studies.scan). Each study folder carries `.radview-study.json` (hidden: the scan
skips it) with its state:

- 'receiving' while a retrieve runs (a crash leaves it so: shown as partial),
- 'partial' when the retrieve ended short (error, cancel, fewer instances than the PACS said),
  with `missing` = expected - received when the expected count is known,
- 'complete' only when the retrieve finished without error and every expected instance is here.

Files are written to a `.part` name and renamed, so a half-written instance never counts.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from radview.net.errors import NetError

STATE_FILE = ".radview-study.json"
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def _safe_uid(uid: str) -> str:
    u = str(uid).strip().rstrip("\x00")
    if not u or len(u) > 64 or not _UID_RE.match(u):
        raise NetError("cache", f"{uid!r} is not a DICOM UID", "config")
    return u


@dataclass(frozen=True)
class CachedStudy:
    study_uid: str
    path: str
    state: str                       # 'complete' | 'partial' | 'receiving'
    received: int = 0
    expected: int | None = None
    error: str = ""
    node: str = ""
    time: str = ""

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    @property
    def missing(self) -> int | None:
        if self.expected is None:
            return None
        return max(0, self.expected - self.received)

    def describe(self) -> str:
        if self.complete:
            return f"complete ({self.received} instances)"
        miss = self.missing
        what = f"partial: {self.received} of {self.expected} instances, {miss} missing" \
            if miss is not None else f"partial: {self.received} instances, total unknown"
        if self.state == "receiving":
            what += " (retrieve interrupted or still running)"
        return what + (f" ({self.error})" if self.error else "")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["missing"] = self.missing
        return d


class PacsCache:
    def __init__(self, root: str | os.PathLike | None = None) -> None:
        if root is None:
            from radview.paths import user_home

            root = user_home() / "pacs-cache"
        self.root = Path(root)

    def study_dir(self, study_uid: str) -> Path:
        return self.root / _safe_uid(study_uid)

    # ------------------------------------------------------------------ writing
    def begin(self, study_uid: str, expected: int | None, node: str = "") -> Path:
        d = self.study_dir(study_uid)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NetError(str(d), f"cannot create the cache folder ({exc})", "config") from exc
        prev = self.status(study_uid)
        self._write_state(d, CachedStudy(study_uid, str(d), "receiving", prev.received if prev else 0,
                                         expected, "", node, _now()))
        return d

    def add_bytes(self, study_uid: str, sop_uid: str, data: bytes) -> Path:
        """Store one instance (a complete DICOM file's bytes, with its preamble and meta)."""
        d = self.study_dir(study_uid)
        d.mkdir(parents=True, exist_ok=True)
        final = d / f"{_safe_uid(sop_uid)}.dcm"
        tmp = d / f".{final.name}.part"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, final)
        return final

    def add_dataset(self, ds) -> Path:
        """Store one pydicom Dataset (file meta added where missing)."""
        from io import BytesIO

        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian

        if not getattr(ds, "file_meta", None) or "TransferSyntaxUID" not in ds.file_meta:
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return self.add_bytes(str(ds.StudyInstanceUID), str(ds.SOPInstanceUID), buf.getvalue())

    def finish(self, study_uid: str, expected: int | None, error: str = "",
               node: str = "") -> CachedStudy:
        d = self.study_dir(study_uid)
        received = self.count(study_uid)
        complete = not error and (expected is None or received >= expected)
        if not error and expected is not None and received < expected:
            error = f"{expected - received} of {expected} instances did not arrive"
        st = CachedStudy(study_uid, str(d), "complete" if complete else "partial", received,
                         expected, error, node, _now())
        self._write_state(d, st)
        return st

    # ------------------------------------------------------------------ reading
    def count(self, study_uid: str) -> int:
        d = self.study_dir(study_uid)
        try:
            return sum(1 for e in os.scandir(d) if e.name.endswith(".dcm") and not e.name.startswith("."))
        except FileNotFoundError:
            return 0

    def status(self, study_uid: str) -> CachedStudy | None:
        d = self.study_dir(study_uid)
        f = d / STATE_FILE
        if not d.is_dir():
            return None
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            data.pop("missing", None)
            st = CachedStudy(**data)
        except (OSError, ValueError, TypeError):
            # files without a state: we cannot know they are all there
            return CachedStudy(study_uid, str(d), "partial", self.count(study_uid), None,
                               "no retrieve record")
        return st if st.state != "receiving" else CachedStudy(
            st.study_uid, st.path, "receiving", self.count(study_uid), st.expected, st.error,
            st.node, st.time)

    def studies(self) -> list[CachedStudy]:
        if not self.root.is_dir():
            return []
        out = []
        for e in sorted(os.scandir(self.root), key=lambda e: e.name):
            if e.is_dir() and _UID_RE.match(e.name):
                st = self.status(e.name)
                if st is not None:
                    out.append(st)
        return out

    def _write_state(self, d: Path, st: CachedStudy) -> None:
        tmp = d / (STATE_FILE + ".part")
        tmp.write_text(json.dumps(st.as_dict(), indent=1), encoding="utf-8")
        os.replace(tmp, d / STATE_FILE)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
