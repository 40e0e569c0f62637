"""`radview predict` as shards writing into the label store: torchrun ranks, `--shard K/N`, `--store`.

    torchrun --nproc_per_node 2 -m radview predict ARCHIVE --model NAME [--out all.csv]
    torchrun --nnodes 4 --node_rank R --rdzv_endpoint HOST:PORT --nproc_per_node G -m radview predict ...
    radview predict ARCHIVE --model NAME --shard 2/8 [--out shard2.csv]       # no torchrun
    radview predict ARCHIVE --model NAME --store [postgresql://user@host/db]    # one process, resumable

Every rank (or shard) predicts a disjoint set of whole studies (radview.models.shards: a stable
hash of the study key; `--shard-by index` deals the sorted studies round-robin) and writes the
predictions into the store as each batch finishes: RADVIEW_STORE / the settings entry / the user's
SQLite file, or `--store TARGET` (a SQLite file or a postgresql:// URL). Images the store already
holds for this model and version are skipped, so a run that died (a killed rank, a lost node)
resumes by running the same command again.
Under torchrun, rank 0 scans the folder and broadcasts the studies, and after every rank finished
writes `--out` (CSV on stdout without) for the whole archive from the store, with the rows of
predict.py (routing too: a study outside the model's body parts gets one `skipped` row, as in
radview.cli.predict_routing; --all-studies / --no-gate); with `--shard K/N` the process writes the
rows of its shard. Each rank prints one line to stderr: its shard, studies, images, how many were
already done, predicted now and failed. CPU ranks share the cores (`--threads` default: (cores - 1)
/ local ranks, at least 1); ranks decode in threads (one each when several share a machine;
RADVIEW_DECODER=process for decoder processes); GPU ranks use cuda:LOCAL_RANK. --cam-dir is not
available here.
"""
from __future__ import annotations

import os
import sys
import time

_CHUNK = 1000  # images read back from the store per query when writing --out


