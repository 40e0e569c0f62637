"""SQLite -> PostgreSQL translation of the label store's SQL (so labels.py, queue.py, items.py,
keys.py and undo.py run unchanged on both backends).

The store's modules speak SQLite. `query(sql)` rewrites one statement for psycopg 3:
- `?` placeholders -> `%s` (outside string literals), every literal `%` -> `%%`;
- `INSERT OR IGNORE` -> `INSERT ... ON CONFLICT DO NOTHING`; `INSERT OR REPLACE` -> an upsert on
  the table's primary key (PRIMARY_KEYS);
- `INSERT INTO corrections` gets `RETURNING id` (cursor.lastrowid);
- `json_extract(x, '$')` -> `(x)::jsonb #>> '{}'`, `json_array_length(x)` -> `jsonb_array_length`;
- SQLite's integer booleans `WHERE 1` / `AND 0` -> `TRUE` / `FALSE`.
`ddl(statement)` rewrites a migration statement (types, AUTOINCREMENT, WITHOUT ROWID, triggers
raising 'corrections are append-only' -> a PL/pgSQL trigger function, plus a TRUNCATE guard).
The rest is what PostgreSQL says where SQLite says BEGIN IMMEDIATE / PRAGMA user_version: the
transactions' BEGIN and the radview_meta table that holds the schema version.
"""
from __future__ import annotations

import functools
import re

from radview.store import schema

#: pg_advisory_xact_lock key of the writers' lock ('RVLS')
WRITE_LOCK = schema.APPLICATION_ID
#: a write transaction: BEGIN, then wait for the writers' lock (one round trip), so writers run
#: one at a time as under SQLite's BEGIN IMMEDIATE
BEGIN_WRITE = f"BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
#: a read transaction: one consistent snapshot
BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
TABLES = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
META = "SELECT key, value FROM radview_meta"
CREATE_META = "CREATE TABLE IF NOT EXISTS radview_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
INIT_META = ("INSERT INTO radview_meta VALUES ('application_id', %s), ('user_version', '0')"
             " ON CONFLICT (key) DO NOTHING")
SET_VERSION = "UPDATE radview_meta SET value = %s WHERE key = 'user_version'"

#: primary keys of the tables written with INSERT OR REPLACE
PRIMARY_KEYS = {
    "predictions": ("model", "model_version", "key"),
    "items": ("level", "key"),
    "source_labels": ("level", "key"),
    "spaces": ("name",),
    "item_keys": ("level", "key"),
    "moves": ("level", "old_key"),
    "training_runs": ("run_id",),
    "consumed": ("event_id",),
}

_LITERAL = re.compile(r"('(?:[^']|'')*')")
_JSON_EXTRACT = re.compile(r"json_extract\(([^,()]+),\s*'\$'\)")
_JSON_LEN = re.compile(r"json_array_length\(([^()]+)\)")
_BOOL = re.compile(r"\b(WHERE|AND|OR)\s+([01])(?=\s|\)|$)")
_REPLACE = re.compile(r"^\s*INSERT\s+OR\s+REPLACE\s+INTO\s+(\w+)\s*\(([^)]*)\)", re.I | re.S)
_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\s+", re.I)
_INSERT_CORR = re.compile(r"^\s*INSERT\s+INTO\s+corrections\b", re.I)


@functools.lru_cache(maxsize=1024)
def query(sql: str) -> tuple[str, bool]:
    """(psycopg statement, whether it returns the new id) for one SQLite statement."""
    sql = _JSON_EXTRACT.sub(r"((\1)::jsonb #>> '{}')", sql)
    sql = _JSON_LEN.sub(r"jsonb_array_length((\1)::jsonb)", sql)
    suffix = ""
    m = _REPLACE.match(sql)
    if m:
        table, cols = m.group(1), [c.strip() for c in m.group(2).split(",")]
        pk = PRIMARY_KEYS[table]
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in pk)
        sql = "INSERT INTO " + sql[m.start(1):]
        suffix = f" ON CONFLICT ({', '.join(pk)}) DO " + (f"UPDATE SET {sets}" if sets else "NOTHING")
    elif _IGNORE.match(sql):
        sql = _IGNORE.sub("INSERT INTO ", sql)
        suffix = " ON CONFLICT DO NOTHING"
    returning = False
    if _INSERT_CORR.match(sql) and "RETURNING" not in sql.upper():
        suffix += " RETURNING id"
        returning = True
    parts = _LITERAL.split(sql + suffix)
    out = []
    for i, part in enumerate(parts):
        part = part.replace("%", "%%")
        if i % 2 == 0:  # outside literals
            part = _BOOL.sub(lambda b: f"{b.group(1)} {'TRUE' if b.group(2) == '1' else 'FALSE'}", part)
            part = part.replace("?", "%s")
        out.append(part)
    return "".join(out), returning


_TRIGGER = re.compile(r"CREATE\s+TRIGGER\s+(\w+)\s+BEFORE\s+(UPDATE|DELETE)\s+ON\s+(\w+)\s+BEGIN\s+"
                      r"SELECT\s+RAISE\(ABORT,\s*'([^']*)'\);\s*END;?", re.I | re.S)

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION radview_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
END
$fn$
"""


def ddl(statement: str) -> list[str]:
    """PostgreSQL statements for one SQLite migration statement."""
    m = _TRIGGER.fullmatch(statement.strip())
    if m:
        name, event, table, message = m.groups()
        out = [APPEND_ONLY_FUNCTION.strip(),
               f"CREATE TRIGGER {name} BEFORE {event.upper()} ON {table} FOR EACH ROW "
               f"EXECUTE FUNCTION radview_append_only('{message}')"]
        if event.upper() == "DELETE":
            out.append(f"CREATE TRIGGER {table}_append_only_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION radview_append_only('{message}')")
        return out
    s = statement
    s = re.sub(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b",
               "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", s, flags=re.I)
    s = re.sub(r"\bINTEGER\b", "BIGINT", s)
    s = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', s)  # byte order, as SQLite sorts
    s = re.sub(r"\)\s*WITHOUT\s+ROWID", ")", s, flags=re.I)
    return [s.rstrip().rstrip(";")]
