"""Blinded reads, consensus and adjudication in the label store (issue 16; rules in
radview.store.team).

    r = store.record_read("wrist-2x", key, "abnormal", reader="alice")   # must be on her worklist
    store.reads("wrist-2x", key, viewer="alice")     # blinded: only alice's own read(s)
    store.item_status("wrist-2x", key, viewer="dana")  # ItemStatus: open / disputed / final
    store.disputed("wrist-2x", viewer="dana")        # the adjudication queue (leads only)
    c = store.adjudicate("wrist-2x", key, "normal", note="no fracture line on the lateral",
                         reader="dana")              # the FINAL label: a correction (project set)

A read is an append-only row of `reads`, never a correction: nothing that reads labels (review,
retraining, export) sees it. When the last of an item's `reads` readers reads it and they all
agree, the consensus is appended to the correction log in the same transaction (reason 'other',
note 'consensus of N reads ...'); when they disagree the item waits for an adjudicator or admin,
whose final label is appended with their reason. Final labels carry Correction.project, so
`item_status` knows them; undoing one (store.undo) puts the item back to disputed / agreed.
"""
from __future__ import annotations

import sqlite3
import uuid
from typing import Any, Sequence

from radview import spaces as _spaces
from radview.store import derive, team as _team
from radview.store.model import Correction, check_reason, utc_now
from radview.store.rows import EVENT_COLS, EVENT_FROM, as_key, event_row
from radview.store.team import ItemStatus, Read

_READ_COLS = "id, uid, project, key, reader, role, value, reason, note, model_shown, others_shown, time"
CONSENSUS = "consensus of"


def _read_row(row: Sequence[Any]) -> Read:
    id_, uid, project, key, reader, role, value, reason, note, model, others, time = row
    return Read(int(id_), uid, project, key, reader, role, value, reason, note, bool(model),
                bool(others), time)


