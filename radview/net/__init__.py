"""PACS and DICOMweb (no Qt): nodes, query, retrieve into a local cache, send back.

    from radview.net import Node, StudyQuery, echo, find_studies, iter_retrieve, iter_send
    node = Node("pacs", host="10.0.0.5", port=104, called_aet="PACS")   # or Node("web", url=...)
    echo(node)                                           # ms; NetError with the reason
    find_studies(node, StudyQuery(patient_id="P1", modality="CR", date_from="20240101"))
    for p in iter_retrieve(node, study_uid): ...         # Progress per instance; last payload:
                                                         # CachedStudy (complete / partial)
    for p in iter_send(node, datasets): ...              # C-STORE or STOW-RS

Protocols come from pynetdicom (DIMSE) and dicomweb-client (DICOMweb): nothing hand-written.
Heavy imports (pynetdicom, requests) happen inside the functions.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from radview.net.cache import CachedStudy, PacsCache
from radview.net.errors import NetError
from radview.net.nodes import Node, NodeBook, ScpSettings
from radview.net.query import PatientRecord, StudyQuery, StudyRecord, parse_date_range
from radview.types import Progress


def echo(node: Node) -> float:
    """C-ECHO (DIMSE) or a QIDO-RS search (DICOMweb); round trip in ms, else NetError."""
    if node.is_web:
        from radview.net import web

        return web.echo(node)
    from radview.net import dimse

    return dimse.echo(node)


def find_studies(node: Node, query: StudyQuery) -> list[StudyRecord]:
    if node.is_web:
        from radview.net import web

        return web.find_studies(node, query)
    from radview.net import dimse

    return dimse.find_studies(node, query)


def find_patients(node: Node, query: StudyQuery) -> list[PatientRecord]:
    if node.is_web:
        raise NetError(node.describe(), "patient-level search is a DIMSE (C-FIND) feature;"
                       " QIDO-RS searches studies", "config")
    from radview.net import dimse

    return dimse.find_patients(node, query)


def iter_retrieve(node: Node, study_uid: str, *, method: str | None = None,
                  cache: PacsCache | None = None, scp=None) -> Iterator[Progress]:
    """Retrieve a study into the cache by node.retrieve (or method): 'get', 'move' (needs a
    running dimse.StorageSCP, or one is started for the duration from NodeBook's settings) or
    'wado'. One Progress per instance; the last carries the CachedStudy."""
    method = method or ("wado" if node.is_web else node.retrieve)
    cache = cache or (scp.cache if scp is not None else PacsCache())
    if method == "wado":
        from radview.net import web

        return web.iter_retrieve(node, study_uid, cache)
    if node.is_web:
        raise NetError(node.describe(), f"{method!r} needs a DIMSE node (host/port/AE)", "config")
    from radview.net import dimse

    if method == "get":
        return dimse.iter_get(node, study_uid, cache)
    if method == "move":
        if scp is not None:
            return dimse.iter_move(node, study_uid, scp, cache)
        return _move_with_own_scp(node, study_uid, cache)
    raise NetError(node.describe(), f"unknown retrieve method {method!r} (get, move, wado)", "config")


def _move_with_own_scp(node: Node, study_uid: str, cache: PacsCache) -> Iterator[Progress]:
    from radview.net import dimse

    settings = NodeBook.load().scp
    with dimse.StorageSCP(settings, cache) as scp:
        yield from dimse.iter_move(node, study_uid, scp, cache)


def iter_send(node: Node, datasets: Iterable[Any]) -> Iterator[Progress]:
    """C-STORE (DIMSE node) or STOW-RS (DICOMweb node) of pydicom Datasets or file paths."""
    if node.is_web:
        from radview.net import web

        return web.iter_store(node, datasets)
    from radview.net import dimse

    return dimse.iter_store(node, datasets)


__all__ = ["Node", "NodeBook", "ScpSettings", "StudyQuery", "StudyRecord", "PatientRecord",
           "CachedStudy", "PacsCache", "NetError", "Progress", "echo", "find_studies",
           "find_patients", "iter_retrieve", "iter_send", "parse_date_range"]
