"""The label store: labels, boxes, append-only corrections with undo, the retraining queue and
the prediction cache in one SQLite file. Start with `LabelStore` (its module docstring is a tour).

Only the standard library (sqlite3) and radview.types are imported: no Qt, no torch.
"""
from radview.store.errors import StoreError
from radview.store.labels import LabelStore
from radview.store.model import (KINDS, LEVELS, REASON_CODES, Correction, ItemState, QueueSummary,
                                  default_reader)

__all__ = ["LabelStore", "StoreError", "Correction", "ItemState", "QueueSummary", "REASON_CODES",
           "LEVELS", "KINDS", "default_reader"]