def wanted(args) -> bool:
    """Whether this predict run goes through the store (shards, torchrun ranks or --store)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        world = 1
    return bool(getattr(args, "shard", None)) or getattr(args, "store", None) is not None or world > 1


def run(args) -> int:
    from radview.cli import CliError
    from radview.models import shards

    if not os.path.exists(args.path):
        raise CliError(f"{args.path}: no such file or folder")
    if args.out and not args.out.lower().endswith((".csv", ".json")):
        raise CliError(f"{args.out}: --out must end in .csv or .json")
    if args.cam_dir:
        raise CliError("--cam-dir is not available with --shard, --store or torchrun ranks "
                       "(run `radview predict` on the studies whose heatmaps you want)")
    try:
        env_shard = shards.from_env(args.shard_by)
        shard = shards.parse_shard(args.shard, args.shard_by) if args.shard else None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if shard is not None and env_shard is not None:
        raise CliError(f"--shard {args.shard} under torchrun (WORLD_SIZE={env_shard.count}): "
                       "the ranks are the shards; use one or the other")
    group = shards.join_group() if env_shard is not None else None
    finished = False
    try:
        rc = _run(args, shard or env_shard or shards.Shard(0, 1, args.shard_by), group)
        finished = True
        return rc
    finally:
        shards.leave(group, finished=finished)


def _open_store(target):
    from radview.cli import CliError
    from radview.store import StoreError, open_store

    try:
        return open_store(target or None)
    except StoreError as exc:
        raise CliError(str(exc)) from None


def _run(args, shard, group) -> int:
    from radview.cli import CliError
    from radview.io import scan
    from radview.models import shards
    from radview.models.registry import ModelError, configure_threads, load_model

    main = group is None or group.rank == 0
    threads = args.threads or (shards.rank_threads(group.local_world_size) if group else None)
    try:
        if threads:
            configure_threads(threads)
        device = shards.rank_device(args.device, group.local_rank if group else 0)
        model = load_model(args.model, device)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    store = result = None
    if main:  # rank 0 first: it creates or migrates the store, and scans once for every rank
        store = _open_store(args.store)
        result = scan(args.path, labels=args.labels)
    result = shards.broadcast(group, result)
    if store is None:
        store = _open_store(args.store)
    mine, skipped = _route(args, shards.select(result.studies, shard, result.root), model, device, store)
    m = model.manifest
    workers = 1 if group is not None and group.local_world_size > 1 else 2
    # decoder threads, not processes (RADVIEW_DECODER=process to override): the ranks are the
    # parallelism, and a killed rank leaves no decoder process behind (a ProcessPoolExecutor
    # worker outlives a parent killed with SIGKILL, holding its stderr open)
    decoder = os.environ.get("RADVIEW_DECODER", "").strip() or "thread"
    t0 = shown = time.monotonic()
    last = None
    for last in shards.predict_shard(mine, model, store, shard, batch_size=args.batch_size,
                                     gate=not args.no_gate, workers=workers, decoder=decoder):
        if not last.finished and time.monotonic() - shown > 10:
            shown = time.monotonic()
            print(f"radview predict: shard {shard.text}: {last.already_done + last.predicted + last.failed}"
                  f"/{last.images} images", file=sys.stderr)
    seconds = time.monotonic() - t0
    print(f"radview predict: shard {shard.text}: {last.studies} studies, {last.images} images: "
          f"{last.already_done} already done, {last.predicted} predicted, {last.failed} failed "
          f"({seconds:.1f} s, {m.name} {m.version} -> {store.path})", file=sys.stderr)
    summary = {"shard": shard.text, "images": last.images, "already_done": last.already_done,
               "predicted": last.predicted, "failed": last.failed, "seconds": seconds,
               "errors": {p.ref.key: p.error for p in last.errors}, "skipped": skipped,
               "scan_errors": [(e.path, e.reason) for e in result.errors
                               if shards.owns_path(e.path, shard, result.root)]}
    try:
        summaries = shards.gather(group, summary)  # every rank finished (a barrier)
    except RuntimeError as exc:  # gloo: a peer died (killed, lost node) before it finished
        raise CliError(f"shard {shard.text}: another rank stopped before finishing ({str(exc).splitlines()[0]}); "
                       "what every rank stored is kept: run the same command again to resume") from None
    if summaries is None:
        return 0
    studies = result.studies if group is not None else mine
    _write(args, store, model, studies, summaries)
    return 0


def _route(args, studies, model, device, store) -> tuple[list, list[dict]]:
    """Routing as in a one-process predict (radview.cli.predict_routing: a study outside the
    model's body parts is not run, one `skipped` row): (studies to run, skipped rows). Studies
    whose every view the store holds for this model version were routed to it before: not again."""
    if args.no_gate or getattr(args, "all_studies", False):
        return list(studies), []
    from radview.cli import predict_routing
    from radview.models.shards import refs_of

    m = model.manifest
    done = store.get_predictions(m.name, m.version, refs_of(studies), check_files=False)
    finished = {s.key for s in studies if s.views and all(v.ref.key in done for v in s.views)}
    run, out = predict_routing.route_studies([s for s in studies if s.key not in finished], m, device,
                                             args.batch_size)
    keep = finished | {s.key for s in run}
    return [s for s in studies if s.key in keep], [predict_routing.skipped_row(sr) for sr in out]


def _write(args, store, model, studies, summaries) -> None:
    from radview.cli.predict import _Writer, columns, image_row, study_row
    from radview.models.engine import aggregate_study
    from radview.review.calibration import calibration_status, site_for_path
    from radview.types import Prediction

    m = model.manifest
    detection = m.task == "detection"
    floor = None if args.all_boxes else m.threshold
    calib = calibration_status(m.name, args.site or site_for_path(args.path), m.version)
    print(f"radview predict: {m.name} probabilities are {calib.text}", file=sys.stderr)
    errors = {k: e for s in summaries for k, e in s["errors"].items()}
    skipped = [row for s in summaries for row in s["skipped"]]
    not_run = {row["study"] for row in skipped}
    studies = [s for s in studies if s.key not in not_run]
    n_img = n_study = n_err = 0
    writer = _Writer(args.out, columns(m.classes))
    try:
        for s in summaries:
            for path, reason in s["scan_errors"]:
                writer.write({"level": "image", "path": path, "study": "", "error": f"{path}: {reason}",
                              "domain_reason": ""})
                n_img += 1
                n_err += 1
        for row in skipped:
            writer.write({**row, "calibration": ""})
        chunk: list = []
        for pos, study in enumerate(studies):
            chunk.append(study)
            if sum(len(s.views) for s in chunk) < _CHUNK and pos < len(studies) - 1:
                continue
            stored = store.get_predictions(m.name, m.version, [v.ref for s in chunk for v in s.views])
            for s in chunk:
                preds = []
                for v in s.views:
                    key = v.ref.key
                    pred = stored.get(key)
                    if pred is None:
                        why = errors.get(key) or (f"{v.ref.path}: not predicted by {m.name} {m.version} "
                                                  "(its rank stopped early: run the command again to resume)")
                        pred = Prediction(ref=v.ref, model=m.name, model_version=m.version,
                                          classes=m.classes, probs=(), error=why)
                    preds.append(pred)
                    writer.write({**image_row(pred, s.key, m.threshold, detection, floor),
                                  "calibration": calib.text})
                    n_img += 1
                    n_err += bool(pred.error)
                if preds:
                    writer.write({**study_row(aggregate_study(s.key, preds, m.threshold), detection, floor),
                                  "calibration": calib.text})
                    n_study += 1
            chunk = []
    finally:
        writer.close()
    done = sum(s["already_done"] for s in summaries)
    new = sum(s["predicted"] for s in summaries)
    print(f"radview predict: {len(summaries)} shard(s): {n_img} images ({done} already done, {new} predicted "
          f"now), {n_study} studies, {len(skipped)} skipped by routing, {n_err} errors"
          + (f" -> {args.out}" if args.out else ""), file=sys.stderr)
