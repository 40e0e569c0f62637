"""`radview review PATH --model M` with --label-issues, --next or --calibrate.

- `--label-issues [--folds K] [--method M]`: likely label errors in the folder's own labels
  (any label space) from out-of-fold heads on the model's frozen, cached features
  (radview.review.label_issues). JSON: `label_issues`, a ranked list of {path, given,
  suggested, score, reason, ...}.
- `--next [--strategy entropy|margin|least|tta|mc-dropout|random|first] [--tta N]`: the
  unlabelled studies ordered by uncertainty (radview.review.active). The probabilities come
  from the model when the folder's labels are its classes (or there are none), else from a
  head fitted on the folder's labelled studies (their own label space) over the model's
  features; tta / mc-dropout always use the model.
- `--calibrate [--site NAME]`: reliability and ECE of the model's study probabilities on the
  labelled studies (overall, per label space and per top-level folder), a temperature fitted
  on half of the studies (grouped by patient) and ECE before/after on the other half, then
  the temperature fitted on all of them saved as the site's calibration
  (radview.review.calibration). The site defaults to the folder's name.

Called from radview.cli.review (which owns the subcommand); the logic lives here.
"""
from __future__ import annotations

import json
import os
import sys

__all__ = ["add_arguments", "wants", "run"]


def add_arguments(p) -> None:
    g = p.add_argument_group("label issues, active learning, calibration")
    g.add_argument("--label-issues", action="store_true",
                   help="rank likely label errors (out-of-fold heads on the model's features)")
    g.add_argument("--folds", type=int, default=5, metavar="K",
                   help="folds for --label-issues, grouped by patient/study (5)")
    g.add_argument("--method", default="prune_by_noise_rate",
                   choices=("prune_by_noise_rate", "prune_by_class", "confident_joint"),
                   help="confident-learning rule that flags issues (prune_by_noise_rate)")
    g.add_argument("--next", action="store_true",
                   help="order the unlabelled studies by uncertainty (active learning)")
    g.add_argument("--strategy", default="entropy",
                   choices=("entropy", "margin", "least", "tta", "mc-dropout", "random",
                            "first"),
                   help="--next ordering (entropy)")
    g.add_argument("--tta", type=int, default=4, metavar="N",
                   help="augmentations (or dropout samples) for --strategy tta / mc-dropout (4)")
    g.add_argument("--calibrate", action="store_true",
                   help="ECE before/after temperature scaling; saves the site's calibration")
    g.add_argument("--site", help="site name for --calibrate (default: the folder's name)")
    g.add_argument("--seed", type=int, default=0, help="folds, splits and random order (0)")


def wants(args) -> bool:
    return bool(getattr(args, "label_issues", False) or getattr(args, "next", False)
                or getattr(args, "calibrate", False))


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def run(args) -> int:
    from radview.cli import CliError
    from radview.io import scan
    from radview.models.registry import ModelError, get_model_info

    if not os.path.exists(args.path):
        raise CliError(f"{args.path}: no such file or folder")
    if args.labels and not os.path.isfile(args.labels):
        raise CliError(f"{args.labels}: no such label file")
    if args.folds < 2:
        raise CliError("--folds must be at least 2")
    if args.tta < 1:
        raise CliError("--tta must be at least 1")
    try:
        info = get_model_info(args.model)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    if info.manifest is None:
        raise CliError(f"model {args.model}: {info.status}")
    result = scan(args.path, labels=args.labels)
    for e in result.errors:
        _err(f"skipped {e.path}: {e.reason}")
    studies = [s for s in result.studies if s.views]
    if not studies:
        raise CliError(f"{args.path}: no images found")
    truths = _truths(args, studies)
    out: dict = {"path": str(args.path), "model": args.model,
                 "model_version": info.manifest.version}
    text: list[str] = []
    try:
        if args.label_issues:
            _label_issues(args, info, studies, truths, out, text)
        if args.next:
            _next(args, info, studies, truths, out, text)
        if args.calibrate:
            _calibrate(args, info, studies, truths, out, text)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        json.dump(out, sys.stdout, indent=1, allow_nan=False, default=_num)
        sys.stdout.write("\n")
    else:
        print("\n".join(text))
    return 0


def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return None if f != f else f


