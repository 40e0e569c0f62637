"""Inter-reader agreement (issue 16): Cohen's kappa for two readers, Fleiss' kappa for more, each
with a percentile bootstrap CI over studies (items resampled with replacement, seeded).

numpy only. The statistics take plain label sequences; `reads_from_store` turns a label store's
history into {reader: {item key: label}} (each reader's own latest active read of each item), and
`store_agreement` gives every pair of readers' Cohen's kappa plus Fleiss' kappa over the items all
readers read::

    reads = reads_from_store(store, level="study", space="mura")
    report = store_agreement(store, level="study", space="mura")
    report.fleiss.value, report.fleiss.low, report.fleiss.high; report.pairs[("alice", "bob")]

Cohen's kappa equals scikit-learn's cohen_kappa_score (unweighted, linear, quadratic); Fleiss'
kappa (Fleiss 1971) allows a varying number of ratings per item (each item needs at least two).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

from radview.review.metrics import kappa_from_confusion

DEFAULT_BOOT = 1000


@dataclass(frozen=True)
class Agreement:
    """A kappa with its bootstrap CI (low, high: nan when it cannot be estimated)."""
    statistic: str          # 'cohen' or 'fleiss'
    value: float
    low: float
    high: float
    n_items: int
    raters: tuple[str, ...] = ()
    categories: tuple[Any, ...] = ()
    level: float = 0.95

    @property
    def text(self) -> str:
        name = "Cohen's" if self.statistic == "cohen" else "Fleiss'"
        ci = "" if np.isnan(self.low) else f" ({self.level:.0%} CI {self.low:.3f} to {self.high:.3f})"
        return f"{name} kappa {self.value:.3f}{ci}, {self.n_items} items"


@dataclass(frozen=True)
class AgreementReport:
    pairs: dict[tuple[str, str], Agreement] = field(default_factory=dict)
    fleiss: Agreement | None = None
    readers: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()   # (what, why) of what could not be computed


def _codes(*seqs: Sequence[Hashable], categories: Sequence[Hashable] | None = None
           ) -> tuple[list[np.ndarray], tuple]:
    cats = tuple(categories) if categories is not None else tuple(
        sorted({x for s in seqs for x in s}, key=lambda v: (str(type(v)), v)))
    index = {c: i for i, c in enumerate(cats)}
    out = []
    for s in seqs:
        try:
            out.append(np.fromiter((index[x] for x in s), dtype=np.intp, count=len(s)))
        except KeyError as exc:
            raise ValueError(f"label {exc.args[0]!r} is not one of the categories {list(cats)}") from None
    return out, cats


def _weights(k: int, weights: str | None) -> np.ndarray | None:
    if weights is None:
        return None
    i = np.arange(k)
    d = np.abs(i[:, None] - i[None, :]).astype(float)
    if weights == "linear":
        return d
    if weights == "quadratic":
        return d ** 2
    raise ValueError(f"weights must be None, 'linear' or 'quadratic', not {weights!r}")


def _cohen_from_cm(cm: np.ndarray, w: np.ndarray | None) -> np.ndarray | float:
    if w is None:
        return kappa_from_confusion(cm)
    cm = cm.astype(float)
    n = cm.sum(axis=(-2, -1), keepdims=True)
    expected = cm.sum(axis=-1)[..., :, None] * cm.sum(axis=-2)[..., None, :] / np.where(n > 0, n, 1)
    obs = (w * cm).sum(axis=(-2, -1))
    exp = (w * expected).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(exp != 0, 1 - obs / np.where(exp != 0, exp, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def _percentile(values: np.ndarray, level: float) -> tuple[float, float]:
    v = values[~np.isnan(values)]
    if v.size < 2:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(v, a)), float(np.quantile(v, 1 - a))


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable], *,
                categories: Sequence[Hashable] | None = None, weights: str | None = None,
                n_boot: int = DEFAULT_BOOT, seed: int = 0, level: float = 0.95,
                raters: tuple[str, str] = ("a", "b")) -> Agreement:
    """Cohen's kappa of two readers' labels of the same items (same order), any hashable labels.
    weights: None, 'linear' or 'quadratic' (ordered categories, in `categories` order)."""
    if len(a) != len(b):
        raise ValueError(f"the two readers rated different numbers of items ({len(a)} vs {len(b)})")
    (ca, cb), cats = _codes(a, b, categories=categories)
    k = len(cats)
    n = len(ca)
    w = _weights(k, weights)
    if n == 0 or k == 0:
        return Agreement("cohen", float("nan"), float("nan"), float("nan"), 0, tuple(raters), cats, level)
    cells = ca * k + cb
    cm = np.bincount(cells, minlength=k * k).reshape(k, k)
    value = float(_cohen_from_cm(cm, w))
    low = high = float("nan")
    if n_boot and n > 1:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_boot, n))
        flat = (cells[idx] + (np.arange(n_boot) * k * k)[:, None]).ravel()
        cms = np.bincount(flat, minlength=n_boot * k * k).reshape(n_boot, k, k)
        low, high = _percentile(np.asarray(_cohen_from_cm(cms, w), dtype=float), level)
    return Agreement("cohen", value, low, high, n, tuple(raters), cats, level)


def _fleiss_from_counts(counts: np.ndarray) -> np.ndarray | float:
    """counts (..., items, categories): how many readers put each item in each category."""
    counts = counts.astype(float)
    n_i = counts.sum(axis=-1)
    p_j = counts.sum(axis=-2) / n_i.sum(axis=-1)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        p_i = ((counts * (counts - 1)).sum(axis=-1)) / (n_i * (n_i - 1))
        p_bar = p_i.mean(axis=-1)
        p_e = (p_j ** 2).sum(axis=-1)
        out = np.where(p_e != 1, (p_bar - p_e) / np.where(p_e != 1, 1 - p_e, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def fleiss_counts(ratings: Sequence[Sequence[Hashable]], categories: Sequence[Hashable] | None = None
                  ) -> tuple[np.ndarray, tuple]:
    """(items x categories count table, categories) from each item's list of labels."""
    flat = [x for r in ratings for x in r]
    (codes,), cats = _codes(flat, categories=categories)
    counts = np.zeros((len(ratings), len(cats)), dtype=np.int64)
    item = np.repeat(np.arange(len(ratings)), [len(r) for r in ratings])
    np.add.at(counts, (item, codes), 1)
    return counts, cats