class ReadsMixin:
    """Mixed into LabelStore (with WorklistsMixin: needs self._project_in, _assignments_in,
    _require_lead, and LabelStore's _append_in, _role_in, _ids)."""

    def record_read(self, name: str, item: Any, value: str, *, reader: str | None = None,
                    reason: str = "", note: str = "", model_shown: bool | None = None,
                    others_shown: bool | None = None) -> Read:
        """Record `reader`'s read (a class of the project's label space) of an item on their
        worklist; a later read of theirs replaces it until the item's final label is recorded.
        model_shown / others_shown: what was on screen (default: what the project lets them see).
        Completing an agreeing set of reads appends the consensus as the final label."""
        k = as_key(item)
        who = reader or self.reader
        if not isinstance(value, str) or not value:
            raise ValueError(f"a read is a class name, not {value!r}")
        if reason:
            check_reason(reason)
        ident = self._ids(k)

        def txn(conn: sqlite3.Connection) -> Read:
            p = self._project_in(conn, name)
            role = self._role_in(conn, who)
            pol = _team.policy(p, who, role)
            if who not in self._assignments_in(conn, name, [k]).get(k, {}):
                raise ValueError(f"{k} is not on {who}'s worklist of project {name!r} "
                                 "(claim it or ask a lead to assign it)")
            if self._finals_in(conn, name, [k]).get(k) is not None:
                raise ValueError(f"{k} has its final label in project {name!r} already")
            space = self._read_space(conn, p, k)
            sp = _spaces.get_space(space)
            if sp is not None and sp.classes and value not in sp.classes:
                raise ValueError(f"read {value!r} of {k} is not in the label space {sp.text}")
            uid = uuid.uuid4().hex
            conn.execute(f"INSERT INTO reads ({_READ_COLS[4:]}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         (uid, name, k, who, role, value, reason or "", note or "",
                          int(pol.model if model_shown is None else bool(model_shown)),
                          int(pol.others if others_shown is None else bool(others_shown)),
                          utc_now()))
            read = _read_row(conn.execute(f"SELECT {_READ_COLS} FROM reads WHERE uid = ?",
                                          (uid,)).fetchone())
            latest = self._reads_by_item_in(conn, name, [k]).get(k, {})
            state, agreed = _team.consensus(latest, p.reads)
            if state == "agreed":
                names = ", ".join(sorted(latest))
                self._append_in(conn, k, p.level, "label", agreed, "other",
                                f"{CONSENSUS} {len(latest)} reads in project {name} ({names})",
                                "", "", None, False, who, space or None, item=ident,
                                project=name)
            return read
        return self._db.write(txn, "save the read")

    def adjudicate(self, name: str, item: Any, value: str, *, note: str,
                   reason: str = "other", reader: str | None = None, model: str = "",
                   model_version: str = "", model_output: Any = None) -> Correction:
        """The adjudicator's (or admin's) final label of an item whose reads are all in, with
        their reason (note, required). Appended to the correction log (Correction.project =
        the project): review, retraining and export use it. Returns the Correction."""
        k = as_key(item)
        who = reader or self.reader
        check_reason(reason)
        if not note or not note.strip():
            raise ValueError("an adjudication needs its reason (note)")
        ident = self._ids(k)

        def txn(conn: sqlite3.Connection) -> Correction:
            self._require_lead(conn, who, f"adjudicate in project {name!r}")
            p = self._project_in(conn, name)
            if conn.execute("SELECT 1 FROM project_items WHERE project = ? AND key = ?",
                            (name, k)).fetchone() is None:
                raise ValueError(f"{k} is not in project {name!r}")
            latest = self._reads_by_item_in(conn, name, [k]).get(k, {})
            if _team.consensus(latest, p.reads)[0] == "open":
                raise ValueError(f"{k} has {len(latest)} of its {p.reads} reads: adjudication "
                                 "waits until all reads are in")
            return self._append_in(conn, k, p.level, "label", value, reason, note, model,
                                   model_version, model_output, False, who,
                                   self._read_space(conn, p, k) or None, item=ident, project=name)
        return self._db.write(txn, "save the final label")

    def reads(self, name: str, item: Any = None, *, viewer: str | None = None,
              latest: bool = True) -> list[Read]:
        """The project's reads (of one item when given) that `viewer` (default this store's
        reader) may see: a blinded reader only their own. latest=False: superseded ones too."""
        who = viewer or self.reader
        k = None if item is None else as_key(item)

        def read(conn: sqlite3.Connection) -> list[Read]:
            p = self._project_in(conn, name)
            pol = _team.policy(p, who, self._role_in(conn, who))
            rows = self._reads_in(conn, name, keys=None if k is None else [k],
                                  reader=None if pol.others else who)
            if latest:
                rows = [r for per in _team.latest_reads(rows).values() for r in per.values()]
            return sorted(rows, key=lambda r: r.id)
        return self._db.read(read)

    def read_log(self, name: str | None = None) -> list[Read]:
        """Every read (superseded ones too) of one project or of all, in order: for export and
        agreement statistics, never for showing to a blinded reader."""
        def read(conn: sqlite3.Connection) -> list[Read]:
            if name is not None:
                self._project_in(conn, name)
                return sorted(self._reads_in(conn, name), key=lambda r: r.id)
            return [_read_row(r) for r in conn.execute(f"SELECT {_READ_COLS} FROM reads ORDER BY id")]
        return self._db.read(read)

    def item_status(self, name: str, item: Any, *, viewer: str | None = None) -> ItemStatus:
        k = as_key(item)
        out = self.statuses(name, [k], viewer=viewer)
        if k not in out:
            raise ValueError(f"{k} is not in project {name!r}")
        return out[k]

    def statuses(self, name: str, keys: Sequence[Any] | None = None, *,
                 viewer: str | None = None) -> dict[str, ItemStatus]:
        """{key: ItemStatus} of the project's items as `viewer` may see them: a blinded reader
        gets only their own read and status 'read' / 'open' (never 'disputed' or the final)."""
        who = viewer or self.reader
        wanted = None if keys is None else [as_key(k) for k in keys]

        def read(conn: sqlite3.Connection) -> dict[str, ItemStatus]:
            p = self._project_in(conn, name)
            pol = _team.policy(p, who, self._role_in(conn, who))
            items = self._items_in(conn, name)
            ks = [k for k in items if wanted is None or k in set(wanted)]
            by_item = self._reads_by_item_in(conn, name, ks)
            active = self._assignments_in(conn, name)
            finals = self._finals_in(conn, name, ks) if pol.others else {}
            out = {}
            for k in ks:
                latest = by_item.get(k, {})
                if not pol.others:
                    own = latest.get(who)
                    out[k] = ItemStatus(name, k, "read" if own else "open", p.reads, int(own is not None),
                                        (who,) if who in active.get(k, {}) else (),
                                        (own,) if own else (), study_type=items[k])
                    continue
                state, agreed = _team.consensus(latest, p.reads)
                f = finals.get(k)
                kw: dict[str, Any] = {}
                if f is not None:
                    state = "final"
                    kw = {"final": f.new_value, "final_event": f.id, "final_reader": f.reader,
                          "final_note": f.note,
                          "final_by": "consensus" if f.note.startswith(CONSENSUS) else "adjudication"}
                out[k] = ItemStatus(name, k, state, p.reads, len(latest),
                                    tuple(sorted(set(active.get(k, {})) | set(latest))),
                                    tuple(sorted(latest.values(), key=lambda r: r.id)),
                                    study_type=items[k], **kw)
            return out
        return self._db.read(read)

    def disputed(self, name: str, *, viewer: str | None = None) -> list[ItemStatus]:
        """The adjudication queue: items whose reads are all in and disagree (or agree but whose
        final label was undone), with every read. For adjudicators and admins."""
        who = viewer or self.reader
        self._db.read(lambda c: self._require_lead(c, who, "see the adjudication queue"))
        return [s for s in self.statuses(name, viewer=who).values()
                if s.status in ("disputed", "agreed")]

    # ------------------------------------------------------------------ internals
    def _items_in(self, conn: sqlite3.Connection, name: str) -> dict[str, str]:
        return dict(conn.execute("SELECT key, study_type FROM project_items WHERE project = ?"
                                 " ORDER BY time, key", (name,)).fetchall())

    def _read_space(self, conn: sqlite3.Connection, p: _team.Project, key: str) -> str:
        if p.space:
            return p.space
        return self._space_in(conn, key, p.level, self._state_in(conn, key, p.level))

    def _reads_in(self, conn: sqlite3.Connection, name: str, keys: list[str] | None = None,
                  reader: str | None = None) -> list[Read]:
        sql, args = f"SELECT {_READ_COLS} FROM reads WHERE project = ?", [name]
        if reader is not None:
            sql += " AND reader = ?"
            args.append(reader)
        return [_read_row(r) for r in self._select(conn, sql, args, keys)]

    def _reads_by_item_in(self, conn: sqlite3.Connection, name: str,
                          keys: list[str] | None = None) -> dict[str, dict[str, Read]]:
        return _team.latest_reads(self._reads_in(conn, name, keys))

    def _finals_in(self, conn: sqlite3.Connection, name: str, keys: list[str]) -> dict[str, Correction | None]:
        """{key: the active final label event of the project} (undos carry the project too)."""
        rows = self._select(conn, "SELECT " + EVENT_COLS + EVENT_FROM + " WHERE c.project = ?",
                            [name], keys, column="c.key")
        events = sorted((event_row(r) for r in rows), key=lambda e: e.id)
        active = derive.active_map(events)
        out: dict[str, Correction | None] = {}
        for e in events:
            if e.inverse_of is None and active.get(e.id, True):
                out[e.key] = e
        return out
