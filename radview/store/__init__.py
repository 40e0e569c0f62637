"""The label store: labels, boxes, append-only corrections with undo, the retraining queue and
the prediction cache in one SQLite file, or in a PostgreSQL database shared by a team
(RADVIEW_STORE=postgresql://user@host:port/db; radview.store.backends, radview.store.pg).
Start with `LabelStore` (its module docstring is a tour); get the process's one store with
`open_store()` (radview.store.service).

Only the standard library (sqlite3), radview.types and, for PostgreSQL only and lazily, psycopg 3
are imported: no Qt, no torch.
"""
from radview.store.errors import StoreError
from radview.store.backends import store_target
from radview.store.keys import item_id
from radview.store.labels import LabelStore
from radview.store.service import close_stores, open_store
from radview.store.model import (KINDS, LEVELS, REASON_CODES, ROLES, Correction, ItemState,
                                  QueueSummary, default_reader)
from radview.store.team import (ItemStatus, Project, Read, ReaderProgress, ViewPolicy,
                                WorklistItem, plan_assignment)

__all__ = ["LabelStore", "open_store", "close_stores", "item_id", "StoreError", "Correction", "ItemState", "QueueSummary", "REASON_CODES",
           "LEVELS", "KINDS", "ROLES", "default_reader", "store_target",
           "Project", "Read", "WorklistItem", "ReaderProgress", "ItemStatus", "ViewPolicy",
           "plan_assignment"]
