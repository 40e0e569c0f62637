"""`radview predict PATH --model NAME [--device D] [--out preds.csv|.json] [--cam-dir DIR]`

Runs a model over an image file or a folder (grouped into studies by radview.io.scan) and
writes one row per image and, after its images, one row per study (the MURA rule). Columns:

    level (image|study|skipped), path, study, predicted, probability, p_<class>..., boxes,
    in_domain (true|false), domain_reason, error

A study whose body part (DICOM header, else the body-part model) is outside the model's domain
is not run: one `skipped` row with the reason (radview.cli.predict_routing; --all-studies runs it).

`probability` is that of the predicted class; `boxes` is a JSON list for detection models
(pixels of the input file, whatever its size: x, y, width, height, label, score; the boxes
scoring at or above the model's threshold, every box with --all-boxes), empty otherwise; the
image probability of a detector is its best box score. A file that cannot be read gets
a row with `error` and the run carries on. Without --out, CSV goes to stdout. .json writes a list
of the same rows (numbers as numbers, boxes as a list). --cam-dir writes a Grad-CAM overlay PNG
per image (the viewer's blend). Torch is imported only when the command runs.
"""
from __future__ import annotations

import csv
import json
import os
import sys


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="run a model over images/studies and write predictions",
                              description="Run a model over an image or a folder; one row per image and per study.")
    p.add_argument("path", help="an image file or a folder")
    p.add_argument("--model", required=True, help="model name (see `radview models list`)")
    p.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (default: best available)")
    p.add_argument("--out", help="output file: .csv or .json (default: CSV on stdout)")
    p.add_argument("--cam-dir", help="write a Grad-CAM overlay PNG per image into this folder")
    p.add_argument("--cam-method", default=None, choices=("gradcam", "gradcam++", "hirescam"),
                   help="default: gradcam for classifiers, hirescam for detectors")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, help="torch threads (default: cores - 1)")
    p.add_argument("--no-gate", action="store_true", help="skip the out-of-domain checks (and routing)")
    p.add_argument("--all-studies", action="store_true", help="run on every study, also those whose body "
                   "part is outside the model's domain (default: skipped, one level=skipped row each)")
    p.add_argument("--labels", help="label file for the scan (MURA CSV, RSNA CSV, path,label CSV)")
    p.add_argument("--site", help="site whose calibration the probabilities are checked against "
                   "(default: the folder's name, as `radview review --calibrate` saves it)")
    p.add_argument("--all-boxes", action="store_true",
                   help="detection: write every box the model returns, also those below its threshold")
    # scale-out (radview.cli.predict_dist): torchrun ranks or --shard K/N write into the store, resumable
    p.add_argument("--shard", metavar="K/N", help="predict shard K of N (0-based) of the studies, into the "
                   "store; images already there for this model version are skipped (torchrun ranks: automatic)")
    p.add_argument("--shard-by", choices=("hash", "index"), default="hash",
                   help="hash: stable hash of the study key (default); index: sorted studies round-robin")
    p.add_argument("--store", nargs="?", const="", default=None, metavar="TARGET",
                   help="write predictions into the label store and skip those already there (TARGET: a "
                   "SQLite file or postgresql:// URL; default RADVIEW_STORE, the settings entry, the user's store)")
    p.set_defaults(func=run)


def columns(classes) -> list[str]:
    return (["level", "path", "study", "predicted", "probability"] + [f"p_{c}" for c in classes]
            + ["boxes", "in_domain", "domain_reason", "calibration", "error"])


def _boxes(pred, detection: bool, floor: float | None = None):
    """Boxes as JSON rows; floor: leave out boxes scoring below it (None: all)."""
    if not detection or pred.error:
        return None
    return [{"x": round(b.x, 2), "y": round(b.y, 2), "width": round(b.width, 2), "height": round(b.height, 2),
             "label": b.label, "score": None if b.score is None else round(b.score, 4)} for b in pred.boxes
            if floor is None or b.score is None or b.score >= floor]


def image_row(pred, study: str, threshold: float, detection: bool, floor: float | None = None) -> dict:
    from radview.models.engine import predicted_class

    row = {"level": "image", "path": pred.ref.key, "study": study}
    if pred.error:
        row.update(predicted=None, probability=None, boxes=None, in_domain=None, domain_reason="", error=pred.error)
        row.update({f"p_{c}": None for c in pred.classes})
        return row
    cls = predicted_class(pred, threshold)
    row.update(predicted=cls, probability=round(pred.probs[pred.classes.index(cls)], 6),
               boxes=_boxes(pred, detection, floor), in_domain=pred.in_domain, domain_reason=pred.domain_reason, error="")
    row.update({f"p_{c}": round(p, 6) for c, p in zip(pred.classes, pred.probs)})
    return row


def study_row(sp, detection: bool, floor: float | None = None) -> dict:
    row = {"level": "study", "path": "", "study": sp.study_key, "predicted": sp.predicted}
    if not sp.probs:
        row.update(probability=None, boxes=None, in_domain=False, domain_reason=sp.domain_reason,
                   error="no view could be read")
        row.update({f"p_{c}": None for c in sp.classes})
        return row
    row.update(probability=round(sp.probs[sp.classes.index(sp.predicted)], 6),
               boxes=[b for v in sp.views for b in (_boxes(v, detection, floor) or [])] if detection else None,
               in_domain=sp.in_domain, domain_reason=sp.domain_reason, error="")
    row.update({f"p_{c}": round(p, 6) for c, p in zip(sp.classes, sp.probs)})
    return row


