"""`radview pacs echo|find|get|send|import-sr|cache|nodes`: PACS query/retrieve and send-back.

    radview pacs echo --host H --port P --called-aet AET [--calling-aet AET]   (or --url URL)
    radview pacs find ... [--patient NAME --patient-id ID --date 20240101-20240131 --modality CR
                           --accession A --body-part CHEST] [--level patient] [--json]
    radview pacs get ... --study UID [--method get|move|wado] [--scp-port P]  -> the local cache
    radview pacs send ... --study UID [--deidentify] [--no-gsps]   (the study's SR and GSPS)
    radview pacs import-sr FILE...           (an SR written by radview, back into the store)
    radview pacs cache [--json]              (retrieved studies, complete or partial)
    radview pacs nodes [add NAME ...|remove NAME]  (saved nodes; --node NAME uses one)
"""
from __future__ import annotations

import json
import os
import sys


def _node_args(p) -> None:
    g = p.add_argument_group("node (or --node NAME of a saved node)")
    g.add_argument("--node", help="a saved node (radview pacs nodes)")
    g.add_argument("--host")
    g.add_argument("--port", type=int)
    g.add_argument("--called-aet", help="the PACS's AE title")
    g.add_argument("--calling-aet", help="radview's AE title (default RADVIEW)")
    g.add_argument("--url", help="DICOMweb base URL instead of host/port (QIDO/WADO/STOW)")
    g.add_argument("--timeout", type=float, help="seconds (default 10)")
    g.add_argument("--tls", action="store_true", help="DICOM TLS")
    g.add_argument("--ca-file", help="trusted certificates for --tls")


def add_subparser(sub) -> None:
    p = sub.add_parser("pacs", help="PACS / DICOMweb: echo, find, get into the cache, send reads back")
    ps = p.add_subparsers(dest="pacs_command", metavar="ACTION")
    e = ps.add_parser("echo", help="C-ECHO (or a QIDO-RS search for --url)")
    _node_args(e)
    f = ps.add_parser("find", help="C-FIND / QIDO-RS studies (or patients)")
    _node_args(f)
    f.add_argument("--patient", default="", help="patient name (wildcards * ?)")
    f.add_argument("--patient-id", default="")
    f.add_argument("--date", default="", help="YYYYMMDD, YYYYMMDD-YYYYMMDD, or open YYYYMMDD-")
    f.add_argument("--modality", default="")
    f.add_argument("--accession", default="")
    f.add_argument("--body-part", default="")
    f.add_argument("--study", default="", help="StudyInstanceUID")
    f.add_argument("--level", choices=("study", "patient"), default="study")
    f.add_argument("--json", action="store_true")
    g = ps.add_parser("get", help="retrieve a study into the local cache")
    _node_args(g)
    g.add_argument("--study", required=True, help="StudyInstanceUID")
    g.add_argument("--method", choices=("get", "move", "wado"),
                   help="C-GET, C-MOVE to radview's Storage SCP, or WADO-RS (default: the node's)")
    g.add_argument("--scp-aet", help="Storage SCP AE title for --method move (default: settings)")
    g.add_argument("--scp-port", type=int, help="Storage SCP port for --method move")
    g.add_argument("--json", action="store_true")
    g.add_argument("--import-reads", action="store_true",
                   help="record the study in the label store and import radview SRs found in it")
    g.add_argument("--store", help="label store file for --import-reads")
    s = ps.add_parser("send", help="send a study's reads as DICOM SR (+ GSPS with the boxes)")
    _node_args(s)
    s.add_argument("--study", required=True, help="StudyInstanceUID (or the store's study key)")
    s.add_argument("--deidentify", action="store_true", help="PS3.15 Basic Profile, as for exports")
    s.add_argument("--no-gsps", action="store_true", help="send the SR only")
    s.add_argument("--store", help="label store file (default: labels.sqlite under RADVIEW_HOME)")
    i = ps.add_parser("import-sr", help="read SRs written by radview back into the label store")
    i.add_argument("files", nargs="+")
    i.add_argument("--store", help="label store file")
    c = ps.add_parser("cache", help="studies in the local cache and whether they are complete")
    c.add_argument("--json", action="store_true")
    n = ps.add_parser("nodes", help="list, add or remove saved nodes")
    n.add_argument("action", nargs="?", choices=("list", "add", "remove"), default="list")
    n.add_argument("name", nargs="?")
    _node_args(n)
    n.add_argument("--retrieve", choices=("get", "move", "wado"))
    p.set_defaults(func=run)


