"""Item keys that survive a moved folder.

The store's API speaks the keys the app uses (ImageRef.key: a path, `path#frame` for a frame of a
multi-frame file; Study.key: StudyInstanceUID, a MURA study path, or the file path of a one-file
study). Paths change when a folder moves, so the store also knows a stable *item id* per key:

    item_id(path, frame=0, uid="") ->
        'dicom:<SOPInstanceUID>[#frame]'   a DICOM image whose SOPInstanceUID is known (View.uid)
        'sha256:<hex>'                     other files: SHA-256 of the file size, its first MiB
                                           and its last 64 KiB (fast on big files; equal only for
                                           the same bytes in practice)
        'path:<absolute path>'             a file that cannot be read (gone, no permission)
    Keys that are not paths (StudyInstanceUID, MURA study keys) are their own item id.

`record_scan` stores (level, key) -> item id in `item_keys` for every DICOM view (free: the UID
is in the header) and for the corrected items; a correction stores its item's id first. When a
scan finds a file whose item id belongs to a corrected key whose file is gone, it records a
*move* old key -> new key (table `moves`); reads follow the moves, so the corrections made at the
old path are found, and reported, at the new one. Nothing in the correction log is rewritten.
Two copies of one file that both exist keep separate histories (a move needs the old file gone).
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from typing import Iterable, Mapping

_HEAD = 1 << 20
_TAIL = 1 << 16


def split_key(key: str) -> tuple[str, int]:
    """('path', frame) of an ImageRef.key ('path' or 'path#3')."""
    base, sep, frame = key.rpartition("#")
    if sep and frame.isdigit() and base:
        return base, int(frame)
    return key, 0


def content_id(path: str) -> str | None:
    """'sha256:<hex>' of size + first MiB + last 64 KiB, or None if the file cannot be read."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            h = hashlib.sha256(str(size).encode() + b"\0")
            h.update(fh.read(_HEAD))
            if size > _HEAD:
                fh.seek(max(_HEAD, size - _TAIL))
                h.update(fh.read(_TAIL))
    except OSError:
        return None
    return "sha256:" + h.hexdigest()[:40]


def item_id(path: str, frame: int = 0, uid: str = "") -> str:
    """The stable id of an image (see the module doc)."""
    suffix = f"#{frame}" if frame else ""
    if uid:
        return f"dicom:{uid}{suffix}"
    if not os.path.isabs(path):
        return path + suffix  # not a file path: the key is its own id
    cid = content_id(path)
    return (cid + suffix) if cid else f"path:{os.path.normpath(path)}{suffix}"


def key_id(key: str) -> str:
    """item_id of a store key (ImageRef.key or Study.key) without a known UID."""
    path, frame = split_key(key)
    return item_id(path, frame)


class IdCache:
    """key -> item id of files already hashed, valid while the file's size and mtime stay."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._d: dict[str, tuple[int | None, int | None, str]] = {}

    def __call__(self, key: str) -> str:
        path, frame = split_key(key)
        if not os.path.isabs(path):
            return key
        size, mtime = _stat(path)
        hit = self._d.get(key)
        if hit is not None and hit[:2] == (size, mtime) and size is not None:
            return hit[2]
        item = item_id(path, frame)
        if len(self._d) >= self.size:
            self._d.pop(next(iter(self._d)))
        self._d[key] = (size, mtime, item)
        return item


def _stat(path: str) -> tuple[int | None, int | None]:
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    return st.st_size, st.st_mtime_ns


def remember(conn: sqlite3.Connection, level: str, key: str, uid: str = "") -> str:
    """Make sure (level, key) has an item id in item_keys (computed when missing or when the
    file changed since); returns it. Cheap for non-path keys and known rows."""
    path, frame = split_key(key)
    if not os.path.isabs(path):
        return key
    size, mtime = _stat(path)
    row = conn.execute("SELECT item, size, mtime_ns FROM item_keys WHERE level = ? AND key = ?",
                       (level, key)).fetchone()
    if row is not None and (size is None or (row[1], row[2]) == (size, mtime)):
        return row[0]
    item = item_id(path, frame, uid)
    conn.execute("INSERT INTO item_keys (level, key, item, size, mtime_ns) VALUES (?,?,?,?,?)"
                 " ON CONFLICT(level, key) DO UPDATE SET item = excluded.item,"
                 " size = excluded.size, mtime_ns = excluded.mtime_ns",
                 (level, key, item, size, mtime))
    return item


def moves(conn: sqlite3.Connection, level: str) -> dict[str, str]:
    """{old key: new key} recorded for a level."""
    return dict(conn.execute("SELECT old_key, new_key FROM moves WHERE level = ?", (level,)))


def forward(key: str, moved: Mapping[str, str]) -> str:
    """Where a key lives now (following moves; loops are cut)."""
    seen = {key}
    while key in moved:
        key = moved[key]
        if key in seen:
            break
        seen.add(key)
    return key


def aliases(keys: Iterable[str], moved: Mapping[str, str]) -> dict[str, str]:
    """{any key whose events belong to one of `keys` (the keys themselves and every earlier
    location): the key of `keys` it now is}."""
    wanted = set(keys)
    out = {k: k for k in wanted}
    for old in moved:
        now = forward(old, moved)
        if now in wanted:
            out[old] = now
    return out


def detect_moves(conn: sqlite3.Connection, views: Iterable[tuple[str, str, str | None]],
                 now: str) -> int:
    """Record moves for a scan. views: (image key, its study key if that is the same file's
    path, DICOM uid or None). Only keys with corrections whose file is gone can move."""
    views = list(views)
    seen = {k for k, _, _ in views}
    moved = {r[0] for r in conn.execute("SELECT old_key FROM moves WHERE level = 'image'")}
    orphans: dict[str, list[str]] = {}
    sizes: set[int] = set()
    for key, item, size in conn.execute(
            "SELECT k.key, k.item, k.size FROM item_keys k WHERE k.level = 'image' AND"
            " (EXISTS (SELECT 1 FROM corrections c WHERE c.key = k.key)"
            "  OR EXISTS (SELECT 1 FROM moves m WHERE m.new_key = k.key))"):  # moved twice
        if key in seen or key in moved:
            continue
        path, _ = split_key(key)
        if os.path.isabs(path) and not os.path.exists(path):
            orphans.setdefault(item, []).append(key)
            if size is not None:
                sizes.add(int(size))
    if not orphans:
        return 0
    n = 0
    for key, study_key, uid in views:
        path, frame = split_key(key)
        found: list[str] = []
        if uid:
            found.append(f"dicom:{uid}" + (f"#{frame}" if frame else ""))
        size, _ = _stat(path)
        if size is not None and size in sizes and not any(i in orphans for i in found):
            found.append(item_id(path, frame))  # a content hash, only when the size fits
        item = next((i for i in found if orphans.get(i)), None)
        if item is None:
            continue
        conn.execute("INSERT INTO item_keys (level, key, item, size, mtime_ns) VALUES (?,?,?,?,?)"
                     " ON CONFLICT(level, key) DO UPDATE SET item = excluded.item",
                     ("image", key, item, *_stat(path)))
        for o in orphans.pop(item):
            conn.execute("INSERT OR IGNORE INTO moves (level, old_key, new_key, item, time)"
                         " VALUES ('image',?,?,?,?)", (o, key, item, now))
            if study_key:  # a one-file study is keyed by its file's path too
                conn.execute("INSERT OR IGNORE INTO moves (level, old_key, new_key, item, time)"
                             " VALUES ('study',?,?,?,?)", (o, study_key, item, now))
            n += 1
        if not orphans:
            break
    return n
