"""Retraining from the corrections queue: data, fastai-style fine-tuning, versions, DDP.

Importing this package imports no torch; the modules that train do.

- `radview.train.run`: `retrain(model, data=None, **settings)` (generator of Progress, last
  payload a TrainResult), `find_lr(model, data=None)` (last payload an LRFinderResult),
  `promote_candidate(model, version)`.
- `radview.train.config`: TrainConfig (the recipe; per-model settings in the manifest's
  `training.recipe`).
- `radview.train.data`: build_dataset (scan + corrections + stored seeded splits with a locked
  test split, data hash, the queue events used).
- `radview.train.dataset`, `radview.train.loop`: tensors, augmentation, the distributed sampler;
  fit, lr_find, predict, the losses (torch).
- `radview.train.evaluate`: metrics on the locked test split and the promotion rule (numpy).
- `radview.train.versions`: version folders, the current pointer, promote, rollback,
  list_versions (no torch). Layout: `<user models>/.versions/<name>/<version>/` for every
  version, `<user models>/<name>/` a copy of the current one (what the registry loads).
- `radview.train.card`: the model card of a retrained version.
- `radview.train.ddp`: torchrun / DistributedDataParallel helpers (gloo on CPU, NCCL on CUDA).
- `radview.train.synthetic`: tiny generated data sets and manifests (tests, demos).
"""
