"""Model versions made by retraining: where they live, which one is current, promote, rollback.

Layout (all under `radview.paths.user_models_dir()`; bundled models in resources/ are never
written)::

    <name>/                      the current version, as radview.models.registry sees it (a copy
                                 of one folder below; absent while the bundled version is current)
    .versions/<name>/<version>/  every version a run wrote: manifest.json, weights, MODEL_CARD.md,
                                 run.json (what the run did and measured)
    .versions/<name>/history.json  the "current" pointer: a stack of versions (bottom = what was
                                 current before the first promotion, e.g. the bundled one)
    .versions/<name>/splits.json the model's stored splits (the locked test split)

A run writes its version into `.versions/<name>/.stage-<run id>/` and renames it into place only
when complete (`commit`), so a cancelled or crashed run leaves no half-written version (stale
stages are removed by the next run). `promote` pushes a version on the stack and copies it to
`<name>/` (staged and renamed too); `rollback` pops one step. Whatever the registry currently
serves (a bundled model, or weights a user imported with `radview models import`) is recorded
on the stack before it is replaced, so a rollback always returns to what was in use.
No torch here.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radview import paths

VERSIONS_DIR = ".versions"
RUN_FILE = "run.json"


class VersionError(Exception):
    """A version operation cannot be done (str names the model and the reason)."""


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    folder: str
    status: str  # 'current' | 'previous' (on the stack, below current) | 'candidate' | 'bundled'
    parent: str = ""
    run_id: str = ""
    created: str = ""
    promoted: bool = False
    reason: str = ""
    metric: str = ""
    metrics: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    parent_metrics: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def versions_root(name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise VersionError(f"invalid model name {name!r}")
    return paths.user_models_dir() / VERSIONS_DIR / name


def splits_path(name: str) -> Path:
    return versions_root(name) / "splits.json"


def history_path(name: str) -> Path:
    return versions_root(name) / "history.json"


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_history(name: str) -> dict[str, Any]:
    p = history_path(name)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(d, dict) and isinstance(d.get("stack"), list):
            return d
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise VersionError(f"{p}: unreadable version history ({exc})") from None
    return {"format": 1, "stack": [], "log": []}


@contextlib.contextmanager
def locked(name: str):
    """An exclusive lock on the model's version folder (POSIX flock; released if we die)."""
    root = versions_root(name)
    root.mkdir(parents=True, exist_ok=True)
    fh = open(root / ".lock", "a+")  # noqa: SIM115
    try:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # Windows: no advisory lock; single-user desktop use
            pass
        yield root
    finally:
        fh.close()


# --------------------------------------------------------------------------- staging


def new_stage(name: str, run_id: str) -> Path:
    root = versions_root(name)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(".stage-*"):  # left by a crashed run
        if time.time() - old.stat().st_mtime > 24 * 3600:
            shutil.rmtree(old, ignore_errors=True)
    stage = root / f".stage-{run_id}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    return stage


def discard_stage(stage: str | os.PathLike | None) -> None:
    if stage and Path(stage).exists():
        shutil.rmtree(stage, ignore_errors=True)


def next_version(name: str, parent_version: str) -> str:
    """'<base>+r<n>': base is the parent's version up to its first '+', n one more than the
    parent's own number and any existing version of that base (never the parent's string)."""
    pv = parent_version or "0"
    base = pv.split("+", 1)[0] or "0"
    pat = re.compile(re.escape(base) + r"\+r(\d+)")
    m = pat.match(pv)
    n = int(m.group(1)) if m else 0
    root = versions_root(name)
    if root.is_dir():
        for p in root.iterdir():
            m = pat.match(p.name)
            if m:
                n = max(n, int(m.group(1)))
    return f"{base}+r{n + 1}"


def commit(name: str, stage: Path, version: str) -> Path:
    """Rename a complete staged version into place (atomic on one file system)."""
    dest = versions_root(name) / version
    if dest.exists():
        raise VersionError(f"model {name}: version {version} exists already in {dest}")
    os.rename(stage, dest)
    return dest


# --------------------------------------------------------------------------- current pointer


def _weights_sha(folder: Path) -> str | None:
    try:
        m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        return (m.get("weights") or {}).get("sha256")
    except (OSError, ValueError):
        return None


def _actual(name: str) -> dict[str, Any] | None:
    """The stack entry for what the registry serves now (snapshotting a foreign user folder)."""
    from radview.models.registry import ModelError, get_model_info

    try:
        info = get_model_info(name)
    except ModelError:
        return None
    if info.source == "bundled":
        return {"version": info.version, "where": "bundled", "time": _now()}
    folder = Path(info.folder)
    version = info.version or "0"
    sha = _weights_sha(folder)
    root = versions_root(name)
    own = root / version
    if own.is_dir() and _weights_sha(own) == sha:
        return {"version": version, "where": "versions", "time": _now()}
    # weights imported by hand: keep a copy so that a rollback can return to them
    snap, i = version + "+import", 1
    while (root / snap).exists():
        if _weights_sha(root / snap) == sha:
            return {"version": snap, "where": "versions", "time": _now()}
        i += 1
        snap = f"{version}+import{i}"
    tmp = root / f".snap-{uuid.uuid4().hex[:8]}"
    shutil.copytree(folder, tmp)
    os.rename(tmp, root / snap)
    return {"version": snap, "where": "versions", "time": _now(), "note": "snapshot of imported weights"}


