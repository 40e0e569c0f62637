"""DICOMweb with dicomweb-client: QIDO-RS (the node test and study search), WADO-RS retrieve into
the cache (one Progress per instance, streamed), STOW-RS. Errors are NetError with the URL and
the reason (refused, timeout, unknown host, HTTP status)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from radview.net.cache import PacsCache
from radview.net.errors import NetError
from radview.net.nodes import Node
from radview.net.query import StudyQuery, StudyRecord, dataset_from_json, newest_first, with_body_parts
from radview.types import Progress

_STUDY_FIELDS = ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "StudyTime",
                 "AccessionNumber", "StudyDescription", "ModalitiesInStudy",
                 "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")


def client(node: Node):
    from dicomweb_client import DICOMwebClient

    node.check()
    c = DICOMwebClient(node.url.rstrip("/"), timeout=node.timeout)
    c.set_http_retry_params(retry=False)  # its default retries a refused connection for 30 s
    return c


@contextmanager
def _errors(node: Node, what: str):
    import requests

    where = node.describe()
    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise NetError(where, f"{what}: TLS error ({exc})", "tls") from None
    except requests.exceptions.ConnectTimeout:
        raise NetError(where, f"{what}: timed out connecting after {node.timeout:g} s", "timeout") from None
    except requests.exceptions.ReadTimeout:
        raise NetError(where, f"{what}: no answer within {node.timeout:g} s", "timeout") from None
    except requests.exceptions.ConnectionError as exc:
        text = str(exc)
        if "Connection refused" in text or "Errno 111" in text:
            raise NetError(where, f"{what}: connection refused (is the DICOMweb server running,"
                           " is the URL right?)", "refused") from None
        if "Name or service not known" in text or "nodename nor servname" in text or \
                "Failed to resolve" in text:
            raise NetError(where, f"{what}: unknown host", "unreachable") from None
        raise NetError(where, f"{what}: connection lost ({_short(text)})", "aborted") from None
    except requests.exceptions.ChunkedEncodingError as exc:
        raise NetError(where, f"{what}: connection lost mid-transfer ({_short(str(exc))})",
                       "aborted") from None
    except requests.exceptions.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        hint = {401: " (authentication required)", 403: " (forbidden)",
                404: " (not found: is the base URL the DICOMweb root?)"}.get(code, "")
        raise NetError(where, f"{what}: HTTP {code}{hint}", "status") from None


def _short(text: str) -> str:
    return text if len(text) < 160 else text[:157] + "..."


def echo(node: Node) -> float:
    """QIDO-RS test: search for one study; returns the round trip in ms."""
    import time

    t0 = time.perf_counter()
    with _errors(node, "QIDO-RS test"):
        client(node).search_for_studies(limit=1)
    return (time.perf_counter() - t0) * 1000.0


def find_studies(node: Node, query: StudyQuery) -> list[StudyRecord]:
    c = client(node)
    with _errors(node, "QIDO-RS study search"):
        rows = _all(c.search_for_studies, fields=_STUDY_FIELDS,
                    search_filters=query.qido_params("STUDY"))
        records = [StudyRecord.from_dataset(dataset_from_json(r)) for r in rows]
        if query.body_part:
            series = _all(c.search_for_series, search_filters=query.qido_params("SERIES"),
                          fields=("StudyInstanceUID", "BodyPartExamined"))
            records = with_body_parts(records, (dataset_from_json(r) for r in series))
    return newest_first(records)


_PAGE = 500


def _all(search, **kw) -> list[dict]:
    """Every match, page by page (dicomweb-client's get_remaining loops forever on servers that
    ignore offset for some filters: stop on a short page or a page already seen)."""
    out: list[dict] = []
    seen: set[str] = set()
    offset = 0
    while True:
        page = search(limit=_PAGE, offset=offset, **kw)
        fresh = [r for r in page if _row_id(r) not in seen]
        seen.update(_row_id(r) for r in fresh)
        out.extend(fresh)
        if len(page) < _PAGE or not fresh:
            return out
        offset += len(page)


def _row_id(row: dict) -> str:
    import json

    for tag in ("00080018", "0020000E", "0020000D"):
        v = row.get(tag, {}).get("Value")
        if v:
            return f"{tag}:{v[0]}"
    return json.dumps(row, sort_keys=True)


def count_instances(node: Node, study_uid: str, c=None) -> int | None:
    c = c or client(node)
    with _errors(node, "QIDO-RS"):
        rows = c.search_for_studies(fields=("NumberOfStudyRelatedInstances",),
                                    search_filters={"StudyInstanceUID": study_uid})
    if not rows:
        raise NetError(node.describe(), f"study {study_uid} is not on this server", "status")
    v = dataset_from_json(rows[0]).get("NumberOfStudyRelatedInstances")
    return int(v) if v not in (None, "") else None


def iter_retrieve(node: Node, study_uid: str, cache: PacsCache | None = None) -> Iterator[Progress]:
    """WADO-RS a study into the cache, streamed one instance at a time (as stored: no
    transcoding asked). The last Progress carries the CachedStudy; NetError leaves it partial."""
    cache = cache or PacsCache()
    c = client(node)
    where = node.describe()
    expected = count_instances(node, study_uid, c)
    cache.begin(study_uid, expected, where)
    error, kind = "", "status"
    n = 0
    yield Progress(0, expected, f"WADO-RS {study_uid}: 0 of {expected or '?'} instances")
    stream = c.iter_study(study_uid, media_types=(("application/dicom", "*"),))
    try:
        with _errors(node, "WADO-RS retrieve"):
            for ds in stream:
                cache.add_dataset(ds)
                n += 1
                yield Progress(n, expected, f"WADO-RS {study_uid}: {n} of {expected or '?'} instances")
    except NetError as exc:
        error, kind = f"{exc.reason} after {n} instance(s)", exc.kind
    except GeneratorExit:  # cancelled: drop the HTTP stream, keep what arrived as partial
        stream.close()
        cache.finish(study_uid, expected, "cancelled", where)
        raise
    st = cache.finish(study_uid, expected, error, where)
    if not st.complete:
        raise NetError(where, f"{error or st.error}; study {study_uid} kept as {st.describe()}", kind)
    yield Progress(st.received, expected, f"WADO-RS {study_uid}: {st.describe()}", payload=st)


def iter_store(node: Node, datasets: Iterable[Any]) -> Iterator[Progress]:
    """STOW-RS, one request per instance (so progress and a failure name the instance)."""
    from pydicom import dcmread
    from pydicom.dataset import Dataset

    items = [d if isinstance(d, Dataset) else dcmread(str(d)) for d in datasets]
    c = client(node)
    for i, ds in enumerate(items):
        with _errors(node, f"STOW-RS of {ds.SOPInstanceUID}"):
            rsp = c.store_instances([ds])
        failed = rsp.get("FailedSOPSequence") if rsp is not None else None
        if failed:
            reason = failed[0].get("FailureReason", "?")
            raise NetError(node.describe(), f"STOW-RS refused {ds.SOPInstanceUID} (failure"
                           f" reason {reason})", "status")
        yield Progress(i + 1, len(items), f"stored {i + 1} of {len(items)}",
                       payload=str(ds.SOPInstanceUID))