def _truths(args, studies) -> dict:
    """{study key: Truth}: folder labels, store labels, --labels; corrections win."""
    from radview.review import truths_from_studies
    from radview.review.collect import store_overrides

    overrides, corrected = {}, {}
    if not args.no_store:
        store = _store()
        if store is not None:
            overrides, corrected = store_overrides(store, studies,
                                                   include_source=not args.labels)
    return truths_from_studies(studies, overrides, corrected)


def _store():
    from radview.store import StoreError, open_store

    try:
        return open_store()
    except (StoreError, OSError) as exc:
        try:
            s = open_store(readonly=True)
            _err(f"label store read-only: {exc}")
            return s
        except (StoreError, OSError):
            _err(f"label store unavailable ({exc}); using folder labels only")
            return None


def _space(study, truth) -> str:
    return (getattr(truth.label, "space", "") or getattr(study, "space", "") or "")


def _features(args, info, refs):
    from radview.cli import CliError
    from radview.models.model_features import FeatureError, iter_features

    feats = None
    try:
        for prog in iter_features(refs, args.model, device=args.device):
            if prog.payload is not None:
                feats = prog.payload
            elif prog.total and prog.done and (prog.done % 64 == 0 or prog.done == prog.total):
                _err(prog.message)
    except FeatureError as exc:
        raise CliError(str(exc)) from None
    except (RuntimeError, ValueError) as exc:
        raise CliError(f"model {args.model}: {exc}") from None
    for key, reason in feats.errors:
        _err(f"no features for {key}: {reason}")
    if feats.note:
        _err(feats.note)
    if feats.n_cached:
        _err(f"features: {feats.n_cached} cached, {feats.n_computed} computed")
    return feats


def _rows(studies, feats):
    """(x_rows, study_of_row, kept studies, skipped) for studies with features."""
    import numpy as np

    rows, owner, kept, skipped = [], [], [], []
    for s in studies:
        r = [feats.row(v.ref.key) for v in s.views]
        r = [i for i in r if i is not None]
        if not r:
            skipped.append((s.key, "no view could be read"))
            continue
        rows += r
        owner += [len(kept)] * len(r)
        kept.append(s)
    x = feats.matrix[np.asarray(rows, np.intp)] if rows else np.zeros((0, 1), np.float32)
    return x, np.asarray(owner, np.intp), kept, skipped


def _box_label_issues(args, info, studies, truths, out, text) -> None:
    """Detector: likely missed / spurious boxes from the model's boxes vs the label boxes."""
    from radview.cli import CliError
    from radview.review.collect import iter_study_predictions
    from radview.review.label_issues import box_issues

    labelled = [s for s in studies if s.key in truths]
    if not labelled:
        raise CliError(f"{args.path}: no study has labels (boxes or a class) to check")
    labels, paths = {}, {}
    for s in labelled:
        t = truths[s.key]
        for v in s.views:
            lab = t.image_labels.get(v.ref.key)
            if lab is None and len(s.views) == 1:
                lab = t.label
            if lab is not None:
                labels[v.ref.key] = tuple(lab.boxes)
                paths[v.ref.key] = v.ref.path
    store = None if args.no_store else _store()
    collected = None
    for prog in iter_study_predictions(labelled, args.model, store=store, device=args.device):
        if prog.payload is not None:
            collected = prog.payload
    preds = {p.ref.key: p.boxes for sp in collected.predictions for p in sp.views
             if p.error is None and p.ref.key in labels}
    thr = float(info.manifest.threshold)
    issues = box_issues(preds, labels, score_threshold=thr, support_threshold=thr / 2,
                        paths=paths)
    out["box_issues"] = [{"key": b.key, "path": b.path, "kind": b.kind,
                          "box": [b.box.x, b.box.y, b.box.width, b.box.height],
                          "score": round(b.score, 6), "best_iou": round(b.best_iou, 6),
                          "reason": b.reason} for b in issues]
    out["label_issues"] = []
    out["note"] = ("box issues are out-of-fold only for images the detector did not train on "
                   "(e.g. its held-out split)")
    n_m = sum(b.kind == "missed" for b in issues)
    text.append(f"box issues of {args.model} on {len(preds)} images: {n_m} likely missed "
                f"boxes, {len(issues) - n_m} likely spurious label boxes ({out['note']})")
    for rank, b in enumerate(issues, 1):
        text.append(f"{rank:4d}. {b.score:.3f}  {b.kind:8s}  {b.path}")
        text.append(f"        {b.reason}")


