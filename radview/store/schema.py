"""The label store's schema and its migrations (PRAGMA user_version counts the applied ones).

To change the schema, append a migration to MIGRATIONS; never edit an applied one.
`corrections` is append-only: triggers refuse UPDATE and DELETE. What a training run consumed
lives in `consumed` (state, not history), so the event log itself is never rewritten.
"""
from __future__ import annotations

# 'RVLS' (radview label store): lets us refuse to migrate some other program's SQLite file.
APPLICATION_ID = 0x52564C53

_V1 = """
CREATE TABLE items (
    level       TEXT NOT NULL CHECK (level IN ('study', 'image')),
    key         TEXT NOT NULL,
    study_key   TEXT,
    patient     TEXT NOT NULL DEFAULT '',
    study_type  TEXT NOT NULL DEFAULT '',
    width       INTEGER,
    height      INTEGER,
    meta        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (level, key)
) WITHOUT ROWID;

CREATE TABLE source_labels (
    level   TEXT NOT NULL CHECK (level IN ('study', 'image')),
    key     TEXT NOT NULL,
    value   TEXT,
    boxes   TEXT,
    source  TEXT NOT NULL DEFAULT '',
    time    TEXT NOT NULL,
    PRIMARY KEY (level, key)
) WITHOUT ROWID;

CREATE TABLE corrections (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uid             TEXT NOT NULL UNIQUE,
    level           TEXT NOT NULL CHECK (level IN ('study', 'image')),
    key             TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('label', 'boxes')),
    old_value       TEXT,
    new_value       TEXT,
    model_output    TEXT,
    reader          TEXT NOT NULL,
    time            TEXT NOT NULL,
    reason          TEXT NOT NULL,
    note            TEXT NOT NULL DEFAULT '',
    model           TEXT NOT NULL DEFAULT '',
    model_version   TEXT NOT NULL DEFAULT '',
    exclude_from_training INTEGER NOT NULL DEFAULT 0 CHECK (exclude_from_training IN (0, 1)),
    inverse_of      INTEGER UNIQUE REFERENCES corrections(id),
    CHECK (kind = 'label' OR level = 'image')
);
CREATE INDEX corrections_item ON corrections(level, key);

CREATE TRIGGER corrections_append_only_update BEFORE UPDATE ON corrections
BEGIN SELECT RAISE(ABORT, 'corrections are append-only'); END;
CREATE TRIGGER corrections_append_only_delete BEFORE DELETE ON corrections
BEGIN SELECT RAISE(ABORT, 'corrections are append-only'); END;

CREATE TABLE training_runs (
    run_id  TEXT PRIMARY KEY,
    time    TEXT NOT NULL,
    note    TEXT NOT NULL DEFAULT ''
);

CREATE TABLE consumed (
    event_id  INTEGER PRIMARY KEY REFERENCES corrections(id),
    run_id    TEXT NOT NULL REFERENCES training_runs(run_id),
    time      TEXT NOT NULL
);
CREATE INDEX consumed_run ON consumed(run_id);

CREATE TABLE predictions (
    model          TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    key            TEXT NOT NULL,
    path           TEXT NOT NULL,
    frame          INTEGER NOT NULL,
    classes        TEXT NOT NULL,
    probs          TEXT NOT NULL,
    boxes          TEXT NOT NULL,
    in_domain      INTEGER NOT NULL,
    domain_reason  TEXT NOT NULL DEFAULT '',
    error          TEXT,
    file_mtime_ns  INTEGER,
    file_size      INTEGER,
    time           TEXT NOT NULL,
    PRIMARY KEY (model, model_version, key)
) WITHOUT ROWID;
"""

