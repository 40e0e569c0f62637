"""`radview worklist ...`: reading projects, worklists, blinded reads and adjudication (issue 16)
on the label store (SQLite, or the team's PostgreSQL database: RADVIEW_STORE / --store).

    radview worklist reader dana --role adjudicator          # register a role (readers: default)
    radview worklist create wrist-2x --reads 2 --space mura [--open] [--show-model]
    radview worklist add wrist-2x --folder MURA-v1.1 --split valid [--type XR_WRIST]
    radview worklist assign wrist-2x --readers alice,bob [--count 60] [--random --seed 7]
    radview worklist claim wrist-2x [KEY]        /  release wrist-2x KEY [--reader bob]
    radview worklist list wrist-2x               # my worklist (--as alice)
    radview worklist read wrist-2x KEY abnormal [--note ...]
    radview worklist status wrist-2x [--json]    # progress per reader ("37/120 read") + states
    radview worklist adjudicate wrist-2x KEY normal --reason "no fracture line"

Who you are: --as NAME, else RADVIEW_READER, else the OS user; the role is the store's
(`reader` unless registered; once an admin is registered only an admin changes roles; roles are
advisory: there is no authentication). A blinded project's reader sees only their own worklist, reads and progress.
"""
from __future__ import annotations

import json
import sys

ACTIONS = ("reader", "create", "add", "assign", "claim", "release", "list", "read", "status",
           "adjudicate", "projects")


def add_subparser(sub) -> None:
    p = sub.add_parser("worklist", help="reading projects: worklists, blinded reads, adjudication")
    p.add_argument("--store", help="label store: a SQLite file or postgresql://user@host:port/db "
                                   "(default: RADVIEW_STORE, the settings, labels.sqlite)")
    p.add_argument("--as", dest="reader", help="who you are (default: RADVIEW_READER or the OS user)")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = acts.add_parser("reader", help="register a reader's role")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=("reader", "adjudicator", "admin"))
    acts.add_parser("projects", help="list the projects")
    a = _action(acts, "create", "create a reading project (adjudicator or admin)", "project")
    a.add_argument("--reads", type=int, default=2, help="independent reads per item (2)")
    a.add_argument("--open", action="store_true", help="not blinded: readers see each other's reads")
    a.add_argument("--show-model", action="store_true", help="blinded readers may see the model")
    a.add_argument("--space", default="", help="label space of the reads (e.g. mura)")
    a.add_argument("--level", default="study", choices=("study", "image"))
    a.add_argument("--note", default="")
    a.add_argument("--replace", action="store_true", help="change an existing project's settings")
    a = _action(acts, "add", "add items to a project (from a folder or the store's scans)", "project")
    a.add_argument("--folder", help="scan this folder first (its studies are recorded)")
    a.add_argument("--split", help="only this dataset split (train, valid, test ...)")
    a.add_argument("--type", dest="study_type", help="only this study type (e.g. XR_WRIST)")
    a.add_argument("--keys", nargs="*", help="these item keys")
    a = _action(acts, "assign", "assign items to readers (adjudicator or admin)", "project")
    a.add_argument("--readers", required=True, help="comma-separated reader names")
    a.add_argument("--count", type=int, help="items per reader (default: split all evenly)")
    a.add_argument("--random", action="store_true", help="in a random (seeded) order")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--split", help="only items of this dataset split")
    a.add_argument("--type", dest="study_type", help="only items of this study type")
    a = _action(acts, "claim", "take an item (the next one, or KEY) onto your worklist", "project")
    a.add_argument("key", nargs="?")
    a = _action(acts, "release", "give an unread item back", "project", "key")
    a.add_argument("--reader", help="whose item (a lead releasing someone else's)")
    _action(acts, "list", "your worklist", "project", json_out=True)
    a = _action(acts, "read", "record your read of an item", "project", "key", "value")
    a.add_argument("--note", default="")
    _action(acts, "status", "progress per reader and the items' states", "project", json_out=True)
    a = _action(acts, "adjudicate", "record the final label of a disputed item", "project", "key", "value")
    a.add_argument("--reason", required=True, help="why (kept with the final label)")
    p.set_defaults(func=run)


def _action(acts, name: str, hlp: str, *positional: str, json_out: bool = False):
    """The parser of one ACTION with its positional arguments (and --json)."""
    a = acts.add_parser(name, help=hlp)
    for arg in positional:
        a.add_argument(arg)
    if json_out:
        a.add_argument("--json", action="store_true")
    return a


