"""Likely label errors from out-of-fold predictions (confident learning, numpy only).

Top losses of a model trained on the same labels are in-sample: a memorised wrong label has a
low loss (cleanlab#52). Here a cheap head (multinomial logistic regression) is fitted K times on
frozen backbone features (cached per image by radview.models.model_features), each fit leaving out
one fold of patients/studies; every study is predicted by the head that never saw it. The
folds are grouped (all studies of a patient fall in one fold) and stratified by label.

Ranking and flagging follow confident learning (Northcutt, Jiang & Chuang, JAIR 2021; written
here from the paper, cleanlab itself is AGPL):

- per-class threshold t_j: the mean out-of-fold probability of class j over studies labelled j;
- confident joint C[i, j]: studies labelled i whose probability of j reaches t_j (the largest
  such j), calibrated so each row sums to the number of studies labelled i;
- 'prune_by_noise_rate' (default): for each off-diagonal cell (i, j), flag the round(C[i, j])
  studies labelled i with the largest margin p_j - p_i; 'prune_by_class': per class i, the
  sum_j!=i C[i, j] studies labelled i with the lowest p_i; 'confident_joint': every study in an
  off-diagonal cell. A study whose out-of-fold call equals its label is never flagged.
- ranking: self-confidence (the out-of-fold probability of the given label), lowest first;
  score = 1 - p(given label).

Everything works in the folder's own label space: the classes are the labels found (a class
folder NORMAL/PNEUMONIA that no bundled model predicts is fine); the model only gives features.

For detection, `box_issues(predictions, labels)`: likely missed boxes (confident predicted boxes
that no label box overlaps) and likely spurious label boxes (label boxes that no prediction
overlaps), from predictions made by models that did not see the image.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from radview.review.detection import box_iou

__all__ = ["Head", "fit_head", "reduce_features", "group_folds", "out_of_fold_probs",
           "out_of_fold_row_probs", "study_means",
           "in_sample_probs", "confident_joint", "per_class_thresholds", "find_issue_mask",
           "LabelIssue", "LabelIssueReport", "find_label_issues", "issues_to_dict",
           "BoxIssue", "box_issues", "METHODS"]

METHODS = ("prune_by_noise_rate", "prune_by_class", "confident_joint")
EPS = 1e-12


# --------------------------------------------------------------------------- the cheap head


def reduce_features(x: np.ndarray, n_components: int = 64, whiten: bool = False,
                    max_basis_rows: int = 4096, seed: int = 0) -> np.ndarray:
    """Centre, project on the top principal components and scale so that the total variance
    is the number of components kept (whiten=True: unit variance per component instead).
    Unsupervised (no label is used), so it leaks nothing between folds; it makes the head's
    fit fast. The basis comes from at most `max_basis_rows` rows (a seeded sample) through a
    randomised range finder; projecting 25,000 x 1,280 float32 rows is one matrix product."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    n, d = x.shape
    k = max(1, min(n_components, d, n - 1))
    rng = np.random.default_rng(seed)
    sub = x if n <= max_basis_rows else x[np.sort(rng.choice(n, max_basis_rows, replace=False))]
    mean = sub.mean(axis=0, dtype=np.float64)
    xs = np.asarray(sub, np.float64) - mean
    if d > 2 * k and len(xs) > 2 * k:
        q, _ = np.linalg.qr(xs @ rng.standard_normal((d, k + 10)))
        q, _ = np.linalg.qr(xs @ (xs.T @ q))  # one power iteration
        _u, sv, vt = np.linalg.svd(q.T @ xs, full_matrices=False)
    else:
        _u, sv, vt = np.linalg.svd(xs, full_matrices=False)
    sv, vt = sv[:k], vt[:k]
    keep = sv > sv[0] * 1e-6 if sv.size and sv[0] > 0 else np.zeros(0, bool)
    if not keep.any():
        return np.zeros((n, 1))
    basis = vt[keep].T.astype(x.dtype)
    z = (x @ basis).astype(np.float64) - mean @ vt[keep].T
    sd = sv[keep] / np.sqrt(max(len(xs) - 1, 1))
    if whiten:
        return z / sd
    return z * (np.sqrt(keep.sum()) / np.sqrt((sd * sd).sum()))


