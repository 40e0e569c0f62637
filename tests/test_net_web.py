"""DICOMweb against a real Orthanc with its DICOMweb plugin: QIDO-RS test and search, WADO-RS
retrieve into the cache (streamed, one Progress per instance), STOW-RS, and the errors."""
from __future__ import annotations

import pydicom
import pytest
from pydicom.uid import generate_uid

from orthanc import Orthanc, free_port, make_study, reidentify, require
from radview.net import NetError, Node, PacsCache, StudyQuery, echo, find_studies, iter_retrieve, iter_send


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    require(dicomweb=True)
    work = tmp_path_factory.mktemp("orthanc-web")
    o = Orthanc.start(work)
    study = generate_uid()
    files = make_study(work / "data", 3, study_uid=study, patient_id="W1", StudyDate="20231110",
                       body_part="CHEST")
    for f in files:
        o.upload(f)
    o.study = study
    yield o
    o.kill()


def node_of(o: Orthanc) -> Node:
    return Node("web", url=o.dicomweb_url, timeout=5)


def test_qido_echo_and_search(web):
    assert echo(node_of(web)) > 0
    rows = find_studies(node_of(web), StudyQuery(patient_id="W1", date_from="20231101",
                                                 date_to="20231130", modality="CR"))
    assert [r.study_uid for r in rows] == [web.study] and rows[0].n_instances == 3
    assert find_studies(node_of(web), StudyQuery(patient_id="W1", body_part="HAND")) == []
    assert find_studies(node_of(web), StudyQuery(date_from="20240101")) == []


def test_wado_retrieve(web, tmp_path):
    cache = PacsCache(tmp_path / "cache")
    steps = list(iter_retrieve(node_of(web), web.study, cache=cache))
    assert [p.done for p in steps] == [0, 1, 2, 3, 3] and steps[1].total == 3
    st = steps[-1].payload
    assert st.complete and st.received == 3
    sops = {pydicom.dcmread(p).SOPInstanceUID for p in cache.study_dir(web.study).glob("*.dcm")}
    assert len(sops) == 3


def test_stow_then_find(web, tmp_path, testdata):
    study = generate_uid()
    f = reidentify(testdata("MR_small.dcm"), tmp_path / "mr.dcm", study_uid=study,
                   series_uid=generate_uid(), patient_id="W2")
    steps = list(iter_send(node_of(web), [f]))
    assert steps[-1].done == 1
    rows = find_studies(node_of(web), StudyQuery(patient_id="W2"))
    assert [r.study_uid for r in rows] == [study] and rows[0].modalities == "MR"


def test_web_errors(web, tmp_path):
    dead = Node("dead", url=f"http://127.0.0.1:{free_port()}/dicom-web", timeout=2)
    with pytest.raises(NetError, match="connection refused") as err:
        echo(dead)
    assert err.value.kind == "refused"
    with pytest.raises(NetError, match="HTTP 404"):
        echo(Node("wrong", url=f"{web.http_url}/not-dicomweb"))
    cache = PacsCache(tmp_path / "cache")
    with pytest.raises(NetError, match="not on this server"):
        list(iter_retrieve(node_of(web), generate_uid(), cache=cache))
    assert cache.studies() == []
    with pytest.raises(NetError, match="must start with http"):
        echo(Node("bad", url="ftp://x"))


def test_orthanc_killed_mid_wado(tmp_path):
    require(dicomweb=True)
    o = Orthanc.start(tmp_path / "orthanc")
    try:
        study = generate_uid()
        for f in make_study(tmp_path / "data", 30, size=512, study_uid=study):
            o.upload(f)
        cache = PacsCache(tmp_path / "cache")
        with pytest.raises(NetError) as err:
            for p in iter_retrieve(node_of(o), study, cache=cache):
                if p.done >= 1:
                    o.kill()
        assert "kept as partial" in str(err.value)
        st = cache.status(study)
        assert not st.complete and st.expected == 30 and st.received < 30
        assert st.missing == 30 - st.received
    finally:
        o.kill()


def test_cancel_wado_is_partial(web, tmp_path):
    cache = PacsCache(tmp_path / "cache")
    gen = iter_retrieve(node_of(web), web.study, cache=cache)
    next(gen), next(gen)
    gen.close()
    st = cache.status(web.study)
    assert st.state == "partial" and st.error == "cancelled" and st.received == 1 and st.missing == 2
