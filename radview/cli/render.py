"""`radview render FILE --out OUT.png [--frame N] [--window C W] [--invert] [--max-size PX]
[--model NAME --overlay cam,boxes]`: the display image exactly as the viewer shows it."""
from __future__ import annotations

import os


def add_subparser(sub) -> None:
    p = sub.add_parser("render", help="write the display image (as the viewer shows it) to a PNG")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--frame", type=int, default=0, help="frame index of a multi-frame file (default 0)")
    p.add_argument("--window", type=float, nargs=2, metavar=("CENTER", "WIDTH"),
                   help="window center and width in modality units (default: the file's VOI)")
    p.add_argument("--invert", action="store_true", help="invert the default polarity")
    p.add_argument("--max-size", type=int, help="shrink so the longest side fits")
    p.add_argument("--model", help="overlay this model's output")
    p.add_argument("--overlay", default="cam,boxes", help="with --model: cam, boxes or cam,boxes")
    p.add_argument("--device", help="cuda, mps or cpu (default: best available)")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    from PIL import Image

    from radview.cli import CliError
    from radview.io import ImageError, load_frame
    from radview.io.display import display_image
    from radview.types import Window

    try:
        frame = load_frame(args.file, args.frame)
    except ImageError as exc:
        raise CliError(str(exc)) from None
    window = Window(args.window[0], args.window[1], "LINEAR", "command line") if args.window else None
    invert = (not frame.invert) if args.invert else None
    img = display_image(frame, window=window, invert=invert)
    if args.model:
        from radview.models.overlay import render_overlay

        overlays = {o.strip() for o in args.overlay.split(",") if o.strip()}
        bad = overlays - {"cam", "boxes"}
        if bad:
            raise CliError(f"unknown overlay {', '.join(sorted(bad))} (choose cam, boxes)")
        try:
            img = render_overlay(frame, img, args.model, overlays, device=args.device)
        except (KeyError, ValueError, RuntimeError, OSError) as exc:
            raise CliError(f"model {args.model}: {exc}") from None
    out = Image.fromarray(np.ascontiguousarray(img))
    if args.max_size:
        out.thumbnail((args.max_size, args.max_size), Image.LANCZOS)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        out.save(args.out)
    except OSError as exc:
        raise CliError(f"{args.out}: cannot write ({exc.strerror or exc})") from None
    print(f"{args.out}: {out.size[0]}x{out.size[1]}")
    return 0