def _label_issues(args, info, studies, truths, out, text) -> None:
    from radview.cli import CliError
    from radview.review.label_issues import find_label_issues, issues_to_dict

    if info.manifest.task == "detection":
        return _box_label_issues(args, info, studies, truths, out, text)
    labelled, skipped = [], []
    for s in studies:
        t = truths.get(s.key)
        if t is None:
            continue
        if t.label.value is None:
            skipped.append((s.key, "only boxes, no class label (box issues need a detector's "
                                   "out-of-fold boxes)"))
            continue
        labelled.append(s)
    if not labelled:
        raise CliError(f"{args.path}: no study has a class label to check (use class "
                       "folders, a MURA layout, the label store or --labels)")
    feats = _features(args, info, [v.ref for s in labelled for v in s.views])
    by_space: dict[str, list] = {}
    for s in labelled:
        by_space.setdefault(_space(s, truths[s.key]), []).append(s)
    reports, all_items = [], []
    for space, group in sorted(by_space.items()):
        x, owner, kept, miss = _rows(group, feats)
        skipped += miss
        given = [str(truths[s.key].label.value) for s in kept]
        if len(set(given)) < 2 or len(kept) < 2:
            skipped += [(s.key, f"label space {space or '(unnamed)'} has fewer than two "
                                "classes or studies here") for s in kept]
            continue
        try:
            rep = find_label_issues(
                x, owner, given, [s.key for s in kept],
                groups=[s.patient or s.key for s in kept],
                paths=[s.views[0].ref.path if len(s.views) == 1 else s.key for s in kept],
                n_folds=args.folds, method=args.method, seed=args.seed, model=args.model,
                model_version=info.manifest.version)
        except ValueError as exc:
            raise CliError(f"label issues ({space or 'labels'}): {exc}") from None
        d = issues_to_dict(rep)
        d["space"] = space
        for it in d["label_issues"]:
            it["space"] = space
        reports.append(d)
        all_items += d["label_issues"]
        text.append(f"label issues{' in ' + space if space else ''}: {len(rep.issues)} of "
                    f"{rep.n_studies} studies flagged ({rep.n_folds} folds grouped by patient, "
                    f"out-of-fold accuracy {rep.oof_accuracy:.3f}, {rep.method})")
        text.append("  estimated label noise: " + ", ".join(
            f"{c} {r:.1%}" for c, r in zip(rep.classes, rep.noise_rate)))
        for rank, r in enumerate(rep.issues, 1):
            text.append(f"{rank:4d}. {r.score:.3f}  {r.given} -> {r.suggested}  {r.path}")
            text.append(f"        {r.reason}")
    for k, reason in skipped:
        _err(f"left out {k}: {reason}")
    if not reports:
        raise CliError("no label space here has two classes with features to compare")
    all_items.sort(key=lambda it: -it["score"])
    out["label_issues"] = all_items
    out["label_spaces"] = reports
    out["skipped"] = [{"key": k, "reason": r} for k, r in skipped]


def _model_study_probs(args, studies, model_name):
    """(keys, (n, C) probs) of the model on studies (prediction cache first)."""
    import numpy as np

    from radview.review.collect import iter_study_predictions

    store = None if args.no_store else _store()
    collected = None
    for prog in iter_study_predictions(studies, model_name, store=store, device=args.device):
        if prog.payload is not None:
            collected = prog.payload
    if collected.cache_note:
        _err(collected.cache_note)
    keys, probs = [], []
    for sp in collected.predictions:
        if sp.probs:
            keys.append(sp.study_key)
            probs.append(sp.probs)
    return keys, (np.asarray(probs, np.float64) if probs else np.zeros((0, 0)))


def _labels_are_model_classes(truths, classes) -> bool:
    from radview.review.data import class_index

    return all(class_index(t.label, tuple(classes)) is not None for t in truths.values())


