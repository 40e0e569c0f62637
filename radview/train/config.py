"""What a training run is asked to do (no torch here).

`TrainConfig` holds the recipe: fastai's `fine_tune` shape (a frozen phase that trains the head,
then everything unfrozen with discriminative learning rates, each phase one one-cycle schedule),
augmentation, early stopping, the seeded split fractions and the promotion metric.
`TrainConfig.for_manifest(manifest, **overrides)` starts from the defaults, applies the model's
own settings from `manifest.training["recipe"]` (e.g. `{"max_rotate": 5, "flip": false}`), then
the caller's overrides (CLI flags, GUI).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

#: the agreed metric per task (promotion needs new >= current on the locked test split)
DEFAULT_METRIC = {"binary": "kappa", "multiclass": "accuracy", "detection": "kappa"}
METRICS = ("kappa", "accuracy", "macro_kappa")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4                 # unfrozen epochs (fastai fine_tune's `epochs`)
    freeze_epochs: int = 1          # head-only epochs first (0 = none)
    lr: float = 2e-3                # base learning rate (fastai fine_tune's base_lr)
    lr_mult: float = 100.0          # unfrozen: slice(lr/2/lr_mult, lr/2) over the layer groups
    weight_decay: float = 1e-2
    batch_size: int = 16
    patience: int = 2               # early stopping: epochs without a lower validation loss
    min_delta: float = 1e-4
    flip: bool = True
    max_rotate: float = 10.0        # degrees
    scale: tuple[float, float] = (0.9, 1.1)
    max_lighting: float = 0.2
    seed: int = 0                   # splits and shuffling
    val_fraction: float = 0.15      # of the groups left after the locked test split
    test_fraction: float = 0.2      # of the groups, when the layout has no held-out split
    metric: str = ""                # '' = DEFAULT_METRIC[task]
    tolerance: float = 0.0          # promotion margin: CI lower bound of (new - current) >= -tolerance
    min_test: int = 30              # promotion needs at least this many locked test items
    device: str = "auto"
    workers: int = 0                # DataLoader worker processes (0: decode in the loop)
    cache_mb: int = 512             # keep decoded inputs in memory up to this size
    max_items: int = 0              # use at most this many training groups (0 = all): quick runs
    bn_momentum: float = 0.1
    bn_frozen: bool = False         # keep batch-norm statistics fixed while training (tiny data)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def metric_for(self, task: str) -> str:
        m = self.metric or DEFAULT_METRIC.get(task, "kappa")
        if m not in METRICS:
            raise ValueError(f"unknown metric {m!r} (use one of {', '.join(METRICS)})")
        return m

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["scale"] = list(self.scale)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        d = dict(d)
        if "scale" in d:
            d["scale"] = tuple(float(x) for x in d["scale"])
        return TrainConfig(**d)

    def with_changes(self, **kw: Any) -> "TrainConfig":
        kw = {k: v for k, v in kw.items() if v is not None}
        if "scale" in kw:
            kw["scale"] = tuple(float(x) for x in kw["scale"])
        return dataclasses.replace(self, **kw)

    @staticmethod
    def for_manifest(manifest: Any, **overrides: Any) -> "TrainConfig":
        """Defaults, then the model's `training.recipe` settings, then overrides (None = keep)."""
        cfg = TrainConfig()
        recipe = {}
        training = getattr(manifest, "training", None) or {}
        if isinstance(training.get("recipe"), dict):
            names = {f.name for f in dataclasses.fields(TrainConfig)}
            recipe = {k: v for k, v in training["recipe"].items() if k in names}
        args = training.get("args") if isinstance(training.get("args"), dict) else {}
        if str(args.get("bn", "")).lower() == "frozen":  # what the model's own training script did
            recipe.setdefault("bn_frozen", True)
        if getattr(manifest, "task", "") == "detection":
            cfg = cfg.with_changes(max_rotate=0.0, scale=(1.0, 1.0), max_lighting=0.1, freeze_epochs=0)
        return cfg.with_changes(**recipe).with_changes(**overrides)

    def check(self) -> None:
        if self.epochs < 0 or self.freeze_epochs < 0 or self.epochs + self.freeze_epochs == 0:
            raise ValueError("epochs: at least one epoch is needed (epochs + freeze_epochs >= 1)")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (batch norm needs two samples)")
        if not (0 < self.lr < 10):
            raise ValueError(f"learning rate {self.lr} is out of range (0, 10)")
        if not (0 <= self.test_fraction < 1 and 0 <= self.val_fraction < 1):
            raise ValueError("split fractions must lie in [0, 1)")