def fleiss_kappa(ratings: Sequence[Sequence[Hashable]] | np.ndarray, *,
                 categories: Sequence[Hashable] | None = None, counts: bool = False,
                 n_boot: int = DEFAULT_BOOT, seed: int = 0, level: float = 0.95,
                 raters: tuple[str, ...] = ()) -> Agreement:
    """Fleiss' kappa. ratings: one list of labels per item (the readers' reads of it), or with
    counts=True an items x categories table of counts. Every item needs at least two ratings."""
    if counts:
        table = np.asarray(ratings, dtype=np.int64)
        cats = tuple(categories) if categories is not None else tuple(range(table.shape[1]))
    else:
        table, cats = fleiss_counts(ratings, categories)
    if table.ndim != 2:
        raise ValueError("a Fleiss count table is items x categories")
    few = np.flatnonzero(table.sum(axis=1) < 2)
    if few.size:
        raise ValueError(f"items {few[:5].tolist()} have fewer than two ratings (Fleiss' kappa needs two)")
    n = table.shape[0]
    if n == 0:
        return Agreement("fleiss", float("nan"), float("nan"), float("nan"), 0, tuple(raters), cats, level)
    value = float(_fleiss_from_counts(table))
    low = high = float("nan")
    if n_boot and n > 1:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_boot, n))
        low, high = _percentile(np.asarray(_fleiss_from_counts(table[idx]), dtype=float), level)
    return Agreement("fleiss", value, low, high, n, tuple(raters), cats, level)


