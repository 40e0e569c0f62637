"""Reading projects and worklists in the label store (issue 16; rules in radview.store.team).

    store.set_reader("dana", "adjudicator")                 # leads: adjudicator, admin
    p = store.create_project("wrist-2x", reads=2, blinded=True, hide_model=True, space="mura",
                             reader="dana")
    store.add_to_project("wrist-2x", split="valid", study_type="XR_WRIST")   # from the scans
    store.assign("wrist-2x", ["alice", "bob"], reader="dana")              # balanced split
    store.assign("wrist-2x", ["carol"], mode="count", count=20, shuffle=True, seed=7, reader="dana")
    store.claim("wrist-2x", reader="erin")        # the next item still short of readers (or key=)
    store.release("wrist-2x", key, reader="erin") # back to the pool (not once read)
    store.worklist("wrist-2x", reader="alice")    # [WorklistItem] (with alice's own read)
    store.progress("wrist-2x", viewer="dana")     # [ReaderProgress] ("37/120 read")

Worklist changes are append-only events (worklist_events: assign / claim / release); the
worklist is their fold. Assigning and releasing for someone else need a lead role; a blinded
reader sees only their own worklist and progress. Writes run under the store's write lock, so
two readers claiming at once never put an item over its number of reads.
"""
from __future__ import annotations

import sqlite3
import uuid
from typing import Any, Iterable, Sequence

from radview.store import team as _team
from radview.store.model import check_level, utc_now
from radview.store.rows import as_key
from radview.store.team import (AssignResult, Project, ReaderProgress, ViewPolicy,
                                WorklistItem)

_PROJECT_COLS = "name, level, space, reads, blinded, hide_model, note, creator, time"


def _project_row(row: Sequence[Any]) -> Project:
    name, level, space, reads, blinded, hide_model, note, creator, time = row
    return Project(name, level, space, int(reads), bool(blinded), bool(hide_model), note,
                   creator, time)