def _next(args, info, studies, truths, out, text) -> None:
    import numpy as np

    from radview.cli import CliError
    from radview.review.active import order_studies, orders_to_dict

    todo = [s for s in studies if s.key not in truths]
    classes = tuple(info.manifest.classes)
    source = "model"
    probs = variance = None
    keys = [s.key for s in todo]
    if not todo:
        raise CliError(f"{args.path}: every study has a label; nothing to order")
    if args.strategy not in ("random", "first"):
        labelled = [s for s in studies if s.key in truths and truths[s.key].label.value]
        use_head = (labelled and not _labels_are_model_classes(
            {s.key: truths[s.key] for s in labelled}, classes)
            and len({truths[s.key].label.value for s in labelled}) >= 2)
        if args.strategy in ("tta", "mc-dropout"):
            if info.manifest.task == "detection":
                raise CliError(f"--strategy {args.strategy} needs a classifier")
            from radview.models.model_features import FeatureError, tta_probs

            try:
                ikeys, p, errs = tta_probs([v.ref for s in todo for v in s.views], args.model,
                                           args.tta, device=args.device,
                                           mc_dropout=args.strategy == "mc-dropout")
            except FeatureError as exc:
                raise CliError(str(exc)) from None
            for k, reason in errs:
                _err(f"no prediction for {k}: {reason}")
            row = {k: i for i, k in enumerate(ikeys)}
            keys, var, mean = [], [], []
            for s in todo:
                r = [row[v.ref.key] for v in s.views if v.ref.key in row]
                if r:
                    keys.append(s.key)
                    var.append(float(p[r].var(axis=1).sum(axis=1).mean()))
                    mean.append(p[r].mean(axis=(0, 1)))
            variance, probs = np.asarray(var), np.asarray(mean)
            source = (f"model, {args.tta} test-time augmentations" if args.strategy == "tta"
                      else f"model, {args.tta} MC-dropout samples")
        elif use_head:
            probs, keys, classes = _head_probs(args, info, labelled, todo, truths)
            source = "head fitted on the folder's labelled studies (their label space)"
        else:
            keys, probs = _model_study_probs(args, todo, args.model)
    order = order_studies(keys, probs, args.strategy, classes=classes, variance=variance,
                          seed=args.seed)
    d = orders_to_dict(order, args.strategy)
    d["source"] = source if args.strategy not in ("random", "first") else args.strategy
    path = {s.key: (s.views[0].ref.path if len(s.views) == 1 else s.key) for s in todo}
    for item in d["next"]:
        item["path"] = path.get(item["key"], item["key"])
    out["next"] = d["next"]
    out["active_learning"] = {k: v for k, v in d.items() if k != "next"}
    text.append(f"next studies to read ({args.strategy}; {d['source']}): {len(order)} unlabelled")
    for o in order[: max(args.top, 1)]:
        text.append(f"{o.rank + 1:4d}. {o.score:.3f}  {path.get(o.key, o.key)}  ({o.reason})")
    if len(order) > max(args.top, 1):
        text.append(f"      ... {len(order) - max(args.top, 1)} more (--top K, --json)")


def _head_probs(args, info, labelled, todo, truths):
    import numpy as np

    from radview.review.label_issues import fit_head, reduce_features

    feats = _features(args, info, [v.ref for s in labelled + todo for v in s.views])
    x, owner, kept, _ = _rows(labelled + todo, feats)
    n_lab = sum(1 for s in kept if s.key in truths)
    classes = tuple(sorted({str(truths[s.key].label.value) for s in kept if s.key in truths}))
    z = reduce_features(x)
    y = np.asarray([classes.index(str(truths[s.key].label.value)) for s in kept[:n_lab]])
    lab_rows = owner < n_lab
    head = fit_head(z[lab_rows], y[owner[lab_rows]], len(classes), 1e-1)
    p = head.predict_proba(z[~lab_rows])
    own = owner[~lab_rows] - n_lab
    n_todo = len(kept) - n_lab
    probs = np.zeros((n_todo, len(classes)))
    np.add.at(probs, own, p)
    probs /= np.maximum(np.bincount(own, minlength=n_todo), 1)[:, None]
    return probs, [s.key for s in kept[n_lab:]], classes


