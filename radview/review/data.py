"""What a review works on: study predictions joined with current labels, as arrays.

`build_review` takes a model's study predictions (radview.types.StudyPrediction, each with its
view predictions) and the truth per study (a `Truth`, or a bare Label), maps label values onto
the model's classes, and returns a `ReviewSet`: aligned arrays of truth, probabilities and
losses at study and image level, plus what was left out and why.

Label spaces: given the model's manifest, a study joins only when its label space is comparable
with the model's (radview.spaces.class_mapping: same space, an explicit manifest map, or a class
folder/CSV with exactly the model's classes); its value is then mapped by that mapping only.
Other studies are left out as "not comparable" with the reason, never silently mapped (an RSNA
"normal" is not an "abd"). Without a manifest, labels are matched by name (class_index).

Loss (fastai's top_losses, at study level): the negative log of the probability the model gave
the true class, i.e. binary cross-entropy of the study's mean probability against the study
label for binary models (the MURA rule), cross-entropy for multiclass. Probabilities are clipped
at 1e-7 so a confident miss costs ~16.1, not infinity.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from radview.types import Label, Prediction, Study, StudyPrediction

__all__ = ["EPS", "Truth", "ReviewSet", "build_review", "class_index", "truths_from_studies",
           "cross_entropy", "comparable_truths", "mapped_index"]

EPS = 1e-7

_POSITIVE_WORDS = {"1", "true", "yes", "positive", "abnormal", "pos"}
_NEGATIVE_WORDS = {"0", "false", "no", "negative", "normal", "neg"}


@dataclass(frozen=True)
class Truth:
    """The current truth of one study as the review sees it. `label` is already the current
    one (corrections win); `corrected` says it came from a correction, `reader` who made it."""

    label: Label
    study_type: str = ""
    corrected: bool = False
    reader: str = ""
    image_labels: Mapping[str, Label] = field(default_factory=dict, compare=False, hash=False)


def class_index(label: Label | str | None, classes: tuple[str, ...]) -> int | None:
    """The index in `classes` a label stands for, or None when it names none of them.

    Exact name, then case-insensitive name, then a unique prefix of at least 3 letters either
    way ('abd' -> 'abdomen'), then an index written as a number ('0', '1' as in MURA's CSVs),
    then for two classes the usual positive/negative words; a label with only boxes (RSNA) is
    the positive class of a binary model."""
    if isinstance(label, Label):
        value = label.value
        if value is None:
            if label.boxes and len(classes) == 2:
                return 1
            return None
    else:
        value = label
    if value is None:
        return None
    value = str(value).strip()
    if value in classes:
        return classes.index(value)
    low = value.lower()
    lowered = [c.lower() for c in classes]
    if low in lowered:
        return lowered.index(low)
    if len(low) >= 3:
        hits = [i for i, c in enumerate(lowered)
                if len(c) >= 3 and (c.startswith(low) or low.startswith(c))]
        if len(hits) == 1:
            return hits[0]
    if low.lstrip("-").isdigit():
        i = int(low)
        return i if 0 <= i < len(classes) else None
    if len(classes) == 2:
        if low in _POSITIVE_WORDS and lowered[0] not in _POSITIVE_WORDS:
            return 1
        if low in _NEGATIVE_WORDS and lowered[1] not in _NEGATIVE_WORDS:
            return 0
    return None


def cross_entropy(probs: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    """-log(p of the true class), clipped at EPS; (n, C) probabilities, (n,) class indices."""
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.intp)
    if probs.shape[0] == 0:
        return np.zeros(0)
    p = probs[np.arange(probs.shape[0]), y_true]
    return -np.log(np.clip(p, EPS, 1.0))


@dataclass(frozen=True)
class ReviewSet:
    """Aligned arrays of one model's studies that have both a prediction and a usable label.

    Study level (n,): keys, study_types, y_true, probs (n, C), corrected, readers.
    Image level (m,): image_refs, image_study (index into the study arrays), image_y_true,
    image_probs (m, C). skipped: (study key, reason) for studies left out."""

    model: str
    model_version: str
    classes: tuple[str, ...]
    threshold: float | None
    threshold_source: str
    keys: tuple[str, ...]
    study_types: np.ndarray
    y_true: np.ndarray
    probs: np.ndarray
    corrected: np.ndarray
    readers: np.ndarray
    in_domain: np.ndarray
    views: tuple[tuple[Prediction, ...], ...]
    image_refs: tuple[str, ...]
    image_study: np.ndarray
    image_y_true: np.ndarray
    image_probs: np.ndarray
    skipped: tuple[tuple[str, str], ...] = ()
    #: (study key, reason) of the studies whose label space the model does not predict (also
    #: in skipped); space: the model's label space name ('' without a manifest)
    not_comparable: tuple[tuple[str, str], ...] = ()
    space: str = ""

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_binary(self) -> bool:
        return len(self.classes) == 2 and self.threshold is not None

    @property
    def scores(self) -> np.ndarray:
        """The positive-class probability (binary) or the probabilities (multiclass)."""
        return self.probs[:, 1] if self.is_binary else self.probs

    @property
    def y_pred(self) -> np.ndarray:
        return _calls(self.probs, self.threshold if self.is_binary else None)

    @property
    def image_y_pred(self) -> np.ndarray:
        return _calls(self.image_probs, self.threshold if self.is_binary else None)

    @property
    def losses(self) -> np.ndarray:
        return cross_entropy(self.probs, self.y_true)

    @property
    def image_losses(self) -> np.ndarray:
        return cross_entropy(self.image_probs, self.image_y_true)

    def index(self, key: str) -> int:
        return self.keys.index(key)

    def with_threshold(self, threshold: float, source: str = "given") -> ReviewSet:
        if not len(self.classes) == 2:
            raise ValueError("a threshold applies to binary models only")
        return replace(self, threshold=float(threshold), threshold_source=source)

    def with_label(self, key: str, label: Label, corrected: bool = True,
                   reader: str = "") -> ReviewSet:
        """A copy where one study's truth changed (its views follow the study label)."""
        i = self.index(key)
        if self.space:  # a space-aware review takes only labels of a comparable space
            if label.space and label.space != self.space and not _same_classes(label, self.classes):
                raise ValueError(f"label of {key} is in label space {label.space}; the review "
                                 f"is of {self.space}")
            c = _exact(label, self.classes)
        else:
            c = class_index(label, self.classes)
        if c is None:
            raise ValueError(f"label {label.value!r} of {key} names none of {self.classes}")
        y = self.y_true.copy()
        y[i] = c
        iy = self.image_y_true.copy()
        iy[self.image_study == i] = c
        corr = self.corrected.copy()
        corr[i] = corrected
        readers = self.readers.copy()
        readers[i] = reader
        return replace(self, y_true=y, image_y_true=iy, corrected=corr, readers=readers)

    def subset(self, mask: np.ndarray) -> ReviewSet:
        """The studies where `mask` (bool (n,) or indices) holds, with their images."""
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask, int)
        remap = np.full(len(self.keys), -1, dtype=np.intp)
        remap[idx] = np.arange(idx.size)
        keep = remap[self.image_study] >= 0 if self.image_study.size else np.zeros(0, bool)
        return replace(
            self,
            keys=tuple(self.keys[i] for i in idx),
            study_types=self.study_types[idx], y_true=self.y_true[idx], probs=self.probs[idx],
            corrected=self.corrected[idx], readers=self.readers[idx],
            in_domain=self.in_domain[idx], views=tuple(self.views[i] for i in idx),
            image_refs=tuple(r for r, k in zip(self.image_refs, keep) if k),
            image_study=remap[self.image_study[keep]], image_y_true=self.image_y_true[keep],
            image_probs=self.image_probs[keep],
        )


