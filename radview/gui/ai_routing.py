"""The AI controller's side models and routing (issues 12/13), as a mixin of AIController:
the boxes overlay's model, the body-part column, routed skips and "Run on this study".

The executor (radview.models.executor, `set_routing`) runs the `body-part` gate on every study
(verdict: DICOM header first, then the model: radview.models.routing.study_verdict), then the
heatmap model and the boxes model each only where `routing.route` sends them (a chest model is
not run on a hand); a skipped study arrives as `skipped(model, key, reason)`, for the heatmap
model as much as for the boxes model. This mixin turns those events into the browser's Body part
column (" · not run" when the heatmap model skipped the study; the reason in its tooltip), the
drawn boxes, the AI panel's routing lines, the canvas corner text and banner, and "Run on this
study" (runs every model routing skipped on the visible study).
"""
from __future__ import annotations

from radview.gui import settings as cfg
from radview.types import Prediction, Study, StudyPrediction

GATE_MODEL = "body-part"  # radview.models.routing.BODY_PART_MODEL (routing is imported lazily)


def body_part_text(verdict) -> str:
    """The Body part column: 'chest 0.99', 'musculoskeletal (header)', 'unknown'."""
    if verdict is None:
        return ""
    if verdict.source == "dicom":
        return f"{verdict.part} (header)"
    if verdict.probability is not None:
        return f"{verdict.part} {verdict.probability:.2f}"
    return verdict.part


def view_metas(study: Study) -> tuple[dict, ...]:
    """The header values routing reads (Modality, BodyPartExamined): DICOM views only (the same
    as radview.models.routing.study_metas, which imports nothing heavy either)."""
    from radview.models.routing import study_metas

    return study_metas(study)


