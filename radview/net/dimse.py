"""DIMSE with pynetdicom: C-ECHO, C-FIND (patient / study / series), C-GET and C-MOVE into the
local cache, C-STORE; radview's own Storage SCP (the C-MOVE destination).

Long work is a generator of radview.types.Progress (one step per instance); closing it (the
GUI's cancel, a consumer that stops iterating) aborts the association (the PACS stops sending) and
leaves the study marked partial in the cache. Every failure is a NetError naming the node and
the reason: refused connection, unknown host, timeout, association rejected (with the peer's
result, source and reason, e.g. 'called AE title not recognised'), aborted, or a DIMSE status.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any, Iterable, Iterator

from radview.net.cache import CachedStudy, PacsCache
from radview.net.errors import NetError
from radview.net.nodes import Node, ScpSettings, check_aet
from radview.net.query import PatientRecord, StudyQuery, StudyRecord, newest_first, with_body_parts
from radview.types import Progress


# Storage classes offered for C-GET (role selection: we are the C-STORE SCP). Radiography and
# what radview sends back first; then the rest of pynetdicom's list up to the 128-context cap.
_PREFERRED = (
    "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.1.2.1", "1.2.840.10008.5.1.4.1.1.1.3",
    "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.1", "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.5.1.4.1.1.7.4", "1.2.840.10008.5.1.4.1.1.11.1",
    "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.88.59", "1.2.840.10008.5.1.4.1.1.2",
    "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.12.1",
    "1.2.840.10008.5.1.4.1.1.12.2", "1.2.840.10008.5.1.4.1.1.20", "1.2.840.10008.5.1.4.1.1.128",
    "1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.66.4",
)
_STATUS_TEXT = {
    0xA700: "out of resources", 0xA701: "out of resources (cannot calculate matches)",
    0xA702: "out of resources (cannot perform sub-operations)",
    0xA801: "move destination unknown", 0xA900: "identifier does not match SOP class",
    0xC000: "unable to process", 0xFE00: "cancelled", 0xB000: "some sub-operations failed",
    0x0122: "SOP class not supported", 0x0211: "unrecognised operation",
}


def _status_text(code: int) -> str:
    if code in _STATUS_TEXT:
        return f"0x{code:04X} ({_STATUS_TEXT[code]})"
    if 0xC000 <= code <= 0xCFFF:
        return f"0x{code:04X} (unable to process)"
    return f"0x{code:04X}"


def check_reachable(node: Node) -> None:
    """A plain TCP connect first, so 'nobody listens' and 'timeout' are told apart clearly."""
    where = node.describe()
    try:
        with socket.create_connection((node.host, int(node.port)), timeout=node.timeout):
            pass
    except ConnectionRefusedError:
        raise NetError(where, f"connection refused: nothing listens on {node.host}:{node.port}"
                       " (is the PACS running, is the port right?)", "refused") from None
    except socket.gaierror as exc:
        raise NetError(where, f"unknown host {node.host!r} ({exc.strerror})", "unreachable") from None
    except (TimeoutError, socket.timeout):
        raise NetError(where, f"timed out after {node.timeout:g} s connecting to {node.host}:"
                       f"{node.port} (firewall, wrong host?)", "timeout") from None
    except OSError as exc:
        raise NetError(where, f"cannot connect to {node.host}:{node.port} ({exc.strerror or exc})",
                       "unreachable") from None


def _tls_args(node: Node):
    if not node.tls:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=node.ca_file or None)
    return ctx, node.host


def _ae(node: Node):
    from pynetdicom import AE

    ae = AE(ae_title=check_aet(node.calling_aet, "calling AE title"))
    ae.acse_timeout = node.timeout
    ae.dimse_timeout = node.timeout
    ae.network_timeout = node.timeout
    ae.connection_timeout = node.timeout
    ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs
    return ae


def associate(node: Node, ae, *, ext_neg=None, evt_handlers=None):
    """An established association with node, or NetError with the reason."""
    node.check()
    check_reachable(node)
    where = node.describe()
    t0 = time.monotonic()
    try:
        assoc = ae.associate(node.host, int(node.port), ae_title=node.called_aet, ext_neg=ext_neg,
                             evt_handlers=evt_handlers, tls_args=_tls_args(node))
    except ssl.SSLError as exc:
        raise NetError(where, f"TLS handshake failed ({exc.reason or exc})", "tls") from None
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        rsp = assoc.acceptor.primitive
        detail = ""
        if rsp is not None:
            detail = f": {rsp.reason_str} ({rsp.result_str}, source: {rsp.source_str})"
        raise NetError(where, f"association rejected by {node.called_aet!r}{detail}; check the"
                       f" called AE title and that the PACS knows calling AE"
                       f" {node.calling_aet!r}", "rejected")
    waited = time.monotonic() - t0
    if assoc.is_aborted and waited < node.timeout * 0.95:  # (pynetdicom aborts on its timeout too)
        if node.tls:
            raise NetError(where, "TLS handshake or association failed: the peer closed the"
                           " connection (does it speak DICOM TLS on this port?)", "tls")
        raise NetError(where, "the peer closed the connection during the association request"
                       " (not a DICOM port, or the peer requires TLS?)", "aborted")
    raise NetError(where, f"no answer to the association request within {node.timeout:g} s"
                   + (" (is the peer speaking TLS?)" if not node.tls else ""), "timeout")


def _release(assoc) -> None:
    if assoc.is_established:
        assoc.release()


# ---------------------------------------------------------------------- echo / find
def echo(node: Node) -> float:
    """C-ECHO; returns the round trip in ms."""
    from pynetdicom.sop_class import Verification

    ae = _ae(node)
    ae.add_requested_context(Verification)
    t0 = time.perf_counter()
    assoc = associate(node, ae)
    try:
        status = assoc.send_c_echo()
    finally:
        _release(assoc)
    _check_final(node, status, "C-ECHO")
    return (time.perf_counter() - t0) * 1000.0


def _check_final(node: Node, status, what: str) -> int:
    if status is None or "Status" not in status:
        raise NetError(node.describe(), f"{what}: no response (connection lost, peer aborted or"
                       f" timed out after {node.timeout:g} s)", "aborted")
    code = int(status.Status)
    if code not in (0x0000, 0xFF00, 0xFF01) and not (0xB000 <= code <= 0xBFFF):
        comment = status.get("ErrorComment", "")
        raise NetError(node.describe(), f"{what} failed with status {_status_text(code)}"
                       + (f": {comment}" if comment else ""), "status")
    return code


def c_find(node: Node, identifier, model: str = "study") -> list:
    from pynetdicom.sop_class import (PatientRootQueryRetrieveInformationModelFind,
                                      StudyRootQueryRetrieveInformationModelFind)

    sop = (PatientRootQueryRetrieveInformationModelFind if model == "patient"
           else StudyRootQueryRetrieveInformationModelFind)
    ae = _ae(node)
    ae.add_requested_context(sop)
    assoc = associate(node, ae)
    out = []
    try:
        for status, ident in assoc.send_c_find(identifier, sop):
            code = _check_final(node, status, "C-FIND")
            if code in (0xFF00, 0xFF01) and ident is not None:
                out.append(ident)
    finally:
        _release(assoc)
    return out


def find_studies(node: Node, query: StudyQuery) -> list[StudyRecord]:
    """Study-level C-FIND; a body-part filter is answered by a series-level query (the
    attribute lives on series) whose studies are intersected."""
    records = [StudyRecord.from_dataset(ds) for ds in c_find(node, query.identifier("STUDY"))]
    if query.body_part:
        records = with_body_parts(records, c_find(node, query.identifier("SERIES")))
    return newest_first(records)


def find_patients(node: Node, query: StudyQuery) -> list[PatientRecord]:
    return [PatientRecord.from_dataset(ds)
            for ds in c_find(node, query.identifier("PATIENT"), model="patient")]


def _count_instances(assoc, node: Node, study_uid: str) -> int | None:
    from pydicom.dataset import Dataset
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = study_uid
    q.NumberOfStudyRelatedInstances = None
    n = None
    found = False
    for status, ident in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind):
        code = _check_final(node, status, "C-FIND")
        if code in (0xFF00, 0xFF01) and ident is not None:
            found = True
            v = ident.get("NumberOfStudyRelatedInstances")
            n = int(v) if v not in (None, "") else None
    if not found:
        raise NetError(node.describe(), f"study {study_uid} is not on this PACS", "status")
    return n


def _retrieve_identifier(study_uid: str):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    return ds


def _sub_total(status, done: int) -> int | None:
    if status is None:
        return None
    parts = [status.get(k) for k in ("NumberOfRemainingSuboperations",
                                     "NumberOfCompletedSuboperations",
                                     "NumberOfFailedSuboperations",
                                     "NumberOfWarningSuboperations")]
    if parts[0] is None:
        return None
    return sum(int(p or 0) for p in parts)


# ---------------------------------------------------------------------- C-GET
def iter_get(node: Node, study_uid: str, cache: PacsCache | None = None) -> Iterator[Progress]:
    """C-GET a study into the cache, one Progress per instance received; the last Progress
    carries the CachedStudy as payload. Raises NetError (the study is left partial)."""
    from pynetdicom import build_role, evt
    from pynetdicom._globals import ALL_TRANSFER_SYNTAXES
    from pynetdicom.presentation import StoragePresentationContexts
    from pynetdicom.sop_class import (StudyRootQueryRetrieveInformationModelFind,
                                      StudyRootQueryRetrieveInformationModelGet)

    cache = cache or PacsCache()
    ae = _ae(node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    uids = list(_PREFERRED) + [str(c.abstract_syntax) for c in StoragePresentationContexts
                               if str(c.abstract_syntax) not in _PREFERRED]
    uids = uids[:126]
    for uid in uids:
        ae.add_requested_context(uid, ALL_TRANSFER_SYNTAXES)
    roles = [build_role(uid, scp_role=True) for uid in uids]
    received: list[str] = []

    def on_store(event) -> int:
        sop = str(event.request.AffectedSOPInstanceUID)
        try:
            cache.add_bytes(study_uid, sop, event.encoded_dataset())
        except OSError:
            return 0xA700  # out of resources: the PACS counts it as failed
        received.append(sop)
        return 0x0000

    assoc = associate(node, ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    yield from _run_retrieve(node, assoc, study_uid, cache, received, lambda ident: assoc.send_c_get(
        ident, StudyRootQueryRetrieveInformationModelGet), "C-GET")


def _run_retrieve(node: Node, assoc, study_uid: str, cache: PacsCache, received: list,
                  send, what: str, done_count=None) -> Iterator[Progress]:
    where = node.describe()
    expected: int | None = None
    error, kind = "", "status"
    count = done_count or (lambda: len(received))
    try:
        expected = _count_instances(assoc, node, study_uid)
        cache.begin(study_uid, expected, where)
        yield Progress(0, expected, f"{what} {study_uid}: 0 of {expected or '?'} instances")
        final = None
        for status, _ in send(_retrieve_identifier(study_uid)):
            if status is None or "Status" not in status:
                break
            code = int(status.Status)
            if code == 0xFF00:
                if expected is None:
                    expected = _sub_total(status, count())
                yield Progress(count(), expected, f"{what} {study_uid}: {count()} of"
                               f" {expected or '?'} instances")
                continue
            final = status
            break
        if final is None:
            error, kind = (f"{what} interrupted after {count()} instance(s): connection lost,"
                           " peer aborted or timed out"), "aborted"
        else:
            code = int(final.Status)
            failed = int(final.get("NumberOfFailedSuboperations", 0) or 0)
            if code != 0x0000:
                comment = final.get("ErrorComment", "")
                error = f"{what} ended with status {_status_text(code)}" + (
                    f", {failed} instance(s) failed" if failed else "") + (
                    f": {comment}" if comment else "")
    except NetError as exc:
        error, kind = exc.reason, exc.kind
    except GeneratorExit:  # cancelled by the consumer: stop the PACS, keep what arrived
        if assoc.is_established:
            assoc.abort()
        if cache.status(study_uid) is not None:
            cache.finish(study_uid, expected, "cancelled", where)
        raise
    finally:
        _release(assoc)
    st = cache.finish(study_uid, expected, error, where) if cache.status(study_uid) else None
    if st is not None and not st.complete and not error:
        error = st.error or "incomplete"
    if error:
        raise NetError(where, error + (f"; study {study_uid} kept as {st.describe()}" if st else ""),
                       kind)
    yield Progress(st.received, expected, f"{what} {study_uid}: {st.describe()}", payload=st)


# ---------------------------------------------------------------------- Storage SCP + C-MOVE
class StorageSCP:
    """radview's Storage SCP: receives C-STORE into the cache (by StudyInstanceUID). Runs in
    pynetdicom's server threads; use as a context manager or start()/stop()."""

    def __init__(self, settings: ScpSettings | None = None, cache: PacsCache | None = None) -> None:
        self.settings = settings or ScpSettings()
        self.cache = cache or PacsCache()
        self._server = None
        self._lock = threading.Lock()
        self.received: dict[str, int] = {}
        self.errors: list[str] = []

    @property
    def port(self) -> int:
        if self._server is not None:
            return int(self._server.server_address[1])
        return int(self.settings.port)

    def start(self) -> "StorageSCP":
        from pynetdicom import AE, evt
        from pynetdicom._globals import ALL_TRANSFER_SYNTAXES
        from pynetdicom.presentation import AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=check_aet(self.settings.aet, "Storage SCP AE title"))
        ae.maximum_pdu_size = 0
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        try:
            self._server = ae.start_server((self.settings.host, int(self.settings.port)),
                                           block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        except OSError as exc:
            raise NetError(f"Storage SCP {self.settings.aet}", f"cannot listen on port"
                           f" {self.settings.port} ({exc.strerror or exc})", "config") from None
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> "StorageSCP":
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_store(self, event) -> int:
        try:
            from pydicom import dcmread
            from io import BytesIO

            data = event.encoded_dataset()
            ds = dcmread(BytesIO(data), stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
            study = str(ds.StudyInstanceUID)
            self.cache.add_bytes(study, str(event.request.AffectedSOPInstanceUID), data)
        except (OSError, AttributeError, ValueError, NetError) as exc:
            with self._lock:
                self.errors.append(str(exc))
            return 0xA700
        with self._lock:
            self.received[study] = self.received.get(study, 0) + 1
        return 0x0000


def iter_move(node: Node, study_uid: str, scp: StorageSCP,
              cache: PacsCache | None = None) -> Iterator[Progress]:
    """C-MOVE a study to radview's running Storage SCP (scp.settings.aet must be known to the
    PACS with this machine's address and scp.port)."""
    from pynetdicom.sop_class import (StudyRootQueryRetrieveInformationModelFind,
                                      StudyRootQueryRetrieveInformationModelMove)

    if cache is not None and cache.root != scp.cache.root:
        raise NetError(node.describe(), "C-MOVE: the Storage SCP writes into another cache", "config")
    cache = scp.cache
    ae = _ae(node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = associate(node, ae)
    yield from _run_retrieve(
        node, assoc, study_uid, cache, [],
        lambda ident: assoc.send_c_move(ident, scp.settings.aet,
                                        StudyRootQueryRetrieveInformationModelMove),
        "C-MOVE", done_count=lambda: cache.count(study_uid))


# ---------------------------------------------------------------------- C-STORE
def iter_store(node: Node, datasets: Iterable[Any]) -> Iterator[Progress]:
    """C-STORE datasets (pydicom Datasets or file paths) to node; one Progress per instance."""
    from pydicom import dcmread
    from pydicom.dataset import Dataset

    items = [d if isinstance(d, Dataset) else dcmread(str(d)) for d in datasets]
    ae = _ae(node)
    pairs = sorted({(str(d.SOPClassUID), _transfer_syntax(d)) for d in items})
    if len(pairs) > 128:
        raise NetError(node.describe(), f"{len(pairs)} SOP class / transfer syntax pairs: more"
                       " than one association can carry (128); send in parts", "config")
    for sop, ts in pairs:  # one context per pair: an SCP accepts one syntax per context
        ae.add_requested_context(sop, [ts])
    assoc = associate(node, ae)
    try:
        for i, ds in enumerate(items):
            try:
                status = assoc.send_c_store(ds)
            except ValueError as exc:  # no accepted presentation context for it
                raise NetError(node.describe(), f"C-STORE of {ds.SOPInstanceUID}: the peer does"
                               f" not accept it ({exc})", "status") from None
            _check_final(node, status, f"C-STORE of {ds.SOPInstanceUID}")
            yield Progress(i + 1, len(items), f"sent {i + 1} of {len(items)}",
                           payload=str(ds.SOPInstanceUID))
    finally:
        _release(assoc)


def _transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return str(meta.TransferSyntaxUID)
    return "1.2.840.10008.1.2.1"  # explicit VR little endian (pydicom writes it so)


def run(gen: Iterator[Progress]) -> Progress | None:
    """Drive a Progress generator to its end; returns the last Progress."""
    last = None
    for last in gen:
        pass
    return last


__all__ = ["echo", "find_studies", "find_patients", "iter_get", "iter_move", "iter_store",
           "StorageSCP", "associate", "check_reachable", "run", "CachedStudy"]