def _calls(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    if probs.shape[0] == 0:
        return np.zeros(0, dtype=np.intp)
    if threshold is not None and probs.shape[1] == 2:
        return (probs[:, 1] > threshold).astype(np.intp)
    return np.argmax(probs, axis=1).astype(np.intp)


def _exact(label: Label, classes: tuple[str, ...]) -> int | None:
    low = [c.lower() for c in classes]
    if label.value is None:
        return (len(classes) - 1) if label.boxes and len(classes) == 2 else None
    v = str(label.value).strip().lower()
    return low.index(v) if v in low else None


def _same_classes(label: Label, classes: tuple[str, ...]) -> bool:
    from radview import spaces

    sp = spaces.get_space(label.space)
    return sp is not None and {c.lower() for c in sp.classes} == {c.lower() for c in classes}


def mapped_index(label: Label, manifest, classes: tuple[str, ...] | None = None
                 ) -> tuple[int | None, str]:
    """(index into the model's classes, '') for a label of a comparable space, else
    (None, the reason: not comparable, or a value the mapping does not name)."""
    from radview import spaces

    classes = tuple(classes or manifest.classes)
    if not label.space:
        c = _exact(label, classes)  # a label made by hand: exact class names only
        return (c, "") if c is not None else (None, f"label {label.value!r} names none of {classes}")
    mapping, reason = spaces.class_mapping(manifest, label.space)
    if mapping is None:
        return None, f"not comparable: {reason}"
    if label.value is None:
        sp = spaces.get_space(label.space)
        if label.boxes and sp is not None and sp.positive in mapping:
            return classes.index(mapping[sp.positive]), ""
        return None, "no label value"
    target = mapping.get(str(label.value))
    if target is None or target not in classes:
        return None, (f"label {label.value!r} of {label.space} has no class of model "
                      f"{manifest.name!r} in its mapping")
    return classes.index(target), ""


def comparable_truths(truths: Mapping[str, Truth | Label], manifest
                      ) -> tuple[dict[str, Truth | Label], list[tuple[str, str]]]:
    """(truths the model can be compared with, [(study key, reason)] of the others): filter
    before predicting, so no time goes into studies that would be left out."""
    ok: dict[str, Truth | Label] = {}
    skipped: list[tuple[str, str]] = []
    for key, t in truths.items():
        label = t if isinstance(t, Label) else t.label
        c, reason = mapped_index(label, manifest)
        if c is None:
            skipped.append((key, reason))
        else:
            ok[key] = t
    return ok, skipped


def build_review(
    predictions: Iterable[StudyPrediction],
    truths: Mapping[str, Truth | Label],
    threshold: float | None = 0.5,
    threshold_source: str = "model",
    manifest=None,
) -> ReviewSet:
    """Join study predictions with the truth per study key.

    threshold: the decision threshold of a binary model (positive if p > threshold, as in
    radview.models.engine.aggregate_study); ignored
    (set to None) for multiclass models. Studies without a truth, with a label naming none of
    the model's classes, or whose prediction failed are listed in `skipped` with the reason.
    A view's own label (Truth.image_labels by ref key) is used for its image loss where given;
    otherwise the view takes the study label. manifest: the model's (radview.models.Manifest);
    with it, only studies whose label space is comparable join (see the module doc)."""
    preds = list(predictions)
    classes: tuple[str, ...] = preds[0].classes if preds else ()
    model = preds[0].model if preds else ""
    version = preds[0].model_version if preds else ""
    if len(classes) != 2:
        threshold = None
    keys, types, ys, probs, corr, readers, dom, views = [], [], [], [], [], [], [], []
    irefs, istudy, iy, iprobs = [], [], [], []
    skipped: list[tuple[str, str]] = []
    not_comparable: list[tuple[str, str]] = []
    space = ""
    if manifest is not None:
        from radview import spaces

        space = spaces.model_space(manifest).name
    for sp in preds:
        if sp.classes != classes:
            skipped.append((sp.study_key, f"model classes {sp.classes} differ from {classes}"))
            continue
        t = truths.get(sp.study_key)
        if t is None:
            skipped.append((sp.study_key, "no label"))
            continue
        if isinstance(t, Label):
            t = Truth(t)
        if manifest is not None:
            c, reason = mapped_index(t.label, manifest, classes)
            if c is None:
                skipped.append((sp.study_key, reason))
                if reason.startswith("not comparable"):
                    not_comparable.append((sp.study_key, reason))
                continue
        else:
            c = class_index(t.label, classes)
        if c is None:
            skipped.append((sp.study_key, f"label {t.label.value!r} names none of {classes}"))
            continue
        p = np.asarray(sp.probs, dtype=np.float64)
        if p.shape != (len(classes),) or not np.all(np.isfinite(p)):
            reason = next((v.error for v in sp.views if v.error), None) or "no probabilities"
            skipped.append((sp.study_key, f"prediction failed: {reason}"))
            continue
        i = len(keys)
        keys.append(sp.study_key)
        types.append(t.study_type)
        ys.append(c)
        probs.append(p)
        corr.append(bool(t.corrected))
        readers.append(t.reader)
        dom.append(bool(sp.in_domain))
        views.append(tuple(sp.views))
        for v in sp.views:
            if v.error or len(v.probs) != len(classes):
                continue
            own = t.image_labels.get(v.ref.key) if t.image_labels else None
            ci = None
            if own is not None:
                ci = (mapped_index(own, manifest, classes)[0] if manifest is not None
                      else class_index(own, classes))
            irefs.append(v.ref.key)
            istudy.append(i)
            iy.append(c if ci is None else ci)
            iprobs.append(v.probs)
    n_c = len(classes)
    return ReviewSet(
        model=model, model_version=version, classes=classes,
        threshold=None if threshold is None else float(threshold),
        threshold_source=threshold_source if threshold is not None else "argmax",
        keys=tuple(keys),
        study_types=np.array(types, dtype=object),
        y_true=np.array(ys, dtype=np.intp),
        probs=np.array(probs, dtype=np.float64).reshape(len(keys), n_c),
        corrected=np.array(corr, dtype=bool),
        readers=np.array(readers, dtype=object),
        in_domain=np.array(dom, dtype=bool),
        views=tuple(views),
        image_refs=tuple(irefs),
        image_study=np.array(istudy, dtype=np.intp),
        image_y_true=np.array(iy, dtype=np.intp),
        image_probs=np.array(iprobs, dtype=np.float64).reshape(len(irefs), n_c),
        skipped=tuple(skipped),
        not_comparable=tuple(not_comparable),
        space=space,
    )


def truths_from_studies(
    studies: Iterable[Study],
    overrides: Mapping[str, Label] | None = None,
    corrected: Mapping[str, str] | None = None,
) -> dict[str, Truth]:
    """Truth per study key from scanned studies: the study's own label, or the label all its
    views share; `overrides` (by study key or by view path/ref key, e.g. from a label CSV or
    the store's current labels) win over both. `corrected` maps study keys whose label came
    from a correction to the reader who made it."""
    overrides = overrides or {}
    corrected = corrected or {}
    out: dict[str, Truth] = {}
    for st in studies:
        label = overrides.get(st.key)
        image_labels: dict[str, Label] = {}
        for v in st.views:
            vl = overrides.get(v.ref.key) or overrides.get(v.ref.path)
            if vl is None and label is None:
                vl = v.label  # a source view label, unless the study label was overridden
            if vl is not None:
                image_labels[v.ref.key] = vl
        if label is None:
            label = st.label
        if label is None and image_labels and len(image_labels) == len(st.views):
            values = {(lab.value, bool(lab.boxes)) for lab in image_labels.values()}
            if len(values) == 1:  # all views agree: that is the study's label
                label = next(iter(image_labels.values()))
        if label is None:
            continue
        out[st.key] = Truth(label, st.study_type, st.key in corrected, corrected.get(st.key, ""),
                            image_labels)
    return out