# v2: label spaces (issue 10) and item keys that survive a moved folder (issue 11).
# - corrections.space: the label space of each new event ('' for events written before v2: their
#   space is the item's source label space, derived when read; the log itself is not rewritten);
# - source_labels.space, items.space, items.root (the scanned folder), spaces (name -> JSON spec);
# - item_keys: (level, key) -> stable item id (radview.store.keys.item_id) with the file's size and
#   mtime when it was computed; moves: old key -> new key, recorded by record_scan when a file with
#   the same item id shows up at a new path and the old one is gone. Reads follow the moves, so a
#   correction made at the old path applies at the new one. Both tables only grow.
_V2 = """
ALTER TABLE corrections ADD COLUMN space TEXT NOT NULL DEFAULT '';
CREATE INDEX corrections_space ON corrections(space);
ALTER TABLE source_labels ADD COLUMN space TEXT NOT NULL DEFAULT '';
ALTER TABLE items ADD COLUMN space TEXT NOT NULL DEFAULT '';
ALTER TABLE items ADD COLUMN root TEXT NOT NULL DEFAULT '';

CREATE TABLE spaces (
    name  TEXT PRIMARY KEY,
    spec  TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE item_keys (
    level     TEXT NOT NULL CHECK (level IN ('study', 'image')),
    key       TEXT NOT NULL,
    item      TEXT NOT NULL,
    size      INTEGER,
    mtime_ns  INTEGER,
    PRIMARY KEY (level, key)
) WITHOUT ROWID;
CREATE INDEX item_keys_item ON item_keys(item);

CREATE TABLE moves (
    level    TEXT NOT NULL CHECK (level IN ('study', 'image')),
    old_key  TEXT NOT NULL,
    new_key  TEXT NOT NULL,
    item     TEXT NOT NULL,
    time     TEXT NOT NULL,
    PRIMARY KEY (level, old_key)
) WITHOUT ROWID;
"""

# V3 (issue 14): measurements are annotations, kept as append-only events like corrections
# (radview.store.measurements): op 'add' carries the Measurement JSON; op 'delete' / 'restore'
# name the add event they remove or bring back (undo of an add is a delete, and so on).
_V3 = """
CREATE TABLE measurement_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    uid      TEXT NOT NULL UNIQUE,
    key      TEXT NOT NULL,
    op       TEXT NOT NULL CHECK (op IN ('add', 'delete', 'restore')),
    target   INTEGER,
    value    TEXT NOT NULL DEFAULT '',
    reader   TEXT NOT NULL DEFAULT '',
    time     TEXT NOT NULL,
    note     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX measurement_events_key ON measurement_events(key);
CREATE TRIGGER measurement_events_append_only_update BEFORE UPDATE ON measurement_events
BEGIN SELECT RAISE(ABORT, 'measurement events are append-only'); END;
CREATE TRIGGER measurement_events_append_only_delete BEFORE DELETE ON measurement_events
BEGIN SELECT RAISE(ABORT, 'measurement events are append-only'); END;
"""

# V4 (issue 16): reader identity with a role on every event. corrections.reader_role: the
# reader's role when the event was written ('' for events written before v4: unknown);
# readers: name -> role (reader, adjudicator, admin), set by LabelStore.set_reader.
_V4 = """
ALTER TABLE corrections ADD COLUMN reader_role TEXT NOT NULL DEFAULT ''
    CHECK (reader_role IN ('', 'reader', 'adjudicator', 'admin'));
CREATE TABLE readers (
    name  TEXT PRIMARY KEY,
    role  TEXT NOT NULL CHECK (role IN ('reader', 'adjudicator', 'admin')),
    time  TEXT NOT NULL
) WITHOUT ROWID;
"""

