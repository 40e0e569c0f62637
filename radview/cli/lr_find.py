"""`radview lr-find --model NAME [--data PATH] [--device D] [--num-it N] [--out CURVE.csv]`:
fastai's learning-rate range test on the model's data (corrections applied): prints the suggested
learning rate (valley; also steep and minimum/10) and a coarse curve; --out writes lr,loss rows."""
from __future__ import annotations

import math


def add_subparser(sub) -> None:
    p = sub.add_parser("lr-find", help="learning-rate range test: loss vs learning rate and a suggested value")
    p.add_argument("--model", required=True)
    p.add_argument("--data", help="the labelled data folder (default: the manifest's training.data)")
    p.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--num-it", type=int, default=100, help="batches to try (default 100)")
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--unfrozen", action="store_true", help="test the whole network (default: head + batch norm)")
    p.add_argument("--no-store", action="store_true", help="ignore the label store (source labels only)")
    p.add_argument("--out", help="write the curve as CSV (lr,loss)")
    p.set_defaults(func=run)


def _plot(lrs, losses, width: int = 50, rows: int = 12) -> list[str]:
    """A coarse text plot: one row per learning-rate bucket, bar length ~ loss."""
    lo, hi = min(losses), max(losses)
    span = (hi - lo) or 1.0
    step = max(1, len(lrs) // rows)
    out = []
    for i in range(0, len(lrs), step):
        n = int(round((losses[i] - lo) / span * width))
        out.append(f"  {lrs[i]:9.2e}  {losses[i]:8.4f}  " + "#" * max(1, n))
    return out


def run(args) -> int:
    from radview.cli import CliError
    from radview.models.registry import ModelError
    from radview.train.data import DataError
    from radview.train.loop import LRFinderResult
    from radview.train.run import find_lr

    if args.num_it < 5:
        raise CliError("--num-it must be at least 5")
    if not (0 < args.start_lr < args.end_lr):
        raise CliError("--start-lr must be positive and below --end-lr")
    res = None
    settings = {"batch_size": args.batch_size} if args.batch_size else {}
    try:
        for p in find_lr(args.model, args.data, device=args.device, num_it=args.num_it, start_lr=args.start_lr,
                         end_lr=args.end_lr, frozen=not args.unfrozen, use_store=not args.no_store, **settings):
            if isinstance(p.payload, LRFinderResult):
                res = p.payload
    except (ModelError, DataError, ValueError) as exc:
        raise CliError(str(exc)) from None
    assert res is not None
    for line in _plot(res.lrs, [v if math.isfinite(v) else max(res.losses) for v in res.losses]):
        print(line)
    print(f"suggested learning rate: {res.suggestion:.2e} (valley); steep {res.steep:.2e}; "
          f"minimum/10 {res.minimum:.2e}")
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write("lr,loss\n")
                for lr, loss in zip(res.lrs, res.losses):
                    fh.write(f"{lr:.6g},{loss:.6g}\n")
        except OSError as exc:
            raise CliError(f"{args.out}: cannot write ({exc.strerror or exc})") from None
        print(f"curve: {args.out}")
    return 0
