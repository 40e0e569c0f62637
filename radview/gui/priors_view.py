"""Priors side by side: the current study left, the same patient's most recent prior right,
rows in PA/LAT order (radview.priors.hang), in a grid of two columns.

`hanging_study(current, studies, headers)` builds the Study the viewer shows: its views are the
hanging's rows, left then right; a side without a view of that projection is a placeholder view
(empty path: the canvas says so). The study key is 'hanging:<current>|<prior>' (never written to
the store: the window does not announce it as the study being labelled)."""
from __future__ import annotations

from dataclasses import replace

from radview.types import ImageRef, Study, View

HANGING_PREFIX = "hanging:"


def is_hanging(study: Study | None) -> bool:
    return study is not None and study.key.startswith(HANGING_PREFIX)


def _header_lookup(headers: dict):
    def header(key: str):
        return headers.get(key.split("#", 1)[0])
    return header


def find_priors(current: Study, studies, headers: dict | None = None) -> list:
    """radview.priors.Prior list for the current study, most recent prior first."""
    from radview.priors import priors_of, study_info

    header = _header_lookup(headers or {})
    infos = [study_info(s, header=header) for s in studies]
    cur = next((i for i in infos if i.key == current.key), None) or study_info(current, header=header)
    return priors_of(cur, infos)


def hanging_study(current: Study, prior: Study, headers: dict | None = None) -> tuple[Study, tuple]:
    """(the side-by-side Study, its hanging rows)."""
    from radview.priors import hang, study_info

    header = _header_lookup(headers or {})
    h = hang(study_info(current, header=header), study_info(prior, header=header))
    views: list[View] = []
    for left, right in h.rows:
        for side in (left, right):
            views.append(side.item if side is not None else View(ref=ImageRef("")))
    date = h.prior.date if h.prior is not None else ""
    shown = replace(current, key=f"{HANGING_PREFIX}{current.key}|{prior.key}", views=tuple(views),
                    layout="hanging",
                    description=f"{current.description or 'current'}  |  prior {date or prior.key}")
    return shown, h.rows


class PriorsMixin:
    """Mixed into MainWindow: the 'compare_prior' action (Ctrl+Shift+P)."""

    compare_base: Study | None = None

    def _set_compare_checked(self, on: bool) -> None:
        act = self.actions["compare_prior"]
        if act.isChecked() != on:
            act.blockSignals(True)
            act.setChecked(on)
            act.blockSignals(False)

    def compare_prior(self, on: bool = True) -> bool:
        """Show the current study beside its most recent prior (on), or alone again (off).
        False (and a status message) when there is no prior."""
        current = self.viewer.study
        if not on:
            base = self.compare_base
            self.compare_base = None
            self.viewer.columns = None
            self._set_compare_checked(False)
            if base is not None and is_hanging(current):
                self.show_study(base, 0)
            return True
        if current is None or self.scan_result is None:
            self._set_compare_checked(False)
            return False
        if is_hanging(current):
            current = self.compare_base
        headers = getattr(self.scan_result, "headers", None) or {}
        ps = [p for p in find_priors(current, self.scan_result.studies, headers) if p.relation != "later"]
        if not ps:
            self._set_compare_checked(False)
            self.status_label.setText(f"No prior study of patient {current.patient or '?'} in this folder")
            return False
        prior = ps[0]
        shown, _rows = hanging_study(current, prior.study.item, headers)
        self.compare_base = current
        self.compare_prior_info = prior
        self.viewer.columns = 2
        self.viewer.set_grid_mode(True)
        self.actions["grid_layout"].setChecked(True)
        self.viewer.set_study(shown, 0)
        self._set_compare_checked(True)
        days = f", {prior.days} days before" if prior.days is not None else ""
        self.status_label.setText(f"Current (left) and prior {prior.study.date or ''}{days} (right)")
        return True

    def _hanging_annotations(self, index: int, _frame) -> None:
        st = self.viewer.study
        c = self.viewer.canvas_of(index)
        if not is_hanging(st) or c is None:
            return
        p = getattr(self, "compare_prior_info", None)
        tag = "CURRENT" if index % 2 == 0 else (f"PRIOR {p.study.date}" if p is not None and p.study.date
                                                 else "PRIOR")
        c.annotations["top_left"] = [tag] + [x for x in c.annotations.get("top_left", []) if x != tag]
        c.viewport().update()

    def _study_changed_for_priors(self, study) -> None:
        if not is_hanging(study) and self.viewer.columns:
            self.viewer.columns = None
            self.compare_base = None
            self._set_compare_checked(False)
