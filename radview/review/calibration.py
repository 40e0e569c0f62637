"""Calibration of a model's probabilities at a site: reliability diagram, ECE, temperature
scaling saved per site (numpy only).

- `reliability(probs, y, n_bins=15) -> Reliability`: per confidence bin (equal width on the
  top-class probability): count, mean confidence, accuracy; `ece` (expected calibration error:
  the count-weighted mean |accuracy - confidence|) and `mce` (the worst bin).
- `reliability_by(probs, y, groups)`: the same per group (label space, site, folder).
- `fit_temperature(probs, y) -> float`: the T minimising the negative log-likelihood of
  softmax(log p / T) (Guo et al. 2017) on labelled studies; `apply_temperature(probs, T)`.
  Works on probabilities, so it needs no logits: for a binary (1 - p, p) model it is exactly
  sigmoid(logit / T), for a softmax model softmax(logits / T).
- Site calibration, saved like the site threshold (radview.review.thresholds) in
  `<user data>/site_calibration.json`, one entry per (model, site): `save_site_calibration`,
  `site_calibration`, `clear_site_calibration`, `list_site_calibrations`.
- `site_for_path(path)`: the default site of a folder (its name), as `--calibrate` saves it.
- `calibration_status(model, site, model_version="") -> CalibrationStatus`: what to show beside
  every answer: whether its probability is calibrated for this site, and how we know.
- `calibrated_probs(probs, model, site)`: the probabilities with the site's temperature applied
  (unchanged when the site has none or it was fitted for another model version).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from radview import paths

__all__ = ["Reliability", "reliability", "reliability_by", "expected_calibration_error",
           "fit_temperature", "apply_temperature", "SiteCalibration", "calibration_path",
           "save_site_calibration", "site_calibration", "clear_site_calibration",
           "list_site_calibrations", "CalibrationStatus", "calibration_status",
           "calibrated_probs", "site_for_path", "ECE_OK"]

FILE_NAME = "site_calibration.json"
ECE_OK = 0.05  # an ECE at or below this on held-out studies reads as "calibrated"
EPS = 1e-7


@dataclass(frozen=True)
class Reliability:
    """bins (n_bins + 1,) edges; per bin count, confidence (mean top-class p), accuracy;
    empty bins have count 0 and nan confidence/accuracy."""

    edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    ece: float
    mce: float
    n: int

    def to_dict(self) -> dict:
        def num(v):
            return None if v != v else round(float(v), 6)

        return {"ece": num(self.ece), "mce": num(self.mce), "n": self.n,
                "bins": [{"low": round(float(self.edges[i]), 4),
                          "high": round(float(self.edges[i + 1]), 4),
                          "count": int(self.count[i]), "confidence": num(self.confidence[i]),
                          "accuracy": num(self.accuracy[i])} for i in range(len(self.count))]}


def _check(probs, y) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, np.float64)
    y = np.asarray(y, np.intp)
    if probs.ndim != 2 or len(probs) != len(y):
        raise ValueError("probs must be (n, C) with one class index per row")
    if len(y) and (y.min() < 0 or y.max() >= probs.shape[1]):
        raise ValueError("class index out of range")
    return probs, y


def reliability(probs, y, n_bins: int = 15) -> Reliability:
    probs, y = _check(probs, y)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    n = len(y)
    if n == 0:
        nan = np.full(n_bins, np.nan)
        return Reliability(edges, np.zeros(n_bins, int), nan, nan.copy(), float("nan"),
                           float("nan"), 0)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    b = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    s_conf = np.bincount(b, conf, minlength=n_bins)
    s_acc = np.bincount(b, correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mc = np.where(count > 0, s_conf / count, np.nan)
        ma = np.where(count > 0, s_acc / count, np.nan)
    gap = np.abs(ma - mc)
    used = count > 0
    ece = float((count[used] * gap[used]).sum() / n)
    mce = float(gap[used].max())
    return Reliability(edges, count, mc, ma, ece, mce, n)


def expected_calibration_error(probs, y, n_bins: int = 15) -> float:
    return reliability(probs, y, n_bins).ece


def reliability_by(probs, y, groups, n_bins: int = 15) -> dict[str, Reliability]:
    """{group: Reliability} for each distinct group value (label space, site, folder)."""
    probs, y = _check(probs, y)
    groups = np.asarray([str(g) for g in groups], dtype=object)
    return {str(g): reliability(probs[groups == g], y[groups == g], n_bins)
            for g in sorted(set(groups.tolist()))}


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """softmax(log p / T) per row."""
    probs = np.asarray(probs, np.float64)
    z = np.log(np.clip(probs, EPS, 1.0)) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(probs, y, t) -> float:
    p = apply_temperature(probs, t)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], EPS, 1.0)).mean())


def fit_temperature(probs, y, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """T > 0 minimising the NLL (convex in 1/T): golden-section search on log T."""
    probs, y = _check(probs, y)
    if len(y) == 0:
        raise ValueError("temperature scaling needs at least one labelled study")
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = _nll(probs, y, np.exp(c)), _nll(probs, y, np.exp(d))
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = _nll(probs, y, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = _nll(probs, y, np.exp(d))
        if b - a < 1e-6:
            break
    return float(np.exp((a + b) / 2.0))


# --------------------------------------------------------------------------- per site


@dataclass(frozen=True)
class SiteCalibration:
    model: str
    site: str
    temperature: float
    model_version: str = ""
    space: str = ""
    ece_before: float = float("nan")  # on held-out studies of the site
    ece_after: float = float("nan")
    n_fit: int = 0
    n_heldout: int = 0
    fitted_by: str = ""
    fitted_at: float = 0.0
    note: str = ""
    source: str = "site"


def site_for_path(path: str | os.PathLike) -> str:
    """The default site name of a folder (its own name; a file's folder's name): what
    `radview review PATH --calibrate` saves under when no --site is given, so a viewer showing
    PATH asks `calibration_status(model, site_for_path(PATH))`."""
    p = os.path.abspath(os.fspath(path))
    if os.path.isfile(p):
        p = os.path.dirname(p)
    return os.path.basename(p.rstrip(os.sep)) or p


def calibration_path() -> Path:
    return paths.user_home() / FILE_NAME


def _read() -> dict[str, dict[str, dict]]:
    p = calibration_path()
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p}: unreadable site calibration file ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{p}: expected a JSON object of model -> site -> calibration entry")
    return data


def _write(data) -> None:
    from radview.paths import write_json_atomic

    write_json_atomic(calibration_path(), data, allow_nan=True)


def save_site_calibration(model: str, site: str, temperature: float, **kw) -> SiteCalibration:
    """Record (replace) the site's temperature for `model`; kw: the other SiteCalibration
    fields (model_version, space, ece_before, ece_after, n_fit, n_heldout, note)."""
    temperature = float(temperature)
    if not (temperature > 0 and np.isfinite(temperature)):
        raise ValueError(f"temperature {temperature} must be a positive number")
    if not site:
        raise ValueError("a site calibration needs a site name")
    from radview.review.thresholds import _os_user

    kw.setdefault("fitted_by", _os_user())
    entry = SiteCalibration(model, site, temperature, fitted_at=time.time(), **kw)
    data = _read()
    data.setdefault(model, {})[site] = asdict(entry)
    _write(data)
    return entry


def site_calibration(model: str, site: str) -> SiteCalibration | None:
    entry = _read().get(model, {}).get(site)
    if not entry:
        return None
    fields = SiteCalibration.__dataclass_fields__
    return SiteCalibration(**{k: v for k, v in entry.items() if k in fields})


def list_site_calibrations(model: str | None = None) -> list[SiteCalibration]:
    data = _read()
    out = []
    for m in sorted(data):
        if model is not None and m != model:
            continue
        for s in sorted(data[m]):
            c = site_calibration(m, s)
            if c is not None:
                out.append(c)
    return out


def clear_site_calibration(model: str, site: str) -> bool:
    data = _read()
    if site not in data.get(model, {}):
        return False
    del data[model][site]
    if not data[model]:
        del data[model]
    _write(data)
    return True


@dataclass(frozen=True)
class CalibrationStatus:
    """calibrated: the site's temperature applies to this model version and its held-out ECE
    is at most ECE_OK. text: one line for beside the probability."""

    calibrated: bool
    text: str
    temperature: float = 1.0
    ece: float | None = None
    site: str = ""


def calibration_status(model: str, site: str, model_version: str = "") -> CalibrationStatus:
    try:
        c = site_calibration(model, site) if site else None
    except ValueError as exc:
        return CalibrationStatus(False, f"calibration unknown: {exc}", site=site)
    if c is None:
        return CalibrationStatus(False, f"not calibrated for site {site or '(none)'}: no "
                                        "temperature fitted here", site=site)
    if model_version and c.model_version and c.model_version != model_version:
        return CalibrationStatus(False, f"not calibrated for site {site}: fitted for version "
                                        f"{c.model_version}, this is {model_version}", site=site)
    ece = c.ece_after if c.ece_after == c.ece_after else None
    if ece is None:
        return CalibrationStatus(True, f"temperature-scaled for site {site} (T={c.temperature:.2f}"
                                       f", {c.n_fit} studies; no held-out ECE)",
                                 c.temperature, None, site)
    ok = ece <= ECE_OK
    word = "calibrated" if ok else "poorly calibrated"
    return CalibrationStatus(ok, f"{word} for site {site}: ECE {ece:.3f} on {c.n_heldout} "
                                 f"held-out studies (T={c.temperature:.2f})",
                             c.temperature, ece, site)


def calibrated_probs(probs, model: str, site: str, model_version: str = "") -> np.ndarray:
    """probs with the site's temperature applied when it applies (see calibration_status)."""
    c = site_calibration(model, site) if site else None
    if c is None or (model_version and c.model_version and c.model_version != model_version):
        return np.asarray(probs, np.float64)
    return apply_temperature(probs, c.temperature)
