"""`radview train --model NAME [--data PATH] [--epochs N] [--device D] ...`: retrain a model from its
data with the label store's corrections; the new version is promoted only if it does not regress
on the locked test split. Also `--versions`, `--rollback`, `--promote VERSION`.

Runs unchanged under `torchrun --nproc_per_node N -m radview train ...` (DistributedDataParallel;
only rank 0 prints and writes)."""
from __future__ import annotations

import json
import os
import sys


def add_subparser(sub) -> None:
    p = sub.add_parser("train", help="retrain a model with the corrections queue (new version, safe promotion)")
    p.add_argument("--model", required=True, help="the model to retrain (see `radview models list`)")
    p.add_argument("--data", help="its labelled data folder (default: the manifest's training.data)")
    p.add_argument("--epochs", type=int, help="unfrozen epochs (default: the model's recipe, else 4)")
    p.add_argument("--freeze-epochs", type=int, help="head-only epochs first (default 1)")
    p.add_argument("--lr", type=float, help="base learning rate (default 2e-3; see `radview lr-find`)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int, help="seed of splits and shuffling (stored splits are kept)")
    p.add_argument("--metric", choices=("kappa", "accuracy", "macro_kappa"),
                   help="the agreed promotion metric (default kappa for binary, accuracy for multiclass)")
    p.add_argument("--workers", type=int, help="DataLoader worker processes (default 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (default: best available)")
    p.add_argument("--no-promote", action="store_true", help="keep the new version as a candidate")
    p.add_argument("--no-store", action="store_true", help="ignore the label store (source labels only)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--versions", action="store_true", help="list the model's versions and exit")
    g.add_argument("--rollback", action="store_true", help="make the previous version current again and exit")
    g.add_argument("--promote", metavar="VERSION", help="make a kept candidate current and exit")
    p.set_defaults(func=run)


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _versions(args) -> int:
    from radview.train.versions import VersionError, list_versions

    try:
        rows = list_versions(args.model)
    except VersionError as exc:
        from radview.cli import CliError

        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps([{"version": v.version, "status": v.status, "parent": v.parent, "run_id": v.run_id,
                           "created": v.created, "metric": v.metric, "metrics": v.metrics,
                           "parent_metrics": v.parent_metrics, "folder": v.folder} for v in rows], indent=1))
        return 0
    if not rows:
        print(f"{args.model}: no retrained versions")
    for v in rows:
        new = v.metrics.get(v.metric) if v.metric else None
        old = v.parent_metrics.get(v.metric) if v.metric else None
        m = f"  {v.metric} {new} (parent {old})" if v.metric else ""
        print(f"{v.version}\t{v.status}\t{v.created}{m}")
    return 0


def run(args) -> int:
    from radview.cli import CliError

    if args.versions:
        return _versions(args)
    from radview.models.registry import ModelError
    from radview.train.data import DataError
    from radview.train.versions import VersionError

    try:
        if args.rollback:
            from radview.train.run import rollback_model

            now, back = rollback_model(args.model, use_store=not args.no_store)
            print(f"{args.model}: current version is now {now}"
                  + (f" ({back} corrections returned to the queue)" if back else ""))
            return 0
        if args.promote:
            from radview.train.run import promote_candidate

            marked = promote_candidate(args.model, args.promote, use_store=not args.no_store)
            print(f"{args.model}: current version is now {args.promote}"
                  + (f" ({len(marked)} queued corrections marked consumed)" if marked else ""))
            return 0
        return _train(args)
    except (ModelError, DataError, VersionError, ValueError, FloatingPointError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{getattr(exc, 'filename', '') or ''}: {exc.strerror or exc}".lstrip(": ")) from None


def _train(args) -> int:
    from radview.train.loop import EpochEnd, Step
    from radview.train.run import TrainResult, retrain

    settings = {"epochs": args.epochs, "freeze_epochs": args.freeze_epochs, "lr": args.lr,
                "batch_size": args.batch_size, "seed": args.seed, "metric": args.metric, "workers": args.workers}
    main = _rank() == 0
    res = None
    last_line = ""
    for p in retrain(args.model, args.data, device=args.device, promote=not args.no_promote,
                     use_store=not args.no_store, **{k: v for k, v in settings.items() if v is not None}):
        if isinstance(p.payload, TrainResult):
            res = p.payload
            continue
        if not main or args.quiet:
            continue
        if isinstance(p.payload, Step):
            continue  # per batch: too chatty for a terminal
        if p.message and p.message != last_line:
            print(p.message if isinstance(p.payload, EpochEnd) else f"  {p.message}", file=sys.stderr, flush=True)
            last_line = p.message
    if not main or res is None:
        return 0
    if args.json:
        print(json.dumps({"model": res.model, "version": res.version, "parent_version": res.parent_version,
                          "promoted": res.promoted, "reason": res.reason, "metric": res.metric, "comparison": res.comparison,
                          "metrics": res.metrics, "parent_metrics": res.parent_metrics, "run_id": res.run_id,
                          "consumed": list(res.consumed), "folder": res.folder, "data_hash": res.data_hash,
                          "seconds": round(res.seconds, 1)}, indent=1))
        return 0
    new, old = res.metrics.get(res.metric), res.parent_metrics.get(res.metric)
    print(f"{res.model} {res.version}: {'promoted to current' if res.promoted else 'kept as a candidate'}")
    if res.parent_metrics:
        print(f"  {res.metric} on the locked test split: {new} (was {old} with {res.parent_version})")
    else:
        print(f"  {res.metric} on the locked test split: {new} (no installed version to compare with)")
    print(f"  {res.reason}")
    if res.comparison:
        c = res.comparison
        print(f"  paired on {c['n']} test items: McNemar {c['mcnemar_new_only']} right only with the new "
              f"version, {c['mcnemar_current_only']} only with the current one (p = {c['mcnemar_p']})")
    print(f"  run {res.run_id}; {len(res.consumed)} queued corrections consumed; card: "
          f"{os.path.join(res.folder or '', 'MODEL_CARD.md')}")
    return 0