@dataclass(frozen=True)
class Head:
    """Multinomial logistic regression: probs = softmax(x W + b)."""

    w: np.ndarray  # (D, C)
    b: np.ndarray  # (C,)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return _softmax(np.asarray(x, np.float64) @ self.w + self.b)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_head(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 0.1,
             max_iter: int = 500, tol: float = 1e-6, sample_weight: np.ndarray | None = None
             ) -> Head:
    """Minimise mean weighted cross-entropy + l2/2 |W|^2 (bias unpenalised) by Nesterov's
    accelerated gradient with step 1/L (L from the largest eigenvalue of x'x/n) and adaptive
    restart; converged when the gradient norm falls below tol (relative). Large problems
    (over 500,000 feature values) run their two matrix products per step in float32: they are
    memory-bound, and the optimisation state stays float64."""
    x = np.asarray(x)
    y = np.asarray(y, np.intp)
    n, d = x.shape
    big = n * (d + 1) > 500_000
    fdt = np.float32 if big else np.float64
    wts = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    wts = wts / wts.sum()
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y] = 1.0
    xb = np.hstack([x.astype(fdt, copy=False), np.ones((n, 1), fdt)])
    v = np.ones(d + 1) / np.sqrt(d + 1)
    for _ in range(20):  # power iteration: largest eigenvalue of xb' diag(w) xb
        u = np.asarray(xb.T @ (wts * (xb @ v.astype(fdt))).astype(fdt), np.float64)
        lam = float(np.linalg.norm(u))
        if lam <= 0:
            break
        v = u / lam
    step = 1.0 / (0.5 * lam + l2 + EPS)
    prior = np.log(np.maximum(onehot.T @ wts, 1e-6))
    theta = np.zeros((d + 1, n_classes))
    theta[-1] = prior - prior.mean()
    reg = np.ones((d + 1, 1))
    reg[-1] = 0.0

    rows = np.arange(n)

    def loss_grad(t):
        p = _softmax(np.asarray(xb @ t.astype(fdt), np.float64))
        loss = -float(wts @ np.log(np.maximum(p[rows, y], EPS)))
        loss += 0.5 * l2 * float((reg * t * t).sum())
        r = (wts[:, None] * (p - onehot)).astype(fdt)
        g = np.asarray(xb.T @ r, np.float64) + l2 * reg * t
        return loss, g

    prev = theta.copy()
    mom = theta.copy()
    k = 1.0
    f_prev = np.inf
    g0 = None
    for _ in range(max_iter):
        f_m, g = loss_grad(mom)
        gn = float(np.linalg.norm(g))
        if g0 is None:
            g0 = max(gn, EPS)
        if gn <= tol * g0:
            theta = mom
            break
        theta = mom - step * g
        k_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * k * k))
        mom_next = theta + ((k - 1.0) / k_next) * (theta - prev)
        if f_m > f_prev:  # adaptive restart (O'Donoghue & Candes): drop the momentum
            k_next = 1.0
            mom_next = theta
        f_prev = f_m
        prev, mom, k = theta, mom_next, k_next
    return Head(theta[:-1], theta[-1])


# --------------------------------------------------------------------------- folds


def group_folds(groups: Sequence[str], labels: np.ndarray, n_folds: int = 5,
                seed: int = 0) -> np.ndarray:
    """Fold index per item: all items of a group in one fold; groups dealt round-robin per
    (majority) label after a seeded shuffle, so every fold sees every class when it can."""
    groups = np.asarray([str(g) for g in groups], dtype=object)
    labels = np.asarray(labels)
    uniq, inv = np.unique(groups, return_inverse=True)
    n_folds = int(max(2, min(n_folds, len(uniq))))
    lab_vals, lab_idx = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(uniq), len(lab_vals)), np.intp)
    np.add.at(counts, (inv, lab_idx), 1)
    glabel = counts.argmax(axis=1)  # majority label of the group (lowest on ties)
    rng = np.random.default_rng(seed)
    gfold = np.zeros(len(uniq), dtype=np.intp)
    start = 0
    for c in np.unique(glabel):
        members = np.flatnonzero(glabel == c)
        rng.shuffle(members)
        gfold[members] = (np.arange(len(members)) + start) % n_folds
        start += len(members)  # the next class starts where this one stopped: balanced sizes
    return gfold[inv]


