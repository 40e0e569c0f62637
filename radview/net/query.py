"""What a C-FIND / QIDO-RS query asks for (StudyQuery) and what comes back (StudyRecord,
PatientRecord). Pure data + conversions to a pydicom identifier and to QIDO parameters."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable

_DATE_RE = re.compile(r"^\d{8}$")


def _date(value: str, what: str) -> str:
    v = value.replace("-", "").strip()
    if v and not _DATE_RE.match(v):
        from radview.net.errors import NetError

        raise NetError("query", f"{what} {value!r} is not a date (YYYYMMDD or YYYY-MM-DD)", "config")
    return v


def parse_date_range(text: str) -> tuple[str, str]:
    """'20240101-20240131', '2024-01-01..2024-01-31', '20240101-' or '20240101' -> (from, to)."""
    t = text.strip()
    if ".." in t:
        a, b = t.split("..", 1)
    elif re.match(r"^\d{8}-\d{0,8}$|^-\d{8}$", t):
        a, b = t.split("-", 1)
    else:
        a = b = t
    return _date(a, "date"), _date(b, "date")


@dataclass(frozen=True)
class StudyQuery:
    """Filters (empty = any). Names and ids may use DICOM wildcards (* and ?).
    date_from/date_to: YYYYMMDD (either may be empty for an open range).
    body_part: matched at series level (BodyPartExamined is a series attribute)."""

    patient_name: str = ""
    patient_id: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    accession: str = ""
    body_part: str = ""
    study_uid: str = ""
    description: str = ""

    def date_range(self) -> str:
        a, b = _date(self.date_from, "from date"), _date(self.date_to, "to date")
        if not a and not b:
            return ""
        if a == b:
            return a
        return f"{a}-{b}"

    def filters(self, level: str = "STUDY") -> dict[str, str]:
        """The one filter model: the matching keys of a `level` query (DICOM keyword -> value,
        '' = any), in the order sent. identifier() renders it for C-FIND, qido_params() for QIDO-RS."""
        f = {"PatientName": self.patient_name, "PatientID": self.patient_id}
        if level == "PATIENT":
            return f
        f.update(StudyInstanceUID=self.study_uid, AccessionNumber=self.accession,
                 StudyDescription=self.description, StudyDate=self.date_range())
        if level == "SERIES":
            f.update(Modality=self.modality, BodyPartExamined=self.body_part)
        else:
            f["ModalitiesInStudy"] = self.modality
        return f

    def identifier(self, level: str = "STUDY"):
        """The C-FIND identifier (Study Root): every filter (an empty one is a return key) plus
        the return keys radview shows."""
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.QueryRetrieveLevel = level
        for keyword, value in {**self.filters(level), **_return_keys(level)}.items():
            setattr(ds, keyword, value)
        return ds

    def qido_params(self, level: str = "STUDY") -> dict[str, str]:
        """The QIDO-RS search filters: the filters that are set."""
        return {keyword: value for keyword, value in self.filters(level).items() if value}


#: C-FIND return keys (asked for, not matched) beside the filters, by level
_PATIENT_RETURNS = {"PatientBirthDate": "", "PatientSex": "", "NumberOfPatientRelatedStudies": None}
_STUDY_RETURNS = {"StudyTime": "", "StudyID": "", "NumberOfStudyRelatedSeries": None,
                  "NumberOfStudyRelatedInstances": None}


def _return_keys(level: str) -> dict[str, Any]:
    if level == "PATIENT":
        return _PATIENT_RETURNS
    if level == "SERIES":
        return {**_STUDY_RETURNS, "SeriesInstanceUID": ""}
    return _STUDY_RETURNS


def _s(ds: Any, kw: str) -> str:
    v = ds.get(kw, "") if ds is not None else ""
    if v is None:
        return ""
    from pydicom.multival import MultiValue

    if isinstance(v, MultiValue):
        return "\\".join(str(x) for x in v)
    return str(v)


def _i(ds: Any, kw: str) -> int | None:
    v = ds.get(kw) if ds is not None else None
    try:
        return int(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StudyRecord:
    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    description: str = ""
    modalities: str = ""
    n_series: int | None = None
    n_instances: int | None = None
    body_parts: str = ""

    @classmethod
    def from_dataset(cls, ds: Any) -> "StudyRecord":
        return cls(study_uid=_s(ds, "StudyInstanceUID"), patient_id=_s(ds, "PatientID"),
                   patient_name=_s(ds, "PatientName"), study_date=_s(ds, "StudyDate"),
                   study_time=_s(ds, "StudyTime"), accession=_s(ds, "AccessionNumber"),
                   description=_s(ds, "StudyDescription"), modalities=_s(ds, "ModalitiesInStudy"),
                   n_series=_i(ds, "NumberOfStudyRelatedSeries"),
                   n_instances=_i(ds, "NumberOfStudyRelatedInstances"))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["StudyInstanceUID"] = d.pop("study_uid")
        return d


@dataclass(frozen=True)
class PatientRecord:
    patient_id: str
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    n_studies: int | None = None

    @classmethod
    def from_dataset(cls, ds: Any) -> "PatientRecord":
        return cls(_s(ds, "PatientID"), _s(ds, "PatientName"), _s(ds, "PatientBirthDate"),
                   _s(ds, "PatientSex"), _i(ds, "NumberOfPatientRelatedStudies"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_from_json(obj: dict) -> Any:
    """A DICOM JSON (QIDO) object -> pydicom Dataset."""
    from pydicom.dataset import Dataset

    return Dataset.from_json(obj)


def with_body_parts(records: Iterable[StudyRecord], series: Iterable[Any]) -> list[StudyRecord]:
    """The studies that have a series among `series` (the datasets a series-level query with the
    body-part filter answered), each with the body parts of its matching series."""
    parts: dict[str, set[str]] = {}
    for ds in series:
        parts.setdefault(str(ds.get("StudyInstanceUID", "")), set()).add(
            str(ds.get("BodyPartExamined", "") or ""))
    return [replace(r, body_parts="\\".join(sorted(parts[r.study_uid])))
            for r in records if r.study_uid in parts]


def newest_first(records: Iterable[StudyRecord]) -> list[StudyRecord]:
    return sorted(records, key=lambda r: (r.study_date, r.study_time, r.study_uid), reverse=True)
