"""The training set: a model's labelled data with the queue's corrections applied (no torch).

`build_dataset(root, manifest, store=None, config=TrainConfig(), splits_file=None)` is a
generator of Progress whose last payload is a `TrainData`:

1. `radview.io.scan(root)` (any layout the scan understands: class folders, MURA, RSNA, DICOM).
2. Labels per image: the newest active correction (image or study level) wins over the source
   label of the image, which wins over the study's; items whose latest correction asks to be left
   out of training are dropped; labels that name none of the model's classes are reported and
   dropped. Detection takes the boxes (a box correction replaces the image's list).
3. Splits fixed by a seed and stored (`splits.json` beside the model's versions): the unit is the
   patient when known (else the study), so views of one patient never straddle splits. A layout's
   own held-out folder (`test`/`holdout`, else `val`/`valid`) is the locked test split; otherwise
   a seeded, class-stratified `test_fraction` of the groups is. An item keeps its split for ever
   once stored: a later run never trains on a test item, whatever was added since.
4. The data hash: sha256 over (relative key, split, label, file sha256) of every sample.
5. The corrections this data set uses: pending queue events of the model's label space whose
   item is in the *training* split (val and test corrections are used as truth, never learnt,
   so they stay in the queue).

Label spaces (radview.spaces): a label joins only when its space is comparable with the model's
(same space, an explicit manifest map, or a class folder/CSV with the model's class set); others
are dropped with the reason "not comparable", never silently mapped.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radview.train.config import TrainConfig
from radview.types import Box, ImageRef, Label, Progress, ScanResult

SPLITS = ("train", "val", "test")
TEST_LAYOUT = ("test", "testing", "holdout")
VAL_LAYOUT = ("val", "valid", "validation")


class DataError(Exception):
    """The data cannot train this model (no labelled image, one class only, ...)."""


@dataclass(frozen=True)
class Sample:
    """One training image. target: class index (classification); boxes with their class index
    (detection). group: the unit of splitting (patient, else study), relative to the root."""

    ref: ImageRef
    study: str
    study_type: str
    group: str
    split: str
    target: int | None = None
    boxes: tuple[tuple[Box, int], ...] = ()
    corrected: bool = False


@dataclass(frozen=True)
class TrainData:
    root: str
    task: str
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]
    data_hash: str
    used_events: tuple[int, ...] = ()
    n_corrected: int = 0
    n_excluded: int = 0
    dropped: tuple[str, ...] = ()  # 'path: reason' for items left out (scan errors, unknown labels)
    split_source: str = "seeded"   # 'layout:<folder>' when the layout gave the test split
    space: str = ""                # the model's label space
    stats: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def split(self, name: str) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if s.split == name)

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class or 'boxes'/'no boxes': n}}."""
        out: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
        for s in self.samples:
            if self.task == "detection":
                k = "boxes" if s.boxes else "no boxes"
            else:
                k = self.classes[s.target] if s.target is not None else "?"
            out[s.split][k] = out[s.split].get(k, 0) + 1
        return out


# --------------------------------------------------------------------------- hashing

_FILE_SHA: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str) -> str:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    sha = _FILE_SHA.get(key)
    if sha is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        sha = _FILE_SHA[key] = h.hexdigest()
    return sha


def _unit(seed: int, salt: str, key: str) -> float:
    d = hashlib.sha256(f"{seed}\0{salt}\0{key}".encode()).digest()
    return int.from_bytes(d[:8], "big") / 2.0 ** 64


def relative_key(key: str, root: str) -> str:
    """A study key relative to the data root (absolute paths under root), posix separators."""
    if os.path.isabs(key):
        try:
            rel = os.path.relpath(key, root)
        except ValueError:  # another drive
            return key.replace(os.sep, "/")
        if not rel.startswith(".."):
            return rel.replace(os.sep, "/")
    return key.replace(os.sep, "/")


# --------------------------------------------------------------------------- splits


def _take(groups: list[str], fraction: float, seed: int, salt: str) -> set[str]:
    """A class-stratified, seeded choice of round(fraction * n) groups (stable per group)."""
    n = int(round(len(groups) * fraction))
    if n == 0 and fraction > 0 and len(groups) >= 4:
        n = 1
    ranked = sorted(groups, key=lambda g: (_unit(seed, salt, g), g))
    return set(ranked[:n])