def _view_rows(study_of_row: np.ndarray, n_studies: int) -> np.ndarray:
    counts = np.bincount(study_of_row, minlength=n_studies).astype(np.float64)
    return counts


def _study_mean(row_probs: np.ndarray, study_of_row: np.ndarray, n_studies: int) -> np.ndarray:
    out = np.zeros((n_studies, row_probs.shape[1]))
    np.add.at(out, study_of_row, row_probs)
    return out / np.maximum(_view_rows(study_of_row, n_studies), 1)[:, None]


def study_means(x_rows: np.ndarray, study_of_row: np.ndarray, n_studies: int) -> np.ndarray:
    """(n_studies, D): the mean feature row of each study's views."""
    order = np.argsort(study_of_row, kind="stable")
    srt = study_of_row[order]
    starts = np.flatnonzero(np.r_[True, srt[1:] != srt[:-1]])
    sums = np.add.reduceat(x_rows[order], starts, axis=0)
    out = np.zeros((n_studies, x_rows.shape[1]), sums.dtype)
    out[srt[starts]] = sums / np.diff(np.r_[starts, len(srt)])[:, None]
    return out


def out_of_fold_row_probs(x_rows: np.ndarray, study_of_row: np.ndarray, y: np.ndarray,
                          folds: np.ndarray, n_classes: int, l2: float = 0.1,
                          max_iter: int = 500) -> np.ndarray:
    """(m, C) probabilities of every view from the head of the fold that left its study out.
    Each head is fitted on the studies' mean feature rows (a study counts once however many
    views it has) and asked about every view of the held-out studies."""
    n = len(y)
    xs = x_rows if len(x_rows) == n and (study_of_row == np.arange(n)).all() \
        else study_means(x_rows, study_of_row, n)
    row_fold = folds[study_of_row]
    out = np.zeros((len(study_of_row), n_classes))
    for f in np.unique(folds):
        train = folds != f
        head = fit_head(xs[train], y[train], n_classes, l2, max_iter)
        test = row_fold == f
        out[test] = head.predict_proba(x_rows[test])
    return out


def out_of_fold_probs(x_rows: np.ndarray, study_of_row: np.ndarray, y: np.ndarray,
                      folds: np.ndarray, n_classes: int, l2: float = 0.1,
                      max_iter: int = 500) -> np.ndarray:
    """(n_studies, C): the mean of each study's out-of-fold view probabilities."""
    rows = out_of_fold_row_probs(x_rows, study_of_row, y, folds, n_classes, l2, max_iter)
    return _study_mean(rows, study_of_row, len(y))


def in_sample_probs(x_rows: np.ndarray, study_of_row: np.ndarray, y: np.ndarray,
                    n_classes: int, l2: float = 0.1, max_iter: int = 500) -> np.ndarray:
    """The same head fitted on every label and asked about the studies it was fitted on: what
    in-sample top losses see (kept for comparison; memorised wrong labels look right)."""
    n = len(y)
    head = fit_head(study_means(x_rows, study_of_row, n), y, n_classes, l2, max_iter)
    return _study_mean(head.predict_proba(x_rows), study_of_row, n)


# --------------------------------------------------------------------------- confident learning