# ---------------------------------------------------------------------- from the label store
def reads_from_events(events: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """{reader: {item key: label}}: each reader's latest ACTIVE label correction of each item
    (undone reads do not count; an undo itself is not a read). Label events only."""
    from radview.store import derive

    evs = sorted(events, key=lambda e: e.id)
    active = derive.active_map(evs)
    out: dict[str, dict[str, Any]] = {}
    for e in evs:
        if e.kind != "label" or e.inverse_of is not None or not active.get(e.id, True):
            continue
        if getattr(e, "project", ""):  # a project's final label (consensus/adjudication): not a read
            continue
        if e.new_value is None:
            out.get(e.reader, {}).pop(e.key, None)
            continue
        out.setdefault(e.reader, {})[e.key] = e.new_value
    return out


def reads_from_store(store: Any, *, level: str = "study", space: str | None = None
                     ) -> dict[str, dict[str, Any]]:
    return reads_from_events(store.history(level=level, space=space))


def reads_agreement(reads: Mapping[str, Mapping[str, Any]], *, categories: Sequence[Hashable] | None = None,
                    n_boot: int = DEFAULT_BOOT, seed: int = 0, level: float = 0.95,
                    min_items: int = 2) -> AgreementReport:
    """Cohen's kappa of every pair of readers over the items both read, and Fleiss' kappa over
    the items at least two readers read (when there are three readers or more)."""
    readers = tuple(sorted(r for r in reads if reads[r]))
    if categories is None:
        categories = sorted({v for r in readers for v in reads[r].values()}, key=str)
    pairs, skipped = {}, []
    for a, b in combinations(readers, 2):
        common = sorted(set(reads[a]) & set(reads[b]))
        if len(common) < min_items:
            skipped.append((f"{a} vs {b}", f"{len(common)} items read by both (need {min_items})"))
            continue
        pairs[(a, b)] = cohen_kappa([reads[a][k] for k in common], [reads[b][k] for k in common],
                                    categories=categories, n_boot=n_boot, seed=seed, level=level,
                                    raters=(a, b))
    fleiss = None
    if len(readers) >= 3:
        items = sorted({k for r in readers for k in reads[r]})
        ratings = [[reads[r][k] for r in readers if k in reads[r]] for k in items]
        ratings = [x for x in ratings if len(x) >= 2]
        if len(ratings) >= min_items:
            fleiss = fleiss_kappa(ratings, categories=categories, n_boot=n_boot, seed=seed,
                                  level=level, raters=readers)
        else:
            skipped.append(("Fleiss", f"{len(ratings)} items read by two readers or more"))
    return AgreementReport(pairs=pairs, fleiss=fleiss, readers=readers, skipped=tuple(skipped))


def store_agreement(store: Any, *, level: str = "study", space: str | None = None,
                    **kwargs: Any) -> AgreementReport:
    """reads_agreement of the store's reads (of one label space when given: its classes are the
    categories)."""
    if space is not None and "categories" not in kwargs:
        from radview import spaces as _spaces
        sp = _spaces.get_space(space)
        if sp is not None and sp.classes:
            kwargs["categories"] = sp.classes
    return reads_agreement(reads_from_store(store, level=level, space=space), **kwargs)


__all__ = ["Agreement", "AgreementReport", "cohen_kappa", "fleiss_kappa", "fleiss_counts",
           "reads_from_events", "reads_from_store", "reads_agreement", "store_agreement"]


# ---------------------------------------------------------------------- team agreement (issue 16)
@dataclass(frozen=True)
class TeamAgreement:
    """Agreement of a team's reads: inter-reader (Cohen's kappa of each pair; Fleiss' kappa when
    three readers or more), each reader vs the model's answer and vs the final label, and the
    same per study type. Every kappa carries its bootstrap CI."""
    inter: AgreementReport
    vs_model: dict[str, Agreement] = field(default_factory=dict)
    vs_final: dict[str, Agreement] = field(default_factory=dict)
    by_type: dict[str, "TeamAgreement"] = field(default_factory=dict)
    n_items: int = 0
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def readers(self) -> tuple[str, ...]:
        return self.inter.readers

    @property
    def headline(self) -> Agreement | None:
        """Cohen's kappa for two readers, Fleiss' kappa for more (None if not computable)."""
        if len(self.inter.readers) >= 3:
            return self.inter.fleiss
        return next(iter(self.inter.pairs.values()), None)


def _versus(reads: Mapping[str, Mapping[str, Any]], other: Mapping[str, Any] | None, what: str,
            categories, n_boot: int, seed: int, level: float, min_items: int,
            skipped: list) -> dict[str, Agreement]:
    out: dict[str, Agreement] = {}
    if not other:
        return out
    for r in sorted(reads):
        common = sorted(set(reads[r]) & set(other))
        if len(common) < min_items:
            skipped.append((f"{r} vs {what}", f"{len(common)} items (need {min_items})"))
            continue
        out[r] = cohen_kappa([reads[r][k] for k in common], [other[k] for k in common],
                             categories=categories, n_boot=n_boot, seed=seed, level=level,
                             raters=(r, what))
    return out


def team_agreement(reads: Mapping[str, Mapping[str, Any]], *, final: Mapping[str, Any] | None = None,
                   model: Mapping[str, Any] | None = None,
                   study_types: Mapping[str, str] | None = None,
                   categories: Sequence[Hashable] | None = None, n_boot: int = DEFAULT_BOOT,
                   seed: int = 0, level: float = 0.95, min_items: int = 2) -> TeamAgreement:
    """reads: {reader: {item key: label}}; final / model: {item key: label}; study_types:
    {item key: study type} for the per-type breakdown (types with fewer than min_items items
    read by two readers are listed in skipped)."""
    reads = {r: dict(v) for r, v in reads.items() if v}
    if categories is None:
        categories = sorted({v for r in reads.values() for v in r.values()}
                            | set((final or {}).values()) | set((model or {}).values()), key=str)
    kw = dict(categories=categories, n_boot=n_boot, seed=seed, level=level)
    inter = reads_agreement(reads, min_items=min_items, **kw)
    skipped: list[tuple[str, str]] = list(inter.skipped)
    vs_model = _versus(reads, model, "model", categories, n_boot, seed, level, min_items, skipped)
    vs_final = _versus(reads, final, "final", categories, n_boot, seed, level, min_items, skipped)
    by_type: dict[str, TeamAgreement] = {}
    if study_types:
        for t in sorted({study_types.get(k, "") for r in reads.values() for k in r} - {""}):
            sub = {r: {k: v for k, v in per.items() if study_types.get(k) == t} for r, per in reads.items()}
            keep = {k for per in sub.values() for k in per}
            by_type[t] = team_agreement(
                sub, final={k: v for k, v in (final or {}).items() if k in keep} or None,
                model={k: v for k, v in (model or {}).items() if k in keep} or None,
                min_items=min_items, **kw)
    n = len({k for r in reads.values() for k in r})
    return TeamAgreement(inter, vs_model, vs_final, by_type, n, tuple(skipped))


def project_reads(store: Any, project: str) -> dict[str, dict[str, Any]]:
    """{reader: {item key: their latest read}} of a reading project (radview.store.reads)."""
    out: dict[str, dict[str, Any]] = {}
    for r in store.read_log(project):  # in order: the latest read of each reader wins
        out.setdefault(r.reader, {})[r.key] = r.value
    return out


def project_agreement(store: Any, project: str, *, model: Mapping[str, Any] | None = None,
                      **kwargs: Any) -> TeamAgreement:
    """team_agreement of a project's reads, its final labels (consensus or adjudication) and
    its items' study types; categories: the project's label space classes when known."""
    p = store.project(project)
    statuses = store.statuses(project, viewer=_lead(store))
    final = {k: s.final for k, s in statuses.items() if s.final is not None}
    types = {k: s.study_type for k, s in statuses.items()}
    if "categories" not in kwargs and p.space:
        from radview import spaces as _spaces
        sp = _spaces.get_space(p.space)
        if sp is not None and sp.classes:
            kwargs["categories"] = sp.classes
    return team_agreement(project_reads(store, project), final=final, model=model,
                          study_types=types, **kwargs)


def _lead(store: Any) -> str:
    """A viewer who sees everything of a project (statistics are over all reads)."""
    leads = [n for n, role in store.readers().items() if role in ("adjudicator", "admin")]
    if leads:
        return leads[0]
    raise ValueError("agreement of a blinded project needs an adjudicator or admin registered "
                     "(radview worklist reader NAME --role adjudicator)")


def _num(x: float) -> float | None:
    return None if x is None or np.isnan(x) else round(float(x), 6)


def agreement_dict(a: Agreement | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"statistic": a.statistic, "kappa": _num(a.value), "ci_low": _num(a.low),
            "ci_high": _num(a.high), "level": a.level, "n_items": a.n_items,
            "raters": list(a.raters), "text": a.text}


def team_agreement_dict(t: TeamAgreement) -> dict[str, Any]:
    """JSON-ready (NaN -> null) form of a TeamAgreement (what `radview review --json` prints)."""
    return {
        "readers": list(t.readers), "n_items": t.n_items,
        "headline": agreement_dict(t.headline),
        "cohen": [agreement_dict(a) for a in t.inter.pairs.values()],
        "fleiss": agreement_dict(t.inter.fleiss),
        "reader_vs_model": {r: agreement_dict(a) for r, a in t.vs_model.items()},
        "reader_vs_final": {r: agreement_dict(a) for r, a in t.vs_final.items()},
        "by_study_type": {k: team_agreement_dict(v) for k, v in t.by_type.items()},
        "skipped": [{"what": w, "why": y} for w, y in t.skipped],
    }


def team_agreement_lines(t: TeamAgreement, indent: str = "") -> list[str]:
    """Plain-text lines (the CLI's and the review panel's summary)."""
    lines = []
    for (a, b), k in t.inter.pairs.items():
        lines.append(f"{indent}{a} vs {b}: {k.text}")
    if t.inter.fleiss is not None:
        lines.append(f"{indent}all {len(t.readers)} readers: {t.inter.fleiss.text}")
    for what, d in (("model", t.vs_model), ("final label", t.vs_final)):
        for r, k in d.items():
            lines.append(f"{indent}{r} vs {what}: {k.text}")
    for st, sub in t.by_type.items():
        lines.append(f"{indent}{st}:")
        lines += team_agreement_lines(sub, indent + "  ")
    return lines


__all__ += ["TeamAgreement", "team_agreement", "project_reads", "project_agreement",
            "agreement_dict", "team_agreement_dict", "team_agreement_lines"]
