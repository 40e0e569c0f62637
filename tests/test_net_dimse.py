"""DIMSE against a real Orthanc on loopback: C-ECHO, C-FIND with filters, C-GET and C-MOVE into
the cache, and the failures (refused association, dead port, Orthanc killed mid-retrieve) that
must give a clear error and leave no study marked complete."""
from __future__ import annotations

from dataclasses import replace

import pytest
from pydicom.uid import generate_uid

from orthanc import Orthanc, free_port, make_study, reidentify, require
from radview.net import (NetError, Node, PacsCache, ScpSettings, StudyQuery, echo, find_patients,
                         find_studies, iter_retrieve)
from radview.net.dimse import StorageSCP


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    require()
    work = tmp_path_factory.mktemp("orthanc")
    scp_port = free_port()
    o = Orthanc.start(work, modalities={"RADVIEW": ("RADVIEW", "127.0.0.1", scp_port)})
    o.scp_port = scp_port
    data = work / "data"
    o.studies = {}
    for name, (pid, pname, date, acc, part, n) in {
            "chest": ("P1", "Doe^Jane", "20240105", "ACC1", "CHEST", 3),
            "hand": ("P2", "Roe^Rick", "20240220", "ACC2", "HAND", 2)}.items():
        files = make_study(data, n, patient_id=pid, patient_name=pname, StudyDate=date,
                           AccessionNumber=acc, body_part=part)
        for f in files:
            o.upload(f)
        o.studies[name] = str(__import__("pydicom").dcmread(files[0]).StudyInstanceUID)
    yield o
    o.kill()


def node_of(o: Orthanc, **kw) -> Node:
    return Node("test", host=o.host, port=o.dicom_port, called_aet=o.aet, timeout=5, **kw)


def test_echo(pacs):
    assert echo(node_of(pacs)) > 0


def test_find_with_filters(pacs):
    node = node_of(pacs)
    uids = {r.study_uid for r in find_studies(node, StudyQuery())}
    assert set(pacs.studies.values()) <= uids
    by_name = find_studies(node, StudyQuery(patient_name="Doe*"))
    assert [r.study_uid for r in by_name] == [pacs.studies["chest"]]
    assert by_name[0].n_instances == 3 and by_name[0].accession == "ACC1"
    assert [r.study_uid for r in find_studies(node, StudyQuery(patient_id="P2"))] == [pacs.studies["hand"]]
    feb = find_studies(node, StudyQuery(date_from="20240201", date_to="20240229"))
    assert [r.study_uid for r in feb] == [pacs.studies["hand"]]
    assert [r.study_uid for r in find_studies(node, StudyQuery(accession="ACC1"))] == [pacs.studies["chest"]]
    assert {r.study_uid for r in find_studies(node, StudyQuery(modality="CR"))} >= set(pacs.studies.values())
    assert find_studies(node, StudyQuery(modality="MR")) == []
    hand = find_studies(node, StudyQuery(body_part="HAND"))
    assert [(r.study_uid, r.body_parts) for r in hand] == [(pacs.studies["hand"], "HAND")]
    patients = {p.patient_id: p for p in find_patients(node, StudyQuery(patient_id="P*"))}
    assert {"P1", "P2"} <= set(patients) and patients["P1"].patient_name == "Doe^Jane"


def test_get_into_cache_opens_like_a_folder(pacs, tmp_path):
    from radview.io.studies import scan

    cache = PacsCache(tmp_path / "cache")
    steps = list(iter_retrieve(node_of(pacs), pacs.studies["chest"], method="get", cache=cache))
    assert [p.done for p in steps[1:4]] == [1, 2, 3] and steps[1].total == 3
    st = steps[-1].payload
    assert st.complete and st.received == 3 and st.missing == 0
    assert cache.status(pacs.studies["chest"]).complete
    res = scan(st.path, use_index=False)
    assert not res.errors
    assert [s.key for s in res.studies] == [pacs.studies["chest"]] and len(res.studies[0].views) == 3


def test_move_into_storage_scp(pacs, tmp_path):
    cache = PacsCache(tmp_path / "cache")
    settings = ScpSettings("RADVIEW", pacs.scp_port, "127.0.0.1")
    with StorageSCP(settings, cache) as scp:
        last = list(iter_retrieve(node_of(pacs), pacs.studies["hand"], method="move", scp=scp))[-1]
    assert last.payload.complete and last.payload.received == 2
    assert scp.received == {pacs.studies["hand"]: 2}