class WorklistsMixin:
    """Mixed into LabelStore (needs self._db, self.reader, self._role_in)."""

    # ------------------------------------------------------------------ projects
    def create_project(self, name: str, *, reads: int = 2, blinded: bool = True,
                       hide_model: bool = True, level: str = "study", space: str = "",
                       note: str = "", reader: str | None = None, replace: bool = False) -> Project:
        """A reading project (a lead's job). replace=True changes an existing one's settings."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a project name is a non-empty str, not {name!r}")
        check_level(level)
        if int(reads) < 1:
            raise ValueError(f"a project needs at least 1 read per item, not {reads}")
        who = reader or self.reader

        def txn(conn: sqlite3.Connection) -> Project:
            self._require_lead(conn, who, f"create project {name!r}")
            if not replace and self._project_in(conn, name, missing_ok=True) is not None:
                raise ValueError(f"project {name!r} exists already (replace=True changes it)")
            conn.execute(
                f"INSERT INTO projects ({_PROJECT_COLS}) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(name) DO UPDATE SET level = excluded.level, space = excluded.space,"
                " reads = excluded.reads, blinded = excluded.blinded,"
                " hide_model = excluded.hide_model, note = excluded.note",
                (name, level, space or "", int(reads), int(bool(blinded)), int(bool(hide_model)),
                 note or "", who, utc_now()))
            return self._project_in(conn, name)
        return self._db.write(txn, "save the project")

    def project(self, name: str) -> Project:
        """A project by name (ValueError naming the known ones if unknown)."""
        return self._db.read(lambda c: self._project_in(c, name))

    def projects(self) -> list[Project]:
        return self._db.read(lambda c: [_project_row(r) for r in c.execute(
            f"SELECT {_PROJECT_COLS} FROM projects ORDER BY name")])

    def add_to_project(self, name: str, keys: Iterable[Any] | None = None, *,
                       split: str | None = None, study_type: str | None = None) -> int:
        """Put items into a project: the given keys, or every item of the project's level that
        the scans recorded (store.items), of one dataset split and / or study type when given.
        Returns how many were new to the project."""
        def txn(conn: sqlite3.Connection) -> int:
            p = self._project_in(conn, name)
            known = {r[0]: (r[1] or "", _split_of(r[2])) for r in conn.execute(
                "SELECT key, study_type, meta FROM items WHERE level = ?", (p.level,))}
            wanted = sorted(known) if keys is None else [as_key(k) for k in keys]
            now, n = utc_now(), 0
            for k in wanted:
                stype, sp = known.get(k, ("", ""))
                if (split is not None and sp != split) or (study_type is not None and stype != study_type):
                    continue
                n += conn.execute("INSERT OR IGNORE INTO project_items (project, key, study_type,"
                                  " split, time) VALUES (?,?,?,?,?)",
                                  (name, k, stype, sp, now)).rowcount
            return n
        return self._db.write(txn, "add items to the project")

    def project_items(self, name: str) -> dict[str, dict[str, str]]:
        """{key: {'study_type', 'split'}} of a project, in the order they were added."""
        def read(conn: sqlite3.Connection) -> dict[str, dict[str, str]]:
            self._project_in(conn, name)
            return {k: {"study_type": t, "split": s} for k, t, s in conn.execute(
                "SELECT key, study_type, split FROM project_items WHERE project = ?"
                " ORDER BY time, key", (name,))}
        return self._db.read(read)

    # ------------------------------------------------------------------ worklists
    def assign(self, name: str, readers: Sequence[str], *, keys: Iterable[Any] | None = None,
               mode: str = "balanced", count: int | None = None, shuffle: bool = False,
               seed: int = 0, split: str | None = None, study_type: str | None = None,
               reader: str | None = None, note: str = "") -> AssignResult:
        """Assign project items to readers (radview.store.team.plan_assignment: 'balanced'
        splits them evenly, 'count' gives each reader `count`; shuffle + seed: at random,
        reproducibly). keys / split / study_type choose among the project's items (all by
        default). A lead's job (reader: who assigns; default this store's reader)."""
        who = reader or self.reader
        wanted = None if keys is None else {as_key(k) for k in keys}

        def txn(conn: sqlite3.Connection) -> AssignResult:
            role = self._require_lead(conn, who, f"assign items of project {name!r}")
            p = self._project_in(conn, name)
            items = [(k, t, s) for k, t, s in conn.execute(
                "SELECT key, study_type, split FROM project_items WHERE project = ?"
                " ORDER BY time, key", (name,))]
            chosen = [k for k, t, s in items if (wanted is None or k in wanted)
                      and (split is None or s == split) and (study_type is None or t == study_type)]
            if wanted is not None and (missing := wanted - {k for k, _, _ in items}):
                raise ValueError(f"{len(missing)} items are not in project {name!r} (e.g. "
                                 f"{sorted(missing)[0]}): add_to_project first")
            active = self._assignments_in(conn, name)
            readers_of = self._reads_by_item_in(conn, name)
            existing: dict[str, set[str]] = {}
            for src in (active, readers_of):
                for k, v in src.items():
                    existing.setdefault(k, set()).update(v)
            load: dict[str, int] = {}  # what each reader still has to read
            for k, v in active.items():
                for r in v:
                    if r not in readers_of.get(k, {}):
                        load[r] = load.get(r, 0) + 1
            plan = _team.plan_assignment(chosen, readers, p.reads, existing=existing, mode=mode,
                                         count=count, shuffle=shuffle, seed=seed, load=load)
            now = utc_now()
            rows = [(uuid.uuid4().hex, name, k, r, "assign", who, role, now, note or "")
                    for r, ks in plan.items() for k in ks]
            conn.executemany("INSERT INTO worklist_events (uid, project, key, reader, op, by_reader,"
                             " by_role, time, note) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            for r, ks in plan.items():
                for k in ks:
                    existing.setdefault(k, set()).add(r)
            unfilled = tuple(k for k in chosen if len(existing.get(k, ())) < p.reads)
            return AssignResult({r: ks for r, ks in plan.items()}, unfilled)
        return self._db.write(txn, "assign worklist items")

    def claim(self, name: str, key: Any = None, *, reader: str | None = None) -> str | None:
        """A reader takes an item onto their own worklist: `key`, or the first item of the
        project still short of readers that they do not have yet. Returns the key (None when
        nothing is left). ValueError when the item already has all its readers."""
        who = reader or self.reader
        want = None if key is None else as_key(key)

        def txn(conn: sqlite3.Connection) -> str | None:
            p = self._project_in(conn, name)
            active = self._assignments_in(conn, name)
            readers_of = self._reads_by_item_in(conn, name)
            items = [r[0] for r in conn.execute(
                "SELECT key FROM project_items WHERE project = ? ORDER BY time, key", (name,))]
            if want is not None and want not in items:
                raise ValueError(f"{want} is not in project {name!r}")
            for k in ([want] if want is not None else items):
                have = set(active.get(k, {})) | set(readers_of.get(k, {}))
                if who in have:
                    if want is not None:
                        raise ValueError(f"{k} is on {who}'s worklist already")
                    continue
                if len(have) >= p.reads:
                    if want is not None:
                        raise ValueError(f"{k} has all its {p.reads} readers already")
                    continue
                conn.execute("INSERT INTO worklist_events (uid, project, key, reader, op, by_reader,"
                             " by_role, time) VALUES (?,?,?,?,?,?,?,?)",
                             (uuid.uuid4().hex, name, k, who, "claim", who,
                              self._role_in(conn, who), utc_now()))
                return k
            return None
        return self._db.write(txn, "claim a worklist item")

    def release(self, name: str, key: Any, *, reader: str | None = None,
                by: str | None = None, note: str = "") -> None:
        """Take an unread item off a reader's worklist (back to the pool). Releasing another
        reader's item needs a lead role (by: who releases; default the reader)."""
        k = as_key(key)
        who = reader or self.reader
        actor = by or who

        def txn(conn: sqlite3.Connection) -> None:
            self._project_in(conn, name)
            role = self._role_in(conn, actor)
            if actor != who:
                self._require_lead(conn, actor, f"release {who}'s item")
            if who not in self._assignments_in(conn, name, [k]).get(k, {}):
                raise ValueError(f"{k} is not on {who}'s worklist of project {name!r}")
            if who in self._reads_by_item_in(conn, name, [k]).get(k, {}):
                raise ValueError(f"{who} has read {k} already: a read item stays on the worklist")
            conn.execute("INSERT INTO worklist_events (uid, project, key, reader, op, by_reader,"
                         " by_role, time, note) VALUES (?,?,?,?,?,?,?,?,?)",
                         (uuid.uuid4().hex, name, k, who, "release", actor, role, utc_now(),
                          note or ""))
        self._db.write(txn, "release a worklist item")

    def worklist(self, name: str, reader: str | None = None) -> list[WorklistItem]:
        """A reader's worklist (default this store's reader), in project order, each with the
        reader's own latest read (None while still to read)."""
        who = reader or self.reader

        def read(conn: sqlite3.Connection) -> list[WorklistItem]:
            self._project_in(conn, name)
            active = self._assignments_in(conn, name)
            mine = self._reads_in(conn, name, reader=who)
            latest = {r.key: r for r in sorted(mine, key=lambda r: r.id)}
            out = []
            for k, stype in conn.execute("SELECT key, study_type FROM project_items"
                                         " WHERE project = ? ORDER BY time, key", (name,)):
                how = active.get(k, {}).get(who)
                if how is not None:
                    out.append(WorklistItem(name, k, who, how, latest.get(k), stype))
            return out
        return self._db.read(read)

    def progress(self, name: str, viewer: str | None = None) -> list[ReaderProgress]:
        """Per reader: items on their worklist and how many they read ("37/120 read"). A blinded
        project's reader (viewer; default this store's reader) sees only their own line."""
        who = viewer or self.reader

        def read(conn: sqlite3.Connection) -> list[ReaderProgress]:
            p = self._project_in(conn, name)
            pol = _team.policy(p, who, self._role_in(conn, who))
            active = self._assignments_in(conn, name)
            done = self._reads_by_item_in(conn, name)
            counts: dict[str, list[int]] = {}
            for k, readers in active.items():
                for r in readers:
                    c = counts.setdefault(r, [0, 0])
                    c[0] += 1
                    c[1] += int(r in done.get(k, {}))
            rows = [ReaderProgress(r, a, d) for r, (a, d) in sorted(counts.items())]
            return rows if pol.others else [r for r in rows if r.reader == who]
        return self._db.read(read)

    def view_policy(self, name: str, reader: str | None = None) -> ViewPolicy:
        """What `reader` (default this store's reader) may see of the project's items."""
        who = reader or self.reader
        return self._db.read(lambda c: _team.policy(self._project_in(c, name), who,
                                                    self._role_in(c, who)))

    # ------------------------------------------------------------------ internals
    def _project_in(self, conn: sqlite3.Connection, name: str, missing_ok: bool = False) -> Project | None:
        row = conn.execute(f"SELECT {_PROJECT_COLS} FROM projects WHERE name = ?", (name,)).fetchone()
        if row is None:
            if missing_ok:
                return None
            names = [r[0] for r in conn.execute("SELECT name FROM projects ORDER BY name")]
            raise ValueError(f"no project {name!r} in {self.path} (projects: "
                             f"{', '.join(names) or 'none yet'})")
        return _project_row(row)

    def _require_lead(self, conn: sqlite3.Connection, who: str, what: str) -> str:
        role = self._role_in(conn, who)
        if role not in _team.LEADS:
            raise PermissionError(f"{who} has role {role!r}: to {what} takes an adjudicator or an "
                                  f"admin (radview worklist reader NAME --role admin)")
        return role

    def _assignments_in(self, conn: sqlite3.Connection, name: str,
                        keys: list[str] | None = None) -> dict[str, dict[str, str]]:
        """{key: {reader: 'assign' | 'claim'}} (of some keys only when given)."""
        rows = self._select(conn, "SELECT id, key, reader, op FROM worklist_events WHERE project = ?",
                            [name], keys)
        return _team.fold_worklist(r[1:] for r in sorted(rows))


def _split_of(meta: str | None) -> str:
    import json
    try:
        return str((json.loads(meta) if meta else {}).get("split") or "")
    except (ValueError, AttributeError):
        return ""