class RoutingMixin:
    """Needs: self.w (the window), self.ex (the executor), self.models, self.model_name,
    self.box_model, self.gate, self.box_preds, self.box_study, self.skips, self.body_parts,
    self.preds, self.study_preds, self.threshold, self.gen, queue_folder(), refresh(),
    set_threshold(), _visible_views(), studyReady."""

    def _box_threshold(self) -> None:
        """The score slider starts at the boxes model's operating point (its manifest
        threshold), so the boxes it calls positive are the ones shown."""
        entry = next((m for m in self.models if m.name == self.box_model), None)
        if entry is None:
            return
        t = float(getattr(entry, "threshold", 0.5))
        panel = getattr(self.w, "ai_panel", None)
        if panel is not None:
            panel.threshold.setValue(t)
        self.set_threshold(t)

    def default_box_model(self) -> str:
        """The saved choice for the boxes overlay, else the first installed detection model."""
        saved = cfg.get("boxes_model", None)
        names = {m.name: m for m in self.models if m.available}
        if saved is not None:
            return str(saved) if (saved == "" or saved in names) else ""
        return next((m.name for m in self.models if m.available and m.task == "detection"), "")

    def side_models(self) -> tuple[str, ...]:
        return (self.box_model,) if self.box_model and self.box_model != self.model_name else ()

    def _apply_routing(self) -> None:
        if hasattr(self.ex, "set_routing"):
            side = self.side_models()
            self.ex.set_routing(self.gate or None if (side or self.model_name) else None, side)

    def set_box_model(self, name: str) -> None:
        """The boxes overlay's model ("" : boxes of the heatmap model, if it draws any)."""
        name = name or ""
        cfg.put("boxes_model", name)
        if name == self.box_model:
            return
        self.box_model = name
        self._box_threshold()
        self.box_preds.clear()
        self.box_study.clear()
        self.skips = {k: v for k, v in self.skips.items() if k[0] != name}
        self._apply_routing()
        if self.model_info is not None or not self.model_name:  # else the model's load queues it
            self.gen = self.ex.cancel()
            self.queue_folder()
        self.refresh()
        self._show_routes(self.w.viewer.study)

    def run_anyway(self, model: str) -> None:
        """The user asked for `model` on the visible study whatever its body part; every other
        model routing skipped on it (the heatmap and the boxes model) runs too."""
        study = self.w.viewer.study
        if study is None or not model:
            return
        names = [model] + [m for (m, k) in self.skips if k == study.key and m != model]
        refs, metas = tuple(v.ref for v in study.views), view_metas(study)
        # a model whose routing of this study is still on its way is run too when its skip arrives
        self.asked[study.key] = (refs, metas)
        for name in names:
            self.skips.pop((name, study.key), None)
            self.ex.run_anyway(study.key, refs, name, metas)
        self._browser_body_part(study.key)
        self.status.emit(f"running {', '.join(names)} on this study as asked")
        self._show_routes(study)
        self.refresh()

    def primary_skip(self, study_key: str | None) -> str:
        """Why routing did not run the heatmap model on this study ("" : it ran or will)."""
        if not study_key or not self.model_name:
            return ""
        return self.skips.get((self.model_name, study_key), "")

    def _primary_skip_lines(self, study: Study | None) -> list[str]:
        """The canvas corner text of a view whose study the heatmap model skipped."""
        if study is None or not self.primary_skip(study.key):
            return []
        verdict = self.body_parts.get(study.key)
        return [f"{self.model_name}: not run ({verdict.part if verdict is not None else 'outside its domain'})"]

    def _browser_body_part(self, key: str) -> None:
        verdict = self.body_parts.get(key)
        browser = self.w.browser.model
        if verdict is None or not hasattr(browser, "set_body_part"):
            return
        skip = self.primary_skip(key)
        text = body_part_text(verdict) + (" · not run" if skip else "")
        reason = verdict.reason + (f"\n{self.model_name} not run: {skip}" if skip else "")
        browser.set_body_part(key, text, reason)

    # ------------------------------------------------------------------ side models, routing
    def _body_part(self, gen: int, key: str, verdict) -> None:
        if gen != self.gen:
            return
        self.body_parts[key] = verdict
        self._browser_body_part(key)
        current = self.w.viewer.study
        if current is not None and current.key == key:
            self._show_routes(current)
            self.refresh()

    def _side_prediction(self, gen: int, model: str, pred: Prediction) -> None:
        if gen != self.gen or model != self.box_model:
            return
        self.box_preds[pred.ref.key] = pred
        if pred.error:
            self.w.errors.add_error(pred.ref.path, f"{model}: {pred.error}")
        if any(v.ref.key == pred.ref.key for v in self._visible_views()):
            self.refresh()

    def _side_study(self, gen: int, model: str, sp: StudyPrediction) -> None:
        if gen != self.gen or model != self.box_model:
            return
        self.box_study[sp.study_key] = sp
        current = self.w.viewer.study
        if current is not None and current.key == sp.study_key:
            self.w.prediction_shown(self._panel_prediction(current))
            self._show_routes(current)
            self.refresh()
            self.studyReady.emit(sp.study_key)

    def _skipped(self, gen: int, model: str, key: str, reason: str) -> None:
        if gen != self.gen:
            return
        if key in self.asked:  # the user asked for every model on this study before this skip came
            refs, metas = self.asked[key]
            self.ex.run_anyway(key, refs, model, metas)
            return
        self.skips[(model, key)] = reason
        if model == self.model_name:
            self._browser_body_part(key)
        current = self.w.viewer.study
        if current is not None and current.key == key:
            self._show_routes(current)
            self.refresh()
            self.studyReady.emit(key)

    def _panel_prediction(self, study: Study | None):
        """What the label panel records with a correction: the boxes model's answer on a study
        whose label space has boxes (accepting a box records the detector), else the call."""
        if study is None:
            return None
        sp = self.box_study.get(study.key)
        if sp is not None and self.box_model in self.side_models():
            from radview.spaces import space_of

            space = space_of(study)
            if space is None or space.boxes or study.key not in self.study_preds:
                return sp
        return self.study_preds.get(study.key)

    def _show_routes(self, study: Study | None) -> None:
        panel = self.w.ai_panel
        if not hasattr(panel, "show_routes"):
            return
        if study is None:
            panel.show_routes(None, "", "", "")
            return
        heat = self.primary_skip(study.key)
        verdict = self.body_parts.get(study.key)
        model = self.box_model if self.box_model in self.side_models() else ""
        skip = self.skips.get((model, study.key), "") if model else ""
        sp = self.box_study.get(study.key) if model else None
        if not model:
            state = ""
        elif skip:
            state = f"not run: {skip}"
        elif sp is None:
            state = "…"
        else:
            state = self._box_summary(sp)
        if heat:
            panel.show_routes(verdict, model, state, skip, heatmap=self.model_name, heatmap_skipped=heat)
        else:
            panel.show_routes(verdict, model, state, skip)

    def _box_summary(self, sp: StudyPrediction) -> str:
        boxes = [b for p in sp.views for b in p.boxes]
        shown = [b for b in boxes if (b.score or 0) >= self.threshold]
        best = max((b.score or 0 for b in boxes), default=None)
        text = f"{sp.predicted} · {len(shown)} of {len(boxes)} box(es) ≥ {self.threshold:.2f}"
        if best is not None:
            text += f" (best {best:.2f})"
        if not sp.in_domain:
            text += f"\nout of domain: {sp.domain_reason}"
        return text

    def boxes_of(self, ref_key: str) -> Prediction | None:
        """The prediction whose boxes are drawn on an image."""
        if self.box_model and self.box_model in self.side_models():
            return self.box_preds.get(ref_key)
        return self.preds.get(ref_key)

    def _banner(self, pred: Prediction | None, bpred: Prediction | None) -> str:
        """OUT OF DOMAIN on the canvas: the heatmap model's verdict, and the boxes model's."""
        parts = []
        if pred is not None and not pred.in_domain:
            parts.append("OUT OF DOMAIN: " + (pred.domain_reason or "input unlike the training data"))
        if bpred is not None and bpred is not pred and not bpred.in_domain and not bpred.error:
            parts.append(f"OUT OF DOMAIN ({bpred.model}): " + (bpred.domain_reason or "input unlike the training data"))
        return "\n".join(parts)
