"""Label spaces: which labels can be compared with which model (pure Python, no numpy, no Qt).

Every label source defines a label space and every label and correction belongs to one:

- MURA (`mura`): normal/abnormal per study, from the folder names or `*_labeled_studies.csv`;
- RSNA (`rsna-pneumonia`): normal/pneumonia per image, with boxes (challenge CSV or
  `rsna-pneumonia/jpeg-512/labels.csv`);
- a class folder (`folder:<name>`): its classes, sorted. `<name>` is the folder holding the class
  folders, or, for `<name>/<split>/<class>/` layouts (train/val/test), the folder above the split
  folders, so that train/chest and val/chest are one space;
- a path,label CSV (`csv:<file stem>`): the values found in it.

A model manifest names the space it predicts (field `label_space`, see `model_space`). Review,
top losses, kappa, the queue and retraining join a model only with labels of its own space.
`class_mapping(manifest, space)` is the one place that decides, with these rules, in order:

1. the manifest's explicit `label_space.map` for that space (space value -> model class);
2. the same space name: identity on the class names (the model's classes must be the space's,
   else the manifest needs a map);
3. a class-folder or CSV space whose class set equals the model's class set exactly
   (case-insensitive; a subset or superset is *not* comparable), unless the manifest says
   `"class_folders": false`. This is how `openi-chest-abdomen/train/{abd,chest}` (space
   `folder:openi-chest-abdomen`, classes abd/chest) is comparable with the region model
   (space `openi-chest-abdomen`, classes abd/chest);
4. anything else is not comparable, with the reason (never a silent mapping).

Manifest field (a name, or an object)::

    "label_space": "mura"
    "label_space": {"name": "rsna-pneumonia",          # the space predicted
                    "kind": "detection", "classes": ["normal", "pneumonia"],   # optional for
                    "positive": "pneumonia", "boxes": true,                     # known spaces
                    "class_folders": true,                                      # rule 3 (default)
                    "map": {"folder:kermany": {"NORMAL": "normal", "PNEUMONIA": "pneumonia"}}}

A flat map (`{"<value>": "<model class>"}`) applies to the model's own space. A manifest without
`label_space` (made before label spaces) predicts the space `model:<name>` with its own classes
and is comparable by rule 3 with *any* space whose class set is exactly its own (a MURA-trained
normal/abnormal model with MURA labels); the bundled manifests all name their space.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = ["LabelSpace", "LabelKey", "MURA", "RSNA", "OPENI", "KNOWN", "register", "get_space",
           "space_of", "spaces_in", "class_folder_space", "csv_space", "model_space",
           "class_mapping", "comparable", "comparable_spaces", "label_keys", "main_metric", "describe"]

KINDS = ("binary", "multiclass", "detection")


@dataclass(frozen=True)
class LabelSpace:
    """A set of labels that mean the same thing. kind: 'binary' | 'multiclass' | 'detection';
    classes: the values (binary: negative first); positive: the positive class (binary and
    detection); boxes: labels carry boxes (detection)."""

    name: str
    kind: str
    classes: tuple[str, ...]
    positive: str | None = None
    boxes: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"label space {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.positive is not None and self.positive not in self.classes:
            raise ValueError(f"label space {self.name!r}: positive {self.positive!r} is not one "
                             f"of {self.classes}")

    @property
    def text(self) -> str:
        return f"{self.name} ({'/'.join(self.classes)})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "classes": list(self.classes),
                "positive": self.positive, "boxes": self.boxes, "description": self.description}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LabelSpace":
        return cls(str(d["name"]), str(d.get("kind", "multiclass")),
                   tuple(str(c) for c in d.get("classes") or ()), d.get("positive") or None,
                   bool(d.get("boxes", False)), str(d.get("description", "")))


@dataclass(frozen=True)
class LabelKey:
    """A key of the label panel: press `key` to record `value` (`text` is the button text)."""

    key: str
    value: str
    text: str


MURA = LabelSpace("mura", "binary", ("normal", "abnormal"), "abnormal",
                  description="MURA upper-extremity study: normal or abnormal")
RSNA = LabelSpace("rsna-pneumonia", "detection", ("normal", "pneumonia"), "pneumonia", boxes=True,
                  description="RSNA Pneumonia Detection Challenge: lung opacity boxes")
OPENI = LabelSpace("openi-chest-abdomen", "multiclass", ("abd", "chest"),
                   description="Open-i frontal chest vs abdominal radiograph")
KNOWN: dict[str, LabelSpace] = {s.name: s for s in (MURA, RSNA, OPENI)}

_registry: dict[str, LabelSpace] = dict(KNOWN)
_lock = threading.Lock()


def register(space: LabelSpace) -> LabelSpace:
    """Make a space known to space_of()/get_space() in this process (scans do it)."""
    with _lock:
        if space.name in KNOWN and KNOWN[space.name] != space:
            return KNOWN[space.name]  # the known spaces are fixed
        _registry[space.name] = space
    return space


def get_space(name: str | None) -> LabelSpace | None:
    if not name:
        return None
    with _lock:
        return _registry.get(name)


def space_of(item: Any) -> LabelSpace | None:
    """The label space of a Study, View, Label, Correction or a space name (None if unknown)."""
    if isinstance(item, LabelSpace):
        return item
    if isinstance(item, str):
        return get_space(item)
    name = getattr(item, "space", "") or ""
    if not name:
        label = getattr(item, "label", None)
        name = getattr(label, "space", "") or ""
    return get_space(name)


def spaces_in(result: Any) -> list[LabelSpace]:
    """The label spaces of a ScanResult's (or a list of studies') labels, in order of appearance."""
    studies = getattr(result, "studies", result)
    names: dict[str, None] = {}
    for st in studies:
        for n in [getattr(st, "space", "")] + [getattr(v.label, "space", "") for v in st.views
                                              if v.label is not None]:
            if n:
                names.setdefault(n)
    return [s for s in (get_space(n) for n in names) if s is not None]


def _kind(classes: Iterable[str]) -> str:
    return "binary" if len(tuple(classes)) == 2 else "multiclass"


def class_folder_space(name: str, classes: Iterable[str]) -> LabelSpace:
    """The space of the class folders under a folder called `name` (registered)."""
    cls = tuple(sorted({str(c) for c in classes}))
    return register(LabelSpace(f"folder:{name}", _kind(cls), cls,
                               description=f"class folders of {name}"))


def csv_space(stem: str, values: Iterable[str | None]) -> LabelSpace:
    """The space of a path,label CSV file (registered)."""
    cls = tuple(sorted({str(v) for v in values if v}))
    return register(LabelSpace(f"csv:{stem}", _kind(cls) if len(cls) != 1 else "multiclass", cls,
                               description=f"labels of {stem}.csv"))


# ------------------------------------------------------------------ models


def _spec(manifest: Any) -> dict[str, Any]:
    spec = getattr(manifest, "label_space", None)
    if isinstance(spec, str):
        return {"name": spec} if spec else {}
    return dict(spec or {})


def model_space(manifest: Any) -> LabelSpace:
    """The label space a model predicts (from its manifest's `label_space`, see module doc).
    Raises ValueError naming the model for an inconsistent field."""
    spec = _spec(manifest)
    name = str(spec.get("name") or f"model:{manifest.name}")
    base = get_space(name)
    if base is not None and not any(k in spec for k in ("kind", "classes", "positive", "boxes")):
        return base
    classes = tuple(str(c) for c in spec.get("classes") or (base.classes if base else manifest.classes))
    kind = str(spec.get("kind") or (base.kind if base else
                                    ("detection" if manifest.task == "detection" else
                                     _kind(classes) if manifest.task == "binary" else "multiclass")))
    positive = spec.get("positive", base.positive if base else
                        (classes[-1] if kind in ("binary", "detection") else None))
    try:
        return LabelSpace(name, kind, classes, positive,
                          bool(spec.get("boxes", base.boxes if base else kind == "detection")),
                          str(spec.get("description", base.description if base else "")))
    except ValueError as exc:
        raise ValueError(f"model {manifest.name!r}: label_space: {exc}") from None


def _maps(manifest: Any, own: str) -> dict[str, dict[str, str]]:
    raw = _spec(manifest).get("map") or {}
    if raw and all(isinstance(v, str) for v in raw.values()):
        return {own: {str(k): str(v) for k, v in raw.items()}}
    return {str(s): {str(k): str(v) for k, v in (m or {}).items()} for s, m in raw.items()}


def class_mapping(manifest: Any, space: LabelSpace | str | None) -> tuple[dict[str, str] | None, str]:
    """({space value: model class}, '') when the model can be compared with labels of `space`,
    else (None, the reason). See the module doc for the rules."""
    classes = tuple(manifest.classes)
    try:
        own = model_space(manifest)
    except ValueError as exc:
        return None, str(exc)
    if isinstance(space, str):
        space = get_space(space) or (LabelSpace(space, "multiclass", ()) if space else None)
    if space is None:
        return None, f"the labels have no label space (model {manifest.name!r} predicts {own.text})"
    explicit = _maps(manifest, own.name).get(space.name)
    if explicit is not None:
        bad = sorted(v for v in explicit.values() if v not in classes)
        if bad:
            return None, (f"model {manifest.name!r}: label_space.map for {space.name} names "
                          f"{bad}, not among its classes {list(classes)}")
        return dict(explicit), ""
    if space.name == own.name:
        if set(own.classes) != set(classes):
            return None, (f"model {manifest.name!r} classes {'/'.join(classes)} differ from its "
                          f"label space {own.text} and its manifest has no label_space.map")
        return {c: c for c in classes}, ""
    # a manifest without label_space (made before label spaces) is loose with every space
    loose = space.name.startswith(("folder:", "csv:")) or not _spec(manifest)
    if loose and _spec(manifest).get("class_folders", True):
        low = {c.lower(): c for c in classes}
        if space.classes and {c.lower() for c in space.classes} == set(low):
            return {c: low[c.lower()] for c in space.classes}, ""
        return None, (f"model {manifest.name!r} predicts {own.text}; study labels are "
                      f"{space.text}: the class sets differ")
    return None, f"model {manifest.name!r} predicts {own.text}; study labels are {space.text}"


def comparable(manifest: Any, space: LabelSpace | str | None) -> tuple[bool, str]:
    """(True, '') or (False, the reason shown as 'not comparable')."""
    mapping, reason = class_mapping(manifest, space)
    return mapping is not None, reason


def comparable_spaces(manifest: Any, names: Iterable[str]) -> list[str]:
    """The names among `names` whose labels the model can be compared with (its queue's spaces:
    `store.queue_summary(space=comparable_spaces(manifest, store.space_names()))`)."""
    return [n for n in names if comparable(manifest, n)[0]]


# ------------------------------------------------------------------ keys and metrics

_LETTER_KEYS = {"mura": (("N", "normal"), ("A", "abnormal")),
                "rsna-pneumonia": (("N", "normal"), ("P", "pneumonia"))}


def label_keys(space: LabelSpace | str | None) -> list[LabelKey]:
    """The label panel's keys for a space: N/A for MURA, N/P for RSNA (plus box tools when
    space.boxes), 1-9 for the first nine classes of any other space."""
    space = space_of(space) if not isinstance(space, LabelSpace) else space
    if space is None:
        return []
    letters = _LETTER_KEYS.get(space.name)
    if letters:
        return [LabelKey(k, v, f"{v} [{k}]") for k, v in letters]
    return [LabelKey(str(i), c, f"{c} [{i}]") for i, c in enumerate(space.classes[:9], 1)]


def main_metric(space: LabelSpace) -> str:
    """The metric a promotion compares (the agreed metric of radview.train.config.DEFAULT_METRIC):
    Cohen's kappa at the model's threshold for binary and detection spaces, accuracy for
    multiclass ones."""
    return "kappa" if space.kind in ("binary", "detection") else "accuracy"


def describe(space: LabelSpace | None) -> str:
    return space.text if space is not None else "(no label space)"