def test_move_to_an_unknown_destination_is_partial(pacs, tmp_path):
    cache = PacsCache(tmp_path / "cache")
    with StorageSCP(ScpSettings("NOTKNOWN", free_port(), "127.0.0.1"), cache) as scp:
        with pytest.raises(NetError, match="C-MOVE") as err:
            list(iter_retrieve(node_of(pacs), pacs.studies["hand"], method="move", scp=scp))
    assert "kept as partial: 0 of 2 instances, 2 missing" in str(err.value)
    assert not cache.status(pacs.studies["hand"]).complete


def test_refused_association_names_the_reason(pacs, tmp_path):
    bad = replace(node_of(pacs), called_aet="NOT-ORTHANC")
    with pytest.raises(NetError, match="Called AE title not recognised") as err:
        echo(bad)
    assert err.value.kind == "rejected"
    cache = PacsCache(tmp_path / "cache")
    with pytest.raises(NetError, match="rejected"):
        list(iter_retrieve(bad, pacs.studies["chest"], method="get", cache=cache))
    assert cache.status(pacs.studies["chest"]) is None and cache.studies() == []


def test_tls_mismatch_and_not_a_dicom_port(pacs):
    with pytest.raises(NetError, match="TLS") as err:
        echo(replace(node_of(pacs), tls=True, timeout=3))
    assert err.value.kind == "tls"
    with pytest.raises(NetError, match="not a DICOM port") as err:
        echo(replace(node_of(pacs), port=pacs.http_port))
    assert err.value.kind == "aborted"


def test_silent_peer_times_out():
    import socket

    with socket.socket() as srv:  # accepts TCP (backlog) but never answers the association
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        node = Node("silent", host="127.0.0.1", port=srv.getsockname()[1], called_aet="X",
                    timeout=1)
        with pytest.raises(NetError, match="no answer to the association request within 1 s") as err:
            echo(node)
    assert err.value.kind == "timeout"


def test_dead_port_is_connection_refused(tmp_path):
    node = Node("dead", host="127.0.0.1", port=free_port(), called_aet="X", timeout=2)
    with pytest.raises(NetError, match="connection refused") as err:
        echo(node)
    assert err.value.kind == "refused"
    cache = PacsCache(tmp_path / "cache")
    with pytest.raises(NetError, match="connection refused"):
        list(iter_retrieve(node, generate_uid(), method="get", cache=cache))
    assert cache.studies() == []


def test_unknown_study_is_an_error_not_an_empty_success(pacs, tmp_path):
    cache = PacsCache(tmp_path / "cache")
    uid = generate_uid()
    with pytest.raises(NetError, match="not on this PACS"):
        list(iter_retrieve(node_of(pacs), uid, method="get", cache=cache))
    assert cache.status(uid) is None


def test_cancel_leaves_the_study_partial(pacs, tmp_path):
    cache = PacsCache(tmp_path / "cache")
    gen = iter_retrieve(node_of(pacs), pacs.studies["chest"], method="get", cache=cache)
    next(gen), next(gen)  # the start and the first instance
    gen.close()
    st = cache.status(pacs.studies["chest"])
    assert st.state == "partial" and st.error == "cancelled" and not st.complete
    assert "missing" in st.describe()


def test_orthanc_killed_mid_retrieve(tmp_path, testdata):
    require()
    o = Orthanc.start(tmp_path / "orthanc")
    try:
        study, series = generate_uid(), generate_uid()
        files = make_study(tmp_path / "data", 40, size=256, study_uid=study)
        # plus a real radiograph from pydicom-data, re-identified into the same study
        files.append(reidentify(testdata("CT_small.dcm"), tmp_path / "data" / "ct.dcm",
                                study_uid=study, series_uid=series, patient_id="P1"))
        for f in files:
            o.upload(f)
        cache = PacsCache(tmp_path / "cache")
        with pytest.raises(NetError) as err:
            for p in iter_retrieve(node_of(o), study, method="get", cache=cache):
                if p.done >= 1:
                    o.kill()
        assert err.value.kind == "aborted"
        assert "interrupted" in str(err.value) and "kept as partial" in str(err.value)
        st = cache.status(study)
        assert st.state == "partial" and not st.complete
        assert st.expected == 41 and 1 <= st.received < 41 and st.missing == 41 - st.received
    finally:
        o.kill()
