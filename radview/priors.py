"""Priors: the same patient's other studies, and how to hang them beside the current one.

Pure Python, no Qt. Works on light records (StudyInfo / ViewInfo) that `study_info()` builds from
radview.types.Study (plus, where the scan did not keep them, header values looked up per view:
StudyDate, StudyTime, ViewPosition, ImageLaterality, IssuerOfPatientID).

- Pairing: same PatientID (exact, after trimming; an empty ID never pairs), and the same
  IssuerOfPatientID where both studies name one; a study never pairs with itself.
- Order: priors (earlier) first, the most recent first; then same-day, later and undated ones.
- Hanging: current study left, prior right; rows in PA/LAT order (frontal PA, AP, then
  lateral, then obliques, then the rest; right before left; instance number), each row pairing
  views of the same projection where both studies have one.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class ViewInfo:
    key: str  # the view's image key (ImageRef.key)
    view_position: str = ""  # DICOM ViewPosition: PA, AP, LL, RL, LATERAL, CC, MLO, ...
    laterality: str = ""  # ImageLaterality / Laterality: R, L, B, U
    instance: int = 0
    item: Any = field(default=None, compare=False)  # the original view object


@dataclass(frozen=True)
class StudyInfo:
    key: str
    patient_id: str
    date: str = ""  # YYYYMMDD, '' unknown
    time: str = ""  # HHMMSS, '' unknown
    issuer: str = ""  # IssuerOfPatientID
    description: str = ""
    modality: str = ""
    body_part: str = ""
    accession: str = ""
    views: tuple[ViewInfo, ...] = ()
    item: Any = field(default=None, compare=False)  # the original study object


@dataclass(frozen=True)
class Prior:
    study: StudyInfo
    relation: str  # 'prior' | 'same day' | 'later' | 'undated'
    days: int | None  # days before the current study (negative: after); None undated


@dataclass(frozen=True)
class Hanging:
    """Rows of (current view, prior view); None where a side has no view of that projection."""

    current: StudyInfo
    prior: StudyInfo | None
    rows: tuple[tuple[ViewInfo | None, ViewInfo | None], ...]

    @property
    def columns(self) -> int:
        return 2 if self.prior is not None else 1


# ---------------------------------------------------------------- normalising header values


def norm_date(value: Any) -> str:
    """DICOM DA (YYYYMMDD; also the old YYYY.MM.DD and ISO YYYY-MM-DD) -> YYYYMMDD, '' if invalid."""
    s = re.sub(r"[.\-/ ]", "", str(value or "").strip())
    if not re.fullmatch(r"\d{8}", s):
        return ""
    y, m, d = int(s[:4]), int(s[4:6]), int(s[6:])
    return s if (1800 <= y <= 2999 and 1 <= m <= 12 and 1 <= d <= 31) else ""


def norm_time(value: Any) -> str:
    s = str(value or "").strip().replace(":", "")
    m = re.match(r"\d{2,6}", s)
    return (m.group(0) + "000000")[:6] if m else ""


@functools.lru_cache(maxsize=65536)
def _ordinal(d: str) -> int:
    return date(int(d[:4]), int(d[4:6]), int(d[6:])).toordinal()


def _days(a: str, b: str) -> int:
    return _ordinal(a) - _ordinal(b)


def _first(*values: Any) -> str:
    for v in values:
        if isinstance(v, (list, tuple)):
            v = v[0] if v else ""
        if v not in (None, ""):
            return str(v).strip()
    return ""


def study_info(study: Any, header: Callable[[str], Mapping[str, Any] | None] | None = None,
               views: bool = True) -> StudyInfo:
    """A StudyInfo from a radview.types.Study (or any object with key / patient / views).
    `header(view_key)` may supply header values the study does not carry (a Frame.meta or the
    scan's header dict): StudyDate, StudyTime, ViewPosition, ImageLaterality, ...
    views=False: the study alone (patient, date, issuer ...: what pairing needs), read from its
    first view with a header; several times faster for a browser of 10,000 studies."""
    if not views:
        return _pairing_info(study, header)
    views = []
    hdrs = []
    for v in getattr(study, "views", ()) or ():
        ref = getattr(v, "ref", None)
        key = ref.key if ref is not None and hasattr(ref, "key") else str(getattr(v, "key", v))
        h = (header(key) if header else None) or {}
        hdrs.append(h)
        views.append(ViewInfo(
            key=key,
            view_position=_first(getattr(v, "view_position", ""), h.get("ViewPosition")).upper(),
            laterality=_first(getattr(v, "laterality", ""), h.get("ImageLaterality"), h.get("Laterality")).upper(),
            instance=int(_first(getattr(v, "instance", 0) or None, h.get("InstanceNumber"), 0) or 0),
            item=v))
    h0 = next((h for h in hdrs if h), {})
    return StudyInfo(
        key=str(getattr(study, "key", "")),
        patient_id=_first(getattr(study, "patient_id", ""), getattr(study, "patient", ""), h0.get("PatientID")),
        date=norm_date(_first(getattr(study, "date", ""), getattr(study, "study_date", ""), h0.get("StudyDate"))),
        time=norm_time(_first(getattr(study, "time", ""), h0.get("StudyTime"))),
        issuer=_first(getattr(study, "issuer", ""), h0.get("IssuerOfPatientID")),
        description=_first(getattr(study, "description", ""), h0.get("StudyDescription")),
        modality=_first(getattr(study, "modality", ""), *(getattr(v, "modality", "") for v in
                                                          getattr(study, "views", ()) or ()),
                        h0.get("Modality")).upper(),
        body_part=_first(getattr(study, "study_type", ""), h0.get("BodyPartExamined")),
        accession=_first(getattr(study, "accession", ""), h0.get("AccessionNumber")),
        views=tuple(views), item=study)


def _pairing_info(study: Any, header) -> StudyInfo:
    """study_info(views=False): the fields pairing and describe() read, the same precedence
    (the study's own attributes, then its first view's header), without the per-view records."""
    h0: Mapping[str, Any] = {}
    if header is not None:
        for v in getattr(study, "views", ()) or ():
            ref = getattr(v, "ref", None)
            h = header(ref.key if ref is not None else str(v))
            if h:
                h0 = h
                break
    return StudyInfo(
        key=str(getattr(study, "key", "")),
        patient_id=_first(getattr(study, "patient_id", ""), getattr(study, "patient", ""), h0.get("PatientID")),
        date=norm_date(_first(getattr(study, "date", ""), h0.get("StudyDate"))),
        time=norm_time(h0.get("StudyTime")),
        issuer=_first(getattr(study, "issuer", ""), h0.get("IssuerOfPatientID")),
        description=_first(getattr(study, "description", ""), h0.get("StudyDescription")),
        body_part=_first(getattr(study, "study_type", ""), h0.get("BodyPartExamined")),
        item=study)


# ---------------------------------------------------------------- pairing


def same_patient(a: StudyInfo, b: StudyInfo) -> bool:
    if not a.patient_id.strip() or a.patient_id.strip() != b.patient_id.strip():
        return False
    return not (a.issuer and b.issuer and a.issuer != b.issuer)


def _order_key(p: Prior) -> tuple:
    rank = {"prior": 0, "same day": 1, "later": 2, "undated": 3}[p.relation]
    d = abs(p.days) if p.days is not None else 0
    t = int(p.study.time or 0)
    # priors: most recent first (fewest days back, latest time); later ones: soonest first
    return rank, d, -t if p.relation == "prior" else t, p.study.key


def priors_of(current: StudyInfo, studies: Iterable[StudyInfo]) -> list[Prior]:
    """The same patient's other studies, priors first (most recent first)."""
    out = []
    for s in studies:
        if s.key == current.key or not same_patient(current, s):
            continue
        if current.date and s.date:
            days = _days(current.date, s.date)
            if days == 0 and current.time and s.time and s.time != current.time:
                relation = "prior" if s.time < current.time else "later"
            else:
                relation = "prior" if days > 0 else "later" if days < 0 else "same day"
        else:
            days, relation = None, "undated"
        out.append(Prior(s, relation, days))
    return sorted(out, key=_order_key)


def by_patient(studies: Iterable[StudyInfo]) -> dict[str, list[StudyInfo]]:
    """PatientID -> the patient's studies, newest first (undated last). Studies without a
    PatientID are left out: they pair with nobody."""
    groups: dict[str, list[StudyInfo]] = {}
    for s in studies:
        if s.patient_id.strip():
            groups.setdefault(s.patient_id.strip(), []).append(s)
    for g in groups.values():
        g.sort(key=lambda s: (s.date == "", "" if not s.date else str(99999999 - int(s.date)),
                              "" if not s.time else str(999999 - int(s.time)), s.key))
    return groups


# ---------------------------------------------------------------- hanging

_FRONTAL = ("PA", "AP")
_LATERAL = ("LL", "RL", "LAT", "LATERAL", "LLD", "RLD", "ML", "LM")
_OBLIQUE = ("LAO", "RAO", "LPO", "RPO", "RLO", "LLO", "OBL", "OBLIQUE", "MLO", "LMO", "XCCL", "XCCM")


def projection(view: ViewInfo) -> str:
    """'frontal' | 'lateral' | 'oblique' | the position itself (CC, ...) | '' unknown."""
    vp = view.view_position.upper()
    if vp in _FRONTAL:
        return "frontal"
    if vp in _LATERAL:
        return "lateral"
    if vp in _OBLIQUE:
        return "oblique"
    return vp


def _view_rank(v: ViewInfo) -> tuple:
    vp = v.view_position.upper()
    if vp in _FRONTAL:
        group, within = 0, _FRONTAL.index(vp)
    elif vp in _LATERAL:
        group, within = 1, _LATERAL.index(vp)
    elif vp in _OBLIQUE:
        group, within = 2, _OBLIQUE.index(vp)
    elif vp:
        group, within = 3, 0
    else:
        group, within = 4, 0
    side = {"R": 0, "L": 1}.get(v.laterality, 2)
    return group, vp if group == 3 else "", within, side, v.instance, v.key


def hanging_order(views: Iterable[ViewInfo]) -> list[ViewInfo]:
    """Views in PA/LAT order: frontal (PA before AP), lateral, oblique, other, unknown; right
    before left; then instance number."""
    return sorted(views, key=_view_rank)


def hang(current: StudyInfo, prior: StudyInfo | None = None) -> Hanging:
    """Current study left, prior right, one row per projection (PA/LAT order). A view pairs with
    the prior's first unused view of the same projection and laterality (then projection only);
    the rest get rows of their own, None on the other side."""
    cur = hanging_order(current.views)
    if prior is None:
        return Hanging(current, None, tuple((v, None) for v in cur))
    left = list(hanging_order(prior.views))
    rows: list[tuple[ViewInfo | None, ViewInfo | None]] = []
    for v in cur:
        match = next((p for p in left if projection(p) == projection(v) and p.laterality == v.laterality
                      and projection(v)), None)
        if match is None:
            match = next((p for p in left if projection(p) == projection(v) and projection(v)), None)
        if match is None and not projection(v):
            match = next((p for p in left if not projection(p)), None)
        if match is not None:
            left.remove(match)
        rows.append((v, match))
    rows.extend((None, p) for p in left)
    rows.sort(key=lambda r: _view_rank(r[0] or r[1]))  # type: ignore[arg-type]
    return Hanging(current, prior, tuple(rows))


# ---------------------------------------------------------------- priors of every study (browser)


def priors_index(studies: Iterable[StudyInfo]) -> dict[str, list[Prior]]:
    """study key -> its priors (priors_of: the same patient's other studies, earlier ones
    first, most recent first). Grouped by PatientID first: 10,000 studies cost one pass plus
    the pairs within each patient."""
    groups: dict[str, list[StudyInfo]] = {}
    out: dict[str, list[Prior]] = {}
    for s in studies:
        out[s.key] = []
        if s.patient_id.strip():
            groups.setdefault(s.patient_id.strip(), []).append(s)
    for group in groups.values():
        if len(group) > 1:
            for s in group:
                out[s.key] = priors_of(s, group)
    return out


def earlier(priors: Iterable[Prior]) -> list[Prior]:
    """The priors a comparison may use: earlier and same-day studies, undated ones last (never
    a later study: it is not a prior)."""
    return [p for p in priors if p.relation != "later"]


def step_prior(priors: list[Prior], key: str | None, step: int) -> Prior | None:
    """The prior `step` places from the one with this study key: +1 older, -1 newer (priors
    are most recent first); None past either end or when the list is empty. key None: the
    most recent."""
    if not priors:
        return None
    keys = [p.study.key for p in priors]
    if key not in keys:
        return priors[0]
    i = keys.index(key) + step
    return priors[i] if 0 <= i < len(priors) else None


def describe(prior: Prior) -> str:
    """One line for a picker: '2023-01-05 · CHEST PA · 391 days before'."""
    d = prior.study.date
    day = f"{d[:4]}-{d[4:6]}-{d[6:]}" if d else "undated"
    if prior.days is None:
        when = prior.relation
    elif prior.days == 0:
        when = "same day" + (" (earlier)" if prior.relation == "prior" else "")
    elif prior.days > 0:
        when = f"{prior.days} day{'s' if prior.days != 1 else ''} before"
    else:
        when = f"{-prior.days} day{'s' if prior.days != -1 else ''} after"
    what = prior.study.description or prior.study.body_part or prior.study.key.rsplit("/", 1)[-1]
    return " · ".join(x for x in (day, what, when) if x)
