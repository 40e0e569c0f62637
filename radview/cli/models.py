"""`radview models list|show|import`: the bundled and user models.

    radview models list                 one model per line, starting with its name
    radview models show NAME            manifest, status, metrics, card
    radview models import PATH [--manifest M] [--name N] [--force]
        PATH: a model folder (manifest.json + weights), or a weights file (a torchvision
        state_dict or TorchScript) with --manifest, or --name of a listed model whose manifest
        it completes (e.g. weights for the bundled mura-densenet169 manifest).

Cheap to import: radview.models.registry is imported inside the commands (it imports no torch
until a model is loaded).
"""
from __future__ import annotations

import argparse
import json


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list, show or import models",
                              description="List, show or import models (bundled and user models).")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    pl = sub.add_parser("list", help="one model per line: name, version, task, arch, source, status")
    pl.add_argument("--json", action="store_true", help="print a JSON list instead")
    ps = sub.add_parser("show", help="a model's manifest, status and card")
    ps.add_argument("name")
    ps.add_argument("--json", action="store_true", help="print the manifest as JSON")
    pi = sub.add_parser("import", help="install a model folder or a weights file into the user models")
    pi.add_argument("path", help="model folder, or a weights file (.pt/.pth state_dict or TorchScript)")
    pi.add_argument("--manifest", help="manifest JSON for a weights file")
    pi.add_argument("--name", help="model name (default: the manifest's); with a weights file and no "
                                   "--manifest, the listed model whose manifest to use")
    pi.add_argument("--force", action="store_true", help="replace a user model of the same name")
    p.set_defaults(func=run, _parser=p)


def _list(args) -> int:
    from radview.models.registry import list_models

    models = list_models()
    if args.json:
        print(json.dumps([{"name": i.name, "version": i.version, "task": i.task, "arch": i.arch,
                           "classes": list(i.classes), "source": i.source, "installed": i.installed,
                           "status": i.status, "folder": i.folder} for i in models], indent=2))
        return 0
    if not models:
        print("(no models)")
        return 0
    w = max(len(i.name) for i in models)
    for i in models:
        print(f"{i.name:<{w}}  {i.version or '-':<12} {i.task or '-':<10} {i.arch or '-':<38} {i.source:<7}  {i.status}")
    return 0


def _show(args) -> int:
    from radview.cli import CliError
    from radview.models.registry import ModelError, get_model_info

    try:
        info = get_model_info(args.name)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    m = info.manifest
    if args.json:
        print(json.dumps(m.to_dict() if m else {"name": info.name, "status": info.status}, indent=2))
        return 0
    print(f"name:      {info.name}")
    print(f"source:    {info.source} ({info.folder})")
    print(f"status:    {info.status}")
    if m is None:
        return 0
    print(f"version:   {m.version}")
    print(f"task:      {m.task}; classes: {', '.join(m.classes)}; threshold {m.threshold}")
    print(f"arch:      {m.arch} {json.dumps(m.arch_kwargs) if m.arch_kwargs else ''}".rstrip())
    print(f"input:     {m.input.size[0]}x{m.input.size[1]}, {m.input.channels} channels ({m.input.gray_to_rgb}), "
          f"mean {list(m.input.mean)}, std {list(m.input.std)}")
    print(f"weights:   {m.weights.file} ({m.weights.format}, {m.weights.dtype}), sha256 {m.weights.sha256 or '-'}")
    d = m.domain
    print(f"domain:    modalities {'/'.join(d.modalities) or 'any'}; body parts {'/'.join(d.body_parts) or 'any'}; "
          + (f"views {'/'.join(d.views)}; " if d.views else "")
          + f"gate {d.gate_model or 'metadata only'}"
          + (f" (classes {'/'.join(d.gate_classes)})" if d.gate_classes else ""))
    from radview.models.routing import model_body_parts

    parts = model_body_parts(m)
    print(f"routing:   runs on {'/'.join(parts) + ' studies' if parts else 'every study'} "
          f"(by the body-part verdict; other studies only when asked)")
    if m.description:
        print(f"about:     {m.description}")
    if m.metrics:
        print("metrics:   " + json.dumps(m.metrics, indent=None)[:2000])
    card = m.card_path
    if card.is_file():
        print(f"card:      {card}")
    return 0


def _import(args) -> int:
    from radview.cli import CliError
    from radview.models.registry import ModelError, import_model

    try:
        info = import_model(args.path, manifest=args.manifest, name=args.name, force=args.force)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    print(f"{info.name}: {info.status} ({info.folder})")
    return 0 if info.installed else 1


def run(args: argparse.Namespace) -> int:
    cmd = getattr(args, "models_command", None)
    if cmd == "list":
        return _list(args)
    if cmd == "show":
        return _show(args)
    if cmd == "import":
        return _import(args)
    args._parser.print_help()
    return 2