def _same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    return a["where"] == b["where"] and a["version"] == b["version"]


def _materialize(name: str, entry: dict[str, Any]) -> None:
    """Make `<user models>/<name>/` serve this entry (remove it for a bundled entry)."""
    root = versions_root(name)
    dest = paths.user_models_dir() / name
    stage = None
    if entry["where"] == "versions":
        src = root / entry["version"]
        if not (src / "manifest.json").is_file():
            raise VersionError(f"model {name}: version {entry['version']} is missing from {root}")
        stage = root / f".swap-{uuid.uuid4().hex[:8]}"
        shutil.copytree(src, stage, ignore=shutil.ignore_patterns(RUN_FILE))
    old = None
    if dest.exists():
        old = root / f".old-{uuid.uuid4().hex[:8]}"
        os.rename(dest, old)
    try:
        if stage is not None:
            os.rename(stage, dest)
    except OSError:
        if old is not None:
            os.rename(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    try:
        from radview.models.registry import clear_cache

        clear_cache()
    except ImportError:
        pass


def _reconciled(name: str) -> dict[str, Any]:
    hist = read_history(name)
    actual = _actual(name)
    stack = hist["stack"]
    if actual is not None and (not stack or not _same(stack[-1], actual)):
        stack.append(actual)
    return hist


def promote(name: str, version: str, run_id: str = "", reason: str = "") -> str:
    """Make `version` (a folder under .versions/<name>/) current. Returns the version."""
    with locked(name) as root:
        if not (root / version / "manifest.json").is_file():
            raise VersionError(f"model {name}: no version {version} in {root}")
        hist = _reconciled(name)
        stack = hist["stack"]
        entry = {"version": version, "where": "versions", "time": _now(), "run_id": run_id}
        if not stack or not _same(stack[-1], entry):
            _materialize(name, entry)
            stack.append(entry)
        hist["log"].append({"time": _now(), "action": "promote", "version": version, "run_id": run_id,
                            "reason": reason})
        _write_json(history_path(name), hist)
    return version


def rollback(name: str) -> str:
    """One step back: the version that was current before the current one. Returns it."""
    with locked(name):
        hist = _reconciled(name)
        stack = hist["stack"]
        if len(stack) < 2:
            raise VersionError(f"model {name}: nothing to roll back to (no earlier version was current)")
        gone = stack.pop()
        _materialize(name, stack[-1])
        hist["log"].append({"time": _now(), "action": "rollback", "from": gone["version"],
                            "to": stack[-1]["version"]})
        _write_json(history_path(name), hist)
        return stack[-1]["version"]


def current_entry(name: str) -> dict[str, Any] | None:
    """The top of the version stack ({version, run_id, ...}), or None."""
    stack = read_history(name).get("stack") or []
    return dict(stack[-1]) if stack else None


def current_version(name: str) -> str | None:
    """The version the registry serves now (None for an unknown model)."""
    return _peek_actual(name)


def _peek_actual(name: str) -> str | None:
    from radview.models.registry import ModelError, get_model_info

    try:
        return get_model_info(name).version
    except ModelError:
        return None


def read_run(folder: str | os.PathLike) -> dict[str, Any]:
    try:
        return json.loads((Path(folder) / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def list_versions(name: str) -> list[VersionInfo]:
    """Every version a run wrote (oldest first), plus the bundled one when it is on the stack."""
    root = versions_root(name)
    hist = read_history(name)
    stack = hist.get("stack", [])
    top = stack[-1] if stack else None
    served = paths.user_models_dir() / name
    served_sha = _weights_sha(served) if (served / "manifest.json").is_file() else None
    on_stack = {(e["where"], e["version"]) for e in stack}
    out: list[VersionInfo] = []
    for e in stack:
        if e["where"] == "bundled":
            cur = _same(top, e) and served_sha is None
            out.append(VersionInfo(name, e["version"], str(paths.resources_dir() / "models" / name),
                                   "current" if cur else "bundled", created=e.get("time", "")))
    dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: (read_run(p).get("created", ""), p.name)) if root.is_dir() else []
    for p in dirs:
        run = read_run(p)
        if (top is not None and top["where"] == "versions" and top["version"] == p.name
                and served_sha is not None and served_sha == _weights_sha(p)):
            status = "current"
        elif ("versions", p.name) in on_stack:
            status = "previous"
        else:
            status = "candidate"
        out.append(VersionInfo(name, p.name, str(p), status, parent=run.get("parent_version", ""),
                               run_id=run.get("run_id", ""), created=run.get("created", ""),
                               promoted=bool(run.get("promoted")), reason=run.get("reason", ""),
                               metric=run.get("metric", ""), metrics=run.get("metrics") or {},
                               parent_metrics=run.get("parent_metrics") or {}))
    return out
