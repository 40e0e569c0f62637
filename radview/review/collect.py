"""Gathering what a review needs: current labels from the store and study predictions from the
prediction cache, predicting only what is missing.

- `store_overrides(store, studies)`: current labels by study and image key (corrections win) and
  which studies were corrected by whom.
- `aggregate_views(study_key, preds, threshold)`: the MURA rule on cached view predictions,
  identical to radview.models.engine.aggregate_study (a test holds them equal) but without
  importing torch, so a fully cached review never loads a model.
- `iter_study_predictions(studies, model_name, store=..., device=...)`: a generator of Progress
  whose last payload is a `Collected`; loads the model (torch) only when a view is not cached.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass


from radview.types import Label, Prediction, Progress, Study, StudyPrediction

__all__ = ["store_overrides", "aggregate_views", "Collected", "iter_study_predictions"]


def store_overrides(store, studies: Sequence[Study], include_source: bool = True
                    ) -> tuple[dict[str, Label], dict[str, str]]:
    """({study or image key: current Label}, {corrected study key: reader}) from a LabelStore.

    include_source=False keeps only corrected items (use it when an explicit label file must
    win over labels imported into the store earlier; corrections still win over both)."""
    study_keys = [s.key for s in studies]
    image_keys = [v.ref.key for s in studies for v in s.views]
    overrides: dict[str, Label] = {}
    corrected_keys: set[str] = set()
    # a one-file study has the same key at both levels: the study level is read last and wins
    for level, keys in (("image", image_keys), ("study", study_keys)):
        for k, st in store.states(level, keys).items():
            if st.label is not None and (st.corrected or include_source):
                if st.corrected or k not in corrected_keys:
                    overrides[k] = st.label
            if st.corrected:
                corrected_keys.add(k)
    readers: dict[str, str] = {}
    if corrected_keys:
        from radview.store.derive import active_map

        events = [e for e in store.history() if e.key in corrected_keys]
        active = active_map(events)
        for e in events:  # ordered by id: the latest active plain event wins
            if e.inverse_of is None and active.get(e.id, True):
                readers[e.key] = e.reader
    corrected: dict[str, str] = {}
    for s in studies:
        keys = [s.key] + [v.ref.key for v in s.views]
        hit = next((k for k in keys if k in corrected_keys), None)
        if hit is not None:
            corrected[s.key] = readers.get(s.key) or readers.get(hit, "")
    return overrides, corrected


def aggregate_views(study_key: str, preds: Sequence[Prediction],
                    threshold: float = 0.5) -> StudyPrediction:
    """The MURA rule on cached view predictions: radview.models.aggregate (no torch)."""
    from radview.models.aggregate import aggregate_study

    return aggregate_study(study_key, preds, threshold)


@dataclass(frozen=True)
class Collected:
    predictions: tuple[StudyPrediction, ...]
    model: str
    model_version: str
    classes: tuple[str, ...]
    threshold: float | None  # the manifest's
    n_cached: int = 0
    n_predicted: int = 0
    cache_note: str = ""  # why the cache could not be used or updated, if so


def iter_study_predictions(studies: Iterable[Study], model_name: str, *, store=None,
                           device=None, batch_size: int = 8, threshold: float | None = None,
                           model=None) -> Iterator[Progress]:
    """Study predictions of `model_name` for `studies` (see module doc). threshold: for the
    study call (default: the manifest's). model: an already loaded LoadedModel to use."""
    from radview.models.registry import get_model_info

    studies = [s for s in studies if s.views]
    info = model.info if model is not None else get_model_info(model_name)
    manifest = info.manifest
    version = manifest.version if manifest else ""
    if threshold is None:
        threshold = manifest.threshold if manifest else 0.5
    refs = list(dict.fromkeys(v.ref for s in studies for v in s.views))
    preds: dict[str, Prediction] = {}
    note = ""
    if store is not None:
        try:
            preds = store.get_predictions(model_name, version, refs)
        except Exception as exc:  # noqa: BLE001 - a cache failure never stops a review
            note = f"prediction cache unusable: {exc}"
    n_cached = len(preds)
    missing = [r for r in refs if r.key not in preds]
    yield Progress(0, len(missing), f"{n_cached} of {len(refs)} images cached")
    if missing:
        if model is None:
            from radview.models.registry import load_model

            model = load_model(model_name, device)
        from radview.models.engine import iter_predict

        fresh: list[Prediction] = []
        for i, p in enumerate(iter_predict(missing, model, batch_size=batch_size), 1):
            preds[p.ref.key] = p
            fresh.append(p)
            if store is not None and len(fresh) >= 64:
                note = _put(store, fresh) or note
                fresh = []
            yield Progress(i, len(missing), f"predicted {i}/{len(missing)} images")
        if store is not None and fresh:
            note = _put(store, fresh) or note
    out = tuple(aggregate_views(s.key, [preds[v.ref.key] for v in s.views], threshold)
                for s in studies)
    classes = manifest.classes if manifest else (out[0].classes if out else ())
    yield Progress(len(missing), len(missing), "done",
                   Collected(out, model_name, version, tuple(classes),
                             manifest.threshold if manifest else None,
                             n_cached, len(missing), note))


def _put(store, preds: list[Prediction]) -> str:
    try:
        store.put_predictions(preds)
    except Exception as exc:  # noqa: BLE001 - read-only or full store: carry on uncached
        return f"predictions not cached: {exc}"
    return ""