def node_from_args(args):
    from radview.net import Node, NodeBook

    base = None
    if getattr(args, "node", None):
        base = NodeBook.load().get(args.node)
    fields = {}
    for attr, key in (("host", "host"), ("port", "port"), ("called_aet", "called_aet"),
                      ("calling_aet", "calling_aet"), ("url", "url"), ("timeout", "timeout"),
                      ("ca_file", "ca_file"), ("retrieve", "retrieve")):
        v = getattr(args, attr, None)
        if v not in (None, ""):
            fields[key] = v
    if getattr(args, "tls", False):
        fields["tls"] = True
    if base is None:
        if not fields.get("url") and not fields.get("host"):
            from radview.cli import CliError

            raise CliError("give --host/--port/--called-aet, --url, or --node NAME")
        fields.setdefault("name", fields.get("url") or fields.get("host"))
        return Node(**fields).check()
    from dataclasses import replace

    return replace(base, **fields).check()


def _progress(gen, quiet: bool = False):
    last = None
    tty = sys.stderr.isatty() and not quiet
    for last in gen:
        if tty:
            print(f"\r{last.message}", end="", file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)
    return last


def run(args) -> int:
    from radview.cli import CliError
    from radview.net import NetError

    action = getattr(args, "pacs_command", None)
    if not action:
        raise CliError("give an action: echo, find, get, send, import-sr, cache, nodes")
    try:
        return _ACTIONS[action](args)
    except NetError as exc:
        raise CliError(str(exc)) from None


def _echo(args) -> int:
    from radview.net import echo

    node = node_from_args(args)
    ms = echo(node)
    print(f"{node.describe()}: {'QIDO-RS' if node.is_web else 'C-ECHO'} ok ({ms:.0f} ms)")
    return 0


def _find(args) -> int:
    from radview.net import StudyQuery, find_patients, find_studies, parse_date_range

    node = node_from_args(args)
    a, b = parse_date_range(args.date) if args.date else ("", "")
    q = StudyQuery(patient_name=args.patient, patient_id=args.patient_id, date_from=a, date_to=b,
                   modality=args.modality, accession=args.accession, body_part=args.body_part,
                   study_uid=args.study)
    rows = find_patients(node, q) if args.level == "patient" else find_studies(node, q)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
        return 0
    if not rows:
        print("no match")
    for r in rows:
        if args.level == "patient":
            print(f"{r.patient_id}\t{r.patient_name}\t{r.birth_date}\t{r.n_studies or '?'} studies")
        else:
            print(f"{r.study_uid}\t{r.patient_id}\t{r.patient_name}\t{r.study_date}\t"
                  f"{r.modalities}\t{r.accession}\t{r.n_instances or '?'} instances\t{r.description}")
    return 0


def _get(args) -> int:
    from radview.cli import CliError
    from radview.net import NodeBook, PacsCache, iter_retrieve

    node = node_from_args(args)
    cache = PacsCache()
    scp = None
    if (args.method or node.retrieve) == "move" and not node.is_web:
        from dataclasses import replace

        from radview.net.dimse import StorageSCP

        settings = NodeBook.load().scp
        settings = replace(settings, **{k: v for k, v in (("aet", args.scp_aet),
                                                         ("port", args.scp_port)) if v})
        scp = StorageSCP(settings, cache).start()
    try:
        last = _progress(iter_retrieve(node, args.study, method=args.method, cache=cache, scp=scp))
    finally:
        if scp is not None:
            scp.stop()
    st = last.payload
    imported = []
    if args.import_reads:
        from radview.net.sr_import import SrImportError, import_study_reads

        with _open_store(args.store, False) as store:
            try:
                imported = import_study_reads(store, st.path)
            except SrImportError as exc:
                raise CliError(str(exc)) from None
    if args.json:
        d = st.as_dict()
        if args.import_reads:
            d["imported"] = [{"sr": r.path, "labels": r.labels, "boxes": r.boxes} for r in imported]
        print(json.dumps(d, indent=1))
    else:
        print(f"{st.path}: {st.describe()}")
        for r in imported:
            print(f"  imported {r.labels} label(s), {r.boxes} box(es) from {r.path}")
    return 0


