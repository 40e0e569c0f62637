"""Team reading (issue 16): the dataclasses and the pure rules behind reading projects,
worklists, blinded reads and adjudication (no SQL here: radview.store.worklists and
radview.store.reads hold the store methods).

A *project* asks for `reads` independent reads of each of its items (studies by default). Its
items are put on readers' *worklists* (assigned by an admin or adjudicator, or claimed by a
reader) and each reader records a *read* (a class of the project's label space). While a project
is *blinded*, a reader (role 'reader') sees only their own worklist and their own reads, never
another reader's read or the current label, and (hide_model) not the model's answer or CAM;
adjudicators and admins see everything. When all reads of an item are in:
- they agree: the consensus is appended to the correction log as the item's FINAL label;
- they disagree: the item waits for an adjudicator, whose final label (with a reason) is
  appended to the correction log.
The reads are never labels themselves: review, retraining and export read the correction log,
so they use the final label (and only it); every read is kept in the `reads` table.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

#: roles that see everything of a blinded project and may assign, release others' items and adjudicate
LEADS = ("adjudicator", "admin")
MODES = ("balanced", "count")


@dataclass(frozen=True)
class Project:
    name: str
    level: str = "study"
    space: str = ""          # the label space of its reads ('' = the items' own)
    reads: int = 2           # independent reads wanted per item
    blinded: bool = True     # a reader sees only their own reads and worklist
    hide_model: bool = True  # ... and, blinded, not the model's answer nor its CAM
    note: str = ""
    creator: str = ""
    time: str = ""


@dataclass(frozen=True)
class Read:
    """One blinded read (append-only; a reader's latest read of an item is the one that counts).
    model_shown / others_shown: whether the reader could see the model / other reads."""
    id: int
    uid: str
    project: str
    key: str
    reader: str
    role: str
    value: str
    reason: str = ""
    note: str = ""
    model_shown: bool = False
    others_shown: bool = False
    time: str = ""


@dataclass(frozen=True)
class WorklistItem:
    project: str
    key: str
    reader: str
    how: str                  # 'assign' or 'claim'
    read: Read | None = None  # the reader's own latest read, None while to read
    study_type: str = ""

    @property
    def done(self) -> bool:
        return self.read is not None


@dataclass(frozen=True)
class ReaderProgress:
    reader: str
    assigned: int
    read: int

    @property
    def text(self) -> str:
        return f"{self.read}/{self.assigned} read"


@dataclass(frozen=True)
class ItemStatus:
    """Where one project item stands. status: 'open' (reads missing), 'disputed' (all reads in,
    they disagree, waiting for an adjudicator), 'final' (a final label is recorded).
    reads: the latest read of each reader that the viewer may see (a blinded reader: their own);
    final_by: 'consensus' or 'adjudication'; final: the final label's value."""
    project: str
    key: str
    status: str
    needed: int
    n_reads: int
    readers: tuple[str, ...] = ()       # assigned readers the viewer may see
    reads: tuple[Read, ...] = ()
    final: str | None = None
    final_by: str = ""
    final_event: int | None = None
    final_reader: str = ""
    final_note: str = ""
    study_type: str = ""


@dataclass(frozen=True)
class ViewPolicy:
    """What a reader may see of a project's items."""
    project: str
    reader: str
    role: str
    others: bool      # other readers' reads and the current / final label
    model: bool       # the model's answer, boxes and CAM
    why: str = ""

    @property
    def blinded(self) -> bool:
        return not (self.others and self.model)


def policy(project: Project, reader: str, role: str) -> ViewPolicy:
    if role in LEADS:
        return ViewPolicy(project.name, reader, role, True, True, f"{role}: sees everything")
    if not project.blinded:
        return ViewPolicy(project.name, reader, role, True, True, "project not blinded")
    return ViewPolicy(project.name, reader, role, False, not project.hide_model,
                      "blinded read" + (" (model hidden)" if project.hide_model else ""))


def fold_worklist(events: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    """{key: {reader: 'assign' | 'claim'}} of the active assignments from (key, reader, op)
    events in order of appending (a release ends the latest assign/claim)."""
    out: dict[str, dict[str, str]] = {}
    for key, reader, op in events:
        if op == "release":
            out.get(key, {}).pop(reader, None)
        else:
            out.setdefault(key, {})[reader] = op
    return {k: v for k, v in out.items() if v}


def latest_reads(reads: Iterable[Read]) -> dict[str, dict[str, Read]]:
    """{key: {reader: their latest read}}."""
    out: dict[str, dict[str, Read]] = {}
    for r in sorted(reads, key=lambda r: r.id):
        out.setdefault(r.key, {})[r.reader] = r
    return out


def consensus(reads: Mapping[str, Read], needed: int) -> tuple[str, str | None]:
    """('open', None) while fewer than `needed` readers read; ('agreed', value) or
    ('disputed', None) once they have."""
    if len(reads) < needed:
        return "open", None
    values = {r.value for r in reads.values()}
    return ("agreed", values.pop()) if len(values) == 1 else ("disputed", None)


def plan_assignment(keys: Sequence[str], readers: Sequence[str], reads: int, *,
                    existing: Mapping[str, Iterable[str]] | None = None, mode: str = "balanced",
                    count: int | None = None, shuffle: bool = False, seed: int = 0,
                    load: Mapping[str, int] | None = None) -> dict[str, list[str]]:
    """{reader: [keys]} of new assignments. Each item gets at most `reads` distinct readers in
    all (its `existing` ones count); nobody gets an item twice.
    mode 'balanced': the items are split evenly across the readers (each item to the least
    loaded readers; `load` = what they already have; count caps each reader's new items);
    mode 'count': each reader in turn takes the next `count` items still needing a reader.
    shuffle: the items in a random order (seeded: the same seed gives the same plan)."""
    if mode not in MODES:
        raise ValueError(f"assignment mode must be one of {MODES}, not {mode!r}")
    if reads < 1:
        raise ValueError(f"reads per item must be at least 1, not {reads}")
    readers = list(dict.fromkeys(r for r in readers if r))
    if not readers:
        raise ValueError("no readers to assign to")
    if count is not None and count < 0:
        raise ValueError(f"count must be >= 0, not {count}")
    if mode == "count" and count is None:
        raise ValueError("mode 'count' needs a count (items per reader)")
    order = list(dict.fromkeys(keys))
    if shuffle:
        random.Random(seed).shuffle(order)
    have = {k: set((existing or {}).get(k, ())) for k in order}
    out: dict[str, list[str]] = {r: [] for r in readers}
    if mode == "count":
        for r in readers:
            for k in order:
                if len(out[r]) >= count:
                    break
                if r not in have[k] and len(have[k]) < reads:
                    have[k].add(r)
                    out[r].append(k)
        return out
    loads = {r: int((load or {}).get(r, 0)) for r in readers}
    rank = {r: i for i, r in enumerate(readers)}
    turn = 0
    for k in order:
        need = reads - len(have[k])
        if need <= 0:
            continue
        free = [r for r in readers if r not in have[k] and (count is None or len(out[r]) < count)]
        # least loaded first; ties broken round robin so equal loads spread evenly
        free.sort(key=lambda r: (loads[r], (rank[r] - turn) % len(readers)))
        for r in free[:need]:
            have[k].add(r)
            out[r].append(k)
            loads[r] += 1
        turn += 1
    return out


@dataclass(frozen=True)
class AssignResult:
    assigned: dict[str, list[str]] = field(default_factory=dict)
    unfilled: tuple[str, ...] = ()   # items still short of readers (too few readers / count cap)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.assigned.values())


__all__ = ["Project", "Read", "WorklistItem", "ReaderProgress", "ItemStatus", "ViewPolicy",
           "AssignResult", "LEADS", "MODES", "policy", "fold_worklist", "latest_reads",
           "consensus", "plan_assignment"]
