"""Prediction cache: a reopened folder shows the model's answers without recomputing.

Rows are keyed by (model, model_version, ImageRef.key). The file's size and mtime are kept so a
file changed on disk since is treated as not cached.
"""
from __future__ import annotations

import json
import os
import sqlite3
from typing import Iterable, Sequence

from radview.store.model import boxes_from_json, boxes_to_json, utc_now
from radview.types import ImageRef, Prediction

_CHUNK = 500


def _file_stamp(path: str) -> tuple[int | None, int | None]:
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    return st.st_mtime_ns, st.st_size


def put(conn: sqlite3.Connection, preds: Iterable[Prediction], include_errors: bool) -> int:
    now = utc_now()
    rows = []
    for p in preds:
        if p.error and not include_errors:
            continue
        mtime, size = _file_stamp(p.ref.path)
        rows.append((p.model, p.model_version, p.ref.key, p.ref.path, int(p.ref.frame),
                     json.dumps(list(p.classes)), json.dumps([float(x) for x in p.probs]),
                     boxes_to_json(p.boxes), int(bool(p.in_domain)), p.domain_reason or "",
                     p.error, mtime, size, now))
    conn.executemany(
        "INSERT OR REPLACE INTO predictions (model, model_version, key, path, frame, classes, probs,"
        " boxes, in_domain, domain_reason, error, file_mtime_ns, file_size, time)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    return len(rows)


def get(conn: sqlite3.Connection, model: str, version: str,
        keys: Sequence[str] | None, check_files: bool) -> dict[str, Prediction]:
    sql = ("SELECT key, path, frame, classes, probs, boxes, in_domain, domain_reason, error,"
           " file_mtime_ns, file_size FROM predictions WHERE model = ? AND model_version = ?")
    rows: list[tuple] = []
    if keys is None:
        rows = conn.execute(sql, (model, version)).fetchall()
    else:
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            rows += conn.execute(sql + f" AND key IN ({','.join('?' * len(chunk))})",
                                 (model, version, *chunk)).fetchall()
    out: dict[str, Prediction] = {}
    for key, path, frame, classes, probs, boxes, in_domain, reason, error, mtime, size in rows:
        if check_files and mtime is not None and _file_stamp(path) != (mtime, size):
            continue  # the file changed (or went away) since: not a valid cache entry
        out[key] = Prediction(
            ref=ImageRef(path, int(frame)), model=model, model_version=version,
            classes=tuple(json.loads(classes)), probs=tuple(json.loads(probs)),
            boxes=boxes_from_json(boxes) or (), in_domain=bool(in_domain),
            domain_reason=reason or "", error=error)
    return out


def clear(conn: sqlite3.Connection, model: str | None, version: str | None) -> int:
    sql, args = "DELETE FROM predictions", []
    if model is not None:
        sql += " WHERE model = ?"
        args.append(model)
        if version is not None:
            sql += " AND model_version = ?"
            args.append(version)
    return conn.execute(sql, args).rowcount