def _csv_value(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return json.dumps(v)
    return v


class _Writer:
    def __init__(self, out: str | None, cols: list[str]):
        self.cols = cols
        self.json = bool(out) and out.lower().endswith(".json")
        self.rows: list[dict] = []
        if out:
            os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
            self.fh = open(out, "w", newline="", encoding="utf-8")
        else:
            self.fh = sys.stdout
        self.csv = None if self.json else csv.DictWriter(self.fh, fieldnames=cols, lineterminator="\n")
        if self.csv:
            self.csv.writeheader()

    def write(self, row: dict) -> None:
        if self.json:
            self.rows.append({c: row.get(c) for c in self.cols})
        else:
            self.csv.writerow({c: _csv_value(row.get(c)) for c in self.cols})
            self.fh.flush()

    def close(self) -> None:
        if self.json:
            json.dump(self.rows, self.fh, indent=1)
            self.fh.write("\n")
        if self.fh is not sys.stdout:
            self.fh.close()


def _write_cam(model, pred, cam_dir: str, index: int, method: str) -> str | None:
    import numpy as np
    from PIL import Image

    from radview.io import load_frame
    from radview.io.display import display_image
    from radview.models.cam import grad_cam
    from radview.models.overlay import blend_cam, draw_boxes

    frame = load_frame(pred.ref.path, pred.ref.frame)
    cam = grad_cam(model, frame, method=method)
    disp = display_image(frame)
    rgb = blend_cam(disp, cam.data)
    shown = [b for b in pred.boxes if b.score is None or b.score >= model.manifest.threshold]
    if shown:
        rgb = draw_boxes(rgb, shown)
    stem = os.path.splitext(os.path.basename(pred.ref.path))[0]
    name = f"{index:05d}_{stem}" + (f"_f{pred.ref.frame}" if pred.ref.frame else "") + ".png"
    out = os.path.join(cam_dir, name)
    Image.fromarray(np.ascontiguousarray(rgb)).save(out)
    return out


def run(args) -> int:
    from radview.cli import CliError
    from radview.cli import predict_dist

    if predict_dist.wanted(args):  # shards / torchrun ranks / --store
        return predict_dist.run(args)

    if not os.path.exists(args.path):
        raise CliError(f"{args.path}: no such file or folder")
    if args.out and not args.out.lower().endswith((".csv", ".json")):
        raise CliError(f"{args.out}: --out must end in .csv or .json")
    from radview.io import scan
    from radview.models.engine import aggregate_study, iter_predict
    from radview.models.registry import ModelError, configure_threads, load_model

    try:
        if args.threads:
            configure_threads(args.threads)
        model = load_model(args.model, args.device)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    result = scan(args.path, labels=args.labels)
    from radview.cli import predict_routing

    studies, skipped = (list(result.studies), []) if args.no_gate or args.all_studies else \
        predict_routing.route_studies(result.studies, model.manifest, args.device, args.batch_size)
    refs, study_of, sizes = [], {}, {}
    for s in studies:
        sizes[s.key] = len(s.views)
        for v in s.views:
            refs.append(v.ref)
            study_of[v.ref.key] = s.key
    m = model.manifest
    detection = m.task == "detection"
    floor = None if args.all_boxes else m.threshold
    writer = _Writer(args.out, columns(m.classes))
    from radview.review.calibration import calibration_status, site_for_path
    calib = calibration_status(m.name, args.site or site_for_path(args.path), m.version)
    print(f"radview predict: {m.name} probabilities are {calib.text}", file=sys.stderr)
    if args.cam_dir:
        os.makedirs(args.cam_dir, exist_ok=True)
    n_err = n_img = n_study = 0
    try:
        for e in result.errors:
            writer.write({"level": "image", "path": e.path, "study": "", "error": f"{e.path}: {e.reason}",
                          "domain_reason": ""})
            n_err += 1
            n_img += 1  # an image row too: the file the scan could not read
        for sr in skipped:
            writer.write({**predict_routing.skipped_row(sr), "calibration": ""})
        pending: dict[str, list] = {}
        for i, pred in enumerate(iter_predict(refs, model, batch_size=args.batch_size, gate=not args.no_gate)):
            key = study_of.get(pred.ref.key, pred.ref.key)
            writer.write({**image_row(pred, key, m.threshold, detection, floor), "calibration": calib.text})
            n_img += 1
            n_err += bool(pred.error)
            if args.cam_dir and not pred.error:
                try:
                    _write_cam(model, pred, args.cam_dir, i, args.cam_method)
                except Exception as exc:  # noqa: BLE001 - a CAM failure never stops the run
                    print(f"radview predict: CAM for {pred.ref.path} failed: {exc}", file=sys.stderr)
            pending.setdefault(key, []).append(pred)
            if len(pending[key]) == sizes.get(key, 1):
                writer.write({**study_row(aggregate_study(key, pending.pop(key), m.threshold), detection, floor),
                              "calibration": calib.text})
                n_study += 1
        for key, preds in pending.items():  # studies whose views were not all seen (should not happen)
            writer.write({**study_row(aggregate_study(key, preds, m.threshold), detection, floor),
                          "calibration": calib.text})
            n_study += 1
    finally:
        writer.close()
    if skipped:
        print(predict_routing.summary(skipped, m.name), file=sys.stderr)
    print(f"radview predict: {n_img} images, {n_study} studies, {n_err} errors"
          + (f" -> {args.out}" if args.out else ""), file=sys.stderr)
    return 0
