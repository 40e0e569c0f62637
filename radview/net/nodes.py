"""PACS nodes (a DIMSE peer: AE title, host, port; or a DICOMweb base URL) and radview's own
Storage SCP settings, kept in `<user data>/pacs.json` (RADVIEW_HOME relocates it).

    book = NodeBook.load()
    book.add(Node("pacs", host="10.0.0.5", port=104, called_aet="PACS"))
    book.scp = ScpSettings(aet="RADVIEW", port=11112); book.save()
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from radview.net.errors import NetError

RETRIEVE_METHODS = ("get", "move", "wado")
_AET_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE VR: no backslash, <= 16


def check_aet(aet: str, what: str = "AE title") -> str:
    a = aet.strip()
    if not a or not _AET_RE.match(a):
        raise NetError(what, f"{aet!r} is not a valid AE title (1-16 printable characters, no"
                       " backslash)", "config")
    return a


@dataclass(frozen=True)
class Node:
    """A remote peer. A node with url is a DICOMweb server (QIDO/WADO/STOW under that base
    URL); otherwise it is a DIMSE peer at host:port answering to called_aet.
    retrieve: how studies come back: 'get' (C-GET on the same association), 'move' (C-MOVE to
    radview's Storage SCP; the PACS must know radview's AE title, host and port) or 'wado'.
    tls: DICOM TLS (DIMSE) with ca_file as the trusted certificates (None: system store)."""

    name: str
    host: str = ""
    port: int = 104
    called_aet: str = "ANY-SCP"
    calling_aet: str = "RADVIEW"
    url: str = ""
    retrieve: str = "get"
    timeout: float = 10.0
    tls: bool = False
    ca_file: str = ""

    @property
    def is_web(self) -> bool:
        return bool(self.url)

    def describe(self) -> str:
        if self.is_web:
            return self.url.rstrip("/")
        return f"{self.called_aet}@{self.host}:{self.port}" + (" (TLS)" if self.tls else "")

    def check(self) -> "Node":
        """Validate the fields; raises NetError('config') naming the bad one."""
        if self.is_web:
            if not re.match(r"^https?://[^/\s]+", self.url):
                raise NetError(self.name or "node", f"DICOMweb URL {self.url!r} must start with"
                               " http:// or https://", "config")
            if self.retrieve not in ("wado",):
                return replace(self, retrieve="wado")
            return self
        if not self.host:
            raise NetError(self.name or "node", "no host given", "config")
        if not (0 < int(self.port) < 65536):
            raise NetError(self.name or "node", f"port {self.port} is not in 1-65535", "config")
        check_aet(self.called_aet, "called AE title")
        check_aet(self.calling_aet, "calling AE title")
        if self.retrieve not in RETRIEVE_METHODS:
            raise NetError(self.name or "node", f"retrieve must be one of {RETRIEVE_METHODS},"
                           f" not {self.retrieve!r}", "config")
        if self.timeout <= 0:
            raise NetError(self.name or "node", "timeout must be > 0 s", "config")
        return self


@dataclass(frozen=True)
class ScpSettings:
    """radview's own Storage SCP (the C-MOVE destination)."""

    aet: str = "RADVIEW"
    port: int = 11112
    host: str = "0.0.0.0"


@dataclass
class NodeBook:
    nodes: list[Node] = field(default_factory=list)
    scp: ScpSettings = field(default_factory=ScpSettings)
    path: Path | None = None

    @staticmethod
    def default_path() -> Path:
        from radview.paths import user_home

        return user_home() / "pacs.json"

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "NodeBook":
        p = Path(path) if path else cls.default_path()
        if not p.exists():
            return cls(path=p)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            nodes = [Node(**n) for n in data.get("nodes", [])]
            scp = ScpSettings(**data.get("scp", {}))
        except (OSError, ValueError, TypeError) as exc:
            raise NetError(str(p), f"cannot read the PACS node settings ({exc})", "config") from exc
        return cls(nodes, scp, p)

    def save(self) -> Path:
        p = self.path or self.default_path()
        tmp = p.with_name(p.name + ".part")
        text = json.dumps({"nodes": [asdict(n) for n in self.nodes], "scp": asdict(self.scp)},
                          indent=1)
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, p)
        except OSError as exc:
            raise NetError(str(p), f"cannot save the PACS node settings ({exc})", "config") from exc
        self.path = p
        return p

    def get(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise NetError(name, f"no PACS node named {name!r} (known: "
                       f"{', '.join(n.name for n in self.nodes) or 'none'})", "config")

    def add(self, node: Node) -> None:
        node.check()
        self.nodes = [n for n in self.nodes if n.name != node.name] + [node]

    def remove(self, name: str) -> None:
        self.nodes = [n for n in self.nodes if n.name != name]
