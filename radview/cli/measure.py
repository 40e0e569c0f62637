"""`radview measure FILE --line X0 Y0 X1 Y1 [--json]` (or --angle / --cobb / --rect / --ellipse):
the measurement the viewer shows, headless, with its calibration basis. Coordinates are image
pixels: x = column, y = row."""
from __future__ import annotations

import json

TOOLS = {  # option -> (number of coordinates, metavar, help)
    "line": (4, ("X0", "Y0", "X1", "Y1"), "length of the line (mm, or px where the spacing is unknown)"),
    "angle": (6, ("X0", "Y0", "XV", "YV", "X1", "Y1"), "angle at the vertex (XV, YV) between the arms to the two points"),
    "cobb": (8, ("AX0", "AY0", "AX1", "AY1", "BX0", "BY0", "BX1", "BY1"),
             "Cobb angle between line A (upper endplate) and line B (lower endplate)"),
    "rect": (4, ("X0", "Y0", "X1", "Y1"), "statistics of the rectangle with these corners (modality units)"),
    "ellipse": (4, ("X0", "Y0", "X1", "Y1"), "statistics of the ellipse inscribed in this rectangle"),
}


def add_subparser(sub) -> None:
    p = sub.add_parser("measure", help="measure a length, angle, Cobb angle or ROI on an image (calibrated)",
                       description="Measure on FILE in image pixel coordinates (x = column, y = row). The result "
                                   "names its basis: PixelSpacing (mm at the patient), ImagerPixelSpacing "
                                   "(mm at the detector, or corrected by the file's magnification factor), "
                                   "a user calibration, or none (px).")
    p.add_argument("file")
    tools = p.add_mutually_exclusive_group(required=True)
    for name, (n, metavar, help_) in TOOLS.items():
        tools.add_argument(f"--{name}", type=float, nargs=n, metavar=metavar, help=help_)
    p.add_argument("--calibrate", type=float, nargs=5, metavar=("X0", "Y0", "X1", "Y1", "MM"),
                   help="user calibration: the line X0 Y0 X1 Y1 is MM millimetres long (overrides the file)")
    p.add_argument("--frame", type=int, default=0, help="frame index of a multi-frame file (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _pairs(values: list[float]) -> list[tuple[float, float]]:
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def run(args) -> int:
    from radview.cli import CliError
    from radview.io import ImageError, load_frame
    from radview.measure import angle, calibration_of, cobb_angle, length, roi, user_calibration

    try:
        frame = load_frame(args.file, args.frame)
    except (ImageError, OSError) as exc:
        raise CliError(str(exc)) from None
    h, w = frame.shape
    name = next(n for n in TOOLS if getattr(args, n) is not None)
    points = _pairs(getattr(args, name))
    for x, y in points + (_pairs(args.calibrate[:4]) if args.calibrate else []):
        if not (0 <= x <= w and 0 <= y <= h):
            raise CliError(f"{args.file}: point ({x:g}, {y:g}) is outside the {w}x{h} image "
                           f"(x = column 0..{w}, y = row 0..{h})")
    cal = calibration_of(frame)
    try:
        if args.calibrate:
            c = args.calibrate
            cal = user_calibration((c[0], c[1]), (c[2], c[3]), c[4], base=cal)
        if name == "line":
            m = length(cal, *points)
        elif name == "angle":
            m = angle(cal, *points)
        elif name == "cobb":
            m = cobb_angle(cal, *points)
        else:
            m = roi(cal, frame, *points, kind=name)
    except ValueError as exc:
        raise CliError(f"{args.file}: {exc}") from None
    if args.json:
        out = m.to_dict()
        if cal.note:
            out["note"] = cal.note
        print(json.dumps(out))
    else:
        print(f"{m.text}    [basis: {m.basis}{'; ' + cal.note if cal.note else ''}]")
    return 0
