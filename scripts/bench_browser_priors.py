#!/usr/bin/env python
"""Study browser with priors (issue 14), measured in one run: filling the browser with --studies
studies (--per-patient per patient, two views each) with the Priors column (radview.priors.priors_index)
and the columns fitted to their contents, vs the same browser without either (the baseline of
the same run, interleaved). Median of --repeat fills; prints the ratio, asserts nothing.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/bench_browser_priors.py --studies 10000
"""
from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--per-patient", type=int, default=3, help="studies per patient (1: nobody has a prior)")
    args = ap.parse_args()

    from radview.gui.app import make_app

    app = make_app()
    import radview.gui.widgets.study_browser as sb
    from radview.types import ImageRef, Study, View

    n = args.studies
    studies = [Study(key=f"1.2.{i}", patient=f"P{i // args.per_patient}", layout="dicom", description=f"CHEST {i}",
                     views=tuple(View(ImageRef(f"/d/{i}/{j}.dcm")) for j in range(2))) for i in range(n)]
    headers = {f"/d/{i}/{j}.dcm": {"PatientID": f"P{i // args.per_patient}", "StudyDate": f"20{10 + i % 3}0101",
                                   "PatientName": "X^Y", "AccessionNumber": f"A{i}"}
               for i in range(n) for j in range(2)}
    browser = sb.StudyBrowser()
    browser.resize(400, 700)
    browser.show()
    app.processEvents()

    def fill() -> float:
        t = time.perf_counter()
        browser.set_studies(studies, headers)
        app.processEvents()
        return time.perf_counter() - t

    real_priors, real_fit = sb.LazyPriors, browser.fit_columns

    def bare() -> float:  # the baseline: no priors index, no column fitting
        sb.LazyPriors = lambda _s, _h: real_priors((), {})
        browser.fit_columns = lambda *_a: None
        try:
            return fill()
        finally:
            sb.LazyPriors, browser.fit_columns = real_priors, real_fit

    runs, bases = [], []
    for _ in range(args.repeat):  # interleaved: a busy machine slows both alike
        runs.append(fill())
        bases.append(bare())
    with_priors, baseline = statistics.median(runs), statistics.median(bases)
    fill()
    t = time.perf_counter()
    browser.set_current("1.2.5")
    mark = time.perf_counter() - t
    print(f"{n} studies, {args.per_patient} per patient: fill with Priors column + fitted columns {with_priors * 1000:.0f} ms, "
          f"without (baseline, same run) {baseline * 1000:.0f} ms: ratio {with_priors / baseline:.2f}x; "
          f"marking the current study's priors {mark * 1000:.2f} ms")


if __name__ == "__main__":
    main()
