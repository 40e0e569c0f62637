"""The study browser's rows (Qt-free helpers of study_browser.py): the tree's nodes and what
the header-derived columns show (patient, date, accession, modality, images; each study's
priors, radview.priors)."""
from __future__ import annotations

from radview.types import Prediction, Study, StudyPrediction, View


class Node:
    __slots__ = ("kind", "parent", "children", "row", "name", "study", "view", "pred", "corrected", "label")

    def __init__(self, kind: str, parent: Node | None, name: str = "", study: Study | None = None,
                 view: View | None = None):
        self.kind, self.parent, self.name, self.study, self.view = kind, parent, name, study, view
        self.children: list[Node] = []
        self.row = 0
        self.pred: Prediction | StudyPrediction | None = None
        self.corrected: str = ""
        self.label = None  # the store's current label (corrections win) once known: a Label or False

    def add(self, child: Node) -> Node:
        child.row = len(self.children)
        self.children.append(child)
        return child


def _label_text(label) -> str:
    if label is None:
        return ""
    if label.value:
        return label.value
    return f"{len(label.boxes)} box(es)" if label.boxes else ""


def _domain_text(pred) -> str:
    if pred is None:
        return ""
    return "in" if pred.in_domain else "OUT"


def _date(value) -> str:
    """DICOM DA 'YYYYMMDD' -> 'YYYY-MM-DD' (sorts as text); anything else as it is."""
    v = str(value or "").strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdigit() else v


def study_info(st: Study, headers: dict) -> tuple:
    """(patient name, patient ID, study date, accession, modality, number of images) of a study,
    from its views' headers (the first that has each)."""
    hs = [headers.get(v.ref.path) or {} for v in st.views]

    def first(kw: str) -> str:
        return next((str(h[kw]).strip() for h in hs if h.get(kw) not in (None, "")), "")

    name = first("PatientName").replace("^", " ").strip()
    mods = sorted({v.modality for v in st.views if v.modality} or ({first("Modality")} - {""}))
    return (name, first("PatientID"), _date(first("StudyDate")), first("AccessionNumber"),
            "/".join(mods), len(st.views))


class LazyPriors:
    """study key -> radview.priors.Prior list, made per patient on first use: the studies are
    grouped by PatientID at once (cheap), a patient's priors are paired when one of the patient's
    studies is painted or shown (10,000 studies fill the browser at the cost of a few dozen)."""

    def __init__(self, studies, headers: dict):
        self.headers = headers
        self.groups: dict[str, list[Study]] = {}
        self.patient_of: dict[str, str] = {}
        for st in studies:
            pid = self._patient(st)
            self.patient_of[st.key] = pid
            if pid:
                self.groups.setdefault(pid, []).append(st)
        self._done: dict[str, dict[str, list]] = {}

    def _patient(self, st: Study) -> str:  # what radview.priors.study_info takes as the PatientID
        if st.patient:
            return str(st.patient).strip()
        h = next((hd for hd in (self.headers.get(v.ref.path) for v in st.views) if hd), None) or {}
        return str(h.get("PatientID") or "").strip()

    def _header(self, key: str):
        return self.headers.get(key.split("#", 1)[0])

    def get(self, key: str, default=()) -> list:
        pid = self.patient_of.get(key, "")
        group = self.groups.get(pid, ())
        if len(group) < 2:  # a patient seen once has no prior
            return list(default)
        done = self._done.get(pid)
        if done is None:
            from radview.priors import priors_index, study_info

            done = self._done[pid] = priors_index(study_info(st, header=self._header, views=False)
                                                  for st in group)
        return done.get(key, list(default))


def study_priors(studies, headers: dict) -> dict[str, list]:
    """study key -> radview.priors.Prior list (the same patient's other studies, earlier first),
    from the studies and their views' headers (StudyDate, PatientID, IssuerOfPatientID ...)."""
    studies = list(studies)
    lazy = LazyPriors(studies, headers)
    return {st.key: lazy.get(st.key, []) for st in studies}