# V5 (issue 16, team reading): projects that need N independent (optionally blinded) reads of
# each of their studies; worklists; the reads themselves; conflicts of concurrent corrections.
# - projects: name -> settings (state, changed only by an upsert);
# - project_items: the studies (or images) of a project (only grows);
# - worklist_events: append-only assign / claim / release of a project item to a reader (the
#   worklist is their fold: radview.store.worklists);
# - reads: append-only blinded reads (a reader's latest read of an item counts); they are NOT
#   corrections, so nothing reads them as the label: the FINAL label (consensus of the reads, or
#   the adjudicator's) is appended to `corrections` with corrections.project = the project;
# - corrections.seen_event: the newest event of the item its writer had seen (NULL: not said);
#   corrections.conflict_with: the newest event of another reader the writer had NOT seen (two
#   readers correcting one item at the same moment): both events are kept, the conflict is shown.
_V5 = """
ALTER TABLE corrections ADD COLUMN project TEXT NOT NULL DEFAULT '';
ALTER TABLE corrections ADD COLUMN seen_event INTEGER;
ALTER TABLE corrections ADD COLUMN conflict_with INTEGER;
CREATE TABLE projects (
    name        TEXT PRIMARY KEY,
    level       TEXT NOT NULL DEFAULT 'study' CHECK (level IN ('study', 'image')),
    space       TEXT NOT NULL DEFAULT '',
    reads       INTEGER NOT NULL DEFAULT 2 CHECK (reads >= 1),
    blinded     INTEGER NOT NULL DEFAULT 1 CHECK (blinded IN (0, 1)),
    hide_model  INTEGER NOT NULL DEFAULT 1 CHECK (hide_model IN (0, 1)),
    note        TEXT NOT NULL DEFAULT '',
    creator     TEXT NOT NULL DEFAULT '',
    time        TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE project_items (
    project     TEXT NOT NULL,
    key         TEXT NOT NULL,
    study_type  TEXT NOT NULL DEFAULT '',
    split       TEXT NOT NULL DEFAULT '',
    time        TEXT NOT NULL,
    PRIMARY KEY (project, key)
) WITHOUT ROWID;
CREATE TABLE worklist_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    uid       TEXT NOT NULL UNIQUE,
    project   TEXT NOT NULL,
    key       TEXT NOT NULL,
    reader    TEXT NOT NULL,
    op        TEXT NOT NULL CHECK (op IN ('assign', 'claim', 'release')),
    by_reader TEXT NOT NULL,
    by_role   TEXT NOT NULL DEFAULT '',
    time      TEXT NOT NULL,
    note      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX worklist_events_project ON worklist_events(project, reader);
CREATE TRIGGER worklist_events_append_only_update BEFORE UPDATE ON worklist_events
BEGIN SELECT RAISE(ABORT, 'worklist events are append-only'); END;
CREATE TRIGGER worklist_events_append_only_delete BEFORE DELETE ON worklist_events
BEGIN SELECT RAISE(ABORT, 'worklist events are append-only'); END;
CREATE TABLE reads (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uid         TEXT NOT NULL UNIQUE,
    project     TEXT NOT NULL,
    key         TEXT NOT NULL,
    reader      TEXT NOT NULL,
    role        TEXT NOT NULL DEFAULT '',
    value       TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT '',
    model_shown INTEGER NOT NULL DEFAULT 0 CHECK (model_shown IN (0, 1)),
    others_shown INTEGER NOT NULL DEFAULT 0 CHECK (others_shown IN (0, 1)),
    time        TEXT NOT NULL
);
CREATE INDEX reads_project ON reads(project, key);
CREATE TRIGGER reads_append_only_update BEFORE UPDATE ON reads
BEGIN SELECT RAISE(ABORT, 'reads are append-only'); END;
CREATE TRIGGER reads_append_only_delete BEFORE DELETE ON reads
BEGIN SELECT RAISE(ABORT, 'reads are append-only'); END;
"""

# Each entry upgrades the schema from version i to i + 1.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5)
LATEST = len(MIGRATIONS)
OUR_TABLES = frozenset({"items", "source_labels", "corrections", "training_runs", "consumed",
                        "predictions", "corrections_item", "consumed_run",
                        "corrections_append_only_update", "corrections_append_only_delete",
                        "corrections_space", "spaces", "item_keys", "item_keys_item", "moves",
                        "measurement_events", "measurement_events_key", "readers",
                        "measurement_events_append_only_update", "measurement_events_append_only_delete",
                        # v5
                        "projects", "project_items", "worklist_events", "worklist_events_project",
                        "worklist_events_append_only_update", "worklist_events_append_only_delete",
                        "reads", "reads_project", "reads_append_only_update",
                        "reads_append_only_delete"})