def _open_store(path, readonly: bool):
    from radview.cli import CliError
    from radview.store import LabelStore

    from radview.store.backends import backend_of, store_target

    p = path or store_target()  # RADVIEW_STORE / settings may name PostgreSQL
    if readonly and backend_of(store_target(p)) == "sqlite" and not os.path.isfile(p):
        raise CliError(f"no label store at {p}: nothing to send (label the study first)")
    return LabelStore(p, readonly=readonly)


def _send(args) -> int:
    from radview.cli import CliError
    from radview.export.dicom_sr import SrError, collect_reads, study_objects
    from radview.net import iter_send

    node = node_from_args(args)
    with _open_store(args.store, True) as store:
        reads, _ = collect_reads(store, [args.study])
    if not reads:
        raise CliError(f"study {args.study}: no labels or boxes on a DICOM study in the store")
    deid = None
    if args.deidentify:
        from radview.export.deid import Deidentifier

        deid = Deidentifier.for_home()
    try:
        objs = [o for r in reads for o in study_objects(r, deid=deid, gsps=not args.no_gsps)]
    except SrError as exc:
        raise CliError(str(exc)) from None
    _progress(iter_send(node, objs))
    kinds = ", ".join(f"{o.Modality} {o.SOPInstanceUID}" for o in objs)
    print(f"sent {len(objs)} object(s) to {node.describe()}: {kinds}"
          + (" (de-identified)" if deid else ""))
    return 0


def _import_sr(args) -> int:
    from radview.net.sr_import import SrImportError, import_sr

    failed = 0
    with _open_store(args.store, False) as store:
        for f in args.files:
            try:
                r = import_sr(store, f)
            except SrImportError as exc:
                print(f"radview pacs import-sr: {exc}", file=sys.stderr)
                failed += 1
                continue
            print(f"{f}: {r.labels} label(s), {r.boxes} box(es) for study {r.study_uid}"
                  + (f"; {len(r.unmatched)} image(s) not in the store" if r.unmatched else ""))
    return 1 if failed else 0


def _cache(args) -> int:
    from radview.net import PacsCache

    studies = PacsCache().studies()
    if args.json:
        print(json.dumps([s.as_dict() for s in studies], indent=1))
        return 0
    if not studies:
        print("the cache is empty")
    for s in studies:
        print(f"{s.study_uid}\t{s.describe()}\t{s.path}")
    return 0


def _nodes(args) -> int:
    from radview.cli import CliError
    from radview.net import NodeBook

    book = NodeBook.load()
    if args.action == "add":
        if not args.name:
            raise CliError("nodes add NAME --host H --port P --called-aet AET (or --url URL)")
        args.node = None
        node = node_from_args(args)
        from dataclasses import replace

        book.add(replace(node, name=args.name))
        book.save()
        print(f"saved node {args.name}: {node.describe()}")
        return 0
    if args.action == "remove":
        book.get(args.name or "")
        book.remove(args.name)
        book.save()
        print(f"removed node {args.name}")
        return 0
    for n in book.nodes:
        print(f"{n.name}\t{n.describe()}\tretrieve={n.retrieve}")
    print(f"storage SCP: {book.scp.aet} on port {book.scp.port}")
    return 0


_ACTIONS = {"echo": _echo, "find": _find, "get": _get, "send": _send, "import-sr": _import_sr,
            "cache": _cache, "nodes": _nodes}
