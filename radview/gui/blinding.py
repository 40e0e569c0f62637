"""Blinded reads in the main window (issue 16): while the worklist panel's reader reads a blinded
project, the window shows them neither other readers' labels nor (hide_model) the model.

`install(window)` wires the worklist panel (if docked) to the window: its studyActivated opens
the study, the window's studyShown tells it which item is on screen, and its blindingChanged
calls `apply(window, policy)`:
- `window.blinding` = the ViewPolicy (None: nothing hidden); MainWindow.study_label returns None
  when labels are hidden (no 'label:' on the canvases, none in the AI panel) and
  AIController.refresh draws no model answer, boxes nor CAM when the model is hidden;
- the docks that show labels (label, review, retraining queue) and the model (AI) are hidden and
  cannot be reopened from the Panels menu; the study browser's label and model columns are
  hidden; the CAM / boxes / model-view actions are disabled;
- everything comes back as it was when blinding ends (an adjudicator, another project).
"""
from __future__ import annotations

from typing import Any

LABEL_DOCKS = ("labelpanel", "reviewpanel", "queuepanel")
MODEL_DOCKS = ("ai",)
LABEL_COLUMNS = ("Label", "Corrected")
MODEL_COLUMNS = ("Prediction", "Prob.", "Domain")
MODEL_ACTIONS = ("toggle_cam", "toggle_boxes", "model_saw")


def hidden_parts(policy: Any) -> tuple[set[str], set[str]]:
    """(dock keys, browser column names) a policy hides."""
    docks: set[str] = set()
    cols: set[str] = set()
    if policy is not None and not policy.others:
        docks |= set(LABEL_DOCKS)
        cols |= set(LABEL_COLUMNS)
    if policy is not None and not policy.model:
        docks |= set(MODEL_DOCKS)
        cols |= set(MODEL_COLUMNS)
    return docks, cols


def apply(window: Any, policy: Any) -> None:
    """Hide (or show again) what a ViewPolicy says this reader must not see."""
    policy = policy if policy is not None and policy.blinded else None
    window.blinding = policy
    docks, cols = hidden_parts(policy)
    was = window.__dict__.setdefault("_blind_docks", {})   # dock key -> visible before
    for key, dock in window.docks.items():
        if key in docks:
            if key not in was:
                was[key] = dock.isVisible()
            dock.hide()
            dock.toggleViewAction().setEnabled(False)
            dock.widget().setEnabled(False)   # its window-wide shortcuts too (label keys)
        elif key in was:
            dock.toggleViewAction().setEnabled(True)
            dock.widget().setEnabled(True)
            if was.pop(key):
                dock.show()
    from radview.gui.widgets.study_browser import COLUMNS

    tree = window.browser.tree
    hid = window.__dict__.setdefault("_blind_columns", set())
    for i, name in enumerate(COLUMNS):
        if name in cols:
            if not tree.isColumnHidden(i):
                hid.add(i)
                tree.setColumnHidden(i, True)
        elif i in hid:
            hid.discard(i)
            tree.setColumnHidden(i, False)
    for name in MODEL_ACTIONS:
        act = window.actions.get(name)
        if act is not None:
            act.setEnabled(policy is None or policy.model)
    if window.viewer.study is not None:
        window.ai.refresh()
        window._update_label_overlay()
        if policy is None or policy.model:
            window.ai.study_shown(window.viewer.study)


def install(window: Any) -> None:
    panel = window.extra_panels.get("worklistpanel")
    if panel is None:
        return
    panel.studyActivated.connect(window.show_study_key)
    panel.blindingChanged.connect(lambda policy: apply(window, policy))
    window.studyShown.connect(lambda study: panel.set_current(study.key))
    panel.model_answer = lambda key: _model_answer(window, key)
    apply(window, panel.policy)
    from PySide6.QtCore import QTimer

    # once more after the window restored its saved layout (docks, columns)
    QTimer.singleShot(0, window, lambda: apply(window, panel.policy))


def _model_answer(window: Any, key: str) -> tuple[str, str, str | None]:
    """(model, version, predicted class) of the study on screen, for the adjudication's record."""
    sp = window.ai.study_preds.get(key)
    if sp is None:
        return "", "", None
    return sp.model, sp.model_version, sp.predicted