def _print_json(obj) -> int:
    json.dump(obj, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


def _blinding(p) -> str:
    return "blinded" + (", model hidden" if p.hide_model else "") if p.blinded else ""


def run(args) -> int:
    from radview.cli import CliError
    from radview.store import LabelStore, StoreError

    try:
        with LabelStore(args.store, reader=args.reader) as store:
            return _ACTIONS[args.action](store, args)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    except (ValueError, PermissionError) as exc:
        raise CliError(str(exc)) from None


def _reader(store, args) -> int:
    roles = store.readers()
    if "admin" in roles.values() and roles.get(store.reader) != "admin":
        raise PermissionError(f"{store.reader} is not an admin: once an admin is registered, "
                              "only an admin changes roles (--as ADMIN)")
    store.set_reader(args.name, args.role)
    print(f"{args.name}: {args.role}")
    return 0


def _projects(store, args) -> int:
    for p in store.projects():
        blind = _blinding(p) or "open"
        print(f"{p.name}\t{p.reads} reads\t{blind}\t{p.space or '-'}\t{len(store.project_items(p.name))} items")
    return 0


def _create(store, args) -> int:
    p = store.create_project(args.project, reads=args.reads, blinded=not args.open,
                             hide_model=not args.show_model, level=args.level, space=args.space,
                             note=args.note, replace=args.replace)
    print(f"project {p.name}: {p.reads} reads per {p.level}, "
          + (_blinding(p) or "not blinded"))
    return 0


def _add(store, args) -> int:
    keys = args.keys
    if args.folder:
        from radview.io import scan

        result = scan(args.folder)
        for e in result.errors:
            print(f"skipped {e.path}: {e.reason}", file=sys.stderr)
        store.record_scan(result)
        if keys is None:
            p = store.project(args.project)
            keys = ([s.key for s in result.studies] if p.level == "study"
                    else [v.ref.key for s in result.studies for v in s.views])
    n = store.add_to_project(args.project, keys, split=args.split, study_type=args.study_type)
    print(f"{n} items added to {args.project} ({len(store.project_items(args.project))} in all)")
    return 0


def _assign(store, args) -> int:
    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    res = store.assign(args.project, readers, mode="count" if args.count is not None else "balanced",
                       count=args.count, shuffle=args.random, seed=args.seed, split=args.split,
                       study_type=args.study_type)
    for r, ks in res.assigned.items():
        print(f"{r}: +{len(ks)}")
    if res.unfilled:
        print(f"{len(res.unfilled)} items still short of readers", file=sys.stderr)
    return 0


def _claim(store, args) -> int:
    key = store.claim(args.project, args.key)
    if key is None:
        print("nothing left to claim", file=sys.stderr)
        return 1
    print(key)
    return 0


def _release(store, args) -> int:
    store.release(args.project, args.key, reader=args.reader or store.reader, by=store.reader)
    print(f"released {args.key}")
    return 0


def _list(store, args) -> int:
    items = store.worklist(args.project)
    if args.json:
        return _print_json([{"key": w.key, "how": w.how, "read": w.read.value if w.read else None,
                             "study_type": w.study_type} for w in items])
    for w in items:
        print(f"{'x' if w.done else ' '} {w.key}\t{w.read.value if w.read else ''}")
    done = sum(w.done for w in items)
    print(f"{store.reader}: {done}/{len(items)} read")
    return 0


def _read(store, args) -> int:
    r = store.record_read(args.project, args.key, args.value, note=args.note)
    print(f"read #{r.id}: {r.key} = {r.value} ({r.reader})")
    return 0


def _status(store, args) -> int:
    prog = store.progress(args.project)
    states = store.statuses(args.project)
    policy = store.view_policy(args.project)
    counts: dict[str, int] = {}
    for s in states.values():
        counts[s.status] = counts.get(s.status, 0) + 1
    if args.json:
        out = {"project": args.project, "viewer": store.reader, "role": policy.role,
               "blinded": policy.blinded,
               "progress": [{"reader": p.reader, "assigned": p.assigned, "read": p.read,
                             "text": p.text} for p in prog],
               "states": counts,
               "items": [{"key": s.key, "status": s.status, "reads": len(s.reads),
                          "final": s.final, "final_by": s.final_by} for s in states.values()]}
        return _print_json(out)
    for p in prog:
        print(f"{p.reader}: {p.text}")
    print("items: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    if policy.blinded:
        print(f"(blinded: {store.reader} sees only their own reads)")
    return 0


def _adjudicate(store, args) -> int:
    c = store.adjudicate(args.project, args.key, args.value, note=args.reason)
    print(f"final label #{c.id}: {c.key} = {c.new_value} ({c.reader}, {c.role})")
    return 0


_ACTIONS = {"reader": _reader, "projects": _projects, "create": _create, "add": _add,
            "assign": _assign, "claim": _claim, "release": _release, "list": _list,
            "read": _read, "status": _status, "adjudicate": _adjudicate}
