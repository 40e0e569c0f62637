"""The retraining queue in SQL: which events are pending, and their counts, without loading the
history into Python (derive.pending is the same rule on Correction objects; a test holds them
equal).

Pending: an active plain event not consumed by a training run, or an active undo of an event a
run had consumed (the model learnt something that was taken back). Active: the event's undo
chain (E <- U1 <- U2 ...) has an even number of events after it. An event's label space is its
own (`corrections.space`), or, for events written before schema v2, its item's source label
space.
"""
from __future__ import annotations

import sqlite3
from typing import Any

from radview.store.model import QueueSummary

#: event id, effective space, of every event (c is corrections)
SPACE_SQL = ("coalesce(nullif(c.space, ''), (SELECT s.space FROM source_labels s"
             " WHERE s.level = c.level AND s.key = c.key), '')")

_PENDING = """
WITH RECURSIVE chain(root, id, depth) AS (
    SELECT id, id, 0 FROM corrections WHERE inverse_of IS NULL
    UNION ALL
    SELECT chain.root, c.id, chain.depth + 1 FROM corrections c JOIN chain ON c.inverse_of = chain.id
),
tip AS (SELECT root, max(depth) AS top FROM chain GROUP BY root),
pending AS (
    SELECT ch.id AS id FROM chain ch JOIN tip ON tip.root = ch.root
    WHERE (tip.top - ch.depth) % 2 = 0
      AND NOT EXISTS (SELECT 1 FROM consumed k WHERE k.event_id = ch.id)
      AND (ch.depth = 0 OR EXISTS (SELECT 1 FROM consumed k JOIN corrections u ON u.id = ch.id
                                   WHERE k.event_id = u.inverse_of))
)
"""


def _where(level: str | None, space: str | None) -> tuple[str, list[Any]]:
    where, args = [], []
    if level is not None:
        where.append("c.level = ?")
        args.append(level)
    if isinstance(space, str):
        where.append(f"{SPACE_SQL} = ?")
        args.append(space)
    elif space is not None:  # several spaces (e.g. all those comparable with a model)
        names = list(space)
        where.append(f"{SPACE_SQL} IN ({','.join('?' * len(names))})" if names else "0")
        args.extend(names)
    return (" AND " + " AND ".join(where)) if where else "", args


def pending_ids(conn: sqlite3.Connection, level: str | None = None,
                space: Any = None) -> list[int]:
    """space: a name, several names, or None (all)."""
    extra, args = _where(level, space)
    sql = (_PENDING + "SELECT c.id FROM pending p JOIN corrections c ON c.id = p.id WHERE 1"
           + extra + " ORDER BY c.id")
    return [r[0] for r in conn.execute(sql, args)]


def summary(conn: sqlite3.Connection, level: str | None = None,
            space: Any = None) -> QueueSummary:
    extra, args = _where(level, space)
    cls = ("CASE WHEN c.kind = 'label' THEN coalesce(json_extract(c.new_value, '$'), '(none)')"
           " WHEN json_array_length(c.new_value) > 0 THEN 'boxes: ' || json_array_length(c.new_value)"
           " ELSE 'no boxes' END")
    sql = (_PENDING + f"SELECT {cls}, c.reader, c.kind, c.reason, c.exclude_from_training,"
           " count(*) FROM pending p JOIN corrections c ON c.id = p.id WHERE 1" + extra +
           " GROUP BY 1, 2, 3, 4, 5")
    by_class: dict[str, int] = {}
    by_reader: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    total = excluded = 0
    for value, reader, kind, reason, excl, n in conn.execute(sql, args):
        for d, k in ((by_class, str(value)), (by_reader, reader), (by_kind, kind),
                     (by_reason, reason)):
            d[k] = d.get(k, 0) + n
        total += n
        excluded += n if excl else 0
    return QueueSummary(total=total, by_class=by_class, by_reader=by_reader, by_kind=by_kind,
                        by_reason=by_reason, excluded=excluded)
