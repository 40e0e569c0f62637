"""The local PACS cache (complete / partial / interrupted), saved nodes and query parsing:
no server needed."""
from __future__ import annotations

import json

import pytest
from pydicom.uid import generate_uid

from orthanc import make_study
from radview.net import NetError, Node, NodeBook, PacsCache, ScpSettings, StudyQuery, parse_date_range
from radview.net.cache import STATE_FILE


def test_cache_states(tmp_path):
    cache = PacsCache(tmp_path / "c")
    files = make_study(tmp_path / "src", 3)
    import pydicom

    uid = str(pydicom.dcmread(files[0]).StudyInstanceUID)
    cache.begin(uid, 3, "node")
    assert cache.status(uid).state == "receiving" and not cache.status(uid).complete
    for f in files[:2]:
        cache.add_bytes(uid, str(pydicom.dcmread(f).SOPInstanceUID), f.read_bytes())
    (cache.study_dir(uid) / ".x.dcm.part").write_bytes(b"half")  # an unfinished write
    # a crash here leaves 'receiving': shown as partial with what is missing
    st = cache.status(uid)
    assert st.received == 2 and st.missing == 1 and "interrupted" in st.describe()
    st = cache.finish(uid, 3)
    assert st.state == "partial" and st.missing == 1 and "1 of 3 instances did not arrive" in st.error
    cache.add_dataset(pydicom.dcmread(files[2]))
    st = cache.finish(uid, 3)
    assert st.complete and st.describe() == "complete (3 instances)"
    assert [s.study_uid for s in cache.studies()] == [uid]
    assert json.loads((cache.study_dir(uid) / STATE_FILE).read_text())["state"] == "complete"
    # an error always wins, even with every file present
    assert cache.finish(uid, 3, "cancelled").state == "partial"


def test_cache_without_a_record_is_not_complete(tmp_path):
    cache = PacsCache(tmp_path / "c")
    uid = generate_uid()
    cache.study_dir(uid).mkdir(parents=True)
    assert cache.status(uid).state == "partial" and cache.status(uid).expected is None
    with pytest.raises(NetError, match="not a DICOM UID"):
        cache.study_dir("../etc")


def test_node_book_round_trip(tmp_path):
    book = NodeBook.load(tmp_path / "pacs.json")
    assert book.nodes == [] and book.scp == ScpSettings()
    book.add(Node("pacs", host="10.0.0.5", port=104, called_aet="PACS", retrieve="move"))
    book.add(Node("web", url="http://h/dicom-web"))
    book.scp = ScpSettings("RV", 11113)
    book.save()
    again = NodeBook.load(tmp_path / "pacs.json")
    assert again.get("pacs").retrieve == "move" and again.get("web").is_web
    assert again.scp.port == 11113
    with pytest.raises(NetError, match="no PACS node named 'x'"):
        again.get("x")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(NetError, match="bad.json: cannot read"):
        NodeBook.load(tmp_path / "bad.json")


@pytest.mark.parametrize("node, message", [
    (Node("n", host="", called_aet="A"), "no host"),
    (Node("n", host="h", port=0, called_aet="A"), "port 0"),
    (Node("n", host="h", called_aet="A\\B"), "not a valid AE title"),
    (Node("n", host="h", called_aet="X" * 17), "not a valid AE title"),
    (Node("n", host="h", called_aet="A", retrieve="ftp"), "retrieve must be"),
])
def test_node_check(node, message):
    with pytest.raises(NetError, match=message):
        node.check()


def test_query_dates():
    assert parse_date_range("20240101-20240131") == ("20240101", "20240131")
    assert parse_date_range("2024-01-01..2024-01-31") == ("20240101", "20240131")
    assert parse_date_range("20240101-") == ("20240101", "")
    assert parse_date_range("2024-01-05") == ("20240105", "20240105")
    assert StudyQuery(date_from="20240101").date_range() == "20240101-"
    with pytest.raises(NetError, match="not a date"):
        parse_date_range("yesterday")
    ds = StudyQuery(modality="CR", body_part="CHEST").identifier("SERIES")
    assert ds.Modality == "CR" and ds.BodyPartExamined == "CHEST" and "ModalitiesInStudy" not in ds