def assign_splits(groups: dict[str, tuple[str, int | None]], config: TrainConfig,
                  stored: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """{group: split} for {group: (layout split, class for stratifying)}; stored assignments are
    kept. Returns the assignment and where the test split came from."""
    stored = dict(stored or {})
    layouts = {lay for lay, _ in groups.values()}
    test_layout = next((n for n in TEST_LAYOUT if n in layouts), None) or \
        next((n for n in VAL_LAYOUT if n in layouts), None)
    out: dict[str, str] = {}
    new: dict[str, tuple[str, int | None]] = {}
    for g, v in groups.items():
        if stored.get(g) in SPLITS:
            out[g] = stored[g]
        else:
            new[g] = v
    source = f"layout:{test_layout}" if test_layout else "seeded"
    rest: dict[Any, list[str]] = defaultdict(list)
    if test_layout:
        for g, (lay, cls) in new.items():
            if lay == test_layout:
                out[g] = "test"
            elif lay in VAL_LAYOUT or lay in TEST_LAYOUT:
                out[g] = "val"
            else:
                rest[cls].append(g)
    else:
        by_class: dict[Any, list[str]] = defaultdict(list)
        for g, (_lay, cls) in new.items():
            by_class[cls].append(g)
        for cls, gs in by_class.items():
            test = _take(gs, config.test_fraction, config.seed, "test")
            for g in gs:
                if g in test:
                    out[g] = "test"
                else:
                    rest[cls].append(g)
    for cls, gs in rest.items():
        val = _take(gs, config.val_fraction, config.seed, "val")
        for g in gs:
            out[g] = "val" if g in val else "train"
    return out, source


def read_splits(path: str | os.PathLike | None) -> dict[str, str]:
    if path is None or not Path(path).is_file():
        return {}
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in (d.get("groups") or {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def write_splits(path: str | os.PathLike, assignment: dict[str, str], seed: int, source: str) -> None:
    """Merge the assignment into the stored splits (existing entries are never changed)."""
    p = Path(path)
    old = read_splits(p)
    merged = dict(assignment)
    merged.update(old)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps({"format": 1, "seed": seed, "test_source": source,
                               "groups": dict(sorted(merged.items()))}, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, p)


# --------------------------------------------------------------------------- labels


def _latest_label_events(store, keys_by_level: dict[str, set[str]]) -> tuple[dict, list]:
    """{(level, key): id of the newest active plain event}, and all events of those items."""
    from radview.store.derive import active_map

    events = [e for e in store.history() if e.key in keys_by_level.get(e.level, ())]
    active = active_map(events)
    latest: dict[tuple[str, str], int] = {}
    for e in events:
        if e.inverse_of is None and active.get(e.id, True):
            latest[(e.level, e.key)] = e.id
    return latest, events


def _box_targets(boxes: tuple[Box, ...], classes: tuple[str, ...]) -> tuple[tuple[Box, int], ...]:
    fg = len(classes) - 1
    return tuple((b, classes.index(b.label) if b.label in classes[1:] else fg)
                 for b in boxes if b.width > 1 and b.height > 1)


def build_dataset(root: str | os.PathLike, manifest: Any, store=None, config: TrainConfig = TrainConfig(),
                  splits_file: str | os.PathLike | None = None, scan: ScanResult | None = None
                  ) -> Iterator[Progress]:
    """See the module doc. manifest: the model's Manifest (task, classes)."""
    from radview import spaces
    from radview.review.data import class_index, mapped_index

    task, classes = manifest.task, tuple(manifest.classes)
    model_space = spaces.model_space(manifest)
    if scan is None:
        from radview.io.studies import iter_scan

        for p in iter_scan(root):
            if p.payload is None:
                yield Progress(p.done, p.total, f"scanning data: {p.message}")
            else:
                scan = p.payload
    assert scan is not None
    root = os.path.abspath(os.fspath(root)) if os.path.isdir(root) else os.path.dirname(os.path.abspath(root))
    dropped = [f"{e.path}: {e.reason}" for e in scan.errors]

    img_states: dict = {}
    study_states: dict = {}
    latest: dict = {}
    events: list = []
    if store is not None:
        study_keys = {s.key for s in scan.studies}
        image_keys = {v.ref.key for s in scan.studies for v in s.views}
        img_states = store.states("image", image_keys)
        study_states = store.states("study", study_keys)
        latest, events = _latest_label_events(store, {"image": image_keys, "study": study_keys})

    raw = []  # (ref, study, study_type, group, layout split, target, boxes, corrected)
    n_excluded = 0
    for st in scan.studies:
        sst = study_states.get(st.key)
        group = f"patient:{st.patient}" if st.patient else relative_key(st.key, root)
        for v in st.views:
            ist = img_states.get(v.ref.key)
            if (ist is not None and ist.excluded) or (sst is not None and sst.excluded):
                n_excluded += 1
                continue
            source = v.label if v.label is not None else st.label
            label, corrected = source, False
            cands = []
            for lvl, state in (("image", ist), ("study", sst)):
                if state is not None and state.corrected and state.label is not None:
                    cands.append((latest.get((lvl, state.key), 0), lvl, state))
            if cands:
                _id, lvl, state = max(cands, key=lambda c: c[0])
                corrected = True
                space = state.label.space or (source.space if source else "")
                if task == "detection":
                    boxes = state.label.boxes if (lvl == "image" and state.boxes_known) else \
                        (source.boxes if source else ())
                    value = state.label.value if state.label.value is not None else (source.value if source else None)
                    label = Label(value, tuple(boxes), "correction", space)
                elif state.label.value is not None:
                    label = Label(state.label.value, (), "correction", space)
            if label is None:
                dropped.append(f"{v.ref.path}: no label")
                continue
            if label.space:
                ok, why = spaces.comparable(manifest, label.space)
                if not ok:
                    dropped.append(f"{v.ref.path}: not comparable: {why}")
                    continue
            if task == "detection":
                target, boxes_t = None, _box_targets(tuple(label.boxes), classes)
            else:
                target = (mapped_index(label, manifest, classes)[0] if label.space
                          else class_index(label, classes))
                boxes_t = ()
                if target is None:
                    dropped.append(f"{v.ref.path}: label {label.value!r} is none of {'/'.join(classes)}")
                    continue
            raw.append((v.ref, st.key, st.study_type, group, (st.split or "").lower(), target, boxes_t, corrected))
    if not raw:
        raise DataError(f"{root}: no labelled image for model {manifest.name} "
                        f"({len(scan.studies)} studies scanned, {len(dropped)} left out)")

    groups: dict[str, tuple[str, int | None]] = {}
    for ref, _st, _t, group, lay, target, boxes_t, _c in raw:
        strat = target if task != "detection" else int(bool(boxes_t))
        groups.setdefault(group, (lay, strat))
    stored = read_splits(splits_file)
    assignment, source = assign_splits(groups, config, stored)
    # the items of the training split (before a quick run's max_items subset): their corrections
    # are what a run consumes
    train_keys = {k for r in raw if assignment[r[3]] == "train" for k in (r[0].key, r[1])}
    if config.max_items:
        train_groups = sorted((g for g, s in assignment.items() if s == "train"),
                              key=lambda g: _unit(config.seed, "subset", g))
        keep = set(train_groups[:config.max_items])
        raw = [r for r in raw if assignment[r[3]] != "train" or r[3] in keep]
    samples = tuple(Sample(ref=r[0], study=r[1], study_type=r[2], group=r[3], split=assignment[r[3]],
                           target=r[5], boxes=r[6], corrected=r[7]) for r in raw)

    # the data hash (file contents, labels, splits)
    h = hashlib.sha256()
    lines = []
    for i, s in enumerate(samples):
        if i % 200 == 0:
            yield Progress(i, len(samples), f"hashing data ({i}/{len(samples)})")
        try:
            fsha = file_sha256(s.ref.path)
        except OSError as exc:
            fsha = f"unreadable:{exc.strerror or exc}"
        lab = s.target if task != "detection" else [(round(b.x, 1), round(b.y, 1), round(b.width, 1),
                                                      round(b.height, 1), c) for b, c in s.boxes]
        lines.append(f"{relative_key(s.ref.key, root)}\t{s.split}\t{json.dumps(lab)}\t{fsha}")
    for line in sorted(lines):
        h.update(line.encode() + b"\n")

    # the queue events this data set uses
    used: list[int] = []
    if store is not None:
        pending = {e.id for e in store.pending()
                   if not e.space or spaces.comparable(manifest, e.space)[0]}  # the model's queue
        in_data = {k for r in raw for k in (r[0].key, r[1])}
        used = sorted(e.id for e in events if e.id in pending
                      and (e.key in train_keys or (e.exclude_from_training and e.key not in in_data))
                      and (task == "detection" or e.kind == "label"))
    data = TrainData(root=root, task=task, classes=classes, samples=samples, data_hash=h.hexdigest(),
                     used_events=tuple(used), n_corrected=sum(s.corrected for s in samples),
                     n_excluded=n_excluded, dropped=tuple(dropped), split_source=source,
                     space=model_space.name, stats={"assignment": assignment})
    if not data.split("train"):
        raise DataError(f"{root}: no training images left after the locked test and validation splits")
    if task != "detection" and len({s.target for s in data.split("train")}) < 2:
        raise DataError(f"{root}: the training split holds one class only "
                        f"({classes[data.split('train')[0].target]}); a classifier needs two")
    yield Progress(len(samples), len(samples), f"{len(samples)} images: " + ", ".join(
        f"{k} {len(data.split(k))}" for k in SPLITS), data)