def _calibrate(args, info, studies, truths, out, text) -> None:
    import numpy as np

    from radview.cli import CliError
    from radview.review import calibration as cal
    from radview.review.data import class_index
    from radview.review.label_issues import group_folds

    classes = tuple(info.manifest.classes)  # a detector's: (normal, positive) by best box
    labelled = [s for s in studies if s.key in truths
                and class_index(truths[s.key].label, classes) is not None]
    if len(labelled) < 4:
        raise CliError(f"--calibrate needs at least 4 labelled studies whose labels are the "
                       f"model's classes {classes}; found {len(labelled)}")
    keys, probs = _model_study_probs(args, labelled, args.model)
    by_key = {s.key: s for s in labelled}
    y = np.asarray([class_index(truths[k].label, classes) for k in keys], np.intp)
    root = os.path.abspath(args.path)
    site = args.site or cal.site_for_path(root)
    if os.path.isfile(root):
        root = os.path.dirname(root)

    def folder(k):
        s = by_key[k]
        rel = os.path.relpath(os.path.abspath(s.views[0].ref.path), root)
        return rel.split(os.sep)[0] if os.sep in rel else "."

    spaces = [_space(by_key[k], truths[k]) or info.manifest.name for k in keys]
    halves = group_folds([by_key[k].patient or k for k in keys], y, 2, args.seed)
    fit, held = halves == 0, halves == 1
    t_half = cal.fit_temperature(probs[fit], y[fit])
    before = cal.reliability(probs[held], y[held])
    after = cal.reliability(cal.apply_temperature(probs[held], t_half), y[held])
    t_all = cal.fit_temperature(probs, y)
    try:
        saved = cal.save_site_calibration(
            args.model, site, t_all, model_version=info.manifest.version,
            space=spaces[0] if len(set(spaces)) == 1 else "", ece_before=before.ece,
            ece_after=after.ece, n_fit=int(len(y)), n_heldout=int(held.sum()),
            note=f"held-out check: T={t_half:.3f} fitted on {int(fit.sum())} studies")
    except (OSError, ValueError) as exc:
        raise CliError(f"site calibration not saved: {exc}") from None
    overall = cal.reliability(probs, y)
    per_folder = cal.reliability_by(probs, y, [folder(k) for k in keys])
    per_space = cal.reliability_by(probs, y, spaces)
    status = cal.calibration_status(args.model, site, info.manifest.version)
    out["calibration"] = {
        "site": site, "temperature": saved.temperature, "n_studies": int(len(y)),
        "heldout": {"n_fit": int(fit.sum()), "n_heldout": int(held.sum()),
                    "temperature": t_half, "ece_before": before.ece, "ece_after": after.ece,
                    "reliability_before": before.to_dict(),
                    "reliability_after": after.to_dict()},
        "ece": overall.ece, "reliability": overall.to_dict(),
        "per_folder": {k: v.to_dict() for k, v in per_folder.items()},
        "per_label_space": {k: v.to_dict() for k, v in per_space.items()},
        "status": status.text, "calibrated": status.calibrated,
        "saved_to": str(cal.calibration_path()),
    }
    if getattr(args, "report", None):
        from pathlib import Path

        from radview.review.report import render_reliability

        try:
            os.makedirs(args.report, exist_ok=True)
            png = render_reliability({"before": before, f"after (T={t_half:.2f})": after},
                                     Path(args.report) / "reliability.png",
                                     title=f"Reliability at site {site} (held-out half)")
        except OSError as exc:
            raise CliError(f"{args.report}: cannot write the reliability diagram ({exc})") from None
        out["calibration"]["reliability_png"] = str(png)
        text.append(f"  reliability diagram: {png}")
    text.append(f"calibration of {args.model} at site {site} on {len(y)} labelled studies")
    text.append(f"  held-out half ({int(held.sum())} studies): ECE {before.ece:.4f} before, "
                f"{after.ece:.4f} after temperature scaling (T={t_half:.3f} fitted on the "
                f"other {int(fit.sum())})")
    text.append(f"  saved T={saved.temperature:.3f} (fitted on all {len(y)}) as site {site}'s "
                f"calibration: {status.text}")
    for name, groups in (("folder", per_folder), ("label space", per_space)):
        for g, r in groups.items():
            text.append(f"  ECE by {name} {g}: {r.ece:.4f} (n={r.n})")
