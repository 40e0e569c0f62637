"""`radview review PATH --model NAME [--labels CSV] [--top K] [--json] [--report DIR]`.

Scans PATH, takes labels from the folder layout, the label store (corrections always win) or
--labels, predicts what the store's prediction cache lacks, and prints accuracy, Cohen's kappa
and AUROC with bootstrap 95% CIs, sensitivity/specificity at the threshold, per study type and
per class, the confusion matrix, the most confused pairs and the top-K losses.

Labels, weakest first: the folder layout (class folders, MURA, RSNA), labels imported into the
store, --labels (when given, store-imported labels are not used), corrections in the store
(always win). The threshold: --threshold, else the site's saved one, else the model's.
Label spaces (radview.spaces): only studies whose labels are in a space the model predicts are
compared (and predicted); the others are listed as left out, "not comparable", with the reason
(JSON: `skipped`, `n_not_comparable`; `n_studies` counts only the studies compared).
"""
from __future__ import annotations

import json
import os
import sys


def add_subparser(sub) -> None:
    p = sub.add_parser("review", help="metrics, confusion matrix and top losses of a model on a "
                                      "labelled folder")
    p.add_argument("path", help="a folder (or one image) with labels")
    p.add_argument("--model", required=True, help="model name (see `radview models list`)")
    p.add_argument("--labels", help="label file: MURA CSV, RSNA CSV or path,label CSV (paths "
                                    "absolute or relative to PATH)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="top losses to list (10)")
    p.add_argument("--min-count", type=int, default=1, help="most confused: minimum count (1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", metavar="DIR", help="write PNG plots and index.html into DIR")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--threshold", type=float, help="decision threshold for this run (binary)")
    p.add_argument("--save-threshold", metavar="CRITERION",
                   help="save a site threshold for the model: youden, kappa, accuracy or a "
                        "number; marked as site-chosen and used by later reviews")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (1000)")
    p.add_argument("--project", metavar="NAME",
                   help="agreement of a reading project's reads (radview worklist): inter-reader "
                        "kappa, each reader vs the model and vs the final label, per study type")
    p.add_argument("--agreement", action="store_true",
                   help="agreement of the readers' corrections in the store (without --project)")
    p.add_argument("--no-store", action="store_true",
                   help="ignore the label store and its prediction cache")
    from radview.cli import _label_issues  # --label-issues, --next, --calibrate (issue 17)

    _label_issues.add_arguments(p)
    p.set_defaults(func=run)


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def run(args) -> int:
    from radview.cli import CliError, _label_issues

    if _label_issues.wants(args):
        return _label_issues.run(args)
    from radview.io import scan
    from radview.review import build_review, summarize, truths_from_studies
    from radview.review import thresholds as site
    from radview.review.collect import iter_study_predictions, store_overrides

    if not os.path.exists(args.path):
        raise CliError(f"{args.path}: no such file or folder")
    if args.labels and not os.path.isfile(args.labels):
        raise CliError(f"{args.labels}: no such label file")
    if args.top < 0 or args.resamples < 0:
        raise CliError("--top and --resamples must not be negative")
    from radview.models.registry import ModelError, get_model_info

    try:
        info = get_model_info(args.model)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    if info.manifest is None:
        raise CliError(f"model {args.model}: {info.status}")
    classes = info.manifest.classes

    result = scan(args.path, labels=args.labels)
    for e in result.errors:
        _err(f"skipped {e.path}: {e.reason}")
    studies = [s for s in result.studies if s.views]
    if not studies:
        raise CliError(f"{args.path}: no images found")

    store, overrides, corrected = None, {}, {}
    if not args.no_store:
        store, note = _open_store()
        if note:
            _err(note)
        if store is not None:
            overrides, corrected = store_overrides(store, studies,
                                                   include_source=not args.labels)
    truths = truths_from_studies(studies, overrides, corrected)
    if not truths:
        raise CliError(f"{args.path}: no study has a label (use class folders, a MURA/RSNA "
                       "layout, the label store or --labels)")
    # label spaces: only studies whose labels the model predicts are compared (radview.spaces)
    from radview.review.data import comparable_truths

    truths, not_comparable = comparable_truths(truths, info.manifest)
    for key, reason in not_comparable:
        _err(f"left out {key}: {reason}")
    if not truths:
        reasons = sorted({r for _, r in not_comparable})
        raise CliError(f"no study of {args.path} has labels comparable with model {args.model}: "
                       + "; ".join(reasons[:3]))

    try:
        manifest_t = info.manifest.threshold if len(classes) == 2 else None
        threshold, source = ((args.threshold, "given") if args.threshold is not None
                             else site.effective_threshold(args.model, manifest_t))
    except ValueError as exc:
        raise CliError(str(exc)) from None

    labelled = [s for s in studies if s.key in truths]
    collected = None
    try:
        for prog in iter_study_predictions(labelled, args.model, store=store,
                                           device=args.device, threshold=threshold):
            if prog.payload is not None:
                collected = prog.payload
            elif prog.total and (prog.done % 50 == 0 or prog.done == prog.total) and prog.done:
                _err(prog.message)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    except (RuntimeError, ValueError) as exc:  # e.g. an unavailable --device
        raise CliError(f"model {args.model}: {exc}") from None
    if collected.cache_note:
        _err(collected.cache_note)
    if info.manifest.task == "detection":  # boxes: challenge metric, FROC, why-losses (issue 12)
        from radview.review.detection import review_cli

        code = review_cli(args, info.manifest, collected, truths, args.threshold)
        if store is not None:
            store.close()
        return code

    data = build_review(collected.predictions, truths, threshold=threshold,
                        threshold_source=source, manifest=info.manifest)
    for key, reason in data.skipped:
        _err(f"left out {key}: {reason}")
    if len(data) == 0:
        raise CliError(f"no study has both a prediction and a label naming one of the model's "
                       f"classes {classes}")
    summary = summarize(data, top_k=args.top, min_count=args.min_count,
                        n_resamples=args.resamples)

    agreement = _agreement(args, store, collected, studies)

    saved = None
    if args.save_threshold:
        saved = _save_threshold(args, summary, data)

    if args.report:
        from radview.review.report import write_report

        images = _report_images(summary.top_losses, args, info, studies)
        index = write_report(summary, args.report, images, title=str(args.path))
        _err(f"report: {index}")

    if args.json:
        from radview.review import summary_to_dict

        out = summary_to_dict(summary)
        out["skipped"] = out.get("skipped", []) + [{"study": k, "reason": r}
                                                   for k, r in not_comparable]
        out["n_not_comparable"] = len(not_comparable) + len(data.not_comparable)
        out["label_space"] = data.space
        out["n_cached"] = collected.n_cached
        out["n_predicted"] = collected.n_predicted
        out["n_corrected"] = int(data.corrected.sum())
        if saved is not None:
            out["saved_threshold"] = {"threshold": saved.threshold, "criterion": saved.criterion,
                                      "source": saved.source}
        if agreement is not None:
            from radview.review.agreement import team_agreement_dict

            out["agreement"] = team_agreement_dict(agreement)
            out["agreement"]["project"] = args.project
        json.dump(out, sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    else:
        from radview.review.text import format_summary

        extra = [f"predictions: {collected.n_cached} images cached, {collected.n_predicted} "
                 "computed"]
        if int(data.corrected.sum()):
            extra.append(f"{int(data.corrected.sum())} labels from corrections")
        if not_comparable:
            extra.append(f"{len(not_comparable)} studies not comparable with the model's label "
                         f"space {data.space} (left out, see above)")
        if saved is not None:
            extra.append(f"saved site threshold {saved.threshold:.3f} ({saved.criterion})")
        print(format_summary(summary, extra))
        if agreement is not None:
            from radview.review.agreement import team_agreement_lines

            print(f"\nagreement ({'project ' + args.project if args.project else 'corrections'}, "
                  f"{agreement.n_items} items, readers {', '.join(agreement.readers) or 'none'}):")
            print("\n".join(team_agreement_lines(agreement, "  ") or ["  nothing to compare"]))
    if store is not None:
        store.close()
    return 0


def _agreement(args, store, collected, studies):
    """The team's agreement (issue 16) over the reviewed studies, or None when not asked."""
    from radview.cli import CliError

    if not (args.project or args.agreement):
        return None
    if store is None:
        raise CliError("--project / --agreement need the label store (not --no-store)")
    from radview.review import agreement as ag

    reviewed = {s.key for s in studies}
    model = {sp.study_key: sp.predicted for sp in collected.predictions if sp.predicted}
    n_boot = args.resamples
    try:
        if args.project:
            return ag.project_agreement(store, args.project, model=model, n_boot=n_boot)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    reads = {r: {k: v for k, v in per.items() if k in reviewed}
             for r, per in ag.reads_from_store(store, level="study").items()}
    data_truth = {k: v.value for k, v in store.labels("study", list(reviewed)).items() if v.value}
    return ag.team_agreement(reads, final=data_truth, model=model,
                             study_types={s.key: s.study_type for s in studies if s.study_type},
                             n_boot=n_boot)


def _open_store():
    from radview.store import LabelStore, StoreError
    from radview.store.backends import store_target

    try:
        path = store_target()  # RADVIEW_STORE / the settings may name the team's PostgreSQL
    except (OSError, StoreError) as exc:
        return None, f"label store unavailable ({exc}); using folder labels only"

    try:
        return LabelStore(path), ""
    except StoreError as exc:
        try:  # a read-only share still gives labels and cached predictions
            return LabelStore(path, readonly=True), f"label store read-only: {exc}"
        except StoreError:
            return None, f"label store unavailable ({exc}); using folder labels only"


def _save_threshold(args, summary, data):
    from radview.cli import CliError
    from radview.review import thresholds as site

    if summary.sweep is None:
        raise CliError("--save-threshold needs a binary model")
    crit = args.save_threshold.strip().lower()
    if crit in ("youden", "kappa", "accuracy"):
        value = summary.sweep.best(crit)
        if value != value:  # nan
            raise CliError(f"no {crit}-best threshold: the labels hold one class only")
    else:
        try:
            value = float(crit)
        except ValueError:
            raise CliError(f"--save-threshold: {args.save_threshold!r} is not youden, kappa, "
                           "accuracy or a number") from None
        crit = "manual"
    try:
        return site.save_site_threshold(args.model, min(max(value, 0.0), 1.0),
                                        model_version=data.model_version, criterion=crit,
                                        n_studies=len(data))
    except (OSError, ValueError) as exc:
        raise CliError(f"site threshold not saved: {exc}") from None


def _report_images(top_losses, args, info, studies, max_views: int = 4, size: int = 256):
    """{ref key: (display uint8, CAM or None)} for the views of the top-loss studies; CAMs
    need the model (loaded here, lazily); a view that fails is drawn as 'no image'."""
    from radview.io import ImageError, load_frame
    from radview.io.display import display_image
    from radview.types import ImageRef

    by_key = {v.ref.key: v.ref for s in studies for v in s.views}
    model = None
    if info.manifest.task != "detection":
        try:
            from radview.models.registry import load_model

            model = load_model(args.model, args.device)
        except Exception as exc:  # noqa: BLE001 - the report still draws the images
            _err(f"no CAMs in the report: {exc}")
        if model is not None and getattr(model, "scripted", False):
            _err("no CAMs in the report: a TorchScript model takes no Grad-CAM hooks")
            model = None
    out = {}
    for t in top_losses:
        for v in t.views[:max_views]:
            ref = by_key.get(v.ref) or ImageRef(v.ref)
            try:
                frame = load_frame(ref.path, ref.frame)
            except ImageError as exc:
                _err(f"report: {exc}")
                continue
            cam = None
            if model is not None:
                try:
                    from radview.models.cam import grad_cam

                    cam = grad_cam(model, frame).data  # the viewer's default target
                except Exception as exc:  # noqa: BLE001
                    _err(f"report: no CAM for {ref.path}: {exc}")
            gray = display_image(frame, max_size=size)
            out[v.ref] = (gray, cam)
    return out