def per_class_thresholds(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """t_j = mean p_j over items labelled j (1.0 for a class with no item: never confident)."""
    c = probs.shape[1]
    t = np.ones(c)
    for j in range(c):
        m = y == j
        if m.any():
            t[j] = float(probs[m, j].mean())
    return t


def confident_joint(probs: np.ndarray, y: np.ndarray, thresholds: np.ndarray | None = None,
                    calibrate: bool = True) -> np.ndarray:
    """C[i, j]: items labelled i confidently in j (see module doc), calibrated by default."""
    probs = np.asarray(probs, np.float64)
    n, c = probs.shape
    t = per_class_thresholds(probs, y) if thresholds is None else thresholds
    above = probs >= t[None, :] - 1e-12
    has = above.any(axis=1)
    j = np.where(above, probs, -np.inf).argmax(axis=1)
    cj = np.zeros((c, c))
    np.add.at(cj, (y[has], j[has]), 1.0)
    if calibrate:
        counts = np.bincount(y, minlength=c).astype(np.float64)
        rows = cj.sum(axis=1)
        scale = np.where(rows > 0, counts / np.maximum(rows, EPS), 0.0)
        cj = cj * scale[:, None]
    return cj


def find_issue_mask(probs: np.ndarray, y: np.ndarray, method: str = "prune_by_noise_rate",
                    cj: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of likely label errors (see module doc)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (one of {', '.join(METHODS)})")
    probs = np.asarray(probs, np.float64)
    n, c = probs.shape
    cj = confident_joint(probs, y) if cj is None else cj
    mask = np.zeros(n, bool)
    if method == "confident_joint":
        t = per_class_thresholds(probs, y)
        above = probs >= t[None, :] - 1e-12
        j = np.where(above, probs, -np.inf).argmax(axis=1)
        mask = above.any(axis=1) & (j != y)
    else:
        for i in range(c):
            members = np.flatnonzero(y == i)
            if members.size <= 1:
                continue
            budget_left = members.size - 1  # keep at least one study of every class
            if method == "prune_by_class":
                k = min(int(round(cj[i].sum() - cj[i, i])), budget_left)
                if k > 0:
                    order = members[np.argsort(probs[members, i], kind="stable")]
                    mask[order[:k]] = True
                continue
            for jj in range(c):
                if jj == i:
                    continue
                k = min(int(round(cj[i, jj])), budget_left)
                if k <= 0:
                    continue
                margin = probs[members, jj] - probs[members, i]
                order = members[np.argsort(-margin, kind="stable")]
                mask[order[:k]] = True
    mask &= probs.argmax(axis=1) != y
    return mask


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class LabelIssue:
    """One study whose label looks wrong. score = 1 - out-of-fold p(given), in [0, 1]."""

    key: str
    path: str
    given: str
    suggested: str
    score: float
    p_given: float
    p_suggested: float
    reason: str
    fold: int = 0
    views_agreeing: int = 0
    n_views: int = 1
    flagged: bool = True


@dataclass(frozen=True)
class LabelIssueReport:
    """issues: flagged studies, most likely wrong first. ranked: every study in that order
    (flagged or not). confident_joint (C, C) calibrated, rows = given, columns = suggested;
    noise_rate[i]: estimated share of studies labelled i whose label is wrong."""

    classes: tuple[str, ...]
    issues: tuple[LabelIssue, ...]
    ranked: tuple[LabelIssue, ...]
    n_studies: int
    n_images: int
    n_folds: int
    method: str
    thresholds: tuple[float, ...]
    confident_joint: np.ndarray
    noise_rate: tuple[float, ...]
    oof_accuracy: float
    oof_probs: np.ndarray
    keys: tuple[str, ...]
    y: np.ndarray
    skipped: tuple[tuple[str, str], ...] = ()
    model: str = ""
    model_version: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def rank_of(self, key: str) -> int:
        for i, it in enumerate(self.ranked):
            if it.key == key:
                return i
        raise KeyError(key)


def find_label_issues(x_rows: np.ndarray, study_of_row: Sequence[int], given: Sequence[str],
                      keys: Sequence[str], *, groups: Sequence[str] | None = None,
                      paths: Sequence[str] | None = None, classes: Sequence[str] | None = None,
                      n_folds: int = 5, method: str = "prune_by_noise_rate", seed: int = 0,
                      l2: float = 0.1, n_components: int = 64, max_iter: int = 500,
                      skipped: Sequence[tuple[str, str]] = (), model: str = "",
                      model_version: str = "") -> LabelIssueReport:
    """Label issues of n studies from the features of their m views.

    x_rows (m, D): one feature row per view; study_of_row (m,): the study index of each row;
    given (n,): each study's label (a class name); keys (n,): study keys; groups (n,): patient
    (or study) of each study, folds never split one; paths: shown per study (default: keys);
    classes: the label space's classes (default: the sorted labels found)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (one of {', '.join(METHODS)})")
    given = [str(g) for g in given]
    keys = [str(k) for k in keys]
    n = len(keys)
    if len(given) != n:
        raise ValueError("given and keys differ in length")
    study_of_row = np.asarray(study_of_row, np.intp)
    x_rows = np.asarray(x_rows, np.float64)
    if x_rows.ndim != 2 or len(x_rows) != len(study_of_row):
        raise ValueError("x_rows must be (m, D) with one study index per row")
    if n and (study_of_row.min(initial=0) < 0 or study_of_row.max(initial=0) >= n
              or np.bincount(study_of_row, minlength=n).min() == 0):
        raise ValueError("every study needs at least one feature row")
    classes = tuple(sorted(set(given))) if classes is None else tuple(classes)
    unknown = sorted(set(given) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not classes of the label space {classes}")
    if len(set(given)) < 2:
        raise ValueError(f"label issues need at least two classes among the labels; found "
                         f"{sorted(set(given)) or 'none'}")
    groups = keys if groups is None else [str(g) or k for g, k in zip(groups, keys)]
    if len(set(groups)) < 2:
        raise ValueError("label issues need at least two patients/studies to make folds")
    paths = keys if paths is None else [str(p) for p in paths]
    cidx = {c: i for i, c in enumerate(classes)}
    y = np.asarray([cidx[g] for g in given], np.intp)
    c = len(classes)
    z = reduce_features(x_rows, n_components, seed=seed)
    folds = group_folds(groups, y, n_folds, seed)
    row_probs = out_of_fold_row_probs(z, study_of_row, y, folds, c, l2, max_iter)
    probs = _study_mean(row_probs, study_of_row, n)
    t = per_class_thresholds(probs, y)
    cj = confident_joint(probs, y, t)
    mask = find_issue_mask(probs, y, method, cj)
    counts = np.bincount(y, minlength=c)
    noise = tuple(float((cj[i].sum() - cj[i, i]) / counts[i]) if counts[i] else 0.0
                  for i in range(c))
    p_given = probs[np.arange(n), y]
    other = probs.copy()
    other[np.arange(n), y] = -np.inf
    sugg = other.argmax(axis=1)
    p_sugg = probs[np.arange(n), sugg]
    # self-confidence, ties by the margin to the best other class
    order = np.lexsort((-(p_sugg - p_given), p_given))
    # views: how many of a study's views the suggestion convinces
    n_views = np.bincount(study_of_row, minlength=n)
    agree_n = np.bincount(study_of_row, weights=(row_probs.argmax(axis=1)
                                                 == sugg[study_of_row]), minlength=n)
    ranked = []
    for i in order:
        nv = int(n_views[i])
        agree = int(agree_n[i])
        ranked.append(LabelIssue(
            key=keys[i], path=paths[i], given=classes[y[i]], suggested=classes[sugg[i]],
            score=float(1.0 - p_given[i]), p_given=float(p_given[i]),
            p_suggested=float(p_sugg[i]),
            reason=_reason(classes, int(y[i]), int(sugg[i]), float(p_given[i]),
                           float(p_sugg[i]), t, bool(mask[i]), agree, nv, int(folds[i])),
            fold=int(folds[i]), views_agreeing=agree, n_views=nv, flagged=bool(mask[i])))
    return LabelIssueReport(
        classes=classes, issues=tuple(r for r in ranked if r.flagged), ranked=tuple(ranked),
        n_studies=n, n_images=len(study_of_row), n_folds=int(len(np.unique(folds))),
        method=method, thresholds=tuple(float(v) for v in t), confident_joint=cj,
        noise_rate=noise, oof_accuracy=float((probs.argmax(axis=1) == y).mean()) if n else 0.0,
        oof_probs=probs, keys=tuple(keys), y=y, skipped=tuple(skipped), model=model,
        model_version=model_version)


def _reason(classes, gi, si, pg, ps, t, flagged, agree, nv, fold) -> str:
    g, s = classes[gi], classes[si]
    head = (f"a head trained without this study (fold {fold + 1}) gives {s!r} p={ps:.2f}, "
            f"the given {g!r} p={pg:.2f}")
    bits = [head]
    if pg < t[gi]:
        bits.append(f"below the {g!r} studies' typical p={t[gi]:.2f}")
    if ps >= t[si]:
        bits.append(f"as sure of {s!r} as the studies labelled {s!r} (>= {t[si]:.2f})")
    if nv > 1:
        bits.append(f"{agree} of {nv} views call {s!r}")
    if not flagged:
        bits.append("not flagged: within the estimated noise of its class"
                    if ps > pg else "not flagged: the given label is the likelier one")
    return "; ".join(bits)


def issues_to_dict(report: LabelIssueReport, top: int | None = None,
                   include_all: bool = False) -> dict:
    """JSON-ready: label_issues (flagged, ranked) with path, given, suggested, score, reason."""
    def item(r: LabelIssue) -> dict:
        return {"key": r.key, "path": r.path, "given": r.given, "suggested": r.suggested,
                "score": round(r.score, 6), "p_given": round(r.p_given, 6),
                "p_suggested": round(r.p_suggested, 6), "reason": r.reason,
                "views_agreeing": r.views_agreeing, "n_views": r.n_views, "fold": r.fold + 1}

    issues = report.issues if top is None else report.issues[:top]
    out = {
        "label_issues": [item(r) for r in issues],
        "n_flagged": len(report.issues),
        "n_studies": report.n_studies,
        "n_images": report.n_images,
        "classes": list(report.classes),
        "n_folds": report.n_folds,
        "method": report.method,
        "thresholds": dict(zip(report.classes, report.thresholds)),
        "confident_joint": [[round(float(v), 3) for v in row] for row in report.confident_joint],
        "estimated_noise_rate": dict(zip(report.classes, report.noise_rate)),
        "out_of_fold_accuracy": report.oof_accuracy,
        "skipped": [{"key": k, "reason": r} for k, r in report.skipped],
        "model": report.model,
        "model_version": report.model_version,
    }
    if include_all:
        out["ranked"] = [item(r) | {"flagged": r.flagged} for r in report.ranked]
    return out


# --------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class BoxIssue:
    """kind: 'missed' (a confident predicted box with no label box) or 'spurious' (a label
    box no prediction supports). box: the predicted box (missed) or the label box (spurious)."""

    key: str
    path: str
    kind: str
    box: object
    score: float
    best_iou: float
    reason: str


def _xyxy(boxes) -> np.ndarray:
    if not boxes:
        return np.zeros((0, 4))
    return np.asarray([b.as_xyxy() for b in boxes], np.float64)


def box_issues(predictions: Mapping[str, Sequence], labels: Mapping[str, Sequence], *,
               score_threshold: float = 0.5, iou_threshold: float = 0.3,
               support_threshold: float = 0.0, paths: Mapping[str, str] | None = None
               ) -> list[BoxIssue]:
    """Likely missed and spurious boxes over images that have predictions (out-of-fold ones:
    each image predicted by a detector that did not train on it). predictions / labels:
    {image key: Boxes} (predicted boxes carry a score; an image with no label boxes is a
    negative). Missed: predicted score >= score_threshold and IoU < iou_threshold with every
    label box, score = the predicted score. Spurious: no predicted box with score >
    support_threshold overlaps the label box by iou_threshold; score = 1 - the best
    overlapping predicted score (1 when none overlaps). Ranked by score, most likely first."""
    out: list[BoxIssue] = []
    paths = paths or {}
    for key, preds in predictions.items():
        gt = list(labels.get(key, ()) or ())
        preds = [p for p in (preds or ()) if p.score is not None]
        pa, ga = _xyxy(preds), _xyxy(gt)
        iou = box_iou(pa, ga)
        path = paths.get(key, key)
        for i, p in enumerate(preds):
            best = float(iou[i].max()) if len(gt) else 0.0
            if p.score >= score_threshold and best < iou_threshold:
                why = (f"predicted with score {p.score:.2f} where no label box is "
                       + (f"(best IoU {best:.2f} < {iou_threshold:.2f})" if gt
                          else "(the image has no label box)"))
                out.append(BoxIssue(key, path, "missed", p, float(p.score), best, why))
        scores = np.asarray([p.score for p in preds], np.float64)
        for j, g in enumerate(gt):
            over = iou[:, j] >= iou_threshold if len(preds) else np.zeros(0, bool)
            support = float(scores[over].max()) if over.any() else 0.0
            best = float(iou[:, j].max()) if len(preds) else 0.0
            if support > support_threshold:
                continue
            if not len(preds):
                why = "nothing was predicted on this image"
            elif over.any():
                why = (f"the predicted boxes over this label box score at most {support:.2f} "
                       f"(<= {support_threshold:.2f})")
            else:
                why = (f"no predicted box overlaps this label box (best IoU {best:.2f} < "
                       f"{iou_threshold:.2f})")
            out.append(BoxIssue(key, path, "spurious", g, 1.0 - support, best, why))
    out.sort(key=lambda b: -b.score)
    return out
