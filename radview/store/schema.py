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

# Each entry upgrades the schema from version i to i + 1.
MIGRATIONS: tuple[str, ...] = (_V1,)
LATEST = len(MIGRATIONS)
OUR_TABLES = frozenset({"items", "source_labels", "corrections", "training_runs", "consumed",
                        "predictions", "corrections_item", "consumed_run",
                        "corrections_append_only_update", "corrections_append_only_delete"})
