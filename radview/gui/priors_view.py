"""Priors side by side: the current study left, one of the same patient's priors right (the
most recent first; a picker and PgDown / PgUp choose among them), rows in PA/LAT order
(radview.priors.hang), in a grid of two columns; W/L, zoom and pan linked on request (Ctrl+L,
off by default: radview.gui.view_link, the groups in the view state).

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
    """Mixed into MainWindow: the 'compare_prior' action (Ctrl+Shift+P), the priors bar (the
    picker, older / newer, link), the browser's 'open as prior'."""

    compare_base: Study | None = None
    compare_prior_info = None  # the radview.priors.Prior on the right
    prior_choices: list = []  # the priors of compare_base a comparison may use, most recent first

    def _build_priors(self) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QComboBox, QLabel, QToolBar

        from radview.gui.view_link import ViewLinker

        bar = self.priors_bar = QToolBar("Priors", self)
        bar.setObjectName("priors")
        bar.setMovable(False)
        bar.addWidget(QLabel(" Prior: "))
        self.prior_combo = QComboBox(bar)
        self.prior_combo.setObjectName("prior_combo")
        self.prior_combo.setMinimumContentsLength(36)
        self.prior_combo.setToolTip("The prior on the right (PgDown older, PgUp newer)")
        bar.addWidget(self.prior_combo)
        for key in ("prior_newer", "prior_older", "link_views"):
            bar.addAction(self.actions[key])
        self.actions["prior_newer"].setIconText("◀ newer")
        self.actions["prior_older"].setIconText("older ▶")
        self.actions["link_views"].setIconText("Link W/L · zoom · pan")
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        bar.setVisible(False)
        self.prior_combo.activated.connect(self._prior_picked)
        self.linker = ViewLinker(self)
        self.browser.priorRequested.connect(lambda st: self.compare_prior(True, prior=st))
        self.browser.compareRequested.connect(lambda: self.compare_prior(True))

    def _set_compare_checked(self, on: bool) -> None:
        act = self.actions["compare_prior"]
        if act.isChecked() != on:
            act.blockSignals(True)
            act.setChecked(on)
            act.blockSignals(False)

    def comparing(self) -> bool:
        return is_hanging(self.viewer.study) and self.compare_base is not None

    def compare_prior(self, on: bool = True, prior: Study | None = None) -> bool:
        """Show the current study beside a prior (on: the given one, else the most recent), or
        alone again (off). False (and a status message) when there is no such prior."""
        current = self.viewer.study
        if not on:
            base = self.compare_base
            self.compare_base = None
            self.viewer.columns = None
            self._set_compare_checked(False)
            self.priors_bar.setVisible(False)
            if base is not None and is_hanging(current):
                self.show_study(base, 0)
                self.status_label.setText("The current study alone (Ctrl+Shift+P or PgDown: beside a prior)")
            return True
        if current is None or self.scan_result is None:
            self._set_compare_checked(False)
            return False
        if is_hanging(current):
            current = self.compare_base
        from radview.priors import earlier

        headers = getattr(self.scan_result, "headers", None) or {}
        ps = earlier(find_priors(current, self.scan_result.studies, headers))
        if not ps:
            self._set_compare_checked(False)
            self.status_label.setText(f"No prior study of patient {current.patient or '?'} in this folder")
            return False
        chosen = ps[0]
        if prior is not None:
            chosen = next((p for p in ps if p.study.key == prior.key), None)
            if chosen is None:
                self._set_compare_checked(is_hanging(self.viewer.study))
                self.status_label.setText(f"{prior.description or prior.key} is not a prior of the current study")
                return False
        shown, _rows = hanging_study(current, chosen.study.item, headers)
        self.compare_base = current
        self.compare_prior_info = chosen
        self.prior_choices = ps
        self.viewer.columns = 2
        self.viewer.set_grid_mode(True)
        self.actions["grid_layout"].setChecked(True)
        self.viewer.set_study(shown, 0)
        self._set_compare_checked(True)
        self._fill_prior_combo()
        self.priors_bar.setVisible(True)
        self.set_link_views(self.actions["link_views"].isChecked())
        n = len(ps)
        days = f", {chosen.days} days before" if chosen.days else ""
        which = f" ({ps.index(chosen) + 1} of {n}: PgDown older, PgUp newer)" if n > 1 else ""
        self.status_label.setText(f"Current (left) and prior {chosen.study.date or ''}{days} (right){which}")
        return True

    def _fill_prior_combo(self) -> None:
        from radview.priors import describe

        combo = self.prior_combo
        combo.blockSignals(True)
        try:
            combo.clear()
            for p in self.prior_choices:
                combo.addItem(describe(p), p.study.key)
            current = self.compare_prior_info.study.key if self.compare_prior_info is not None else None
            combo.setCurrentIndex(max(0, combo.findData(current)))
        finally:
            combo.blockSignals(False)
        # the keys stay enabled at the ends: PgDown past the oldest says so in the status bar

    def _prior_picked(self, index: int) -> None:
        if 0 <= index < len(self.prior_choices):
            self.compare_prior(True, prior=self.prior_choices[index].study.item)

    def step_prior(self, step: int) -> bool:
        """+1: the next older prior, -1: the next newer one (PgDown / PgUp). Not comparing yet:
        older starts the comparison with the most recent prior."""
        from radview.priors import step_prior

        if not self.comparing():
            if step > 0:
                return self.compare_prior(True)
            self.status_label.setText("Not comparing: PgDown (or Ctrl+Shift+P) shows the most recent prior")
            return False
        p = step_prior(self.prior_choices, self.compare_prior_info.study.key, step)
        if p is None:
            self.status_label.setText("No older prior in this folder" if step > 0 else
                                      "This is the most recent prior")
            return False
        return self.compare_prior(True, prior=p.study.item)

    def set_link_views(self, on: bool) -> None:
        """Link W/L, zoom and pan of each row's current and prior view (on request: off by
        default); the state holds the groups (radview.state.link.row_groups)."""
        from radview.state import row_groups

        act = self.actions["link_views"]
        if act.isChecked() != bool(on):
            act.blockSignals(True)
            act.setChecked(bool(on))
            act.blockSignals(False)
        st = self.viewer.study
        if on and self.comparing():
            self.state.set_links(row_groups(len(st.views), 2))
            self.status_label.setText("Current and prior linked: W/L, zoom and pan follow (Ctrl+L: unlink)")
        else:
            self.state.set_links(())
            if on:
                self.status_label.setText("Linking joins current and prior side by side (Ctrl+Shift+P first)")

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
        if not is_hanging(study):
            if self.viewer.columns:
                self.viewer.columns = None
                self.compare_base = None
                self._set_compare_checked(False)
            if hasattr(self, "priors_bar"):
                self.priors_bar.setVisible(False)
        hanging = is_hanging(study)
        base = self.compare_base if hanging else study
        p = self.compare_prior_info if hanging else None
        self.browser.set_current(base.key if base is not None else None, p.study.key if p is not None else None)
