"""The label store's items half: what scans and imports say (items, source labels, label
spaces, stable item keys), the prediction cache and the history import. Mixed into LabelStore."""
from __future__ import annotations

import json
import os
import sqlite3
from typing import Any, Iterable, Mapping

from radview import spaces as _spaces
from radview.store import keys as _keys, predictions as _pred
from radview.store.model import (check_level, check_reason, output_to_json, utc_now,
                                  value_to_json, boxes_to_json)
from radview.store.rows import (BOX_SOURCES, as_key, from_json, output_in, source_row, to_json,
                                 value_in)
from radview.types import Label, Prediction, ScanResult


class ItemsMixin:
    """Needs self._db (radview.store.db.Database) and self._select (LabelStore)."""

    # ------------------------------------------------------------------ source labels, items
    def set_source_labels(self, labels: Mapping[Any, Label], level: str = "image", *,
                          source: str | None = None, boxes_known: bool | None = None,
                          replace: bool = True) -> int:
        """Record labels that come from files (scans, imports). They never enter the queue;
        corrections win over them. source overrides each Label.source. boxes_known: whether the
        labels say which boxes exist (True for detection sources, where no box = negative);
        None = known iff the label has boxes. At study level boxes are ignored. replace=False keeps an existing source label
        that came from an import (source starting with 'import')."""
        check_level(level)
        now = utc_now()
        rows = []
        for item, label in labels.items():
            known = bool(label.boxes) if boxes_known is None else boxes_known
            if level != "image":
                known = False  # boxes live on images (a one-image study's boxes are its view's)
            rows.append((level, as_key(item), label.value,
                         boxes_to_json(label.boxes) if known else None,
                         source if source is not None else label.source, now, label.space or ""))
        sql = ("INSERT INTO source_labels (level, key, value, boxes, source, time, space)"
               " VALUES (?,?,?,?,?,?,?)"
               " ON CONFLICT(level, key) DO UPDATE SET value = excluded.value, boxes = excluded.boxes,"
               " source = excluded.source, time = excluded.time, space = excluded.space")
        if not replace:
            sql += " WHERE source_labels.source NOT LIKE 'import%'"
        self._db.write(lambda c: c.executemany(sql, rows), "save source labels")
        return len(rows)

    def record_scan(self, result: ScanResult) -> int:
        """Remember the studies and views of a scan (patient, study type, size, modality) and
        their labels as source labels. Labels imported with import-labels are kept (imports win
        over what a folder layout says). Returns the number of items recorded."""
        items: list[tuple] = []
        study_labels: dict[str, Label] = {}
        image_labels: dict[str, Label] = {}
        views: list[tuple[str, str, str | None]] = []
        root = os.path.normpath(os.path.abspath(result.root)) if result.root else ""
        for st in result.studies:
            items.append(("study", st.key, None, st.patient, st.study_type, None, None,
                          to_json({"layout": st.layout, "split": st.split,
                                 "description": st.description}), st.space, root))
            if st.label is not None:
                study_labels[st.key] = st.label
            for v in st.views:
                items.append(("image", v.ref.key, st.key, st.patient, st.study_type,
                              v.columns or None, v.rows or None,
                              to_json({"modality": v.modality, "body_part": v.body_part,
                                     "series_uid": v.series_uid, "instance": v.instance,
                                     "uid": v.uid}),
                              (v.label.space if v.label is not None else "") or st.space, root))
                if v.label is not None:
                    image_labels[v.ref.key] = v.label
                views.append((v.ref.key, st.key if st.key == v.ref.key else "", v.uid or None))
        self._record_spaces(_spaces.spaces_in(result))
        self.set_items(items)
        self._record_keys(views)
        self.set_source_labels(study_labels, "study", replace=False)
        # detection sources list every box: an image without boxes there is a known negative
        boxed = {k: v for k, v in image_labels.items() if v.source in BOX_SOURCES}
        other = {k: v for k, v in image_labels.items() if v.source not in BOX_SOURCES}
        self.set_source_labels(boxed, "image", replace=False, boxes_known=True)
        self.set_source_labels(other, "image", replace=False)
        return len(items)

    def set_items(self, items: Iterable[tuple]) -> int:
        """Low level: rows (level, key, study_key, patient, study_type, width, height, meta_json
        [, space, root])."""
        rows = [tuple(r) + ("", "")[:max(0, 10 - len(r))] for r in items]
        sql = ("INSERT INTO items (level, key, study_key, patient, study_type, width, height, meta,"
               " space, root) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(level, key) DO UPDATE SET"
               " study_key = excluded.study_key, patient = excluded.patient,"
               " study_type = excluded.study_type, width = excluded.width,"
               " height = excluded.height, meta = excluded.meta,"
               " space = CASE WHEN excluded.space != '' THEN excluded.space ELSE items.space END,"
               " root = CASE WHEN excluded.root != '' THEN excluded.root ELSE items.root END")
        self._db.write(lambda c: c.executemany(sql, rows), "save items")
        return len(rows)

    def items(self, level: str = "image", keys: Iterable[Any] | None = None) -> dict[str, dict]:
        """What record_scan learnt about items: {key: {study_key, patient, study_type, width,
        height, meta, space, root}}."""
        check_level(level)
        sql = ("SELECT key, study_key, patient, study_type, width, height, meta, space, root"
               " FROM items WHERE level = ?")

        def read(conn: sqlite3.Connection) -> dict[str, dict]:
            out = {}
            for (key, study_key, patient, study_type, w, h, meta, space,
                 root) in self._select(conn, sql, [level], keys):
                out[key] = {"study_key": study_key, "patient": patient, "study_type": study_type,
                            "width": w, "height": h, "meta": from_json(meta), "space": space,
                            "root": root}
            return out
        return self._db.read(read)

    def source_label(self, item: Any, level: str = "image") -> Label | None:
        check_level(level)
        row = self._db.read(lambda c: c.execute(
            "SELECT value, boxes, source, space FROM source_labels WHERE level = ? AND key = ?",
            (level, as_key(item))).fetchone())
        return source_row(row)[0]

    # ------------------------------------------------------------------ spaces, folders, keys
    def spaces(self) -> list[_spaces.LabelSpace]:
        """The label spaces recorded by scans and imports (registered in this process too)."""
        rows = self._db.read(lambda c: c.execute("SELECT spec FROM spaces ORDER BY name").fetchall())
        out = []
        for (spec,) in rows:
            try:
                out.append(_spaces.register(_spaces.LabelSpace.from_dict(json.loads(spec))))
            except (ValueError, KeyError, TypeError):
                continue  # a space written by a newer radview: its labels still read
        return out

    def space_names(self) -> list[str]:
        """Names of the spaces labels or corrections in the store belong to."""
        return self._db.read(lambda c: [r[0] for r in c.execute(
            "SELECT space FROM source_labels WHERE space != '' UNION"
            " SELECT space FROM corrections WHERE space != '' ORDER BY 1")])

    def folders(self) -> list[str]:
        """The folders scans were recorded from (for the export filter)."""
        return self._db.read(lambda c: [r[0] for r in c.execute(
            "SELECT DISTINCT root FROM items WHERE root != '' ORDER BY root")])

    def _record_spaces(self, found: Iterable[_spaces.LabelSpace]) -> None:
        rows = [(sp.name, to_json(sp.to_dict())) for sp in found]
        if rows:
            self._db.write(lambda c: c.executemany(
                "INSERT INTO spaces (name, spec) VALUES (?,?) ON CONFLICT(name) DO UPDATE SET"
                " spec = excluded.spec", rows), "save label spaces")

    def _record_keys(self, views: list[tuple[str, str, str | None]]) -> None:
        """Stable ids of scanned DICOM views, and moves of corrected items (radview.store.keys)."""
        now = utc_now()

        def txn(conn: sqlite3.Connection) -> int:
            rows = []
            for key, _study, uid in views:
                if uid:
                    path, frame = _keys.split_key(key)
                    rows.append(("image", key, _keys.item_id(path, frame, uid)))
            conn.executemany("INSERT INTO item_keys (level, key, item) VALUES (?,?,?)"
                             " ON CONFLICT(level, key) DO UPDATE SET item = excluded.item", rows)
            return _keys.detect_moves(conn, views, now)
        if views:
            self._db.write(txn, "record item keys")

    def _backfill_item_keys(self) -> None:
        """Give corrected items from before schema v2 their stable ids (once; only files)."""
        todo = self._db.read(lambda c: [r[0] for r in c.execute(
            "SELECT DISTINCT key FROM corrections WHERE key NOT IN"
            " (SELECT key FROM item_keys WHERE level = 'image')")])
        todo = [k for k in todo if os.path.isabs(_keys.split_key(k)[0])]
        if not todo:
            return
        rows = [(k, _keys.key_id(k), *_keys._stat(_keys.split_key(k)[0])) for k in todo]
        self._db.write(lambda c: c.executemany(
            "INSERT OR IGNORE INTO item_keys (level, key, item, size, mtime_ns)"
            " VALUES ('image',?,?,?,?)", rows), "record item keys")

    # ------------------------------------------------------------------ prediction cache
    def put_predictions(self, preds: Iterable[Prediction], *, include_errors: bool = False) -> int:
        """Cache predictions (replacing older ones of the same model, version and image).
        Predictions with an error are skipped unless include_errors."""
        preds = list(preds)
        return self._db.write(lambda c: _pred.put(c, preds, include_errors), "cache predictions")

    def get_predictions(self, model: str, version: str, keys: Iterable[Any] | None = None, *,
                        check_files: bool = True) -> dict[str, Prediction]:
        """{ImageRef.key: Prediction} cached for model/version (keys: ImageRefs or keys; None =
        all). Entries whose file changed on disk since are left out when check_files."""
        wanted = None if keys is None else [as_key(k) for k in keys]
        return self._db.read(lambda c: _pred.get(c, model, version, wanted, check_files))

    def clear_predictions(self, model: str | None = None, version: str | None = None) -> int:
        return self._db.write(lambda c: _pred.clear(c, model, version), "clear predictions")

    # ------------------------------------------------------------------ history import
    def import_events(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append events recorded elsewhere (full JSON export): dicts with the Correction fields
        plus 'inverse_of_uid' instead of inverse_of. Events whose uid is already here are
        skipped, so importing twice changes nothing. 'consumed_by_run' is restored.
        Returns the number appended."""
        recs = list(records)

        def txn(conn: sqlite3.Connection) -> int:
            n = 0
            for r in recs:
                if conn.execute("SELECT 1 FROM corrections WHERE uid = ?", (r["uid"],)).fetchone():
                    continue
                kind = r["kind"]
                inverse = None
                if r.get("inverse_of_uid"):
                    row = conn.execute("SELECT id FROM corrections WHERE uid = ?",
                                       (r["inverse_of_uid"],)).fetchone()
                    if row is None:
                        raise ValueError(f"event {r['uid']} undoes {r['inverse_of_uid']}, "
                                         "which is neither here nor earlier in the file")
                    inverse = row[0]
                check_reason(r["reason"])
                cur = conn.execute(
                    "INSERT INTO corrections (uid, level, key, kind, old_value, new_value,"
                    " model_output, reader, time, reason, note, model, model_version,"
                    " exclude_from_training, inverse_of, space, reader_role, project)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (r["uid"], check_level(r["level"]), r["key"], kind,
                     value_to_json(kind, value_in(kind, r.get("old_value"))),
                     value_to_json(kind, value_in(kind, r.get("new_value"))),
                     output_to_json(output_in(r.get("model_output"))), r["reader"], r["time"],
                     r["reason"], r.get("note", ""), r.get("model", ""), r.get("model_version", ""),
                     int(bool(r.get("exclude_from_training"))), inverse, r.get("space") or "",
                     r.get("role") or "", r.get("project") or ""))
                run = r.get("consumed_by_run")
                if run:
                    conn.execute("INSERT OR IGNORE INTO training_runs (run_id, time) VALUES (?,?)",
                                 (run, r["time"]))
                    conn.execute("INSERT INTO consumed (event_id, run_id, time) VALUES (?,?,?)",
                                 (cur.lastrowid, run, r["time"]))
                n += 1
            return n
        return self._db.write(txn, "import corrections")

